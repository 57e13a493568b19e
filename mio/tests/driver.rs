//! End-to-end tests of the mio driver on 127.0.0.1 with ephemeral ports. Every server
//! runs in its own thread and is stopped (and joined) by the test that started it;
//! every blocking socket call has a timeout.
//!
//! One test binary for the crate: the event loop's own tests below, and the conformance
//! vectors every host runs (`conformance`).
// Test code: real sockets and clocks; a failed unwrap is a failed test.
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::field_reassign_with_default,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsengine::{ClientRequest, CloseCode, Event, FrameHeader, OpCode, Response, Status};
use wsengine_mio::{ConnId, Context, Disconnect, DriverConfig, EventLoop, Handle, Handler};

/// What the test server saw, shared with the test thread.
#[derive(Default)]
struct ServerLog {
    opened: usize,
    closed: Vec<String>,
    blocked: usize,
    max_transmit: usize,
}

struct EchoServer {
    log: Arc<Mutex<ServerLog>>,
}

impl Handler for EchoServer {
    fn on_open(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _r: Option<&Response>) {
        self.log.lock().unwrap().opened += 1;
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        let _ = match event {
            Event::Text { data, .. } => ctx.send_text(id, data.as_str()),
            Event::Binary { data, .. } => ctx.send_binary(id, &data),
            _ => Ok(()),
        };
        let tx = ctx.connection(id).map_or(0, |c| c.transmit_len());
        let mut log = self.log.lock().unwrap();
        log.max_transmit = log.max_transmit.max(tx);
    }

    fn on_blocked(&mut self, _ctx: &mut Context<'_>, _id: ConnId) {
        self.log.lock().unwrap().blocked += 1;
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, why: Disconnect) {
        self.log.lock().unwrap().closed.push(format!("{why:?}"));
    }
}

struct RunningServer {
    addr: SocketAddr,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<ServerLog>>,
}

impl RunningServer {
    fn start(config: DriverConfig) -> Self {
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let mut event_loop = EventLoop::new(
            config,
            EchoServer {
                log: Arc::clone(&log),
            },
        )
        .unwrap();
        let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || event_loop.run().unwrap());
        Self {
            addr,
            handle,
            thread: Some(thread),
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops the server and waits for its thread (bounded by the shutdown timeout).
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.handle.stop().unwrap();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        started.elapsed()
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// A client handler that sends `messages` on open, counts the echoes, and closes once
/// all came back.
struct EchoClient {
    messages: Vec<String>,
    received: Vec<(ConnId, String)>,
    per_conn: std::collections::HashMap<ConnId, usize>,
    closes: Vec<String>,
}

impl EchoClient {
    fn new(messages: Vec<String>) -> Self {
        Self {
            messages,
            received: Vec::new(),
            per_conn: Default::default(),
            closes: Vec::new(),
        }
    }
}

impl Handler for EchoClient {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, response: Option<&Response>) {
        assert!(response.is_some(), "a client learns the server's response");
        for (i, m) in self.messages.iter().enumerate() {
            if i % 2 == 0 {
                ctx.send_text(id, m).unwrap();
            } else {
                ctx.send_binary(id, m.as_bytes()).unwrap();
            }
        }
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        let text = match event {
            Event::Text { data, .. } => data.as_str().to_owned(),
            Event::Binary { data, .. } => String::from_utf8(data.to_vec()).unwrap(),
            _ => return,
        };
        self.received.push((id, text));
        let n = self.per_conn.entry(id).or_default();
        *n += 1;
        if *n == self.messages.len() {
            ctx.close(id, CloseCode::NORMAL, "done").unwrap();
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, why: Disconnect) {
        self.closes.push(format!("{why:?}"));
    }
}

/// Runs a client loop to completion in this thread, bounded by a watchdog thread that
/// stops it after `limit`.
fn run_client<H: Handler>(mut event_loop: EventLoop<H>, limit: Duration) -> H {
    let handle = event_loop.handle();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(std::sync::atomic::Ordering::SeqCst) && start.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = handle.stop();
        })
    };
    event_loop.run().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    event_loop.into_handler()
}

