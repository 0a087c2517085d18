//! Arbitrary bytes (lossily made UTF-8) as a static JWKS document, then a few tokens
//! against whatever keys were accepted.
#![no_main]

use std::sync::LazyLock;

use auth_core::{ConfigError, Issuer};
use auth_core_fuzz::{FIXTURE, ISSUER, builder, check_error, now_or_never, sign};
use libfuzzer_sys::fuzz_target;

/// Tokens signed by the fixture keys (not in the fuzzed set, except by a miracle).
static TOKENS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let claims = format!(r#"{{"iss":"{ISSUER}","aud":"api","exp":4102444800}}"#);
    let mut tokens: Vec<String> = FIXTURE
        .keys
        .iter()
        .map(|key| {
            let header = format!(r#"{{"alg":"{}","kid":"{}"}}"#, key.algorithm().as_str(), key.kid());
            sign(key, header.as_bytes(), claims.as_bytes())
        })
        .collect();
    // The same without kid: the fuzzed set's only key for the alg, if any, is tried.
    tokens.extend(FIXTURE.keys.iter().map(|key| {
        let header = format!(r#"{{"alg":"{}"}}"#, key.algorithm().as_str());
        sign(key, header.as_bytes(), claims.as_bytes())
    }));
    tokens
});

fuzz_target!(|data: &[u8]| {
    let doc = String::from_utf8_lossy(data).into_owned();
    match builder().issuer(Issuer::static_jwks(ISSUER, doc).audience("api")).build() {
        Ok(validator) => {
            for token in TOKENS.iter() {
                match now_or_never(validator.validate(token)) {
                    Ok(_) => panic!("a token signed by a key outside the JWKS was accepted"),
                    Err(err) => {
                        assert_eq!(err.status(), 401, "validate with static keys answered {err:?}");
                        check_error(&err, token);
                    }
                }
            }
        }
        Err(ConfigError::InvalidJwks { .. }) => {}
        Err(other) => panic!("a bad JWKS gave an unexpected config error: {other:?}"),
    }
});
