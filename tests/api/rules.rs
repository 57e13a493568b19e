//! One test per rejection rule, named after the rule. Each checks the error variant and
//! the status code of the Close frame (or the HTTP status of the response) that goes
//! out. Frame errors are fed whole and one byte at a time.

use bytes::Bytes;
use wsengine::Message;
use wsengine::{
    CloseCode, CloseFrame, Config, Connection, Delivery, Error, Event, HandshakeError, OpCode,
    ProtocolError, SendError, State,
};

use crate::support::*;

fn server() -> Connection {
    open_server(config())
}

fn client() -> Connection {
    open_client(config())
}

/// Checks that `conn` has failed and transmits exactly one Close frame with `code`;
/// returns its reason.
fn assert_close_sent(conn: &mut Connection, code: u16, what: &str) -> String {
    assert_eq!(conn.state(), State::Failed, "{what}");
    let frames = take_frames(conn);
    assert_eq!(frames.len(), 1, "{what}: {frames:?}");
    assert_eq!(frames[0].opcode, OpCode::Close, "{what}");
    assert_eq!(frames[0].close_code(), Some(code), "{what}: {frames:?}");
    assert_eq!(
        frames[0].mask.is_some(),
        conn.role() == wsengine::Role::Client,
        "{what}: only clients mask"
    );
    assert!(conn.should_close_transport(), "{what}");
    String::from_utf8(frames[0].payload[2..].to_vec()).expect("the reason is UTF-8")
}

/// Feeds `input` to fresh connections from `make`, whole and one byte at a time, and
/// checks the error and the Close frame that goes out.
fn fails_with(make: &dyn Fn() -> Connection, input: &[u8], expected: ProtocolError, code: u16) {
    assert_eq!(
        expected.close_code(),
        CloseCode(code),
        "close_code() of {expected:?}"
    );
    for (way, bytewise) in [("whole", false), ("one byte at a time", true)] {
        let mut conn = make();
        let out = if bytewise {
            feed_bytewise(&mut conn, input)
        } else {
            feed(&mut conn, input)
        };
        assert_eq!(out.error, Some(Error::Protocol(expected)), "{way}");
        assert_eq!(
            out.error.as_ref().and_then(Error::close_code),
            Some(CloseCode(code)),
            "{way}"
        );
        // The Close says which rule was broken (RFC 6455 §5.5.1 allows a reason).
        let reason = assert_close_sent(&mut conn, code, way);
        assert_eq!(
            reason,
            expected.to_string(),
            "{way}: the reason on the wire"
        );
        assert!(
            !reason.is_empty() && reason.len() <= 123,
            "{way}: {reason:?}"
        );
    }
}

// ---- §5.2 base framing ----

#[test]
fn reserved_bits_without_extension() {
    for rsv in [0x40, 0x20, 0x10, 0x70, 0x30] {
        let input = frame_with_rsv(true, rsv, TEXT, Some(MASK), b"Hello");
        fails_with(&server, &input, ProtocolError::ReservedBits(rsv), 1002);
    }
}

#[test]
fn reserved_bits_on_a_control_frame() {
    let input = frame_with_rsv(true, 0x40, PING, Some(MASK), b"");
    fails_with(&server, &input, ProtocolError::ReservedBits(0x40), 1002);
}

#[test]
fn reserved_opcodes() {
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        let input = masked(true, op, b"x");
        fails_with(&server, &input, ProtocolError::ReservedOpcode(op), 1002);
    }
}

#[test]
fn eight_byte_length_with_msb_set() {
    let mut input = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5];
    input.extend_from_slice(&MASK);
    input.extend_from_slice(b"Hello");
    fails_with(&server, &input, ProtocolError::LengthMsbSet, 1002);
}

#[test]
fn non_minimal_16_bit_length() {
    // 125 bytes in the 16-bit form.
    let mut input = vec![0x82, 0xFE, 0x00, 0x7D];
    input.extend_from_slice(&MASK);
    input.extend_from_slice(&[0; 125]);
    fails_with(&server, &input, ProtocolError::NonMinimalLength, 1002);
}

