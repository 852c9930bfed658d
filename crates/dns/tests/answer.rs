//! The query path without sockets: query bytes in, response bytes out, from a zone built
//! from a real config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dockline_dns::{Action, Transport, Zone, answer};
use dockline_model::HealthVerdicts;
use dockline_model::testing::snapshot;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

const CONFIG: &str = r#"
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
ports = [{ name = "http", port = 80 }]
[[services]]
name = "db"
cluster_ip = "None"
ports = [{ name = "pg", port = 5432 }]
[[services.endpoints]]
ip = "10.111.1.1"
hostname = "db-0"
[[services.endpoints]]
ip = "10.111.1.2"
[[services.endpoints]]
ip = "10.111.1.3"
[[services.endpoints]]
ip = "10.111.1.4"
ready = false
"#;

fn zone(extra: &str) -> Zone {
    Zone::build(
        &snapshot(&format!("{CONFIG}{extra}")),
        &HealthVerdicts::default(),
        7,
    )
    .unwrap()
}

fn query(name: &str, rtype: RecordType, edns: Option<Edns>) -> Vec<u8> {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(edns) = edns {
        message.set_edns(edns);
    }
    message.to_vec().unwrap()
}

fn ask(zone: &Zone, query: &[u8], transport: Transport) -> Message {
    let mut out = Vec::new();
    let verdict = answer(query, zone, transport, &mut out);
    assert_eq!(verdict.action, Action::Reply);
    let response = Message::from_vec(&out).unwrap();
    // By value: 16 reads back as BADSIG, which shares it with BADVERS.
    assert_eq!(u16::from(response.response_code), u16::from(verdict.rcode));
    response
}

fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn cluster_ip_answer_byte_for_byte_with_the_question_case_kept() {
    let zone = zone("");
    // dig-style query, no EDNS, RD set, mixed case.
    let mut q = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["Web", "default", "svc", "cluster", "local"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut out = Vec::new();
    let verdict = answer(&q, &zone, Transport::Udp, &mut out);
    assert_eq!(verdict.rcode, ResponseCode::NoError);
    let mut expected = vec![0xbe, 0xef, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
    expected.extend_from_slice(&q[12..]);
    expected.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 222, 0, 10]);
    assert_eq!(out, expected);
}

#[test]
fn headless_rotates_and_keeps_every_ready_endpoint() {
    let zone = zone("");
    let q = query(
        "db.default.svc.cluster.local.",
        RecordType::A,
        Some(Edns::new()),
    );
    let firsts: Vec<String> = (0..6)
        .map(|_| {
            let response = ask(&zone, &q, Transport::Udp);
            assert!(response.authoritative);
            let mut all = addresses(&response);
            let first = all[0].clone();
            all.sort();
            assert_eq!(all, ["10.111.1.1", "10.111.1.2", "10.111.1.3"]);
            first
        })
        .collect();
    assert_eq!(
        firsts,
        [
            "10.111.1.1",
            "10.111.1.2",
            "10.111.1.3",
            "10.111.1.1",
            "10.111.1.2",
            "10.111.1.3"
        ]
    );
    let srv = ask(
        &zone,
        &query(
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
            None,
        ),
        Transport::Tcp,
    );
    assert_eq!(srv.answers.len(), 3);
    assert_eq!(srv.additionals.len(), 3, "targets' addresses");
}

#[test]
fn negative_answers_carry_the_soa() {
    let zone = zone("");
    for (name, rtype, rcode) in [
        (
            "nope.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "web.default.svc.cluster.local.",
            RecordType::AAAA,
            ResponseCode::NoError,
        ),
        ("svc.cluster.local.", RecordType::A, ResponseCode::NoError),
        (
            "4-111-1-10.db.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "99.0.222.10.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NXDomain,
        ),
    ] {
        let response = ask(&zone, &query(name, rtype, None), Transport::Udp);
        assert_eq!(response.response_code, rcode, "{name}");
        assert!(response.answers.is_empty(), "{name}");
        assert_eq!(response.authorities.len(), 1, "{name}");
        let RData::SOA(soa) = &response.authorities[0].data else {
            panic!("{name}: no SOA")
        };
        assert_eq!(soa.serial, 7);
        assert!(response.authoritative && !response.recursion_available);
    }
}

