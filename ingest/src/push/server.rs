//! The HTTP server of `--listen`: `POST /v1/lines` takes a batch and answers once its lines are
//! committed; `GET /metrics` and `GET /health` as for `--metrics-bind`. Every error is
//! `{"error": "..."}` JSON.
//!
//! A batch is refused before anything of it is spooled: a bad token (401), a bad
//! `Idempotency-Key` (400), an unknown `Content-Type` (415) or `Content-Encoding` (415), a body
//! too large as sent or once decompressed, or with too many lines (413), a body sent too slowly
//! (408), a JSON body that is not an array (400). Under load: 503 with `Retry-After` when the
//! bodies in memory or the lines waiting for their commit are over their limits.
//!
//! (Named as `api/src/server.rs`, the API's HTTP server: this is the push endpoint's.)

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use logstats_shared::record::LineParser;
use logstats_shared::tokens::{Scope, Tokens};
use logstats_shared::{is_valid_push_key, BatchCounts, Store, MAX_PUSH_KEY_BYTES};

use super::body::{self, BodyError, BodyKind};
use super::{PushIntake, SubmitError, Submitted};
use crate::metrics::IngestMetrics;

/// Seconds a client is told to wait before sending a refused batch again.
const RETRY_AFTER_SECS: u64 = 1;

/// What the handlers share.
pub struct PushState {
    /// The spool and the waiting requests.
    pub intake: Arc<PushIntake>,
    /// Where replayed keys are looked up.
    pub store: Store,
    /// `--tokens`: a bearer token is required when set.
    pub tokens: Option<Arc<Tokens>>,
    /// Parses lines for the token's scope.
    pub parser: Arc<LineParser>,
    /// Counts pushes and serves `GET /metrics`.
    pub metrics: Arc<IngestMetrics>,
    /// Bytes of request bodies in memory now.
    pub in_memory: Arc<AtomicU64>,
    /// `--push-key-from-body`: a batch sent without an `Idempotency-Key` is keyed by the
    /// SHA-256 of its body.
    pub key_from_body: bool,
}

/// The key of a batch sent without one, under `--push-key-from-body`: `sha256:` and the
/// SHA-256 of its body as sent, in hex (71 characters).
pub fn body_key(body: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body);
    let mut key = String::with_capacity(7 + 64);
    key.push_str("sha256:");
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The running server.
pub struct PushServer {
    handle: ServerHandle,
    thread: JoinHandle<std::io::Result<()>>,
}

impl PushServer {
    /// Serves `state` on `listener` from a thread of its own.
    pub fn start(listener: TcpListener, state: Arc<PushState>) -> std::io::Result<PushServer> {
        let (handle_to, handle) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("push".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let data = web::Data::from(state);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .service(
                                web::resource("/v1/lines")
                                    .route(web::post().to(push))
                                    .default_service(web::to(method_not_allowed)),
                            )
                            .route("/metrics", web::get().to(metrics))
                            .route("/health", web::get().to(health))
                            .default_service(web::to(not_found))
                    })
                    // The job's own handler commits what was read on SIGINT and SIGTERM.
                    .disable_signals()
                    .workers(2)
                    .client_request_timeout(Duration::from_secs(10))
                    .shutdown_timeout(5)
                    .listen(listener)?
                    .run();
                    // The receiver waits for this send.
                    let _ = handle_to.send(server.handle());
                    server.await
                })
            })?;
        let handle = handle.recv().map_err(|_| match thread_error(&thread) {
            Some(e) => e,
            None => std::io::Error::other("the push server did not start"),
        })?;
        Ok(PushServer { handle, thread })
    }

    /// Stops taking connections, lets the requests in progress end, and waits for the thread.
    pub fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        match self.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("push server: {e}"),
            Err(_) => log::warn!("push server: its thread panicked"),
        }
    }
}

/// Why the server thread ended before it started serving, if it did.
fn thread_error(thread: &JoinHandle<std::io::Result<()>>) -> Option<std::io::Error> {
    thread
        .is_finished()
        .then(|| std::io::Error::other("the push server's thread ended"))
}

/// Why a push was refused: its status and message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

/// A refusal with `status`, answered as `{"error": message}`.
fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Refusal {
    Refusal {
        status,
        message: message.to_string(),
    }
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.json(serde_json::json!({ "error": message.to_string() }))
}

async fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "not found: push lines with POST /v1/lines",
    )
}

async fn method_not_allowed() -> HttpResponse {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: /v1/lines takes POST",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(state: web::Data<PushState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(logstats_shared::metrics::CONTENT_TYPE)
        .body(state.metrics.render())
}

/// The one value of header `name`, as text; `Err` when it is given twice or is not text.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| format!("the {name} header is not visible ASCII")),
        (Some(_), Some(_)) => Err(format!("the {name} header is given more than once")),
    }
}

