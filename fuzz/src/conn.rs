//! The `connection_server` / `connection_client` harness: one connection past its
//! handshake, driven by a structured input that interleaves received bytes (raw, or
//! frames the harness encodes), application calls, time and EOF, with small limits.
//!
//! Input layout (all integers little-endian), see also fuzz/README.md:
//!
//! ```text
//! config (13 bytes):
//!   flags u8        bit0 streaming delivery, bit1 auto_pong off, bit2 keepalive on,
//!                   bit3 close timeout off
//!   max_frame u16   (0: default 16 MiB)
//!   max_message u16 (0: default 16 MiB)
//!   max_frags u8    (0: default)
//!   recv_buf u16    (0: default 64 KiB; the engine raises it to at least 256)
//!   send_buf u16    (0: default 4 MiB)
//!   ka_interval u8, ka_timeout u8, close_timeout u8   (units of 10 ms, +1)
//! then ops until the input ends (at most 512), each a tag byte (tag % 12) and its
//! fields (a byte string is delivered in at most 512 reads):
//!   0 recv       chunk u8, len u16, bytes
//!   1 frame      flags u8 (bit0 FIN, bits1+2 both set: wrong masking for the role,
//!                bit3: RSV = flags & 0x70), opcode u8 (< 16: raw nibble, else one of
//!                0,1,2,8,9,A), key [4], chunk u8, len u16, payload
//!   2 long frame flags u8, opcode u8, key [4], chunk u8, len u32, fill u8
//!                (the payload: min(len, 70000) fill bytes, at most 300000 per input;
//!                a longer frame stays open for later recv ops)
//!   3 send_text  len u16, bytes (lossy UTF-8)
//!   4 send_binary len u16, bytes
//!   5 send_fragment flags u8 (bit0 text, bit1 last), len u16, bytes (raw)
//!   6 ping       len u8, bytes
//!   7 pong       len u8, bytes
//!   8 close      code u16 (code % 4 != 0: a valid code from a list), len u8, reason
//!   9 transmit   n u16 (0: everything)
//!  10 advance    ms u16
//!  11 eof
//!  12 send(Binary)       len u16, bytes (an owned `Bytes`: large ones become their own
//!                       transmit segment)
//!  13 send(Text)         len u16, bytes (lossy UTF-8, as `Utf8Bytes`)
//!  14 transmit_vectored  n u16 (0: everything), through `poll_transmit_vectored`
//! ```

use arbitrary::{Arbitrary, Unstructured};
use wsengine::time::Duration;
use wsengine::{
    CloseCode, Config, Connection, Delivery, Error, Event, Keepalive, Message, MessageKind, OpCode,
    Role, SendError, State,
};

use wsengine_test_support::vectors::encode_header;
use wsengine_test_support::{Outcome, at, frame_with_rsv, take_transmit};

use crate::{Chunker, PeerCheck, Reader, base_config, close_code_sendable};

/// The largest payload the harness builds for one "long frame" op: past 64 KiB, so the
/// 64-bit length form is reached.
const LONG_FRAME_CAP: u64 = 70_000;
/// Long-frame payload bytes built per input, in total (keeps executions fast).
const LONG_FRAME_BUDGET: usize = 300_000;
/// At most this many reads per delivered byte string: long strings get larger reads.
const MAX_READS: usize = 512;
/// A Close or Pong frame: 2 + 4 header bytes and at most 125 payload bytes.
const MAX_CONTROL_FRAME: usize = 131;
/// The keepalive Ping: "wsengine-keepalive" with a (possibly masked) header.
const KEEPALIVE_PING: usize = 24;

/// Close codes the `close` op picks from.
const CODES: [u16; 8] = [1000, 1001, 1002, 1003, 1008, 1011, 3000, 4999];

