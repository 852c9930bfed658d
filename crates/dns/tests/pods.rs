//! Pod names (`<dashed-address>.<ns>.pod.<domain>`, CoreDNS `pods verified`) without
//! sockets: answered only for an endpoint of a service in that namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dockline_dns::{Action, Transport, Zone, answer};
use dockline_model::HealthVerdicts;
use dockline_model::testing::snapshot;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

const CONFIG: &str = r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[cluster]
pod_cidr = "fd00:10::/64"
[[services]]
name = "db"
namespace = "prod"
cluster_ip = "None"
[[services.endpoints]]
ip = "10.111.1.1"
hostname = "db-0"
[[services.endpoints]]
ip = "fd00:10::5"
[[services.endpoints]]
ip = "10.111.1.9"
ready = false
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
ports = [{ port = 80 }]
[[services.endpoints]]
ip = "10.111.2.2"
"#;

fn built() -> Zone {
    Zone::build(&snapshot(CONFIG), &HealthVerdicts::default(), 7).unwrap()
}

fn ask(zone: &Zone, name: &str, rtype: RecordType) -> Message {
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut out = Vec::new();
    let verdict = answer(&message.to_vec().unwrap(), zone, Transport::Udp, &mut out);
    assert_eq!(verdict.action, Action::Reply);
    let response = Message::from_vec(&out).unwrap();
    assert_eq!(response.response_code, verdict.rcode);
    assert!(response.authoritative, "{name}: ours");
    response
}

fn answer_data(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(aaaa) => aaaa.0.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn soa_only(message: &Message) -> bool {
    message.answers.is_empty()
        && message.authorities.len() == 1
        && message.authorities[0].record_type() == RecordType::SOA
}

#[test]
fn endpoint_addresses_in_their_namespace_answer() {
    let zone = built();
    for (name, rtype, data) in [
        (
            "10-111-1-1.prod.pod.cluster.local.",
            RecordType::A,
            "10.111.1.1",
        ),
        (
            "10-111-1-1.PROD.Pod.cluster.local.",
            RecordType::A,
            "10.111.1.1",
        ),
        (
            "fd00-10--5.prod.pod.cluster.local.",
            RecordType::AAAA,
            "fd00:10::5",
        ),
        // Not ready: the pod exists all the same.
        (
            "10-111-1-9.prod.pod.cluster.local.",
            RecordType::A,
            "10.111.1.9",
        ),
        (
            "10-111-2-2.default.pod.cluster.local.",
            RecordType::ANY,
            "10.111.2.2",
        ),
    ] {
        let response = ask(&zone, name, rtype);
        assert_eq!(response.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(answer_data(&response), [data], "{name}");
        assert_eq!(response.answers[0].ttl, 5, "dns.ttl");
    }
}

#[test]
fn other_addresses_and_namespaces_are_nxdomain() {
    let zone = built();
    for name in [
        // An endpoint, but of a service in another namespace.
        "10-111-1-1.default.pod.cluster.local.",
        "10-111-2-2.prod.pod.cluster.local.",
        // No endpoint has it.
        "10-111-1-2.prod.pod.cluster.local.",
        // Not an address, or not as RFC 5952 writes it.
        "db-0.prod.pod.cluster.local.",
        "fd00-0010-0-0-0-0-0-5.prod.pod.cluster.local.",
        "x.10-111-1-1.prod.pod.cluster.local.",
        "10-111-1-1.nope.pod.cluster.local.",
    ] {
        let response = ask(&zone, name, RecordType::A);
        assert_eq!(response.response_code, ResponseCode::NXDomain, "{name}");
        assert!(soa_only(&response), "{name}: {response:?}");
    }
}

#[test]
fn other_types_and_ancestors_are_nodata() {
    let zone = built();
    for (name, rtype) in [
        ("10-111-1-1.prod.pod.cluster.local.", RecordType::AAAA),
        ("10-111-1-1.prod.pod.cluster.local.", RecordType::TXT),
        ("fd00-10--5.prod.pod.cluster.local.", RecordType::A),
        ("prod.pod.cluster.local.", RecordType::A),
        ("pod.cluster.local.", RecordType::A),
    ] {
        let response = ask(&zone, name, rtype);
        assert_eq!(response.response_code, ResponseCode::NoError, "{name}");
        assert!(soa_only(&response), "{name} {rtype}: {response:?}");
    }
}
