//! The PROXY protocol header (HAProxy's "The PROXY protocol", versions 1 and 2), sent to
//! an endpoint before the client's bytes so it learns the client's address, which a
//! userspace proxy otherwise hides: the endpoint sees the connection come from the node.
//! Only the encoder lives here; the proxy never reads such headers.

use std::net::{IpAddr, SocketAddr};

use dockline_config::ProxyProtocol;

/// The version 2 signature (spec section 2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4 / IPv6.
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;

/// The header for a TCP connection from `client` to the service address `service` (where
/// the client connected); empty for [`ProxyProtocol::None`].
pub(crate) fn header(version: ProxyProtocol, client: SocketAddr, service: SocketAddr) -> Vec<u8> {
    let (client_ip, service_ip) = same_family(client.ip(), service.ip());
    match version {
        ProxyProtocol::None => Vec::new(),
        ProxyProtocol::V1 => {
            let family = if client_ip.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {client_ip} {service_ip} {} {}\r\n",
                client.port(),
                service.port()
            )
            .into_bytes()
        }
        ProxyProtocol::V2 => {
            let mut out = Vec::with_capacity(16 + 36);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(V2_PROXY);
            match (client_ip, service_ip) {
                (IpAddr::V4(c), IpAddr::V4(s)) => {
                    out.push(V2_TCP4);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&c.octets());
                    out.extend_from_slice(&s.octets());
                }
                (c, s) => {
                    out.push(V2_TCP6);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(c).octets());
                    out.extend_from_slice(&v6(s).octets());
                }
            }
            out.extend_from_slice(&client.port().to_be_bytes());
            out.extend_from_slice(&service.port().to_be_bytes());
            out
        }
    }
}

/// Both addresses in one family, as the header carries one: a pair that differs (never
/// seen with the proxy's IPv6-only listeners, but possible) goes as IPv4-mapped IPv6.
fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (IpAddr::V6(v6(a)), IpAddr::V6(v6(b)))
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn none_sends_nothing() {
        let h = header(ProxyProtocol::None, addr("1.2.3.4:5"), addr("6.7.8.9:80"));
        assert!(h.is_empty());
    }

    #[test]
    fn v1_text_lines() {
        let h = header(
            ProxyProtocol::V1,
            addr("172.30.0.100:41234"),
            addr("192.0.2.10:80"),
        );
        assert_eq!(h, b"PROXY TCP4 172.30.0.100 192.0.2.10 41234 80\r\n");
        let h = header(
            ProxyProtocol::V1,
            addr("[2001:db8::1]:41234"),
            addr("[2001:db8:1::a]:443"),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 2001:db8:1::a 41234 443\r\n");
    }

    #[test]
    fn v2_ipv4_bytes() {
        let h = header(
            ProxyProtocol::V2,
            addr("172.30.0.100:41234"),
            addr("192.0.2.10:80"),
        );
        let want: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP over IPv4, 12 bytes follow
            172, 30, 0, 100, 192, 0, 2, 10, // source, destination
            0xa1, 0x12, 0x00, 0x50, // ports 41234, 80
        ];
        assert_eq!(h, want);
    }

    #[test]
    fn v2_ipv6_bytes() {
        let h = header(
            ProxyProtocol::V2,
            addr("[2001:db8::1]:41234"),
            addr("[2001:db8:1::a]:443"),
        );
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0x00, 0x24]);
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        src[15] = 1;
        assert_eq!(&h[16..32], &src);
        let mut dst = [0u8; 16];
        dst[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]);
        dst[15] = 0x0a;
        assert_eq!(&h[32..48], &dst);
        assert_eq!(&h[48..], &[0xa1, 0x12, 0x01, 0xbb]);
    }

    #[test]
    fn mixed_families_go_as_mapped_ipv6() {
        let h = header(
            ProxyProtocol::V1,
            addr("172.30.0.100:1000"),
            addr("[2001:db8::a]:80"),
        );
        assert_eq!(h, b"PROXY TCP6 ::ffff:172.30.0.100 2001:db8::a 1000 80\r\n");
        let h = header(
            ProxyProtocol::V2,
            addr("172.30.0.100:1000"),
            addr("[2001:db8::a]:80"),
        );
        assert_eq!(&h[13..16], &[0x21, 0x00, 0x24]);
        assert_eq!(
            &h[16..32],
            &"::ffff:172.30.0.100"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
