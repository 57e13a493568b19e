//! permessage-deflate (RFC 7692) through `Connection`: negotiation in both roles,
//! compressed round trips (whole, fragmented, streamed), the RSV1 rules, and the limits
//! on decompressed size.
#![cfg(feature = "deflate")]

use proptest::prelude::*;
use wsengine::extensions::deflate::{DeflateConfig, DeflateParams, DirectionParams};
use wsengine::{Config, Connection, Delivery, Error, Event, MessageKind, ProtocolError};

use crate::support::{
    Pair, binary, config, decode_frames, feed, frame, masked, open_pair_with, open_server,
    take_transmit, text,
};

fn deflating(policy: DeflateConfig) -> Config {
    let mut c = config();
    c.deflate = Some(policy);
    c
}

/// Both sides deflate; returns the pair and the client's transmitted frames of one
/// message for inspection.
fn deflate_pair() -> Pair {
    open_pair_with(
        deflating(DeflateConfig::default()),
        deflating(DeflateConfig::default()),
    )
}

#[test]
fn negotiated_when_both_sides_want_it() {
    let pair = deflate_pair();
    let expected = DeflateParams::default();
    assert_eq!(pair.client.deflate_params(), Some(expected));
    assert_eq!(pair.server.deflate_params(), Some(expected));
}

#[test]
fn not_negotiated_when_the_server_does_not_want_it() {
    let pair = open_pair_with(deflating(DeflateConfig::default()), config());
    assert_eq!(pair.client.deflate_params(), None);
    assert_eq!(pair.server.deflate_params(), None);
    // And messages still flow, uncompressed.
    let mut pair = pair;
    pair.client.send_text(&"x".repeat(1000)).unwrap();
    let frames = decode_frames(&take_transmit(&mut pair.client));
    assert_eq!(frames[0].rsv, 0);
}

#[test]
fn compressed_messages_carry_rsv1_and_round_trip() {
    let mut pair = deflate_pair();
    let message = "hello hello hello hello hello hello hello hello ".repeat(20);
    pair.client.send_text(&message).unwrap();
    let wire = take_transmit(&mut pair.client);
    let frames = decode_frames(&wire);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].rsv, 0x40, "RSV1 marks a compressed message");
    assert!(
        frames[0].payload.len() < message.len() / 4,
        "{} bytes",
        frames[0].payload.len()
    );
    let out = feed(&mut pair.server, &wire);
    assert_eq!(out.events, vec![text(&message)]);
    // And back, from the server.
    pair.server.send_binary(message.as_bytes()).unwrap();
    let wire = take_transmit(&mut pair.server);
    assert_eq!(decode_frames(&wire)[0].rsv, 0x40);
    let out = feed(&mut pair.client, &wire);
    assert_eq!(out.events, vec![binary(message.as_bytes())]);
}

#[test]
fn short_messages_and_opt_outs_go_uncompressed() {
    let mut pair = deflate_pair();
    pair.client.send_text("hi").unwrap();
    pair.client
        .send_uncompressed(MessageKind::Text, "x".repeat(500).as_bytes())
        .unwrap();
    let wire = take_transmit(&mut pair.client);
    let frames = decode_frames(&wire);
    assert_eq!(frames.iter().map(|f| f.rsv).collect::<Vec<_>>(), vec![0, 0]);
    let out = feed(&mut pair.server, &wire);
    assert_eq!(out.events, vec![text("hi"), text(&"x".repeat(500))]);
}

#[test]
fn fragmented_compressed_send_sets_rsv1_on_the_first_frame_only() {
    let mut pair = deflate_pair();
    let parts = [
        "abcabcabc ".repeat(30),
        "defdefdef ".repeat(30),
        "ghighighi".repeat(30),
    ];
    for (i, p) in parts.iter().enumerate() {
        pair.client
            .send_fragment(MessageKind::Text, p.as_bytes(), i == parts.len() - 1)
            .unwrap();
    }
    let wire = take_transmit(&mut pair.client);
    let frames = decode_frames(&wire);
    assert_eq!(
        frames.iter().map(|f| f.rsv).collect::<Vec<_>>(),
        vec![0x40, 0, 0]
    );
    let out = feed(&mut pair.server, &wire);
    assert_eq!(out.events, vec![text(&parts.concat())]);
}

