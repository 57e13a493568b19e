//! The recv and send workloads for each implementation, behind one trait so the bench
//! treats them alike. Every runner is set up past the handshake (as the wsengine side
//! is) with limits large enough for 1 MiB messages, and each `run` is one iteration:
//! the whole input received, or every message sent.
//!
//! Receive: every library reads the same [`MemStream`] (the input replayed in reads of
//! at most `READ_CHUNK` bytes, copied into the reader's buffer as a socket read copies)
//! through its whole-message API (wsengine `Delivery::Whole` events, tungstenite `read`,
//! fastwebsockets `FragmentCollector::read_frame`, tokio-websockets `Stream::next`).
//! wsengine's host reads into its own 64 KiB buffer and hands that to
//! `Connection::recv(&[u8])`, which copies again: the two copies a host of that API
//! makes. Per message every runner does the same: text is looked at as `&str` through
//! the library's own accessor (wsengine `Utf8Bytes::as_str`, tungstenite
//! `Utf8Bytes::as_str`, tokio-websockets `Message::as_text`; fastwebsockets has none: it
//! guarantees valid UTF-8 and hands out bytes, so its text is taken as bytes), and the
//! payload goes through `black_box`.
//!
//! The timed loops (`Runner::run`) have no formatting or panic path per message: they
//! count anything unexpected (another message kind, an error) and assert once, after
//! the loop, that the count is zero.
//!
//! Send: one message per call, each written out at once into a [`Sink`] that copies
//! every byte, as a socket write does (wsengine: `send_text`/`send_binary` then
//! `poll_transmit`, or `send(Message)` then a vectored `poll_transmit_vectored` as
//! `wsengine-owned`; tungstenite `send`, which is write + flush; fastwebsockets
//! `write_frame` with a borrowed payload; tokio-websockets `SinkExt::send`, which is
//! feed + flush, with a `Bytes` payload).

use std::hint::black_box;
use std::io::Read;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;

use crate::engine::{self, Tally};
use crate::mem::MemStream;
use crate::workload::{Kind, READ_CHUNK, RecvInput, SendInput, Side, Sink};

/// An implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This crate's subject. Receive: each read straight into the core's buffer
    /// (`recv_buf` + `commit_recv`, as the mio and tokio hosts do), events drained with
    /// a `match` on `poll_event()`. Send: the borrowed-payload API
    /// (`send_text`/`send_binary`, `poll_transmit`).
    Wsengine,
    /// wsengine receiving as the crate docs teach: reads into `recv_buf`, and `while let
    /// Some(event) = conn.poll_event()? { match event { .. } }` in a function returning
    /// `Result`. Receive only.
    WsengineIdiom,
    /// wsengine with a host that reads into a buffer of its own and hands it over with
    /// `recv(&[u8])`, which copies it into the core's: charged both copies. Receive only.
    WsengineCopy,
    /// wsengine with the owned-payload API (`send(Message::Text | Message::Binary)`,
    /// vectored `poll_transmit_vectored`). Send only: receiving has one API.
    WsengineOwned,
    /// tungstenite (sync API).
    Tungstenite,
    /// fastwebsockets (async, tokio).
    Fastwebsockets,
    /// tokio-websockets (async, tokio).
    TokioWebsockets,
}

impl Impl {
    /// Every implementation, in the order of the tables' columns.
    pub const ALL: [Impl; 7] = [
        Impl::Wsengine,
        Impl::WsengineIdiom,
        Impl::WsengineCopy,
        Impl::WsengineOwned,
        Impl::Tungstenite,
        Impl::Fastwebsockets,
        Impl::TokioWebsockets,
    ];

    /// The implementations of the recv workload, wsengine's first.
    pub const RECV: [Impl; 6] = [
        Impl::Wsengine,
        Impl::WsengineIdiom,
        Impl::WsengineCopy,
        Impl::Tungstenite,
        Impl::Fastwebsockets,
        Impl::TokioWebsockets,
    ];

    /// The implementations of the send workload, wsengine's two APIs first.
    pub const SEND: [Impl; 5] = [
        Impl::Wsengine,
        Impl::WsengineOwned,
        Impl::Tungstenite,
        Impl::Fastwebsockets,
        Impl::TokioWebsockets,
    ];

