//! Endpoint health: the live input that the health checker owns and every other component
//! reads (DNS answers, proxy backends, VIP eligibility under the Local policy).
//!
//! An endpoint is ready when the config says so and, if its service has a health check, the
//! check's latest verdict passes. Endpoints not (yet) checked count by the config alone, so a
//! restart does not empty every service while the first checks run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::{Endpoint, Service};

/// Check verdicts by service key (`namespace/name`) and endpoint address; `true` = passing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthVerdicts {
    by_service: HashMap<String, HashMap<IpAddr, bool>>,
}

impl HealthVerdicts {
    /// Records the latest verdict of `endpoint` of `service` (`namespace/name`).
    pub fn set(&mut self, service: &str, endpoint: IpAddr, passing: bool) {
        self.by_service
            .entry(service.to_owned())
            .or_default()
            .insert(endpoint, passing);
    }

    /// The verdict, if the endpoint has been checked.
    pub fn get(&self, service: &str, endpoint: IpAddr) -> Option<bool> {
        self.by_service.get(service)?.get(&endpoint).copied()
    }

    /// Drops verdicts of endpoints for which `keep` says no (removed from the config).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, IpAddr) -> bool) {
        self.by_service.retain(|service, endpoints| {
            endpoints.retain(|ip, _| keep(service, *ip));
            !endpoints.is_empty()
        });
    }

    /// Ready by config and by the latest check, if any.
    pub fn is_ready(&self, service: &Service, endpoint: &Endpoint) -> bool {
        endpoint.ready
            && self
                .by_service
                .get(&service.key())
                .and_then(|m| m.get(&endpoint.ip))
                .is_none_or(|passing| *passing)
    }

    /// The endpoints of `service` that take traffic now.
    pub fn ready_endpoints<'s>(&self, service: &'s Service) -> impl Iterator<Item = &'s Endpoint> {
        let verdicts = self.by_service.get(&service.key());
        service.endpoints.iter().filter(move |e| {
            e.ready
                && verdicts
                    .and_then(|m| m.get(&e.ip))
                    .is_none_or(|passing| *passing)
        })
    }
}

/// The verdicts in force, swapped whole by the health checker; readers never lock.
#[derive(Debug)]
pub struct LiveHealth {
    current: ArcSwap<HealthVerdicts>,
    generation: watch::Sender<u64>,
}

impl Default for LiveHealth {
    fn default() -> Self {
        LiveHealth {
            current: ArcSwap::from_pointee(HealthVerdicts::default()),
            generation: watch::Sender::new(0),
        }
    }
}

impl LiveHealth {
    /// The verdicts in force now.
    pub fn load(&self) -> Arc<HealthVerdicts> {
        self.current.load_full()
    }

    /// Publishes new verdicts if they differ from the ones in force.
    pub fn publish(&self, next: HealthVerdicts) {
        if *self.current.load_full() != next {
            self.current.store(Arc::new(next));
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// A receiver that sees a change after every publish that changed something.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockline_config::{ServiceType, TrafficPolicy};

    fn service(endpoints: &[(&str, bool)]) -> Service {
        Service {
            namespace: "default".into(),
            name: "web".into(),
            kind: ServiceType::ClusterIP,
            cluster_ip: None,
            headless: true,
            load_balancer_ip: None,
            pool: None,
            external_traffic_policy: TrafficPolicy::Cluster,
            external_name: None,
            publish_not_ready_addresses: false,
            ports: Vec::new(),
            health_check: None,
            load_balancing: Default::default(),
            max_connections: None,
            proxy_protocol: Default::default(),
            endpoints: endpoints
                .iter()
                .map(|(ip, ready)| Endpoint {
                    ip: ip.parse().unwrap(),
                    node: None,
                    hostname: None,
                    ready: *ready,
                })
                .collect(),
        }
    }

    #[test]
    fn unchecked_endpoints_follow_the_config_and_checks_can_only_take_them_out() {
        let svc = service(&[("10.0.0.1", true), ("10.0.0.2", true), ("10.0.0.3", false)]);
        let mut verdicts = HealthVerdicts::default();
        let ready = |v: &HealthVerdicts| -> Vec<String> {
            v.ready_endpoints(&svc).map(|e| e.ip.to_string()).collect()
        };
        assert_eq!(ready(&verdicts), ["10.0.0.1", "10.0.0.2"]);
        verdicts.set("default/web", "10.0.0.2".parse().unwrap(), false);
        verdicts.set("default/web", "10.0.0.3".parse().unwrap(), true);
        assert_eq!(ready(&verdicts), ["10.0.0.1"]);
        assert!(
            !verdicts.is_ready(&svc, &svc.endpoints[2]),
            "config says not ready"
        );
    }

    #[test]
    fn publish_wakes_subscribers_only_on_change() {
        let live = LiveHealth::default();
        let mut rx = live.subscribe();
        live.publish(HealthVerdicts::default());
        assert!(!rx.has_changed().unwrap());
        let mut v = HealthVerdicts::default();
        v.set("default/web", "10.0.0.1".parse().unwrap(), false);
        live.publish(v);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        let mut v = (*live.load()).clone();
        v.retain(|_, _| false);
        live.publish(v);
        assert_eq!(
            live.load().get("default/web", "10.0.0.1".parse().unwrap()),
            None
        );
    }
}