#[test]
fn many_messages_with_context_takeover_and_without() {
    for policy in [DeflateConfig::default(), DeflateConfig::low_memory()] {
        let mut pair = open_pair_with(deflating(policy.clone()), deflating(policy));
        let messages: Vec<String> = (0..50)
            .map(|i| format!("message number {i} ").repeat(i % 7 + 3))
            .collect();
        for m in &messages {
            pair.client.send_text(m).unwrap();
            pair.server.send_text(m).unwrap();
        }
        pair.drive();
        let (client_events, server_events) = pair.take_events();
        let expected: Vec<Event> = messages.iter().map(|m| text(m)).collect();
        assert_eq!(server_events, expected);
        assert_eq!(client_events, expected);
    }
}

#[test]
fn streaming_delivery_inflates_piece_by_piece() {
    let mut server_config = deflating(DeflateConfig::default());
    server_config.delivery = Delivery::Streaming;
    let mut pair = open_pair_with(deflating(DeflateConfig::default()), server_config);
    pair.read_size = 7;
    let message = "κόσμε 😀 streaming ".repeat(200);
    pair.client.send_text(&message).unwrap();
    pair.drive();
    let (_, events) = pair.take_events();
    let mut got = String::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Text { data, last } => {
                got.push_str(data.as_str());
                assert_eq!(*last, i + 1 == events.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, message);
}

/// A server that negotiated deflate (as `open_server` does with the offer in the request).
fn deflate_server(policy_limit: u64) -> Connection {
    let mut c = deflating(DeflateConfig::default());
    c.max_message_size = policy_limit;
    c.max_frame_size = policy_limit;
    deflate_server_with(c)
}

/// A server with `c` (which has a deflate policy) that negotiated deflate.
fn deflate_server_with(c: Config) -> Connection {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    let mut server = Connection::server(c, crate::support::t0());
    let out = crate::support::feed_pieces_with(&mut server, [&request[..]], false);
    assert!(
        matches!(out.events.as_slice(), [Event::Request(_)]),
        "{out:?}"
    );
    server.accept(wsengine::Accept::new()).unwrap();
    let head = String::from_utf8(take_transmit(&mut server)).unwrap();
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{head}"
    );
    server
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    // Compress with a client-side connection's own compressor: a pair carries it.
    let params = DeflateParams::default();
    let mut compressor = params.compressor(wsengine::Role::Client, &DeflateConfig::default());
    let mut out = Vec::new();
    assert!(compressor.compress_message(data, &mut out));
    out
}

#[test]
fn decompression_bomb_fails_with_1009_before_memory_grows() {
    let mut server = deflate_server(1 << 20);
    let bomb = raw_deflate(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    let mut frame = masked(true, 2, &bomb);
    frame[0] |= 0x40;
    let out = feed(&mut server, &frame);
    match out.error {
        Some(Error::Protocol(e @ ProtocolError::MessageTooBig { .. })) => {
            assert_eq!(e.close_code().0, 1009);
        }
        other => panic!("expected MessageTooBig, got {other:?}"),
    }
    let frames = decode_frames(&take_transmit(&mut server));
    assert_eq!(frames[0].close_code(), Some(1009));
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let mut server = deflate_server(1 << 20);
    let mut frame = masked(true, 1, &[0xff, 0xff, 0xff, 0xff, 0x00]);
    frame[0] |= 0x40;
    let out = feed(&mut server, &frame);
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::InvalidCompressedData))
    );
    let frames = decode_frames(&take_transmit(&mut server));
    assert_eq!(frames[0].close_code(), Some(1007));
}

#[test]
fn invalid_utf8_inside_compressed_text_fails_with_1007() {
    let mut server = deflate_server(1 << 20);
    let mut frame = masked(
        true,
        1,
        &raw_deflate(b"valid text, valid text, valid text, then \xff invalid"),
    );
    frame[0] |= 0x40;
    let out = feed(&mut server, &frame);
    assert_eq!(out.error, Some(Error::Protocol(ProtocolError::InvalidUtf8)));
}

