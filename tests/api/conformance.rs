//! The conformance vectors of `tests/conformance/vectors.rs`, run against the hosts this
//! test binary can drive: the core itself (an echo loop over `Connection`, in memory) and
//! the mio driver (an echo server on 127.0.0.1, one TCP connection per vector). The tokio
//! adapter's runner is in `tokio.rs` (feature `tokio`) and shares [`tcp_exchange`]; the C
//! ABI's is `ffi/tests/conformance.rs`.
//!
//! Every runner runs every vector; `vectors::run_all` prints one line per host and, on
//! failure, a diff of the expected and observed replies of each failing vector.
#![allow(
    clippy::disallowed_types,
    clippy::field_reassign_with_default,
    reason = "a test client on real sockets; Config is non-exhaustive"
)]

#[path = "../conformance/vectors.rs"]
pub(crate) mod vectors;

use wsengine::{Accept, Config, Connection, Event, Role};

use self::vectors::{ACCEPT, Observed, REQUEST, Vector, run_all, vectors};

/// The configuration of every host's echo server: the vectors' limits, the rest default.
pub(crate) fn config() -> Config {
    let mut c = Config::default();
    c.max_frame_size = vectors::MAX_FRAME_SIZE;
    c.max_message_size = vectors::MAX_MESSAGE_SIZE;
    c.max_fragments = vectors::MAX_FRAGMENTS;
    c
}

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
    /// `Connection::after_handshake` (a handshake done elsewhere); echoes with the owned
    /// `send_text_bytes`/`send_binary_bytes`.
    AfterHandshake,
}

/// An open server connection.
fn core_server(start: Start) -> Result<Connection, String> {
    match start {
        Start::AfterHandshake => Connection::after_handshake(Role::Server, config(), now())
            .map_err(|e| format!("after_handshake: {e}")),
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
            let head = String::from_utf8_lossy(&transmit(&mut conn)).into_owned();
            if !head.starts_with("HTTP/1.1 101 ") || !head.contains(ACCEPT) {
                return Err(format!("unexpected response {head:?}"));
            }
            Ok(conn)
        }
    }
}

/// Everything `conn` has queued for the transport.
fn transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = conn.poll_transmit();
        if chunk.is_empty() {
            return out;
        }
        let n = chunk.len();
        out.extend_from_slice(chunk);
        conn.advance_transmit(n);
    }
}

