//! The answers of the fast path, precomputed at zone build: the record sections of the
//! answer to one name and type, as bytes, for each turn of a rotating set (headless sets
//! rotated by slicing, or encoded per turn). [`crate::fast`] puts a header, the client's
//! question and an OPT record around them.
//!
//! The records compress their names against the question at offset 12, which holds for the
//! client's question too: it is the same name, so it has the same length.

use std::net::IpAddr;

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

use crate::wire::{CLASS_IN, QUESTION_NAME};

/// The record sections of one answer, as bytes.
#[derive(Debug, Clone)]
pub(crate) struct Precomputed {
    turns: Turns,
    answers: u16,
    additionals: u16,
}

/// How the answer of a rotating set is laid out for each turn.
#[derive(Debug, Clone)]
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

impl Precomputed {
    /// Precomputes the answer to `owner`/`rtype` with these records (in turn 0) and
    /// additionals, each turn encoded whole; `None` if it cannot be encoded. Address sets
    /// take [`Precomputed::addresses`].
    pub(crate) fn encode(
        owner: &Name,
        rtype: RecordType,
        records: &[Record],
        additionals: &[Record],
        rotates: bool,
    ) -> Option<Self> {
        let query = Query::query(owner.clone(), rtype);
        let mut question = Vec::new();
        encode_response(&query, &[], &[], &mut question)?;
        // The record sections of one turn, and their answer and additional counts.
        let sections = |turn: usize| -> Option<(Box<[u8]>, Counts)> {
            let order: Vec<&Record> = records[turn..].iter().chain(&records[..turn]).collect();
            let mut message = Vec::new();
            let counts = encode_response(&query, &order, additionals, &mut message)?;
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
        Some(Self {
            turns,
            answers,
            additionals: extra,
        })
    }

    /// Precomputes the answer of an A or AAAA set (all of one family) byte by byte: each
    /// record is a pointer to the question's name, type, class IN, TTL, and the address.
    pub(crate) fn addresses(addresses: &[IpAddr], ttl: u32, rotates: bool) -> Self {
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
        Self {
            turns,
            answers: addresses.len() as u16,
            additionals: 0,
        }
    }

    /// The number of answer records.
    pub(crate) fn answer_count(&self) -> u16 {
        self.answers
    }

    /// The number of additional records.
    pub(crate) fn additional_count(&self) -> u16 {
        self.additionals
    }

    /// The length in bytes of the sections (the same in every turn).
    pub(crate) fn len(&self) -> usize {
        match &self.turns {
            Turns::Fixed(bytes) | Turns::Sliced { bytes, .. } => bytes.len(),
            Turns::Encoded(turns) => turns[0].len(),
        }
    }

    /// Appends the sections of turn `turn` to `out`.
    pub(crate) fn write(&self, turn: usize, out: &mut Vec<u8>) {
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
fn encode_response(
    query: &Query,
    answers: &[&Record],
    additionals: &[Record],
    out: &mut Vec<u8>,
) -> Option<Counts> {
    let mut message = Message::response(0, OpCode::Query);
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
            let encoded = Precomputed::encode(&owner, rtype, &records, &[], true).unwrap();
            let written = Precomputed::addresses(&addresses, 5, true);
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
