//! The fast path of the common query: one question, class IN, at most a plain OPT record,
//! for a name and type that has records. Its answer is assembled from bytes precomputed at
//! zone build (headless sets rotated by slicing, or encoded per turn): header, the question
//! as the client sent it (case kept), the precomputed records, the OPT. Everything else, and any
//! answer that would not fit the client's UDP size, takes the general path in `answer`.
//!
//! The precomputed records compress their names against the question at offset 12, which
//! holds for the client's question too: it is the same name, so it has the same length.

use std::net::IpAddr;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

use crate::answer::{Action, Transport, Verdict};
use crate::edns;
use crate::zone::Zone;

const HEADER_LEN: usize = 12;
const MAX_NAME: usize = 255;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// A compression pointer to offset 12: the question's name.
const QUESTION_NAME: [u8; 2] = [0xc0, 0x0c];

/// The record sections of one answer, as bytes.
#[derive(Debug)]
pub(crate) struct Precomputed {
    turns: Turns,
    answers: u16,
    additionals: u16,
}

/// How the answer of a rotating set is laid out for each turn.
#[derive(Debug)]
enum Turns {
    /// One order only.
    Fixed(Box<[u8]>),
    /// Records of one length whose only name is a pointer to the question (A, AAAA): turn
    /// `t` is the bytes from record `t` on, then those before it.
    Sliced { bytes: Box<[u8]>, record_len: usize },
    /// Records that point into one another (SRV targets and their addresses): every turn
    /// encoded whole.
    Encoded(Box<[Box<[u8]>]>),
}

/// Precomputes the answer to `owner`/`rtype` with these records (in turn 0) and additionals,
/// each turn encoded whole; `None` if it cannot be encoded. Address sets take
/// [`precompute_addresses`].
pub(crate) fn precompute(
    owner: &Name,
    rtype: RecordType,
    records: &[Record],
    additionals: &[Record],
    rotates: bool,
) -> Option<Precomputed> {
    let query = Query::query(owner.clone(), rtype);
    let mut question = Vec::new();
    encode(&query, &[], &[], &mut question)?;
    // The record sections of one turn, and their answer and additional counts.
    let sections = |turn: usize| -> Option<(Box<[u8]>, Counts)> {
        let order: Vec<&Record> = records[turn..].iter().chain(&records[..turn]).collect();
        let mut message = Vec::new();
        let counts = encode(&query, &order, additionals, &mut message)?;
        Some((message.split_off(question.len()).into_boxed_slice(), counts))
    };
    let (bytes, (answers, extra)) = sections(0)?;
    let turns = match rotates {
        false => Turns::Fixed(bytes),
        true => {
            let mut turns = vec![bytes];
            for turn in 1..records.len() {
                turns.push(sections(turn)?.0);
            }
            Turns::Encoded(turns.into_boxed_slice())
        }
    };
    Some(Precomputed {
        turns,
        answers,
        additionals: extra,
    })
}

/// Precomputes the answer of an A or AAAA set (all of one family) byte by byte: each record
/// is a pointer to the question's name, type, class IN, TTL, and the address.
pub(crate) fn precompute_addresses(addresses: &[IpAddr], ttl: u32, rotates: bool) -> Precomputed {
    let mut bytes = Vec::with_capacity(addresses.len() * 28);
    for address in addresses {
        let (rtype, data): (RecordType, &[u8]) = match address {
            IpAddr::V4(v4) => (RecordType::A, &v4.octets()),
            IpAddr::V6(v6) => (RecordType::AAAA, &v6.octets()),
        };
        bytes.extend_from_slice(&QUESTION_NAME);
        bytes.extend_from_slice(&u16::from(rtype).to_be_bytes());
        bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        bytes.extend_from_slice(&ttl.to_be_bytes());
        bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
        bytes.extend_from_slice(data);
    }
    let bytes = bytes.into_boxed_slice();
    let turns = match rotates && !addresses.is_empty() {
        true => Turns::Sliced {
            record_len: bytes.len() / addresses.len(),
            bytes,
        },
        false => Turns::Fixed(bytes),
    };
    Precomputed {
        turns,
        answers: addresses.len() as u16,
        additionals: 0,
    }
}

impl Precomputed {
    fn len(&self) -> usize {
        match &self.turns {
            Turns::Fixed(bytes) | Turns::Sliced { bytes, .. } => bytes.len(),
            Turns::Encoded(turns) => turns[0].len(),
        }
    }

    /// Appends the sections of turn `turn` to `out`.
    fn write(&self, turn: usize, out: &mut Vec<u8>) {
        match &self.turns {
            Turns::Fixed(bytes) => out.extend_from_slice(bytes),
            Turns::Sliced { bytes, record_len } => {
                let (head, tail) = bytes.split_at(turn * record_len);
                out.extend_from_slice(tail);
                out.extend_from_slice(head);
            }
            Turns::Encoded(turns) => out.extend_from_slice(&turns[turn]),
        }
    }
}

/// Answer and additional record counts.
type Counts = (u16, u16);

