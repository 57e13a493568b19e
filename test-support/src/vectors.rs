//! Conformance vectors: what a client sends after the opening handshake, and what an
//! echo server must send back, run against every host of the core (the core itself,
//! the mio driver, the tokio adapter and the C ABI).
//!
//! Plain Rust with no dependency at all (not even on wsengine): what the vectors expect is
//! written down independently of the code under test. Run by `tests/api/conformance.rs`
//! (the core), `mio/tests/driver.rs`, `tokio/tests/tokio.rs` and
//! `ffi/tests/conformance.rs`. It holds:
//!
//! - [`vectors`]: the vectors, built with a small frame builder ([`Frames`]) so that each
//!   reads as the frames it sends (its encoder, [`encode_frame`], is the one every
//!   test, bench and fuzz target writes raw frames with);
//! - [`decode`]: a decoder of what a server sends (unmasked frames, messages reassembled);
//! - [`check`] and [`run_all`]: the checker every runner uses, which prints a diff of
//!   the expected and observed replies for each failing vector.
//!
//! Every host runs an echo server configured with [`MAX_FRAME_SIZE`],
//! [`MAX_MESSAGE_SIZE`] and [`MAX_FRAGMENTS`] (everything else at its default, whole
//! message delivery, automatic Pongs), answers the opening handshake [`REQUEST`] with a
//! 101, writes the vector's input, and records what the server sends after the 101 and
//! whether it then closes the transport.

use std::fmt::Write as _;

/// Largest frame payload the echo servers accept (a larger one fails with 1009).
pub const MAX_FRAME_SIZE: u64 = 128 << 10;
/// Largest message the echo servers accept, summed over its fragments (1009 beyond).
pub const MAX_MESSAGE_SIZE: u64 = 128 << 10;
/// Most frames in one message the echo servers accept (1008 beyond).
pub const MAX_FRAGMENTS: u32 = 64;

/// The client's opening handshake: RFC 6455 §1.2's, whose key §1.3 answers with
/// [`ACCEPT`]. The servers accept it without a subprotocol.
pub const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: server.example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

/// The `Sec-WebSocket-Key` of [`REQUEST`] (RFC 6455 §1.3's sample nonce).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` of [`REQUEST`] (RFC 6455 §1.3).
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of the RFC 6455 §5.7 examples; every vector masks with it.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opcodes as the wire writes them (RFC 6455 §5.2).
pub const CONT: u8 = 0x0;
/// Text frame.
pub const TEXT: u8 = 0x1;
/// Binary frame.
pub const BINARY: u8 = 0x2;
/// Close frame.
pub const CLOSE: u8 = 0x8;
/// Ping frame.
pub const PING: u8 = 0x9;
/// Pong frame.
pub const PONG: u8 = 0xA;

// ---- the frame builder ----

/// Bytes a client sends, built frame by frame. Frames are masked with [`MASK`] unless
/// built with [`unmasked`](Self::unmasked); lengths take the minimal encoding.
#[derive(Debug, Clone, Default)]
pub struct Frames(Vec<u8>);

