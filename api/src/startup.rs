//! Builds the HTTP server; `main` (through [`open`] and [`run_with`]), the API tests' in-process
//! server (through [`open`] and [`run_without_signals`]) and the ingest tests (through [`run`])
//! start the very same app.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::error::QueryPayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{middleware, web, App, HttpMessage, HttpRequest, HttpResponse};
use anyhow::Context;
use logstats_shared::redact::redact;
use logstats_shared::{StorageError, Store};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::answers::Answers;
use crate::auth::{require_token, BearerSecurity, Guard, Security};
use crate::configuration::Settings;
use crate::domain::ValidationError;
use crate::error::{json_error_body, ApiError};
use crate::fleet::FleetGate;
use crate::freshness::Freshness;
use crate::metrics::{ApiMetrics, HeadRequest, RequestMetrics, ACCESS_LOG_TARGET};
use crate::openapi::{ApiDocument, ApiFrame};
use crate::routes;
use crate::rows::RowCache;
use crate::server::{self, Signals};

pub use crate::configuration::MemoryBudget;

/// Starts serving on `listener` with `workers` HTTP workers (default: one per physical core),
/// with the default [`MemoryBudget`], open to every request (no tokens).
///
/// The returned server runs until awaited to completion; it stops gracefully on SIGINT/SIGTERM
/// or through its handle.
pub fn run(listener: TcpListener, store: Store, workers: Option<usize>) -> std::io::Result<Server> {
    run_with(
        listener,
        store,
        workers,
        MemoryBudget::default(),
        Security::default(),
    )
}

/// What the API opens before it serves, in `main`'s order: the store at `--database-url`
/// (connected and migrated; with what to do when the schema is the problem), then a listener on
/// `--bind`. Call it before any runtime starts, so that nothing blocks an executor thread.
///
/// A storage failure stays a [`StorageError`] under the context (`main` takes its exit status
/// from it), except when a hint is added.
pub fn open(settings: &Settings) -> anyhow::Result<(Store, TcpListener)> {
    let store = Store::connect(&settings.database_url, &settings.store_options())
        .map_err(|error| with_schema_hint(error, settings.no_migrate))
        .with_context(|| format!("opening {}", redact(&settings.database_url)))?;
    let listener =
        TcpListener::bind(&settings.bind).with_context(|| format!("binding {}", settings.bind))?;
    Ok((store, listener))
}

/// `error`, with what to do when the schema is the problem: a role that may not change it, or
/// `--no-migrate` on a database that lacks migrations.
fn with_schema_hint(error: StorageError, no_migrate: bool) -> anyhow::Error {
    let hint = match &error {
        StorageError::SchemaNotCurrent { .. } if no_migrate => {
            "--no-migrate is given: let logstats-ingest apply them (it does on start), or \
             start the API once without --no-migrate with a role that may change the schema"
        }
        StorageError::Migration(message) if message.contains("permission denied") => {
            "this role may not change the schema: let logstats-ingest apply the migrations (it \
             does on start) with a role that may, and give this one --no-migrate"
        }
        _ => return error.into(),
    };
    anyhow::anyhow!("{error}; {hint}")
}

/// [`run`], within `budget` (see `RowCache` and `Answers`), protected by `security`'s
/// tokens if it has any (see `crate::auth`).
pub fn run_with(
    listener: TcpListener,
    store: Store,
    workers: Option<usize>,
    budget: MemoryBudget,
    security: Security,
) -> std::io::Result<Server> {
    build(listener, store, workers, budget, security, Signals::Stop)
}

/// [`run_with`] for a server inside another program (the API tests' in-process server): it
/// installs no SIGINT/SIGTERM/SIGQUIT handler, so the program keeps its own behaviour on them
/// (Ctrl-C still ends a test run), and it stops only through its handle
/// ([`Server::handle`]).
pub fn run_without_signals(
    listener: TcpListener,
    store: Store,
    workers: Option<usize>,
    budget: MemoryBudget,
    security: Security,
) -> std::io::Result<Server> {
    build(listener, store, workers, budget, security, Signals::Ignore)
}

