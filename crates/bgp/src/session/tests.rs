//! The session FSM driven by hand: a fake clock, and a "router" that is just the bytes it
//! would send.

use super::*;
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::update::BgpUpdateMessage;

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn settings() -> Settings {
    Settings {
        local_asn: 64513,
        router_id: LOCAL_ID,
        peer_asn: 64512,
        hold_time: 9,
        keepalive: None,
        connect_retry: Duration::from_secs(5),
        passive: false,
        graceful_restart: true,
    }
}

fn router_open(asn: u32, hold_time: u16, id: Ipv4Addr) -> Vec<u8> {
    message::encode(&message::open(asn, hold_time, id, true))
}

fn keepalive() -> Vec<u8> {
    message::encode(&BgpMessage::KeepAlive)
}

fn cease() -> Vec<u8> {
    message::encode(&BgpMessage::Notification(
        BgpNotificationMessage::CeaseError(CeaseError::AdministrativeReset {
            value: Box::new([]),
        }),
    ))
}

fn drain(session: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| session.poll_action()).collect()
}

/// The NOTIFICATIONs dockline sent, as (code, subcode).
fn sent_notifications(actions: &[Action]) -> Vec<(u8, u8)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Notification {
                direction: Direction::Sent,
                code,
                subcode,
            } => Some((*code, *subcode)),
            _ => None,
        })
        .collect()
}

fn is_down(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Down { .. }))
}

/// A session connected outbound and taken to `state` with the router's OPEN (and
/// KEEPALIVE); returns the connection and the instant it got there.
fn session_in(state: State) -> (Session, ConnectionId, Instant) {
    let now = Instant::now();
    let mut session = Session::new(settings());
    session.start(now);
    let Some(Action::Connect(id)) = session.poll_action() else {
        panic!("no connect")
    };
    assert_eq!(session.state(), State::Connect);
    session.connected(id, now);
    if state >= State::OpenConfirm {
        session.received(id, &router_open(64512, 90, ROUTER_ID), now);
    }
    if state >= State::Established {
        session.received(id, &keepalive(), now);
    }
    drain(&mut session);
    assert_eq!(session.state(), state);
    (session, id, now)
}

#[test]
fn an_outbound_session_sends_its_open_and_comes_up_on_the_routers_keepalive() {
    let now = Instant::now();
    let mut session = Session::new(settings());
    session.start(now);
    let Some(Action::Connect(id)) = session.poll_action() else {
        panic!("no connect")
    };
    session.connected(id, now);
    let Some(Action::Send(_, open)) = session.poll_action() else {
        panic!("no OPEN")
    };
    assert!(matches!(
        message::decode(&open, true),
        Ok(BgpMessage::Open(_))
    ));
    assert_eq!(session.state(), State::OpenSent);

    session.received(id, &router_open(64512, 90, ROUTER_ID), now);
    assert_eq!(session.poll_action(), Some(Action::Send(id, keepalive())));
    assert_eq!(session.state(), State::OpenConfirm);

    session.received(id, &keepalive(), now + Duration::from_secs(1));
    let Some(Action::Up(_, negotiated)) = session.poll_action() else {
        panic!("not up")
    };
    assert_eq!(negotiated.hold_time, 9, "the smaller hold time wins");
    assert!(negotiated.ipv4 && negotiated.ipv6 && negotiated.four_octet_asn);
    assert!(negotiated.graceful_restart);
    assert_eq!(session.state(), State::Established);
    assert_eq!(
        session.established_since(),
        Some(now + Duration::from_secs(1))
    );
}

#[test]
fn keepalives_go_out_every_third_of_the_hold_time() {
    let (mut session, id, now) = session_in(State::Established);
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(3)));
    session.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(session.poll_action(), Some(Action::Send(id, keepalive())));
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(6)));
}

#[test]
fn a_silent_router_is_reset_at_hold_expiry_and_retried_later() {
    let (mut session, id, now) = session_in(State::Established);
    // The router's keepalive at 5 s pushes the hold expiry to 14 s.
    session.received(id, &keepalive(), now + Duration::from_secs(5));
    session.handle_timeout(now + Duration::from_secs(13));
    assert!(!is_down(&drain(&mut session)));

    session.handle_timeout(now + Duration::from_secs(14));
    let actions = drain(&mut session);
    assert_eq!(sent_notifications(&actions), vec![(4, 0)]);
    assert!(actions.contains(&Action::Close(id)));
    assert!(is_down(&actions));
    assert_eq!(session.state(), State::Active);
    assert_eq!(
        session.last_error(),
        Some("hold timer expired (NOTIFICATION 4/0 sent)")
    );

    session.handle_timeout(now + Duration::from_secs(19));
    assert!(matches!(session.poll_action(), Some(Action::Connect(_))));
}

