use std::net::SocketAddr;
use std::thread::JoinHandle;

use wsengine_mio::{ConnId, Context, DriverConfig, EventLoop, Handle, Handler};

use super::report::{bytes, count, json_str, parse_stat_cpu, parse_vmrss};
use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("5 parsecs").is_err());
}

fn binary(tape: &Tape, conn: u32, seq: u64) -> Event {
    Event::Binary {
        data: bytes::Bytes::copy_from_slice(tape.payload(conn, seq)),
        last: true,
    }
}

#[test]
fn tape_is_deterministic_and_windows_differ() {
    let a = Tape::new(20, false);
    let b = Tape::new(20, false);
    assert_eq!(a.payload(3, 17), b.payload(3, 17));
    assert_eq!(a.payload(3, 17).len(), 20);
    assert_ne!(a.payload(3, 17), a.payload(3, 18));
    assert_ne!(a.payload(3, 17), a.payload(4, 17));
    let text = Tape::new(1000, true);
    assert!(
        text.payload(9, 123_456)
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    );
    assert_eq!(Tape::new(0, false).payload(1, 1), b"");
}

#[test]
fn verifier_accepts_the_exact_echo_only() {
    let tape = Tape::new(20, false);
    assert_eq!(tape.check(5, 42, &binary(&tape, 5, 42)), None);

    // One flipped byte.
    let mut corrupt = tape.payload(5, 42).to_vec();
    corrupt[7] ^= 0x01;
    let event = Event::Binary {
        data: corrupt.into(),
        last: true,
    };
    let why = tape
        .check(5, 42, &event)
        .expect("a flipped byte is a mismatch");
    assert!(why.contains("at byte 7"), "{why}");

    // Out of order, another connection's message, truncated, wrong kind, partial.
    assert!(tape.check(5, 42, &binary(&tape, 5, 43)).is_some());
    assert!(tape.check(5, 42, &binary(&tape, 6, 42)).is_some());
    let short = Event::Binary {
        data: bytes::Bytes::copy_from_slice(&tape.payload(5, 42)[..19]),
        last: true,
    };
    assert!(tape.check(5, 42, &short).unwrap().contains("19"));
    let text = Tape::new(20, true);
    let as_text = Event::Text {
        data: std::str::from_utf8(text.payload(5, 42)).unwrap().into(),
        last: true,
    };
    assert_eq!(text.check(5, 42, &as_text), None);
    assert!(tape.check(5, 42, &as_text).unwrap().contains("text"));
    let partial = Event::Binary {
        data: bytes::Bytes::copy_from_slice(tape.payload(5, 42)),
        last: false,
    };
    assert!(tape.check(5, 42, &partial).is_some());
}

#[test]
fn reorders_within_the_tape_period_are_caught() {
    let tape = Tape::new(8, false);
    for seq in 0..2000 {
        assert!(
            tape.check(1, seq, &binary(&tape, 1, seq + 1)).is_some(),
            "{seq}"
        );
    }
}

#[test]
fn proc_parsing() {
    let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
    assert_eq!(parse_stat_cpu(stat), Some(Duration::from_secs(3)));
    let status = "Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t    2048 kB\nThreads: 1\n";
    assert_eq!(parse_vmrss(status), Some(2048 * 1024));
    assert!(ProcSample::read_self().is_ok_and(|s| s.rss > 0));
}

