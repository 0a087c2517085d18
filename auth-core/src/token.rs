//! The first, untrusted look at a token: its shape, then its header and claims as JSON.
//!
//! Everything here runs before the signature is checked, so it is written for hostile
//! input: sizes are bounded before any decoding, the alphabet is checked before any
//! split, and every member is read with its exact JSON type (a wrong type is an error,
//! never "absent" — cf. CVE-2026-25537).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::algorithm::Algorithm;
use crate::rejection::TokenError;

/// The three segments of a compact JWS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

/// Whether `b` is in the base64url alphabet (RFC 4648 §5). Comparisons rather than a
/// table lookup, and no early exit in the scans below, so that a scan over a token
/// vectorises (x86 has no byte gather: a table scan is one load per byte, about 2x slower
/// on a 650-byte token). These scans run on every request.
pub(crate) const fn is_base64url(b: u8) -> bool {
    let folded = b | 0x20; // A-Z onto a-z; no byte outside A-Z and a-z lands in a-z
    (folded.wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10) | (b == b'-') | (b == b'_')
}

/// Whether every byte is in the base64url alphabet.
pub(crate) fn all_base64url(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & is_base64url(b))
}

/// Checks the shape without decoding anything: only base64url characters and exactly
/// two dots, no empty segment. Padding (`=`), the standard alphabet (`+`, `/`) and
/// whitespace fail here (RFC 7515 §2, §7.1). The caller has checked the size.
pub(crate) fn split(token: &str) -> Result<Segments<'_>, TokenError> {
    crate::work::count(crate::work::Work::TokenSplit);
    // Find the first two dots; the three segments between them must be pure base64url
    // (so a third dot, or any other byte, fails the alphabet check).
    let bytes = token.as_bytes();
    let three_segments = || TokenError::Malformed("a JWS has exactly three segments");
    let first = bytes.iter().position(|&b| b == b'.').ok_or_else(three_segments)?;
    let second = first + 1 + bytes[first + 1..].iter().position(|&b| b == b'.').ok_or_else(three_segments)?;
    let dots = [first, second];
    let segments_ok = all_base64url(&bytes[..first])
        && all_base64url(&bytes[first + 1..second])
        && all_base64url(&bytes[second + 1..]);
    if !segments_ok {
        return Err(if bytes[second + 1..].contains(&b'.') {
            three_segments()
        } else {
            TokenError::Malformed("a segment is not base64url")
        });
    }
    let header = &token[..dots[0]];
    let (payload, signature) = (&token[dots[0] + 1..dots[1]], &token[dots[1] + 1..]);
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed("a segment is empty"));
    }
    Ok(Segments { header, payload, signature, signing_input: &token[..dots[1]] })
}

/// A token split once, owned: it travels from the synchronous step to the
/// verification without being scanned again.
#[derive(Clone)]
pub(crate) struct SplitToken {
    text: Box<str>,
    /// Where the two dots are.
    dots: (usize, usize),
}

impl SplitToken {
    pub(crate) fn new(token: &str, segments: Segments<'_>) -> Self {
        let first = segments.header.len();
        SplitToken { text: token.into(), dots: (first, first + 1 + segments.payload.len()) }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn segments(&self) -> Segments<'_> {
        let (first, second) = self.dots;
        let text = &*self.text;
        Segments {
            header: &text[..first],
            payload: &text[first + 1..second],
            signature: &text[second + 1..],
            signing_input: &text[..second],
        }
    }
}

/// Decodes one base64url segment (canonical: no padding, no stray trailing bits).
pub(crate) fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Malformed(what))
}

/// Reads a member as raw JSON even when it is `null`, so that `"nbf": null` is a typed
/// error instead of silently meaning "absent".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// serde reads a struct from a JSON array too (`["RS256"]`); a JOSE header and a claims
/// set must be objects (RFC 7515 §4, RFC 7519 §7.2), so anything else stops here.
fn object(text: &str) -> Result<&str, serde_json::Error> {
    if text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        Ok(text)
    } else {
        Err(serde::de::Error::custom("not a JSON object"))
    }
}

