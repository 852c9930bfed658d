//! The thin rtnetlink driver: list, add and delete dockline's `local` routes.
//!
//! A route `local ADDR dev lo table local proto 215` (what `ip route add local ADDR/32 dev lo
//! table local proto 215` makes) delivers packets for ADDR to local sockets without adding an
//! interface address, so it shows in no interface and with `arp_ignore=1` the kernel does not
//! answer ARP for it. The protocol number marks the routes as dockline's, so a restart finds
//! and cleans what an earlier run left.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::RoutesError;

/// The `proto` of dockline's routes (`ip route show table local proto 215`).
pub const PROTOCOL: u8 = 215;
/// The kernel's `local` table.
const LOCAL_TABLE: u32 = 255;

#[derive(Debug)]
pub(crate) struct Netlink {
    handle: Handle,
    loopback: u32,
}

impl Netlink {
    pub(crate) async fn connect() -> Result<Self, RoutesError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(RoutesError::Connect)?;
        tokio::spawn(connection);
        let mut links = handle.link().get().match_name("lo").execute();
        let loopback = match links.try_next().await {
            Ok(Some(link)) => link.header.index,
            Ok(None) => return Err(RoutesError::NoLoopback),
            Err(e) => return Err(RoutesError::Netlink("cannot find lo".into(), e)),
        };
        Ok(Netlink { handle, loopback })
    }

    /// The addresses that have a dockline `local` route now.
    pub(crate) async fn list(&self) -> Result<BTreeSet<IpAddr>, RoutesError> {
        list_routes(&self.handle, ours)
            .await
            .map_err(|e| RoutesError::Netlink("cannot list routes".into(), e))
    }

    pub(crate) async fn add(&self, ip: IpAddr) -> Result<(), RoutesError> {
        let route = self.message(ip)?;
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| RoutesError::Netlink(format!("cannot add local route {ip}"), e))
    }

    pub(crate) async fn remove(&self, ip: IpAddr) -> Result<(), RoutesError> {
        let route = self.message(ip)?;
        self.handle
            .route()
            .del(route)
            .execute()
            .await
            .map_err(|e| RoutesError::Netlink(format!("cannot remove local route {ip}"), e))
    }

    fn message(&self, ip: IpAddr) -> Result<RouteMessage, RoutesError> {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Ok(RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, prefix)
            .map_err(|e| RoutesError::Invalid(ip, e.to_string()))?
            .output_interface(self.loopback)
            .table_id(LOCAL_TABLE)
            .protocol(RouteProtocol::Other(PROTOCOL))
            .scope(RouteScope::Host)
            .kind(RouteType::Local)
            .build())
    }
}

/// The destination of a dockline `local` host route, if `route` is one.
fn ours(route: &RouteMessage) -> Option<IpAddr> {
    if !is_dockline_route(route, RouteType::Local, LOCAL_TABLE) {
        return None;
    }
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(destination) => route_address(destination),
        _ => None,
    })
}

/// Every IPv4 and IPv6 route of the kernel that `pick` turns into a value.
pub async fn list_routes<T: Ord>(
    handle: &Handle,
    pick: impl Fn(&RouteMessage) -> Option<T>,
) -> Result<BTreeSet<T>, rtnetlink::Error> {
    let mut found = BTreeSet::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut query = RouteMessageBuilder::<IpAddr>::new().build();
        query.header.address_family = family;
        let mut routes = handle.route().get(query).execute();
        while let Some(route) = routes.try_next().await? {
            found.extend(pick(&route));
        }
    }
    Ok(found)
}

/// Whether `route` carries dockline's protocol number and is of `kind` in `table` (the
/// pod network's routes share the number, in the main table).
pub fn is_dockline_route(route: &RouteMessage, kind: RouteType, table: u32) -> bool {
    let h = &route.header;
    // Tables above 255 are only in the attribute; the header's byte is then 252.
    let in_table = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    h.protocol == RouteProtocol::Other(PROTOCOL) && h.kind == kind && in_table == table
}

/// An IPv4 or IPv6 address of a route attribute (destination, gateway).
pub fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}
