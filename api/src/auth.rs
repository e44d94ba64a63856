//! Who may read what, with `--tokens` (the tokens themselves are `crate::tokens`').
//!
//! Every route has an `Access`, decided by its path template in `access_of`: the static
//! pages and the document are open; the operations probes are open unless `--protect-ops`, and
//! then need any valid token; a customer's stats need a token covering that customer; anything
//! else (the fleet views, and any route added later and not listed) needs a token for every
//! customer (`*`).
//!
//! `require_token` is a middleware around the app, inside the request metrics (so 401 and
//! 403 are counted under their route). It runs before actix routes the request, so it finds the
//! route itself, as the router does: the resource whose pattern matches the request's path as
//! the router sees it (percent-decoded except `%`, `/` and `+`), and the customer id from that
//! resource's match. Without `--tokens` no `Guard` is installed and every request passes.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Path, ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref};

use crate::error::{ApiError, Unauthorized};
use crate::tokens::Tokens;

/// The customer route's template; its one parameter is [`CUSTOMER_PARAMETER`].
pub(crate) const CUSTOMER_ROUTE: &str = "/customers/{customer_id}/stats";
/// The path parameter naming the customer.
pub(crate) const CUSTOMER_PARAMETER: &str = "customer_id";
/// The security scheme's name in the OpenAPI document.
pub(crate) const SCHEME: &str = "bearer";

/// What a route asks of a request's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Nothing: static files and the document.
    Open,
    /// `/health`, `/ready`, `/metrics`: nothing, or any valid token with `--protect-ops`.
    Operations,
    /// A token covering the customer in the path.
    Customer,
    /// A token covering every customer (`*`).
    Fleet,
}

/// The access of the route with OpenAPI path template `template`. A route not listed here is
/// a fleet view: adding a route never opens it by mistake.
pub(crate) fn access_of(template: &str) -> Access {
    match template {
        "/" | "/assets/dashboard/{file}" | "/docs" | "/docs/{asset}" | "/openapi.json" => {
            Access::Open
        }
        "/health" | "/ready" | "/metrics" => Access::Operations,
        CUSTOMER_ROUTE => Access::Customer,
        _ => Access::Fleet,
    }
}

/// How the API is protected: its tokens (none: open to anyone) and whether the operations
/// probes need one.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The tokens in force (`--tokens`); `None`: every endpoint is open.
    pub tokens: Option<Arc<Tokens>>,
    /// `--protect-ops`: `/health`, `/ready` and `/metrics` need a token too.
    pub protect_ops: bool,
}

/// The check [`require_token`] makes, with the app's routes; in the app's data when the API
/// has tokens.
#[derive(Debug)]
pub(crate) struct Guard {
    tokens: Arc<Tokens>,
    protect_ops: bool,
    /// (actix resource name, its access), for every route of the app.
    routes: Box<[(Box<str>, Access)]>,
    /// The customer route's pattern, to read the customer id from the path.
    customer: ResourceDef,
}

impl Guard {
    /// A guard for the routes `routes`, each given as (actix resource name, path template), as
    /// `crate::startup` reads them from the OpenAPI document.
    pub(crate) fn new<'a>(
        tokens: Arc<Tokens>,
        protect_ops: bool,
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Guard {
        Guard {
            tokens,
            protect_ops,
            routes: routes
                .into_iter()
                .map(|(name, template)| (Box::from(name), access_of(template)))
                .collect(),
            customer: ResourceDef::new(CUSTOMER_ROUTE),
        }
    }

    /// Whether `request` may go on to its handler; the refusal if not.
    pub(crate) fn check(&self, request: &ServiceRequest) -> Result<(), ApiError> {
        // The path the router matches: percent-decoded as it decodes it.
        let path = request.match_info().get_ref().path();
        let access = match request.resource_map().match_name(path) {
            // No route: the 404 or 405 tells nothing about any customer.
            None => return Ok(()),
            Some(name) => self
                .routes
                .iter()
                .find(|(route, _)| **route == *name)
                .map_or(Access::Fleet, |&(_, access)| access),
        };
        match access {
            Access::Open => return Ok(()),
            Access::Operations if !self.protect_ops => return Ok(()),
            _ => {}
        }
        let token = bearer_token(request.headers())?;
        let tokens = self.tokens.current();
        let scope = tokens
            .scope_of(token)
            .ok_or(ApiError::Unauthorized(Unauthorized::UnknownToken))?;
        match access {
            Access::Open | Access::Operations => Ok(()),
            Access::Fleet if scope.is_all() => Ok(()),
            Access::Fleet => Err(ApiError::Forbidden(
                "this token covers only some customers; the fleet views (GET /stats, GET \
                 /customers) need a token for every customer (`*`)"
                    .to_string(),
            )),
            Access::Customer => {
                let mut matched = Path::new(path);
                let customer = if self.customer.capture_match_info(&mut matched) {
                    matched.get(CUSTOMER_PARAMETER)
                } else {
                    None
                };
                match customer {
                    Some(customer) if scope.covers(customer) => Ok(()),
                    Some(customer) => Err(ApiError::Forbidden(format!(
                        "this token does not cover customer \"{}\"",
                        shortened(customer)
                    ))),
                    None => Err(ApiError::Forbidden(
                        "this token does not cover this customer".to_string(),
                    )),
                }
            }
        }
    }
}