/// The header members this library reads. serde rejects a duplicated member, so
/// `{"alg":"RS256","alg":"none"}` cannot be read two ways.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    alg: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    kid: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    typ: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    crit: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    b64: Option<&'a RawValue>,
    // `jwk`, `jku`, `x5u`, `x5c` and every other member are ignored on purpose: a
    // token never chooses its own key, and nothing it names is ever fetched.
}

/// The parts of a JOSE header that decide how a token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
}

pub(crate) fn parse_header(segment: &str) -> Result<Header, TokenError> {
    let bytes = decode_segment(segment, "the header is not base64url")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| TokenError::Malformed("the header is not UTF-8"))?;
    let raw: RawHeader<'_> = object(text)
        .and_then(serde_json::from_str)
        .map_err(|_| TokenError::Malformed("the header is not a JSON object with well-typed, unique members"))?;

    // RFC 7515 §4.1.11: we implement no extension, so any `crit` is not understood.
    // RFC 7797: `b64: false` changes what is signed; only the default (true) is accepted.
    if raw.crit.is_some() {
        return Err(TokenError::UnsupportedCriticalHeader);
    }
    if raw.b64.is_some_and(|b64| b64.get() != "true") {
        return Err(TokenError::UnsupportedCriticalHeader);
    }
    let alg = match raw.alg {
        None => return Err(TokenError::Malformed("the header has no alg")),
        Some(raw) => {
            let name: std::borrow::Cow<'_, str> =
                serde_json::from_str(raw.get()).map_err(|_| TokenError::UnsupportedAlgorithm)?;
            Algorithm::from_name(&name).ok_or(TokenError::UnsupportedAlgorithm)?
        }
    };
    let kid = optional_string(raw.kid, "the header's kid is not a string")?;
    let typ = optional_string(raw.typ, "the header's typ is not a string")?;
    Ok(Header { alg, kid, typ })
}

fn optional_string(raw: Option<&RawValue>, what: &'static str) -> Result<Option<String>, TokenError> {
    raw.map(|raw| serde_json::from_str::<String>(raw.get()).map_err(|_| TokenError::Malformed(what))).transpose()
}

/// The registered claims, each kept as raw JSON until it is read with its exact type.
/// Duplicated members are rejected by serde.
#[derive(Deserialize)]
pub(crate) struct RawClaims<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) iss: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) sub: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) aud: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) exp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) nbf: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) iat: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) jti: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) client_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) azp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) scope: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) scp: Option<&'a RawValue>,
    /// The actor of a delegated token (RFC 8693 §4.1).
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) act: Option<&'a RawValue>,
    /// A confirmation (sender constraint, RFC 7800): `x5t#S256` (RFC 8705), `jkt` (RFC 9449).
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) cnf: Option<&'a RawValue>,
}

pub(crate) fn parse_raw_claims(text: &str) -> Result<RawClaims<'_>, TokenError> {
    object(text)
        .and_then(serde_json::from_str)
        .map_err(|_| TokenError::Malformed("the claims are not a JSON object with unique members"))
}

