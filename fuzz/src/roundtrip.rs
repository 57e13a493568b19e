//! The `roundtrip` harness: a client and a server `Connection` joined in memory through
//! arbitrary read sizes; every message, fragment and ping one sends, the other
//! receives, equal and in order, in either delivery mode.
//!
//! Input layout (integers little-endian), see also fuzz/README.md:
//!
//! ```text
//! flags u8          bit0 client streaming, bit1 server streaming, bit2 the server
//!                   closes at the end (else the client)
//! client_recv u16, server_recv u16, client_send u16, server_send u16   (0: default)
//! nchunks u8, then nchunks read sizes u8 (cycled; 0 = everything at once)
//! steps until the input ends, each a tag byte:
//!   bit7: sent by the server (else the client); bit6: move the bytes now;
//!   (tag & 0x3F) % 3: 0 text, 1 binary, 2 ping
//!   text/binary: len u16, bytes (text: lossy UTF-8), ncuts u8, then per cut:
//!                at u16 (offset % (len + 1), sorted), ping u8 (0: none, else a Ping of
//!                ping - 1 bytes, at most 125, read next, sent after that fragment)
//!                no cuts: one send_text/send_binary; else send_fragment per piece
//!   ping:        len u8 (at most 125 used), bytes
//! ```

use arbitrary::{Arbitrary, Unstructured};
use wsengine::{
    Accept, CloseCode, Config, Connection, Delivery, Event, Message, MessageKind, SendError, State,
};

use wsengine_test_support::{t0, take_transmit};

use crate::{Reader, base_config};

/// What one side sends and the other must receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

/// One message: its pieces (one piece: a whole send) and Pings after pieces.
#[derive(Debug, Clone)]
pub struct Step {
    pub from_server: bool,
    pub flush: bool,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Data {
        text: bool,
        data: Vec<u8>,
        /// (cut offset, ping after the piece that ends there)
        cuts: Vec<(usize, Option<Vec<u8>>)>,
    },
    Ping(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct RoundtripInput {
    pub client: Config,
    pub server: Config,
    pub server_closes: bool,
    pub chunks: Vec<u8>,
    pub steps: Vec<Step>,
}

impl<'a> Arbitrary<'a> for RoundtripInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = Reader(u);
        let flags = r.u8();
        let mut client = base_config();
        let mut server = base_config();
        for (c, streaming) in [(&mut client, flags & 1 != 0), (&mut server, flags & 2 != 0)] {
            c.delivery = if streaming {
                Delivery::Streaming
            } else {
                Delivery::Whole
            };
            c.close_timeout = None;
        }
        let (cr, sr, cs, ss) = (r.u16(), r.u16(), r.u16(), r.u16());
        if cr != 0 {
            client.recv_buffer_size = usize::from(cr);
        }
        if sr != 0 {
            server.recv_buffer_size = usize::from(sr);
        }
        if cs != 0 {
            client.max_send_buffer = usize::from(cs);
        }
        if ss != 0 {
            server.max_send_buffer = usize::from(ss);
        }
        let n = usize::from(r.u8());
        let chunks = r.bytes(n).to_vec();
        let mut steps = Vec::new();
        while !r.is_empty() && steps.len() < 256 {
            let tag = r.u8();
            let kind = match (tag & 0x3F) % 3 {
                2 => StepKind::Ping(r.vec8().into_iter().take(125).collect()),
                k => {
                    let text = k == 0;
                    let raw = r.vec16();
                    let data = if text {
                        String::from_utf8_lossy(&raw).into_owned().into_bytes()
                    } else {
                        raw
                    };
                    let ncuts = r.u8();
                    let mut cuts = Vec::new();
                    for _ in 0..ncuts {
                        let at = usize::from(r.u16()) % (data.len() + 1);
                        let p = r.u8();
                        let ping = (p != 0).then(|| r.bytes(usize::from(p - 1).min(125)).to_vec());
                        cuts.push((at, ping));
                    }
                    cuts.sort_by_key(|c| c.0);
                    StepKind::Data { text, data, cuts }
                }
            };
            steps.push(Step {
                from_server: tag & 0x80 != 0,
                flush: tag & 0x40 != 0,
                kind,
            });
        }
        Ok(Self {
            client,
            server,
            server_closes: flags & 4 != 0,
            chunks,
            steps,
        })
    }
}

