//! Setting up one proxied TCP connection, sans-IO: which endpoint to connect to (a lease
//! from the service's pool), what a connect that failed or timed out leads to (another
//! ready endpoint not tried yet, up to [`ATTEMPTS`], else a reset of the client), what each
//! outcome counts, and the PROXY protocol header that goes to the endpoint first.
//!
//! The driver (tcp.rs) opens the sockets, waits until the deadlines handed out here and
//! reports each outcome; the caller passes `now`. A lease travels inside the values: an
//! [`Attempt`] or an [`Introduction`] holds it, and a reported failure consumes them, so
//! the lease is released exactly once on every path, a dropped driver included.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use dockline_config::ProxyProtocol;
use dockline_model::HealthVerdicts;

use crate::data_plane::Route;
use crate::pool::{Lease, Refusal};
use crate::proxy_protocol;

/// Endpoints tried for one connection before giving up.
pub(crate) const ATTEMPTS: usize = 3;

/// What a setup counts, each the moment it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// No lease for the connection.
    Refused(Refusal),
    /// A connect failed or timed out, or the PROXY protocol header could not be sent.
    ConnectError,
    /// No socket to connect with.
    NoSocket,
}

/// Where the counts go: the proxy's metrics, or a list in tests.
pub(crate) trait Tally {
    /// Adds one to the counter of `what`.
    fn count(&self, what: Count);
}

/// Why the client is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// No ready endpoint left untried, or the service is at `max_connections`.
    Refused(Refusal),
    /// [`ATTEMPTS`] endpoints failed to connect.
    Attempts,
    /// No socket could be opened to connect with.
    NoSocket,
    /// The PROXY protocol header could not be sent.
    Header,
}

/// One connect to make: to `target` until `deadline`, holding the endpoint's lease.
#[derive(Debug)]
pub(crate) struct Attempt {
    lease: Lease,
    pub(crate) target: SocketAddr,
    pub(crate) deadline: Instant,
}

/// A connect that succeeded: what goes to the endpoint before the client's bytes.
#[derive(Debug)]
pub(crate) enum Connected {
    /// Nothing: forward at once while the lease is held.
    Forward(Lease),
    /// The PROXY protocol header first.
    Introduce(Introduction),
}

/// A connected endpoint that is owed a PROXY protocol header.
#[derive(Debug)]
pub(crate) struct Introduction {
    lease: Lease,
    version: ProxyProtocol,
    client: SocketAddr,
}

impl Introduction {
    /// The header for the client, which connected to `service`: the accepted socket's own
    /// address, as a listener on every address (a NodePort) only knows the wildcard.
    pub(crate) fn header(&self, service: SocketAddr) -> Vec<u8> {
        proxy_protocol::header(self.version, self.client, service)
    }

    /// The header went out: forward while the lease is held.
    pub(crate) fn sent(self) -> Lease {
        self.lease
    }
}

/// The setup of one connection from `client` to the service port of `route`.
#[derive(Debug)]
pub(crate) struct Setup<'a, T> {
    route: &'a Route,
    health: &'a HealthVerdicts,
    tally: &'a T,
    client: SocketAddr,
    /// Endpoints that failed to connect, in `tried[..failures]`; kept inline, as the pool
    /// is asked to skip them on every retry.
    tried: [IpAddr; ATTEMPTS],
    failures: usize,
}

impl<'a, T: Tally> Setup<'a, T> {
    /// Starts the setup of a connection accepted from `client`; `health` is read once for
    /// every attempt.
    pub(crate) fn new(
        route: &'a Route,
        health: &'a HealthVerdicts,
        tally: &'a T,
        client: SocketAddr,
    ) -> Self {
        Setup {
            route,
            health,
            tally,
            client,
            tried: [IpAddr::V4(Ipv4Addr::UNSPECIFIED); ATTEMPTS],
            failures: 0,
        }
    }

    /// The first connect to make, or why there is none.
    pub(crate) fn start(&mut self, now: Instant) -> Result<Attempt, GiveUp> {
        self.attempt(now)
    }

