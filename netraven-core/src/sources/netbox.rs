//! NetBox: devices from `GET /api/dcim/devices/` (token auth, paging by `next`, rate limits).
//!
//! A NetBox device becomes a NetRaven device named after it, at its primary IP (without the
//! prefix length; `primary_ip4`/`primary_ip6` when `primary_ip` is missing), with the platform
//! slug mapped through the [`PlatformMap`], tags = NetBox tag slugs plus `site:<slug>` and
//! `role:<slug>`, the device type's model, serial and description. Devices without a name or
//! primary IP are left out with a warning. Filters (site, role, tag, status) are passed to
//! NetBox; status defaults to `active`.
//!
//! The token is sent only to the configured URL: a `next` link is followed by its path and
//! query on the configured scheme, host and port, whatever host NetBox wrote into it (behind a
//! proxy it often names an internal one). A 429 or 503 answer is retried after `Retry-After`
//! seconds (at most 60, five times).

use super::encode_query_value as encode;
use super::http::{HttpClient, HttpRequest};
use super::platforms::PlatformMap;
use super::{InventorySource, SourceDevice, push_tags};
use crate::error::{Error, ErrorKind, Result};
use crate::model::DeviceSpec;
use crate::secret::Secret;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Which devices to read.
#[derive(Debug, Clone)]
pub struct NetboxFilter {
    /// Site slugs (any of).
    pub sites: Vec<String>,
    /// Device role slugs (any of).
    pub roles: Vec<String>,
    /// Tag slugs (all of, as NetBox filters tags).
    pub tags: Vec<String>,
    /// Status value, `active` by default; empty for any.
    pub status: String,
}

impl Default for NetboxFilter {
    fn default() -> Self {
        NetboxFilter {
            sites: Vec::new(),
            roles: Vec::new(),
            tags: Vec::new(),
            status: "active".into(),
        }
    }
}

fn parse_url(u: &str) -> Result<url::Url> {
    url::Url::parse(u).map_err(|e| Error::invalid(format!("'{u}' is not an absolute URL: {e}")))
}

/// `scheme://host[:port]` of a URL, or an error.
fn origin(u: &str) -> Result<String> {
    Ok(parse_url(u)?.origin().ascii_serialization())
}

/// Path and query of an absolute URL (`/` when it has none).
fn path_of(u: &str) -> Result<String> {
    let parsed = parse_url(u)?;
    Ok(parsed[url::Position::BeforePath..].to_string())
}

/// Devices of one `/api/dcim/devices/` page, and the `next` link.
///
/// ```
/// use netraven_core::sources::{netbox, platforms::PlatformMap};
/// let page = r#"{"count":1,"next":null,"previous":null,"results":[{"id":1,"name":"r1",
///   "primary_ip":{"address":"192.0.2.1/24"},"platform":{"slug":"ios"},"site":{"slug":"ams"},
///   "role":{"slug":"core"},"tags":[{"slug":"wan"}],"status":{"value":"active"}}]}"#;
/// let (devs, next) = netbox::parse_page(page.as_bytes(), &PlatformMap::default()).unwrap();
/// assert_eq!(devs[0].spec.address, "192.0.2.1");
/// assert_eq!(devs[0].spec.tags, vec!["wan", "site:ams", "role:core"]);
/// assert!(next.is_none());
/// ```
pub fn parse_page(body: &[u8], map: &PlatformMap) -> Result<(Vec<SourceDevice>, Option<String>)> {
    let page: Value = serde_json::from_slice(body)
        .map_err(|e| Error::new(ErrorKind::Protocol, format!("NetBox answered no JSON: {e}")))?;
    let results = page
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "NetBox page without 'results'"))?;
    let text = |v: &Value, path: &[&str]| -> Option<String> {
        let mut cur = v;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_str().filter(|s| !s.is_empty()).map(str::to_string)
    };
    let mut out = Vec::new();
    for d in results {
        let Some(name) = text(d, &["name"]) else {
            let id = d.get("id").cloned().unwrap_or_default();
            tracing::warn!(%id, "NetBox device without a name left out");
            continue;
        };
        let ip = ["primary_ip", "primary_ip4", "primary_ip6"]
            .iter()
            .find_map(|k| text(d, &[k, "address"]));
        let Some(ip) = ip else {
            tracing::warn!(device = %name, "NetBox device without a primary IP left out");
            continue;
        };
        let address = ip.split('/').next().unwrap_or(&ip).to_string();
        let platform = text(d, &["platform", "slug"])
            .map(|p| map.resolve(&p))
            .unwrap_or_default();
        let mut spec = DeviceSpec::new(name, address, platform);
        let tags = d
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|t| text(t, &["slug"]).or_else(|| text(t, &["name"])))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        push_tags(&mut spec.tags, tags);
        push_tags(
            &mut spec.tags,
            text(d, &["site", "slug"]).map(|s| format!("site:{s}")),
        );
        // NetBox ≥ 4 says `role`, older releases `device_role`.
        let role = text(d, &["role", "slug"]).or_else(|| text(d, &["device_role", "slug"]));
        push_tags(&mut spec.tags, role.map(|r| format!("role:{r}")));
        spec.model = text(d, &["device_type", "model"]);
        spec.serial = text(d, &["serial"]);
        spec.description = text(d, &["description"]);
        spec.enabled = text(d, &["status", "value"]).is_none_or(|s| s == "active");
        out.push(SourceDevice::new(spec));
    }
    let next = text(&page, &["next"]);
    Ok((out, next))
}

/// A NetBox instance read over HTTP.
#[derive(Debug, Clone)]
pub struct NetboxSource {
    base: String,
    token: Secret,
    filter: NetboxFilter,
    map: PlatformMap,
    client: Arc<dyn HttpClient>,
    page_size: u32,
}

