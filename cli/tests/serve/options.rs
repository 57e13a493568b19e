//! `wsengine serve` and `autobahn-client` options (issue #21): subprotocol selection,
//! `--listen` forms, size suffixes and the 1009 reason on the wire, refused values, OS
//! errors naming the address, the tokio runtime's drain, and `autobahn-client` against
//! a server that is not a fuzzingserver. Every server listens on 127.0.0.1 and is killed
//! on drop; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Server, client, read_close_code, signal, start, wait_exit};

/// Starts `wsengine serve ARGS` (the caller gives `--listen`) and returns it with the
/// address its `listening on` line names.
fn start_listening(args: &[&str]) -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .arg("serve")
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
            if let Some((_, url)) = line.split_once("listening on ") {
                let addr = url.split("://").nth(1).unwrap_or("");
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (server, addr.parse().unwrap())
}

/// Runs `wsengine ARGS` to its end, killed after `limit`; returns its output and how
/// long it took.
fn run(args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => (output.unwrap(), started.elapsed()),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("wsengine {args:?} still running after {limit:?}");
        }
    }
}

/// Sends an opening request offering `protocols` (none: no header) and returns the
/// socket after the 101 and the response head.
fn upgrade_offering(addr: SocketAddr, protocols: Option<&str>) -> (TcpStream, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let offer = protocols
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF in the response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (s, head)
}

/// The value of the response's Sec-WebSocket-Protocol header, if any.
fn chosen_protocol(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-protocol")
            .then(|| value.trim().to_owned())
    })
}

/// The first of the client's offered subprotocols that the server speaks is answered,
/// on both runtimes; a client offering none of them (or none at all) gets none.
#[test]
fn the_first_offered_protocol_the_server_speaks_is_chosen() {
    for runtime in ["mio", "tokio"] {
        let (_server, addr) = start(&[
            "--runtime",
            runtime,
            "--protocol",
            "chat",
            "--protocol",
            "y",
        ]);
        let (_s, head) = upgrade_offering(addr, Some("x, chat"));
        assert_eq!(chosen_protocol(&head).as_deref(), Some("chat"), "{runtime}");
        // The client's order wins over the server's.
        let (_s, head) = upgrade_offering(addr, Some("y, chat"));
        assert_eq!(chosen_protocol(&head).as_deref(), Some("y"), "{runtime}");
        let (_s, head) = upgrade_offering(addr, Some("x, z"));
        assert_eq!(chosen_protocol(&head), None, "{runtime}: {head}");
        let (_s, head) = upgrade_offering(addr, None);
        assert_eq!(chosen_protocol(&head), None, "{runtime}: {head}");
    }
}

/// `--listen localhost:0` resolves to 127.0.0.1 and says which port it got.
#[test]
fn listen_takes_a_host_name() {
    for runtime in ["mio", "tokio"] {
        let (_server, addr) = start_listening(&["--runtime", runtime, "--listen", "localhost:0"]);
        assert_eq!(addr.ip().to_string(), "127.0.0.1", "{runtime}");
        assert_ne!(addr.port(), 0);
        drop(client(addr));
    }
}

/// `--max-message-size 1K`: a 2 KiB message is answered with 1009 and a reason that
/// says the limit (RFC 6455 §5.5.1 allows one on any Close).
#[test]
fn an_oversized_message_gets_1009_with_a_reason() {
    for runtime in ["mio", "tokio"] {
        let (_server, addr) = start(&["--runtime", runtime, "--max-message-size", "1K"]);
        let mut s = client(addr);
        // A masked binary frame of 2048 bytes (16-bit length), key 0: payload as is.
        let mut frame = vec![0x82, 0xFE, 0x08, 0x00, 0, 0, 0, 0];
        frame.extend_from_slice(&[b'a'; 2048]);
        // The server may close before it has read it all.
        let _ = s.write_all(&frame);
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x88, "{runtime}: a Close frame");
        let mut body = vec![0u8; usize::from(head[1])];
        s.read_exact(&mut body).unwrap();
        assert_eq!(u16::from_be_bytes([body[0], body[1]]), 1009, "{runtime}");
        let reason = String::from_utf8(body[2..].to_vec()).unwrap();
        assert!(reason.contains("max 1024"), "{runtime}: {reason:?}");
    }
}

