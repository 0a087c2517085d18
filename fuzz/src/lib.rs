//! Shared fixture and invariant checks for the auth-core fuzz targets.
//!
//! Every target checks the same things (see `auth-core/tests/properties.rs` for the
//! proptest twin of these checks):
//! - no panic, no hang (libFuzzer's `-timeout`);
//! - every error has status 400/401/403/503, and `validate` with a static key set only
//!   ever answers 401 `invalid_token`;
//! - the `WWW-Authenticate` challenge is `Bearer` followed by comma-separated
//!   `name="value"` params, values without `"`, `\` or control characters, and never
//!   contains the request's token;
//! - a token that validates was signed by the fixture key it claims.

use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use auth_core::testkit::TestKey;
use auth_core::{Algorithm, AuthError, Issuer, Validator};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The issuer of the fixture validator.
pub const ISSUER: &str = "https://issuer.example";
/// The audience of the fixture validator.
pub const AUDIENCE: &str = "api";

/// One HTTP client for every validator the targets build. The default client reads the
/// system's CA certificates at each `build()` (tens of milliseconds under ASan), which
/// would make `parse_jwks` run at ~20 execs/s. Static key sets never use it.
pub static CLIENT: LazyLock<reqwest::Client> =
    LazyLock::new(|| reqwest::Client::builder().build().expect("HTTP client"));

/// `Validator::builder()` with the shared [`CLIENT`].
pub fn builder() -> auth_core::ValidatorBuilder {
    Validator::builder().http_client(CLIENT.clone())
}

/// Keys, their JWKS, and a validator trusting that JWKS (built once per process).
pub struct Fixture {
    /// `rs` (RS256), `ps` (PS256), `es` (ES256), `ed` (EdDSA), in this order.
    pub keys: Vec<TestKey>,
    /// The public JWKS document of `keys`.
    pub jwks: String,
    /// `Issuer::static_jwks(ISSUER, jwks).audience(AUDIENCE)`, default settings.
    pub validator: Validator,
}

/// The per-process fixture. Keys are random per process; every target that needs a
/// valid signature computes it in-process, so crashes still reproduce.
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let keys = vec![
        TestKey::generate(Algorithm::RS256, "rs"),
        TestKey::generate(Algorithm::PS256, "ps"),
        TestKey::generate(Algorithm::ES256, "es"),
        TestKey::generate(Algorithm::EdDSA, "ed"),
    ];
    let jwks = serde_json::json!({ "keys": keys.iter().map(TestKey::public_jwk).collect::<Vec<_>>() }).to_string();
    let validator = builder()
        .issuer(Issuer::static_jwks(ISSUER, jwks.clone()).audience(AUDIENCE))
        .build()
        .expect("fixture validator");
    Fixture { keys, jwks, validator }
});

/// Polls a future once. Validation against a static key set does no I/O, so it must
/// be ready at once; `Pending` would mean it waits on something, which is a bug here.
pub fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("validation against a static key set did not complete at once"),
    }
}

/// `base64url(header).base64url(claims).base64url(sig)`, over arbitrary bytes.
pub fn sign(key: &TestKey, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Checks an error's status and its challenge; `secret` is request text that must
/// never be echoed (the token, or the header value).
pub fn check_error(err: &AuthError, secret: &str) {
    let status = err.status();
    assert!(matches!(status, 400 | 401 | 403 | 503), "status {status} for {err:?}");
    for realm in [None, Some("api"), Some("a\"b\\c\r\nd\u{7f}é")] {
        check_challenge(&err.www_authenticate(realm));
    }
    if secret.len() >= 32 && !secret.contains(char::is_whitespace) {
        // No fixed text of a challenge has 32 characters without a space, so a long
        // space-free secret can only appear there if it was copied from the request.
        let challenge = err.www_authenticate(None);
        assert!(!challenge.contains(secret), "the challenge {challenge:?} echoes the request");
        assert!(!err.json_body().contains(secret), "the error body echoes the request");
    }
}

/// `Bearer` alone, or `Bearer name="value", name="value"...` where names are
/// lowercase/underscore and values are printable ASCII without `"` or `\`.
pub fn check_challenge(challenge: &str) {
    let Some(mut rest) = challenge.strip_prefix("Bearer") else {
        panic!("challenge does not start with Bearer: {challenge:?}");
    };
    let mut first = true;
    while !rest.is_empty() {
        let sep = if first { " " } else { ", " };
        first = false;
        rest = rest.strip_prefix(sep).unwrap_or_else(|| panic!("bad separator in {challenge:?}"));
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("no name=\" in {challenge:?}"));
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "bad param name {name:?} in {challenge:?}"
        );
        let (value, after) = after.split_once('"').unwrap_or_else(|| panic!("unterminated value in {challenge:?}"));
        assert!(
            value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\'),
            "value {value:?} has a control, non-ASCII or backslash character in {challenge:?}"
        );
        rest = after;
    }
}