#[test]
fn rsv1_on_a_continuation_frame_is_a_protocol_error() {
    let mut server = deflate_server(1 << 20);
    let mut second = masked(true, 0, b"x");
    second[0] |= 0x40;
    let stream = [masked(false, 2, b"a"), second].concat();
    let out = feed(&mut server, &stream);
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::MisplacedCompressionBit))
    );
    assert_eq!(
        decode_frames(&take_transmit(&mut server))[0].close_code(),
        Some(1002)
    );
}

#[test]
fn rsv1_on_a_control_frame_is_a_protocol_error() {
    let mut server = deflate_server(1 << 20);
    let mut ping = masked(true, 9, b"x");
    ping[0] |= 0x40;
    let out = feed(&mut server, &ping);
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::MisplacedCompressionBit))
    );
}

#[test]
fn rsv1_without_negotiation_is_a_protocol_error() {
    let mut server = open_server(config());
    let mut frame = masked(
        true,
        1,
        &raw_deflate(b"hello hello hello hello hello hello"),
    );
    frame[0] |= 0x40;
    let out = feed(&mut server, &frame);
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::ReservedBits(0x40)))
    );
}

#[test]
fn client_fails_the_handshake_on_an_answer_it_did_not_offer() {
    let mut pair = Pair::new(deflating(DeflateConfig::default()), config());
    pair.auto_accept = false;
    pair.drive();
    let (_, server_events) = pair.take_events();
    assert!(matches!(server_events.as_slice(), [Event::Request(_)]));
    // The server (without deflate configured) answers with a window the client never
    // allowed: server_max_window_bits=16 is out of range.
    pair.server
        .accept(wsengine::Accept::new().header(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=16",
        ))
        .unwrap();
    pair.drive();
    assert!(
        matches!(pair.client_out.error, Some(Error::Handshake(_))),
        "{:?}",
        pair.client_out.error
    );
}