    /// The name used in benchmark ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Wsengine => "wsengine",
            Impl::WsengineIdiom => "wsengine-idiom",
            Impl::WsengineCopy => "wsengine-copy",
            Impl::WsengineOwned => "wsengine-owned",
            Impl::Tungstenite => "tungstenite",
            Impl::Fastwebsockets => "fastwebsockets",
            Impl::TokioWebsockets => "tokio-websockets",
        }
    }

    /// wsengine (any of its runners), not a peer.
    pub fn is_wsengine(self) -> bool {
        matches!(
            self,
            Impl::Wsengine | Impl::WsengineIdiom | Impl::WsengineCopy | Impl::WsengineOwned
        )
    }
}

/// One iteration of a workload.
pub trait Runner {
    /// Runs the iteration.
    fn run(&mut self);
    /// Runs one iteration checking every message against the input, then one of
    /// [`run`](Self::run) (setup only).
    fn check(&mut self);
}

/// A current-thread runtime for the async peers.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// The recv workload on `imp`, already checked once.
pub fn recv_runner(imp: Impl, input: &RecvInput) -> Box<dyn Runner> {
    let mut runner: Box<dyn Runner> = match imp {
        Impl::Wsengine => Box::new(WsengineRecv::new(input, CoreBuf, MatchDrain)),
        Impl::WsengineIdiom => Box::new(WsengineRecv::new(input, CoreBuf, IdiomDrain)),
        Impl::WsengineCopy => Box::new(WsengineRecv::new(input, HostCopy::new(), MatchDrain)),
        Impl::WsengineOwned => panic!("wsengine-owned is a send runner"),
        Impl::Tungstenite => Box::new(TungsteniteRecv::new(input)),
        Impl::Fastwebsockets => Box::new(FastRecv::new(input)),
        Impl::TokioWebsockets => Box::new(TwsRecv::new(input)),
    };
    runner.check();
    runner
}

/// The send workload on `imp` as `side`, already checked once.
pub fn send_runner(imp: Impl, input: &SendInput, side: Side) -> Box<dyn Runner> {
    let mut runner: Box<dyn Runner> = match imp {
        Impl::WsengineIdiom | Impl::WsengineCopy => panic!("{} is a recv runner", imp.name()),
        Impl::Wsengine | Impl::WsengineOwned => Box::new(WsengineSend {
            conn: engine::open(side),
            owned: (imp == Impl::WsengineOwned).then(|| engine::OwnedPayload::new(input)),
            input: input.clone(),
            side,
            sink: Sink::new(),
        }),
        Impl::Tungstenite => Box::new(TungsteniteSend::new(input, side)),
        Impl::Fastwebsockets => Box::new(FastSend::new(input, side)),
        Impl::TokioWebsockets => Box::new(TwsSend::new(input, side)),
    };
    runner.check();
    runner
}

