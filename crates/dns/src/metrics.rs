//! The responder's metrics. Handles are made once per label set at start-up, so the query
//! path only bumps atomics and never formats labels.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use metrics::{Counter, Histogram, Unit};

use crate::answer::Transport;

pub const QUERIES: &str = "dockline_dns_queries_total";
pub const QUERY_DURATION: &str = "dockline_dns_query_duration_seconds";
pub const BAD_QUERIES: &str = "dockline_dns_bad_queries_total";
pub const FORWARD_ERRORS: &str = "dockline_dns_forward_errors_total";

/// Latency buckets: answers from the zone take microseconds, forwarded ones milliseconds.
pub const QUERY_DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5,
];

const TRANSPORTS: [(Transport, &str); 2] = [(Transport::Udp, "udp"), (Transport::Tcp, "tcp")];
const QTYPES: [(Option<RecordType>, &str); 11] = [
    (Some(RecordType::A), "A"),
    (Some(RecordType::AAAA), "AAAA"),
    (Some(RecordType::SRV), "SRV"),
    (Some(RecordType::PTR), "PTR"),
    (Some(RecordType::CNAME), "CNAME"),
    (Some(RecordType::TXT), "TXT"),
    (Some(RecordType::SOA), "SOA"),
    (Some(RecordType::NS), "NS"),
    (Some(RecordType::ANY), "ANY"),
    (None, "none"),
    (None, "other"),
];
const RCODES: [(ResponseCode, &str); 8] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::NotImp, "NOTIMP"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::BADVERS, "BADVERS"),
    (ResponseCode::Unknown(0xfff), "other"),
];

/// Why a query or connection got no answer (or a FORMERR for garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Shorter than a header, or not parseable (answered FORMERR/NOTIMP if it had a header).
    Malformed,
    /// A response (QR set) sent to us: dropped.
    Response,
    /// A TCP length prefix too short or too long for a query: connection closed.
    TcpFrame,
    /// A TCP client too slow to send or receive: connection closed.
    TcpTimeout,
    /// Too many TCP connections open: the new one closed.
    TcpBusy,
}

const BAD: [(Bad, &str); 5] = [
    (Bad::Malformed, "malformed"),
    (Bad::Response, "response"),
    (Bad::TcpFrame, "tcp_frame"),
    (Bad::TcpTimeout, "tcp_timeout"),
    (Bad::TcpBusy, "tcp_busy"),
];

pub fn describe() {
    metrics::describe_counter!(
        QUERIES,
        "DNS queries answered or forwarded, by query type, response code and transport"
    );
    metrics::describe_histogram!(
        QUERY_DURATION,
        Unit::Seconds,
        "Time from a query's arrival to its answer being sent"
    );
    metrics::describe_counter!(
        BAD_QUERIES,
        "DNS queries dropped or answered FORMERR, and TCP connections closed, by reason"
    );
    metrics::describe_counter!(
        FORWARD_ERRORS,
        "Queries for outside names that no upstream answered (answered SERVFAIL)"
    );
}

#[derive(Debug)]
pub struct Metrics {
    /// Indexed by transport, query type, response code.
    queries: Vec<Counter>,
    duration: Histogram,
    bad: Vec<Counter>,
    forward_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut queries = Vec::with_capacity(TRANSPORTS.len() * QTYPES.len() * RCODES.len());
        for (_, transport) in TRANSPORTS {
            for (_, qtype) in QTYPES {
                for (_, rcode) in RCODES {
                    queries.push(metrics::counter!(
                        QUERIES, "qtype" => qtype, "rcode" => rcode, "transport" => transport
                    ));
                }
            }
        }
        let bad = BAD
            .iter()
            .map(|(_, reason)| {
                let counter = metrics::counter!(BAD_QUERIES, "reason" => *reason);
                counter.absolute(0);
                counter
            })
            .collect();
        let forward_errors = metrics::counter!(FORWARD_ERRORS);
        forward_errors.absolute(0);
        Metrics {
            queries,
            duration: metrics::histogram!(QUERY_DURATION),
            bad,
            forward_errors,
        }
    }
}

impl Metrics {
    pub fn query(
        &self,
        transport: Transport,
        qtype: Option<RecordType>,
        rcode: ResponseCode,
        took: Duration,
    ) {
        let t = TRANSPORTS
            .iter()
            .position(|(x, _)| *x == transport)
            .unwrap_or(0);
        let q = match qtype {
            None => QTYPES.len() - 2,
            Some(qtype) => QTYPES
                .iter()
                .position(|(x, _)| *x == Some(qtype))
                .unwrap_or(QTYPES.len() - 1),
        };
        let r = RCODES
            .iter()
            .position(|(x, _)| *x == rcode)
            .unwrap_or(RCODES.len() - 1);
        self.queries[(t * QTYPES.len() + q) * RCODES.len() + r].increment(1);
        self.duration.record(took.as_secs_f64());
    }

    pub fn bad(&self, reason: Bad) {
        if let Some(i) = BAD.iter().position(|(x, _)| *x == reason) {
            self.bad[i].increment(1);
        }
    }

    pub fn forward_error(&self) {
        self.forward_errors.increment(1);
    }
}
