//! Desired routes from snapshots, and the UPDATEs a change makes, decoded back.

use super::*;
use crate::message::{decode, encode};
use dockline_model::HealthVerdicts;

/// The snapshot of `node` with one BGP pool (`192.0.2.0/24`, `2001:db8::/120`) whose
/// extra keys are `pool`, and the TOML `extra` (services).
fn snapshot(node: &str, pool: &str, extra: &str) -> Snapshot {
    let text = format!(
        r#"
        [node]
        name = "{node}"
        internal_ip = "10.0.0.1"
        [bgp]
        asn = 64513
        [[bgp.peers]]
        address = "10.0.0.254"
        asn = 64512
        [[pools]]
        name = "p"
        addresses = ["192.0.2.0/24", "2001:db8::/120"]
        announce = ["bgp"]
        communities = ["64512:100"]
        large_communities = ["64513:0:100"]
        local_pref = 150
        {pool}
        {extra}
        "#
    );
    dockline_model::testing::snapshot(&text)
}

/// A LoadBalancer service of pool "p" on `ip`, with one endpoint on `endpoint_node`.
fn lb(name: &str, ip: &str, policy: &str, endpoint_node: &str) -> String {
    format!(
        "[[services]]\nname = \"{name}\"\ntype = \"LoadBalancer\"\nload_balancer_ip = \"{ip}\"\n\
         pool = \"p\"\nexternal_traffic_policy = \"{policy}\"\nports = [{{ port = 80 }}]\n\
         endpoints = [{{ ip = \"10.111.0.5\", node = \"{endpoint_node}\" }}]\n"
    )
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn external() -> Peer {
    Peer {
        local_asn: 64513,
        external: true,
        four_octet_asn: true,
        next_hop_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        next_hop_v6: Some("fd00::1".parse().unwrap()),
    }
}

fn internal() -> Peer {
    Peer {
        external: false,
        ..external()
    }
}

/// The UPDATEs as they go on the wire and come back.
fn wire(messages: Vec<BgpMessage>) -> Vec<BgpUpdateMessage> {
    messages
        .into_iter()
        .map(|message| {
            let bytes = encode(&message);
            assert!(bytes.len() <= MAX_MESSAGE_LENGTH);
            match decode(&bytes, true).unwrap() {
                BgpMessage::Update(update) => update,
                other => panic!("not an UPDATE: {other:?}"),
            }
        })
        .collect()
}

fn attribute_types(update: &BgpUpdateMessage) -> Vec<u8> {
    update
        .path_attributes()
        .iter()
        .map(|a| match a.path_attribute_type() {
            Ok(kind) => kind as u8,
            Err(code) => code,
        })
        .collect()
}

#[test]
fn cluster_policy_vips_are_advertised_as_host_routes_by_every_node() {
    let snapshot = snapshot(
        "n1",
        "",
        &(lb("web", "192.0.2.10", "Cluster", "n2") + &lb("v6", "2001:db8::5", "Cluster", "n2")),
    );
    let routes = desired(&snapshot, &HealthVerdicts::default());
    let prefixes: Vec<IpNet> = routes.keys().copied().collect();
    assert_eq!(prefixes, vec![net("192.0.2.10/32"), net("2001:db8::5/128")]);
    let attributes = &routes[&net("192.0.2.10/32")];
    assert_eq!(attributes.communities, vec![64512 << 16 | 100]);
    assert_eq!(attributes.large_communities, vec![(64513, 0, 100)]);
    assert_eq!(attributes.local_pref, Some(150));
}

#[test]
fn local_policy_vips_follow_this_nodes_ready_endpoints() {
    let here = snapshot("n1", "", &lb("web", "192.0.2.10", "Local", "n1"));
    let elsewhere = snapshot("n1", "", &lb("web", "192.0.2.10", "Local", "n2"));
    let mut health = HealthVerdicts::default();
    assert_eq!(desired(&here, &health).len(), 1);
    assert!(desired(&elsewhere, &health).is_empty());
    health.set("default/web", "10.111.0.5".parse().unwrap(), false);
    assert!(
        desired(&here, &health).is_empty(),
        "failing check withdraws"
    );
}

#[test]
fn pools_not_announced_over_bgp_give_no_routes() {
    let snapshot = snapshot("n1", "", &lb("web", "192.0.2.10", "Cluster", "n1"));
    let mut config = snapshot.config.clone();
    config.pools[0].announce = vec![Announce::L2];
    let snapshot = dockline_model::build(config).unwrap();
    assert!(desired(&snapshot, &HealthVerdicts::default()).is_empty());
}

#[test]
fn aggregation_length_gives_one_route_per_covering_prefix() {
    let snapshot = snapshot(
        "n1",
        "aggregation_length = 24\naggregation_length_v6 = 120",
        &(lb("a", "192.0.2.10", "Cluster", "n1")
            + &lb("b", "192.0.2.20", "Cluster", "n1")
            + &lb("c", "2001:db8::5", "Cluster", "n1")),
    );
    let prefixes: Vec<IpNet> = desired(&snapshot, &HealthVerdicts::default())
        .into_keys()
        .collect();
    assert_eq!(prefixes, vec![net("192.0.2.0/24"), net("2001:db8::/120")]);
}

#[test]
fn ebgp_updates_carry_our_as_and_no_local_pref() {
    let snapshot = snapshot("n1", "", &lb("web", "192.0.2.10", "Cluster", "n1"));
    let routes = desired(&snapshot, &HealthVerdicts::default());
    let updates = wire(Advertised::new().update_to(&routes, &external()));
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!(update.nlri().len(), 1);
    assert_eq!(
        update.nlri()[0].network().address(),
        "192.0.2.10/32".parse().unwrap()
    );
    // ORIGIN, AS_PATH, NEXT_HOP, COMMUNITIES, LARGE_COMMUNITY: no LOCAL_PREF (5).
    let mut types = attribute_types(update);
    types.sort_unstable();
    assert_eq!(types, vec![1, 2, 3, 8, 32]);
    for attribute in update.path_attributes() {
        match attribute.value() {
            PathAttributeValue::AsPath(path) => {
                assert_eq!(Vec::<u32>::from(path.clone()), vec![64513]);
            }
            PathAttributeValue::NextHop(next_hop) => {
                assert_eq!(next_hop.next_hop(), Ipv4Addr::new(10, 0, 0, 1));
            }
            _ => {}
        }
    }
}

#[test]
fn ibgp_updates_have_an_empty_as_path_and_the_local_pref() {
    let snapshot = snapshot("n1", "", &lb("web", "192.0.2.10", "Cluster", "n1"));
    let routes = desired(&snapshot, &HealthVerdicts::default());
    let updates = wire(Advertised::new().update_to(&routes, &internal()));
    let update = &updates[0];
    assert!(attribute_types(update).contains(&5));
    for attribute in update.path_attributes() {
        match attribute.value() {
            PathAttributeValue::AsPath(path) => {
                assert!(Vec::<u32>::from(path.clone()).is_empty());
            }
            PathAttributeValue::LocalPreference(preference) => {
                assert_eq!(preference.metric(), 150);
            }
            _ => {}
        }
    }
}

#[test]
fn ipv6_routes_go_in_mp_reach_with_the_global_next_hop() {
    let snapshot = snapshot("n1", "", &lb("v6", "2001:db8::5", "Cluster", "n1"));
    let routes = desired(&snapshot, &HealthVerdicts::default());
    let updates = wire(Advertised::new().update_to(&routes, &external()));
    assert_eq!(updates.len(), 1);
    assert!(updates[0].nlri().is_empty());
    let reach = updates[0]
        .path_attributes()
        .iter()
        .find_map(|a| match a.value() {
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global,
                nlri,
                ..
            }) => Some((*next_hop_global, nlri.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(reach.0, "fd00::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        reach.1[0].network().address(),
        "2001:db8::5/128".parse().unwrap()
    );
}

#[test]
fn a_family_without_a_next_hop_is_not_sent() {
    let snapshot = snapshot("n1", "", &lb("v6", "2001:db8::5", "Cluster", "n1"));
    let routes = desired(&snapshot, &HealthVerdicts::default());
    let peer = Peer {
        next_hop_v6: None,
        ..external()
    };
    let mut advertised = Advertised::new();
    assert!(advertised.update_to(&routes, &peer).is_empty());
    assert!(advertised.is_empty());
}

#[test]
fn a_change_sends_only_the_difference() {
    let before = snapshot(
        "n1",
        "",
        &(lb("a", "192.0.2.10", "Cluster", "n1") + &lb("b", "2001:db8::5", "Cluster", "n1")),
    );
    let after = snapshot(
        "n1",
        "",
        &(lb("a", "192.0.2.10", "Cluster", "n1") + &lb("c", "192.0.2.11", "Cluster", "n1")),
    );
    let health = HealthVerdicts::default();
    let mut advertised = Advertised::new();
    advertised.update_to(&desired(&before, &health), &external());
    assert!(
        advertised
            .update_to(&desired(&before, &health), &external())
            .is_empty(),
        "no change, no UPDATE"
    );

    let updates = wire(advertised.update_to(&desired(&after, &health), &external()));
    assert_eq!(updates.len(), 2, "one withdrawal, one announcement");
    let withdrawn = updates[0]
        .path_attributes()
        .iter()
        .find_map(|a| match a.value() {
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => Some(nlri.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        withdrawn[0].network().address(),
        "2001:db8::5/128".parse().unwrap()
    );
    let announced: Vec<_> = updates[1]
        .nlri()
        .iter()
        .map(|n| n.network().address())
        .collect();
    assert_eq!(announced, vec!["192.0.2.11/32".parse().unwrap()]);
    assert_eq!(advertised.len(), 2);
}

#[test]
fn changed_attributes_are_re_announced_without_a_withdrawal() {
    let snapshot = snapshot("n1", "", &lb("a", "192.0.2.10", "Cluster", "n1"));
    let mut routes = desired(&snapshot, &HealthVerdicts::default());
    let mut advertised = Advertised::new();
    advertised.update_to(&routes, &external());
    for attributes in routes.values_mut() {
        *attributes = Arc::new(PoolAttributes {
            communities: vec![1],
            ..PoolAttributes::default()
        });
    }
    let updates = wire(advertised.update_to(&routes, &external()));
    assert_eq!(updates.len(), 1);
    assert!(updates[0].withdraw_routes().is_empty());
    assert_eq!(updates[0].nlri().len(), 1);
}

#[test]
fn a_large_table_is_split_into_updates_under_4096_bytes() {
    let attributes = Arc::new(PoolAttributes {
        communities: vec![1, 2, 3],
        large_communities: vec![(1, 2, 3)],
        local_pref: Some(100),
    });
    let mut routes = Routes::new();
    for index in 0..10_000u32 {
        let v4 = Ipv4Addr::from(0x0a00_0000 + index);
        let v6 = Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(index));
        routes.insert(IpNet::V4(Ipv4Net::from(v4)), Arc::clone(&attributes));
        routes.insert(IpNet::V6(Ipv6Net::from(v6)), Arc::clone(&attributes));
    }
    let mut advertised = Advertised::new();
    let updates = wire(advertised.update_to(&routes, &internal()));
    let (mut v4, mut v6) = (0, 0);
    for update in &updates {
        v4 += update.nlri().len();
        for attribute in update.path_attributes() {
            if let PathAttributeValue::MpReach(MpReach::Ipv6Unicast { nlri, .. }) =
                attribute.value()
            {
                v6 += nlri.len();
            }
        }
    }
    assert_eq!((v4, v6), (10_000, 10_000));
    assert!(updates.len() < 80, "{} UPDATEs", updates.len());
    let withdrawals = wire(advertised.withdraw_all());
    let count: usize = withdrawals.iter().map(|u| u.withdraw_routes().len()).sum();
    assert_eq!(count, 10_000);
    assert!(advertised.is_empty());
}
