//! Regression tests for bugs the fuzz targets (fuzz/) found, one per bug, named for the
//! bug. Each holds the minimized input (as bytes, or decoded from the structured input
//! layout of fuzz/README.md) and the target that found it.

use std::time::Duration;
use wsengine::mask::{apply_mask, apply_mask_scalar, apply_mask_word};

use wsengine::{
    Connection, Error, FrameHeader, HandshakeError, Keepalive, OpCode, ProtocolError, Status,
};

use crate::support::*;

// ---- fuzz target `unmask` ----

/// `apply_mask_scalar` computed `phase + i` before reducing the phase modulo 4, so a
/// phase near `usize::MAX` (the contract is `phase % 4`, any value) overflowed: a panic
/// with overflow checks, a wrong key index without. Minimized input: key 12 34 56 78,
/// phase `usize::MAX`, one byte of data.
#[test]
fn mask_scalar_phase_near_usize_max_overflowed() {
    let key = [0x12, 0x34, 0x56, 0x78];
    for phase in [usize::MAX, usize::MAX - 1, usize::MAX - 2, usize::MAX - 3] {
        let data = [0u8, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut scalar = data;
        let mut word = data;
        let mut entry = data;
        let a = apply_mask_scalar(&mut scalar, key, phase);
        let b = apply_mask_word(&mut word, key, phase);
        let c = apply_mask(&mut entry, key, phase);
        assert_eq!((scalar, a), (word, b), "phase {phase}");
        assert_eq!((scalar, a), (entry, c), "phase {phase}");
        // usize::MAX % 4 == 3: the first byte takes key[3].
        if phase == usize::MAX {
            assert_eq!(scalar[0], key[3]);
        }
    }
}

// ---- fuzz target `frame_header` ----

/// A control frame (Close, Ping, Pong) whose 7-bit length is 126 or 127 can never be
/// valid (§5.5: at most 125 bytes), yet `decode` returned `Partial` until the 2 or 8
/// extended length bytes arrived, breaking its "`Partial` means more bytes could still
/// complete a valid header" contract, and a peer sending `88 7e` and stalling kept the
/// connection waiting instead of failing it. Minimized input: `88 7e`.
#[test]
fn frame_header_control_frame_with_extended_length_waited_for_more_bytes() {
    for opcode in [0x88u8, 0x89, 0x8A] {
        for (b1, least) in [
            (0x7Eu8, 126u64),
            (0xFE, 126),
            (0x7F, 0x1_0000),
            (0xFF, 0x1_0000),
        ] {
            let expected = Err(ProtocolError::ControlFrameTooLong(least));
            // Fails on the second byte, and with the same error whatever follows.
            assert_eq!(FrameHeader::decode(&[opcode, b1], 0), expected);
            let mut longer = vec![opcode, b1];
            longer.extend_from_slice(&[0x01, 0x00, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
            assert_eq!(FrameHeader::decode(&longer, 0), expected);
        }
    }
    // A connection fails at once too, with the Close 1002.
    let mut server = open_server(config());
    let out = feed(&mut server, &[0x88, 0xFE]);
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::ControlFrameTooLong(126)))
    );
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(1002));
}

/// A 64-bit length whose first byte has the top bit set (§5.2: "the most significant
/// bit MUST be 0"), or whose first six bytes are zero (the value cannot exceed 0xFFFF,
/// so it is not minimal), can never decode, but `decode` returned `Partial` until all
/// eight bytes were there. Minimized inputs: `82 7f 80` and `82 7f 00 00 00 00 00 00`.
#[test]
fn frame_header_64_bit_length_waited_for_bytes_that_cannot_help() {
    assert_eq!(
        FrameHeader::decode(&[0x82, 0x7F, 0x80], 0),
        Err(ProtocolError::LengthMsbSet)
    );
    assert_eq!(
        FrameHeader::decode(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0], 0),
        Err(ProtocolError::NonMinimalLength)
    );
    // The same errors once every byte is there.
    assert_eq!(
        FrameHeader::decode(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], 0),
        Err(ProtocolError::LengthMsbSet)
    );
    assert_eq!(
        FrameHeader::decode(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], 0),
        Err(ProtocolError::NonMinimalLength)
    );
    // Prefixes that can still become valid stay Partial.
    for prefix in [
        &[0x82, 0x7F][..],
        &[0x82, 0x7F, 0x7F],
        &[0x82, 0x7F, 0, 0, 0, 0, 0],
        &[0x82, 0x7F, 0, 0, 0, 0, 0, 1],
    ] {
        assert_eq!(
            FrameHeader::decode(prefix, 0),
            Ok(Status::Partial),
            "{prefix:02x?}"
        );
    }
}

