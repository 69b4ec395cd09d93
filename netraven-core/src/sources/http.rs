//! The HTTP client the NetBox source and the webhook channels speak through. Core holds no HTTP
//! library: the facade crate implements [`HttpClient`] with `reqwest` (feature `integrations`),
//! tests with recorded answers.

use crate::error::Result;
use async_trait::async_trait;
use std::fmt;

/// One request.
#[derive(Clone, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names and values (values may hold tokens: never logged).
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values carry tokens and signatures; only their names are shown.
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

impl HttpRequest {
    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            ..Default::default()
        }
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: Vec<u8>) -> Self {
        HttpRequest {
            method: "POST".into(),
            url: url.into(),
            body: Some(body),
            ..Default::default()
        }
    }

    /// Builder-style: adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One answer.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends HTTP requests. A transport failure is an `Err` (kind `Connection` or `Timeout`); any
/// answer, whatever its status, is `Ok`.
#[async_trait]
pub trait HttpClient: Send + Sync + fmt::Debug {
    /// Sends one request and reads the whole answer.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse>;
}
