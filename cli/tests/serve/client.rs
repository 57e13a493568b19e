//! `wsengine client` as a process: what it prints, what it sends, and its exit status for
//! each way a connection ends. The servers are `wsengine serve` (echo) or tiny servers
//! written here on a std `TcpListener` at 127.0.0.1:0 for the failure paths. Every wait
//! is bounded; the client is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsengine_test_support::{close_body, unmasked};

/// The client process, killed on drop unless it already exited.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Client {
    fn spawn(args: &[&str], stdin: Stdio, stdout: Stdio) -> Self {
        Self(
            Command::new(env!("CARGO_BIN_EXE_wsengine"))
                .arg("client")
                .args(args)
                .env_remove("RUST_LOG")
                .stdin(stdin)
                .stdout(stdout)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// Waits for the exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the client did not exit within {limit:?}");
    }
}

/// Reads a pipe to its end on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    })
}

/// What a finished client run left.
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs the client with `input` on stdin (then EOF) to its exit, at most 10 s.
fn run(args: &[&str], input: &[u8]) -> Run {
    run_with(args, Some(input))
}

/// Runs the client to its exit, at most 10 s, with stdin left open (no EOF): the server
/// ends the connection.
fn run_stdin_open(args: &[&str]) -> Run {
    run_with(args, None)
}

fn run_with(args: &[&str], input: Option<&[u8]>) -> Run {
    let mut client = Client::spawn(args, Stdio::piped(), Stdio::piped());
    let mut stdin = client.0.stdin.take().unwrap();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let input = input.map(<[u8]>::to_vec);
    // A writer of its own: the client may exit before reading it all.
    std::thread::spawn(move || match input {
        Some(input) => {
            let _ = stdin.write_all(&input);
        }
        None => {
            // Held until the run is over.
            let _ = held_rx.recv_timeout(Duration::from_secs(20));
            drop(stdin);
        }
    });
    let stdout = collect(client.0.stdout.take().unwrap());
    let stderr = collect(client.0.stderr.take().unwrap());
    let status = client.wait(Duration::from_secs(10));
    drop(held_tx);
    Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    }
}

/// `wsengine serve` (echo) on an ephemeral port.
fn echo_server() -> (super::Server, String) {
    let (server, addr) = super::start(&[]);
    (server, format!("ws://{addr}/"))
}

/// A one-connection server: `serve` gets the accepted socket (read timeout 10 s).
fn raw_server(serve: impl FnOnce(TcpStream) + Send + 'static) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        serve(s);
    });
    (format!("ws://{addr}/chat"), thread)
}

/// Reads the request head.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF in the request head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads the request and answers 101; returns the request head.
fn upgrade(s: &mut TcpStream) -> String {
    let head = read_head(s);
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let accept = wsengine::handshake::accept_key(key.trim().as_bytes());
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .unwrap();
    head
}

/// Reads one (masked, client) frame: its opcode and unmasked payload.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    try_read_frame(s).unwrap()
}

/// [`read_frame`], or the error that ended the stream.
fn try_read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 2];
    s.read_exact(&mut header)?;
    assert_eq!(header[1] & 0x80, 0x80, "a client frame is masked");
    let len = match header[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            s.read_exact(&mut n)?;
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            s.read_exact(&mut n)?;
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    s.read_exact(&mut mask)?;
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    s.read_exact(&mut payload)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok((header[0] & 0x0f, payload))
}

/// Reads frames until a Close; returns its code and reason.
fn read_close(s: &mut TcpStream) -> (u16, String) {
    loop {
        let (opcode, payload) = read_frame(s);
        if opcode == 0x8 {
            assert!(payload.len() >= 2, "a Close with a code");
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8(payload[2..].to_vec()).unwrap());
        }
    }
}

fn send_close(s: &mut TcpStream, code: u16, reason: &str) {
    s.write_all(&unmasked(true, 0x8, &close_body(code, reason.as_bytes())))
        .unwrap();
}

