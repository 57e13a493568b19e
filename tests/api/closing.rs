//! The closing handshake (RFC 6455 §5.5.1, §7): from each side, the echo of the peer's
//! code, `Closed` events, who closes the transport, and ends without a Close frame.

use bytes::Bytes;
use std::time::Duration;
use wsengine::Message;

use wsengine::{CloseCode, CloseFrame, Event, MessageKind, OpCode, SendError, State};

use crate::support::*;

fn close_event(code: u16, reason: &str) -> Event {
    Event::Close(Some(CloseFrame {
        code: CloseCode(code),
        reason: reason.into(),
    }))
}

fn closed(code: u16, clean: bool) -> Event {
    Event::Closed {
        code: CloseCode(code),
        clean,
    }
}

#[test]
fn server_initiates_the_close() {
    let mut pair = open_pair(config());
    pair.server.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(pair.server.state(), State::Closing);
    pair.drive();
    let (client, server) = pair.take_events();
    // The client sees the server's Close and echoes its code (§5.5.1).
    assert_eq!(client, [close_event(1000, "bye"), closed(1000, true)]);
    assert_eq!(server, [close_event(1000, ""), closed(1000, true)]);
    assert_eq!(pair.client.state(), State::Closed);
    assert_eq!(pair.server.state(), State::Closed);
    // §7.1.1: the server closes the TCP connection first...
    assert!(pair.server.should_close_transport());
    // ...and the client waits for it.
    assert!(!pair.client.should_close_transport());
    pair.client.recv_eof();
    assert_eq!(pair.client.poll_event(), Ok(None), "no second Closed event");
    assert!(pair.client.should_close_transport());
}

#[test]
fn client_initiates_the_close() {
    let mut pair = open_pair(config());
    pair.client.close(CloseCode::GOING_AWAY, "leaving").unwrap();
    assert_eq!(pair.client.state(), State::Closing);
    pair.drive();
    let (client, server) = pair.take_events();
    assert_eq!(server, [close_event(1001, "leaving"), closed(1001, true)]);
    assert_eq!(client, [close_event(1001, ""), closed(1001, true)]);
    assert!(pair.server.should_close_transport());
    assert!(!pair.client.should_close_transport());
    pair.client.recv_eof();
    assert!(pair.client.should_close_transport());
}

/// A client that has finished the closing handshake but never sees the server's EOF
/// closes the transport itself after the close timeout.
#[test]
fn client_closes_the_transport_after_the_close_timeout() {
    let mut c = config();
    c.close_timeout = Some(Duration::from_secs(5));
    let mut pair = open_pair(c);
    pair.server.close(CloseCode::NORMAL, "").unwrap();
    pair.drive(); // drive() calls handle_timeout(pair.now): the timer starts at t0
    assert_eq!(pair.client.state(), State::Closed);
    assert!(!pair.client.should_close_transport());
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now + Duration::from_secs(5))
    );
    pair.client
        .handle_timeout(pair.now + Duration::from_millis(4_999));
    assert!(!pair.client.should_close_transport());
    pair.client
        .handle_timeout(pair.now + Duration::from_secs(5));
    assert!(pair.client.should_close_transport());
    assert_eq!(pair.client.poll_event(), Ok(None));
}

#[test]
fn both_sides_close_at_once() {
    let mut pair = open_pair(config());
    pair.client.close(CloseCode(4000), "c").unwrap();
    pair.server.close(CloseCode(4001), "s").unwrap();
    pair.drive();
    let (client, server) = pair.take_events();
    // Each reports the peer's Close and code; no echo is sent (both already sent one).
    assert_eq!(client, [close_event(4001, "s"), closed(4001, true)]);
    assert_eq!(server, [close_event(4000, "c"), closed(4000, true)]);
    assert!(pair.server.should_close_transport());
}

#[test]
fn close_without_a_status_code() {
    let mut server = open_server(config());
    let out = feed(&mut server, &masked(true, CLOSE, b""));
    assert_eq!(out.error, None);
    assert_eq!(out.events, [Event::Close(None), closed(1005, true)]);
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode, OpCode::Close);
    assert_eq!(
        frames[0].payload, b"",
        "an empty Close is answered with an empty Close"
    );
    assert!(server.should_close_transport());
}

#[test]
fn data_still_arrives_while_closing() {
    let mut pair = open_pair(config());
    pair.server.close(CloseCode::NORMAL, "").unwrap();
    // The client sends before it sees the server's Close.
    pair.client.send_text("late").unwrap();
    pair.client
        .send(Message::Ping(Bytes::copy_from_slice(b"p")))
        .unwrap();
    pair.drive();
    let (_, server) = pair.take_events();
    assert_eq!(
        server,
        [
            text("late"),
            Event::Ping(b"p"[..].into()),
            close_event(1000, ""),
            closed(1000, true),
        ]
    );
}

/// §5.5.2: a Ping that arrives after our Close is not answered (no frame may follow our
/// Close).
#[test]
fn no_pong_after_our_close() {
    let mut server = open_server(config());
    server.close(CloseCode::NORMAL, "").unwrap();
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    let out = feed(&mut server, &masked(true, PING, b"p"));
    assert_eq!(out.events, [Event::Ping(b"p"[..].into())]);
    assert!(take_transmit(&mut server).is_empty());
}

