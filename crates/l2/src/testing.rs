//! Fixtures for the unit tests: snapshots from TOML text, LoadBalancer services and member
//! sets.

use dockline_model::{Member, MemberSet, MemberState, Snapshot};

/// `arping -c 1 -I eth0 192.0.2.10` from 02:00:00:00:00:0c (10.99.0.100), captured with
/// `tcpdump -xx` in a namespace.
pub(crate) const ARPING_REQUEST: &str = "ffffffffffff02000000000c08060001080006040001\
                                         02000000000c0a630064ffffffffffffc000020a";

/// `ndisc6 -s fd00:99::64 2001:db8:1::10 eth0` from 02:00:00:00:00:0c, captured with
/// `tcpdump -xx` in a namespace: multicast to the solicited-node group.
pub(crate) const NDISC6_SOLICITATION: &str = "3333ff00001002000000000c86dd6005f8c000203aff\
                                              fd000099000000000000000000000064\
                                              ff0200000000000000000001ff000010\
                                              87004bbb0000000020010db8000100000000000000000010\
                                              010102000000000c";

/// The snapshot of node `node` with one L2 pool (`192.0.2.0/24`, `2001:db8::/120`) and the
/// TOML `extra` (services, an `[l2]` section...).
pub(crate) fn snapshot(node: &str, extra: &str) -> Snapshot {
    let text = format!(
        r#"
        [node]
        name = "{node}"
        internal_ip = "10.0.0.1"
        [[pools]]
        name = "p"
        addresses = ["192.0.2.0/24", "2001:db8::/120"]
        announce = ["l2"]
        {extra}
        "#
    );
    dockline_model::testing::snapshot(&text)
}

/// A LoadBalancer service on `ip` with one endpoint on `endpoint_node`.
pub(crate) fn lb(name: &str, ip: &str, policy: &str, endpoint_node: &str, ready: bool) -> String {
    format!(
        r#"
        [[services]]
        name = "{name}"
        type = "LoadBalancer"
        load_balancer_ip = "{ip}"
        external_traffic_policy = "{policy}"
        ports = [{{ port = 80 }}]
        [[services.endpoints]]
        ip = "10.111.0.5"
        node = "{endpoint_node}"
        ready = {ready}
        "#
    )
}

/// A "Cluster"-policy LoadBalancer service on 192.0.2.`i` for each `i` of `last_octets`.
pub(crate) fn cluster_vips(last_octets: std::ops::Range<u8>) -> String {
    last_octets
        .map(|i| {
            lb(
                &format!("s{i}"),
                &format!("192.0.2.{i}"),
                "Cluster",
                "n1",
                true,
            )
        })
        .collect()
}

/// A member set of these nodes in these states.
pub(crate) fn members(names: &[(&str, MemberState)]) -> MemberSet {
    MemberSet::new(
        names
            .iter()
            .map(|(name, state)| Member {
                name: (*name).into(),
                internal_ip: "10.0.0.1".parse().expect("an address"),
                state: *state,
                shared_digest: String::new(),
                config_revision: None,
                announces_l2: true,
            })
            .collect(),
    )
}
