//! Abuse costs the attacker, not the server: a ping flood by a peer that never reads,
//! connections whose peer stopped reading after the close (or an error), a message
//! that never ends, timeouts of `Duration::MAX`, at most one Close, and the memory an
//! idle connection keeps after a burst. Hours of time pass on the fake clock.

use std::time::Duration;

use bytes::Bytes;
use wsengine::handshake::Reject;
use wsengine::{
    CloseCode, Config, Connection, Error, Event, Instant, Keepalive, Message, OpCode,
    ProtocolError, State, Timeout,
};

use crate::support::*;

const SECOND: u64 = 1_000;

/// A Ping payload that tells Pings apart: the counter, big-endian.
fn ping(i: u32) -> Vec<u8> {
    masked(true, PING, &i.to_be_bytes())
}

// ---- automatic Pongs ----

#[test]
fn a_ping_flood_from_a_peer_that_never_reads_costs_at_most_16_pongs() {
    let mut server = open_server(config());
    let flood: Vec<u8> = (0..100_000u32).flat_map(ping).collect();
    let mut pings = 0;
    for chunk in flood.chunks(4096) {
        let out = feed(&mut server, chunk);
        assert_eq!(out.error, None);
        pings += out.events.len();
        assert!(
            server.transmit_len() < 300,
            "{} bytes queued after {pings} Pings",
            server.transmit_len()
        );
    }
    assert_eq!(pings, 100_000, "every Ping is still reported");
    // The peer reads at last: the first 16 Pongs (a burst is answered one by one), then
    // the answer to the latest Ping.
    let frames = take_frames(&mut server);
    let pongs: Vec<_> = frames
        .iter()
        .map(|f| (f.opcode, f.payload.clone()))
        .collect();
    let mut expected: Vec<_> = (0..16u32)
        .map(|i| (OpCode::Pong, i.to_be_bytes().to_vec()))
        .collect();
    expected.push((OpCode::Pong, 99_999u32.to_be_bytes().to_vec()));
    assert_eq!(pongs, expected);
    assert!(!server.wants_write());
}

/// Pings answered while application data is queued and written out in small, uneven
/// pieces: every frame stays whole and in order, the data arrives intact, the Pongs
/// answer Pings in the order they came, and the latest Ping is answered.
#[test]
fn pongs_interleaved_with_application_data_keep_frame_order() {
    let mut server = open_server(config());
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for i in 0..2_000u32 {
        let out = feed(&mut server, &ping(i));
        assert_eq!(out.error, None);
        if i % 3 == 0 {
            let data = vec![(i % 251) as u8; (i as usize * 7) % 300];
            server.send_binary(&data).unwrap();
            sent.push(data);
        }
        // Write a little, unevenly: sometimes nothing, sometimes part of a frame.
        let budget = (i as usize * 13) % 40;
        let chunk = server.poll_transmit();
        let n = chunk.len().min(budget);
        wire.extend_from_slice(&chunk[..n]);
        server.advance_transmit(n);
    }
    wire.extend(take_transmit(&mut server));
    let frames = decode_frames(&wire);
    let data: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| f.opcode == OpCode::Binary)
        .map(|f| f.payload.clone())
        .collect();
    assert_eq!(data, sent, "application data intact and in order");
    let pongs: Vec<u32> = frames
        .iter()
        .filter(|f| f.opcode == OpCode::Pong)
        .map(|f| u32::from_be_bytes(f.payload.as_slice().try_into().unwrap()))
        .collect();
    assert!(pongs.windows(2).all(|w| w[0] < w[1]), "Pongs out of order");
    assert_eq!(pongs.last(), Some(&1_999), "the latest Ping is answered");
    assert_eq!(
        frames.len(),
        data.len() + pongs.len(),
        "nothing but data and Pongs"
    );
}

// ---- at most one Close ----

fn close_frames(conn: &mut Connection) -> Vec<Option<u16>> {
    take_frames(conn)
        .iter()
        .filter(|f| f.opcode == OpCode::Close)
        .map(|f| f.close_code())
        .collect()
}