/// One side: its connection and what it has received.
struct Side {
    conn: Connection,
    /// Messages received (data complete, pings).
    got: Vec<Msg>,
    /// A streamed message being received.
    partial: Option<(MessageKind, Vec<u8>)>,
    /// Pong payloads received.
    pongs: Vec<Vec<u8>>,
    /// Ping payloads sent.
    pings_sent: Vec<Vec<u8>>,
    close: Vec<Event>,
    accepted: bool,
}

impl Side {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            got: Vec::new(),
            partial: None,
            pongs: Vec::new(),
            pings_sent: Vec::new(),
            close: Vec::new(),
            accepted: false,
        }
    }

    /// Drains events; returns whether any came.
    fn drain(&mut self) -> bool {
        let mut any = false;
        loop {
            let event = match self.conn.poll_event() {
                Ok(Some(e)) => e,
                Ok(None) => return any,
                Err(e) => panic!("{:?} failed on valid traffic: {e:?}", self.conn.role()),
            };
            any = true;
            let streaming = self.conn.config().delivery == Delivery::Streaming;
            let (kind, data, last) = match event {
                Event::Request(_) => {
                    self.conn.accept(Accept::new()).expect("accept");
                    self.accepted = true;
                    continue;
                }
                Event::Accepted(_) => {
                    self.accepted = true;
                    continue;
                }
                Event::Ping(p) => {
                    self.got.push(Msg::Ping(p.to_vec()));
                    continue;
                }
                Event::Pong(p) => {
                    self.pongs.push(p.to_vec());
                    continue;
                }
                e @ (Event::Close(_) | Event::Closed { .. }) => {
                    self.close.push(e);
                    continue;
                }
                Event::Text { data, last } => {
                    assert!(
                        core::str::from_utf8(data.as_bytes()).is_ok(),
                        "a text piece that is not valid UTF-8"
                    );
                    (MessageKind::Text, data.as_bytes().to_vec(), last)
                }
                Event::Binary { data, last } => (MessageKind::Binary, data.to_vec(), last),
                other => panic!("unexpected {other:?}"),
            };
            if !streaming {
                assert!(last, "a piece in Whole delivery");
            } else {
                assert!(last || !data.is_empty(), "an empty non-final piece");
            }
            let cur = self.partial.get_or_insert_with(|| (kind, Vec::new()));
            assert_eq!(cur.0, kind);
            cur.1.extend_from_slice(&data);
            if last {
                let (kind, data) = self.partial.take().expect("a message");
                self.got.push(match kind {
                    MessageKind::Text => Msg::Text(data),
                    MessageKind::Binary => Msg::Binary(data),
                });
            }
        }
    }
}

struct World {
    client: Side,
    server: Side,
    chunks: Vec<u8>,
    next_chunk: usize,
}

