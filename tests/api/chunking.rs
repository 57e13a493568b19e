//! Property: a fixed byte stream to a server (handshake request, fragmented multibyte
//! text, control frames, binary, a close) gives the same events and the same transmitted
//! bytes however it is split into reads.

use std::sync::OnceLock;

use proptest::prelude::*;
use wsengine::{CloseCode, CloseFrame, Connection, Delivery, Event};

use crate::support::*;

/// The stream: the RFC request and then, masked:
/// - "Hello";
/// - "héllo wörld €𝄞" in three fragments cut inside "é" and inside "𝄞", with a Ping
///   between the first two;
/// - a 300-byte binary message (16-bit length);
/// - an empty-payload Ping and a Pong;
/// - a binary message in two fragments, one empty;
/// - Close 1000 "bye".
fn stream() -> &'static [u8] {
    static STREAM: OnceLock<Vec<u8>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let text = "héllo wörld €𝄞".as_bytes();
        let cut1 = 2; // inside 'é' (C3 A9)
        let cut2 = text.len() - 2; // inside '𝄞' (F0 9D 84 9E)
        let big: Vec<u8> = (0..300u32).map(|i| i.to_le_bytes()[0]).collect();
        cat(&[
            RFC_REQUEST,
            &masked(true, TEXT, b"Hello"),
            &masked(false, TEXT, &text[..cut1]),
            &masked(true, PING, b"between"),
            &masked(false, CONT, &text[cut1..cut2]),
            &masked(true, CONT, &text[cut2..]),
            &masked(true, BINARY, &big),
            &masked(true, PING, b""),
            &masked(true, PONG, b"unsolicited"),
            &masked(false, BINARY, b""),
            &masked(true, CONT, b"\x00\xFF"),
            &masked(true, CLOSE, &close_body(1000, b"bye")),
        ])
    })
}

/// What the server reports for the stream, after the request.
fn expected_events() -> Vec<Event> {
    let big: Vec<u8> = (0..300u32).map(|i| i.to_le_bytes()[0]).collect();
    vec![
        text("Hello"),
        Event::Ping(b"between"[..].into()),
        text("héllo wörld €𝄞"),
        binary(&big),
        Event::Ping(b""[..].into()),
        Event::Pong(b"unsolicited"[..].into()),
        binary(b"\x00\xFF"),
        Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into(),
        })),
        Event::Closed {
            code: CloseCode::NORMAL,
            clean: true,
        },
    ]
}

/// Feeds the stream cut at `cuts` to a fresh server; returns its events (the request
/// dropped) and everything it transmitted.
fn run(cuts: &[usize], delivery: Delivery) -> (Vec<Event>, Vec<u8>) {
    run_with(cuts, delivery, feed_split)
}

/// How a test hands bytes to a connection: `feed_split` (`recv`, the host's buffer) or
/// `feed_split_recv_buf` (`recv_buf` + `commit_recv`, the connection's buffer).
type Feeder = fn(&mut Connection, &[u8], &[usize]) -> Outcome;

fn run_with(cuts: &[usize], delivery: Delivery, feed: Feeder) -> (Vec<Event>, Vec<u8>) {
    let mut c = config();
    c.delivery = delivery;
    let mut server = Connection::server(c, t0());
    let out = feed(&mut server, stream(), cuts);
    assert_eq!(out.error, None, "cuts {cuts:?}");
    assert!(
        matches!(out.events.first(), Some(Event::Request(_))),
        "{:?}",
        out.events
    );
    (out.events[1..].to_vec(), take_transmit(&mut server))
}

/// The reference run: the stream in one read.
fn reference() -> &'static (Vec<Event>, Vec<u8>) {
    static REFERENCE: OnceLock<(Vec<Event>, Vec<u8>)> = OnceLock::new();
    REFERENCE.get_or_init(|| run(&[], Delivery::Whole))
}

#[test]
fn the_stream_fed_whole_gives_the_expected_events_and_replies() {
    let (events, tx) = reference();
    assert_eq!(*events, expected_events());
    let (head, frames) = split_head(tx);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let frames = decode_frames(frames);
    let summary: Vec<_> = frames
        .iter()
        .map(|f| (f.opcode, f.payload.clone()))
        .collect();
    use wsengine::OpCode::{Close, Pong};
    assert_eq!(
        summary,
        [
            (Pong, b"between".to_vec()),
            (Pong, Vec::new()),
            (Close, 1000u16.to_be_bytes().to_vec()),
        ]
    );
}

