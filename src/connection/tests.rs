//! Unit tests that look inside the connection (buffers, timers). Protocol behaviour seen
//! from outside is tested in `tests/api/`.
#![allow(clippy::field_reassign_with_default)] // Config is built as embedders build it

use super::*;
use crate::config::{Delivery, Keepalive};
use crate::error::SendError;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::handshake::Accept;
use crate::time::{Duration, test_epoch};

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let h = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut head);
    let mut out = head[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    crate::mask::apply_mask(&mut out[start..], key, 0);
    out
}

fn open_server(config: Config) -> Connection {
    let mut c = Connection::server(config, test_epoch());
    assert_eq!(c.recv(REQUEST), REQUEST.len());
    assert!(matches!(c.poll_event(), Ok(Some(Event::Request(_)))));
    c.accept(Accept::new()).unwrap();
    let n = c.poll_transmit().len();
    c.advance_transmit(n);
    c
}

fn feed(c: &mut Connection, mut bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let n = c.recv(bytes);
        bytes = &bytes[n..];
        while let Some(e) = c.poll_event().unwrap() {
            events.push(e);
        }
        if bytes.is_empty() {
            return events;
        }
    }
}

#[test]
fn one_frame_message_in_one_read_is_split_out_without_assembly() {
    let mut c = open_server(Config::default());
    let events = feed(&mut c, &masked(true, OpCode::Binary, &[7u8; 1000]));
    assert_eq!(
        events,
        vec![Event::Binary {
            data: Bytes::from(vec![7u8; 1000]),
            last: true
        }]
    );
    assert_eq!(
        c.recv.assembly.capacity(),
        0,
        "no copy into the assembly buffer"
    );
}

#[test]
fn one_frame_message_across_reads_is_held_in_the_receive_buffer() {
    let mut c = open_server(Config::default());
    let frame = masked(true, OpCode::Text, "héllo wörld".as_bytes());
    for (i, b) in frame.iter().enumerate() {
        let events = feed(&mut c, core::slice::from_ref(b));
        if i + 1 < frame.len() {
            assert!(events.is_empty());
        } else {
            assert_eq!(
                events,
                vec![Event::Text {
                    data: "héllo wörld".into(),
                    last: true
                }]
            );
        }
    }
    assert_eq!(c.recv.assembly.capacity(), 0);
}

#[test]
fn receive_buffer_is_given_back_after_a_large_message() {
    let mut config = Config::default();
    config.recv_buffer_size = 4096;
    let mut c = open_server(config);
    let big = vec![b'x'; 100_000];
    let events = feed(&mut c, &masked(true, OpCode::Binary, &big));
    assert_eq!(events.len(), 1);
    drop(events);
    assert!(c.rx.capacity() <= 4096, "rx kept {} bytes", c.rx.capacity());
    assert_eq!(c.recv.assembly.capacity(), 0, "assembly buffer released");
}

