//! The C-visible types: plain `#[repr(C)]` structs and `#[repr(i32)]` enums, named as C
//! names them (cbindgen copies the names and these doc comments into the header).
//!
//! Enums only ever travel from the library to the caller (return values, fields the
//! library writes). Values the caller passes in (a role, a delivery mode, a message
//! kind) are plain `int32_t` parameters that the library checks, because a C caller can
//! put any integer in an enum and a Rust enum with an undeclared value is undefined
//! behaviour.
#![allow(non_camel_case_types)]

/// The version of this ABI: bumped on any incompatible change to a function signature,
/// a struct layout or a constant. Compare with wsengine_abi_version() at run time.
///
/// 2: wsengine_config ends with `deflate` (permessage-deflate), so
/// wsengine_config_default() writes a larger struct than version 1's.
///
/// 3: wsengine_config ends with flush_timeout_ns, message_timeout_ns, the deflate_*
/// limits and the Origin allow-list (allowed_origins, allowed_origin_count), after
/// `deflate`. wsengine_create() still takes the structs of versions 1 and 2 (the fields
/// they lack take their defaults).
pub const WSENGINE_ABI_VERSION: u32 = 3;

/// What every call returns. Zero is success, positive values are non-error outcomes,
/// negative values are errors (wsengine_last_error_message() explains the latest one).
///
/// Fatal errors (PROTOCOL_ERROR, HANDSHAKE_FAILED, TIMEOUT) come from
/// wsengine_poll_event() and are sticky: every later wsengine_poll_event() returns the
/// same code. The other errors leave the connection as it was.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsengine_status {
    /// Success.
    WSENGINE_OK = 0,
    /// Nothing to report now: no event (wsengine_poll_event), no timer armed
    /// (wsengine_next_timeout), the receive buffer took only part of the bytes
    /// (wsengine_recv: poll events, then offer the rest), or it has no room for a read
    /// (wsengine_recv_buf: poll events, then ask again).
    WSENGINE_AGAIN = 1,
    /// A looked-up item is absent: a header, the Origin, a subprotocol index.
    WSENGINE_NOT_FOUND = 2,
    /// A NULL handle or output pointer, a NULL input pointer with a nonzero length, text
    /// that is not UTF-8, an out-of-range value (role, delivery mode, close code, control
    /// payload over 125 bytes, close reason over 123 bytes, bad header name or value, a
    /// subprotocol the client did not offer, an HTTP status outside 100-599, a
    /// wsengine_commit_recv that claims more than wsengine_recv_buf offered or does not
    /// follow it, ...).
    WSENGINE_INVALID_ARGUMENT = -1,
    /// The send buffer holds at least max_send_buffer bytes: transmit first, then retry.
    WSENGINE_BLOCKED = -2,
    /// The opening handshake has not completed.
    WSENGINE_NOT_OPEN = -3,
    /// Our Close frame was sent: no data may follow (received data still arrives).
    WSENGINE_CLOSING = -4,
    /// The connection is over (closed, rejected or failed).
    WSENGINE_CLOSED = -5,
    /// The call does not fit the connection's state: no handshake request awaits an
    /// answer, a fragmented message is (or is not) in progress, the current event is not
    /// the one the accessor reads.
    WSENGINE_INVALID_STATE = -6,
    /// Fatal: the peer broke RFC 6455. A Close frame with wsengine_last_close_code() is
    /// queued: transmit it, then close the transport. 1009 includes a compressed message
    /// that inflates past deflate_max_inflated_size.
    WSENGINE_PROTOCOL_ERROR = -7,
    /// Fatal: the opening handshake failed. A server has an HTTP error response queued
    /// (400 for a malformed request or one that announces a body, 403 for an Origin not
    /// on allowed_origins, 405 for a method other than GET, 426 for a version other than
    /// 13, 431 for an oversized head): transmit it, then close the transport.
    /// wsengine_last_error_message() says why.
    WSENGINE_HANDSHAKE_FAILED = -8,
    /// Fatal: a timer expired. The handshake timer or keepalive
    /// (wsengine_last_close_code() 0 or 1006): nothing is queued, close the transport.
    /// The message timer (message_timeout_ns; wsengine_last_close_code() 1008): a Close
    /// frame with 1008 is queued: transmit it, then close the transport once
    /// wsengine_should_close_transport() (within flush_timeout_ns).
    WSENGINE_TIMEOUT = -9,
    /// The library could not do what was asked for a reason outside the caller's control
    /// (the operating system gave no entropy for a client's keys).
    WSENGINE_INTERNAL_ERROR = -10,
    /// A bug inside the library was caught (a Rust panic). The handle is poisoned: every
    /// later call on it returns WSENGINE_PANIC; only wsengine_destroy() is still useful.
    WSENGINE_PANIC = -11,
}

