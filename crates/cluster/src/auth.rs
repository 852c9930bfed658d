//! The authenticated gossip envelope, without I/O: the caller passes the wall-clock time.
//!
//! A sealed packet is `version (1) | sent_at (8, ms since the epoch, big endian) |
//! nonce (8) | payload | tag (32)`, the tag an HMAC-SHA256 over everything before it with
//! the first key of `cluster.gossip.secret_file`. Opening tries every key of the file, so
//! keys rotate without downtime (add, move first, remove; a reload after each step).
//!
//! Replays: a packet sent more than [`WINDOW`] before or after the receiver's clock is
//! dropped, and so is a second copy of a packet inside that window (its tag is remembered
//! until its `sent_at` leaves the window). Nodes' clocks must agree within the window.
//!
//! Without a key (`insecure = true`, or gossip on loopback) packets go out and are taken as
//! they are.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ClusterError;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 8;
const TAG_LEN: usize = 32;
/// How far a packet's `sent_at` may be from the receiver's clock, either way.
pub const WINDOW: Duration = Duration::from_secs(10);
/// At most this many tags are remembered; past it, packets are dropped as replays rather
/// than let the memory grow (far above what a cluster of hundreds of nodes sends in a
/// window).
const REMEMBERED_MAX: usize = 1 << 20;
/// Expired tags are forgotten at most this often.
const PURGE_EVERY_MS: u64 = 1_000;

/// Why a packet was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Malformed, or no key verifies its tag.
    Auth,
    /// Authentic, but sent outside the window or seen before.
    Replay,
}

/// Seals outgoing gossip packets and opens incoming ones with the keys, if any.
pub struct Auth {
    keys: Vec<Vec<u8>>,
    /// The first 16 bytes of the tags of packets opened, with the time (ms) they expire.
    seen: HashMap<[u8; 16], u64>,
    next_purge_ms: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .field("remembered", &self.seen.len())
            .finish()
    }
}

impl Auth {
    /// Authenticates with `keys`, the first signing; none turns authentication off.
    pub fn new(keys: Vec<Vec<u8>>) -> Self {
        Auth {
            keys,
            seen: HashMap::new(),
            next_purge_ms: 0,
        }
    }