/// Waits for a stderr line containing `needle`; returns the lines read so far.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        let found = line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("no stderr line with {needle:?} in {seen:?}");
}

/// The client's stderr lines, on a channel.
fn stderr_lines(client: &mut Client) -> mpsc::Receiver<String> {
    let stderr = client.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn client_echoes_lines_and_skips_one_that_is_not_utf8() {
    let (_server, url) = echo_server();
    let run = run(&[&url], b"hello\n\xff\xfe\nworld\n");
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, b"hello\nworld\n");
    assert!(
        run.stderr
            .contains("[WARN ] line 2: not UTF-8; skipped (-b sends lines as bytes)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("closed: 1000 (normal closure)"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_binary_lines_come_back_as_raw_bytes() {
    let (_server, url) = echo_server();
    let run = run(&["-b", &url], b"a\xffb\n");
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, b"a\xffb\n");
}

#[test]
fn client_jsonl_tells_text_from_binary_and_execute_waits_then_closes() {
    let (_server, url) = echo_server();
    let started = Instant::now();
    let run = run(
        &[
            "--jsonl",
            "-x",
            "hi",
            "-x",
            "the \"end\"",
            "-w",
            "300ms",
            &url,
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        "{\"type\":\"text\",\"data\":\"hi\"}\n{\"type\":\"text\",\"data\":\"the \\\"end\\\"\"}\n"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let run = self::run(&["--jsonl", "-b", "-x", "hi", "-w", "300ms", &url], b"");
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, b"{\"type\":\"binary\",\"base64\":\"aGk=\"}\n");
}

#[test]
fn client_that_cannot_connect_exits_3_in_one_error_line() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    let run = run(&[&url], b"");
    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "[ERROR] cannot connect to {url} (127.0.0.1:{port}): Connection refused"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn client_refused_with_503_exits_4_naming_the_url() {
    let (url, server) = raw_server(|mut s| {
        read_head(&mut s);
        s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let run = run(&[&url], b"");
    server.join().unwrap();
    assert_eq!(run.status.code(), Some(4), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("[ERROR] {url} (127.0.0.1:")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("503"), "{}", run.stderr);
}

/// A server that answers 101 and closes with `code` and `reason`, then reads the client's
/// Close reply.
fn closing_server(code: u16, reason: &'static str) -> (String, JoinHandle<()>) {
    raw_server(move |mut s| {
        upgrade(&mut s);
        send_close(&mut s, code, reason);
        assert_eq!(read_close(&mut s).0, code, "the client echoes the code");
    })
}

#[test]
fn client_closed_by_the_server_with_1009_or_4001_exits_7_with_code_name_and_reason() {
    let (url, server) = closing_server(1009, "too big for me");
    let run = run_stdin_open(&[&url]);
    server.join().unwrap();
    assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("[ERROR] closed by the server: 1009 (message too big) too big for me"),
        "{}",
        run.stderr
    );

    let (url, server) = closing_server(4001, "auth failed: token expired");
    let run = run_stdin_open(&[&url]);
    server.join().unwrap();
    assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "[ERROR] closed by the server: 4001 (private use) auth failed: token expired"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn client_closed_by_the_server_with_1000_exits_0_and_sends_headers_and_basic_auth() {
    let (url, server) = raw_server(|mut s| {
        let head = upgrade(&mut s);
        assert!(head.contains("\r\nX-Token: abc def\r\n"), "{head}");
        // RFC 7617 §2: base64("user:pa:ss").
        assert!(
            head.contains("\r\nAuthorization: Basic dXNlcjpwYTpzcw==\r\n"),
            "{head}"
        );
        send_close(&mut s, 1000, "bye");
        read_close(&mut s);
    });
    let run = run_stdin_open(&["-H", "X-Token: abc def", "--basic-auth", "user:pa:ss", &url]);
    server.join().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("[INFO ] closed by the server: 1000 (normal closure) bye"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_refuses_a_handshake_header_with_status_2() {
    let run = run(&["-H", "Sec-WebSocket-Key: x", "ws://127.0.0.1:1/"], b"");
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
}

#[test]
fn client_whose_connection_drops_without_a_close_exits_5() {
    let (url, server) = raw_server(|mut s| {
        upgrade(&mut s);
        // Dropped: EOF without a Close frame.
    });
    let run = run_stdin_open(&[&url]);
    server.join().unwrap();
    assert_eq!(run.status.code(), Some(5), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("[ERROR] closed: 1006 (abnormal closure)"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_fails_a_reserved_opcode_with_1002_and_exits_6() {
    let (tx, rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        // Opcode 0x3 is reserved (RFC 6455 §5.2).
        s.write_all(&unmasked(true, 0x3, b"?")).unwrap();
        let _ = tx.send(read_close(&mut s).0);
    });
    // Stdin stays open: the close is the client's answer to the frame, not EOF's.
    let mut client = Client::spawn(&[&url], Stdio::piped(), Stdio::null());
    let lines = stderr_lines(&mut client);
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 1002);
    server.join().unwrap();
    let status = client.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(6));
    wait_for_line(
        &lines,
        "[ERROR] closed: 1002 (protocol error) the server broke the protocol",
    );
}

#[test]
fn client_stops_promptly_when_stdout_closes() {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = Arc::clone(&stop);
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        let mut reader = s.try_clone().unwrap();
        let read_flag = Arc::clone(&flag);
        let reading = std::thread::spawn(move || {
            let close = read_close(&mut reader);
            read_flag.store(true, Ordering::SeqCst);
            close
        });
        // Flood until the client's Close (at most 10 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0u64;
        while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
            n += 1;
            if s.write_all(&unmasked(true, 0x1, format!("line {n}").as_bytes()))
                .is_err()
            {
                break;
            }
        }
        let close = reading.join().unwrap();
        send_close(&mut s, 1000, "");
        let _ = tx.send(close.0);
    });
    let mut client = Client::spawn(&[&url], Stdio::piped(), Stdio::piped());
    let stderr = collect(client.0.stderr.take().unwrap());
    let mut stdout = BufReader::new(client.0.stdout.take().unwrap());
    for expected in ["line 1\n", "line 2\n"] {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, expected);
    }
    let closed = Instant::now();
    drop(stdout);
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 1000);
    server.join().unwrap();
    let status = client.wait(Duration::from_secs(10));
    assert!(closed.elapsed() < Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Connected, stdout closed, closed: no line per message.
    assert!(stderr.lines().count() <= 3, "{stderr}");
    assert_eq!(stderr.matches("stdout closed").count(), 1, "{stderr}");
}

#[test]
fn client_sigint_sends_close_1000_and_exits_0_a_second_one_exits_130() {
    // The server answers the Close: exit 0.
    let (tx, rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        let (code, _) = read_close(&mut s);
        send_close(&mut s, code, "");
        let _ = tx.send(code);
    });
    let mut client = Client::spawn(&[&url], Stdio::piped(), Stdio::null());
    let lines = stderr_lines(&mut client);
    wait_for_line(&lines, "connected to");
    signal(&client, "INT");
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 1000);
    server.join().unwrap();
    assert_eq!(client.wait(Duration::from_secs(10)).code(), Some(0));

    // The server never answers: a second signal exits at once with 130.
    let (tx, rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        let _ = tx.send(read_close(&mut s).0);
        // Hold the socket until the client is gone.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let mut client = Client::spawn(
        &["--close-timeout", "30s", &url],
        Stdio::piped(),
        Stdio::null(),
    );
    let lines = stderr_lines(&mut client);
    wait_for_line(&lines, "connected to");
    signal(&client, "TERM");
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 1000);
    let again = Instant::now();
    signal(&client, "INT");
    assert_eq!(client.wait(Duration::from_secs(5)).code(), Some(130));
    assert!(again.elapsed() < Duration::from_secs(2));
    server.join().unwrap();
}

