//! The VXLAN receive path on arbitrary UDP payloads from a known and an unknown VTEP: the
//! header decoder and the forwarding table's learning must never panic, and whatever is
//! accepted must be a frame of the segment's VNI that re-encodes to the same header.

#![no_main]

use std::net::IpAddr;
use std::time::Instant;

use dockline_podnet::vxlan::{HEADER_LEN, Vtep, header};
use libfuzzer_sys::fuzz_target;

const KNOWN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 30, 0, 12));
const UNKNOWN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

fuzz_target!(|payload: &[u8]| {
    let mut vtep = Vtep::new(42);
    vtep.fdb().set_vteps([(KNOWN, [2, 0x4c, 10, 111, 2, 1])]);
    let now = Instant::now();
    assert!(vtep.receive(UNKNOWN, payload, now).is_err());
    if let Ok(frame) = vtep.receive(KNOWN, payload, now) {
        assert_eq!(payload[..HEADER_LEN], header::encode(42));
        assert_eq!(frame, &payload[HEADER_LEN..]);
        let transmit = vtep.transmit(frame, now).expect("an accepted frame has a header");
        assert!(transmit.to.count() >= 1);
    }
});