/// The bytes a send iteration must have written: every frame's header and payload.
fn expected_wire_len(input: &SendInput, side: Side) -> u64 {
    let ext = match input.size {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    let mask = if side == Side::Client { 4 } else { 0 };
    ((2 + ext + mask + input.size) * input.messages) as u64
}

// ---- wsengine ----

/// How a wsengine recv runner drains events after each `recv`: the direct `match` or
/// the docs' idiom (both in `engine`, shared with the root benches), or collecting the
/// messages (setup check).
trait Drain {
    fn drain(&mut self, conn: &mut wsengine::Connection, tally: &mut Tally);
}

/// `match conn.poll_event() { .. }` in a loop ([`engine::drain_events`]).
struct MatchDrain;

impl Drain for MatchDrain {
    fn drain(&mut self, conn: &mut wsengine::Connection, tally: &mut Tally) {
        engine::drain_events(conn, tally);
    }
}

/// `while let Some(event) = conn.poll_event()? { .. }` ([`engine::drain_events_idiom`]).
struct IdiomDrain;

impl Drain for IdiomDrain {
    fn drain(&mut self, conn: &mut wsengine::Connection, tally: &mut Tally) {
        if engine::drain_events_idiom(conn, tally).is_err() {
            tally.unexpected += 1;
        }
    }
}

/// Keeps a copy of every whole message and its kind (setup check only).
#[derive(Default)]
struct Collect(Vec<(Kind, Vec<u8>)>);

impl Drain for Collect {
    fn drain(&mut self, conn: &mut wsengine::Connection, tally: &mut Tally) {
        loop {
            match conn.poll_event() {
                Ok(Some(wsengine::Event::Text { data, last: true })) => {
                    self.0.push((Kind::Text, data.as_str().as_bytes().to_vec()));
                    tally.messages += 1;
                }
                Ok(Some(wsengine::Event::Binary { data, last: true })) => {
                    self.0.push((Kind::Binary, data.to_vec()));
                    tally.messages += 1;
                }
                Ok(None) => return,
                Ok(Some(_)) => tally.unexpected += 1,
                Err(_) => {
                    tally.unexpected += 1;
                    return;
                }
            }
        }
    }
}

/// How a wsengine recv runner moves one read of the transport into the core.
///
/// [`CoreBuf`] reads straight into the core's buffer (`recv_buf`, `commit_recv`): one
/// copy, the transport's, as for the peers. [`HostCopy`] is the `recv(&[u8])` host:
/// read into its own buffer, then `recv` copies into the core's.
trait Feed {
    /// Reads once from `stream` and hands all of it to `conn`, draining events with
    /// `drain` after each `recv`. Returns the bytes read (0: nothing to read, or an
    /// error, counted in `tally`).
    fn read_once<D: Drain>(
        &mut self,
        conn: &mut wsengine::Connection,
        stream: &mut MemStream,
        drain: &mut D,
        tally: &mut Tally,
    ) -> usize;
}

/// A host that reads straight into the core's receive buffer: `std::io::Read` into
/// `recv_buf()`, then `commit_recv(n)`.
struct CoreBuf;

impl Feed for CoreBuf {
    fn read_once<D: Drain>(
        &mut self,
        conn: &mut wsengine::Connection,
        stream: &mut MemStream,
        drain: &mut D,
        tally: &mut Tally,
    ) -> usize {
        if conn.recv_buf().is_empty() {
            // The receive buffer is full: events first (not expected: each read is
            // drained before the next).
            conn.commit_recv(0);
            drain.drain(conn, tally);
        }
        let room = conn.recv_buf();
        if room.is_empty() {
            conn.commit_recv(0);
            tally.unexpected += 1;
            return 0;
        }
        let Ok(n) = stream.read(room) else {
            conn.commit_recv(0);
            tally.unexpected += 1;
            return 0;
        };
        conn.commit_recv(n);
        drain.drain(conn, tally);
        n
    }
}

/// A host with its own read buffer (`READ_CHUNK` bytes, as big as the core's receive
/// buffer): `std::io::Read` into it, then `Connection::recv` from it.
struct HostCopy {
    buf: Box<[u8]>,
}

impl HostCopy {
    fn new() -> Self {
        Self {
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }
}

impl Feed for HostCopy {
    fn read_once<D: Drain>(
        &mut self,
        conn: &mut wsengine::Connection,
        stream: &mut MemStream,
        drain: &mut D,
        tally: &mut Tally,
    ) -> usize {
        let Ok(n) = stream.read(&mut self.buf) else {
            tally.unexpected += 1;
            return 0;
        };
        let mut data = &self.buf[..n];
        while !data.is_empty() {
            let taken = conn.recv(data);
            data = &data[taken..];
            drain.drain(conn, tally);
            if taken == 0 && conn.recv_capacity() == 0 {
                // Nothing taken and nothing freed: feeding again would spin.
                tally.unexpected += 1;
                break;
            }
        }
        n
    }
}

/// wsengine's recv runner: one iteration reads the [`MemStream`] until the input's
/// messages have all arrived (the stream's reads never cross the end of the input, so
/// an iteration ends exactly at a lap's end).
struct WsengineRecv<F, D> {
    conn: wsengine::Connection,
    stream: MemStream,
    feed: F,
    drain: D,
    input: RecvInput,
}

impl<F: Feed, D: Drain> WsengineRecv<F, D> {
    fn new(input: &RecvInput, feed: F, drain: D) -> Self {
        Self {
            conn: engine::open(Side::Server),
            stream: MemStream::new(&input.wire),
            feed,
            drain,
            input: input.clone(),
        }
    }
}

/// One lap of the input through `feed` into `conn`, drained by `drain`; a short or long
/// count of messages is counted as unexpected.
fn lap<F: Feed, D: Drain>(
    conn: &mut wsengine::Connection,
    stream: &mut MemStream,
    feed: &mut F,
    drain: &mut D,
    messages: usize,
) -> Tally {
    let mut tally = Tally::default();
    while tally.messages < messages {
        if feed.read_once(conn, stream, drain, &mut tally) == 0 {
            tally.unexpected += 1;
            break;
        }
    }
    if tally.messages != messages {
        tally.unexpected += 1;
    }
    tally
}

impl<F: Feed, D: Drain> Runner for WsengineRecv<F, D> {
    fn run(&mut self) {
        let tally = lap(
            &mut self.conn,
            &mut self.stream,
            &mut self.feed,
            &mut self.drain,
            self.input.messages,
        );
        assert!(
            tally.unexpected == 0,
            "wsengine recv: a message missing, or an unexpected event or error"
        );
    }

    fn check(&mut self) {
        // One lap keeping every message, then one of the runner's own.
        let mut collect = Collect::default();
        let tally = lap(
            &mut self.conn,
            &mut self.stream,
            &mut self.feed,
            &mut collect,
            self.input.messages,
        );
        assert_eq!(tally.unexpected, 0);
        assert_eq!(collect.0.len(), self.input.messages);
        assert!(
            collect
                .0
                .iter()
                .all(|(kind, m)| *kind == self.input.kind && *m == self.input.payload)
        );
        self.run();
    }
}

struct WsengineSend {
    conn: wsengine::Connection,
    /// `Some`: the owned-payload API.
    owned: Option<engine::OwnedPayload>,
    input: SendInput,
    side: Side,
    sink: Sink,
}

impl Runner for WsengineSend {
    fn run(&mut self) {
        match &self.owned {
            None => engine::send_all(&mut self.conn, &self.input, &mut self.sink),
            Some(p) => engine::send_all_owned(&mut self.conn, &self.input, p, &mut self.sink),
        };
    }

    fn check(&mut self) {
        let before = self.sink.written;
        self.run();
        let written = self.sink.written - before;
        assert_eq!(written, expected_wire_len(&self.input, self.side));
    }
}

// ---- tungstenite ----

fn tungstenite_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(16 << 20))
}

