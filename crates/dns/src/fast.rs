//! The fast path of the common query: one question, class IN, at most a plain OPT record,
//! for a name and type that has records. Its answer is assembled from bytes precomputed at
//! zone build ([`crate::precomputed`]): header, the question as the client sent it (case
//! kept), the precomputed records, the OPT. Everything else, and any answer that would not
//! fit the client's UDP size, takes the general path in [`crate::answer`](mod@crate::answer).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::edns;
use crate::verdict::{Action, Transport, Verdict};
use crate::wire::{CLASS_IN, HEADER_LEN, MAX_NAME, TYPE_OPT};
use crate::zone::Zone;

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
    out.extend_from_slice(&precomputed.answer_count().to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    let extra = precomputed.additional_count() + u16::from(opt.is_some());
    out.extend_from_slice(&extra.to_be_bytes());
    out.extend_from_slice(&query[HEADER_LEN..name_end + 4]);
    precomputed.write(turn, out);
    if let Some(opt) = opt {
        let flags: u8 = if opt.dnssec_ok { 0x80 } else { 0 };
        // Root owner, type OPT, our payload size, extended rcode 0, version 0, DO, no options.
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
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
