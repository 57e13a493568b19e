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

// `wsengine client`: in this test binary too, for the same reason.
#[path = "serve/client.rs"]
mod client;

// Options of `serve`, `load`, `hub` and `autobahn-client` (issue #21).
#[path = "serve/options.rs"]
mod options;

// `wsengine hub`: in this test binary, which has the process helpers. Under serve/ with an
// explicit path: a tests/hub.rs would be a test binary of its own.
#[path = "serve/hub.rs"]
mod hub;

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
    let (server, addr, _log) = start_logged(args);
    (server, addr)
}

/// [`start`], and the server's later stderr lines.
fn start_logged(args: &[&str]) -> (Server, SocketAddr, mpsc::Receiver<String>) {
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
    let (log_tx, log_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some((_, url)) = line.split_once("listening on ") {
                let addr = url.split("://").nth(1).unwrap_or("");
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
            } else {
                let _ = log_tx.send(line);
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (server, addr.parse().unwrap(), log_rx)
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

mod tls {
    //! `serve --tls-cert/--tls-key` (both runtimes), `client --ca` and SIGHUP, with
    //! certificates made by rcgen when each test starts.
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::path::Path;
    use std::process::{Command, Output, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use wsengine_mio::tls::{self, rustls};
    use wsengine_test_support::pki::{self, TestPki};

    use super::{Server, signal, start_logged};

    fn serve_tls(
        cert: &Path,
        key: &Path,
        runtime: &str,
    ) -> (Server, SocketAddr, mpsc::Receiver<String>) {
        start_logged(&[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--runtime",
            runtime,
        ])
    }

    /// `wsengine client [--ca CA] wss://localhost:PORT/` with `input` on stdin.
    fn run_client(addr: SocketAddr, ca: Option<&Path>, input: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsengine"));
        command.arg("client");
        if let Some(ca) = ca {
            command.args(["--ca", ca.to_str().unwrap()]);
        }
        let mut child = command
            .arg(format!("wss://localhost:{}/", addr.port()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        // Lines go out after the connection opened (the client queues them until then);
        // EOF closes it.
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        rx.recv_timeout(Duration::from_secs(20)).unwrap().unwrap()
    }

    fn stderr_lines(output: &Output) -> Vec<String> {
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn wss_echo_through_the_cli_on_both_runtimes() {
        let pki = pki::make("cli-echo");
        for runtime in ["mio", "tokio"] {
            let (server, addr, _log) = serve_tls(&pki.cert, &pki.key, runtime);
            let output = run_client(addr, Some(&pki.ca), "hello over tls\nsecond line\n");
            assert!(
                output.status.success(),
                "{runtime}: {:?}",
                stderr_lines(&output)
            );
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                "hello over tls\nsecond line\n",
                "{runtime}"
            );
            drop(server);
        }
    }

    /// The client's one-line refusal of a server presenting `cert`.
    fn refusal(cert: &Path, key: &Path, ca: Option<&Path>) -> String {
        let (server, addr, _log) = serve_tls(cert, key, "mio");
        let output = run_client(addr, ca, "never sent\n");
        drop(server);
        // `client`'s status for a connection that never opened (TLS included).
        assert_eq!(output.status.code(), Some(3), "{output:?}");
        let lines = stderr_lines(&output);
        // One line, the error, and nothing else (no panic, no backtrace).
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("[ERROR] "), "{lines:?}");
        lines[0].clone()
    }

    #[test]
    fn certificate_problems_are_one_line_and_a_failure_exit() {
        let pki = pki::make("cli-refusals");
        let ca = Some(pki.ca.as_path());
        let no_ca = refusal(&pki.cert, &pki.key, None);
        assert!(no_ca.contains("unknown issuer"), "{no_ca}");
        let expired = refusal(&pki.expired_cert, &pki.expired_key, ca);
        assert!(expired.contains("expired"), "{expired}");
        let wrong = refusal(&pki.wrong_name_cert, &pki.wrong_name_key, ca);
        assert!(wrong.contains("not valid for"), "{wrong}");
    }

    #[test]
    fn a_missing_key_file_is_one_line_and_a_failure_exit() {
        let pki = pki::make("cli-missing");
        let missing = pki.dir.join("no-such-key.pem");
        let output = Command::new(env!("CARGO_BIN_EXE_wsengine"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&pki.cert)
            .arg("--tls-key")
            .arg(&missing)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("no-such-key.pem"), "{lines:?}");
    }

    /// The certificate a new TLS connection to `addr` is shown.
    fn presented(pki: &TestPki, addr: SocketAddr) -> Vec<u8> {
        let config =
            tls::client_config(tls::root_store(std::slice::from_ref(&pki.ca)).unwrap()).unwrap();
        let mut session =
            rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        while session.is_handshaking() {
            session.complete_io(&mut socket).unwrap();
        }
        let der = session.peer_certificates().unwrap()[0].to_vec();
        let _ = socket.flush();
        let mut rest = [0u8; 1];
        let _ = socket.set_read_timeout(Some(Duration::from_millis(1)));
        let _ = socket.read(&mut rest);
        der
    }

    /// A real third-party TLS client: OpenSSL's `s_client` over TLS 1.2, asking for a
    /// renegotiation (`R`) once connected. rustls refuses it (a `no_renegotiation`
    /// alert), OpenSSL gives up, and the server ends that connection only.
    #[test]
    fn a_renegotiation_attempt_from_openssl_ends_that_connection_only() {
        let pki = pki::make("cli-renegotiation");
        let (server, addr, log) = serve_tls(&pki.cert, &pki.key, "mio");
        let mut healthy = wss_session(&pki, addr);
        echo_through(&mut healthy, b"before");
        let mut openssl = Command::new("openssl")
            .args([
                "s_client",
                "-tls1_2",
                "-servername",
                "localhost",
                "-connect",
            ])
            .arg(addr.to_string())
            .arg("-CAfile")
            .arg(&pki.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl is installed (.ci/run installs it)");
        let mut stdin = openssl.stdin.take().unwrap();
        // Once its handshake is done (the server logs nothing for it until the end),
        // ask for the renegotiation; keep stdin open so that only the refusal ends it.
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"R\n").unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(openssl.wait_with_output());
        });
        let output = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        drop(stdin);
        let said =
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("RENEGOTIATING"), "{said}");
        assert!(said.contains("no renegotiation"), "{said}");
        let ended = wait_for(&log, "TLS:");
        assert!(ended.contains("refused the TLS handshake"), "{ended}");
        // The other connection never noticed.
        echo_through(&mut healthy, b"after");
        drop(server);
    }

    type Session = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    /// An open WebSocket connection over TLS to the server at `addr`.
    fn wss_session(pki: &TestPki, addr: SocketAddr) -> Session {
        let config =
            tls::client_config(tls::root_store(std::slice::from_ref(&pki.ca)).unwrap()).unwrap();
        let session =
            rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut stream = rustls::StreamOwned::new(session, socket);
        stream.write_all(super::REQUEST).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"));
        stream
    }

    /// Sends `text` (at most 125 bytes) in a masked frame and reads its echo.
    fn echo_through(stream: &mut Session, text: &[u8]) {
        let key = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
        frame.extend_from_slice(&key);
        frame.extend(text.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        stream.write_all(&frame).unwrap();
        let mut reply = vec![0u8; 2 + text.len()];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply[2..], text);
    }

    /// The certificate a TLS client asking for `name` (SNI) is shown.
    fn presented_for(pki: &TestPki, addr: SocketAddr, name: &str) -> Vec<u8> {
        let config =
            tls::client_config(tls::root_store(std::slice::from_ref(&pki.ca)).unwrap()).unwrap();
        let mut session =
            rustls::ClientConnection::new(config, name.to_owned().try_into().unwrap()).unwrap();
        let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        while session.is_handshaking() {
            session.complete_io(&mut socket).unwrap();
        }
        session.peer_certificates().unwrap()[0].to_vec()
    }

    #[test]
    fn tls_sni_serves_a_named_certificate_beside_the_default() {
        let pki = pki::make("cli-sni");
        let sni = format!(
            "elsewhere.example,{},{}",
            pki.wrong_name_cert.display(),
            pki.wrong_name_key.display()
        );
        let (server, addr, _log) = start_logged(&[
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
            "--tls-sni",
            &sni,
        ]);
        let named = tls::load_certificates(&pki.wrong_name_cert).unwrap()[0].to_vec();
        let default = tls::load_certificates(&pki.cert).unwrap()[0].to_vec();
        assert_eq!(presented_for(&pki, addr, "elsewhere.example"), named);
        assert_eq!(presented_for(&pki, addr, "localhost"), default);
        drop(server);
        // A malformed flag is refused before anything starts.
        let output = Command::new(env!("CARGO_BIN_EXE_wsengine"))
            .args([
                "serve",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--tls-sni",
                "x,y",
            ])
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("NAME,CERT.pem,KEY.pem"));
    }

    fn wait_for(log: &mpsc::Receiver<String>, needle: &str) -> String {
        loop {
            let line = log.recv_timeout(Duration::from_secs(10)).unwrap();
            if line.contains(needle) {
                return line;
            }
        }
    }

    #[test]
    fn sighup_re_reads_the_certificate_on_both_runtimes() {
        let pki = pki::make("cli-sighup");
        let first = tls::load_certificates(&pki.cert).unwrap()[0].to_vec();
        let second = tls::load_certificates(&pki.cert2).unwrap()[0].to_vec();
        for runtime in ["mio", "tokio"] {
            let cert = pki.dir.join(format!("{runtime}-cert.pem"));
            let key = pki.dir.join(format!("{runtime}-key.pem"));
            std::fs::copy(&pki.cert, &cert).unwrap();
            std::fs::copy(&pki.key, &key).unwrap();
            let (server, addr, log) = serve_tls(&cert, &key, runtime);
            assert_eq!(presented(&pki, addr), first, "{runtime}");
            // Half a pair: refused, the old one stays.
            std::fs::copy(&pki.cert2, &cert).unwrap();
            signal(&server, "HUP");
            let refused = wait_for(&log, "SIGHUP");
            assert!(refused.contains("stays as it was"), "{runtime}: {refused}");
            assert_eq!(presented(&pki, addr), first, "{runtime}");
            std::fs::copy(&pki.key2, &key).unwrap();
            signal(&server, "HUP");
            let done = wait_for(&log, "SIGHUP");
            assert!(done.contains("re-read"), "{runtime}: {done}");
            assert_eq!(presented(&pki, addr), second, "{runtime}");
            drop(server);
        }
    }
}

#[test]
fn per_connection_log_lines_are_rate_limited() {
    let (server, addr, log) = start_logged(&[]);
    // 300 requests that are not WebSocket upgrades: each connection fails its handshake
    // and would log one line.
    let bad = |n: usize| {
        for _ in 0..n {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
    };
    bad(300);
    // After the window, one more: its line comes with the count of those held back.
    std::thread::sleep(Duration::from_millis(1100));
    bad(1);
    let mut lines = Vec::new();
    while let Ok(line) = log.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    let per_connection = lines.iter().filter(|l| l.contains("failed")).count();
    assert!(
        (50..300).contains(&per_connection),
        "{per_connection} lines: {lines:?}"
    );
    let held = lines
        .iter()
        .find(|l| l.contains("held back"))
        .unwrap_or_else(|| panic!("no count of held-back lines: {lines:?}"));
    assert!(held.starts_with("[WARN ]"), "{held}");
    drop(server);
}
