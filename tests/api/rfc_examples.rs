//! The examples of RFC 6455: the §1.2/§1.3 opening handshake and every frame of §5.7,
//! each fed three ways: whole, one byte at a time, and with trailing bytes (a following
//! frame that yields its own event, and the start of one that must wait).

use bytes::Bytes;
use wsengine::Message;
use wsengine::handshake::accept_key;
use wsengine::{Accept, Config, Connection, Delivery, Event, OpCode, State};

use crate::support::vectors::{
    RFC_FRAGMENTED_HELLO, RFC_MASKED_HELLO, RFC_MASKED_PONG, RFC_UNMASKED_HELLO, RFC_UNMASKED_PING,
};
use crate::support::*;

/// "256 bytes binary message in a single unmasked frame": the 16-bit length form.
fn binary_256() -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..256u32).map(|i| (i * 7 + 1).to_le_bytes()[0]).collect();
    (cat(&[&[0x82, 0x7E, 0x01, 0x00], &payload]), payload)
}

/// "64KiB binary message in a single unmasked frame": the 64-bit length form.
fn binary_64k() -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251).to_le_bytes()[0]).collect();
    let head = [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
    (cat(&[&head, &payload]), payload)
}

/// Feeds `fixture` to fresh connections from `make` three ways and checks the events:
///
/// 1. whole;
/// 2. one byte per read (and, for good measure, three);
/// 3. with trailing bytes: a whole frame `next` after it (its event `next_event` follows),
///    and, separately, the first two bytes of `next` (no event, no error: they wait, and
///    the rest of `next` completes them).
fn three_ways(
    make: &dyn Fn() -> Connection,
    fixture: &[u8],
    expected: &[Event],
    next: &[u8],
    next_event: &Event,
) {
    let mut conn = make();
    let out = feed(&mut conn, fixture);
    assert_eq!(out.error, None, "whole");
    assert_eq!(out.events, expected, "whole");

    let mut conn = make();
    let out = feed_bytewise(&mut conn, fixture);
    assert_eq!(out.error, None, "one byte at a time");
    assert_eq!(out.events, expected, "one byte at a time");

    let mut conn = make();
    let out = feed_chunked(&mut conn, fixture, 3);
    assert_eq!(out.error, None, "three bytes at a time");
    assert_eq!(out.events, expected, "three bytes at a time");

    let mut conn = make();
    let out = feed(&mut conn, &cat(&[fixture, next]));
    assert_eq!(out.error, None, "with a following frame");
    let mut with_next = expected.to_vec();
    with_next.push(next_event.clone());
    assert_eq!(out.events, with_next, "with a following frame");

    let mut conn = make();
    let out = feed(&mut conn, &cat(&[fixture, &next[..2]]));
    assert_eq!(out.error, None, "with the start of a following frame");
    assert_eq!(out.events, expected, "with the start of a following frame");
    let out = feed(&mut conn, &next[2..]);
    assert_eq!(out.error, None, "the rest of the following frame");
    assert_eq!(
        out.events,
        std::slice::from_ref(next_event),
        "the rest of the following frame"
    );
}

fn client() -> Connection {
    open_client(config())
}

fn server() -> Connection {
    open_server(config())
}

/// What follows a fixture sent to a client: an unmasked "next".
fn next_to_client() -> (Vec<u8>, Event) {
    (unmasked(true, TEXT, b"next"), text("next"))
}

/// What follows a fixture sent to a server: a masked "next".
fn next_to_server() -> (Vec<u8>, Event) {
    (masked(true, TEXT, b"next"), text("next"))
}

// ---- §1.2 / §1.3: the opening handshake ----

#[test]
fn rfc_1_3_accept_key_of_the_sample_nonce() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// Feeds the §1.2 request in `pieces`, accepts "chat", and checks the request and the
/// response.
fn sample_handshake<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) {
    let mut server = Connection::server(config(), t0());
    // The test answers the request itself, choosing a subprotocol.
    let out = feed_pieces_with(&mut server, pieces, false);
    assert_eq!(out.error, None);
    let [Event::Request(request)] = out.events.as_slice() else {
        panic!("expected one request, got {:?}", out.events);
    };
    assert_eq!(request.method(), "GET");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.host(), "server.example.com");
    assert_eq!(request.origin(), Some("http://example.com"));
    assert_eq!(request.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(request.protocols(), ["chat", "superchat"]);
    assert_eq!(server.state(), State::Handshake);
    assert!(!server.wants_write(), "nothing goes out before accept");

    server.accept(Accept::new().protocol("chat")).unwrap();
    assert_eq!(server.state(), State::Open);
    let tx = take_transmit(&mut server);
    let (head, rest) = split_head(&tx);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert_eq!(head_header(&head, "Upgrade"), Some("websocket"));
    assert_eq!(head_header(&head, "Connection"), Some("Upgrade"));
    assert_eq!(head_header(&head, "Sec-WebSocket-Protocol"), Some("chat"));
    assert!(rest.is_empty());
}