/// One step of the input.
#[derive(Debug, Clone)]
pub enum Op {
    /// Bytes from the peer, as is.
    Recv {
        chunk: u8,
        data: Vec<u8>,
    },
    /// A frame the harness encodes.
    Frame {
        fin: bool,
        wrong_mask: bool,
        rsv: u8,
        opcode: u8,
        key: [u8; 4],
        chunk: u8,
        payload: Vec<u8>,
    },
    /// A frame with a long payload of one repeated byte.
    LongFrame {
        fin: bool,
        wrong_mask: bool,
        opcode: u8,
        key: [u8; 4],
        chunk: u8,
        len: u32,
        fill: u8,
    },
    SendText(String),
    SendBinary(Vec<u8>),
    SendBinaryBytes(Vec<u8>),
    SendTextBytes(String),
    TransmitVectored(u16),
    SendFragment {
        text: bool,
        last: bool,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: u16,
        reason: String,
    },
    Transmit(u16),
    Advance(u16),
    Eof,
}

/// The whole input: a configuration and the ops.
#[derive(Debug, Clone)]
pub struct ConnInput {
    pub config: Config,
    pub ops: Vec<Op>,
}

fn opcode(b: u8) -> u8 {
    if b < 16 {
        b
    } else {
        [0, 1, 2, 8, 9, 0xA][usize::from(b % 6)]
    }
}

fn ms10(b: u8) -> Duration {
    Duration::from_millis((u64::from(b) + 1) * 10)
}

impl<'a> Arbitrary<'a> for ConnInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = Reader(u);
        let mut config = base_config();
        let flags = r.u8();
        let nz = |v: u16, default: u64| if v == 0 { default } else { u64::from(v) };
        config.delivery = if flags & 1 != 0 {
            Delivery::Streaming
        } else {
            Delivery::Whole
        };
        config.auto_pong = flags & 2 == 0;
        config.max_frame_size = nz(r.u16(), config.max_frame_size);
        config.max_message_size = nz(r.u16(), config.max_message_size);
        let frags = r.u8();
        if frags != 0 {
            config.max_fragments = u32::from(frags);
        }
        config.recv_buffer_size = nz(r.u16(), config.recv_buffer_size as u64) as usize;
        config.max_send_buffer = nz(r.u16(), config.max_send_buffer as u64) as usize;
        let (ka_i, ka_t, close_t) = (r.u8(), r.u8(), r.u8());
        config.keepalive = (flags & 4 != 0).then(|| Keepalive {
            interval: ms10(ka_i),
            timeout: ms10(ka_t),
        });
        config.close_timeout = (flags & 8 == 0).then(|| ms10(close_t));
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < 512 {
            let op = match r.u8() % 15 {
                0 => {
                    let chunk = r.u8();
                    Op::Recv {
                        chunk,
                        data: r.vec16(),
                    }
                }
                1 => {
                    let f = r.u8();
                    let op = opcode(r.u8());
                    let key = r.key();
                    let chunk = r.u8();
                    Op::Frame {
                        fin: f & 1 != 0,
                        wrong_mask: f & 6 == 6,
                        rsv: if f & 8 != 0 { f & 0x70 } else { 0 },
                        opcode: op,
                        key,
                        chunk,
                        payload: r.vec16(),
                    }
                }
                2 => {
                    let f = r.u8();
                    let op = opcode(r.u8());
                    let key = r.key();
                    let chunk = r.u8();
                    Op::LongFrame {
                        fin: f & 1 != 0,
                        wrong_mask: f & 6 == 6,
                        opcode: op,
                        key,
                        chunk,
                        len: r.u32(),
                        fill: r.u8(),
                    }
                }
                3 => Op::SendText(String::from_utf8_lossy(&r.vec16()).into_owned()),
                4 => Op::SendBinary(r.vec16()),
                5 => {
                    let f = r.u8();
                    Op::SendFragment {
                        text: f & 1 != 0,
                        last: f & 2 != 0,
                        data: r.vec16(),
                    }
                }
                6 => Op::Ping(r.vec8()),
                7 => Op::Pong(r.vec8()),
                8 => {
                    let c = r.u16();
                    let code = if c % 4 != 0 {
                        CODES[usize::from(c / 4) % CODES.len()]
                    } else {
                        c / 4
                    };
                    Op::Close {
                        code,
                        reason: String::from_utf8_lossy(&r.vec8()).into_owned(),
                    }
                }
                9 => Op::Transmit(r.u16()),
                10 => Op::Advance(r.u16()),
                11 => Op::Eof,
                12 => Op::SendBinaryBytes(r.vec16()),
                13 => Op::SendTextBytes(String::from_utf8_lossy(&r.vec16()).into_owned()),
                _ => Op::TransmitVectored(r.u16()),
            };
            ops.push(op);
        }
        Ok(Self { config, ops })
    }
}

