//! The BGP session state machine (RFC 4271 section 8), sans-IO.
//!
//! The driver feeds it what happened (a connection came up or failed, bytes arrived, time
//! passed) with the current instant, and drains [`Action`]s: connect, send bytes, close a
//! connection, the session came up or went down. Nothing here reads a clock or a socket,
//! so every path, timers included, is tested with a fake `now`.
//!
//! Up to two connections live at once, the one dockline opened and one the router opened;
//! when both reach OpenConfirm the collision is resolved by BGP Identifier (section 6.8).
//! A session that fails is retried after `connect_retry` (the automatic start of section
//! 8.1.1), unless it is passive, in which case it waits for the router to connect.

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::BgpCapability;
use netgauze_bgp_pkt::notification::{
    BgpNotificationMessage, CeaseError, FiniteStateMachineError, HoldTimerExpiredError,
    OpenMessageError,
};
use netgauze_bgp_pkt::open::BgpOpenMessage;
use netgauze_iana::address_family::AddressType;

use crate::budget::{self, ReceiveBudget};
use crate::message;

/// The hold time used until the OPENs have agreed on one (RFC 4271 section 8, "a large
/// value": four minutes is suggested).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// What a session is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// dockline's AS number.
    pub local_asn: u32,
    /// dockline's BGP Identifier.
    pub router_id: Ipv4Addr,
    /// The AS number the router must present.
    pub peer_asn: u32,
    /// Offered hold time in seconds (0: no keepalives, no hold timer).
    pub hold_time: u16,
    /// Keepalive interval in seconds; a third of the negotiated hold time when unset.
    pub keepalive: Option<u16>,
    /// How long to wait before connecting again after a failure.
    pub connect_retry: Duration,
    /// Never connect; wait for the router to.
    pub passive: bool,
    /// Offer graceful restart (RFC 4724).
    pub graceful_restart: bool,
}

impl Settings {
    fn is_internal(&self) -> bool {
        self.local_asn == self.peer_asn
    }
}

/// The session state, as RFC 4271 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Stopped, or not yet started.
    Idle,
    /// Waiting for the TCP connection dockline opened.
    Connect,
    /// Waiting for the router to connect, or for the retry timer.
    Active,
    /// dockline's OPEN is sent; waiting for the router's.
    OpenSent,
    /// OPENs exchanged; waiting for the router's KEEPALIVE.
    OpenConfirm,
    /// Routes can be exchanged.
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Names one TCP connection of a session, for the driver to map to its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// What both sides agreed on when the session came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The router's BGP Identifier.
    pub peer_router_id: Ipv4Addr,
    /// Seconds; 0 means no hold timer.
    pub hold_time: u16,
    /// Both sides carry 4-byte AS numbers (RFC 6793).
    pub four_octet_asn: bool,
    /// IPv4 unicast routes can be sent.
    pub ipv4: bool,
    /// IPv6 unicast routes can be sent (MP-BGP, RFC 4760).
    pub ipv6: bool,
    /// Both sides do graceful restart.
    pub graceful_restart: bool,
}

/// Which way a NOTIFICATION went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// dockline sent it.
    Sent,
    /// The router sent it.
    Received,
}

