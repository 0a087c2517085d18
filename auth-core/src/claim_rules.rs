//! The claim rules of one issuer (time, audience, required claims): a pure function of
//! the rules, the token's claims and `now`, so that every boundary is tested exactly.
//! The header rules (`alg`, `typ`) and the key and signature are checked by the validator.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::IgnoredAny;

use crate::claims::Claims;
use crate::rejection::{ClaimName, TokenError};
use crate::token::RawClaims;

/// What an issuer's tokens must satisfy besides their signature.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    /// Accepted `aud` values (at least one must match).
    pub(crate) audiences: Vec<String>,
    /// Seconds of clock skew allowed on `exp`, `nbf`, `iat` and the maximum age.
    pub(crate) leeway: i64,
    /// The maximum age counted from `iat`, in seconds (then `iat` is required).
    pub(crate) max_age: Option<i64>,
    /// Claims that must be present.
    pub(crate) required: Vec<Arc<str>>,
}

impl ClaimRules {
    pub(crate) fn new(
        audiences: Vec<String>,
        leeway: Duration,
        max_age: Option<Duration>,
        required: Vec<Arc<str>>,
    ) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        ClaimRules { audiences, leeway: secs(leeway), max_age: max_age.map(secs), required }
    }

    /// Applies the rules at `now` (Unix seconds). Returns until when the token may be
    /// served from the cache: its `exp`, or sooner when the maximum age ends first.
    pub(crate) fn apply(
        &self,
        claims: &Claims,
        raw: &RawClaims<'_>,
        payload: &str,
        now: i64,
    ) -> Result<i64, TokenError> {
        // A certificate binding (`cnf.x5t#S256`) is checked per request, cache hit or not
        // (`Validator::authorize_principal`): a cached token is only as good as the
        // certificate presented with it.
        let leeway = self.leeway;
        // RFC 7519 §4.1.4: not accepted on or after exp.
        if now >= claims.expires_at.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if claims.not_before.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if claims.issued_at.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(TokenError::IssuedInFuture);
        }
        let mut valid_until = claims.expires_at;
        if let Some(max_age) = self.max_age {
            let iat = claims.issued_at.ok_or(TokenError::missing("iat"))?;
            if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
                return Err(TokenError::TooOld);
            }
            valid_until = valid_until.min(iat.saturating_add(max_age));
        }
        if !claims.audience.iter().any(|aud| self.audiences.contains(aud)) {
            return Err(TokenError::InvalidAudience);
        }
        if !self.required.is_empty() {
            let mut members: Option<HashMap<Cow<'_, str>, IgnoredAny>> = None;
            for name in &self.required {
                let present = match &**name {
                    "iss" | "aud" | "exp" => true,
                    "sub" => raw.sub.is_some(),
                    "nbf" => raw.nbf.is_some(),
                    "iat" => raw.iat.is_some(),
                    "jti" => raw.jti.is_some(),
                    "client_id" => raw.client_id.is_some(),
                    "azp" => raw.azp.is_some(),
                    "scope" => raw.scope.is_some(),
                    "scp" => raw.scp.is_some(),
                    other => {
                        let members = match &mut members {
                            Some(members) => members,
                            None => members.insert(
                                serde_json::from_str(payload)
                                    .map_err(|_| TokenError::Malformed("the claims are not a JSON object"))?,
                            ),
                        };
                        members.contains_key(other)
                    }
                };
                if !present {
                    return Err(TokenError::MissingClaim(ClaimName::Configured(name.clone())));
                }
            }
        }
        Ok(valid_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::parse_raw_claims;

    const NOW: i64 = 1_800_000_000;

    fn rules(leeway: u64, max_age: Option<u64>) -> ClaimRules {
        ClaimRules::new(vec!["api".into()], Duration::from_secs(leeway), max_age.map(Duration::from_secs), Vec::new())
    }

    fn apply(rules: &ClaimRules, claims: serde_json::Value, now: i64) -> Result<i64, TokenError> {
        let payload = claims.to_string();
        let raw = parse_raw_claims(&payload)?;
        let claims = Claims::from_raw(&raw)?;
        rules.apply(&claims, &raw, &payload, now)
    }

    fn token(exp: i64) -> serde_json::Value {
        serde_json::json!({"iss": "https://idp", "aud": "api", "exp": exp})
    }

    #[test]
    fn exp_plus_leeway_is_the_first_refused_second() {
        let r = rules(30, None);
        assert_eq!(apply(&r, token(NOW - 29), NOW), Ok(NOW - 29), "inside the leeway");
        assert_eq!(apply(&r, token(NOW - 30), NOW), Err(TokenError::Expired), "exp + leeway = now");
        assert_eq!(apply(&rules(0, None), token(NOW + 1), NOW), Ok(NOW + 1));
        assert_eq!(apply(&rules(0, None), token(NOW), NOW), Err(TokenError::Expired), "RFC 7519: on or after exp");
    }

    #[test]
    fn nbf_minus_leeway_is_the_first_accepted_second() {
        let r = rules(30, None);
        let with_nbf = |nbf: i64| {
            let mut t = token(NOW + 600);
            t["nbf"] = nbf.into();
            t
        };
        assert!(apply(&r, with_nbf(NOW + 30), NOW).is_ok(), "nbf - leeway = now");
        assert_eq!(apply(&r, with_nbf(NOW + 31), NOW), Err(TokenError::NotYetValid));
    }

    #[test]
    fn iat_in_the_future_beyond_the_leeway_is_refused() {
        let r = rules(30, None);
        let with_iat = |iat: i64| {
            let mut t = token(NOW + 600);
            t["iat"] = iat.into();
            t
        };
        assert!(apply(&r, with_iat(NOW + 30), NOW).is_ok());
        assert_eq!(apply(&r, with_iat(NOW + 31), NOW), Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn max_age_counts_from_iat_with_leeway_and_shortens_the_cache_life() {
        let r = rules(30, Some(300));
        let issued = |iat: i64| {
            let mut t = token(NOW + 3600);
            t["iat"] = iat.into();
            t
        };
        // Age 330 = max age + leeway: still accepted; cached only until iat + max age.
        assert_eq!(apply(&r, issued(NOW - 330), NOW), Ok(NOW - 30));
        assert_eq!(apply(&r, issued(NOW - 331), NOW), Err(TokenError::TooOld));
        assert_eq!(apply(&r, token(NOW + 3600), NOW), Err(TokenError::missing("iat")), "max age needs iat");
    }

    #[test]
    fn audience_and_required_claims() {
        let mut r = rules(0, None);
        let mut other = token(NOW + 60);
        other["aud"] = serde_json::json!(["other", "api"]);
        assert!(apply(&r, other, NOW).is_ok(), "one accepted audience is enough");
        let mut wrong = token(NOW + 60);
        wrong["aud"] = "other".into();
        assert_eq!(apply(&r, wrong, NOW), Err(TokenError::InvalidAudience));

        r.required = vec!["sub".into(), "tenant".into()];
        let mut full = token(NOW + 60);
        full["sub"] = "svc".into();
        full["tenant"] = "t1".into();
        assert!(apply(&r, full.clone(), NOW).is_ok());
        full.as_object_mut().map(|o| o.remove("tenant"));
        assert_eq!(apply(&r, full, NOW), Err(TokenError::MissingClaim(ClaimName::Configured("tenant".into()))));
        assert_eq!(apply(&r, token(NOW + 60), NOW), Err(TokenError::MissingClaim(ClaimName::Configured("sub".into()))));
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        // A leeway and a maximum age of u64::MAX seconds: every sum saturates (debug builds
        // would panic on an overflow), and the token is simply accepted until its exp.
        let r = rules(u64::MAX, Some(u64::MAX));
        let far = 253_402_300_799; // 9999-12-31T23:59:59Z
        let mut t = token(far);
        t["iat"] = 0.into();
        t["nbf"] = far.into();
        assert_eq!(apply(&r, t, far), Ok(far));
        assert_eq!(apply(&rules(0, None), token(0), far), Err(TokenError::Expired));
    }
}
