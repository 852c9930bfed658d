//! The session state machine fed arbitrary bytes in arbitrary pieces, after dockline's
//! OPEN went out: it ends in some state with its buffer bounded; nothing panics.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dockline_bgp::session::{Action, Session, Settings};

libfuzzer_sys::fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (cuts, bytes) = input;
    let now = Instant::now();
    let mut session = Session::new(Settings {
        local_asn: 64513,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        peer_asn: 64512,
        hold_time: 9,
        keepalive: None,
        connect_retry: Duration::from_secs(1),
        passive: false,
        graceful_restart: true,
    });
    session.start(now);
    let Some(Action::Connect(id)) = session.poll_action() else {
        return;
    };
    session.connected(id, now);
    let mut rest = bytes.as_slice();
    for cut in cuts {
        let take = usize::from(cut).min(rest.len());
        session.received(id, &rest[..take], now);
        rest = &rest[take..];
        while session.poll_action().is_some() {}
    }
    session.received(id, rest, now);
    session.handle_timeout(now + Duration::from_secs(300));
    while session.poll_action().is_some() {}
});
