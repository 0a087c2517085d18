//! The token handed to a caller, and its `Authorization` header.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;

/// An access token from a [`TokenSource`](super::TokenSource), with its ready-made
/// `Authorization: Bearer …` header value. Cheap to clone; `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    /// `Bearer <token>`, marked sensitive (HTTP/2 and HTTP/3 never index it).
    pub(crate) header: HeaderValue,
    pub(crate) expires_at: Instant,
    pub(crate) scope: Option<String>,
}

impl AccessToken {
    pub(crate) fn new(token: &str, expires_at: Instant, scope: Option<String>) -> Option<AccessToken> {
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        header.set_sensitive(true);
        Some(AccessToken(Arc::new(Inner { header, expires_at, scope })))
    }

    /// The token itself (for a protocol that does not carry it in `Authorization`).
    pub fn secret(&self) -> &str {
        // Built from a `str` by `new`: always visible ASCII after the scheme.
        self.0.header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("")
    }

    /// `Bearer <token>`, for an `Authorization` header (sensitive).
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.header
    }

    /// How long it stays valid (by the monotonic clock, from when the response arrived).
    pub fn expires_in(&self) -> Duration {
        self.0.expires_at.saturating_duration_since(Instant::now())
    }

    /// The granted `scope`, when the token response named one.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// Whether `self` and `other` are the same issued token (not just equal strings).
    pub fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("expires_in", &self.expires_in()).finish_non_exhaustive()
    }
}

/// How many targets' headers each thread keeps a copy of.
const COPIES_PER_THREAD: usize = 16;

/// One thread's copy of a target's current header, with the times that govern it.
struct Copy {
    target: u64,
    generation: u64,
    usable_until: Instant,
    refresh_at: Instant,
    header: HeaderValue,
}

thread_local! {
    /// Per-thread copies of the current header of recently used targets: cloning a
    /// `HeaderValue` bumps a reference count, and one count shared by every thread would
    /// be a cache line that all cores write on every call. The copy also carries the
    /// token's times, so a hit reads nothing shared but the target's generation.
    static COPIES: RefCell<Vec<Copy>> = const { RefCell::new(Vec::new()) };
}

/// This thread's copy of `target`'s header if it is of token `generation` and usable at
/// `now`, with whether the token is due for refresh.
pub(crate) fn local_hit(target: u64, generation: u64, now: Instant) -> Option<(HeaderValue, bool)> {
    COPIES
        .try_with(|copies| {
            let copies = copies.borrow();
            let copy = copies.iter().find(|c| c.target == target)?;
            (copy.generation == generation && now < copy.usable_until)
                .then(|| (copy.header.clone(), now >= copy.refresh_at))
        })
        .ok()
        .flatten()
}

/// Makes this thread's copy of `target`'s header that of token `generation`, and returns
/// a clone of it.
pub(crate) fn local_fill(
    target: u64,
    generation: u64,
    usable_until: Instant,
    refresh_at: Instant,
    header: &HeaderValue,
) -> HeaderValue {
    COPIES
        .try_with(|copies| {
            let mut copies = copies.borrow_mut();
            copies.retain(|c| c.target != target);
            if copies.len() >= COPIES_PER_THREAD {
                copies.remove(0);
            }
            let header = own_copy(header);
            copies.push(Copy { target, generation, usable_until, refresh_at, header: header.clone() });
            header
        })
        .unwrap_or_else(|_| header.clone())
}

/// A header value with its own allocation (and so its own reference count).
fn own_copy(header: &HeaderValue) -> HeaderValue {
    match HeaderValue::from_bytes(header.as_bytes()) {
        Ok(mut value) => {
            value.set_sensitive(true);
            value
        }
        Err(_) => header.clone(),
    }
}

/// Forgets this thread's copy of `target`'s header (the target was dropped).
pub(crate) fn forget_local(target: u64) {
    let _ = COPIES.try_with(|copies| copies.borrow_mut().retain(|c| c.target != target));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = AccessToken::new("s3cr3t.t0ken", Instant::now() + Duration::from_secs(60), None).unwrap();
        assert!(!format!("{token:?}").contains("s3cr3t"));
        assert_eq!(token.secret(), "s3cr3t.t0ken");
        assert!(token.header_value().is_sensitive());
        assert_eq!(token.header_value(), "Bearer s3cr3t.t0ken");
    }

    #[test]
    fn local_copies_follow_the_generation_and_the_clock() {
        let a = HeaderValue::from_static("Bearer a");
        let b = HeaderValue::from_static("Bearer b");
        let now = Instant::now();
        let (later, much_later) = (now + Duration::from_secs(10), now + Duration::from_secs(20));
        assert_eq!(local_hit(7, 1, now), None);
        assert_eq!(local_fill(7, 1, much_later, later, &a), "Bearer a");
        assert_eq!(local_hit(7, 1, now), Some((a.clone(), false)));
        assert_eq!(local_hit(7, 1, later), Some((a.clone(), true)), "due for refresh");
        assert_eq!(local_hit(7, 1, much_later), None, "no longer usable");
        assert_eq!(local_hit(7, 2, now), None, "another token");
        assert_eq!(local_fill(7, 2, much_later, later, &b), "Bearer b");
        assert!(local_hit(7, 2, now).unwrap().0.is_sensitive());
        forget_local(7);
        assert_eq!(local_hit(7, 2, now), None);
        for target in 100..100 + COPIES_PER_THREAD as u64 + 4 {
            local_fill(target, 1, much_later, later, &a);
        }
        COPIES.with_borrow(|c| assert_eq!(c.len(), COPIES_PER_THREAD));
    }
}