impl World {
    fn read_size(&mut self) -> usize {
        if self.chunks.is_empty() {
            return usize::MAX;
        }
        let c = self.chunks[self.next_chunk % self.chunks.len()];
        self.next_chunk += 1;
        if c == 0 { usize::MAX } else { usize::from(c) }
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let a = self.transfer(false);
            let b = self.transfer(true);
            if !a && !b {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// Moves what one side transmits into the other. Returns whether bytes moved.
    fn transfer(&mut self, from_server: bool) -> bool {
        let bytes = {
            let from = if from_server {
                &mut self.server
            } else {
                &mut self.client
            };
            from.drain();
            take_transmit(&mut from.conn)
        };
        let mut data = bytes.as_slice();
        while !data.is_empty() {
            let n = self.read_size().min(data.len());
            let to = if from_server {
                &mut self.client
            } else {
                &mut self.server
            };
            let capacity = to.conn.recv_capacity();
            let taken = to.conn.recv(&data[..n]);
            assert_eq!(taken, n.min(capacity));
            data = &data[taken..];
            let progressed = to.drain();
            assert!(taken > 0 || progressed, "the receiver is stuck");
        }
        !bytes.is_empty()
    }

    fn side(&mut self, server: bool) -> &mut Side {
        if server {
            &mut self.server
        } else {
            &mut self.client
        }
    }

    /// Runs a send; when the send buffer is full, moves bytes and tries again.
    fn send(&mut self, server: bool, f: &dyn Fn(&mut Connection) -> Result<(), SendError>) {
        match f(&mut self.side(server).conn) {
            Ok(()) => {}
            Err(SendError::Blocked) => {
                self.pump();
                let r = f(&mut self.side(server).conn);
                assert_eq!(r, Ok(()), "a send after the buffer drained");
            }
            Err(e) => panic!("send failed: {e:?}"),
        }
    }
}

/// Runs one input.
pub fn run(input: &RoundtripInput) {
    let client =
        Connection::client(crate::client_request(), input.client.clone(), t0()).expect("a client");
    let server = Connection::server(input.server.clone(), t0());
    let mut w = World {
        client: Side::new(client),
        server: Side::new(server),
        chunks: input.chunks.clone(),
        next_chunk: 0,
    };
    w.pump();
    assert!(
        w.client.accepted && w.server.accepted,
        "the handshake did not complete"
    );
    assert_eq!(w.client.conn.state(), State::Open);
    assert_eq!(w.server.conn.state(), State::Open);

    // What each side must receive, in order.
    let mut to_client = Vec::new();
    let mut to_server = Vec::new();
    for step in &input.steps {
        let s = step.from_server;
        let expected = if s { &mut to_client } else { &mut to_server };
        match &step.kind {
            StepKind::Ping(p) => {
                w.send(s, &|c| {
                    c.send(Message::Ping(bytes::Bytes::copy_from_slice(p)))
                });
                w.side(s).pings_sent.push(p.clone());
                expected.push(Msg::Ping(p.clone()));
            }
            StepKind::Data { text, data, cuts } => {
                let kind = if *text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if cuts.is_empty() {
                    if *text {
                        let t = core::str::from_utf8(data).expect("lossy text is UTF-8");
                        w.send(s, &|c| c.send_text(t));
                    } else {
                        w.send(s, &|c| c.send_binary(data));
                    }
                } else {
                    let mut start = 0;
                    for (i, (at, ping)) in cuts.iter().enumerate() {
                        let piece = &data[start..*at];
                        w.send(s, &|c| c.send_fragment(kind, piece, false));
                        start = *at;
                        if let Some(p) = ping {
                            w.send(s, &|c| {
                                c.send(Message::Ping(bytes::Bytes::copy_from_slice(p)))
                            });
                            w.side(s).pings_sent.push(p.clone());
                            expected.push(Msg::Ping(p.clone()));
                        }
                        if i % 7 == 6 {
                            w.pump();
                        }
                    }
                    let piece = &data[start..];
                    w.send(s, &|c| c.send_fragment(kind, piece, true));
                }
                expected.push(if *text {
                    Msg::Text(data.clone())
                } else {
                    Msg::Binary(data.clone())
                });
            }
        }
        if step.flush {
            w.pump();
        }
    }
    w.pump();
    assert_eq!(
        w.server.got, to_server,
        "the server received other messages"
    );
    assert_eq!(
        w.client.got, to_client,
        "the client received other messages"
    );
    for side in [&w.client, &w.server] {
        assert!(side.partial.is_none());
        // Pongs answer pings in order; when the peer's buffer was full only the latest
        // waiting one is answered (§5.5.3), so they are a subsequence.
        let mut it = side.pings_sent.iter();
        for pong in &side.pongs {
            assert!(
                it.any(|p| p == pong),
                "a Pong that answers no Ping: {pong:?}"
            );
        }
    }

    // The closing handshake.
    let closer = input.server_closes;
    w.side(closer)
        .conn
        .close(CloseCode::NORMAL, "fuzz")
        .expect("close");
    w.pump();
    for side in [&w.client, &w.server] {
        assert_eq!(side.conn.state(), State::Closed);
        assert!(
            matches!(
                side.close.last(),
                Some(Event::Closed {
                    code: CloseCode::NORMAL,
                    clean: true
                })
            ),
            "{:?}: {:?}",
            side.conn.role(),
            side.close
        );
    }
    assert!(w.server.conn.should_close_transport());
}
