//! What a token is for: the key of the per-target token cache.

use std::fmt;

/// The service a token is requested for: RFC 8707 `resource` values, a provider-specific
/// `audience` (Auth0-style) and the scopes. One [`TokenSource`](super::TokenSource) keeps
/// one cached token per distinct target; resources and scopes are kept sorted and without
/// duplicates, so the order they are given in does not make a second target.
///
/// ```
/// use auth_core::client::TokenTarget;
///
/// let a = TokenTarget::resource("https://billing.internal").scope("invoices:read orders:read");
/// let b = TokenTarget::resource("https://billing.internal").scope("orders:read").scope("invoices:read");
/// assert_eq!(a, b);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct TokenTarget {
    resources: Vec<String>,
    audience: Option<String>,
    scopes: Vec<String>,
}

impl TokenTarget {
    /// No resource, audience or scope: the authorization server's default for the client.
    pub fn new() -> Self {
        TokenTarget::default()
    }

    /// A target named by one RFC 8707 resource indicator (an absolute URI).
    pub fn resource(resource: impl Into<String>) -> Self {
        TokenTarget::new().and_resource(resource)
    }

    /// Adds a resource indicator (a token for several resources at once).
    #[must_use]
    pub fn and_resource(mut self, resource: impl Into<String>) -> Self {
        insert_sorted(&mut self.resources, resource.into());
        self
    }

    /// The provider-specific `audience` parameter (Auth0 and others that predate RFC 8707).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Adds scopes (space-separated, as in a `scope` parameter).
    #[must_use]
    pub fn scope(mut self, scope: &str) -> Self {
        for name in scope.split(' ').filter(|s| !s.is_empty()) {
            insert_sorted(&mut self.scopes, name.to_owned());
        }
        self
    }

    /// The resource indicators, sorted.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The `audience` parameter, if any.
    pub fn audience_param(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The scopes, sorted.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The `scope` parameter: the scopes joined by spaces (`None` without scopes).
    pub(crate) fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }

    /// Scope names must be RFC 6749 §3.3 `scope-token`s; resources absolute URIs without a
    /// fragment (RFC 8707 §2).
    pub(crate) fn ensure_usable(&self) -> Result<(), crate::ConfigError> {
        for scope in &self.scopes {
            if !scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
                return Err(crate::ConfigError::InvalidScope(scope.clone()));
            }
        }
        for resource in &self.resources {
            let parsed = url::Url::parse(resource)
                .map_err(|e| crate::ConfigError::InvalidUrl { what: "resource indicator", reason: e.to_string() })?;
            if parsed.fragment().is_some() {
                return Err(crate::ConfigError::InvalidUrl {
                    what: "resource indicator",
                    reason: "a resource indicator must not have a fragment (RFC 8707 §2)".into(),
                });
            }
        }
        Ok(())
    }
}

fn insert_sorted(list: &mut Vec<String>, value: String) {
    if let Err(at) = list.binary_search(&value) {
        list.insert(at, value);
    }
}

impl fmt::Debug for TokenTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for TokenTarget {
    /// `resource=… audience=… scope="…"`, for logs (nothing secret in a target).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { " " };
            first = false;
            f.write_str(s)
        };
        for resource in &self.resources {
            sep(f)?;
            write!(f, "resource={resource}")?;
        }
        if let Some(audience) = &self.audience {
            sep(f)?;
            write!(f, "audience={audience}")?;
        }
        if !self.scopes.is_empty() {
            sep(f)?;
            write!(f, "scope=\"{}\"", self.scopes.join(" "))?;
        }
        if first {
            f.write_str("(default target)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_do_not_make_a_new_target() {
        let a = TokenTarget::resource("https://b.example").and_resource("https://a.example").scope("x y");
        let b = TokenTarget::resource("https://a.example").and_resource("https://b.example").scope("y  x x");
        assert_eq!(a, b);
        assert_eq!(a.scope_param().as_deref(), Some("x y"));
        assert_ne!(a, b.clone().audience("aud"));
        assert_eq!(a.to_string(), "resource=https://a.example resource=https://b.example scope=\"x y\"");
        assert_eq!(TokenTarget::new().to_string(), "(default target)");
    }

    #[test]
    fn checks() {
        assert!(TokenTarget::resource("https://a.example/api").scope("a:b").ensure_usable().is_ok());
        assert!(TokenTarget::resource("not a uri").ensure_usable().is_err());
        assert!(TokenTarget::resource("https://a.example/#frag").ensure_usable().is_err());
        assert!(TokenTarget::new().scope("a\"b").ensure_usable().is_err());
    }
}