#[test]
fn streaming_text_pieces_are_cut_at_code_points() {
    let mut config = Config::default();
    config.delivery = Delivery::Streaming;
    let mut c = open_server(config);
    let text = "añ€😀".repeat(10);
    let frame = masked(true, OpCode::Text, text.as_bytes());
    let mut got = String::new();
    let mut pieces = 0;
    for b in &frame {
        for e in feed(&mut c, core::slice::from_ref(b)) {
            match e {
                Event::Text { data, last } => {
                    assert!(core::str::from_utf8(data.as_bytes()).is_ok());
                    got.push_str(data.as_str());
                    pieces += 1;
                    assert_eq!(last, got.len() == text.len());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(got, text);
    assert_eq!(pieces, text.chars().count());
}

#[test]
fn streaming_text_code_point_split_across_fragments() {
    let mut config = Config::default();
    config.delivery = Delivery::Streaming;
    let mut c = open_server(config);
    let euro = "€".as_bytes();
    let mut stream = masked(false, OpCode::Text, &euro[..1]);
    stream.extend(masked(false, OpCode::Continuation, &euro[1..2]));
    stream.extend(masked(true, OpCode::Continuation, &euro[2..]));
    let events = feed(&mut c, &stream);
    assert_eq!(
        events,
        vec![Event::Text {
            data: "€".into(),
            last: true
        }]
    );
}

#[test]
fn ping_flood_without_reading_keeps_one_pending_pong() {
    let mut config = Config::default();
    config.max_send_buffer = 1024;
    let mut c = open_server(config);
    let ping = masked(true, OpCode::Ping, &[9u8; 100]);
    for _ in 0..1000 {
        feed(&mut c, &ping);
        assert!(
            c.transmit_len() < 1024 + 102,
            "tx grew to {}",
            c.transmit_len()
        );
    }
    assert!(c.pending_pong.is_some());
    // Draining lets the latest pending Pong out.
    let n = c.transmit_len();
    c.advance_transmit(n);
    assert!(!c.poll_transmit().is_empty());
    assert!(c.pending_pong.is_none());
}

#[test]
fn recv_never_takes_more_than_its_capacity() {
    let mut config = Config::default();
    config.recv_buffer_size = 300;
    let mut c = open_server(config);
    let data = vec![0u8; 10_000];
    // The configured size plus one frame header.
    let limit = 300 + crate::frame::MAX_HEADER_LEN;
    assert_eq!(c.recv_capacity(), limit);
    assert_eq!(c.recv(&data), limit);
    assert_eq!(c.recv(&data), 0);
}

#[test]
fn keepalive_timer_starts_lazily_after_accept() {
    let mut config = Config::default();
    config.keepalive = Some(Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    });
    let t0 = test_epoch();
    let mut c = Connection::server(config, t0);
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + Duration::from_secs(10)),
        "handshake timer"
    );
    c.recv(REQUEST);
    assert!(matches!(c.poll_event(), Ok(Some(Event::Request(_)))));
    c.accept(Accept::new()).unwrap();
    // Due "now" (the last known instant): the host calls handle_timeout at once.
    assert_eq!(c.poll_timeout(), Some(t0));
    let t1 = t0 + Duration::from_secs(3);
    c.handle_timeout(t1);
    assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(30)));
}

#[test]
fn utf8_bytes_views() {
    let t = Utf8Bytes::from("héllo");
    assert_eq!(t.as_str(), "héllo");
    assert_eq!(t.len(), 6);
    assert_eq!(format!("{t:?}"), "\"héllo\"");
    assert_eq!(t, "héllo");
}

#[test]
fn server_sends_large_owned_payloads_without_copying() {
    let mut c = open_server(Config::default());
    let payload = Bytes::from(vec![5u8; 64 << 10]);
    let ptr = payload.as_ptr();
    c.send(crate::Message::Binary(payload.clone())).unwrap();
    c.send(crate::Message::text("small")).unwrap();
    let segments: Vec<&[u8]> = c.tx.segments().collect();
    assert_eq!(segments.len(), 3, "header, payload, next frame");
    assert_eq!(segments[0], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(
        segments[1].as_ptr(),
        ptr,
        "the payload segment is the caller's buffer"
    );
    assert_eq!(segments[2], b"\x81\x05small");
    let total: usize = segments.iter().map(|s| s.len()).sum();
    assert_eq!(total, c.transmit_len());
    c.advance_transmit(total);
    assert!(!c.wants_write());
}

#[test]
fn client_masks_owned_payloads_with_a_copy() {
    let request = crate::handshake::ClientRequest::new("ws://example.com/").unwrap();
    let mut config = Config::default();
    config.rng_seed = Some([7; 32]);
    let mut c = Connection::client(request, config, test_epoch()).unwrap();
    let n = c.transmit_len();
    c.advance_transmit(n);
    let key = crate::handshake::accept_key(match &c.handshake {
        Handshake::Client { key, .. } => key.as_bytes(),
        Handshake::Server { .. } => unreachable!(),
    });
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {key}\r\n\r\n"
    );
    c.recv(response.as_bytes());
    assert!(matches!(c.poll_event(), Ok(Some(Event::Accepted(_)))));
    let payload = Bytes::from(vec![5u8; 64 << 10]);
    c.send(crate::Message::Binary(payload.clone())).unwrap();
    let segments: Vec<Vec<u8>> = c.tx.segments().map(<[u8]>::to_vec).collect();
    assert_eq!(segments.len(), 1);
    let wire = &segments[0];
    let Ok(crate::Status::Complete((h, hn))) = FrameHeader::decode(wire, 0) else {
        panic!()
    };
    let mut body = wire[hn..].to_vec();
    crate::mask::apply_mask(&mut body, h.mask.unwrap(), 0);
    assert_eq!(body, payload);
}