#[test]
fn upgraded_with_negotiated_deflate_params() {
    let params = DeflateParams {
        client: DirectionParams {
            max_window_bits: 10,
            no_context_takeover: true,
        },
        server: DirectionParams {
            max_window_bits: 12,
            no_context_takeover: false,
        },
    };
    let now = crate::support::t0();
    let negotiated = wsengine::Negotiated::default().deflate(params);
    let mut client =
        Connection::upgraded(wsengine::Role::Client, config(), now, negotiated.clone()).unwrap();
    let mut server =
        Connection::upgraded(wsengine::Role::Server, config(), now, negotiated).unwrap();
    let message = "after the handshake, compressed ".repeat(40);
    client.send_text(&message).unwrap();
    let wire = take_transmit(&mut client);
    assert_eq!(decode_frames(&wire)[0].rsv, 0x40);
    assert_eq!(feed(&mut server, &wire).events, vec![text(&message)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn compressed_round_trip_any_messages_any_chunking(
        messages in proptest::collection::vec(
            prop_oneof![
                "[a-z ]{0,300}".prop_map(|s| (true, s.into_bytes())),
                proptest::collection::vec(0u8..4, 0..600).prop_map(|b| (false, b)),
            ],
            1..12,
        ),
        read_size in 1usize..200,
        low_memory in any::<bool>(),
        client_bits in 9u8..=15,
    ) {
        let mut policy = if low_memory { DeflateConfig::low_memory() } else { DeflateConfig::default() };
        policy.client_max_window_bits = Some(client_bits);
        let mut pair = open_pair_with(deflating(policy.clone()), deflating(policy));
        pair.read_size = read_size;
        for (is_text, m) in &messages {
            if *is_text {
                pair.client.send_text(std::str::from_utf8(m).unwrap()).unwrap();
            } else {
                pair.client.send_binary(m).unwrap();
            }
        }
        pair.drive();
        let (_, events) = pair.take_events();
        let expected: Vec<Event> = messages
            .iter()
            .map(|(is_text, m)| if *is_text { text(std::str::from_utf8(m).unwrap()) } else { binary(m) })
            .collect();
        prop_assert_eq!(events, expected);
    }
}

// ---- limits of issue 14: inflated size, compressing large messages, pinning ----

/// A compressed frame from a client: RSV1 set, masked.
fn compressed_frame(fin: bool, opcode: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = masked(fin, opcode, data);
    frame[0] |= 0x40;
    frame
}

#[test]
fn inflated_size_has_its_own_smaller_limit_and_error() {
    // The plain limit stays 16 MiB; the inflated one is 1 MiB by default.
    let mut server = deflate_server_with(deflating(DeflateConfig::default()));
    assert_eq!(DeflateConfig::default().max_inflated_size, 1 << 20);
    let bomb = raw_deflate(&vec![0u8; 2 << 20]);
    let out = feed(&mut server, &compressed_frame(true, 2, &bomb));
    let expected = ProtocolError::InflatedTooBig { max: 1 << 20 };
    assert_eq!(out.error, Some(Error::Protocol(expected)));
    assert_eq!(expected.close_code().0, 1009);
    let frames = decode_frames(&take_transmit(&mut server));
    assert_eq!(frames[0].close_code(), Some(1009));

    // Exactly at the limit passes; the limit is configurable.
    let mut server = deflate_server_with(deflating(DeflateConfig::default()));
    let at_limit = raw_deflate(&vec![1u8; 1 << 20]);
    let out = feed(&mut server, &compressed_frame(true, 2, &at_limit));
    assert_eq!(out.error, None);
    assert!(matches!(&out.events[..], [Event::Binary { data, .. }] if data.len() == 1 << 20));
    let mut policy = DeflateConfig::default();
    policy.max_inflated_size = 4 << 20;
    let mut server = deflate_server_with(deflating(policy));
    let out = feed(&mut server, &compressed_frame(true, 2, &bomb));
    assert_eq!(out.error, None);
}

#[test]
fn messages_above_max_compress_size_go_uncompressed() {
    let mut policy = DeflateConfig::default();
    policy.max_compress_size = 64 << 10;
    let mut pair = open_pair_with(deflating(DeflateConfig::default()), deflating(policy));
    let at_limit = vec![b'a'; 64 << 10];
    let above = vec![b'a'; (64 << 10) + 1];
    pair.server.send_binary(&at_limit).unwrap();
    pair.server
        .send(wsengine::Message::Binary(above.clone().into()))
        .unwrap();
    // Fragmented: the first fragment decides for the whole message.
    pair.server
        .send_fragment(MessageKind::Binary, &above, false)
        .unwrap();
    pair.server
        .send_fragment(MessageKind::Binary, b"tail", true)
        .unwrap();
    pair.server
        .send_fragment(MessageKind::Binary, &at_limit, false)
        .unwrap();
    pair.server
        .send_fragment(MessageKind::Binary, b"tail", true)
        .unwrap();
    let frames = decode_frames(&take_transmit(&mut pair.server));
    let rsv1: Vec<bool> = frames.iter().map(|f| f.rsv & 0x40 != 0).collect();
    assert_eq!(rsv1, [true, false, false, false, true, false]);
    assert!(frames[0].payload.len() < 1000, "compressed");
    assert_eq!(frames[1].payload, above, "sent as it is");
    // And the client reads them all.
    let mut wire = Vec::new();
    for f in &frames {
        let mut raw = frame(f.fin, f.opcode.bits(), None, &f.payload);
        raw[0] |= f.rsv;
        wire.extend(raw);
    }
    let out = feed(&mut pair.client, &wire);
    assert_eq!(out.error, None);
    let sizes: Vec<usize> = out
        .events
        .iter()
        .map(|e| match e {
            Event::Binary { data, .. } => data.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sizes,
        [64 << 10, (64 << 10) + 1, (64 << 10) + 5, (64 << 10) + 4]
    );
}

/// Compressed-fragment pinning: one compressed fragment with FIN clear that inflates
/// to a lot, then only Pings. The message timeout ends it, and the inflated bytes are
/// not held past the failure.
#[test]
fn a_pinned_compressed_fragment_is_ended_by_the_message_timeout() {
    use std::time::Duration;
    use wsengine::Timeout;
    let mut server = deflate_server_with(deflating(DeflateConfig::default()));
    let mut compressor =
        DeflateParams::default().compressor(wsengine::Role::Client, &DeflateConfig::default());
    let mut piece = Vec::new();
    compressor
        .compress_fragment(&vec![0u8; 1 << 20], false, &mut piece)
        .unwrap();
    let out = feed(&mut server, &compressed_frame(false, 2, &piece));
    assert_eq!((out.error, out.events), (None, vec![]));
    assert!(
        server.buffered_bytes() >= 1 << 20,
        "the inflated fragment is held"
    );
    let t0 = crate::support::t0();
    server.handle_timeout(t0);
    for s in (5..30).step_by(5) {
        server.handle_timeout(t0 + Duration::from_secs(s));
        let out = feed(&mut server, &masked(true, 9, b"still here"));
        assert_eq!(out.error, None);
    }
    server.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Message)));
    assert!(
        server.buffered_bytes() < 4096,
        "{} bytes held after the failure",
        server.buffered_bytes()
    );
    let frames = decode_frames(&take_transmit(&mut server));
    assert_eq!(frames.last().and_then(|f| f.close_code()), Some(1008));
}

