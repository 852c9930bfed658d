//! The DNS query path on arbitrary bytes, over both transports, against a zone with every
//! kind of name (fast path, general path, pod names, truncation, forwarding): any answer is
//! fine, a panic is not, and whatever is answered must parse as a DNS message.
#![no_main]

use std::sync::OnceLock;

use dockline_dns::{Action, Transport, Zone, answer};

const CONFIG: &str = r#"
[dns]
forward = ["127.0.0.1:5300"]
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
ip = "fd00::2"
[[services]]
name = "ext"
type = "ExternalName"
external_name = "example.org"
"#;

/// The zone of `CONFIG`, pod names included.
fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let config = dockline_config::parse("fuzz.toml", CONFIG, std::iter::empty())
            .expect("the fuzz config is valid");
        let snapshot = dockline_model::build(config).expect("the fuzz config builds");
        Zone::build(&snapshot, &Default::default(), 1).expect("the fuzz zone builds")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let zone = zone();
    for transport in [Transport::Udp, Transport::Tcp] {
        let verdict = answer(data, zone, transport, &mut out);
        if verdict.action == Action::Reply {
            assert!(out.len() >= 12, "an answer has at least a header");
            assert_eq!(out[..2], data[..2], "the answer carries the query's ID");
        }
    }
});