#[test]
fn the_error_is_kept_exactly_while_the_connection_has_failed() {
    let mut c = Connection::server(Config::default(), test_epoch());
    c.recv(REQUEST);
    assert!(matches!(c.poll_event(), Ok(Some(Event::Request(_)))));
    c.accept(Accept::new()).unwrap();
    assert!(c.error.is_none());
    assert_eq!(c.phase, Phase::Open);
    c.recv(&[0x81, 0x00]); // unmasked: a protocol error
    let err = c.poll_event().unwrap_err();
    assert_eq!(c.phase, Phase::Failed);
    assert_eq!(c.error.as_ref(), Some(&err));
    // Later failures (a timer, EOF) do not replace how it ended.
    c.recv_eof();
    c.handle_timeout(test_epoch() + Duration::from_secs(3600));
    assert_eq!(c.poll_event(), Err(err));
}

#[test]
fn keepalive_timeout_closes_the_transport_despite_unsent_bytes() {
    let mut config = Config::default();
    config.keepalive = Some(Keepalive {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    });
    let t0 = test_epoch();
    let mut c = open_server(config);
    c.send_binary(&[1u8; 1000]).unwrap(); // queued, never written: the peer is gone
    c.handle_timeout(t0 + Duration::from_secs(1)); // arms the keepalive timer
    c.handle_timeout(t0 + Duration::from_secs(12)); // activity from the handshake
    c.handle_timeout(t0 + Duration::from_secs(23)); // idle: ping
    c.handle_timeout(t0 + Duration::from_secs(29)); // no answer
    assert!(matches!(
        c.poll_event(),
        Err(Error::Timeout(crate::Timeout::Keepalive))
    ));
    // The queued frames are never going to be read: the transport may close now.
    assert!(c.should_close_transport());
}

/// A generator that always fails, as a hardware RNG might.
struct BrokenRng;

#[derive(Debug)]
struct NoEntropy;

impl fmt::Display for NoEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no entropy")
    }
}

impl core::error::Error for NoEntropy {}

impl rand::TryRng for BrokenRng {
    type Error = NoEntropy;
    fn try_next_u32(&mut self) -> Result<u32, NoEntropy> {
        Err(NoEntropy)
    }
    fn try_next_u64(&mut self) -> Result<u64, NoEntropy> {
        Err(NoEntropy)
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), NoEntropy> {
        Err(NoEntropy)
    }
}

impl rand::TryCryptoRng for BrokenRng {}

fn client_key(c: &Connection) -> String {
    match &c.handshake {
        Handshake::Client { key, .. } => key.clone(),
        Handshake::Server { .. } => unreachable!(),
    }
}

#[test]
fn client_rng_comes_from_the_embedders_generator() {
    let request = || crate::handshake::ClientRequest::new("ws://example.com/").unwrap();
    let from = |seed: u64| {
        let mut rng = <StdRng as SeedableRng>::seed_from_u64(seed);
        let mut config = Config::default();
        config.seed_from(&mut rng).unwrap();
        Connection::client(request(), config, test_epoch()).unwrap()
    };
    // The generator decides the key: the same generator state gives the same key,
    // another gives another.
    assert_eq!(client_key(&from(1)), client_key(&from(1)));
    assert_ne!(client_key(&from(1)), client_key(&from(2)));
    // A failing generator is an error, not a predictable key, and leaves the seed alone.
    let mut config = Config::default();
    assert_eq!(
        config.seed_from(&mut BrokenRng).unwrap_err(),
        RequestError::Entropy
    );
    assert_eq!(config.rng_seed, None);
    // A server never masks: it needs no seed, even without std.
    let mut no_seed = Config::default();
    no_seed.rng_seed = None;
    let server =
        Connection::upgraded(Role::Server, no_seed, test_epoch(), Negotiated::default()).unwrap();
    assert_eq!(server.state(), State::Open);
}