impl Frames {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A masked frame with the RSV bits `rsv` (as they sit in the first byte: 0x40,
    /// 0x20, 0x10) and any 4-bit `opcode`, reserved ones included.
    pub fn frame_rsv(mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Self {
        encode_frame(&mut self.0, fin, rsv, opcode, Some(MASK), payload);
        self
    }

    /// A masked frame.
    pub fn frame(self, fin: bool, opcode: u8, payload: &[u8]) -> Self {
        self.frame_rsv(fin, 0, opcode, payload)
    }

    /// An unmasked frame (which a server must refuse).
    pub fn unmasked(mut self, fin: bool, opcode: u8, payload: &[u8]) -> Self {
        encode_frame(&mut self.0, fin, 0, opcode, None, payload);
        self
    }

    /// A whole text message in one frame.
    pub fn text(self, text: &str) -> Self {
        self.frame(true, TEXT, text.as_bytes())
    }

    /// A text frame of raw bytes (for invalid UTF-8).
    pub fn text_bytes(self, fin: bool, bytes: &[u8]) -> Self {
        self.frame(fin, TEXT, bytes)
    }

    /// A whole binary message in one frame.
    pub fn binary(self, data: &[u8]) -> Self {
        self.frame(true, BINARY, data)
    }

    /// A continuation frame.
    pub fn cont(self, fin: bool, payload: &[u8]) -> Self {
        self.frame(fin, CONT, payload)
    }

    /// A Ping.
    pub fn ping(self, payload: &[u8]) -> Self {
        self.frame(true, PING, payload)
    }

    /// A Pong.
    pub fn pong(self, payload: &[u8]) -> Self {
        self.frame(true, PONG, payload)
    }

    /// A Close frame with a status code and a reason.
    pub fn close(self, code: u16, reason: &[u8]) -> Self {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(reason);
        self.frame(true, CLOSE, &body)
    }

    /// Bytes as they are (headers written by hand).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Appends one frame to `out`: byte 0 from `fin`, the RSV bits `rsv` (as they sit in
/// byte 0: 0x40, 0x20, 0x10) and any 4-bit `opcode`, reserved ones included; the length
/// in its minimal encoding (RFC 6455 §5.2); `mask`'s key and the payload masked with it
/// (§5.3), or the payload as is.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    encode_header(out, fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
}

/// Appends the header of such a frame to `out`, announcing `len` payload bytes (which
/// the caller appends, masked with `mask`'s key if any).
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
) {
    out.push(if fin { 0x80 } else { 0 } | (rsv & 0x70) | (opcode & 0x0F));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if let Ok(small) = u8::try_from(len)
        && small <= 125
    {
        out.push(mask_bit | small);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

// ---- expectations ----

/// One thing the server sends, as the checker sees it: data messages reassembled from
/// their frames, control frames one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A text message (its bytes, as they came).
    Text(Vec<u8>),
    /// A binary message.
    Binary(Vec<u8>),
    /// A Ping.
    Ping(Vec<u8>),
    /// A Pong and its payload.
    Pong(Vec<u8>),
    /// A Close frame and its status code (`None`: an empty body). The reason is not
    /// compared.
    Close(Option<u16>),
    /// Bytes that are not a valid server frame, or a truncated one: what is wrong.
    Malformed(String),
}

/// One conformance vector.
#[derive(Debug, Clone)]
pub struct Vector {
    /// A unique name: `section/what`.
    pub name: String,
    /// What the client sends after the opening handshake (masked frames).
    pub input: Vec<u8>,
    /// What the server sends back, in order.
    pub replies: Vec<Reply>,
    /// Whether the server then closes the transport (for `false`: it keeps it open
    /// with nothing more to send).
    pub closes: bool,
    /// When set, the server's bytes must start with exactly these (the RFC 6455 §5.7
    /// example frames, which the server's echo must reproduce byte for byte).
    pub wire_prefix: Option<Vec<u8>>,
}

impl Vector {
    fn new(name: &str, input: Frames, replies: Vec<Reply>, closes: bool) -> Self {
        Self {
            name: name.to_owned(),
            input: input.into_bytes(),
            replies,
            closes,
            wire_prefix: None,
        }
    }

    fn wire_prefix(mut self, prefix: &[u8]) -> Self {
        self.wire_prefix = Some(prefix.to_vec());
        self
    }
}

/// A text message reply.
pub fn text(s: &str) -> Reply {
    Reply::Text(s.as_bytes().to_vec())
}

/// A binary message reply.
pub fn binary(data: &[u8]) -> Reply {
    Reply::Binary(data.to_vec())
}

/// A Pong reply.
pub fn pong(payload: &[u8]) -> Reply {
    Reply::Pong(payload.to_vec())
}

/// A Close reply with a status code.
pub fn close(code: u16) -> Reply {
    Reply::Close(Some(code))
}

/// `input` followed by a clean Close (1000) from the client: the server sends
/// `replies`, echoes the Close and closes the transport.
fn echoed(name: &str, input: Frames, mut replies: Vec<Reply>) -> Vector {
    replies.push(close(1000));
    Vector::new(name, input.close(1000, b"done"), replies, true)
}

/// `input` breaks a rule: the server sends a Close with `code` and closes the transport.
fn rejected(name: &str, input: Frames, code: u16) -> Vector {
    Vector::new(name, input, vec![close(code)], true)
}

/// A payload of `len` bytes that differs from its neighbours of other lengths.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251).to_le_bytes()[0].wrapping_mul(7) ^ seed)
        .collect()
}

/// RFC 6455 §5.7, "A single-frame masked text message" (client to server).
pub const RFC_MASKED_HELLO: &[u8] = &[
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
/// "A single-frame unmasked text message": the server's echo of it.
pub const RFC_UNMASKED_HELLO: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
/// "A fragmented unmasked text message": "Hel" then "lo".
pub const RFC_FRAGMENTED_HELLO: &[u8] = &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
/// "Unmasked Ping request" (a Ping from a server).
pub const RFC_UNMASKED_PING: &[u8] = &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
/// "Masked Ping response" (a Pong from a client).
pub const RFC_MASKED_PONG: &[u8] = &[
    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
/// The unmasked Pong a server answers a "Hello" Ping with.
pub const RFC_UNMASKED_PONG: &[u8] = &[0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];

/// Every vector.
pub fn vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    rfc_examples(&mut v);
    fragmentation(&mut v);
    framing_rules(&mut v);
    utf8_rules(&mut v);
    close_rules(&mut v);
    limits(&mut v);
    round_trips(&mut v);
    let mut names: Vec<&str> = v.iter().map(|x| x.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), v.len(), "vector names are unique");
    v
}

/// RFC 6455 §5.7, sent by a client (masked) to the echo server.
fn rfc_examples(v: &mut Vec<Vector>) {
    let hello = Frames::new().raw(RFC_MASKED_HELLO);
    v.push(
        echoed(
            "rfc5.7/single-frame-masked-text",
            hello,
            vec![text("Hello")],
        )
        .wire_prefix(RFC_UNMASKED_HELLO),
    );
    let fragmented = Frames::new().frame(false, TEXT, b"Hel").cont(true, b"lo");
    v.push(
        echoed("rfc5.7/fragmented-text", fragmented, vec![text("Hello")])
            .wire_prefix(RFC_UNMASKED_HELLO),
    );
    let ping = Frames::new().ping(b"Hello");
    v.push(
        echoed("rfc5.7/ping-gets-pong", ping, vec![pong(b"Hello")]).wire_prefix(RFC_UNMASKED_PONG),
    );
    let unsolicited = Frames::new().raw(RFC_MASKED_PONG);
    v.push(echoed(
        "rfc5.7/masked-pong-needs-no-answer",
        unsolicited,
        vec![],
    ));
    // "256 bytes binary message in a single unmasked frame": the 16-bit length form.
    let payload = pattern(256, 1);
    let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
    wire.extend_from_slice(&payload);
    v.push(
        echoed(
            "rfc5.7/binary-256-bytes",
            Frames::new().binary(&payload),
            vec![binary(&payload)],
        )
        .wire_prefix(&wire),
    );
    // "64KiB binary message in a single unmasked frame": the 64-bit length form.
    let payload = pattern(65536, 2);
    let mut wire = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0];
    wire.extend_from_slice(&payload);
    v.push(
        echoed(
            "rfc5.7/binary-64-kib",
            Frames::new().binary(&payload),
            vec![binary(&payload)],
        )
        .wire_prefix(&wire),
    );
    // Without a Close the connection stays open.
    v.push(Vector::new(
        "open/text-without-close",
        Frames::new().text("Hello"),
        vec![text("Hello")],
        false,
    ));
    v.push(Vector::new(
        "open/ping-without-close",
        Frames::new().ping(b""),
        vec![pong(b"")],
        false,
    ));
    // Half a frame header waits for the rest.
    v.push(Vector::new(
        "open/partial-frame-waits",
        Frames::new().raw(&RFC_MASKED_HELLO[..2]),
        vec![],
        false,
    ));
}