#[test]
fn rfc_1_3_sample_handshake_is_accepted_with_the_sample_accept_key() {
    sample_handshake([RFC_REQUEST]);
}

#[test]
fn rfc_1_3_sample_handshake_one_byte_at_a_time() {
    sample_handshake(RFC_REQUEST.chunks(1));
}

/// The §1.2 request fed three ways; a frame that arrives with the request is kept for
/// after the accept (ARCHITECTURE: "never drop them").
#[test]
fn rfc_1_2_sample_request_three_ways() {
    for (name, pieces) in [
        ("whole", vec![RFC_REQUEST.to_vec()]),
        (
            "one byte at a time",
            RFC_REQUEST.iter().map(|&b| vec![b]).collect(),
        ),
    ] {
        let mut server = Connection::server(config(), t0());
        let out = feed_pieces(&mut server, pieces.iter().map(Vec::as_slice));
        assert_eq!(out.error, None, "{name}");
        assert!(
            matches!(out.events.as_slice(), [Event::Request(r)] if r.key() == "dGhlIHNhbXBsZSBub25jZQ=="),
            "{name}: {:?}",
            out.events
        );
    }

    // With trailing bytes: the client's first frame arrives in the same read.
    let mut server = Connection::server(config(), t0());
    let out = feed(&mut server, &cat(&[RFC_REQUEST, RFC_MASKED_HELLO]));
    assert_eq!(out.error, None);
    assert!(
        matches!(out.events.as_slice(), [Event::Request(_), e] if *e == text("Hello")),
        "{:?}",
        out.events
    );
    let tx = take_transmit(&mut server);
    let (head, rest) = split_head(&tx);
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert!(rest.is_empty());
}

/// Without `accept`, frames that came with the request are not processed: the request
/// waits for an answer and the frame for the accept.
#[test]
fn frames_after_the_request_wait_for_accept() {
    let mut server = Connection::server(config(), t0());
    server.recv(&cat(&[RFC_REQUEST, RFC_MASKED_HELLO]));
    assert!(matches!(server.poll_event(), Ok(Some(Event::Request(_)))));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.poll_event(), Ok(None));
    server.accept(Accept::new()).unwrap();
    assert_eq!(server.poll_event(), Ok(Some(text("Hello"))));
    assert_eq!(server.poll_event(), Ok(None));
}

// ---- §5.7: the example frames ----

#[test]
fn rfc_5_7_single_frame_unmasked_text_to_a_client() {
    let (next, next_event) = next_to_client();
    three_ways(
        &client,
        RFC_UNMASKED_HELLO,
        &[text("Hello")],
        &next,
        &next_event,
    );
}

#[test]
fn rfc_5_7_single_frame_masked_text_to_a_server() {
    let (next, next_event) = next_to_server();
    three_ways(
        &server,
        RFC_MASKED_HELLO,
        &[text("Hello")],
        &next,
        &next_event,
    );
}

#[test]
fn rfc_5_7_fragmented_unmasked_text_to_a_client() {
    let (next, next_event) = next_to_client();
    three_ways(
        &client,
        RFC_FRAGMENTED_HELLO,
        &[text("Hello")],
        &next,
        &next_event,
    );
}

/// With streaming delivery, fed whole, each fragment is one piece.
#[test]
fn rfc_5_7_fragmented_text_streams_one_piece_per_fragment() {
    let mut c = config();
    c.delivery = Delivery::Streaming;
    let mut client = open_client(c);
    let out = feed(&mut client, RFC_FRAGMENTED_HELLO);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        [
            Event::Text {
                data: "Hel".into(),
                last: false
            },
            Event::Text {
                data: "lo".into(),
                last: true
            },
        ]
    );
}

