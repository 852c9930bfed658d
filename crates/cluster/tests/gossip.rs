//! The cluster component on loopback sockets: what the daemon relies on when it binds,
//! reloads and stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dockline_cluster::Cluster;
use dockline_model::{LiveMembers, MemberState, Published, Snapshot};
use tokio_util::sync::CancellationToken;

fn snapshot(name: &str, listen: SocketAddr, seeds: &[SocketAddr], services: &str) -> Snapshot {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    let text = format!(
        r#"
[node]
name = "{name}"
internal_ip = "127.0.0.1"
[cluster.gossip]
listen = "{listen}"
seeds = [{seeds}]
probe_interval_ms = 100
probe_timeout_ms = 50
suspect_timeout_ms = 30000
{services}
"#,
        seeds = seeds.join(", ")
    );
    let config = dockline_config::parse("t.toml", &text, std::iter::empty()).unwrap();
    dockline_model::build(config).unwrap()
}

const ONE_SERVICE: &str = r#"
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
ports = [{ port = 80 }]
"#;

/// A bound node, with the state the daemon would give it.
struct Node {
    cluster: Cluster,
    published: Arc<Published>,
    members: Arc<LiveMembers>,
}

async fn bind(snapshot: Snapshot) -> Node {
    let published = Arc::new(Published::new(snapshot.clone()));
    let members = Arc::new(LiveMembers::default());
    let cluster = Cluster::bind(&snapshot, published.clone(), members.clone())
        .await
        .unwrap();
    Node {
        cluster,
        published,
        members,
    }
}

/// The state and shared digest `members` shows for `name`.
fn member(members: &LiveMembers, name: &str) -> Option<(MemberState, String)> {
    let set = members.load();
    let found = set.members.iter().find(|m| m.name == name)?;
    Some((found.state, found.shared_digest.clone()))
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn a_snapshot_published_between_bind_and_run_is_the_identity_gossiped() {
    let bound = snapshot("a", loopback(), &[], "");
    let node = bind(bound.clone()).await;
    let listen = node.cluster.local_addr().unwrap();
    let reloaded = snapshot("a", listen, &[], ONE_SERVICE);
    assert_ne!(bound.shared_digest, reloaded.shared_digest);
    assert_eq!(
        member(&node.members, "a").unwrap().1,
        bound.shared_digest,
        "bind publishes the identity it bound"
    );

    node.published.publish(reloaded.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(node.cluster.run(shutdown.clone()));
    wait_until("the published digest is ours", || {
        member(&node.members, "a").unwrap().1 == reloaded.shared_digest
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stopped_node_leaves_the_cluster_and_frees_its_port() {
    let a = bind(snapshot("a", loopback(), &[], "")).await;
    let a_addr = a.cluster.local_addr().unwrap();
    let b = bind(snapshot("b", loopback(), &[a_addr], "")).await;
    let b_addr = b.cluster.local_addr().unwrap();

    let a_shutdown = CancellationToken::new();
    let b_shutdown = CancellationToken::new();
    let a_task = tokio::spawn(a.cluster.run(a_shutdown.clone()));
    let b_task = tokio::spawn(b.cluster.run(b_shutdown.clone()));
    wait_until("a sees b alive", || {
        member(&a.members, "b").is_some_and(|(state, _)| state == MemberState::Alive)
    })
    .await;

    b_shutdown.cancel();
    b_task.await.unwrap().unwrap();
    // Probes would take 30 s to call b down: only its leaving can do it in time.
    wait_until("a sees b down", || {
        member(&a.members, "b").is_some_and(|(state, _)| state == MemberState::Down)
    })
    .await;
    std::net::UdpSocket::bind(b_addr).expect("b's port is free again");

    a_shutdown.cancel();
    a_task.await.unwrap().unwrap();
}
