//! The send path's offloads on arbitrary reads from the TAP: a virtio-net header, then a
//! frame. Decoding the header and cutting the frame must never panic; a decoded header
//! re-encodes to its bytes; every segment cut holds at most the segment size of payload,
//! and the segments joined again never make more frames than were cut.

#![no_main]

use dockline_podnet::offload::coalesce::Coalescer;
use dockline_podnet::offload::segment::segment;
use dockline_podnet::offload::virtio::{HEADER_LEN, VirtioHeader};
use libfuzzer_sys::fuzz_target;

const PREFIX: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 42, 0];

fuzz_target!(|read: &[u8]| {
    let Some(header) = VirtioHeader::decode(read) else {
        assert!(read.len() < HEADER_LEN);
        return;
    };
    assert_eq!(header.encode(), read[..HEADER_LEN]);
    let frame = &read[HEADER_LEN..];
    let mut out = Vec::new();
    let Ok(segments) = segment(frame, usize::from(header.gso_size), &PREFIX, &mut out) else {
        assert!(out.is_empty());
        return;
    };
    assert!(segments.count >= 1);
    assert!(out.len() <= segments.count * segments.stride);
    assert!(out.len() > (segments.count - 1) * segments.stride);
    let mut coalescer = Coalescer::new();
    for packet in out.chunks(segments.stride) {
        assert_eq!(packet[..PREFIX.len()], PREFIX);
        coalescer.push(&packet[PREFIX.len()..]);
    }
    coalescer.finish();
    assert!(coalescer.frames().count() <= segments.count);
});
