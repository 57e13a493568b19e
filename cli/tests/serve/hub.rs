//! `wsengine hub` as a process: the listening line on stdout, the demo warning, a
//! connect/subscribe/publish round trip over a raw WebSocket, configuration errors (exit 2,
//! one line), the NATS engine (exit 1 without its NATS, exit 2 for a URL it cannot use;
//! two processes on one NATS fanning out), the Redis engine (exit 1 without its Redis; two
//! processes on one Redis acting as one; `wsengine load --hub` spread over two of them, the
//! broker's figures read), and SIGTERM (1001 to every client, exit 0). Each
//! test starts its own hub on an ephemeral 127.0.0.1 port and kills it if anything fails.
// Test code: the helpers fail the test with a message, as the tests themselves do.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Server, signal, wait_exit};

/// Bound of every wait for the hub: starting, a reply, exiting.
const LIMIT: Duration = Duration::from_secs(10);

/// A running hub, its address, its listening line and its stderr lines.
struct Hub {
    server: Server,
    addr: SocketAddr,
    line: String,
    stderr: mpsc::Receiver<String>,
}

/// Starts `wsengine hub --listen 127.0.0.1:0` with `args` and waits for its listening
/// line on stdout.
fn start(args: &[&str]) -> Hub {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["hub", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = line_tx.send(line);
        }
    });
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = err_tx.send(line);
        }
    });
    let line = line_rx.recv_timeout(LIMIT).expect("the listening line");
    let addr = line
        .strip_prefix("listening on http://")
        .or_else(|| line.strip_prefix("listening on https://"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    Hub {
        server,
        addr,
        line,
        stderr: err_rx,
    }
}

/// Runs `wsengine hub --listen 127.0.0.1:0` with `args`, expecting it to exit within
/// [`LIMIT`]; returns its status and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["hub", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut server = Server(child);
    let status = wait_exit(&mut server, LIMIT).expect("the hub exits");
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    (status, text)
}

/// A WebSocket frame from the hub (unmasked).
#[derive(Debug)]
enum Frame {
    Text(String),
    Close(u16),
}

/// A blocking WebSocket client on `/ws`, raw frames (no subprotocol offered: served v1).
struct Client(TcpStream);

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let mut s = TcpStream::connect_timeout(&addr, LIMIT).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        write!(
            s,
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF in the response head");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Self(s)
    }

    /// Sends one masked frame.
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | u8::try_from(n).unwrap()),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
    }

    fn send(&mut self, message: &Value) {
        self.send_frame(0x1, message.to_string().as_bytes());
    }

    /// The next Text or Close frame (Pings skipped).
    fn recv_frame(&mut self) -> Frame {
        loop {
            let mut head = [0u8; 2];
            self.0.read_exact(&mut head).unwrap();
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.0.read_exact(&mut n).unwrap();
                    usize::from(u16::from_be_bytes(n))
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.0.read_exact(&mut n).unwrap();
                    usize::try_from(u64::from_be_bytes(n)).unwrap()
                }
                n => usize::from(n),
            };
            let mut payload = vec![0u8; len];
            self.0.read_exact(&mut payload).unwrap();
            match head[0] {
                0x81 => return Frame::Text(String::from_utf8(payload).unwrap()),
                0x88 => {
                    assert!(payload.len() >= 2, "a Close with a code");
                    return Frame::Close(u16::from_be_bytes([payload[0], payload[1]]));
                }
                0x89 => {}
                other => panic!("unexpected frame {other:#x}"),
            }
        }
    }

    /// The next message, skipping the protocol's `ping`.
    fn recv(&mut self) -> Value {
        loop {
            match self.recv_frame() {
                Frame::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] != "ping" {
                        return value;
                    }
                }
                Frame::Close(code) => panic!("closed with {code}"),
            }
        }
    }

    /// Sends `request` and returns the `result` of its reply (same `id`).
    fn request(&mut self, request: Value) -> Value {
        let id = request["id"].clone();
        self.send(&request);
        let reply = self.recv();
        assert_eq!(reply["type"], "reply", "{reply}");
        assert_eq!(reply["id"], id, "{reply}");
        reply["result"].clone()
    }
}

