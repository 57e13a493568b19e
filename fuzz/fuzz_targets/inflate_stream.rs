//! Compressed input into a server connection with permessage-deflate negotiated
//! (`Connection::upgraded` with negotiated parameters, arbitrary parameters and delivery mode, a small
//! `max_message_size`): frames with RSV1 set or not carrying arbitrary bytes, real
//! DEFLATE output of arbitrary data (from a peer-side `Compressor` that keeps its
//! context, sometimes truncated or bit-flipped, sometimes fragmented), highly
//! compressible data that inflates past the limit, Pings and raw bytes, all read in
//! arbitrary chunks. Invariants: no panic; after every step the buffers stay within the
//! limits and every delivered message within `max_message_size` (text valid UTF-8); the
//! only errors are protocol errors closing with 1002, 1007 or 1009, and they are sticky.
//!
//! Input layout (see also fuzz/README.md):
//!
//! ```text
//! config (4 bytes):
//!   flags u8        bit0 streaming delivery, bit1 peer uses no context takeover,
//!                   bit2 Memory::Retain, bits 4..6: peer window bits 8 + n
//!   level u8        the peer compressor's level (% 10)
//!   max_message u8  0: 64 KiB, else n * 256 bytes
//!   recv_buf u8     0: default, else n * 256 bytes (the engine raises it to >= 256)
//! then ops until the input ends (at most 256), each a tag byte (tag % 5) and its fields:
//!   0 raw frame    flags u8 (bit0 FIN, bit1 RSV1, bits 4..7 opcode nibble), key [4],
//!                  chunk u8, len u16, payload
//!   1 deflated     flags u8 (bit0 FIN, bit1 RSV1 clear, bit2 binary, bit3 text
//!                  continuation (opcode 0), bits 4..5 fragments 1 + n), mangle u8
//!                  (bit0 truncate, bit1 flip a bit, bit2 append garbage), at u16,
//!                  repeat u8 (data repeated 1 + repeat * 16 times, at most 160 KiB
//!                  per op and 320 KiB per input), key [4], chunk u8, len u16, data
//!   2 ping         len u8, payload
//!   3 recv         chunk u8, len u16, bytes (as is)
//!   4 transmit     (drains what the server queued)
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::extensions::deflate::{
    Compressor, DeflateConfig, DeflateParams, DirectionParams, Memory,
};
use wsengine::{CloseCode, Config, Connection, Delivery, Error, Event, State};
use wsengine_fuzz::{Chunker, Reader, base_config, drain};
use wsengine_test_support::{Outcome, frame_with_rsv, t0, take_transmit};

/// The most bytes one `deflated` op compresses (after repetition).
const MAX_PLAIN: usize = 160 << 10;
/// Plain bytes compressed per input, in total (keeps executions fast).
const PLAIN_BUDGET: usize = 320 << 10;

#[derive(Debug)]
enum Op {
    Raw {
        fin: bool,
        rsv1: bool,
        opcode: u8,
        key: [u8; 4],
        chunk: u8,
        payload: Vec<u8>,
    },
    Deflated {
        fin: bool,
        rsv1: bool,
        opcode: u8,
        fragments: usize,
        mangle: u8,
        at: u16,
        repeat: usize,
        key: [u8; 4],
        chunk: u8,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Recv {
        chunk: u8,
        data: Vec<u8>,
    },
    Transmit,
}

#[derive(Debug)]
struct Input {
    streaming: bool,
    peer: DirectionParams,
    retain: bool,
    level: u8,
    max_message: u64,
    recv_buf: usize,
    ops: Vec<Op>,
}

impl<'a> arbitrary::Arbitrary<'a> for Input {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = Reader(u);
        let flags = r.u8();
        let level = r.u8() % 10;
        let max_message = match r.u8() {
            0 => 64 << 10,
            n => u64::from(n) * 256,
        };
        let recv_buf = usize::from(r.u8()) * 256;
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < 256 {
            let op = match r.u8() % 5 {
                0 => {
                    let f = r.u8();
                    Op::Raw {
                        fin: f & 1 != 0,
                        rsv1: f & 2 != 0,
                        opcode: f >> 4,
                        key: r.key(),
                        chunk: r.u8(),
                        payload: r.vec16(),
                    }
                }
                1 => {
                    let f = r.u8();
                    Op::Deflated {
                        fin: f & 1 != 0,
                        rsv1: f & 2 == 0,
                        opcode: if f & 8 != 0 {
                            0
                        } else if f & 4 != 0 {
                            2
                        } else {
                            1
                        },
                        fragments: 1 + usize::from((f >> 4) & 3),
                        mangle: r.u8(),
                        at: r.u16(),
                        repeat: 1 + 16 * usize::from(r.u8()),
                        key: r.key(),
                        chunk: r.u8(),
                        data: r.vec16(),
                    }
                }
                2 => Op::Ping(r.vec8()),
                3 => Op::Recv {
                    chunk: r.u8(),
                    data: r.vec16(),
                },
                _ => Op::Transmit,
            };
            ops.push(op);
        }
        Ok(Self {
            streaming: flags & 1 != 0,
            peer: DirectionParams {
                max_window_bits: 8 + ((flags >> 4) & 7),
                no_context_takeover: flags & 2 != 0,
            },
            retain: flags & 4 != 0,
            level,
            max_message,
            recv_buf,
            ops,
        })
    }
}

