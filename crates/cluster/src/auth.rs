//! Gossip packet authentication: HMAC-SHA256 over the packet, the 32-byte tag appended.
//! Without a secret packets go out as they are and every packet is accepted.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ClusterError;

const TAG_LEN: usize = 32;

/// Seals outgoing gossip packets and opens incoming ones with the shared secret, if any.
#[derive(Clone)]
pub struct Auth {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.key.is_some())
            .finish()
    }
}

impl Auth {
    /// Authenticates with `key`; `None` turns authentication off.
    pub fn new(key: Option<Vec<u8>>) -> Self {
        Auth { key }
    }

    /// Authenticates with the contents of `cluster.gossip.secret_file`, surrounding
    /// whitespace trimmed; without a file, packets are not authenticated.
    pub(crate) fn from_secret_file(path: Option<&Path>) -> Result<Self, ClusterError> {
        let Some(path) = path else {
            return Ok(Auth::new(None));
        };
        let text = std::fs::read(path).map_err(|e| ClusterError::Secret(path.to_owned(), e))?;
        let key = text.trim_ascii();
        if key.is_empty() {
            return Err(ClusterError::EmptySecret(path.to_owned()));
        }
        Ok(Auth::new(Some(key.to_vec())))
    }

    fn mac(key: &[u8]) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    /// The packet to put on the wire.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut packet = payload.to_vec();
        if let Some(key) = &self.key {
            let mut mac = Self::mac(key);
            mac.update(payload);
            packet.extend_from_slice(&mac.finalize().into_bytes());
        }
        packet
    }

    /// The payload of an authentic packet, `None` for a forged or unsigned one.
    pub fn open<'p>(&self, packet: &'p [u8]) -> Option<&'p [u8]> {
        let Some(key) = &self.key else {
            return Some(packet);
        };
        let split = packet.len().checked_sub(TAG_LEN)?;
        let (payload, tag) = packet.split_at(split);
        let mut mac = Self::mac(key);
        mac.update(payload);
        mac.verify_slice(tag).ok().map(|()| payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_packets_open_only_with_the_same_secret() {
        let a = Auth::new(Some(b"secret".to_vec()));
        let b = Auth::new(Some(b"other".to_vec()));
        let packet = a.seal(b"hello");
        assert_eq!(a.open(&packet), Some(&b"hello"[..]));
        assert_eq!(b.open(&packet), None);
        assert_eq!(a.open(b"hello"), None, "unsigned");
        assert_eq!(a.open(b""), None, "shorter than a tag");
        let mut flipped = packet.clone();
        flipped[0] ^= 1;
        assert_eq!(a.open(&flipped), None);
        let open = Auth::new(None);
        assert_eq!(open.seal(b"x"), b"x");
        assert_eq!(open.open(b"x"), Some(&b"x"[..]));
    }
}