#[test]
fn echo_round_trip_through_the_driver_in_both_roles() {
    let mut server = RunningServer::start(DriverConfig::default());
    let messages: Vec<String> = (0..20)
        .map(|i| format!("message {i} {}", "é".repeat(i * 50)))
        .collect();
    let mut event_loop =
        EventLoop::new(DriverConfig::default(), EchoClient::new(messages.clone())).unwrap();
    event_loop
        .connect(ClientRequest::new(&server.url("/echo")).unwrap())
        .unwrap();
    let client = run_client(event_loop, Duration::from_secs(10));
    let got: Vec<String> = client.received.into_iter().map(|(_, m)| m).collect();
    assert_eq!(got, messages);
    assert_eq!(
        client.closes,
        vec!["Closed { code: CloseCode(1000), clean: true }".to_owned()]
    );
    server.stop();
    let log = server.log.lock().unwrap();
    assert_eq!(log.opened, 1);
    assert_eq!(
        log.closed,
        vec!["Closed { code: CloseCode(1000), clean: true }".to_owned()]
    );
}

#[test]
fn many_concurrent_clients() {
    let mut server = RunningServer::start(DriverConfig::default());
    let messages: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let mut event_loop =
        EventLoop::new(DriverConfig::default(), EchoClient::new(messages.clone())).unwrap();
    let ids: Vec<ConnId> = (0..50)
        .map(|_| {
            event_loop
                .connect(ClientRequest::new(&server.url("/")).unwrap())
                .unwrap()
        })
        .collect();
    let client = run_client(event_loop, Duration::from_secs(20));
    for id in ids {
        let got: Vec<&str> = client
            .received
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, m)| m.as_str())
            .collect();
        assert_eq!(
            got,
            messages.iter().map(String::as_str).collect::<Vec<_>>(),
            "{id}"
        );
    }
    assert_eq!(client.closes.len(), 50);
    server.stop();
    assert_eq!(server.log.lock().unwrap().opened, 50);
}

fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads until the end of the HTTP head; returns it.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn connections_over_the_cap_are_refused_with_503() {
    let mut config = DriverConfig::default();
    config.max_connections = 2;
    let mut server = RunningServer::start(config);
    let mut a = raw_connect(server.addr);
    a.write_all(REQUEST).unwrap();
    assert!(read_head(&mut a).starts_with("HTTP/1.1 101"));
    let mut b = raw_connect(server.addr);
    b.write_all(REQUEST).unwrap();
    assert!(read_head(&mut b).starts_with("HTTP/1.1 101"));
    let mut c = raw_connect(server.addr);
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 503"), "{head:?}");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "the refused socket is closed after the 503"
    );
    drop((a, b));
    server.stop();
}

#[test]
fn half_sent_request_is_dropped_at_the_handshake_timeout() {
    let mut config = DriverConfig::default();
    config.connection.handshake_timeout = Some(Duration::from_millis(200));
    let mut server = RunningServer::start(config);
    let mut s = raw_connect(server.addr);
    s.write_all(&REQUEST[..30]).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    // The server closes without answering: read sees EOF (or a reset), well before the
    // 5 s read timeout.
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "dropped after {waited:?}");
    server.stop();
    let log = server.log.lock().unwrap();
    assert_eq!(log.closed.len(), 1);
    assert!(
        log.closed[0].contains("Timeout(Handshake)"),
        "{:?}",
        log.closed
    );
}

/// A whole masked client frame (`opcode`: the 4-bit value, as `wsengine_test_support::TEXT`).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    wsengine_test_support::frame(true, opcode, Some([0x11, 0x22, 0x33, 0x44]), payload)
}