struct TungsteniteRecv {
    ws: tungstenite::WebSocket<MemStream>,
    input: RecvInput,
}

impl TungsteniteRecv {
    fn new(input: &RecvInput) -> Self {
        let ws = tungstenite::WebSocket::from_raw_socket(
            MemStream::new(&input.wire),
            tungstenite::protocol::Role::Server,
            Some(tungstenite_config()),
        );
        Self {
            ws,
            input: input.clone(),
        }
    }
}

impl Runner for TungsteniteRecv {
    fn run(&mut self) {
        let mut unexpected = 0usize;
        for _ in 0..self.input.messages {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    black_box(t.as_str());
                }
                Ok(tungstenite::Message::Binary(b)) => {
                    black_box(&b[..]);
                }
                _ => unexpected += 1,
            }
        }
        assert!(
            unexpected == 0,
            "tungstenite recv: an unexpected message or error"
        );
    }

    fn check(&mut self) {
        for _ in 0..self.input.messages {
            let got = match self.ws.read().expect("read a message") {
                tungstenite::Message::Text(t) if self.input.kind == Kind::Text => {
                    t.as_str().as_bytes().to_vec()
                }
                tungstenite::Message::Binary(b) if self.input.kind == Kind::Binary => b.to_vec(),
                other => panic!("unexpected message {other:?}"),
            };
            assert!(got == self.input.payload);
        }
        self.run();
    }
}

struct TungsteniteSend {
    ws: tungstenite::WebSocket<MemStream>,
    message: tungstenite::Message,
    input: SendInput,
    side: Side,
}

