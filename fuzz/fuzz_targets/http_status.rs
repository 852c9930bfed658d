//! The health checker's HTTP status-line decoder: any bytes give a code, "need more" or
//! an error, never a panic; a code is always three digits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(code)) = dockline_health::http::status_code(data) {
        assert!(code <= 999);
    }
});
