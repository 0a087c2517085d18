//! Finding the bearer token in a request (RFC 6750 §2), framework-free: adapters pass
//! the raw `Authorization` header values and the query string, and get the token or the
//! refusal both adapters must answer alike (RFC 6750 §3.1):
//!
//! - no credentials, or credentials of another scheme: 401 with a bare challenge;
//! - a `Bearer` credential whose token is malformed: 401 `invalid_token`;
//! - more than one token in the request: 400 `invalid_request`.

use crate::rejection::{AuthError, RequestError, TokenError};

/// Where a token may come from, besides the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialSources {
    /// Accept `?access_token=` (RFC 6750 §2.3). Off by default: URLs end up in logs.
    pub query: bool,
}

/// Extracts the bearer token.
///
/// - No `Authorization` header (and no allowed query token): [`AuthError::MissingToken`].
/// - A scheme other than `Bearer` (case-insensitive), or a value with no scheme at all:
///   [`AuthError::UnsupportedScheme`] (401, bare challenge).
/// - `Bearer` with a missing or malformed token (RFC 6750 `b64token` syntax, one space
///   between scheme and token, nothing after it): 401 `invalid_token`.
/// - More than one token: two `Authorization` fields, two `Bearer` credentials in one
///   field (as a proxy merging two fields writes them), a token in the header *and* the
///   query string (whether or not query tokens are allowed), or two `access_token`
///   parameters: 400 `invalid_request` (RFC 6750 §2: one method, one token).
///
/// ```
/// use auth_core::{bearer_token, CredentialSources, AuthError};
///
/// let headers: [&[u8]; 1] = [b"Bearer abc.def.ghi"];
/// assert_eq!(bearer_token(headers, None, CredentialSources::default()).unwrap(), "abc.def.ghi");
/// assert_eq!(bearer_token([], None, CredentialSources::default()), Err(AuthError::MissingToken));
/// let basic: [&[u8]; 1] = [b"Basic dXNlcjpwYXNz"];
/// assert_eq!(bearer_token(basic, None, CredentialSources::default()), Err(AuthError::UnsupportedScheme));
/// let spaced: [&[u8]; 1] = [b"Bearer abc def"];
/// assert_eq!(bearer_token(spaced, None, CredentialSources::default()).unwrap_err().status(), 401);
/// ```
pub fn bearer_token<'a, I>(
    authorization: I,
    query: Option<&'a str>,
    sources: CredentialSources,
) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    bearer_credential(authorization, query, sources)?.b64token()
}

/// A bearer token found in a request, whose `b64token` alphabet may not be checked yet.
///
/// Checking the alphabet is a scan of the whole token; [`AccessPolicy`](crate::AccessPolicy)
/// first looks the token up in the verified-token cache and scans only on a miss. A hit
/// is the exact string of a token that passed JWS splitting, whose alphabet (base64url
/// and dots) lies inside `b64token`, so the answer is the same either way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credential<'a> {
    /// The token's bytes: a cache hit needs no UTF-8 check (it matches a verified,
    /// ASCII-only token byte for byte); a miss is checked by [`checked`](Self::b64token).
    pub(crate) token: &'a [u8],
    /// The whole `Authorization` value, to tell a malformed token from two merged
    /// credentials when the alphabet check fails; `None` for a query token (checked).
    field: Option<&'a [u8]>,
}

impl<'a> Credential<'a> {
    /// The token, once its alphabet is known to be `b64token`.
    pub(crate) fn b64token(self) -> Result<&'a str, AuthError> {
        let malformed = || AuthError::from(TokenError::Malformed("the bearer token is not a b64token"));
        match self.field {
            // b64token is ASCII: the UTF-8 conversion cannot fail after the alphabet check.
            None => std::str::from_utf8(self.token).map_err(|_| malformed()),
            Some(_) if is_b64token(self.token) => std::str::from_utf8(self.token).map_err(|_| malformed()),
            // Only a value that is not one b64token can hold two credentials (a comma):
            // looked for here, off the path of every well-formed request.
            Some(field) if holds_several_bearer_credentials(field) => Err(RequestError::MultipleTokens.into()),
            Some(_) => Err(malformed()),
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
        (_, Some(QueryToken::Several)) => Err(RequestError::MultipleTokens.into()),
        (Some(_), Some(_)) => Err(RequestError::MultipleTokens.into()),
        (Some(value), None) => Ok(Credential { token: split_authorization(value)?, field: Some(value) }),
        (None, Some(QueryToken::One(token))) if sources.query => {
            Ok(Credential { token: token.as_bytes(), field: None })
        }
        (None, Some(QueryToken::Malformed)) if sources.query => {
            Err(TokenError::Malformed("the access_token parameter is not a b64token").into())
        }
        (None, _) => Err(AuthError::MissingToken),
    }
}

