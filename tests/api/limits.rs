//! Bounded memory seen from outside: the send buffer under a ping flood, `recv` never
//! taking more than `recv_capacity`, and `SendError::Blocked` back-pressure.

use bytes::Bytes;
use wsengine::Message;
use wsengine::frame::MAX_HEADER_LEN;
use wsengine::{CloseCode, Config, Connection, Delivery, Event, OpCode, SendError};

use crate::support::*;

/// A Pong with the largest payload: 2 header bytes and 125 of payload.
const LARGEST_PONG: usize = 2 + 125;

#[test]
fn ping_flood_to_a_peer_that_never_reads_keeps_the_send_buffer_bounded() {
    let mut c = config();
    c.max_send_buffer = 4096;
    let mut server = open_server(c);
    let mut input = Vec::new();
    for i in 0..5_000u32 {
        let mut payload = vec![b'x'; 121];
        payload.extend_from_slice(&i.to_be_bytes());
        input.extend_from_slice(&masked(true, PING, &payload));
    }
    let mut pings = 0;
    let mut largest = 0;
    for chunk in input.chunks(1000) {
        let out = feed(&mut server, chunk);
        assert_eq!(out.error, None);
        pings += out.events.len();
        // Look at the buffer without draining it: at most 16 Pongs wait, whatever the
        // send limit (§5.5.3: later Pings replace the one still to answer).
        largest = largest.max(server.poll_transmit().len());
        assert!(
            largest <= 16 * LARGEST_PONG,
            "send buffer grew to {largest} bytes"
        );
    }
    assert_eq!(pings, 5_000, "every Ping is still reported");
    assert!(largest > 0, "the first Ping is answered at once");
    // Draining: the first 16 Pongs, then the latest Ping's answer (§5.5.3).
    let frames = take_frames(&mut server);
    assert!(frames.iter().all(|f| f.opcode == OpCode::Pong));
    let last = frames.last().expect("pongs");
    assert_eq!(
        &last.payload[121..],
        &4_999u32.to_be_bytes(),
        "the latest Ping is answered"
    );
    assert_eq!(frames.len(), 17, "{} pongs were queued", frames.len());
    assert!(!server.wants_write());
}

#[test]
fn recv_never_takes_more_than_recv_capacity() {
    let mut c = config();
    c.recv_buffer_size = 256;
    let mut server = open_server(c);
    // The configured size plus one frame header.
    let limit = 256 + MAX_HEADER_LEN;
    assert_eq!(server.recv_capacity(), limit);
    let payload: Vec<u8> = (0..10_000u32).map(|i| i.to_le_bytes()[0]).collect();
    let input = cat(&[
        &masked(true, BINARY, &payload),
        &masked(true, TEXT, b"after"),
    ]);
    let mut rest = input.as_slice();
    let mut events = Vec::new();
    while !rest.is_empty() {
        let cap = server.recv_capacity();
        // The receive buffer holds at most 256 bytes plus a header; beyond that `recv`
        // only takes the rest of a frame being assembled, which goes straight into the
        // message (bounded by the frame's announced length, itself bounded by
        // `max_message_size`).
        assert!(cap <= limit + payload.len(), "capacity {cap}");
        let taken = server.recv(rest);
        assert!(taken <= cap, "took {taken} with capacity {cap}");
        rest = &rest[taken..];
        while let Some(e) = server.poll_event().unwrap() {
            events.push(e);
        }
    }
    assert_eq!(events, [binary(&payload), text("after")]);
}

#[test]
fn recv_takes_nothing_while_the_buffer_is_full() {
    let mut c = config();
    c.recv_buffer_size = 256;
    let mut server = open_server(c);
    let input = masked(true, BINARY, &[7; 5_000]);
    let limit = 256 + MAX_HEADER_LEN;
    assert_eq!(server.recv(&input), limit);
    assert_eq!(server.recv_capacity(), 0);
    assert_eq!(
        server.recv(&input[limit..]),
        0,
        "no room until poll_event drains"
    );
    assert_eq!(server.poll_event(), Ok(None), "the message is not complete");
    assert!(server.recv_capacity() > 0, "poll_event made room");
}

