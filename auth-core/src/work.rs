//! Counts of the per-request work the seam promises to do once (feature `work-counts`,
//! for tests): with it off, [`count`] compiles to nothing.

/// A piece of per-request work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "work-counts"), allow(dead_code))]
pub(crate) enum Work {
    /// The request's credentials read from its headers and query.
    HeaderParse = 0,
    /// A verified-token cache lookup.
    CacheLookup = 1,
    /// A token split into its three segments.
    TokenSplit = 2,
    /// A token hashed for the cache.
    TokenHash = 3,
}

#[cfg(feature = "work-counts")]
thread_local! {
    static COUNTS: std::cell::Cell<[u32; 4]> = const { std::cell::Cell::new([0; 4]) };
}

/// Counts one piece of work on this thread.
#[inline(always)]
pub(crate) fn count(work: Work) {
    #[cfg(feature = "work-counts")]
    COUNTS.with(|counts| {
        let mut all = counts.get();
        all[work as usize] += 1;
        counts.set(all);
    });
    #[cfg(not(feature = "work-counts"))]
    let _ = work;
}

/// This thread's counts since the last [`take`], then zero.
#[cfg(all(feature = "work-counts", feature = "test-util"))]
pub(crate) fn take() -> [u32; 4] {
    COUNTS.with(|counts| counts.replace([0; 4]))
}
