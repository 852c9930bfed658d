//! Frames captured here with tcpdump between two namespaces over veth (MTU 1450, iperf3
//! writing 6000 bytes at a time), read from `testdata/captured.pcap`:
//! - `syn`: a connection's first segment.
//! - `super_frame`: a 6000-byte TSO super-frame as the sending kernel hands it to a
//!   device with TSO (checksum partial, PSH set, timestamps).
//! - `segments`: what a kernel with TSO and GSO off sent for another 6000-byte write:
//!   four 1398-byte segments and a 408-byte one with PSH, checksums complete.
//! - `ack`: the receiver's acknowledgement in between.
//! - `udp_super_frame`: a UDP GSO send of 2563 bytes in 1000-byte datagrams (Python with
//!   the UDP_SEGMENT socket option), as the kernel hands it to a device with USO
//!   (checksum partial).

/// The frames of the capture, in order.
fn frames() -> Vec<&'static [u8]> {
    let pcap: &'static [u8] = include_bytes!("testdata/captured.pcap");
    let mut frames = Vec::new();
    // A 24-byte file header, then per frame a 16-byte record header (little-endian
    // captured length at 8..12) and the frame.
    let mut at = 24;
    while at < pcap.len() {
        let length = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(&pcap[at + 16..at + 16 + length]);
        at += 16 + length;
    }
    frames
}

pub(crate) fn syn() -> &'static [u8] {
    frames()[0]
}

pub(crate) fn super_frame() -> &'static [u8] {
    frames()[1]
}

pub(crate) fn segments() -> Vec<&'static [u8]> {
    frames()[2..7].to_vec()
}

pub(crate) fn ack() -> &'static [u8] {
    frames()[7]
}

pub(crate) fn udp_super_frame() -> &'static [u8] {
    frames()[8]
}