impl TungsteniteSend {
    fn new(input: &SendInput, side: Side) -> Self {
        let role = match side {
            Side::Client => tungstenite::protocol::Role::Client,
            Side::Server => tungstenite::protocol::Role::Server,
        };
        let ws = tungstenite::WebSocket::from_raw_socket(
            MemStream::sink(),
            role,
            Some(tungstenite_config()),
        );
        let message = match input.kind {
            Kind::Text => tungstenite::Message::Text(input.text.clone().into()),
            Kind::Binary => tungstenite::Message::Binary(Bytes::from(input.payload.clone())),
        };
        Self {
            ws,
            message,
            input: input.clone(),
            side,
        }
    }
}

impl Runner for TungsteniteSend {
    fn run(&mut self) {
        let mut refused = 0usize;
        for _ in 0..self.input.messages {
            refused += usize::from(self.ws.send(self.message.clone()).is_err());
        }
        assert!(refused == 0, "tungstenite send: a message refused");
    }

    fn check(&mut self) {
        let before = self.ws.get_ref().sink.written;
        self.run();
        let written = self.ws.get_ref().sink.written - before;
        assert_eq!(written, expected_wire_len(&self.input, self.side));
    }
}

// ---- fastwebsockets ----

struct FastRecv {
    rt: Runtime,
    ws: fastwebsockets::FragmentCollector<MemStream>,
    input: RecvInput,
}

impl FastRecv {
    fn new(input: &RecvInput) -> Self {
        let mut ws = fastwebsockets::WebSocket::after_handshake(
            MemStream::new(&input.wire),
            fastwebsockets::Role::Server,
        );
        ws.set_max_message_size(64 << 20);
        Self {
            rt: runtime(),
            ws: fastwebsockets::FragmentCollector::new(ws),
            input: input.clone(),
        }
    }
}

impl Runner for FastRecv {
    fn run(&mut self) {
        let (ws, messages) = (&mut self.ws, self.input.messages);
        let unexpected = self.rt.block_on(async {
            let mut unexpected = 0usize;
            for _ in 0..messages {
                match ws.read_frame().await {
                    Ok(frame)
                        if matches!(
                            frame.opcode,
                            fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary
                        ) =>
                    {
                        black_box(&frame.payload[..]);
                    }
                    _ => unexpected += 1,
                }
            }
            unexpected
        });
        assert!(
            unexpected == 0,
            "fastwebsockets recv: an unexpected message or error"
        );
    }

    fn check(&mut self) {
        let (ws, input) = (&mut self.ws, &self.input);
        self.rt.block_on(async {
            for _ in 0..input.messages {
                let frame = ws.read_frame().await.expect("read a message");
                let want = match input.kind {
                    Kind::Text => fastwebsockets::OpCode::Text,
                    Kind::Binary => fastwebsockets::OpCode::Binary,
                };
                assert!(frame.opcode == want && frame.fin);
                assert!(frame.payload[..] == input.payload[..]);
            }
        });
        self.run();
    }
}

struct FastSend {
    rt: Runtime,
    ws: fastwebsockets::WebSocket<MemStream>,
    input: SendInput,
    side: Side,
}

impl FastSend {
    fn new(input: &SendInput, side: Side) -> Self {
        let role = match side {
            Side::Client => fastwebsockets::Role::Client,
            Side::Server => fastwebsockets::Role::Server,
        };
        Self {
            rt: runtime(),
            ws: fastwebsockets::WebSocket::after_handshake(MemStream::sink(), role),
            input: input.clone(),
            side,
        }
    }
}

impl Runner for FastSend {
    fn run(&mut self) {
        let (ws, input) = (&mut self.ws, &self.input);
        let refused = self.rt.block_on(async {
            let mut refused = 0usize;
            for _ in 0..input.messages {
                // Borrowed: a server writes the caller's bytes as they are; a client
                // copies them to mask (fastwebsockets masks in place).
                let payload = fastwebsockets::Payload::Borrowed(&input.payload);
                let frame = match input.kind {
                    Kind::Text => fastwebsockets::Frame::text(payload),
                    Kind::Binary => fastwebsockets::Frame::binary(payload),
                };
                refused += usize::from(ws.write_frame(frame).await.is_err());
            }
            refused
        });
        assert!(refused == 0, "fastwebsockets send: a message refused");
    }

