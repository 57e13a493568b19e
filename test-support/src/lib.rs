//! The helpers every test crate of the workspace shares (the core's `tests/`, the hosts'
//! tests, the C ABI's), and the fuzz targets (`fuzz/`) and benches (`benches/`,
//! `benches/compare/`) with them: an in-memory client/server `Pair`, a raw frame writer
//! for the error cases, a decoder for what a connection transmitted, connections already
//! past the handshake, driven from raw bytes, and the conformance vectors every host runs
//! ([`vectors`], with the TCP client of the network hosts and the in-memory loop of the
//! others in [`conformance`]).
// A test reports failure by panicking: these helpers unwrap too. The fake clock starts
// from a fixed instant; the TCP client reads the real clock for its deadlines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::time::Duration;
use wsengine::Instant;

use wsengine::handshake::accept_key;
use wsengine::mask::apply_mask;
use wsengine::{
    Accept, ClientRequest, Config, Connection, Error, Event, FrameHeader, OpCode, Status,
};

/// The client handshake of RFC 6455 §1.2 (the key/accept pair of §1.3).
pub use vectors::REQUEST as RFC_REQUEST;
pub use vectors::{BINARY, CLOSE, CONT, MASK, PING, PONG, TEXT};

pub mod conformance;
#[cfg(feature = "tls")]
pub mod pki;
pub mod vectors;

/// The base instant of every test's fake clock: tests add durations to it and never sleep.
pub fn t0() -> Instant {
    // Not zero: an instant the code under test subtracts from must not sit at the origin.
    Instant::from_millis(1_000_000)
}

/// `t0()` plus `ms` milliseconds.
pub fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

/// The default configuration with a fixed RNG seed, so every run masks the same way and
/// a client sends the same `Sec-WebSocket-Key`. The fuzz targets build on it: the seeds
/// of `handshake_response` (fuzz/seed.sh) hold the `Sec-WebSocket-Accept` of that key.
pub fn config() -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([7; 32]);
    c
}

/// The client request every test uses.
pub fn client_request() -> ClientRequest {
    ClientRequest::new("ws://server.example.com/chat").expect("a valid ws:// URL")
}

// ---- raw frames ----

/// A frame as the wire carries it, with no RSV bit set. `opcode` is the 4-bit value, so
/// reserved opcodes can be written; a `mask` masks the payload (client to server).
pub fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    frame_with_rsv(fin, 0, opcode, mask, payload)
}

/// A frame with the RSV bits `rsv` (as they sit in the first byte: 0x40, 0x20, 0x10).
/// The length takes the minimal encoding (RFC 6455 §5.2).
pub fn frame_with_rsv(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    vectors::encode_frame(&mut out, fin, rsv, opcode, mask, payload);
    out
}

/// A masked frame, as a client sends it.
pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, Some(MASK), payload)
}

/// An unmasked frame, as a server sends it.
pub fn unmasked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, None, payload)
}

/// A Close frame body: the code, big-endian, then the reason.
pub fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

/// Concatenates byte strings.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---- events ----

/// A whole text message event.
pub fn text(s: &str) -> Event {
    Event::Text {
        data: s.into(),
        last: true,
    }
}

/// A whole binary message event.
pub fn binary(data: &[u8]) -> Event {
    Event::Binary {
        data: bytes::Bytes::copy_from_slice(data),
        last: true,
    }
}

/// What feeding bytes to a connection produced: its events, in order, and the error
/// that ended them, if any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Every event polled, in order.
    pub events: Vec<Event>,
    /// The error that ended the connection, if any.
    pub error: Option<Error>,
}

/// Polls events until `Ok(None)` or an error, into `out`. A server's `Event::Request`
/// is accepted at once (with no subprotocol) when `auto_accept` is set. Returns whether
/// anything was polled.
pub fn drain_events(conn: &mut Connection, out: &mut Outcome, auto_accept: bool) -> bool {
    if out.error.is_some() {
        return false;
    }
    let mut any = false;
    loop {
        match conn.poll_event() {
            Ok(Some(event)) => {
                any = true;
                if auto_accept && matches!(event, Event::Request(_)) {
                    conn.accept(Accept::new())
                        .expect("accept a pending request");
                }
                out.events.push(event);
            }
            Ok(None) => return any,
            Err(e) => {
                out.error = Some(e);
                return true;
            }
        }
    }
}

/// Feeds `pieces` one after the other, as separate reads, draining events after every
/// `recv` (and when `recv` takes nothing), until all bytes are in or an error
/// occurs. Requests are accepted at once.
pub fn feed_pieces<'a>(
    conn: &mut Connection,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    feed_pieces_with(conn, pieces, true)
}

