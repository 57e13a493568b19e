//! Errors, sorted by blame, each mapped to the wire right beside its type.
//!
//! - [`ProtocolError`]: the peer broke RFC 6455. [`ProtocolError::close_code`] gives the
//!   status code of the Close frame that the connection has already queued.
//! - [`HandshakeError`]: the opening handshake failed. On the server side
//!   [`HandshakeError::status_hint`] gives the HTTP status of the error response that has
//!   already been queued; on the client side it explains why the response was refused.
//! - [`Timeout`]: a protocol timer expired (handshake, keepalive, an unfinished message).
//! - [`SendError`]: the caller misused the API; the connection is unchanged.
//!
//! [`Error`] is what [`Connection::poll_event`](crate::Connection::poll_event) returns: a
//! fatal condition. It is sticky: every later call returns a clone of the same error, while
//! `poll_transmit` still drains whatever Close frame or HTTP response was queued.

use crate::prelude::*;

use core::fmt;

use bytes::Bytes;

use crate::frame::CloseCode;
use crate::header::Header;

/// A fatal error of a [`Connection`](crate::Connection). Sticky: it repeats on every
/// later `poll_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455 after the handshake. A Close frame with
    /// [`ProtocolError::close_code`] is queued for transmission.
    Protocol(ProtocolError),
    /// The opening handshake failed. On a server the HTTP error response is queued.
    Handshake(HandshakeError),
    /// A protocol timer expired.
    Timeout(Timeout),
}

impl Error {
    /// The close code that describes this failure to the application (RFC 6455 §7.4.1):
    /// the code sent to the peer for protocol errors and for [`Timeout::Message`] (1008),
    /// 1006 (abnormal closure, never sent) for the keepalive timeout, `None` when the
    /// handshake never completed.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(e) => Some(e.close_code()),
            Self::Handshake(_) => None,
            Self::Timeout(Timeout::Handshake) => None,
            Self::Timeout(Timeout::Keepalive) => Some(CloseCode::ABNORMAL),
            Self::Timeout(Timeout::Message) => Some(CloseCode::POLICY),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::Timeout(t) => write!(f, "timed out: {t}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

/// Which protocol timer expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// The opening handshake did not complete in time (a peer that sends half a request
    /// and stalls: slowloris). Nothing is sent; the transport should be closed.
    Handshake,
    /// Keepalive: a Ping went unanswered and nothing else arrived before the deadline.
    /// Nothing is sent (the peer is not reading); the transport should be closed.
    Keepalive,
    /// A data message did not end within `Config::message_timeout` of its first frame.
    /// The peer is still talking (it may only be slow, or holding the message open on
    /// purpose), so a Close frame with 1008 (policy violation, RFC 6455 §7.4.1: "a
    /// message that violates its policy") is queued, and `Config::flush_timeout` bounds
    /// how long it may take to go out.
    Message,
}

impl Timeout {
    /// Whether the transport should be closed at once, whatever is still queued: the
    /// peer has shown it is not reading (handshake, keepalive). A message timeout sends
    /// its Close frame first.
    pub(crate) fn drops_transport(self) -> bool {
        matches!(self, Self::Handshake | Self::Keepalive)
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Handshake => "opening handshake did not complete",
            Self::Keepalive => "peer did not answer the keepalive ping",
            Self::Message => "data message did not complete in time",
        })
    }
}