/// Which end of the connection a handle is (the `role` argument of wsengine_create).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsengine_role {
    /// Opens the connection and sends the opening handshake; masks what it sends.
    WSENGINE_ROLE_CLIENT = 1,
    /// Accepts the connection and answers the handshake.
    WSENGINE_ROLE_SERVER = 2,
}

/// Where a connection is in its lifecycle (wsengine_get_state).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsengine_state {
    /// The opening handshake is under way.
    WSENGINE_STATE_HANDSHAKE = 0,
    /// Messages flow both ways.
    WSENGINE_STATE_OPEN = 1,
    /// We sent a Close frame and wait for the peer's.
    WSENGINE_STATE_CLOSING = 2,
    /// The connection is over (Close frames exchanged, transport ended, or rejected).
    WSENGINE_STATE_CLOSED = 3,
    /// A fatal error (wsengine_poll_event returns it).
    WSENGINE_STATE_FAILED = 4,
}

/// How received data messages are delivered (wsengine_config.delivery).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsengine_delivery {
    /// One TEXT/BINARY event per message (last = true), assembled up to max_message_size.
    WSENGINE_DELIVERY_WHOLE = 0,
    /// TEXT/BINARY events carry each piece as it arrives (last = true on the final one);
    /// every text piece is valid UTF-8 on its own.
    WSENGINE_DELIVERY_STREAMING = 1,
}

/// The kind of a data message (the `kind` argument of wsengine_send_fragment).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsengine_message_kind {
    /// UTF-8 text (opcode 0x1).
    WSENGINE_MESSAGE_TEXT = 1,
    /// Binary data (opcode 0x2).
    WSENGINE_MESSAGE_BINARY = 2,
}

/// The kind of an event (wsengine_event.kind).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wsengine_event_kind {
    /// No event (the event struct after a call that did not return WSENGINE_OK).
    WSENGINE_EVENT_NONE = 0,
    /// Server: a valid opening request arrived. data/len: the request path (with the
    /// query). Read it with the wsengine_request_* functions, then answer with
    /// wsengine_accept() or wsengine_reject(); it stays readable until the first
    /// wsengine_poll_event() after the answer.
    WSENGINE_EVENT_REQUEST = 1,
    /// Client: the server accepted the handshake. data/len: the chosen subprotocol
    /// (len 0 if none). wsengine_response_header() reads the response headers.
    WSENGINE_EVENT_ACCEPTED = 2,
    /// A text message or a piece of one (see `last`); data/len: valid UTF-8.
    WSENGINE_EVENT_TEXT = 3,
    /// A binary message or a piece of one (see `last`).
    WSENGINE_EVENT_BINARY = 4,
    /// A Ping arrived (data/len: its payload); with auto_pong the Pong is already queued.
    WSENGINE_EVENT_PING = 5,
    /// A Pong arrived (data/len: its payload).
    WSENGINE_EVENT_PONG = 6,
    /// The peer's Close frame arrived: close_code (1005 if it carried none) and data/len
    /// the reason (UTF-8). If we had not sent a Close, the echo is already queued.
    WSENGINE_EVENT_CLOSE = 7,
    /// The connection is over; no event follows. `clean`: both Close frames were
    /// exchanged, and close_code is the peer's (1005 if none); otherwise close_code is
    /// 1006 (the transport ended or the close timer expired first).
    WSENGINE_EVENT_CLOSED = 8,
}

