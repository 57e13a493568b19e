//! `wsengine serve` as a process: SIGTERM drains (every connection closed with 1001,
//! the closing handshakes awaited up to `--drain-timeout`) and exits 0. Each test starts
//! its own server on an ephemeral 127.0.0.1 port and kills it if anything fails.
// Test code: real processes, sockets and clocks; a failed unwrap is a failed test.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::unwrap_used
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The server process, killed on drop unless it already exited.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `wsengine serve` with `args` and returns it with its address.
fn start(args: &[&str]) -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some((_, addr)) = line.split_once("listening on ws://") {
                let addr = addr.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (server, addr.parse().unwrap())
}

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(REQUEST).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF in the response head");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    s
}

/// Reads the server's Close frame (small, unmasked) and returns its code.
fn read_close_code(s: &mut TcpStream) -> u16 {
    let mut frame = [0u8; 4];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 0x88, "a final Close frame");
    let len = usize::from(frame[1]);
    assert!((2..=125).contains(&len));
    let mut rest = vec![0u8; len - 2];
    s.read_exact(&mut rest).unwrap();
    u16::from_be_bytes([frame[2], frame[3]])
}

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, at most `limit`.
fn wait_exit(server: &mut Server, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn sigterm_closes_with_1001_and_exits_0_once_the_client_answers() {
    let (mut server, addr) = start(&["--drain-timeout", "5s"]);
    let mut s = client(addr);
    let started = Instant::now();
    signal(&server, "TERM");
    assert_eq!(read_close_code(&mut s), 1001);
    // Our Close reply (masked, code 1001): the closing handshake completes.
    let mask = [1u8, 2, 3, 4];
    let payload = 1001u16.to_be_bytes();
    s.write_all(&[
        0x88,
        0x82,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        payload[0] ^ mask[0],
        payload[1] ^ mask[1],
    ])
    .unwrap();
    let status = wait_exit(&mut server, Duration::from_secs(4)).expect("the server exits");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn sigterm_gives_up_on_a_silent_client_at_the_drain_timeout() {
    let (mut server, addr) = start(&["--drain-timeout", "500ms"]);
    let mut s = client(addr);
    let started = Instant::now();
    signal(&server, "INT");
    assert_eq!(read_close_code(&mut s), 1001);
    // No reply: the server stops waiting after the drain timeout.
    let status = wait_exit(&mut server, Duration::from_secs(4)).expect("the server exits");
    assert!(status.success(), "{status:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    drop(s);
}

#[test]
fn a_second_signal_exits_at_once() {
    let (mut server, addr) = start(&["--drain-timeout", "30s"]);
    let mut s = client(addr);
    signal(&server, "TERM");
    assert_eq!(read_close_code(&mut s), 1001);
    signal(&server, "TERM");
    let status = wait_exit(&mut server, Duration::from_secs(4)).expect("the server exits");
    assert!(!status.success(), "{status:?}");
    drop(s);
}
