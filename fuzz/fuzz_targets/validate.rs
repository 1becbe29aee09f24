//! Arbitrary bytes through the request validation layer: no panics, and
//! nothing accepted beyond the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    approvald::api::fuzzing::validate_request_bytes(data);
});
