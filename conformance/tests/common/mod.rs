//! Shared by `attacks.rs` and `limits.rs`: an issuer plus the axum and the actix orders
//! services on loopback around one validator, and assertions that a request is
//! rejected the same way by both (right 4xx, `WWW-Authenticate`, the expected reason
//! counted, no 5xx, no hang, the service still answering afterwards).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use auth_core::testkit::{TestIssuer, TestKey, TokenBuilder, sign_raw};
use auth_core::{Issuer, RejectReason, Validator, ValidatorBuilder};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use examples::demo::{AUDIENCE, Answer, Case, RunningService, start_actix, start_axum};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// No request may take longer than this: a hang is a failure, not a slow pass.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// base64url without padding.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `VmRSS` of this process in KiB (Linux), 0 elsewhere.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `Bearer <token>` as the only `Authorization` header.
pub(crate) fn bearer(token: impl AsRef<str>) -> Vec<String> {
    vec![format!("Bearer {}", token.as_ref())]
}

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// 400 `invalid_request`: more than one token in the request.
    BadRequest,
    /// 401 with a bare `Bearer` challenge: no bearer credential (another scheme).
    NoBearer,
    /// 401 `invalid_token` for this reason.
    Token(RejectReason),
}

/// One hostile request, with the reason it must fail.
pub(crate) struct Attack {
    pub(crate) name: String,
    /// The RFC section or CVE that makes this a rejection.
    pub(crate) why: &'static str,
    pub(crate) authorization: Vec<String>,
    pub(crate) expect: Expect,
}

/// A hostile token, expected to be 401 `invalid_token` for `reason`.
pub(crate) fn token(
    name: impl Into<String>,
    why: &'static str,
    token: impl AsRef<str>,
    reason: RejectReason,
) -> Attack {
    Attack { name: name.into(), why, authorization: bearer(token), expect: Expect::Token(reason) }
}

/// A hostile `Authorization` header carrying more than one token: 400 `invalid_request`.
pub(crate) fn request(name: impl Into<String>, why: &'static str, authorization: Vec<String>) -> Attack {
    Attack { name: name.into(), why, authorization, expect: Expect::BadRequest }
}

/// A malformed `Bearer` credential: 401 `invalid_token` (malformed), RFC 6750 §3.1.
pub(crate) fn malformed(name: impl Into<String>, why: &'static str, authorization: Vec<String>) -> Attack {
    Attack { name: name.into(), why, authorization, expect: Expect::Token(RejectReason::Malformed) }
}

/// Credentials of another scheme: 401 with a bare challenge, RFC 6750 §3.1.
pub(crate) fn no_bearer(name: impl Into<String>, why: &'static str, authorization: Vec<String>) -> Attack {
    Attack { name: name.into(), why, authorization, expect: Expect::NoBearer }
}

/// An issuer, a validator trusting it for [`AUDIENCE`], and both services.
pub(crate) struct Env {
    pub(crate) idp: TestIssuer,
    pub(crate) validator: Validator,
    pub(crate) services: [RunningService; 2],
    pub(crate) client: reqwest::Client,
    /// A valid token with `orders:read`: `GET /orders` answers 200 with it.
    pub(crate) valid: String,
}

impl Env {
    /// Default settings, keys found by discovery (as the example services do).
    pub(crate) async fn start(idp: TestIssuer) -> Env {
        Self::with(idp, |issuer| issuer, |builder| builder).await
    }

    /// With the issuer policy and the validator settings adjusted. Keys are fetched
    /// once before the services start (so the cooldown is running from then on).
    pub(crate) async fn with(
        idp: TestIssuer,
        issuer: impl FnOnce(Issuer) -> Issuer,
        builder: impl FnOnce(ValidatorBuilder) -> ValidatorBuilder,
    ) -> Env {
        let validator =
            builder(Validator::builder().issuer(issuer(Issuer::discovery(idp.issuer()).audience(AUDIENCE))))
                .build()
                .unwrap();
        validator.warm_up().await.unwrap();
        let services = [start_axum(&validator).await.unwrap(), start_actix(&validator).unwrap()];
        // actix-web closes keep-alive connections idle for 5 s; a pooled connection kept
        // longer can be reused just as the server closes it (IncompleteMessage): a client
        // race, not an answer of the service. Idle connections are dropped before that.
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let valid = idp.token().audience(AUDIENCE).scope("orders:read").sign();
        let env = Env { idp, validator, services, client, valid };
        env.assert_alive().await;
        env
    }

