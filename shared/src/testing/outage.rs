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
        let (url, target) = through_port(&db.url, port);
        let proxy = OutageProxy {
            url,
            port,
            target,
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
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the proxy");
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

/// `url` with its host and port replaced by 127.0.0.1:`port`, and the port it named.
fn through_port(url: &str, port: u16) -> (String, u16) {
    let (scheme, rest) = url.split_once("://").expect("url has a scheme");
    let (user, rest) = rest.split_once('@').expect("url has a user");
    let (authority, path) = rest.split_once('/').expect("url has a database");
    let target = authority
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("url has a port");
    (format!("{scheme}://{user}@127.0.0.1:{port}/{path}"), target)
}

#[cfg(test)]
mod tests {
    use super::through_port;

    #[test]
    fn the_url_through_the_proxy_keeps_everything_but_host_and_port() {
        assert_eq!(
            through_port(
                "postgres://postgres@localhost:5432/db_1?sslmode=disable",
                40000
            ),
            (
                "postgres://postgres@127.0.0.1:40000/db_1?sslmode=disable".to_string(),
                5432
            )
        );
        assert_eq!(
            through_port("mysql://root:pw@127.0.0.1:3306/db_2", 40001),
            ("mysql://root:pw@127.0.0.1:40001/db_2".to_string(), 3306)
        );
    }
}
