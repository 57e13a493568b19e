//! The connection state machine: handshake, frames, message rules, closing and timers,
//! tied together for one role.

use crate::prelude::*;

// permessage-deflate (RFC 7692): every piece of it the connection uses, in one file;
// without the feature, the same functions as no-ops and a state that cannot exist.
#[cfg_attr(feature = "deflate", path = "deflate.rs")]
#[cfg_attr(not(feature = "deflate"), path = "no_deflate.rs")]
mod deflate;
mod prepared;
mod recv;
mod recv_buffer;
mod send;
pub(crate) mod state;
mod timers;
mod transmit;

use core::fmt;

use bytes::{Bytes, BytesMut};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::Config;
use crate::error::Error;
use crate::frame::{CloseCode, CloseFrame, MAX_HEADER_LEN};
use crate::handshake::{ClientRequest, Request, RequestError, Response};
pub use crate::role::Role;
use crate::time::Instant;
pub use crate::utf8::Utf8Bytes;
use crate::utf8::Utf8Validator;

pub use self::prepared::PreparedMessage;
use self::recv_buffer::RecvBuffer;
use self::state::{Input, Phase, Violation};
use self::timers::{Timer, Timers};
use self::transmit::Transmit;

/// Where the connection is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// The opening handshake is under way.
    Handshake,
    /// Messages flow both ways.
    Open,
    /// We sent a Close frame and wait for the peer's; received data is still delivered.
    Closing,
    /// The connection is over: Close frames exchanged, transport ended, or a server
    /// rejected the handshake. Drain `poll_transmit`, then see
    /// [`Connection::should_close_transport`].
    Closed,
    /// A fatal error ([`Connection::poll_event`] returns it). Drain `poll_transmit` (it
    /// holds the Close frame or HTTP error response), then close the transport.
    Failed,
}

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

/// What the connection reports to the application, from [`Connection::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a valid opening request arrived. Answer it with
    /// [`Connection::accept`] or [`Connection::reject`]; nothing else happens until then.
    Request(Box<Request>),
    /// Client: the server accepted the handshake (status 101, all checks passed).
    Accepted(Box<Response>),
    /// A text message, or with [`Delivery::Streaming`](crate::Delivery) a piece of one
    /// (`last` marks the final piece). Each piece is valid UTF-8 on its own.
    Text {
        /// The text.
        data: Utf8Bytes,
        /// Whether this ends the message.
        last: bool,
    },
    /// A binary message, or a piece of one.
    Binary {
        /// The payload.
        data: Bytes,
        /// Whether this ends the message.
        last: bool,
    },
    /// A Ping arrived; the Pong is already queued when `Config::auto_pong` is on.
    Ping(Bytes),
    /// A Pong arrived.
    Pong(Bytes),
    /// The peer's Close frame arrived (`None`: it carried no status code). If we had not
    /// sent a Close yet, the echo of its code is already queued (RFC 6455 §5.5.1).
    Close(Option<CloseFrame>),
    /// The connection is over; no event follows. `clean` is true when both Close frames
    /// were exchanged, and `code` is then the peer's code (1005 if it sent none); when
    /// the transport ended first or the close timer expired, `code` is 1006 (§7.1.5).
    Closed {
        /// The close status (RFC 6455 §7.1.5).
        code: CloseCode,
        /// Whether the closing handshake completed.
        clean: bool,
    },
}

/// The receive side's progress through the current frame and message.
#[derive(Debug, Default)]
struct RecvState {
    /// The frame whose payload is being read.
    frame: Option<RecvFrame>,
    /// The data message in progress (possibly across fragments).
    message: Option<RecvMessage>,
    /// Validates text messages as their bytes arrive.
    utf8: Utf8Validator,
    /// Whole-message delivery: payload of a message that spans frames or reads (a host
    /// using `recv_buf` reads such payload straight into it).
    assembly: RecvBuffer,
    /// Size of the last assembled message: a new fragmented message reserves as much,
    /// so a stream of similar messages costs one allocation each.
    last_assembled: usize,
    /// `assembly` has held bytes since it was last replaced by an empty buffer: it may
    /// hold an allocation even where its `capacity()` reads 0 (a message was split out
    /// of it). Checked instead of replacing the buffer each time input runs out, which
    /// would put a drop and a store on every read, for every connection.
    assembly_used: bool,
}

#[derive(Debug, Clone, Copy)]
struct RecvFrame {
    header: crate::frame::FrameHeader,
    /// Payload bytes not yet taken from the receive buffer.
    remaining: u64,
    /// Position in the masking key of the next payload byte.
    mask_phase: usize,
    /// Payload bytes at the front of the receive buffer that are already unmasked and
    /// validated, kept there so a one-frame message is split out without a copy.
    held: usize,
}

#[derive(Debug, Clone, Copy)]
struct RecvMessage {
    kind: MessageKind,
    /// Payload length announced so far by the message's frame headers.
    len: u64,
    fragments: u32,
    /// The first frame had RSV1 (permessage-deflate): the payload is inflated.
    compressed: bool,
}

