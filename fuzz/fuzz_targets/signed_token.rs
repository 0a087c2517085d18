//! Structured: arbitrary header and claims bytes, *validly signed* by one of the fixture
//! keys, so that the claims and policy logic past the signature is reached; then byte
//! mutations of that signed token, which must all be rejected.
//!
//! Input: byte 0 selects the key (`& 3`: rs, ps, es, ed); the rest is split at 0xFF
//! (never in UTF-8) into header bytes, claims bytes and mutation ops. Each op is 3
//! bytes `[k|pos_hi, pos_lo, byte]`: k = top two bits (0/1 replace, 2 insert, 3 delete),
//! position = 14-bit `pos` modulo the token length.
#![no_main]

use auth_core_fuzz::{AUDIENCE, FIXTURE, ISSUER, check_error, now_or_never, sign};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0xff);
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else { return };
    let ops = parts.next().unwrap_or_default();
    let key = &FIXTURE.keys[usize::from(selector & 3)];
    let token = sign(key, header, claims);

    match now_or_never(FIXTURE.validator.validate(&token)) {
        Ok(principal) => {
            // Accepted: everything the policy promises holds.
            assert_eq!(principal.algorithm(), key.algorithm(), "accepted with another alg than the signing key's");
            assert!(principal.key_id().is_none_or(|kid| kid == key.kid()), "accepted under another kid");
            assert_eq!(principal.issuer(), ISSUER);
            assert!(principal.claims().audience.iter().any(|aud| aud == AUDIENCE));
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            assert!(
                principal.claims().expires_at + 60 > i64::try_from(now).unwrap_or(i64::MAX),
                "expired token accepted"
            );
            assert_eq!(principal.claims_json().as_bytes(), claims);
            let header_json: serde_json::Value = serde_json::from_slice(header).expect("accepted header is JSON");
            assert!(header_json.get("crit").is_none(), "crit accepted");
            // Seen again: served from the cache, same claims.
            let again = now_or_never(FIXTURE.validator.validate(&token)).expect("valid token rejected the second time");
            assert_eq!(again.claims(), principal.claims());
        }
        Err(err) => {
            assert_eq!(err.status(), 401, "validate with static keys answered {err:?}");
            check_error(&err, &token);
        }
    }

    if ops.len() < 3 {
        return;
    }
    let mut bytes = token.clone().into_bytes();
    for op in ops.chunks_exact(3) {
        let pos = usize::from(op[0] & 0x3f) << 8 | usize::from(op[1]);
        match op[0] >> 6 {
            2 => bytes.insert(pos % (bytes.len() + 1), op[2]),
            3 if !bytes.is_empty() => {
                bytes.remove(pos % bytes.len());
            }
            3 => {}
            _ if !bytes.is_empty() => {
                let at = pos % bytes.len();
                bytes[at] = op[2];
            }
            _ => {}
        }
    }
    let mutated = String::from_utf8_lossy(&bytes);
    if mutated == token {
        return;
    }
    match now_or_never(FIXTURE.validator.validate(&mutated)) {
        Ok(principal) => panic!(
            "a mutated token was accepted:\n  signed:  {token}\n  mutated: {mutated}\n  claims: {:?}",
            principal.claims()
        ),
        Err(err) => {
            assert_eq!(err.status(), 401, "validate with static keys answered {err:?}");
            check_error(&err, &mutated);
        }
    }
});