#[test]
fn at_most_one_close_whatever_the_order() {
    // Ours, then the peer's.
    let mut server = open_server(config());
    server.close(CloseCode::NORMAL, "").unwrap();
    feed(&mut server, &masked(true, CLOSE, &close_body(1001, b"")));
    assert_eq!(close_frames(&mut server), [Some(1000)]);

    // Ours, then a protocol error.
    let mut server = open_server(config());
    server.close(CloseCode::NORMAL, "").unwrap();
    let out = feed(&mut server, &unmasked(true, TEXT, b"bad"));
    assert_eq!(
        out.error,
        Some(Error::Protocol(ProtocolError::UnmaskedFrame))
    );
    assert_eq!(close_frames(&mut server), [Some(1000)]);

    // Ours, then a message that never ends (before the close timer expires).
    let mut c = config();
    c.close_timeout = Some(Duration::from_secs(60));
    let mut server = open_server(c);
    feed(&mut server, &masked(false, TEXT, b"never"));
    server.close(CloseCode::NORMAL, "").unwrap();
    server.handle_timeout(t0());
    server.handle_timeout(at(31 * SECOND));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Message)));
    assert_eq!(close_frames(&mut server), [Some(1000)]);

    // The peer's (echoed), then the application's and more bad input.
    let mut server = open_server(config());
    feed(&mut server, &masked(true, CLOSE, &close_body(1001, b"")));
    assert!(server.close(CloseCode::NORMAL, "").is_err());
    feed(&mut server, &unmasked(true, TEXT, b"bad"));
    assert_eq!(close_frames(&mut server), [Some(1001)]);

    // A protocol error, then more of everything.
    let mut server = open_server(config());
    feed(&mut server, &unmasked(true, TEXT, b"bad"));
    feed(&mut server, &masked(true, CLOSE, &close_body(1000, b"")));
    assert!(server.close(CloseCode::NORMAL, "").is_err());
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(close_frames(&mut server), [Some(1002)]);

    // A message timeout, then the peer's Close and a protocol error.
    let mut server = open_server(config());
    feed(&mut server, &masked(false, BINARY, b"x"));
    server.handle_timeout(t0());
    server.handle_timeout(at(3_600 * SECOND));
    feed(&mut server, &masked(true, CLOSE, &close_body(1000, b"")));
    feed(&mut server, &unmasked(true, TEXT, b"bad"));
    assert_eq!(close_frames(&mut server), [Some(1008)]);
}

// ---- every connection ends in bounded time ----

/// A host whose peer stopped reading: nothing is ever written. Runs the timers at every
/// deadline `poll_timeout` names and at least once a second (spurious calls are
/// harmless), draining events, for up to `limit`. Returns how long after `from`
/// `should_close_transport` first held.
fn time_to_close(conn: &mut Connection, from: Instant, limit: Duration) -> Option<Duration> {
    let end = from + limit;
    let mut now = from;
    loop {
        // Twice: events may start timers that are due at once (a host calls
        // `handle_timeout` again when `poll_timeout` is not in the future).
        for _ in 0..2 {
            conn.handle_timeout(now);
            while let Ok(Some(_)) = conn.poll_event() {}
        }
        if conn.should_close_transport() {
            return Some(now - from);
        }
        if now >= end {
            return None;
        }
        let step = now + Duration::from_secs(1);
        now = match conn.poll_timeout() {
            Some(t) if t > now && t < step => t,
            _ => step,
        }
        .min(end);
    }
}

fn with_keepalive(on: bool) -> Config {
    let mut c = config();
    c.keepalive = on.then_some(Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
    });
    c
}

const HOURS: Duration = Duration::from_secs(3 * 3_600);

/// What every case below may take at most: close timeout plus flush timeout (defaults).
const BOUND: Duration = Duration::from_secs(5 + 5);