    /// A token that `GET /orders` accepts until changed: audience, scope, 5 min lifetime.
    pub(crate) fn token(&self) -> TokenBuilder {
        self.idp.token().audience(AUDIENCE).scope("orders:read")
    }

    /// The claims of [`token`](Self::token) as JSON text with the members in this order,
    /// for tokens built with [`sign_raw`].
    pub(crate) fn claims_json(&self) -> String {
        claims_json(self.idp.issuer(), now())
    }

    /// `sign_raw` with the key `kid` of the issuer.
    pub(crate) fn sign_raw(&self, kid: &str, header: &str, claims: &str) -> String {
        sign_raw(Some(&*self.idp.key(kid).unwrap()), header, claims)
    }

    /// `GET /orders` on one service with these `Authorization` values.
    pub(crate) async fn send(&self, base: &str, authorization: &[String]) -> Result<Answer, String> {
        let case = Case {
            name: "send",
            method: reqwest::Method::GET,
            path: "/orders",
            authorization: authorization.to_vec(),
            expect: 0,
        };
        let started = Instant::now();
        examples::demo::call(&self.client, base, &case).await.map_err(|e| format!("{e} after {:?}", started.elapsed()))
    }

    /// Both services answer 200 to the valid token, and their health route answers.
    pub(crate) async fn assert_alive(&self) {
        for service in &self.services {
            let answer = self.send(&service.base, &bearer(&self.valid)).await;
            let answer = answer.unwrap_or_else(|e| panic!("{} no longer answers: {e}", service.name));
            assert_eq!(answer.status, 200, "{} refuses the valid token: {answer:?}", service.name);
        }
    }

    /// `token` is accepted (200) by both services.
    pub(crate) async fn assert_accepted(&self, name: &str, token: &str) {
        for service in &self.services {
            let answer = self.send(&service.base, &bearer(token)).await.unwrap();
            assert_eq!(answer.status, 200, "{name}: {} answered {answer:?}", service.name);
        }
    }

    /// The attack is rejected by both services alike, as expected, for the expected
    /// reason, without echoing the token; the service still answers afterwards.
    pub(crate) async fn assert_rejected(&self, attack: &Attack) {
        if let Err(err) = self.check(attack).await {
            panic!("{err}");
        }
    }