#[cfg(not(feature = "std"))]
#[test]
fn without_std_a_client_needs_a_seed_or_a_generator() {
    let request = crate::handshake::ClientRequest::new("ws://example.com/").unwrap();
    assert_eq!(
        Connection::client(request, Config::default(), test_epoch()).unwrap_err(),
        RequestError::Entropy
    );
}

#[test]
fn payload_of_a_message_being_assembled_skips_the_receive_buffer() {
    let mut config = Config::default();
    config.recv_buffer_size = 1024;
    let mut c = open_server(config);
    let payload = vec![b'x'; 10_000];
    let wire = masked(true, OpCode::Text, &payload);
    // The header and the first bytes go through the receive buffer...
    assert_eq!(c.recv(&wire[..500]), 500);
    assert!(matches!(c.poll_event(), Ok(None)));
    assert!(c.rx.is_empty());
    assert_eq!(c.recv.assembly.len(), 500 - 4 - 4);
    // ...the rest of the frame is taken whole, past the receive buffer's size, straight
    // into the message, unmasked and validated.
    assert_eq!(
        c.recv_capacity(),
        10_000 - 492 + 1024 + crate::frame::MAX_HEADER_LEN
    );
    assert_eq!(c.recv(&wire[500..]), wire.len() - 500);
    assert!(c.rx.is_empty());
    assert_eq!(c.recv.assembly.len(), 10_000);
    match c.poll_event() {
        Ok(Some(Event::Text { data, last: true })) => assert_eq!(data.as_bytes(), &payload[..]),
        other => panic!("expected the text, got {other:?}"),
    }
}

/// After a burst of large fragmented messages, an idle connection forgets their size:
/// the next small fragmented message reserves what it needs, not the burst's size.
#[test]
fn the_assembly_reservation_shrinks_back_once_idle() {
    let mut c = open_server(Config::default());
    let big = vec![b'x'; 512 << 10];
    let mut stream = masked(false, OpCode::Binary, &big[..1000]);
    stream.extend(masked(true, OpCode::Continuation, &big[1000..]));
    let events = feed(&mut c, &stream);
    assert_eq!(events.len(), 1);
    drop(events);
    assert_eq!(c.recv.last_assembled, 512 << 10);
    c.handle_timeout(test_epoch() + Duration::from_secs(30));
    assert_eq!(c.recv.last_assembled, 0);
    assert_eq!(c.buffered_bytes(), 0);
    // A small fragmented message: its first fragment arrives, the rest later.
    let events = feed(&mut c, &masked(false, OpCode::Binary, b"small"));
    assert!(events.is_empty());
    assert!(
        c.recv.assembly.capacity() < 64 << 10,
        "reserved {} bytes for a small message",
        c.recv.assembly.capacity()
    );
}

/// The assembly buffer a message was split out of keeps no handle on that allocation
/// once input runs out: dropping the message gives the memory back. (`capacity()` of
/// such a buffer reads 0, so a check on it missed it.)
#[test]
fn an_assembled_message_dropped_by_the_application_is_freed() {
    let mut c = open_server(Config::default());
    let big = vec![b'x'; 512 << 10];
    let mut stream = masked(false, OpCode::Binary, &big[..1000]);
    stream.extend(masked(true, OpCode::Continuation, &big[1000..]));
    let mut events = feed(&mut c, &stream);
    let Some(Event::Binary { data, .. }) = events.pop() else {
        panic!("no message");
    };
    let mut data = data;
    // The application's handle is the only one: `Bytes::try_into_mut` succeeds only
    // for a unique handle.
    data = match data.try_into_mut() {
        Ok(unique) => unique.freeze(),
        Err(_) => panic!("the connection still holds the message's allocation"),
    };
    assert_eq!(data.len(), 512 << 10);
}

// ---- prepared messages (fan-out): send_prepared ----

/// Everything queued for the transport, in order, without taking it.
fn queued(c: &Connection) -> Vec<u8> {
    c.tx.segments().flatten().copied().collect()
}

