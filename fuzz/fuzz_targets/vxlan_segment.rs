//! The send path's offloads on arbitrary reads from the TAP: a virtio-net header, then a
//! frame. Decoding the header and cutting the frame must never panic; a decoded header
//! re-encodes to its bytes; every segment cut holds the segment size of payload (the last
//! at most that), and the segments joined again never make more frames than were cut.

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
    let mut headers = Vec::new();
    let Ok(segments) = segment(frame, usize::from(header.gso_size), &PREFIX, &mut headers)
    else {
        assert!(headers.is_empty());
        return;
    };
    assert!(segments.count >= 1);
    assert_eq!(headers.len(), segments.count * segments.header_len);
    let mut coalescer = Coalescer::new();
    for index in 0..segments.count {
        let [head, payload] = segments.parts(index, &headers, frame);
        assert!(payload.len() <= segments.segment_size);
        assert!(index + 1 == segments.count || payload.len() == segments.segment_size);
        assert_eq!(head[..PREFIX.len()], PREFIX);
        coalescer.push(index, &[&head[PREFIX.len()..], payload].concat());
    }
    coalescer.finish();
    assert!(coalescer.frames().count() <= segments.count);
});
