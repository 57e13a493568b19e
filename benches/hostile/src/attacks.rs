//! The seven attacks of issue #14 and the TLS one of issue #16 (in tls.rs), each
//! against a fresh server.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};

use crate::canary::{Canaries, Dial};
use crate::server::{Sampler, Server, Watcher, parse_bytes, parse_duration};
use crate::ws::{self, Conn, Drained, End};
use crate::{Block, Env};

/// Canary clients during every attack.
pub const CANARIES: usize = 20;
/// Canary round trips must stay under this (p99).
pub const CANARY_P99: Duration = Duration::from_millis(250);
/// The budget assumed when `serve --help` lists no `--max-memory`.
const DEFAULT_BUDGET: u64 = 256 << 20;

/// Name and one-line description of each attack, in order.
pub const ATTACKS: [(&str, &str); 8] = [
    (
        "ping-flood",
        "50 clients send 125-byte Pings as fast as they can, never reading",
    ),
    (
        "deflate-pinning",
        "clients each send one ~16 KB compressed fragment (FIN=0) that inflates to ~16 MiB, then only Pings",
    ),
    (
        "stuck",
        "clients make the server queue echoes, then send Close (or an unmasked frame) and stop reading",
    ),
    (
        "broadcast-stall",
        "--mode broadcast: 20 clients stop reading while 5 others chat with 1 KiB messages",
    ),
    (
        "stuffed",
        "clients each send 8 MiB of echo requests without reading, then close",
    ),
    (
        "idle",
        "connections idle after one echo, RSS per connection against connections that never sent",
    ),
    (
        "emfile",
        "server limited to 64 descriptors, filled; 15 clients wait in the backlog; some fillers close",
    ),
    (
        "tls-garbage",
        "a TLS server (wss canaries): plain HTTP, random bytes, half ClientHellos, TLS handshakes then silence",
    ),
];

/// Runs attack `i` (an index into ATTACKS).
pub fn run(env: &Env, i: usize) -> Block {
    let (name, about) = ATTACKS[i];
    let mut block = Block::new(format!("{}. {name}: {about}", i + 1));
    let result = match i {
        0 => ping_flood(env, &mut block),
        1 => deflate_pinning(env, &mut block),
        2 => stuck(env, &mut block),
        3 => broadcast_stall(env, &mut block),
        4 => stuffed(env, &mut block),
        5 => idle(env, &mut block),
        6 => emfile(env, &mut block),
        _ => crate::tls::tls_garbage(env, &mut block),
    };
    if let Err(e) = result {
        block.check("the attack ran", false, e);
    }
    block
}

pub fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The server's memory budget: `--max-memory`'s default, or 256 MiB.
fn budget(env: &Env, block: &mut Block) -> u64 {
    match env.help.flag(&["--max-memory"]) {
        Some((_, Some(d))) if parse_bytes(&d).is_some() => {
            let b = parse_bytes(&d).unwrap_or(DEFAULT_BUDGET);
            block.line(format!(
                "memory budget: {} (--max-memory default {d})",
                mib(b)
            ));
            b
        }
        _ => {
            block.line(format!(
                "memory budget: {} (the issue's default: `serve --help` gives no --max-memory default)",
                mib(DEFAULT_BUDGET)
            ));
            DEFAULT_BUDGET
        }
    }
}

/// A timer of the server: the default `serve --help` gives for the first of `names`, or
/// `fallback` (saying which).
pub fn timer(env: &Env, block: &mut Block, names: &[&str], fallback: Duration) -> Duration {
    match env.help.flag(names) {
        Some((name, Some(d))) if parse_duration(&d).is_some() => {
            block.line(format!("{name}: default {d} (from serve --help)"));
            parse_duration(&d).unwrap_or(fallback)
        }
        Some((name, _)) => {
            block.line(format!(
                "{name} has no parsable default in serve --help; assuming {}",
                secs(fallback)
            ));
            fallback
        }
        None => {
            block.line(format!(
                "serve --help lists no {}: assuming the issue's {}",
                names[0],
                secs(fallback)
            ));
            fallback
        }
    }
}

/// A server with canaries running and its RSS before the attack.
pub struct Stage {
    pub server: Server,
    pub sampler: Sampler,
    canaries: Canaries,
    pub before: u64,
}

fn stage(
    env: &Env,
    block: &mut Block,
    tag: &str,
    args: Vec<String>,
    nofile: Option<u64>,
) -> Result<Stage, String> {
    stage_dial(env, block, tag, args, nofile, &Dial::Plain)
}

/// `stage`, with canaries that connect as `dial` says.
pub fn stage_dial(
    env: &Env,
    block: &mut Block,
    tag: &str,
    mut args: Vec<String>,
    nofile: Option<u64>,
    dial: &Dial,
) -> Result<Stage, String> {
    args.extend(env.server_args.iter().cloned());
    let log = env.logdir.join(format!("{tag}.log"));
    let server = Server::start(&env.server, &args, nofile, &log)
        .map_err(|e| format!("starting the server: {e}"))?;
    block.line(format!("server: {}", server.command));
    let sampler = Sampler::start(server.pid, server.addr.port());
    let canaries = Canaries::start(server.addr, CANARIES, dial);
    thread::sleep(Duration::from_millis(300));
    let before = server.rss();
    Ok(Stage {
        server,
        sampler,
        canaries,
        before,
    })
}

