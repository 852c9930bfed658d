//! The common query, read once off the wire without allocating: a header with QR clear and
//! opcode QUERY, one question whose name has no compression pointer, no answer or authority
//! records, and at most an OPT record of version 0 (RFC 6891 section 6.1.3). The zone's fast
//! path and the cache of forwarded answers both start from it; any other shape takes the
//! general path.

use crate::edns;
use crate::verdict::Transport;
use crate::wire::{HEADER_LEN, MAX_NAME, TYPE_OPT};

/// The name, type, class and DO/CD bits of the cache key after the name.
const KEY_TAIL: usize = 5;

/// One question of a common query, with the key it is looked up by.
#[derive(Debug)]
pub struct Question<'q> {
    query: &'q [u8],
    /// The name in lowercase wire form, then type, class and one byte of the DO and CD
    /// bits: the first `name_len` bytes key the zone, all of it the cache.
    key: [u8; MAX_NAME + KEY_TAIL],
    name_len: usize,
    qtype: u16,
    qclass: u16,
    opt: Option<Opt>,
}

/// The query's OPT record, as far as answering reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opt {
    pub(crate) payload: u16,
    pub(crate) dnssec_ok: bool,
}

impl<'q> Question<'q> {
    /// Reads `query` if it is a common query; `None` otherwise.
    pub fn parse(query: &'q [u8]) -> Option<Self> {
        let header = query.get(..HEADER_LEN)?;
        // QR clear, opcode QUERY; one question, no answers or authority, at most an OPT.
        if header[2] & 0xf8 != 0 || header[4..10] != [0, 1, 0, 0, 0, 0] || header[10] != 0 {
            return None;
        }
        let mut key = [0u8; MAX_NAME + KEY_TAIL];
        let mut at = HEADER_LEN;
        loop {
            let len = usize::from(*query.get(at)?);
            if len > 63 || at - HEADER_LEN + len >= MAX_NAME {
                return None; // a compression pointer, or too long: the general path decides
            }
            let label = query.get(at..=at + len)?;
            for (k, b) in key[at - HEADER_LEN..].iter_mut().zip(label) {
                *k = b.to_ascii_lowercase();
            }
            at += len + 1;
            if len == 0 {
                break;
            }
        }
        let name_len = at - HEADER_LEN;
        let fixed = query.get(at..at + 4)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        at += 4;
        let opt = match header[11] {
            0 => None,
            1 => {
                let (opt, len) = parse_opt(query.get(at..)?)?;
                at += len;
                Some(opt)
            }
            _ => return None,
        };
        if at != query.len() {
            return None;
        }
        let dnssec_ok = opt.is_some_and(|o| o.dnssec_ok);
        let checking_disabled = header[3] & 0x10 != 0;
        key[name_len..name_len + 4].copy_from_slice(fixed);
        key[name_len + 4] = u8::from(dnssec_ok) << 1 | u8::from(checking_disabled);
        Some(Question {
            query,
            key,
            name_len,
            qtype,
            qclass,
            opt,
        })
    }

    /// The whole query.
    pub(crate) fn query(&self) -> &'q [u8] {
        self.query
    }

    /// The query's header.
    pub(crate) fn header(&self) -> &'q [u8] {
        &self.query[..HEADER_LEN]
    }

    /// The question section as the client sent it (the name's case kept).
    pub(crate) fn section(&self) -> &'q [u8] {
        &self.query[HEADER_LEN..HEADER_LEN + self.name_len + 4]
    }

    /// The name in lowercase wire form: the zone's key.
    pub(crate) fn name_key(&self) -> &[u8] {
        &self.key[..self.name_len]
    }

    /// Name, type, class, DO and CD: the cache's key (RFC 2308 section 5 keys negative
    /// answers by name, type and class; DO and CD change what an upstream answers).
    pub(crate) fn cache_key(&self) -> &[u8] {
        &self.key[..self.name_len + KEY_TAIL]
    }

    pub(crate) fn qtype(&self) -> u16 {
        self.qtype
    }

    pub(crate) fn qclass(&self) -> u16 {
        self.qclass
    }

    pub(crate) fn opt(&self) -> Option<Opt> {
        self.opt
    }

    /// The largest answer the client takes over `transport`.
    pub(crate) fn limit(&self, transport: Transport) -> usize {
        match transport {
            Transport::Udp => edns::udp_limit_of(self.opt.map(|o| o.payload)),
            Transport::Tcp => usize::from(u16::MAX),
        }
    }
}

/// An OPT record of version 0 and its length (options skipped: unknown ones are ignored
/// anyway).
fn parse_opt(bytes: &[u8]) -> Option<(Opt, usize)> {
    let fixed = bytes.get(..edns::OPT_LEN)?;
    let rtype = u16::from_be_bytes([fixed[1], fixed[2]]);
    // Root owner, type OPT, extended rcode 0, version 0.
    if fixed[0] != 0 || rtype != TYPE_OPT || fixed[5] != 0 || fixed[6] != 0 {
        return None;
    }
    let rdlen = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    bytes.get(edns::OPT_LEN..edns::OPT_LEN + rdlen)?;
    let opt = Opt {
        payload: u16::from_be_bytes([fixed[3], fixed[4]]),
        dnssec_ok: fixed[7] & 0x80 != 0,
    };
    Some((opt, edns::OPT_LEN + rdlen))
}