/// The scope of the request's bearer token, when tokens are required.
fn scope_of(state: &PushState, headers: &HeaderMap) -> Result<Scope, Refusal> {
    let Some(tokens) = &state.tokens else {
        return Ok(Scope::All);
    };
    let unauthorized = |message: &str| refuse(StatusCode::UNAUTHORIZED, message);
    let value = single_header(headers, header::AUTHORIZATION.as_str())
        .map_err(|_| unauthorized("one Authorization: Bearer TOKEN header is required"))?
        .ok_or_else(|| unauthorized("a token is required: Authorization: Bearer TOKEN"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer TOKEN"))?;
    tokens
        .current()
        .scope_of(token)
        .cloned()
        .ok_or_else(|| unauthorized("the token is not in the tokens file"))
}

/// A reservation of bytes of the memory budget (`--push-memory`), given back when dropped.
struct Reserved {
    used: Arc<AtomicU64>,
    limit: u64,
    bytes: u64,
}

impl Reserved {
    fn new(state: &PushState) -> Self {
        Reserved {
            used: Arc::clone(&state.in_memory),
            limit: state.intake.limits().memory,
            bytes: 0,
        }
    }

    /// Takes `more` bytes; `false` when that would spend more than the budget.
    fn take(&mut self, more: u64) -> bool {
        let before = self.used.fetch_add(more, Ordering::AcqRel);
        self.bytes += more;
        before + more <= self.limit
    }

    /// [`Reserved::take`], or the 503 that says the budget is spent.
    fn take_or_refuse(&mut self, more: u64) -> Result<(), Refusal> {
        match self.take(more) {
            true => Ok(()),
            false => Err(body_error(&BodyError::Memory(self.limit))),
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

fn body_error(e: &BodyError) -> Refusal {
    let status = match e {
        BodyError::TooLarge(_) | BodyError::TooManyLines(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::BadGzip(_) | BodyError::BadJson(_) => StatusCode::BAD_REQUEST,
        BodyError::Memory(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    refuse(status, e)
}

fn counts_response(counts: BatchCounts, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header(("Idempotency-Replayed", "true"));
    }
    response.json(counts)
}

/// `POST /v1/lines`.
async fn push(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<PushState>,
) -> HttpResponse {
    let answer = take_batch(&request, payload, &state).await;
    let metrics = &state.metrics;
    match &answer {
        Ok((_, true)) => metrics.push_replays.add(1),
        Ok((_, false)) => metrics.push_batches.add(1),
        Err(_) => metrics.push_refused.add(1),
    }
    match answer {
        Ok((counts, replayed)) => counts_response(counts, replayed),
        Err(refusal) => error(refusal.status, refusal.message),
    }
}

/// Takes one batch: its counts once committed (and whether they were stored by an earlier
/// request with the same key), or the refusal.
async fn take_batch(
    request: &HttpRequest,
    mut payload: web::Payload,
    state: &PushState,
) -> Result<(BatchCounts, bool), Refusal> {
    let headers = request.headers();
    let scope = scope_of(state, headers)?;
    let bad = |message: String| refuse(StatusCode::BAD_REQUEST, message);
    let key = single_header(headers, "idempotency-key")
        .map_err(bad)?
        .map(|key| {
            is_valid_push_key(key)
                .then(|| key.to_string())
                .ok_or_else(|| {
                    bad(format!(
                        "the Idempotency-Key must be 1 to {MAX_PUSH_KEY_BYTES} visible ASCII \
                     characters"
                    ))
                })
        })
        .transpose()?;
    let kind = single_header(headers, header::CONTENT_TYPE.as_str())
        .map_err(bad)
        .and_then(|content_type| {
            BodyKind::of(content_type).ok_or_else(|| {
                refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the Content-Type must be text/plain, application/x-ndjson or \
                     application/json",
                )
            })
        })?;
    let gzip = match single_header(headers, header::CONTENT_ENCODING.as_str()).map_err(bad)? {
        None => false,
        Some(encoding) if encoding.eq_ignore_ascii_case("identity") => false,
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") => true,
        Some(_) => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the Content-Encoding must be gzip or none",
            ))
        }
    };
    let limits = *state.intake.limits();
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} bytes (--push-max-body)",
                limits.max_body
            ),
        )
    };
    let declared = single_header(headers, header::CONTENT_LENGTH.as_str())
        .map_err(bad)?
        .and_then(|length| length.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body) {
        return Err(too_large());
    }
    let mut reserved = Reserved::new(state);
    let mut sent = Vec::new();
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| bad(format!("reading the body: {e}")))?;
            if (sent.len() + chunk.len()) as u64 > limits.max_body {
                return Err(too_large());
            }
            reserved.take_or_refuse(chunk.len() as u64)?;
            sent.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match actix_web::rt::time::timeout(Duration::from_secs(limits.body_timeout_secs), read).await {
        Ok(outcome) => outcome?,
        Err(_) => {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    limits.body_timeout_secs
                ),
            ))
        }
    }
    // `--push-key-from-body`: a batch without a key is known by its bytes as sent.
    let key = key.or_else(|| state.key_from_body.then(|| body_key(&sent)));
    // A key in flight, or just committed: that batch's answer.
    match key.as_deref().and_then(|k| state.intake.follow(k)) {
        Some(Submitted::Waiting(receiver)) => {
            return wait(receiver).await.map(|counts| (counts, true))
        }
        Some(Submitted::Replayed(counts)) => return Ok((counts, true)),
        None => {}
    }
    if let Some(key) = &key {
        let (store, lookup) = (state.store.clone(), key.clone());
        let stored = web::block(move || store.push_batch(&lookup))
            .await
            .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .map_err(|e| {
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot look the Idempotency-Key up: {e}"),
                )
            })?;
        if let Some(counts) = stored {
            return Ok((counts, true));
        }
    }
    // Decompressing, converting and filtering are CPU work: off the server's threads. Each
    // copy they make is taken from the memory budget as it grows.
    let parser = Arc::clone(&state.parser);
    let (prepared, reserved) = web::block(move || {
        let prepared = prepare(sent, gzip, kind, &limits, &scope, &parser, &mut reserved);
        (prepared, reserved)
    })
    .await
    .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let prepared = prepared.map_err(|e| body_error(&e))?;
    let (lines, line_count, rejected_before, bytes) = prepared;
    state.metrics.push_lines.add(line_count);
    state.metrics.push_bytes.add(bytes);
    state.metrics.push_rejected_scope.add(rejected_before);
    if lines.is_empty() {
        // Nothing to commit (an empty body, or every line outside the token's scope): the
        // same answer whenever it is sent again.
        return Ok((
            BatchCounts {
                accepted: 0,
                rejected: rejected_before,
                late: 0,
            },
            false,
        ));
    }
    let intake = Arc::clone(&state.intake);
    let submitted = web::block(move || intake.submit(&lines, key, rejected_before))
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    drop(reserved);
    let submitted = submitted.map_err(|e| match e {
        SubmitError::Backlog { .. } | SubmitError::Closed => {
            refuse(StatusCode::SERVICE_UNAVAILABLE, e)
        }
        SubmitError::Spool(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    })?;
    match submitted {
        Submitted::Waiting(receiver) => wait(receiver).await.map(|counts| (counts, false)),
        Submitted::Replayed(counts) => Ok((counts, true)),
    }
}