/// RFC 6455 §5.4: fragments, with control frames between them.
fn fragmentation(v: &mut Vec<Vector>) {
    let input = Frames::new()
        .frame(false, TEXT, b"Hel")
        .ping(b"p")
        .cont(false, b"")
        .pong(b"q")
        .cont(true, b"lo");
    v.push(echoed(
        "frag/text-with-interleaved-ping-and-pong",
        input,
        vec![pong(b"p"), text("Hello")],
    ));
    let input = Frames::new()
        .frame(false, BINARY, &[1, 2])
        .ping(b"x")
        .cont(false, &[3])
        .cont(true, &[4])
        .ping(b"y");
    v.push(echoed(
        "frag/binary-with-a-ping-inside-and-one-after",
        input,
        // Whatever the reads and writes: when "y" arrives the Pong to "x" and the echo
        // are queued (or out), and a Pong to "y" follows them. (Two Pings inside one
        // message would make the order depend on the host's writes: RFC 6455 §5.5.3
        // lets the answer to a second Ping wait while the first Pong is unwritten.)
        vec![pong(b"x"), binary(&[1, 2, 3, 4]), pong(b"y")],
    ));
    let input = Frames::new()
        .frame(false, TEXT, b"")
        .cont(false, b"")
        .cont(true, b"");
    v.push(echoed("frag/empty-fragments", input, vec![text("")]));
    let euro = "€".as_bytes(); // E2 82 AC
    let input = Frames::new()
        .frame(false, TEXT, &euro[..1])
        .cont(false, &euro[1..2])
        .cont(true, &euro[2..]);
    v.push(echoed(
        "frag/code-point-split-across-three-fragments",
        input,
        vec![text("€")],
    ));
    let input = Frames::new()
        .text("one")
        .frame(false, BINARY, b"tw")
        .cont(true, b"o")
        .text("three");
    v.push(echoed(
        "frag/messages-before-and-after-a-fragmented-one",
        input,
        vec![text("one"), binary(b"two"), text("three")],
    ));
}

