//! The page's sections on how traffic reaches this node: the BGP sessions with what each
//! router has from us, and the pod network with its mode and its VTEPs or routes. Both are
//! read from the report: the sessions from `bgp_peers`, the pod network from the status
//! JSON the `podnet` component publishes (its fields are that component's contract).

use std::fmt::Write as _;

use serde_json::Value;

use super::{badge, escape, table};
use crate::report::StatusReport;

/// How many prefixes a session's cell lists before it only counts the rest.
const LISTED_PREFIXES: usize = 8;

/// `seconds` as a person reads an uptime: "42s", "5m 03s", "2h 05m", "3d 04h".
fn uptime(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {:02}s", seconds % 60),
        (0, _, _) => format!("{hours}h {minutes:02}m"),
        _ => format!("{days}d {hours:02}h"),
    }
}

pub(super) fn bgp(html: &mut String, r: &StatusReport) {
    let rows: Vec<String> = r
        .bgp_peers
        .iter()
        .map(|p| {
            let mut prefixes = p
                .advertised
                .iter()
                .take(LISTED_PREFIXES)
                .map(|prefix| escape(prefix))
                .collect::<Vec<_>>()
                .join(", ");
            if p.advertised.len() > LISTED_PREFIXES {
                let _ = write!(
                    prefixes,
                    " and {} more",
                    p.advertised.len() - LISTED_PREFIXES
                );
            }
            format!(
                "<tr data-peer=\"{}\" data-state=\"{state}\"><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td data-prefixes=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                p.address,
                p.address,
                p.asn,
                badge(p.state == "Established", &p.state),
                p.uptime_seconds.map_or_else(|| "-".to_owned(), uptime),
                p.prefixes_sent,
                if prefixes.is_empty() {
                    "none".to_owned()
                } else {
                    prefixes
                },
                p.updates_sent,
                escape(p.last_error.as_deref().unwrap_or("")),
                state = escape(&p.state),
            )
        })
        .collect();
    table(
        html,
        "bgp",
        "BGP sessions",
        &[
            "Router",
            "AS",
            "Session",
            "Up for",
            "Prefixes advertised",
            "Updates sent",
            "Last error",
        ],
        &rows,
    );
}

/// The `podnet` component's status, when it runs here.
fn podnet_status(r: &StatusReport) -> Option<&Value> {
    r.components
        .iter()
        .find(|c| c.name == "podnet")
        .and_then(|c| c.status.as_ref())
}

pub(super) fn podnet(html: &mut String, r: &StatusReport) {
    let Some(status) = podnet_status(r) else {
        html.push_str(
            "<h2>Pod network</h2><p id=\"podnet\" class=\"meta\">not running on this node \
             (it needs node.pod_cidr)</p>",
        );
        return;
    };
    let text = |key: &str| status[key].as_str().map(escape);
    let mode = text("mode").unwrap_or_else(|| "?".to_owned());
    let mut summary =
        format!("mode <span class=\"badge neutral\" id=\"podnet-mode\">{mode}</span>");
    if let Some(device) = text("device") {
        let _ = write!(summary, " &middot; device {device}");
    }
    if let Some(mtu) = status["mtu"].as_u64() {
        let _ = write!(summary, " &middot; MTU {mtu}");
    }
    if let Some(address) = text("overlay_address") {
        let _ = write!(summary, " &middot; overlay address {address}");
    }
    if let Some(entries) = status["fdb_entries"].as_u64().filter(|_| mode == "VXLAN") {
        let _ = write!(summary, " &middot; forwarding entries: {entries}");
    }
    let list = |key: &str| status[key].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for vtep in list("vteps").iter().filter_map(Value::as_str) {
        rows.push(format!(
            "<tr data-vtep=\"{vtep}\"><td>VTEP</td><td>{vtep}</td><td>frames to and from it over UDP</td></tr>",
            vtep = escape(vtep)
        ));
    }
    for route in list("routes") {
        let (Some(destination), Some(gateway)) =
            (route["destination"].as_str(), route["gateway"].as_str())
        else {
            continue;
        };
        rows.push(format!(
            "<tr data-route=\"{destination}\"><td>route</td><td>{destination}</td><td>via {}</td></tr>",
            escape(gateway),
            destination = escape(destination),
        ));
    }
    for peer in list("unreachable") {
        let name = escape(peer["name"].as_str().unwrap_or("?"));
        rows.push(format!(
            "<tr data-unreachable=\"{name}\"><td>{}</td><td>{name} ({})</td>\
             <td>on no directly connected network: Classic cannot route to it</td></tr>",
            badge(false, "unreachable"),
            escape(peer["internal_ip"].as_str().unwrap_or("?")),
        ));
    }
    // Only the reasons that happened: the component lists every reason it counts.
    for drop in list("drops") {
        if let (Some(reason), Some(count @ 1..)) = (drop[0].as_str(), drop[1].as_u64()) {
            rows.push(format!(
                "<tr data-drop=\"{reason}\"><td>dropped</td><td>{count}</td><td>{reason}</td></tr>",
                reason = escape(reason),
            ));
        }
    }
    let _ = write!(html, "<h2>Pod network</h2><p id=\"podnet\">{summary}</p>");
    table(
        html,
        "podnet-peers",
        "Pod network peers",
        &["Kind", "Peer / destination", "How"],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_as_a_person_would_say_them() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(303), "5m 03s");
        assert_eq!(uptime(7500), "2h 05m");
        assert_eq!(uptime(273_600), "3d 04h");
    }
}
