//! Unit tests that look inside the connection (buffers, timers). Protocol behaviour seen
//! from outside is tested in `tests/api/`.
#![allow(clippy::field_reassign_with_default)] // Config is built as embedders build it

use super::*;
use crate::config::{Delivery, Keepalive};
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