/// Like [`feed_pieces`]; a request is accepted only when `auto_accept` is set.
pub fn feed_pieces_with<'a>(
    conn: &mut Connection,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    auto_accept: bool,
) -> Outcome {
    let mut out = Outcome::default();
    for piece in pieces {
        let mut data = piece;
        while !data.is_empty() {
            let capacity = conn.recv_capacity();
            let taken = conn.recv(data);
            assert!(taken <= data.len(), "recv took more than it was given");
            assert!(
                taken <= capacity,
                "recv took {taken} bytes, capacity {capacity}"
            );
            data = &data[taken..];
            let progressed = drain_events(conn, &mut out, auto_accept);
            if out.error.is_some() {
                return out;
            }
            assert!(
                taken > 0 || progressed,
                "recv took nothing and poll_event produced nothing: the connection is stuck \
                 with {} bytes left",
                data.len()
            );
        }
    }
    drain_events(conn, &mut out, auto_accept);
    out
}

/// Like [`feed_split`], but through the zero-copy receive API: each piece is "read"
/// into [`Connection::recv_buf`] (as much as its room takes) and committed with
/// [`Connection::commit_recv`], draining events after every commit.
pub fn feed_split_recv_buf(conn: &mut Connection, bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.sort_unstable();
    let mut out = Outcome::default();
    let mut start = 0;
    for end in cuts.into_iter().chain([bytes.len()]) {
        let mut data = &bytes[start..end];
        start = end;
        while !data.is_empty() {
            let room = conn.recv_buf();
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            conn.commit_recv(n);
            data = &data[n..];
            let progressed = drain_events(conn, &mut out, true);
            if out.error.is_some() {
                return out;
            }
            assert!(
                n > 0 || progressed,
                "recv_buf offered no room and poll_event produced nothing: the connection \
                 is stuck with {} bytes left",
                data.len()
            );
        }
    }
    drain_events(conn, &mut out, true);
    out
}

/// Feeds `bytes` in one read.
pub fn feed(conn: &mut Connection, bytes: &[u8]) -> Outcome {
    feed_pieces(conn, [bytes])
}

/// Feeds `bytes` one byte per read.
pub fn feed_bytewise(conn: &mut Connection, bytes: &[u8]) -> Outcome {
    feed_pieces(conn, bytes.chunks(1))
}

/// Feeds `bytes` in reads of `size` bytes (the last may be shorter).
pub fn feed_chunked(conn: &mut Connection, bytes: &[u8], size: usize) -> Outcome {
    feed_pieces(conn, bytes.chunks(size.max(1)))
}

/// Feeds `bytes` cut at the positions `cuts` (any order, clamped to the length).
pub fn feed_split(conn: &mut Connection, bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([bytes.len()]) {
        pieces.push(&bytes[start..end]);
        start = end;
    }
    feed_pieces(conn, pieces)
}

// ---- transmitted bytes ----

/// Everything `conn` has to transmit, drained.
pub fn take_transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = conn.poll_transmit();
        if chunk.is_empty() {
            return out;
        }
        let n = chunk.len();
        out.extend_from_slice(chunk);
        conn.advance_transmit(n);
    }
}

/// A frame a connection transmitted, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFrame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1-3 as they sit in byte 0 (`0x70`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame was masked.
    pub mask: Option<[u8; 4]>,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl SentFrame {
    /// The status code of a Close frame (`None` for an empty body or another opcode).
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (OpCode::Close, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }
}

/// Decodes a stream of frames; panics on anything that is not exactly whole frames.
pub fn decode_frames(mut bytes: &[u8]) -> Vec<SentFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, len) = match FrameHeader::decode(bytes, 0x70) {
            Ok(Status::Complete(h)) => h,
            other => panic!("transmitted bytes are not a frame: {other:?} in {bytes:02x?}"),
        };
        let payload_len = usize::try_from(header.payload_len).expect("payload fits in memory");
        let end = len + payload_len;
        assert!(bytes.len() >= end, "transmitted frame is truncated");
        let mut payload = bytes[len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push(SentFrame {
            fin: header.fin,
            rsv: header.rsv,
            opcode: header.opcode,
            mask: header.mask,
            payload,
        });
        bytes = &bytes[end..];
    }
    frames
}

/// Drains and decodes the frames `conn` transmitted (it must be past the handshake).
pub fn take_frames(conn: &mut Connection) -> Vec<SentFrame> {
    decode_frames(&take_transmit(conn))
}

