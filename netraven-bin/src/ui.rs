//! The web page: one self-contained HTML file over the REST API (runs, device results and live
//! logs, devices with configuration history and diffs, jobs with "run now", logs). It holds no
//! data of its own; every view is an API call made with the user's token.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("ui/index.html");

/// `GET /`: the web page.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page only talks to its own origin; nothing may frame it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        INDEX,
    )
}
