//! Shared pieces of the fuzz targets: a byte reader for the structured inputs, chunk
//! plans, connections already past the handshake, a liveness-checking feeder, and
//! [`PeerCheck`], which proves that whatever a connection transmits is a valid frame
//! stream for a peer of the other role. What the workspace's tests use too (the fake
//! clock, the raw frame writer, the RFC request, the base configuration, draining the
//! transmit buffer, the 101 answering a request) comes from `wsengine-test-support`.
//!
//! Inputs are read front to back through [`arbitrary::Unstructured`] one byte at a time
//! (see [`Reader`]), not with derived `Arbitrary` impls: the layout stays stable and
//! documented (fuzz/README.md), so `fuzz/seed.sh` can write seeds byte by byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conn;
pub mod roundtrip;

use arbitrary::Unstructured;
use wsengine::handshake::ExtensionOffer;
use wsengine::mask::apply_mask;
use wsengine::{
    Accept, ClientRequest, Config, Connection, Delivery, Event, FrameHeader, MessageKind, OpCode,
    Role, Status,
};
use wsengine_test_support::{Outcome, RFC_REQUEST, response_to, split_head, t0, take_transmit};

// ---- reading structured input ----

/// Reads an input front to back; past the end every read returns zeros / empty slices,
/// so any byte string is a valid input.
pub struct Reader<'a, 'b>(pub &'b mut Unstructured<'a>);

impl<'a> Reader<'a, '_> {
    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    /// Four raw bytes.
    pub fn key(&mut self) -> [u8; 4] {
        [self.u8(), self.u8(), self.u8(), self.u8()]
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        self.0.bytes(n).unwrap_or_default()
    }

    /// A byte string with a one-byte length prefix.
    pub fn vec8(&mut self) -> Vec<u8> {
        let n = usize::from(self.u8());
        self.bytes(n).to_vec()
    }

    /// A byte string with a two-byte (little-endian) length prefix.
    pub fn vec16(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16());
        self.bytes(n).to_vec()
    }
}

// ---- chunk plans ----

/// Read sizes derived from one byte. Top two bits pick the mode: `00` everything at
/// once, `01` a fixed size `(low 6 bits) + 1`, `10` pseudo-random sizes in
/// `1..=(low 6 bits) + 1`, `11` one byte at a time.
#[derive(Debug, Clone)]
pub struct Chunker {
    seed: u8,
    state: u32,
}

impl Chunker {
    /// The plan for `seed`.
    pub fn new(seed: u8) -> Self {
        Self {
            seed,
            state: 0x9E37_79B9 ^ u32::from(seed),
        }
    }

    /// The size of the next read (at least 1).
    pub fn next_size(&mut self) -> usize {
        let low = usize::from(self.seed & 0x3F) + 1;
        match self.seed >> 6 {
            0 => usize::MAX,
            1 => low,
            2 => {
                // xorshift32
                let mut x = self.state;
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                self.state = x;
                (x as usize % low) + 1
            }
            _ => 1,
        }
    }
}

// ---- frames ----

/// The encoded size of a frame with `len` payload bytes.
pub fn encoded_len(len: usize, masked: bool) -> usize {
    let ext = match len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + ext + if masked { 4 } else { 0 } + len
}

/// Whether RFC 6455 §7.4 (and the IANA registry) lets `code` appear in a Close frame.
/// Written out here, independently of `CloseCode::is_sendable`.
pub fn close_code_sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

// ---- connections ----

/// The request every fuzzed client sends: two subprotocols and one extension offered, so
/// the response checks for both have something to match.
pub fn client_request() -> ClientRequest {
    ClientRequest::new("ws://server.example.com/chat")
        .expect("a valid URL")
        .protocol("chat")
        .protocol("superchat")
        .extension(ExtensionOffer::new("permessage-deflate").param("client_max_window_bits", None))
}

/// The tests' config (the default with a fixed RNG seed, so the `Sec-WebSocket-Key` of
/// every client is fixed: fuzz/seed.sh writes the matching `Sec-WebSocket-Accept` into
/// the seeds) with no handshake timer.
pub fn base_config() -> Config {
    let mut c = wsengine_test_support::config();
    c.handshake_timeout = None;
    c
}