// ---- fuzz target `handshake_response` ----

/// A client waits for a refusal's body (`Content-Length` bytes, at most
/// `max_handshake_size`), but during the handshake its receive buffer held only
/// `max(recv_buffer_size, max_handshake_size + 1)` bytes: with a receive buffer smaller
/// than head plus body, `recv` took nothing and `poll_event` produced nothing, forever
/// (or until the handshake timeout, reported as a timeout instead of the refusal).
/// Minimized input (flags 0x28: recv_buffer_size 256, max_handshake_size 512): a 400
/// with `Content-Length: 100000` and 462 body bytes.
#[test]
fn client_refusal_body_larger_than_the_handshake_buffer_got_stuck() {
    let mut cfg = config();
    cfg.recv_buffer_size = 256;
    cfg.max_handshake_size = 512;
    let mut client = Connection::client(client_request(), cfg, t0()).unwrap();
    let _request = take_transmit(&mut client);
    let head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100000\r\n\r\n";
    let response = cat(&[head, &[b'x'; 700]]);
    // `feed` asserts that the connection never stops taking bytes without an event.
    let out = feed(&mut client, &response);
    match out.error {
        Some(Error::Handshake(HandshakeError::Rejected(refused))) => {
            assert_eq!(refused.status, 400);
            assert_eq!(
                refused.body.len(),
                512,
                "the body, cut at max_handshake_size"
            );
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
}

// ---- fuzz target `connection_server` ----

/// Keepalive Pings are exempt from the send limit, and one was queued at every idle
/// interval even while the previous one still waited: a peer that sends now and then but
/// never reads made them pile up in the transmit buffer without bound (past
/// `max_send_buffer` + one message + a Close + a Pong). Minimized input: keepalive
/// 10 ms / 10 ms, `max_send_buffer` 1, one binary send, then 16 times: 10 ms, an empty
/// Pong from the peer, 10 ms.
#[test]
fn keepalive_pings_piled_up_while_the_peer_did_not_read() {
    let mut cfg = config();
    cfg.max_send_buffer = 1;
    cfg.keepalive = Some(Keepalive {
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(10),
    });
    let mut server = open_server(cfg);
    server.send_binary(b"x").unwrap();
    let mut now = 0;
    server.handle_timeout(at(now));
    let cycle = |server: &mut Connection, now: &mut u64| {
        *now += 10;
        server.handle_timeout(at(*now));
        let out = feed(server, &masked(true, PONG, b""));
        assert_eq!(out.error, None);
        *now += 10;
        server.handle_timeout(at(*now));
    };
    for _ in 0..16 {
        cycle(&mut server, &mut now);
    }
    let pings = |frames: &[SentFrame]| frames.iter().filter(|f| f.opcode == OpCode::Ping).count();
    let frames = take_frames(&mut server);
    assert_eq!(pings(&frames), 1, "{frames:?}");
    assert_eq!(frames[0].opcode, OpCode::Binary);
    // Once written, the next idle interval pings again.
    for _ in 0..2 {
        cycle(&mut server, &mut now);
    }
    assert_eq!(pings(&take_frames(&mut server)), 1);
}

// ---- fuzz targets `connection_server` / `connection_client` (CI smoke run) ----

/// A keepalive (or handshake) timeout dropped everything still queued, including the
/// rest of a frame the host had already started writing, so the transmitted stream
/// ended inside a frame. Now the queue stays whole (a host that drains it sends whole
/// frames) and `should_close_transport` is true at once anyway.
#[test]
fn timeout_cut_a_partly_written_frame() {
    let mut config = config();
    config.keepalive = Some(Keepalive {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    });
    let mut server = open_server(config);
    server.send_binary(&[7u8; 300]).unwrap();
    let mut wire = server.poll_transmit()[..100].to_vec();
    server.advance_transmit(100);
    for s in [1, 12, 23, 29] {
        server.handle_timeout(at(s * 1000));
    }
    assert!(matches!(server.poll_event(), Err(Error::Timeout(_))));
    assert!(server.should_close_transport());
    wire.extend(take_transmit(&mut server));
    let frames = decode_frames(&wire);
    assert_eq!(frames[0].payload, vec![7u8; 300]);
}
