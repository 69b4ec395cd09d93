//! API errors and the extractors that turn axum's plain-text rejections into JSON errors.
//!
//! Every error leaves the API as `{"error": "<code>", "detail": "<what went wrong>"}` with a 4xx
//! status (a 5xx is a bug, or a backend that is down: 503).

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use netraven_core::{Error, ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An error response: status, a stable code and a human-readable detail.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code (`not_found`, `invalid_input`, …).
    pub code: &'static str,
    /// What went wrong, for humans.
    pub detail: String,
}

/// `Retry-After` of a 503 (a backend is unavailable), in seconds.
pub const RETRY_AFTER_SECS: &str = "5";

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    detail: &'a str,
}

impl ApiError {
    /// An error with the given status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
        }
    }
    /// 422 invalid input.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
    }
    /// 401 not authenticated.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    /// 403 authenticated but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 404 not found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    /// 409 conflict.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            error: self.code,
            detail: &self.detail,
        });
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A backend (database, Redis) is down: clients retry after a pause, and the API
            // answers again without a restart once it is back.
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match e.kind() {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::InvalidInput => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            ErrorKind::AddressRefused => (StatusCode::UNPROCESSABLE_ENTITY, "address_refused"),
            ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ErrorKind::Auth => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ErrorKind::Stale => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Connection => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "API request failed in a backend");
            let detail = if status == StatusCode::SERVICE_UNAVAILABLE {
                "a backend is unavailable; try again later".to_string()
            } else {
                "internal error; see the server log".to_string()
            };
            return ApiError::new(status, code, detail);
        }
        ApiError::new(status, code, e.message().to_string())
    }
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        _ if status.is_server_error() => "internal",
        _ => "invalid_input",
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        ApiError::new(status, code_for(status), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        let status = if r.status().is_server_error() {
            r.status()
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        ApiError::new(status, code_for(status), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        ApiError::new(status, code_for(status), r.body_text())
    }
}

/// Result of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// A JSON body with JSON error bodies: malformed JSON 400, missing content type 415, body over
/// the limit 413; valid JSON of the wrong shape or type (unknown fields, missing fields, a number
/// for a string) 422 naming the field path.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Read as a plain JSON value first, so only syntax errors are 400 and every error of
        // shape or type is 422 (axum would answer some type errors of enums with 400).
        let axum::Json(v) = axum::Json::<Value>::from_request(req, state).await?;
        Ok(ApiJson(from_json(v)?))
    }
}

/// Deserializes a JSON value into `T`; errors are 422 naming the field path (`targets.device_ids[0]: …`).
///
/// Every body (and every row of a JSON import) is a JSON object: serde would otherwise read a
/// struct from an array of its fields in order (`["name", null]` as a tag), which nobody means.
pub fn from_json<T: DeserializeOwned>(v: Value) -> ApiResult<T> {
    let found = match &v {
        Value::Object(_) => None,
        Value::Array(_) => Some("an array"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    };
    if let Some(found) = found {
        return Err(ApiError::invalid(format!(
            "body: expected a JSON object, found {found}"
        )));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!("body: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

/// Query parameters with JSON error bodies (422). Strict: a parameter the route does not know is
/// 422 naming it (query structs deny unknown fields); a parameter may repeat where its field is a
/// list (`tag=a&tag=b` means either), and an empty value counts as absent.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        // Drop empty values so `?name=` means "no filter" for every type, as the web page sends.
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let cleaned = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        serde_html_form::from_str(&cleaned)
            .map(ApiQuery)
            .map_err(|e| ApiError::invalid(format!("query: {e}")))
    }
}

/// `axum::extract::Path` with JSON error bodies (422 for a malformed id).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Fallback for unknown routes: 404 JSON.
pub async fn not_found_fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Fallback for a known path with an unsupported method: 405 JSON.
pub async fn method_not_allowed_fallback(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("method {method} is not allowed on this path"),
    )
}
