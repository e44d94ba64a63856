//! compose.yaml's PostgreSQL roles (`compose/postgres-init/10-roles.sql`, run here under unique
//! names) on a real server: the ingest role applies the migrations and writes the stats; the
//! API's role, with `--no-migrate`, serves them and is ready but may not write; before the
//! migrations are applied the API refuses to start, saying why. Also for tables an older
//! compose.yaml made before the roles existed.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{run_to_exit, seed, seed_store, Api};
use logstats_shared::testing::TestDatabase;
use logstats_shared::{EpochCommit, Store, StoreOptions};

/// The roles of one test, dropped (with what they own and were granted) when it ends.
struct Roles<'a> {
    db: &'a TestDatabase,
    ingest: String,
    api: String,
}

impl<'a> Roles<'a> {
    /// Runs the compose script on `db` with the roles renamed (roles are the server's, not the
    /// database's: tests running together must not share them).
    fn create(db: &'a TestDatabase) -> Roles<'a> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let unique = format!("{}_{nanos}", std::process::id());
        let roles = Roles {
            db,
            ingest: format!("lt_ingest_{unique}"),
            api: format!("lt_api_{unique}"),
        };
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/postgres-init/10-roles.sql");
        let script = std::fs::read_to_string(&script).expect("the compose roles script");
        assert!(script.contains("logstats_ingest") && script.contains("logstats_api"));
        let script = script
            .replace("logstats_ingest", &roles.ingest)
            .replace("logstats_api", &roles.api);
        db.execute(&script);
        // Twice: running it again changes nothing.
        db.execute(&script);
        roles
    }

    /// `db`'s URL as `role` (whose password is its name; the test server trusts local
    /// connections anyway).
    fn url(&self, role: &str) -> String {
        let url = &self.db.url;
        let start = url.find("://").map_or(0, |i| i + 3);
        let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
        let host_start = url[start..authority_end]
            .rfind('@')
            .map_or(start, |i| start + i + 1);
        format!("{}{role}:{role}@{}", &url[..start], &url[host_start..])
    }
}

impl Drop for Roles<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "warning: roles {} and {} left behind",
                self.ingest, self.api
            );
            return;
        }
        self.db.execute(&format!(
            // One role at a time: PostgreSQL fails on a default privilege of one for the other
            // when both are dropped together.
            "DROP OWNED BY {0}; DROP OWNED BY {1}; DROP ROLE {0}; DROP ROLE {1}",
            self.ingest, self.api
        ));
    }
}

/// Asserts the API role serves the seeded stats, is ready, and may not write.
fn assert_api_role_reads_only(roles: &Roles<'_>) {
    let api = Api::start_on(&roles.url(&roles.api), &["--no-migrate"], &[]);
    let stats = api.get("/customers/cust_1/stats?from=2024-10-10");
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert!(stats.json()["total"]["total_requests"].as_u64() >= Some(120));
    assert_eq!(api.get("/customers?from=2024-10-10").status, 200);
    // The fleet rows (and their marker) are readable too.
    let fleet = api.get("/stats?from=2024-10-10");
    assert_eq!(fleet.status, 200, "{}", fleet.text());
    assert!(fleet.json()["total"]["total_requests"].as_u64() >= Some(120));
    assert_eq!(api.get("/ready").json()["status"], "ready");
    let log = api.stop();
    assert!(!log.contains("ERROR"), "{log}");

    let reader = Store::connect(
        &roles.url(&roles.api),
        &StoreOptions {
            apply_migrations: false,
            ..StoreOptions::default()
        },
    )
    .expect("the API role opens the store without migrating");
    let write = reader.commit_epoch(&EpochCommit {
        deltas: Vec::new(),
        max_event_time: Some(1),
        ..EpochCommit::default()
    });
    let error = write.expect_err("the API role may not write").to_string();
    assert!(error.contains("permission denied"), "{error}");
}

#[test]
fn the_ingest_role_migrates_and_writes_the_api_role_only_reads() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let roles = Roles::create(&db);
    let api_url = roles.url(&roles.api);

    // Before the ingest job ever ran: the API refuses to start, saying what to do.
    let (code, stderr) = run_to_exit(&api_url, &["--no-migrate"], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    // Every migration of migrations/postgres is lacking.
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres"
    ))
    .expect("the migrations")
    .count();
    assert!(
        stderr.contains(&format!(
            "the database schema is not current: {migrations} migration(s) of this version are \
             not applied"
        )) && stderr.contains("--no-migrate is given: let logstats-ingest apply them"),
        "{stderr}"
    );
    // Without --no-migrate it tries, and is refused.
    let (code, stderr) = run_to_exit(&api_url, &[], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("permission denied")
            && stderr.contains("this role may not change the schema"),
        "{stderr}"
    );

    // The ingest role applies the migrations and commits, as logstats-ingest does.
    let ingest = Store::connect(&roles.url(&roles.ingest), &StoreOptions::default())
        .expect("the ingest role applies the migrations");
    seed_store(&ingest);
    assert_eq!(ingest.pending_migrations().expect("readable"), 0);
    assert_api_role_reads_only(&roles);
}

#[test]
fn tables_made_before_the_roles_pass_to_the_ingest_role() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    // An older compose.yaml's database: everything made by the administrator.
    seed(&db);
    // The newest migration unapplied, as after an upgrade of the binaries.
    db.execute(
        "DELETE FROM __diesel_schema_migrations \
         WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
    );
    let roles = Roles::create(&db);
    let ingest = Store::connect(&roles.url(&roles.ingest), &StoreOptions::default())
        .expect("the ingest role applies the newest migration on the older tables");
    assert_eq!(ingest.pending_migrations().expect("readable"), 0);
    seed_store(&ingest);
    assert_api_role_reads_only(&roles);
}
