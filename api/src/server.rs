//! The HTTP server: the app behind actix-http's HTTP/1 dispatcher on actix-server's workers, as
//! actix-web's `HttpServer` assembles them (same defaults), except that every connection is a
//! [`CheckedStream`], so that requests the parser refuses get JSON answers (see
//! `crate::refusals`). `HttpServer` takes only plain sockets, hence this module.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::h1::Codec;
use actix_http::HttpService;
use actix_server::Server;
use actix_service::{map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::App;

use crate::refusals::{CheckedStream, HEAD_TIMEOUT};

/// How long a connection may take to close once the server is done with it (actix-web's
/// default).
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a graceful stop waits for requests in progress (SIGINT/SIGTERM); then the workers
/// are dropped and the process exits, ending a fleet walk still within its
/// [`crate::fleet::FLEET_DEADLINE`].
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Whether the server handles the process's SIGINT/SIGTERM/SIGQUIT (a graceful stop) or leaves
/// them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signals {
    /// The binary: handlers installed, the signals stop the server (actix's default).
    Stop,
    /// A server inside another program (the API tests' in-process server): no handler, so the
    /// program keeps its own behaviour on them (Ctrl-C still ends a test run); only the
    /// server's handle stops it.
    Ignore,
}

/// Serves the apps `app` builds (one per worker) on `listener` with `workers` workers (default:
/// one per core), each with at most `blocking_threads` threads for blocking work (database
/// reads, long merges): every thread beyond what the database pool can serve would only wait
/// for a connection while holding its stack and allocator arena. Stops gracefully through the
/// returned server's handle, and on SIGINT/SIGTERM when `signals` is [`Signals::Stop`].
pub fn serve<F, T, B>(
    listener: TcpListener,
    workers: Option<usize>,
    blocking_threads: usize,
    signals: Signals,
    app: F,
) -> std::io::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let local_addr = listener.local_addr()?;
    let mut builder = Server::build()
        .worker_max_blocking_threads(blocking_threads.max(1))
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    if let Some(workers) = workers {
        builder = builder.workers(workers);
    }
    if signals == Signals::Ignore {
        builder = builder.disable_signals();
    }
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder.listen("logstats-api", listener, move || {
        let shutdown = shutdown.clone();
        let http = HttpService::build()
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            // The checked stream bounds every head to HEAD_TIMEOUT and answers in JSON; the
            // dispatcher's own bound (first head only, empty 408) stays as a backstop.
            .client_request_timeout(HEAD_TIMEOUT + Duration::from_secs(2))
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            .local_addr(local_addr)
            // The app's configuration serves only URL generation, which the API does not use.
            .h1(map_config(
                app()
                    .into_factory()
                    .map_err(|error: actix_web::Error| error.error_response()),
                |_| AppConfig::default(),
            ));
        // Decodes like the dispatcher's codec: the decoder does not depend on the settings.
        let settings = actix_http::ServiceConfig::default();
        actix_web::dev::fn_service(move |io: TcpStream| {
            let peer = io.peer_addr().ok();
            let stream = CheckedStream::new(io, peer, Codec::new(settings.clone()));
            std::future::ready(Ok((stream, peer)))
        })
        .and_then(http)
    })?;
    Ok(builder.run())
}