#[test]
fn hub_demo_serves_connect_subscribe_publish() {
    let hub = start(&[]);
    assert_eq!(
        hub.line,
        format!(
            "listening on http://{0} (WebSocket at ws://{0}/ws)",
            hub.addr
        )
    );
    let warning = hub.stderr.recv_timeout(LIMIT).expect("the demo warning");
    assert!(
        warning.starts_with("[WARN ]")
            && warning.contains("demo")
            && warning.contains("not for production"),
        "{warning}"
    );

    let mut subscriber = Client::connect(hub.addr);
    let connected = subscriber.request(json!({"type": "connect", "id": 1}));
    assert!(connected["client"].is_string(), "{connected}");
    let subscribed =
        subscriber.request(json!({"type": "subscribe", "id": 2, "channel": "chat:lobby"}));
    assert_eq!(subscribed["offset"], 0, "{subscribed}");

    let mut publisher = Client::connect(hub.addr);
    publisher.request(json!({"type": "connect", "id": 1}));
    let published = publisher.request(json!({
        "type": "publish", "id": 2, "channel": "chat:lobby", "payload": {"text": "hi"}
    }));
    assert_eq!(published["offset"], 1, "{published}");
    assert_eq!(published["epoch"], subscribed["epoch"]);

    let publication = subscriber.recv();
    assert_eq!(publication["type"], "publication", "{publication}");
    assert_eq!(publication["channel"], "chat:lobby");
    assert_eq!(publication["offset"], 1);
    assert_eq!(publication["payload"], json!({"text": "hi"}));
    drop(hub);
}

