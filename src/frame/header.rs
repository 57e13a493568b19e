use bytes::BufMut;

use crate::Status;
use crate::error::ProtocolError;
use crate::frame::{MAX_CONTROL_PAYLOAD, OpCode};

/// The longest header: 2 bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame header (RFC 6455 §5.2):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-------+-+-------------+-------------------------------+
/// |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
/// |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
/// |N|V|V|V|       |S|             |   (if payload len==126/127)   |
/// | |1|2|3|       |K|             |                               |
/// +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// RSV1-3 as they sit in the first byte (mask `0x70`); zero unless an extension
    /// defines them.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame (§5.3).
    pub mask: Option<[u8; 4]>,
    /// The payload length. At most `i64::MAX`: §5.2 requires the top bit of the 64-bit
    /// form to be 0.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`, returning it and its length in bytes.
    ///
    /// `allowed_rsv` holds the RSV bits (mask `0x70`) that a negotiated extension gives a
    /// meaning to; any other set bit is an error. Checks that need only the first byte
    /// (reserved bits, reserved opcode, fragmented control frame) fail as soon as that
    /// byte is present, so `Partial` means more bytes could still complete a valid header.
    pub fn decode(buf: &[u8], allowed_rsv: u8) -> Result<Status<(Self, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(Status::Partial);
        };
        // §5.2: "If a nonzero value is received and none of the negotiated extensions
        // defines the meaning of such a nonzero value, the receiving endpoint MUST _Fail
        // the WebSocket Connection_."
        let rsv = b0 & 0x70;
        if rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(rsv & !allowed_rsv));
        }
        // §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the
        // WebSocket Connection_."
        let opcode =
            OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        // §5.5: "Control frames themselves MUST NOT be fragmented."
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(Status::Partial);
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if usize::from(len7) <= MAX_CONTROL_PAYLOAD {
            // The 7-bit length (every message up to 125 bytes, every control frame): no
            // extended length to read or check, and within the control frame limit.
            let mask = if masked {
                match buf.get(2..6) {
                    Some(&[a, b, c, d]) => Some([a, b, c, d]),
                    _ => return Ok(Status::Partial),
                }
            } else {
                None
            };
            let header = Self {
                fin,
                rsv,
                opcode,
                mask,
                payload_len: u64::from(len7),
            };
            return Ok(Status::Complete((header, if masked { 6 } else { 2 })));
        }
        let ext_len = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        // §5.5: "All control frames MUST have a payload length of 125 bytes or less". The
        // 16- and 64-bit forms declare at least 126 and 65536 bytes, so fail on this byte
        // (reporting that least length, whatever follows) rather than wait for bytes that
        // cannot help: `Partial` promises that more bytes could complete a valid header.
        if opcode.is_control() && ext_len > 0 {
            let least = if ext_len == 2 { 126 } else { 0x1_0000 };
            return Err(ProtocolError::ControlFrameTooLong(least));
        }
        let header_len = 2 + ext_len + if masked { 4 } else { 0 };
        let Some(ext) = buf.get(2..2 + ext_len) else {
            // Likewise a 64-bit length fails as soon as its first bytes decide it: the top
            // bit set, or six zero bytes (the value cannot exceed 0xFFFF: not minimal).
            let have = buf.get(2..).unwrap_or_default();
            if ext_len == 8 {
                if have.first().is_some_and(|&b| b & 0x80 != 0) {
                    return Err(ProtocolError::LengthMsbSet);
                }
                if have.len() >= 6 && have[..6].iter().all(|&b| b == 0) {
                    return Err(ProtocolError::NonMinimalLength);
                }
            }
            return Ok(Status::Partial);
        };
        let payload_len = match *ext {
            [] => u64::from(len7),
            [a, b] => {
                let n = u16::from_be_bytes([a, b]);
                // §5.2: "the minimal number of bytes MUST be used to encode the length"
                if n < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                u64::from(n)
            }
            [a, b, c, d, e, f, g, h] => {
                let n = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                // §5.2: "the most significant bit MUST be 0"
                if n >> 63 != 0 {
                    return Err(ProtocolError::LengthMsbSet);
                }
                if n <= u64::from(u16::MAX) {
                    return Err(ProtocolError::NonMinimalLength);
                }
                n
            }
            _ => unreachable_len(),
        };
        // §5.5: "All control frames MUST have a payload length of 125 bytes or less"
        if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolError::ControlFrameTooLong(payload_len));
        }
        let mask = if masked {
            match buf.get(2 + ext_len..header_len) {
                Some(&[a, b, c, d]) => Some([a, b, c, d]),
                _ => return Ok(Status::Partial),
            }
        } else {
            None
        };
        Ok(Status::Complete((
            Self {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header in its minimal encoding into `out`, returning the length used.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let mut rest = &mut out[..];
        self.put(&mut rest);
        MAX_HEADER_LEN - rest.len()
    }

    /// Appends the header in its minimal encoding to `out` ([`encoded_len`] bytes): the
    /// send path writes it straight into the transmit buffer, a few stores instead of a
    /// copy from a scratch array.
    ///
    /// [`encoded_len`]: Self::encoded_len
    // Always inlined: the send path calls it once per frame, and as a call (LLVM kept
    // it out of line) it cost ~20 instructions more per small message (callgrind).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn put<B: BufMut>(&self, out: &mut B) {
        debug_assert!(self.payload_len >> 63 == 0, "payload length over i64::MAX");
        out.put_u8(u8::from(self.fin) << 7 | (self.rsv & 0x70) | self.opcode.bits());
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match u16::try_from(self.payload_len) {
            Ok(len) if len <= 125 => out.put_u8(mask_bit | len.to_be_bytes()[1]),
            Ok(len) => {
                out.put_u8(mask_bit | 126);
                out.put_u16(len);
            }
            Err(_) => {
                out.put_u8(mask_bit | 127);
                out.put_u64(self.payload_len);
            }
        }
        if let Some(key) = self.mask {
            out.put_slice(&key);
        }
    }
}

// The slice above is taken with length 0, 2 or 8, so no other length reaches the match.
#[cold]
fn unreachable_len() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(buf: &[u8]) -> Result<Status<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::decode(buf, 0)
    }

    fn complete(buf: &[u8]) -> (FrameHeader, usize) {
        match decode_all(buf) {
            Ok(Status::Complete(h)) => h,
            other => panic!("expected a complete header, got {other:?}"),
        }
    }

    #[test]
    fn empty_input_is_partial() {
        assert_eq!(decode_all(&[]), Ok(Status::Partial));
    }

    #[test]
    fn rfc_5_7_single_frame_unmasked_text() {
        let (h, n) = complete(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(n, 2);
        assert_eq!(
            h,
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: None,
                payload_len: 5
            }
        );
    }

    #[test]
    fn rfc_5_7_single_frame_masked_text() {
        let (h, n) = complete(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn rfc_5_7_256_bytes_binary_uses_16_bit_length() {
        let (h, n) = complete(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
    }

    #[test]
    fn rfc_5_7_64_kib_binary_uses_64_bit_length() {
        let (h, n) = complete(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 65536, 10));
    }

    #[test]
    fn reserved_bits_without_extension() {
        assert_eq!(decode_all(&[0xC1]), Err(ProtocolError::ReservedBits(0x40)));
        assert_eq!(
            decode_all(&[0x91, 0x00]),
            Err(ProtocolError::ReservedBits(0x10))
        );
    }

    #[test]
    fn reserved_bits_allowed_by_an_extension() {
        let r = FrameHeader::decode(&[0xC1, 0x00], 0x40);
        assert!(matches!(r, Ok(Status::Complete((h, 2))) if h.rsv == 0x40));
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                decode_all(&[0x80 | op]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn fragmented_control_frame_is_rejected_on_the_first_byte() {
        assert_eq!(
            decode_all(&[0x09]),
            Err(ProtocolError::FragmentedControlFrame)
        );
    }

    #[test]
    fn control_frame_longer_than_125_bytes() {
        assert_eq!(
            decode_all(&[0x89, 0x7E, 0x00, 0x7E]),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
    }

    #[test]
    fn eight_byte_length_with_msb_set() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_all(&buf), Err(ProtocolError::LengthMsbSet));
    }

    #[test]
    fn non_minimal_16_bit_length() {
        assert_eq!(
            decode_all(&[0x82, 0x7E, 0x00, 0x7D]),
            Err(ProtocolError::NonMinimalLength)
        );
    }

    #[test]
    fn non_minimal_64_bit_length() {
        let buf = [0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
        assert_eq!(decode_all(&buf), Err(ProtocolError::NonMinimalLength));
    }

    #[test]
    fn every_prefix_of_a_valid_header_is_partial() {
        let buf = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..buf.len() {
            assert_eq!(decode_all(&buf[..n]), Ok(Status::Partial), "prefix {n}");
        }
        assert_eq!(complete(&buf).1, 14);
    }

    #[test]
    fn trailing_bytes_are_left_alone() {
        let (_, n) = complete(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o', 0x81]);
        assert_eq!(n, 2);
    }

    fn arb_header() -> impl Strategy<Value = FrameHeader> {
        let opcode = prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ];
        let len = prop_oneof![0u64..=125, 126u64..=0xFFFF, 0x1_0000u64..=(u64::MAX >> 1)];
        (any::<bool>(), 0u8..8, opcode, any::<Option<[u8; 4]>>(), len).prop_map(
            |(fin, rsv, opcode, mask, payload_len)| {
                let control = opcode.is_control();
                FrameHeader {
                    fin: fin || control,
                    rsv: rsv << 4,
                    opcode,
                    mask,
                    payload_len: if control {
                        payload_len % 126
                    } else {
                        payload_len
                    },
                }
            },
        )
    }

    proptest! {
        #[test]
        fn header_round_trips_through_minimal_encoding(h in arb_header()) {
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = h.encode(&mut out);
            prop_assert_eq!(n, h.encoded_len());
            prop_assert_eq!(FrameHeader::decode(&out[..n], 0x70), Ok(Status::Complete((h, n))));
            for k in 0..n {
                prop_assert_eq!(FrameHeader::decode(&out[..k], 0x70), Ok(Status::Partial));
            }
        }

        #[test]
        fn decoded_headers_re_encode_to_the_same_bytes(buf in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(Status::Complete((h, n))) = FrameHeader::decode(&buf, 0x70) {
                let mut out = [0u8; MAX_HEADER_LEN];
                let m = h.encode(&mut out);
                prop_assert_eq!(&out[..m], &buf[..n]);
            }
        }
    }
}