/// Polls events until `Ok(None)` or an error; `on_event` sees each (and may answer a
/// request). Returns whether anything was polled. Errors are checked to be sticky.
pub fn drain(
    conn: &mut Connection,
    out: &mut Outcome,
    on_event: &mut dyn FnMut(&mut Connection, &Event),
) -> bool {
    if let Some(e) = &out.error {
        let again = conn.poll_event();
        assert_eq!(again.as_ref().err(), Some(e), "the error is not sticky");
        return false;
    }
    let mut any = false;
    loop {
        match conn.poll_event() {
            Ok(Some(event)) => {
                any = true;
                on_event(conn, &event);
                out.events.push(event);
            }
            Ok(None) => return any,
            Err(e) => {
                assert_eq!(
                    conn.state(),
                    wsengine::State::Failed,
                    "error {e:?} without Failed"
                );
                out.error = Some(e);
                return true;
            }
        }
    }
}

/// Feeds `data` in reads sized by `chunker`, draining events after every `recv`.
/// Panics if the connection takes nothing and produces nothing (it would hang a host
/// that waits for `recv_capacity`).
pub fn feed(
    conn: &mut Connection,
    out: &mut Outcome,
    data: &[u8],
    chunker: &mut Chunker,
    on_event: &mut dyn FnMut(&mut Connection, &Event),
) {
    let mut data = data;
    while !data.is_empty() {
        let n = chunker.next_size().min(data.len());
        let capacity = conn.recv_capacity();
        let taken = conn.recv(&data[..n]);
        assert!(
            taken <= n && taken <= capacity,
            "recv took {taken} of {n}, capacity {capacity}"
        );
        assert_eq!(
            taken,
            n.min(capacity),
            "recv took less than it had room for"
        );
        data = &data[taken..];
        let progressed = drain(conn, out, on_event);
        assert!(
            taken > 0 || progressed || out.error.is_some(),
            "stuck: recv takes nothing and poll_event produces nothing ({} bytes left, \
             state {:?}, {conn:?})",
            data.len(),
            conn.state(),
        );
    }
}

/// Ignores events.
pub fn no_op(_: &mut Connection, _: &Event) {}

/// A server connection that has received and accepted the RFC request (101 drained).
pub fn open_server(config: Config) -> Connection {
    let mut server = Connection::server(config, t0());
    let mut out = Outcome::default();
    feed(
        &mut server,
        &mut out,
        RFC_REQUEST,
        &mut Chunker::new(0),
        &mut |c, e| {
            if matches!(e, Event::Request(_)) {
                c.accept(Accept::new()).expect("accept");
            }
        },
    );
    assert!(out.error.is_none(), "{out:?}");
    let tx = take_transmit(&mut server);
    let (head, rest) = split_head(&tx);
    assert!(head.starts_with("HTTP/1.1 101 ") && rest.is_empty());
    assert_eq!(server.state(), wsengine::State::Open);
    server
}

/// A client connection (fixed seed) that has sent its request and accepted a valid 101.
pub fn open_client(config: Config) -> Connection {
    let mut client = Connection::client(client_request(), config, t0()).expect("a client");
    let head = take_transmit(&mut client);
    let head = core::str::from_utf8(&head).expect("an ASCII head");
    let mut out = Outcome::default();
    feed(
        &mut client,
        &mut out,
        &response_to(head),
        &mut Chunker::new(0),
        &mut no_op,
    );
    assert!(
        matches!(out.events.as_slice(), [Event::Accepted(_)]) && out.error.is_none(),
        "{out:?}"
    );
    assert_eq!(client.state(), wsengine::State::Open);
    client
}

// ---- checking transmitted bytes ----

/// A frame seen in a transmitted stream (payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFrame {
    /// FIN.
    pub fin: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The unmasked payload (kept for control frames only).
    pub payload: Vec<u8>,
}

/// Receives everything a connection of role `sender` transmits after its handshake and
/// proves it is a valid frame stream two ways: an independent decoder (masking per role,
/// no RSV bits, nothing after Close, whole frames only at the end) and a real
/// `Connection` of the other role past its handshake, with limits off, which must never
/// report a protocol error. Data messages are collected for comparison with what the
/// application sent.
pub struct PeerCheck {
    sender: Role,
    peer: Connection,
    peer_out: Outcome,
    pending: Vec<u8>,
    /// Payload bytes of the current frame still to come, and its header.
    in_frame: Option<(FrameHeader, Vec<u8>)>,
    after_close: bool,
    /// The last complete frame.
    pub last_frame: Option<SeenFrame>,
    /// Complete data messages the peer received.
    pub messages: Vec<(MessageKind, Vec<u8>)>,
    current: Option<(MessageKind, Vec<u8>)>,
}