/// Values that make no sense are usage errors: status 2 and one `error:` line naming
/// the option.
#[test]
fn nonsense_values_are_refused() {
    let cases: &[&[&str]] = &[
        &["serve", "--max-connections", "0"],
        &["serve", "--backlog", "0"],
        &["serve", "--max-message-size", "0"],
        &["serve", "--max-memory", "0KiB"],
        &["serve", "--slow-consumer-max-queued", "0"],
        &["serve", "--max-message-size", "12 parsecs"],
        &["serve", "--listen", "nowhere"],
        &["serve", "--protocol", "a b"],
        &["load", "ws://127.0.0.1:1/", "--connections", "0"],
        &["load", "ws://127.0.0.1:1/", "--in-flight", "0"],
        &["load", "ws://127.0.0.1:1/", "--duration", "0s"],
        &["load", "ws://127.0.0.1:1/", "--idle", "0"],
        &["hub", "--listen", "nowhere"],
    ];
    for args in cases {
        let (output, _) = run(args, Duration::from_secs(10));
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let option = args.iter().find(|a| a.starts_with("--")).unwrap();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(errors[0].contains(option), "{args:?}: {stderr}");
    }
}

/// Sizes take suffixes everywhere: the server starts with them.
#[test]
fn sizes_take_suffixes() {
    let (_server, addr) = start(&[
        "--max-message-size",
        "64KiB",
        "--max-memory",
        "1G",
        "--slow-consumer-max-queued",
        "256K",
        "--max-inflated-size",
        "2MB",
    ]);
    drop(client(addr));
}

/// A port in use: one ERROR line naming the address, non-zero status, on both runtimes.
#[test]
fn a_port_in_use_names_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for runtime in ["mio", "tokio"] {
        let (output, _) = run(
            &["serve", "--runtime", runtime, "--listen", &addr],
            Duration::from_secs(10),
        );
        assert_eq!(output.status.code(), Some(1), "{runtime}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{runtime}: {stderr}");
        assert!(
            errors[0].contains(&format!("listen on {addr}: ")) && errors[0].contains("in use"),
            "{runtime}: {stderr}"
        );
    }
}

/// `--runtime tokio` drains like mio: SIGTERM sends 1001, and once the client answers
/// the server exits 0.
#[test]
fn tokio_sigterm_closes_with_1001_and_exits_0() {
    let (mut server, addr) = start(&["--runtime", "tokio", "--drain-timeout", "5s"]);
    let mut s = client(addr);
    let started = Instant::now();
    signal(&server, "TERM");
    assert_eq!(read_close_code(&mut s), 1001);
    // Our Close reply (masked with key 0, code 1001).
    s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE9]).unwrap();
    let status = wait_exit(&mut server, Duration::from_secs(4)).expect("the server exits");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// `--runtime tokio`: a client that never answers the Close holds the exit only until
/// the drain timeout.
#[test]
fn tokio_sigterm_gives_up_at_the_drain_timeout() {
    let (mut server, addr) = start(&["--runtime", "tokio", "--drain-timeout", "500ms"]);
    let mut s = client(addr);
    signal(&server, "INT");
    assert_eq!(read_close_code(&mut s), 1001);
    let status = wait_exit(&mut server, Duration::from_secs(5)).expect("the server exits");
    assert!(status.success(), "{status:?}");
}

/// `autobahn-client` pointed at an echo server (no case count ever comes) gives up
/// after its bound with one line saying what it expected.
#[test]
fn autobahn_client_gives_up_on_a_server_that_is_not_a_fuzzingserver() {
    let (_server, addr) = start(&[]);
    let url = format!("ws://{addr}");
    let (output, took) = run(
        &["autobahn-client", "--server", &url],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("{url}: not an Autobahn fuzzingserver"))
            && errors[0].contains("/getCaseCount within 5s"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// `autobahn-client` against a closed port: one line, non-zero status, at once.
#[test]
fn autobahn_client_names_an_unreachable_server() {
    // A port that was free a moment ago and is closed now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{addr}");
    let (output, _) = run(
        &["autobahn-client", "--server", &url],
        Duration::from_secs(15),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(&url), "{stderr}");
}
