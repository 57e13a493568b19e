//! The conformance vectors of `wsengine_test_support::vectors`, run against the core
//! itself (an echo loop over `Connection`, in memory). The hosts run the same vectors in
//! their own tests: the mio event loop in `mio/tests/`, the tokio adapter in
//! `tokio/tests/` (both through `wsengine_test_support::conformance::tcp_exchange`), the
//! C ABI in `ffi/tests/conformance.rs`.
//!
//! Every runner runs every vector; `vectors::run_all` prints one line per host and, on
//! failure, a diff of the expected and observed replies of each failing vector.

use wsengine::{Accept, Connection, Event, Message, Negotiated, Role};
use wsengine_test_support::conformance::{EchoServer, config, run_in_memory};
use wsengine_test_support::take_transmit;
use wsengine_test_support::vectors::{ACCEPT, Observed, REQUEST, Vector, run_all, vectors};

/// The instant the in-memory runs start at (they arm no timer that could fire): the one
/// place this file takes time for the core.
fn now() -> wsengine::Instant {
    crate::support::t0()
}

// ---- the core, in memory ----

/// How the core runner opens its connection and sends its echoes.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// `Connection::server`, the RFC request, `accept`; echoes with `send_text`/`send_binary`.
    Handshake,
    /// `Connection::upgraded` (a handshake done elsewhere); echoes with the owned
    /// `send(Message::Text | Message::Binary)`.
    AfterHandshake,
}

/// An open server connection.
fn core_server(start: Start) -> Result<Connection, String> {
    match start {
        Start::AfterHandshake => {
            Connection::upgraded(Role::Server, config(), now(), Negotiated::default())
                .map_err(|e| format!("upgraded: {e}"))
        }
        Start::Handshake => {
            let mut conn = Connection::server(config(), now());
            if conn.recv(REQUEST) != REQUEST.len() {
                return Err("the request did not fit".to_owned());
            }
            match conn.poll_event() {
                Ok(Some(Event::Request(_))) => {}
                other => return Err(format!("expected the request, got {other:?}")),
            }
            conn.accept(Accept::new())
                .map_err(|e| format!("accept: {e}"))?;
            let head = String::from_utf8_lossy(&take_transmit(&mut conn)).into_owned();
            if !head.starts_with("HTTP/1.1 101 ") || !head.contains(ACCEPT) {
                return Err(format!("unexpected response {head:?}"));
            }
            Ok(conn)
        }
    }
}

/// An open server connection and how it echoes.
struct CoreEcho {
    conn: Connection,
    start: Start,
}

impl EchoServer for CoreEcho {
    fn recv(&mut self, data: &[u8]) -> Result<usize, String> {
        Ok(self.conn.recv(data))
    }

    /// Polls every event, echoing messages; returns whether anything happened.
    fn echo_events(&mut self, note: &mut String) -> bool {
        let conn = &mut self.conn;
        let mut any = false;
        loop {
            let sent = match conn.poll_event() {
                Ok(Some(Event::Text { data, .. })) => match self.start {
                    Start::Handshake => conn.send_text(data.as_str()),
                    Start::AfterHandshake => conn.send(Message::Text(data)),
                },
                Ok(Some(Event::Binary { data, .. })) => match self.start {
                    Start::Handshake => conn.send_binary(&data),
                    Start::AfterHandshake => conn.send(Message::Binary(data)),
                },
                Ok(Some(_)) => Ok(()),
                Ok(None) => return any,
                // Fatal and sticky: the Close frame is queued.
                Err(_) => return true,
            };
            any = true;
            if let Err(e) = sent {
                note.push_str(&format!("echo refused: {e}; "));
            }
        }
    }

    fn transmit(&mut self) -> Vec<u8> {
        take_transmit(&mut self.conn)
    }

    fn should_close(&self) -> bool {
        self.conn.should_close_transport()
    }
}

/// Feeds the vector's input in reads of at most `read_size` bytes, echoing after each.
fn run_core(vector: &Vector, start: Start, read_size: usize) -> Observed {
    let server = core_server(start).map(|conn| CoreEcho { conn, start });
    run_in_memory(server, vector, read_size)
}

#[test]
fn conformance_core_whole_reads() {
    run_all("core, handshake, whole reads", &vectors(), |v| {
        run_core(v, Start::Handshake, usize::MAX)
    });
    run_all("core, upgraded, whole reads", &vectors(), |v| {
        run_core(v, Start::AfterHandshake, usize::MAX)
    });
}

#[test]
fn conformance_core_one_byte_reads() {
    run_all("core, handshake, 1-byte reads", &vectors(), |v| {
        run_core(v, Start::Handshake, 1)
    });
    run_all("core, upgraded, 7-byte reads", &vectors(), |v| {
        run_core(v, Start::AfterHandshake, 7)
    });
}