/// RFC 6455 §5.1-§5.5: framing, masking, control frames and fragmentation rules.
fn framing_rules(v: &mut Vec<Vector>) {
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        let input = Frames::new().frame(true, op, b"x");
        v.push(rejected(
            &format!("reject/reserved-opcode-{op:#x}"),
            input,
            1002,
        ));
    }
    for rsv in [0x40, 0x20, 0x10] {
        let input = Frames::new().frame_rsv(true, rsv, TEXT, b"Hello");
        v.push(rejected(
            &format!("reject/rsv-{rsv:#04x}-without-extension"),
            input,
            1002,
        ));
    }
    let input = Frames::new().frame_rsv(true, 0x40, PING, b"");
    v.push(rejected("reject/rsv1-on-a-ping", input, 1002));
    let input = Frames::new().unmasked(true, TEXT, b"Hello");
    v.push(rejected("reject/unmasked-text", input, 1002));
    let input = Frames::new().unmasked(true, PING, b"");
    v.push(rejected("reject/unmasked-ping", input, 1002));
    for (op, name) in [(PING, "ping"), (PONG, "pong"), (CLOSE, "close")] {
        let input = Frames::new().frame(false, op, b"");
        v.push(rejected(&format!("reject/fragmented-{name}"), input, 1002));
        let input = Frames::new().frame(true, op, &[b'a'; 126]);
        v.push(rejected(
            &format!("reject/{name}-of-126-bytes"),
            input,
            1002,
        ));
    }
    let input = Frames::new().ping(&[b'a'; 125]);
    v.push(echoed(
        "control/ping-of-125-bytes-is-answered",
        input,
        vec![pong(&[b'a'; 125])],
    ));
    let input = Frames::new().cont(true, b"lo");
    v.push(rejected(
        "reject/continuation-without-a-message",
        input,
        1002,
    ));
    let input = Frames::new().cont(false, b"lo");
    v.push(rejected(
        "reject/unfinished-continuation-without-a-message",
        input,
        1002,
    ));
    let input = Frames::new().text("Hel").cont(true, b"lo");
    v.push(Vector::new(
        "reject/continuation-after-a-whole-message",
        input,
        vec![text("Hel"), close(1002)],
        true,
    ));
    for (first, second, name) in [
        (TEXT, TEXT, "text-in-text"),
        (TEXT, BINARY, "binary-in-text"),
        (BINARY, TEXT, "text-in-binary"),
        (BINARY, BINARY, "binary-in-binary"),
    ] {
        let input = Frames::new()
            .frame(false, first, b"Hel")
            .frame(true, second, b"lo");
        v.push(rejected(&format!("reject/new-message-{name}"), input, 1002));
    }
    // Non-minimal and invalid payload lengths (§5.2).
    let mut head = vec![0x82, 0xFE, 0x00, 0x7D];
    head.extend_from_slice(&MASK);
    let input = Frames::new().raw(&head).raw(&[0; 125]);
    v.push(rejected(
        "reject/125-bytes-in-the-16-bit-length",
        input,
        1002,
    ));
    let mut head = vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
    head.extend_from_slice(&MASK);
    v.push(rejected(
        "reject/65535-bytes-in-the-64-bit-length",
        Frames::new().raw(&head),
        1002,
    ));
    let mut head = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5];
    head.extend_from_slice(&MASK);
    let input = Frames::new().raw(&head).raw(b"Hello");
    v.push(rejected(
        "reject/64-bit-length-with-the-top-bit-set",
        input,
        1002,
    ));
    // Nothing is answered after a fatal error: not even a Ping in the same read.
    let input = Frames::new()
        .unmasked(true, TEXT, b"bad")
        .ping(b"p")
        .text("after");
    v.push(rejected("reject/nothing-after-the-error", input, 1002));
}

