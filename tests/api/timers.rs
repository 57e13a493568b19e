//! Timers on a fake clock: `t0()` plus durations, never sleeping. The handshake timeout,
//! the close timeout and keepalive.

use std::time::Duration;
use wsengine::Instant;

use wsengine::{CloseCode, Connection, Error, Event, Keepalive, OpCode, State, Timeout};

use crate::support::*;

const SECOND: u64 = 1_000;

#[test]
fn handshake_timeout_drops_a_half_request() {
    let mut c = config();
    c.handshake_timeout = Some(Duration::from_secs(10));
    let mut server = Connection::server(c, t0());
    let out = feed(&mut server, &RFC_REQUEST[..RFC_REQUEST.len() / 2]);
    assert_eq!((out.error, out.events), (None, vec![]));
    assert_eq!(server.poll_timeout(), Some(at(10 * SECOND)));

    server.handle_timeout(at(10 * SECOND - 1));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Handshake);

    server.handle_timeout(at(10 * SECOND));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Handshake)));
    assert_eq!(server.state(), State::Failed);
    assert!(take_transmit(&mut server).is_empty(), "nothing is sent");
    assert!(server.should_close_transport());
    assert_eq!(server.poll_timeout(), None);
    assert_eq!(
        server.poll_event(),
        Err(Error::Timeout(Timeout::Handshake)),
        "sticky"
    );
}

/// The request arrived but the application never answered it: the timer still runs.
#[test]
fn handshake_timeout_covers_an_unanswered_request() {
    let mut server = Connection::server(config(), t0());
    server.recv(RFC_REQUEST);
    assert!(matches!(server.poll_event(), Ok(Some(Event::Request(_)))));
    server.handle_timeout(at(10 * SECOND));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Handshake)));
}

#[test]
fn handshake_timeout_on_a_client_without_a_response() {
    let mut client = Connection::client(client_request(), config(), t0()).unwrap();
    take_transmit(&mut client);
    assert_eq!(client.poll_timeout(), Some(at(10 * SECOND)));
    client.handle_timeout(at(10 * SECOND));
    assert_eq!(client.poll_event(), Err(Error::Timeout(Timeout::Handshake)));
}

#[test]
fn handshake_timeout_stops_once_open() {
    // Keepalive (on by default) is the one timer of an open connection: off here.
    let mut c = config();
    c.keepalive = None;
    let mut server = open_server(c);
    assert_eq!(
        server.poll_timeout(),
        None,
        "no timer runs on an open connection"
    );
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Open);
}

#[test]
fn no_handshake_timeout_when_disabled() {
    let mut c = config();
    c.handshake_timeout = None;
    let mut server = Connection::server(c, t0());
    server.recv(&RFC_REQUEST[..10]);
    assert_eq!(server.poll_timeout(), None);
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(server.poll_event(), Ok(None));
}

#[test]
fn close_timeout_when_the_peer_never_answers() {
    let mut c = config();
    c.close_timeout = Some(Duration::from_secs(5));
    let mut server = open_server(c);
    server.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(take_frames(&mut server).len(), 1);
    // The timer starts at the next instant passed in: it is due "now" (the last known
    // instant) until then.
    assert_eq!(server.poll_timeout(), Some(t0()));
    server.handle_timeout(at(SECOND));
    assert_eq!(server.poll_timeout(), Some(at(6 * SECOND)));

    server.handle_timeout(at(6 * SECOND - 1));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Closing);

    server.handle_timeout(at(6 * SECOND));
    assert_eq!(
        server.poll_event(),
        Ok(Some(Event::Closed {
            code: CloseCode::ABNORMAL,
            clean: false
        }))
    );
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Closed);
    assert!(server.should_close_transport());
    assert!(take_transmit(&mut server).is_empty());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn close_timeout_does_not_fire_after_the_peer_answered() {
    let mut server = open_server(config());
    server.close(CloseCode::NORMAL, "").unwrap();
    server.handle_timeout(t0());
    take_transmit(&mut server);
    let out = feed(&mut server, &masked(true, CLOSE, &close_body(1000, b"")));
    assert_eq!(out.events.len(), 2, "{:?}", out.events);
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(server.poll_event(), Ok(None));
}

// ---- keepalive ----

fn keepalive_config(interval_s: u64, timeout_s: u64) -> wsengine::Config {
    let mut c = config();
    c.keepalive = Some(Keepalive {
        interval: Duration::from_secs(interval_s),
        timeout: Duration::from_secs(timeout_s),
    });
    c
}

/// Runs `conn`'s timers from `from` up to `until`, as a host does: calls
/// `handle_timeout` at every instant `poll_timeout` names (at once when it is in the
/// past). Stops early when a frame goes out or an error occurs; returns the instant.
fn run_timers(conn: &mut Connection, from: Instant, until: Instant) -> Instant {
    let mut now = from;
    conn.handle_timeout(now);
    for _ in 0..1_000 {
        if conn.wants_write() || conn.state() == State::Failed {
            return now;
        }
        match conn.poll_timeout() {
            Some(t) if t <= until => {
                now = now.max(t);
                conn.handle_timeout(now);
            }
            _ => return until,
        }
    }
    panic!("the timer keeps firing without time passing");
}