/// Splits an HTTP head (through the blank line) from the bytes after it.
pub fn split_head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or_else(|| {
            panic!(
                "no complete HTTP head in {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
    (
        String::from_utf8(bytes[..end].to_vec()).expect("an ASCII head"),
        &bytes[end..],
    )
}

/// The value of header `name` in an HTTP head (case-insensitive name).
pub fn head_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---- connections past the handshake, driven from raw bytes ----

/// A server connection that has received the RFC request and accepted it; the 101 has
/// been drained.
pub fn open_server(config: Config) -> Connection {
    let mut server = Connection::server(config, t0());
    let out = feed(&mut server, RFC_REQUEST);
    assert!(out.error.is_none(), "handshake failed: {:?}", out.error);
    assert!(
        matches!(out.events.as_slice(), [Event::Request(_)]),
        "{:?}",
        out.events
    );
    let (head, rest) = {
        let tx = take_transmit(&mut server);
        let (head, rest) = split_head(&tx);
        (head, rest.to_vec())
    };
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(rest.is_empty(), "frames after the 101: {rest:02x?}");
    assert_eq!(server.state(), wsengine::State::Open);
    server
}

/// A valid 101 response to a request head that a client transmitted.
pub fn response_to(request_head: &str) -> Vec<u8> {
    let key = head_header(request_head, "Sec-WebSocket-Key").expect("the request has a key");
    accept_response(key)
}

/// The plainest valid 101 answering a request whose `Sec-WebSocket-Key` is `key`: no
/// subprotocol, no extension.
pub fn accept_response(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\
         \r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// A client connection whose request went out and that has accepted a valid 101.
pub fn open_client(config: Config) -> Connection {
    let mut client = Connection::client(client_request(), config, t0()).expect("a client");
    let tx = take_transmit(&mut client);
    let (head, rest) = split_head(&tx);
    assert!(head.starts_with("GET /chat HTTP/1.1\r\n"), "{head}");
    assert!(rest.is_empty());
    let out = feed(&mut client, &response_to(&head));
    assert!(out.error.is_none(), "handshake failed: {:?}", out.error);
    assert!(
        matches!(out.events.as_slice(), [Event::Accepted(_)]),
        "{:?}",
        out.events
    );
    assert_eq!(client.state(), wsengine::State::Open);
    client
}

// ---- a client and a server exchanging bytes in memory ----

/// A client and a server `Connection` joined in memory. `drive` moves bytes both ways
/// until neither has anything to say, collecting each side's events.
pub struct Pair {
    /// The client side.
    pub client: Connection,
    /// The server side.
    pub server: Connection,
    /// What the client saw so far.
    pub client_out: Outcome,
    /// What the server saw so far.
    pub server_out: Outcome,
    /// The fake clock: `drive` passes it to `handle_timeout` so that timers started
    /// lazily are armed.
    pub now: Instant,
    /// Accept the client's request as soon as it is reported.
    pub auto_accept: bool,
    /// Deliver each side's bytes to the other in reads of at most this many bytes.
    pub read_size: usize,
}

impl Pair {
    /// A fresh pair (nothing exchanged yet).
    pub fn new(client_config: Config, server_config: Config) -> Self {
        let now = t0();
        Self {
            client: Connection::client(client_request(), client_config, now).expect("a client"),
            server: Connection::server(server_config, now),
            client_out: Outcome::default(),
            server_out: Outcome::default(),
            now,
            auto_accept: true,
            read_size: usize::MAX,
        }
    }

    /// Moves bytes both ways until quiet; returns whether any byte moved.
    pub fn drive(&mut self) -> bool {
        let mut moved_any = false;
        for _ in 0..10_000 {
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            drain_events(&mut self.client, &mut self.client_out, false);
            drain_events(&mut self.server, &mut self.server_out, self.auto_accept);
            let a = transfer(
                &mut self.client,
                &mut self.server,
                &mut self.server_out,
                self.auto_accept,
                self.read_size,
            );
            let b = transfer(
                &mut self.server,
                &mut self.client,
                &mut self.client_out,
                false,
                self.read_size,
            );
            if !a && !b {
                return moved_any;
            }
            moved_any = true;
        }
        panic!("the pair never went quiet");
    }

    /// Takes the events collected so far: (client's, server's).
    pub fn take_events(&mut self) -> (Vec<Event>, Vec<Event>) {
        (
            std::mem::take(&mut self.client_out.events),
            std::mem::take(&mut self.server_out.events),
        )
    }
}

/// Moves everything `from` transmits into `to`, in reads of at most `read_size` bytes,
/// draining `to`'s events whenever its buffer is full. Returns whether any byte moved.
fn transfer(
    from: &mut Connection,
    to: &mut Connection,
    to_out: &mut Outcome,
    auto_accept: bool,
    read_size: usize,
) -> bool {
    let bytes = take_transmit(from);
    let mut data = bytes.as_slice();
    while !data.is_empty() {
        let end = data.len().min(read_size);
        let capacity = to.recv_capacity();
        let taken = to.recv(&data[..end]);
        assert!(
            taken <= capacity,
            "recv took {taken} bytes, capacity {capacity}"
        );
        data = &data[taken..];
        let progressed = drain_events(to, to_out, auto_accept);
        assert!(taken > 0 || progressed, "the receiver is stuck");
    }
    !bytes.is_empty()
}

/// A client and a server past the handshake (events cleared).
pub fn open_pair(config: Config) -> Pair {
    open_pair_with(config.clone(), config)
}

/// Like [`open_pair`] with a configuration per side.
pub fn open_pair_with(client_config: Config, server_config: Config) -> Pair {
    let mut pair = Pair::new(client_config, server_config);
    pair.drive();
    let (client, server) = pair.take_events();
    assert!(
        matches!(client.as_slice(), [Event::Accepted(_)]),
        "client events {client:?}, error {:?}",
        pair.client_out.error
    );
    assert!(
        matches!(server.as_slice(), [Event::Request(_)]),
        "server events {server:?}, error {:?}",
        pair.server_out.error
    );
    assert_eq!(pair.client.state(), wsengine::State::Open);
    assert_eq!(pair.server.state(), wsengine::State::Open);
    pair
}
