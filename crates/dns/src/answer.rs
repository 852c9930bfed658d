//! The query path, without I/O: query bytes and the zone in, response bytes (or "forward
//! this", or "drop it") out.
//!
//! Header handling per RFC 1035 section 4.1.1: ID, opcode, RD and CD copied (RFC 6895
//! section 2), RA never set (no recursion here), AA on answers from our zones, Z cleared.
//! NOTIMP for an opcode other than QUERY carries none of RD, CD, AD, RA and AA: they are
//! defined for QUERY only (RFC 6895 section 2). Errors: an unparseable query gets FORMERR
//! (NOTIMP if its opcode is not QUERY) with the header alone; a response (QR set) or anything shorter than a header is dropped, so two
//! servers can never ping-pong. Answers too large for the client's UDP size lose their
//! additional section first, then everything but the question, with TC set (RFC 2181
//! section 9).

use std::borrow::Cow;

use hickory_proto::op::{Edns, Message, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

use crate::question::Question;
use crate::verdict::{Action, Transport, Verdict};
use crate::wire::HEADER_LEN;
use crate::zone::{Lookup, Zone};
use crate::{edns, fast};

/// Answers `query` from `zone` into `out` (cleared first).
pub fn answer(query: &[u8], zone: &Zone, transport: Transport, out: &mut Vec<u8>) -> Verdict {
    answer_read(query, Question::parse(query).as_ref(), zone, transport, out)
}

/// [`answer`] for a query already read as `question` (if it is a common one).
pub(crate) fn answer_read(
    query: &[u8],
    question: Option<&Question<'_>>,
    zone: &Zone,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Verdict {
    out.clear();
    let Some(header) = query.get(..HEADER_LEN) else {
        return Verdict::drop();
    };
    if header[2] & 0x80 != 0 {
        return Verdict::drop();
    }
    if let Some(verdict) = question.and_then(|q| fast::answer(q, zone, transport, out)) {
        return verdict;
    }
    match Message::from_vec(query) {
        Ok(request) => respond(&request, zone, transport, out),
        Err(_) => bare_error(header, out),
    }
}

/// A response with `rcode` and nothing else than the question and OPT: SERVFAIL when every
/// upstream failed, say.
pub fn failure(query: &[u8], rcode: ResponseCode, transport: Transport, out: &mut Vec<u8>) {
    out.clear();
    let Some(header) = query.get(..HEADER_LEN) else {
        return;
    };
    match Message::from_vec(query) {
        Ok(request) => {
            let mut reply = Reply::to(&request);
            reply.meta.response_code = rcode;
            reply.finish(limit(&request, transport), out);
        }
        Err(_) => {
            bare_error(header, out);
        }
    }
}

fn respond(request: &Message, zone: &Zone, transport: Transport, out: &mut Vec<u8>) -> Verdict {
    let mut reply = Reply::to(request);
    let qtype = request.queries.first().map(Query::query_type);
    let rcode = if request.op_code != OpCode::Query {
        reply.meta.recursion_desired = false;
        reply.meta.checking_disabled = false;
        ResponseCode::NotImp
    } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        ResponseCode::BADVERS
    } else if request.queries.len() != 1 {
        ResponseCode::FormErr
    } else {
        let question = &request.queries[0];
        match resolve(question, zone, &mut reply) {
            Some(rcode) => rcode,
            None => {
                return Verdict {
                    action: Action::Forward,
                    qtype,
                    rcode: ResponseCode::NoError,
                };
            }
        }
    };
    reply.meta.response_code = rcode;
    reply.finish(limit(request, transport), out);
    Verdict {
        action: Action::Reply,
        qtype,
        rcode,
    }
}

/// Fills the reply's sections for one question; `None` = not ours, forward it.
fn resolve<'z>(
    question: &Query,
    zone: &'z Zone,
    reply: &mut Reply<'_, 'z>,
) -> Option<ResponseCode> {
    let qtype = question.query_type();
    if qtype == RecordType::OPT {
        return Some(ResponseCode::FormErr);
    }
    if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY)
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
    {
        return Some(ResponseCode::Refused);
    }
    let (node, apex) = match zone.lookup(question.name()) {
        Lookup::Outside if zone.forward().is_empty() => return Some(ResponseCode::Refused),
        Lookup::Outside => return None,
        Lookup::Missing(apex) => {
            reply.meta.authoritative = true;
            reply.authority.push(Cow::Borrowed(&apex.soa));
            return Some(ResponseCode::NXDomain);
        }
        Lookup::Found(node, apex) => (node, apex),
    };
    reply.meta.authoritative = true;
    if let Some(cname) = &node.cname {
        reply.answers.push(Cow::Borrowed(cname));
        return Some(ResponseCode::NoError);
    }
    for set in &node.sets {
        if qtype == RecordType::ANY || set.rtype == qtype {
            let (answers, additionals) = set.records(question.name(), zone.ttl());
            reply.answers.extend(answers.into_iter().map(Cow::Owned));
            reply
                .additionals
                .extend(additionals.into_iter().map(Cow::Owned));
        }
    }
    if reply.answers.is_empty() {
        reply.authority.push(Cow::Borrowed(&apex.soa));
    }
    Some(ResponseCode::NoError)
}

