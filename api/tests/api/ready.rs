//! `GET /ready` on the real binary: 200 while the database answers with a current schema, 503
//! JSON when its schema is older than the binary or the database is away, and 200 again after.

use std::time::{Duration, Instant};

use crate::support::{seed, Api};
use logstats_shared::testing::backends;
use logstats_shared::testing::outage::OutageProxy;
use logstats_shared::Backend;

/// Polls `/ready` until it answers `status` (within 30 s) and returns that body.
fn ready_becomes(api: &Api, status: u16) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let response = api.get("/ready");
        if response.status == status {
            return response.json();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/ready still {} ({}), expected {status}",
            response.status,
            response.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ready_follows_the_database_and_its_schema() {
    for db in backends() {
        seed(&db);
        // The server backends through a proxy that can cut them off.
        let proxy = (db.backend != Backend::Sqlite).then(|| OutageProxy::start(&db));
        let api = Api::start_on(
            proxy.as_ref().map_or(&db.url, |proxy| proxy.url()),
            &[],
            &[],
        );
        let ready = api.get("/ready");
        assert_eq!(ready.status, 200, "{db:?}");
        assert_eq!(ready.json(), serde_json::json!({ "status": "ready" }));

        // The newest migration unapplied, as on a database an older version created (its
        // record kept aside, to be put back).
        db.execute(if db.backend == Backend::Mysql {
            // A DELETE may not read its own table in a subquery on MySQL.
            "CREATE TABLE held AS SELECT * FROM __diesel_schema_migrations \
             ORDER BY version DESC LIMIT 1; \
             DELETE FROM __diesel_schema_migrations ORDER BY version DESC LIMIT 1"
        } else {
            "CREATE TABLE held AS SELECT * FROM __diesel_schema_migrations \
             WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations); \
             DELETE FROM __diesel_schema_migrations WHERE version IN (SELECT version FROM held)"
        });
        let body = ready_becomes(&api, 503);
        assert_eq!(
            body,
            serde_json::json!({ "error": "the database schema is not current: 1 migration(s) of this version are not applied" }),
            "{db:?}"
        );
        assert_eq!(
            api.get("/health").status,
            200,
            "liveness ignores the database"
        );
        db.execute("INSERT INTO __diesel_schema_migrations SELECT * FROM held; DROP TABLE held");
        ready_becomes(&api, 200);

        if let Some(proxy) = proxy {
            proxy.cut();
            let body = ready_becomes(&api, 503);
            assert!(body["error"].is_string(), "{db:?}: {body}");
            assert_eq!(api.get("/health").status, 200);
            proxy.restore();
            assert_eq!(ready_becomes(&api, 200)["status"], "ready", "{db:?}");
        }
        let stderr = api.stop();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