impl Direction {
    /// `sent` or `received`, as the metric label says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// What the driver must do or know, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the router and report it with `connected` or
    /// `connection_failed`.
    Connect(ConnectionId),
    /// Write these bytes on that connection.
    Send(ConnectionId, Vec<u8>),
    /// Close that connection once what was sent before is written.
    Close(ConnectionId),
    /// The session is established on that connection: routes may be sent now.
    Up(ConnectionId, Negotiated),
    /// The established session ended; the router drops (or, with graceful restart, keeps
    /// stale) what it had from us.
    Down {
        /// Why, for logs and `/status`.
        reason: String,
    },
    /// The router asked for every route again (RFC 2918).
    RouteRefresh,
    /// A NOTIFICATION went one way or the other.
    Notification {
        /// Sent or received.
        direction: Direction,
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Connection {
    id: ConnectionId,
    /// dockline opened it (else the router did).
    outbound: bool,
    stage: Stage,
    /// Bytes received and not yet a whole message; never above one message.
    buffer: Vec<u8>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    keepalive_every: Option<Duration>,
    hold_for: Option<Duration>,
    negotiated: Option<Negotiated>,
}

/// One router's session: its connections, timers and outputs.
#[derive(Debug)]
pub struct Session {
    settings: Settings,
    started: bool,
    connections: Vec<Connection>,
    next_connection: u64,
    connect_retry_at: Option<Instant>,
    established_since: Option<Instant>,
    last_error: Option<String>,
    updates_received: u64,
    /// What the router may still make dockline work; per session, so reconnecting does
    /// not refill it.
    budget: Option<ReceiveBudget>,
    actions: VecDeque<Action>,
}

impl Session {
    /// A session in Idle; nothing happens until [`Session::start`].
    pub fn new(settings: Settings) -> Self {
        Session {
            settings,
            started: false,
            connections: Vec::new(),
            next_connection: 0,
            connect_retry_at: None,
            established_since: None,
            last_error: None,
            updates_received: 0,
            budget: None,
            actions: VecDeque::new(),
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The state of its most advanced connection.
    pub fn state(&self) -> State {
        let best = self
            .connections
            .iter()
            .map(|c| c.stage)
            .max_by_key(|s| *s as u8);
        match best {
            Some(Stage::Established) => State::Established,
            Some(Stage::OpenConfirm) => State::OpenConfirm,
            Some(Stage::OpenSent) => State::OpenSent,
            Some(Stage::Connecting) => State::Connect,
            None if self.started => State::Active,
            None => State::Idle,
        }
    }

    /// Since when it is established.
    pub fn established_since(&self) -> Option<Instant> {
        self.established_since
    }

    /// The last reason it failed or went down.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// UPDATEs received (and dropped) so far.
    pub fn updates_received(&self) -> u64 {
        self.updates_received
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.connections
            .iter()
            .flat_map(|c| [c.hold_at, c.keepalive_at])
            .chain([self.connect_retry_at])
            .flatten()
            .min()
    }

    /// ManualStart: connect now, or wait for the router when passive.
    pub fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        if !self.settings.passive {
            self.connect(now);
        }
    }

    /// ManualStop: a Cease (Administrative Shutdown) on every connection that has sent
    /// its OPEN, then close them all.
    pub fn stop(&mut self, now: Instant) {
        self.started = false;
        self.connect_retry_at = None;
        let ids: Vec<ConnectionId> = self.connections.iter().map(|c| c.id).collect();
        for id in ids {
            let notification =
                BgpNotificationMessage::CeaseError(CeaseError::AdministrativeShutdown {
                    value: Box::new([]),
                });
            self.fail(
                id,
                now,
                Some(notification),
                "stopped by dockline".to_owned(),
            );
        }
    }

    /// The connection asked for with [`Action::Connect`] is up: send the OPEN.
    pub fn connected(&mut self, id: ConnectionId, now: Instant) {
        let Some(connection) = self.connection_mut(id) else {
            return;
        };
        if connection.stage != Stage::Connecting {
            return;
        }
        connection.stage = Stage::OpenSent;
        connection.hold_at = Some(now + OPEN_HOLD_TIME);
        self.connect_retry_at = None;
        self.send_open(id);
    }

    /// The connection asked for could not be made.
    pub fn connection_failed(&mut self, id: ConnectionId, now: Instant, reason: &str) {
        if self.connection_mut(id).is_some() {
            self.fail(id, now, None, format!("connection failed: {reason}"));
        }
    }

    /// The TCP connection of `id` was closed or reset by the router.
    pub fn connection_closed(&mut self, id: ConnectionId, now: Instant) {
        if self.connection_mut(id).is_some() {
            self.fail(id, now, None, "connection closed by the router".to_owned());
        }
    }

    /// The router connected to dockline: the connection's id, or `None` to refuse it
    /// (stopped, or two connections already exchanging OPENs). A pending outbound
    /// attempt gives way to it.
    pub fn accept(&mut self, now: Instant) -> Option<ConnectionId> {
        if !self.started {
            return None;
        }
        let pending: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|c| c.stage == Stage::Connecting)
            .map(|c| c.id)
            .collect();
        for id in pending {
            self.remove(id);
            self.actions.push_back(Action::Close(id));
        }
        if self.connections.len() >= 2 {
            return None;
        }
        let id = self.add_connection(false, Stage::OpenSent);
        if let Some(connection) = self.connection_mut(id) {
            connection.hold_at = Some(now + OPEN_HOLD_TIME);
        }
        self.connect_retry_at = None;
        self.send_open(id);
        Some(id)
    }

    /// Bytes arrived on `id`.
    pub fn received(&mut self, id: ConnectionId, bytes: &[u8], now: Instant) {
        let mut input = bytes;
        loop {
            let Some(connection) = self.connection_mut(id) else {
                return;
            };
            // Take no more than completes the next message, so the buffer stays bounded
            // by one message whatever the router sends.
            let wanted = match message::frame(&connection.buffer) {
                Ok(Some(_)) => 0,
                Ok(None) if connection.buffer.len() < message::HEADER_LENGTH => {
                    message::HEADER_LENGTH - connection.buffer.len()
                }
                Ok(None) => {
                    let length = usize::from(u16::from_be_bytes([
                        connection.buffer[16],
                        connection.buffer[17],
                    ]));
                    length - connection.buffer.len()
                }
                Err(notification) => {
                    self.fail(id, now, Some(notification), "bad message header".to_owned());
                    return;
                }
            };
            let take = wanted.min(input.len());
            connection.buffer.extend_from_slice(&input[..take]);
            input = &input[take..];
            match message::frame(&connection.buffer) {
                Ok(Some(length)) => {
                    let whole: Vec<u8> = connection.buffer.drain(..length).collect();
                    self.handle_message(id, &whole, now);
                }
                Ok(None) if input.is_empty() => return,
                Ok(None) => {}
                Err(notification) => {
                    self.fail(id, now, Some(notification), "bad message header".to_owned());
                    return;
                }
            }
        }
    }

    /// Fires the timers due at `now`: connect retry, hold expiry, keepalives.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.connect_retry_at.is_some_and(|at| at <= now) {
            self.connect_retry_at = None;
            if self.started && !self.settings.passive && self.connections.is_empty() {
                self.connect(now);
            }
        }
        let expired: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|c| c.hold_at.is_some_and(|at| at <= now))
            .map(|c| c.id)
            .collect();
        for id in expired {
            let notification =
                BgpNotificationMessage::HoldTimerExpiredError(HoldTimerExpiredError::Unspecific {
                    sub_code: 0,
                    value: Box::new([]),
                });
            self.fail(id, now, Some(notification), "hold timer expired".to_owned());
        }
        let keepalive = message::encode(&BgpMessage::KeepAlive);
        for connection in &mut self.connections {
            if let (Some(at), Some(every)) = (connection.keepalive_at, connection.keepalive_every)
                && at <= now
            {
                connection.keepalive_at = Some(now + every);
                self.actions
                    .push_back(Action::Send(connection.id, keepalive.clone()));
            }
        }
    }

    /// BFD says the router is gone: the established connection ends with a Cease
    /// (BFD Down, RFC 9384) without waiting for the hold timer.
    pub fn bfd_down(&mut self, now: Instant) {
        let established: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|c| c.stage == Stage::Established)
            .map(|c| c.id)
            .collect();
        for id in established {
            let notification = BgpNotificationMessage::CeaseError(CeaseError::BfdDown {
                value: Box::new([]),
            });
            self.fail(id, now, Some(notification), "BFD down".to_owned());
        }
    }

    /// Queues an UPDATE (or any message) on the established connection; `false` when
    /// the session is not established.
    pub fn send(&mut self, bytes: Vec<u8>, now: Instant) -> bool {
        let Some(connection) = self
            .connections
            .iter_mut()
            .find(|c| c.stage == Stage::Established)
        else {
            return false;
        };
        // Every message sent counts as a sign of life (RFC 4271 section 4.4).
        if let Some(every) = connection.keepalive_every {
            connection.keepalive_at = Some(now + every);
        }
        self.actions.push_back(Action::Send(connection.id, bytes));
        true
    }

    fn connect(&mut self, now: Instant) {
        let id = self.add_connection(true, Stage::Connecting);
        self.connect_retry_at = Some(now + self.settings.connect_retry);
        self.actions.push_back(Action::Connect(id));
    }

    fn add_connection(&mut self, outbound: bool, stage: Stage) -> ConnectionId {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.connections.push(Connection {
            id,
            outbound,
            stage,
            buffer: Vec::new(),
            hold_at: None,
            keepalive_at: None,
            keepalive_every: None,
            hold_for: None,
            negotiated: None,
        });
        id
    }

    fn connection_mut(&mut self, id: ConnectionId) -> Option<&mut Connection> {
        self.connections.iter_mut().find(|c| c.id == id)
    }

    fn remove(&mut self, id: ConnectionId) -> Option<Connection> {
        let index = self.connections.iter().position(|c| c.id == id)?;
        Some(self.connections.remove(index))
    }

    fn send_open(&mut self, id: ConnectionId) {
        let open = message::open(
            self.settings.local_asn,
            self.settings.hold_time,
            self.settings.router_id,
            self.settings.graceful_restart,
        );
        self.actions
            .push_back(Action::Send(id, message::encode(&open)));
    }

    /// Ends connection `id`: NOTIFICATION first if one is given and the connection got as
    /// far as sending its OPEN, then close; the session goes down if it was established,
    /// and is retried later if it is still wanted.
    fn fail(
        &mut self,
        id: ConnectionId,
        now: Instant,
        notification: Option<BgpNotificationMessage>,
        reason: String,
    ) {
        let Some(connection) = self.remove(id) else {
            return;
        };
        let mut reason = reason;
        if let Some(notification) = notification
            && connection.stage != Stage::Connecting
        {
            let bytes = message::encode(&BgpMessage::Notification(notification));
            let (code, subcode) = message::notification_codes(&bytes);
            reason = format!("{reason} (NOTIFICATION {code}/{subcode} sent)");
            self.actions.push_back(Action::Send(id, bytes));
            self.actions.push_back(Action::Notification {
                direction: Direction::Sent,
                code,
                subcode,
            });
        }
        self.actions.push_back(Action::Close(id));
        if connection.stage == Stage::Established {
            self.established_since = None;
            self.actions.push_back(Action::Down {
                reason: reason.clone(),
            });
        }
        self.last_error = Some(reason);
        if self.started && self.connections.is_empty() && !self.settings.passive {
            self.connect_retry_at = Some(now + self.settings.connect_retry);
        }
    }

    fn handle_message(&mut self, id: ConnectionId, bytes: &[u8], now: Instant) {
        let Some(connection) = self.connection_mut(id) else {
            return;
        };
        let four_octet_asn = connection
            .negotiated
            .as_ref()
            .is_none_or(|n| n.four_octet_asn);
        // Any message is a sign of life (RFC 4271 section 6.5 restarts the hold timer on
        // KEEPALIVE and UPDATE; an OPEN or NOTIFICATION changes the stage anyway).
        if let Some(hold) = connection.hold_for {
            connection.hold_at = Some(now + hold);
        }
        let stage = connection.stage;
        let route_refresh = bytes.get(18) == Some(&message::ROUTE_REFRESH_TYPE);
        let budget = self.budget.get_or_insert_with(|| ReceiveBudget::new(now));
        if !budget.spend(budget::cost(bytes.len(), route_refresh), now) {
            let notification = BgpNotificationMessage::CeaseError(CeaseError::OutOfResources {
                value: Box::new([]),
            });
            let reason = format!(
                "flooding: more than {} MiB of messages at once, or {} MiB a second after that",
                budget::BURST >> 20,
                budget::REFILL_PER_SECOND >> 20
            );
            self.fail(id, now, Some(notification), reason);
            return;
        }
        let message = match message::decode(bytes, four_octet_asn) {
            Ok(message) => message,
            Err(malformed) => {
                let reason = format!("malformed message: {}", malformed.reason);
                self.fail(id, now, Some(malformed.notification), reason);
                return;
            }
        };
        match (stage, message) {
            (_, BgpMessage::Notification(_)) => {
                let (code, subcode) = message::notification_codes(bytes);
                self.actions.push_back(Action::Notification {
                    direction: Direction::Received,
                    code,
                    subcode,
                });
                self.fail(
                    id,
                    now,
                    None,
                    format!("NOTIFICATION {code}/{subcode} received"),
                );
            }
            (Stage::OpenSent, BgpMessage::Open(open)) => self.handle_open(id, &open, now),
            (Stage::OpenConfirm, BgpMessage::KeepAlive) => self.establish(id, now),
            (Stage::Established, BgpMessage::KeepAlive) => {}
            (Stage::Established, BgpMessage::Update(_)) => self.updates_received += 1,
            (Stage::Established, BgpMessage::RouteRefresh(_)) => {
                self.actions.push_back(Action::RouteRefresh);
            }
            (stage, message) => {
                let value = Box::new([]);
                let error = match stage {
                    Stage::OpenSent => {
                        FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState { value }
                    }
                    Stage::OpenConfirm => {
                        FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState {
                            value,
                        }
                    }
                    _ => FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState {
                        value,
                    },
                };
                self.fail(
                    id,
                    now,
                    Some(BgpNotificationMessage::FiniteStateMachineError(error)),
                    format!("unexpected {:?} in {stage:?}", message.get_type()),
                );
            }
        }
    }

    fn handle_open(&mut self, id: ConnectionId, open: &BgpOpenMessage, now: Instant) {
        let negotiated = match self.check_open(open) {
            Ok(negotiated) => negotiated,
            Err((error, reason)) => {
                self.fail(
                    id,
                    now,
                    Some(BgpNotificationMessage::OpenMessageError(error)),
                    reason,
                );
                return;
            }
        };
        // The configured keepalive holds unless the router's shorter hold time leaves it
        // too slow; then a third of the agreed hold time, as by default.
        let keepalive = match (negotiated.hold_time, self.settings.keepalive) {
            (0, _) => None,
            (hold, Some(keepalive)) if keepalive > 0 && keepalive < hold => Some(keepalive),
            (hold, _) => Some((hold / 3).max(1)),
        };
        let Some(connection) = self.connection_mut(id) else {
            return;
        };
        connection.stage = Stage::OpenConfirm;
        connection.hold_for =
            (negotiated.hold_time > 0).then(|| Duration::from_secs(negotiated.hold_time.into()));
        connection.hold_at = connection.hold_for.map(|hold| now + hold);
        connection.keepalive_every = keepalive.map(|s| Duration::from_secs(s.into()));
        connection.keepalive_at = connection.keepalive_every.map(|every| now + every);
        connection.negotiated = Some(negotiated.clone());
        self.actions
            .push_back(Action::Send(id, message::encode(&BgpMessage::KeepAlive)));
        self.resolve_collision(id, &negotiated, now);
    }

    /// RFC 4271 section 6.8, when connection `id` has just reached OpenConfirm.
    fn resolve_collision(&mut self, id: ConnectionId, negotiated: &Negotiated, now: Instant) {
        let Some(other) = self
            .connections
            .iter()
            .find(|c| c.id != id && matches!(c.stage, Stage::OpenConfirm | Stage::Established))
        else {
            return;
        };
        let (other_id, other_outbound, other_stage) = (other.id, other.outbound, other.stage);
        let other_graceful = other
            .negotiated
            .as_ref()
            .is_some_and(|n| n.graceful_restart);
        let loser = if other_stage == Stage::Established {
            // A router that restarted (RFC 4724 section 4.2) reconnects while dockline still
            // thinks the old session is up: the new one wins. Otherwise the newcomer loses.
            if other_graceful { other_id } else { id }
        } else {
            // The connection opened by the speaker with the higher BGP Identifier stays.
            let keep_outbound = self.settings.router_id > negotiated.peer_router_id;
            if other_outbound == keep_outbound {
                id
            } else {
                other_id
            }
        };
        let notification =
            BgpNotificationMessage::CeaseError(CeaseError::ConnectionCollisionResolution {
                value: Box::new([]),
            });
        self.fail(
            loser,
            now,
            Some(notification),
            "connection collision".to_owned(),
        );
    }

    fn establish(&mut self, id: ConnectionId, now: Instant) {
        let Some(connection) = self.connection_mut(id) else {
            return;
        };
        connection.stage = Stage::Established;
        let Some(negotiated) = connection.negotiated.clone() else {
            return;
        };
        self.established_since = Some(now);
        self.last_error = None;
        self.actions.push_back(Action::Up(id, negotiated));
    }

    /// The OPEN checks of RFC 4271 section 6.2 (and RFC 6793 for the AS number), with
    /// the capabilities both sides share.
    fn check_open(&self, open: &BgpOpenMessage) -> Result<Negotiated, (OpenMessageError, String)> {
        if open.version() != 4 {
            return Err((
                OpenMessageError::UnsupportedVersionNumber {
                    value: 4u16.to_be_bytes().into(),
                },
                format!("the router speaks BGP version {}", open.version()),
            ));
        }
        let peer_asn = open.my_asn4();
        if peer_asn != self.settings.peer_asn {
            return Err((
                OpenMessageError::BadPeerAs {
                    value: open.my_as().to_be_bytes().into(),
                },
                format!(
                    "the router's AS is {peer_asn}, not {} as configured",
                    self.settings.peer_asn
                ),
            ));
        }
        if matches!(open.hold_time(), 1 | 2) {
            return Err((
                OpenMessageError::UnacceptableHoldTime {
                    value: Box::new([]),
                },
                format!("the router's hold time {} s is below 3", open.hold_time()),
            ));
        }
        let id = open.bgp_id();
        if id.is_unspecified()
            || id.is_broadcast()
            || (self.settings.is_internal() && id == self.settings.router_id)
        {
            return Err((
                OpenMessageError::BadBgpIdentifier {
                    value: Box::new([]),
                },
                format!("the router's BGP Identifier {id} is not acceptable"),
            ));
        }
        let capabilities = open.capabilities();
        let families: Vec<AddressType> = capabilities
            .iter()
            .filter_map(|capability| match capability {
                BgpCapability::MultiProtocolExtensions(mp) => Some(mp.address_type()),
                _ => None,
            })
            .collect();
        Ok(Negotiated {
            peer_router_id: id,
            hold_time: open.hold_time().min(self.settings.hold_time),
            four_octet_asn: capabilities
                .iter()
                .any(|c| matches!(c, BgpCapability::FourOctetAs(_))),
            // No multiprotocol capability at all means IPv4 unicast (RFC 4760 section 8).
            ipv4: families.is_empty() || families.contains(&AddressType::Ipv4Unicast),
            ipv6: families.contains(&AddressType::Ipv6Unicast),
            graceful_restart: self.settings.graceful_restart
                && capabilities
                    .iter()
                    .any(|c| matches!(c, BgpCapability::GracefulRestartCapability(_))),
        })
    }
}

#[cfg(test)]
mod tests;
