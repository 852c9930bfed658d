//! ARP parsing on arbitrary frames: an answer is built for whatever parses, a claim names
//! a unicast sender, nothing panics.
#![no_main]

use dockline_l2::{Mac, arp};

libfuzzer_sys::fuzz_target!(|frame: &[u8]| {
    if let Ok(request) = arp::parse_request(frame) {
        let reply = arp::reply(&request, request.target_ip, Mac([2, 0, 0, 0, 0, 1]));
        assert!(arp::parse_reply(&reply).is_ok());
    }
    let _ = arp::parse_reply(frame);
    if let Ok((mac, ip)) = arp::parse_claim(frame) {
        assert!(!mac.is_multicast() && !ip.is_unspecified());
    }
});
