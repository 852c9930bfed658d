//! Fixtures for tests in the crates that read a [`Snapshot`]: a snapshot from a few lines
//! of TOML, built the way the daemon builds one, so unit tests start from the same desired
//! state a real config file gives.

use crate::{Snapshot, build};

/// Parses `toml` (no `DOCKLINE__` environment overrides), validates it and builds its
/// snapshot.
///
/// Panics with every problem, one a line as `dockline check` prints them, when the text
/// does not parse, validate or build: a fixture that cannot be built is a broken test.
pub fn snapshot(toml: &str) -> Snapshot {
    dockline_config::parse("test.toml", toml, std::iter::empty())
        .and_then(build)
        .unwrap_or_else(|problems| panic!("the test's config is invalid:\n{problems}"))
}

#[cfg(test)]
mod tests {
    use super::snapshot;

    #[test]
    fn builds_the_snapshot_of_a_few_lines() {
        let built = snapshot(
            "[node]\nname = \"node-7\"\n[[services]]\nname = \"web\"\nports = [{ port = 80 }]\n",
        );
        assert_eq!(built.node.name, "node-7");
        assert_eq!(built.services.len(), 1);
        assert!(
            built.services[0].cluster_ip.is_some(),
            "allocated as the daemon would"
        );
    }

    #[test]
    #[should_panic(expected = "services[0].ports[0].node_port: 80 is outside the NodePort range")]
    fn panics_with_the_problems_of_an_invalid_config() {
        snapshot(
            "[[services]]\nname = \"web\"\ntype = \"NodePort\"\nports = [{ port = 80, node_port = 80 }]\n",
        );
    }
}
