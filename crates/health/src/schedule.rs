//! When each endpoint is checked next and what its results in a row make of it: `rise`
//! passes make it ready, `fall` failures make it not ready (HAProxy's rise/fall). Until
//! either happens an endpoint has no verdict, so it counts by the config alone and a
//! restart does not empty a service while the first checks run.
//!
//! Sans-IO: the caller passes `now`, runs the probes [`Checks::due`] hands out and reports
//! each result with [`Checks::record`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dockline_config::HealthCheck;
use dockline_model::HealthVerdicts;

/// One endpoint to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `namespace/name` of the service.
    pub service: String,
    /// The endpoint's address.
    pub ip: IpAddr,
    /// The port probed: the check's `port`, else the service's first `target_port`.
    pub port: u16,
    /// The service's `health_check`.
    pub check: HealthCheck,
}

#[derive(Debug)]
struct Entry {
    probe: Probe,
    next_due: Instant,
    in_flight: bool,
    passes: u32,
    failures: u32,
    verdict: Option<bool>,
}

/// Which endpoint: its service (`namespace/name`) and address.
type Key = (String, IpAddr);

/// The schedule and the rise/fall state of every endpoint to check, keyed by service and
/// address.
#[derive(Debug, Default)]
pub struct Checks {
    entries: BTreeMap<Key, Entry>,
    /// The endpoints not in flight, by when they are due: the next ones are found without
    /// a look at every endpoint (a thousand probes a second each looked at all of them).
    /// An element whose entry has since gone, changed its time or started is stale and
    /// skipped.
    waiting: BTreeSet<(Instant, Key)>,
}

impl Checks {
    /// Follows a reload: new endpoints are checked at once, removed ones are forgotten, and
    /// an endpoint whose check changed starts over.
    pub fn sync(&mut self, probes: Vec<Probe>, now: Instant) {
        let mut next = BTreeMap::new();
        for probe in probes {
            let key = (probe.service.clone(), probe.ip);
            let entry = match self.entries.remove(&key) {
                Some(entry) if entry.probe == probe => entry,
                _ => Entry {
                    probe,
                    next_due: now,
                    in_flight: false,
                    passes: 0,
                    failures: 0,
                    verdict: None,
                },
            };
            next.insert(key, entry);
        }
        self.entries = next;
        self.waiting = (self.entries.iter())
            .filter(|(_, entry)| !entry.in_flight)
            .map(|(key, entry)| (entry.next_due, key.clone()))
            .collect();
    }

