//! The VXLAN tunnel endpoint without I/O (RFC 7348): what to do with a UDP payload received
//! from a node, and where and how to send a frame read from the device. The caller owns
//! the sockets and the clock and passes `now`.

#[cfg(test)]
mod captured;
pub mod fdb;
pub mod flow;
pub mod header;

use std::net::IpAddr;
use std::time::Instant;

pub use fdb::{Destinations, Fdb, MAX_AGE, Mac};
pub use header::HEADER_LEN;

/// Why a received UDP payload was not delivered to the device; each is counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than a VXLAN header and an Ethernet header.
    TooShort,
    /// The I flag (VNI valid) is not set.
    NoVniFlag,
    /// A reserved bit is set (Linux drops these too).
    ReservedBits,
    /// The VNI is not this overlay's.
    OtherVni,
    /// The sender is not a known node.
    UnknownVtep,
}

impl DropReason {
    /// Every reason, for metrics described and rendered up front.
    pub const ALL: [DropReason; 5] = [
        DropReason::TooShort,
        DropReason::NoVniFlag,
        DropReason::ReservedBits,
        DropReason::OtherVni,
        DropReason::UnknownVtep,
    ];

    /// The `reason` label value.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::NoVniFlag => "no_i_flag",
            DropReason::ReservedBits => "reserved_bits",
            DropReason::OtherVni => "other_vni",
            DropReason::UnknownVtep => "unknown_vtep",
        }
    }
}

/// How to send one frame read from the device.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// The VXLAN header to put in front of the frame.
    pub header: [u8; HEADER_LEN],
    /// The UDP source port, from the inner flow.
    pub source_port: u16,
    /// The VTEPs to send a copy to.
    pub to: Destinations<'a>,
}

/// One VXLAN segment's endpoint: its VNI and forwarding table.
#[derive(Debug)]
pub struct Vtep {
    vni: u32,
    fdb: Fdb,
}

impl Vtep {
    /// An endpoint of `vni` with an empty table.
    pub fn new(vni: u32) -> Self {
        Vtep {
            vni,
            fdb: Fdb::new(MAX_AGE),
        }
    }

    /// The forwarding table, to seed from membership and to read for status.
    pub fn fdb(&mut self) -> &mut Fdb {
        &mut self.fdb
    }

    /// The inner frame of a payload received from `from`, its source MAC learned; or why it
    /// is dropped. Checked in order: length, flags, VNI, then the sender.
    pub fn receive<'a>(
        &mut self,
        from: IpAddr,
        payload: &'a [u8],
        now: Instant,
    ) -> Result<&'a [u8], DropReason> {
        let (vni, frame) = header::decode(payload)?;
        if vni != self.vni {
            return Err(DropReason::OtherVni);
        }
        if !self.fdb.knows(from) {
            return Err(DropReason::UnknownVtep);
        }
        self.fdb.learn(mac_at(frame, 6), from, now);
        Ok(frame)
    }

    /// Where and how to send `frame`; `None` when it is too short to carry a destination.
    pub fn transmit(&self, frame: &[u8], now: Instant) -> Option<Transmit<'_>> {
        if frame.len() < header::ETHERNET_HEADER_LEN {
            return None;
        }
        Some(Transmit {
            header: header::encode(self.vni),
            source_port: flow::source_port(frame),
            to: self.fdb.destinations(mac_at(frame, 0), now),
        })
    }
}

/// The MAC at `offset` of a frame at least an Ethernet header long.
fn mac_at(frame: &[u8], offset: usize) -> Mac {
    let mut mac = [0; 6];
    mac.copy_from_slice(&frame[offset..offset + 6]);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 31, 9, 1));
    const KERNEL_B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 31, 9, 2));
    const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 66));
    const MAC_A: Mac = [2, 0, 0, 0, 0, 1];
    const MAC_B: Mac = [2, 0, 0, 0, 0, 2];

    fn vtep() -> Vtep {
        let mut vtep = Vtep::new(42);
        vtep.fdb().set_vteps([(KERNEL_B, MAC_B)]);
        vtep
    }

    #[test]
    fn the_kernels_arp_exchange_is_accepted_and_teaches_the_sender() {
        let mut vtep = Vtep::new(42);
        vtep.fdb().set_vteps([(KERNEL_A, [2, 0x4c, 0, 0, 0, 9])]);
        let now = Instant::now();
        let frame = vtep.receive(KERNEL_A, captured::ARP_REQUEST, now).unwrap();
        assert_eq!(frame, &captured::ARP_REQUEST[HEADER_LEN..]);
        // The reply to the learned MAC goes to its VTEP only.
        let reply = &captured::ARP_REPLY[HEADER_LEN..];
        let transmit = vtep.transmit(reply, now).unwrap();
        assert_eq!(transmit.to.collect::<Vec<_>>(), [KERNEL_A]);
        assert_eq!(transmit.header, captured::ARP_REPLY[..HEADER_LEN]);
    }

    #[test]
    fn a_broadcast_goes_to_every_vtep_and_a_seeded_mac_to_one() {
        let mut vtep = vtep();
        vtep.fdb().set_vteps([(KERNEL_A, MAC_A), (KERNEL_B, MAC_B)]);
        let now = Instant::now();
        let arp = &captured::ARP_REQUEST[HEADER_LEN..];
        let to: Vec<_> = vtep.transmit(arp, now).unwrap().to.collect();
        assert_eq!(to, [KERNEL_A, KERNEL_B]);
        let echo = &captured::ICMP_REQUEST[HEADER_LEN..];
        let to: Vec<_> = vtep.transmit(echo, now).unwrap().to.collect();
        assert_eq!(to, [KERNEL_B]);
        assert!(vtep.transmit(&echo[..13], now).is_none());
    }

    #[test]
    fn each_bad_payload_is_dropped_with_its_reason() {
        let mut vtep = vtep();
        let now = Instant::now();
        let good = captured::ICMP_REQUEST;
        assert!(vtep.receive(KERNEL_B, good, now).is_ok());
        assert_eq!(
            vtep.receive(STRANGER, good, now),
            Err(DropReason::UnknownVtep)
        );
        let mut other_vni = good.to_vec();
        other_vni[6] = 43;
        assert_eq!(
            vtep.receive(KERNEL_B, &other_vni, now),
            Err(DropReason::OtherVni)
        );
        let mut no_flag = good.to_vec();
        no_flag[0] = 0;
        assert_eq!(
            vtep.receive(KERNEL_B, &no_flag, now),
            Err(DropReason::NoVniFlag)
        );
        assert_eq!(
            vtep.receive(KERNEL_B, &good[..20], now),
            Err(DropReason::TooShort)
        );
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "too_short",
                "no_i_flag",
                "reserved_bits",
                "other_vni",
                "unknown_vtep"
            ]
        );
    }
}