/// The peer broke RFC 6455. Every variant names the rule; [`close_code`](Self::close_code)
/// maps it to the status code of the Close frame that is sent (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1-3 set without a negotiated extension that defines them (§5.2). Holds the
    /// three bits as they appear in the first header byte (mask 0x70).
    ReservedBits(u8),
    /// An opcode that §5.2 reserves (0x3-0x7, 0xB-0xF).
    ReservedOpcode(u8),
    /// A 64-bit payload length with its most significant bit set (§5.2).
    LengthMsbSet,
    /// A payload length not written in the minimal number of bytes (§5.2).
    NonMinimalLength,
    /// A control frame with FIN clear (§5.5).
    FragmentedControlFrame,
    /// A control frame whose payload is longer than 125 bytes (§5.5).
    ControlFrameTooLong(u64),
    /// A client sent an unmasked frame (§5.1).
    UnmaskedFrame,
    /// A server sent a masked frame (§5.1).
    MaskedFrame,
    /// A continuation frame with no fragmented message in progress (§5.4).
    UnexpectedContinuation,
    /// A new Text or Binary frame while a fragmented message is in progress (§5.4).
    ExpectedContinuation,
    /// Text (or a close reason) that is not valid UTF-8 (§8.1).
    InvalidUtf8,
    /// A frame whose payload exceeds `Config::max_frame_size`.
    FrameTooBig {
        /// The declared payload length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A message whose payload would exceed `Config::max_message_size`.
    MessageTooBig {
        /// The message length including the frame that crossed the limit.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A fragmented message with more frames than `Config::max_fragments`.
    TooManyFragments(u32),
    /// A Close frame with a one-byte payload (§5.5.1: a body starts with a 2-byte code).
    CloseTooShort,
    /// A Close frame with a status code that may not appear on the wire (§7.4).
    InvalidCloseCode(u16),
    /// A compressed message (RSV1, RFC 7692) whose payload is not valid DEFLATE data.
    InvalidCompressedData,
    /// RSV1 on a control frame or a continuation frame: RFC 7692 §6 allows it only on
    /// the first frame of a data message.
    MisplacedCompressionBit,
    /// A compressed message (RFC 7692) that inflates to more than
    /// `DeflateConfig::max_inflated_size` bytes. Close code 1009 (RFC 6455 §7.4.1: "a
    /// message that is too big for it to process"; see the `extensions::deflate` docs).
    InflatedTooBig {
        /// The configured limit, in decompressed bytes.
        max: u64,
    },
}

impl ProtocolError {
    /// The status code of the Close frame sent for this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } | Self::InflatedTooBig { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            Self::TooManyFragments(_) => CloseCode::POLICY,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits(b) => write!(f, "reserved bits {b:#04x} set without an extension"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::LengthMsbSet => f.write_str("64-bit payload length with the top bit set"),
            Self::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::ControlFrameTooLong(n) => write!(f, "control frame of {n} bytes (max 125)"),
            Self::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            Self::MaskedFrame => f.write_str("masked frame from a server"),
            Self::UnexpectedContinuation => f.write_str("continuation frame with no message"),
            Self::ExpectedContinuation => f.write_str("new message inside a fragmented message"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message or close reason"),
            Self::FrameTooBig { len, max } => write!(f, "frame of {len} bytes (max {max})"),
            Self::MessageTooBig { len, max } => write!(f, "message of {len}+ bytes (max {max})"),
            Self::TooManyFragments(max) => write!(f, "message in more than {max} fragments"),
            Self::CloseTooShort => f.write_str("close frame with a 1-byte payload"),
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::InvalidCompressedData => f.write_str("compressed message does not inflate"),
            Self::MisplacedCompressionBit => f.write_str("RSV1 on a control or continuation frame"),
            Self::InflatedTooBig { max } => {
                write!(f, "compressed message inflates to over {max} bytes")
            }
        }
    }
}

impl core::error::Error for ProtocolError {}

/// A server's answer to the opening request other than 101: what the client got
/// instead of the upgrade ([`HandshakeError::Rejected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers, names as sent.
    pub headers: Vec<Header>,
    /// The response body: `Content-Length` bytes when given (up to
    /// `Config::max_handshake_size`), otherwise the bytes that arrived with the head.
    pub body: Bytes,
}