fn signal(client: &Client, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &client.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn client_slash_ping_shows_the_pong_and_bad_close_codes_only_warn() {
    let (_server, url) = echo_server();
    let run = run(
        &["--slash", "--show-control", &url],
        b"/ping hello\n/close 99999\n/close 1005\n//x\nhi\n",
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, b"/x\nhi\n");
    assert!(
        run.stderr.contains("< pong (5 bytes): hello"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line 2: /close 99999: not a code"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line 3: /close 1005: not a code"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_slash_close_sends_its_code_and_reason() {
    let (tx, rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        let (code, reason) = read_close(&mut s);
        send_close(&mut s, code, &reason);
        let _ = tx.send((code, reason));
    });
    let run = run(&["-s", &url], b"/close 4000 bye\nnot sent\n");
    server.join().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap(),
        (4000, "bye".to_owned())
    );
    // The closing handshake carried a code other than 1000/1001: exit 7.
    assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("[ERROR] closed: 4000 (private use) bye"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_without_an_answer_to_its_handshake_exits_4() {
    let (url, server) = raw_server(|mut s| {
        read_head(&mut s);
        // No answer: hold the socket until the client leaves.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let started = Instant::now();
    let run = run(&["--handshake-timeout", "300ms", &url], b"");
    server.join().unwrap();
    assert_eq!(run.status.code(), Some(4), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        run.stderr.contains("no answer to the WebSocket handshake"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_pings_and_a_server_that_stops_answering_exits_5() {
    let (tx, rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        // Read (and never answer) until the client gives up.
        while let Ok((opcode, _)) = try_read_frame(&mut s) {
            let _ = tx.send(opcode);
        }
    });
    let run = run_stdin_open(&["--ping-interval", "200ms", "--ping-timeout", "300ms", &url]);
    server.join().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap(),
        0x9,
        "a Ping first"
    );
    assert_eq!(run.status.code(), Some(5), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no answer to our ping within --ping-timeout"),
        "{}",
        run.stderr
    );
}

#[test]
fn client_show_control_prints_the_pongs_to_its_pings() {
    let (_server, url) = echo_server();
    let run = run(
        &[
            "--ping-interval",
            "100ms",
            "--show-control",
            "-x",
            "hi",
            "-w",
            "1s",
            &url,
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, b"hi\n");
    assert!(run.stderr.contains("< pong ("), "{}", run.stderr);
    assert!(
        run.stderr.contains("< close 1000 (normal closure)"),
        "{}",
        run.stderr
    );
}

/// More input than the client's send buffer (4 MiB) and the kernel's socket buffers
/// hold, to a server that starts reading late: every line arrives once, in order (none
/// dropped at a full buffer), and the client exits 0 after the closing handshake.
#[test]
fn client_sends_every_line_of_an_input_larger_than_its_send_buffer() {
    const LINES: usize = 24_000;
    let line = |i: usize| format!("{i:06} {}", "y".repeat(993));
    let (tx, rx) = mpsc::channel();
    let (url, server) = raw_server(move |mut s| {
        upgrade(&mut s);
        // Let the client fill its buffers (and the kernel's) first.
        std::thread::sleep(Duration::from_millis(1500));
        let mut received = 0usize;
        loop {
            let (opcode, payload) = read_frame(&mut s);
            match opcode {
                0x1 => {
                    let head = String::from_utf8_lossy(&payload[..payload.len().min(6)]);
                    assert!(
                        payload == line(received).into_bytes(),
                        "line {received} expected, got one starting {head:?}: a line dropped"
                    );
                    received += 1;
                }
                0x8 => break,
                other => panic!("opcode {other}"),
            }
        }
        send_close(&mut s, 1000, "");
        let _ = tx.send(received);
    });
    let mut input = String::with_capacity(LINES * 1001);
    for i in 0..LINES {
        input.push_str(&line(i));
        input.push('\n');
    }
    let run = run(&[&url], input.as_bytes());
    server.join().unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)).unwrap(), LINES);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
}