/// RSS before, peak (since `from`) and now.
pub struct Mem {
    pub before: u64,
    pub peak: u64,
    pub after: u64,
}

impl Mem {
    pub fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }
}

/// Ends a stage: RSS after, the canaries' report and checks, the server still running.
pub fn finish(
    block: &mut Block,
    st: &mut Stage,
    from: Instant,
    after_label: &str,
    tag: &str,
) -> Mem {
    st.sampler.freeze();
    let after = st.server.rss();
    let peak = st.sampler.peak_since(from).max(after).max(st.before);
    let mem = Mem {
        before: st.before,
        peak,
        after,
    };
    block.line(format!(
        "RSS{tag}: before {}, peak {} (+{}), {after_label} {} ({} samples)",
        mib(mem.before),
        mib(mem.peak),
        mib(mem.growth()),
        mib(mem.after),
        st.sampler.count(),
    ));
    let canaries = std::mem::replace(&mut st.canaries, Canaries::empty()).stop();
    let p50 = canaries.percentile(0.50);
    let p99 = canaries.percentile(0.99);
    let max = canaries.percentile(1.0);
    let show = |d: Option<Duration>| d.map_or("-".to_owned(), ms);
    block.line(format!(
        "canaries{tag}: {CANARIES} clients, {} messages, round trip p50 {} p99 {} max {}, lost {}, wrong {}",
        canaries.sent,
        show(p50),
        show(p99),
        show(max),
        canaries.lost,
        canaries.wrong
    ));
    for f in canaries.failures.iter().take(5) {
        block.line(format!("  {f}"));
    }
    if canaries.failures.len() > 5 {
        block.line(format!("  ... {} more", canaries.failures.len() - 5));
    }
    block.check(
        format!("canary p99 under {} ms{tag}", CANARY_P99.as_millis()),
        p99.is_some_and(|p| p < CANARY_P99),
        show(p99),
    );
    block.check(
        format!("no canary message lost{tag}"),
        canaries.lost == 0
            && canaries.wrong == 0
            && canaries.failures.is_empty()
            && canaries.sent > 0,
        format!(
            "{} lost, {} wrong of {}, {} canaries failed",
            canaries.lost,
            canaries.wrong,
            canaries.sent,
            canaries.failures.len()
        ),
    );
    let alive = st.server.alive();
    block.check(
        format!("the server is still running{tag}"),
        alive.is_ok(),
        alive.err().unwrap_or_else(|| "yes".into()),
    );
    mem
}

/// What happened to one attacker.
#[derive(Default)]
struct Outcome {
    /// Its local port (the server's view of it is followed by the sampler).
    port: u16,
    /// When its offending act ended (the time closing is measured from).
    since: Option<Instant>,
    /// Seen from the client while it was reading: when the server's Close frame or the
    /// end of the connection came, and the code.
    client_close: Option<Instant>,
    code: Option<u16>,
    /// Reading the connection at the end.
    drained: Option<Drained>,
    /// Bytes it sent.
    sent: u64,
    note: Option<String>,
}