/// RFC 6455 §8.1: text must be valid UTF-8 (1007), checked as it arrives.
fn utf8_rules(v: &mut Vec<Vector>) {
    for (bad, name) in [
        (&b"\xFF"[..], "byte-ff"),
        (b"Hello \xC0\xAF", "overlong-slash"),
        (b"\xED\xA0\x80", "surrogate"),
        (b"\xF4\x90\x80\x80", "above-10ffff"),
        (b"\x80", "lone-continuation-byte"),
        (b"\xCE\xBA\xE1\xBD\xB9\xCF", "truncated-at-the-end"),
    ] {
        let input = Frames::new().text_bytes(true, bad);
        v.push(rejected(&format!("reject/utf8-{name}"), input, 1007));
    }
    let input = Frames::new()
        .frame(false, TEXT, b"Hello")
        .cont(true, b"\xFF");
    v.push(rejected("reject/utf8-in-a-later-fragment", input, 1007));
    let input = Frames::new()
        .frame(false, TEXT, b"a\xE2")
        .cont(true, b"\x28b");
    v.push(rejected(
        "reject/utf8-across-a-fragment-boundary",
        input,
        1007,
    ));
    let input = Frames::new()
        .frame(false, TEXT, b"a\xE2\x82")
        .cont(true, b"");
    v.push(rejected(
        "reject/utf8-message-ends-inside-a-code-point",
        input,
        1007,
    ));
    // Fail fast: the message never ends, the server fails on the bad byte.
    let input = Frames::new().frame(false, TEXT, b"ok \xFF and more");
    v.push(rejected(
        "reject/utf8-fails-fast-in-an-unfinished-message",
        input,
        1007,
    ));
    // Binary messages are not UTF-8.
    let input = Frames::new().binary(b"\xFF\xE2");
    v.push(echoed(
        "utf8/binary-is-not-checked",
        input,
        vec![binary(b"\xFF\xE2")],
    ));
}

/// RFC 6455 §5.5.1, §7.4: the Close frame and the closing handshake.
fn close_rules(v: &mut Vec<Vector>) {
    let input = Frames::new().frame(true, CLOSE, &[0x03]);
    v.push(rejected("reject/close-payload-of-1-byte", input, 1002));
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let input = Frames::new().close(code, b"");
        v.push(rejected(&format!("reject/close-code-{code}"), input, 1002));
    }
    let input = Frames::new().close(1000, b"bad \xFF");
    v.push(rejected("reject/close-reason-invalid-utf8", input, 1007));
    let input = Frames::new().close(1000, b"cut \xE2\x82");
    v.push(rejected("reject/close-reason-truncated-utf8", input, 1007));
    // The clean closing handshake: the server echoes the status code.
    for code in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999] {
        let input = Frames::new().close(code, b"bye");
        v.push(Vector::new(
            &format!("close/echoes-{code}"),
            input,
            vec![close(code)],
            true,
        ));
    }
    let input = Frames::new().frame(true, CLOSE, b"");
    v.push(Vector::new(
        "close/empty-is-echoed-empty",
        input,
        vec![Reply::Close(None)],
        true,
    ));
    let reason = "r".repeat(123);
    let input = Frames::new().close(1000, reason.as_bytes());
    v.push(Vector::new(
        "close/longest-reason",
        input,
        vec![close(1000)],
        true,
    ));
    // §5.5.1: nothing after the Close frame is processed.
    let input = Frames::new().close(1000, b"").text("late").ping(b"late");
    v.push(Vector::new(
        "close/frames-after-close-are-ignored",
        input,
        vec![close(1000)],
        true,
    ));
    let input = Frames::new().text("first").close(1001, b"");
    v.push(Vector::new(
        "close/after-a-message",
        input,
        vec![text("first"), close(1001)],
        true,
    ));
}

