//! Scopes granted by a token (`scope`, `scp`) and what a route requires of them.

use std::fmt;
use std::sync::Arc;

use crate::config::ConfigError;

/// The scopes a token grants: the union of `scope` (a space-delimited string, RFC 8693
/// §4.2 / RFC 9068 §2.2.3, or an array of strings, as some providers send) and `scp`
/// (an array or a string, as Entra ID and Okta send).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Box<str>>);

impl Scopes {
    /// Appends the space-delimited scopes of `value`; call [`dedup`](Self::dedup) once
    /// after the last one.
    pub(crate) fn push_delimited(&mut self, value: &str) {
        self.0.extend(value.split(' ').filter(|s| !s.is_empty()).map(Box::from));
    }

    /// Removes repeats, keeping first occurrences in order. Linear (a hash set) once the
    /// list is long: a hostile token may carry thousands of scopes, and a quadratic scan
    /// would make rejecting it cost far more than accepting an ordinary one.
    pub(crate) fn dedup(&mut self) {
        if self.0.len() <= 16 {
            let mut kept = 0;
            for i in 0..self.0.len() {
                if !self.0[..kept].contains(&self.0[i]) {
                    self.0.swap(kept, i);
                    kept += 1;
                }
            }
            self.0.truncate(kept);
        } else {
            let keep: Vec<bool> = {
                let mut seen = std::collections::HashSet::with_capacity_and_hasher(
                    self.0.len(),
                    foldhash::fast::RandomState::default(),
                );
                self.0.iter().map(|scope| seen.insert(&**scope)).collect()
            };
            let mut index = 0;
            self.0.retain(|_| {
                index += 1;
                keep[index - 1]
            });
        }
    }

    /// Whether the token grants `scope` (exact, case-sensitive match).
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| &**s == scope)
    }

    /// The granted scopes, in token order, without duplicates.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }

    /// How many scopes are granted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no scope is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> FromIterator<&'a str> for Scopes {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut scopes = Scopes::default();
        for s in iter {
            scopes.push_delimited(s);
        }
        scopes.dedup();
        scopes
    }
}

/// What a route requires: all of a list of scopes, or any one of them.
///
/// ```
/// use auth_core::{ScopeRequirement, Scopes};
///
/// let granted: Scopes = ["orders:read", "profile"].into_iter().collect();
/// assert!(ScopeRequirement::all(["orders:read"]).is_satisfied_by(&granted));
/// assert!(!ScopeRequirement::all(["orders:read", "orders:write"]).is_satisfied_by(&granted));
/// assert!(ScopeRequirement::any(["orders:write", "profile"]).is_satisfied_by(&granted));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ScopeRequirement {
    mode: Mode,
    scopes: Arc<[Box<str>]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

impl ScopeRequirement {
    /// Every listed scope must be granted. An empty list is satisfied by any token.
    ///
    /// Names are checked by [`validate`](Self::validate); adapters call it when a route is
    /// configured, so an invalid name fails at start-up.
    pub fn all<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(Mode::All, scopes)
    }

    /// At least one listed scope must be granted. An empty list is never satisfied.
    pub fn any<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(Mode::Any, scopes)
    }

    fn new<I, S>(mode: Mode, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes = scopes.into_iter().map(|s| s.as_ref().into()).collect::<Vec<Box<str>>>();
        ScopeRequirement { mode, scopes: scopes.into() }
    }

    /// Checks every name against RFC 6749 §3.3 (`%x21 / %x23-5B / %x5D-7E`, non-empty).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for scope in self.scopes.iter() {
            let ok = !scope.is_empty()
                && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !ok {
                return Err(ConfigError::InvalidScope(scope.to_string()));
            }
        }
        Ok(())
    }

    /// Whether `granted` meets this requirement.
    pub fn is_satisfied_by(&self, granted: &Scopes) -> bool {
        match self.mode {
            Mode::All => self.scopes.iter().all(|s| granted.contains(s)),
            Mode::Any => self.scopes.iter().any(|s| granted.contains(s)),
        }
    }

    /// Whether all listed scopes are required (as opposed to any one).
    pub fn requires_all(&self) -> bool {
        self.mode == Mode::All
    }

    /// The listed scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| &**s)
    }
}

/// Space-delimited, as in the `scope` auth-param of a challenge (RFC 6750 §3).
impl fmt::Display for ScopeRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::All => "all",
            Mode::Any => "any",
        };
        f.debug_tuple(mode).field(&self.scopes).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_delimited_and_dedups() {
        let mut s = Scopes::default();
        s.push_delimited("a  b a");
        s.push_delimited("c b");
        s.dedup();
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        let many: String = (0..3000).map(|i| format!("s{} ", i % 1500)).collect();
        let s: Scopes = [many.as_str()].into_iter().collect();
        assert_eq!(s.len(), 1500);
        assert_eq!(s.iter().nth(1499), Some("s1499"));
        assert!(!s.contains("A"));
        assert!(!s.contains(""));
    }

    #[test]
    fn all_and_any() {
        let s: Scopes = ["x y"].into_iter().collect();
        assert!(ScopeRequirement::all(["x", "y"]).is_satisfied_by(&s));
        assert!(!ScopeRequirement::all(["x", "z"]).is_satisfied_by(&s));
        assert!(ScopeRequirement::any(["z", "y"]).is_satisfied_by(&s));
        assert!(!ScopeRequirement::any(["z"]).is_satisfied_by(&s));
        assert!(ScopeRequirement::all(Vec::<&str>::new()).is_satisfied_by(&Scopes::default()));
        assert!(!ScopeRequirement::any(Vec::<&str>::new()).is_satisfied_by(&s));
    }

    #[test]
    fn validates_names() {
        assert!(ScopeRequirement::all(["orders:read", "a/b"]).validate().is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(ScopeRequirement::all([bad]).validate().is_err(), "{bad:?}");
        }
    }
}
