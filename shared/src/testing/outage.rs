//! A database outage on demand, the same on every server backend: an [`OutageProxy`] forwards
//! TCP connections to a [`TestDatabase`]'s server, and can cut every connection and refuse new
//! ones (as a server that goes away does), then listen again on the same port.
//!
//! ```no_run
//! use logstats_shared::testing::{outage::OutageProxy, servers};
//!
//! for db in servers() {
//!     let proxy = OutageProxy::start(&db);
//!     // ... run a program on proxy.url() ...
//!     proxy.cut();
//!     // ... it sees the outage ...
//!     proxy.restore();
//! }
//! ```

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::TestDatabase;

/// A TCP forwarder to a database server that can be cut and restored; stops forwarding when
/// dropped.
pub struct OutageProxy {
    url: String,
    port: u16,
    target: u16,
    up: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl OutageProxy {
    /// Starts forwarding a free port on 127.0.0.1 to `db`'s server. Panics on SQLite, which has
    /// no server, or when `db.url` names no port.
    pub fn start(db: &TestDatabase) -> OutageProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let proxy = OutageProxy {
            url: via_local_port(&db.url, port),
            port,
            target: server_port(&db.url),
            up: Arc::new(AtomicBool::new(true)),
            streams: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.serve(listener);
        proxy
    }

    /// The database's URL through the proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in lock(&self.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // The accepting thread looks at `up` every 5 ms; once it has seen it, the listener is
        // dropped and connections are refused.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Listens again on the same port, forwarding as before.
    pub fn restore(&self) {
        // The accepting thread drops the old listener once it sees `up` false, which on a busy
        // machine can take longer than `cut` waited: the port is retried for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("rebind the proxy: {e}"),
            }
        };
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let up = Arc::clone(&self.up);
        let streams = Arc::clone(&self.streams);
        let target = self.target;
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).expect("blocking");
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let mut all = lock(&streams);
                        for (mut from, mut to) in [
                            (
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                            ),
                            (
                                server.try_clone().expect("clone"),
                                client.try_clone().expect("clone"),
                            ),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(Shutdown::Both);
                            });
                        }
                        all.push(client);
                        all.push(server);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // Dropping the listener refuses new connections.
        });
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in lock(&self.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The connections held open; a panic elsewhere (a failed test) leaves the list whole.
fn lock(streams: &Mutex<Vec<TcpStream>>) -> MutexGuard<'_, Vec<TcpStream>> {
    streams.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The port of the server `url` names (`SCHEME://USER@HOST:PORT/DB?...`), which a proxy on this
/// machine forwards to.
pub fn server_port(url: &str) -> u16 {
    let (_, authority, _) = split_url(url);
    authority
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("url has a port")
}

/// `url` with its host and port replaced by 127.0.0.1:`port`: the same database through a
/// proxy listening there.
pub fn via_local_port(url: &str, port: u16) -> String {
    let (scheme_user, _, path) = split_url(url);
    format!("{scheme_user}@127.0.0.1:{port}/{path}")
}

/// `SCHEME://USER@HOST:PORT/DB?...` as (`SCHEME://USER`, `HOST:PORT`, `DB?...`).
fn split_url(url: &str) -> (&str, &str, &str) {
    let (scheme_user, rest) = url.split_once('@').expect("url has a user");
    let (authority, path) = rest.split_once('/').expect("url has a database");
    (scheme_user, authority, path)
}

#[cfg(test)]
mod tests {
    use super::{server_port, via_local_port};

    #[test]
    fn the_url_through_the_proxy_keeps_everything_but_host_and_port() {
        let postgres = "postgres://postgres@localhost:5432/db_1?sslmode=disable";
        assert_eq!(server_port(postgres), 5432);
        assert_eq!(
            via_local_port(postgres, 40000),
            "postgres://postgres@127.0.0.1:40000/db_1?sslmode=disable"
        );
        let mysql = "mysql://root:pw@127.0.0.1:3306/db_2";
        assert_eq!(server_port(mysql), 3306);
        assert_eq!(
            via_local_port(mysql, 40001),
            "mysql://root:pw@127.0.0.1:40001/db_2"
        );
    }
}