#[test]
fn hub_sigterm_closes_with_1001_and_exits_0() {
    let mut hub = start(&[]);
    let mut client = Client::connect(hub.addr);
    client.request(json!({"type": "connect", "id": 1}));
    let started = Instant::now();
    signal(&hub.server, "TERM");
    loop {
        match client.recv_frame() {
            Frame::Close(code) => {
                assert_eq!(code, 1001);
                break;
            }
            Frame::Text(text) => assert!(text.contains("\"ping\""), "{text}"),
        }
    }
    // Our Close reply: the closing handshake completes, nothing left to wait for.
    client.send_frame(0x8, &1001u16.to_be_bytes());
    let status = wait_exit(&mut hub.server, LIMIT).expect("the hub exits");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hub_second_signal_exits_1_at_once() {
    let mut hub = start(&[]);
    let mut client = Client::connect(hub.addr);
    client.request(json!({"type": "connect", "id": 1}));
    signal(&hub.server, "INT");
    loop {
        if let Frame::Close(code) = client.recv_frame() {
            assert_eq!(code, 1001);
            break;
        }
    }
    // No Close reply: the hub would wait for it; the second signal does not.
    signal(&hub.server, "INT");
    let status = wait_exit(&mut hub.server, LIMIT).expect("the hub exits");
    assert_eq!(status.code(), Some(1), "{status:?}");
    drop(client);
}

#[test]
fn hub_config_with_an_unknown_key_exits_2_naming_it() {
    let dir = std::env::temp_dir().join(format!("wsengine-hub-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hub.toml");
    std::fs::write(&path, "[limits]\npublish_rate = 5\nping = 3\n").unwrap();
    let (status, stderr) = run_to_exit(&["--config", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let line = stderr.trim_end();
    assert!(line.contains(path.to_str().unwrap()), "{line}");
    assert!(line.contains("line 3"), "{line}");
    assert!(line.contains("`ping`"), "{line}");
}

/// A free port of 127.0.0.1 that nothing listens on (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// `--redis` with no Redis there: the hub does not start without its broker (as
/// Centrifugo does): exit 1 with one line.
#[test]
fn hub_with_an_unreachable_redis_exits_1_in_one_line() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let (status, stderr) = run_to_exit(&["--redis", &url]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("[ERROR] the redis engine cannot start"),
        "{stderr}"
    );
}

/// A URL that is not Redis's is a configuration error (exit 2), without the URL (it may
/// hold a password) in the line.
#[test]
fn hub_with_a_bad_redis_url_exits_2() {
    let (status, stderr) = run_to_exit(&["--redis", "http://user:secret@127.0.0.1/"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("engine.url is not a Redis URL"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// `--nats` with no NATS there: the hub does not start without its broker either: exit 1
/// with one line.
#[test]
fn hub_with_an_unreachable_nats_exits_1_in_one_line() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let (status, stderr) = run_to_exit(&["--nats", &url]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("[ERROR] the nats engine cannot start"),
        "{stderr}"
    );
}

/// A URL that is not a NATS URL this build can use is a configuration error (exit 2),
/// without the URL (it may hold a password) in the line.
#[test]
fn hub_with_a_bad_nats_url_exits_2() {
    for url in [
        "http://user:secret@127.0.0.1/",
        "tls://user:secret@127.0.0.1:4222",
    ] {
        let (status, stderr) = run_to_exit(&["--nats", url]);
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("engine.url is not a NATS URL"), "{stderr}");
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

/// A `redis-server` on a free port, no persistence, killed when dropped. Missing
/// `redis-server` fails the test (install the Debian package redis-server).
struct Redis {
    server: Server,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): install the Debian package redis-server \
                     (apt-get install -y redis-server)"
                )
            });
        let redis = Self {
            server: Server(child),
            port,
        };
        let started = Instant::now();
        loop {
            let pong = TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
                let mut buf = [0u8; 7];
                s.set_read_timeout(Some(LIMIT)).is_ok()
                    && s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
            });
            if pong {
                return redis;
            }
            assert!(started.elapsed() < LIMIT, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `GET path` over a new connection; the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, LIMIT).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Two `wsengine hub --redis URL` processes on one Redis act as one: a publication on
/// one reaches a subscriber of the other, with the same offsets and epoch, and both
/// say `"engine": "redis"` in `/health`.
#[test]
fn hub_processes_on_one_redis_act_as_one() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let one = start(&["--redis", &url]);
    let two = start(&["--redis", &url]);
    for hub in [&one, &two] {
        let (status, body) = http_get(hub.addr, "/health");
        assert_eq!(status, 200, "{body}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            health,
            json!({"status": "ok", "engine": "redis", "broker": "up"})
        );
    }
    let mut subscriber = Client::connect(one.addr);
    subscriber.request(json!({"type": "connect", "id": 1}));
    let subscribed =
        subscriber.request(json!({"type": "subscribe", "id": 2, "channel": "news:cli"}));
    assert_eq!(subscribed["offset"], 0, "{subscribed}");
    let mut publisher = Client::connect(two.addr);
    publisher.request(json!({"type": "connect", "id": 1}));
    let published = publisher.request(json!({
        "type": "publish", "id": 2, "channel": "news:cli", "payload": {"text": "hi"}
    }));
    assert_eq!(published["offset"], 1, "{published}");
    assert_eq!(published["epoch"], subscribed["epoch"]);
    let publication = subscriber.recv();
    assert_eq!(publication["type"], "publication", "{publication}");
    assert_eq!(publication["offset"], 1);
    assert_eq!(publication["payload"], json!({"text": "hi"}));
    drop(one);
    drop(two);
    drop(redis.server);
}

/// A counter of the hub's `/metrics` (`wsengine_hub_NAME_total`).
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let key = format!("wsengine_hub_{name}_total ");
    body.lines()
        .find_map(|line| line.strip_prefix(key.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics:\n{body}"))
}

/// `wsengine load --hub` with two URLs (two nodes on one Redis) spreads subscribers and
/// publishers over both, counts every publication once at every subscriber, and reads
/// the broker's own figures: one `EVAL` per publication.
#[test]
fn load_spreads_over_two_redis_nodes_and_reads_the_broker() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let one = start(&["--redis", &url]);
    let two = start(&["--redis", &url]);
    let json_path = std::env::temp_dir().join(format!("wsengine-load-{}.json", std::process::id()));
    let pids = format!("{},{}", one.server.0.id(), two.server.0.id());
    let child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args([
            "load",
            &format!("ws://{}/ws", one.addr),
            &format!("ws://{}/ws", two.addr),
        ])
        .args([
            "--hub",
            "--subscribers",
            "6",
            "--publishers",
            "2",
            "--rate",
            "20",
        ])
        .args([
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--server-pid",
            &pids,
        ])
        .args(["--broker-redis", &url, "--json"])
        .arg(&json_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut load = Server(child);
    let status = wait_exit(&mut load, Duration::from_secs(30)).expect("load exits in 30 s");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    load.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    load.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stdout}{stderr}");
    assert!(stdout.contains("broker CPU"), "{stdout}");
    let text = std::fs::read_to_string(&json_path).unwrap();
    let _ = std::fs::remove_file(&json_path);
    let report: Value = serde_json::from_str(&text).unwrap();
    let totals = &report["totals"];
    let published = totals["published"].as_u64().unwrap();
    assert!(published > 0, "{text}");
    assert_eq!(totals["delivered"].as_u64(), Some(published * 6), "{text}");
    assert_eq!(totals["lost"], 0, "{text}");
    assert_eq!(report["urls"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["server"]["pids"].as_array().map(Vec::len), Some(2));
    // Each node took one publisher's publications and delivered to its subscribers.
    for hub in [&one, &two] {
        assert!(metric(hub.addr, "publications") > 0, "{text}");
        assert!(metric(hub.addr, "deliveries") > 0, "{text}");
    }
    // One round trip per publication: from the first publish to the end of the drain,
    // Redis ran one EVAL (the publish script) per publication accepted.
    let eval = report["broker"]["calls"]["eval"].as_u64().unwrap_or(0);
    assert!(published >= 20, "{text}");
    assert_eq!(eval, published, "one EVAL per publication: {text}");
    assert!(
        report["broker"]["cpu_us_per_publication"]
            .as_f64()
            .is_some(),
        "{text}"
    );
    drop(one);
    drop(two);
    drop(redis.server);
}

/// `wsengine load --hub --transport sse|long-polling` against the demo hub process: 20
/// subscribers over each fallback transport, one WebSocket publisher, every publication
/// once and in order at every subscriber; the JSON names the transport. Without --hub,
/// or against Socket.IO, the option is refused in one line.
#[test]
fn load_over_sse_and_long_polling_against_the_demo_hub() {
    let hub = start(&[]);
    for transport in ["sse", "long-polling"] {
        let json_path = std::env::temp_dir().join(format!(
            "wsengine-load-{transport}-{}.json",
            std::process::id()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_wsengine"))
            .args(["load", &format!("ws://{}/ws", hub.addr), "--hub"])
            .args(["--transport", transport, "--subscribers", "20"])
            .args(["--publishers", "1", "--rate", "20"])
            .args(["--warmup", "200ms", "--duration", "1s", "--json"])
            .arg(&json_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut load = Server(child);
        let status = wait_exit(&mut load, Duration::from_secs(60)).expect("load exits in 60 s");
        let mut stdout = String::new();
        load.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(status.success(), "{transport}: {status}: {stdout}");
        let text = std::fs::read_to_string(&json_path).unwrap();
        let _ = std::fs::remove_file(&json_path);
        let report: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["transport"], transport, "{text}");
        let totals = &report["totals"];
        let published = totals["published"].as_u64().unwrap();
        assert!(published > 0, "{text}");
        assert_eq!(totals["delivered"].as_u64(), Some(published * 20), "{text}");
        for key in ["lost", "duplicates", "out_of_order"] {
            assert_eq!(totals[key], 0, "{key}: {text}");
        }
        assert_eq!(report["errors"]["total"], 0, "{text}");
        assert!(report["deliveries"].as_u64().unwrap() > 0, "{text}");
    }
    drop(hub);
    for (args, expected) in [
        (
            &["ws://127.0.0.1:1/", "--transport", "sse"][..],
            "--transport sse needs --hub",
        ),
        (
            &[
                "ws://127.0.0.1:1",
                "--hub",
                "--dialect",
                "socketio",
                "--transport",
                "long-polling",
            ][..],
            "--transport long-polling needs --dialect hub",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wsengine"))
            .arg("load")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

/// Several URLs are a cluster's nodes, for --hub only; each must be ws://.
#[test]
fn load_refuses_several_urls_without_hub_and_wss_nodes() {
    for (args, expected) in [
        (
            &["ws://127.0.0.1:1/", "ws://127.0.0.1:2/"][..],
            "several URLs need --hub",
        ),
        (
            &["ws://127.0.0.1:1/ws", "wss://127.0.0.1:2/ws", "--hub"][..],
            "--hub supports ws:// URLs only: wss://127.0.0.1:2/ws",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wsengine"))
            .arg("load")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

/// Two `wsengine hub --nats URL` processes on one `nats-server` (started on a free port,
/// killed when dropped; missing, it fails the test: install the Debian package
/// nats-server): a publication on one reaches a subscriber of the other, numbered by
/// that node (its own epoch), and both say `"engine": "nats"` in `/health`.
#[test]
fn hub_processes_on_one_nats_fan_out() {
    let port = free_port();
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run nats-server ({e}): install the Debian package nats-server \
                 (apt-get install -y nats-server)"
            )
        });
    let nats = Server(child);
    let started = Instant::now();
    while !TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
        let mut buf = [0u8; 5];
        s.set_read_timeout(Some(LIMIT)).is_ok()
            && s.read_exact(&mut buf).is_ok()
            && &buf == b"INFO "
    }) {
        assert!(started.elapsed() < LIMIT, "nats-server did not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let one = start(&["--nats", &url]);
    let two = start(&["--nats", &url]);
    for hub in [&one, &two] {
        let (status, body) = http_get(hub.addr, "/health");
        assert_eq!(status, 200, "{body}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            health,
            json!({"status": "ok", "engine": "nats", "broker": "up"})
        );
    }
    let mut subscriber = Client::connect(one.addr);
    subscriber.request(json!({"type": "connect", "id": 1}));
    let subscribed =
        subscriber.request(json!({"type": "subscribe", "id": 2, "channel": "news:cli"}));
    assert_eq!(subscribed["offset"], 0, "{subscribed}");
    let mut publisher = Client::connect(two.addr);
    publisher.request(json!({"type": "connect", "id": 1}));
    let published = publisher.request(json!({
        "type": "publish", "id": 2, "channel": "news:cli", "payload": {"text": "hi"}
    }));
    assert_eq!(published["offset"], 1, "{published}");
    let publication = subscriber.recv();
    assert_eq!(publication["type"], "publication", "{publication}");
    assert_eq!(publication["offset"], 1);
    assert_eq!(publication["epoch"], subscribed["epoch"]);
    assert_eq!(publication["payload"], json!({"text": "hi"}));
    drop(one);
    drop(two);
    drop(nats);
}

#[test]
fn hub_static_must_be_a_directory() {
    let (status, stderr) = run_to_exit(&["--static", "/nonexistent/wsengine-hub-static"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
}

/// `--tls-cert/--tls-key`: the line says https and wss, and `wsengine client --ca` speaks
/// the protocol over wss:// (certificates made by rcgen when the test starts).
#[test]
fn hub_serves_wss_with_tls_cert_and_key() {
    let pki = wsengine_test_support::pki::make("cli-hub");
    let hub = start(&[
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
    ]);
    let port = hub.addr.port();
    assert_eq!(
        hub.line,
        format!(
            "listening on https://{0} (WebSocket at wss://{0}/ws)",
            hub.addr
        )
    );
    let mut client = Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(["client", "--ca", pki.ca.to_str().unwrap()])
        .arg(format!("wss://localhost:{port}/ws"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let mut stderr = client.stderr.take().unwrap();
    let mut client = Server(client);
    stdin
        .write_all(b"{\"type\":\"connect\",\"id\":7}\n")
        .unwrap();
    // The reply before EOF: the client closes on EOF.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(&mut stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(LIMIT).expect("the connect reply");
    drop(stdin);
    let status = wait_exit(&mut client, LIMIT).expect("the client exits");
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(status.success(), "{log}");
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["id"], 7, "{reply}");
    assert!(reply["result"]["client"].is_string(), "{reply}");
    drop(hub);
}