/// Automatic Pongs that may wait unwritten in the transmit buffer before newer Pings
/// are coalesced into one (RFC 6455 §5.5.3): enough for a burst of Pings read together
/// to be answered one by one, few enough that a ping flood from a peer that does not
/// read costs about 2 KiB.
pub(crate) const MAX_UNWRITTEN_PONGS: u8 = 16;

/// How many [`IoSlice`](std::io::IoSlice)s a host gives
/// [`Connection::poll_transmit_vectored`] for one write: well under any system's
/// `IOV_MAX`, and more runs than a connection holds in practice (each large owned
/// payload is one, the frames around them one each).
pub const MAX_TRANSMIT_SEGMENTS: usize = 64;

/// What an opening handshake done elsewhere negotiated, for [`Connection::upgraded`]:
/// the extensions in use (RFC 6455 §9). `Negotiated::default()` is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// permessage-deflate (RFC 7692) with these parameters, as the server's
    /// `Sec-WebSocket-Extensions` answered (see
    /// [`negotiate_server`](crate::extensions::deflate::negotiate_server)).
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::extensions::deflate::DeflateParams>,
}

impl Negotiated {
    /// permessage-deflate with `params`.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn deflate(mut self, params: crate::extensions::deflate::DeflateParams) -> Self {
        self.deflate = Some(params);
        self
    }
}

/// The handshake data each role keeps.
#[derive(Debug)]
enum Handshake {
    /// The request waits boxed: a server connection holds it only between
    /// `Event::Request` and `accept`/`reject`, and an inline one would add its size to
    /// every connection for life.
    Server { request: Option<Box<Request>> },
    Client {
        request: Box<ClientRequest>,
        key: String,
    },
}

/// A WebSocket connection as a pure state machine: bytes in, events and bytes out,
/// time passed in. It owns no socket, thread or clock.
///
/// # Calling protocol
///
/// Every public method belongs to one of five groups:
///
/// - **constructors**: [`server`](Self::server), [`client`](Self::client), and
///   [`upgraded`](Self::upgraded) for a handshake done elsewhere.
/// - **(A) getters** on `&self`, which change nothing: [`role`](Self::role),
///   [`state`](Self::state), [`config`](Self::config), [`wants_write`](Self::wants_write),
///   [`transmit_len`](Self::transmit_len), [`buffered_bytes`](Self::buffered_bytes),
///   [`is_send_blocked`](Self::is_send_blocked),
///   [`recv_capacity`](Self::recv_capacity),
///   [`should_close_transport`](Self::should_close_transport), `deflate_params`
///   (feature `deflate`).
/// - **(B) transport and timer input**: [`recv`](Self::recv) (bytes from the peer), or
///   [`recv_buf`](Self::recv_buf) then [`commit_recv`](Self::commit_recv) (the host
///   reads into the connection's own buffer: no copy),
///   [`recv_eof`](Self::recv_eof) (the peer ended the stream),
///   [`handle_timeout`](Self::handle_timeout).
/// - **(C) application commands**: [`accept`](Self::accept)/[`reject`](Self::reject)
///   (server, after [`Event::Request`]), [`send`](Self::send) (an owned
///   [`Message`](crate::Message): text, binary, ping, pong or close), the borrowed
///   shortcuts [`send_text`](Self::send_text) and [`send_binary`](Self::send_binary),
///   [`send_prepared`](Self::send_prepared) (server: one frame encoded for many
///   connections), [`send_uncompressed`](Self::send_uncompressed),
///   [`send_fragment`](Self::send_fragment), [`close`](Self::close). Which command is
///   legal in which [`State`] is one table (`connection/state.rs`); a command it refuses
///   is a [`SendError`](crate::SendError) and changes nothing.
/// - **(D) polls** for output: [`poll_event`](Self::poll_event),
///   [`poll_transmit`](Self::poll_transmit) or
///   [`poll_transmit_vectored`](Self::poll_transmit_vectored) (feature `std`), each
///   followed by [`advance_transmit`](Self::advance_transmit),
///   [`poll_timeout`](Self::poll_timeout).
///
/// The simplest correct use: after every (B) or (C) call, run the polls in this order
/// until they have nothing more:
///
/// 1. `poll_event` until `Ok(None)` (parsing happens here, lazily; each event may lead
///    to (C) calls);
/// 2. write `poll_transmit` to the transport and `advance_transmit` by what was written;
/// 3. `poll_timeout`, and arrange to call `handle_timeout` then.
///
/// **Time.** Instants never go backwards. `poll_timeout` may return an instant in the
/// past (a timer that an event without a time of its own has just started): call
/// `handle_timeout` at once. Spurious `handle_timeout` calls are harmless.
///
/// **End of stream.** Call `recv_eof` when the transport reports EOF; a connection that
/// ends without a Close frame reports [`Event::Closed`] with code 1006.
///
/// **Errors.** `poll_event` errors are fatal and sticky: every later call returns the
/// same error. Stop reading, drain `poll_transmit` (the Close frame or HTTP error
/// response is queued there), then close the transport. Misuse of the API is a
/// [`SendError`](crate::SendError) and leaves the connection as it was.
///
/// **Closing the transport.** Close it once [`should_close_transport`](Self::should_close_transport)
/// is true: at once for a server after the closing handshake, after the server's EOF or
/// the close timer for a client (RFC 6455 §7.1.1: the server closes TCP first). A peer
/// that stops reading cannot hold a connection that is over: what is still queued gets
/// [`Config::flush_timeout`], then it turns true anyway (keep calling `handle_timeout`
/// at `poll_timeout`).
pub struct Connection {
    role: Role,
    config: Config,
    phase: Phase,
    handshake: Handshake,
    /// How far the handshake head has been searched and parsed (parsed once, not per read).
    head_scan: crate::handshake::HeadScan,
    /// Received bytes not yet turned into events, and the room hosts read into.
    rx: RecvBuffer,
    /// Encoded bytes waiting for the transport.
    tx: Transmit,
    /// The transport reported end of stream.
    eof: bool,
    /// Bytes arrived since the keepalive timer last looked.
    activity: bool,
    /// The room `recv_buf` last handed out is in the message being assembled (a large
    /// frame's payload), not in the receive buffer.
    recv_offer_in_message: bool,
    recv: RecvState,
    /// A fragmented message being sent, and its text validator.
    send_message: Option<MessageKind>,
    send_utf8: Utf8Validator,
    /// The latest Ping payload still to be answered: while `MAX_UNWRITTEN_PONGS`
    /// automatic Pongs wait unwritten (or the send buffer is full), newer Pings replace
    /// it here instead of queuing a Pong each.
    pending_pong: Option<Bytes>,
    /// Transmit bytes up to and including the last automatic Pong that are not written
    /// yet (0: none waits).
    pong_unsent: usize,
    /// Automatic Pongs queued since the transmit buffer last had none unwritten.
    pongs_unwritten: u8,
    /// Our Close frame is queued (or sent): never a second one (RFC 6455 §5.5.1).
    close_queued: bool,
    /// The peer is not reading (a timer gave up on it): the transport is to be closed
    /// now, whatever still waits to be written.
    give_up: bool,
    /// Transmit bytes up to and including the last keepalive Ping that are not written
    /// yet (0: none waits), so at most one keepalive Ping is ever queued.
    keepalive_unsent: usize,
    /// The `Closed` event still to be reported (queued on entering `Phase::Closed`; see
    /// `state`'s docs for the state kept outside the table).
    closed_event: Option<Event>,
    /// Why the connection failed: `Some` exactly while the phase is `Phase::Failed`,
    /// and what `poll_event` returns from then on.
    error: Option<Error>,
    /// Client role only: mask keys (RFC 6455 §5.3) and nothing else. Boxed: servers,
    /// the many, never mask and should not carry a ChaCha state inline.
    rng: Option<Box<StdRng>>,
    timers: Timers,
    /// The latest instant the host passed in.
    now: Instant,
    /// permessage-deflate, once negotiated (always `None` without the feature). Boxed:
    /// connections without it should not carry its state inline.
    deflate: Option<Box<deflate::DeflateState>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("rx", &self.rx.len())
            .field("tx", &self.tx.len())
            .field("eof", &self.eof)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server-side connection that waits for the client's opening request
    /// (RFC 6455 §4.2). `now` starts the handshake timer.
    pub fn server(config: Config, now: Instant) -> Self {
        Self::new(
            Role::Server,
            config,
            Handshake::Server { request: None },
            None,
            now,
        )
    }

