//! The recv and send workloads for each implementation, behind one trait so the bench
//! treats them alike. Every runner is set up past the handshake (as the wsengine side
//! is) with limits large enough for 1 MiB messages, and each `run` is one iteration:
//! the whole input received, or every message sent.
//!
//! Receive: each library's whole-message API (wsengine `Delivery::Whole` events,
//! tungstenite `read`, fastwebsockets `FragmentCollector::read_frame`,
//! tokio-websockets `Stream::next`). Text is looked at as `&str` through the library's
//! own accessor (wsengine `Utf8Bytes::as_str`, tungstenite `Utf8Bytes::as_str`,
//! tokio-websockets `Message::as_text`); fastwebsockets has none (it guarantees valid
//! UTF-8 and hands out bytes), so its text is taken as bytes.
//!
//! Send: one message per call, each written out at once into a [`Sink`] that copies
//! every byte, as a socket write does (wsengine: `send_text`/`send_binary` then
//! `poll_transmit`, or `send(Message)` then a vectored `poll_transmit_vectored` as
//! `wsengine-owned`; tungstenite `send`, which is write + flush; fastwebsockets
//! `write_frame` with a borrowed payload; tokio-websockets `SinkExt::send`, which is
//! feed + flush, with a `Bytes` payload).

use std::hint::black_box;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;

use crate::engine;
use crate::mem::MemStream;
use crate::workload::{Kind, RecvInput, SendInput, Side, Sink};

/// An implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This crate's subject, with the borrowed-payload API (`send_text`/`send_binary`,
    /// `poll_transmit`).
    Wsengine,
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
    /// The implementations of the recv workload, wsengine first.
    pub const RECV: [Impl; 4] = [
        Impl::Wsengine,
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
            Impl::WsengineOwned => "wsengine-owned",
            Impl::Tungstenite => "tungstenite",
            Impl::Fastwebsockets => "fastwebsockets",
            Impl::TokioWebsockets => "tokio-websockets",
        }
    }
}

/// One iteration of a workload.
pub trait Runner {
    /// Runs the iteration.
    fn run(&mut self);
    /// Runs the iteration checking every message against the input (setup only).
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
        Impl::Wsengine | Impl::WsengineOwned => Box::new(WsengineRecv {
            conn: engine::open(Side::Server),
            input: input.clone(),
        }),
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

struct WsengineRecv {
    conn: wsengine::Connection,
    input: RecvInput,
}

impl Runner for WsengineRecv {
    fn run(&mut self) {
        engine::recv_all(&mut self.conn, &self.input);
    }

    fn check(&mut self) {
        // recv_all counts the messages; check the contents once here.
        let mut got = Vec::new();
        for chunk in self.input.wire.chunks(crate::workload::READ_CHUNK) {
            let mut data = chunk;
            while !data.is_empty() {
                let n = self.conn.recv(data);
                data = &data[n..];
                while let Some(event) = self.conn.poll_event().expect("no error") {
                    match event {
                        wsengine::Event::Text { data, last: true } => {
                            got.push(data.as_str().as_bytes().to_vec());
                        }
                        wsengine::Event::Binary { data, last: true } => got.push(data.to_vec()),
                        other => panic!("unexpected event {other:?}"),
                    }
                }
            }
        }
        assert_eq!(got.len(), self.input.messages);
        assert!(got.iter().all(|m| *m == self.input.payload));
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
        for _ in 0..self.input.messages {
            match self.ws.read().expect("read a message") {
                tungstenite::Message::Text(t) => {
                    black_box(t.as_str());
                }
                tungstenite::Message::Binary(b) => {
                    black_box(&b);
                }
                other => panic!("unexpected message {other:?}"),
            }
        }
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
        for _ in 0..self.input.messages {
            self.ws.send(self.message.clone()).expect("send");
        }
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
        self.rt.block_on(async {
            for _ in 0..messages {
                let frame = ws.read_frame().await.expect("read a message");
                match frame.opcode {
                    fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => {
                        black_box(&frame.payload[..]);
                    }
                    other => panic!("unexpected opcode {other:?}"),
                }
            }
        });
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
        self.rt.block_on(async {
            for _ in 0..input.messages {
                // Borrowed: a server writes the caller's bytes as they are; a client
                // copies them to mask (fastwebsockets masks in place).
                let payload = fastwebsockets::Payload::Borrowed(&input.payload);
                let frame = match input.kind {
                    Kind::Text => fastwebsockets::Frame::text(payload),
                    Kind::Binary => fastwebsockets::Frame::binary(payload),
                };
                ws.write_frame(frame).await.expect("send");
            }
        });
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
        self.rt.block_on(async {
            for _ in 0..messages {
                let message = ws.next().await.expect("a message").expect("no error");
                if let Some(text) = message.as_text() {
                    black_box(text);
                } else if message.is_binary() {
                    black_box(&message.as_payload()[..]);
                } else {
                    panic!("unexpected message {message:?}");
                }
            }
        });
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
        self.rt.block_on(async {
            for _ in 0..messages {
                ws.send(message.clone()).await.expect("send");
            }
        });
    }

    fn check(&mut self) {
        let before = self.ws.get_ref().sink.written;
        self.run();
        let written = self.ws.get_ref().sink.written - before;
        assert_eq!(written, expected_wire_len(&self.input, self.side));
    }
}
