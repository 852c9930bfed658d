//! The fast path of the common query: one question, class IN, at most a plain OPT record,
//! for a name and type that has records. Its answer is assembled from bytes precomputed at
//! zone build (one variant per rotation of a headless set): header, the question as the
//! client sent it (case kept), the precomputed records, the OPT. Everything else, and any
//! answer that would not fit the client's UDP size, takes the general path in `answer`.
//!
//! The precomputed records compress their names against the question at offset 12, which
//! holds for the client's question too: it is the same name, so it has the same length.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

use crate::answer::{Action, Transport, Verdict};
use crate::edns;

const HEADER_LEN: usize = 12;
const MAX_NAME: usize = 255;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// Precomputed answers by lowercase wire-format name and type.
#[derive(Debug, Default)]
pub(crate) struct FastAnswers {
    by_name: HashMap<Box<[u8]>, Vec<(u16, Precomputed)>>,
}

/// The record sections of one answer, in every rotation.
#[derive(Debug)]
struct Precomputed {
    rotations: Vec<Vec<u8>>,
    answers: u16,
    additionals: u16,
    turn: AtomicUsize,
}

impl FastAnswers {
    /// Precomputes the answer to `name`/`rtype`: `rotations` lists the answer records in
    /// each order to serve, `additionals` follow every one.
    pub fn insert(
        &mut self,
        name: &Name,
        rtype: RecordType,
        rotations: &[Vec<&Record>],
        additionals: &[Record],
    ) {
        let query = Query::query(name.to_lowercase(), rtype);
        let mut question = Vec::new();
        if encode(&query, &[], &[], &mut question).is_none() {
            return;
        }
        let mut encoded = Vec::with_capacity(rotations.len());
        let (mut answers, mut extra) = (0, 0);
        for records in rotations {
            let mut message = Vec::new();
            let Some(counts) = encode(&query, records, additionals, &mut message) else {
                return;
            };
            (answers, extra) = counts;
            encoded.push(message.split_off(question.len()));
        }
        let key = question[HEADER_LEN..question.len() - 4]
            .to_vec()
            .into_boxed_slice();
        self.by_name.entry(key).or_default().push((
            u16::from(rtype),
            Precomputed {
                rotations: encoded,
                answers,
                additionals: extra,
                turn: AtomicUsize::new(0),
            },
        ));
    }
}

/// Encodes a response to `query` with these sections; the answer and additional counts.
fn encode(
    query: &Query,
    answers: &[&Record],
    additionals: &[Record],
    out: &mut Vec<u8>,
) -> Option<(u16, u16)> {
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
    fast: &FastAnswers,
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
    let sets = fast.by_name.get(&key[..name_end - HEADER_LEN])?;
    let (_, set) = sets.iter().find(|(t, _)| *t == qtype)?;
    let limit = match transport {
        Transport::Udp => edns::udp_limit_of(opt.as_ref().map(|o| o.payload)),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let turn = match set.rotations.len() {
        1 => 0,
        n => set.turn.fetch_add(1, Ordering::Relaxed) % n,
    };
    let records = &set.rotations[turn];
    let opt_len = if opt.is_some() { OPT_LEN } else { 0 };
    if name_end + 4 + records.len() + opt_len > limit {
        return None;
    }
    out.clear();
    out.extend_from_slice(&header[..2]);
    // QR, AA, RD copied; CD copied; NOERROR.
    out.push(0x84 | (header[2] & 0x01));
    out.push(header[3] & 0x10);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&set.answers.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    let extra = set.additionals + u16::from(opt.is_some());
    out.extend_from_slice(&extra.to_be_bytes());
    out.extend_from_slice(&query[HEADER_LEN..name_end + 4]);
    out.extend_from_slice(records);
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
