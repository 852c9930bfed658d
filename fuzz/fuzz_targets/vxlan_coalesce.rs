//! The receive path's offloads on arbitrary UDP GRO datagrams: the first two bytes give the
//! segment size, the rest is split at it into VXLAN packets whose frames go to the
//! coalescer. Nothing may panic; every frame out carries a virtio-net header that decodes,
//! and a joined frame says how to cut it again.

#![no_main]

use dockline_podnet::offload::coalesce::Coalescer;
use dockline_podnet::offload::split_datagram;
use dockline_podnet::offload::virtio::{self, VirtioHeader};
use dockline_podnet::vxlan::HEADER_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((size, datagram)) = input.split_first_chunk::<2>() else {
        return;
    };
    let size = usize::from(u16::from_be_bytes(*size));
    let frames: Vec<&[u8]> = split_datagram(datagram, size)
        .map(|packet| packet.get(HEADER_LEN..).unwrap_or(packet))
        .collect();
    let mut coalescer = Coalescer::new();
    for (id, frame) in frames.iter().enumerate() {
        coalescer.push(id, frame);
    }
    coalescer.finish();
    let mut out = 0;
    for pieces in coalescer.frames() {
        let frame: Vec<u8> = pieces
            .iter()
            .flat_map(|piece| coalescer.bytes(piece, |frame| frames[frame]))
            .copied()
            .collect();
        let header = VirtioHeader::decode(&frame).expect("every frame has a header");
        if header.is_tcp_gso() {
            assert_eq!(header.flags, virtio::NEEDS_CSUM);
            assert!(header.gso_size > 0);
            assert!(frame.len() - virtio::HEADER_LEN > usize::from(header.header_len));
        }
        out += 1;
    }
    assert!(out <= frames.len());
});
