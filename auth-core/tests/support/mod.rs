//! Driving an `AccessPolicy` the way the adapters do, for the seam's tests; recording
//! log events (`log`).
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod log;

use auth_core::{AccessPolicy, Admission, Decision, Refusal, RequestContext};

/// Headers with one `Authorization` value.
pub(crate) fn headers(authorization: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", authorization.parse().unwrap());
    headers
}

/// The synchronous step, then the verification when one is needed, on this thread.
pub(crate) async fn drive(policy: &AccessPolicy, headers: &http::HeaderMap) -> Result<Admission, Refusal> {
    match policy.decide(&RequestContext::new("GET", "/orders", headers)) {
        Decision::Admit(admission) => Ok(admission),
        Decision::Refuse(refusal) => Err(refusal),
        Decision::Verify(verification) => verification.run().await,
    }
}
