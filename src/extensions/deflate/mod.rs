//! `permessage-deflate` (RFC 7692): negotiation (§5, §7.1) and the per-message DEFLATE
//! transform (§7.2), as pure functions and two stateful codecs. Nothing here sees a frame:
//! the [`Connection`](crate::Connection) owns RSV1 and calls in here with payload bytes.
//!
//! # Negotiation
//!
//! A client sends [`client_offer`] in `Sec-WebSocket-Extensions` and checks the server's
//! answer with [`negotiate_client`]; an `Err` means the client must fail the connection
//! (§7). A server answers the client's offers with [`negotiate_server`]: it accepts the
//! first `permessage-deflate` offer that is valid and declines (skips) the others, as §7
//! requires of offers with unknown, repeated or invalid parameters. Both return the
//! agreed [`DeflateParams`], from which [`DeflateParams::compressor`] and
//! [`DeflateParams::decompressor`] build the two halves for one connection.
//!
//! ```
//! use wsengine::Role;
//! use wsengine::extensions::deflate::{self, DeflateConfig};
//! use wsengine::handshake::parse_extensions;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = DeflateConfig::default();
//! // The client offers; the server answers; the client checks the answer.
//! let offer = deflate::client_offer(&config).to_string();
//! let offers = parse_extensions([offer.as_bytes()])?;
//! let (server_params, answer) = deflate::negotiate_server(&offers, &config).unwrap();
//! let answer = parse_extensions([answer.to_string().as_bytes()])?;
//! let client_params = deflate::negotiate_client(&answer, &config)?.unwrap();
//! assert_eq!(client_params, server_params);
//!
//! // The server sends a message; the client receives it.
//! let mut compressor = server_params.compressor(Role::Server, &config);
//! let mut decompressor = client_params.decompressor(Role::Client, &config);
//! let message = b"a message long enough to be worth compressing, compressing";
//! let mut payload = Vec::new();
//! assert!(compressor.compress_message(message, &mut payload)); // send with RSV1 set
//! let mut received = Vec::new();
//! decompressor.decompress(&payload, true, &mut received, 1 << 20)?;
//! assert_eq!(received, message);
//! # Ok(())
//! # }
//! ```
//!
//! # Window bits 8
//!
//! zlib (and zlib-rs, and flate2's API) cannot run a raw deflate stream with an 8-bit
//! (256-byte) window: asked for 8 it uses 9. That is still safe to promise as 8: zlib's
//! deflate never emits a match farther back than `2^bits - 262` bytes (`MAX_DIST`, the
//! window minus `MIN_LOOKAHEAD`), which is 250 for 9 bits, inside a 256-byte window.
//! zlib-rs keeps that bound in every strategy (`fast`, `medium`, `slow`, `quick`; `rle`
//! and `huff` use distance 1 or none). So a server accepts `server_max_window_bits=8`
//! and answers `server_max_window_bits=8`, and a client accepts `client_max_window_bits=8`;
//! both compress with zlib's 9. A unit test decodes such output with an independent
//! decoder and checks that no distance exceeds 256. Decompressing needs no trick: a
//! larger window than the peer's always works, so 8 inflates with 9.
//!
//! # Memory per connection
//!
//! Measured with a counting global allocator (flate2 1.1.11, zlib-rs 0.6.8, x86-64; the
//! probe is outside the crate because it needs `unsafe impl GlobalAlloc`):
//!
//! | state | bytes | notes |
//! |---|---|---|
//! | compressor, 15 window bits | 380,032 | any level: window `2·2^w`, chains `2·2^w`, a fixed 128 KiB hash head, 112 KiB of pending and symbol buffers |
//! | compressor, 12 window bits | 265,344 | |
//! | compressor, 9 window bits (and 8) | 251,008 | the floor: the 240 KiB of fixed tables |
//! | decompressor, any window bits | 47,552 | zlib-rs always allocates a 32 KiB window |
//!
//! So one connection holds, between messages:
//!
//! - with context takeover both ways (the default): about 428 KB (380 + 48);
//! - without context takeover both ways and [`Memory::PerMessage`]: nothing; the state
//!   exists only while a message is being compressed or decompressed. Allocating it
//!   costs a few microseconds per message more than resetting a kept state (which a
//!   message without context takeover needs anyway; the figures:
//!   benches/compare/RESULTS.md, "Measurements behind constants");
//! - without context takeover and [`Memory::Retain`]: the same 428 KB, reset per message.
//!
//! Only `no_context_takeover` lets the state go: with context takeover the LZ77 window *is*
//! the shared context (§7.2.3.2), so it must live as long as the connection. A server
//! that wants idle connections to cost nothing sets [`DeflateConfig::low_memory`]: it
//! answers with both `no_context_takeover` parameters, which a server may always do
//! (§7.1.1.1, §7.1.1.2).
//!
//! # Errors and close codes
//!
//! [`DeflateError::Corrupt`] (the payload is not valid DEFLATE) maps to 1007. RFC 7692
//! names no close code for it; 1007 is RFC 6455 §7.4.1's "data within a message that was
//! not consistent with the type of the message", the same category as invalid UTF-8 in a
//! text message: the frames were well formed and RSV1 was negotiated, only the payload
//! fails to decode. 1002 stays for framing violations, including RSV1 where §6 forbids it.
//! (The `ws` library for Node answers undecodable payloads with 1007 too.)
//! [`DeflateError::TooBig`] maps to 1009, like any oversized message: past
//! [`DeflateConfig::max_inflated_size`] the connection fails with
//! [`ProtocolError::InflatedTooBig`](crate::ProtocolError::InflatedTooBig), whose code is
//! 1009 too. RFC 7692 defines no code of its own, and RFC 6455 §7.4.1 defines 1009 for
//! "a message that is too big for it to process", which is exactly the case: the
//! message is refused for its (decompressed) size, not for breaking a rule (1008 would
//! tell the peer it broke a policy it could not see on the wire; 1002 is for framing).
//!
//! # Integration
//!
//! What the connection does with these pieces:
//!
//! - Handshake: a client adds [`client_offer`] to its request and runs
//!   [`negotiate_client`] on the response's extensions (an error fails the handshake); a
//!   server runs [`negotiate_server`] on the request's extensions and adds the returned
//!   element to its 101 response. Keep the [`DeflateParams`] and build one
//!   [`Compressor`] and one [`Decompressor`] per connection (they allocate lazily).
//! - RSV1 (mask `0x40`) marks a compressed message, on its first frame only (§6). Once
//!   negotiated, decode headers with `allowed_rsv = 0x40` and check the rest in the
//!   connection: RSV1 on a control frame or on a continuation frame fails the connection
//!   with 1002 ("An endpoint receiving such a frame MUST _Fail the WebSocket
//!   Connection_", §6). Without the extension RSV1 stays `ReservedBits`, and RSV2/RSV3
//!   always do.
//! - Receive: for a message whose first frame had RSV1, feed each frame's unmasked payload
//!   to [`Decompressor::decompress`] with `last_fragment_of_message` = FIN on the call
//!   that ends the frame, and treat the output as the message payload: UTF-8 validation,
//!   streaming pieces and `max_message_size` apply to the decompressed bytes, so pass
//!   `max_message_size` (as `usize`, saturating) as `limit`, and map
//!   [`DeflateError::close_code`] (1007 corrupt, 1009 too big) to the Close frame. The
//!   header-time checks on compressed lengths still bound the wire bytes. Messages
//!   without RSV1 bypass the decompressor, and so does the zero-copy path: a compressed
//!   message is always produced into a new buffer.
//! - Send: [`Compressor::compress_message`] returns whether it compressed; set RSV1 on the
//!   (first) frame only when it did, otherwise send the original payload. For fragmented
//!   sends, decide once per message (e.g. on [`DeflateConfig::min_compress_size`] against
//!   the first fragment) and pass every fragment through [`Compressor::compress_fragment`]
//!   (RSV1 on the first frame only). Control frames are never compressed (§6), and the
//!   125-byte control limit applies to their payload as is.

