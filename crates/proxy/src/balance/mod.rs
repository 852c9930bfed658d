//! Picking an endpoint for a new connection or flow: round-robin, least-connections or
//! Maglev. Pure functions over the candidates; the proxy keeps the counters.

pub(crate) mod maglev;

use std::net::IpAddr;

/// Round-robin: the `turn`-th pick (a counter the caller increments) over `n` candidates.
pub(crate) fn round_robin(turn: usize, n: usize) -> usize {
    turn % n
}

/// Least-connections: the candidate with the fewest `active` connections; ties go round
/// the candidates from `turn` so equal endpoints share the load.
pub(crate) fn least_connections(active: &[usize], turn: usize) -> usize {
    let n = active.len();
    (0..n)
        .map(|i| (turn + i) % n)
        .min_by_key(|&i| active[i])
        .unwrap_or(0)
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

    #[test]
    fn least_connections_prefers_idle_and_rotates_ties() {
        assert_eq!(least_connections(&[3, 1, 2], 0), 1);
        assert_eq!(least_connections(&[0, 0, 0], 0), 0);
        assert_eq!(least_connections(&[0, 0, 0], 1), 1);
        assert_eq!(least_connections(&[0, 0, 5], 2), 0);
    }

    #[test]
    fn maglev_keeps_a_client_on_its_endpoint() {
        let table = maglev::Table::new(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let client: IpAddr = "192.168.1.7".parse().unwrap();
        let first = maglev(&table, client);
        assert!((0..10).all(|_| maglev(&table, client) == first));
    }
}
