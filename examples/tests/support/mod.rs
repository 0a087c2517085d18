//! What the calling-side tests of the example services share: the adapters, the reply
//! of one request, and the checks that both adapters answer alike.
#![allow(dead_code, unreachable_pub)]

/// The orders client's secret at the test issuer.
pub const SECRET: &str = "orders-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Axum,
    Actix,
}

pub const ADAPTERS: [Adapter; 2] = [Adapter::Axum, Adapter::Actix];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// `Retry-After` as whole seconds.
    pub fn retry_after_secs(&self) -> u64 {
        let value = self.retry_after.as_deref().unwrap_or_else(|| panic!("no Retry-After: {self:?}"));
        value.parse().unwrap_or_else(|_| panic!("Retry-After {value:?} is not seconds"))
    }
}

/// `GET {base}{path}`, with `token` as the bearer token when given.
pub async fn get(
    client: &reqwest::Client,
    service: &examples::demo::RunningService,
    path: &str,
    token: Option<&str>,
) -> Reply {
    let mut request = client.get(format!("{}{path}", service.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{}: {path}: {e}", service.name));
    let header =
        |name| response.headers().get(name).map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned());
    let (content_type, retry_after) = (header(reqwest::header::CONTENT_TYPE), header(reqwest::header::RETRY_AFTER));
    let status = response.status().as_u16();
    Reply { status, content_type, retry_after, body: response.text().await.unwrap() }
}

/// The axum and the actix reply, which must agree (status, body, content type, whether
/// there is a `Retry-After`).
pub fn agreeing(replies: Vec<Reply>) -> [Reply; 2] {
    let [axum, actix]: [Reply; 2] = replies.try_into().unwrap();
    assert_eq!(
        (axum.status, &axum.body, &axum.content_type, axum.retry_after.is_some()),
        (actix.status, &actix.body, &actix.content_type, actix.retry_after.is_some()),
        "axum and actix differ: {axum:?} vs {actix:?}"
    );
    [axum, actix]
}

/// A JSON error answer: `status`, `error` = `code`, a description.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"), "{reply:?}");
    let body = reply.json();
    assert_eq!(body["error"], code, "{reply:?}");
    assert!(body["error_description"].is_string(), "{reply:?}");
}