    /// A client-side connection whose opening request (RFC 6455 §4.1) is queued for
    /// transmission at once. The `Sec-WebSocket-Key` and every masking key come from
    /// an RNG (ChaCha12) seeded by [`Config::rng_seed`] (see [`Config::seed_from`]) or,
    /// with the `std` feature, the operating system. Without `std` and without a seed
    /// this fails with [`RequestError::Entropy`].
    pub fn client(
        request: ClientRequest,
        config: Config,
        now: Instant,
    ) -> Result<Self, RequestError> {
        let mut rng = seeded_rng(&config)?;
        // RFC 7692 §5: offer permessage-deflate unless the application already did.
        let request = deflate::with_offer(request, &config);
        let key = crate::handshake::generate_key(&mut rng);
        let mut head = Vec::new();
        request.write(&key, &mut head)?;
        let mut conn = Self::new(
            Role::Client,
            config,
            Handshake::Client {
                request: Box::new(request),
                key,
            },
            Some(rng),
            now,
        );
        conn.tx.extend_from_slice(&head);
        Ok(conn)
    }

    /// A connection whose opening handshake was done by someone else (an HTTP server
    /// that parsed the upgrade itself, see [`handshake::check_request`](crate::handshake::check_request)
    /// and [`handshake::accept_headers`](crate::handshake::accept_headers)): it starts in
    /// [`State::Open`] and reads and writes frames only, with the extensions that
    /// handshake `negotiated` (permessage-deflate runs with `Config::deflate`'s policy,
    /// or the defaults when that is `None`). A client-role connection needs its RNG for
    /// masking keys, as in [`client`](Self::client).
    pub fn upgraded(
        role: Role,
        config: Config,
        now: Instant,
        negotiated: Negotiated,
    ) -> Result<Self, RequestError> {
        let rng = match role {
            Role::Client => Some(seeded_rng(&config)?),
            Role::Server => None,
        };
        let handshake = Handshake::Server { request: None };
        let mut conn = Self::new(role, config, handshake, rng, now);
        conn.advance(Input::UpgradedElsewhere);
        conn.deflate = deflate::from_negotiated(&negotiated, role, &conn.config).map(Box::new);
        Ok(conn)
    }