#[test]
fn a_client_that_never_reads_cannot_grow_the_server_send_buffer() {
    let mut config = DriverConfig::default();
    config.connection.max_send_buffer = 256 << 10;
    let mut server = RunningServer::start(config);
    let mut s = raw_connect(server.addr);
    s.write_all(REQUEST).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    // Write echo requests and never read the echoes. Once the socket buffers on both
    // sides are full and the server has paused reading, our writes stop going through.
    s.set_nonblocking(true).unwrap();
    let frame = client_frame(wsengine_test_support::BINARY, &[0xAB; 16 << 10]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = 0usize;
    let mut stalled_since: Option<Instant> = None;
    while Instant::now() < deadline {
        // Keep the byte stream whole across partial writes.
        let at = written % frame.len();
        match s.write(&frame[at..]) {
            Ok(n) => {
                written += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        stalled_since.is_some(),
        "the server kept reading {written} bytes without limit"
    );
    assert!(written < 256 << 20, "wrote {written} bytes");
    {
        let log = server.log.lock().unwrap();
        assert!(
            log.blocked >= 1,
            "the handler was told the connection is blocked"
        );
        // The limit is a high-water mark: one message may cross it.
        assert!(
            log.max_transmit <= (256 << 10) + (16 << 10) + 14,
            "send buffer reached {}",
            log.max_transmit
        );
    }
    drop(s);
    server.stop();
}

#[test]
fn graceful_shutdown_closes_every_connection_with_1001() {
    let mut server = RunningServer::start(DriverConfig::default());
    let mut sockets: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = raw_connect(server.addr);
            s.write_all(REQUEST).unwrap();
            assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
            s
        })
        .collect();
    // Answer each server Close with ours from another thread, as a client would.
    let answerers: Vec<JoinHandle<Vec<u8>>> = sockets
        .drain(..)
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while got.len() < 4 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(&client_frame(
                    wsengine_test_support::CLOSE,
                    &1001u16.to_be_bytes(),
                ));
                got
            })
        })
        .collect();
    while server.log.lock().unwrap().opened < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = server.stop();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    for a in answerers {
        let got = a.join().unwrap();
        match FrameHeader::decode(&got, 0) {
            Ok(Status::Complete((h, n))) => {
                assert_eq!(h.opcode, OpCode::Close);
                assert_eq!(&got[n..n + 2], &1001u16.to_be_bytes());
            }
            other => panic!("expected a Close frame, got {other:?} from {got:?}"),
        }
    }
    let log = server.log.lock().unwrap();
    assert_eq!(log.closed.len(), 3);
    assert!(
        log.closed
            .iter()
            .all(|c| c.contains("1001") && c.contains("clean: true")),
        "{:?}",
        log.closed
    );
}

#[test]
fn data_and_end_of_stream_in_one_wakeup_still_close_the_connection() {
    let mut server = RunningServer::start(DriverConfig::default());
    let mut s = raw_connect(server.addr);
    // The request, a frame and the end of our stream back to back, before the server
    // wakes: it reads them in one short read and must still go on to see the EOF.
    let mut burst = REQUEST.to_vec();
    burst.extend(client_frame(wsengine_test_support::TEXT, b"last words"));
    s.write_all(&burst).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    let mut got = Vec::new();
    let started = Instant::now();
    let _ = s.read_to_end(&mut got);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the server never closed"
    );
    assert!(got.ends_with(b"last words"), "{got:?}");
    server.stop();
    let log = server.log.lock().unwrap();
    assert_eq!(
        log.closed,
        vec!["Closed { code: CloseCode(1006), clean: false }".to_owned()]
    );
}

// ---- the conformance vectors ----

/// The conformance vectors of `wsengine_test_support::vectors` against an echo server
/// on this event loop, one TCP connection per vector.
mod conformance {
    use std::thread::JoinHandle;

    use wsengine::Event;
    use wsengine_mio::{ConnId, Context, DriverConfig, EventLoop, Handle, Handler};

    use wsengine_test_support::conformance::tcp_exchange;
    use wsengine_test_support::vectors::{run_all, vectors};

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
        config.connection = wsengine_test_support::conformance::config();
        let mut event_loop = EventLoop::new(config, Echo).unwrap();
        let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = Server {
            handle: event_loop.handle(),
            thread: Some(std::thread::spawn(move || event_loop.run().unwrap())),
        };
        run_all("mio driver", &vectors(), |v| tcp_exchange(addr, v));
        drop(server);
    }
}
