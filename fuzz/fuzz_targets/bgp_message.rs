//! BGP framing and decoding on arbitrary bytes: every message is either framed or refused
//! with a NOTIFICATION, and whatever decodes can be encoded again; nothing panics.
#![no_main]

use dockline_bgp::message;
use netgauze_bgp_pkt::BgpMessage;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    match message::frame(bytes) {
        Ok(Some(length)) => {
            assert!(length <= message::MAX_MESSAGE_LENGTH);
            for four_octet_asn in [true, false] {
                match message::decode(&bytes[..length], four_octet_asn) {
                    Ok(decoded) => {
                        let _ = message::encode(&decoded);
                    }
                    Err(malformed) => {
                        let notification = BgpMessage::Notification(malformed.notification);
                        let _ = message::notification_codes(&message::encode(&notification));
                    }
                }
            }
        }
        Ok(None) => assert!(bytes.len() < message::MAX_MESSAGE_LENGTH),
        Err(_) => {}
    }
});