    /// The probes to start now; each is due again one interval later.
    pub fn due(&mut self, now: Instant) -> Vec<Probe> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.waiting.first()
            && *at <= now
        {
            let Some((at, key)) = self.waiting.pop_first() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.in_flight || e.next_due != at {
                continue;
            }
            e.in_flight = true;
            e.next_due = now + Duration::from_millis(e.probe.check.interval_ms);
            due.push(e.probe.clone());
        }
        due
    }

    /// When [`Checks::due`] has something next.
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.first().map(|(at, _)| *at)
    }

    /// Counts a result; returns the new verdict when it changed. Results of probes that a
    /// reload removed or changed meanwhile are ignored.
    pub fn record(&mut self, probe: &Probe, passed: bool, now: Instant) -> Option<bool> {
        let key = (probe.service.clone(), probe.ip);
        let entry = self.entries.get_mut(&key)?;
        if entry.probe != *probe {
            return None;
        }
        entry.in_flight = false;
        entry.next_due = entry.next_due.max(now);
        self.waiting.insert((entry.next_due, key));
        let check = &entry.probe.check;
        let flip = if passed {
            entry.failures = 0;
            entry.passes = entry.passes.saturating_add(1);
            entry.passes >= check.rise && entry.verdict != Some(true)
        } else {
            entry.passes = 0;
            entry.failures = entry.failures.saturating_add(1);
            entry.failures >= check.fall && entry.verdict != Some(false)
        };
        flip.then(|| {
            entry.verdict = Some(passed);
            passed
        })
    }

    /// Every verdict reached so far.
    pub fn verdicts(&self) -> HealthVerdicts {
        let mut verdicts = HealthVerdicts::default();
        for ((service, ip), entry) in &self.entries {
            if let Some(passing) = entry.verdict {
                verdicts.set(service, *ip, passing);
            }
        }
        verdicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockline_config::HealthCheckKind;

    fn probe(ip: &str, interval_ms: u64) -> Probe {
        Probe {
            service: "default/web".into(),
            ip: ip.parse().unwrap(),
            port: 80,
            check: HealthCheck {
                kind: HealthCheckKind::Tcp,
                interval_ms,
                timeout_ms: 100,
                rise: 2,
                fall: 3,
                path: None,
                port: None,
            },
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rise_and_fall_need_results_in_a_row() {
        let t0 = Instant::now();
        let mut checks = Checks::default();
        let p = probe("10.0.0.1", 1000);
        checks.sync(vec![p.clone()], t0);
        assert_eq!(checks.due(t0), std::slice::from_ref(&p));
        assert_eq!(checks.record(&p, true, t0), None, "one pass is not enough");
        assert_eq!(checks.verdicts().get("default/web", ip("10.0.0.1")), None);
        assert_eq!(checks.record(&p, true, t0), Some(true));
        assert_eq!(checks.record(&p, true, t0), None, "no change");
        assert_eq!(checks.record(&p, false, t0), None);
        assert_eq!(checks.record(&p, false, t0), None);
        assert_eq!(
            checks.record(&p, true, t0),
            None,
            "a pass resets the failures"
        );
        for _ in 0..2 {
            assert_eq!(checks.record(&p, false, t0), None);
        }
        assert_eq!(checks.record(&p, false, t0), Some(false));
        assert_eq!(
            checks.verdicts().get("default/web", ip("10.0.0.1")),
            Some(false)
        );
    }

    #[test]
    fn probes_are_due_once_per_interval_and_not_while_in_flight() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut checks = Checks::default();
        let p = probe("10.0.0.1", 500);
        checks.sync(vec![p.clone()], t0);
        assert_eq!(checks.due(t0).len(), 1);
        assert_eq!(checks.next_due(), None, "in flight");
        assert!(checks.due(t0 + ms(600)).is_empty(), "still in flight");
        checks.record(&p, true, t0 + ms(100));
        assert_eq!(checks.next_due(), Some(t0 + ms(500)));
        assert!(checks.due(t0 + ms(499)).is_empty());
        assert_eq!(checks.due(t0 + ms(500)).len(), 1);
    }

    #[test]
    fn an_endpoint_is_handed_out_once_however_often_its_results_came() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut checks = Checks::default();
        let probes: Vec<Probe> = (1..=200)
            .map(|i| probe(&format!("10.0.1.{i}"), 1000))
            .collect();
        checks.sync(probes.clone(), t0);
        assert_eq!(checks.due(t0).len(), 200);
        // Results at different times leave earlier schedule marks behind; they are stale.
        checks.record(&probes[0], true, t0 + ms(10));
        checks.record(&probes[0], true, t0 + ms(1200));
        for p in &probes[1..] {
            checks.record(p, true, t0 + ms(10));
        }
        assert_eq!(checks.next_due(), Some(t0 + ms(1000)));
        let due = checks.due(t0 + ms(1100));
        assert_eq!(due.len(), 199);
        assert!(
            !due.contains(&probes[0]),
            "due again at 1200 ms, not at 1000"
        );
        assert_eq!(checks.due(t0 + ms(1300)), std::slice::from_ref(&probes[0]));
        assert!(checks.due(t0 + ms(1300)).is_empty());
    }

    #[test]
    fn reloads_add_drop_and_restart_changed_checks() {
        let t0 = Instant::now();
        let mut checks = Checks::default();
        let a = probe("10.0.0.1", 1000);
        let b = probe("10.0.0.2", 1000);
        checks.sync(vec![a.clone(), b.clone()], t0);
        checks.due(t0);
        for p in [&a, &b] {
            checks.record(p, false, t0);
            checks.record(p, false, t0);
            checks.record(p, false, t0);
        }
        assert_eq!(checks.verdicts().get("default/web", b.ip), Some(false));
        // b goes, c comes, a keeps its verdict.
        let c = probe("10.0.0.3", 1000);
        checks.sync(vec![a.clone(), c.clone()], t0);
        let verdicts = checks.verdicts();
        assert_eq!(verdicts.get("default/web", a.ip), Some(false));
        assert_eq!(verdicts.get("default/web", b.ip), None);
        assert_eq!(checks.due(t0), std::slice::from_ref(&c));
        assert_eq!(checks.record(&b, true, t0), None, "removed: ignored");
        // A changed check starts over without a verdict.
        let mut a2 = a.clone();
        a2.port = 8080;
        checks.sync(vec![a2.clone(), c], t0);
        assert_eq!(checks.verdicts().get("default/web", a.ip), None);
        assert_eq!(
            checks.record(&a, true, t0),
            None,
            "stale result of the old check"
        );
    }
}