/// `customer` as echoed in a 403: at most 64 characters (the longest customer id).
fn shortened(customer: &str) -> &str {
    match customer.char_indices().nth(64) {
        Some((end, _)) => &customer[..end],
        None => customer,
    }
}

/// The token of the request's one `Authorization: Bearer TOKEN` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::Unauthorized(
            if headers.contains_key(header::AUTHORIZATION) {
                Unauthorized::Malformed
            } else {
                Unauthorized::Missing
            },
        ));
    };
    let malformed = || ApiError::Unauthorized(Unauthorized::Malformed);
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(malformed());
    }
    Ok(token)
}

/// The middleware (`actix_web::middleware::from_fn(require_token)`): answers 401 or 403 in
/// place of the handler when the app's [`Guard`] refuses the request; passes everything when
/// the app has none.
pub(crate) async fn require_token<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let refusal = request
        .app_data::<web::Data<Guard>>()
        .and_then(|guard| guard.check(&request).err());
    match refusal {
        Some(error) => Ok(request.error_response(error).map_into_right_body()),
        None => Ok(next.call(request).await?.map_into_left_body()),
    }
}

/// Documents the bearer scheme (`components.securitySchemes.bearer`) and, on every protected
/// operation, its `security` and its 401 and 403 answers; for an API started with `--tokens`
/// (without, nothing is protected and the document says so by saying nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerSecurity {
    /// `--protect-ops`: the operations probes are protected too.
    pub(crate) protect_ops: bool,
}

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A token of the API's tokens file, as `Authorization: Bearer \
                             TOKEN`. Each token covers every customer and the fleet views \
                             (`*`), or a list of customers.",
                        ))
                        .build(),
                ),
            );
        for (template, item) in openapi.paths.paths.iter_mut() {
            let access = access_of(template);
            let protected = match access {
                Access::Open => false,
                Access::Operations => self.protect_ops,
                Access::Customer | Access::Fleet => true,
            };
            if !protected {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.head,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                operation.security =
                    Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "401".to_string(),
                    error_response(
                        "No token, an `Authorization` header that is not `Bearer TOKEN`, or a \
                         token the API does not hold",
                    )
                    .header("WWW-Authenticate", Header::default())
                    .into(),
                );
                let forbidden = match access {
                    Access::Customer => "The token does not cover this customer",
                    Access::Fleet => "The token covers only some customers, not every one (`*`)",
                    Access::Open | Access::Operations => continue,
                };
                responses.insert("403".to_string(), error_response(forbidden).into());
            }
        }
    }
}

/// A documented error answer: `description`, with an `ErrorBody` JSON body.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn routes_are_open_only_when_listed() {
        assert_eq!(access_of("/"), Access::Open);
        assert_eq!(access_of("/openapi.json"), Access::Open);
        assert_eq!(access_of("/metrics"), Access::Operations);
        assert_eq!(access_of(CUSTOMER_ROUTE), Access::Customer);
        assert_eq!(access_of("/stats"), Access::Fleet);
        assert_eq!(access_of("/customers"), Access::Fleet);
        assert_eq!(access_of("/a/new/route"), Access::Fleet);
    }

    #[test]
    fn bearer_tokens_are_read_from_one_header() {
        let headers = |values: &[&'static str]| {
            let mut map = HeaderMap::new();
            for value in values {
                map.append(header::AUTHORIZATION, HeaderValue::from_static(value));
            }
            map
        };
        let token = |values: &[&'static str]| match bearer_token(&headers(values)) {
            Ok(token) => Ok(token.to_string()),
            Err(ApiError::Unauthorized(why)) => Err(why),
            Err(other) => panic!("{other}"),
        };
        assert_eq!(token(&["Bearer abc"]), Ok("abc".to_string()));
        assert_eq!(token(&["bearer  abc "]), Ok("abc".to_string()));
        assert_eq!(token(&[]), Err(Unauthorized::Missing));
        for malformed in [
            &["Basic abc"][..],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer a", "Bearer b"],
        ] {
            assert_eq!(
                token(malformed),
                Err(Unauthorized::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn long_customer_ids_are_shortened_in_refusals() {
        let long = "é".repeat(100);
        assert_eq!(shortened(&long).chars().count(), 64);
        assert_eq!(shortened("cust_1"), "cust_1");
    }
}
