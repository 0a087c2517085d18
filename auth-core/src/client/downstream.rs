//! Reading a downstream's refusal of our token.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

/// Whether a downstream's response says the token it got is invalid: a `401` with a
/// `Bearer` challenge carrying `error="invalid_token"` (RFC 6750 §3.1; other errors such
/// as `insufficient_scope` do not make a new token any better), or gRPC status 16
/// (`UNAUTHENTICATED`) in a trailers-only response, whatever the HTTP status.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use auth_core::client::says_invalid_token;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("www-authenticate", r#"Bearer realm="api", error="invalid_token""#.parse().unwrap());
/// assert!(says_invalid_token(StatusCode::UNAUTHORIZED, &headers));
/// assert!(!says_invalid_token(StatusCode::OK, &headers));
/// ```
pub fn says_invalid_token(status: StatusCode, headers: &HeaderMap) -> bool {
    match headers.get("grpc-status") {
        Some(grpc) => grpc.as_bytes() == b"16",
        None => {
            status == StatusCode::UNAUTHORIZED
                && headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).any(bearer_invalid_token)
        }
    }
}

/// One `WWW-Authenticate` field value (it may hold several challenges).
fn bearer_invalid_token(value: &str) -> bool {
    let mut in_bearer = false;
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        // A token: a scheme (followed by a space) or a parameter name (followed by '=').
        let end = rest.find(['=', ',', ' ']).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        let after_ws = after.trim_start();
        if let Some(value_part) = after_ws.strip_prefix('=') {
            let value_part = value_part.trim_start();
            let (param_value, remaining) = match value_part.strip_prefix('"') {
                Some(quoted) => split_quoted(quoted),
                None => {
                    let end = value_part.find([',', ' ']).unwrap_or(value_part.len());
                    (value_part[..end].to_owned(), &value_part[end..])
                }
            };
            if in_bearer && word.eq_ignore_ascii_case("error") && param_value == "invalid_token" {
                return true;
            }
            rest = remaining.trim_start_matches([',', ' ']);
        } else {
            if !word.is_empty() {
                // A new challenge starts with its scheme.
                in_bearer = word.eq_ignore_ascii_case("bearer");
            }
            rest = after.trim_start_matches([',', ' ']);
        }
    }
    false
}

/// The content of a quoted string (after its opening quote) and what follows it.
fn split_quoted(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return (out, &s[i + 1..]),
            c => out.push(c),
        }
    }
    (out, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let yes = [
            r#"Bearer error="invalid_token""#,
            r#"Bearer realm="a, error=\"invalid_token\"", error="invalid_token", error_description="expired""#,
            r#"bearer error=invalid_token"#,
            r#"Basic realm="x", Bearer error="invalid_token""#,
            r#"Bearer realm="api",error="invalid_token""#,
        ];
        for v in yes {
            assert!(bearer_invalid_token(v), "{v}");
        }
        let no = [
            "Bearer",
            r#"Bearer realm="api""#,
            r#"Bearer error="insufficient_scope", scope="a""#,
            r#"Bearer realm="error=\"invalid_token\"""#,
            r#"Basic error="invalid_token""#,
            r#"DPoP error="invalid_token", Bearer realm="x""#,
            r#"Bearer error_description="invalid_token""#,
            "",
        ];
        for v in no {
            assert!(!bearer_invalid_token(v), "{v}");
        }
    }

    #[test]
    fn grpc_unauthenticated_whatever_the_http_status() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "16".parse().unwrap());
        assert!(says_invalid_token(StatusCode::OK, &headers));
        headers.insert("grpc-status", "7".parse().unwrap());
        assert!(!says_invalid_token(StatusCode::OK, &headers));
        // gRPC's own status decides, not a stray challenge beside it.
        headers.insert("www-authenticate", r#"Bearer error="invalid_token""#.parse().unwrap());
        assert!(!says_invalid_token(StatusCode::UNAUTHORIZED, &headers));
    }

    #[test]
    fn a_challenge_counts_only_on_a_401() {
        let mut headers = HeaderMap::new();
        headers.insert("www-authenticate", r#"Bearer error="invalid_token""#.parse().unwrap());
        assert!(says_invalid_token(StatusCode::UNAUTHORIZED, &headers));
        for status in [StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::SERVICE_UNAVAILABLE] {
            assert!(!says_invalid_token(status, &headers), "{status}");
        }
        assert!(!says_invalid_token(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
    }
}
