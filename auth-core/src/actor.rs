//! Delegation (RFC 8693 §4.1): the `act` claim of a token obtained by token exchange,
//! and a route's rule about who may act.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// How deep `act` claims may nest (the current actor, then those before it).
pub const MAX_ACTOR_DEPTH: usize = 5;

/// One actor of a delegation chain: who acted on behalf of the token's subject. Only the
/// outermost (the current) actor decides access; nested ones are for audit. `exp`,
/// `nbf` and `aud` inside `act` carry no meaning and are ignored (RFC 8693 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Actor {
    /// `sub`.
    pub subject: Option<String>,
    /// `iss`, when the actor was identified by another issuer.
    pub issuer: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// The actor before this one (`act` inside `act`).
    pub previous: Option<Box<Actor>>,
}

impl Actor {
    /// This actor, then the ones before it.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |actor| actor.previous.as_deref())
    }

    /// `act` as JSON text: an object, nested at most [`MAX_ACTOR_DEPTH`] deep.
    pub(crate) fn parse(json: &str) -> Result<Actor, InvalidActor> {
        let value: Value = serde_json::from_str(json).map_err(|_| InvalidActor::NotAnActor)?;
        Self::from_value(&value, 1)
    }

    fn from_value(value: &Value, depth: usize) -> Result<Actor, InvalidActor> {
        if depth > MAX_ACTOR_DEPTH {
            return Err(InvalidActor::TooDeep);
        }
        let object = value.as_object().ok_or(InvalidActor::NotAnActor)?;
        let string = |name: &str| match object.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(InvalidActor::NotAnActor),
        };
        let previous = match object.get("act") {
            None => None,
            Some(inner) => Some(Box::new(Self::from_value(inner, depth + 1)?)),
        };
        let actor =
            Actor { subject: string("sub")?, issuer: string("iss")?, client_id: string("client_id")?, previous };
        if actor.subject.is_none() && actor.client_id.is_none() {
            // An actor nobody can name cannot be matched by a policy, nor audited.
            return Err(InvalidActor::NotAnActor);
        }
        Ok(actor)
    }
}

/// Why an `act` claim was refused (the claims parser turns it into a [`TokenError`](crate::TokenError)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvalidActor {
    /// Nested deeper than [`MAX_ACTOR_DEPTH`].
    TooDeep,
    /// Not an object of string members naming a subject or a client.
    NotAnActor,
}

/// Who a route lets act on behalf of a token's subject, by the current actor.
///
/// ```
/// use auth_core::{ActorMatch, ActorRequirement};
///
/// // Billing's "as caller" route: only the orders service may act for a caller.
/// let rule = ActorRequirement::one_of([ActorMatch::client_id("orders-service")]);
/// // A route no delegated token may reach:
/// let direct_only = ActorRequirement::forbidden();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ActorRequirement(Arc<Rule>);

#[derive(Debug, PartialEq, Eq)]
enum Rule {
    Forbidden,
    /// An actor is required; empty: any actor.
    OneOf(Vec<ActorMatch>),
}

/// One allowed current actor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorMatch {
    /// By `sub`, identified by `issuer` (`None`: the token's own issuer).
    Subject {
        /// The actor's `iss`; `None` means the token's issuer.
        issuer: Option<String>,
        /// The actor's `sub`.
        subject: String,
    },
    /// By the actor's `client_id`.
    ClientId(String),
}

impl ActorMatch {
    /// An actor with this `sub`, identified by the token's issuer.
    pub fn subject(subject: impl Into<String>) -> Self {
        ActorMatch::Subject { issuer: None, subject: subject.into() }
    }

    /// An actor with this `sub` identified by `issuer`.
    pub fn issued_by(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        ActorMatch::Subject { issuer: Some(issuer.into()), subject: subject.into() }
    }

    /// An actor with this `client_id`.
    pub fn client_id(client_id: impl Into<String>) -> Self {
        ActorMatch::ClientId(client_id.into())
    }

    fn matches(&self, actor: &Actor, token_issuer: &str) -> bool {
        match self {
            ActorMatch::Subject { issuer, subject } => {
                let expected = issuer.as_deref().unwrap_or(token_issuer);
                actor.subject.as_deref() == Some(subject.as_str())
                    && actor.issuer.as_deref().unwrap_or(token_issuer) == expected
            }
            ActorMatch::ClientId(id) => actor.client_id.as_deref() == Some(id.as_str()),
        }
    }
}

