//! Neighbour discovery parsing on arbitrary frames: an advertisement is built for whatever
//! solicitation parses and parses back, nothing panics.
#![no_main]

use dockline_l2::{Mac, ndp};

libfuzzer_sys::fuzz_target!(|frame: &[u8]| {
    if let Ok(ns) = ndp::parse_solicitation(frame) {
        let na = ndp::advertise(&ns, ns.target, Mac([2, 0, 0, 0, 0, 1]));
        assert!(
            ndp::parse_solicitation(&na).is_err(),
            "an advertisement is no solicitation"
        );
        assert!(ndp::parse_advertisement(&na).is_ok());
    }
    let _ = ndp::parse_advertisement(frame);
});