impl PeerCheck {
    /// A checker for what a connection of role `sender` transmits.
    pub fn new(sender: Role) -> Self {
        let mut config = base_config();
        config.max_frame_size = u64::MAX;
        config.max_message_size = u64::MAX;
        config.max_fragments = u32::MAX;
        config.delivery = Delivery::Streaming;
        config.auto_pong = false;
        config.close_timeout = None;
        let peer = match sender {
            Role::Server => open_client(config),
            Role::Client => open_server(config),
        };
        Self {
            sender,
            peer,
            peer_out: Outcome::default(),
            pending: Vec::new(),
            in_frame: None,
            after_close: false,
            last_frame: None,
            messages: Vec::new(),
            current: None,
        }
    }

    /// Takes the next transmitted bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.decode(bytes);
        let mut out = std::mem::take(&mut self.peer_out);
        let mut chunker = Chunker::new(0);
        feed(&mut self.peer, &mut out, bytes, &mut chunker, &mut no_op);
        if let Some(e) = &out.error {
            panic!("the engine transmitted bytes its peer rejects: {e:?}");
        }
        for event in out.events.drain(..) {
            self.on_peer_event(event);
        }
        self.peer_out = out;
        // The peer never needs to answer (auto_pong off); drop what it queued.
        let _ = take_transmit(&mut self.peer);
    }

    fn on_peer_event(&mut self, event: Event) {
        let (kind, data, last) = match event {
            Event::Text { data, last } => {
                assert!(
                    core::str::from_utf8(data.as_bytes()).is_ok(),
                    "invalid UTF-8 piece"
                );
                (MessageKind::Text, data.as_bytes().to_vec(), last)
            }
            Event::Binary { data, last } => (MessageKind::Binary, data.to_vec(), last),
            _ => return,
        };
        let cur = self.current.get_or_insert_with(|| (kind, Vec::new()));
        assert_eq!(cur.0, kind, "message kind changed mid-message");
        cur.1.extend_from_slice(&data);
        if last {
            let done = self.current.take().expect("a message");
            self.messages.push(done);
        }
    }

    fn decode(&mut self, bytes: &[u8]) {
        assert!(
            !self.after_close,
            "bytes transmitted after a Close frame: {bytes:02x?}"
        );
        self.pending.extend_from_slice(bytes);
        loop {
            if let Some((header, payload)) = &mut self.in_frame {
                let want = header.payload_len as usize - payload.len();
                let n = want.min(self.pending.len());
                payload.extend(self.pending.drain(..n));
                if payload.len() < header.payload_len as usize {
                    return;
                }
                let (header, mut payload) = self.in_frame.take().expect("a frame");
                if let Some(key) = header.mask {
                    apply_mask(&mut payload, key, 0);
                }
                if header.opcode == OpCode::Close {
                    self.after_close = true;
                    assert!(
                        self.pending.is_empty(),
                        "bytes transmitted after a Close frame"
                    );
                }
                self.last_frame = Some(SeenFrame {
                    fin: header.fin,
                    opcode: header.opcode,
                    payload: if header.opcode.is_control() {
                        payload
                    } else {
                        Vec::new()
                    },
                });
                continue;
            }
            let (header, len) = match FrameHeader::decode(&self.pending, 0) {
                Ok(Status::Complete(h)) => h,
                Ok(Status::Partial) => return,
                Err(e) => panic!(
                    "transmitted bytes are not a frame ({e:?}): {:02x?}",
                    self.pending
                ),
            };
            match self.sender {
                Role::Client => assert!(header.mask.is_some(), "client frame not masked"),
                Role::Server => assert!(header.mask.is_none(), "server frame masked"),
            }
            assert!(
                header.payload_len <= 1 << 30,
                "absurd frame length {}",
                header.payload_len
            );
            self.pending.drain(..len);
            self.in_frame = Some((header, Vec::new()));
        }
    }

    /// Everything has been transmitted: no frame may be left half-sent.
    pub fn finish(&self) {
        assert!(
            self.pending.is_empty() && self.in_frame.is_none(),
            "the transmitted stream ends inside a frame"
        );
    }
}
