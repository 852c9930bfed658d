//! EDNS(0) as RFC 6891 asks of a responder: an OPT record answers an OPT record (section
//! 6.1.1), versions above 0 get BADVERS (6.1.3), unknown options and flags are ignored and
//! not echoed, the DO bit is copied back (RFC 3225 section 3), and the requestor's UDP
//! payload size bounds the answer (6.2.3, 6.2.5: values below 512 count as 512).

use hickory_proto::op::Edns;

use crate::wire::TYPE_OPT;

/// The UDP payload size dockline announces (the DNS flag day 2020 value).
pub(crate) const PAYLOAD: u16 = 1232;

/// The largest UDP answer sent whatever the client announces.
const MAX_UDP: usize = 4096;

/// Plain DNS over UDP (RFC 1035 section 4.2.1).
const CLASSIC_UDP: usize = 512;

/// The OPT record of the response to a query that carried `request`.
pub(crate) fn response_opt(request: &Edns) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(PAYLOAD)
        .set_version(0)
        .set_dnssec_ok(request.flags().dnssec_ok);
    edns
}

/// The largest UDP response the client takes.
pub(crate) fn udp_limit(request: Option<&Edns>) -> usize {
    udp_limit_of(request.map(Edns::max_payload))
}

/// The same from the payload size of the query's OPT record, if it had one.
pub(crate) fn udp_limit_of(payload: Option<u16>) -> usize {
    match payload {
        None => CLASSIC_UDP,
        Some(payload) => usize::from(payload).clamp(CLASSIC_UDP, MAX_UDP),
    }
}

/// An OPT record without options: root owner, type, class (payload), TTL (extended rcode,
/// version, flags), RDLENGTH.
pub(crate) const OPT_LEN: usize = 11;

/// Appends the OPT record of a response: our payload size, extended rcode 0, version 0,
/// the DO bit as the query had it, no options.
pub(crate) fn write_opt(dnssec_ok: bool, out: &mut Vec<u8>) {
    let flags: u8 = if dnssec_ok { 0x80 } else { 0 };
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[0, 0, flags, 0, 0, 0]);
}
