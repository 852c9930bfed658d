//! The speaker's errors: what could not be opened or read at bind.

use std::path::PathBuf;

/// Why the BGP speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BgpError {
    /// A port-179 listener could not be opened.
    #[error("cannot listen for BGP on {address}: {error}")]
    Listen {
        /// The address it was to listen on.
        address: &'static str,
        /// The system's reason.
        #[source]
        error: std::io::Error,
    },
    /// A peer's `password_file` could not be read or holds no usable key.
    #[error("bgp password_file {}: {error}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: String,
    },
    /// No `bgp.router_id` and no IPv4 `node.internal_ip` to default it to.
    #[error("bgp.router_id is unset and node.internal_ip is not an IPv4 address")]
    NoRouterId,
}
