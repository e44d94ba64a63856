//! Filesystem notifications for follow mode: a change under a followed path wakes the follow
//! loop at once. Polling stays as the fallback where notifications do not work (network file
//! systems, or an inotify limit reached).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Poll interval while notifications work: a safety net for missed events.
pub const POLL_WITH_NOTIFICATIONS: Duration = Duration::from_secs(1);

/// Poll interval without notifications.
pub const POLL_WITHOUT_NOTIFICATIONS: Duration = Duration::from_millis(100);

/// Which changed paths matter: the given files (by name, so a file created in their place
/// counts), and `*.log` files in the given directories. A database file next to the logs, for
/// one, does not wake the job at every commit.
struct Relevant {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Relevant {
    fn new(paths: &[PathBuf]) -> Self {
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.iter().map(absolute).partition(|p| p.is_dir());
        let dirs = dirs
            .into_iter()
            .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
            .collect();
        let files = files
            .into_iter()
            .map(|f| match (f.parent(), f.file_name()) {
                (Some(dir), Some(name)) => std::fs::canonicalize(dir)
                    .map(|dir| dir.join(name))
                    .unwrap_or(f.clone()),
                _ => f,
            })
            .collect();
        Self { files, dirs }
    }

    fn matches(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
            || (path.extension().is_some_and(|e| e == "log")
                && path
                    .parent()
                    .is_some_and(|dir| self.dirs.iter().any(|d| d == dir)))
    }
}

/// Watches the directories of the followed paths.
pub struct ChangeWatcher {
    // Dropping the watcher stops it; it is kept alive for the events.
    watcher: Option<RecommendedWatcher>,
    events: Receiver<()>,
}

impl ChangeWatcher {
    /// Polling alone, without notifications.
    pub fn polling() -> Self {
        let (_, events) = channel();
        Self {
            watcher: None,
            events,
        }
    }

    /// Watches each given directory, and the directory of each given file (so that rotation,
    /// which replaces the file, is seen too). Falls back to polling alone on any error.
    pub fn new(paths: &[PathBuf]) -> Self {
        let (tx, events) = channel();
        let relevant = Relevant::new(paths);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| e.paths.iter().any(|p| relevant.matches(p))) {
                let _ = tx.send(());
            }
        });
        let watcher = match watcher {
            Ok(mut watcher) => {
                let all_watched = paths.iter().all(|path| {
                    let dir = if path.is_dir() {
                        path.as_path()
                    } else {
                        path.parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new("."))
                    };
                    // Watched by its canonical path, so events name paths as `Relevant` does.
                    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                    match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                        Ok(()) => true,
                        Err(e) => {
                            log::info!(
                                "follow: no notifications for {} ({e}); polling",
                                dir.display()
                            );
                            false
                        }
                    }
                });
                all_watched.then_some(watcher)
            }
            Err(e) => {
                log::info!("follow: filesystem notifications unavailable ({e}); polling");
                None
            }
        };
        Self { watcher, events }
    }

    /// How often to poll besides notifications.
    pub fn poll_interval(&self) -> Duration {
        if self.watcher.is_some() {
            POLL_WITH_NOTIFICATIONS
        } else {
            POLL_WITHOUT_NOTIFICATIONS
        }
    }

    /// Whether anything changed since the last call.
    pub fn changed(&self) -> bool {
        let mut any = false;
        while self.events.try_recv().is_ok() {
            any = true;
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, "").unwrap();
        let watcher = ChangeWatcher::new(std::slice::from_ref(&log));
        assert_eq!(watcher.poll_interval(), POLL_WITH_NOTIFICATIONS);
        watcher.changed();
        std::fs::write(&log, "2024-10-10 00:00:00 c /p 200 1\n").unwrap();
        let noticed = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            watcher.changed()
        });
        assert!(noticed);
        // A database next to the log does not count.
        std::fs::write(dir.path().join("logstats.db"), "x").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!watcher.changed());
    }
}