/// Everything queued for the transport, taken (as a host that wrote it all).
fn take_queued(c: &mut Connection) -> Vec<u8> {
    let bytes = queued(c);
    c.advance_transmit(bytes.len());
    bytes
}

/// The RSV bits of each frame in `wire` (whole frames only).
#[cfg(feature = "deflate")]
fn frame_rsvs(mut wire: &[u8]) -> Vec<u8> {
    let mut rsvs = Vec::new();
    while !wire.is_empty() {
        let Ok(crate::Status::Complete((h, hn))) = FrameHeader::decode(wire, 0x70) else {
            panic!("not a whole frame: {:02x?}", &wire[..wire.len().min(16)]);
        };
        rsvs.push(h.rsv);
        wire = &wire[hn + usize::try_from(h.payload_len).unwrap()..];
    }
    rsvs
}

fn text_of(len: usize) -> String {
    "prepared text, ".chars().cycle().take(len).collect()
}

fn binary_of(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i * 7 % 251).unwrap())
        .collect()
}

/// The lengths where the header changes form (RFC 6455 §5.2: 7-bit, 16-bit, 64-bit)
/// and around the zero-copy threshold.
const PREPARED_LENGTHS: [usize; 9] = [0, 1, 125, 126, 4095, 4096, 65535, 65536, 70000];

#[test]
fn prepared_frames_are_the_bytes_send_text_and_send_binary_queue() {
    for len in PREPARED_LENGTHS {
        let text = text_of(len);
        let mut by_text = open_server(Config::default());
        let mut by_prepared = open_server(Config::default());
        by_text.send_text(&text).unwrap();
        by_prepared
            .send_prepared(&PreparedMessage::text(text.clone()))
            .unwrap();
        assert_eq!(queued(&by_prepared), queued(&by_text), "text, {len} bytes");
        assert_eq!(by_prepared.transmit_len(), by_text.transmit_len());

        let data = binary_of(len);
        let mut by_binary = open_server(Config::default());
        let mut by_prepared = open_server(Config::default());
        by_binary.send_binary(&data).unwrap();
        by_prepared
            .send_prepared(&PreparedMessage::binary(data.clone()))
            .unwrap();
        assert_eq!(
            queued(&by_prepared),
            queued(&by_binary),
            "binary, {len} bytes"
        );
    }
}

#[test]
fn prepared_frames_interleave_with_other_sends_in_order() {
    let mut expected = open_server(Config::default());
    let mut c = open_server(Config::default());
    let big = PreparedMessage::binary(binary_of(70000));
    let small = PreparedMessage::text("small");
    for conn in [&mut expected, &mut c] {
        conn.send_text("first").unwrap();
    }
    expected.send_binary(&binary_of(70000)).unwrap();
    c.send_prepared(&big).unwrap();
    expected.send_text("small").unwrap();
    c.send_prepared(&small).unwrap();
    for conn in [&mut expected, &mut c] {
        conn.send(crate::Message::Ping(Bytes::from_static(b"p")))
            .unwrap();
    }
    assert_eq!(queued(&c), queued(&expected));
    // And a client reading them sees the messages.
    let wire = take_queued(&mut c);
    let mut config = Config::default();
    config.rng_seed = Some([1; 32]);
    let mut client =
        Connection::upgraded(Role::Client, config, test_epoch(), Negotiated::default()).unwrap();
    assert_eq!(
        feed(&mut client, &wire),
        vec![
            Event::Text {
                data: "first".into(),
                last: true
            },
            Event::Binary {
                data: Bytes::from(binary_of(70000)),
                last: true
            },
            Event::Text {
                data: "small".into(),
                last: true
            },
            Event::Ping(Bytes::from_static(b"p")),
        ]
    );
}

