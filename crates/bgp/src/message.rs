//! BGP messages on the wire (RFC 4271 section 4): framing of the byte stream, decoding and
//! encoding through netgauze-bgp-pkt, and the few messages dockline builds itself (its OPEN,
//! NOTIFICATIONs, End-of-RIB markers).
//!
//! Framing is done here rather than by the parser so that "need more bytes" is told apart
//! from "invalid": a header is checked as soon as its 19 bytes are in, and a bad marker or
//! length becomes a Message Header Error NOTIFICATION without waiting for a body that may
//! never come.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::notification::{BgpNotificationMessage, MessageHeaderError};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::path_attribute::{MpUnreach, PathAttribute, PathAttributeValue};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

/// Marker, length and type.
pub const HEADER_LENGTH: usize = 19;
/// The largest message without the Extended Message capability (RFC 8654), which dockline
/// does not offer: a length above this is a header error, and no buffer grows past it.
pub const MAX_MESSAGE_LENGTH: usize = 4096;
/// AS_TRANS (RFC 6793): the 2-byte "My AS" of a speaker whose AS number needs 4 bytes.
pub const AS_TRANS: u16 = 23456;
/// The type byte of a ROUTE-REFRESH message (RFC 2918).
pub const ROUTE_REFRESH_TYPE: u8 = 5;
/// The restart time dockline asks routers to keep its routes for (RFC 4724 section 3).
pub const RESTART_TIME_S: u16 = 120;

/// The length of the first whole message in `buffer`, `None` while more bytes are needed,
/// or the NOTIFICATION a bad header calls for.
pub fn frame(buffer: &[u8]) -> Result<Option<usize>, BgpNotificationMessage> {
    if buffer.len() < HEADER_LENGTH {
        // A marker byte that is not 0xff can be refused before the whole header is in.
        if buffer.iter().take(16).any(|byte| *byte != 0xff) {
            return Err(not_synchronized());
        }
        return Ok(None);
    }
    if buffer[..16].iter().any(|byte| *byte != 0xff) {
        return Err(not_synchronized());
    }
    let length = usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
    if !(HEADER_LENGTH..=MAX_MESSAGE_LENGTH).contains(&length) {
        return Err(BgpNotificationMessage::MessageHeaderError(
            MessageHeaderError::BadMessageLength {
                value: (length as u16).to_be_bytes().into(),
            },
        ));
    }
    Ok((buffer.len() >= length).then_some(length))
}

fn not_synchronized() -> BgpNotificationMessage {
    BgpNotificationMessage::MessageHeaderError(MessageHeaderError::ConnectionNotSynchronized {
        value: Box::new([]),
    })
}

/// Decodes one whole message (as [`frame`] delimits it). `four_octet_asn` says whether
/// AS_PATHs carry 4-byte numbers on this session.
///
/// Received UPDATEs are only parsed to be dropped (dockline learns no routes), so a
/// malformed path attribute is tolerated rather than fatal: RFC 7606 treat-as-withdraw of
/// a route never installed is nothing. Errors in the message structure still reset.
pub fn decode(message: &[u8], four_octet_asn: bool) -> Result<BgpMessage, Malformed> {
    let mut context = BgpParsingContext::new(
        four_octet_asn,
        HashMap::new(),
        HashMap::new(),
        false,
        false,
        false,
        false,
    );
    let mut reader = SliceReader::new(message);
    BgpMessage::parse(&mut reader, &mut context).map_err(|error| Malformed {
        reason: error.to_string(),
        notification: BgpNotificationMessage::from(error),
    })
}

/// A message that could not be decoded: what was wrong, and the NOTIFICATION it calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// What the decoder found, for logs and `/status`.
    pub reason: String,
    /// The NOTIFICATION to send before closing (RFC 4271 section 6).
    pub notification: BgpNotificationMessage,
}

/// The bytes of `message`.
pub fn encode(message: &BgpMessage) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(message.len());
    // Writing into a Vec cannot fail for I/O; the messages dockline builds are in range
    // (UPDATEs are split below MAX_MESSAGE_LENGTH), so an error here is a bug.
    if let Err(error) = message.write(&mut bytes) {
        tracing::error!(%error, "a BGP message could not be encoded");
        bytes.clear();
    }
    bytes
}

/// The code and subcode of an encoded NOTIFICATION (RFC 4271 section 4.5).
pub fn notification_codes(encoded: &[u8]) -> (u8, u8) {
    (
        encoded.get(HEADER_LENGTH).copied().unwrap_or(0),
        encoded.get(HEADER_LENGTH + 1).copied().unwrap_or(0),
    )
}

