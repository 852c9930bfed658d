//! dockline's pod network: how pods on one node reach pods on another.
//!
//! Two modes, chosen by `network.tunnel_mode` and switched on reload:
//! - Classic: a route per peer's pod range via the peer's internal IP (one L2 segment);
//! - VXLAN: a TAP device and a userspace VTEP (RFC 7348) over UDP, with a route per peer's
//!   pod range via the peer's overlay address, so nodes on different segments share one pod
//!   network.
//!
//! Both modes compute their routes from the same peer list ([`plan`]), which is why they
//! live in one crate. The protocol parts ([`vxlan`]) take bytes and `now` and do no I/O.

#![warn(missing_docs, unreachable_pub)]

pub mod plan;
pub mod vxlan;
