//! BFD control packet decoding on arbitrary bytes and TTLs: only TTL 255 is taken; what
//! decodes encodes back to the same fields and feeds a session; nothing panics.
#![no_main]

use std::time::{Duration, Instant};

use dockline_bgp::bfd::{BfdSession, ControlPacket};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    // The first byte is the TTL the packet arrived with.
    let Some((&ttl, bytes)) = bytes.split_first() else {
        return;
    };
    let received = ControlPacket::decode_received(bytes, Some(ttl));
    assert!(received.is_err() || ttl == 255);
    if let Ok(packet) = ControlPacket::decode(bytes) {
        assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
        let now = Instant::now();
        let mut session = BfdSession::new(7, Duration::from_millis(300), 3, now);
        session.received(&packet, now);
        let _ = session.poll_transmit(now);
        session.handle_timeout(now + Duration::from_secs(60));
    }
});
