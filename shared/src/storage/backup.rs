//! An online backup of a SQLite database (`logstats-ingest backup --to PATH`): one consistent
//! copy while the ingest job commits, holding the stats with the offsets that produced them.
//! PostgreSQL and MySQL/MariaDB have their own dump tools, which do the same (see
//! docs/LIFECYCLE.md, "Backup and restore").

use std::path::Path;

use diesel::sql_types::Text;
use diesel::RunQueryDsl;

use super::connection::Pooled;
use super::{Backend, StorageError, Store};

impl Store {
    /// Whether `url`'s database can be copied by [`Store::backup_to`] (a SQLite file): checked
    /// before anything is opened. The server backends answer
    /// [`StorageError::BackupUnsupported`], naming their dump tools.
    pub fn check_backup_supported(url: &str) -> Result<(), StorageError> {
        match Self::backend_of(url)? {
            Backend::Sqlite => Ok(()),
            backend => Err(unsupported(backend)),
        }
    }

    /// Writes a copy of the whole SQLite database to the new file `path` (SQLite's
    /// `VACUUM INTO`: a read transaction, so commits go on meanwhile and the copy holds every
    /// commit made before it started and none after). The file is made readable by its owner
    /// only; an existing file is never overwritten. Other backends answer
    /// [`StorageError::BackupUnsupported`].
    pub fn backup_to(&self, path: &Path) -> Result<(), StorageError> {
        let backend = self.backend();
        let mut pooled = self.checkout()?;
        let Pooled::Sqlite(conn) = &mut pooled else {
            return Err(unsupported(backend));
        };
        let text = path.to_str().ok_or_else(|| StorageError::Backup {
            path: path.display().to_string(),
            cause: "the path is not UTF-8".to_string(),
        })?;
        let failed = |cause: String| StorageError::Backup {
            path: text.to_string(),
            cause,
        };
        create_empty_private(path).map_err(|e| failed(e.to_string()))?;
        let copied = diesel::sql_query("VACUUM INTO ?")
            .bind::<Text, _>(text)
            .execute(&mut **conn);
        if let Err(error) = copied {
            // Only the file this call created (and SQLite filled partly) is removed.
            let _ = std::fs::remove_file(path);
            return Err(failed(error.to_string()));
        }
        Ok(())
    }
}

/// The error of a backup asked of a server backend, naming its dump tool.
fn unsupported(backend: Backend) -> StorageError {
    StorageError::BackupUnsupported(match backend {
        Backend::Mysql => {
            "mysql:// databases are backed up with `mariadb-dump --single-transaction` (or \
             mysqldump)"
        }
        _ => "postgres:// databases are backed up with `pg_dump`",
    })
}

/// Creates `path` empty, readable and writable by its owner only; an existing file is an error
/// (SQLite would refuse to copy into a file that is not empty, and an empty one might be
/// someone else's).
fn create_empty_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => std::io::Error::new(
                e.kind(),
                "the file exists already: a backup is written to a new file only",
            ),
            _ => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{day_from_date, EpochCommit, SourceOffset};
    use crate::DayAccumulator;

    /// The copy opens as a database with the same rows, offsets and versions; an existing file
    /// is never overwritten; the server backends name their dump tools.
    #[cfg(feature = "testing")]
    #[test]
    fn a_backup_is_a_whole_copy_in_a_new_private_file() {
        use std::os::unix::fs::PermissionsExt;
        for db in crate::testing::backends() {
            let store = db.connect();
            let mut acc = DayAccumulator::new();
            acc.add(true, 1_000);
            acc.add(false, 3_000);
            let day = chrono::NaiveDate::from_ymd_opt(2024, 10, 10).expect("date");
            let offset = SourceOffset {
                source: "inode:1:2".to_string(),
                fingerprint: b"x".to_vec(),
                byte_offset: 77,
                line_count: 2,
            };
            store
                .commit_epoch(&EpochCommit {
                    deltas: vec![("a".to_string(), day_from_date(day), acc.finish())],
                    sources: vec![offset.clone()],
                    max_event_time: Some(1_728_518_400),
                    ..EpochCommit::default()
                })
                .expect("commit");
            let dir = tempfile::tempdir().expect("a directory");
            let path = dir.path().join("copy.db");
            if db.backend != Backend::Sqlite {
                let error = store.backup_to(&path).expect_err("not SQLite");
                assert!(
                    matches!(error, StorageError::BackupUnsupported(_)),
                    "{error}"
                );
                let error = Store::check_backup_supported(&db.url).expect_err("not SQLite");
                assert!(error.to_string().contains("dump"), "{error}");
                assert!(!path.exists());
                continue;
            }
            Store::check_backup_supported(&db.url).expect("SQLite");
            store.backup_to(&path).expect("backup");
            let mode = std::fs::metadata(&path)
                .expect("the copy")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let copy = Store::connect(
                &format!("sqlite://{}", path.display()),
                &crate::StoreOptions::default(),
            )
            .expect("the copy opens");
            assert_eq!(
                copy.all_days().expect("read"),
                store.all_days().expect("read")
            );
            assert_eq!(copy.source_offset("inode:1:2").expect("read"), Some(offset));
            assert_eq!(copy.watermark().expect("read"), Some(1_728_518_400));
            assert_eq!(copy.customer_version("a").expect("read"), 1);
            drop(copy);
            let before = std::fs::read(&path).expect("the copy");
            let error = store.backup_to(&path).expect_err("exists");
            assert!(error.to_string().contains("exists already"), "{error}");
            assert_eq!(
                std::fs::read(&path).expect("the copy"),
                before,
                "left alone"
            );
        }
    }
}