impl Outcome {
    /// When the server was seen closing it: the server dropped its descriptor, or the
    /// client saw the Close frame or the end of the stream.
    fn closed_at(&self, sampler: &Sampler) -> Option<Instant> {
        match (sampler.gone(self.port), self.client_close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn code(&self) -> Option<u16> {
        self.code
            .or_else(|| self.drained.as_ref().and_then(|d| d.close_code))
    }

    fn ended(&self) -> bool {
        self.client_close.is_some()
            || self
                .drained
                .as_ref()
                .is_some_and(|d| !matches!(d.end, End::Open))
    }
}

/// Reads what every attacker still has (in parallel, 3 s at most), for the close codes.
fn drain_all(conns: Vec<(usize, Conn)>, outs: &mut [Outcome]) {
    let handles: Vec<_> = conns
        .into_iter()
        .map(|(i, mut c)| {
            thread::spawn(move || {
                (
                    i,
                    c.drain(Duration::from_secs(3), Duration::from_millis(500)),
                )
            })
        })
        .collect();
    for h in handles {
        if let Ok((i, d)) = h.join() {
            outs[i].drained = Some(d);
        }
    }
}

/// Prints what happened to the attackers; returns how many the server closed within
/// `limit` of their `since` (all closed ones if no limit) and the slowest close.
fn report_attackers(
    block: &mut Block,
    sampler: &Sampler,
    outs: &[Outcome],
) -> (usize, Option<Duration>) {
    let n = outs.len();
    let mut closed = 0;
    let mut slowest: Option<Duration> = None;
    let mut fastest: Option<Duration> = None;
    let mut never_seen = 0;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut still_open = 0;
    for o in outs {
        let at = o.closed_at(sampler);
        if let Some(at) = at {
            closed += 1;
            if let Some(since) = o.since {
                let d = at.saturating_duration_since(since);
                slowest = Some(slowest.map_or(d, |s| s.max(d)));
                fastest = Some(fastest.map_or(d, |s| s.min(d)));
            }
        } else if !sampler.seen(o.port) && o.ended() {
            // Closed before the sampler ever saw it.
            closed += 1;
            never_seen += 1;
            if o.since.is_some() {
                let d = Duration::ZERO;
                slowest = Some(slowest.unwrap_or(d));
                fastest = Some(d);
            }
        }
        let code = o
            .code()
            .map_or("no Close frame".to_owned(), |c| c.to_string());
        *codes.entry(code).or_default() += 1;
        let end = match o.drained.as_ref().map(|d| &d.end) {
            _ if o.client_close.is_some() => "ended while reading".to_owned(),
            Some(End::Eof) => "EOF".to_owned(),
            Some(End::Error(k)) => format!("{k:?}"),
            Some(End::Open) => "still open".to_owned(),
            None => "not drained".to_owned(),
        };
        if at.is_none() && !o.ended() {
            still_open += 1;
        }
        *ends.entry(end).or_default() += 1;
    }
    let sent: u64 = outs.iter().map(|o| o.sent).sum();
    let drained: u64 = outs
        .iter()
        .filter_map(|o| o.drained.as_ref())
        .map(|d| d.bytes)
        .sum();
    block.line(format!(
        "attackers: {n}, sent {} in all, read {} at the end; closed by the server: {closed}/{n}{}; still open at the end: {still_open}/{n}",
        mib(sent),
        mib(drained),
        match (fastest, slowest) {
            (Some(a), Some(b)) => format!(" (after {} to {})", secs(a), secs(b)),
            _ => String::new(),
        }
    ));
    let list = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    block.line(format!(
        "attackers' close codes: {}; their sockets at the end: {}",
        list(&codes),
        list(&ends)
    ));
    if never_seen > 0 {
        block.line(format!(
            "  ({never_seen} closed before the first 100 ms sample of the server's sockets)"
        ));
    }
    let mut notes: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outs {
        if let Some(n) = &o.note {
            *notes.entry(n).or_default() += 1;
        }
    }
    for (note, count) in notes {
        block.line(format!("  {count} attacker(s): {note}"));
    }
    (closed, slowest)
}

/// Opens `n` plain (or deflate-offering) connections in a few threads.
fn open_many(addr: SocketAddr, n: usize, deflate: bool) -> (Vec<Conn>, Vec<String>) {
    let threads = 4.min(n.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let count = n / threads + usize::from(t < n % threads);
            thread::spawn(move || {
                let mut ok = Vec::new();
                let mut errs = Vec::new();
                for _ in 0..count {
                    match Conn::open(addr, deflate, Duration::from_secs(5)) {
                        Ok(c) => ok.push(c),
                        Err(e) => errs.push(e.to_string()),
                    }
                }
                (ok, errs)
            })
        })
        .collect();
    let mut conns = Vec::new();
    let mut errs = Vec::new();
    for h in handles {
        if let Ok((c, e)) = h.join() {
            conns.extend(c);
            errs.extend(e);
        }
    }
    (conns, errs)
}

fn local_port(c: &Conn) -> u16 {
    c.stream.local_addr().map_or(0, |a| a.port())
}

fn after_wait(env: &Env) -> Duration {
    Duration::from_secs(if env.short { 3 } else { 10 })
}

/// 1. Ping flood by non-readers.
fn ping_flood(env: &Env, block: &mut Block) -> Result<(), String> {
    let n = 50;
    let dur = Duration::from_secs(if env.short { 5 } else { 15 });
    let mut st = stage(env, block, "1-ping-flood", Vec::new(), None)?;
    block.line(format!(
        "{n} clients send 125-byte Pings for {}, never reading",
        secs(dur)
    ));
    let ping = ws::frame(ws::OP_PING, true, false, &[b'p'; 125], true);
    let pattern: Arc<Vec<u8>> = Arc::new(ping.repeat(64));
    let (conns, errs) = open_many(st.server.addr, n, false);
    for c in &conns {
        st.sampler.watch(local_port(c));
    }
    let start = Instant::now();
    let deadline = start + dur;
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let pattern = pattern.clone();
            thread::spawn(move || {
                let (sent, err) = ws::pump(&mut c.stream, &pattern, deadline, u64::MAX, None);
                let note = err.map(|e| format!("writing stopped: {}", e.kind()));
                (c, sent, note)
            })
        })
        .collect();
    let mut outs = Vec::new();
    let mut conns = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let Ok((c, sent, note)) = h.join() else {
            continue;
        };
        outs.push(Outcome {
            port: local_port(&c),
            since: Some(start),
            sent,
            note,
            ..Outcome::default()
        });
        conns.push((i, c));
    }
    thread::sleep(after_wait(env));
    let label = format!("{} after", secs(after_wait(env)));
    let mem = finish(block, &mut st, start, &label, "");
    drain_all(conns, &mut outs);
    if !errs.is_empty() {
        block.line(format!(
            "{} attackers could not connect: {}",
            errs.len(),
            errs[0]
        ));
    }
    report_attackers(block, &st.sampler, &outs);
    block.check(
        "RSS growth under 8 MiB",
        mem.growth() < 8 << 20,
        format!("+{}", mib(mem.growth())),
    );
    Ok(())
}

/// A raw DEFLATE stream (sync-flushed) of `size` bytes of 'a'.
fn compressed(size: usize) -> Vec<u8> {
    let input = vec![b'a'; size];
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(size / 500 + 1024);
    let _ = c.compress_vec(&input, &mut out, FlushCompress::Sync);
    while c.total_in() < size as u64 {
        out.reserve(64 << 10);
        let done = usize::try_from(c.total_in()).unwrap_or(size);
        let _ = c.compress_vec(&input[done..], &mut out, FlushCompress::Sync);
    }
    out
}