/// Encodes a response to `query` with these sections; the answer and additional counts.
fn encode(
    query: &Query,
    answers: &[&Record],
    additionals: &[Record],
    out: &mut Vec<u8>,
) -> Option<Counts> {
    let mut message = Message::response(0, hickory_proto::op::OpCode::Query);
    message.add_query(query.clone());
    let mut encoder = BinEncoder::new(out);
    let header = hickory_proto::op::emit_message_parts(
        &message.metadata,
        &mut message.queries.iter(),
        &mut answers.iter().copied(),
        &mut std::iter::empty::<&Record>(),
        &mut additionals.iter(),
        None,
        None,
        &mut encoder,
    )
    .ok()?;
    Some((header.counts.answers, header.counts.additionals))
}

/// Answers `query` if it is the common case and the answer fits; `None` otherwise.
pub(crate) fn answer(
    query: &[u8],
    zone: &Zone,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Verdict> {
    let header = query.get(..HEADER_LEN)?;
    // QR clear, opcode QUERY; one question, no answers or authority, at most an OPT.
    if header[2] & 0xf8 != 0 || header[4..10] != [0, 1, 0, 0, 0, 0] || header[10] != 0 {
        return None;
    }
    let additionals = header[11];
    let mut key = [0u8; MAX_NAME];
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
    let name_end = at;
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(at + 2)?, *query.get(at + 3)?]);
    at += 4;
    if qclass != CLASS_IN {
        return None;
    }
    let opt = match additionals {
        0 => None,
        1 => {
            let opt = parse_opt(query.get(at..)?)?;
            at += opt.len;
            Some(opt)
        }
        _ => return None,
    };
    if at != query.len() {
        return None;
    }
    let node = zone.node_by_key(&key[..name_end - HEADER_LEN])?;
    if node.cname.is_some() {
        return None;
    }
    let set = node.set(RecordType::from(qtype))?;
    let precomputed = set.precomputed()?;
    let limit = match transport {
        Transport::Udp => edns::udp_limit_of(opt.as_ref().map(|o| o.payload)),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let opt_len = if opt.is_some() { OPT_LEN } else { 0 };
    if name_end + 4 + precomputed.len() + opt_len > limit {
        return None;
    }
    let turn = set.next_turn();
    out.clear();
    out.extend_from_slice(&header[..2]);
    // QR, AA, RD copied; CD copied; NOERROR.
    out.push(0x84 | (header[2] & 0x01));
    out.push(header[3] & 0x10);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&precomputed.answers.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    let extra = precomputed.additionals + u16::from(opt.is_some());
    out.extend_from_slice(&extra.to_be_bytes());
    out.extend_from_slice(&query[HEADER_LEN..name_end + 4]);
    precomputed.write(turn, out);
    if let Some(opt) = opt {
        let flags: u8 = if opt.dnssec_ok { 0x80 } else { 0 };
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&edns::PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, flags, 0, 0, 0]);
    }
    Some(Verdict {
        action: Action::Reply,
        qtype: Some(RecordType::from(qtype)),
        rcode: ResponseCode::NoError,
    })
}

/// Root name, type, class (payload), TTL (rcode, version, flags), RDLENGTH: no options.
const OPT_LEN: usize = 11;

struct Opt {
    payload: u16,
    dnssec_ok: bool,
    len: usize,
}

/// An OPT record of version 0 (options skipped: unknown ones are ignored anyway).
fn parse_opt(bytes: &[u8]) -> Option<Opt> {
    let fixed = bytes.get(..OPT_LEN)?;
    let rtype = u16::from_be_bytes([fixed[1], fixed[2]]);
    // Root owner, type OPT, extended rcode 0, version 0.
    if fixed[0] != 0 || rtype != TYPE_OPT || fixed[5] != 0 || fixed[6] != 0 {
        return None;
    }
    let rdlen = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    bytes.get(OPT_LEN..OPT_LEN + rdlen)?;
    Some(Opt {
        payload: u16::from_be_bytes([fixed[3], fixed[4]]),
        dnssec_ok: fixed[7] & 0x80 != 0,
        len: OPT_LEN + rdlen,
    })
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, AAAA};

    use super::*;

    /// The bytes written by hand are the bytes hickory encodes, in every turn.
    #[test]
    fn address_answers_match_the_encoder() {
        let owner = Name::from_ascii("web.default.svc.cluster.local.").unwrap();
        let v4: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let v6: Vec<IpAddr> = vec!["fd00::1".parse().unwrap(), "fd00::2".parse().unwrap()];
        for (rtype, addresses) in [(RecordType::A, v4), (RecordType::AAAA, v6)] {
            let records: Vec<Record> = addresses
                .iter()
                .map(|ip| {
                    let data = match ip {
                        IpAddr::V4(v4) => RData::A(A(*v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                    };
                    Record::from_rdata(owner.clone(), 5, data)
                })
                .collect();
            let encoded = precompute(&owner, rtype, &records, &[], true).unwrap();
            let written = precompute_addresses(&addresses, 5, true);
            assert_eq!(written.answers, encoded.answers);
            for turn in 0..addresses.len() {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                encoded.write(turn, &mut a);
                written.write(turn, &mut b);
                assert_eq!(a, b, "{rtype} turn {turn}");
            }
        }
    }
}