#[test]
fn a_peer_that_stops_reading_after_the_server_closes_is_dropped() {
    for keepalive in [false, true] {
        let mut server = open_server(with_keepalive(keepalive));
        // A backlog the peer will never read, then our Close behind it.
        server.send_binary(&vec![7u8; 1 << 20]).unwrap();
        server.close(CloseCode::GOING_AWAY, "").unwrap();
        let took = time_to_close(&mut server, t0(), HOURS);
        assert!(
            took.is_some_and(|d| d <= BOUND),
            "keepalive {keepalive}: {took:?}"
        );
        assert!(server.wants_write(), "the bytes were never written");
        assert_eq!(server.poll_timeout(), None, "nothing more to wait for");
    }
}

#[test]
fn a_peer_that_stops_reading_after_a_protocol_error_is_dropped() {
    for keepalive in [false, true] {
        let mut server = open_server(with_keepalive(keepalive));
        server.send_binary(&vec![7u8; 1 << 20]).unwrap();
        let out = feed(&mut server, &unmasked(true, TEXT, b"bad"));
        assert!(out.error.is_some());
        server.handle_timeout(at(SECOND));
        // While the Close waits, the flush deadline is what the host waits for.
        assert_eq!(server.poll_timeout(), Some(at(6 * SECOND)));
        assert!(!server.should_close_transport());
        let took = time_to_close(&mut server, at(SECOND), HOURS);
        assert_eq!(took, Some(Duration::from_secs(5)), "keepalive {keepalive}");
    }
}

#[test]
fn a_peer_that_stops_reading_after_its_close_is_dropped() {
    for keepalive in [false, true] {
        let mut server = open_server(with_keepalive(keepalive));
        server.send_binary(&vec![7u8; 1 << 20]).unwrap();
        let out = feed(&mut server, &masked(true, CLOSE, &close_body(1000, b"")));
        assert_eq!(out.events.len(), 2, "{:?}", out.events);
        assert_eq!(server.state(), State::Closed);
        let took = time_to_close(&mut server, t0(), HOURS);
        assert!(
            took.is_some_and(|d| d <= BOUND),
            "keepalive {keepalive}: {took:?}"
        );

        // A client that answered the server's Close but cannot write its answer.
        let mut client = open_client(with_keepalive(keepalive));
        client.send_binary(&vec![7u8; 1 << 20]).unwrap();
        feed(&mut client, &unmasked(true, CLOSE, &close_body(1000, b"")));
        let took = time_to_close(&mut client, t0(), HOURS);
        assert!(
            took.is_some_and(|d| d <= BOUND),
            "client, keepalive {keepalive}: {took:?}"
        );
    }
}

#[test]
fn a_rejected_handshake_that_is_never_read_is_dropped() {
    let mut server = Connection::server(config(), t0());
    server.recv(RFC_REQUEST);
    assert!(matches!(server.poll_event(), Ok(Some(Event::Request(_)))));
    server
        .reject(Reject::new(403).body(vec![b'x'; 4096]))
        .unwrap();
    let took = time_to_close(&mut server, t0(), HOURS);
    assert_eq!(took, Some(Duration::from_secs(5)));
}

#[test]
fn a_peer_that_ends_its_stream_but_does_not_read_is_dropped() {
    let mut server = open_server(with_keepalive(false));
    server.send_binary(&vec![7u8; 1 << 20]).unwrap();
    server.recv_eof();
    let took = time_to_close(&mut server, t0(), HOURS);
    assert_eq!(took, Some(Duration::from_secs(5)));
}

#[test]
fn the_close_timer_gives_up_on_a_peer_that_reads_nothing() {
    let mut c = with_keepalive(false);
    c.flush_timeout = None;
    let mut server = open_server(c);
    server.send_binary(&vec![7u8; 1 << 20]).unwrap();
    server.close(CloseCode::NORMAL, "").unwrap();
    let took = time_to_close(&mut server, t0(), HOURS);
    assert_eq!(
        took,
        Some(Duration::from_secs(5)),
        "the close timeout alone"
    );
}

#[test]
fn without_a_flush_timeout_queued_bytes_wait() {
    let mut c = with_keepalive(false);
    c.flush_timeout = None;
    let mut server = open_server(c);
    server.send_binary(b"backlog").unwrap();
    feed(&mut server, &unmasked(true, TEXT, b"bad"));
    assert_eq!(time_to_close(&mut server, t0(), HOURS), None);
    take_transmit(&mut server);
    assert!(server.should_close_transport());
}