    /// The connect of `attempt` failed, or was still pending at its deadline (`now`): the
    /// next connect, to a ready endpoint not tried yet, or the end.
    pub(crate) fn connect_failed(
        &mut self,
        attempt: Attempt,
        now: Instant,
    ) -> Result<Attempt, GiveUp> {
        self.tally.count(Count::ConnectError);
        self.tried[self.failures] = attempt.lease.endpoint;
        self.failures += 1;
        // Released before the next lease, which may then go by the fewest connections.
        drop(attempt);
        if self.failures >= ATTEMPTS {
            return Err(GiveUp::Attempts);
        }
        self.attempt(now)
    }

    /// No socket could be opened for `attempt`: this node is out of descriptors or memory,
    /// which is neither counted against the endpoint nor helped by trying another.
    pub(crate) fn no_socket(&mut self, attempt: Attempt) -> GiveUp {
        drop(attempt);
        self.tally.count(Count::NoSocket);
        GiveUp::NoSocket
    }

    /// The connect of `attempt` succeeded.
    pub(crate) fn connected(&mut self, attempt: Attempt) -> Connected {
        match self.route.frontend.proxy_protocol {
            ProxyProtocol::None => Connected::Forward(attempt.lease),
            version => Connected::Introduce(Introduction {
                lease: attempt.lease,
                version,
                client: self.client,
            }),
        }
    }

    /// The PROXY protocol header could not be sent.
    pub(crate) fn header_failed(&mut self, introduction: Introduction) -> GiveUp {
        drop(introduction);
        self.tally.count(Count::ConnectError);
        GiveUp::Header
    }

