//! Gossip payloads (foca packets and anti-entropy messages, after the envelope) on a node:
//! whatever arrives is taken or refused, nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|payload: &[u8]| {
    dockline_cluster::fuzzing::feed_payload(payload);
});
