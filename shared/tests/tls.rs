//! PostgreSQL over TLS (`sslmode=require`), against the local server, which has ssl on: libpq
//! is built with OpenSSL, and the connection really is encrypted.

use diesel::pg::PgConnection;
use diesel::sql_types::Bool;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use logstats_shared::testing::TestDatabase;
use logstats_shared::{Store, StoreOptions};

#[derive(QueryableByName)]
struct Encrypted {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

#[test]
fn sslmode_require_connects_encrypted() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let url = format!("{}?sslmode=require", db.url);
    let mut conn = PgConnection::establish(&url).unwrap_or_else(|e| panic!("TLS connect: {e}"));
    let encrypted: Encrypted =
        diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .get_result(&mut conn)
            .expect("pg_stat_ssl");
    assert!(encrypted.ssl, "the connection is not encrypted");
    let store = Store::connect(&url, &StoreOptions::default()).expect("store over TLS");
    assert_eq!(store.watermark().expect("read"), None);
}
