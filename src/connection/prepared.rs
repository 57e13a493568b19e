//! Messages encoded once for many connections (fan-out): a [`PreparedMessage`] holds a
//! whole unmasked server frame in one [`Bytes`], and
//! [`Connection::send_prepared`](super::Connection::send_prepared) queues it on each
//! server connection by reference count, without encoding or copying it again.

use core::fmt;

use bytes::{Bytes, BytesMut};

use super::{MessageKind, wire_len};
use crate::frame::{FrameHeader, OpCode};
use crate::utf8::Utf8Bytes;

/// A text or binary message encoded once as a complete server frame (RFC 6455 §5.2: FIN
/// set, no mask, header and payload in one buffer), for
/// [`Connection::send_prepared`](super::Connection::send_prepared) on many server
/// connections: each send shares the same bytes (a reference count; no copy, no
/// re-encoding). Cloning one is as cheap.
///
/// A client cannot send one: every frame a client sends is masked with a fresh key
/// (§5.3), so it has no bytes to share.
///
/// With permessage-deflate (RFC 7692, feature `deflate`),
/// [`with_deflate`](Self::with_deflate) also compresses the message once, on its own
/// (see there for which connections can take it); every other connection gets the
/// uncompressed frame, which is always valid (§6: any message may go uncompressed).
///
/// ```
/// use wsengine::{Config, Connection, Instant, Negotiated, PreparedMessage, Role};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let publication = PreparedMessage::text("the same bytes for every subscriber");
/// let open = || {
///     let (config, now) = (Config::default(), Instant::ZERO);
///     Connection::upgraded(Role::Server, config, now, Negotiated::default())
/// };
/// let mut subscribers = vec![open()?, open()?, open()?];
/// for conn in &mut subscribers {
///     conn.send_prepared(&publication)?;
///     assert_eq!(conn.poll_transmit(), publication.frame());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedMessage {
    pub(super) kind: MessageKind,
    /// The whole frame: header, then payload.
    pub(super) frame: Bytes,
    /// Where the payload starts in `frame`.
    header_len: usize,
    /// The message compressed on its own, RSV1 set, when
    /// [`with_deflate`](Self::with_deflate) made it smaller.
    #[cfg(feature = "deflate")]
    pub(super) deflated: Option<Deflated>,
}

/// A prepared message's compressed frame.
#[cfg(feature = "deflate")]
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Deflated {
    /// The whole frame, RSV1 set (RFC 7692 §6).
    pub(super) frame: Bytes,
    /// The LZ77 window it was compressed with, as negotiated (8..=15): a connection
    /// whose `server_max_window_bits` is smaller cannot inflate it.
    pub(super) window_bits: u8,
}

impl PreparedMessage {
    /// A text message, encoded now (one copy of the payload, behind the header).
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::encode(MessageKind::Text, &text.into().into_bytes())
    }

    /// A binary message, encoded now (one copy of the payload, behind the header).
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::encode(MessageKind::Binary, &data.into())
    }

    fn encode(kind: MessageKind, payload: &[u8]) -> Self {
        let (frame, header_len) = encode_frame(opcode(kind), 0, payload);
        Self {
            kind,
            frame,
            header_len,
            #[cfg(feature = "deflate")]
            deflated: None,
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The payload, uncompressed: a view into the frame, not a copy.
    pub fn payload(&self) -> Bytes {
        self.frame.slice(self.header_len..)
    }

    /// The uncompressed frame as it goes on the wire: header, then payload.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Also compresses the message for permessage-deflate (RFC 7692 §7.2.1), once and on
    /// its own: a fresh compressor at `config.level` with a window of
    /// `config.server_max_window_bits` (15 when `None`), no context before it and none
    /// kept after, so any client can inflate it whatever it received before. The
    /// compressed frame is kept only when it is smaller than the payload, and only for
    /// payloads within `config.min_compress_size..=config.max_compress_size` (as a
    /// connection's own sends). Pass the server's own policy (its `Config::deflate`):
    /// a server never negotiates a window larger than its policy's, so the frame then
    /// fits every connection that did not ask for a smaller one.
    ///
    /// [`send_prepared`](super::Connection::send_prepared) sends the compressed frame on
    /// a connection that negotiated permessage-deflate with `server_no_context_takeover`
    /// and a `server_max_window_bits` of at least this window, and the uncompressed one
    /// everywhere else. A server that fans out should negotiate
    /// `server_no_context_takeover` ([`DeflateConfig::low_memory`], which also frees
    /// each connection's zlib state between messages): with context takeover, a
    /// message compressed without the connection's context cannot be sent compressed
    /// (see `send_prepared`).
    ///
    /// Compressed here, at construction, rather than lazily on the first send: the cost
    /// (in proportion to the size) falls once on the caller that publishes, outside any
    /// connection's send path (a host holds a connection's lock while it sends), every
    /// send stays a reference count, and the parameters are the caller's, not those of
    /// whichever connection happened to send first.
    ///
    /// [`DeflateConfig::low_memory`]: crate::extensions::deflate::DeflateConfig::low_memory
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(mut self, config: &crate::extensions::deflate::DeflateConfig) -> Self {
        use crate::extensions::deflate::{Compressor, DirectionParams, MAX_WINDOW_BITS};
        let payload = &self.frame[self.header_len..];
        if payload.len() > config.max_compress_size {
            self.deflated = None;
            return self;
        }
        let window_bits = config.server_bits().unwrap_or(MAX_WINDOW_BITS);
        let params = DirectionParams {
            max_window_bits: window_bits,
            // A fresh window for this message alone, and `compress_message` keeps the
            // output only when it is smaller than the payload.
            no_context_takeover: true,
        };
        let mut out = crate::prelude::Vec::new();
        self.deflated = Compressor::new(params, config)
            .compress_message(payload, &mut out)
            .then(|| Deflated {
                frame: encode_frame(opcode(self.kind), super::deflate::RSV1, &out).0,
                window_bits,
            });
        self
    }

    /// The compressed frame [`with_deflate`](Self::with_deflate) made (RSV1 set), if
    /// compressing made the message smaller.
    #[cfg(feature = "deflate")]
    pub fn deflated_frame(&self) -> Option<&[u8]> {
        self.deflated.as_ref().map(|d| &d.frame[..])
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("PreparedMessage");
        s.field("kind", &self.kind)
            .field("payload_len", &(self.frame.len() - self.header_len));
        #[cfg(feature = "deflate")]
        s.field(
            "deflated_len",
            &self.deflated.as_ref().map(|d| d.frame.len()),
        );
        s.finish()
    }
}

fn opcode(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
}

/// One whole unmasked frame in one buffer; returns it and its header's length.
fn encode_frame(opcode: OpCode, rsv: u8, payload: &[u8]) -> (Bytes, usize) {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: wire_len(payload.len()),
    };
    let header_len = header.encoded_len();
    let mut frame = BytesMut::with_capacity(header_len + payload.len());
    header.put(&mut frame);
    super::append(&mut frame, payload);
    (frame.freeze(), header_len)
}
