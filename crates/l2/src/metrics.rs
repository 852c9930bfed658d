//! The announcer's metrics: their names and descriptions, and the handles the driver keeps
//! per VIP so that counting a frame formats no labels.

use std::collections::HashMap;
use std::net::IpAddr;

use metrics::{Counter, Gauge};

use crate::frame::Ignored;

const REQUESTS: &str = "dockline_l2_requests_received_total";
const RESPONSES: &str = "dockline_l2_responses_sent_total";
const GRATUITOUS: &str = "dockline_l2_gratuitous_sent_total";
const OWNED: &str = "dockline_vip_owned";
const IGNORED: &str = "dockline_l2_frames_ignored_total";
const CONFLICTS: &str = "dockline_l2_conflicts_total";

/// Every reason a frame is ignored, each a label of the ignored-frames counter.
const IGNORED_REASONS: [Ignored; 4] = [
    Ignored::Truncated,
    Ignored::Foreign,
    Ignored::NotRequest,
    Ignored::Malformed,
];

/// Describes the L2 metrics to the recorder and starts the ignored-frame counters at zero.
pub fn describe_metrics() {
    metrics::describe_counter!(
        REQUESTS,
        "ARP requests and neighbour solicitations received for a VIP, by VIP"
    );
    metrics::describe_counter!(
        RESPONSES,
        "ARP replies and neighbour advertisements sent, by VIP"
    );
    metrics::describe_counter!(
        GRATUITOUS,
        "Gratuitous ARPs and unsolicited neighbour advertisements sent, by VIP"
    );
    metrics::describe_gauge!(OWNED, "1 while this node owns (answers for) the VIP");
    metrics::describe_counter!(
        CONFLICTS,
        "Frames from another MAC claiming a VIP this node answers for (gratuitous ARP, ARP \
         reply, neighbour advertisement), by VIP: two nodes think they own it"
    );
    metrics::describe_counter!(
        IGNORED,
        "ARP/IPv6 frames received and not answered, by reason (truncated, foreign, \
         not_request, malformed)"
    );
    for reason in IGNORED_REASONS {
        metrics::counter!(IGNORED, "reason" => reason.label()).absolute(0);
    }
}

/// One VIP's metric handles.
#[derive(Debug)]
pub(crate) struct VipMetrics {
    pub(crate) requests: Counter,
    pub(crate) responses: Counter,
    pub(crate) gratuitous: Counter,
    pub(crate) owned: Gauge,
    pub(crate) conflicts: Counter,
}

impl VipMetrics {
    /// The handles for `ip`, its owned gauge at 0.
    fn new(ip: IpAddr) -> Self {
        let ip = ip.to_string();
        let vip = VipMetrics {
            requests: metrics::counter!(REQUESTS, "ip" => ip.clone()),
            responses: metrics::counter!(RESPONSES, "ip" => ip.clone()),
            gratuitous: metrics::counter!(GRATUITOUS, "ip" => ip.clone()),
            owned: metrics::gauge!(OWNED, "ip" => ip.clone()),
            conflicts: metrics::counter!(CONFLICTS, "vip" => ip),
        };
        vip.owned.set(0.0);
        vip
    }
}

/// The announcer's handles, one set per L2 VIP.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    vips: HashMap<IpAddr, VipMetrics>,
}

impl Metrics {
    /// The handles of `vip`, made on first use.
    pub(crate) fn vip(&mut self, vip: IpAddr) -> &VipMetrics {
        self.vips.entry(vip).or_insert_with(|| VipMetrics::new(vip))
    }

    /// Keeps handles for exactly these VIPs: requests are counted for every L2 VIP, owned
    /// or not, and a VIP gone from the config takes its handles with it.
    pub(crate) fn follow(&mut self, vips: impl IntoIterator<Item = IpAddr>) {
        let mut kept = HashMap::new();
        for vip in vips {
            let handles = self
                .vips
                .remove(&vip)
                .unwrap_or_else(|| VipMetrics::new(vip));
            kept.insert(vip, handles);
        }
        self.vips = kept;
    }

    /// Counts a frame ignored for `reason` (rare enough to look the counter up each time).
    pub(crate) fn ignored(&self, reason: Ignored) {
        metrics::counter!(IGNORED, "reason" => reason.label()).increment(1);
    }
}