#[test]
fn non_minimal_64_bit_length() {
    // 65535 bytes in the 64-bit form; the payload need not arrive.
    let mut input = vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
    input.extend_from_slice(&MASK);
    fails_with(&server, &input, ProtocolError::NonMinimalLength, 1002);
    // 5 bytes in the 64-bit form.
    let mut input = vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5];
    input.extend_from_slice(&MASK);
    input.extend_from_slice(b"Hello");
    fails_with(&server, &input, ProtocolError::NonMinimalLength, 1002);
}

// ---- §5.5 control frames ----

#[test]
fn fragmented_control_frame() {
    for op in [PING, PONG, CLOSE] {
        let input = masked(false, op, b"");
        fails_with(&server, &input, ProtocolError::FragmentedControlFrame, 1002);
    }
}

#[test]
fn control_frame_over_125_bytes() {
    for op in [PING, PONG, CLOSE] {
        let input = masked(true, op, &[b'a'; 126]);
        fails_with(
            &server,
            &input,
            ProtocolError::ControlFrameTooLong(126),
            1002,
        );
    }
}

#[test]
fn control_frame_of_125_bytes_is_accepted() {
    let mut server = server();
    let out = feed(&mut server, &masked(true, PING, &[b'a'; 125]));
    assert_eq!(out.error, None);
    assert_eq!(out.events, [Event::Ping(vec![b'a'; 125].into())]);
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        (frames[0].opcode, frames[0].payload.len()),
        (OpCode::Pong, 125)
    );
}

// ---- §5.1 masking ----

#[test]
fn reject_unmasked_client_frame() {
    let input = unmasked(true, TEXT, b"Hello");
    fails_with(&server, &input, ProtocolError::UnmaskedFrame, 1002);
    let input = unmasked(true, PING, b"");
    fails_with(&server, &input, ProtocolError::UnmaskedFrame, 1002);
}

#[test]
fn reject_masked_server_frame() {
    let input = masked(true, TEXT, b"Hello");
    fails_with(&client, &input, ProtocolError::MaskedFrame, 1002);
    let input = masked(true, PING, b"");
    fails_with(&client, &input, ProtocolError::MaskedFrame, 1002);
}

// ---- §5.4 fragmentation ----

