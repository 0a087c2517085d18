//! A bound on warn-level log lines, so that an attack cannot flood the log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// At most [`WarnBudget::PER_SECOND`] warn lines a second, so that an attack cannot
/// flood the log; the next line allowed reports how many were left out.
#[derive(Default)]
pub(crate) struct WarnBudget {
    /// Seconds since `origin` of the current window, and lines logged in it.
    window: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
    origin: std::sync::OnceLock<Instant>,
}

impl WarnBudget {
    const PER_SECOND: u64 = 10;

    /// Whether a warn line may be logged now (one of this second's budget).
    pub(crate) fn allow(&self) -> bool {
        self.take().is_some()
    }

    /// `Some(suppressed so far)` when a line may be logged now.
    pub(crate) fn take(&self) -> Option<u64> {
        let second = self.origin.get_or_init(Instant::now).elapsed().as_secs();
        if self.window.swap(second, Relaxed) != second {
            self.used.store(0, Relaxed);
        }
        if self.used.fetch_add(1, Relaxed) < Self::PER_SECOND {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

impl fmt::Debug for WarnBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarnBudget").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warn_budget_allows_ten_a_second_and_reports_the_rest() {
        let budget = WarnBudget::default();
        let allowed = (0..25).filter(|_| budget.take().is_some()).count();
        assert_eq!(allowed, 10);
        assert_eq!(budget.suppressed.load(Relaxed), 15);
    }
}