mod codec;
mod negotiate;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use core::fmt;

pub use codec::{Compressor, Decompressor};
pub use negotiate::{DeflateNegotiationError, client_offer, negotiate_client, negotiate_server};

use crate::frame::CloseCode;
use crate::role::Role;

/// The extension token (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The smallest and largest LZ77 window sizes that may be negotiated, as base-2
/// logarithms (RFC 7692 §7.1.2.1: "between 8 to 15, inclusive").
pub const MIN_WINDOW_BITS: u8 = 8;
/// See [`MIN_WINDOW_BITS`]. Also the window assumed when a parameter is absent (32 KiB).
pub const MAX_WINDOW_BITS: u8 = 15;

/// What to do with the zlib state of a direction negotiated without context takeover,
/// between messages. (With context takeover the state is the shared LZ77 window, and is
/// kept for the life of the connection whatever this says.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Memory {
    /// Allocate the state when a message starts and free it when the message ends, so an
    /// idle connection holds none (default). Costs an allocation per message.
    #[default]
    PerMessage,
    /// Keep the state allocated and reset it between messages.
    Retain,
}

/// Local policy for `permessage-deflate`: what to offer or accept, and how to compress.
///
/// The four negotiation fields mean the same thing on both sides of the handshake, seen
/// from the RFC's parameters (§7.1):
///
/// - `server_no_context_takeover`: a client asks for it; a server announces it and resets
///   its compressor per message.
/// - `client_no_context_takeover`: a client offers it and resets its compressor per
///   message; a server requires it in its answer.
/// - `server_max_window_bits`: a client asks the server for at most this window; a server
///   uses at most this window (and less if the client asks for less).
/// - `client_max_window_bits`: a client offers it (with this value, or bare when `None`)
///   and compresses with at most this window; a server answers it (when the client
///   offered the parameter) to cap the client's window.
///
/// Values outside 8..=15 are clamped into it; `level` is clamped to 0..=9.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// See the type's documentation. Default false.
    pub server_no_context_takeover: bool,
    /// See the type's documentation. Default false.
    pub client_no_context_takeover: bool,
    /// See the type's documentation. Default `None` (15).
    pub server_max_window_bits: Option<u8>,
    /// See the type's documentation. Default `None` (15).
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0 (store) to 9 (smallest). Default 6, zlib's default.
    /// Memory does not depend on it.
    pub level: u8,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1 clear): below a
    /// few dozen bytes DEFLATE's block overhead eats most of the gain. Default 32.
    pub min_compress_size: usize,
    /// Whether a direction without context takeover keeps its zlib state between
    /// messages. Default [`Memory::PerMessage`].
    pub memory: Memory,
    /// Largest decompressed size of a received compressed message (default 1 MiB),
    /// separate from and by default much smaller than `Config::max_message_size`: a
    /// compressed message costs its inflated size in memory for a fraction of that on
    /// the wire (DEFLATE reaches about 1000:1), so its limit is set by the memory a
    /// server grants, not by the largest message it takes. Autobahn's compression
    /// cases (sections 12 and 13) send at most 256 KiB. The effective limit is the
    /// smaller of the two. Exceeding it fails the connection with
    /// [`ProtocolError::InflatedTooBig`](crate::ProtocolError::InflatedTooBig) (1009).
    pub max_inflated_size: usize,
    /// Messages larger than this many bytes are sent uncompressed (RSV1 clear; default
    /// 1 MiB): compressing costs CPU in proportion to the size, and a large message is
    /// more likely already compressed data. For a fragmented send the first fragment
    /// decides: larger than this, the whole message goes uncompressed.
    pub max_compress_size: usize,
    /// Most decompressed bytes per second one connection inflates (default `None`: no
    /// limit). Inflating costs CPU in proportion to its output, and a peer can send
    /// data that inflates about 1000:1: with a limit, a connection that has used up
    /// its budget (up to one second's worth in a burst) stops taking compressed payload
    /// until time passes (`poll_event` returns `Ok(None)` and `poll_timeout` names when
    /// to go on; the receive buffer fills, so the host stops reading). Off by default:
    /// the right figure depends on the server's cores and traffic, and a limit below
    /// the legitimate rate would throttle honest peers.
    pub max_inflate_rate: Option<u64>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
            min_compress_size: 32,
            memory: Memory::PerMessage,
            max_inflated_size: 1 << 20,
            max_compress_size: 1 << 20,
            max_inflate_rate: None,
        }
    }
}