#[test]
fn receive_buffer_below_the_minimum_is_raised() {
    let mut c = config();
    c.recv_buffer_size = 10;
    let mut server = open_server(c);
    assert_eq!(
        server.recv_capacity(),
        Config::MIN_RECV_BUFFER + MAX_HEADER_LEN
    );
    // A control frame always fits whole.
    let out = feed(&mut server, &masked(true, PING, &[1; 125]));
    assert_eq!(out.events, [Event::Ping(vec![1; 125].into())]);
}

/// Streaming delivery hands a large message on in pieces no larger than the receive
/// buffer (its configured size plus a frame header), so it passes in bounded memory.
#[test]
fn streaming_pieces_are_bounded_by_the_receive_buffer() {
    let mut c = config();
    c.recv_buffer_size = 1024;
    c.delivery = Delivery::Streaming;
    let mut server = open_server(c);
    let payload = vec![b'a'; 1 << 20];
    let input = masked(true, TEXT, &payload);
    let out = feed(&mut server, &input);
    assert_eq!(out.error, None);
    let mut total = 0;
    for (i, e) in out.events.iter().enumerate() {
        let Event::Text { data, last } = e else {
            panic!("unexpected {e:?}");
        };
        assert!(
            data.len() <= 1024 + MAX_HEADER_LEN,
            "piece {i} holds {} bytes",
            data.len()
        );
        assert_eq!(*last, i + 1 == out.events.len());
        total += data.len();
    }
    assert_eq!(total, payload.len());
}

#[test]
fn send_is_blocked_over_max_send_buffer_and_resumes_after_draining() {
    let mut c = config();
    c.max_send_buffer = 1000;
    let mut server = open_server(c);
    let text600 = "a".repeat(600);
    server.send_text(&text600).unwrap();
    server.send_text(&text600).unwrap(); // accepted: less than 1000 bytes waited
    assert!(server.poll_transmit().len() >= 1000);
    assert_eq!(server.send_text("x"), Err(SendError::Blocked));
    assert_eq!(server.send_binary(b"x"), Err(SendError::Blocked));
    assert_eq!(
        server.send(Message::Ping(Bytes::copy_from_slice(b"x"))),
        Err(SendError::Blocked)
    );
    assert_eq!(
        server.send_fragment(wsengine::MessageKind::Text, b"x", false),
        Err(SendError::Blocked)
    );
    assert!(server.wants_write());
    // A blocked send queues nothing.
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 2);
    assert!(!server.wants_write());
    server.send_text("x").unwrap();
    assert_eq!(take_frames(&mut server).len(), 1);
}

#[test]
fn a_partial_drain_unblocks_once_under_the_limit() {
    let mut c = config();
    c.max_send_buffer = 1000;
    let mut server = open_server(c);
    server.send_binary(&[0; 1500]).unwrap(); // alone, larger than the limit
    assert_eq!(server.send_binary(b"x"), Err(SendError::Blocked));
    server.advance_transmit(400);
    assert_eq!(
        server.send_binary(b"x"),
        Err(SendError::Blocked),
        "1104 bytes wait"
    );
    server.advance_transmit(200);
    server.send_binary(b"x").unwrap();
}

#[test]
fn close_is_accepted_when_the_send_buffer_is_full() {
    let mut c = config();
    c.max_send_buffer = 100;
    let mut server = open_server(c);
    server.send_binary(&[0; 200]).unwrap();
    assert_eq!(server.send_binary(b"x"), Err(SendError::Blocked));
    server.close(CloseCode::NORMAL, "").unwrap();
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].close_code(), Some(1000));
}

/// The Close sent for a protocol error goes out even when the send buffer is full.
#[test]
fn protocol_error_close_goes_out_when_the_send_buffer_is_full() {
    let mut c = config();
    c.max_send_buffer = 100;
    let mut server = open_server(c);
    server.send_binary(&[0; 200]).unwrap();
    let out = feed(&mut server, &unmasked(true, TEXT, b"bad"));
    assert!(out.error.is_some());
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].close_code(), Some(1002));
}

