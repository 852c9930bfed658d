//! Reloads that reuse parsed services: on arbitrary text, with no services remembered and
//! with those of a valid document remembered, the result (config or problems) is exactly
//! what a whole parse gives.
#![no_main]

use dockline_config::{ServiceBlocks, parse, parse_reusing};

const REMEMBERED: &str = "[[services]]\nname = \"a\"\nnamespace = \"n\"\nports = [{ port = 80 }]\n\
    [[services.endpoints]]\nip = \"10.0.0.1\"\n[dns]\nttl = 7\n[[services]]\nname = \"b\"\n\
    ports = [{ port = 53, protocol = \"UDP\" }]\n";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let whole = parse("fuzz.toml", text, std::iter::empty());
    let fresh = parse_reusing(&ServiceBlocks::default(), "fuzz.toml", text, std::iter::empty());
    assert_eq!(fresh.as_ref().map(|(config, _)| config), whole.as_ref());
    let (_, remembered) =
        parse_reusing(&ServiceBlocks::default(), "fuzz.toml", REMEMBERED, std::iter::empty())
            .expect("the remembered document is valid");
    let reused = parse_reusing(&remembered, "fuzz.toml", text, std::iter::empty());
    assert_eq!(reused.as_ref().map(|(config, _)| config), whole.as_ref());
});
