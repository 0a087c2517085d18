//! Arbitrary bytes as a token (lossily made UTF-8) into `Validator::validate`.
#![no_main]

use auth_core_fuzz::{FIXTURE, check_error, now_or_never};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    match now_or_never(FIXTURE.validator.validate(&token)) {
        // Forging a signature of a per-process random key is out of reach; an
        // accepted arbitrary token would be a signature bypass.
        Ok(principal) => panic!("an unsigned token was accepted: {:?}", principal.claims()),
        Err(err) => {
            assert_eq!(err.status(), 401, "validate with static keys answered {err:?}");
            check_error(&err, &token);
        }
    }
});
