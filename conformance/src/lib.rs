//! The conformance suites of the workspace, run by `cargo test -p conformance`:
//!
//! - `tests/attacks/`: the attack and malformed-input suite, one module per family
//!   (algorithms, signatures, encoding, claims, transport), sent through both adapters'
//!   example services over loopback HTTP; each case must get the same expected answer
//!   from both.
//! - `tests/adapters.rs`: the same request table through axum and actix-web, answers
//!   compared field by field.
//! - `tests/limits.rs`: size and count limits, and memory under repeated hostile input.
//!
//! - `tests/msrv.rs`: no locked dependency needs a newer Rust than the declared `rust-version`.
//!
//! This library is empty: the suites are integration tests.
