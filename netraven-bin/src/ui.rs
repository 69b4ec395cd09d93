//! The web page: a Vue 3 single-page application over the REST API, embedded into the binary.
//!
//! There is no JavaScript build step: the page is plain scripts (`ui/js/`) using Vue's global
//! production build, vendored from the npm registry under `ui/vendor/` with its licence and
//! version (`ui/vendor/README.md`). The page holds no data of its own; every view is an API call
//! made with the user's token. All URLs the page uses are relative and its routes live in the
//! URL fragment (`#/devices/7`), so it works unchanged under a sub-path behind a reverse proxy.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("ui/index.html");

/// The page's files: (path under `assets/`, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
    ("js/core.js", JS, include_str!("ui/js/core.js")),
    ("js/fleet.js", JS, include_str!("ui/js/fleet.js")),
    ("js/runs.js", JS, include_str!("ui/js/runs.js")),
    ("js/configs.js", JS, include_str!("ui/js/configs.js")),
    ("js/admin.js", JS, include_str!("ui/js/admin.js")),
    ("js/app.js", JS, include_str!("ui/js/app.js")),
    (
        "vendor/vue.global.prod.js",
        JS,
        include_str!("ui/vendor/vue/vue.global.prod.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("ui/favicon.svg"),
    ),
    (
        "samples/devices.csv",
        "text/csv; charset=utf-8",
        include_str!("ui/samples/devices.csv"),
    ),
    (
        "samples/devices.json",
        "application/json",
        include_str!("ui/samples/devices.json"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The page's Content-Security-Policy. Scripts only from this origin; `'unsafe-eval'` because
/// Vue's no-build global build compiles the templates in the browser (`new Function`); no inline
/// script runs. Config text is bound as text, never as HTML.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // Revalidate on every load, so an upgraded binary's page is picked up at once.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// `GET /`: the page.
pub async fn index() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), INDEX)
}

/// `GET /assets/{file}`: the page's scripts, styles, icon and sample import files.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ct, body)) => (headers(ct), *body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Paths of the embedded assets (for tests).
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let mut referenced = 0;
        for part in INDEX.split(['"', '\'']) {
            if let Some(path) = part.strip_prefix("assets/") {
                referenced += 1;
                assert!(
                    asset_paths().any(|p| p == path),
                    "index.html loads assets/{path}, which is not embedded"
                );
            }
        }
        assert!(referenced >= 8, "index.html references {referenced} assets");
    }

    #[test]
    fn vendored_vue_is_the_recorded_production_build() {
        let vue = ASSETS
            .iter()
            .find(|(p, _, _)| *p == "vendor/vue.global.prod.js")
            .map(|(_, _, b)| *b)
            .unwrap_or_default();
        assert!(vue.starts_with("/**\n* vue v3.5.46\n"));
        assert!(include_str!("ui/vendor/README.md").contains("| Vue | 3.5.46 |"));
        assert!(include_str!("ui/vendor/vue/LICENSE").contains("MIT License"));
    }

    #[test]
    fn no_page_script_renders_html_from_data() {
        for (path, _, body) in ASSETS.iter().filter(|(p, _, _)| p.starts_with("js/")) {
            assert!(!body.contains("v-html="), "{path} uses v-html");
            assert!(!body.contains(".innerHTML"), "{path} uses innerHTML");
        }
    }
}
