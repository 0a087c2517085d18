//! Finding the bearer token in a request (RFC 6750 §2), framework-free: adapters pass
//! the raw `Authorization` header values and the query string, and get the token or the
//! 400/401 that both adapters must answer alike.

use crate::error::{AuthError, RequestError};

/// Where a token may come from, besides the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialSources {
    /// Accept `?access_token=` (RFC 6750 §2.3). Off by default: URLs end up in logs.
    pub query: bool,
}

/// Extracts the bearer token.
///
/// - No `Authorization` header (and no allowed query token): [`AuthError::MissingToken`].
/// - More than one `Authorization` header: `invalid_request`.
/// - A scheme other than `Bearer` (case-insensitive), a missing or malformed token
///   (RFC 6750 `b64token` syntax), or extra text: `invalid_request`.
/// - A token in the header *and* the query string, whether or not query tokens are
///   allowed: `invalid_request` (RFC 6750 §2: one method per request).
///
/// ```
/// use auth_core::{bearer_token, CredentialSources, AuthError};
///
/// let headers: [&[u8]; 1] = [b"Bearer abc.def.ghi"];
/// assert_eq!(bearer_token(headers, None, CredentialSources::default()).unwrap(), "abc.def.ghi");
/// assert_eq!(bearer_token([], None, CredentialSources::default()), Err(AuthError::MissingToken));
/// let basic: [&[u8]; 1] = [b"Basic dXNlcjpwYXNz"];
/// assert_eq!(bearer_token(basic, None, CredentialSources::default()).unwrap_err().status(), 400);
/// ```
pub fn bearer_token<'a, I>(
    authorization: I,
    query: Option<&'a str>,
    sources: CredentialSources,
) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    bearer_credential(authorization, query, sources)?.checked()
}

/// A bearer token found in a request, whose `b64token` alphabet may not be checked yet.
///
/// Checking the alphabet is a scan of the whole token; [`AccessPolicy`](crate::AccessPolicy)
/// first looks the token up in the verified-token cache and scans only on a miss. A hit
/// is the exact string of a token that passed JWS splitting, whose alphabet (base64url
/// and dots) lies inside `b64token`, so the answer is the same either way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credential<'a> {
    pub(crate) token: &'a str,
    alphabet_checked: bool,
}

impl<'a> Credential<'a> {
    /// The token, once its alphabet is known to be `b64token`.
    pub(crate) fn checked(self) -> Result<&'a str, AuthError> {
        if self.alphabet_checked || is_b64token(self.token) {
            Ok(self.token)
        } else {
            Err(RequestError::MalformedAuthorizationHeader.into())
        }
    }
}

/// [`bearer_token`] up to, not including, the header token's alphabet check.
pub(crate) fn bearer_credential<'a, I>(
    authorization: I,
    query: Option<&'a str>,
    sources: CredentialSources,
) -> Result<Credential<'a>, AuthError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = authorization.into_iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(RequestError::MultipleAuthorizationHeaders.into());
    }
    let query_token = query.and_then(query_access_token);
    match (header, query_token) {
        (Some(_), Some(_)) => Err(RequestError::MultipleTokens.into()),
        (Some(value), None) => Ok(Credential { token: split_authorization(value)?, alphabet_checked: false }),
        (None, Some(Ok(token))) if sources.query => Ok(Credential { token, alphabet_checked: true }),
        (None, Some(Err(()))) if sources.query => Err(RequestError::MalformedAuthorizationHeader.into()),
        (None, _) => Err(AuthError::MissingToken),
    }
}

/// `Bearer <token>`: scheme case-insensitive (RFC 7235 §2.1), one or more spaces, then
/// the token, with trailing spaces dropped. The token must also be a `b64token`
/// (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`): see [`Credential`].
fn split_authorization(value: &[u8]) -> Result<&str, AuthError> {
    let malformed = || AuthError::from(RequestError::MalformedAuthorizationHeader);
    let value = std::str::from_utf8(value).map_err(|_| malformed())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    Ok(rest.trim_start_matches(' ').trim_end_matches(' '))
}

/// The b64token alphabet of RFC 6750 §2.1 (see `token::is_base64url` for why comparisons).
const fn is_b64token_byte(b: u8) -> bool {
    crate::token::is_base64url(b) | (b == b'.') | (b == b'~') | (b == b'+') | (b == b'/')
}

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().fold(true, |ok, b| ok & is_b64token_byte(b))
}

/// The `access_token` query parameter: `Some(Ok)` when present once and well-formed.
fn query_access_token(query: &str) -> Option<Result<&str, ()>> {
    let mut found = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "access_token" {
            if found.is_some() {
                return Some(Err(()));
            }
            // JWS compact serialization needs no percent-encoding; anything else is refused.
            found = Some(if is_b64token(value) { Ok(value) } else { Err(()) });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Result<&str, AuthError> {
        bearer_token([v.as_bytes()], None, CredentialSources::default())
    }

    #[test]
    fn b64token_alphabet_is_exact() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_byte(b), expected, "byte {b:#04x}");
            let base64url = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(crate::token::is_base64url(b), base64url, "byte {b:#04x}");
        }
    }

    #[test]
    fn header_forms() {
        assert_eq!(one("Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(one("bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(one("BEARER   a.b.c  "), Ok("a.b.c"));
        assert_eq!(one("Bearer abc=="), Ok("abc=="));
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer  ",
            "Basic abc",
            "Bearerabc",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer a\tb",
            "Token a.b.c",
            "Bearer a.b.c, Bearer d.e.f",
            " Bearer a",
        ] {
            assert_eq!(one(bad).unwrap_err().status(), 400, "{bad:?}");
        }
        assert_eq!(bearer_token([&b"Bearer \xff"[..]], None, CredentialSources::default()).unwrap_err().status(), 400);
    }

    #[test]
    fn missing_and_multiple() {
        assert_eq!(bearer_token([], None, CredentialSources::default()), Err(AuthError::MissingToken));
        let two: [&[u8]; 2] = [b"Bearer a", b"Bearer a"];
        assert_eq!(
            bearer_token(two, None, CredentialSources::default()),
            Err(RequestError::MultipleAuthorizationHeaders.into())
        );
    }

    #[test]
    fn query_tokens_only_when_enabled_and_never_with_a_header() {
        let off = CredentialSources::default();
        let on = CredentialSources { query: true };
        assert_eq!(bearer_token([], Some("access_token=a.b.c"), off), Err(AuthError::MissingToken));
        assert_eq!(bearer_token([], Some("x=1&access_token=a.b.c"), on), Ok("a.b.c"));
        assert_eq!(bearer_token([], Some("access_token=a%20b"), on).unwrap_err().status(), 400);
        assert_eq!(bearer_token([], Some("access_token=a&access_token=b"), on).unwrap_err().status(), 400);
        let header: [&[u8]; 1] = [b"Bearer a.b.c"];
        for sources in [on, off] {
            assert_eq!(
                bearer_token(header, Some("access_token=a.b.c"), sources),
                Err(RequestError::MultipleTokens.into())
            );
        }
        assert_eq!(bearer_token(header, Some("other=1"), off), Ok("a.b.c"));
    }
}
