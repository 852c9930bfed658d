//! What a reload changed in the services: components that keep state per service (the DNS
//! zone, say) apply these instead of rebuilding everything, so that a reload that touches
//! one service of 10,000 costs about one service.

use crate::Service;

/// The services of two snapshots that differ, matched by `namespace/name`; each list in
/// snapshot order (sorted by namespace, then name).
#[derive(Debug, Default, PartialEq)]
pub struct ServiceDiff<'a> {
    /// In the old snapshot only.
    pub removed: Vec<&'a Service>,
    /// In the new snapshot only.
    pub added: Vec<&'a Service>,
    /// In both, with some field changed: (old, new).
    pub changed: Vec<(&'a Service, &'a Service)>,
}

impl<'a> ServiceDiff<'a> {
    /// Whether the two lists hold the same services.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.changed.is_empty()
    }

    /// How many services differ.
    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len() + self.changed.len()
    }

    /// The old version of every service that went or changed, in snapshot order.
    pub fn before(&self) -> impl Iterator<Item = &'a Service> + '_ {
        self.removed
            .iter()
            .copied()
            .chain(self.changed.iter().map(|(old, _)| *old))
    }

    /// The new version of every service that came or changed.
    pub fn after(&self) -> impl Iterator<Item = &'a Service> + '_ {
        self.added
            .iter()
            .copied()
            .chain(self.changed.iter().map(|(_, new)| *new))
    }
}

/// The difference between `old` and `new`, both sorted by (namespace, name) as
/// [`crate::Snapshot::services`] is: one merge walk, no allocation per equal service.
pub fn diff_services<'a>(old: &'a [Service], new: &'a [Service]) -> ServiceDiff<'a> {
    let mut diff = ServiceDiff::default();
    let (mut old, mut new) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (Some(a), Some(b)) => match (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)) {
                std::cmp::Ordering::Less => diff.removed.extend(old.next()),
                std::cmp::Ordering::Greater => diff.added.extend(new.next()),
                std::cmp::Ordering::Equal => {
                    if a != b {
                        diff.changed.push((a, b));
                    }
                    old.next();
                    new.next();
                }
            },
            (Some(_), None) => diff.removed.extend(old.next()),
            (None, Some(_)) => diff.added.extend(new.next()),
            (None, None) => return diff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::snapshot;

    fn names<'a>(services: impl Iterator<Item = &'a Service>) -> Vec<String> {
        services.map(Service::key).collect()
    }

    const BASE: &str = r#"
[[services]]
name = "a"
ports = [{ port = 80 }]
[[services]]
name = "b"
ports = [{ port = 80 }]
[[services]]
name = "c"
ports = [{ port = 80 }]
"#;

    #[test]
    fn equal_snapshots_differ_in_nothing() {
        let (one, two) = (snapshot(BASE), snapshot(BASE));
        let diff = diff_services(&one.services, &two.services);
        assert!(diff.is_empty(), "{diff:?}");
        assert_eq!(diff.len(), 0);
    }

    #[test]
    fn a_changed_port_an_added_and_a_removed_service_are_told_apart() {
        let old = snapshot(BASE);
        let text = BASE.replacen("name = \"a\"", "name = \"a0\"", 1).replacen(
            "port = 80 }]\n[[services]]\nname = \"c\"",
            "port = 81 }]\n[[services]]\nname = \"c\"",
            1,
        ) + "[[services]]\nname = \"d\"\nports = [{ port = 80 }]\n";
        let new = snapshot(&text);
        let diff = diff_services(&old.services, &new.services);
        assert_eq!(names(diff.removed.iter().copied()), ["default/a"]);
        assert_eq!(
            names(diff.added.iter().copied()),
            ["default/a0", "default/d"]
        );
        assert_eq!(diff.changed.len(), 1);
        assert_eq!(diff.changed[0].1.key(), "default/b");
        assert_eq!(diff.changed[0].1.ports[0].port, 81);
        assert_eq!(names(diff.before()), ["default/a", "default/b"]);
        assert_eq!(
            names(diff.after()),
            ["default/a0", "default/d", "default/b"]
        );
        assert_eq!(diff.len(), 4);
    }
}