#[test]
fn the_stream_one_byte_at_a_time() {
    let cuts: Vec<usize> = (1..stream().len()).collect();
    assert_eq!(run(&cuts, Delivery::Whole), *reference());
}

#[test]
fn the_stream_through_recv_buf_in_any_read_size() {
    assert_eq!(
        run_with(&[], Delivery::Whole, feed_split_recv_buf),
        *reference()
    );
    for size in [1, 2, 3, 7, 64, 257] {
        let cuts: Vec<usize> = (size..stream().len()).step_by(size).collect();
        assert_eq!(
            run_with(&cuts, Delivery::Whole, feed_split_recv_buf),
            *reference(),
            "reads of {size}"
        );
    }
}

#[test]
fn the_stream_in_every_fixed_read_size() {
    for size in [2, 3, 5, 7, 13, 64, 127, 255, 256, 257, 1000] {
        let cuts: Vec<usize> = (size..stream().len()).step_by(size).collect();
        assert_eq!(run(&cuts, Delivery::Whole), *reference(), "reads of {size}");
    }
}

/// Joins streamed pieces so that a streaming run compares with the whole one.
fn join_pieces(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    let mut text_buf: Vec<u8> = Vec::new();
    let mut bin_buf: Vec<u8> = Vec::new();
    for e in events {
        match e {
            Event::Text { data, last } => {
                assert!(std::str::from_utf8(data.as_bytes()).is_ok(), "{data:?}");
                text_buf.extend_from_slice(data.as_bytes());
                if last {
                    let s = String::from_utf8(std::mem::take(&mut text_buf)).unwrap();
                    out.push(text(&s));
                }
            }
            Event::Binary { data, last } => {
                bin_buf.extend_from_slice(&data);
                if last {
                    out.push(binary(&std::mem::take(&mut bin_buf)));
                }
            }
            other => out.push(other),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_events_and_bytes(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let len = stream().len();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
        let (events, tx) = run(&cuts, Delivery::Whole);
        prop_assert_eq!(&events, &reference().0);
        prop_assert_eq!(&tx, &reference().1);
    }

    #[test]
    fn any_split_with_streaming_delivery_joins_to_the_same_messages(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let len = stream().len();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
        let (events, tx) = run(&cuts, Delivery::Streaming);
        prop_assert_eq!(join_pieces(events), reference().0.clone());
        prop_assert_eq!(&tx, &reference().1);
    }
}

// ---- the same for a client: the 101 and the server's frames ----

/// A fresh client (request drained) and the stream a server sends it: the 101, then
/// unmasked frames like the server stream's, ending with a Close.
fn client_and_stream() -> (Connection, Vec<u8>) {
    let mut client = Connection::client(client_request(), config(), t0()).unwrap();
    let tx = take_transmit(&mut client);
    let (head, _) = split_head(&tx);
    let text = "héllo wörld €𝄞".as_bytes();
    let stream = cat(&[
        &response_to(&head),
        &unmasked(true, TEXT, b"Hello"),
        &unmasked(false, TEXT, &text[..2]),
        &unmasked(true, PING, b"between"),
        &unmasked(true, CONT, &text[2..]),
        &unmasked(true, BINARY, &[9; 300]),
        &unmasked(true, CLOSE, &close_body(1001, b"")),
    ]);
    (client, stream)
}

fn run_client(cuts: &[usize]) -> (Vec<Event>, Vec<u8>) {
    let (mut client, stream) = client_and_stream();
    let out = feed_split(&mut client, &stream, cuts);
    assert_eq!(out.error, None, "cuts {cuts:?}");
    assert!(matches!(out.events.first(), Some(Event::Accepted(_))));
    (out.events[1..].to_vec(), take_transmit(&mut client))
}

#[test]
fn the_client_stream_fed_whole() {
    let (events, tx) = run_client(&[]);
    assert_eq!(
        events,
        [
            text("Hello"),
            Event::Ping(b"between"[..].into()),
            text("héllo wörld €𝄞"),
            binary(&[9; 300]),
            Event::Close(Some(CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: String::new(),
            })),
            Event::Closed {
                code: CloseCode::GOING_AWAY,
                clean: true,
            },
        ]
    );
    let frames = decode_frames(&tx);
    let summary: Vec<_> = frames.iter().map(|f| (f.opcode, f.close_code())).collect();
    use wsengine::OpCode::{Close, Pong};
    assert_eq!(summary, [(Pong, None), (Close, Some(1001))]);
    assert!(frames.iter().all(|f| f.mask.is_some()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_split_of_the_client_stream_gives_the_same_events_and_bytes(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let len = client_and_stream().1.len();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
        prop_assert_eq!(run_client(&cuts), run_client(&[]));
    }
}

// ---- arbitrary frames, valid or not: the outcome does not depend on the split ----

/// A frame with random header bits (mostly valid) and a payload that is often text.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![
        4 => Just(CONT),
        4 => Just(TEXT),
        2 => Just(BINARY),
        1 => Just(CLOSE),
        2 => Just(PING),
        1 => Just(PONG),
        1 => 0u8..16,
    ];
    let rsv = prop_oneof![20 => Just(0u8), 1 => (1u8..8).prop_map(|r| r << 4)];
    let payload = prop_oneof![
        3 => "[a-zé€𝄞]{0,40}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => proptest::collection::vec(any::<u8>(), 100..300),
        1 => (1000u16..=1015, "[a-z]{0,5}")
            .prop_map(|(code, reason)| close_body(code, reason.as_bytes())),
    ];
    (
        any::<bool>(),
        rsv,
        opcode,
        prop::bool::weighted(0.95),
        payload,
    )
        .prop_map(|(fin, rsv, opcode, is_masked, payload)| {
            let fin = fin || (opcode & 0x8 != 0 && opcode != 0xB);
            let mask = is_masked.then_some(MASK);
            frame_with_rsv(fin, rsv, opcode, mask, &payload)
        })
}

/// A data message in 1-6 masked fragments (text cut anywhere, even inside a code
/// point), sometimes with a Ping between fragments.
fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    let data = prop_oneof![
        3 => "[a-zé€𝄞]{0,60}".prop_map(|s| (TEXT, s.into_bytes())),
        1 => proptest::collection::vec(any::<u8>(), 0..450).prop_map(|b| (BINARY, b)),
    ];
    (
        data,
        proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        proptest::option::weighted(0.3, proptest::collection::vec(any::<u8>(), 0..20)),
    )
        .prop_map(|((opcode, data), cuts, ping)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut out = Vec::new();
            let mut start = 0;
            let ends: Vec<usize> = cuts.into_iter().chain([data.len()]).collect();
            for (i, &end) in ends.iter().enumerate() {
                let last = i + 1 == ends.len();
                let op = if i == 0 { opcode } else { CONT };
                out.extend_from_slice(&masked(last, op, &data[start..end]));
                start = end;
                if let (0, Some(p), false) = (i, &ping, last) {
                    out.extend_from_slice(&masked(true, PING, p));
                }
            }
            out
        })
}

