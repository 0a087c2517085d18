//! Wall-clock time in NumericDate seconds (RFC 7519 §2).

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // A clock before 1970 makes every token look not yet valid, which fails closed.
        Err(_) => 0,
    }
}