/// The configured limits: [`MAX_FRAME_SIZE`], [`MAX_MESSAGE_SIZE`], [`MAX_FRAGMENTS`].
fn limits(v: &mut Vec<Vector>) {
    let max = usize::try_from(MAX_MESSAGE_SIZE).unwrap_or(usize::MAX);
    let input = Frames::new().binary(&pattern(max + 1, 3));
    v.push(rejected("limits/frame-over-max-frame-size", input, 1009));
    let half = pattern(max / 2 + 1, 4);
    let input = Frames::new().frame(false, BINARY, &half).cont(true, &half);
    v.push(rejected(
        "limits/message-over-max-message-size",
        input,
        1009,
    ));
    let half = pattern(max / 2, 5);
    let input = Frames::new().frame(false, BINARY, &half).cont(true, &half);
    let whole = [&half[..], &half[..]].concat();
    v.push(echoed(
        "limits/message-of-exactly-max-message-size",
        input,
        vec![binary(&whole)],
    ));
    let input = Frames::new().frame(false, TEXT, b"x");
    let last = usize::try_from(MAX_FRAGMENTS).unwrap_or(usize::MAX) - 1;
    let input = (1..last)
        .fold(input, |f, _| f.cont(false, b"x"))
        .cont(true, b"x");
    v.push(echoed(
        "limits/max-fragments",
        input,
        vec![text(&"x".repeat(last + 1))],
    ));
    let input = Frames::new().frame(false, TEXT, b"x");
    let input = (0..last)
        .fold(input, |f, _| f.cont(false, b"x"))
        .cont(true, b"x");
    v.push(rejected(
        "limits/one-fragment-over-max-fragments",
        input,
        1008,
    ));
}

/// Messages of every length form and kind come back unchanged.
fn round_trips(v: &mut Vec<Vector>) {
    let multibyte = "h\u{e9}llo \u{20ac}uro \u{1f600} \u{65e5}\u{672c}\u{8a9e} \u{1d11e}";
    v.push(echoed(
        "roundtrip/multibyte-text",
        Frames::new().text(multibyte),
        vec![text(multibyte)],
    ));
    v.push(echoed(
        "roundtrip/empty-text",
        Frames::new().text(""),
        vec![text("")],
    ));
    let long: String = multibyte.chars().cycle().take(30_000).collect();
    v.push(echoed(
        "roundtrip/long-multibyte-text",
        Frames::new().text(&long),
        vec![text(&long)],
    ));
    for len in [0, 1, 125, 126, 65535, 65536, 100_000] {
        let data = pattern(len, 6);
        v.push(echoed(
            &format!("roundtrip/binary-{len}-bytes"),
            Frames::new().binary(&data),
            vec![binary(&data)],
        ));
    }
    let mut input = Frames::new();
    let mut replies = Vec::new();
    for i in 0..10 {
        if i % 2 == 0 {
            let s = format!("message {i} \u{e9}");
            input = input.text(&s);
            replies.push(text(&s));
        } else {
            let data = pattern(i * 100, 7);
            input = input.binary(&data);
            replies.push(binary(&data));
        }
    }
    v.push(echoed(
        "roundtrip/ten-messages-in-one-write",
        input,
        replies,
    ));
}

// ---- decoding what a server sent ----

/// What a server sent, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The replies, in order; a [`Reply::Malformed`] ends them.
    pub replies: Vec<Reply>,
    /// Bytes at the end that do not make a whole frame (or message) yet.
    pub partial: usize,
}