#[test]
fn continuation_without_a_started_message() {
    let input = masked(true, CONT, b"lo");
    fails_with(&server, &input, ProtocolError::UnexpectedContinuation, 1002);
    let input = masked(false, CONT, b"lo");
    fails_with(&server, &input, ProtocolError::UnexpectedContinuation, 1002);
    // After a complete message, too.
    let input = cat(&[&masked(true, TEXT, b"Hel"), &masked(true, CONT, b"lo")]);
    fails_with(&server, &input, ProtocolError::UnexpectedContinuation, 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message() {
    for (first, second) in [
        (TEXT, TEXT),
        (TEXT, BINARY),
        (BINARY, TEXT),
        (BINARY, BINARY),
    ] {
        let input = cat(&[&masked(false, first, b"Hel"), &masked(true, second, b"lo")]);
        fails_with(&server, &input, ProtocolError::ExpectedContinuation, 1002);
    }
}

#[test]
fn control_frames_may_be_interleaved_with_fragments() {
    let mut server = server();
    let input = cat(&[
        &masked(false, TEXT, b"Hel"),
        &masked(true, PING, b"p"),
        &masked(false, CONT, b""),
        &masked(true, PONG, b"q"),
        &masked(true, CONT, b"lo"),
    ]);
    let out = feed(&mut server, &input);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        [
            Event::Ping(b"p"[..].into()),
            Event::Pong(b"q"[..].into()),
            text("Hello"),
        ]
    );
}

// ---- §8.1 UTF-8 ----

#[test]
fn invalid_utf8_in_text() {
    for bad in [
        &b"\xFF"[..],
        b"Hello \xC0\xAF",           // overlong '/'
        b"\xED\xA0\x80",             // a surrogate
        b"\xF4\x90\x80\x80",         // above U+10FFFF
        b"\x80",                     // a lone continuation byte
        b"\xCE\xBA\xE1\xBD\xB9\xCF", // Autobahn 6.x style: valid, then a broken sequence
    ] {
        let input = masked(true, TEXT, bad);
        // The last case ends with an incomplete code point rather than a bad byte.
        fails_with(&server, &input, ProtocolError::InvalidUtf8, 1007);
    }
}

#[test]
fn invalid_utf8_in_a_later_fragment() {
    let input = cat(&[&masked(false, TEXT, b"Hello"), &masked(true, CONT, b"\xFF")]);
    fails_with(&server, &input, ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn invalid_utf8_across_a_fragment_boundary() {
    for delivery in [Delivery::Whole, Delivery::Streaming] {
        let mut c = config();
        c.delivery = delivery;
        let make = move || open_server(c.clone());
        // E2 starts a 3-byte sequence; 28 cannot continue it.
        let input = cat(&[
            &masked(false, TEXT, b"a\xE2"),
            &masked(true, CONT, b"\x28b"),
        ]);
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
        // The bad byte is reported before the rest of its fragment arrives.
        let second = masked(false, CONT, b"\x28 and more");
        let input = cat(&[&masked(false, TEXT, b"a\xE2"), &second[..2 + 4 + 1]]);
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
    }
}

#[test]
fn valid_utf8_split_across_fragments_is_accepted() {
    let euro = "€".as_bytes(); // E2 82 AC
    let input = cat(&[
        &masked(false, TEXT, &euro[..1]),
        &masked(false, CONT, &euro[1..2]),
        &masked(true, CONT, &euro[2..]),
    ]);
    let mut server = server();
    let out = feed(&mut server, &input);
    assert_eq!(out.error, None);
    assert_eq!(out.events, [text("€")]);
}

/// §8.1 fail fast: the first fragment carries an invalid byte and its message never
/// ends; the connection fails at once.
#[test]
fn invalid_utf8_fails_fast_in_the_first_fragment() {
    for delivery in [Delivery::Whole, Delivery::Streaming] {
        let mut c = config();
        c.delivery = delivery;
        let make = move || open_server(c.clone());
        let input = masked(false, TEXT, b"ok \xFF and more");
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
        // A truncated surrogate can never become valid either.
        let input = masked(false, TEXT, b"ok \xED\xA0");
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
    }
}

/// §8.1 fail fast inside one frame: only the start of a 100-byte frame has arrived, and
/// it holds an invalid byte.
#[test]
fn invalid_utf8_fails_fast_in_the_first_part_of_a_frame() {
    let mut payload = vec![b'a'; 100];
    payload[3] = 0xFF;
    let whole = masked(true, TEXT, &payload);
    let start = &whole[..2 + 4 + 10];
    for delivery in [Delivery::Whole, Delivery::Streaming] {
        let mut c = config();
        c.delivery = delivery;
        let make = move || open_server(c.clone());
        fails_with(&make, start, ProtocolError::InvalidUtf8, 1007);
    }
}

/// The same for a frame larger than the receive buffer (whole delivery assembles it).
#[test]
fn invalid_utf8_fails_fast_in_a_frame_larger_than_the_receive_buffer() {
    let mut payload = vec![b'a'; 10_000];
    payload[300] = 0xFF;
    let whole = masked(true, TEXT, &payload);
    let start = &whole[..1000];
    let mut c = config();
    c.recv_buffer_size = 512;
    let make = move || open_server(c.clone());
    fails_with(&make, start, ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn message_ending_with_an_incomplete_code_point() {
    for delivery in [Delivery::Whole, Delivery::Streaming] {
        let mut c = config();
        c.delivery = delivery;
        let make = move || open_server(c.clone());
        let input = masked(true, TEXT, b"a\xE2\x82");
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
        let input = cat(&[&masked(false, TEXT, b"a\xE2"), &masked(true, CONT, b"\x82")]);
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
        let input = cat(&[&masked(false, TEXT, b"a\xE2\x82"), &masked(true, CONT, b"")]);
        fails_with(&make, &input, ProtocolError::InvalidUtf8, 1007);
    }
}

/// An incomplete code point at the end of a fragment is fine while the message goes on.
#[test]
fn incomplete_code_point_at_the_end_of_a_fragment_waits() {
    let mut server = server();
    let out = feed(&mut server, &masked(false, TEXT, b"a\xE2\x82"));
    assert_eq!((out.error, out.events), (None, vec![]));
    let out = feed(&mut server, &masked(true, CONT, b"\xAC"));
    assert_eq!((out.error, out.events), (None, vec![text("a€")]));
}

#[test]
fn binary_messages_are_not_checked_for_utf8() {
    let mut server = server();
    let out = feed(&mut server, &masked(true, BINARY, b"\xFF\xE2"));
    assert_eq!(out.error, None);
    assert_eq!(out.events, [binary(b"\xFF\xE2")]);
}

// ---- §5.5.1, §7.4 close frames ----

#[test]
fn close_payload_of_one_byte() {
    let input = masked(true, CLOSE, &[0x03]);
    fails_with(&server, &input, ProtocolError::CloseTooShort, 1002);
}

#[test]
fn invalid_close_codes() {
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let input = masked(true, CLOSE, &close_body(code, b""));
        fails_with(&server, &input, ProtocolError::InvalidCloseCode(code), 1002);
    }
}

#[test]
fn valid_close_codes_are_accepted_and_echoed() {
    let codes = (1000..=1003)
        .chain(1007..=1014)
        .chain([3000, 3999, 4000, 4999]);
    for code in codes {
        for (side, mut conn, input) in [
            (
                "server",
                server(),
                masked(true, CLOSE, &close_body(code, b"why")),
            ),
            (
                "client",
                client(),
                unmasked(true, CLOSE, &close_body(code, b"why")),
            ),
        ] {
            let out = feed(&mut conn, &input);
            assert_eq!(out.error, None, "{side} {code}");
            assert_eq!(
                out.events,
                [
                    Event::Close(Some(CloseFrame {
                        code: CloseCode(code),
                        reason: "why".into()
                    })),
                    Event::Closed {
                        code: CloseCode(code),
                        clean: true
                    },
                ],
                "{side} {code}"
            );
            let frames = take_frames(&mut conn);
            assert_eq!(frames.len(), 1, "{side} {code}");
            assert_eq!(frames[0].opcode, OpCode::Close);
            assert_eq!(frames[0].close_code(), Some(code), "{side} echoes the code");
            assert_eq!(conn.state(), State::Closed);
        }
    }
}

#[test]
fn close_reason_with_invalid_utf8() {
    let input = masked(true, CLOSE, &close_body(1000, b"bad \xFF"));
    fails_with(&server, &input, ProtocolError::InvalidUtf8, 1007);
    let input = masked(true, CLOSE, &close_body(1000, b"cut \xE2\x82"));
    fails_with(&server, &input, ProtocolError::InvalidUtf8, 1007);
}

// ---- limits ----

#[test]
fn frame_too_big() {
    let mut c = config();
    c.max_frame_size = 100;
    let make = move || open_server(c.clone());
    let input = masked(true, BINARY, &[0; 101]);
    let err = ProtocolError::FrameTooBig { len: 101, max: 100 };
    fails_with(&make, &input, err, 1009);
    // The header alone is enough: the payload is never buffered.
    fails_with(&make, &input[..2 + 4], err, 1009);
    // 100 bytes are fine.
    let mut server = make();
    let out = feed(&mut server, &masked(true, BINARY, &[0; 100]));
    assert_eq!((out.error, out.events), (None, vec![binary(&[0; 100])]));
}

#[test]
fn frame_too_big_applies_to_each_fragment() {
    let mut c = config();
    c.max_frame_size = 100;
    let make = move || open_server(c.clone());
    let input = cat(&[
        &masked(false, TEXT, &[b'a'; 50]),
        &masked(true, CONT, &[b'a'; 101]),
    ]);
    fails_with(
        &make,
        &input,
        ProtocolError::FrameTooBig { len: 101, max: 100 },
        1009,
    );
}

#[test]
fn message_too_big_across_fragments() {
    let mut c = config();
    c.max_message_size = 100;
    let make = move || open_server(c.clone());
    let first = masked(false, BINARY, &[1; 60]);
    let second = masked(true, CONT, &[2; 60]);
    let err = ProtocolError::MessageTooBig { len: 120, max: 100 };
    fails_with(&make, &cat(&[&first, &second]), err, 1009);
    // As soon as the second header announces the excess.
    fails_with(&make, &cat(&[&first, &second[..2 + 4]]), err, 1009);
    // Exactly 100 bytes are fine.
    let mut server = make();
    let out = feed(&mut server, &cat(&[&first, &masked(true, CONT, &[2; 40])]));
    assert_eq!(out.error, None);
    assert_eq!(out.events.len(), 1);
}

#[test]
fn message_too_big_in_one_frame() {
    let mut c = config();
    c.max_message_size = 100;
    let make = move || open_server(c.clone());
    let input = masked(true, TEXT, &[b'a'; 101]);
    fails_with(
        &make,
        &input,
        ProtocolError::MessageTooBig { len: 101, max: 100 },
        1009,
    );
    // What the peer reads, spelled out (fails_with compares it with the Display text).
    let mut server = make();
    feed(&mut server, &input);
    let frames = take_frames(&mut server);
    assert_eq!(frames[0].payload[..2], 1009u16.to_be_bytes());
    assert_eq!(&frames[0].payload[2..], b"message of 101+ bytes (max 100)");
}

#[test]
fn too_many_fragments() {
    let mut c = config();
    c.max_fragments = 3;
    let make = move || open_server(c.clone());
    let input = cat(&[
        &masked(false, TEXT, b"a"),
        &masked(false, CONT, b""),
        &masked(false, CONT, b""),
        &masked(true, CONT, b"b"),
    ]);
    fails_with(&make, &input, ProtocolError::TooManyFragments(3), 1008);
    // Three fragments are fine.
    let mut server = make();
    let input = cat(&[
        &masked(false, TEXT, b"a"),
        &masked(false, CONT, b""),
        &masked(true, CONT, b"b"),
    ]);
    let out = feed(&mut server, &input);
    assert_eq!((out.error, out.events), (None, vec![text("ab")]));
}

// ---- after a fatal error ----

#[test]
fn errors_are_sticky_and_only_the_close_goes_out() {
    let mut server = server();
    // The bad frame, then a Ping in the same read: it must not be answered.
    let input = cat(&[&unmasked(true, TEXT, b"bad"), &masked(true, PING, b"p")]);
    let out = feed(&mut server, &input);
    let expected = Error::Protocol(ProtocolError::UnmaskedFrame);
    assert_eq!(out.error, Some(expected.clone()));
    assert_eq!(out.events, []);
    for _ in 0..3 {
        assert_eq!(server.poll_event(), Err(expected.clone()));
    }
    // More input is discarded (and counted as taken), and changes nothing.
    let more = masked(true, TEXT, b"more");
    assert_eq!(server.recv(&more), more.len());
    server.recv_eof();
    server.handle_timeout(at(60_000));
    assert_eq!(server.poll_event(), Err(expected.clone()));
    // Sends are refused.
    assert_eq!(server.send_text("x"), Err(SendError::Closed));
    assert_eq!(server.send_binary(b"x"), Err(SendError::Closed));
    assert_eq!(
        server.send(Message::Ping(Bytes::copy_from_slice(b""))),
        Err(SendError::Closed)
    );
    assert_eq!(
        server.send(Message::Pong(Bytes::copy_from_slice(b""))),
        Err(SendError::Closed)
    );
    assert_eq!(server.close(CloseCode::NORMAL, ""), Err(SendError::Closed));
    assert_eq!(server.state(), State::Failed);
    // The Close waits: the flush deadline (started at the first instant after the
    // failure) is the one timer left.
    assert_eq!(server.poll_timeout(), Some(at(65_000)));
    // Exactly one Close frame, 1002.
    assert_close_sent(&mut server, 1002, "sticky");
    assert!(take_transmit(&mut server).is_empty());
    assert_eq!(server.poll_timeout(), None, "nothing left to wait for");
    assert_eq!(server.poll_event(), Err(expected));
}

/// When our Close is already out, a protocol error sends nothing more.
#[test]
fn error_while_closing_sends_no_second_close() {
    let mut server = server();
    server.close(CloseCode::GOING_AWAY, "bye").unwrap();
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(1001));
    let out = feed(&mut server, &unmasked(true, TEXT, b"bad"));
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::UnmaskedFrame))
    );
    assert!(take_transmit(&mut server).is_empty());
    assert_eq!(server.state(), State::Failed);
    assert!(server.should_close_transport());
}