/// `Bearer <token>`: the scheme case-insensitive (RFC 7235 §2.1), then one or more
/// spaces, then the token; optional white space around the field value is not part of
/// it (RFC 9110 §5.5). The token must also be a `b64token`
/// (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`): see [`Credential`].
fn split_authorization(value: &[u8]) -> Result<&[u8], AuthError> {
    let value = value.trim_ascii();
    let scheme_end = value.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::UnsupportedScheme);
    }
    let malformed = |what| AuthError::from(TokenError::Malformed(what));
    let Some(token) = rest.strip_prefix(b" ") else {
        return Err(malformed(if rest.is_empty() {
            "the bearer token is empty"
        } else {
            "the scheme and the token are not separated by a space"
        }));
    };
    let token = &token[token.iter().take_while(|&&b| b == b' ').count()..];
    if token.is_empty() {
        return Err(malformed("the bearer token is empty"));
    }
    Ok(token)
}

/// Whether a field value lists two or more `Bearer` credentials, comma-separated.
fn holds_several_bearer_credentials(field: &[u8]) -> bool {
    let bearer = |element: &[u8]| {
        let element = element.trim_ascii();
        element.len() > 6 && element[..6].eq_ignore_ascii_case(b"bearer") && element[6] == b' '
    };
    field.split(|&b| b == b',').filter(|element| bearer(element)).nth(1).is_some()
}

/// The b64token alphabet of RFC 6750 §2.1 (see `token::is_base64url` for why comparisons).
const fn is_b64token_byte(b: u8) -> bool {
    crate::token::is_base64url(b) | (b == b'.') | (b == b'~') | (b == b'+') | (b == b'/')
}

fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty() && body.iter().fold(true, |ok, &b| ok & is_b64token_byte(b))
}

/// The `access_token` query parameters.
enum QueryToken<'a> {
    One(&'a str),
    /// One parameter, not a b64token.
    Malformed,
    /// More than one.
    Several,
}

fn query_access_token(query: &str) -> Option<QueryToken<'_>> {
    let mut found = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "access_token" {
            if found.is_some() {
                return Some(QueryToken::Several);
            }
            // JWS compact serialization needs no percent-encoding; anything else is refused.
            found = Some(if is_b64token(value.as_bytes()) { QueryToken::One(value) } else { QueryToken::Malformed });
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
        assert_eq!(one(" Bearer a.b.c\t"), Ok("a.b.c"), "white space around the field value is not part of it");
        for malformed in
            ["Bearer", "Bearer ", "Bearer  ", "Bearer a b", "Bearer a,b", "Bearer ===", "Bearer a\tb", "Bearer\ta.b.c"]
        {
            let err = one(malformed).unwrap_err();
            assert!(matches!(err, AuthError::InvalidToken(TokenError::Malformed(_))), "{malformed:?}: {err:?}");
        }
        assert!(matches!(
            bearer_token([&b"Bearer \xff"[..]], None, CredentialSources::default()),
            Err(AuthError::InvalidToken(TokenError::Malformed(_)))
        ));
        for other in ["Basic abc", "Bearerabc", "Token a.b.c", "a.b.c", "", "B\u{e9}arer a"] {
            assert_eq!(one(other), Err(AuthError::UnsupportedScheme), "{other:?}");
        }
        for merged in ["Bearer a.b.c, Bearer d.e.f", "bearer a,BEARER b", "Bearer a, Basic b, Bearer c"] {
            assert_eq!(one(merged), Err(RequestError::MultipleTokens.into()), "{merged:?}");
        }
        assert!(matches!(one("Bearer a, Basic b"), Err(AuthError::InvalidToken(_))), "one bearer credential");
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
        assert_eq!(bearer_token([], Some("access_token=a%20b"), on).unwrap_err().status(), 401);
        assert_eq!(bearer_token([], Some("access_token=a%20b"), off), Err(AuthError::MissingToken));
        for sources in [on, off] {
            assert_eq!(
                bearer_token([], Some("access_token=a&access_token=b"), sources),
                Err(RequestError::MultipleTokens.into())
            );
        }
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
