//! The handle behind `wsengine_conn *` and everything it does in safe Rust: time
//! conversion, the current event, error bookkeeping, and the mapping of the core's
//! errors to `wsengine_status`. The entry points in `lib.rs` only check and convert
//! pointers and call in here.

use std::borrow::Cow;
use std::ffi::{CStr, CString};

use wsengine::extensions::deflate::{
    DeflateConfig, DeflateParams, DirectionParams, MAX_WINDOW_BITS, MIN_WINDOW_BITS, Memory,
};
use wsengine::{
    Accept, ClientRequest, CloseCode, Config, Connection, Delivery, Duration, Error, Event,
    Instant, Keepalive, MessageKind, Negotiated, Reject, RequestError, Role, SendError, State,
};

use crate::types::wsengine_event_kind as K;
use crate::types::wsengine_status as S;
use crate::types::{
    wsengine_config, wsengine_deflate_config, wsengine_deflate_params, wsengine_delivery,
    wsengine_event, wsengine_message_kind,
};

/// Where empty byte strings point: never NULL, never read.
pub(crate) static EMPTY: [u8; 1] = [0];

/// Why a call failed: the status to return and the message for
/// `wsengine_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: S,
    pub(crate) message: Cow<'static, str>,
}

impl Failure {
    pub(crate) fn new(status: S, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(S::WSENGINE_INVALID_ARGUMENT, message)
    }
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        let status = match &e {
            SendError::Blocked => S::WSENGINE_BLOCKED,
            SendError::NotOpen => S::WSENGINE_NOT_OPEN,
            SendError::Closing => S::WSENGINE_CLOSING,
            SendError::Closed => S::WSENGINE_CLOSED,
            SendError::MessageInProgress | SendError::NoPendingRequest => S::WSENGINE_INVALID_STATE,
            SendError::ControlTooLong
            | SendError::InvalidCloseCode(_)
            | SendError::CloseReasonTooLong
            | SendError::InvalidUtf8
            | SendError::ProtocolNotOffered(_)
            | SendError::InvalidHeader => S::WSENGINE_INVALID_ARGUMENT,
            _ => S::WSENGINE_INTERNAL_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        let status = match &e {
            RequestError::Entropy => S::WSENGINE_INTERNAL_ERROR,
            _ => S::WSENGINE_INVALID_ARGUMENT,
        };
        Self::new(status, e.to_string())
    }
}

/// The status of a fatal error from `Connection::poll_event`.
pub(crate) fn fatal_status(e: &Error) -> S {
    match e {
        Error::Protocol(_) => S::WSENGINE_PROTOCOL_ERROR,
        Error::Handshake(_) => S::WSENGINE_HANDSHAKE_FAILED,
        Error::Timeout(_) => S::WSENGINE_TIMEOUT,
        _ => S::WSENGINE_INTERNAL_ERROR,
    }
}

/// Text as `&str`, or `WSENGINE_INVALID_ARGUMENT` naming the argument.
pub(crate) fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, Failure> {
    core::str::from_utf8(bytes).map_err(|e| Failure::invalid(format!("{what}: {e}")))
}

