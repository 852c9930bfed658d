//! The authenticated gossip envelope on arbitrary packets: opening never panics, accepts
//! nothing unsigned, and a packet it sealed itself opens once and is a replay after.
#![no_main]

use dockline_cluster::{Auth, REPLAY_WINDOW, Rejected};

const NOW_MS: u64 = 1_800_000_000_000;

libfuzzer_sys::fuzz_target!(|packet: &[u8]| {
    let mut keyed = Auth::new(vec![b"fuzz-key".to_vec(), b"old-key".to_vec()]);
    // Random bytes forge an HMAC-SHA256 tag with negligible probability.
    assert_eq!(keyed.open(packet, NOW_MS), Err(Rejected::Auth));

    let window = REPLAY_WINDOW.as_millis() as u64;
    let sealed = keyed.seal(packet, NOW_MS - window / 2, packet.len() as u64);
    assert_eq!(keyed.open(&sealed, NOW_MS), Ok(packet));
    assert_eq!(keyed.open(&sealed, NOW_MS), Err(Rejected::Replay));
    assert_eq!(
        Auth::new(vec![b"fuzz-key".to_vec()]).open(&sealed, NOW_MS + window),
        Err(Rejected::Replay),
        "outside the window"
    );
    let mut open = Auth::new(Vec::new());
    assert_eq!(open.open(packet, NOW_MS), Ok(packet));
});