/// The server of [`run_with`], handling the process's stop signals or not.
fn build(
    listener: TcpListener,
    store: Store,
    workers: Option<usize>,
    budget: MemoryBudget,
    security: Security,
    signals: Signals,
) -> std::io::Result<Server> {
    let freshness = web::Data::new(Freshness::start(store.clone())?);
    let store = web::Data::new(store);
    let answers = web::Data::new(Answers::new(budget.answer_cache_bytes));
    let rows = web::Data::new(RowCache::new(budget.row_cache_bytes));
    if budget.warm_row_cache && rows.enabled() {
        let (cache, reader) = (Arc::downgrade(&rows.clone().into_inner()), store.clone());
        std::thread::Builder::new()
            .name("row-cache-warm".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match RowCache::warm(cache, &reader) {
                    Ok(copied) => log::info!(
                        "copied the rows of {copied} customers into memory in {:.1} s",
                        started.elapsed().as_secs_f64()
                    ),
                    // Requests copy what they need instead: worth a warning, not a stop.
                    Err(error) => log::warn!("could not copy rows into memory at start: {error}"),
                }
            })?;
    }
    let gate = web::Data::new(FleetGate::default());
    // Registering the routes documents them: the document is complete once they are in. It is
    // built once, for the routes' metrics and 405 answers; each worker registers the same routes.
    let (_, mut document) = App::new()
        .into_utoipa_app()
        .openapi(ApiFrame::openapi())
        .configure(routes::configure)
        .split_for_parts();
    // Formatting the access log costs ~2 % of a hit's time: only when it is written.
    let access_log = log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info)
        .then(crate::telemetry::format);
    let metrics = web::Data::new(ApiMetrics::new(route_names(&document), access_log));
    // With tokens, the routes' guard, and the document says which operations need one.
    let guard = security.tokens.map(|tokens| {
        BearerSecurity {
            protect_ops: security.protect_ops,
        }
        .modify(&mut document);
        web::Data::new(Guard::new(
            tokens,
            security.protect_ops,
            route_names(&document),
        ))
    });
    let document = web::Data::new(ApiDocument::new(&document));
    // A blocking task mostly reads the database: as many blocking threads in all as pooled
    // connections, shared out over the workers. Every thread that allocates takes its own
    // allocator arena, whose freed memory it keeps: fewer threads, less memory outside the
    // budgets.
    let connections = usize::try_from(store.pool_size()).unwrap_or(usize::MAX);
    let worker_count = workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let blocking_threads = connections.div_ceil(worker_count.max(1));
    server::serve(listener, workers, blocking_threads, signals, move || {
        let (app, _) = App::new()
            .into_utoipa_app()
            .configure(routes::configure)
            .split_for_parts();
        let app = match &guard {
            Some(guard) => app.app_data(guard.clone()),
            None => app,
        };
        app
            // Innermost: 401 and 403 in place of the handler, when the API has tokens.
            .wrap(middleware::from_fn(require_token))
            // actix's own error responses (a failed extractor, ...) get JSON bodies too.
            .wrap(middleware::ErrorHandlers::new().default_handler(json_error_body))
            // Counts every request with the status it was finally answered.
            .wrap(RequestMetrics(metrics.clone().into_inner()))
            // Every answer, errors included: browsers never guess a type other than the one
            // given.
            .wrap(middleware::DefaultHeaders::new().add((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            )))
            // Outermost: HEAD is served by the GET route (HTTP/1's codec sends no body for it).
            .wrap(middleware::from_fn(head_as_get))
            .app_data(document.clone())
            .app_data(metrics.clone())
            .app_data(store.clone())
            .app_data(answers.clone())
            .app_data(rows.clone())
            .app_data(freshness.clone())
            .app_data(gate.clone())
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                let message = match error {
                    QueryPayloadError::Deserialize(cause) => cause.to_string(),
                    other => other.to_string(),
                };
                ApiError::Query(message).into()
            }))
            .app_data(
                // The only `web::Path` extractor is the customer id's (`/docs/{asset}` reads its
                // segment raw); actix fails only on undecodable bytes.
                web::PathConfig::default().error_handler(|_, _| {
                    ApiError::Validation(ValidationError::InvalidCustomerId).into()
                }),
            )
            .default_service(web::to(no_route))
    })
}

/// (handler name, path template) of every documented operation: the name is the operation id,
/// which utoipa takes from the handler's function name, as actix does the resource's name.
fn route_names(document: &utoipa::openapi::OpenApi) -> impl Iterator<Item = (&str, &str)> {
    document.paths.paths.iter().flat_map(|(template, item)| {
        [
            &item.get,
            &item.head,
            &item.post,
            &item.put,
            &item.patch,
            &item.delete,
            &item.options,
            &item.trace,
        ]
        .into_iter()
        .flatten()
        .filter_map(move |operation| Some((operation.operation_id.as_deref()?, template.as_str())))
    })
}

/// A HEAD request routed as GET: every GET route answers HEAD with the same status and headers.
/// The HTTP/1 codec noted the request's method when it read it, and sends no body for HEAD.
async fn head_as_get(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if request.method() == Method::HEAD {
        request.head_mut().method = Method::GET;
        // For the access log, which names the method asked and the bytes sent (none).
        request.extensions_mut().insert(HeadRequest);
    }
    next.call(request).await
}

/// JSON 404 for every path the API does not serve, 405 (with `Allow`) for a path it serves with
/// other methods.
async fn no_route(
    request: HttpRequest,
    document: web::Data<ApiDocument>,
) -> Result<HttpResponse, ApiError> {
    let allow = request
        .resource_map()
        .match_pattern(request.path())
        .and_then(|pattern| document.allow(&pattern).map(str::to_string));
    match allow {
        Some(allow) => Err(ApiError::MethodNotAllowed {
            method: request.method().clone(),
            allow,
        }),
        None => Err(ApiError::NoRoute),
    }
}