impl DeflateConfig {
    /// No context takeover in either direction and [`Memory::PerMessage`]: an idle
    /// connection holds no zlib state at all, at the cost of compressing each message on
    /// its own.
    pub fn low_memory() -> Self {
        Self {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..Self::default()
        }
    }

    pub(crate) fn server_bits(&self) -> Option<u8> {
        self.server_max_window_bits.map(clamp_bits)
    }

    pub(crate) fn client_bits(&self) -> Option<u8> {
        self.client_max_window_bits.map(clamp_bits)
    }
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The agreed parameters for one direction of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirectionParams {
    /// The largest LZ77 window the sender may use, as a base-2 logarithm, 8..=15
    /// (15 when the parameter was not negotiated).
    pub max_window_bits: u8,
    /// The sender starts every message with an empty window (§7.1.1), so the receiver
    /// may drop its state between messages.
    pub no_context_takeover: bool,
}

impl Default for DirectionParams {
    fn default() -> Self {
        Self {
            max_window_bits: MAX_WINDOW_BITS,
            no_context_takeover: false,
        }
    }
}

/// The outcome of a successful negotiation: the parameters of each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DeflateParams {
    /// Messages the client sends (the `client_*` parameters).
    pub client: DirectionParams,
    /// Messages the server sends (the `server_*` parameters).
    pub server: DirectionParams,
}