impl NetboxSource {
    /// NetBox at `base` (e.g. `https://netbox.example.com`), read with `token`.
    pub fn new(
        base: &str,
        token: Secret,
        filter: NetboxFilter,
        map: PlatformMap,
        client: Arc<dyn HttpClient>,
    ) -> Result<Self> {
        origin(base)?;
        Ok(NetboxSource {
            base: base.trim_end_matches('/').to_string(),
            token,
            filter,
            map,
            client,
            page_size: 100,
        })
    }

    /// Builder-style: devices per page (1 to 1000; NetBox caps it at its `MAX_PAGE_SIZE`).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 1000);
        self
    }

    fn first_url(&self) -> String {
        let mut q = vec![format!("limit={}", self.page_size)];
        if !self.filter.status.is_empty() {
            q.push(format!("status={}", encode(&self.filter.status)));
        }
        for (k, vs) in [
            ("site", &self.filter.sites),
            ("role", &self.filter.roles),
            ("tag", &self.filter.tags),
        ] {
            q.extend(vs.iter().map(|v| format!("{k}={}", encode(v))));
        }
        format!("{}/api/dcim/devices/?{}", self.base, q.join("&"))
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let req = HttpRequest::get(url)
                .header("Authorization", format!("Token {}", self.token.expose()))
                .header("Accept", "application/json");
            let resp = self.client.send(req).await?;
            match resp.status {
                200 => return Ok(resp.body),
                429 | 503 if tries < 5 => {
                    let wait = resp
                        .header("retry-after")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .min(60);
                    tracing::info!(status = resp.status, wait, "NetBox asks to slow down");
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                401 | 403 => {
                    return Err(Error::new(
                        ErrorKind::Auth,
                        format!("NetBox refused the token ({})", resp.status),
                    ));
                }
                s => {
                    let kind = if s == 429 || s >= 500 {
                        ErrorKind::Unavailable
                    } else {
                        ErrorKind::Protocol
                    };
                    return Err(Error::new(kind, format!("NetBox answered {s} for {url}")));
                }
            }
        }
    }
}

#[async_trait]
impl InventorySource for NetboxSource {
    fn kind(&self) -> &'static str {
        "netbox"
    }

    async fn devices(&self) -> Result<Vec<SourceDevice>> {
        let origin = origin(&self.base)?;
        let mut url = self.first_url();
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let body = self.fetch(&url).await?;
            let (devs, next) = parse_page(&body, &self.map)?;
            out.extend(devs);
            match next {
                Some(n) => url = format!("{origin}{}", path_of(&n)?),
                None => return Ok(out),
            }
        }
        Err(Error::new(
            ErrorKind::Protocol,
            "NetBox paging does not end",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::http::HttpResponse;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Replay {
        answers: Mutex<Vec<HttpResponse>>,
        seen: Mutex<Vec<HttpRequest>>,
    }

    #[async_trait]
    impl HttpClient for Replay {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
            self.seen.lock().unwrap().push(request);
            let mut a = self.answers.lock().unwrap();
            if a.is_empty() {
                return Err(Error::new(ErrorKind::Connection, "no more answers"));
            }
            Ok(a.remove(0))
        }
    }

    fn ok(body: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn pages_rate_limits_and_the_token_stays_home() {
        let client = Arc::new(Replay::default());
        *client.answers.lock().unwrap() = vec![
            HttpResponse {
                status: 429,
                headers: vec![("retry-after".into(), "0".into())],
                body: vec![],
            },
            ok(
                r#"{"count":2,"next":"http://internal:8080/api/dcim/devices/?limit=1&offset=1","results":[{"name":"a","primary_ip4":{"address":"192.0.2.1/32"},"platform":{"slug":"eos"}}]}"#,
            ),
            ok(
                r#"{"count":2,"next":null,"results":[{"name":"b","primary_ip":null},{"name":null}]}"#,
            ),
        ];
        let filter = NetboxFilter {
            sites: vec!["ams 1".into()],
            ..Default::default()
        };
        let src = NetboxSource::new(
            "https://nb.example/",
            Secret::new("tok"),
            filter,
            PlatformMap::default(),
            client.clone(),
        )
        .unwrap()
        .page_size(1);
        let devs = src.devices().await.unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].spec.platform, "arista_eos");
        let seen = client.seen.lock().unwrap();
        assert_eq!(
            seen[0].url,
            "https://nb.example/api/dcim/devices/?limit=1&status=active&site=ams%201"
        );
        assert_eq!(
            seen[2].url,
            "https://nb.example/api/dcim/devices/?limit=1&offset=1"
        );
        assert!(seen.iter().all(|r| r.headers[0].1 == "Token tok"));
        assert!(
            !format!("{:?}", seen[0]).contains("tok\""),
            "Debug hides header values"
        );
    }

    #[tokio::test]
    async fn refused_tokens_and_bad_pages_fail() {
        let client = Arc::new(Replay::default());
        *client.answers.lock().unwrap() = vec![
            HttpResponse {
                status: 403,
                ..Default::default()
            },
            ok("{}"),
        ];
        let src = NetboxSource::new(
            "http://nb",
            Secret::new("t"),
            Default::default(),
            Default::default(),
            client,
        )
        .unwrap();
        assert_eq!(src.devices().await.unwrap_err().kind(), ErrorKind::Auth);
        assert_eq!(src.devices().await.unwrap_err().kind(), ErrorKind::Protocol);
        assert!(
            NetboxSource::new(
                "nb",
                Secret::new("t"),
                Default::default(),
                Default::default(),
                Arc::new(Replay::default())
            )
            .is_err()
        );
    }
}