/// A byte string: `len` bytes at `data`. Strings are never NUL-terminated; `data` may
/// be NULL only when `len` is 0. When the library writes one, `data` is never NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsengine_bytes {
    /// The first byte.
    pub data: *const u8,
    /// The number of bytes.
    pub len: usize,
}

/// An HTTP header: name and value as byte strings (see wsengine_bytes for NULL rules).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsengine_header {
    /// The header name (ASCII).
    pub name: *const u8,
    /// Length of the name.
    pub name_len: usize,
    /// The raw value.
    pub value: *const u8,
    /// Length of the value.
    pub value_len: usize,
}

/// One event from wsengine_poll_event(). Every pointer in it stays valid until the next
/// wsengine_poll_event() or wsengine_destroy() on the same handle: other calls (sends,
/// accept, transmit) do not invalidate it, so an echo may pass `data` straight to a send.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsengine_event {
    /// What happened (a wsengine_event_kind).
    pub kind: wsengine_event_kind,
    /// The payload, reason, path or subprotocol (see the kinds). Never NULL.
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub len: usize,
    /// TEXT/BINARY: this ends the message (always true with WHOLE delivery).
    pub last: bool,
    /// CLOSED: the closing handshake completed.
    pub clean: bool,
    /// CLOSE and CLOSED: the close status code (RFC 6455 section 7.4); 0 otherwise.
    pub close_code: u16,
}