#[test]
fn edns_rules() {
    let zone = zone("");
    let name = "web.default.svc.cluster.local.";
    let mut v1 = Edns::new();
    v1.set_version(1);
    let response = ask(&zone, &query(name, RecordType::A, Some(v1)), Transport::Udp);
    assert_eq!(u16::from(response.response_code), 16, "BADVERS");
    assert_eq!(response.edns.as_ref().unwrap().version(), 0);
    assert!(response.answers.is_empty());

    let mut dnssec = Edns::new();
    dnssec.set_dnssec_ok(true).set_max_payload(4096);
    dnssec.flags_mut().z = 0x1234;
    let response = ask(
        &zone,
        &query(name, RecordType::A, Some(dnssec)),
        Transport::Udp,
    );
    let edns = response.edns.as_ref().unwrap();
    assert!(edns.flags().dnssec_ok, "DO copied");
    assert_eq!(edns.flags().z, 0, "unknown flags not echoed");
    assert_eq!(edns.max_payload(), 1232);

    let plain = ask(&zone, &query(name, RecordType::A, None), Transport::Udp);
    assert!(plain.edns.is_none());
}

#[test]
fn truncation_over_udp_and_whole_over_tcp() {
    let mut extra = String::from(
        "[[services]]\nname = \"big\"\ncluster_ip = \"None\"\nports = [{ port = 80 }]\n",
    );
    for i in 1..=100 {
        extra += &format!("[[services.endpoints]]\nip = \"10.111.2.{i}\"\n");
    }
    let zone = zone(&extra);
    let q = query("big.default.svc.cluster.local.", RecordType::A, None);
    let udp = ask(&zone, &q, Transport::Udp);
    assert!(udp.truncation && udp.answers.is_empty());
    let tcp = ask(&zone, &q, Transport::Tcp);
    assert!(!tcp.truncation);
    assert_eq!(tcp.answers.len(), 100);
    let mut big = Edns::new();
    big.set_max_payload(4096);
    let roomy = ask(
        &zone,
        &query("big.default.svc.cluster.local.", RecordType::A, Some(big)),
        Transport::Udp,
    );
    assert_eq!(roomy.answers.len(), 100);
}

#[test]
fn outside_names_refused_or_forwarded() {
    let name = "www.example.org.";
    let refused = ask(&zone(""), &query(name, RecordType::A, None), Transport::Udp);
    assert_eq!(refused.response_code, ResponseCode::Refused);
    assert!(!refused.authoritative && !refused.recursion_available);
    assert!(refused.recursion_desired, "RD copied");

    let forwarding = zone("[dns]\nforward = [\"127.0.0.1:5300\"]\n");
    let mut out = Vec::new();
    let verdict = answer(
        &query(name, RecordType::A, None),
        &forwarding,
        Transport::Udp,
        &mut out,
    );
    assert_eq!(verdict.action, Action::Forward);
    // Cluster names are never forwarded.
    let q = query("nope.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(
        ask(&forwarding, &q, Transport::Udp).response_code,
        ResponseCode::NXDomain
    );
}