#[test]
fn large_prepared_frames_are_shared_and_small_ones_copied() {
    let big = PreparedMessage::binary(binary_of(64 << 10));
    let small = PreparedMessage::text(text_of(100));
    assert_eq!(big.kind(), MessageKind::Binary);
    assert_eq!(big.payload(), binary_of(64 << 10));
    assert_eq!(
        big.payload().as_ptr(),
        big.frame()[big.frame().len() - (64 << 10)..].as_ptr(),
        "the payload is a view into the frame"
    );
    assert_eq!(small.payload(), text_of(100).as_bytes());
    for _ in 0..3 {
        let mut c = open_server(Config::default());
        c.send_prepared(&small).unwrap();
        c.send_prepared(&big).unwrap();
        c.send_prepared(&small).unwrap();
        let segments: Vec<&[u8]> = c.tx.segments().collect();
        assert_eq!(segments.len(), 3, "small frame, shared frame, small frame");
        assert_eq!(segments[0], small.frame());
        assert_eq!(
            segments[1].as_ptr(),
            big.frame().as_ptr(),
            "every connection queues the prepared frame itself"
        );
        assert_eq!(segments[1].len(), big.frame().len());
        assert_eq!(segments[2], small.frame());
    }
}

#[test]
fn a_client_refuses_prepared_frames_it_would_have_to_mask() {
    let mut config = Config::default();
    config.rng_seed = Some([2; 32]);
    let mut client =
        Connection::upgraded(Role::Client, config, test_epoch(), Negotiated::default()).unwrap();
    assert_eq!(
        client.send_prepared(&PreparedMessage::text("hi")),
        Err(SendError::ClientMustMask)
    );
    assert_eq!(client.transmit_len(), 0, "nothing queued");
    assert_eq!(
        client.state(),
        State::Open,
        "and the connection is unchanged"
    );
    client.send_text("hi").unwrap();
}

#[test]
fn prepared_sends_follow_the_rules_of_send_text() {
    let message = PreparedMessage::binary(binary_of(200));
    // Before the handshake completes.
    let mut c = Connection::server(Config::default(), test_epoch());
    assert_eq!(c.send_prepared(&message), Err(SendError::NotOpen));
    // While a fragmented message is being sent.
    let mut c = open_server(Config::default());
    c.send_fragment(MessageKind::Text, b"part", false).unwrap();
    assert_eq!(c.send_prepared(&message), Err(SendError::MessageInProgress));
    // With the send buffer full: the same high-water mark as every data send.
    let mut config = Config::default();
    config.max_send_buffer = 100;
    let mut c = open_server(config);
    c.send_prepared(&message).unwrap();
    assert!(c.is_send_blocked());
    assert_eq!(c.send_prepared(&message), Err(SendError::Blocked));
    assert_eq!(c.send_text("x"), Err(SendError::Blocked));
    take_queued(&mut c);
    c.send_prepared(&message).unwrap();
    // After our Close, and once the closing handshake is over.
    let mut c = open_server(Config::default());
    c.close(CloseCode::NORMAL, "").unwrap();
    let before = c.transmit_len();
    assert_eq!(c.send_prepared(&message), Err(SendError::Closing));
    assert_eq!(c.transmit_len(), before, "nothing after the Close frame");
    feed(&mut c, &masked(true, OpCode::Close, &[0x03, 0xe8]));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.send_prepared(&message), Err(SendError::Closed));
}

#[cfg(feature = "deflate")]
mod prepared_deflate {
    use super::*;
    use crate::extensions::deflate::{DeflateConfig, DeflateParams, DirectionParams};

    /// A server and a client that negotiated permessage-deflate with `server` as the
    /// parameters of what the server sends.
    fn pair(server: DirectionParams) -> (Connection, Connection) {
        let params = DeflateParams {
            client: DirectionParams::default(),
            server,
        };
        let negotiated = Negotiated::default().deflate(params);
        let mut config = Config::default();
        config.rng_seed = Some([3; 32]);
        let open = |role| {
            Connection::upgraded(role, config.clone(), test_epoch(), negotiated.clone()).unwrap()
        };
        (open(Role::Server), open(Role::Client))
    }

    fn no_takeover(max_window_bits: u8) -> DirectionParams {
        DirectionParams {
            max_window_bits,
            no_context_takeover: true,
        }
    }

    fn publication(i: usize) -> String {
        format!("publication {i}: ") + &"the quick brown fox jumps over the lazy dog. ".repeat(20)
    }