/// dockline's OPEN: 4-byte ASN (AS_TRANS in "My AS" when it does not fit in 2 bytes),
/// IPv4 and IPv6 unicast, route refresh, and graceful restart when `graceful_restart`.
pub fn open(asn: u32, hold_time: u16, router_id: Ipv4Addr, graceful_restart: bool) -> BgpMessage {
    let mut capabilities = vec![
        BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
            AddressType::Ipv4Unicast,
        )),
        BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
            AddressType::Ipv6Unicast,
        )),
        BgpCapability::RouteRefresh,
        BgpCapability::FourOctetAs(FourOctetAsCapability::new(asn)),
    ];
    if graceful_restart {
        // dockline keeps no forwarding state across a restart (the kernel does the
        // forwarding), so the F bits stay clear; the restart time is how long routers keep
        // the routes stale.
        capabilities.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                false,
                false,
                RESTART_TIME_S,
                [
                    GracefulRestartAddressFamily::new(false, AddressType::Ipv4Unicast),
                    GracefulRestartAddressFamily::new(false, AddressType::Ipv6Unicast),
                ],
            ),
        ));
    }
    let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
    BgpMessage::Open(BgpOpenMessage::new(
        my_as,
        hold_time,
        router_id,
        [BgpOpenMessageParameter::new_capabilities(capabilities)],
    ))
}

/// The End-of-RIB marker of `family` (RFC 4724 section 2): an empty UPDATE for IPv4
/// unicast, an empty MP_UNREACH_NLRI for the others.
pub fn end_of_rib(family: AddressType) -> BgpMessage {
    let attributes = match family {
        AddressType::Ipv6Unicast => vec![mp_unreach(MpUnreach::Ipv6Unicast { nlri: Box::new([]) })],
        _ => Vec::new(),
    };
    BgpMessage::Update(BgpUpdateMessage::new(Vec::new(), attributes, Vec::new()))
}

/// MP_UNREACH_NLRI as a path attribute.
pub fn mp_unreach(unreach: MpUnreach) -> PathAttribute {
    attribute(PathAttributeValue::MpUnreach(unreach))
}

/// A path attribute with the optional and transitive flags its type prescribes
/// (RFC 4271 section 5); the extended-length bit is set on the two attributes that can
/// outgrow 255 bytes.
pub fn attribute(value: PathAttributeValue) -> PathAttribute {
    let optional = value.can_be_optional().unwrap_or(true);
    let transitive = value.can_be_transitive().unwrap_or(true);
    let extended = matches!(
        value,
        PathAttributeValue::MpReach(_) | PathAttributeValue::MpUnreach(_)
    );
    match PathAttribute::from(optional, transitive, false, extended, value) {
        Ok(attribute) => attribute,
        Err(_) => unreachable!("the flags are taken from the attribute type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keepalive_is_framed_only_once_whole() {
        let keepalive = encode(&BgpMessage::KeepAlive);
        assert_eq!(keepalive.len(), 19);
        assert_eq!(frame(&keepalive[..10]), Ok(None));
        assert_eq!(frame(&keepalive[..18]), Ok(None));
        assert_eq!(frame(&keepalive), Ok(Some(19)));
        assert_eq!(decode(&keepalive, true), Ok(BgpMessage::KeepAlive));
    }

    #[test]
    fn garbage_is_refused_as_not_synchronized_before_a_whole_header() {
        let error = frame(b"GET / HTTP/1.0").unwrap_err();
        let encoded = encode(&BgpMessage::Notification(error));
        assert_eq!(notification_codes(&encoded), (1, 1));
    }

    #[test]
    fn a_length_beyond_4096_is_a_bad_message_length() {
        let mut header = vec![0xff; 16];
        header.extend_from_slice(&5000u16.to_be_bytes());
        header.push(2);
        let error = frame(&header).unwrap_err();
        assert_eq!(
            notification_codes(&encode(&BgpMessage::Notification(error))),
            (1, 2)
        );
    }

    #[test]
    fn the_open_round_trips_with_every_capability() {
        let open = open(4_200_000_000, 9, Ipv4Addr::new(10, 0, 0, 1), true);
        let bytes = encode(&open);
        assert_eq!(frame(&bytes), Ok(Some(bytes.len())));
        let BgpMessage::Open(decoded) = decode(&bytes, true).unwrap() else {
            panic!("not an OPEN")
        };
        assert_eq!(decoded.my_as(), AS_TRANS);
        assert_eq!(decoded.my_asn4(), 4_200_000_000);
        assert_eq!(decoded.hold_time(), 9);
        assert_eq!(decoded.capabilities().len(), 5);
    }

    #[test]
    fn end_of_rib_markers_are_recognised_as_such() {
        for family in [AddressType::Ipv4Unicast, AddressType::Ipv6Unicast] {
            let bytes = encode(&end_of_rib(family));
            let BgpMessage::Update(update) = decode(&bytes, true).unwrap() else {
                panic!("not an UPDATE")
            };
            assert_eq!(update.end_of_rib(), Some(family));
        }
    }

    #[test]
    fn a_truncated_update_is_an_update_message_error() {
        // Withdrawn-routes length 10 with no routes after it.
        let mut update = vec![0xff; 16];
        update.extend_from_slice(&23u16.to_be_bytes());
        update.push(2);
        update.extend_from_slice(&[0, 10, 0, 0]);
        let error = decode(&update, true).unwrap_err();
        let (code, _) = notification_codes(&encode(&BgpMessage::Notification(error.notification)));
        assert_eq!(code, 3);
    }
}