fn nanos(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn duration(ns: u64) -> Option<Duration> {
    (ns != 0).then(|| Duration::from_nanos(ns))
}

/// The defaults of `wsengine::Config`, in C terms.
pub(crate) fn default_config() -> wsengine_config {
    let c = Config::default();
    let d = DeflateConfig::default();
    wsengine_config {
        struct_size: size_of::<wsengine_config>(),
        max_frame_size: c.max_frame_size,
        max_message_size: c.max_message_size,
        max_fragments: c.max_fragments,
        delivery: match c.delivery {
            Delivery::Streaming => wsengine_delivery::WSENGINE_DELIVERY_STREAMING as i32,
            _ => wsengine_delivery::WSENGINE_DELIVERY_WHOLE as i32,
        },
        max_handshake_size: c.max_handshake_size,
        max_headers: c.max_headers,
        recv_buffer_size: c.recv_buffer_size,
        max_send_buffer: c.max_send_buffer,
        handshake_timeout_ns: nanos(c.handshake_timeout),
        close_timeout_ns: nanos(c.close_timeout),
        keepalive_interval_ns: nanos(c.keepalive.map(|k| k.interval)),
        keepalive_timeout_ns: nanos(c.keepalive.map(|k| k.timeout)),
        auto_pong: u8::from(c.auto_pong),
        rng_seed_set: u8::from(c.rng_seed.is_some()),
        rng_seed: c.rng_seed.unwrap_or_default(),
        deflate: default_deflate_config(),
        flush_timeout_ns: nanos(c.flush_timeout),
        message_timeout_ns: nanos(c.message_timeout),
        deflate_max_inflated_size: d.max_inflated_size,
        deflate_max_compress_size: d.max_compress_size,
        deflate_max_inflate_rate: d.max_inflate_rate.unwrap_or(0),
        allowed_origins: core::ptr::null(),
        allowed_origin_count: 0,
    }
}

/// The defaults of `DeflateConfig`, in C terms, turned off.
fn default_deflate_config() -> wsengine_deflate_config {
    let d = DeflateConfig::default();
    wsengine_deflate_config {
        enabled: 0,
        level: d.level,
        server_no_context_takeover: u8::from(d.server_no_context_takeover),
        client_no_context_takeover: u8::from(d.client_no_context_takeover),
        server_max_window_bits: d.server_max_window_bits.unwrap_or(0),
        client_max_window_bits: d.client_max_window_bits.unwrap_or(0),
        retain_memory: u8::from(d.memory == Memory::Retain),
        min_compress_size: d.min_compress_size,
    }
}

/// Window bits from C: 0 for "not set", else 8..=15.
fn window_bits(bits: u8, what: &str) -> Result<Option<u8>, Failure> {
    match bits {
        0 => Ok(None),
        b if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&b) => Ok(Some(b)),
        b => Err(Failure::invalid(format!(
            "{what}: {b} window bits, expected 0 (not set) or 8 to 15"
        ))),
    }
}

/// Checks a C permessage-deflate policy (`config.deflate` and the `deflate_*` limits)
/// and builds the core's (whether or not it is enabled).
pub(crate) fn build_deflate_config(config: &wsengine_config) -> Result<DeflateConfig, Failure> {
    let c = &config.deflate;
    if c.level > 9 {
        return Err(Failure::invalid(format!(
            "config.deflate.level: {}, expected 0 to 9",
            c.level
        )));
    }
    let mut d = DeflateConfig::default();
    d.level = c.level;
    d.server_no_context_takeover = c.server_no_context_takeover != 0;
    d.client_no_context_takeover = c.client_no_context_takeover != 0;
    d.server_max_window_bits = window_bits(
        c.server_max_window_bits,
        "config.deflate.server_max_window_bits",
    )?;
    d.client_max_window_bits = window_bits(
        c.client_max_window_bits,
        "config.deflate.client_max_window_bits",
    )?;
    d.memory = if c.retain_memory != 0 {
        Memory::Retain
    } else {
        Memory::PerMessage
    };
    d.min_compress_size = c.min_compress_size;
    d.max_inflated_size = match config.deflate_max_inflated_size {
        0 => usize::MAX,
        n => n,
    };
    d.max_compress_size = config.deflate_max_compress_size;
    d.max_inflate_rate =
        (config.deflate_max_inflate_rate != 0).then_some(config.deflate_max_inflate_rate);
    Ok(d)
}

/// Checks negotiated parameters from C and builds the core's.
pub(crate) fn build_deflate_params(p: &wsengine_deflate_params) -> Result<DeflateParams, Failure> {
    let direction = |nct: u8, bits: u8, what: &str| -> Result<DirectionParams, Failure> {
        Ok(DirectionParams {
            max_window_bits: window_bits(bits, what)?.unwrap_or(MAX_WINDOW_BITS),
            no_context_takeover: nct != 0,
        })
    };
    Ok(DeflateParams {
        client: direction(
            p.client_no_context_takeover,
            p.client_max_window_bits,
            "deflate.client_max_window_bits",
        )?,
        server: direction(
            p.server_no_context_takeover,
            p.server_max_window_bits,
            "deflate.server_max_window_bits",
        )?,
    })
}

/// Negotiated parameters in C terms.
pub(crate) fn deflate_params_out(p: DeflateParams) -> wsengine_deflate_params {
    wsengine_deflate_params {
        server_no_context_takeover: u8::from(p.server.no_context_takeover),
        client_no_context_takeover: u8::from(p.client.no_context_takeover),
        server_max_window_bits: p.server.max_window_bits,
        client_max_window_bits: p.client.max_window_bits,
    }
}