// ---- §4.2.1 opening handshake (server) ----

fn request_with(from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(RFC_REQUEST).unwrap();
    assert!(text.contains(from), "{from:?} not in the request");
    text.replacen(from, to, 1).into_bytes()
}

/// Feeds `request` whole and one byte at a time; checks the error and the response.
/// Returns the response head.
fn handshake_fails(
    config: &Config,
    request: &[u8],
    expected: HandshakeError,
    status: u16,
) -> String {
    assert_eq!(expected.status_hint(), status);
    let mut head = String::new();
    for (way, bytewise) in [("whole", false), ("one byte at a time", true)] {
        let mut server = Connection::server(config.clone(), t0());
        let out = if bytewise {
            feed_bytewise(&mut server, request)
        } else {
            feed(&mut server, request)
        };
        assert_eq!(out.events, [], "{way}");
        assert_eq!(out.error, Some(Error::Handshake(expected.clone())), "{way}");
        assert_eq!(server.state(), State::Failed, "{way}");
        let tx = take_transmit(&mut server);
        let (h, body) = split_head(&tx);
        assert!(h.starts_with(&format!("HTTP/1.1 {status} ")), "{way}: {h}");
        assert_eq!(
            head_header(h.as_str(), "Content-Length").map(str::to_owned),
            Some(body.len().to_string()),
            "{way}"
        );
        assert!(server.should_close_transport(), "{way}");
        assert_eq!(server.poll_event(), Err(Error::Handshake(expected.clone())));
        assert_eq!(server.send_text("x"), Err(SendError::Closed), "{way}");
        head = h;
    }
    head
}