    fn check(&mut self) {
        // fastwebsockets has no accessor for its stream; count through a fresh one.
        let role = match self.side {
            Side::Client => fastwebsockets::Role::Client,
            Side::Server => fastwebsockets::Role::Server,
        };
        let mut probe = fastwebsockets::WebSocket::after_handshake(MemStream::sink(), role);
        std::mem::swap(&mut self.ws, &mut probe);
        self.run();
        std::mem::swap(&mut self.ws, &mut probe);
        assert_eq!(
            probe.into_inner().sink.written,
            expected_wire_len(&self.input, self.side)
        );
    }
}

// ---- tokio-websockets ----

fn tws_limits() -> tokio_websockets::Limits {
    tokio_websockets::Limits::default().max_payload_len(Some(64 << 20))
}

struct TwsRecv {
    rt: Runtime,
    ws: tokio_websockets::WebSocketStream<MemStream>,
    input: RecvInput,
}

impl TwsRecv {
    fn new(input: &RecvInput) -> Self {
        let ws = tokio_websockets::ServerBuilder::new()
            .limits(tws_limits())
            .serve(MemStream::new(&input.wire));
        Self {
            rt: runtime(),
            ws,
            input: input.clone(),
        }
    }
}

impl Runner for TwsRecv {
    fn run(&mut self) {
        let (ws, messages) = (&mut self.ws, self.input.messages);
        let unexpected = self.rt.block_on(async {
            let mut unexpected = 0usize;
            for _ in 0..messages {
                match ws.next().await {
                    Some(Ok(message)) => {
                        if let Some(text) = message.as_text() {
                            black_box(text);
                        } else if message.is_binary() {
                            black_box(&message.as_payload()[..]);
                        } else {
                            unexpected += 1;
                        }
                    }
                    _ => unexpected += 1,
                }
            }
            unexpected
        });
        assert!(
            unexpected == 0,
            "tokio-websockets recv: an unexpected message or error"
        );
    }

    fn check(&mut self) {
        let (ws, input) = (&mut self.ws, &self.input);
        self.rt.block_on(async {
            for _ in 0..input.messages {
                let message = ws.next().await.expect("a message").expect("no error");
                let got = match input.kind {
                    Kind::Text => message.as_text().expect("text").as_bytes(),
                    Kind::Binary => {
                        assert!(message.is_binary());
                        &message.as_payload()[..]
                    }
                };
                assert!(got == &input.payload[..]);
            }
        });
        self.run();
    }
}

struct TwsSend {
    rt: Runtime,
    ws: tokio_websockets::WebSocketStream<MemStream>,
    message: tokio_websockets::Message,
    input: SendInput,
    side: Side,
}

impl TwsSend {
    fn new(input: &SendInput, side: Side) -> Self {
        let ws = match side {
            Side::Client => tokio_websockets::ClientBuilder::new()
                .limits(tws_limits())
                .take_over(MemStream::sink()),
            Side::Server => tokio_websockets::ServerBuilder::new()
                .limits(tws_limits())
                .serve(MemStream::sink()),
        };
        let payload = Bytes::from(input.payload.clone());
        let message = match input.kind {
            Kind::Text => tokio_websockets::Message::text(payload),
            Kind::Binary => tokio_websockets::Message::binary(payload),
        };
        Self {
            rt: runtime(),
            ws,
            message,
            input: input.clone(),
            side,
        }
    }
}

impl Runner for TwsSend {
    fn run(&mut self) {
        let (ws, message, messages) = (&mut self.ws, &self.message, self.input.messages);
        let refused = self.rt.block_on(async {
            let mut refused = 0usize;
            for _ in 0..messages {
                refused += usize::from(ws.send(message.clone()).await.is_err());
            }
            refused
        });
        assert!(refused == 0, "tokio-websockets send: a message refused");
    }

    fn check(&mut self) {
        let before = self.ws.get_ref().sink.written;
        self.run();
        let written = self.ws.get_ref().sink.written - before;
        assert_eq!(written, expected_wire_len(&self.input, self.side));
    }
}