#[test]
fn the_open_hold_timer_resets_a_router_that_never_sends_its_open() {
    let (mut session, _, now) = session_in(State::OpenSent);
    session.handle_timeout(now + Duration::from_secs(239));
    assert_eq!(session.state(), State::OpenSent);
    session.handle_timeout(now + Duration::from_secs(240));
    assert_eq!(sent_notifications(&drain(&mut session)), vec![(4, 0)]);
}

#[test]
fn open_errors_get_their_notification_subcodes() {
    let cases = [
        (router_open(64999, 90, ROUTER_ID), (2, 2), "AS"),
        (router_open(64512, 2, ROUTER_ID), (2, 6), "hold time"),
        (
            router_open(64512, 90, Ipv4Addr::UNSPECIFIED),
            (2, 3),
            "identifier",
        ),
    ];
    for (open, codes, words) in cases {
        let (mut session, id, now) = session_in(State::OpenSent);
        session.received(id, &open, now);
        let actions = drain(&mut session);
        assert_eq!(sent_notifications(&actions), vec![codes]);
        assert!(actions.contains(&Action::Close(id)));
        assert!(
            session.last_error().is_some_and(|e| e.contains(words)),
            "{:?}",
            session.last_error()
        );
    }
}

#[test]
fn an_ibgp_router_with_our_own_identifier_is_refused() {
    let now = Instant::now();
    let mut session = Session::new(Settings {
        peer_asn: 64513,
        ..settings()
    });
    session.start(now);
    let Some(Action::Connect(id)) = session.poll_action() else {
        panic!("no connect")
    };
    session.connected(id, now);
    session.received(id, &router_open(64513, 90, LOCAL_ID), now);
    assert_eq!(sent_notifications(&drain(&mut session)), vec![(2, 3)]);
}

#[test]
fn a_notification_ends_the_connection_in_every_state() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let (mut session, id, now) = session_in(state);
        session.received(id, &cease(), now);
        let actions = drain(&mut session);
        assert!(
            actions.contains(&Action::Notification {
                direction: Direction::Received,
                code: 6,
                subcode: 4
            }),
            "{state}"
        );
        assert!(sent_notifications(&actions).is_empty(), "{state}: no reply");
        assert!(actions.contains(&Action::Close(id)), "{state}");
        assert_eq!(is_down(&actions), state == State::Established, "{state}");
        assert_eq!(session.state(), State::Active, "{state}");
        assert_eq!(session.last_error(), Some("NOTIFICATION 6/4 received"));
    }
}

#[test]
fn a_failed_connect_is_retried_after_connect_retry() {
    let now = Instant::now();
    let mut session = Session::new(settings());
    session.start(now);
    let Some(Action::Connect(id)) = session.poll_action() else {
        panic!("no connect")
    };
    session.connection_failed(id, now, "refused");
    assert_eq!(drain(&mut session), vec![Action::Close(id)]);
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(5)));
    session.handle_timeout(now + Duration::from_secs(5));
    assert!(matches!(session.poll_action(), Some(Action::Connect(other)) if other != id));
}

#[test]
fn a_passive_session_never_connects_and_accepts_the_router() {
    let now = Instant::now();
    let mut session = Session::new(Settings {
        passive: true,
        ..settings()
    });
    assert_eq!(session.accept(now), None, "not started");
    session.start(now);
    assert_eq!(session.poll_action(), None);
    assert_eq!(session.poll_timeout(), None);
    let id = session.accept(now).unwrap();
    assert!(matches!(session.poll_action(), Some(Action::Send(sent, _)) if sent == id));
    assert_eq!(session.state(), State::OpenSent);
}

