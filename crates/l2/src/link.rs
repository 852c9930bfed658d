//! One announce interface: its name, its MAC and the two packet sockets the announcer reads
//! and writes on it (ARP, and IPv6 neighbour solicitations).

use std::net::IpAddr;

use crate::error::L2Error;
use crate::frame::Mac;
use crate::socket::{PacketSocket, interface};

/// An announce interface with its sockets open.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) name: String,
    pub(crate) mac: Mac,
    pub(crate) arp: PacketSocket,
    pub(crate) neighbor_discovery: PacketSocket,
}

impl Link {
    /// Opens the ARP and the neighbour-solicitation sockets on interface `name`.
    pub(crate) fn bind(name: &str) -> Result<Self, L2Error> {
        let (index, mac) = interface(name).map_err(|e| L2Error::Interface(name.to_owned(), e))?;
        let socket =
            |r: std::io::Result<PacketSocket>| r.map_err(|e| L2Error::Socket(name.to_owned(), e));
        Ok(Link {
            name: name.to_owned(),
            mac,
            arp: socket(PacketSocket::arp(index))?,
            neighbor_discovery: socket(PacketSocket::neighbor_discovery(index))?,
        })
    }

    /// The socket that carries frames about `vip`: ARP for IPv4, NDP for IPv6.
    pub(crate) fn socket_for(&self, vip: IpAddr) -> &PacketSocket {
        match vip {
            IpAddr::V4(_) => &self.arp,
            IpAddr::V6(_) => &self.neighbor_discovery,
        }
    }
}