    /// The keys of `cluster.gossip.secret_file`: one a line, surrounding whitespace and
    /// blank lines ignored. Without a file, packets are not authenticated.
    pub(crate) fn read_keys(path: Option<&Path>) -> Result<Vec<Vec<u8>>, ClusterError> {
        let Some(path) = path else {
            return Ok(Vec::new());
        };
        let text = std::fs::read(path).map_err(|e| ClusterError::Secret(path.to_owned(), e))?;
        let keys: Vec<Vec<u8>> = text
            .split(|byte| *byte == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if keys.is_empty() {
            return Err(ClusterError::EmptySecret(path.to_owned()));
        }
        Ok(keys)
    }

    /// Whether packets are authenticated.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Uses `keys` from now on (a reload); what was seen stays remembered.
    pub fn set_keys(&mut self, keys: Vec<Vec<u8>>) {
        self.keys = keys;
    }

    fn mac(key: &[u8]) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    /// The packet to put on the wire; `now_ms` is the wall clock in ms since the epoch and
    /// `nonce` a random number, so that no two packets are the same.
    pub fn seal(&self, payload: &[u8], now_ms: u64, nonce: u64) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            return payload.to_vec();
        };
        let mut packet = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
        packet.push(VERSION);
        packet.extend_from_slice(&now_ms.to_be_bytes());
        packet.extend_from_slice(&nonce.to_be_bytes());
        packet.extend_from_slice(payload);
        let mut mac = Self::mac(key);
        mac.update(&packet);
        packet.extend_from_slice(&mac.finalize().into_bytes());
        packet
    }

    /// The payload of an authentic packet not seen before and sent within [`WINDOW`] of
    /// `now_ms`.
    pub fn open<'p>(&mut self, packet: &'p [u8], now_ms: u64) -> Result<&'p [u8], Rejected> {
        if self.keys.is_empty() {
            return Ok(packet);
        }
        let signed_len = packet
            .len()
            .checked_sub(TAG_LEN)
            .filter(|len| *len >= HEADER_LEN)
            .ok_or(Rejected::Auth)?;
        let (signed, tag) = packet.split_at(signed_len);
        if signed[0] != VERSION {
            return Err(Rejected::Auth);
        }
        let authentic = self.keys.iter().any(|key| {
            let mut mac = Self::mac(key);
            mac.update(signed);
            mac.verify_slice(tag).is_ok()
        });
        if !authentic {
            return Err(Rejected::Auth);
        }
        let sent_at = u64::from_be_bytes(signed[1..9].try_into().expect("8 bytes"));
        let window = WINDOW.as_millis() as u64;
        if sent_at.abs_diff(now_ms) > window {
            return Err(Rejected::Replay);
        }
        self.forget_expired(now_ms);
        let id: [u8; 16] = tag[..16].try_into().expect("16 bytes");
        if self.seen.contains_key(&id) || self.seen.len() >= REMEMBERED_MAX {
            return Err(Rejected::Replay);
        }
        self.seen.insert(id, sent_at.saturating_add(window));
        Ok(&signed[HEADER_LEN..])
    }

    /// Forgets tags whose packets the window rejects by now anyway.
    fn forget_expired(&mut self, now_ms: u64) {
        if now_ms < self.next_purge_ms {
            return;
        }
        self.seen.retain(|_, expires| *expires >= now_ms);
        self.next_purge_ms = now_ms + PURGE_EVERY_MS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn keyed(keys: &[&str]) -> Auth {
        Auth::new(keys.iter().map(|k| k.as_bytes().to_vec()).collect())
    }

    #[test]
    fn sealed_packets_open_only_with_a_key_of_the_sender() {
        let a = keyed(&["secret"]);
        let packet = a.seal(b"hello", NOW, 7);
        assert_eq!(keyed(&["secret"]).open(&packet, NOW), Ok(&b"hello"[..]));
        assert_eq!(keyed(&["other"]).open(&packet, NOW), Err(Rejected::Auth));
        assert_eq!(keyed(&["secret"]).open(b"hello", NOW), Err(Rejected::Auth));
        assert_eq!(keyed(&["secret"]).open(b"", NOW), Err(Rejected::Auth));
        for byte in [0, 1, 10, 17, packet.len() - 1] {
            let mut flipped = packet.clone();
            flipped[byte] ^= 1;
            assert_eq!(
                keyed(&["secret"]).open(&flipped, NOW),
                Err(Rejected::Auth),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn without_keys_packets_pass_as_they_are() {
        let mut open = Auth::new(Vec::new());
        assert!(!open.enabled());
        assert_eq!(open.seal(b"x", NOW, 1), b"x");
        assert_eq!(open.open(b"x", NOW), Ok(&b"x"[..]));
        assert_eq!(open.open(b"x", NOW), Ok(&b"x"[..]), "no replay check");
    }

    #[test]
    fn the_first_key_signs_and_any_key_verifies_so_keys_rotate() {
        let old = keyed(&["old"]);
        let both = keyed(&["new", "old"]);
        let mut old_receiver = keyed(&["old", "new"]);
        let mut new_receiver = keyed(&["new"]);
        assert_eq!(
            old_receiver.open(&both.seal(b"a", NOW, 1), NOW),
            Ok(&b"a"[..])
        );
        assert_eq!(
            keyed(&["new", "old"]).open(&old.seal(b"b", NOW, 2), NOW),
            Ok(&b"b"[..])
        );
        assert_eq!(
            new_receiver.open(&old.seal(b"c", NOW, 3), NOW),
            Err(Rejected::Auth)
        );
    }

    #[test]
    fn a_packet_seen_before_is_a_replay() {
        let sender = keyed(&["k"]);
        let mut receiver = keyed(&["k"]);
        let packet = sender.seal(b"ping", NOW, 1);
        assert!(receiver.open(&packet, NOW).is_ok());
        assert_eq!(receiver.open(&packet, NOW + 5), Err(Rejected::Replay));
        let again = sender.seal(b"ping", NOW, 2);
        assert!(receiver.open(&again, NOW + 5).is_ok(), "another nonce");
    }

    #[test]
    fn a_packet_sent_outside_the_window_either_way_is_a_replay() {
        let sender = keyed(&["k"]);
        let window = WINDOW.as_millis() as u64;
        let mut receiver = keyed(&["k"]);
        let old = sender.seal(b"x", NOW - window - 1, 1);
        assert_eq!(receiver.open(&old, NOW), Err(Rejected::Replay));
        let future = sender.seal(b"x", NOW + window + 1, 2);
        assert_eq!(receiver.open(&future, NOW), Err(Rejected::Replay));
        let edge = sender.seal(b"x", NOW - window, 3);
        assert!(receiver.open(&edge, NOW).is_ok());
    }

    #[test]
    fn remembered_tags_are_forgotten_once_the_window_rejects_their_packets() {
        let sender = keyed(&["k"]);
        let mut receiver = keyed(&["k"]);
        let window = WINDOW.as_millis() as u64;
        let packet = sender.seal(b"x", NOW, 1);
        assert!(receiver.open(&packet, NOW).is_ok());
        let later = NOW + window + 2 * PURGE_EVERY_MS;
        assert!(receiver.open(&sender.seal(b"y", later, 2), later).is_ok());
        assert_eq!(receiver.seen.len(), 1, "the first tag is forgotten");
        assert_eq!(receiver.open(&packet, later), Err(Rejected::Replay));
    }

    #[test]
    fn keys_are_read_one_a_line() {
        let dir = std::env::temp_dir().join(format!("dockline-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gossip.key");
        std::fs::write(&file, "  new-key \n\nold-key\r\n").unwrap();
        let keys = Auth::read_keys(Some(&file)).unwrap();
        assert_eq!(keys, [b"new-key".to_vec(), b"old-key".to_vec()]);
        std::fs::write(&file, "\n \n").unwrap();
        assert!(matches!(
            Auth::read_keys(Some(&file)),
            Err(ClusterError::EmptySecret(_))
        ));
        assert!(Auth::read_keys(None).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