#[test]
fn keepalive_pings_an_idle_peer() {
    let mut server = open_server(keepalive_config(10, 5));
    // Nothing before one interval of silence.
    let now = run_timers(&mut server, t0(), at(10 * SECOND - 1));
    assert_eq!(now, at(10 * SECOND - 1));
    assert!(!server.wants_write());
    // Between one and two intervals (the check runs once per interval).
    let sent_at = run_timers(&mut server, now, at(20 * SECOND));
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1, "one Ping by two intervals: {frames:?}");
    assert_eq!(frames[0].opcode, OpCode::Ping);
    assert!(
        sent_at >= at(10 * SECOND) && sent_at <= at(20 * SECOND),
        "{:?} after t0",
        sent_at - t0()
    );
    // The deadline for an answer.
    assert_eq!(
        server.poll_timeout(),
        Some(sent_at + Duration::from_secs(5))
    );
    assert_eq!(server.poll_event(), Ok(None));
}

#[test]
fn keepalive_pong_in_time_keeps_the_connection() {
    let mut server = open_server(keepalive_config(10, 5));
    let sent_at = run_timers(&mut server, t0(), at(20 * SECOND));
    let frames = take_frames(&mut server);
    assert_eq!(frames[0].opcode, OpCode::Ping);
    // The Pong arrives 4 s later.
    server.handle_timeout(sent_at + Duration::from_secs(4));
    let out = feed(&mut server, &masked(true, PONG, &frames[0].payload));
    assert_eq!(out.events, [Event::Pong(frames[0].payload.clone().into())]);
    server.handle_timeout(sent_at + Duration::from_secs(5));
    assert_eq!(server.poll_event(), Ok(None));
    assert_eq!(server.state(), State::Open);
    // Silence again: another Ping, and then the deadline fails it.
    let second = run_timers(
        &mut server,
        sent_at + Duration::from_secs(5),
        sent_at + Duration::from_secs(60),
    );
    let frames = take_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode, OpCode::Ping);
    server.handle_timeout(second + Duration::from_millis(4_999));
    assert_eq!(server.poll_event(), Ok(None));
    server.handle_timeout(second + Duration::from_secs(5));
    assert_eq!(server.poll_event(), Err(Error::Timeout(Timeout::Keepalive)));
}

#[test]
fn keepalive_silence_past_the_deadline_fails() {
    let mut server = open_server(keepalive_config(10, 5));
    let sent_at = run_timers(&mut server, t0(), at(20 * SECOND));
    assert_eq!(take_frames(&mut server)[0].opcode, OpCode::Ping);
    server.handle_timeout(sent_at + Duration::from_millis(4_999));
    assert_eq!(server.poll_event(), Ok(None));
    server.handle_timeout(sent_at + Duration::from_secs(5));
    let expected = Err(Error::Timeout(Timeout::Keepalive));
    assert_eq!(server.poll_event(), expected);
    assert_eq!(server.state(), State::Failed);
    assert!(
        take_transmit(&mut server).is_empty(),
        "nothing more is sent"
    );
    assert!(server.should_close_transport());
    assert_eq!(server.poll_event(), expected, "sticky");
    assert_eq!(
        Error::Timeout(Timeout::Keepalive).close_code(),
        Some(CloseCode::ABNORMAL)
    );
}

/// Any received data counts as a sign of life: a peer that talks every 5 s is never
/// pinged with a 10 s interval.
#[test]
fn keepalive_any_data_keeps_the_connection() {
    let mut server = open_server(keepalive_config(10, 5));
    let mut now = t0();
    server.handle_timeout(now);
    for i in 0..24 {
        now += Duration::from_secs(5);
        server.handle_timeout(now);
        let out = feed(&mut server, &masked(true, TEXT, b"tick"));
        assert_eq!(out.error, None, "tick {i}");
        assert_eq!(out.events, [text("tick")]);
        server.handle_timeout(now);
        assert!(take_frames(&mut server).is_empty(), "pinged at tick {i}");
    }
    assert_eq!(server.state(), State::Open);
}

/// Both ends with keepalive, joined: the Pings are answered automatically and the
/// connection lives through a long idle period.
#[test]
fn keepalive_pair_survives_idle_hours() {
    let mut pair = open_pair(keepalive_config(10, 5));
    let mut pings_seen = 0;
    for step in 0..(2 * 3_600 / 5) {
        pair.now = at(step * 5 * SECOND);
        pair.drive();
        let (client, server) = pair.take_events();
        pings_seen += client
            .iter()
            .chain(&server)
            .filter(|e| matches!(e, Event::Ping(_)))
            .count();
        assert_eq!(pair.client_out.error, None, "step {step}");
        assert_eq!(pair.server_out.error, None, "step {step}");
    }
    assert!(pings_seen > 100, "keepalive pings: {pings_seen}");
    assert_eq!(pair.client.state(), State::Open);
    assert_eq!(pair.server.state(), State::Open);
}

#[test]
fn keepalive_stops_after_close() {
    let mut server = open_server(keepalive_config(10, 5));
    server.handle_timeout(t0());
    server.close(CloseCode::NORMAL, "").unwrap();
    take_transmit(&mut server);
    let out = feed(&mut server, &masked(true, CLOSE, &close_body(1000, b"")));
    assert_eq!(out.events.len(), 2);
    server.handle_timeout(at(3_600 * SECOND));
    assert_eq!(server.poll_event(), Ok(None));
    assert!(
        take_transmit(&mut server).is_empty(),
        "no Ping after the close"
    );
}

#[test]
fn spurious_and_repeated_handle_timeout_calls_are_harmless() {
    let mut server = open_server(config());
    for _ in 0..5 {
        server.handle_timeout(t0());
        server.handle_timeout(at(1));
    }
    // Time never goes backwards: an earlier instant is ignored.
    server.handle_timeout(t0());
    assert_eq!(server.poll_event(), Ok(None));
    assert!(take_transmit(&mut server).is_empty());
    assert_eq!(server.state(), State::Open);
}
