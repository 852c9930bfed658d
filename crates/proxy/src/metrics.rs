//! The proxy's metrics. Node-wide ones go through the recorder, described at start-up,
//! with handles made once and kept. Per-service series (connections, active connections,
//! backend_up) are kept here and rendered at scrape time from the live config: the recorder
//! has no way to drop a series, so a removed service's series would stay forever, and
//! 10,000 services took about 9 MB of recorder keys and labels.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dockline_model::HealthVerdicts;
use metrics::Counter;

use crate::pool::{Pool, Refusal};
use crate::setup::{Count, Tally};

pub(crate) const CONNECTIONS: &str = "dockline_proxy_connections_total";
pub(crate) const ACTIVE: &str = "dockline_proxy_active_connections";
pub(crate) const BYTES: &str = "dockline_proxy_bytes_total";
pub(crate) const BACKEND_UP: &str = "dockline_proxy_backend_up";
pub(crate) const CONNECT_ERRORS: &str = "dockline_proxy_connect_errors_total";
pub(crate) const REFUSED: &str = "dockline_proxy_refused_total";
pub(crate) const LISTEN_ERRORS: &str = "dockline_proxy_listen_errors_total";

/// Describes the node-wide metrics to the recorder; called once at start-up.
pub fn describe() {
    metrics::describe_counter!(
        BYTES,
        metrics::Unit::Bytes,
        "Bytes forwarded, by direction (to_backend, to_client)"
    );
    metrics::describe_counter!(
        CONNECT_ERRORS,
        "Connections to a backend that failed or timed out"
    );
    metrics::describe_counter!(
        REFUSED,
        "Connections reset for want of a ready endpoint or over max_connections, by reason"
    );
    metrics::describe_counter!(
        LISTEN_ERRORS,
        "Failures to bind a listener, accept a connection or open a backend socket (e.g. out of descriptors)"
    );
}

/// Handles shared by every connection.
#[derive(Debug, Clone)]
pub(crate) struct Global {
    pub(crate) to_backend: Counter,
    pub(crate) to_client: Counter,
    pub(crate) connect_errors: Counter,
    pub(crate) listen_errors: Counter,
    /// Read through [`Global::refused`].
    no_endpoint: Counter,
    over_limit: Counter,
}

impl Global {
    pub(crate) fn new() -> Global {
        Global {
            to_backend: metrics::counter!(BYTES, "direction" => "to_backend"),
            to_client: metrics::counter!(BYTES, "direction" => "to_client"),
            connect_errors: metrics::counter!(CONNECT_ERRORS),
            no_endpoint: metrics::counter!(REFUSED, "reason" => Refusal::NoEndpoint.reason()),
            over_limit: metrics::counter!(REFUSED, "reason" => Refusal::OverLimit.reason()),
            listen_errors: metrics::counter!(LISTEN_ERRORS),
        }
    }

    /// The counter of connections and flows refused for `refusal`.
    pub(crate) fn refused(&self, refusal: Refusal) -> &Counter {
        match refusal {
            Refusal::NoEndpoint => &self.no_endpoint,
            Refusal::OverLimit => &self.over_limit,
        }
    }
}

impl Tally for Global {
    fn count(&self, what: Count) {
        match what {
            Count::Refused(refusal) => self.refused(refusal),
            Count::ConnectError => &self.connect_errors,
            // A backend socket this node cannot open counts with its listeners' failures.
            Count::NoSocket => &self.listen_errors,
        }
        .increment(1);
    }
}

/// Counters of one service port: shared by its listeners (ClusterIP, NodePort, LB IP) and
/// kept across reloads while the port exists.
#[derive(Debug, Default)]
pub(crate) struct PortCounters {
    connections: AtomicU64,
    active: AtomicU64,
}

impl PortCounters {
    /// A connection or flow came in (whether or not it reaches a backend).
    pub(crate) fn accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// It reached a backend and is open.
    pub(crate) fn opened(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the per-service series are rendered from, swapped on every reload.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// (service key, port, counters), in that order.
    pub(crate) ports: Vec<(Arc<str>, u16, Arc<PortCounters>)>,
    /// Every proxied service's pool, by service key.
    pub(crate) pools: Vec<Arc<Pool>>,
}

/// Appends the per-service series in the Prometheus text format.
pub(crate) fn render(report: &Report, verdicts: &HealthVerdicts, out: &mut String) {
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Read = fn(&PortCounters) -> u64;
    let per_port: [(&str, &str, &str, Read); 2] = [
        (
            CONNECTIONS,
            "counter",
            "Connections (TCP) and flows (UDP) accepted, by service and port",
            |c| c.connections.load(Ordering::Relaxed),
        ),
        (
            ACTIVE,
            "gauge",
            "Connections and flows open now, by service and port",
            |c| c.active.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, read) in per_port {
        header(out, name, kind, help);
        for (service, port, counters) in &report.ports {
            let service = escape(service);
            let _ = writeln!(
                out,
                "{name}{{service=\"{service}\",port=\"{port}\"}} {}",
                read(counters)
            );
        }
    }
    header(
        out,
        BACKEND_UP,
        "gauge",
        "1 when the endpoint takes new connections (ready and passing checks), else 0",
    );
    for pool in &report.pools {
        let key = escape(pool.key());
        for endpoint in &pool.backends().endpoints {
            let up = u8::from(endpoint.is_ready(pool.key(), verdicts));
            let _ = writeln!(
                out,
                "{BACKEND_UP}{{service=\"{key}\",endpoint=\"{}\"}} {up}",
                endpoint.ip
            );
        }
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("default/web"), "default/web");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn port_series_are_rendered_with_help_and_type() {
        let counters = Arc::new(PortCounters::default());
        counters.accepted();
        counters.accepted();
        counters.opened();
        counters.opened();
        counters.closed();
        let report = Report {
            ports: vec![("default/web".into(), 80, counters)],
            pools: Vec::new(),
        };
        let mut out = String::new();
        render(&report, &HealthVerdicts::default(), &mut out);
        assert!(out.contains("# TYPE dockline_proxy_connections_total counter\n"));
        assert!(
            out.contains(
                "dockline_proxy_connections_total{service=\"default/web\",port=\"80\"} 2\n"
            )
        );
        assert!(out.contains("# TYPE dockline_proxy_active_connections gauge\n"));
        assert!(out.contains(
            "dockline_proxy_active_connections{service=\"default/web\",port=\"80\"} 1\n"
        ));
        assert!(out.contains("# TYPE dockline_proxy_backend_up gauge\n"));
    }
}
