//! BFD (RFC 5880) in asynchronous mode over single-hop UDP (RFC 5881), sans-IO: the
//! control packet codec and one session's state machine. The driver feeds it received
//! packets and `now`, sends what [`BfdSession::poll_transmit`] returns, and watches
//! [`BfdSession::state`]: a session that was Up and goes Down takes the BGP session down.
//!
//! No authentication and no echo function. While not Up the session transmits once a
//! second (section 6.8.3); once Up it uses the configured interval, announced by a Poll
//! Sequence (section 6.5).

use std::time::{Duration, Instant};

/// The UDP port of single-hop control packets (RFC 5881 section 4).
pub const CONTROL_PORT: u16 = 3784;
/// The length of a control packet without authentication.
pub const PACKET_LENGTH: usize = 24;
/// The slowest a session transmits while it is not Up (RFC 5880 section 6.8.3).
const SLOW_INTERVAL: Duration = Duration::from_secs(1);

/// A session state (RFC 5880 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BfdState {
    /// Held down by configuration.
    AdminDown,
    /// Not established, or lost.
    Down,
    /// The remote end is heard, waiting for it to hear us.
    Init,
    /// Both ends hear each other.
    Up,
}

impl BfdState {
    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            BfdState::AdminDown => 0,
            BfdState::Down => 1,
            BfdState::Init => 2,
            BfdState::Up => 3,
        }
    }
}

/// A control packet's fields (RFC 5880 section 4.1), authentication aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    /// Why the sender's session last went down.
    pub diagnostic: u8,
    /// The sender's state.
    pub state: BfdState,
    /// Poll: the sender asks for a Final.
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub final_bit: bool,
    /// Detect Mult.
    pub detect_multiplier: u8,
    /// My Discriminator.
    pub my_discriminator: u32,
    /// Your Discriminator.
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
}

/// Why a received packet is discarded (RFC 5880 section 6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Discarded {
    /// Shorter than its header says, or than 24 bytes.
    #[error("truncated")]
    Truncated,
    /// Not version 1, a zero multiplier or discriminator, multipoint, or authenticated.
    #[error("invalid")]
    Invalid,
    /// Sent with a TTL or hop limit below 255, so not from a router on the link: a
    /// single-hop session without authentication accepts only 255 (RFC 5881 section 5).
    #[error("ttl")]
    NotFromTheLink,
}

impl Discarded {
    /// The label the discard counter uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Discarded::Truncated => "truncated",
            Discarded::Invalid => "invalid",
            Discarded::NotFromTheLink => "ttl",
        }
    }
}

impl ControlPacket {
    /// Decodes and checks a control packet.
    pub fn decode(bytes: &[u8]) -> Result<Self, Discarded> {
        if bytes.len() < PACKET_LENGTH {
            return Err(Discarded::Truncated);
        }
        let length = usize::from(bytes[3]);
        if length < PACKET_LENGTH || length > bytes.len() {
            return Err(Discarded::Truncated);
        }
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let flags = bytes[1];
        let authenticated = flags & 0x04 != 0;
        let multipoint = flags & 0x01 != 0;
        let packet = ControlPacket {
            diagnostic: bytes[0] & 0x1f,
            state: BfdState::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_bit: flags & 0x10 != 0,
            detect_multiplier: bytes[2],
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
        };
        let version = bytes[0] >> 5;
        let your_missing = packet.your_discriminator == 0
            && !matches!(packet.state, BfdState::Down | BfdState::AdminDown);
        if version != 1
            || packet.detect_multiplier == 0
            || packet.my_discriminator == 0
            || multipoint
            || authenticated
            || your_missing
        {
            return Err(Discarded::Invalid);
        }
        Ok(packet)
    }

    /// Decodes a packet that arrived with `ttl` (the IPv4 TTL or the IPv6 hop limit;
    /// `None` when the kernel did not say, which counts as not from the link).
    pub fn decode_received(bytes: &[u8], ttl: Option<u8>) -> Result<Self, Discarded> {
        if ttl != Some(255) {
            return Err(Discarded::NotFromTheLink);
        }
        Self::decode(bytes)
    }

