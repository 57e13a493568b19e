//! `FrameHeader::decode(buf, allowed_rsv)` on arbitrary bytes:
//! - `Complete((h, n))`: `n` bytes re-encode to exactly those bytes (the minimal
//!   encoding rule), `encoded_len` agrees, no RSV bit outside `allowed_rsv`, and every
//!   shorter prefix is `Partial`;
//! - `Partial`: some extension of the input decodes `Complete` (built here from the
//!   RFC 6455 §5.2 layout, independently of the decoder);
//! - `Err(e)`: final: any extension fails with the same error.
//!
//! Input: allowed_rsv u8 (masked with 0x70), then the bytes to decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::frame::MAX_HEADER_LEN;
use wsengine::{FrameHeader, Status};

/// The completion of `prefix` most likely to decode: missing bytes chosen so that the
/// opcode is valid (Binary, FIN), the length is minimally encoded and below 2^63, and the
/// masking key is anything. If this does not decode, no completion does.
fn completion(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    if out.is_empty() {
        out.push(0x82);
    }
    if out.len() < 2 {
        out.push(0x00);
    }
    let ext = match out[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let masked = out[1] & 0x80 != 0;
    let total = 2 + ext + if masked { 4 } else { 0 };
    while out.len() < total {
        let pos = out.len();
        // 16-bit: 0xFF makes any value >= 126. 64-bit: a first byte of 0x7F keeps the
        // top bit clear; 0xFF elsewhere makes the value > 0xFFFF whenever a byte among
        // the first six is still free.
        let b = if pos == 2 && ext == 8 {
            0x7F
        } else if pos < 2 + ext {
            0xFF
        } else {
            0x00
        };
        out.push(b);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&rsv, buf)) = data.split_first() else {
        return;
    };
    let allowed = rsv & 0x70;
    let result = FrameHeader::decode(buf, allowed);
    match result {
        Ok(Status::Complete((h, n))) => {
            assert!(n <= buf.len() && n <= MAX_HEADER_LEN && n >= 2);
            assert_eq!(h.rsv & !allowed, 0, "an RSV bit that is not allowed");
            assert_eq!(h.encoded_len(), n);
            let mut out = [0u8; MAX_HEADER_LEN];
            let m = h.encode(&mut out);
            assert_eq!(&out[..m], &buf[..n], "decoded {h:?} re-encodes differently");
            for k in 0..n {
                assert_eq!(
                    FrameHeader::decode(&buf[..k], allowed),
                    Ok(Status::Partial),
                    "prefix of {k} bytes of a complete header"
                );
            }
            // Trailing bytes change nothing.
            let mut longer = buf[..n].to_vec();
            longer.push(0x81);
            assert_eq!(FrameHeader::decode(&longer, allowed), result);
        }
        Ok(Status::Partial) => {
            assert!(
                buf.len() < MAX_HEADER_LEN,
                "Partial with {} bytes",
                buf.len()
            );
            let full = completion(buf);
            assert!(
                matches!(FrameHeader::decode(&full, allowed), Ok(Status::Complete(_))),
                "Partial for {buf:02x?}, but no extension can complete it ({full:02x?}: {:?})",
                FrameHeader::decode(&full, allowed)
            );
        }
        Err(e) => {
            // Errors are final: more bytes cannot make the header valid.
            for fill in [0x00u8, 0xFF] {
                let mut longer = buf.to_vec();
                longer.resize(buf.len() + MAX_HEADER_LEN, fill);
                assert_eq!(
                    FrameHeader::decode(&longer, allowed),
                    Err(e),
                    "fill {fill:#x}"
                );
            }
        }
    }
});