#[test]
fn unexpected_messages_get_finite_state_machine_errors() {
    let update = message::encode(&BgpMessage::Update(BgpUpdateMessage::new(
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )));
    let cases = [
        (State::OpenSent, update.clone(), (5, 1)),
        (State::OpenConfirm, update, (5, 2)),
        (
            State::Established,
            router_open(64512, 90, ROUTER_ID),
            (5, 3),
        ),
    ];
    for (state, bytes, codes) in cases {
        let (mut session, id, now) = session_in(state);
        session.received(id, &bytes, now);
        assert_eq!(
            sent_notifications(&drain(&mut session)),
            vec![codes],
            "{state}"
        );
    }
}

#[test]
fn garbage_after_the_open_is_a_header_error() {
    let (mut session, id, now) = session_in(State::OpenConfirm);
    session.received(id, b"\x00garbage that is not a marker", now);
    assert_eq!(sent_notifications(&drain(&mut session)), vec![(1, 1)]);
}

#[test]
fn a_truncated_update_is_an_update_error_and_later_updates_are_dropped_silently() {
    let (mut session, id, now) = session_in(State::Established);
    let update = message::encode(&BgpMessage::Update(BgpUpdateMessage::new(
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )));
    session.received(id, &update, now);
    assert_eq!(session.updates_received(), 1);
    assert!(drain(&mut session).is_empty());

    let mut truncated = vec![0xff; 16];
    truncated.extend_from_slice(&23u16.to_be_bytes());
    truncated.extend_from_slice(&[2, 0, 10, 0, 0]);
    session.received(id, &truncated, now);
    let actions = drain(&mut session);
    assert_eq!(sent_notifications(&actions).first().map(|c| c.0), Some(3));
    assert!(is_down(&actions));
}

#[test]
fn messages_split_at_any_byte_are_reassembled() {
    let (mut session, id, now) = session_in(State::OpenSent);
    let mut stream = router_open(64512, 90, ROUTER_ID);
    stream.extend(keepalive());
    for byte in &stream {
        session.received(id, std::slice::from_ref(byte), now);
    }
    assert_eq!(session.state(), State::Established);
}

#[test]
fn a_flood_of_updates_never_grows_the_buffer_beyond_one_message() {
    let (mut session, id, now) = session_in(State::Established);
    let update = message::encode(&BgpMessage::Update(BgpUpdateMessage::new(
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )));
    let flood: Vec<u8> = update
        .iter()
        .copied()
        .cycle()
        .take(update.len() * 10_000)
        .collect();
    session.received(id, &flood, now);
    assert_eq!(session.updates_received(), 10_000);
    assert!(
        session
            .connections
            .iter()
            .all(|c| c.buffer.capacity() <= 4096)
    );
}

fn empty_update() -> Vec<u8> {
    message::encode(&BgpMessage::Update(BgpUpdateMessage::new(
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )))
}

#[test]
fn a_router_that_floods_is_reset_with_out_of_resources_and_its_budget_survives_reconnecting() {
    let (mut session, id, now) = session_in(State::Established);
    let update = empty_update();
    let per_message = budget::cost(update.len(), false);
    let burst = usize::try_from(budget::BURST / per_message).unwrap();
    let flood: Vec<u8> = update
        .iter()
        .copied()
        .cycle()
        .take(update.len() * (burst + 1))
        .collect();
    session.received(id, &flood, now);
    let actions = drain(&mut session);
    assert_eq!(sent_notifications(&actions), vec![(6, 8)]);
    assert!(is_down(&actions));
    assert!(session.last_error().unwrap().contains("flooding"));
    // The OPEN and the KEEPALIVE took a little of the bucket too.
    assert!((burst as u64 - 3..burst as u64).contains(&session.updates_received()));
    // A new connection right away gets a bucket that has had no time to refill.
    let later = now + Duration::from_millis(10);
    let again = session.accept(later).unwrap();
    drain(&mut session);
    session.received(again, &router_open(64512, 90, ROUTER_ID), later);
    session.received(again, &keepalive(), later);
    session.received(again, &update.repeat(2_000), later);
    assert_eq!(sent_notifications(&drain(&mut session)), vec![(6, 8)]);
}

#[test]
fn route_refreshes_beyond_the_budget_reset_the_router() {
    let (mut session, id, now) = session_in(State::Established);
    let refresh = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x17\x05\x00\x01\x00\x01";
    let at_once = budget::BURST / budget::ROUTE_REFRESH;
    for _ in 0..at_once - 1 {
        session.received(id, refresh, now);
    }
    let actions = drain(&mut session);
    let refreshes = actions
        .iter()
        .filter(|a| **a == Action::RouteRefresh)
        .count();
    // The OPEN and the KEEPALIVE took a little of the bucket: one refresh fewer fits.
    assert_eq!(refreshes as u64, at_once - 1);
    assert!(sent_notifications(&actions).is_empty());
    session.received(id, refresh, now);
    assert_eq!(sent_notifications(&drain(&mut session)), vec![(6, 8)]);
}

