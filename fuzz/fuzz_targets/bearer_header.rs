//! `bearer_token` over arbitrary Authorization header values and query strings.
//!
//! Input: byte 0 = flags (bit 0: query tokens allowed, bit 1: a query string is present,
//! bits 2-3: number of Authorization headers, 0..=3); the rest is split at `\n` into
//! the header values, then the query string (lossily UTF-8).
#![no_main]

use auth_core::{AuthError, CredentialSources, bearer_token};
use auth_core_fuzz::check_error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let sources = CredentialSources { query: flags & 1 != 0 };
    let header_count = usize::from((flags >> 2) & 3);
    let mut parts = rest.split(|&b| b == b'\n');
    let headers: Vec<&[u8]> = parts.by_ref().take(header_count).collect();
    let query = (flags & 2 != 0).then(|| String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned());

    let result = bearer_token(headers.iter().copied(), query.as_deref(), sources);
    match result {
        Ok(token) => {
            // RFC 6750 b64token, non-empty, from exactly one source.
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty(), "empty token accepted");
            assert!(
                body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
                "token {token:?} is not a b64token"
            );
            match headers.as_slice() {
                [] => {
                    assert!(sources.query, "a query token was taken while query tokens are off");
                    assert!(query.as_deref().is_some_and(|q| q.contains(token)));
                }
                [value] => {
                    let value = std::str::from_utf8(value).expect("an accepted header is UTF-8");
                    let (scheme, rest) = value.split_once(' ').expect("scheme and token");
                    assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?} accepted");
                    assert_eq!(rest.trim_matches(' '), token);
                    let names_access_token = |p: &str| p.split_once('=').map_or(p, |(name, _)| name) == "access_token";
                    assert!(query.as_deref().is_none_or(|q| !q.split('&').any(names_access_token)));
                }
                _ => panic!("a token was taken from several Authorization headers"),
            }
        }
        Err(err) => {
            assert!(matches!(err.status(), 400 | 401), "bearer_token answered {err:?}");
            if headers.is_empty() && !sources.query {
                assert_eq!(err, AuthError::MissingToken);
            }
            for value in &headers {
                check_error(&err, &String::from_utf8_lossy(value));
            }
            check_error(&err, query.as_deref().unwrap_or_default());
        }
    }
});
