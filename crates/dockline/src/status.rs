//! `dockline status`: fetches `/status` from a running daemon and prints it as tables.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use dockline_admin::StatusReport;
use dockline_podnet::PodNetStatus;

/// Prints the daemon's `/status` as tables (or its JSON); with `ready`, exits 1 unless the
/// daemon reports itself ready, so a container health check can call it.
pub fn status(admin: SocketAddr, json: bool, ready: bool) -> ExitCode {
    let body = match fetch(admin) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("dockline status: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let report = serde_json::from_str::<StatusReport>(&body);
    match &report {
        _ if json => println!("{body}"),
        Ok(report) => print!("{}", render(report)),
        Err(error) => {
            eprintln!("dockline status: unexpected answer from http://{admin}/status: {error}");
            return ExitCode::FAILURE;
        }
    }
    match report {
        Ok(report) if ready && !report.ready => ExitCode::FAILURE,
        Err(_) if ready => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

fn fetch(admin: SocketAddr) -> anyhow::Result<String> {
    let url = format!("http://{admin}/status");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(&url)
        .call()
        .with_context(|| format!("cannot reach the admin API at {url} (is dockline running?)"))?
        .body_mut()
        .read_to_string()
        .with_context(|| format!("cannot read the answer of {url}"))
}

/// Plain-text tables, columns padded to their widest cell.
fn table(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "\n{title}");
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", padded.join("  ").trim_end());
    };
    line(out, &mut header.iter().copied());
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dockline {} on node {} ({}), {}, up {}s since {}",
        r.version,
        r.node.name,
        r.node.internal_ip,
        if r.ready { "ready" } else { "NOT READY" },
        r.uptime_seconds,
        r.started_at
    );
    let c = &r.config;
    let revision = c
        .revision
        .map(|revision| format!(" at revision {revision}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "config {}{revision} loaded {} in {:.1} ms, digest {}, reloads ok {} / rejected {}",
        c.source,
        c.loaded_at,
        c.load_duration_ms,
        c.config_digest.get(..12).unwrap_or(&c.config_digest),
        c.reloads_ok,
        c.reloads_error
    );
    if let Some(e) = &c.last_reload_error {
        let _ = writeln!(out, "last rejected reload at {}:", e.at);
        for p in &e.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    let rows: Vec<Vec<String>> = r
        .components
        .iter()
        .map(|c| {
            // The plain numbers a component reports of itself (dns: its cache's size).
            let figures: Vec<String> = match &c.status {
                Some(serde_json::Value::Object(fields)) => fields
                    .iter()
                    .filter(|(_, value)| value.is_u64())
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect(),
                _ => Vec::new(),
            };
            vec![
                c.name.clone(),
                c.state.clone(),
                or_dash(c.error.clone()),
                if figures.is_empty() {
                    "-".into()
                } else {
                    figures.join(" ")
                },
            ]
        })
        .collect();
    table(
        &mut out,
        "COMPONENTS",
        &["NAME", "STATE", "ERROR", "FIGURES"],
        &rows,
    );
    let rows: Vec<Vec<String>> = r
        .services
        .iter()
        .map(|s| {
            let ports: Vec<String> = s
                .ports
                .iter()
                .map(|p| match p.node_port {
                    Some(np) => format!("{}:{}->{}/{}", p.port, np, p.target_port, p.protocol),
                    None => format!("{}->{}/{}", p.port, p.target_port, p.protocol),
                })
                .collect();
            let ready = s.endpoints.iter().filter(|e| e.ready).count();
            vec![
                format!("{}/{}", s.namespace, s.name),
                s.kind.clone(),
                if s.headless {
                    "None".into()
                } else {
                    or_dash(s.cluster_ip)
                },
                or_dash(
                    s.load_balancer_ip
                        .map(|ip| ip.to_string())
                        .or(s.external_name.clone()),
                ),
                if ports.is_empty() {
                    "-".into()
                } else {
                    ports.join(",")
                },
                format!("{ready}/{}", s.endpoints.len()),
            ]
        })
        .collect();
    table(
        &mut out,
        "SERVICES",
        &[
            "SERVICE",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL",
            "PORTS",
            "READY",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = r
        .services
        .iter()
        .flat_map(|s| {
            s.endpoints.iter().map(move |e| {
                vec![
                    format!("{}/{}", s.namespace, s.name),
                    e.ip.to_string(),
                    or_dash(e.node.clone()),
                    or_dash(e.hostname.clone()),
                    e.health.clone(),
                ]
            })
        })
        .collect();
    table(
        &mut out,
        "ENDPOINTS",
        &["SERVICE", "IP", "NODE", "HOSTNAME", "HEALTH"],
        &rows,
    );
    let rows: Vec<Vec<String>> = r
        .vips
        .iter()
        .map(|v| {
            vec![
                v.ip.to_string(),
                v.pool.clone(),
                v.announce.join(","),
                v.services.join(","),
            ]
        })
        .collect();
    table(
        &mut out,
        "LOADBALANCER IPS",
        &["IP", "POOL", "ANNOUNCE", "SERVICES"],
        &rows,
    );
    let yes_no = |b: bool| if b { "yes" } else { "NO" }.to_owned();
    let rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.ip.to_string(),
                m.state.clone(),
                match m.config_revision {
                    Some(revision) => format!("{} (revision {revision})", yes_no(m.digest_match)),
                    None => yes_no(m.digest_match),
                },
            ]
        })
        .collect();
    table(
        &mut out,
        "MEMBERS",
        &["NAME", "IP", "STATE", "SAME CONFIG"],
        &rows,
    );
    let rows: Vec<Vec<String>> = r
        .vip_owners
        .iter()
        .map(|v| {
            let mine = if v.owned_by_me { "yes" } else { "no" };
            vec![v.ip.to_string(), or_dash(v.owner.as_ref()), mine.to_owned()]
        })
        .collect();
    table(
        &mut out,
        "VIP OWNERS",
        &["IP", "OWNER", "OWNED BY ME"],
        &rows,
    );
    let rows: Vec<Vec<String>> = r
        .bgp_peers
        .iter()
        .map(|p| {
            vec![
                p.address.to_string(),
                p.asn.to_string(),
                p.state.clone(),
                or_dash(p.uptime_seconds.map(|s| format!("{s}s")).as_ref()),
                p.prefixes_sent.to_string(),
                or_dash(p.last_error.as_ref()),
            ]
        })
        .collect();
    table(
        &mut out,
        "BGP PEERS",
        &[
            "PEER",
            "ASN",
            "STATE",
            "UPTIME",
            "PREFIXES SENT",
            "LAST ERROR",
        ],
        &rows,
    );
    let pod_network = r
        .components
        .iter()
        .find(|c| c.name == "podnet")
        .and_then(|c| c.status.clone())
        .and_then(|status| serde_json::from_value::<PodNetStatus>(status).ok());
    if let Some(pod_network) = pod_network {
        render_pod_network(&mut out, &pod_network);
    }
    out
}

/// The pod network's mode and device, then its routes, VTEPs and drops.
fn render_pod_network(out: &mut String, p: &PodNetStatus) {
    let _ = writeln!(
        out,
        "\nPOD NETWORK {} device {} mtu {} address {} fdb entries {}",
        p.mode,
        or_dash(p.device.as_ref()),
        or_dash(p.mtu),
        or_dash(p.overlay_address.as_ref()),
        p.fdb_entries
    );
    let rows: Vec<Vec<String>> = p
        .routes
        .iter()
        .map(|r| vec![r.destination.to_string(), r.gateway.to_string()])
        .chain(p.unreachable.iter().map(|u| {
            vec![
                format!("{} ({})", u.name, u.internal_ip),
                "none: not on a directly connected network".to_owned(),
            ]
        }))
        .collect();
    table(out, "POD ROUTES", &["DESTINATION", "VIA"], &rows);
    if p.mode == "VXLAN" {
        let rows: Vec<Vec<String>> = p.vteps.iter().map(|v| vec![v.to_string()]).collect();
        table(out, "VTEPS", &["ADDRESS"], &rows);
        let rows: Vec<Vec<String>> = p
            .drops
            .iter()
            .map(|(reason, count)| vec![reason.clone(), count.to_string()])
            .collect();
        table(out, "VXLAN DROPS", &["REASON", "PACKETS"], &rows);
    }
}