/// Limits, timers and policy of one connection. Fill it with
/// wsengine_config_init(&cfg, sizeof cfg) (or wsengine_config_default()), then change
/// fields: both also set struct_size, which tells the library which version of this
/// struct the caller was compiled against.
///
/// Times are in nanoseconds; 0 turns a timer off. Sizes are in bytes.
///
/// Versions: ABI 1's struct ends before `deflate`, ABI 2's before flush_timeout_ns;
/// wsengine_create() takes either (struct_size says which), with the defaults for the
/// fields they lack.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsengine_config {
    /// sizeof(wsengine_config) as the caller knows it (set by wsengine_config_init and
    /// wsengine_config_default).
    pub struct_size: usize,
    /// Largest accepted frame payload (default 16 MiB); larger frames fail with 1009.
    pub max_frame_size: u64,
    /// Largest accepted message, summed over its fragments (default 16 MiB); 1009.
    pub max_message_size: u64,
    /// Most frames in one fragmented message (default 131072); more fail with 1008.
    pub max_fragments: u32,
    /// A wsengine_delivery value (default WSENGINE_DELIVERY_WHOLE).
    pub delivery: i32,
    /// Largest HTTP head of the opening handshake (default 16 KiB); a larger request is
    /// answered 431.
    pub max_handshake_size: usize,
    /// Most header lines in the handshake head (default 64).
    pub max_headers: usize,
    /// How many received bytes wsengine_recv() buffers before wsengine_poll_event() must
    /// drain them (default 64 KiB; at least 256 is used), plus one frame header (14
    /// bytes: a message of exactly this size arrives whole in one read).
    pub recv_buffer_size: usize,
    /// Sends fail with WSENGINE_BLOCKED while this many bytes or more wait to be
    /// transmitted (default 4 MiB).
    pub max_send_buffer: usize,
    /// Time for the whole opening handshake (default 10 s; 0: no limit).
    pub handshake_timeout_ns: u64,
    /// After our Close, how long to wait for the peer's (default 5 s; 0: forever).
    pub close_timeout_ns: u64,
    /// Ping the peer after this much silence (default 30 s, timeout 10 s; 0: no keepalive).
    pub keepalive_interval_ns: u64,
    /// With keepalive: fail with WSENGINE_TIMEOUT unless something arrives this long
    /// after the Ping (must be nonzero when keepalive_interval_ns is).
    pub keepalive_timeout_ns: u64,
    /// Nonzero: answer every Ping with a Pong (default 1, as RFC 6455 requires).
    pub auto_pong: u8,
    /// Nonzero: seed the client's RNG (masking keys, Sec-WebSocket-Key) with rng_seed.
    /// For tests only: RFC 6455 section 10.3 requires unpredictable keys. Default 0: the
    /// operating system seeds it.
    pub rng_seed_set: u8,
    /// The seed used when rng_seed_set is nonzero.
    pub rng_seed: [u8; 32],
    /// permessage-deflate (RFC 7692): off by default (deflate.enabled = 0).
    pub deflate: wsengine_deflate_config,
    // ---- ABI 3: the fields below are absent from the structs of ABI 1 and 2 ----
    /// Once the connection is over (Close frames exchanged, a protocol error, a rejected
    /// handshake, the peer's EOF), how long what is still queued gets to be written
    /// (default 5 s; 0: no limit). Then wsengine_should_close_transport() returns 1
    /// whatever is left, so a peer that stopped reading cannot hold the connection.
    pub flush_timeout_ns: u64,
    /// A data message must end within this time of its first frame (default 30 s; 0: no
    /// limit), else wsengine_poll_event() fails with WSENGINE_TIMEOUT and a Close frame
    /// with 1008 (policy violation) is queued.
    pub message_timeout_ns: u64,
    /// Largest inflated size of a received compressed message (default 1 MiB), separate
    /// from max_message_size (the smaller of the two applies); larger fails with 1009
    /// (WSENGINE_PROTOCOL_ERROR). 0: no limit of its own (max_message_size applies).
    pub deflate_max_inflated_size: usize,
    /// Messages larger than this many bytes are sent uncompressed (default 1 MiB; for a
    /// fragmented message the first fragment decides). 0: every message of at least one
    /// byte goes uncompressed; SIZE_MAX: no upper bound (min_compress_size still applies).
    pub deflate_max_compress_size: usize,
    /// Most inflated bytes per second one connection decompresses (default 0: no limit).
    /// Over the budget (one second's worth may come in a burst), compressed payload waits
    /// in the receive buffer until wsengine_handle_timeout() at wsengine_next_timeout()
    /// lets it go on (wsengine_recv() takes less meanwhile).
    pub deflate_max_inflate_rate: u64,
    /// Server: the origins whose pages may connect (RFC 6455 section 10.2), an array of
    /// allowed_origin_count byte strings (UTF-8, not NUL-terminated), each an origin
    /// `scheme://host[:port]` (`https://example.com`; a scheme's default port is the
    /// same as none), the same with a host `*.domain` (any subdomain of domain, not the
    /// domain itself), or `null`. A request whose Origin is not listed
    /// is answered 403 and fails with WSENGINE_HANDSHAKE_FAILED before
    /// WSENGINE_EVENT_REQUEST; a request without Origin (not a browser) is allowed.
    /// Default NULL: no check (any Origin; see wsengine_request_origin). Non-NULL with
    /// allowed_origin_count 0: every request that carries an Origin is refused. An entry
    /// that is not one of the forms above makes wsengine_create() fail with
    /// WSENGINE_INVALID_ARGUMENT. The strings are copied by wsengine_create(): the caller
    /// may free them afterwards. Clients ignore the list.
    pub allowed_origins: *const wsengine_bytes,
    /// Number of entries at allowed_origins.
    pub allowed_origin_count: usize,
}

