//! What the query path tells its driver about one query: what to do with it, and what to
//! count. Shared by the query path, the I/O around it, the relay and the metrics.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The transport a query came over: it bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: the answer fits the client's EDNS payload size, or 512 bytes.
    Udp,
    /// A TCP connection: the answer fits 65,535 bytes.
    Tcp,
}

/// What the driver does with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the bytes written to `out`.
    Reply,
    /// A name outside our zones and upstreams are configured: relay the query.
    Forward,
    /// Not a query at all: say nothing.
    Drop,
}

/// What happened to one query, for the driver and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// What the driver does next.
    pub action: Action,
    /// The question's type, if the query had one that could be read.
    pub qtype: Option<RecordType>,
    /// The response code answered (NOERROR for a query to forward).
    pub rcode: ResponseCode,
}

impl Verdict {
    /// The verdict on bytes that are not a query (too short, or a response): no answer.
    pub(crate) fn drop() -> Self {
        Verdict {
            action: Action::Drop,
            qtype: None,
            rcode: ResponseCode::FormErr,
        }
    }
}
