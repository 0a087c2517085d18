//! Shared set-up for the criterion benches and the load bench: keys, tokens, and a
//! way to run `Validator::validate` without an executor's overhead.
#![forbid(unsafe_code)]

pub mod attach;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future once with a no-op waker and returns its output.
///
/// `Validator::validate` completes without awaiting when the key is present (static key
/// set or warm cache), so this measures the validation itself, not an executor.
///
/// # Panics
/// If the future is not ready after one poll (the bench set-up is wrong).
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked future awaited; use keys that need no fetch"),
    }
}