/// Checks a C configuration and builds the core's, all but `allowed_origins` (a
/// pointer: read in `lib.rs`).
pub(crate) fn build_config(c: &wsengine_config) -> Result<Config, Failure> {
    let mut config = Config::default();
    config.max_frame_size = c.max_frame_size;
    config.max_message_size = c.max_message_size;
    config.max_fragments = c.max_fragments;
    config.delivery = match c.delivery {
        x if x == wsengine_delivery::WSENGINE_DELIVERY_WHOLE as i32 => Delivery::Whole,
        x if x == wsengine_delivery::WSENGINE_DELIVERY_STREAMING as i32 => Delivery::Streaming,
        x => {
            return Err(Failure::invalid(format!(
                "config.delivery: unknown mode {x}"
            )));
        }
    };
    config.max_handshake_size = c.max_handshake_size;
    config.max_headers = c.max_headers;
    config.recv_buffer_size = c.recv_buffer_size;
    config.max_send_buffer = c.max_send_buffer;
    config.auto_pong = c.auto_pong != 0;
    config.handshake_timeout = duration(c.handshake_timeout_ns);
    config.close_timeout = duration(c.close_timeout_ns);
    config.flush_timeout = duration(c.flush_timeout_ns);
    config.message_timeout = duration(c.message_timeout_ns);
    config.keepalive = match (
        duration(c.keepalive_interval_ns),
        duration(c.keepalive_timeout_ns),
    ) {
        (None, _) => None,
        (Some(interval), Some(timeout)) => Some(Keepalive { interval, timeout }),
        (Some(_), None) => {
            return Err(Failure::invalid(
                "config.keepalive_timeout_ns must be nonzero when keepalive is on",
            ));
        }
    };
    config.rng_seed = (c.rng_seed_set != 0).then_some(c.rng_seed);
    let deflate = build_deflate_config(c)?;
    config.deflate = (c.deflate.enabled != 0).then_some(deflate);
    Ok(config)
}

/// The kind argument of `wsengine_send_fragment`.
pub(crate) fn message_kind(kind: i32) -> Result<MessageKind, Failure> {
    match kind {
        k if k == wsengine_message_kind::WSENGINE_MESSAGE_TEXT as i32 => Ok(MessageKind::Text),
        k if k == wsengine_message_kind::WSENGINE_MESSAGE_BINARY as i32 => Ok(MessageKind::Binary),
        k => Err(Failure::invalid(format!("kind: unknown message kind {k}"))),
    }
}

/// A connection handle: what `wsengine_conn *` points to. Opaque to C.
#[allow(non_camel_case_types)]
pub struct wsengine_conn {
    pub(crate) conn: Connection,
    /// The event the caller is looking at: its payload pointers point in here.
    current: Option<Event>,
    /// The fatal error `poll_event` returned, if any.
    fatal: Option<Error>,
    /// The message of the latest failed call.
    last_error: Cow<'static, CStr>,
    /// A panic was caught while this handle was in use: its state may be inconsistent.
    pub(crate) poisoned: bool,
    /// The length of the room `wsengine_recv_buf` handed out, while it may still be
    /// committed: every other call that can change the connection withdraws it (the
    /// `enter` wrapper), so `commit_recv` refuses what the core would panic on.
    recv_offer: Option<usize>,
}

impl wsengine_conn {
    /// A server handle, or a client handle whose opening request is queued.
    pub(crate) fn new(
        role: Role,
        config: Config,
        request: Option<ClientRequest>,
        now_ns: u64,
    ) -> Result<Self, Failure> {
        let base = Instant::from_nanos(now_ns);
        let conn = match (role, request) {
            (Role::Server, None) => Connection::server(config, base),
            (Role::Client, Some(request)) => Connection::client(request, config, base)?,
            (Role::Server, Some(_)) => {
                return Err(Failure::invalid("request: must be NULL for a server"));
            }
            (Role::Client, None) => {
                return Err(Failure::invalid("request: required for a client"));
            }
        };
        Ok(Self::with(conn))
    }