    fn reply(i: usize) -> String {
        format!("reply {i}: ") + &"a reply that compresses well, well, well. ".repeat(i + 2)
    }

    fn text_event(s: &str) -> Event {
        Event::Text {
            data: s.into(),
            last: true,
        }
    }

    #[test]
    fn with_deflate_keeps_only_what_compression_shrinks() {
        let policy = DeflateConfig::default();
        let compressible = PreparedMessage::text(publication(0)).with_deflate(&policy);
        let deflated = compressible.deflated_frame().expect("compressed");
        assert!(deflated.len() < compressible.frame().len() / 4);
        assert_eq!(deflated[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
        // The uncompressed frame is still there, for the connections that cannot take it.
        assert_eq!(compressible.payload(), publication(0).as_bytes());
        // Noise does not compress: no compressed frame.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let noisy = PreparedMessage::binary(noise).with_deflate(&policy);
        assert_eq!(noisy.deflated_frame(), None);
        // Below min_compress_size, above max_compress_size: as a connection's own sends.
        assert_eq!(
            PreparedMessage::text("short")
                .with_deflate(&policy)
                .deflated_frame(),
            None
        );
        let mut small_max = DeflateConfig::default();
        small_max.max_compress_size = 100;
        assert_eq!(
            PreparedMessage::text(publication(0))
                .with_deflate(&small_max)
                .deflated_frame(),
            None
        );
    }

    #[test]
    fn without_context_takeover_prepared_frames_go_compressed_and_round_trip() {
        let (mut server, mut client) = pair(no_takeover(15));
        let policy = DeflateConfig::low_memory();
        let mut expected = Vec::new();
        let mut wire = Vec::new();
        for i in 0..6 {
            let prepared = if i % 2 == 0 {
                PreparedMessage::text(publication(i)).with_deflate(&policy)
            } else {
                PreparedMessage::binary(publication(i).into_bytes()).with_deflate(&policy)
            };
            server.send_prepared(&prepared).unwrap();
            let sent = take_queued(&mut server);
            assert_eq!(sent, prepared.deflated_frame().unwrap(), "the shared frame");
            wire.extend(sent);
            expected.push(if i % 2 == 0 {
                text_event(&publication(i))
            } else {
                Event::Binary {
                    data: Bytes::from(publication(i)),
                    last: true,
                }
            });
            // The connection's own compressed sends, between them.
            server.send_text(&reply(i)).unwrap();
            wire.extend(take_queued(&mut server));
            expected.push(text_event(&reply(i)));
        }
        assert_eq!(
            frame_rsvs(&wire),
            vec![0x40; 12],
            "every message compressed"
        );
        assert_eq!(feed(&mut client, &wire), expected);
        // Byte by byte too: the client inflates the shared frames as they arrive.
        let (_, mut client) = pair(no_takeover(15));
        let mut events = Vec::new();
        for b in &wire {
            events.extend(feed(&mut client, core::slice::from_ref(b)));
        }
        assert_eq!(events, expected);
    }

    #[test]
    fn with_context_takeover_prepared_frames_go_uncompressed_and_round_trip() {
        let (mut server, mut client) = pair(DirectionParams::default());
        let policy = DeflateConfig::default();
        let mut expected = Vec::new();
        let mut wire = Vec::new();
        let mut rsvs = Vec::new();
        for i in 0..6 {
            // Similar texts both ways, so the connection's compressor refers back into
            // its history across the prepared messages.
            let prepared = PreparedMessage::text(publication(i)).with_deflate(&policy);
            assert!(prepared.deflated_frame().is_some());
            server.send_prepared(&prepared).unwrap();
            let sent = take_queued(&mut server);
            assert_eq!(sent, prepared.frame(), "the uncompressed frame");
            wire.extend(sent);
            expected.push(text_event(&publication(i)));
            server.send_text(&publication(i + 100)).unwrap();
            wire.extend(take_queued(&mut server));
            expected.push(text_event(&publication(i + 100)));
            rsvs.extend([0, 0x40]);
        }
        assert_eq!(frame_rsvs(&wire), rsvs);
        assert_eq!(feed(&mut client, &wire), expected);
    }

    /// Why `send_prepared` does not send the compressed frame with context takeover:
    /// injected by hand between two of the connection's own compressed messages, it
    /// enters the client's window but not the server's history, and the second message's
    /// back-references then land in the wrong bytes.
    #[test]
    fn an_independently_compressed_frame_would_desynchronise_context_takeover() {
        let (mut server, mut client) = pair(DirectionParams::default());
        let first = publication(1);
        let injected = PreparedMessage::text(reply(30)).with_deflate(&DeflateConfig::default());
        server.send_text(&first).unwrap();
        let mut wire = take_queued(&mut server);
        wire.extend_from_slice(injected.deflated_frame().unwrap());
        server.send_text(&first).unwrap();
        wire.extend(take_queued(&mut server));
        let mut got = Vec::new();
        client.recv(&wire);
        loop {
            match client.poll_event() {
                Ok(Some(e)) => got.push(Ok(e)),
                Ok(None) => break,
                Err(e) => {
                    got.push(Err(e));
                    break;
                }
            }
        }
        assert_eq!(got[0], Ok(text_event(&first)));
        assert_eq!(got[1], Ok(text_event(&reply(30))));
        assert_ne!(
            got.get(2),
            Some(&Ok(text_event(&first))),
            "the repeat of the first message decoded against the wrong window"
        );
    }

    #[test]
    fn prepared_frames_go_compressed_only_within_the_negotiated_window() {
        let wide = PreparedMessage::text(publication(0)).with_deflate(&DeflateConfig::low_memory());
        let mut narrow_policy = DeflateConfig::low_memory();
        narrow_policy.server_max_window_bits = Some(10);
        let narrow = PreparedMessage::text(publication(0)).with_deflate(&narrow_policy);
        let mut smallest_policy = DeflateConfig::low_memory();
        smallest_policy.server_max_window_bits = Some(8);
        let smallest = PreparedMessage::text(publication(0)).with_deflate(&smallest_policy);
        // The client asked for a 10-bit window: the 15-bit frame does not fit it.
        let (mut server, mut client) = pair(no_takeover(10));
        let mut wire = Vec::new();
        for (prepared, compressed) in [(&wide, false), (&narrow, true), (&smallest, true)] {
            server.send_prepared(prepared).unwrap();
            let sent = take_queued(&mut server);
            let expected = if compressed {
                prepared.deflated_frame().unwrap()
            } else {
                prepared.frame()
            };
            assert_eq!(sent, expected, "compressed: {compressed}");
            wire.extend(sent);
        }
        assert_eq!(frame_rsvs(&wire), vec![0, 0x40, 0x40]);
        assert_eq!(
            feed(&mut client, &wire),
            vec![text_event(&publication(0)); 3]
        );
        // A connection with the full window takes all three compressed.
        let (mut server, mut client) = pair(no_takeover(15));
        for prepared in [&wide, &narrow, &smallest] {
            server.send_prepared(prepared).unwrap();
        }
        let wire = take_queued(&mut server);
        assert_eq!(frame_rsvs(&wire), vec![0x40; 3]);
        assert_eq!(
            feed(&mut client, &wire),
            vec![text_event(&publication(0)); 3]
        );
    }

    #[test]
    fn connections_without_deflate_get_the_uncompressed_frame() {
        let prepared =
            PreparedMessage::text(publication(0)).with_deflate(&DeflateConfig::default());
        let mut c = open_server(Config::default());
        c.send_prepared(&prepared).unwrap();
        assert_eq!(queued(&c), prepared.frame());
    }
}

#[test]
fn an_automatic_close_reason_is_cut_at_123_bytes_on_a_character_boundary() {
    use core::fmt::Write;
    let mut body = super::send::CloseBody::new();
    // 2 bytes of code, then 61 two-byte characters (122 bytes) and one that does not fit.
    body.write_str("ab").unwrap();
    body.write_str(&"é".repeat(62)).unwrap();
    // After a cut nothing more is appended, even what would fit.
    body.write_str("z").unwrap();
    assert_eq!(body.bytes().len(), 2 + 122);
    assert!(core::str::from_utf8(&body.bytes()[2..]).is_ok());
}
