//! Per-request metrics and the access log, in one middleware around the whole app.
//!
//! Namesake: this module counts the requests; `crate::routes::metrics` is the `GET /metrics`
//! endpoint that serves these counts (with the caches' and the pool's: `crate::service`).
//!
//! Every route the app registers gets its counters and latency histogram when the server
//! starts ([`ApiMetrics::new`], from the OpenAPI document's paths); requests that match no
//! route share one more set, labelled [`UNMATCHED`]. Recording a request is a few relaxed
//! atomic additions: no lock, no allocation, and no label made from the request, so memory is
//! the same whatever the requests. `GET /metrics` (`crate::routes::metrics`) writes them out.
//!
//! The access log is one INFO line per request under [`ACCESS_LOG_TARGET`]:
//! `GET /customers/cust_1/stats 200 0.412ms` (method, path without its query string, status,
//! time until the response was ready). It is formatted only when that target is enabled at
//! INFO when the server starts. With `--log-format json` it is a record with those as fields
//! (`method`, `path`, `status`, `duration_ms`), the body's `bytes` and the `request_id`.
//!
//! Every request has an id: the client's `X-Request-Id` when it is 1 to 128 of `A-Z a-z 0-9 .
//! _ : -`, else one made here (`<process start, hex>-<count>`); it is answered as
//! `X-Request-Id`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{Error, HttpMessage};
use log::Level;
use logstats_shared::logging::{self, Field, LogFormat};
use logstats_shared::metrics::{Counter, Exposition, Histogram, Kind, REQUEST_SECONDS_BUCKETS};
use pin_project_lite::pin_project;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Marks a HEAD request that is routed as GET (`crate::startup`): the access log names HEAD,
/// and no body is sent.
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// The log target of the access log.
pub const ACCESS_LOG_TARGET: &str = "logstats_api::access";

/// The `route` label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Status codes counted one by one (100-999, all that HTTP allows).
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 900;

/// The counters of one route.
#[derive(Debug)]
struct RouteMetrics {
    /// The resource name actix matched (the handler's name).
    name: Box<str>,
    /// The `route` label: the path template, or [`UNMATCHED`].
    template: Box<str>,
    /// Responses by status code, `FIRST_STATUS` first.
    responses: Box<[Counter]>,
    /// Time until the response was ready.
    latency: Histogram,
}

/// Requests given an id by the API so far.
static REQUEST_COUNT: AtomicU64 = AtomicU64::new(0);

/// `X-Request-Id` of `request` when it is one we can log and answer as it is.
fn client_request_id(request: &ServiceRequest) -> Option<&str> {
    let id = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let usable = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    usable.then_some(id)
}

/// A new id: the process's start (seconds since the epoch, hex) and a count.
fn new_request_id() -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    });
    let count = REQUEST_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{start:x}-{count}")
}

impl RouteMetrics {
    fn new(name: &str, template: &str) -> Self {
        Self {
            name: name.into(),
            template: template.into(),
            responses: (0..STATUSES).map(|_| Counter::new()).collect(),
            latency: Histogram::new(REQUEST_SECONDS_BUCKETS),
        }
    }
}

/// Every route's request counts and latencies; shared by all workers.
#[derive(Debug)]
pub struct ApiMetrics {
    /// One per registered route.
    routes: Box<[RouteMetrics]>,
    /// The requests that matched no route.
    unmatched: RouteMetrics,
    /// The access log's format, if it is written.
    access_log: Option<LogFormat>,
}