#[test]
fn rfc_5_7_unmasked_ping_to_a_client() {
    let (next, next_event) = next_to_client();
    let ping = Event::Ping(Bytes::from_static(b"Hello"));
    three_ways(&client, RFC_UNMASKED_PING, &[ping], &next, &next_event);
}

/// The client answers the §5.7 Ping with a masked Pong carrying "Hello", like the §5.7
/// "Masked Ping response" (with its own masking key).
#[test]
fn rfc_5_7_ping_is_answered_with_a_masked_pong() {
    let mut client = client();
    let out = feed(&mut client, RFC_UNMASKED_PING);
    assert_eq!(out.events, [Event::Ping(Bytes::from_static(b"Hello"))]);
    let frames = take_frames(&mut client);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let pong = &frames[0];
    assert_eq!((pong.opcode, pong.fin, pong.rsv), (OpCode::Pong, true, 0));
    assert!(pong.mask.is_some(), "a client masks every frame (§5.3)");
    assert_eq!(pong.payload, b"Hello");
}

/// With `auto_pong` off the application answers Pings itself.
#[test]
fn rfc_5_7_ping_without_auto_pong_is_only_reported() {
    let mut c = config();
    c.auto_pong = false;
    let mut client = open_client(c);
    let out = feed(&mut client, RFC_UNMASKED_PING);
    assert_eq!(out.events, [Event::Ping(Bytes::from_static(b"Hello"))]);
    assert!(!client.wants_write());
    client
        .send(Message::Pong(Bytes::copy_from_slice(b"Hello")))
        .unwrap();
    let frames = take_frames(&mut client);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        (frames[0].opcode, &frames[0].payload[..]),
        (OpCode::Pong, &b"Hello"[..])
    );
}

#[test]
fn rfc_5_7_masked_pong_to_a_server() {
    let (next, next_event) = next_to_server();
    let pong = Event::Pong(Bytes::from_static(b"Hello"));
    three_ways(&server, RFC_MASKED_PONG, &[pong], &next, &next_event);
    // A Pong needs no answer.
    let mut server = server();
    feed(&mut server, RFC_MASKED_PONG);
    assert!(take_transmit(&mut server).is_empty());
}

#[test]
fn rfc_5_7_256_byte_binary_uses_the_16_bit_length() {
    let (fixture, payload) = binary_256();
    let (next, next_event) = next_to_client();
    three_ways(&client, &fixture, &[binary(&payload)], &next, &next_event);
}

#[test]
fn rfc_5_7_64_kib_binary_uses_the_64_bit_length() {
    let (fixture, payload) = binary_64k();
    let (next, next_event) = next_to_client();
    three_ways(&client, &fixture, &[binary(&payload)], &next, &next_event);
}

/// The 64 KiB frame is larger than a small receive buffer: whole delivery assembles it.
#[test]
fn rfc_5_7_64_kib_binary_through_a_small_receive_buffer() {
    let (fixture, payload) = binary_64k();
    let mut c = config();
    c.recv_buffer_size = 1000;
    let make = move || open_client(c.clone());
    let (next, next_event) = next_to_client();
    three_ways(&make, &fixture, &[binary(&payload)], &next, &next_event);
}

/// Our own encoder writes the §5.7 frames byte for byte (a server does not mask).
#[test]
fn rfc_5_7_server_encodes_the_example_frames() {
    let mut server = server();
    server.send_text("Hello").unwrap();
    assert_eq!(take_transmit(&mut server), RFC_UNMASKED_HELLO);
    server
        .send_fragment(wsengine::MessageKind::Text, b"Hel", false)
        .unwrap();
    server
        .send_fragment(wsengine::MessageKind::Text, b"lo", true)
        .unwrap();
    assert_eq!(take_transmit(&mut server), RFC_FRAGMENTED_HELLO);
    server
        .send(Message::Ping(Bytes::copy_from_slice(b"Hello")))
        .unwrap();
    assert_eq!(take_transmit(&mut server), RFC_UNMASKED_PING);
    let (fixture, payload) = binary_256();
    server.send_binary(&payload).unwrap();
    assert_eq!(take_transmit(&mut server), fixture);
    let (fixture, payload) = binary_64k();
    server.send_binary(&payload).unwrap();
    assert_eq!(take_transmit(&mut server), fixture);
}