#[test]
fn handshake_method_not_get_is_405() {
    let head = handshake_fails(
        &config(),
        &request_with("GET", "POST"),
        HandshakeError::MethodNotGet,
        405,
    );
    assert_eq!(head_header(&head, "Allow"), Some("GET"));
}

#[test]
fn handshake_http_1_0_is_400() {
    handshake_fails(
        &config(),
        &request_with("HTTP/1.1", "HTTP/1.0"),
        HandshakeError::HttpVersion,
        400,
    );
}

#[test]
fn handshake_missing_host_is_400() {
    handshake_fails(
        &config(),
        &request_with("Host: server.example.com\r\n", ""),
        HandshakeError::MissingHost,
        400,
    );
}

#[test]
fn handshake_missing_upgrade_is_400() {
    handshake_fails(
        &config(),
        &request_with("Upgrade: websocket\r\n", ""),
        HandshakeError::MissingUpgrade,
        400,
    );
    handshake_fails(
        &config(),
        &request_with("Upgrade: websocket", "Upgrade: h2c"),
        HandshakeError::MissingUpgrade,
        400,
    );
}

#[test]
fn handshake_missing_connection_upgrade_is_400() {
    handshake_fails(
        &config(),
        &request_with("Connection: Upgrade", "Connection: keep-alive"),
        HandshakeError::MissingConnectionUpgrade,
        400,
    );
}

