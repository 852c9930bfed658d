//! The status page at `/`: one HTML document for people, rendered from the same
//! [`StatusReport`] as `/status`. It is self-contained (inline style, no script, no
//! external asset, so it works on an offline node), read-only, and reloads itself every
//! few seconds.
//!
//! The page is a list of sections, each rendered from one part of the report (the BGP
//! sessions and the pod network in [`network`]). Rows carry `data-*` attributes naming
//! what they show, for tests and for scripts that scrape.

mod network;

use std::fmt::Write as _;

use crate::report::{ServiceReport, StatusReport};

/// Seconds between two reloads of the page.
const REFRESH_SECONDS: u32 = 2;

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2329; background: #f7f8fa; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.meta { color: #5b6670; }
table { border-collapse: collapse; background: #fff; min-width: 40em; }
th, td { text-align: left; padding: .25em .8em; border-bottom: 1px solid #e3e6ea; }
th { background: #eef1f4; font-weight: 600; }
.badge { display: inline-block; padding: 0 .5em; border-radius: .6em; font-weight: 600; }
.good { background: #d6f5dd; color: #1a6b2c; } .bad { background: #fbdada; color: #9b1c1c; }
.neutral { background: #e8eaed; color: #3c4650; }
.endpoint td:first-child { padding-left: 2em; }
.problems { color: #9b1c1c; }
";

/// The whole page for `report`.
pub(crate) fn render(report: &StatusReport) -> String {
    let mut html = String::with_capacity(8 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>dockline {}</title><style>{STYLE}</style></head><body>",
        escape(&report.node.name)
    );
    header(&mut html, report);
    members(&mut html, report);
    vips(&mut html, report);
    network::bgp(&mut html, report);
    services(&mut html, report);
    network::podnet(&mut html, report);
    components(&mut html, report);
    config(&mut html, report);
    html.push_str("</body></html>\n");
    html
}

/// `text` with the characters HTML gives a meaning to replaced by entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn badge(good: bool, text: &str) -> String {
    let class = if good { "good" } else { "bad" };
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

/// A table with `header` cells; `rows` are whole `<tr>` elements, already escaped.
fn table(html: &mut String, id: &str, title: &str, header: &[&str], rows: &[String]) {
    let _ = write!(html, "<h2>{title}</h2><table id=\"{id}\"><thead><tr>");
    for cell in header {
        let _ = write!(html, "<th>{cell}</th>");
    }
    html.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            html,
            "<tr><td colspan=\"{}\" class=\"meta\">none</td></tr>",
            header.len()
        );
    }
    for row in rows {
        html.push_str(row);
    }
    html.push_str("</tbody></table>");
}

fn header(html: &mut String, r: &StatusReport) {
    let _ = write!(
        html,
        "<h1>{} <span class=\"meta\">{}</span> {}</h1>\
         <p class=\"meta\">dockline {} &middot; up {}s since {} &middot; pod range {} &middot; \
         NodePorts on {}</p>",
        escape(&r.node.name),
        r.node.internal_ip,
        badge(r.ready, if r.ready { "ready" } else { "not ready" }),
        escape(&r.version),
        r.uptime_seconds,
        escape(&r.started_at),
        escape(r.node.pod_cidr.as_deref().unwrap_or("none")),
        if r.node.nodeport_internal_ip_only {
            "the internal IP only"
        } else {
            "every node address"
        },
    );
}

fn members(html: &mut String, r: &StatusReport) {
    let rows: Vec<String> = r
        .members
        .iter()
        .map(|m| {
            format!(
                "<tr data-member=\"{name}\"><td>{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.ip,
                badge(m.state == "alive", &m.state),
                badge(m.digest_match, if m.digest_match { "yes" } else { "no" }),
                name = escape(&m.name),
            )
        })
        .collect();
    table(
        html,
        "members",
        "Members",
        &["Node", "IP", "State", "Same config"],
        &rows,
    );
}

fn vips(html: &mut String, r: &StatusReport) {
    let rows: Vec<String> = r
        .vips
        .iter()
        .map(|v| {
            let owner = r.vip_owners.iter().find(|o| o.ip == v.ip);
            let owner_cell = match owner {
                Some(o) => match &o.owner {
                    Some(name) if o.owned_by_me => format!("{} (this node)", escape(name)),
                    Some(name) => escape(name),
                    None => badge(false, "no live node"),
                },
                // No L2 announcer here, so no owner to show.
                None => "<span class=\"meta\">-</span>".to_owned(),
            };
            let owner_cell = match owner.filter(|o| o.conflicts > 0) {
                Some(o) => format!(
                    "{owner_cell} {}",
                    badge(false, &format!("{} conflicts, last from {}", o.conflicts, o.conflict_mac.as_deref().unwrap_or("?")))
                ),
                None => owner_cell,
            };
            format!(
                "<tr data-vip=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"owner\">{owner_cell}</td><td>{}</td></tr>",
                v.ip,
                v.ip,
                escape(&v.pool),
                escape(&v.announce.join(", ")),
                escape(&v.services.join(", ")),
            )
        })
        .collect();
    table(
        html,
        "vips",
        "LoadBalancer IPs",
        &["IP", "Pool", "Announced by", "Owner (L2)", "Services"],
        &rows,
    );
}

fn services(html: &mut String, r: &StatusReport) {
    let mut rows = Vec::new();
    for s in &r.services {
        service_rows(&mut rows, s);
    }
    table(
        html,
        "services",
        "Services and endpoints",
        &[
            "Service / endpoint",
            "Type / node",
            "Address",
            "Ports / hostname",
            "Ready / health",
        ],
        &rows,
    );
}

fn service_rows(rows: &mut Vec<String>, s: &ServiceReport) {
    let key = format!("{}/{}", s.namespace, s.name);
    let address = match (s.headless, s.cluster_ip, &s.external_name) {
        (true, _, _) => "headless".to_owned(),
        (_, Some(ip), _) => ip.to_string(),
        (_, None, Some(name)) => escape(name),
        _ => "-".to_owned(),
    };
    let address = match s.load_balancer_ip {
        Some(lb) => format!("{address}, {lb}"),
        None => address,
    };
    let ports: Vec<String> = s
        .ports
        .iter()
        .map(|p| match p.node_port {
            Some(node_port) => format!(
                "{}:{node_port}&rarr;{}/{}",
                p.port, p.target_port, p.protocol
            ),
            None => format!("{}&rarr;{}/{}", p.port, p.target_port, p.protocol),
        })
        .collect();
    let ready = s.endpoints.iter().filter(|e| e.ready).count();
    rows.push(format!(
        "<tr data-service=\"{key}\"><th>{key}</th><td>{}</td><td>{address}</td><td>{}</td><td>{}</td></tr>",
        escape(&s.kind),
        ports.join(", "),
        badge(ready > 0 || s.endpoints.is_empty(), &format!("{ready}/{}", s.endpoints.len())),
        key = escape(&key),
    ));
    for e in &s.endpoints {
        rows.push(format!(
            "<tr class=\"endpoint\" data-service=\"{key}\" data-endpoint=\"{}\" data-health=\"{health}\">\
             <td>{}</td><td>{}</td><td></td><td>{}</td><td>{}</td></tr>",
            e.ip,
            e.ip,
            escape(e.node.as_deref().unwrap_or("-")),
            escape(e.hostname.as_deref().unwrap_or("-")),
            badge(e.ready, &e.health),
            key = escape(&key),
            health = escape(&e.health),
        ));
    }
}

fn components(html: &mut String, r: &StatusReport) {
    let rows: Vec<String> = r
        .components
        .iter()
        .map(|c| {
            format!(
                "<tr data-component=\"{name}\"><td>{name}</td><td>{}</td><td>{}</td></tr>",
                badge(c.state == "running", &c.state),
                escape(c.error.as_deref().unwrap_or("")),
                name = escape(&c.name),
            )
        })
        .collect();
    table(
        html,
        "components",
        "Components",
        &["Component", "State", "Error"],
        &rows,
    );
}

fn config(html: &mut String, r: &StatusReport) {
    let c = &r.config;
    let _ = write!(
        html,
        "<h2>Configuration</h2><p id=\"config\">{} &middot; loaded {} in {:.1} ms &middot; \
         digest <code>{}</code> &middot; reloads accepted {}, rejected {}</p>",
        escape(&c.source),
        escape(&c.loaded_at),
        c.load_duration_ms,
        escape(c.config_digest.get(..12).unwrap_or(&c.config_digest)),
        c.reloads_ok,
        c.reloads_error,
    );
    if let Some(error) = &c.last_reload_error {
        let _ = write!(
            html,
            "<p class=\"problems\">Last rejected reload at {}:</p><ul class=\"problems\" id=\"reload-problems\">",
            escape(&error.at)
        );
        for problem in &error.problems {
            let _ = write!(html, "<li>{}</li>", escape(problem));
        }
        html.push_str("</ul>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            node: NodeReport {
                name: "node-1".into(),
                internal_ip: "10.0.0.11".parse().expect("ip"),
                pod_cidr: None,
                nodeport_internal_ip_only: true,
            },
            started_at: "2026-01-01T00:00:00.000Z".into(),
            uptime_seconds: 5,
            ready: true,
            components: vec![
                ComponentReport {
                    name: "l2".into(),
                    state: "running".into(),
                    error: None,
                    status: None,
                },
                ComponentReport {
                    name: "podnet".into(),
                    state: "running".into(),
                    error: None,
                    status: Some(serde_json::json!({
                        "mode": "VXLAN", "device": "dockline0", "mtu": 1450,
                        "overlay_address": "10.111.1.1", "vteps": ["10.0.1.13"],
                        "fdb_entries": 1,
                        "routes": [{ "destination": "10.111.3.0/24", "gateway": "10.111.3.1" }],
                        "unreachable": [], "drops": [["unknown_vtep", 2]],
                    })),
                },
            ],
            config: ConfigReport {
                source: "/etc/dockline/dockline.toml".into(),
                config_digest: "ab".repeat(32),
                shared_digest: "cd".repeat(32),
                loaded_at: "2026-01-01T00:00:00.000Z".into(),
                load_duration_ms: 1.5,
                revision: None,
                reloads_ok: 1,
                reloads_error: 1,
                last_reload_error: Some(ReloadErrorReport {
                    at: "2026-01-01T00:00:01.000Z".into(),
                    problems: vec!["services[0].name: <bad> & worse".into()],
                }),
            },
            services: vec![ServiceReport {
                namespace: "default".into(),
                name: "web".into(),
                kind: "LoadBalancer".into(),
                cluster_ip: Some("10.222.0.10".parse().expect("ip")),
                headless: false,
                load_balancer_ip: Some("192.0.2.10".parse().expect("ip")),
                pool: Some("public".into()),
                external_name: None,
                external_traffic_policy: "Cluster".into(),
                ports: vec![],
                endpoints: vec![EndpointReport {
                    ip: "10.111.1.5".parse().expect("ip"),
                    node: Some("node-1".into()),
                    hostname: None,
                    ready: false,
                    health: "failing".into(),
                }],
            }],
            vips: vec![VipReport {
                ip: "192.0.2.10".parse().expect("ip"),
                pool: "public".into(),
                announce: vec!["l2".into()],
                services: vec!["default/web".into()],
            }],
            members: vec![MemberReport {
                name: "node-2".into(),
                ip: "10.0.0.12".parse().expect("ip"),
                state: "alive".into(),
                digest_match: false,
                config_revision: None,
            }],
            vip_owners: vec![VipOwnerReport {
                ip: "192.0.2.10".parse().expect("ip"),
                owner: Some("node-2".into()),
                owned_by_me: false,
                conflicts: 0,
                conflict_mac: None,
            }],
            bgp_peers: vec![BgpPeerReport {
                address: "10.0.0.1".parse().expect("ip"),
                asn: 64512,
                state: "Established".into(),
                uptime_seconds: Some(303),
                last_error: None,
                prefixes_sent: 1,
                advertised: vec!["203.0.113.10/32".into()],
                updates_sent: 2,
            }],
        }
    }

    #[test]
    fn the_page_shows_each_bgp_session_with_what_it_advertises() {
        let page = render(&report());
        assert!(
            page.contains("<tr data-peer=\"10.0.0.1\" data-state=\"Established\">"),
            "{page}"
        );
        assert!(
            page.contains("<td data-prefixes=\"1\">203.0.113.10/32</td>"),
            "{page}"
        );
        assert!(page.contains("<td>5m 03s</td>"), "{page}");
    }

    #[test]
    fn the_page_shows_the_pod_network_mode_with_its_vteps_and_routes() {
        let page = render(&report());
        assert!(page.contains("id=\"podnet-mode\">VXLAN</span>"), "{page}");
        assert!(page.contains("MTU 1450"), "{page}");
        assert!(page.contains("<tr data-vtep=\"10.0.1.13\">"), "{page}");
        assert!(
            page.contains("<tr data-route=\"10.111.3.0/24\"><td>route</td><td>10.111.3.0/24</td><td>via 10.111.3.1</td>"),
            "{page}"
        );
        assert!(page.contains("<tr data-drop=\"unknown_vtep\">"), "{page}");
    }

    #[test]
    fn the_page_shows_each_vip_with_its_owner_and_each_endpoint_with_its_health() {
        let page = render(&report());
        assert!(page.contains("<tr data-vip=\"192.0.2.10\">"), "{page}");
        assert!(page.contains("<td class=\"owner\">node-2</td>"), "{page}");
        assert!(
            page.contains("data-endpoint=\"10.111.1.5\" data-health=\"failing\""),
            "{page}"
        );
        assert!(page.contains("<tr data-member=\"node-2\">"), "{page}");
    }

    #[test]
    fn text_from_the_config_is_escaped() {
        let page = render(&report());
        assert!(
            page.contains("<li>services[0].name: &lt;bad&gt; &amp; worse</li>"),
            "{page}"
        );
        assert!(!page.contains("<bad>"));
    }

    #[test]
    fn the_page_needs_nothing_from_elsewhere_and_refreshes_itself() {
        let page = render(&report());
        for external in ["src=", "href=", "<script", "@import", "url("] {
            assert!(!page.contains(external), "{external} in {page}");
        }
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
    }
}