    /// The negotiated permessage-deflate parameters, if any.
    #[cfg(feature = "deflate")]
    pub fn deflate_params(&self) -> Option<crate::extensions::deflate::DeflateParams> {
        self.deflate.as_ref().map(|d| d.params)
    }

    /// RSV bits a negotiated extension gives a meaning to (RFC 6455 §5.2).
    fn allowed_rsv(&self) -> u8 {
        if self.deflate.is_some() {
            deflate::RSV1
        } else {
            0
        }
    }

    fn new(
        role: Role,
        config: Config,
        handshake: Handshake,
        rng: Option<StdRng>,
        now: Instant,
    ) -> Self {
        let handshake_timer = match config.handshake_timeout {
            Some(d) => Timer::after(now, d),
            None => Timer::Off,
        };
        Self {
            role,
            phase: match role {
                Role::Server => Phase::AwaitingRequest,
                Role::Client => Phase::AwaitingResponse,
            },
            config,
            handshake,
            head_scan: crate::handshake::HeadScan::default(),
            rx: RecvBuffer::new(),
            tx: Transmit::default(),
            eof: false,
            activity: false,
            recv_offer_in_message: false,
            recv: RecvState::default(),
            send_message: None,
            send_utf8: Utf8Validator::new(),
            pending_pong: None,
            pong_unsent: 0,
            pongs_unwritten: 0,
            close_queued: false,
            give_up: false,
            keepalive_unsent: 0,
            closed_event: None,
            error: None,
            rng: rng.map(Box::new),
            timers: Timers {
                handshake: handshake_timer,
                ..Timers::default()
            },
            now,
            deflate: None,
        }
    }

    // ---- (A) getters ----

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The lifecycle state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::AwaitingRequest | Phase::RequestPending | Phase::AwaitingResponse => {
                State::Handshake
            }
            Phase::Open => State::Open,
            Phase::Closing => State::Closing,
            Phase::Closed | Phase::Rejected => State::Closed,
            Phase::Failed => State::Failed,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `poll_transmit` has bytes to write.
    pub fn wants_write(&self) -> bool {
        !self.tx.is_empty() || self.pending_pong.is_some()
    }

    /// How many encoded bytes wait for the transport (what `poll_transmit` would return,
    /// not counting a coalesced Pong that is not encoded yet).
    pub fn transmit_len(&self) -> usize {
        self.tx.len()
    }

    /// Bytes of memory this connection holds in its buffers right now: the receive
    /// buffer, a message being assembled (inflated bytes included with
    /// permessage-deflate), and what waits for the transport (payloads shared with the
    /// application counted in full). What a host adds up across connections to keep one
    /// memory budget; zlib's own state (with context takeover, about 430 KB per
    /// negotiated connection) is not included.
    pub fn buffered_bytes(&self) -> usize {
        self.rx
            .capacity()
            .saturating_add(self.recv.assembly.capacity())
            .saturating_add(self.tx.len().max(self.tx.capacity()))
            .saturating_add(deflate::buffered_bytes(self.deflate.as_deref()))
    }

    /// The receive side's part of [`buffered_bytes`](Self::buffered_bytes): the receive
    /// buffer and a message being assembled (0 once
    /// [`release_recv_buffers`](Self::release_recv_buffers) or the timers gave them back).
    pub fn recv_buffered_bytes(&self) -> usize {
        self.rx
            .capacity()
            .saturating_add(self.recv.assembly.capacity())
    }

    /// Whether sends are refused with [`SendError::Blocked`](crate::SendError::Blocked)
    /// right now: `Config::max_send_buffer` bytes or more wait for the transport. A host
    /// should stop reading from this peer until it turns false (backpressure).
    pub fn is_send_blocked(&self) -> bool {
        // An empty buffer always takes one more frame, whatever the limit.
        !self.tx.is_empty() && self.tx.len() >= self.config.max_send_buffer
    }

    /// Whether the host should close the transport now: the connection is over and
    /// everything queued has been transmitted. A client whose closing handshake is done
    /// waits for the server's EOF or the close timer first (RFC 6455 §7.1.1).
    ///
    /// Every connection ends in bounded time: it is true at once, even with bytes still
    /// queued, after the handshake or keepalive timeout and after the close timer
    /// expired while we waited for the peer's Close (the peer is not reading them); and
    /// once [`Config::flush_timeout`] has passed since the connection ended with bytes
    /// still queued.
    pub fn should_close_transport(&self) -> bool {
        if self.give_up {
            return true;
        }
        if self.wants_write() {
            return false;
        }
        match self.phase {
            Phase::Failed | Phase::Rejected => true,
            Phase::Closed => {
                self.role == Role::Server || self.eof || self.timers.close == Timer::Off
            }
            _ => false,
        }
    }

