//! The cluster component's errors: each names the address or file it concerns.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the cluster component could not bind or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `cluster.gossip.listen` could not be bound.
    #[error("cluster: cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// `cluster.gossip.secret_file` could not be read.
    #[error("cluster: cannot read cluster.gossip.secret_file {0}: {1}")]
    Secret(PathBuf, std::io::Error),
    /// `cluster.gossip.secret_file` holds nothing but whitespace.
    #[error("cluster: cluster.gossip.secret_file {0} is empty")]
    EmptySecret(PathBuf),
    /// The bound gossip socket failed.
    #[error("cluster: gossip socket: {0}")]
    Io(std::io::Error),
}