struct Harness {
    conn: Connection,
    config: Config,
    out: Outcome,
    /// Streaming delivery: the length of the message being received.
    streaming_len: u64,
}

impl Harness {
    fn deliver(&mut self, bytes: &[u8], chunk: u8) {
        let mut chunker = Chunker::new(chunk);
        let mut data = bytes;
        // At most 512 reads per byte string (as in the other targets).
        let min_read = bytes.len().div_ceil(512);
        while !data.is_empty() && self.out.error.is_none() {
            let n = chunker.next_size().max(min_read).min(data.len());
            let taken = self.conn.recv(&data[..n]);
            data = &data[taken..];
            let progressed = self.drain();
            if self.conn.state() == State::Closed {
                return;
            }
            assert!(
                taken > 0 || progressed || self.out.error.is_some(),
                "stuck with {} bytes left",
                data.len()
            );
            self.check();
            // The server's Pongs must not pile up: a host writes as it goes.
            take_transmit(&mut self.conn);
        }
    }

    fn drain(&mut self) -> bool {
        let before = self.out.events.len();
        let any = drain(&mut self.conn, &mut self.out, &mut wsengine_fuzz::no_op);
        let max = self.config.max_message_size;
        for event in self.out.events.drain(before..) {
            match event {
                Event::Text { data, last } => {
                    assert!(core::str::from_utf8(data.as_bytes()).is_ok());
                    check_data(&mut self.streaming_len, &self.config, data.len(), last, max);
                }
                Event::Binary { data, last } => {
                    check_data(&mut self.streaming_len, &self.config, data.len(), last, max);
                }
                Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
                Event::Close(_) | Event::Closed { .. } => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
        if let Some(e) = &self.out.error {
            match e {
                Error::Protocol(p) => {
                    let code = p.close_code();
                    assert!(
                        [
                            CloseCode::PROTOCOL_ERROR,
                            CloseCode::INVALID_PAYLOAD,
                            CloseCode::MESSAGE_TOO_BIG
                        ]
                        .contains(&code),
                        "{p:?} closes with {code:?}"
                    );
                }
                other => panic!("unexpected error {other:?}"),
            }
        }
        any
    }

    fn check(&self) {
        let sizes = wsengine::fuzzing::buffer_sizes(&self.conn);
        // The configured size plus one frame header (a message of exactly the
        // configured size arrives whole in one read).
        let limit = self.config.recv_buffer_size.max(Config::MIN_RECV_BUFFER)
            + wsengine::frame::MAX_HEADER_LEN;
        assert_eq!(sizes.recv_limit, limit);
        if !matches!(self.conn.state(), State::Failed | State::Closed) {
            assert!(
                sizes.rx_len <= limit,
                "receive buffer {} over {limit}",
                sizes.rx_len
            );
        }
        assert!(
            sizes.rx_capacity <= 4 * limit.max(8 << 10),
            "receive buffer capacity {} for a limit of {limit}",
            sizes.rx_capacity
        );
        let max_msg = self.config.max_message_size as usize;
        assert!(
            sizes.assembly_len <= max_msg,
            "assembly {}",
            sizes.assembly_len
        );
        assert!(
            sizes.assembly_capacity <= 2 * max_msg.max(limit) + (8 << 10),
            "assembly capacity {}",
            sizes.assembly_capacity
        );
        // Pongs and the Close only: a few frames of at most 131 bytes.
        assert!(sizes.tx_len <= 4 * 131, "transmit buffer {}", sizes.tx_len);
        if let Some(p) = sizes.pending_pong_len {
            assert!(p <= 125);
        }
    }
}

fn check_data(streaming_len: &mut u64, config: &Config, len: usize, last: bool, max: u64) {
    if config.delivery == Delivery::Whole {
        assert!(last, "a piece delivered in Whole mode");
        assert!(len as u64 <= max, "message of {len} over the limit {max}");
    } else {
        *streaming_len += len as u64;
        assert!(*streaming_len <= max, "streamed message over the limit");
        assert!(last || len > 0, "an empty non-final piece");
        if last {
            *streaming_len = 0;
        }
    }
}

fuzz_target!(|input: Input| {
    let policy = {
        let mut p = DeflateConfig::default();
        p.memory = if input.retain {
            Memory::Retain
        } else {
            Memory::PerMessage
        };
        p
    };
    let params = DeflateParams {
        client: input.peer,
        server: DirectionParams::default(),
    };
    let mut config = base_config();
    config.deflate = Some(policy);
    config.delivery = if input.streaming {
        Delivery::Streaming
    } else {
        Delivery::Whole
    };
    config.max_message_size = input.max_message;
    config.max_fragments = 1 << 20;
    if input.recv_buf != 0 {
        config.recv_buffer_size = input.recv_buf;
    }
    let negotiated = wsengine::Negotiated::default().deflate(params);
    let conn = Connection::upgraded(wsengine::Role::Server, config.clone(), t0(), negotiated)
        .expect("a server");
    let mut h = Harness {
        conn,
        config,
        out: Outcome::default(),
        streaming_len: 0,
    };
    // The peer's compressor: it keeps its context across messages as a real client would.
    let mut peer_policy = DeflateConfig::default();
    peer_policy.level = input.level;
    peer_policy.min_compress_size = 0;
    let mut compressor = Compressor::new(input.peer, &peer_policy);
    let mut budget = PLAIN_BUDGET;
    for op in &input.ops {
        if h.out.error.is_some() || h.conn.state() == State::Closed {
            break;
        }
        match op {
            Op::Raw {
                fin,
                rsv1,
                opcode,
                key,
                chunk,
                payload,
            } => {
                let rsv = if *rsv1 { 0x40 } else { 0 };
                h.deliver(
                    &frame_with_rsv(*fin, rsv, *opcode, Some(*key), payload),
                    *chunk,
                );
            }
            Op::Deflated {
                fin,
                rsv1,
                opcode,
                fragments,
                mangle,
                at,
                repeat,
                key,
                chunk,
                data,
            } => {
                let n = (data.len() * repeat).min(MAX_PLAIN).min(budget);
                budget -= n;
                let plain: Vec<u8> = data.iter().copied().cycle().take(n).collect();
                // Compress in `fragments` pieces, each its own frame.
                let step = plain.len().div_ceil(*fragments).max(1);
                let pieces: Vec<&[u8]> = if plain.is_empty() {
                    vec![&[][..]]
                } else {
                    plain.chunks(step).collect()
                };
                let mut bytes = Vec::new();
                for (i, piece) in pieces.iter().enumerate() {
                    let last = i + 1 == pieces.len();
                    let mut payload = Vec::new();
                    if compressor
                        .compress_fragment(piece, last, &mut payload)
                        .is_err()
                    {
                        compressor = Compressor::new(input.peer, &peer_policy);
                        payload.clear();
                    }
                    if i == 0 {
                        if mangle & 1 != 0 && !payload.is_empty() {
                            payload.truncate(usize::from(*at) % payload.len());
                        }
                        if mangle & 2 != 0 && !payload.is_empty() {
                            let bit = usize::from(*at) % (payload.len() * 8);
                            payload[bit / 8] ^= 1 << (bit % 8);
                        }
                        if mangle & 4 != 0 {
                            payload.extend_from_slice(&at.to_le_bytes());
                        }
                    }
                    let (op, rsv) = if i == 0 {
                        (*opcode, if *rsv1 { 0x40 } else { 0 })
                    } else {
                        (0, 0)
                    };
                    let fin = if last { *fin } else { false };
                    bytes.extend_from_slice(&frame_with_rsv(fin, rsv, op, Some(*key), &payload));
                }
                h.deliver(&bytes, *chunk);
            }
            Op::Ping(p) => h.deliver(&frame_with_rsv(true, 0, 9, Some([1, 2, 3, 4]), p), 0),
            Op::Recv { chunk, data } => h.deliver(data, *chunk),
            Op::Transmit => {
                take_transmit(&mut h.conn);
            }
        }
        h.drain();
        h.check();
    }
    if let Some(e) = &h.out.error {
        let again = h.conn.poll_event();
        assert_eq!(again.as_ref().err(), Some(e), "the error is not sticky");
    }
});
