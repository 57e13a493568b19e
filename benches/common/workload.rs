//! The recv and send workloads, shared by the root benches (`benches/recv.rs`,
//! `benches/send.rs`) and the comparison crate (`benches/compare/`, which includes this
//! file by path), so every implementation gets the same sizes, message counts and input
//! bytes. Plain std, and for the frames the encoder of `wsengine_test_support::vectors`
//! (plain Rust, written independently of wsengine): nothing here uses wsengine's code or
//! any peer's.

use wsengine_test_support::vectors::encode_frame;

/// Message payload sizes, in bytes.
pub const SIZES: [usize; 5] = [16, 125, 1024, 16 << 10, 1 << 20];

/// Bytes handed to the implementation per read: the receive side is fed in chunks of
/// this size (the last chunk of the input may be shorter).
pub const READ_CHUNK: usize = 64 << 10;

/// Payload bytes per benchmark iteration: about 1 MiB, and at least 4 messages.
const PAYLOAD_PER_ITER: usize = 1 << 20;

/// How many messages one iteration sends or receives for payloads of `size` bytes.
pub fn messages_for(size: usize) -> usize {
    (PAYLOAD_PER_ITER / size.max(1)).max(4)
}

/// Text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opcode 0x1: UTF-8 text.
    Text,
    /// Opcode 0x2: binary data.
    Binary,
}

impl Kind {
    /// Both kinds, text first.
    pub const ALL: [Kind; 2] = [Kind::Text, Kind::Binary];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }

    fn opcode(self) -> u8 {
        match self {
            Kind::Text => 0x1,
            Kind::Binary => 0x2,
        }
    }
}

/// A size as benchmark ids show it: `16B`, `125B`, `1KiB`, `16KiB`, `1MiB`.
pub fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{}MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{}KiB", size >> 10)
    } else {
        format!("{size}B")
    }
}

/// JSON-like chat traffic: mostly ASCII with some accented letters, CJK and an emoji, so
/// text validation sees multi-byte sequences (including ones cut by read boundaries).
const TEXT_PATTERN: &str = "{\"user\":\"zoë\",\"room\":\"général\",\"msg\":\"Grüße aus Köln, \
    会議は午後三時です 🎉 see you there\",\"seq\":12345,\"tags\":[\"a\",\"b\",\"c\"]}\n";

/// A payload of exactly `size` bytes. Text is valid UTF-8 (the pattern cut at a code
/// point boundary and padded with spaces); binary is a fixed pseudo-random byte pattern.
pub fn payload(kind: Kind, size: usize) -> Vec<u8> {
    match kind {
        Kind::Text => {
            let mut s = String::with_capacity(size + TEXT_PATTERN.len());
            while s.len() < size {
                s.push_str(TEXT_PATTERN);
            }
            let mut cut = size;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            while s.len() < size {
                s.push(' ');
            }
            s.into_bytes()
        }
        Kind::Binary => {
            let mut x: u32 = 0x9E37_79B9;
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect()
        }
    }
}

/// One iteration of the recv workload: the input bytes and what they hold.
#[derive(Debug, Clone)]
pub struct RecvInput {
    /// Text or binary messages.
    pub kind: Kind,
    /// Payload size of each message.
    pub size: usize,
    /// Number of messages.
    pub messages: usize,
    /// The unmasked payload every message carries.
    pub payload: Vec<u8>,
    /// `messages` masked client frames back to back, one message per frame, each with
    /// its own masking key (as a real client sends them).
    pub wire: Vec<u8>,
}

impl RecvInput {
    /// The input for `kind` messages of `size` bytes.
    pub fn new(kind: Kind, size: usize) -> Self {
        let messages = messages_for(size);
        let payload = payload(kind, size);
        let mut wire = Vec::with_capacity(messages * (size + 14));
        let mut key: u32 = 0x37FA_213D;
        for _ in 0..messages {
            key = key.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // A client-to-server frame: FIN set, masked, minimal length encoding.
            encode_frame(
                &mut wire,
                true,
                0,
                kind.opcode(),
                Some(key.to_be_bytes()),
                &payload,
            );
        }
        Self {
            kind,
            size,
            messages,
            payload,
            wire,
        }
    }

    /// Payload bytes per iteration (what the bytes/s throughput counts).
    pub fn payload_bytes(&self) -> u64 {
        (self.size * self.messages) as u64
    }
}

/// One iteration of the send workload: `messages` copies of `payload`.
#[derive(Debug, Clone)]
pub struct SendInput {
    /// Text or binary messages.
    pub kind: Kind,
    /// Payload size of each message.
    pub size: usize,
    /// Number of messages.
    pub messages: usize,
    /// The payload every message carries (valid UTF-8 for text).
    pub payload: Vec<u8>,
    /// The payload as text, validated once here (empty for binary input).
    pub text: String,
}

impl SendInput {
    /// The input for `kind` messages of `size` bytes.
    pub fn new(kind: Kind, size: usize) -> Self {
        let payload = payload(kind, size);
        let text = match kind {
            Kind::Text => String::from_utf8(payload.clone()).unwrap_or_default(),
            Kind::Binary => String::new(),
        };
        Self {
            kind,
            size,
            messages: messages_for(size),
            payload,
            text,
        }
    }

    /// Payload bytes per iteration (what the bytes/s throughput counts).
    pub fn payload_bytes(&self) -> u64 {
        (self.size * self.messages) as u64
    }
}

/// Which end sends: a client masks every frame, a server does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Masked frames.
    Client,
    /// Unmasked frames.
    Server,
}

impl Side {
    /// Both sides, client first.
    pub const ALL: [Side; 2] = [Side::Client, Side::Server];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// Room of the [`Sink`]: about a socket send buffer.
const SINK_RING: usize = 256 << 10;

/// Where the send workload's bytes go: every write is copied into a ring of
/// `SINK_RING` bytes, as a socket write copies into the kernel's send buffer. Every
/// implementation pays this one copy, so one that hands the transport a borrowed
/// payload (zero-copy) is not credited with writing it for free.
#[derive(Debug, Clone)]
pub struct Sink {
    ring: Vec<u8>,
    pos: usize,
    /// Bytes written so far.
    pub written: u64,
}

impl Default for Sink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink {
    /// An empty sink.
    pub fn new() -> Self {
        Self {
            ring: vec![0; SINK_RING],
            pos: 0,
            written: 0,
        }
    }

    /// Copies `data` in (all of it) and returns its length.
    pub fn write(&mut self, mut data: &[u8]) -> usize {
        let len = data.len();
        while !data.is_empty() {
            let n = data.len().min(SINK_RING - self.pos);
            self.ring[self.pos..self.pos + n].copy_from_slice(&data[..n]);
            self.pos = (self.pos + n) % SINK_RING;
            data = &data[n..];
        }
        self.written += len as u64;
        len
    }
}
