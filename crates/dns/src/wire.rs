//! Facts of the DNS message format (RFC 1035 section 4.1) that several modules read or
//! write by hand, kept in one place.

/// The fixed header: ID, flags, and the four section counts (RFC 1035 section 4.1.1).
pub(crate) const HEADER_LEN: usize = 12;

/// The longest name in wire form, length octets and root included (RFC 1035 section 2.3.4).
pub(crate) const MAX_NAME: usize = 255;

/// The OPT pseudo-record type (RFC 6891 section 6.1.1).
pub(crate) const TYPE_OPT: u16 = 41;

/// The Internet class.
pub(crate) const CLASS_IN: u16 = 1;

/// A compression pointer to offset 12, right after the header: the question's name
/// (RFC 1035 section 4.1.4).
pub(crate) const QUESTION_NAME: [u8; 2] = [0xc0, HEADER_LEN as u8];
