//! The API's one error type and its one mapping to HTTP statuses and `{"error": "..."}` bodies.

use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use logstats_shared::StorageError;

use crate::domain::{CustomerId, ValidationError};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A path or query value is malformed (400).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// actix could not decode the query string (400).
    #[error("invalid query string: {0}")]
    Query(String),
    /// The customer has no stored day at all (404).
    #[error("no data for customer \"{0}\"")]
    UnknownCustomer(CustomerId),
    /// No route matches the request (404).
    #[error("not found")]
    NoRoute,
    /// The route asks for a token and the request has none, or one the tokens file does not
    /// hold (401, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(Unauthorized),
    /// The request's token is valid but does not cover what the route reads (403).
    #[error("{0}")]
    Forbidden(String),
    /// The path exists but not with this method (405); `allow` lists the methods it has.
    #[error("method {method} not allowed here (allowed: {allow})")]
    MethodNotAllowed {
        /// The request's method.
        method: actix_web::http::Method,
        /// The path's methods, as the `Allow` header gives them.
        allow: String,
    },
    /// The database could not be reached in time (503); the cause is logged, not shown.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] StorageError),
    /// The version round this request waited for could not read the database (503); the
    /// cause is logged, not shown.
    #[error("database unavailable")]
    VersionsUnavailable(std::sync::Arc<str>),
    /// The database answers but is not ready to serve this version (503), e.g. its schema is
    /// older.
    #[error("{0}")]
    NotReady(String),
    /// Too much work is in progress for this request to start or finish now (503, with
    /// `Retry-After`); the message says which limit.
    #[error("{0}")]
    Busy(String),
    /// Anything else that went wrong on our side (500); the cause is logged, not shown.
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a request's credentials were refused (see `crate::auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    /// No `Authorization` header.
    #[error("this endpoint needs a token: send `Authorization: Bearer TOKEN`")]
    Missing,
    /// An `Authorization` header that is not one `Bearer TOKEN`.
    #[error("the Authorization header is not `Bearer TOKEN`")]
    Malformed,
    /// A bearer token the tokens file does not hold.
    #[error("unknown token")]
    UnknownToken,
}

impl Unauthorized {
    /// The `WWW-Authenticate` challenge (RFC 6750): without an error code when no credentials
    /// came.
    fn challenge(self) -> &'static str {
        match self {
            Unauthorized::Missing => "Bearer realm=\"logstats\"",
            Unauthorized::Malformed | Unauthorized::UnknownToken => {
                "Bearer realm=\"logstats\", error=\"invalid_token\""
            }
        }
    }
}

/// The answer to a query cancelled at `--statement-timeout`.
fn statement_timeout() -> ApiError {
    ApiError::Busy(
        "the database did not finish this request's query within the statement timeout \
         (--statement-timeout); ask for a shorter range, or retry later"
            .to_string(),
    )
}

impl ApiError {
    /// A version round that could not read the customers' versions: `cause` is its storage
    /// error's text (shared by the requests that waited for it). A statement cancelled at the
    /// statement timeout says so.
    pub fn versions_unavailable(cause: std::sync::Arc<str>) -> ApiError {
        if cause.contains(STATEMENT_TIMEOUT_TEXT) {
            log::warn!("reading customer versions ran past --statement-timeout: {cause}");
            return statement_timeout();
        }
        ApiError::VersionsUnavailable(cause)
    }
}

/// What [`StorageError::StatementTimeout`]'s message says.
const STATEMENT_TIMEOUT_TEXT: &str = "ran past the statement timeout";

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::StatementTimeout(cause) => {
                log::warn!("a query ran past --statement-timeout: {cause}");
                statement_timeout()
            }
            error if error.is_transient() => ApiError::DatabaseUnavailable(error),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<crate::rows::RowsError> for ApiError {
    fn from(error: crate::rows::RowsError) -> Self {
        match error {
            crate::rows::RowsError::Storage(storage) => storage.into(),
            json => ApiError::Internal(Box::new(json)),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(Box::new(error))
    }
}

/// The JSON body of every error response.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    #[schema(example = "missing query parameter `from` (expected YYYY-MM-DD)")]
    pub error: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::Query(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnknownCustomer(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::DatabaseUnavailable(_)
            | ApiError::VersionsUnavailable(_)
            | ApiError::NotReady(_)
            | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let ApiError::VersionsUnavailable(cause) = self {
            log::error!("{status}: {self}: reading customer versions: {cause}");
        } else if status.is_server_error() {
            log::error!("{status}: {}", cause_chain(self));
        }
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            ApiError::Unauthorized(why) => {
                response.insert_header((header::WWW_AUTHENTICATE, why.challenge()));
            }
            ApiError::Busy(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
        })
    }
}