/// The permessage-deflate (RFC 7692) policy of a connection: wsengine_config.deflate.
/// wsengine_config_default() fills it with the defaults below, turned off.
///
/// With `enabled` set, a client offers the extension in its opening request and a server
/// accepts the first acceptable offer (wsengine_accept does the negotiation); messages
/// are then compressed and decompressed inside the library (compressed text must still
/// inflate to valid UTF-8; max_message_size counts inflated bytes). Negotiation may
/// still end without the extension (the peer did not offer or accept it):
/// wsengine_get_deflate_params() says.
///
/// The four negotiation fields mean the same on both sides, in the RFC's terms
/// (section 7.1): `server_no_context_takeover`: a client asks for it, a server announces
/// it and compresses each message on its own; `client_no_context_takeover`: a client
/// promises it, a server requires it; `server_max_window_bits`: a client asks the server
/// for at most this LZ77 window, a server uses at most this window;
/// `client_max_window_bits`: a client offers it and compresses with at most this window,
/// a server caps the client's window with it when the client offered the parameter.
///
/// wsengine_create() refuses (WSENGINE_INVALID_ARGUMENT) a level above 9 or window bits
/// other than 0 or 8 to 15, even with `enabled` 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsengine_deflate_config {
    /// Nonzero: negotiate permessage-deflate. Default 0.
    pub enabled: u8,
    /// zlib compression level, 0 (store) to 9 (smallest). Default 6.
    pub level: u8,
    /// Nonzero: the server_no_context_takeover parameter (see above). Default 0.
    pub server_no_context_takeover: u8,
    /// Nonzero: the client_no_context_takeover parameter (see above). Default 0.
    pub client_no_context_takeover: u8,
    /// The server_max_window_bits parameter, 8 to 15; 0 leaves it out (a 32 KiB
    /// window). Default 0.
    pub server_max_window_bits: u8,
    /// The client_max_window_bits parameter, 8 to 15; 0: a client offers it without a
    /// value (accepting any window the server assigns), a server answers only what the
    /// client asked. Default 0.
    pub client_max_window_bits: u8,
    /// Nonzero: a direction without context takeover keeps its zlib state allocated
    /// between messages and resets it; 0 (default): the state is allocated per message,
    /// so an idle connection without context takeover holds none.
    pub retain_memory: u8,
    /// Messages shorter than this many bytes are sent uncompressed. Default 32.
    pub min_compress_size: usize,
}

/// The permessage-deflate parameters in force on a connection (RFC 7692 section 7.1),
/// per direction: from wsengine_get_deflate_params() once negotiated, or given to
/// wsengine_create_open() by a host that negotiated the extension itself.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct wsengine_deflate_params {
    /// Nonzero: the server starts every message with an empty window.
    pub server_no_context_takeover: u8,
    /// Nonzero: the client starts every message with an empty window.
    pub client_no_context_takeover: u8,
    /// The largest window the server compresses with, 8 to 15 (0 given to
    /// wsengine_create_open means 15, the parameter's absence).
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with, 8 to 15 (0: 15, as above).
    pub client_max_window_bits: u8,
}

/// A client's opening handshake, for wsengine_create() with WSENGINE_ROLE_CLIENT. The
/// library copies everything it needs before wsengine_create() returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wsengine_client_request {
    /// The ws:// URL (UTF-8, not NUL-terminated); required.
    pub url: *const u8,
    /// Length of the URL.
    pub url_len: usize,
    /// The Origin header value, or NULL for none.
    pub origin: *const u8,
    /// Length of the origin.
    pub origin_len: usize,
    /// Subprotocols to offer, in order of preference (NULL if protocol_count is 0).
    pub protocols: *const wsengine_bytes,
    /// Number of subprotocols.
    pub protocol_count: usize,
    /// Extra request headers (NULL if header_count is 0); names must be UTF-8.
    pub headers: *const wsengine_header,
    /// Number of extra headers.
    pub header_count: usize,
}