/// 2. Compressed fragments that pin 16 MiB each.
fn deflate_pinning(env: &Env, block: &mut Block) -> Result<(), String> {
    let n = if env.short { 20 } else { 100 };
    let names = ["--message-timeout", "--fragment-timeout"];
    let mut args = Vec::new();
    let limit = match env.help.flag(&names) {
        Some((name, _)) if env.short => {
            block.line(format!("--short: the server gets {name} 2s"));
            args = vec![name, "2s".to_owned()];
            Duration::from_secs(2)
        }
        _ => timer(env, block, &names, Duration::from_secs(30)),
    };
    let budget = budget(env, block);
    let inflated = (16 << 20) - 1024;
    let fragment = compressed(inflated);
    let mut st = stage(env, block, "2-deflate-pinning", args, None)?;
    block.line(format!(
        "{n} clients each send one {}-byte compressed fragment (RSV1, FIN=0, masked) inflating to {} bytes, then a Ping a second",
        fragment.len(),
        inflated
    ));
    let frames: Arc<[Vec<u8>; 2]> = Arc::new([
        ws::frame(ws::OP_TEXT, false, true, &fragment, true),
        ws::frame(ws::OP_BINARY, false, true, &fragment, true),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(n));
    // Attackers that sent their fragment (or failed before).
    let ready = Arc::new(AtomicUsize::new(0));
    let watcher = st.sampler.watcher();
    let start = Instant::now();
    let addr = st.server.addr;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (frames, stop, open, ready, watcher) = (
                frames.clone(),
                stop.clone(),
                open.clone(),
                ready.clone(),
                watcher.clone(),
            );
            thread::spawn(move || {
                let mut out = Outcome::default();
                let r = pin(addr, &frames[i % 2], &stop, &ready, &watcher, &mut out);
                if out.since.is_none() {
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                open.fetch_sub(1, Ordering::Relaxed);
                match r {
                    Ok(conn) => (out, conn),
                    Err(e) => {
                        out.note = Some(e.to_string());
                        (out, None)
                    }
                }
            })
        })
        .collect();
    // Wait the message timeout after the last fragment, or until all are closed.
    let slack = Duration::from_secs(1) + limit / 10;
    let mut wait_until = None;
    loop {
        if ready.load(Ordering::Relaxed) >= n && wait_until.is_none() {
            wait_until = Some(Instant::now() + limit + slack);
        }
        let now = Instant::now();
        if open.load(Ordering::Relaxed) == 0
            || wait_until.is_some_and(|w| now >= w)
            || now > start + limit + slack + Duration::from_secs(20)
        {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let attack_end = Instant::now();
    let peak_during = st.sampler.peak_since(start);
    // Before the attackers close their own sockets.
    st.sampler.freeze();
    stop.store(true, Ordering::Relaxed);
    // The attackers keep their connections (the server may still hold their fragments)
    // until RSS has been measured after the attack.
    let (outs, _conns): (Vec<Outcome>, Vec<Option<Conn>>) =
        handles.into_iter().filter_map(|h| h.join().ok()).unzip();
    let deflated = outs
        .iter()
        .filter(|o| o.note.as_deref() != Some("permessage-deflate not agreed"))
        .count();
    thread::sleep(after_wait(env).saturating_sub(attack_end.elapsed()));
    let label = format!("{} after", secs(after_wait(env)));
    let mem = finish(block, &mut st, start, &label, "");
    let (_, slowest) = report_attackers(block, &st.sampler, &outs);
    let in_time = outs
        .iter()
        .filter(|o| match (o.closed_at(&st.sampler), o.since) {
            (Some(at), Some(since)) => at.saturating_duration_since(since) <= limit + slack,
            _ => false,
        })
        .count();
    block.check(
        format!("RSS growth within the memory budget ({})", mib(budget)),
        mem.growth() <= budget && peak_during.saturating_sub(mem.before) <= budget,
        format!("+{}", mib(mem.growth())),
    );
    block.check(
        format!(
            "every attacker closed by the server within the message timeout ({} + {} slack)",
            secs(limit),
            secs(slack)
        ),
        in_time == n,
        format!(
            "{in_time}/{n} in time, slowest {}",
            slowest.map_or("-".into(), secs)
        ),
    );
    block.check(
        "the attack took place: permessage-deflate agreed with every attacker",
        deflated == n,
        format!("{deflated}/{n}"),
    );
    Ok(())
}

/// One pinning attacker: handshake with deflate, the fragment, then a Ping a second
/// (answering nothing) until the server closes or `stop`.
fn pin(
    addr: SocketAddr,
    fragment: &[u8],
    stop: &AtomicBool,
    ready: &AtomicUsize,
    watcher: &Watcher,
    out: &mut Outcome,
) -> io::Result<Option<Conn>> {
    let mut conn = Conn::open(addr, true, Duration::from_secs(5))?;
    out.port = local_port(&conn);
    watcher.watch(out.port);
    if !conn.deflate {
        out.note = Some("permessage-deflate not agreed".into());
    }
    conn.send(fragment, Duration::from_secs(10))?;
    out.sent = fragment.len() as u64;
    out.since = Some(Instant::now());
    ready.fetch_add(1, Ordering::Relaxed);
    let ping = ws::frame(ws::OP_PING, true, false, b"still here", true);
    let mut next_ping = Instant::now() + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_ping {
            next_ping += Duration::from_secs(1);
            if conn.send(&ping, Duration::from_secs(1)).is_err() {
                out.client_close.get_or_insert(Instant::now());
            }
        }
        match conn.read_frame(Instant::now() + Duration::from_millis(100)) {
            Ok(Some(f)) if f.opcode == ws::OP_CLOSE => {
                out.client_close = Some(Instant::now());
                out.code = Some(f.close_code());
                let _ = conn.send(&ws::close_frame(f.close_code()), Duration::from_secs(1));
                out.drained = Some(conn.drain(Duration::from_secs(2), Duration::from_secs(2)));
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) => {
                out.client_close = Some(Instant::now());
                out.drained = Some(Drained {
                    close_code: None,
                    end: if e.kind() == io::ErrorKind::UnexpectedEof {
                        End::Eof
                    } else {
                        End::Error(e.kind())
                    },
                    bytes: 0,
                });
                return Ok(None);
            }
        }
    }
    out.drained = Some(Drained {
        close_code: None,
        end: End::Open,
        bytes: 0,
    });
    Ok(Some(conn))
}

/// 3. Stuck connections: queued echoes, then Close or a protocol error, then silence.
fn stuck(env: &Env, block: &mut Block) -> Result<(), String> {
    let n = 20;
    let close_t = timer(env, block, &["--close-timeout"], Duration::from_secs(5));
    let write_t = timer(
        env,
        block,
        &[
            "--write-timeout",
            "--write-deadline",
            "--close-write-timeout",
            "--send-timeout",
            "--flush-timeout",
        ],
        Duration::from_secs(5),
    );
    let limit = close_t + write_t;
    let slack = Duration::from_secs(1);
    let mut st = stage(env, block, "3-stuck", Vec::new(), None)?;
    // Beyond what the kernel buffers take (the server's send buffer grows to
    // net.ipv4.tcp_wmem's 4 MiB on loopback) and below that plus the server's 4 MiB send
    // limit, so that it still reads the Close.
    let queued: u64 = 6 << 20;
    block.line(format!(
        "{n} clients (receive buffer 4 KiB) send {} of 64 KiB echo requests, then {} a Close frame and {} an unmasked frame, and never read",
        mib(queued),
        n / 2,
        n - n / 2
    ));
    let msg = Arc::new(ws::frame(
        ws::OP_BINARY,
        true,
        false,
        &vec![b'q'; 64 << 10],
        true,
    ));
    let addr = st.server.addr;
    let watcher = st.sampler.watcher();
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (msg, watcher) = (msg.clone(), watcher.clone());
            thread::spawn(move || {
                let mut out = Outcome::default();
                let r = (|| -> io::Result<Conn> {
                    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                    ws::set_rcvbuf(&s, 4096)?;
                    let mut c = Conn::handshake(s, false, Duration::from_secs(5))?;
                    out.port = local_port(&c);
                    watcher.watch(out.port);
                    let (sent, err) = ws::pump(
                        &mut c.stream,
                        &msg,
                        Instant::now() + Duration::from_secs(10),
                        queued,
                        Some(Duration::from_secs(3)),
                    );
                    out.sent = sent;
                    if let Some(e) = err {
                        return Err(e);
                    }
                    if sent < queued {
                        out.note = Some(format!(
                            "the server stopped reading after {} (Close or error frame sent anyway)",
                            mib(sent)
                        ));
                    }
                    let last = if i % 2 == 0 {
                        ws::close_frame(1000)
                    } else {
                        ws::frame(ws::OP_BINARY, true, false, b"unmasked", false)
                    };
                    match c.send(&last, Duration::from_secs(2)) {
                        Ok(()) => out.since = Some(Instant::now()),
                        Err(e) => {
                            out.note = Some(format!(
                                "the final frame could not be written ({}): the server stopped reading",
                                e.kind()
                            ));
                        }
                    }
                    Ok(c)
                })();
                match r {
                    Ok(c) => (out, Some(c)),
                    Err(e) => {
                        out.note = Some(format!("failed: {e}"));
                        (out, None)
                    }
                }
            })
        })
        .collect();
    let mut outs = Vec::new();
    let mut conns = Vec::new();
    for h in handles {
        let Ok((out, c)) = h.join() else { continue };
        if let Some(c) = c {
            conns.push((outs.len(), c));
        }
        outs.push(out);
    }
    let last_sent = outs.iter().filter_map(|o| o.since).max().unwrap_or(start);
    block.line(format!(
        "all final frames written {} after the start; waiting up to {} for the server to close them",
        secs(last_sent - start),
        secs(limit + slack)
    ));
    // What the server holds itself: echoes not in its kernel queues nor read by us, and
    // requests it has read (not in its kernel receive queue).
    thread::sleep(Duration::from_millis(500));
    let ports_now: Vec<u16> = outs.iter().map(|o| o.port).collect();
    let (tx, rx) = crate::server::queued(st.server.pid, st.server.addr.port(), &ports_now);
    let sent_all: u64 = outs.iter().map(|o| o.sent).sum();
    let read_all: u64 = conns.iter().map(|(_, c)| c.rx_bytes).sum();
    let unacked: u64 = conns.iter().map(|(_, c)| ws::unacked(&c.stream)).sum();
    block.line(format!(
        "0.5 s later: server RSS +{}; its kernel queues to them hold {} to send, {} unread; {} not yet taken by its kernel; about {} of echoes wait in the server itself",
        mib(st.server.rss().saturating_sub(st.before)),
        mib(tx),
        mib(rx),
        mib(unacked),
        mib(sent_all.saturating_sub(rx + tx + read_all + unacked))
    ));
    if unacked > 0 {
        block.line(
            "note: the server stopped reading before every final frame reached it: those wait in the clients' send queues (closing them is then up to its slow-reader policy)",
        );
    }
    let wait_until = last_sent + limit + slack;
    while Instant::now() < wait_until {
        let all_gone = outs.iter().all(|o| st.sampler.gone(o.port).is_some());
        if all_gone {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(200));
    let mem = finish(block, &mut st, start, "at the end", "");
    let _ = mem;
    drain_all(conns, &mut outs);
    let (_, slowest) = report_attackers(block, &st.sampler, &outs);
    let in_time = outs
        .iter()
        .filter(|o| match (o.closed_at(&st.sampler), o.since) {
            (Some(at), Some(since)) => at.saturating_duration_since(since) <= limit + slack,
            // Dropped before the sampler ever saw it.
            (None, Some(_)) => !st.sampler.seen(o.port) && o.ended(),
            _ => false,
        })
        .count();
    block.check(
        format!(
            "every socket closed by the server within close timeout + write deadline ({} + {} slack)",
            secs(limit),
            secs(slack)
        ),
        in_time == n,
        format!(
            "{in_time}/{n} in time (server's descriptor gone), slowest {}",
            slowest.map_or("-".into(), secs)
        ),
    );
    Ok(())
}