#[test]
fn frames_after_the_peer_close_are_ignored() {
    let mut server = open_server(config());
    let input = cat(&[
        &masked(true, CLOSE, &close_body(1000, b"")),
        &masked(true, TEXT, b"after"),
        &unmasked(true, TEXT, b"even invalid"),
    ]);
    let out = feed(&mut server, &input);
    assert_eq!(out.error, None);
    assert_eq!(out.events, [close_event(1000, ""), closed(1000, true)]);
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(1000));
}

#[test]
fn eof_without_close_is_1006() {
    let mut server = open_server(config());
    server.recv_eof();
    assert_eq!(server.poll_event(), Ok(Some(closed(1006, false))));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Closed);
    assert!(server.should_close_transport());
    assert!(
        take_transmit(&mut server).is_empty(),
        "no Close to a peer that left"
    );

    let mut client = open_client(config());
    client.recv_eof();
    assert_eq!(client.poll_event(), Ok(Some(closed(1006, false))));
    assert!(client.should_close_transport());
}

#[test]
fn eof_in_the_middle_of_a_frame_is_1006() {
    let mut server = open_server(config());
    let input = masked(true, TEXT, b"Hello");
    let out = feed(&mut server, &input[..8]);
    assert_eq!((out.error, out.events), (None, vec![]));
    server.recv_eof();
    assert_eq!(server.poll_event(), Ok(Some(closed(1006, false))));
}

/// Buffered messages are delivered before the EOF is reported.
#[test]
fn eof_after_a_message_delivers_the_message_first() {
    let mut server = open_server(config());
    server.recv(&masked(true, TEXT, b"Hello"));
    server.recv_eof();
    assert_eq!(server.poll_event(), Ok(Some(text("Hello"))));
    assert_eq!(server.poll_event(), Ok(Some(closed(1006, false))));
    assert_eq!(server.poll_event(), Ok(None));
}

#[test]
fn eof_while_closing_is_1006() {
    let mut server = open_server(config());
    server.close(CloseCode::NORMAL, "").unwrap();
    take_transmit(&mut server);
    server.recv_eof();
    assert_eq!(server.poll_event(), Ok(Some(closed(1006, false))));
    assert!(server.should_close_transport());
}

#[test]
fn no_data_frames_after_close() {
    let mut pair = open_pair(config());
    pair.client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(pair.client.send_text("x"), Err(SendError::Closing));
    assert_eq!(pair.client.send_binary(b"x"), Err(SendError::Closing));
    assert_eq!(
        pair.client.send_fragment(MessageKind::Text, b"x", false),
        Err(SendError::Closing)
    );
    assert_eq!(
        pair.client.send(Message::Ping(Bytes::copy_from_slice(b""))),
        Err(SendError::Closing)
    );
    assert_eq!(
        pair.client.send(Message::Pong(Bytes::copy_from_slice(b""))),
        Err(SendError::Closing)
    );
    assert_eq!(
        pair.client.close(CloseCode::NORMAL, ""),
        Err(SendError::Closing)
    );
    // Only the one Close went out.
    let frames = take_frames(&mut pair.client);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].close_code(), Some(1000));
}

#[test]
fn no_sends_after_the_closing_handshake() {
    let mut pair = open_pair(config());
    pair.server.close(CloseCode::NORMAL, "").unwrap();
    pair.drive();
    for conn in [&mut pair.client, &mut pair.server] {
        assert_eq!(conn.send_text("x"), Err(SendError::Closed));
        assert_eq!(
            conn.send(Message::Ping(Bytes::copy_from_slice(b""))),
            Err(SendError::Closed)
        );
        assert_eq!(conn.close(CloseCode::NORMAL, ""), Err(SendError::Closed));
    }
}

/// A fragmented message in progress does not stop the Close.
#[test]
fn close_in_the_middle_of_a_fragmented_send() {
    let mut pair = open_pair(config());
    pair.client
        .send_fragment(MessageKind::Binary, b"part", false)
        .unwrap();
    pair.client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        pair.client
            .send_fragment(MessageKind::Binary, b"rest", true),
        Err(SendError::Closing)
    );
    pair.drive();
    let (_, server) = pair.take_events();
    assert_eq!(server, [close_event(1000, ""), closed(1000, true)]);
}

#[test]
fn close_arguments_are_checked() {
    let mut server = open_server(config());
    for code in [1005, 1006, 1015, 999, 5000] {
        assert_eq!(
            server.close(CloseCode(code), ""),
            Err(SendError::InvalidCloseCode(code))
        );
    }
    assert_eq!(
        server.close(CloseCode::NORMAL, &"a".repeat(124)),
        Err(SendError::CloseReasonTooLong)
    );
    assert_eq!(
        server.state(),
        State::Open,
        "a refused close changes nothing"
    );
    assert!(take_transmit(&mut server).is_empty());
    server.close(CloseCode::NORMAL, &"a".repeat(123)).unwrap();
    let frames = take_frames(&mut server);
    assert_eq!(frames[0].payload.len(), 125);
}

#[test]
fn close_before_the_handshake_is_refused() {
    let mut client = wsengine::Connection::client(client_request(), config(), t0()).unwrap();
    assert_eq!(client.close(CloseCode::NORMAL, ""), Err(SendError::NotOpen));
    assert_eq!(client.send_text("x"), Err(SendError::NotOpen));
}