/// Decodes a server's frames: they must be unmasked, with no RSV bit, a known opcode,
/// the minimal length encoding, and whole control frames of at most 125 bytes. Data
/// frames are joined into messages. A frame that breaks a rule becomes a
/// [`Reply::Malformed`] and decoding stops there.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut at = 0;
    // The data message being assembled: (opcode, payload, where its first frame began).
    let mut message: Option<(u8, Vec<u8>, usize)> = None;
    while at < bytes.len() {
        let frame = match decode_frame(&bytes[at..]) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                out.replies
                    .push(Reply::Malformed(format!("at byte {at}: {e}")));
                return out;
            }
        };
        let start = at;
        at += frame.len;
        let fail = |what: &str| Reply::Malformed(format!("at byte {start}: {what}"));
        match frame.opcode {
            CONT | TEXT | BINARY => {
                let (opcode, mut data, first) = match (message.take(), frame.opcode) {
                    (Some(m), CONT) => m,
                    (None, CONT) => {
                        out.replies.push(fail("continuation without a message"));
                        return out;
                    }
                    (Some(_), _) => {
                        out.replies
                            .push(fail("a new message inside a fragmented one"));
                        return out;
                    }
                    (None, op) => (op, Vec::new(), start),
                };
                data.extend_from_slice(frame.payload);
                if !frame.fin {
                    message = Some((opcode, data, first));
                    continue;
                }
                out.replies.push(if opcode == TEXT {
                    Reply::Text(data)
                } else {
                    Reply::Binary(data)
                });
            }
            PING => out.replies.push(Reply::Ping(frame.payload.to_vec())),
            PONG => out.replies.push(Reply::Pong(frame.payload.to_vec())),
            _ => match frame.payload {
                [] => out.replies.push(Reply::Close(None)),
                [_] => {
                    out.replies.push(fail("a Close frame with a 1-byte body"));
                    return out;
                }
                [hi, lo, reason @ ..] => {
                    if std::str::from_utf8(reason).is_err() {
                        out.replies.push(fail("a Close reason that is not UTF-8"));
                        return out;
                    }
                    out.replies
                        .push(Reply::Close(Some(u16::from_be_bytes([*hi, *lo]))));
                }
            },
        }
    }
    // An unfinished message counts from its first frame.
    let end = message.map_or(at, |(_, _, first)| first);
    out.partial = bytes.len() - end;
    out
}

struct RawFrame<'a> {
    fin: bool,
    opcode: u8,
    payload: &'a [u8],
    /// Header and payload.
    len: usize,
}