struct Harness {
    role: Role,
    conn: Connection,
    config: Config,
    out: Outcome,
    peer: PeerCheck,
    now_ms: u64,
    eof: bool,
    /// Bytes handed to the peer so far.
    transmitted: usize,
    /// The largest frame a send has put into the transmit buffer.
    max_frame: usize,
    /// `transmitted + transmit_len()` once the connection failed or closed: nothing may
    /// be queued after that.
    frozen_total: Option<usize>,
    /// The Close the last frame must be, once a protocol error failed an open connection.
    expect_close: Option<u16>,
    /// Our Close has been queued (by `close`, an echo or a failure).
    close_queued: bool,
    closed: bool,
    /// The fragmented message being sent: kind and the bytes so far.
    sending: Option<(MessageKind, Vec<u8>)>,
    /// Data messages sent whole, in order.
    sent: Vec<(MessageKind, Vec<u8>)>,
    /// Streaming delivery: the length of the message being received.
    streaming_len: u64,
    /// What is left of LONG_FRAME_BUDGET.
    long_budget: usize,
}

/// Runs one input against a connection of `role`.
pub fn run(role: Role, input: &ConnInput) {
    let config = input.config.clone();
    let conn = match role {
        Role::Server => crate::open_server(config.clone()),
        Role::Client => crate::open_client(config.clone()),
    };
    let mut h = Harness {
        role,
        conn,
        config,
        out: Outcome::default(),
        peer: PeerCheck::new(role),
        now_ms: 0,
        eof: false,
        transmitted: 0,
        max_frame: 0,
        frozen_total: None,
        expect_close: None,
        close_queued: false,
        closed: false,
        sending: None,
        sent: Vec::new(),
        streaming_len: 0,
        long_budget: LONG_FRAME_BUDGET,
    };
    for op in &input.ops {
        h.step(op);
        h.drain();
        h.check();
    }
    h.finish();
}

impl Harness {
    fn total(&self) -> usize {
        self.transmitted + self.conn.transmit_len()
    }

