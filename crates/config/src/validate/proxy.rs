//! `[proxy]`: the timeouts, none of which may be 0.

use super::Collector;
use crate::schema::Config;

pub(super) fn check_proxy(config: &Config, problems: &mut Collector) {
    let proxy = &config.proxy;
    for (key, value) in [
        ("connect_timeout_ms", proxy.connect_timeout_ms),
        ("idle_timeout_s", proxy.idle_timeout_s),
        ("udp_idle_timeout_s", proxy.udp_idle_timeout_s),
    ] {
        if value == 0 {
            problems.add(format!("proxy.{key}"), "must be above 0");
        }
    }
}
