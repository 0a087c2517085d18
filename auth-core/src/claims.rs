//! The verified outcome: standard claims, scopes and the caller's own claims type.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::actor::InvalidActor;
use crate::algorithm::Algorithm;
use crate::rejection::TokenError;
use crate::scope::Scopes;
use crate::token::RawClaims;

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Larger values are treated as
/// hostile (overflow bait), not as "never expires".
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The registered and common claims of a verified access token (RFC 7519 §4.1, RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// `iss`: the issuer, exactly as configured.
    pub issuer: String,
    /// `sub`: the subject (for client-credentials tokens, usually the client).
    pub subject: Option<String>,
    /// `aud`: every audience in the token (a single string becomes one entry).
    pub audience: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
    /// `nbf`, seconds since the Unix epoch.
    pub not_before: Option<i64>,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: Option<i64>,
    /// `jti`.
    pub jwt_id: Option<String>,
    /// `client_id` (RFC 9068 §2.2).
    pub client_id: Option<String>,
    /// `azp` (OpenID Connect; Keycloak puts the client here).
    pub authorized_party: Option<String>,
    /// `scope` and `scp`, merged.
    pub scopes: Scopes,
    /// `cnf.x5t#S256` (RFC 8705 §3.1): the thumbprint of the client certificate the token
    /// is bound to.
    pub certificate_thumbprint: Option<String>,
    /// `act` (RFC 8693 §4.1): who acts on behalf of the subject, for a token obtained by
    /// token exchange.
    pub actor: Option<crate::Actor>,
}

impl Claims {
    /// Reads the raw registered claims with their exact types. `iss`, `aud` and `exp` are
    /// required; every other member, when present, must have its registered type.
    pub(crate) fn from_raw(raw: &RawClaims<'_>) -> Result<Claims, TokenError> {
        let issuer = required(raw.iss, "iss", string)?;
        let audience = required(raw.aud, "aud", audience)?;
        let expires_at = required(raw.exp, "exp", numeric_date)?;
        let mut scopes = Scopes::default();
        // `scope` is a space-delimited string (RFC 9068 §2.2.3); some providers send a JSON
        // array of strings, as `scp` often is. Any other type is an error.
        for (raw, name) in [(raw.scope, "scope"), (raw.scp, "scp")] {
            let Some(raw) = raw else { continue };
            match serde_json::from_str::<StringOrList>(raw.get()) {
                Ok(StringOrList::One(s)) => scopes.push_delimited(&s),
                Ok(StringOrList::Many(list)) => list.iter().for_each(|s| scopes.push_delimited(s)),
                Err(_) => return Err(TokenError::invalid(name)),
            }
        }
        scopes.dedup();
        Ok(Claims {
            issuer,
            subject: optional(raw.sub, "sub", string)?,
            audience,
            expires_at,
            not_before: optional(raw.nbf, "nbf", numeric_date)?,
            issued_at: optional(raw.iat, "iat", numeric_date)?,
            jwt_id: optional(raw.jti, "jti", string)?,
            client_id: optional(raw.client_id, "client_id", string)?,
            authorized_party: optional(raw.azp, "azp", string)?,
            scopes,
            certificate_thumbprint: raw.cnf.map(confirmation).transpose()?,
            actor: raw.act.map(|act| crate::Actor::parse(act.get()).map_err(actor_error)).transpose()?,
        })
    }

    /// The calling client: `client_id`, else `azp`, else `sub`.
    pub fn client(&self) -> Option<&str> {
        self.client_id.as_deref().or(self.authorized_party.as_deref()).or(self.subject.as_deref())
    }
}

/// `cnf` (RFC 7800): only a certificate thumbprint (`x5t#S256`, RFC 8705) is checked
/// here; any other confirmation (a DPoP key's `jkt`, a `jwk`) is refused, never ignored.
fn actor_error(err: InvalidActor) -> TokenError {
    match err {
        InvalidActor::TooDeep => TokenError::Malformed("the act claim nests deeper than allowed"),
        InvalidActor::NotAnActor => TokenError::invalid("act"),
    }
}

fn confirmation(raw: &RawValue) -> Result<String, TokenError> {
    let Ok(members) = serde_json::from_str::<std::collections::HashMap<String, serde_json::Value>>(raw.get()) else {
        return Err(TokenError::invalid("cnf"));
    };
    if members.len() != 1 {
        return Err(TokenError::SenderConstrained);
    }
    match members.get("x5t#S256") {
        Some(serde_json::Value::String(thumbprint)) if thumbprint_digest(thumbprint).is_some() => {
            Ok(thumbprint.clone())
        }
        Some(_) => Err(TokenError::invalid("cnf")),
        None => Err(TokenError::SenderConstrained),
    }
}

