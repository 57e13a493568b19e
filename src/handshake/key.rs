//! `Sec-WebSocket-Key` and `Sec-WebSocket-Accept`, RFC 6455 §1.3, §4.1, §4.2.2.

use crate::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: the key is concatenated "with the Globally Unique Identifier (GUID,
/// \[RFC4122\]) ... in string form, which is unlikely to be used by network endpoints that
/// do not understand the WebSocket Protocol."
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §1.3, §4.2.2
/// step 5.4): base64 of the SHA-1 of the key, "as a string, not base64-decoded" (§4.1),
/// concatenated with the WebSocket GUID.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    STANDARD.encode(sha1.finalize())
}

/// A fresh `Sec-WebSocket-Key` (RFC 6455 §4.1 item 7): "The value of this header field
/// MUST be a nonce consisting of a randomly selected 16-byte value that has been
/// base64-encoded", and "The nonce MUST be selected randomly for each connection", so
/// call this once per connection attempt with a strong RNG (§10.3).
pub fn generate_key<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    STANDARD.encode(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn rfc_1_3_accept_key_vector() {
        // RFC 6455 §1.3 (the §1.2 sample handshake uses the same pair).
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_key_decodes_to_16_bytes() {
        let mut rng = StdRng::seed_from_u64(7);
        let key = generate_key(&mut rng);
        assert_eq!(key.len(), 24);
        assert_eq!(STANDARD.decode(&key).unwrap().len(), 16);
    }

    #[test]
    fn generated_keys_differ_per_connection() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_ne!(generate_key(&mut rng), generate_key(&mut rng));
    }
}