#[test]
fn bad_queries() {
    let zone = zone("");
    let mut out = Vec::new();
    // Shorter than a header, or a response: dropped.
    assert_eq!(
        answer(&[1, 2, 3], &zone, Transport::Udp, &mut out).action,
        Action::Drop
    );
    let mut response = query("web.default.svc.cluster.local.", RecordType::A, None);
    response[2] |= 0x80;
    assert_eq!(
        answer(&response, &zone, Transport::Udp, &mut out).action,
        Action::Drop
    );
    // A cut question: FORMERR with the ID and RD.
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    let verdict = answer(&q[..q.len() - 3], &zone, Transport::Udp, &mut out);
    assert_eq!(verdict.rcode, ResponseCode::FormErr);
    assert_eq!(out, [0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Opcode STATUS with garbage after the header: NOTIMP.
    let mut status = vec![0x12, 0x34, 0x10, 0, 0, 9, 0, 0, 0, 0, 0, 0];
    status.extend_from_slice(b"junk");
    assert_eq!(
        answer(&status, &zone, Transport::Udp, &mut out).rcode,
        ResponseCode::NotImp
    );
    // Two questions: FORMERR.
    let mut two = Message::new(1, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("a.cluster.local.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let response = ask(&zone, &two.to_vec().unwrap(), Transport::Udp);
    assert_eq!(response.response_code, ResponseCode::FormErr);
    // Class CH: REFUSED.
    let mut chaos = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    chaos.set_query_class(DNSClass::CH);
    let mut message = Message::new(2, MessageType::Query, OpCode::Query);
    message.add_query(chaos);
    let response = ask(&zone, &message.to_vec().unwrap(), Transport::Udp);
    assert_eq!(response.response_code, ResponseCode::Refused);
}

#[test]
fn servfail_when_no_upstream_answers() {
    let q = query("www.example.org.", RecordType::A, Some(Edns::new()));
    let mut out = Vec::new();
    dockline_dns::answer::failure(&q, ResponseCode::ServFail, Transport::Udp, &mut out);
    let response = Message::from_vec(&out).unwrap();
    assert_eq!(response.response_code, ResponseCode::ServFail);
    assert_eq!(response.queries.len(), 1);
    assert!(response.edns.is_some());
}

#[test]
fn two_opt_records_are_formerr() {
    // RFC 6891 section 6.1.1: more than one OPT in a query MUST get FORMERR.
    let zone = zone("");
    let mut q = query(
        "web.default.svc.cluster.local.",
        RecordType::A,
        Some(Edns::new()),
    );
    let opt = q[q.len() - 11..].to_vec();
    q.extend_from_slice(&opt);
    q[11] = 2;
    let mut out = Vec::new();
    let verdict = answer(&q, &zone, Transport::Udp, &mut out);
    assert_eq!(verdict.rcode, ResponseCode::FormErr);
    assert_eq!(out[3] & 0x0f, 1, "FORMERR on the wire");
}

#[test]
fn notimp_to_an_unknown_opcode_carries_no_query_flags() {
    let zone = zone("");
    let mut out = Vec::new();
    // A well-formed query of opcode 15 with RD, AD and CD set.
    let mut q = query("cluster.local.", RecordType::SOA, Some(Edns::new()));
    q[2] = 15 << 3 | 0x01;
    q[3] = 0x30;
    let verdict = answer(&q, &zone, Transport::Udp, &mut out);
    assert_eq!(verdict.rcode, ResponseCode::NotImp);
    // QR and the opcode; no AA, TC, RD; no RA, Z, AD, CD; rcode 4.
    assert_eq!(out[..4], [0x12, 0x34, 0x80 | 15 << 3, 0x04]);
    // The same opcode with a body that does not parse: the header alone, same flags.
    let mut bare = vec![0x12, 0x34, 15 << 3 | 0x01, 0x30, 0, 9, 0, 0, 0, 0, 0, 0];
    bare.extend_from_slice(b"junk");
    answer(&bare, &zone, Transport::Udp, &mut out);
    assert_eq!(
        out,
        [0x12, 0x34, 0x80 | 15 << 3, 0x04, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // QUERY keeps RD and CD (RFC 6895 section 2) on a FORMERR.
    bare[2] = 0x01;
    answer(&bare, &zone, Transport::Udp, &mut out);
    assert_eq!(out[2..4], [0x81, 0x11]);
}