    /// The 24 bytes of the packet.
    pub fn encode(&self) -> [u8; PACKET_LENGTH] {
        let mut bytes = [0u8; PACKET_LENGTH];
        bytes[0] = (1 << 5) | (self.diagnostic & 0x1f);
        bytes[1] = (self.state.bits() << 6)
            | if self.poll { 0x20 } else { 0 }
            | if self.final_bit { 0x10 } else { 0 };
        bytes[2] = self.detect_multiplier;
        bytes[3] = PACKET_LENGTH as u8;
        bytes[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        bytes[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        bytes[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        bytes
    }
}

/// Diagnostic codes dockline sets (RFC 5880 section 4.1).
const DIAG_DETECTION_EXPIRED: u8 = 1;
const DIAG_NEIGHBOR_DOWN: u8 = 3;

/// One BFD session with a router.
#[derive(Debug)]
pub struct BfdSession {
    state: BfdState,
    diagnostic: u8,
    my_discriminator: u32,
    your_discriminator: u32,
    interval: Duration,
    multiplier: u8,
    remote_min_rx: Duration,
    remote_min_tx: Duration,
    remote_multiplier: u8,
    /// A Poll Sequence is running: our packets carry P until a Final comes back.
    polling: bool,
    /// A Final is owed to the remote end's Poll, sent at once.
    final_owed: bool,
    next_transmit: Instant,
    detection_deadline: Option<Instant>,
    jitter: u32,
}

impl BfdSession {
    /// A session in Down that transmits at once; `discriminator` must be non-zero and
    /// unique among this node's sessions.
    pub fn new(discriminator: u32, interval: Duration, multiplier: u8, now: Instant) -> Self {
        BfdSession {
            state: BfdState::Down,
            diagnostic: 0,
            my_discriminator: discriminator.max(1),
            your_discriminator: 0,
            interval,
            multiplier: multiplier.max(1),
            remote_min_rx: Duration::from_micros(1),
            remote_min_tx: SLOW_INTERVAL,
            remote_multiplier: 1,
            polling: false,
            final_owed: false,
            next_transmit: now,
            detection_deadline: None,
            jitter: discriminator | 1,
        }
    }

    /// The current state.
    pub fn state(&self) -> BfdState {
        self.state
    }

    /// When [`BfdSession::handle_timeout`] or [`BfdSession::poll_transmit`] is due next.
    pub fn poll_timeout(&self) -> Instant {
        match self.detection_deadline {
            Some(deadline) => deadline.min(self.next_transmit),
            None => self.next_transmit,
        }
    }

    /// Declares the remote end gone when nothing came within the detection time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detection_deadline.is_some_and(|at| at <= now) {
            self.go_down(DIAG_DETECTION_EXPIRED);
        }
    }

    /// The packet to send now, if one is due (periodic, or a Final owed).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<[u8; PACKET_LENGTH]> {
        if now < self.next_transmit && !self.final_owed {
            return None;
        }
        let final_bit = std::mem::take(&mut self.final_owed);
        let desired_tx = if self.state == BfdState::Up {
            self.interval
        } else {
            self.interval.max(SLOW_INTERVAL)
        };
        let packet = ControlPacket {
            diagnostic: self.diagnostic,
            state: self.state,
            poll: self.polling && !final_bit,
            final_bit,
            detect_multiplier: self.multiplier,
            my_discriminator: self.my_discriminator,
            your_discriminator: self.your_discriminator,
            desired_min_tx_us: micros(desired_tx),
            required_min_rx_us: micros(self.interval),
        };
        // Periodic packets go out every max(ours, the remote's required RX), less 0-25%
        // of jitter (section 6.8.7).
        let every = desired_tx.max(self.remote_min_rx);
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 17;
        self.jitter ^= self.jitter << 5;
        let percent = 75 + self.jitter % 26;
        self.next_transmit = now + every * percent / 100;
        Some(packet.encode())
    }

    /// A packet from the remote end arrived (section 6.8.6).
    pub fn received(&mut self, packet: &ControlPacket, now: Instant) {
        if packet.your_discriminator != 0 && packet.your_discriminator != self.my_discriminator {
            return;
        }
        self.your_discriminator = packet.my_discriminator;
        self.remote_min_rx = Duration::from_micros(packet.required_min_rx_us.into());
        self.remote_min_tx = Duration::from_micros(packet.desired_min_tx_us.into());
        self.remote_multiplier = packet.detect_multiplier;
        if packet.final_bit {
            self.polling = false;
        }
        if packet.poll {
            self.final_owed = true;
        }
        let was = self.state;
        match (self.state, packet.state) {
            (BfdState::Down, BfdState::AdminDown) => {}
            (_, BfdState::AdminDown) | (BfdState::Up, BfdState::Down) => {
                self.go_down(DIAG_NEIGHBOR_DOWN);
            }
            (BfdState::Down, BfdState::Down) => self.state = BfdState::Init,
            (BfdState::Down, BfdState::Init) | (BfdState::Init, BfdState::Init | BfdState::Up) => {
                self.state = BfdState::Up;
            }
            _ => {}
        }
        if was != BfdState::Up && self.state == BfdState::Up {
            // The interval drops from one second to the configured one: announce it.
            self.diagnostic = 0;
            self.polling = true;
            self.next_transmit = now;
        }
        if self.state != BfdState::Down {
            // Detection time: the remote multiplier times the slower of what we can
            // receive and what it sends (section 6.8.4).
            let every = self.interval.max(self.remote_min_tx);
            self.detection_deadline = Some(now + every * u32::from(self.remote_multiplier));
        }
    }