impl fmt::Display for ActorMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorMatch::Subject { issuer: None, subject } => write!(f, "sub {subject}"),
            ActorMatch::Subject { issuer: Some(issuer), subject } => write!(f, "sub {subject} of {issuer}"),
            ActorMatch::ClientId(id) => write!(f, "client_id {id}"),
        }
    }
}

impl ActorRequirement {
    /// The token must not be a delegated one (no `act`).
    pub fn forbidden() -> Self {
        ActorRequirement(Arc::new(Rule::Forbidden))
    }

    /// The token must be a delegated one; any current actor.
    pub fn any() -> Self {
        ActorRequirement(Arc::new(Rule::OneOf(Vec::new())))
    }

    /// The token must be a delegated one, and its current actor one of these.
    pub fn one_of(allowed: impl IntoIterator<Item = ActorMatch>) -> Self {
        ActorRequirement(Arc::new(Rule::OneOf(allowed.into_iter().collect())))
    }

    /// Whether the current actor of a token from `issuer` fits the rule.
    pub(crate) fn allows(&self, actor: Option<&Actor>, issuer: &str) -> bool {
        match (&*self.0, actor) {
            (Rule::Forbidden, None) => true,
            (Rule::Forbidden, Some(_)) | (Rule::OneOf(_), None) => false,
            (Rule::OneOf(allowed), Some(actor)) => {
                allowed.is_empty() || allowed.iter().any(|m| m.matches(actor, issuer))
            }
        }
    }
}

impl fmt::Display for ActorRequirement {
    /// The rule, for the refusal's description (names, never tokens).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Rule::Forbidden => f.write_str("no actor (the token must not be delegated)"),
            Rule::OneOf(allowed) if allowed.is_empty() => f.write_str("an actor (the token must be delegated)"),
            Rule::OneOf(allowed) => {
                f.write_str("current actor one of: ")?;
                for (i, m) in allowed.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for ActorRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRequirement({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chain_and_ignores_lifetimes() {
        let actor = Actor::parse(
            r#"{"sub":"orders","client_id":"orders-service","exp":1,"aud":"x","act":{"sub":"gateway","iss":"https://other"}}"#,
        )
        .unwrap();
        let chain: Vec<_> = actor.chain().map(|a| a.subject.as_deref()).collect();
        assert_eq!(chain, [Some("orders"), Some("gateway")]);
        assert_eq!(actor.previous.as_ref().unwrap().issuer.as_deref(), Some("https://other"));
    }

    #[test]
    fn depth_and_types_are_bounded() {
        let mut json = r#"{"sub":"a0"}"#.to_owned();
        for i in 1..MAX_ACTOR_DEPTH {
            json = format!(r#"{{"sub":"a{i}","act":{json}}}"#);
        }
        assert!(Actor::parse(&json).is_ok());
        let deeper = format!(r#"{{"sub":"top","act":{json}}}"#);
        assert_eq!(Actor::parse(&deeper).unwrap_err(), InvalidActor::TooDeep);
        for bad in [r#""orders""#, r#"{"sub":5}"#, r#"{}"#, r#"{"sub":"a","act":[]}"#, "[]"] {
            assert_eq!(Actor::parse(bad).unwrap_err(), InvalidActor::NotAnActor, "{bad}");
        }
    }

    #[test]
    fn rules() {
        let iss = "https://idp";
        let orders = Actor::parse(r#"{"sub":"orders","client_id":"orders-service"}"#).unwrap();
        let foreign = Actor::parse(r#"{"sub":"orders","iss":"https://elsewhere"}"#).unwrap();
        assert!(ActorRequirement::forbidden().allows(None, iss));
        assert!(!ActorRequirement::forbidden().allows(Some(&orders), iss));
        assert!(ActorRequirement::any().allows(Some(&orders), iss));
        assert!(!ActorRequirement::any().allows(None, iss));
        let by_sub = ActorRequirement::one_of([ActorMatch::subject("orders")]);
        assert!(by_sub.allows(Some(&orders), iss));
        assert!(!by_sub.allows(Some(&foreign), iss), "same sub, another issuer");
        assert!(
            ActorRequirement::one_of([ActorMatch::issued_by("https://elsewhere", "orders")])
                .allows(Some(&foreign), iss)
        );
        let by_client = ActorRequirement::one_of([ActorMatch::client_id("orders-service")]);
        assert!(by_client.allows(Some(&orders), iss));
        assert!(!by_client.allows(Some(&foreign), iss));
        assert_eq!(by_client.to_string(), "current actor one of: client_id orders-service");
    }
}
