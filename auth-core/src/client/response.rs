//! Reading a token endpoint's answer (RFC 6749 §5.1, §5.2).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::error::{TokenSourceError, printable};
use crate::clock::unix_now;

/// A usable access token, as the endpoint issued it.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    /// From `expires_in`, else the JWT's `exp`, else the configured default.
    pub(crate) lifetime: Duration,
    /// The granted `scope`, when the response names one.
    pub(crate) scope: Option<String>,
}

/// The most a lifetime in whole seconds can overstate the token's real one.
const ROUNDING: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct Success {
    access_token: Option<Value>,
    token_type: Option<Value>,
    expires_in: Option<Value>,
    scope: Option<Value>,
    issued_token_type: Option<Value>,
}

#[derive(Deserialize)]
struct Failure {
    error: Option<String>,
    error_description: Option<String>,
}

/// A 2xx body.
/// `exchange`: the answer to a token exchange, whose `issued_token_type` is required
/// (RFC 8693 §2.2.1) and must be the access token type asked for.
pub(crate) fn success(
    body: &[u8],
    max_token: usize,
    default_lifetime: Duration,
    exchange: bool,
) -> Result<Issued, TokenSourceError> {
    let invalid = |why: &str| TokenSourceError::InvalidResponse(why.to_owned());
    let parsed: Success = serde_json::from_slice(body).map_err(|_| invalid("not a JSON object"))?;
    if exchange {
        match &parsed.issued_token_type {
            Some(Value::String(t)) if t == super::endpoint::ACCESS_TOKEN_TYPE => {}
            Some(_) => return Err(invalid("issued_token_type is not an access token")),
            None => return Err(invalid("no issued_token_type (RFC 8693 §2.2.1)")),
        }
    }
    let access_token = match parsed.access_token {
        Some(Value::String(token)) => token,
        Some(_) => return Err(invalid("access_token is not a string")),
        None => return Err(invalid("no access_token")),
    };
    if access_token.len() > max_token {
        return Err(TokenSourceError::InvalidResponse(format!("the access token exceeds {max_token} bytes")));
    }
    if !is_b64token(&access_token) {
        return Err(invalid("the access token has characters a bearer token cannot carry (RFC 6750 §2.1)"));
    }
    match parsed.token_type {
        // RFC 6749 §5.1: the type is case-insensitive.
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) => {
            return Err(TokenSourceError::InvalidResponse(format!("token_type {:?} is not Bearer", printable(&t, 32))));
        }
        _ => return Err(invalid("no token_type")),
    }
    let lifetime = match parsed.expires_in {
        None | Some(Value::Null) => jwt_lifetime(&access_token).unwrap_or(default_lifetime),
        Some(value) => expires_in(&value).ok_or_else(|| invalid("expires_in is not a number of seconds"))?,
    };
    if lifetime.is_zero() {
        return Err(invalid("the token has already expired"));
    }
    // Whole seconds both ways: an issuer that writes `exp = floor(now) + expires_in` gives
    // a token that lives up to a second less than `expires_in` says. Count a second less
    // (half the lifetime at most), so that a token is never handed out past its `exp`.
    let lifetime = lifetime - ROUNDING.min(lifetime / 2);
    let scope = match parsed.scope {
        Some(Value::String(scope)) => Some(scope),
        _ => None,
    };
    Ok(Issued { access_token, lifetime, scope })
}

/// `expires_in` as a JSON number or, as some providers send it, a decimal string.
fn expires_in(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)),
        Value::String(s) if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }?;
    Some(Duration::from_secs(secs))
}