    fn go_down(&mut self, diagnostic: u8) {
        self.state = BfdState::Down;
        self.diagnostic = diagnostic;
        self.your_discriminator = 0;
        self.polling = false;
        self.detection_deadline = None;
        self.remote_min_tx = SLOW_INTERVAL;
    }
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(300);

    fn router(state: BfdState, your: u32) -> ControlPacket {
        ControlPacket {
            diagnostic: 0,
            state,
            poll: false,
            final_bit: false,
            detect_multiplier: 3,
            my_discriminator: 77,
            your_discriminator: your,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
        }
    }

    fn sent(session: &mut BfdSession, now: Instant) -> ControlPacket {
        ControlPacket::decode(&session.poll_transmit(now).expect("a packet is due")).unwrap()
    }

    #[test]
    fn packets_round_trip_and_bad_ones_are_discarded() {
        let packet = router(BfdState::Up, 5);
        assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
        let mut bytes = packet.encode();
        assert_eq!(
            ControlPacket::decode(&bytes[..20]),
            Err(Discarded::Truncated)
        );
        bytes[0] = 2 << 5;
        assert_eq!(ControlPacket::decode(&bytes), Err(Discarded::Invalid));
        let mut no_your = router(BfdState::Up, 0).encode();
        assert_eq!(ControlPacket::decode(&no_your), Err(Discarded::Invalid));
        no_your[3] = 40;
        assert_eq!(ControlPacket::decode(&no_your), Err(Discarded::Truncated));
    }

    #[test]
    fn only_packets_sent_with_ttl_255_are_taken() {
        let bytes = router(BfdState::Up, 5).encode();
        assert!(ControlPacket::decode_received(&bytes, Some(255)).is_ok());
        for ttl in [Some(254), Some(64), Some(1), None] {
            assert_eq!(
                ControlPacket::decode_received(&bytes, ttl),
                Err(Discarded::NotFromTheLink)
            );
        }
    }

    #[test]
    fn the_three_way_handshake_brings_the_session_up_and_announces_the_fast_interval() {
        let now = Instant::now();
        let mut session = BfdSession::new(9, INTERVAL, 3, now);
        let first = sent(&mut session, now);
        assert_eq!(first.state, BfdState::Down);
        assert_eq!(first.desired_min_tx_us, 1_000_000, "slow while not up");

        session.received(&router(BfdState::Down, 0), now);
        assert_eq!(session.state(), BfdState::Init);
        session.received(&router(BfdState::Up, 9), now);
        assert_eq!(session.state(), BfdState::Up);
        let announce = sent(&mut session, now);
        assert!(announce.poll);
        assert_eq!(
            (announce.your_discriminator, announce.desired_min_tx_us),
            (77, 300_000)
        );

        let mut answer = router(BfdState::Up, 9);
        answer.final_bit = true;
        session.received(&answer, now);
        assert!(!sent(&mut session, now + INTERVAL).poll, "poll over");
    }

    #[test]
    fn a_poll_from_the_router_is_answered_with_a_final_at_once() {
        let now = Instant::now();
        let mut session = BfdSession::new(9, INTERVAL, 3, now);
        sent(&mut session, now);
        let mut poll = router(BfdState::Down, 0);
        poll.poll = true;
        session.received(&poll, now);
        let answer = sent(&mut session, now);
        assert!(answer.final_bit && !answer.poll);
    }

    #[test]
    fn silence_for_the_detection_time_takes_an_up_session_down() {
        let now = Instant::now();
        let mut session = BfdSession::new(9, INTERVAL, 3, now);
        session.received(&router(BfdState::Init, 9), now);
        assert_eq!(session.state(), BfdState::Up);
        // 3 x max(300 ms ours, 100 ms theirs).
        session.handle_timeout(now + Duration::from_millis(899));
        assert_eq!(session.state(), BfdState::Up);
        session.handle_timeout(now + Duration::from_millis(900));
        assert_eq!(session.state(), BfdState::Down);
        assert_eq!(
            sent(&mut session, now + Duration::from_secs(2)).diagnostic,
            1
        );
    }

    #[test]
    fn the_router_saying_down_takes_the_session_down() {
        let now = Instant::now();
        let mut session = BfdSession::new(9, INTERVAL, 3, now);
        session.received(&router(BfdState::Init, 9), now);
        session.received(&router(BfdState::Down, 9), now);
        assert_eq!(session.state(), BfdState::Down);
    }

    #[test]
    fn periodic_packets_follow_the_slower_interval_with_jitter() {
        let now = Instant::now();
        let mut session = BfdSession::new(9, INTERVAL, 3, now);
        sent(&mut session, now);
        let next = session.poll_timeout() - now;
        assert!(
            next >= Duration::from_millis(750) && next <= Duration::from_secs(1),
            "{next:?}"
        );
        assert!(
            session
                .poll_transmit(now + Duration::from_millis(10))
                .is_none()
        );
    }
}