/// Decodes the payload segment to UTF-8 JSON text.
pub(crate) fn decode_payload(segment: &str) -> Result<String, TokenError> {
    let bytes = decode_segment(segment, "the payload is not base64url")?;
    String::from_utf8(bytes).map_err(|_| TokenError::Malformed("the payload is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn shape_is_checked_before_decoding() {
        assert!(split("a.b.c").is_ok());
        for bad in [
            "a.b",
            "a.b.c.d",
            "a.b.c.d.e",
            ".b.c",
            "a..c",
            "a.b.",
            "a.b.c=",
            "a+.b.c",
            "a/b.c.d",
            "a .b.c",
            "a.b.c\n",
            "",
        ] {
            assert!(matches!(split(bad), Err(TokenError::Malformed(_))), "{bad:?}");
        }
        let s = split("hh.pp.ss").unwrap();
        assert_eq!((s.header, s.payload, s.signature, s.signing_input), ("hh", "pp", "ss", "hh.pp"));
        let owned = SplitToken::new("hh.pp.ss", s);
        let t = owned.segments();
        assert_eq!((t.header, t.payload, t.signature, t.signing_input), ("hh", "pp", "ss", "hh.pp"));
    }

    #[test]
    fn a_token_full_of_dots_is_rejected_at_the_third() {
        let token = ".".repeat(8000);
        assert!(matches!(split(&token), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn header_rules() {
        let ok = parse_header(&b64(r#"{"alg":"RS256","kid":"k","typ":"at+jwt","jku":"http://x"}"#)).unwrap();
        assert_eq!(ok, Header { alg: Algorithm::RS256, kid: Some("k".into()), typ: Some("at+jwt".into()) });
        // escaped alg is the same string
        assert_eq!(parse_header(&b64(r#"{"alg":"\u0052S256"}"#)).unwrap().alg, Algorithm::RS256);
        let cases: &[(&str, TokenError)] = &[
            (r#"{"alg":"none"}"#, TokenError::UnsupportedAlgorithm),
            (r#"{"alg":"NoNe"}"#, TokenError::UnsupportedAlgorithm),
            (r#"{"alg":"HS256"}"#, TokenError::UnsupportedAlgorithm),
            (r#"{"alg":1}"#, TokenError::UnsupportedAlgorithm),
            (r#"{"alg":null}"#, TokenError::UnsupportedAlgorithm),
            (r#"{"alg":"RS256","crit":["exp"],"exp":1}"#, TokenError::UnsupportedCriticalHeader),
            (r#"{"alg":"RS256","crit":[]}"#, TokenError::UnsupportedCriticalHeader),
            (r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#, TokenError::UnsupportedCriticalHeader),
            (r#"{"alg":"RS256","b64":false}"#, TokenError::UnsupportedCriticalHeader),
        ];
        for (header, want) in cases {
            assert_eq!(parse_header(&b64(header)).unwrap_err(), *want, "{header}");
        }
        for malformed in [
            r#"{"kid":"k"}"#,
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"alg":"RS256","kid":null}"#,
            r#"{"alg":"RS256","typ":["JWT"]}"#,
            r#"["RS256"]"#,
            r#""RS256""#,
            r#"{"alg":"RS256"} trailing"#,
            "not json",
        ] {
            assert!(matches!(parse_header(&b64(malformed)), Err(TokenError::Malformed(_))), "{malformed}");
        }
    }

    #[test]
    fn deep_nesting_neither_overflows_nor_passes_as_a_claim() {
        // Unknown members are skipped iteratively by serde_json (no recursion), so depth
        // costs nothing there; the size cap bounds the work.
        let deep = format!(r#"{{"alg":"RS256","x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_header(&b64(&deep)).is_ok());
        let claims = format!(r#"{{"iss":"a","aud":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let raw = parse_raw_claims(&claims).unwrap();
        assert!(crate::claims::Claims::from_raw(&raw).is_err());
    }

    #[test]
    fn claims_keep_null_as_present_and_reject_duplicates() {
        let raw = parse_raw_claims(r#"{"iss":"a","nbf":null}"#).unwrap();
        assert_eq!(raw.nbf.map(|v| v.get()), Some("null"));
        assert!(raw.exp.is_none());
        assert!(parse_raw_claims(r#"{"iss":"a","iss":"b"}"#).is_err());
        assert!(parse_raw_claims(r#"{"aud":"a","aud":"b"}"#).is_err());
        assert!(parse_raw_claims(r#"[1]"#).is_err());
    }
}