    /// How many bytes [`recv`](Self::recv) would take now: room in the receive buffer,
    /// plus, while a large message is being assembled, the rest of its current frame
    /// (which goes straight into the message, see `recv`).
    pub fn recv_capacity(&self) -> usize {
        if self.phase.is_terminal() {
            return usize::MAX;
        }
        self.direct_payload_len().saturating_add(self.buffer_room())
    }

    /// What the receive buffer takes now: room up to the limit, but while a one-frame
    /// message that fits is partly buffered, only up to that frame's end (see
    /// `held_frame_rest`).
    fn buffer_room(&self) -> usize {
        let room = self.recv_limit().saturating_sub(self.rx.len());
        match self.held_frame_rest() {
            Some(rest) => room.min(rest),
            None => room,
        }
    }

    fn recv_limit(&self) -> usize {
        let limit = self.config.recv_limit();
        if self.phase.is_handshake() {
            // The head must fit whole, plus one byte to tell "too large" from "partial".
            // A client also waits for a refusal's body, up to `max_handshake_size` more
            // (`parse_response`): without room for it, it waited forever with a full
            // buffer (fuzz: handshake_response).
            let head = self.config.max_handshake_size.saturating_add(1);
            let body = match self.role {
                Role::Client => self.config.max_handshake_size,
                Role::Server => 0,
            };
            limit.max(head.saturating_add(body))
        } else {
            // Room for one frame header besides: a message of exactly the configured
            // size then arrives in one read. Without it a 64 KiB message took a read of
            // 65,536 bytes, another of its last 14 and a third that found nothing
            // (benches/compare/RESULTS.md, "Measurements behind constants").
            limit.saturating_add(MAX_HEADER_LEN)
        }
    }

    // ---- (B) transport and timer input ----

    /// Takes bytes received from the peer into the receive buffer and returns how many
    /// it took: at most [`recv_capacity`](Self::recv_capacity), so memory stays bounded.
    /// Keep the rest and offer it again after `poll_event` has drained the buffer.
    /// After the connection is over, bytes are discarded (and counted as taken).
    ///
    /// Payload of a message being assembled (whole-message delivery, a message larger
    /// than the receive buffer or in several frames) skips the receive buffer: it is
    /// copied, unmasked and validated straight into the message, block by block, so
    /// each byte is copied once (a message too large for the receive buffer used to be
    /// copied twice). Its events still come from `poll_event`.
    pub fn recv(&mut self, data: &[u8]) -> usize {
        if self.phase.is_terminal() {
            return data.len();
        }
        let direct = self.recv_direct(data);
        let data = &data[direct..];
        let n = data.len().min(self.buffer_room());
        if n == 0 {
            return direct;
        }
        if self.rx.spare() < n {
            // Room for this read and a little more, never sized by a peer's claim.
            self.rx
                .make_room(n.max(self.config.recv_limit().min(4 << 10)));
        }
        self.rx.push(&data[..n]);
        self.activity = true;
        direct + n
    }