impl ApiMetrics {
    /// Metrics for `routes`, each given as (actix resource name, path template): the handler's
    /// function name is both its resource name and its OpenAPI operation id. `access_log`: write
    /// an access-log line per request, in this format.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
        access_log: Option<LogFormat>,
    ) -> Self {
        Self {
            routes: routes
                .into_iter()
                .map(|(name, template)| RouteMetrics::new(name, template))
                .collect(),
            unmatched: RouteMetrics::new("", UNMATCHED),
            access_log,
        }
    }

    /// The route named `name` (the unmatched requests' when none is).
    fn route(&self, name: Option<&str>) -> &RouteMetrics {
        name.and_then(|name| self.routes.iter().find(|route| &*route.name == name))
            .unwrap_or(&self.unmatched)
    }

    /// Counts a response of `status` to a request of route `name`, after `elapsed`.
    fn record(&self, name: Option<&str>, status: StatusCode, elapsed: Duration) {
        let route = self.route(name);
        let index = usize::from(status.as_u16().saturating_sub(FIRST_STATUS));
        if let Some(counter) = route.responses.get(index) {
            counter.inc();
        }
        route.latency.observe(elapsed);
    }

    /// Every route's metrics, the unmatched requests' last.
    fn all(&self) -> impl Iterator<Item = &RouteMetrics> {
        self.routes.iter().chain(std::iter::once(&self.unmatched))
    }

    /// Writes the request counts and latency histograms of the routes that have answered.
    pub fn write(&self, out: &mut Exposition) {
        out.family(
            "logstats_api_requests_total",
            Kind::Counter,
            "HTTP requests answered, by route template and status code.",
        );
        for route in self.all() {
            for (offset, counter) in route.responses.iter().enumerate() {
                let count = counter.get();
                if count > 0 {
                    let status = u16::try_from(offset).map_or(0, |o| o + FIRST_STATUS);
                    let mut code = [0u8; 3];
                    out.sample(
                        "logstats_api_requests_total",
                        &[
                            ("route", &route.template),
                            ("status", status_text(status, &mut code)),
                        ],
                        count,
                    );
                }
            }
        }
        out.family(
            "logstats_api_request_duration_seconds",
            Kind::Histogram,
            "Time from a request's arrival in the app to its response being ready (the body is \
             not included), by route template.",
        );
        for route in self.all().filter(|r| r.latency.count() > 0) {
            out.histogram(
                "logstats_api_request_duration_seconds",
                &[("route", &route.template)],
                &route.latency,
            );
        }
    }
}

/// `status` (100-999) as three digits in `buffer`.
fn status_text(status: u16, buffer: &mut [u8; 3]) -> &str {
    buffer[0] = b'0' + (status / 100 % 10) as u8;
    buffer[1] = b'0' + (status / 10 % 10) as u8;
    buffer[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buffer).unwrap_or("000")
}

/// The middleware: wrap the app in it (outermost, so it sees the final status).
pub struct RequestMetrics(pub Arc<ApiMetrics>);

impl<S, B> Transform<S, ServiceRequest> for RequestMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestMetricsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestMetricsService {
            service,
            metrics: Arc::clone(&self.0),
        }))
    }
}

/// [`RequestMetrics`] around a worker's app.
pub struct RequestMetricsService<S> {
    service: S,
    metrics: Arc<ApiMetrics>,
}

impl<S, B> Service<ServiceRequest> for RequestMetricsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = RequestMetricsFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let request_id = client_request_id(&request).map_or_else(new_request_id, str::to_string);
        RequestMetricsFuture {
            started: Instant::now(),
            metrics: Arc::clone(&self.metrics),
            request_id,
            inner: self.service.call(request),
        }
    }
}

pin_project! {
    /// The app's answer to one request, counted when it is ready.
    pub struct RequestMetricsFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        metrics: Arc<ApiMetrics>,
        request_id: String,
    }
}

/// One access-log record: what is known of a request and its answer.
struct Access<'a> {
    method: Option<&'a str>,
    path: Option<&'a str>,
    status: StatusCode,
    elapsed: Duration,
    /// Bytes of the body sent (`None`: a stream, not known when the answer starts).
    bytes: Option<u64>,
    request_id: &'a str,
}

