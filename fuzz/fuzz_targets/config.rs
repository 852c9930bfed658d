//! Config parsing, validation and snapshot building on arbitrary text: problems are fine,
//! panics are not.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = dockline_config::parse("fuzz.toml", text, std::iter::empty()) {
        let _ = dockline_model::build(config);
    }
});