/// A default `Config` is usable as is (no seed: keys from the OS).
#[test]
fn default_config_opens_a_pair() {
    let mut pair = open_pair(Config::default());
    pair.client.send_text("Hello").unwrap();
    pair.drive();
    assert_eq!(pair.server_out.events, [text("Hello")]);
}

// ---- the opening handshake through a pair ----

/// The client's offers reach the server's `Request`, and the server's choice reaches the
/// client's `Response` (§4.1 items 8 and 10, §4.2.2 step 4).
#[test]
fn subprotocol_origin_and_headers_through_a_pair() {
    let mut pair = Pair::new(config(), config());
    pair.client = Connection::client(
        wsengine::ClientRequest::new("ws://server.example.com:8080/chat?room=1")
            .unwrap()
            .origin("http://example.com")
            .protocol("chat")
            .protocol("superchat")
            .header("X-Token", "abc"),
        config(),
        t0(),
    )
    .unwrap();
    pair.auto_accept = false;
    pair.drive();
    let (_, server) = pair.take_events();
    let [Event::Request(request)] = server.as_slice() else {
        panic!("{server:?}");
    };
    assert_eq!(request.path(), "/chat?room=1");
    assert_eq!(request.host(), "server.example.com:8080");
    assert_eq!(request.origin(), Some("http://example.com"));
    assert_eq!(request.protocols(), ["chat", "superchat"]);
    assert_eq!(request.header("x-token"), Some(&b"abc"[..]));
    // Not offered: refused, nothing sent, the request still waits.
    assert_eq!(
        pair.server.accept(Accept::new().protocol("other")),
        Err(wsengine::SendError::ProtocolNotOffered("other".into()))
    );
    assert!(!pair.server.wants_write());
    pair.server
        .accept(Accept::new().protocol("superchat").header("X-Reply", "1"))
        .unwrap();
    assert_eq!(
        pair.server.accept(Accept::new()),
        Err(wsengine::SendError::NoPendingRequest)
    );
    pair.drive();
    let (client, _) = pair.take_events();
    let [Event::Accepted(response)] = client.as_slice() else {
        panic!("{client:?} {:?}", pair.client_out.error);
    };
    assert_eq!(response.status(), 101);
    assert_eq!(response.protocol(), Some("superchat"));
    assert_eq!(response.header("x-reply"), Some(&b"1"[..]));
    assert_eq!(pair.client.state(), State::Open);
}

/// The server's first frames may arrive in the same read as its 101.
#[test]
fn frames_in_the_same_read_as_the_101() {
    for bytewise in [false, true] {
        let mut client = Connection::client(client_request(), config(), t0()).unwrap();
        let tx = take_transmit(&mut client);
        let (head, _) = split_head(&tx);
        let input = cat(&[&response_to(&head), RFC_UNMASKED_HELLO, RFC_UNMASKED_PING]);
        let out = if bytewise {
            feed_bytewise(&mut client, &input)
        } else {
            feed(&mut client, &input)
        };
        assert_eq!(out.error, None);
        assert!(
            matches!(
                out.events.as_slice(),
                [Event::Accepted(_), t, Event::Ping(p)] if *t == text("Hello") && p == "Hello"
            ),
            "{:?}",
            out.events
        );
    }
}

#[test]
fn server_rejects_and_the_client_reports_the_status() {
    let mut pair = Pair::new(config(), config());
    pair.auto_accept = false;
    pair.drive();
    assert!(matches!(
        pair.server_out.events.as_slice(),
        [Event::Request(_)]
    ));
    pair.server
        .reject(wsengine::Reject::new(403).body("not you"))
        .unwrap();
    assert_eq!(pair.server.state(), State::Closed);
    pair.read_size = 5; // the body arrives after the head
    pair.drive();
    assert!(pair.server.should_close_transport());
    match &pair.client_out.error {
        Some(wsengine::Error::Handshake(wsengine::HandshakeError::Rejected(refused))) => {
            assert_eq!(refused.status, 403);
            assert_eq!(&refused.body[..], b"not you");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn client_eof_before_the_response() {
    let mut client = Connection::client(client_request(), config(), t0()).unwrap();
    take_transmit(&mut client);
    let out = feed(&mut client, b"HTTP/1.1 101 Switching");
    assert_eq!((out.error, out.events), (None, vec![]));
    client.recv_eof();
    assert_eq!(
        client.poll_event(),
        Err(wsengine::Error::Handshake(
            wsengine::HandshakeError::UnexpectedEof
        ))
    );
}
