//! Ethernet pieces shared by the ARP and NDP codecs.

use std::fmt;

/// Length of an Ethernet header: destination, source, ethertype.
pub const ETH_HEADER: usize = 14;
/// The ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// The ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Frames shorter than this are padded (IEEE 802.3 minimum without the FCS).
pub const MIN_FRAME: usize = 60;

/// An Ethernet (MAC-48) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff, every station on the segment.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00, "unknown" in an ARP request's target hardware address.
    pub const ZERO: Mac = Mac([0; 6]);

    /// Whether this is a group (multicast or broadcast) address, never a sender's.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut m = [0u8; 6];
        let parts: Vec<&str> = s.trim().split(':').collect();
        if parts.len() != 6 {
            return Err(format!("{s:?} is not a MAC address"));
        }
        for (byte, part) in m.iter_mut().zip(parts) {
            *byte =
                u8::from_str_radix(part, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        Ok(Mac(m))
    }
}

/// Why a received frame gets no answer; each reason is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Shorter than its headers say.
    Truncated,
    /// Another protocol or hardware type.
    Foreign,
    /// Well-formed but asks nothing of us (replies, announcements, other messages).
    NotRequest,
    /// Breaks a rule of the protocol (bad checksum, hop limit, option length, ...).
    Malformed,
}

impl Ignored {
    /// The value of the `reason` label of the ignored-frames counter.
    pub fn label(self) -> &'static str {
        match self {
            Ignored::Truncated => "truncated",
            Ignored::Foreign => "foreign",
            Ignored::NotRequest => "not_request",
            Ignored::Malformed => "malformed",
        }
    }
}

/// Pads `frame` with zeros to the Ethernet minimum.
pub(crate) fn pad(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < MIN_FRAME {
        frame.resize(MIN_FRAME, 0);
    }
    frame
}

/// Bytes from hex digits, whitespace allowed (test vectors).
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