/// One server frame at the start of `bytes`: `Ok(None)` when it is not all there yet.
fn decode_frame(bytes: &[u8]) -> Result<Option<RawFrame<'_>>, String> {
    let [b0, b1, rest @ ..] = bytes else {
        return Ok(None);
    };
    let (fin, rsv, opcode) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0F);
    if rsv != 0 {
        return Err(format!("RSV bits {rsv:#04x} set"));
    }
    if !matches!(opcode, CONT | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(format!("reserved opcode {opcode:#x}"));
    }
    if b1 & 0x80 != 0 {
        return Err("a masked frame from the server".to_owned());
    }
    let (len, header) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => {
                let len = u64::from(u16::from_be_bytes([*a, *b]));
                if len < 126 {
                    return Err(format!("length {len} in the 16-bit form"));
                }
                (len, 4)
            }
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(b) => {
                let mut raw = [0; 8];
                raw.copy_from_slice(b);
                let len = u64::from_be_bytes(raw);
                if len <= 0xFFFF || len >> 63 != 0 {
                    return Err(format!("length {len} in the 64-bit form"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode >= CLOSE && (!fin || len > 125) {
        return Err(format!("control frame {opcode:#x}: fin {fin}, {len} bytes"));
    }
    let len = usize::try_from(len).map_err(|_| format!("length {len}"))?;
    let Some(payload) = bytes.get(header..header + len) else {
        return Ok(None);
    };
    Ok(Some(RawFrame {
        fin,
        opcode,
        payload,
        len: header + len,
    }))
}

// ---- checking ----

/// What a host's server did with one vector.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Everything it sent after the 101 response.
    pub bytes: Vec<u8>,
    /// Whether it closed the transport.
    pub closed: bool,
    /// Anything the runner noticed on the way (a write error, a timeout), shown with a
    /// failure.
    pub note: String,
    /// The runner could not run the vector (the handshake failed, say): a failure.
    pub error: Option<String>,
}

/// Compares what a server did with what the vector expects; `Err` holds a readable diff.
pub fn check(vector: &Vector, observed: &Observed) -> Result<(), String> {
    let decoded = decode(&observed.bytes);
    let mut problems = Vec::new();
    if let Some(error) = &observed.error {
        problems.push(format!("the runner failed: {error}"));
    }
    if decoded.replies != vector.replies {
        problems.push("the replies differ".to_owned());
    }
    if decoded.partial != 0 {
        problems.push(format!(
            "{} bytes at the end are not a whole frame or message",
            decoded.partial
        ));
    }
    if observed.closed != vector.closes {
        problems.push(format!(
            "server closes the transport: expected {}, got {}",
            vector.closes, observed.closed
        ));
    }
    if let Some(prefix) = &vector.wire_prefix
        && !observed.bytes.starts_with(prefix)
    {
        let n = prefix.len().min(observed.bytes.len()).min(16);
        problems.push(format!(
            "the bytes must start with the RFC frame {} but start with {}",
            hex(&prefix[..prefix.len().min(16)]),
            hex(&observed.bytes[..n]),
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut report = format!("vector `{}`:\n", vector.name);
    for p in &problems {
        let _ = writeln!(report, "  - {p}");
    }
    let _ = writeln!(
        report,
        "  input: {} bytes: {}",
        vector.input.len(),
        hex(&vector.input[..vector.input.len().min(24)])
    );
    let _ = writeln!(report, "  replies (expected | got):");
    let rows = vector.replies.len().max(decoded.replies.len());
    for i in 0..rows {
        let expected = vector.replies.get(i).map_or_else(|| "-".to_owned(), show);
        let got = decoded.replies.get(i).map_or_else(|| "-".to_owned(), show);
        let mark = if vector.replies.get(i) == decoded.replies.get(i) {
            " "
        } else {
            "*"
        };
        let _ = writeln!(report, "   {mark}{i:>3}  {expected:<40} | {got}");
    }
    if !observed.note.is_empty() {
        let _ = writeln!(report, "  runner note: {}", observed.note);
    }
    Err(report)
}

/// Runs every vector through `run` (one host), checks each, prints a summary line, and
/// panics with the diff of every failing vector.
pub fn run_all(host: &str, vectors: &[Vector], mut run: impl FnMut(&Vector) -> Observed) {
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|vector| check(vector, &run(vector)).err())
        .collect();
    eprintln!(
        "conformance [{host}]: {} of {} vectors passed",
        vectors.len() - failures.len(),
        vectors.len()
    );
    assert!(
        failures.is_empty(),
        "conformance [{host}]: {} of {} vectors failed\n\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

/// How many replies [`decode`] finds in `bytes` (for runners that read until the
/// expected replies are in).
pub fn reply_count(bytes: &[u8]) -> usize {
    decode(bytes).replies.len()
}

/// A reply, short: kind, length, and a preview of the payload.
fn show(reply: &Reply) -> String {
    match reply {
        Reply::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let preview: String = s.chars().take(20).collect();
            let more = if s.chars().count() > 20 { "..." } else { "" };
            format!("Text {preview:?}{more} ({} B, #{:08x})", t.len(), digest(t))
        }
        Reply::Binary(b) => format!(
            "Binary {} B {} #{:08x}",
            b.len(),
            hex(&b[..b.len().min(6)]),
            digest(b)
        ),
        Reply::Ping(p) => format!("Ping {} B {}", p.len(), hex(&p[..p.len().min(6)])),
        Reply::Pong(p) => format!("Pong {} B {}", p.len(), hex(&p[..p.len().min(6)])),
        Reply::Close(Some(code)) => format!("Close {code}"),
        Reply::Close(None) => "Close (no status)".to_owned(),
        Reply::Malformed(what) => format!("MALFORMED: {what}"),
    }
}

/// FNV-1a, so payloads of the same length that differ show different digests.
fn digest(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