/// Polls every event, echoing messages; returns whether anything happened.
fn echo_events(conn: &mut Connection, start: Start, note: &mut String) -> bool {
    let mut any = false;
    loop {
        let sent = match conn.poll_event() {
            Ok(Some(Event::Text { data, .. })) => match start {
                Start::Handshake => conn.send_text(data.as_str()),
                Start::AfterHandshake => conn.send_text_bytes(data),
            },
            Ok(Some(Event::Binary { data, .. })) => match start {
                Start::Handshake => conn.send_binary(&data),
                Start::AfterHandshake => conn.send_binary_bytes(data),
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

/// Feeds the vector's input in reads of at most `read_size` bytes, echoing after each.
fn run_core(vector: &Vector, start: Start, read_size: usize) -> Observed {
    let mut conn = match core_server(start) {
        Ok(conn) => conn,
        Err(e) => {
            return Observed {
                error: Some(e),
                ..Observed::default()
            };
        }
    };
    let mut observed = Observed::default();
    for piece in vector.input.chunks(read_size) {
        let mut data = piece;
        while !data.is_empty() {
            let taken = conn.recv(data);
            data = &data[taken..];
            let progressed = echo_events(&mut conn, start, &mut observed.note);
            observed.bytes.extend(transmit(&mut conn));
            if taken == 0 && !progressed {
                observed.error = Some(format!("stuck with {} bytes left", data.len()));
                return observed;
            }
        }
    }
    echo_events(&mut conn, start, &mut observed.note);
    observed.bytes.extend(transmit(&mut conn));
    observed.closed = conn.should_close_transport();
    observed
}

#[test]
fn conformance_core_whole_reads() {
    run_all("core, handshake, whole reads", &vectors(), |v| {
        run_core(v, Start::Handshake, usize::MAX)
    });
    run_all("core, after_handshake, whole reads", &vectors(), |v| {
        run_core(v, Start::AfterHandshake, usize::MAX)
    });
}

#[test]
fn conformance_core_one_byte_reads() {
    run_all("core, handshake, 1-byte reads", &vectors(), |v| {
        run_core(v, Start::Handshake, 1)
    });
    run_all("core, after_handshake, 7-byte reads", &vectors(), |v| {
        run_core(v, Start::AfterHandshake, 7)
    });
}

// ---- a client on a real socket, for the network hosts ----

#[cfg(any(feature = "mio", feature = "tokio"))]
pub(crate) use self::tcp::tcp_exchange;

/// The client of the network runners (mio driver, tokio adapter).
#[cfg(any(feature = "mio", feature = "tokio"))]
mod tcp {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use super::vectors::{ACCEPT, Observed, REQUEST, Vector, reply_count};

    /// Longest a vector may take on a network host.
    const DEADLINE: Duration = Duration::from_secs(5);
    /// For a vector whose server keeps the connection open: how long to wait, once the
    /// expected replies are in, for anything more (there must be nothing).
    const QUIET: Duration = Duration::from_millis(200);

    /// Runs one vector against the echo server at `addr` over a fresh TCP connection:
    /// the opening handshake, the input, then reads until the server closes (EOF), the
    /// expected replies of a connection that stays open are in and [`QUIET`] passed, or
    /// [`DEADLINE`]. The socket is closed on return.
    pub(crate) fn tcp_exchange(addr: SocketAddr, vector: &Vector) -> Observed {
        let mut observed = Observed::default();
        if let Err(e) = exchange(addr, vector, &mut observed) {
            observed.error = Some(e);
        }
        observed
    }

    fn exchange(addr: SocketAddr, vector: &Vector, observed: &mut Observed) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        let mut s =
            TcpStream::connect_timeout(&addr, DEADLINE).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(DEADLINE))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(DEADLINE))
            .map_err(|e| e.to_string())?;
        s.write_all(REQUEST)
            .map_err(|e| format!("writing the request: {e}"))?;
        // The head, one byte at a time so that no frame byte is taken with it.
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                other => return Err(format!("reading the 101: {other:?} after {head:?}")),
            }
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101 ") || !head.contains(ACCEPT) {
            return Err(format!("unexpected response {head:?}"));
        }
        // A server that fails early still reads (and discards) until our EOF, so the whole
        // input goes through; a write error is only noted.
        if let Err(e) = s.write_all(&vector.input) {
            observed.note.push_str(&format!("writing the input: {e}; "));
        }
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let waiting_for_quiet =
                !vector.closes && reply_count(&observed.bytes) >= vector.replies.len();
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if waiting_for_quiet { QUIET } else { left };
            if wait.is_zero() {
                observed.note.push_str("deadline passed; ");
                return Ok(());
            }
            s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
            match s.read(&mut buf) {
                Ok(0) => {
                    observed.closed = true;
                    return Ok(());
                }
                Ok(n) => observed.bytes.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if !waiting_for_quiet {
                        observed.note.push_str("deadline passed; ");
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // A reset ends the connection too, but may have destroyed what was sent.
                    observed.note.push_str(&format!("read: {e}; "));
                    observed.closed = true;
                    return Ok(());
                }
            }
        }
    }
}

// ---- the mio driver ----

#[cfg(feature = "mio")]
mod mio_host {
    use std::thread::JoinHandle;

    use wsengine::Event;
    use wsengine::driver::{ConnId, Context, DriverConfig, EventLoop, Handle, Handler};

    use super::vectors::{run_all, vectors};

    /// Echoes every text and binary message; Pongs and Close replies are the core's.
    struct Echo;

    impl Handler for Echo {
        fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
            let _ = match event {
                Event::Text { data, .. } => ctx.send_text(id, data.as_str()),
                Event::Binary { data, .. } => ctx.send_binary(id, &data),
                _ => Ok(()),
            };
        }
    }

    /// The running server, stopped and joined on drop (also when a check panics).
    struct Server {
        handle: Handle,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.handle.stop();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    #[test]
    fn conformance_mio_driver() {
        let mut config = DriverConfig::default();
        config.connection = super::config();
        let mut event_loop = EventLoop::new(config, Echo).unwrap();
        let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = Server {
            handle: event_loop.handle(),
            thread: Some(std::thread::spawn(move || event_loop.run().unwrap())),
        };
        run_all("mio driver", &vectors(), |v| super::tcp_exchange(addr, v));
        drop(server);
    }
}