    /// A handle whose opening handshake was done by the caller
    /// (`Connection::upgraded`): open at once, running permessage-deflate with the
    /// negotiated parameters when `deflate` is given, compressing by its policy.
    pub(crate) fn open(
        role: Role,
        mut config: Config,
        deflate: Option<(DeflateParams, DeflateConfig)>,
        now_ns: u64,
    ) -> Result<Self, Failure> {
        let base = Instant::from_nanos(now_ns);
        let params = deflate.map(|(params, policy)| {
            config.deflate = Some(policy);
            params
        });
        let negotiated = match params {
            Some(params) => Negotiated::default().deflate(params),
            None => Negotiated::default(),
        };
        Ok(Self::with(Connection::upgraded(
            role, config, base, negotiated,
        )?))
    }

    fn with(conn: Connection) -> Self {
        Self {
            conn,
            current: None,
            fatal: None,
            last_error: Cow::Borrowed(c""),
            poisoned: false,
            recv_offer: None,
        }
    }

    /// Room in the connection's receive buffer for the caller's next read
    /// (`Connection::recv_buf`), remembered for `commit_recv`.
    pub(crate) fn recv_buf(&mut self) -> &mut [u8] {
        let room = self.conn.recv_buf();
        self.recv_offer = Some(room.len());
        room
    }

    /// Adds the first `n` bytes of the room `recv_buf` handed out to the received bytes
    /// (`Connection::commit_recv`), after checking what the core would panic on: no
    /// offer since the connection last changed, or more bytes than were offered. The
    /// offer is used up either way.
    pub(crate) fn commit_recv(&mut self, n: usize) -> Result<(), Failure> {
        match self.recv_offer.take() {
            None => Err(Failure::invalid(
                "wsengine_commit_recv: no room to commit: call wsengine_recv_buf just \
                 before it, with no other call on the handle in between",
            )),
            Some(offered) if n > offered => Err(Failure::invalid(format!(
                "n: {n} bytes committed but wsengine_recv_buf offered {offered}"
            ))),
            Some(_) => {
                self.conn.commit_recv(n);
                Ok(())
            }
        }
    }

    /// Withdraws the room `recv_buf` offered: the call about to run may change the
    /// connection, after which committing into that room would be a bug.
    pub(crate) fn withdraw_recv_offer(&mut self) {
        self.recv_offer = None;
    }

    /// The negotiated permessage-deflate parameters, if any.
    pub(crate) fn deflate_params(&self) -> Option<wsengine_deflate_params> {
        self.conn.deflate_params().map(deflate_params_out)
    }

    /// The caller's monotonic nanoseconds as an `Instant`: the core's time type is a
    /// duration since the host's origin, so the C ABI reads no clock of its own (the
    /// core ignores time that goes backwards).
    pub(crate) fn instant(&self, ns: u64) -> Instant {
        Instant::from_nanos(ns)
    }

    /// An `Instant` on the caller's clock, in its nanoseconds.
    pub(crate) fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.duration_since_origin().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn set_error(&mut self, message: &str) {
        self.last_error = match CString::new(message) {
            Ok(c) => Cow::Owned(c),
            Err(_) => Cow::Owned(CString::new(message.replace('\0', "\\0")).unwrap_or_default()),
        };
    }

    pub(crate) fn last_error(&self) -> &CStr {
        &self.last_error
    }

    /// The close code of the fatal error, 0 when there is none or it has no close code
    /// (the handshake never completed).
    pub(crate) fn last_close_code(&self) -> u16 {
        self.fatal
            .as_ref()
            .and_then(Error::close_code)
            .map_or(0, |c| c.0)
    }

    /// The next event, stored as the current one and described in `out`. A request
    /// stays current until it is answered: the core reports nothing else before that.
    pub(crate) fn poll_event(&mut self) -> Result<(S, wsengine_event), Failure> {
        let unanswered = matches!(self.current, Some(Event::Request(_)))
            && self.conn.state() == State::Handshake;
        if !unanswered {
            self.current = None;
        }
        loop {
            match self.conn.poll_event() {
                Ok(Some(event)) => {
                    self.current = Some(event);
                    if let Some(view) = self.current.as_ref().and_then(describe) {
                        return Ok((S::WSENGINE_OK, view));
                    }
                    // An event kind this ABI does not know yet: skip it.
                    self.current = None;
                }
                Ok(None) => return Ok((S::WSENGINE_AGAIN, empty_event())),
                Err(e) => {
                    self.current = None;
                    let failure = Failure::new(fatal_status(&e), e.to_string());
                    self.fatal = Some(e);
                    return Err(failure);
                }
            }
        }
    }

