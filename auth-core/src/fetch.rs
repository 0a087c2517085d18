//! Fetching JSON documents (discovery, JWKS) from an issuer: bounded in time and size,
//! conditional when the server sends an `ETag`, and with its caching headers read.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, EXPIRES, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};

use crate::config::ConfigError;

/// How documents are fetched (validator-wide).
#[derive(Clone)]
pub(crate) struct Fetcher {
    /// `None` only when every issuer has a static key set (nothing is ever fetched).
    pub(crate) client: Option<reqwest::Client>,
    /// Applied around every fetch, even with a caller's own client.
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) allow_http: bool,
}

/// A fetch that did not produce a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the content type {0:?} is not JSON")]
    NotJson(String),
    #[error("the URL is not allowed: {0}")]
    Url(String),
}

/// A successful fetch.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// 304: the cached document is still current.
    NotModified {
        max_age: Option<Duration>,
    },
    Document {
        body: Vec<u8>,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
}

impl Fetcher {
    /// The default client: connect and total timeouts, redirects only within the same
    /// origin (a JWKS URL must not be bounced to a host we were not told to trust), and
    /// no idle connections kept: fetches are minutes apart, and a pooled connection
    /// belongs to the runtime that opened it, which may be gone by the next fetch when a
    /// validator is shared across runtimes.
    pub(crate) fn default_client(
        timeout: Duration,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<reqwest::Client, ConfigError> {
        reqwest::Client::builder()
            .tls_backend_preconfigured(crate::crypto::tls_client_config_with(extra_roots, None)?)
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt.previous().first().is_some_and(|first| {
                    let next = attempt.url();
                    first.scheme() == next.scheme()
                        && first.host_str() == next.host_str()
                        && first.port_or_known_default() == next.port_or_known_default()
                });
                if attempt.previous().len() > 5 || !same_origin { attempt.stop() } else { attempt.follow() }
            }))
            .pool_max_idle_per_host(0)
            .user_agent(concat!("auth-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))
    }

    pub(crate) async fn get(&self, url: &Url, etag: Option<&str>) -> Result<Fetched, FetchError> {
        require_https(url, self.allow_http).map_err(FetchError::Url)?;
        match tokio::time::timeout(self.timeout, self.get_inner(url, etag)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn get_inner(&self, url: &Url, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let client = self.client.as_ref().ok_or_else(|| FetchError::Url("no HTTP client configured".into()))?;
        let send = || {
            let request = client.get(url.clone()).header(http::header::ACCEPT, "application/json");
            match etag {
                Some(etag) => request.header(IF_NONE_MATCH, etag),
                None => request,
            }
            .send()
        };
        // Once more on a fresh connection when sending fails: a caller's own client may
        // hand out a pooled connection whose runtime is gone.
        let mut response = match send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Err(transport(err)),
            Err(_) => send().await.map_err(transport)?,
        };
        let headers = response.headers();
        let max_age = max_age(headers);
        if response.status() == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified { max_age });
        }
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_json(content_type) {
            return Err(FetchError::NotJson(content_type.chars().take(64).collect()));
        }
        let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let new_etag = headers.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut body = Vec::with_capacity(declared.map_or(16 * 1024, |len| len as usize));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Document { body, etag: new_etag, max_age })
    }
}

fn transport(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        FetchError::Timeout
    } else {
        // reqwest errors name the URL, never credentials: safe to log.
        FetchError::Transport(err.without_url().to_string())
    }
}

/// `application/json`, `application/jwk-set+json` and any other `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Remote key material must come over https; plain http only to loopback (tests, sidecars)
/// or with an explicit opt-in.
pub(crate) fn require_https(url: &Url, allow_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(format!("{url} is plain http to a non-loopback host; use https or allow_insecure_http")),
        other => Err(format!("scheme {other:?} is not http(s)")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// How long the response may be cached: `Cache-Control: max-age` (or `no-cache` /
/// `no-store` as zero), else `Expires` relative to `Date` (RFC 9111 §4.2.1).
pub(crate) fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(secs) = lower.strip_prefix("max-age=")
                && let Ok(secs) = secs.trim_matches('"').parse::<u64>()
            {
                return Some(Duration::from_secs(secs));
            }
        }
    }
    let expires = headers.get(EXPIRES)?.to_str().ok()?;
    let Ok(expires) = httpdate::parse_http_date(expires) else {
        // An invalid Expires means "already expired" (RFC 9111 §5.3).
        return Some(Duration::ZERO);
    };
    let now = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn cache_headers() {
        assert_eq!(max_age(&headers(&[])), None);
        assert_eq!(max_age(&headers(&[("cache-control", "public, max-age=300")])), Some(Duration::from_secs(300)));
        assert_eq!(
            max_age(&headers(&[("cache-control", "Max-Age=\"60\", must-revalidate")])),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(&headers(&[("cache-control", "no-store")])), Some(Duration::ZERO));
        assert_eq!(
            max_age(&headers(&[
                ("date", "Wed, 25 Nov 2026 10:00:00 GMT"),
                ("expires", "Wed, 25 Nov 2026 10:02:00 GMT")
            ])),
            Some(Duration::from_secs(120))
        );
        assert_eq!(max_age(&headers(&[("expires", "0")])), Some(Duration::ZERO));
        // max-age wins over Expires
        assert_eq!(
            max_age(&headers(&[("cache-control", "max-age=5"), ("expires", "Wed, 25 Nov 2099 10:02:00 GMT")])),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn json_content_types() {
        for ok in
            ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/jwk-set+json"]
        {
            assert!(is_json(ok), "{ok}");
        }
        for bad in ["", "text/html", "text/plain", "application/octet-stream", "text/json+html"] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn https_required_except_loopback() {
        let ok = [
            "https://idp.example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.9.9.9/x",
            "http://localhost/x",
            "http://[::1]:9/x",
        ];
        for url in ok {
            assert!(require_https(&Url::parse(url).unwrap(), false).is_ok(), "{url}");
        }
        for url in ["http://idp.example.com/jwks", "http://10.0.0.1/jwks", "ftp://127.0.0.1/x", "file:///etc/passwd"] {
            assert!(require_https(&Url::parse(url).unwrap(), false).is_err(), "{url}");
        }
        assert!(require_https(&Url::parse("http://idp.example.com/jwks").unwrap(), true).is_ok());
    }
}