impl DeflateParams {
    /// The direction `role` sends in.
    pub fn outgoing(&self, role: Role) -> DirectionParams {
        match role {
            Role::Client => self.client,
            Role::Server => self.server,
        }
    }

    /// The direction `role` receives in.
    pub fn incoming(&self, role: Role) -> DirectionParams {
        match role {
            Role::Client => self.server,
            Role::Server => self.client,
        }
    }

    /// The compressor for what `role` sends. Allocates nothing until the first message.
    pub fn compressor(&self, role: Role, config: &DeflateConfig) -> Compressor {
        Compressor::new(self.outgoing(role), config)
    }

    /// The decompressor for what `role` receives. Allocates nothing until the first
    /// compressed message.
    pub fn decompressor(&self, role: Role, config: &DeflateConfig) -> Decompressor {
        Decompressor::new(self.incoming(role), config)
    }
}

/// Compressing or decompressing a message failed. The connection must be failed: the
/// codec has dropped its state, and the peer's context is lost with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateError {
    /// The payload is not a valid DEFLATE stream (RFC 1951), e.g. a bad block type, a bad
    /// Huffman code or a distance farther back than any data. Close code 1007.
    Corrupt,
    /// The decompressed message would exceed the limit given to
    /// [`Decompressor::decompress`]; nothing past the limit was written. Close code 1009.
    TooBig {
        /// The limit, in decompressed bytes for the whole message.
        limit: usize,
    },
    /// zlib failed where valid input cannot make it fail. Close code 1011.
    Internal,
}

impl DeflateError {
    /// The close code to fail the connection with (RFC 6455 §7.4.1); see the module
    /// documentation for why corrupt data is 1007.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::Corrupt => CloseCode::INVALID_PAYLOAD,
            Self::TooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            Self::Internal => CloseCode::INTERNAL_ERROR,
        }
    }
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt => f.write_str("compressed message is not valid DEFLATE data"),
            Self::TooBig { limit } => {
                write!(f, "decompressed message larger than {limit} bytes")
            }
            Self::Internal => f.write_str("zlib failed unexpectedly"),
        }
    }
}

impl core::error::Error for DeflateError {}
