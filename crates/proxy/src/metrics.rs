//! The proxy's metrics, described at start-up; handles are made once per label set and
//! kept, never formatted per packet.

use metrics::{Counter, Gauge};

pub const CONNECTIONS: &str = "dockline_proxy_connections_total";
pub const ACTIVE: &str = "dockline_proxy_active_connections";
pub const BYTES: &str = "dockline_proxy_bytes_total";
pub const BACKEND_UP: &str = "dockline_proxy_backend_up";
pub const CONNECT_ERRORS: &str = "dockline_proxy_connect_errors_total";
pub const REFUSED: &str = "dockline_proxy_refused_total";
pub const LISTEN_ERRORS: &str = "dockline_proxy_listen_errors_total";

pub fn describe() {
    metrics::describe_counter!(
        CONNECTIONS,
        "Connections (TCP) and flows (UDP) accepted, by service and port"
    );
    metrics::describe_gauge!(
        ACTIVE,
        "Connections and flows open now, by service and port"
    );
    metrics::describe_counter!(
        BYTES,
        metrics::Unit::Bytes,
        "Bytes forwarded, by direction (to_backend, to_client)"
    );
    metrics::describe_gauge!(
        BACKEND_UP,
        "1 when the endpoint takes new connections (ready and passing checks), else 0"
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
pub struct Global {
    pub to_backend: Counter,
    pub to_client: Counter,
    pub connect_errors: Counter,
    pub no_endpoint: Counter,
    pub over_limit: Counter,
    pub listen_errors: Counter,
}

impl Global {
    pub fn new() -> Global {
        Global {
            to_backend: metrics::counter!(BYTES, "direction" => "to_backend"),
            to_client: metrics::counter!(BYTES, "direction" => "to_client"),
            connect_errors: metrics::counter!(CONNECT_ERRORS),
            no_endpoint: metrics::counter!(REFUSED, "reason" => "no_endpoint"),
            over_limit: metrics::counter!(REFUSED, "reason" => "max_connections"),
            listen_errors: metrics::counter!(LISTEN_ERRORS),
        }
    }
}

/// Handles of one service port.
#[derive(Debug, Clone)]
pub struct PerPort {
    pub connections: Counter,
    pub active: Gauge,
}

impl PerPort {
    pub fn new(service: &str, port: u16) -> PerPort {
        let labels = [("service", service.to_owned()), ("port", port.to_string())];
        PerPort {
            connections: metrics::counter!(CONNECTIONS, &labels),
            active: metrics::gauge!(ACTIVE, &labels),
        }
    }
}
