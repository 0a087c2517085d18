//! Placeholder; filled by a later issue.
#![forbid(unsafe_code)]
