//! Files embedded in the binary (the dashboard's, Swagger UI's), served with a strong ETag
//! (a hash of the bytes, computed once) and `Cache-Control: no-cache`: browsers revalidate (a 304 without a
//! body) and never run a stale script after an upgrade.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

/// One embedded file.
pub(crate) struct Asset {
    /// Its name under its route's prefix (empty for a page served at the prefix itself).
    pub(crate) name: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its bytes.
    pub(crate) body: &'static [u8],
    /// `"<FNV-1a 64 of body in hex>"`, quotes included; computed when first served.
    etag: OnceLock<[u8; 18]>,
}

/// An [`Asset`] of `body`.
pub(crate) const fn asset(
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
) -> Asset {
    Asset {
        name,
        content_type,
        body,
        etag: OnceLock::new(),
    }
}

impl Asset {
    /// The file, or a 304 when the request's `If-None-Match` names its ETag; with `headers`
    /// added (a page's security policy).
    pub(crate) fn serve(
        &self,
        request: &HttpRequest,
        headers: &[(HeaderName, &'static str)],
    ) -> HttpResponse {
        let etag = self.etag.get_or_init(|| etag_of(self.body));
        let fresh = request
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag
            });
        let mut response = if fresh {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        // ASCII hex digits in quotes: always a valid header value.
        if let Ok(etag) = HeaderValue::from_bytes(etag) {
            response.insert_header((header::ETAG, etag));
        }
        response.insert_header((header::CACHE_CONTROL, "no-cache"));
        for (name, value) in headers {
            response.insert_header((name.clone(), *value));
        }
        if fresh {
            return response.finish();
        }
        response
            .insert_header((header::CONTENT_TYPE, self.content_type))
            .body(self.body)
    }
}

/// A strong ETag of `body`: its 64-bit FNV-1a hash in hex, in quotes.
fn etag_of(body: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < body.len() {
        hash ^= body[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    let mut tag = [b'"'; 18];
    let mut digit = 0;
    while digit < 16 {
        let nibble = ((hash >> (60 - 4 * digit)) & 0xf) as u8;
        tag[1 + digit] = if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        };
        digit += 1;
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_fnv1a_in_quotes() {
        // FNV-1a 64 test vectors.
        assert_eq!(&etag_of(b""), b"\"cbf29ce484222325\"");
        assert_eq!(&etag_of(b"a"), b"\"af63dc4c8601ec8c\"");
        assert_eq!(&etag_of(b"foobar"), b"\"85944171f73967e8\"");
    }
}