// ---- a message must make progress ----

#[test]
fn a_message_that_never_ends_fails_after_the_message_timeout() {
    let mut c = with_keepalive(true);
    c.message_timeout = Some(Duration::from_secs(30));
    let mut server = open_server(c);
    let out = feed(&mut server, &masked(false, BINARY, b"first fragment"));
    assert_eq!((out.error, out.events), (None, vec![]));
    // The timer started by the fragment is due at once, as `poll_timeout` says.
    assert_eq!(server.poll_timeout(), Some(t0()));
    server.handle_timeout(t0());
    // Only Pings from then on: keepalive is satisfied, the message is not.
    let mut now = t0();
    for _ in 0..5 {
        now += Duration::from_secs(5);
        server.handle_timeout(now);
        let out = feed(&mut server, &masked(true, PING, b"alive"));
        assert_eq!(out.error, None);
    }
    server.handle_timeout(at(30 * SECOND - 1));
    assert_eq!(server.poll_event(), Ok(None));
    server.handle_timeout(at(30 * SECOND));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Message)));
    assert_eq!(server.state(), State::Failed);
    assert_eq!(
        Error::Timeout(Timeout::Message).close_code(),
        Some(CloseCode::POLICY)
    );
    let frames = take_frames(&mut server);
    assert_eq!(frames.last().and_then(|f| f.close_code()), Some(1008));
    // The Close says which timer expired.
    let close = frames.last().expect("a Close frame");
    assert_eq!(
        &close.payload[2..],
        b"data message did not complete in time"
    );
    assert!(server.should_close_transport());
}

#[test]
fn a_large_frame_announced_and_not_sent_fails_after_the_message_timeout() {
    let mut server = open_server(with_keepalive(false));
    let frame = masked(true, BINARY, &vec![1u8; 1 << 20]);
    let out = feed(&mut server, &frame[..1000]);
    assert_eq!(out.error, None);
    assert_eq!(
        server.poll_timeout(),
        Some(t0()),
        "started at the next instant"
    );
    let took = time_to_close(&mut server, t0(), HOURS);
    assert_eq!(took, Some(Duration::from_secs(30 + 5)));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Message)));
}

#[test]
fn messages_that_complete_in_time_never_time_out() {
    let mut server = open_server(with_keepalive(false));
    let mut now = t0();
    for i in 0..200u64 {
        // Each message takes 20 s across two reads; a new one starts at once.
        server.handle_timeout(now);
        let out = feed(&mut server, &masked(false, TEXT, b"a"));
        assert_eq!(out.error, None, "message {i}");
        now += Duration::from_secs(20);
        server.handle_timeout(now);
        let out = feed(&mut server, &masked(true, CONT, b"b"));
        assert_eq!(
            (out.error, out.events),
            (None, vec![text("ab")]),
            "message {i}"
        );
    }
    assert_eq!(server.poll_timeout(), None, "no timer between messages");
}

#[test]
fn a_whole_message_in_one_read_starts_no_timer() {
    let mut server = open_server(with_keepalive(false));
    let out = feed(&mut server, &masked(true, BINARY, &[1u8; 4000]));
    assert_eq!(out.events.len(), 1);
    assert_eq!(server.poll_timeout(), None);
}

// ---- Duration::MAX means never ----