#[test]
fn handshake_bad_key_is_400() {
    for key in ["dGhlIHNhbXBsZQ==", "not base64!", ""] {
        handshake_fails(
            &config(),
            &request_with("dGhlIHNhbXBsZSBub25jZQ==", key),
            HandshakeError::InvalidKey,
            400,
        );
    }
    handshake_fails(
        &config(),
        &request_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        HandshakeError::InvalidKey,
        400,
    );
}

#[test]
fn handshake_version_8_is_426_with_version_13() {
    let head = handshake_fails(
        &config(),
        &request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        HandshakeError::UnsupportedVersion,
        426,
    );
    assert_eq!(head_header(&head, "Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn handshake_head_over_the_limit_is_431() {
    let mut c = config();
    c.max_handshake_size = 512;
    let padding = format!("X-Padding: {}\r\n\r\n", "a".repeat(600));
    let request = request_with("\r\n\r\n", &format!("\r\n{padding}"));
    handshake_fails(
        &c,
        &request,
        HandshakeError::HeadTooLarge { limit: 512 },
        431,
    );
    // A head that never ends.
    let endless = cat(&[b"GET /chat HTTP/1.1\r\nX-A: ", &[b'a'; 600]]);
    handshake_fails(
        &c,
        &endless,
        HandshakeError::HeadTooLarge { limit: 512 },
        431,
    );
}

/// The RFC request padded to exactly `len` bytes with an `X-Padding` header.
fn request_of_len(len: usize) -> Vec<u8> {
    let base = request_with("\r\n\r\n", "\r\nX-Padding: \r\n\r\n");
    let pad = len.checked_sub(base.len()).expect("len too small");
    let request = request_with(
        "\r\n\r\n",
        &format!("\r\nX-Padding: {}\r\n\r\n", "a".repeat(pad)),
    );
    assert_eq!(request.len(), len);
    request
}

#[test]
fn handshake_head_of_exactly_the_limit_is_accepted() {
    let mut c = config();
    c.max_handshake_size = 512;
    let request = request_of_len(512);
    for bytewise in [false, true] {
        let mut server = Connection::server(c.clone(), t0());
        let out = if bytewise {
            feed_bytewise(&mut server, &request)
        } else {
            feed(&mut server, &request)
        };
        assert_eq!(out.error, None, "bytewise {bytewise}");
        assert!(matches!(out.events.as_slice(), [Event::Request(_)]));
    }
    handshake_fails(
        &c,
        &request_of_len(513),
        HandshakeError::HeadTooLarge { limit: 512 },
        431,
    );
}

#[test]
fn handshake_too_many_headers_is_431() {
    let mut c = config();
    c.max_headers = 8;
    // The RFC request has 7 header lines; two more are too many.
    let request = request_with("\r\n\r\n", "\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
    handshake_fails(&c, &request, HandshakeError::TooManyHeaders, 431);
}

#[test]
fn handshake_eof_before_the_head_ends() {
    let mut server = Connection::server(config(), t0());
    let out = feed(&mut server, &RFC_REQUEST[..40]);
    assert_eq!((out.error, out.events), (None, vec![]));
    server.recv_eof();
    assert_eq!(
        server.poll_event(),
        Err(Error::Handshake(HandshakeError::UnexpectedEof))
    );
    assert!(
        take_transmit(&mut server).is_empty(),
        "no response to a peer that left"
    );
}

// ---- §4.1 opening handshake (client) ----

/// The client's request head and a fresh client.
fn client_and_head() -> (Connection, String) {
    let mut client = Connection::client(client_request(), config(), t0()).unwrap();
    let tx = take_transmit(&mut client);
    let (head, _) = split_head(&tx);
    (client, head)
}

#[test]
fn client_request_has_the_required_headers() {
    let (_, head) = client_and_head();
    assert!(head.starts_with("GET /chat HTTP/1.1\r\n"), "{head}");
    assert_eq!(head_header(&head, "Host"), Some("server.example.com"));
    assert!(
        head_header(&head, "Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{head}"
    );
    assert!(
        head_header(&head, "Connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")),
        "{head}"
    );
    assert_eq!(head_header(&head, "Sec-WebSocket-Version"), Some("13"));
    let key = head_header(&head, "Sec-WebSocket-Key").expect("a key");
    assert_eq!(key.len(), 24, "base64 of 16 bytes");
}

#[test]
fn client_rejects_a_wrong_accept_key() {
    let (mut client, _) = client_and_head();
    let response = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let out = feed(&mut client, response);
    assert_eq!(
        out.error,
        Some(Error::Handshake(HandshakeError::AcceptMismatch))
    );
    assert_eq!(client.state(), State::Failed);
    assert!(
        take_transmit(&mut client).is_empty(),
        "a client sends no HTTP error"
    );
}

#[test]
fn client_reports_a_refusal() {
    let (mut client, _) = client_and_head();
    let response = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope";
    let out = feed(&mut client, response);
    match out.error {
        Some(Error::Handshake(HandshakeError::Rejected(refused))) => {
            assert_eq!(refused.status, 403);
            assert_eq!(&refused.body[..], b"nope");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// BUG (reported): ARCHITECTURE.md asks that any split of the byte stream give the same
/// events. A refusal without `Content-Length` is reported with "the bytes that arrived
/// with the head" as its body, so the body depends on how the response was split: whole,
/// the client reports "nope"; one byte at a time, an empty body. (HTTP/1.1 delimits such
/// a body by the end of the connection, RFC 9112 §6.3 item 8: wait for EOF, up to
/// `max_handshake_size`.)
#[test]
fn client_refusal_without_content_length_is_the_same_however_it_is_split() {
    let response = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnope";
    let mut bodies = Vec::new();
    for bytewise in [false, true] {
        let (mut client, _) = client_and_head();
        let out = if bytewise {
            feed_bytewise(&mut client, response)
        } else {
            feed(&mut client, response)
        };
        client.recv_eof();
        let error = out.error.or_else(|| client.poll_event().err());
        match error {
            Some(Error::Handshake(HandshakeError::Rejected(refused))) => {
                assert_eq!(refused.status, 403);
                bodies.push(refused.body);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(bodies[0], bodies[1], "whole vs one byte at a time");
    assert_eq!(&bodies[0][..], b"nope");
}
