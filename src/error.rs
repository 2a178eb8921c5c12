//! The one error type every request path returns. `http::error` maps each
//! variant to a status and a JSON body in one `match`.

use crate::domain::validate::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not valid JSON or does not have the expected shape.
    #[error("{0}")]
    BadJson(String),
    /// A field failed validation.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No key, or a key we do not know.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid key that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The key's tenant was disabled by an operator.
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A conflict about a record that already exists: the answer names it
    /// under `id_field` (e.g. `leadId`) so the caller can fetch it.
    #[error("{message}")]
    Exists { code: &'static str, message: String, id_field: &'static str, id: String },
    /// The thing existed but is no longer usable (an expired referral).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{method} is not allowed here; use {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("no route for {}", crate::domain::validate::excerpt(.0))]
    NoRoute(String),
    /// A key (or a browser client) is over its rate limit; try again after
    /// `retry_after`.
    #[error("too many requests with this key; retry after {} ms", retry_after.as_millis())]
    RateLimited { retry_after: std::time::Duration },
    /// A bound was reached: try again after a moment.
    #[error("the engine is at capacity; retry shortly")]
    Overloaded,
    /// The store failed or an actor is down: nothing was recorded.
    #[error("{0}")]
    Unavailable(String),
    /// A stored row does not decode: a retry would meet the same row, so
    /// this is no 503. Only a damaged or foreign data file gets here.
    #[error("{0}")]
    Internal(String),
    /// `GET /readyz`: a part of the node is not ready (named in the message).
    #[error("{0}")]
    NotReady(String),
    #[error("the client took too long to send the request")]
    Timeout,
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        match e {
            StoreError::Corrupt(_) => Error::Internal(
                "a stored record could not be read; the operator's log names it (retrying will not help)".into(),
            ),
            _ => Error::Unavailable("storage is unavailable; nothing was recorded, retry shortly".into()),
        }
    }
}

impl From<crate::engine::registry::SendError> for Error {
    fn from(e: crate::engine::registry::SendError) -> Self {
        match e {
            crate::engine::registry::SendError::Full => Error::Overloaded,
            crate::engine::registry::SendError::Down(why) => {
                tracing::error!(error = %why, "campaign actor unavailable");
                Error::Unavailable("the campaign is restarting; nothing was recorded, retry shortly".into())
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