    fn attempt(&mut self, now: Instant) -> Result<Attempt, GiveUp> {
        let route = self.route;
        let lease = route
            .pool
            .lease(
                self.client.ip(),
                route.frontend.external,
                &route.settings.node,
                self.health,
                &self.tried[..self.failures],
            )
            .map_err(|refusal| {
                self.tally.count(Count::Refused(refusal));
                GiveUp::Refused(refusal)
            })?;
        Ok(Attempt {
            target: SocketAddr::new(lease.endpoint, route.frontend.target_port),
            deadline: now + route.settings.limits.connect_timeout,
            lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::data_plane::{Limits, Settings};
    use crate::fixture;
    use crate::frontends::Frontend;
    use crate::pool::Pool;

    /// The connect timeout of the routes below.
    const TIMEOUT: Duration = Duration::from_millis(300);
    const FOUR: &str = r#"endpoints = [{ ip = "10.111.1.1" }, { ip = "10.111.1.2" }, { ip = "10.111.1.3" }, { ip = "10.111.1.4" }]"#;

    /// The counts, in order.
    #[derive(Debug, Default)]
    struct Counted(RefCell<Vec<Count>>);

    impl Tally for Counted {
        fn count(&self, what: Count) {
            self.0.borrow_mut().push(what);
        }
    }

    impl Counted {
        fn taken(&self) -> Vec<Count> {
            self.0.take()
        }
    }

    /// The ClusterIP route of `default/web` with `settings`.
    fn route(settings: &str) -> Route {
        let service = fixture::web(settings);
        let config = dockline_config::Proxy {
            connect_timeout_ms: TIMEOUT.as_millis() as u64,
            ..Default::default()
        };
        Route {
            frontend: Frontend {
                service: service.key().into(),
                port: service.ports[0].port,
                target_port: service.ports[0].target_port,
                external: false,
                proxy_protocol: service.proxy_protocol,
            },
            pool: Pool::new(&service),
            settings: Arc::new(Settings {
                node: "node-1".into(),
                limits: Limits::new(&config),
            }),
            metrics: Arc::default(),
        }
    }

    fn client() -> SocketAddr {
        "192.0.2.7:40000".parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_failed_connect_is_retried_on_another_ready_endpoint_never_the_same() {
        // Maglev sends a client to the same endpoint every time, unless told to skip it.
        let route = route(
            r#"load_balancing = "Maglev"
endpoints = [{ ip = "10.111.1.1" }, { ip = "10.111.1.2", ready = false }, { ip = "10.111.1.3" }, { ip = "10.111.1.4" }]"#,
        );
        let mut health = HealthVerdicts::default();
        health.set("default/web", ip("10.111.1.4"), false);
        let counted = Counted::default();
        let mut setup = Setup::new(&route, &health, &counted, client());
        let start = Instant::now();
        let first = setup.start(start).unwrap();
        assert_eq!(first.deadline, start + TIMEOUT);
        let first_target = first.target;
        // Timed out at its deadline: the next attempt gets a deadline of its own.
        let timed_out = first.deadline;
        let second = setup.connect_failed(first, timed_out).unwrap();
        assert_eq!(second.deadline, timed_out + TIMEOUT);
        let targets = [first_target, second.target];
        let ready = ["10.111.1.1:8080", "10.111.1.3:8080"].map(|a| a.parse().unwrap());
        assert!(
            targets == ready || targets == [ready[1], ready[0]],
            "{targets:?}"
        );
        assert_eq!(counted.taken(), [Count::ConnectError]);
        // Both ready endpoints failed: none is left, the not ready ones are never tried.
        let last = setup.connect_failed(second, timed_out + Duration::from_millis(5));
        assert_eq!(last.unwrap_err(), GiveUp::Refused(Refusal::NoEndpoint));
        assert_eq!(
            counted.taken(),
            [Count::ConnectError, Count::Refused(Refusal::NoEndpoint)]
        );
        assert_eq!(route.pool.leased(), 0);
    }

    #[test]
    fn the_attempts_stop_at_the_limit_and_the_client_is_reset() {
        let route = route(&format!("load_balancing = \"Maglev\"\n{FOUR}"));
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let mut setup = Setup::new(&route, &health, &counted, client());
        let mut now = Instant::now();
        let mut attempt = setup.start(now);
        let mut targets = Vec::new();
        while let Ok(failing) = attempt {
            targets.push(failing.target);
            now += Duration::from_millis(1);
            attempt = setup.connect_failed(failing, now);
        }
        assert_eq!(attempt.unwrap_err(), GiveUp::Attempts);
        assert_eq!(targets.len(), ATTEMPTS);
        targets.sort();
        targets.dedup();
        assert_eq!(targets.len(), ATTEMPTS, "an endpoint was tried twice");
        assert_eq!(counted.taken(), [Count::ConnectError; ATTEMPTS]);
        assert_eq!(route.pool.leased(), 0);
    }

    #[test]
    fn no_ready_endpoint_refuses_with_the_no_endpoint_reason() {
        let route = route(r#"endpoints = [{ ip = "10.111.1.1", ready = false }]"#);
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let mut setup = Setup::new(&route, &health, &counted, client());
        let refused = setup.start(Instant::now()).unwrap_err();
        assert_eq!(refused, GiveUp::Refused(Refusal::NoEndpoint));
        assert_eq!(counted.taken(), [Count::Refused(Refusal::NoEndpoint)]);
        assert_eq!(Refusal::NoEndpoint.reason(), "no_endpoint");
    }

    #[test]
    fn a_service_at_max_connections_refuses_with_the_max_connections_reason() {
        let route = route(&format!("max_connections = 1\n{FOUR}"));
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let now = Instant::now();
        let open = Setup::new(&route, &health, &counted, client()).start(now);
        let mut setup = Setup::new(&route, &health, &counted, client());
        let refused = setup.start(now).unwrap_err();
        assert_eq!(refused, GiveUp::Refused(Refusal::OverLimit));
        assert_eq!(counted.taken(), [Count::Refused(Refusal::OverLimit)]);
        assert_eq!(Refusal::OverLimit.reason(), "max_connections");
        drop(open);
        assert!(setup.start(now).is_ok());
    }

    #[test]
    fn a_lease_is_held_while_forwarding_and_released_once_when_the_connection_ends() {
        let route = route(&format!("load_balancing = \"LeastConnections\"\n{FOUR}"));
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let lease = {
            let mut setup = Setup::new(&route, &health, &counted, client());
            let attempt = setup.start(Instant::now()).unwrap();
            let Connected::Forward(lease) = setup.connected(attempt) else {
                panic!("no PROXY header was asked for");
            };
            lease
        };
        // The setup is over; the connection forwards.
        assert_eq!(route.pool.leased(), 1);
        drop(lease);
        assert_eq!(route.pool.leased(), 0);
        assert_eq!(counted.taken(), []);
    }

    #[test]
    fn a_lease_is_released_once_on_every_failure() {
        let route = route(&format!("proxy_protocol = \"v2\"\n{FOUR}"));
        let health = HealthVerdicts::default();
        let counted = Counted::default();
        let now = Instant::now();
        let setup = || Setup::new(&route, &health, &counted, client());

        let mut failing = setup();
        let attempt = failing.start(now).unwrap();
        let retry = failing.connect_failed(attempt, now + TIMEOUT).unwrap();
        assert_eq!(route.pool.leased(), 1);
        assert_eq!(failing.no_socket(retry), GiveUp::NoSocket);
        assert_eq!(route.pool.leased(), 0);
        assert_eq!(counted.taken(), [Count::ConnectError, Count::NoSocket]);

        let mut mute = setup();
        let attempt = mute.start(now).unwrap();
        let Connected::Introduce(introduction) = mute.connected(attempt) else {
            panic!("the service asks for a PROXY header");
        };
        assert_eq!(mute.header_failed(introduction), GiveUp::Header);
        assert_eq!(route.pool.leased(), 0);
        assert_eq!(counted.taken(), [Count::ConnectError]);
    }

    #[test]
    fn a_lease_is_released_once_when_the_client_goes_away_mid_setup() {
        let route = route(&format!("proxy_protocol = \"v1\"\n{FOUR}"));
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let now = Instant::now();
        let mut connecting = Setup::new(&route, &health, &counted, client());
        let attempt = connecting.start(now).unwrap();
        drop((connecting, attempt));
        assert_eq!(route.pool.leased(), 0);

        let mut introducing = Setup::new(&route, &health, &counted, client());
        let attempt = introducing.start(now).unwrap();
        let introduction = introducing.connected(attempt);
        drop((introducing, introduction));
        assert_eq!(route.pool.leased(), 0);
        assert_eq!(counted.taken(), []);
    }

    #[test]
    fn the_proxy_header_comes_first_when_the_service_asks_for_one() {
        let route = route(&format!("proxy_protocol = \"v1\"\n{FOUR}"));
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let mut setup = Setup::new(&route, &health, &counted, client());
        let attempt = setup.start(Instant::now()).unwrap();
        let endpoint = attempt.target.ip();
        // Connected, but not forwarding yet: the header is owed first.
        let Connected::Introduce(introduction) = setup.connected(attempt) else {
            panic!("the header must come before forwarding");
        };
        let service = "10.222.0.10:80".parse().unwrap();
        assert_eq!(
            introduction.header(service),
            b"PROXY TCP4 192.0.2.7 10.222.0.10 40000 80\r\n"
        );
        let lease = introduction.sent();
        assert_eq!(lease.endpoint, endpoint);
        assert_eq!(route.pool.leased(), 1);
    }

    #[test]
    fn without_a_proxy_header_a_connected_endpoint_forwards_at_once() {
        let route = route(FOUR);
        let (health, counted) = (HealthVerdicts::default(), Counted::default());
        let mut setup = Setup::new(&route, &health, &counted, client());
        let attempt = setup.start(Instant::now()).unwrap();
        let endpoint = attempt.target.ip();
        match setup.connected(attempt) {
            Connected::Forward(lease) => assert_eq!(lease.endpoint, endpoint),
            Connected::Introduce(_) => panic!("no header was asked for"),
        }
    }
}