    /// The current event if it is a handshake request.
    pub(crate) fn request(&self) -> Result<&wsengine::Request, Failure> {
        match &self.current {
            Some(Event::Request(r)) => Ok(r),
            _ => Err(Failure::new(
                S::WSENGINE_INVALID_STATE,
                "the current event is not WSENGINE_EVENT_REQUEST",
            )),
        }
    }

    /// The current event if it is a client's handshake response.
    pub(crate) fn response(&self) -> Result<&wsengine::Response, Failure> {
        match &self.current {
            Some(Event::Accepted(r)) => Ok(r),
            _ => Err(Failure::new(
                S::WSENGINE_INVALID_STATE,
                "the current event is not WSENGINE_EVENT_ACCEPTED",
            )),
        }
    }

    pub(crate) fn accept(&mut self, accept: Accept) -> Result<(), Failure> {
        Ok(self.conn.accept(accept)?)
    }

    pub(crate) fn reject(&mut self, reject: Reject) -> Result<(), Failure> {
        Ok(self.conn.reject(reject)?)
    }

    pub(crate) fn close(&mut self, code: u16, reason: &str) -> Result<(), Failure> {
        Ok(self.conn.close(CloseCode(code), reason)?)
    }

    pub(crate) fn state(&self) -> crate::types::wsengine_state {
        use crate::types::wsengine_state as T;
        match self.conn.state() {
            State::Handshake => T::WSENGINE_STATE_HANDSHAKE,
            State::Open => T::WSENGINE_STATE_OPEN,
            State::Closing => T::WSENGINE_STATE_CLOSING,
            State::Closed => T::WSENGINE_STATE_CLOSED,
            _ => T::WSENGINE_STATE_FAILED,
        }
    }
}

/// A byte string for C: never a NULL pointer.
pub(crate) fn c_bytes(bytes: &[u8]) -> (*const u8, usize) {
    if bytes.is_empty() {
        (EMPTY.as_ptr(), 0)
    } else {
        (bytes.as_ptr(), bytes.len())
    }
}

pub(crate) fn empty_event() -> wsengine_event {
    wsengine_event {
        kind: K::WSENGINE_EVENT_NONE,
        data: EMPTY.as_ptr(),
        len: 0,
        last: false,
        clean: false,
        close_code: 0,
    }
}

/// The C view of `event`, pointing into it; `None` for a kind this ABI does not know.
fn describe(event: &Event) -> Option<wsengine_event> {
    let mut out = empty_event();
    let data: &[u8] = match event {
        Event::Request(request) => {
            out.kind = K::WSENGINE_EVENT_REQUEST;
            request.path().as_bytes()
        }
        Event::Accepted(response) => {
            out.kind = K::WSENGINE_EVENT_ACCEPTED;
            response.protocol().unwrap_or_default().as_bytes()
        }
        Event::Text { data, last } => {
            out.kind = K::WSENGINE_EVENT_TEXT;
            out.last = *last;
            data.as_bytes()
        }
        Event::Binary { data, last } => {
            out.kind = K::WSENGINE_EVENT_BINARY;
            out.last = *last;
            data
        }
        Event::Ping(data) => {
            out.kind = K::WSENGINE_EVENT_PING;
            data
        }
        Event::Pong(data) => {
            out.kind = K::WSENGINE_EVENT_PONG;
            data
        }
        Event::Close(frame) => {
            out.kind = K::WSENGINE_EVENT_CLOSE;
            out.close_code = frame.as_ref().map_or(CloseCode::NO_STATUS.0, |f| f.code.0);
            frame.as_ref().map_or(&[][..], |f| f.reason.as_bytes())
        }
        Event::Closed { code, clean } => {
            out.kind = K::WSENGINE_EVENT_CLOSED;
            out.close_code = code.0;
            out.clean = *clean;
            &[]
        }
        _ => return None,
    };
    (out.data, out.len) = c_bytes(data);
    Some(out)
}