#[test]
fn control_payload_over_125_bytes_is_refused() {
    let mut server = open_server(config());
    assert_eq!(
        server.send(Message::Ping(Bytes::copy_from_slice(&[0; 126]))),
        Err(SendError::ControlTooLong)
    );
    assert_eq!(
        server.send(Message::Pong(Bytes::copy_from_slice(&[0; 126]))),
        Err(SendError::ControlTooLong)
    );
    assert!(take_transmit(&mut server).is_empty());
}

#[test]
fn fragmented_send_rules() {
    use wsengine::MessageKind::{Binary, Text};
    let mut client = open_client(config());
    // A message in one fragment.
    client.send_fragment(Text, b"x", true).unwrap();
    client.send_fragment(Text, b"\xE2\x82", false).unwrap();
    assert_eq!(client.send_text("x"), Err(SendError::MessageInProgress));
    assert_eq!(
        client.send_fragment(Binary, b"x", false),
        Err(SendError::MessageInProgress)
    );
    assert_eq!(
        client.send_fragment(Text, b"\xFF", true),
        Err(SendError::InvalidUtf8)
    );
    assert_eq!(
        client.send_fragment(Text, b"", true),
        Err(SendError::InvalidUtf8),
        "ending inside a code point"
    );
    client.send_fragment(Text, b"\xAC", true).unwrap();
    let frames = take_frames(&mut client);
    let summary: Vec<_> = frames
        .iter()
        .map(|f| (f.fin, f.opcode, f.payload.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (true, OpCode::Text, b"x".to_vec()),
            (false, OpCode::Text, b"\xE2\x82".to_vec()),
            (true, OpCode::Continuation, b"\xAC".to_vec()),
        ]
    );
    assert!(frames.iter().all(|f| f.mask.is_some()));
}

#[test]
fn client_uses_a_fresh_mask_per_frame() {
    let mut client = open_client(config());
    for _ in 0..8 {
        client.send_text("same").unwrap();
    }
    let frames = take_frames(&mut client);
    let mut keys: Vec<[u8; 4]> = frames.iter().map(|f| f.mask.unwrap()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert!(keys.len() >= 7, "masking keys repeat: {keys:02x?}");
}

#[test]
fn fixed_seed_gives_the_same_bytes() {
    let run = || {
        let mut client = Connection::client(client_request(), config(), t0()).unwrap();
        let head = take_transmit(&mut client);
        let (h, _) = split_head(&head);
        feed(&mut client, &response_to(&h));
        client.send_text("Hello").unwrap();
        (head.clone(), take_transmit(&mut client))
    };
    assert_eq!(run(), run());
}

/// `wants_write()` tells a driver to wait for the socket to become writable; it must
/// never be true while `poll_transmit()` has nothing to write, or the driver spins.
#[test]
fn wants_write_agrees_with_poll_transmit() {
    for max_send_buffer in [1, 200, 4096] {
        check_wants_write(max_send_buffer);
    }
}

/// BUG (reported): with `max_send_buffer = 0` an automatic Pong can never leave
/// `pending_pong` (it is flushed only while fewer than `max_send_buffer` bytes wait), so
/// `wants_write()` stays true while `poll_transmit()` is empty: a driver that registers
/// write interest from `wants_write()` spins, and the Ping is never answered.
#[test]
fn wants_write_agrees_with_poll_transmit_with_a_zero_send_buffer() {
    check_wants_write(0);
}

fn check_wants_write(max_send_buffer: usize) {
    let mut c = config();
    c.max_send_buffer = max_send_buffer;
    let mut server = open_server(c);
    for i in 0..50u8 {
        let out = feed(&mut server, &masked(true, PING, &[i; 100]));
        assert_eq!(out.error, None);
        let wants = server.wants_write();
        let pending = server.poll_transmit().len();
        assert_eq!(
            wants,
            pending > 0,
            "max_send_buffer {max_send_buffer}, ping {i}: wants_write() is {wants} \
             with {pending} bytes to transmit"
        );
        // Write half of what is there, as a slow socket would.
        server.advance_transmit(pending / 2);
    }
}
