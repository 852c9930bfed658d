//! The kernel settings the announcer makes on its interfaces.
//!
//! The routes component sets strict ARP on `all`, so the kernel answers no VIP on any
//! interface. The announce interfaces get the same values of their own as well: they are
//! where a kernel answer would clash with the owner's, and the values stay right there
//! even if someone puts `all` back by hand. Recording, restoring at stop and after a kill
//! are [`dockline_routes::sysctl`]'s.

use std::path::PathBuf;

use dockline_routes::sysctl::{SysctlError, Sysctls};

/// Values to write, per interface: answer only for addresses of the receiving interface,
/// and never use a VIP as the sender of the kernel's own ARP requests.
const SETTINGS: [(&str, &str); 2] = [("arp_ignore", "1"), ("arp_announce", "2")];

/// Sets the ARP settings on every interface; they come back when the result is dropped.
pub(crate) fn apply(interfaces: &[String]) -> Result<Sysctls, SysctlError> {
    let wanted: Vec<(PathBuf, String)> = interfaces
        .iter()
        .flat_map(|interface| {
            SETTINGS.iter().map(move |(key, value)| {
                (
                    PathBuf::from(format!("/proc/sys/net/ipv4/conf/{interface}/{key}")),
                    (*value).to_owned(),
                )
            })
        })
        .collect();
    Sysctls::apply("l2", &wanted)
}
