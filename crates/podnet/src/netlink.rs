//! The thin rtnetlink driver: dockline's pod routes in the main table, and the networks
//! this node is directly connected to.
//!
//! Pod routes carry dockline's protocol number (215, as the local routes of
//! `dockline-routes`, which keeps to the `local` table), so `ip route show proto 215` lists
//! them and a restart finds and replaces what an earlier run left.

use std::collections::BTreeSet;
use std::net::IpAddr;

use dockline_routes::{PROTOCOL, is_dockline_route, list_routes, route_address};
use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{
    RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::PodNetError;
use crate::plan::PodRoute;

/// The kernel's main table.
const MAIN_TABLE: u32 = 254;

#[derive(Debug)]
pub(crate) struct Netlink {
    handle: Handle,
}

impl Netlink {
    pub(crate) fn connect() -> Result<Self, PodNetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(PodNetError::Netlink)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The networks of this node's addresses (`172.30.0.11/24` gives `172.30.0.0/24`).
    pub(crate) async fn connected(&self) -> Result<Vec<IpNet>, PodNetError> {
        let mut found = Vec::new();
        let mut addresses = self.handle.address().get().execute();
        while let Some(message) = addresses
            .try_next()
            .await
            .map_err(|e| PodNetError::Kernel("cannot list addresses".into(), e))?
        {
            let prefix = message.header.prefix_len;
            let address = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(net) = address.and_then(|ip| IpNet::new(ip, prefix).ok()) {
                found.push(net.trunc());
            }
        }
        Ok(found)
    }

    /// Dockline's pod routes now in the main table.
    pub(crate) async fn list(&self) -> Result<BTreeSet<PodRoute>, PodNetError> {
        list_routes(&self.handle, ours)
            .await
            .map_err(|e| PodNetError::Kernel("cannot list routes".into(), e))
    }

    /// Adds (or replaces) a route, through `device` when given (the overlay), else through
    /// whatever interface reaches the gateway (Classic).
    pub(crate) async fn add(
        &self,
        route: PodRoute,
        device: Option<u32>,
    ) -> Result<(), PodNetError> {
        let mut message = message(route)?;
        if let Some(index) = device {
            message.attributes.push(RouteAttribute::Oif(index));
        }
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|e| PodNetError::Kernel(format!("cannot add the route {route}"), e))
    }

    pub(crate) async fn remove(&self, route: PodRoute) -> Result<(), PodNetError> {
        self.handle
            .route()
            .del(message(route)?)
            .execute()
            .await
            .map_err(|e| PodNetError::Kernel(format!("cannot remove the route {route}"), e))
    }
}

fn message(route: PodRoute) -> Result<RouteMessage, PodNetError> {
    Ok(RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.destination.network(), route.destination.prefix_len())
        .map_err(|e| PodNetError::Invalid(route, e.to_string()))?
        .gateway(route.gateway)
        .map_err(|e| PodNetError::Invalid(route, e.to_string()))?
        .table_id(MAIN_TABLE)
        .protocol(RouteProtocol::Other(PROTOCOL))
        .scope(RouteScope::Universe)
        .kind(RouteType::Unicast)
        .build())
}

/// The pod route `route` is, if it is one of dockline's in the main table.
fn ours(route: &RouteMessage) -> Option<PodRoute> {
    if !is_dockline_route(route, RouteType::Unicast, MAIN_TABLE) {
        return None;
    }
    let (mut destination, mut gateway) = (None, None);
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Destination(d) => destination = route_address(d),
            RouteAttribute::Gateway(g) => gateway = route_address(g),
            _ => {}
        }
    }
    let prefix = route.header.destination_prefix_length;
    Some(PodRoute {
        destination: IpNet::new(destination?, prefix).ok()?,
        gateway: gateway?,
    })
}