    fn step(&mut self, op: &Op) {
        let masked_ok = self.role == Role::Server;
        match op {
            Op::Recv { chunk, data } => self.deliver(data, *chunk),
            Op::Frame {
                fin,
                wrong_mask,
                rsv,
                opcode,
                key,
                chunk,
                payload,
            } => {
                let mask = (masked_ok != *wrong_mask).then_some(*key);
                let bytes = frame_with_rsv(*fin, *rsv, *opcode, mask, payload);
                self.deliver(&bytes, *chunk);
            }
            Op::LongFrame {
                fin,
                wrong_mask,
                opcode,
                key,
                chunk,
                len,
                fill,
            } => {
                let mask = (masked_ok != *wrong_mask).then_some(*key);
                let len = u64::from(*len);
                let mut bytes = Vec::new();
                encode_header(&mut bytes, *fin, 0, *opcode, mask, len);
                let start = bytes.len();
                let n = (len.min(LONG_FRAME_CAP) as usize).min(self.long_budget);
                self.long_budget -= n;
                bytes.resize(start + n, *fill);
                if let Some(key) = mask {
                    wsengine::mask::apply_mask(&mut bytes[start..], key, 0);
                }
                self.deliver(&bytes, *chunk);
            }
            Op::SendText(s) => {
                let expect = self.expect_data_send(false, None);
                let r = self.sending_call(|c| c.send_text(s));
                self.after_send(r, expect, s.len(), || {
                    Some((MessageKind::Text, s.as_bytes().to_vec()))
                });
            }
            Op::SendBinary(d) => {
                let expect = self.expect_data_send(false, None);
                let r = self.sending_call(|c| c.send_binary(d));
                self.after_send(r, expect, d.len(), || {
                    Some((MessageKind::Binary, d.clone()))
                });
            }
            Op::SendBinaryBytes(d) => {
                let expect = self.expect_data_send(false, None);
                let owned = bytes::Bytes::from(d.clone());
                let r = self.sending_call(|c| c.send(Message::Binary(owned)));
                self.after_send(r, expect, d.len(), || {
                    Some((MessageKind::Binary, d.clone()))
                });
            }
            Op::SendTextBytes(s) => {
                let expect = self.expect_data_send(false, None);
                let owned = wsengine::Utf8Bytes::from(s.clone());
                let r = self.sending_call(|c| c.send(Message::Text(owned)));
                self.after_send(r, expect, s.len(), || {
                    Some((MessageKind::Text, s.as_bytes().to_vec()))
                });
            }
            Op::TransmitVectored(n) => {
                let mut want = if *n == 0 { usize::MAX } else { usize::from(*n) };
                let mut bytes = Vec::new();
                let mut iovecs = [std::io::IoSlice::new(&[]); wsengine::MAX_TRANSMIT_SEGMENTS];
                let filled = self.conn.poll_transmit_vectored(&mut iovecs);
                for seg in &iovecs[..filled] {
                    let k = want.min(seg.len());
                    bytes.extend_from_slice(&seg[..k]);
                    want -= k;
                    if want == 0 {
                        break;
                    }
                }
                assert!(bytes.len() <= self.conn.transmit_len());
                self.conn.advance_transmit(bytes.len());
                self.transmitted += bytes.len();
                self.peer.push(&bytes);
            }
            Op::SendFragment { text, last, data } => {
                let kind = if *text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                let expect = self.expect_data_send(true, Some((kind, data, *last)));
                let r = self.sending_call(|c| c.send_fragment(kind, data, *last));
                let ok = r.0.is_ok();
                let msg = if ok {
                    let cur = self.sending.get_or_insert_with(|| (kind, Vec::new()));
                    cur.1.extend_from_slice(data);
                    if *last { self.sending.take() } else { None }
                } else {
                    None
                };
                self.after_send(r, expect, data.len(), || msg);
            }
            Op::Ping(p) | Op::Pong(p) => {
                let expect = match self.conn.state() {
                    State::Open if p.len() > 125 => Err(SendError::ControlTooLong),
                    State::Open if self.conn.is_send_blocked() => Err(SendError::Blocked),
                    State::Open => Ok(()),
                    s => Err(state_error(s)),
                };
                let r = if matches!(op, Op::Ping(_)) {
                    self.sending_call(|c| c.send(Message::Ping(bytes::Bytes::copy_from_slice(p))))
                } else {
                    self.sending_call(|c| c.send(Message::Pong(bytes::Bytes::copy_from_slice(p))))
                };
                self.after_send(r, expect, p.len(), || None);
            }
            Op::Close { code, reason } => {
                let expect = if !close_code_sendable(*code) {
                    Err(SendError::InvalidCloseCode(*code))
                } else if reason.len() > 123 {
                    Err(SendError::CloseReasonTooLong)
                } else {
                    match self.conn.state() {
                        State::Open => Ok(()),
                        s => Err(state_error(s)),
                    }
                };
                // A Close is accepted even when the send buffer is full: check the bound
                // without counting it as a data frame.
                let before = self.total();
                let r = self.conn.close(CloseCode(*code), reason);
                assert_eq!(r, expect, "close({code}, {} bytes)", reason.len());
                if r.is_ok() {
                    self.close_queued = true;
                    assert_eq!(self.conn.state(), State::Closing);
                    assert!(self.total() - before <= MAX_CONTROL_FRAME);
                } else {
                    assert_eq!(self.total(), before, "a refused close queued bytes");
                }
            }
            Op::Transmit(n) => {
                let chunk = self.conn.poll_transmit();
                let n = if *n == 0 {
                    chunk.len()
                } else {
                    usize::from(*n).min(chunk.len())
                };
                let bytes = chunk[..n].to_vec();
                self.conn.advance_transmit(n);
                self.transmitted += n;
                self.peer.push(&bytes);
            }
            Op::Advance(ms) => {
                self.now_ms += u64::from(*ms);
                self.conn.handle_timeout(at(self.now_ms));
                if let Some(t) = self.conn.poll_timeout() {
                    // A timer due now (started lazily) is run at once, as hosts must.
                    if t <= at(self.now_ms) {
                        self.conn.handle_timeout(at(self.now_ms));
                    }
                }
            }
            Op::Eof => {
                if !self.eof {
                    self.eof = true;
                    self.conn.recv_eof();
                }
            }
        }
    }

