//! The kernel settings the announcer changes on its interfaces, and their restoration.
//!
//! Every node has each VIP as a local address (the routes component), so the kernel would
//! answer ARP for it on every node. On the announce interfaces dockline sets
//! `arp_ignore = 1` (answer only for addresses configured on the receiving interface: the
//! VIPs are not) and `arp_announce = 2` (never use a VIP as the sender address of the
//! kernel's own ARP requests). The kernel applies the larger of `all` and the interface's
//! value, so the interfaces alone are enough; `all` is left as it is because it would
//! change how the host answers on interfaces dockline does not manage. The old values are
//! restored when the daemon stops.

use std::io;
use std::path::PathBuf;

/// Values to write, per interface.
const SETTINGS: [(&str, &str); 2] = [("arp_ignore", "1"), ("arp_announce", "2")];

/// Settings changed by dockline with the values they had before.
#[derive(Debug, Default)]
pub(crate) struct HostChanges {
    saved: Vec<(PathBuf, String)>,
}

fn path(interface: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv4/conf/{interface}/{key}"))
}

impl HostChanges {
    /// Applies the settings to every interface; on error the ones already made are undone.
    pub(crate) fn apply(interfaces: &[String]) -> Result<Self, (PathBuf, io::Error)> {
        let mut changes = HostChanges::default();
        for interface in interfaces {
            for (key, value) in SETTINGS {
                let p = path(interface, key);
                let old = match std::fs::read_to_string(&p) {
                    Ok(old) => old.trim().to_owned(),
                    Err(e) => {
                        changes.restore();
                        return Err((p, e));
                    }
                };
                if old == value {
                    continue;
                }
                if let Err(e) = std::fs::write(&p, value) {
                    changes.restore();
                    return Err((p, e));
                }
                changes.saved.push((p, old));
            }
        }
        Ok(changes)
    }

    /// Writes back the values found at start.
    fn restore(&mut self) {
        for (p, old) in self.saved.drain(..).rev() {
            if let Err(error) = std::fs::write(&p, &old) {
                tracing::warn!(path = %p.display(), %error, "l2: cannot restore a sysctl");
            }
        }
    }
}

/// Restored however the announcer ends: stopped, failed or aborted after the grace period.
impl Drop for HostChanges {
    fn drop(&mut self) {
        self.restore();
    }
}
