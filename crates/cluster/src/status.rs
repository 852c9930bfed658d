//! What `/status` shows of membership: when the member set last changed, and what gossip
//! costs in bytes per second each way.

use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

use crate::metrics::{self, Direction};

/// Membership as `/status` shows it, under the cluster component.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// When a member last came, went or changed between live and down (ms since the
    /// epoch); 0 before the first change.
    pub last_change_unix_ms: u64,
    /// Members counted live (alive or suspect), this node included.
    pub live_members: usize,
    /// Gossip bytes sent per second (whole datagrams), over the last second.
    pub gossip_bytes_sent_per_s: u64,
    /// Gossip bytes received per second (whole datagrams), over the last second.
    pub gossip_bytes_received_per_s: u64,
}

/// Gossip bytes since the last rate update.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    sent: u64,
    received: u64,
    since: Option<Instant>,
}

impl Traffic {
    /// Counts one datagram sent.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.sent += bytes as u64;
        metrics::count_bytes(Direction::Sent, bytes);
    }

    /// Counts one datagram received.
    pub(crate) fn received(&mut self, bytes: usize) {
        self.received += bytes as u64;
        metrics::count_bytes(Direction::Received, bytes);
    }

    /// Turns the bytes counted since the last tick into rates in `status`.
    pub(crate) fn tick(&mut self, now: Instant, status: &watch::Sender<ClusterStatus>) {
        if let Some(since) = self.since {
            let seconds = now.saturating_duration_since(since).as_secs_f64();
            if seconds > 0.0 {
                let rate = |bytes: u64| (bytes as f64 / seconds).round() as u64;
                let (sent, received) = (rate(self.sent), rate(self.received));
                status.send_if_modified(|status| {
                    let before = (
                        status.gossip_bytes_sent_per_s,
                        status.gossip_bytes_received_per_s,
                    );
                    status.gossip_bytes_sent_per_s = sent;
                    status.gossip_bytes_received_per_s = received;
                    before != (sent, received)
                });
            }
        }
        self.since = Some(now);
        self.sent = 0;
        self.received = 0;
    }
}
