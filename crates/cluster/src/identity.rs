//! The identity each node gossips: its name, gossip address, internal IP and the digest of
//! the config every node must share. foca spreads identities with every membership update,
//! so a digest change (a reload) is a change of identity.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A node as foca knows it; a node that changes any field is a new member to foca.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// `node.name`.
    pub name: String,
    /// The address its gossip socket is bound to.
    pub addr: SocketAddr,
    /// `node.internal_ip`.
    pub internal_ip: IpAddr,
    /// The digest of the config every node must share (cluster ranges, network mode, pools,
    /// services).
    pub shared_digest: String,
    /// The etcd revision of the shared config in force; `None` with a file source.
    pub config_revision: Option<i64>,
    /// Whether the node answers ARP/NDP for the VIPs it owns (`l2.interfaces` set): a node
    /// that does not must own none.
    pub announces_l2: bool,
    /// Grows with every restart and identity change so the newest identity of an address
    /// wins (seconds since the epoch at start, then +1 per change).
    pub bump: u64,
}

impl NodeId {
    /// An identity standing for whoever listens at `addr`: foca accepts an announce to any
    /// identity with the receiver's address, so joining needs no name.
    pub fn placeholder(addr: SocketAddr) -> Self {
        NodeId {
            name: String::new(),
            addr,
            internal_ip: addr.ip(),
            shared_digest: String::new(),
            config_revision: None,
            announces_l2: false,
            bump: 0,
        }
    }
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}