    /// Room in the receive buffer for the transport's next read, so a host reads from
    /// the socket straight into the connection instead of into a buffer of its own
    /// that [`recv`](Self::recv) then copies. Read into it, then call
    /// [`commit_recv`](Self::commit_recv) with the number of bytes read (0 for none),
    /// with no other call on the connection in between.
    ///
    /// The room is initialised memory (zeroed when allocated, reused after), sized by
    /// the connection: at most the room left under its receive limit, a few KiB at
    /// first, doubling while reads fill it. **Empty means the buffer is full**: do not
    /// read (a read into an empty buffer returns 0, which is not end of stream); drain
    /// [`poll_event`](Self::poll_event) first. After the connection is over the room
    /// is still offered and what is committed is discarded, as `recv` does.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        let limit = if self.phase.is_terminal() {
            usize::MAX
        } else {
            if let Some(direct) = self.prepare_message_room() {
                self.recv_offer_in_message = true;
                return self.recv.assembly.room_mut(direct);
            }
            self.recv_limit().saturating_sub(self.rx.len())
        };
        self.recv_offer_in_message = false;
        self.rx.room_mut(limit)
    }

    /// Adds the first `n` bytes of the room [`recv_buf`](Self::recv_buf) handed out
    /// (what the transport read into it) to the received bytes. Events come from
    /// `poll_event`, as after `recv`.
    ///
    /// # Panics
    ///
    /// If `n` is larger than the room `recv_buf` last returned, or if it was not the
    /// call just before (an embedder bug: the bytes past the room are not the host's).
    pub fn commit_recv(&mut self, n: usize) {
        if core::mem::take(&mut self.recv_offer_in_message) {
            self.commit_message_room(n);
            return;
        }
        self.rx.commit(n);
        if self.phase.is_terminal() {
            let discarded = self.rx.len();
            self.rx.advance(discarded);
        } else if n > 0 {
            self.activity = true;
        }
    }

    /// The peer ended the stream (a read returned 0 bytes). Events that follow report
    /// how the connection ended.
    pub fn recv_eof(&mut self) {
        self.eof = true;
    }

    /// Runs the timers that are due at `now`: the handshake timeout, the close timeout,
    /// keepalive, the message timeout and the flush timeout; and gives back the buffers
    /// that are empty (an idle connection holds none). Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        let now = self.now;
        self.release_idle_buffers();
        if self.timers.handshake.poll(now) {
            self.timers.handshake = Timer::Off;
            if self.phase.is_handshake() {
                self.fail_timeout(crate::error::Timeout::Handshake);
            }
        }
        if self.timers.close.poll(now) {
            self.timers.close = Timer::Off;
            if self.phase == Phase::Closing {
                // §7.1.1/§7.1.5: the peer never answered our Close. It is not reading
                // either (or our Close would have been answered): waiting for what is
                // still queued to be written would wait on a dead peer.
                self.abort();
                self.give_up = true;
            }
        }
        if self.timers.keepalive.poll(now) {
            self.keepalive_tick(now);
        }
        if self.timers.message.poll(now) {
            self.timers.message = Timer::Off;
            if self.recv.message.is_some() && matches!(self.phase, Phase::Open | Phase::Closing) {
                self.fail_timeout(crate::error::Timeout::Message);
            }
        }
        if self.timers.inflate.poll(now) {
            // The next `poll_event` refills the budget from `now` and goes on.
            self.timers.inflate = Timer::Off;
        }
        if self.timers.flush.poll(now) {
            self.timers.flush = Timer::Off;
            if self.phase.is_terminal() {
                self.give_up = true;
            }
        }
    }

    /// Gives back now the receive side's buffers with nothing in them (the receive
    /// buffer, an assembly buffer), as the timers do on their own (keepalive's tick at
    /// the latest), for a host that knows the peer went quiet (a read found nothing
    /// more) and wants the connection to hold no receive buffer until it speaks again.
    /// The transmit buffer is left to the timers: a connection that sends often (a
    /// subscriber) would allocate it again for every write.
    pub fn release_recv_buffers(&mut self) {
        if self.rx.is_empty() && self.rx.capacity() > 0 {
            self.rx.release();
        }
        if self.recv.message.is_none() {
            if core::mem::take(&mut self.recv.assembly_used) {
                self.recv.assembly.release();
            }
            // The size of a burst's messages says nothing about the next burst's: a
            // connection that once took a 16 MiB message would otherwise reserve up to
            // `ASSEMBLY_AHEAD` for every small fragmented message after it.
            self.recv.last_assembled = 0;
        }
    }

    /// Time has passed (a timer is due: keepalive's tick at the latest, with keepalive
    /// on): buffers with nothing in them are given back, so an idle connection that has
    /// exchanged messages holds no more than one that never did. Not done per read or
    /// per message: the next read would allocate again, once per read instead of
    /// reusing the buffer.
    fn release_idle_buffers(&mut self) {
        self.release_recv_buffers();
        if self.tx.is_empty() {
            self.tx.release_if_idle(0);
        }
        deflate::release_idle_buffers(self.deflate.as_deref_mut(), self.recv.message.is_none());
    }

    fn keepalive_tick(&mut self, now: Instant) {
        use self::timers::KeepaliveState;
        let Some(ka) = self.config.keepalive else {
            self.timers.keepalive = Timer::Off;
            return;
        };
        if self.phase != Phase::Open {
            self.timers.keepalive = Timer::Off;
            return;
        }
        let seen = core::mem::take(&mut self.activity);
        let next = |d| Timer::after(now, d);
        match (self.timers.keepalive_state, seen) {
            (_, true) => {
                self.timers.keepalive_state = KeepaliveState::Idle;
                self.timers.keepalive = next(ka.interval);
            }
            (KeepaliveState::Idle, false) => {
                self.send_keepalive_ping();
                self.timers.keepalive_state = KeepaliveState::AwaitingPong;
                self.timers.keepalive = next(ka.timeout);
            }
            (KeepaliveState::AwaitingPong, false) => {
                self.timers.keepalive = Timer::Off;
                self.fail_timeout(crate::error::Timeout::Keepalive);
            }
        }
    }

    // ---- (D) polls ----

    /// The bytes to write to the transport next (empty when there are none): the first
    /// contiguous run of them. Call [`advance_transmit`](Self::advance_transmit) with how
    /// many were written; a host that can write vectored uses
    /// [`poll_transmit_vectored`](Self::poll_transmit_vectored) instead.
    #[must_use]
    pub fn poll_transmit(&mut self) -> &[u8] {
        self.flush_pending_pong();
        self.tx.first()
    }

    /// The bytes waiting for the transport, for one vectored write (`write_vectored`):
    /// fills `iovecs` with the runs of them, in order, and returns how many it filled
    /// (0: nothing to write). Large payloads a server sent with [`send`](Self::send) are
    /// their own run, never copied. Write `&iovecs[..n]`, then
    /// [`advance_transmit`](Self::advance_transmit) by the bytes written. An array of
    /// [`MAX_TRANSMIT_SEGMENTS`] is enough for one write; more runs than fit wait for
    /// the next call.
    #[cfg(feature = "std")]
    pub fn poll_transmit_vectored<'a>(&'a mut self, iovecs: &mut [std::io::IoSlice<'a>]) -> usize {
        self.flush_pending_pong();
        self.tx.fill_iovecs(iovecs)
    }

    /// Marks `n` bytes of the transmit buffer as written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.keepalive_unsent = self.keepalive_unsent.saturating_sub(n);
        self.pong_unsent = self.pong_unsent.saturating_sub(n);
        if self.pong_unsent == 0 {
            self.pongs_unwritten = 0;
        }
        let keep = self.config.recv_limit();
        self.tx.advance(n, keep);
        // Give a large transmit buffer back once drained: idle connections hold none.
        self.tx.release_if_idle(keep);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    /// May be in the past: then call it at once. Once the connection is over it names
    /// the flush deadline while bytes wait to be written (and, for a client after the
    /// closing handshake, the close timer), and nothing once the transport is to be
    /// closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.phase.is_terminal() {
            return self.timers.earliest(self.now);
        }
        if self.give_up {
            return None;
        }
        let flush = if self.wants_write() {
            self.timers.flush.deadline(self.now)
        } else {
            None
        };
        let close = self.timers.close.deadline(self.now);
        flush.into_iter().chain(close).min()
    }

    // ---- shared internals ----

    /// The one way the phase changes: looks `input` up in the transition table
    /// ([`Phase::next`]), moves, and applies the new phase's entry effects. A move the
    /// table does not list changes nothing and is returned as a [`Violation`]: commands
    /// turn it into their [`SendError`](crate::SendError); the receive path and the
    /// timers only feed inputs their phase allows, so for them it is a bug
    /// ([`Self::advance`]).
    fn transition(&mut self, input: Input) -> Result<(), Violation> {
        let next = self.phase.next(input)?;
        self.phase = next;
        match (next, input) {
            (Phase::Open, _) => {
                // The handshake is done: stop its timer, start keepalive. The head's
                // buffer (up to max_handshake_size) is not kept for an idle open
                // connection; frames that came with the head stay.
                self.timers.handshake = Timer::Off;
                self.timers.keepalive = Timer::start(self.config.keepalive.map(|k| k.interval));
                if self.rx.is_empty() {
                    self.rx.release();
                }
            }
            (Phase::Closing, _) => {
                // §7.1.2: wait for the peer's Close, for at most the close timeout.
                self.timers.keepalive = Timer::Off;
                self.timers.close = Timer::start(self.config.close_timeout);
            }
            (Phase::Closed, Input::PeerClose) => {
                // §5.5.1: nothing may follow the Close frame; whatever did is ignored.
                self.rx.release();
                self.recv = RecvState::default();
                self.pending_pong = None;
                self.timers.keepalive = Timer::Off;
                // A server closes the transport now; a client waits for the server to
                // do so, for at most the close timeout (§7.1.1).
                self.timers.close = match self.role {
                    Role::Client => Timer::start(self.config.close_timeout),
                    Role::Server => Timer::Off,
                };
                self.timers.message = Timer::Off;
                self.timers.flush = Timer::start(self.config.flush_timeout);
            }
            (Phase::Closed, _) => {
                // EOF or the close timer, without a Close exchange: RFC 6455 §7.1.5,
                // "_The WebSocket Connection Close Code_ is considered to be 1006".
                self.closed_event = Some(Event::Closed {
                    code: CloseCode::ABNORMAL,
                    clean: false,
                });
                self.timers = Timers::default();
                self.timers.flush = Timer::start(self.config.flush_timeout);
                self.pending_pong = None;
            }
            (Phase::Rejected, _) => {
                self.timers = Timers::default();
                self.timers.flush = Timer::start(self.config.flush_timeout);
                self.rx.release();
            }
            (Phase::Failed, _) => {
                // What is queued (the Close frame, the HTTP error response) gets
                // `flush_timeout` to go out.
                self.timers = Timers::default();
                self.timers.flush = Timer::start(self.config.flush_timeout);
                self.pending_pong = None;
                self.rx.release();
                // Nothing more is received: a message in progress (up to
                // `max_message_size` assembled, or its inflated bytes) is dropped now
                // rather than held while the Close goes out.
                self.recv = RecvState::default();
                deflate::release_idle_buffers(self.deflate.as_deref_mut(), true);
            }
            (Phase::RequestPending | Phase::AwaitingRequest | Phase::AwaitingResponse, _) => {}
        }
        Ok(())
    }

    /// A move the caller's own phase check makes legal (the receive path, the timers):
    /// a violation here is a bug in this crate, caught by debug builds and the fuzz
    /// targets (built with debug assertions); a release build leaves the phase as it was.
    fn advance(&mut self, input: Input) {
        let moved = self.transition(input);
        debug_assert!(moved.is_ok(), "illegal transition: {moved:?}");
    }

    /// Ends an open or closing connection without a Close exchange (EOF, close timer).
    fn abort(&mut self) {
        self.advance(Input::Abort);
    }

    /// A timer expired. Handshake and keepalive: the peer is not reading (or never
    /// finished its handshake), so `should_close_transport` turns true at once, whatever
    /// still waits to be transmitted (it never will be), instead of waiting on a dead
    /// peer; the queued bytes stay whole frames for a host that still drains them. A
    /// message that did not end in time: the peer is alive but breaks our policy, so it
    /// is told why (a Close with 1008) and `flush_timeout` bounds the rest.
    fn fail_timeout(&mut self, timeout: crate::error::Timeout) {
        if self.phase.is_terminal() {
            return;
        }
        if timeout.drops_transport() {
            self.give_up = true;
        } else if self.phase == Phase::Open {
            // The reason says which timer (RFC 6455 §5.5.1 allows a reason on any Close).
            let code = Error::Timeout(timeout).close_code();
            self.queue_close_with(code.map(|code| (code, &timeout as &dyn fmt::Display)));
        }
        self.fail_quietly(Error::Timeout(timeout));
    }

    /// Fails the connection without queuing anything (timeouts: the peer is not reading).
    fn fail_quietly(&mut self, error: Error) {
        // A connection that is over already keeps how it ended.
        if self.phase.is_terminal() {
            return;
        }
        self.advance(Input::Fail);
        self.error = Some(error);
    }

    /// Fails the connection after a protocol error: queue the Close frame (§7.1.7: "the
    /// endpoint SHOULD send a Close frame with an appropriate status code", the error's
    /// text as its reason) unless ours is already out, then store the error.
    fn fail_protocol(&mut self, error: crate::error::ProtocolError) -> Error {
        if self.phase == Phase::Open {
            // With the rule that was broken as the reason, formatted into the frame
            // (no allocation): what the peer sees is what the application logs.
            self.queue_close_with(Some((error.close_code(), &error)));
        }
        let error = Error::Protocol(error);
        self.fail_quietly(error.clone());
        error
    }

    /// Fails the handshake: a server queues the HTTP error response (§4.2.2, §4.4).
    fn fail_handshake(&mut self, error: crate::error::HandshakeError) -> Error {
        if self.role == Role::Server
            && self.phase == Phase::AwaitingRequest
            && error != crate::error::HandshakeError::UnexpectedEof
        {
            let mut out = Vec::new();
            crate::handshake::write_error_response(&error, &mut out);
            self.tx.extend_from_slice(&out);
        }
        let error = Error::Handshake(error);
        self.fail_quietly(error.clone());
        error
    }

    /// Client masking key (RFC 6455 §5.3: "The masking key is a 32-bit value chosen at
    /// random by the client ... MUST pick a fresh masking key from the set of allowed
    /// 32-bit values").
    fn mask_key(&mut self) -> Option<[u8; 4]> {
        use rand::Rng;
        self.rng.as_mut().map(|rng| rng.next_u32().to_ne_bytes())
    }
}