/// The SHA-256 digest a `cnf.x5t#S256` names: unpadded base64url of 32 bytes.
/// Trailing bits are allowed: RFC 8705's own example (`…jdN-dg2`) has them, and the
/// digests are what is compared.
fn thumbprint_digest(thumbprint: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let bytes = LENIENT.decode(thumbprint).ok()?;
    bytes.try_into().ok()
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

fn required<T>(raw: Option<&RawValue>, name: &'static str, read: fn(&RawValue) -> Option<T>) -> Result<T, TokenError> {
    let raw = raw.ok_or(TokenError::missing(name))?;
    read(raw).ok_or(TokenError::invalid(name))
}

fn optional<T>(
    raw: Option<&RawValue>,
    name: &'static str,
    read: fn(&RawValue) -> Option<T>,
) -> Result<Option<T>, TokenError> {
    raw.map(|raw| read(raw).ok_or(TokenError::invalid(name))).transpose()
}

fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// `aud`: a string, or a non-empty array of strings (RFC 7519 §4.1.3).
fn audience(raw: &RawValue) -> Option<Vec<String>> {
    match serde_json::from_str::<StringOrList>(raw.get()).ok()? {
        StringOrList::One(aud) => Some(vec![aud]),
        StringOrList::Many(list) if !list.is_empty() => Some(list),
        StringOrList::Many(_) => None,
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, integral or not, between the
/// epoch and year 9999. Strings, negatives, NaN-like and huge values are errors.
fn numeric_date(raw: &RawValue) -> Option<i64> {
    let number: serde_json::Number = serde_json::from_str(raw.get()).ok()?;
    let secs = if let Some(i) = number.as_i64() {
        i
    } else {
        let f = number.as_f64()?;
        if !f.is_finite() || f < 0.0 || f > MAX_NUMERIC_DATE as f64 {
            return None;
        }
        f.floor() as i64
    };
    (0..=MAX_NUMERIC_DATE).contains(&secs).then_some(secs)
}

/// A verified caller: who it is, what it may do, and the token's full claims.
///
/// Cheap to clone (one reference count). Put into request extensions by the adapters.
///
/// ```no_run
/// # async fn f(validator: auth_core::Validator, token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// #[derive(serde::Deserialize)]
/// struct Extra { tenant: String }
///
/// let principal = validator.validate(token).await?;
/// println!("{:?} may {:?}", principal.claims().client(), principal.scopes());
/// let extra: Extra = principal.custom_claims()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Principal(Arc<PrincipalInner>, Option<Arc<crate::ClientCertificate>>);

struct PrincipalInner {
    claims: Claims,
    /// The digest `cnf.x5t#S256` names, decoded once (compared on every request).
    bound_to: Option<[u8; 32]>,
    algorithm: Algorithm,
    key_id: Option<String>,
    payload: Box<str>,
}

impl Principal {
    pub(crate) fn new(claims: Claims, algorithm: Algorithm, key_id: Option<String>, payload: String) -> Self {
        let bound_to = claims.certificate_thumbprint.as_deref().and_then(thumbprint_digest);
        Principal(
            Arc::new(PrincipalInner { claims, bound_to, algorithm, key_id, payload: payload.into_boxed_str() }),
            None,
        )
    }

    /// The standard claims.
    pub fn claims(&self) -> &Claims {
        &self.0.claims
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.0.claims.scopes
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.claims.issuer
    }

    /// The subject (`sub`).
    pub fn subject(&self) -> Option<&str> {
        self.0.claims.subject.as_deref()
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }

    /// The `kid` of the key that verified the token.
    pub fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }

    /// The current actor of a delegated token (`act`, RFC 8693): who acts on behalf of the
    /// subject; [`Actor::chain`](crate::Actor::chain) lists the ones before it.
    pub fn actor(&self) -> Option<&crate::Actor> {
        self.0.claims.actor.as_ref()
    }

    /// The client certificate the request came with (the connection's, or one forwarded by
    /// a trusted proxy), if any: its thumbprint and SPIFFE ID. For a certificate-bound
    /// token it is the certificate the token is bound to.
    pub fn client_certificate(&self) -> Option<&crate::ClientCertificate> {
        self.1.as_deref()
    }

    /// The SPIFFE ID of the request's client certificate (a service-mesh identity), if any.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.1.as_deref().and_then(crate::ClientCertificate::spiffe_id)
    }

    /// The certificate digest the token is bound to (`cnf.x5t#S256`), if it is bound.
    pub(crate) fn bound_to(&self) -> Option<&[u8; 32]> {
        self.0.bound_to.as_ref()
    }

    /// The same principal, for a request that came with `certificate`.
    pub(crate) fn with_certificate(mut self, certificate: Option<Arc<crate::ClientCertificate>>) -> Self {
        self.1 = certificate;
        self
    }

    /// The verified claims as JSON text, for your own parsing.
    pub fn claims_json(&self) -> &str {
        &self.0.payload
    }

    /// About how many bytes this principal holds (for the token cache's byte budget).
    pub(crate) fn heap_bytes(&self) -> usize {
        let c = &self.0.claims;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        std::mem::size_of::<PrincipalInner>()
            + self.0.payload.len()
            + c.issuer.len()
            + opt(&c.subject)
            + c.audience.iter().map(|a| a.len() + std::mem::size_of::<String>()).sum::<usize>()
            + opt(&c.jwt_id)
            + opt(&c.client_id)
            + opt(&c.authorized_party)
            + opt(&self.0.key_id)
            + opt(&c.certificate_thumbprint)
            + c.scopes.iter().map(|s| s.len() + std::mem::size_of::<Box<str>>()).sum::<usize>()
    }

    /// Deserializes the verified claims into your own type (every member, not only
    /// the registered ones).
    pub fn custom_claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0.payload)
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The claims are safe to log; the raw payload is left out to keep logs small.
        f.debug_struct("Principal")
            .field("claims", &self.0.claims)
            .field("algorithm", &self.0.algorithm)
            .field("key_id", &self.0.key_id)
            .field("client_certificate", &self.1)
            .finish()
    }
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.claims == other.0.claims && self.0.payload == other.0.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::parse_raw_claims;

    fn claims(json: &str) -> Result<Claims, TokenError> {
        Claims::from_raw(&parse_raw_claims(json)?)
    }

    #[test]
    fn minimal_and_full() {
        let c = claims(r#"{"iss":"i","aud":"a","exp":10}"#).unwrap();
        assert_eq!((c.issuer.as_str(), c.audience.clone(), c.expires_at), ("i", vec!["a".to_string()], 10));
        let c = claims(
            r#"{"iss":"i","aud":["a","b"],"exp":10.9,"nbf":1,"iat":2,"sub":"s","jti":"j","client_id":"c","azp":"z","scope":"x y","scp":["y","z"]}"#,
        )
        .unwrap();
        assert_eq!(c.expires_at, 10);
        assert_eq!(c.scopes.iter().collect::<Vec<_>>(), ["x", "y", "z"]);
        assert_eq!(c.client(), Some("c"));
        let c = claims(r#"{"iss":"i","aud":"a","exp":1,"scp":"p q"}"#).unwrap();
        assert_eq!(c.scopes.iter().collect::<Vec<_>>(), ["p", "q"]);
        let c = claims(r#"{"iss":"i","aud":"a","exp":1,"scope":["p","q r"]}"#).unwrap();
        assert_eq!(c.scopes.iter().collect::<Vec<_>>(), ["p", "q", "r"]);
    }

    #[test]
    fn wrong_types_are_errors_not_absent() {
        let base = r#""iss":"i","aud":"a","exp":10"#;
        let cases = [
            (r#"{"aud":"a","exp":10}"#.to_string(), TokenError::missing("iss")),
            (r#"{"iss":"i","exp":10}"#.to_string(), TokenError::missing("aud")),
            (r#"{"iss":"i","aud":"a"}"#.to_string(), TokenError::missing("exp")),
            (r#"{"iss":["i"],"aud":"a","exp":10}"#.to_string(), TokenError::invalid("iss")),
            (r#"{"iss":null,"aud":"a","exp":10}"#.to_string(), TokenError::invalid("iss")),
            (r#"{"iss":"i","aud":null,"exp":10}"#.to_string(), TokenError::invalid("aud")),
            (r#"{"iss":"i","aud":[],"exp":10}"#.to_string(), TokenError::invalid("aud")),
            (r#"{"iss":"i","aud":[1],"exp":10}"#.to_string(), TokenError::invalid("aud")),
            (r#"{"iss":"i","aud":"a","exp":"10"}"#.to_string(), TokenError::invalid("exp")),
            (r#"{"iss":"i","aud":"a","exp":-1}"#.to_string(), TokenError::invalid("exp")),
            (r#"{"iss":"i","aud":"a","exp":253402300800}"#.to_string(), TokenError::invalid("exp")),
            (r#"{"iss":"i","aud":"a","exp":1e300}"#.to_string(), TokenError::invalid("exp")),
            (r#"{"iss":"i","aud":"a","exp":18446744073709551616}"#.to_string(), TokenError::invalid("exp")),
            (format!(r#"{{{base},"nbf":null}}"#), TokenError::invalid("nbf")),
            (format!(r#"{{{base},"nbf":"1"}}"#), TokenError::invalid("nbf")),
            (format!(r#"{{{base},"iat":true}}"#), TokenError::invalid("iat")),
            (format!(r#"{{{base},"sub":1}}"#), TokenError::invalid("sub")),
            (format!(r#"{{{base},"scope":[1]}}"#), TokenError::invalid("scope")),
            (format!(r#"{{{base},"scope":{{}}}}"#), TokenError::invalid("scope")),
            (format!(r#"{{{base},"scp":[1]}}"#), TokenError::invalid("scp")),
            (format!(r#"{{{base},"client_id":{{}}}}"#), TokenError::invalid("client_id")),
        ];
        for (json, want) in cases {
            assert_eq!(claims(&json).unwrap_err(), want, "{json}");
        }
    }
}
