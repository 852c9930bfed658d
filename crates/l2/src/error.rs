//! The crate's error type.

use std::path::PathBuf;

/// Why the announcer could not start.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// An `l2.interfaces` entry could not be read from sysfs.
    #[error("l2: interface {0}: {1}")]
    Interface(String, std::io::Error),
    /// A packet socket could not be opened or bound on the interface.
    #[error("l2: cannot open a packet socket on {0}: {1}")]
    Socket(String, std::io::Error),
    /// An ARP sysctl of an announce interface could not be read or written.
    #[error("l2: cannot set {}: {error}", path.display())]
    Sysctl {
        /// The sysctl's file under /proc/sys.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}