    async fn check(&self, attack: &Attack) -> Result<(), String> {
        let name = &attack.name;
        let before = self.validator.metrics();
        let mut answers = Vec::new();
        for service in &self.services {
            let answer = self
                .send(&service.base, &attack.authorization)
                .await
                .map_err(|e| format!("{name}: {} did not answer: {e}", service.name))?;
            if answer.status >= 500 {
                return Err(format!("{name}: {} answered 5xx: {answer:?}", service.name));
            }
            answers.push(answer);
        }
        let answer = &answers[0];
        if answers[0] != answers[1] {
            return Err(format!("{name}: axum and actix differ: {:?} vs {:?}", answers[0], answers[1]));
        }
        let (status, code, reason) = match attack.expect {
            Expect::BadRequest => (400, Some("invalid_request"), RejectReason::InvalidRequest),
            Expect::NoBearer => (401, None, RejectReason::UnsupportedScheme),
            Expect::Token(reason) => (401, Some("invalid_token"), reason),
        };
        let after = self.validator.metrics();
        let counted = after.rejected(reason) - before.rejected(reason);
        if answer.status != status || counted != 2 {
            return Err(format!(
                "{name}: expected {status} {reason:?} (once per adapter); got {answer:?}, counted {:?}",
                changed(&before.rejections, &after.rejections)
            ));
        }
        let challenge = answer.challenge.as_deref().unwrap_or("");
        let challenge_ok = match code {
            Some(code) => challenge.starts_with("Bearer") && challenge.contains(&format!(r#"error="{code}""#)),
            None => challenge == "Bearer",
        };
        if !challenge_ok {
            return Err(format!("{name}: challenge {challenge:?}"));
        }
        let body: serde_json::Value =
            serde_json::from_str(&answer.body).map_err(|e| format!("{name}: body {:?}: {e}", answer.body))?;
        if body["error"] != code.unwrap_or("unauthorized") {
            return Err(format!("{name}: body {body}"));
        }
        for value in &attack.authorization {
            let secret = value.split_once(' ').map_or(value.as_str(), |(_, t)| t).trim();
            if secret.len() > 16 && (answer.body.contains(secret) || challenge.contains(secret)) {
                return Err(format!("{name}: the answer echoes the credential"));
            }
        }
        self.assert_alive().await;
        Ok(())
    }

    /// Every attack rejected; prints the table (`--nocapture`) with each case's reason.
    /// Reports every failing case at once.
    pub(crate) async fn assert_all(&self, category: &str, attacks: &[Attack]) {
        let mut failures = Vec::new();
        for attack in attacks {
            if let Err(err) = self.check(attack).await {
                failures.push(err);
                continue;
            }
            let expect = match attack.expect {
                Expect::BadRequest => "400 invalid_request".to_owned(),
                Expect::NoBearer => "401 (bare challenge)".to_owned(),
                Expect::Token(reason) => format!("401 {}", reason.as_str()),
            };
            println!("[{category}] {:<60} {expect:<32} {}", truncate(&attack.name, 60), attack.why);
        }
        assert!(
            failures.is_empty(),
            "[{category}] {} of {} cases failed:\n{}",
            failures.len(),
            attacks.len(),
            failures.join("\n")
        );
        println!("[{category}] {} cases rejected by both adapters", attacks.len());
    }
}

fn changed(before: &[(RejectReason, u64)], after: &[(RejectReason, u64)]) -> Vec<(RejectReason, u64)> {
    before.iter().zip(after).filter(|(b, a)| a.1 != b.1).map(|(b, a)| (a.0, a.1 - b.1)).collect()
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Claims accepted by the example services, as JSON text (issuer, audience, scope, a
/// 5-minute lifetime), for [`sign_raw`].
pub(crate) fn claims_json(issuer: &str, now: i64) -> String {
    format!(
        r#"{{"iss":"{issuer}","sub":"c","client_id":"c","aud":"{AUDIENCE}","iat":{now},"exp":{exp},"scope":"{s}"}}"#,
        exp = now + 300,
        s = "orders:read",
    )
}

/// The header `{"alg":...,"kid":...,"typ":"at+jwt"}` for a key.
pub(crate) fn header_for(key: &TestKey) -> String {
    format!(r#"{{"alg":"{}","kid":"{}","typ":"at+jwt"}}"#, key.algorithm().as_str(), key.kid())
}

/// What a raw HTTP/1.1 exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Raw {
    /// The server answered with this status and `WWW-Authenticate` (if any).
    Answered { status: u16, challenge: Option<String> },
    /// The server closed or reset the connection without an answer.
    Closed(String),
}

/// Sends `head` (request line and headers, without the final empty line) to `base`
/// over a fresh TCP connection with `Connection: close`, and reads the answer.
pub(crate) async fn raw(base: &str, head: &[u8]) -> Raw {
    let addr = base.trim_start_matches("http://");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut request = head.to_vec();
        request.extend_from_slice(format!("\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
        // The server may answer and close before reading everything: keep what it said.
        let write = stream.write_all(&request).await;
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response).await;
        if response.is_empty() {
            return Err(format!("write: {write:?}, read: {read:?}"));
        }
        Ok(response)
    };
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Err(_) => panic!("{base}: no answer and no close within {REQUEST_TIMEOUT:?} (hang)"),
        Ok(Err(closed)) => return Raw::Closed(closed),
        Ok(Ok(response)) => response,
    };
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let challenge = text.split("\r\n\r\n").next().unwrap_or("").lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("www-authenticate").then(|| value.trim().to_owned())
    });
    Raw::Answered { status, challenge }
}
