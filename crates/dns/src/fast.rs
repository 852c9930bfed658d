//! The fast path of the common query ([`Question`]) of class IN for a name and type that has
//! records. Its answer is assembled from bytes precomputed at zone build
//! ([`crate::precomputed`]): header, the question as the client sent it (case kept), the
//! precomputed records, the OPT. Everything else, and any answer that would not fit the
//! client's UDP size, takes the general path in [`crate::answer`](mod@crate::answer).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::edns;
use crate::question::Question;
use crate::verdict::{Action, Transport, Verdict};
use crate::wire::{CLASS_IN, HEADER_LEN};
use crate::zone::Zone;

/// Answers `question` if its name and type have precomputed records and the answer fits;
/// `None` otherwise.
pub(crate) fn answer(
    question: &Question<'_>,
    zone: &Zone,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Verdict> {
    if question.qclass() != CLASS_IN {
        return None;
    }
    let node = zone.node_by_key(question.name_key())?;
    if node.cname.is_some() {
        return None;
    }
    let qtype = RecordType::from(question.qtype());
    let set = node.set(qtype)?;
    let precomputed = set.precomputed()?;
    let opt = question.opt();
    let opt_len = if opt.is_some() { edns::OPT_LEN } else { 0 };
    let section = question.section();
    if HEADER_LEN + section.len() + precomputed.len() + opt_len > question.limit(transport) {
        return None;
    }
    let header = question.header();
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
    out.extend_from_slice(section);
    precomputed.write(turn, out);
    if let Some(opt) = opt {
        edns::write_opt(opt.dnssec_ok, out);
    }
    Some(Verdict {
        action: Action::Reply,
        qtype: Some(qtype),
        rcode: ResponseCode::NoError,
    })
}
