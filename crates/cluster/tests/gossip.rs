//! The cluster component on loopback sockets: what the daemon relies on when it binds,
//! reloads and stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dockline_cluster::Cluster;
use dockline_model::{LiveMembers, LiveOwners, MemberState, Published, Snapshot};
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
    let cluster = Cluster::bind(
        &snapshot,
        published.clone(),
        members.clone(),
        Arc::new(LiveOwners::default()),
    )
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

/// A node on loopback whose packets are signed with the keys in `key_file`.
fn keyed(name: &str, seeds: &[SocketAddr], key_file: &std::path::Path, services: &str) -> Snapshot {
    let auth = format!("secret_file = \"{}\"\n{services}", key_file.display());
    snapshot(name, loopback(), seeds, &auth)
}

fn alive(members: &LiveMembers, name: &str) -> bool {
    member(members, name).is_some_and(|(state, _)| state == MemberState::Alive)
}

#[tokio::test]
async fn nodes_sharing_a_key_join_during_a_rotation_and_a_wrong_key_joins_only_once_reloaded() {
    let dir = std::env::temp_dir().join(format!("dockline-gossip-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // Mid-rotation: a already signs with the new key, b still with the old; each verifies
    // both.
    let a_keys = write("a.key", "new\nold\n");
    let b_keys = write("b.key", "old\nnew\n");
    let c_keys = write("c.key", "wrong\n");
    let a = bind(keyed("a", &[], &a_keys, "")).await;
    let a_addr = a.cluster.local_addr().unwrap();
    let b = bind(keyed("b", &[a_addr], &b_keys, "")).await;
    let c = bind(keyed("c", &[a_addr], &c_keys, "")).await;
    let c_published = c.published.clone();
    let shutdown = CancellationToken::new();
    let tasks = [
        tokio::spawn(a.cluster.run(shutdown.clone())),
        tokio::spawn(b.cluster.run(shutdown.clone())),
        tokio::spawn(c.cluster.run(shutdown.clone())),
    ];
    wait_until("a and b see each other", || {
        alive(&a.members, "b") && alive(&b.members, "a")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(member(&a.members, "c").is_none(), "c has the wrong key");
    assert!(member(&c.members, "a").is_none());

    // c gets the key and a reload: it reads the file again and joins.
    std::fs::write(&c_keys, "old\nnew\n").unwrap();
    c_published.publish(keyed("c", &[a_addr], &c_keys, ONE_SERVICE));
    wait_until("c joins once reloaded with the key", || {
        alive(&a.members, "c") && alive(&c.members, "a")
    })
    .await;

    shutdown.cancel();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