#[cfg(fuzzing)]
impl Connection {
    pub(crate) fn fuzzing_buffer_sizes(&self) -> crate::fuzzing::BufferSizes {
        crate::fuzzing::BufferSizes {
            rx_len: self.rx.len(),
            rx_capacity: self.rx.capacity(),
            tx_len: self.tx.len(),
            tx_capacity: self.tx.capacity(),
            assembly_len: self.recv.assembly.len(),
            assembly_capacity: self.recv.assembly.capacity(),
            pending_pong_len: self.pending_pong.as_ref().map(|p| p.len()),
            recv_limit: self.recv_limit(),
        }
    }
}

/// The client's RNG: from `Config::rng_seed`, or seeded from the operating system
/// (`std` only: a `no_std` embedder fills the seed with `Config::seed_from`).
fn seeded_rng(config: &Config) -> Result<StdRng, RequestError> {
    match config.rng_seed {
        Some(seed) => Ok(StdRng::from_seed(seed)),
        #[cfg(feature = "std")]
        None => StdRng::try_from_rng(&mut rand::rngs::SysRng).map_err(|_| RequestError::Entropy),
        #[cfg(not(feature = "std"))]
        None => Err(RequestError::Entropy),
    }
}

/// Appends `src` to `dst` in 1 KiB pieces. glibc copies large blocks with `rep movsb`,
/// which on some x86_64 CPUs (this project's AMD EPYC image among them) runs several
/// times slower than its vector loop for the unaligned destinations a byte stream
/// produces (the figures: benches/compare/RESULTS.md, "Measurements behind constants").
/// Pieces under glibc's `rep movsb` threshold keep the copy in the vector loop on any
/// x86_64; elsewhere the split costs one call per KiB.
pub(crate) fn append(dst: &mut BytesMut, src: &[u8]) {
    if src.len() <= COPY_PIECE {
        dst.extend_from_slice(src);
        return;
    }
    dst.reserve(src.len());
    for piece in src.chunks(COPY_PIECE) {
        dst.extend_from_slice(piece);
    }
}

const COPY_PIECE: usize = 1 << 10;

/// A length in memory as a length on the wire (RFC 6455 §5.2 lengths are 64-bit). Lossless:
/// `usize` is at most 64 bits on every target (checked at compile time below), so this is
/// the one place the receive and send paths widen, instead of an `as u64` at each use.
#[inline]
pub(crate) const fn wire_len(n: usize) -> u64 {
    const _: () = assert!(usize::BITS <= u64::BITS);
    n as u64
}

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod tests;
