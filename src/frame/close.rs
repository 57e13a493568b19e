use crate::prelude::*;

use core::fmt;

use crate::error::ProtocolError;

/// A Close status code (RFC 6455 §7.4). The code space is open (3000-4999 belong to
/// libraries and applications), so this is a newtype with constants, not an enum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present. Never sent on the wire (§7.4.1).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a Close frame. Never sent on the wire (§7.4.1).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY: Self = Self(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1015: TLS handshake failure. Never sent on the wire (§7.4.1).
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether this code may appear in a Close frame (§7.4.1, §7.4.2 and the IANA registry
    /// of §11.7): 1000-1003, 1007-1014 (1012-1014 were registered after the RFC as service
    /// restart, try again later and bad gateway) and 3000-4999. 1004 is reserved, 1005,
    /// 1006 and 1015 are local-only, and 0-999, 1016-2999 and 5000+ are unassigned.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// The body of a Close frame (RFC 6455 §5.5.1): a status code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: String,
}

impl CloseFrame {
    /// Parses a received Close payload. An empty payload is `Ok(None)` (no status code).
    ///
    /// RFC 6455 §5.5.1: "If there is a body, the first two bytes of the body MUST be a
    /// 2-byte unsigned integer (in network byte order) representing a status code", and
    /// the rest "is not guaranteed to be human readable" but is UTF-8 (§5.5.1: "the data
    /// ... MUST be ... UTF-8-encoded data"), so a bad reason fails with 1007.
    pub fn parse(payload: &[u8]) -> Result<Option<Self>, ProtocolError> {
        match payload {
            [] => Ok(None),
            [_] => Err(ProtocolError::CloseTooShort),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason =
                    core::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(Self {
                    code,
                    reason: reason.to_owned(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_close_codes_are_exactly_the_registered_ranges() {
        for code in 0u16..=u16::MAX {
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(code).is_sendable(), expected, "{code}");
        }
    }

    #[test]
    fn local_only_codes_are_not_sendable() {
        for code in [
            CloseCode::NO_STATUS,
            CloseCode::ABNORMAL,
            CloseCode::TLS_HANDSHAKE,
        ] {
            assert!(!code.is_sendable());
        }
    }

    #[test]
    fn empty_close_payload_has_no_status() {
        assert_eq!(CloseFrame::parse(b""), Ok(None));
    }

    #[test]
    fn one_byte_close_payload_is_a_protocol_error() {
        assert_eq!(
            CloseFrame::parse(&[0x03]),
            Err(ProtocolError::CloseTooShort)
        );
    }

    #[test]
    fn close_payload_with_reason() {
        let f = CloseFrame::parse(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!(f.code, CloseCode::NORMAL);
        assert_eq!(f.reason, "bye");
    }

    #[test]
    fn close_reason_with_invalid_utf8_is_1007() {
        let err = CloseFrame::parse(b"\x03\xe8\xff").unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn close_code_1005_on_the_wire_is_a_protocol_error() {
        assert_eq!(
            CloseFrame::parse(&1005u16.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
    }
}