#[test]
fn formatting() {
    assert_eq!(count(1_234_567.4), "1,234,567");
    assert_eq!(count(999.0), "999");
    assert_eq!(bytes(20), "20 B");
    assert_eq!(bytes(16 << 10), "16 KiB");
    assert_eq!(bytes(1536 << 10), "1.5 MiB");
    assert_eq!(json_str("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
}

/// Echoes every message, corrupting every `corrupt_every`th one (0: never).
struct Echo {
    corrupt_every: u64,
    seen: u64,
}

impl Handler for Echo {
    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        self.seen += 1;
        let corrupt = self.corrupt_every > 0 && self.seen.is_multiple_of(self.corrupt_every);
        match event {
            Event::Binary { data, .. } => {
                let mut data = data.to_vec();
                if corrupt && let Some(b) = data.last_mut() {
                    *b ^= 0x20;
                }
                let _ = ctx.send_binary(id, &data);
            }
            Event::Text { data, .. } => {
                let mut text = data.as_str().to_owned();
                if corrupt {
                    text.push('!');
                }
                let _ = ctx.send_text(id, &text);
            }
            _ => {}
        }
    }
}

fn server(corrupt_every: u64) -> (SocketAddr, Handle, JoinHandle<()>) {
    let mut event_loop = EventLoop::new(
        DriverConfig::default(),
        Echo {
            corrupt_every,
            seen: 0,
        },
    )
    .unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let handle = event_loop.handle();
    let thread = std::thread::spawn(move || event_loop.run().unwrap());
    (addr, handle, thread)
}

fn settings(addr: SocketAddr, mode: Mode) -> Settings {
    Settings {
        url: format!("ws://{addr}/load"),
        mode,
        connections: 8,
        size: 100,
        in_flight: 4,
        text: false,
        deflate: false,
        rate: None,
        warmup: Duration::from_millis(50),
        duration: Duration::from_millis(300),
        hold: Duration::from_millis(200),
        server_pid: None,
        cas: Vec::new(),
    }
}

#[test]
fn a_run_against_an_echo_server_is_clean() {
    let (addr, handle, thread) = server(0);
    for text in [false, true] {
        let mut s = settings(addr, Mode::Echo);
        s.text = text;
        let results = execute(&s, ProgressMode::Quiet).unwrap();
        assert_eq!(results.errors.total(), 0, "{:?}", results.errors);
        assert!(results.messages > 100, "{}", results.messages);
        let hist = results.latency.as_ref().unwrap();
        assert_eq!(hist.len(), results.messages);
        let json = results.json();
        assert!(json.contains("\"schema\": \"wsengine-load/1\""), "{json}");
        assert!(json.contains("\"mismatch\": 0"), "{json}");
        assert!(results.text().contains("errors       0"));
    }
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn the_rate_cap_holds() {
    let (addr, handle, thread) = server(0);
    let mut s = settings(addr, Mode::Echo);
    s.rate = Some(2000);
    s.duration = Duration::from_millis(500);
    let results = execute(&s, ProgressMode::Quiet).unwrap();
    assert_eq!(results.errors.total(), 0, "{:?}", results.errors);
    // 1000 in the window, give or take the bucket's 10 ms and timer slack.
    assert!(
        (800..=1100).contains(&results.messages),
        "{}",
        results.messages
    );
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn a_corrupting_server_is_caught() {
    let (addr, handle, thread) = server(50);
    for text in [false, true] {
        let mut s = settings(addr, Mode::Echo);
        s.text = text;
        let results = execute(&s, ProgressMode::Quiet).unwrap();
        let mismatches = results.errors.get(Kind::Mismatch);
        assert!(mismatches > 0, "{:?}", results.errors);
        assert!(results.text().contains("mismatch"), "{}", results.text());
    }
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn idle_connections_are_held_and_measured() {
    let (addr, handle, thread) = server(0);
    let mut s = settings(addr, Mode::Idle);
    s.connections = 50;
    // The server runs in this process: its figures are ours.
    s.server_pid = Some(std::process::id());
    let results = execute(&s, ProgressMode::Quiet).unwrap();
    assert_eq!(results.errors.total(), 0, "{:?}", results.errors);
    assert_eq!(results.messages, 0);
    let server = results.server.unwrap();
    assert!(server.rss_before > 0 && server.rss_after > 0);
    let json = results.json();
    assert!(json.contains("\"mode\": \"idle\""), "{json}");
    assert!(json.contains("\"rss_per_connection_bytes\": "), "{json}");
    assert!(results.text().contains("per idle connection"));
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn a_refused_connection_is_an_error() {
    // Bind and drop to find a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = execute(&settings(addr, Mode::Echo), ProgressMode::Quiet).unwrap_err();
    assert!(error.to_string().contains("connection 1 of 8"), "{error}");
}

/// A TLS echo server presenting `cert`.
fn tls_server(
    cert: &std::path::Path,
    key: &std::path::Path,
    corrupt_every: u64,
) -> (SocketAddr, Handle, JoinHandle<()>) {
    let certificates =
        std::sync::Arc::new(wsengine_mio::tls::ServerCertificates::from_files(cert, key).unwrap());
    let mut config = DriverConfig::default();
    config.tls_server = Some(wsengine_mio::tls::server_config(certificates).unwrap());
    let mut event_loop = EventLoop::new(
        config,
        Echo {
            corrupt_every,
            seen: 0,
        },
    )
    .unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let handle = event_loop.handle();
    let thread = std::thread::spawn(move || event_loop.run().unwrap());
    (addr, handle, thread)
}

fn wss_settings(addr: SocketAddr, mode: Mode, ca: &std::path::Path) -> Settings {
    let mut s = settings(addr, mode);
    s.url = format!("wss://localhost:{}/load", addr.port());
    s.cas = vec![ca.to_owned()];
    s
}

#[test]
fn a_run_over_wss_is_clean_and_checks_every_echo() {
    let pki = wsengine_test_support::pki::make("load-wss");
    let (addr, handle, thread) = tls_server(&pki.cert, &pki.key, 0);
    // Small messages several to a record, and 64 KiB ones over several records.
    for (size, text) in [(100, false), (100, true), (65_536, false)] {
        let mut s = wss_settings(addr, Mode::Echo, &pki.ca);
        s.size = size;
        s.text = text;
        let results = execute(&s, ProgressMode::Quiet).unwrap();
        assert_eq!(
            results.errors.total(),
            0,
            "{size} {text}: {:?}",
            results.errors
        );
        assert!(results.messages > 20, "{size}: {}", results.messages);
    }
    let results = execute(
        &wss_settings(addr, Mode::Idle, &pki.ca),
        ProgressMode::Quiet,
    )
    .unwrap();
    assert_eq!(results.errors.total(), 0, "{:?}", results.errors);
    handle.stop().unwrap();
    thread.join().unwrap();
    // Through TLS, a corrupted echo is still caught.
    let (addr, handle, thread) = tls_server(&pki.cert, &pki.key, 50);
    let results = execute(
        &wss_settings(addr, Mode::Echo, &pki.ca),
        ProgressMode::Quiet,
    )
    .unwrap();
    assert!(
        results.errors.get(Kind::Mismatch) > 0,
        "{:?}",
        results.errors
    );
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn a_server_certificate_the_generator_does_not_trust_is_an_error() {
    let pki = wsengine_test_support::pki::make("load-untrusted");
    let (addr, handle, thread) = tls_server(&pki.cert, &pki.key, 0);
    // Mozilla's roots only: the private CA is unknown.
    let mut s = wss_settings(addr, Mode::Echo, &pki.ca);
    s.cas.clear();
    let error = execute(&s, ProgressMode::Quiet).unwrap_err().to_string();
    assert!(error.contains("unknown issuer"), "{error}");
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn handshake_mode_opens_and_closes_connections_in_turn_over_ws_and_wss() {
    let _alone = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    let pki = wsengine_test_support::pki::make("load-handshakes");
    let (addr, handle, thread) = server(0);
    let (tls_addr, tls_handle, tls_thread) = tls_server(&pki.cert, &pki.key, 0);
    for s in [
        settings(addr, Mode::Handshakes),
        wss_settings(tls_addr, Mode::Handshakes, &pki.ca),
    ] {
        let mut s = s;
        s.connections = 4;
        s.server_pid = Some(std::process::id());
        let results = execute(&s, ProgressMode::Quiet).unwrap();
        assert_eq!(results.errors.total(), 0, "{}: {:?}", s.url, results.errors);
        // More setups than connections: connections closed and were opened again (three
        // per connection proves the turn without counting speed, which a busy machine
        // would skew: rates are the benchmarks' business).
        let floor = 3 * u64::try_from(s.connections).unwrap();
        assert!(results.messages >= floor, "{}: {}", s.url, results.messages);
        let hist = results.latency.as_ref().unwrap();
        assert_eq!(hist.len(), results.messages);
        let text = results.text();
        assert!(text.contains("connections/s"), "{text}");
        assert!(text.contains("per connection"), "{text}");
        assert!(results.json().contains("\"mode\": \"handshakes\""));
    }
    handle.stop().unwrap();
    thread.join().unwrap();
    tls_handle.stop().unwrap();
    tls_thread.join().unwrap();
}

// `wsengine load --hub`.

/// Held by the tests that keep a core busy (the pub/sub run with no rate) and by the
/// one that counts setups in a short window: on a small machine they would skew it.
static BUSY: std::sync::Mutex<()> = std::sync::Mutex::new(());

use super::pubsub::{self, Dialect, HubSettings};

#[test]
fn publish_payloads_have_the_requested_size() {
    let pad = "x".repeat(300);
    let (mut payload, mut out) = (String::new(), String::new());
    for (size, t, p, s) in [
        (100, 1, 0, 0),
        (300, u64::MAX, 9, u64::MAX),
        (64, 123_456_789, 1, 42),
    ] {
        pubsub::write_payload(&mut payload, &pad, t, p, s, size);
        assert_eq!(payload.len(), size, "{payload}");
        pubsub::build_publish(&mut out, Dialect::Hub, "bench", 7, &payload);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["type"], "publish");
        assert_eq!(v["id"], 7);
        assert_eq!(v["channel"], "bench");
        assert_eq!(v["payload"]["t"], t);
        assert_eq!(v["payload"]["p"], p);
        assert_eq!(v["payload"]["s"], s);
        assert_eq!(v["payload"].to_string().len(), size, "{out}");
        // Socket.IO: an event with ack id 7.
        pubsub::build_publish(&mut out, Dialect::SocketIo, "bench", 7, &payload);
        let rest = out.strip_prefix("427").unwrap();
        let v: serde_json::Value = serde_json::from_str(rest).unwrap();
        assert_eq!(v[0], "publish");
        assert_eq!(v[1]["channel"], "bench");
        assert_eq!(v[1]["payload"]["s"], s);
        // Broadcast: the payload as is.
        pubsub::build_publish(&mut out, Dialect::Broadcast, "bench", 7, &payload);
        assert_eq!(out, payload);
    }
    // Smaller than the stamp: the stamp alone.
    pubsub::write_payload(&mut payload, &pad, 1, 0, 2, 3);
    assert_eq!(payload, r#"{"t":1,"p":0,"s":2,"pad":""}"#);
}

#[test]
fn socketio_urls_get_the_transport_path() {
    let path = "/socket.io/?EIO=4&transport=websocket";
    for url in ["ws://127.0.0.1:9", "ws://127.0.0.1:9/"] {
        assert_eq!(
            Dialect::SocketIo.url(url),
            format!("ws://127.0.0.1:9{path}")
        );
        assert_eq!(Dialect::Hub.url(url), url);
    }
    let given = "ws://h:1/io/?EIO=4&transport=websocket";
    assert_eq!(Dialect::SocketIo.url(given), given);
}

#[test]
fn offsets_count_lost_duplicate_and_out_of_order() {
    let mut o = pubsub::Offsets::starting_after(10);
    for offset in [11, 12, 12, 15, 13, 16, 9] {
        o.note(offset);
    }
    // 14 never came, 13 came late, 12 twice, 9 is before the subscription: a repeat.
    assert_eq!(o.received, 5);
    assert_eq!(o.duplicates, 2);
    assert_eq!(o.out_of_order, 1);
    assert_eq!(o.lost(16), 1);
    // Two more published and never received.
    assert_eq!(o.lost(18), 3);
}

/// A wsengine hub (the demo configuration, with `publish_rate` per connection; one
/// worker, so the pub/sub tests leave CPU to the timing-sensitive ones beside them) on
/// 127.0.0.1:0, served by a multi-threaded runtime until the returned sender is dropped.
fn hub(
    publish_rate: u32,
) -> (
    SocketAddr,
    tokio::runtime::Runtime,
    tokio::sync::oneshot::Sender<()>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = wsengine_hub::config::Config::demo();
    config.listen = Some("127.0.0.1:0".to_owned());
    config.limits.publish_rate = publish_rate;
    let server = runtime
        .block_on(wsengine_hub::Server::bind(wsengine_hub::ServerOptions {
            config,
            demo: true,
            static_dir: None,
            tls: None,
            engine: None,
        }))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(server.run(async {
        let _ = stopped.await;
    }));
    (addr, runtime, stop)
}

fn hub_settings(addr: SocketAddr) -> HubSettings {
    HubSettings {
        urls: vec![format!("ws://{addr}/ws")],
        dialect: Dialect::Hub,
        transport: super::fallback::Transport::Websocket,
        subscribers: 5,
        publishers: 2,
        channel: "bench".to_owned(),
        rate: 20,
        in_flight: 1,
        until_delivered: false,
        size: 100,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(2),
        // The hub runs in this process: its CPU is ours, but the figures are read.
        server_pids: vec![std::process::id()],
        broker_redis: None,
    }
}

#[test]
fn pubsub_against_a_hub_delivers_every_publication_once() {
    let (addr, runtime, stop) = hub(50);
    let results = pubsub::execute(&hub_settings(addr), ProgressMode::Quiet).unwrap();
    println!("{}", results.text());
    results.verdict().unwrap();
    assert!(results.published > 0);
    assert_eq!(results.delivered, results.published * 5);
    assert_eq!(results.expected, results.delivered);
    assert_eq!(
        (results.lost, results.duplicates, results.out_of_order),
        (0, 0, 0)
    );
    // 2 publishers at 20/s for 2 s: about 80 in the window.
    assert!(
        (60..=100).contains(&results.publishes),
        "{}",
        results.publishes
    );
    assert!(results.deliveries > 0);
    let h = &results.latency;
    assert_eq!(h.len(), results.deliveries);
    let (p50, p99, p999) = (
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{p50} {p99} {p999}");
    assert!(results.server.is_some());
    let text = results.text();
    assert!(text.contains("deliveries/s"), "{text}");
    assert!(
        text.contains("lost 0, duplicate 0, out of order 0"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&results.json()).unwrap();
    assert_eq!(json["mode"], "pubsub");
    assert_eq!(json["totals"]["lost"], 0);
    assert_eq!(json["totals"]["delivered"], results.delivered);
    assert!(json["latency_us"]["p99_9"].as_f64().unwrap() > 0.0);
    assert!(json["server"]["cpu_us_per_delivery"].is_number());
    drop(stop);
    drop(runtime);
}

#[test]
fn pubsub_as_fast_as_in_flight_allows() {
    let _alone = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    // No rate: far over the default publish_rate limit, so the hub's is raised.
    let (addr, runtime, stop) = hub(1_000_000);
    let mut settings = hub_settings(addr);
    settings.rate = 0;
    settings.publishers = 1;
    settings.in_flight = 4;
    settings.warmup = Duration::ZERO;
    settings.duration = Duration::from_millis(300);
    settings.server_pids.clear();
    for until_delivered in [false, true] {
        settings.until_delivered = until_delivered;
        let results = pubsub::execute(&settings, ProgressMode::Quiet).unwrap();
        println!("{}", results.text());
        results.verdict().unwrap();
        assert_eq!(results.delivered, results.published * 5);
        assert_eq!(
            (results.lost, results.duplicates, results.out_of_order),
            (0, 0, 0)
        );
        // Bounded by the round trip only: far more than any paced run of 300 ms.
        assert!(results.published >= 100, "{}", results.published);
    }
    drop(stop);
    drop(runtime);
}

#[test]
fn pubsub_against_an_echo_server_fails_to_subscribe() {
    let (addr, handle, thread) = server(0);
    let mut settings = hub_settings(addr);
    settings.server_pids.clear();
    let error = pubsub::execute(&settings, ProgressMode::Quiet).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("subscribing failed"), "{message}");
    assert!(message.contains("not a wsengine hub"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn pubsub_against_a_server_that_closes_fails_to_subscribe() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and close at once, for every connection.
    let closer = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(7) {
            drop(stream);
        }
    });
    let mut settings = hub_settings(addr);
    settings.server_pids.clear();
    let started = Instant::now();
    let error = pubsub::execute(&settings, ProgressMode::Quiet).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("subscribing failed"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = std::net::TcpStream::connect(addr); // unblocks the closer if it waits
    drop(closer);
}

/// Relays every text message to every open connection, the sender included (what
/// `wsengine serve --mode broadcast` does).
struct Broadcast;

impl Handler for Broadcast {
    fn on_event(&mut self, ctx: &mut Context<'_>, _id: ConnId, event: Event) {
        if let Event::Text { data, .. } = event {
            ctx.broadcast(&wsengine::Message::Text(data), None);
        }
    }
}

fn broadcast_server() -> (SocketAddr, Handle, JoinHandle<()>) {
    let mut event_loop = EventLoop::new(DriverConfig::default(), Broadcast).unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let handle = event_loop.handle();
    let thread = std::thread::spawn(move || event_loop.run().unwrap());
    (addr, handle, thread)
}

#[test]
fn pubsub_against_a_broadcast_server_checks_each_publishers_sequence() {
    let (addr, handle, thread) = broadcast_server();
    for (rate, until_delivered) in [(20, false), (0, false), (0, true)] {
        let mut settings = hub_settings(addr);
        settings.urls = vec![format!("ws://{addr}/")];
        settings.dialect = Dialect::Broadcast;
        settings.rate = rate;
        settings.until_delivered = until_delivered;
        settings.in_flight = 4;
        settings.warmup = Duration::from_millis(100);
        settings.duration = Duration::from_millis(if rate == 0 { 300 } else { 1000 });
        settings.server_pids.clear();
        let results = pubsub::execute(&settings, ProgressMode::Quiet).unwrap();
        println!("{}", results.text());
        results.verdict().unwrap();
        assert!(results.published > 0);
        // Own messages stand for replies: every one came back, and reached all five.
        assert_eq!(results.delivered, results.published * 5);
        assert_eq!(
            (results.lost, results.duplicates, results.out_of_order),
            (0, 0, 0)
        );
        assert!(!results.latency.is_empty());
        let json: serde_json::Value = serde_json::from_str(&results.json()).unwrap();
        assert_eq!(json["settings"]["dialect"], "broadcast");
    }
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn pubsub_without_publishers_holds_idle_subscribers() {
    let (addr, runtime, stop) = hub(50);
    let mut settings = hub_settings(addr);
    settings.publishers = 0;
    settings.warmup = Duration::ZERO;
    settings.duration = Duration::from_millis(200);
    let results = pubsub::execute(&settings, ProgressMode::Quiet).unwrap();
    results.verdict().unwrap();
    assert_eq!((results.published, results.delivered), (0, 0));
    let server = results.server.as_ref().unwrap();
    assert!(server.rss_after > 0);
    drop(stop);
    drop(runtime);
}

/// `--transport sse|long-polling`: 20 subscribers over each fallback transport, one
/// WebSocket publisher, against a real hub: every publication once, in order.
#[test]
fn pubsub_load_over_sse_and_long_polling_delivers_every_publication_once() {
    use super::fallback::Transport;
    let (addr, runtime, stop) = hub(1000);
    for transport in [Transport::Sse, Transport::LongPolling] {
        let mut settings = hub_settings(addr);
        settings.transport = transport;
        settings.subscribers = 20;
        settings.publishers = 1;
        settings.rate = 100;
        settings.in_flight = 4;
        settings.duration = Duration::from_secs(1);
        let results = pubsub::execute(&settings, ProgressMode::Quiet).unwrap();
        println!("{}", results.text());
        results.verdict().unwrap();
        assert!(results.published > 0, "{transport:?}");
        assert!(results.deliveries > 0, "{transport:?}");
        assert_eq!(results.delivered, results.published * 20, "{transport:?}");
        assert_eq!(
            (results.lost, results.duplicates, results.out_of_order),
            (0, 0, 0),
            "{transport:?}"
        );
        assert_eq!(results.errors.total(), 0, "{transport:?}");
        let json: serde_json::Value = serde_json::from_str(&results.json()).unwrap();
        assert_eq!(json["transport"], transport.name());
        assert_eq!(json["settings"]["transport"], transport.name());
        assert!(json["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    }
    drop(stop);
    drop(runtime);
}

/// `--transport sse|long-polling` is refused in one line without `--hub` and against
/// Socket.IO (it speaks WebSocket only).
#[test]
fn load_refuses_fallback_transports_without_the_hub() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }
    use clap::Parser as _;
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
        let cli = Cli::try_parse_from(std::iter::once("load").chain(args.iter().copied())).unwrap();
        let error = run(cli.load).unwrap_err().to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}
