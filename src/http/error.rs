//! The one place errors become HTTP: status, JSON body `{error, message}`, and
//! Retry-After on 503s. Client mistakes are 4xx with a message a person can
//! act on; capacity and storage trouble are 503 (retryable); nothing a client
//! sends can produce a 500, only a stored row that does not decode (a
//! damaged data file), which a retry would meet again.

use hyper::{header, StatusCode};

use super::body::{json_response, Resp};
use crate::domain::validate::excerpt_to;
use crate::error::Error;

pub fn status_and_code(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
        Error::Invalid(_) => (StatusCode::BAD_REQUEST, "validation_failed"),
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::Disabled(_) => (StatusCode::FORBIDDEN, "account_disabled"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::NoRoute(_) => (StatusCode::NOT_FOUND, "no_route"),
        Error::Conflict { code, .. } | Error::Exists { code, .. } => (StatusCode::CONFLICT, code),
        Error::Gone { code, .. } => (StatusCode::GONE, code),
        Error::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        Error::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        Error::Timeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Error::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

pub fn error_response(e: &Error, retry_after_secs: u32) -> Resp {
    error_response_with(e, &error_body(e), retry_after_secs)
}

/// Backstops: messages quote input as `validate::excerpt`s, but whatever
/// a message holds, an error answer stays a few hundred bytes.
const MAX_MESSAGE_CHARS: usize = 512;
const MAX_FIELD_CHARS: usize = 128;

/// `{error, message}` and the variant's extra fields.
pub fn error_body(e: &Error) -> serde_json::Value {
    let (_, code) = status_and_code(e);
    let mut body = serde_json::json!({ "error": code, "message": excerpt_to(&e.to_string(), MAX_MESSAGE_CHARS) });
    match e {
        Error::Invalid(invalid) => body["field"] = excerpt_to(&invalid.field, MAX_FIELD_CHARS).into(),
        Error::Exists { id_field, id, .. } => body[*id_field] = id.clone().into(),
        _ => {}
    }
    body
}

/// `e`'s status and headers with `body` (an `error_body` plus extra fields).
pub fn error_response_with(e: &Error, body: &serde_json::Value, retry_after_secs: u32) -> Resp {
    let (status, _) = status_and_code(e);
    let mut resp = json_response(status, body);
    let headers = resp.headers_mut();
    match e {
        Error::Overloaded | Error::Unavailable(_) | Error::NotReady(_) => {
            headers.insert(header::RETRY_AFTER, retry_after_secs.into());
        }
        // Whole seconds, rounded up: a client that waits that long gets a token.
        Error::RateLimited { retry_after } => {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, secs.max(1).into());
        }
        Error::MethodNotAllowed { allow, .. } => {
            headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        Error::Unauthorized(_) => {
            headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        // The rest of the body may still be on its way: this connection
        // cannot carry another request, so it closes, lingering.
        Error::TooLarge { .. } | Error::Timeout => {
            headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            resp.extensions_mut().insert(super::linger::LingerClose);
        }
        _ => {}
    }
    resp
}