/// Messages per second each chatter sends in the broadcast attack.
const CHAT_RATE: usize = 200;

/// 4. Stalled readers in broadcast mode.
fn broadcast_stall(env: &Env, block: &mut Block) -> Result<(), String> {
    let (stalled_n, chatters_n) = (20, 5);
    let dur = Duration::from_secs(if env.short { 5 } else { 15 });
    let args = vec!["--mode".to_owned(), "broadcast".to_owned()];
    let mut st = stage(env, block, "4-broadcast-stall", args, None)?;
    block.line(format!(
        "{stalled_n} clients never read; {chatters_n} clients each send {CHAT_RATE} 1 KiB text messages a second for {} (and read everything: {} KiB/s to every client)",
        secs(dur),
        chatters_n * CHAT_RATE
    ));
    let (stalled, errs) = open_many(st.server.addr, stalled_n, false);
    for c in &stalled {
        st.sampler.watch(local_port(c));
    }
    let (chatters, errs2) = open_many(st.server.addr, chatters_n, false);
    let msg = ws::frame(ws::OP_TEXT, true, false, &[b'c'; 1024], true);
    let pattern = Arc::new(msg.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + dur;
    let mut handles = Vec::new();
    let mut readers = Vec::new();
    for c in chatters {
        let pattern = pattern.clone();
        if let Ok(mut rs) = c.stream.try_clone() {
            let stop = stop.clone();
            readers.push(thread::spawn(move || {
                let _ = rs.set_read_timeout(Some(Duration::from_millis(100)));
                let mut buf = vec![0u8; 64 << 10];
                while !stop.load(Ordering::Relaxed) {
                    match io::Read::read(&mut rs, &mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            }));
        }
        handles.push(thread::spawn(move || {
            let mut c = c;
            // A chat pace a reading client keeps up with: what the attack is about is
            // the clients that do not read. Unpaced, the chatters send as fast as the
            // server fans out, and every client slower than the fan-out (the canaries
            // included) is rightly closed as a slow consumer.
            let period = Duration::from_secs(1) / CHAT_RATE as u32;
            let mut sent = 0u64;
            let mut next = Instant::now();
            while next < deadline {
                let (n, err) = ws::pump(&mut c.stream, &pattern, deadline, 1, None);
                sent += n;
                if err.is_some() {
                    break;
                }
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            (c, sent)
        }));
    }
    let mut chat_sent = 0;
    let mut chatters = Vec::new();
    for h in handles {
        if let Ok((c, s)) = h.join() {
            chat_sent += s;
            chatters.push(c);
        }
    }
    thread::sleep(after_wait(env));
    let label = format!("{} after", secs(after_wait(env)));
    let mem = finish(block, &mut st, start, &label, "");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.join();
    }
    drop(chatters);
    block.line(format!(
        "chatters sent {} ({:.0} messages/s)",
        mib(chat_sent),
        chat_sent as f64 / msg.len() as f64 / dur.as_secs_f64()
    ));
    if !errs.is_empty() || !errs2.is_empty() {
        block.line(format!(
            "{} clients could not connect: {}",
            errs.len() + errs2.len(),
            errs.first().or(errs2.first()).map_or("", String::as_str)
        ));
    }
    let mut outs: Vec<Outcome> = stalled
        .iter()
        .map(|c| Outcome {
            port: local_port(c),
            since: Some(start),
            ..Outcome::default()
        })
        .collect();
    let closed_by_server = outs
        .iter()
        .filter(|o| st.sampler.gone(o.port).is_some())
        .count();
    drain_all(stalled.into_iter().enumerate().collect(), &mut outs);
    report_attackers(block, &st.sampler, &outs);
    block.check(
        "RSS growth under 16 MiB",
        mem.growth() < 16 << 20,
        format!("+{}", mib(mem.growth())),
    );
    block.check(
        "the stalled readers closed by the server",
        closed_by_server == stalled_n,
        format!("{closed_by_server}/{stalled_n} (server's descriptor gone before the end)"),
    );
    Ok(())
}

/// 5. Stuffed then closed.
fn stuffed(env: &Env, block: &mut Block) -> Result<(), String> {
    let n = if env.short { 50 } else { 100 };
    let per: u64 = 8 << 20;
    let budget = budget(env, block);
    let mut st = stage(env, block, "5-stuffed", Vec::new(), None)?;
    let stuff_time = Duration::from_secs(if env.short { 8 } else { 15 });
    block.line(format!(
        "{n} clients each send {} of 64 KiB echo requests without reading (giving up after 2 s without progress or {}), then close the socket",
        mib(per),
        secs(stuff_time)
    ));
    let msg = Arc::new(ws::frame(
        ws::OP_BINARY,
        true,
        false,
        &vec![b's'; 64 << 10],
        true,
    ));
    let (conns, errs) = open_many(st.server.addr, n, false);
    let start = Instant::now();
    let deadline = start + stuff_time;
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let msg = msg.clone();
            thread::spawn(move || {
                let (sent, err) = ws::pump(
                    &mut c.stream,
                    &msg,
                    deadline,
                    per,
                    Some(Duration::from_secs(2)),
                );
                (c, sent, err)
            })
        })
        .collect();
    let mut sent_all = 0;
    let mut full = 0;
    let mut conns = Vec::new();
    for h in handles {
        if let Ok((c, s, _)) = h.join() {
            sent_all += s;
            full += usize::from(s >= per);
            conns.push(c);
        }
    }
    // The kernel takes the requests at once: close only when the server has read what
    // it will (its receive queues stop shrinking), so that it holds the echoes.
    let ports: Vec<u16> = conns.iter().map(local_port).collect();
    let mut last = u64::MAX;
    let mut stable = 0;
    let hold_until = Instant::now() + Duration::from_secs(if env.short { 5 } else { 10 });
    while Instant::now() < hold_until && stable < 5 {
        let (_, rx) = crate::server::queued(st.server.pid, st.server.addr.port(), &ports);
        stable = if rx == last || rx == 0 { stable + 1 } else { 0 };
        last = rx;
        thread::sleep(Duration::from_millis(100));
    }
    let held = st.server.rss();
    drop(conns);
    let closed = Instant::now();
    block.line(format!(
        "server RSS when they closed: {} (+{}), its kernel receive queues then held {}",
        mib(held),
        mib(held.saturating_sub(st.before)),
        mib(last)
    ));
    block.line(format!(
        "sent {} in all ({full}/{n} sent all {}); all closed {} after the start",
        mib(sent_all),
        mib(per),
        secs(closed - start)
    ));
    if !errs.is_empty() {
        block.line(format!(
            "{} clients could not connect: {}",
            errs.len(),
            errs[0]
        ));
    }
    // Until RSS is back under twice its value before, 10 s at most.
    let mut back = None;
    while closed.elapsed() < Duration::from_secs(10) {
        if st.server.rss() < 2 * st.before {
            back = Some(closed.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let label = match back {
        Some(d) => format!("back under 2x {} after the close:", secs(d)),
        None => "10 s after the close".to_owned(),
    };
    let mem = finish(block, &mut st, start, &label, "");
    block.check(
        format!("peak within the memory budget ({})", mib(budget)),
        mem.growth() <= budget,
        format!("peak {} (+{})", mib(mem.peak), mib(mem.growth())),
    );
    block.check(
        "RSS back under 2x its pre-attack value within 10 s",
        back.is_some(),
        match back {
            Some(d) => format!("after {}", secs(d)),
            None => format!(
                "{} after 10 s, 2x before is {}",
                mib(mem.after),
                mib(2 * mem.before)
            ),
        },
    );
    Ok(())
}

/// 6. Idle connections after one echo against ones that never sent.
fn idle(env: &Env, block: &mut Block) -> Result<(), String> {
    let want = if env.short { 1_000 } else { 10_000 };
    let n = want.min(usize::try_from(env.nofile.saturating_sub(200)).unwrap_or(want));
    if n < want {
        block.line(format!(
            "descriptor limit {}: scaled down from {want} to {n} connections",
            env.nofile
        ));
    }
    let mut args = Vec::new();
    if let Some((name, _)) = env.help.flag(&["--max-connections"]) {
        args = vec![name, (n + 1000).to_string()];
        block.line(format!(
            "the server gets {} (for the canaries)",
            args.join(" ")
        ));
    }
    let size = 512;
    let base = idle_phase(env, block, &args, n, None, " (never sent)")?;
    let echo = idle_phase(env, block, &args, n, Some(size), " (one echo)")?;
    block.line(format!(
        "RSS per connection: {base:.0} B never sent, {echo:.0} B after one {size}-byte echo"
    ));
    block.check(
        "at most 2 KiB per connection idle after one echo",
        echo <= 2048.0,
        format!("{echo:.0} B (never sent: {base:.0} B)"),
    );
    Ok(())
}

/// Opens `n` connections (each echoing one message of `echo` bytes if given) on a fresh
/// server; returns the RSS growth per connection.
fn idle_phase(
    env: &Env,
    block: &mut Block,
    args: &[String],
    n: usize,
    echo: Option<usize>,
    tag: &str,
) -> Result<f64, String> {
    let name = if echo.is_some() {
        "6-idle-echo"
    } else {
        "6-idle-base"
    };
    let mut st = stage(env, block, name, args.to_vec(), None)?;
    let start = Instant::now();
    let (mut conns, mut errs) = open_many(st.server.addr, n, false);
    if let Some(size) = echo {
        let text = vec![b'e'; size];
        let frame = ws::frame(ws::OP_TEXT, true, false, &text, true);
        let mut echoed = 0;
        for c in &mut conns {
            let r = c.send(&frame, Duration::from_secs(5)).and_then(|()| {
                match c.read_frame(Instant::now() + Duration::from_secs(5))? {
                    Some(f) if f.payload == text => Ok(()),
                    _ => Err(io::Error::other("no echo")),
                }
            });
            match r {
                Ok(()) => echoed += 1,
                Err(e) => errs.push(format!("echo: {e}")),
            }
        }
        block.line(format!(
            "{echoed}/{} connections echoed one message",
            conns.len()
        ));
    }
    let opened = conns.len();
    block.line(format!(
        "{opened}/{n} connections opened{} in {}{tag}",
        if echo.is_some() { " and echoed" } else { "" },
        secs(start.elapsed())
    ));
    if !errs.is_empty() {
        block.line(format!("{} failures, first: {}", errs.len(), errs[0]));
    }
    // The server gives an idle connection's buffers back after a second without traffic
    // (wsengine-mio's idle sweep runs once a second): measure after that, in both modes.
    thread::sleep(Duration::from_secs(3));
    let mem = finish(block, &mut st, start, "held", tag);
    drop(conns);
    if opened == 0 {
        return Err("no connection opened".into());
    }
    Ok(mem.after.saturating_sub(mem.before) as f64 / opened as f64)
}

/// 7. Out of descriptors: are backlog clients served once descriptors free up?
fn emfile(env: &Env, block: &mut Block) -> Result<(), String> {
    let limit = 64;
    let waiters_n = 15;
    let mut st = stage(env, block, "7-emfile", Vec::new(), Some(limit))?;
    let addr = st.server.addr;
    // Fill: handshakes until one gets no answer within a second.
    let mut fillers = Vec::new();
    let mut first_waiter = None;
    for _ in 0..limit * 2 {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connecting a filler: {e}"))?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        w.write_all(ws::request(false).as_bytes())
            .map_err(|e| e.to_string())?;
        match Conn::finish_handshake(s, Instant::now() + Duration::from_secs(1)) {
            Ok(c) => fillers.push(c),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                first_waiter = Some(w);
                break;
            }
            Err(e) => return Err(format!("filler {}: {e}", fillers.len())),
        }
    }
    let Some(first) = first_waiter else {
        return Err(format!(
            "the server never ran out of descriptors ({} fillers served)",
            fillers.len()
        ));
    };
    block.line(format!(
        "{} fillers (and the {CANARIES} canaries) hold the server's descriptors; {waiters_n} clients wait in the backlog",
        fillers.len()
    ));
    let mut waiters = vec![first];
    for _ in 1..waiters_n {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connecting a waiter: {e}"))?;
        s.write_all(ws::request(false).as_bytes())
            .map_err(|e| e.to_string())?;
        waiters.push(s);
    }
    let start = Instant::now();
    let free_at = start + Duration::from_secs(1);
    let handles: Vec<_> = waiters
        .into_iter()
        .map(|s| {
            thread::spawn(move || {
                let r = Conn::finish_handshake(s, free_at + Duration::from_secs(4));
                (Instant::now(), r.map_err(|e| e.to_string()))
            })
        })
        .collect();
    thread::sleep(free_at.saturating_duration_since(Instant::now()));
    let k = (waiters_n + 4).min(fillers.len());
    fillers.truncate(fillers.len() - k);
    let freed = Instant::now();
    block.line(format!("{k} fillers closed"));
    let mut served_in_time = 0;
    let mut early = 0;
    let mut late = Vec::new();
    let mut never = Vec::new();
    let mut conns = Vec::new();
    for h in handles {
        let Ok((t, r)) = h.join() else { continue };
        match r {
            Ok(c) => {
                if t < freed {
                    early += 1;
                    served_in_time += 1;
                } else if t - freed <= Duration::from_secs(1) {
                    served_in_time += 1;
                } else {
                    late.push(t - freed);
                }
                conns.push(c);
            }
            Err(e) => never.push(e),
        }
    }
    let slowest = late.iter().max().copied();
    block.line(format!(
        "waiting clients: {served_in_time}/{waiters_n} served within 1 s of the close ({early} before it), {} later{}, {} not within 4 s{}",
        late.len(),
        slowest.map_or(String::new(), |d| format!(" (slowest {})", secs(d))),
        never.len(),
        never.first().map_or(String::new(), |e| format!(" ({e})"))
    ));
    thread::sleep(Duration::from_millis(500));
    finish(block, &mut st, start, "at the end", "");
    block.check(
        "every waiting client served within 1 s of descriptors freeing",
        served_in_time == waiters_n,
        format!("{served_in_time}/{waiters_n}"),
    );
    drop(conns);
    Ok(())
}