#[test]
fn a_timeout_of_duration_max_never_fires() {
    let mut c = config();
    c.handshake_timeout = Some(Duration::MAX);
    c.close_timeout = Some(Duration::MAX);
    c.message_timeout = Some(Duration::MAX);
    c.flush_timeout = Some(Duration::MAX);
    c.keepalive = Some(Keepalive {
        interval: Duration::MAX,
        timeout: Duration::MAX,
    });
    let mut server = Connection::server(c.clone(), t0());
    server.handle_timeout(t0());
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Handshake);

    let mut server = open_server(c);
    feed(&mut server, &masked(false, TEXT, b"slow"));
    server.handle_timeout(t0());
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(server.poll_event(), Ok(None));
    assert!(take_frames(&mut server).is_empty(), "no keepalive Ping");
    server.close(CloseCode::NORMAL, "").unwrap();
    server.handle_timeout(at(3_600 * SECOND));
    server.handle_timeout(at(7_200 * SECOND));
    assert_eq!(server.state(), State::Closing);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn keepalive_is_on_by_default() {
    assert_eq!(
        Config::default().keepalive,
        Some(Keepalive {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        })
    );
    let mut server = open_server(config());
    server.handle_timeout(t0());
    // The handshake's bytes count as activity for the first interval.
    server.handle_timeout(at(30 * SECOND));
    assert!(take_frames(&mut server).is_empty());
    server.handle_timeout(at(60 * SECOND));
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode, OpCode::Ping);
}

// ---- memory back after a burst ----

/// Echoes one message of `len` bytes through `server` (the host writes everything
/// out), then lets time pass as an idle connection's timers do.
fn echo_then_idle(server: &mut Connection, client: &mut Connection, len: usize) {
    client.send_binary(&vec![b'e'; len]).unwrap();
    let out = feed(server, &take_transmit(client));
    assert_eq!(out.error, None);
    for event in out.events {
        if let Event::Binary { data, last: true } = event {
            server.send(Message::Binary(data)).unwrap();
        }
    }
    let echoed = feed(client, &take_transmit(server));
    assert_eq!(echoed.error, None);
    assert!(
        matches!(&echoed.events[..], [Event::Binary { data, last: true }] if data.len() == len)
    );
    while let Ok(Some(_)) = server.poll_event() {}
    server.handle_timeout(at(30 * SECOND));
}

#[test]
fn an_idle_connection_after_an_echo_holds_no_buffer() {
    for len in [16, 4 << 10, 1 << 20] {
        let mut pair = open_pair(config());
        assert_eq!(pair.server.buffered_bytes(), 0, "untouched");
        echo_then_idle(&mut pair.server, &mut pair.client, len);
        assert_eq!(pair.server.buffered_bytes(), 0, "after an echo of {len} B");
    }
}

#[cfg(feature = "deflate")]
#[test]
fn an_idle_deflate_connection_after_an_echo_holds_no_buffer() {
    use wsengine::extensions::deflate::DeflateConfig;
    let mut c = config();
    c.deflate = Some(DeflateConfig::default());
    for len in [16, 4 << 10, 1 << 20] {
        let mut pair = open_pair(c.clone());
        assert!(pair.server.deflate_params().is_some());
        echo_then_idle(&mut pair.server, &mut pair.client, len);
        assert_eq!(pair.server.buffered_bytes(), 0, "after an echo of {len} B");
    }
}

/// A Pong still to answer when the connection fails goes out before the Close (the
/// Ping came first), and nothing after it.
#[test]
fn a_pending_pong_goes_out_before_the_close_of_a_failure() {
    let mut server = open_server(config());
    feed(&mut server, &cat(&[&ping(1), &ping(2)]));
    assert!(server.wants_write());
    feed(&mut server, &unmasked(true, TEXT, b"bad"));
    let frames = take_frames(&mut server);
    let kinds: Vec<_> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(kinds, [OpCode::Pong, OpCode::Pong, OpCode::Close]);
    assert_eq!(frames[1].payload, 2u32.to_be_bytes());
    assert!(server.send(Message::Ping(Bytes::new())).is_err());
}

/// What every connection carries for life stays small: the handshake request (server),
/// the client's request and RNG, and permessage-deflate's state are boxed, so a server
/// connection without compression does not hold their size inline (the hostile suite's
/// idle attack counts bytes per connection over 10,000 of them).
#[cfg(target_pointer_width = "64")]
#[test]
fn a_connection_is_at_most_1_kib_inline() {
    let size = core::mem::size_of::<wsengine::Connection>();
    assert!(size <= 1024, "size_of::<Connection>() = {size}");
}