/// Mostly well-formed traffic with the odd random frame.
fn arb_item() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => arb_message(),
        2 => (prop::bool::ANY, proptest::collection::vec(any::<u8>(), 0..126))
            .prop_map(|(ping, p)| masked(true, if ping { PING } else { PONG }, &p)),
        2 => arb_frame(),
    ]
}

/// Feeds `bytes` cut at `cuts` to a server with small limits; returns its events, its
/// error and everything it transmitted.
fn run_frames(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<wsengine::Error>, Vec<u8>) {
    run_frames_with(bytes, cuts, Delivery::Whole)
}

fn run_frames_with(
    bytes: &[u8],
    cuts: &[usize],
    delivery: Delivery,
) -> (Vec<Event>, Option<wsengine::Error>, Vec<u8>) {
    run_frames_fed(bytes, cuts, delivery, feed_split)
}

fn run_frames_fed(
    bytes: &[u8],
    cuts: &[usize],
    delivery: Delivery,
    feed: Feeder,
) -> (Vec<Event>, Option<wsengine::Error>, Vec<u8>) {
    let mut c = config();
    c.delivery = delivery;
    c.max_message_size = 400;
    c.max_frame_size = 250;
    c.max_fragments = 6;
    c.recv_buffer_size = 256;
    let mut server = open_server(c);
    let out = feed(&mut server, bytes, cuts);
    (out.events, out.error, take_transmit(&mut server))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The differential test of `recv_buf` (the receive buffer's room handed out as
    /// initialised memory): any traffic, valid or not, cut anywhere and read into the
    /// connection's own buffer, gives what `recv` from the host's buffer gives.
    #[test]
    fn recv_buf_gives_the_same_outcome_as_recv(
        frames in proptest::collection::vec(arb_item(), 1..10),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes = frames.concat();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let whole = run_frames(&bytes, &[]);
        prop_assert_eq!(
            run_frames_fed(&bytes, &cuts, Delivery::Whole, feed_split_recv_buf),
            whole.clone()
        );
        let (events, error, tx) =
            run_frames_fed(&bytes, &cuts, Delivery::Streaming, feed_split_recv_buf);
        prop_assert_eq!(join_pieces(events), whole.0);
        prop_assert_eq!(error, whole.1);
        prop_assert_eq!(tx, whole.2);
    }

    #[test]
    fn any_split_of_arbitrary_frames_gives_the_same_outcome(
        frames in proptest::collection::vec(arb_item(), 1..10),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes = frames.concat();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let whole = run_frames(&bytes, &[]);
        prop_assert_eq!(run_frames(&bytes, &cuts), whole.clone());
        let bytewise: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(run_frames(&bytes, &bytewise), whole.clone());
        // Streaming delivery: the same messages once pieces are joined (pieces of a
        // message cut short by the error are dropped), the same error and bytes.
        let (events, error, tx) = run_frames_with(&bytes, &cuts, Delivery::Streaming);
        prop_assert_eq!(join_pieces(events), whole.0);
        prop_assert_eq!(error, whole.1);
        prop_assert_eq!(tx, whole.2);
    }
}

/// Messages larger than the receive buffer, whole and fragmented, text (multibyte) and
/// binary: their payload goes straight from `recv` into the assembled message once the
/// frame header is parsed. Every split must give the same events as one read.
fn large_messages() -> (Vec<u8>, Vec<Event>) {
    let words: String = "grüße, 世界 𝄞 ".repeat(300); // 6,300 bytes; fragments cut mid code point
    let bytes = words.as_bytes();
    let big: Vec<u8> = (0..7_000u32).map(|i| (i * 7).to_le_bytes()[0]).collect();
    let wire = cat(&[
        &masked(true, TEXT, bytes),
        &masked(false, BINARY, &big[..3_001]),
        &masked(true, PING, b"mid"),
        &masked(true, CONT, &big[3_001..]),
        &masked(false, TEXT, &bytes[..1_001]),
        &masked(true, CONT, &bytes[1_001..]),
    ]);
    let events = vec![
        text(&words),
        Event::Ping(b"mid"[..].into()),
        binary(&big),
        text(&words),
    ];
    (wire, events)
}

fn run_large(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<wsengine::Error>, Vec<u8>) {
    run_large_fed(bytes, cuts, feed_split)
}

fn run_large_fed(
    bytes: &[u8],
    cuts: &[usize],
    feed: Feeder,
) -> (Vec<Event>, Option<wsengine::Error>, Vec<u8>) {
    let mut c = config();
    c.recv_buffer_size = 256;
    let mut server = open_server(c);
    let out = feed(&mut server, bytes, cuts);
    (out.events, out.error, take_transmit(&mut server))
}

#[test]
fn large_messages_fed_whole_and_bytewise() {
    let (wire, expected) = large_messages();
    let (events, error, _) = run_large(&wire, &[]);
    assert_eq!(error, None);
    assert_eq!(events, expected);
    let bytewise: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(run_large(&wire, &bytewise), run_large(&wire, &[]));
    // Through `recv_buf`: the payload goes through the receive buffer instead of
    // straight into the message; the same events.
    assert_eq!(
        run_large_fed(&wire, &[], feed_split_recv_buf),
        run_large(&wire, &[])
    );
    assert_eq!(
        run_large_fed(&wire, &bytewise, feed_split_recv_buf),
        run_large(&wire, &[])
    );
}

#[test]
fn invalid_utf8_deep_in_a_large_frame_fails_before_the_frame_ends() {
    let mut payload = "a".repeat(5_000).into_bytes();
    payload[3_000] = 0xFF;
    let wire = masked(true, TEXT, &payload);
    let mut c = config();
    c.recv_buffer_size = 256;
    let mut server = open_server(c);
    // Up to just past the bad byte: the frame is 2,000 bytes short of complete.
    let out = feed_split(&mut server, &wire[..8 + 3_001], &[100, 400, 1_000]);
    assert_eq!(
        out.error,
        Some(wsengine::Error::Protocol(
            wsengine::ProtocolError::InvalidUtf8
        ))
    );
    let frames = take_frames(&mut server);
    assert_eq!(frames.last().and_then(|f| f.close_code()), Some(1007));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_split_of_large_messages_gives_the_same_events(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let (wire, _) = large_messages();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        prop_assert_eq!(run_large(&wire, &cuts), run_large(&wire, &[]));
    }
}