impl Access<'_> {
    /// Writes the record in `format`: the text line, or a JSON record with the fields.
    fn log(&self, format: LogFormat) {
        let ms = self.elapsed.as_secs_f64() * 1e3;
        let message = format_args!(
            "{} {} {} {ms:.3}ms",
            self.method.unwrap_or("-"),
            self.path.unwrap_or("-"),
            self.status.as_u16(),
        );
        match format {
            LogFormat::Text => log::info!(target: ACCESS_LOG_TARGET, "{message}"),
            LogFormat::Json => {
                fn text(value: Option<&str>) -> Field<'_> {
                    value.map_or(Field::Null, Field::Str)
                }
                logging::write_line(&logging::json_line_with(
                    Level::Info,
                    ACCESS_LOG_TARGET,
                    message,
                    &[
                        ("method", text(self.method)),
                        ("path", text(self.path)),
                        ("status", Field::Int(u64::from(self.status.as_u16()))),
                        ("duration_ms", Field::Millis(ms)),
                        ("bytes", self.bytes.map_or(Field::Null, Field::Int)),
                        ("request_id", Field::Str(self.request_id)),
                    ],
                ));
            }
        }
    }
}

impl<F, B> Future for RequestMetricsFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = match this.inner.poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        let elapsed = this.started.elapsed();
        match &mut result {
            Ok(response) => {
                let request = response.request();
                // After routing: the matched resource's name, read without allocating.
                this.metrics
                    .record(request.match_name(), response.status(), elapsed);
                if let Some(format) = this.metrics.access_log {
                    // A HEAD request is routed as GET; both formats name the method sent.
                    let head = request.extensions().get::<HeadRequest>().is_some();
                    let method = if head {
                        "HEAD"
                    } else {
                        request.method().as_str()
                    };
                    let bytes = match response.response().body().size() {
                        _ if head => Some(0),
                        BodySize::None => Some(0),
                        BodySize::Sized(n) => Some(n),
                        BodySize::Stream => None,
                    };
                    Access {
                        method: Some(method),
                        path: Some(request.path()),
                        status: response.status(),
                        elapsed,
                        bytes,
                        request_id: this.request_id,
                    }
                    .log(format);
                }
                // Ids are ASCII letters, digits and `._:-`: always a valid header value.
                if let Ok(id) = HeaderValue::from_str(this.request_id) {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
            }
            // The app turns handlers' errors into responses; this is a middleware's failure,
            // before the request could be routed.
            Err(error) => {
                let status = error.as_response_error().status_code();
                this.metrics.record(None, status, elapsed);
                if let Some(format) = this.metrics.access_log {
                    Access {
                        method: None,
                        path: None,
                        status,
                        elapsed,
                        bytes: None,
                        request_id: this.request_id,
                    }
                    .log(format);
                }
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_in_fixed_memory() {
        let metrics = ApiMetrics::new([("health", "/health"), ("stats", "/s/{id}")], None);
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            metrics.record(Some("health"), StatusCode::OK, ms);
        }
        metrics.record(Some("stats"), StatusCode::NOT_FOUND, ms);
        for i in 0..1000 {
            // Names never registered all land in one set of counters.
            metrics.record(Some(&format!("other{i}")), StatusCode::NOT_FOUND, ms);
        }
        metrics.record(None, StatusCode::METHOD_NOT_ALLOWED, ms);
        let mut out = Exposition::new();
        metrics.write(&mut out);
        let text = out.finish();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("logstats_api_requests_total"))
            .collect();
        assert_eq!(
            samples,
            [
                "logstats_api_requests_total{route=\"/health\",status=\"200\"} 3",
                "logstats_api_requests_total{route=\"/s/{id}\",status=\"404\"} 1",
                "logstats_api_requests_total{route=\"unmatched\",status=\"404\"} 1000",
                "logstats_api_requests_total{route=\"unmatched\",status=\"405\"} 1",
            ]
        );
        assert!(text
            .contains("logstats_api_request_duration_seconds_count{route=\"unmatched\"} 1001\n"));
        assert_eq!(status_text(503, &mut [0; 3]), "503");
    }
}
