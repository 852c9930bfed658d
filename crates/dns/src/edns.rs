//! EDNS(0) as RFC 6891 asks of a responder: an OPT record answers an OPT record (section
//! 6.1.1), versions above 0 get BADVERS (6.1.3), unknown options and flags are ignored and
//! not echoed, the DO bit is copied back (RFC 3225 section 3), and the requestor's UDP
//! payload size bounds the answer (6.2.3, 6.2.5: values below 512 count as 512).

use hickory_proto::op::Edns;

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