#[test]
fn stopping_sends_a_cease_and_does_not_retry() {
    let (mut session, id, now) = session_in(State::Established);
    session.stop(now);
    let actions = drain(&mut session);
    assert_eq!(sent_notifications(&actions), vec![(6, 2)]);
    assert!(actions.contains(&Action::Close(id)));
    assert!(is_down(&actions));
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.poll_timeout(), None);
}

/// Both sides connect at once; each gets to OpenConfirm on its own connection.
fn collide(local_id: Ipv4Addr) -> (Session, ConnectionId, ConnectionId, Vec<Action>) {
    let now = Instant::now();
    let mut session = Session::new(Settings {
        router_id: local_id,
        ..settings()
    });
    session.start(now);
    let Some(Action::Connect(outbound)) = session.poll_action() else {
        panic!("no connect")
    };
    session.connected(outbound, now);
    let inbound = session.accept(now).unwrap();
    drain(&mut session);
    session.received(outbound, &router_open(64512, 90, ROUTER_ID), now);
    session.received(inbound, &router_open(64512, 90, ROUTER_ID), now);
    let actions = drain(&mut session);
    (session, outbound, inbound, actions)
}

#[test]
fn a_connect_collision_keeps_the_connection_of_the_higher_identifier() {
    // dockline's identifier is higher: its own (outbound) connection stays.
    let (session, outbound, inbound, actions) = collide(Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(sent_notifications(&actions), vec![(6, 7)]);
    assert!(actions.contains(&Action::Close(inbound)));
    assert_eq!(session.connections.len(), 1);
    assert_eq!(session.connections[0].id, outbound);

    // The router's is higher: the connection it opened stays.
    let (session, outbound, inbound, actions) = collide(Ipv4Addr::new(10, 0, 0, 0));
    assert!(actions.contains(&Action::Close(outbound)));
    assert_eq!(session.connections[0].id, inbound);
}

#[test]
fn a_router_reconnecting_under_graceful_restart_replaces_the_established_session() {
    let (mut session, old, now) = session_in(State::Established);
    let new = session.accept(now).unwrap();
    session.received(new, &router_open(64512, 90, ROUTER_ID), now);
    let actions = drain(&mut session);
    assert!(actions.contains(&Action::Close(old)));
    assert!(is_down(&actions));
    session.received(new, &keepalive(), now);
    assert!(matches!(session.poll_action(), Some(Action::Up(..))));
}

#[test]
fn an_inbound_connection_replaces_a_pending_connect() {
    let now = Instant::now();
    let mut session = Session::new(settings());
    session.start(now);
    let Some(Action::Connect(outbound)) = session.poll_action() else {
        panic!("no connect")
    };
    let inbound = session.accept(now).unwrap();
    assert_eq!(session.poll_action(), Some(Action::Close(outbound)));
    session.connected(outbound, now);
    assert!(matches!(session.poll_action(), Some(Action::Send(id, _)) if id == inbound));
    assert_eq!(session.poll_action(), None);
}

#[test]
fn bfd_down_ends_the_established_session_with_a_cease() {
    let (mut session, id, now) = session_in(State::Established);
    session.bfd_down(now);
    let actions = drain(&mut session);
    assert_eq!(sent_notifications(&actions), vec![(6, 10)]);
    assert!(actions.contains(&Action::Close(id)) && is_down(&actions));
    assert_eq!(
        session.poll_timeout(),
        Some(now + Duration::from_secs(5)),
        "retried"
    );
}

#[test]
fn a_configured_keepalive_gives_way_to_a_shorter_hold_time_of_the_router() {
    let now = Instant::now();
    let mut session = Session::new(Settings {
        keepalive: Some(8),
        ..settings()
    });
    session.start(now);
    let Some(Action::Connect(id)) = session.poll_action() else {
        panic!("no connect")
    };
    session.connected(id, now);
    session.received(id, &router_open(64512, 3, ROUTER_ID), now);
    drain(&mut session);
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(1)));
}