    /// What a data send must return, from the model of the connection.
    fn expect_data_send(
        &self,
        fragment_call: bool,
        fragment: Option<(MessageKind, &Vec<u8>, bool)>,
    ) -> Result<(), SendError> {
        if let (Some((kind, _, _)), Some((cur, _))) = (fragment, &self.sending)
            && kind != *cur
        {
            return Err(SendError::MessageInProgress);
        }
        match self.conn.state() {
            State::Open => {}
            s => return Err(state_error(s)),
        }
        let first = self.sending.is_none();
        if !fragment_call && !first {
            return Err(SendError::MessageInProgress);
        }
        if self.conn.is_send_blocked() {
            return Err(SendError::Blocked);
        }
        if let Some((MessageKind::Text, data, last)) = fragment {
            let mut all = self
                .sending
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            all.extend_from_slice(data);
            let ok = match core::str::from_utf8(&all) {
                Ok(_) => true,
                Err(e) => !last && e.error_len().is_none(),
            };
            if !ok {
                return Err(SendError::InvalidUtf8);
            }
        }
        Ok(())
    }

    fn sending_call(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<(), SendError>,
    ) -> (Result<(), SendError>, usize) {
        let before = self.total();
        let r = f(&mut self.conn);
        (r, before)
    }

    fn after_send(
        &mut self,
        (r, before): (Result<(), SendError>, usize),
        expect: Result<(), SendError>,
        payload_len: usize,
        message: impl FnOnce() -> Option<(MessageKind, Vec<u8>)>,
    ) {
        assert_eq!(r, expect, "send of {payload_len} bytes");
        if r.is_ok() {
            let frame = crate::encoded_len(payload_len, self.role == Role::Client);
            self.max_frame = self.max_frame.max(frame);
            // A send queues exactly its frame.
            assert_eq!(
                self.total() - before,
                frame,
                "a send queued the wrong length"
            );
            if let Some(m) = message() {
                self.sent.push(m);
            }
        } else {
            assert_eq!(self.total(), before, "a refused send queued bytes");
        }
    }

    /// Feeds received bytes in reads sized by `chunk` (the host stops reading at EOF),
    /// through `recv` or, when `chunk`'s top bit is set, `recv_buf` + `commit_recv`.
    fn deliver(&mut self, data: &[u8], chunk: u8) {
        if self.eof {
            return;
        }
        let via_recv_buf = chunk & 0x80 != 0;
        let mut chunker = Chunker::new(chunk);
        let least = data.len() / MAX_READS;
        let mut data = data;
        while !data.is_empty() {
            let n = chunker.next_size().max(least).min(data.len());
            let taken = if via_recv_buf {
                // The zero-copy API: "read" into the connection's own buffer.
                let room = self.conn.recv_buf();
                let m = n.min(room.len());
                room[..m].copy_from_slice(&data[..m]);
                self.conn.commit_recv(m);
                m
            } else {
                let capacity = self.conn.recv_capacity();
                let taken = self.conn.recv(&data[..n]);
                assert_eq!(
                    taken,
                    n.min(capacity),
                    "recv took {taken} of {n}, capacity {capacity}"
                );
                taken
            };
            data = &data[taken..];
            let progressed = self.drain();
            self.check();
            assert!(
                taken > 0 || progressed,
                "stuck: no bytes taken and poll_event produces nothing ({} bytes left, {:?})",
                data.len(),
                self.conn
            );
        }
    }

    /// Polls events until none; checks each. Returns whether anything was polled.
    fn drain(&mut self) -> bool {
        let mut any = false;
        loop {
            let before_state = self.conn.state();
            let before_total = self.total();
            match self.conn.poll_event() {
                Ok(Some(event)) => {
                    any = true;
                    assert!(self.out.error.is_none(), "event {event:?} after an error");
                    assert!(!self.closed, "event {event:?} after Closed");
                    self.check_event(&event, before_state);
                    self.out.events.push(event);
                }
                Ok(None) => {
                    assert!(self.out.error.is_none(), "Ok(None) after an error");
                    return any;
                }
                Err(e) => {
                    assert_eq!(self.conn.state(), State::Failed, "{e:?} but not Failed");
                    match &self.out.error {
                        Some(first) => {
                            assert_eq!(&e, first, "the error changed");
                            return any;
                        }
                        None => {
                            any = true;
                            self.on_error(&e, before_state, before_total);
                            self.out.error = Some(e);
                        }
                    }
                }
            }
        }
    }