/// The opening handshake failed (RFC 6455 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The HTTP head could not be parsed (the reason comes from the HTTP parser).
    MalformedHttp(&'static str),
    /// The HTTP head exceeded `Config::max_handshake_size` before it was complete.
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More header lines than `Config::max_headers`.
    TooManyHeaders,
    /// The request method is not `GET` (§4.2.1 item 1).
    MethodNotGet,
    /// The HTTP version is older than 1.1 (§4.2.1 item 1, §4.2.2 for responses).
    HttpVersion,
    /// No `Host` header (§4.2.1 item 2).
    MissingHost,
    /// No `websocket` token in `Upgrade` (§4.2.1 item 3, §4.1 response rule 2).
    MissingUpgrade,
    /// No `Upgrade` token in `Connection` (§4.2.1 item 4, §4.1 response rule 3).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing, repeated, or does not decode to 16 bytes (§4.2.1 item 5).
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not 13 (§4.2.1 item 6); answered with 426 and
    /// `Sec-WebSocket-Version: 13` (§4.4).
    UnsupportedVersion,
    /// The peer closed the transport before the handshake completed.
    UnexpectedEof,
    /// The server answered with a status other than 101 (§4.1: "If the status code
    /// received from the server is not 101, the client handles the response per HTTP").
    /// Boxed: the error stays small, and so does every `poll_event` result.
    Rejected(Box<RefusedResponse>),
    /// `Sec-WebSocket-Accept` is missing or does not match the key (§4.1 response rule 4).
    AcceptMismatch,
    /// The server chose a subprotocol the client did not offer (§4.1 response rule 6).
    ProtocolNotOffered(String),
    /// The server answered with an extension the client did not offer (§4.1 response rule 5).
    ExtensionNotOffered(String),
    /// A header value that must follow a grammar does not (e.g. `Sec-WebSocket-Extensions`,
    /// §9.1). Holds the header name.
    InvalidHeader(&'static str),
    /// The opening request announces a body: a `Content-Length` other than 0 or any
    /// `Transfer-Encoding`. §4.1's GET has none, and bytes that one HTTP parser takes
    /// for a body and another for WebSocket frames are request smuggling. Answered 400.
    RequestBody,
    /// The request's `Origin` is not on `Config::allowed_origins`
    /// ([`AllowedOrigins`](crate::handshake::AllowedOrigins); §4.2.2 item 4, §10.2).
    /// Answered 403 Forbidden. The refused value is not echoed in the response.
    OriginRefused,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with (RFC 6455 §4.2.2, §4.4):
    /// 426 for an unsupported version, 431 for an oversized head, 405 for a non-GET
    /// method, 403 for a refused `Origin`, 400 otherwise.
    pub fn status_hint(&self) -> u16 {
        match self {
            Self::UnsupportedVersion => 426,
            Self::HeadTooLarge { .. } | Self::TooManyHeaders => 431,
            Self::MethodNotGet => 405,
            Self::OriginRefused => 403,
            Self::Rejected(response) => response.status,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedHttp(why) => write!(f, "malformed HTTP: {why}"),
            Self::HeadTooLarge { limit } => write!(f, "HTTP head larger than {limit} bytes"),
            Self::TooManyHeaders => f.write_str("too many header lines"),
            Self::MethodNotGet => f.write_str("method is not GET"),
            Self::HttpVersion => f.write_str("HTTP version older than 1.1"),
            Self::MissingHost => f.write_str("missing Host header"),
            Self::MissingUpgrade => f.write_str("Upgrade header lacks the websocket token"),
            Self::MissingConnectionUpgrade => {
                f.write_str("Connection header lacks the Upgrade token")
            }
            Self::InvalidKey => f.write_str("missing or invalid Sec-WebSocket-Key"),
            Self::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            Self::UnexpectedEof => f.write_str("connection closed during the handshake"),
            Self::Rejected(response) => {
                write!(f, "server answered with status {}", response.status)
            }
            Self::AcceptMismatch => f.write_str("Sec-WebSocket-Accept does not match the key"),
            Self::ProtocolNotOffered(p) => write!(f, "server chose subprotocol {p:?} not offered"),
            Self::ExtensionNotOffered(e) => write!(f, "server chose extension {e:?} not offered"),
            Self::InvalidHeader(name) => write!(f, "invalid {name} header"),
            Self::RequestBody => f.write_str("opening request with a body"),
            Self::OriginRefused => f.write_str("Origin not allowed"),
        }
    }
}

impl core::error::Error for HandshakeError {}

/// The caller misused the API. The connection is unchanged and stays usable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The send buffer holds `Config::max_send_buffer` bytes or more. Drain it with
    /// `poll_transmit`/`advance_transmit`; when `wants_write()` turns false the send will fit.
    Blocked,
    /// The opening handshake has not completed.
    NotOpen,
    /// A Close frame has been sent; no data may follow (RFC 6455 §5.5.1).
    Closing,
    /// The connection has failed or finished.
    Closed,
    /// A control frame payload longer than 125 bytes (§5.5).
    ControlTooLong,
    /// A close code that may not be sent (§7.4: 1005, 1006, 1015 and unassigned codes).
    InvalidCloseCode(u16),
    /// A close reason longer than 123 bytes (§5.5: 125 minus the 2-byte code).
    CloseReasonTooLong,
    /// A whole message or a new first fragment while a fragmented send is unfinished.
    MessageInProgress,
    /// Text that is not valid UTF-8 (only possible for fragmented text sends).
    InvalidUtf8,
    /// `accept`/`reject` called when no request is waiting for an answer.
    NoPendingRequest,
    /// `accept` named a subprotocol the client did not offer (§4.2.2).
    ProtocolNotOffered(String),
    /// A header name or value that would corrupt the HTTP head (CR, LF, or a bad name),
    /// or a status code outside 100-599.
    InvalidHeader,
    /// [`send_prepared`](crate::Connection::send_prepared) on a client connection: a
    /// [`PreparedMessage`](crate::PreparedMessage) is an unmasked frame, and RFC 6455
    /// §5.3 says "a client MUST mask all frames that it sends to the server". Send the
    /// message with [`send`](crate::Connection::send) instead, which masks it.
    ClientMustMask,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked => f.write_str("send buffer full"),
            Self::NotOpen => f.write_str("handshake not complete"),
            Self::Closing => f.write_str("close frame already sent"),
            Self::Closed => f.write_str("connection closed"),
            Self::ControlTooLong => f.write_str("control frame payload over 125 bytes"),
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::CloseReasonTooLong => f.write_str("close reason over 123 bytes"),
            Self::MessageInProgress => f.write_str("a fragmented message is in progress"),
            Self::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            Self::NoPendingRequest => f.write_str("no handshake request awaits an answer"),
            Self::ProtocolNotOffered(p) => write!(f, "subprotocol {p:?} was not offered"),
            Self::InvalidHeader => f.write_str("invalid header name, value or status"),
            Self::ClientMustMask => f.write_str("a client cannot send an unmasked prepared frame"),
        }
    }
}

impl core::error::Error for SendError {}