/// For [`actix_web::middleware::ErrorHandlers`]: gives an error response that is not JSON yet
/// (actix's own, e.g. a 405 of a resource or a failed extractor) a `{"error": "..."}` body
/// saying its status, keeping its other headers (`Allow`, ...).
pub fn json_error_body<B>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let (request, original) = response.into_parts();
    let status = original.status();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    if status.is_server_error() {
        // Ours answer in JSON: this one came from actix itself, which logged its cause at DEBUG.
        log::error!("{status} without a JSON body from {}", request.path());
    }
    let mut json = HttpResponse::build(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.append_header((name.clone(), value.clone()));
        }
    }
    let json = json.json(ErrorBody { error: reason });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, json).map_into_right_body(),
    ))
}

/// `error: cause: cause ...`, for the log.
fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(error: &ApiError) -> String {
        let bytes = error
            .error_response()
            .into_body()
            .try_into_bytes()
            .expect("a JSON body in one piece");
        String::from_utf8(bytes.to_vec()).expect("UTF-8 body")
    }

    #[test]
    fn statuses_and_bodies() {
        let cases = [
            (
                ApiError::from(ValidationError::MissingFrom),
                400,
                r#"{"error":"missing query parameter `from` (expected YYYY-MM-DD)"}"#,
            ),
            (
                ApiError::Query("duplicate field `from`".into()),
                400,
                r#"{"error":"invalid query string: duplicate field `from`"}"#,
            ),
            (
                ApiError::UnknownCustomer(CustomerId::parse("cust_9".into()).expect("valid id")),
                404,
                r#"{"error":"no data for customer \"cust_9\""}"#,
            ),
            (ApiError::NoRoute, 404, r#"{"error":"not found"}"#),
            (
                ApiError::Unauthorized(Unauthorized::UnknownToken),
                401,
                r#"{"error":"unknown token"}"#,
            ),
            (
                ApiError::Forbidden("this token does not cover customer \"c\"".into()),
                403,
                r#"{"error":"this token does not cover customer \"c\""}"#,
            ),
            (
                ApiError::MethodNotAllowed {
                    method: actix_web::http::Method::POST,
                    allow: "GET, HEAD".into(),
                },
                405,
                r#"{"error":"method POST not allowed here (allowed: GET, HEAD)"}"#,
            ),
        ];
        for (error, status, body) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error}");
            assert_eq!(body_of(&error), body);
        }
    }

    #[test]
    fn refused_credentials_carry_a_bearer_challenge() {
        for (why, challenge) in [
            (Unauthorized::Missing, "Bearer realm=\"logstats\""),
            (
                Unauthorized::UnknownToken,
                "Bearer realm=\"logstats\", error=\"invalid_token\"",
            ),
        ] {
            let response = ApiError::Unauthorized(why).error_response();
            assert_eq!(
                response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.as_bytes()),
                Some(challenge.as_bytes())
            );
        }
        let forbidden = ApiError::Forbidden("no".into()).error_response();
        assert!(forbidden.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn actix_error_responses_get_json_bodies() {
        use actix_web::{middleware::ErrorHandlers, test, web, App};
        actix_web::rt::System::new().block_on(async {
            let app = test::init_service(
                App::new()
                    .wrap(ErrorHandlers::new().default_handler(json_error_body))
                    .route(
                        "/text",
                        web::get().to(|| async {
                            HttpResponse::BadGateway()
                                .insert_header(("x-kept", "yes"))
                                .body("upstream said no")
                        }),
                    )
                    .service(web::resource("/ours").route(
                        web::get().to(|| async { Err::<HttpResponse, _>(ApiError::NoRoute) }),
                    )),
            )
            .await;
            for (method, path, status, body) in [
                // actix's own answers, empty, made JSON: a resource without the method, no
                // resource at all.
                ("POST", "/ours", 405, r#"{"error":"method not allowed"}"#),
                ("GET", "/missing", 404, r#"{"error":"not found"}"#),
                ("GET", "/text", 502, r#"{"error":"bad gateway"}"#),
                // Already JSON: untouched.
                ("GET", "/ours", 404, r#"{"error":"not found"}"#),
            ] {
                let request = test::TestRequest::default()
                    .method(method.parse().expect("a method"))
                    .uri(path)
                    .to_request();
                let response = test::call_service(&app, request).await;
                assert_eq!(response.status().as_u16(), status, "{method} {path}");
                assert_eq!(
                    response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                    Some(b"application/json".as_slice())
                );
                if path == "/text" {
                    assert_eq!(
                        response.headers().get("x-kept").map(|v| v.as_bytes()),
                        Some(b"yes".as_slice())
                    );
                }
                assert_eq!(
                    test::read_body(response).await,
                    body.as_bytes(),
                    "{method} {path}"
                );
            }
        });
    }

    #[test]
    fn database_internals_are_logged_not_shown() {
        let corrupt = StorageError::CorruptRow {
            customer_id: "cust_1".into(),
            day: chrono::NaiveDate::from_ymd_opt(2024, 10, 10).expect("valid date"),
            reason: "digest blob has 3 bytes, expected 37".into(),
        };
        let error = ApiError::from(corrupt);
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body_of(&error), r#"{"error":"internal server error"}"#);
        assert_eq!(
            cause_chain(&error),
            "internal server error: stored row for cust_1 on 2024-10-10 is corrupt: \
             digest blob has 3 bytes, expected 37"
        );
    }
}