    fn on_error(&mut self, e: &Error, before_state: State, before_total: usize) {
        assert!(!self.closed, "{e:?} after Closed");
        match e {
            Error::Protocol(p) => {
                if before_state == State::Open {
                    // §7.1.7: the Close with the error's code was queued.
                    let code = p.close_code().0;
                    assert!(close_code_sendable(code), "{p:?} maps to {code}");
                    self.expect_close = Some(code);
                    self.close_queued = true;
                    // The Close, after the Pong to the latest Ping if one still waited.
                    assert!(self.total() - before_total <= 2 * MAX_CONTROL_FRAME);
                } else {
                    assert_eq!(
                        self.total(),
                        before_total,
                        "{e:?} while closing queued bytes"
                    );
                }
            }
            Error::Timeout(wsengine::Timeout::Message) if before_state == State::Open => {
                // A message that did not end in time: the peer is told (1008).
                self.expect_close = Some(1008);
                self.close_queued = true;
                assert!(self.total() - before_total <= 2 * MAX_CONTROL_FRAME);
            }
            Error::Timeout(_) => {
                assert_eq!(self.total(), before_total, "a timeout queued bytes");
            }
            Error::Handshake(h) => panic!("handshake error {h:?} after the handshake"),
            _ => {}
        }
        self.frozen_total = Some(self.total());
    }