/// `max_inflate_rate`: a burst of compressed messages that inflate to 5 MiB, against a
/// limit of 1 MiB/s, is delivered over seconds of the fake clock (a second's worth at
/// once), with nothing lost and the receive side paused in between.
#[test]
fn the_inflation_rate_is_bounded() {
    use std::time::Duration;
    let mut policy = DeflateConfig::default();
    policy.max_inflate_rate = Some(1 << 20);
    let mut server = deflate_server_with(deflating(policy));
    let message = raw_deflate(&vec![3u8; 512 << 10]);
    let wire: Vec<u8> = (0..10)
        .flat_map(|_| compressed_frame(true, 2, &message))
        .collect();
    let t0 = crate::support::t0();
    server.handle_timeout(t0);
    let mut now = t0;
    let mut delivered = Vec::new();
    let mut rest = &wire[..];
    for _ in 0..10_000 {
        let n = server.recv(rest);
        rest = &rest[n..];
        while let Some(event) = server.poll_event().unwrap() {
            assert!(matches!(&event, Event::Binary { data, .. } if data.len() == 512 << 10));
            delivered.push(now);
        }
        if delivered.len() == 10 {
            break;
        }
        // Paused: a deadline says when to go on (timers started lazily are due at
        // once, as `poll_timeout` says; a host then calls `handle_timeout` at once).
        let next = server.poll_timeout().expect("a deadline while paused");
        now = now.max(next);
        server.handle_timeout(now);
    }
    assert_eq!(delivered.len(), 10);
    let at_once = delivered.iter().filter(|&&t| t == t0).count();
    assert_eq!(at_once, 2, "one second's worth at once");
    // 5 MiB at 1 MiB/s: one second's worth at once, and a message is taken whenever
    // the budget is above zero (its output may overdraw it by one message), so the rest
    // takes (5 - 1 - 0.5) MiB / (1 MiB/s).
    let took = *delivered.last().unwrap() - t0;
    assert!(
        took >= Duration::from_millis(3_500) && took < Duration::from_millis(3_600),
        "{took:?}"
    );

    // Without the limit all ten arrive at once.
    let mut server = deflate_server_with(deflating(DeflateConfig::default()));
    let out = feed(&mut server, &wire);
    assert_eq!((out.error, out.events.len()), (None, 10));
}

/// The peer ends its stream while inflating is paused: what arrived is still delivered
/// once the budget allows, and only then does the connection end (1006).
#[test]
fn end_of_stream_while_inflating_is_paused_loses_nothing() {
    let mut policy = DeflateConfig::default();
    policy.max_inflate_rate = Some(1 << 20);
    let mut server = deflate_server_with(deflating(policy));
    let message = raw_deflate(&vec![3u8; 512 << 10]);
    let wire: Vec<u8> = (0..4)
        .flat_map(|_| compressed_frame(true, 2, &message))
        .collect();
    let mut now = crate::support::t0();
    server.handle_timeout(now);
    assert_eq!(server.recv(&wire), wire.len());
    server.recv_eof();
    let mut messages = 0;
    let mut closed = None;
    for _ in 0..1_000 {
        while let Some(event) = server.poll_event().unwrap() {
            match event {
                Event::Binary { .. } => messages += 1,
                Event::Closed { code, .. } => closed = Some(code.0),
                other => panic!("{other:?}"),
            }
        }
        if closed.is_some() {
            break;
        }
        now = now.max(server.poll_timeout().expect("paused"));
        server.handle_timeout(now);
    }
    assert_eq!((messages, closed), (4, Some(1006)));
}