fn limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Udp => edns::udp_limit(request.edns.as_ref()),
        Transport::Tcp => usize::from(u16::MAX),
    }
}

/// A response under construction; records are borrowed from the zone or made for it.
struct Reply<'q, 'z> {
    meta: Metadata,
    /// The question echoed: the request's, unless it has several (then FORMERR, none).
    questions: &'q [Query],
    edns: Option<Edns>,
    answers: Vec<Cow<'z, Record>>,
    authority: Vec<Cow<'z, Record>>,
    additionals: Vec<Cow<'z, Record>>,
}

impl<'q> Reply<'q, '_> {
    fn to(request: &'q Message) -> Self {
        let questions = match request.queries.len() {
            0 | 1 => &request.queries[..],
            _ => &[],
        };
        Reply {
            meta: Metadata::response_from_request(&request.metadata),
            questions,
            edns: request.edns.as_ref().map(edns::response_opt),
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }

    /// Encodes into `out`, shedding what does not fit in `limit` bytes.
    fn finish(mut self, limit: usize, out: &mut Vec<u8>) {
        if self.encode(out) && out.len() <= limit {
            return;
        }
        self.additionals.clear();
        if self.encode(out) && out.len() <= limit {
            return;
        }
        self.answers.clear();
        self.authority.clear();
        self.meta.truncation = true;
        if !self.encode(out) {
            self.meta.response_code = ResponseCode::ServFail;
            self.edns = None;
            self.questions = &[];
            self.encode(out);
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut encoder = BinEncoder::new(out);
        hickory_proto::op::emit_message_parts(
            &self.meta,
            &mut self.questions.iter(),
            &mut self.answers.iter().map(Cow::as_ref),
            &mut self.authority.iter().map(Cow::as_ref),
            &mut self.additionals.iter().map(Cow::as_ref),
            self.edns.as_ref(),
            None,
            &mut encoder,
        )
        .is_ok()
    }
}

/// The header alone, for a query that does not parse: FORMERR, or NOTIMP when the opcode is
/// not QUERY (the opcode decides before the body does).
fn bare_error(header: &[u8], out: &mut Vec<u8>) -> Verdict {
    let opcode = (header[2] >> 3) & 0x0f;
    let rcode = match opcode {
        0 => ResponseCode::FormErr,
        _ => ResponseCode::NotImp,
    };
    // QR and the opcode; AA, TC, RA, Z, AD clear; RD and CD copied for QUERY alone.
    let (flags, checking_disabled) = match opcode {
        0 => (header[2] & 0x79, header[3] & 0x10),
        _ => (header[2] & 0x78, 0),
    };
    out.clear();
    out.extend_from_slice(&header[..2]);
    out.push(0x80 | flags);
    out.push(checking_disabled | rcode.low());
    out.extend_from_slice(&[0; 8]);
    Verdict {
        action: Action::Reply,
        qtype: None,
        rcode,
    }
}