    fn check_event(&mut self, event: &Event, before_state: State) {
        let whole = self.config.delivery == Delivery::Whole;
        let max_msg = self.config.max_message_size;
        match event {
            Event::Text { data, last } => {
                assert!(
                    core::str::from_utf8(data.as_bytes()).is_ok(),
                    "invalid UTF-8 delivered"
                );
                self.check_data(data.len(), *last, whole, max_msg);
            }
            Event::Binary { data, last } => self.check_data(data.len(), *last, whole, max_msg),
            Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
            Event::Close(frame) => {
                assert_eq!(self.conn.state(), State::Closed);
                if let Some(f) = frame {
                    assert!(close_code_sendable(f.code.0), "{f:?}");
                    assert!(f.reason.len() <= 123);
                }
                if before_state == State::Open {
                    self.close_queued = true; // the echo
                }
            }
            Event::Closed { code, clean } => {
                assert_eq!(self.conn.state(), State::Closed);
                if !clean {
                    assert_eq!(*code, CloseCode::ABNORMAL);
                }
                self.closed = true;
                self.frozen_total = Some(self.total());
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    fn check_data(&mut self, len: usize, last: bool, whole: bool, max: u64) {
        if whole {
            assert!(last, "a piece delivered in Whole mode");
            assert!(len as u64 <= max, "message of {len} over the limit {max}");
        } else {
            self.streaming_len += len as u64;
            assert!(self.streaming_len <= max, "streamed message over the limit");
            assert!(last || len > 0, "an empty non-final piece");
            if last {
                self.streaming_len = 0;
            }
        }
    }

    /// Memory and state invariants after every step.
    fn check(&mut self) {
        let state = self.conn.state();
        if self.out.error.is_some() {
            assert_eq!(state, State::Failed);
            // Only the flush deadline is left, while bytes wait to be written.
            if !self.conn.wants_write() || self.conn.should_close_transport() {
                assert_eq!(self.conn.poll_timeout(), None);
            } else {
                assert!(self.conn.poll_timeout().is_some(), "no flush deadline");
            }
        }
        if let Some(frozen) = self.frozen_total {
            assert_eq!(
                self.total(),
                frozen,
                "bytes queued after the connection ended"
            );
            assert!(matches!(state, State::Failed | State::Closed));
        }
        let sizes = wsengine::fuzzing::buffer_sizes(&self.conn);
        // The configured size plus one frame header (a message of exactly the
        // configured size arrives whole in one read).
        let limit = self.config.recv_buffer_size.max(Config::MIN_RECV_BUFFER)
            + wsengine::frame::MAX_HEADER_LEN;
        assert_eq!(sizes.recv_limit, limit);
        let terminal = matches!(state, State::Failed | State::Closed);
        if terminal {
            assert_eq!(self.conn.recv_capacity(), usize::MAX);
        } else {
            assert!(
                sizes.rx_len <= limit,
                "receive buffer {} over {limit}",
                sizes.rx_len
            );
            // The receive buffer's room (less while a one-frame message is partly
            // buffered: recv then takes only the rest of that frame), plus the rest of a
            // frame that goes straight into an assembled message (at most one frame).
            let capacity = self.conn.recv_capacity();
            let room = limit - sizes.rx_len;
            let max_frame = usize::try_from(self.config.max_frame_size).unwrap_or(usize::MAX);
            assert!(
                capacity <= room.saturating_add(max_frame),
                "recv capacity {capacity} with {room} bytes of room"
            );
            assert!(
                room == 0 || capacity > 0,
                "recv takes nothing with {room} bytes of room"
            );
        }
        assert!(
            sizes.rx_capacity <= 4 * limit.max(8 << 10),
            "receive buffer capacity {} for a limit of {limit}",
            sizes.rx_capacity
        );
        let tx_bound = self.config.max_send_buffer
            + self.max_frame.max(MAX_CONTROL_FRAME)
            + MAX_CONTROL_FRAME
            + KEEPALIVE_PING;
        assert!(
            sizes.tx_len <= tx_bound,
            "transmit buffer {} over {tx_bound}",
            sizes.tx_len
        );
        assert_eq!(sizes.tx_len, self.conn.transmit_len());
        assert!(
            sizes.tx_capacity <= 2 * tx_bound + (8 << 10),
            "transmit buffer capacity {} for a bound of {tx_bound}",
            sizes.tx_capacity
        );
        let max_msg = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        assert!(
            sizes.assembly_len <= max_msg,
            "assembly {} over {max_msg}",
            sizes.assembly_len
        );
        assert!(
            sizes.assembly_capacity <= 2 * max_msg.max(limit) + (8 << 10),
            "assembly capacity {}",
            sizes.assembly_capacity
        );
        if self.config.delivery == Delivery::Streaming {
            assert_eq!(sizes.assembly_len, 0, "assembly used while streaming");
        }
        if let Some(p) = sizes.pending_pong_len {
            assert!(p <= 125);
            assert!(!terminal, "a Pong waits on a finished connection");
        }
    }

    fn finish(mut self) {
        // Drain everything to the peer.
        let rest = take_transmit(&mut self.conn);
        self.transmitted += rest.len();
        self.peer.push(&rest);
        self.check();
        self.peer.finish();
        if let Some(code) = self.expect_close {
            let last = self.peer.last_frame.as_ref().expect("a Close was queued");
            assert_eq!(
                last.opcode,
                OpCode::Close,
                "the last frame is not the Close"
            );
            assert_eq!(
                last.payload.get(..2),
                Some(&code.to_be_bytes()[..]),
                "Close with the wrong code"
            );
        }
        if self.close_queued {
            let last = self.peer.last_frame.as_ref().expect("a Close was queued");
            assert_eq!(last.opcode, OpCode::Close);
        }
        assert_eq!(
            self.peer.messages, self.sent,
            "the peer received other messages than were sent"
        );
        // The connection stays failed / closed: sends keep failing.
        if self.out.error.is_some() || self.closed {
            assert_eq!(self.conn.send_binary(b"x"), Err(SendError::Closed));
            assert_eq!(
                self.conn.send(Message::Ping(bytes::Bytes::new())),
                Err(SendError::Closed)
            );
            assert!(!self.conn.wants_write());
        }
        if let Some(e) = &self.out.error {
            assert_eq!(self.conn.poll_event().as_ref().err(), Some(e));
        }
    }
}

fn state_error(s: State) -> SendError {
    match s {
        State::Closing => SendError::Closing,
        State::Handshake => SendError::NotOpen,
        _ => SendError::Closed,
    }
}
