//! Picking an endpoint for a new connection or flow: round-robin, least-connections or
//! Maglev. Pure functions over the candidates; the proxy keeps the counters.

pub(crate) mod maglev;

use std::net::IpAddr;

/// Round-robin: the `turn`-th pick (a counter the caller increments) over `n` candidates.
pub(crate) fn round_robin(turn: usize, n: usize) -> usize {
    turn % n
}

/// Least-connections: the index of the candidate with the fewest open connections, from
/// `(candidate, open)` pairs over `n` candidates; ties go round the candidates from `turn`
/// so equal endpoints share the load.
pub(crate) fn least_connections<T>(
    candidates: impl Iterator<Item = (T, usize)>,
    n: usize,
    turn: usize,
) -> Option<T> {
    let start = turn % n.max(1);
    // Ordered by open connections, then by distance from `start` going round.
    candidates
        .enumerate()
        .min_by_key(|(i, (_, open))| (*open, (i + n - start) % n))
        .map(|(_, (candidate, _))| candidate)
}

/// Maglev: the candidate the client's address hashes to in `table`.
pub(crate) fn maglev(table: &maglev::Table, client: IpAddr) -> usize {
    table.lookup(maglev::client_hash(client)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let picks: Vec<usize> = (0..6).map(|t| round_robin(t, 3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    fn least(open: &[usize], turn: usize) -> Option<usize> {
        least_connections(open.iter().copied().enumerate(), open.len(), turn)
    }

    #[test]
    fn least_connections_prefers_idle_and_rotates_ties() {
        assert_eq!(least(&[3, 1, 2], 0), Some(1));
        assert_eq!(least(&[0, 0, 0], 0), Some(0));
        assert_eq!(least(&[0, 0, 0], 1), Some(1));
        assert_eq!(least(&[0, 0, 5], 2), Some(0));
        assert_eq!(least(&[0, 0, 0], 4), Some(1));
        assert_eq!(least(&[], 3), None);
    }

    #[test]
    fn maglev_keeps_a_client_on_its_endpoint() {
        let table = maglev::Table::new(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let client: IpAddr = "192.168.1.7".parse().unwrap();
        let first = maglev(&table, client);
        assert!((0..10).all(|_| maglev(&table, client) == first));
    }
}