/// The body as lines to spool: (lines, lines counted, lines dropped for the scope, bytes
/// received once decompressed).
fn prepare(
    sent: Vec<u8>,
    gzip: bool,
    kind: BodyKind,
    limits: &super::PushLimits,
    scope: &Scope,
    parser: &LineParser,
    reserved: &mut Reserved,
) -> Result<(Vec<u8>, u64, u64, u64), BodyError> {
    let memory = BodyError::Memory(reserved.limit);
    let raw =
        match gzip {
            true => body::gunzip(&sent, limits.max_batch, &mut |more| reserved.take(more))
                .map_err(|e| match e {
                    BodyError::Memory(_) => memory.clone(),
                    e => e,
                })?,
            false if sent.len() as u64 > limits.max_batch => {
                return Err(BodyError::TooLarge(limits.max_batch))
            }
            false => sent,
        };
    let bytes = raw.len() as u64;
    // A JSON array's lines, and the lines kept for a scope, are copies about this size.
    let copies = u64::from(kind == BodyKind::JsonArray) + u64::from(!scope.is_all());
    if !reserved.take(copies * bytes) {
        return Err(memory);
    }
    let mut lines = match kind {
        BodyKind::Lines => raw,
        BodyKind::JsonArray => body::json_array_to_lines(&raw)?,
    };
    let count = body::terminate_and_count(&mut lines, limits.max_lines)?;
    let dropped = body::keep_scope(&mut lines, scope, parser);
    if lines.iter().all(|&b| b == b'\n' || b == b'\r' || b == b' ') {
        lines.clear();
    }
    Ok((lines, count, dropped, bytes))
}

/// The committed batch's counts, or 503 when the job stopped before committing it.
async fn wait(
    receiver: tokio::sync::oneshot::Receiver<super::BatchOutcome>,
) -> Result<BatchCounts, Refusal> {
    match receiver.await {
        Ok(Ok(counts)) => Ok(counts),
        Ok(Err(message)) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the batch was not committed: {message}; send it again"),
        )),
        Err(_) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the ingest job stopped before committing the batch; send it again",
        )),
    }
}