/// Without `expires_in`: the remaining lifetime by the JWT's `exp`, when the token is a
/// JWT (read only for its lifetime; the token is the downstream's to verify).
fn jwt_lifetime(token: &str) -> Option<Duration> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let exp = serde_json::from_slice::<Value>(&json).ok()?.get("exp")?.as_i64()?;
    Some(Duration::from_secs(u64::try_from(exp.saturating_sub(unix_now())).unwrap_or(0)))
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// A non-2xx answer. `retry_after` is the server's `Retry-After`, if any.
pub(crate) fn failure(status: u16, body: &[u8], retry_after: Option<Duration>) -> TokenSourceError {
    let parsed: Option<Failure> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|f| f.error.as_deref()).map(|c| printable(c, 64));
    let description = parsed.as_ref().and_then(|f| f.error_description.as_deref()).map(|d| printable(d, 200));
    match (status, code) {
        // RFC 6749 §5.2 answers 400 (401 for a failed client authentication): the request
        // or the client is wrong, and trying again soon cannot help.
        (400 | 401 | 403, Some(code)) if code != "temporarily_unavailable" && code != "slow_down" => {
            TokenSourceError::Refused { code, description, retry_after }
        }
        (401 | 403, None) => TokenSourceError::Refused { code: format!("HTTP {status}"), description, retry_after },
        (_, code) => TokenSourceError::Unavailable {
            cause: match code {
                Some(code) => format!("HTTP {status} {code}"),
                None => format!("HTTP {status}"),
            },
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 16 * 1024;
    const DEFAULT: Duration = Duration::from_secs(60);

    fn ok(body: &str) -> Result<Issued, TokenSourceError> {
        success(body.as_bytes(), MAX, DEFAULT, false)
    }

    #[test]
    fn token_type_is_case_insensitive_and_must_be_bearer() {
        for t in ["Bearer", "bearer", "BEARER"] {
            let issued = ok(&format!(r#"{{"access_token":"abc","token_type":"{t}","expires_in":300}}"#)).unwrap();
            assert_eq!(issued.lifetime, Duration::from_secs(299), "a second less, for rounding");
        }
        for body in [
            r#"{"access_token":"abc","token_type":"DPoP","expires_in":300}"#,
            r#"{"access_token":"abc","expires_in":300}"#,
            r#"{"access_token":"abc","token_type":1}"#,
        ] {
            assert!(matches!(ok(body), Err(TokenSourceError::InvalidResponse(_))), "{body}");
        }
    }

    #[test]
    fn expires_in_as_number_or_decimal_string() {
        let cases = [("300", 299_000), ("\"300\"", 299_000), ("299.9", 298_000), ("\"3600\"", 3_599_000), ("1", 500)];
        for (value, millis) in cases {
            let issued = ok(&format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{value}}}"#)).unwrap();
            assert_eq!(issued.lifetime, Duration::from_millis(millis), "{value}");
        }
        for value in ["-1", "\"-1\"", "\"5m\"", "\"\"", "true", "{}", "0", "\"0\"", "\"1e3\""] {
            let body = format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{value}}}"#);
            assert!(matches!(ok(&body), Err(TokenSourceError::InvalidResponse(_))), "{value}");
        }
    }

    #[test]
    fn without_expires_in_the_jwt_exp_then_the_default() {
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, unix_now() + 120));
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        let issued = ok(&format!(r#"{{"access_token":"{jwt}","token_type":"Bearer"}}"#)).unwrap();
        assert!((118..=119).contains(&issued.lifetime.as_secs()), "{:?}", issued.lifetime);
        let issued = ok(r#"{"access_token":"opaque-token","token_type":"Bearer"}"#).unwrap();
        assert_eq!(issued.lifetime, DEFAULT - Duration::from_secs(1));
        let expired = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, unix_now() - 5));
        let body = format!(r#"{{"access_token":"e30.{expired}.c2ln","token_type":"Bearer"}}"#);
        assert!(matches!(ok(&body), Err(TokenSourceError::InvalidResponse(_))));
    }

    #[test]
    fn the_token_is_bounded_and_must_fit_a_header() {
        let big = "a".repeat(MAX + 1);
        assert!(ok(&format!(r#"{{"access_token":"{big}","token_type":"Bearer"}}"#)).is_err());
        for bad in ["", "a b", "a\\r\\nx: y", "\\u00e9", "=="] {
            let body = format!(r#"{{"access_token":"{bad}","token_type":"Bearer","expires_in":60}}"#);
            assert!(matches!(ok(&body), Err(TokenSourceError::InvalidResponse(_))), "{bad:?}");
        }
        assert!(ok(r#"{"access_token":"a.b-c_d~e+f/g==","token_type":"Bearer","expires_in":60}"#).is_ok());
        assert!(ok(r#"{"access_token":7,"token_type":"Bearer"}"#).is_err());
        assert!(ok("[]").is_err());
    }

    #[test]
    fn an_exchange_answer_names_the_issued_token_type() {
        let ok = |body: &str| success(body.as_bytes(), MAX, DEFAULT, true);
        let typed = r#"{"access_token":"a","token_type":"Bearer","expires_in":60,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
        assert!(ok(typed).is_ok());
        for body in [
            r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#,
            r#"{"access_token":"a","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#,
        ] {
            assert!(matches!(ok(body), Err(TokenSourceError::InvalidResponse(_))), "{body}");
        }
    }

    #[test]
    fn errors_are_configuration_or_transient() {
        let refused = failure(400, br#"{"error":"invalid_scope","error_description":"no \u0007such scope"}"#, None);
        assert_eq!(
            refused,
            TokenSourceError::Refused {
                code: "invalid_scope".into(),
                description: Some("no such scope".into()),
                retry_after: None
            }
        );
        assert!(refused.is_configuration());
        assert!(failure(401, b"", None).is_configuration());
        let busy = failure(400, br#"{"error":"temporarily_unavailable"}"#, Some(Duration::from_secs(3)));
        assert!(!busy.is_configuration());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert!(matches!(failure(503, b"<html>", None), TokenSourceError::Unavailable { .. }));
        assert!(matches!(failure(429, b"{}", None), TokenSourceError::Unavailable { .. }));
    }
}
