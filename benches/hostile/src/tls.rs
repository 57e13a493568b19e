//! The TLS garbage attack (the eighth): issue #16's "bad input gets a clean end", at
//! scale. A TLS server (a throwaway CA and `localhost` certificate made with openssl for
//! the run), wss canaries, and thousands of attackers that each send plain HTTP, random
//! bytes or half a ClientHello, or complete a TLS handshake (1.3, 1.2, or 1.3 without
//! SNI) and then say nothing. Each must be ended by the server (EOF or reset), the garbage at once,
//! the others at the handshake timeout; RSS must stay bounded, come back after the
//! attack, and be the same after each of three waves.
//!
//! Renegotiation is not attempted: rustls' client cannot renegotiate (the server's
//! refusal of a TLS 1.2 renegotiation is tested with `openssl s_client` in
//! cli/tests/serve.rs).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore};

use crate::attacks::{self, CANARIES, mib, secs, stage_dial};
use crate::canary::Dial;
use crate::server::open_peer_ports;
use crate::ws;
use crate::{Block, Env};

/// What one attacker does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Http,
    Random,
    HalfHello,
    Silent13,
    Silent12,
    NoSni,
}

const KINDS: [Kind; 6] = [
    Kind::Http,
    Kind::Random,
    Kind::HalfHello,
    Kind::Silent13,
    Kind::Silent12,
    Kind::NoSni,
];

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Http => "plain HTTP (a WebSocket upgrade request)",
            Kind::Random => "512 random bytes",
            Kind::HalfHello => "half a ClientHello, then silence",
            Kind::Silent13 => "a TLS 1.3 handshake (SNI localhost), then silence",
            Kind::Silent12 => "a TLS 1.2 handshake (SNI localhost), then silence",
            Kind::NoSni => "a TLS 1.3 handshake without SNI (to 127.0.0.1), then silence",
        }
    }

    /// Ended as soon as the server reads it (a TLS error); the others wait for the
    /// handshake timeout.
    fn garbage(self) -> bool {
        matches!(self, Kind::Http | Kind::Random)
    }

    fn version(self) -> Option<ProtocolVersion> {
        match self {
            Kind::Silent13 | Kind::NoSni => Some(ProtocolVersion::TLSv1_3),
            Kind::Silent12 => Some(ProtocolVersion::TLSv1_2),
            _ => None,
        }
    }
}

/// Attackers that end at once must be ended within this of their bytes.
const AT_ONCE: Duration = Duration::from_secs(1);
/// Opener threads (blocking connects and handshakes).
const OPENERS: usize = 4;

/// How an attacker's connection ended.
#[derive(Clone)]
enum How {
    Eof,
    Reset(io::ErrorKind),
}

/// What happened to one attacker.
struct Attacker {
    kind: Kind,
    /// Its local port (to find it among the server's connections).
    port: u16,
    connected: Option<Instant>,
    /// When its bytes were written or its handshake completed.
    acted: Option<Instant>,
    ended: Option<(Instant, How)>,
    /// The first bytes the server sent (a TLS alert, for the garbage).
    first: Vec<u8>,
    rx_bytes: u64,
    version: Option<ProtocolVersion>,
    /// Why it could not attack (a client-side failure).
    failed: Option<String>,
}

impl Attacker {
    fn new(kind: Kind) -> Attacker {
        Attacker {
            kind,
            port: 0,
            connected: None,
            acted: None,
            ended: None,
            first: Vec::new(),
            rx_bytes: 0,
            version: None,
            failed: None,
        }
    }

    /// The TLS alert the server sent in the clear (level, description), if its first
    /// bytes were one.
    fn alert(&self) -> Option<u8> {
        match self.first.as_slice() {
            [0x15, 0x03, _, 0x00, 0x02, _, desc, ..] => Some(*desc),
            _ => None,
        }
    }

    /// The time its end is measured from: its bytes for the garbage, the connection
    /// (the server's handshake timer starts at accept) for the others.
    fn since(&self) -> Option<Instant> {
        if self.kind.garbage() {
            self.acted
        } else {
            self.connected
        }
    }

    fn took(&self) -> Option<Duration> {
        Some(
            self.ended
                .as_ref()?
                .0
                .saturating_duration_since(self.since()?),
        )
    }
}

fn alert_name(desc: u8) -> String {
    match desc {
        0 => "close_notify".into(),
        10 => "unexpected_message".into(),
        20 => "bad_record_mac".into(),
        22 => "record_overflow".into(),
        40 => "handshake_failure".into(),
        47 => "illegal_parameter".into(),
        50 => "decode_error".into(),
        70 => "protocol_version".into(),
        80 => "internal_error".into(),
        109 => "missing_extension".into(),
        112 => "unrecognized_name".into(),
        120 => "no_application_protocol".into(),
        d => format!("alert {d}"),
    }
}

/// A throwaway CA and a certificate for `localhost` and 127.0.0.1 (ECDSA P-256), made
/// with openssl in a directory removed on drop.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn make_pki(dir: PathBuf) -> Result<Pki, String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        dir,
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=wsengine-hostile throwaway CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&pki.dir, &ca)?;
    let mut req = vec!["req", "-new", "-nodes"];
    req.extend(ec);
    req.extend([
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&pki.dir, &req)?;
    std::fs::write(
        pki.dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(
        &pki.dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    )?;
    Ok(pki)
}

/// A client configuration trusting `roots` only: the given versions, ALPN http/1.1,
/// session resumption off unless `resume` (every attacker makes a full handshake).
fn client_config(
    roots: &RootCertStore,
    versions: &[&'static rustls::SupportedProtocolVersion],
    resume: bool,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        c.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(c))
}

/// `n` bytes of noise (xorshift, seeded by `seed`). The first byte is never a TLS
/// content type (0x14-0x18): a record header that happens to parse is half a
/// ClientHello's case, not noise's.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect();
    if let Some(b) = out.first_mut()
        && (0x14..=0x18).contains(b)
    {
        *b ^= 0x80;
    }
    out
}

/// What the openers share.
struct Tools {
    addr: SocketAddr,
    tls13: Arc<ClientConfig>,
    tls12: Arc<ClientConfig>,
    hello: Vec<u8>,
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap_or(ServerName::IpAddress(
        IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
    ))
}

/// Connects attacker `i` and does its act; returns the socket (non-blocking) if it is
/// still open.
fn act(i: usize, kind: Kind, t: &Tools, out: &mut Attacker) -> Option<TcpStream> {
    let mut s = match TcpStream::connect_timeout(&t.addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            out.failed = Some(format!("connecting: {e}"));
            return None;
        }
    };
    let connected = Instant::now();
    out.connected = Some(connected);
    out.port = s.local_addr().map_or(0, |a| a.port());
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let r = match kind {
        Kind::Http => s.write_all(ws::request(false).as_bytes()),
        Kind::Random => s.write_all(&noise(i as u64 + 1, 512)),
        Kind::HalfHello => s.write_all(&t.hello[..t.hello.len() / 2]),
        Kind::Silent13 | Kind::Silent12 | Kind::NoSni => {
            let (config, name) = match kind {
                Kind::Silent12 => (&t.tls12, localhost()),
                Kind::NoSni => (
                    &t.tls13,
                    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
                ),
                _ => (&t.tls13, localhost()),
            };
            match ClientConnection::new(config.clone(), name) {
                Ok(mut tls) => {
                    let r = ws::tls_handshake(&mut tls, &mut s, connected + Duration::from_secs(5));
                    out.version = tls.protocol_version();
                    r
                }
                Err(e) => {
                    out.failed = Some(format!("TLS client: {e}"));
                    return None;
                }
            }
        }
    };
    let now = Instant::now();
    if let Err(e) = r {
        // The server ending the connection first (a reset, or EOF in a handshake) is an
        // end; anything else is this client's failure.
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => {
                out.acted = Some(now);
                out.ended = Some((now, How::Reset(e.kind())));
            }
            _ => out.failed = Some(format!("its act: {e}")),
        }
        return None;
    }
    out.acted = Some(now);
    if let Err(e) = s.set_nonblocking(true) {
        out.failed = Some(format!("set_nonblocking: {e}"));
        return None;
    }
    Some(s)
}

/// One socket the poller follows.
struct Followed {
    i: usize,
    stream: TcpStream,
    first: Vec<u8>,
    rx_bytes: u64,
}

/// What the poller found: (attacker, end, first bytes, bytes read), the attackers still
/// open when it stopped, and the most sockets it followed at once.
type Found = (
    Vec<(usize, Option<(Instant, How)>, Vec<u8>, u64)>,
    usize,
    usize,
);

/// Follows every attacker socket handed over until the server ends it, or `stop`.
fn poller(rx: mpsc::Receiver<(usize, TcpStream)>, stop: &AtomicBool) -> Found {
    let mut list: Vec<Followed> = Vec::new();
    let mut found = Vec::new();
    let mut senders_gone = false;
    let mut most = 0;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        loop {
            match rx.try_recv() {
                Ok((i, stream)) => list.push(Followed {
                    i,
                    stream,
                    first: Vec::new(),
                    rx_bytes: 0,
                }),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    senders_gone = true;
                    break;
                }
            }
        }
        most = most.max(list.len());
        if (senders_gone && list.is_empty()) || stop.load(Ordering::Relaxed) {
            break;
        }
        if list.is_empty() {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut fds: Vec<libc::pollfd> = list
            .iter()
            .map(|f| libc::pollfd {
                fd: f.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfd of that length.
        #[allow(unsafe_code)]
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if n <= 0 {
            continue;
        }
        let now = Instant::now();
        let mut k = 0;
        let mut ended = Vec::new();
        for (f, p) in list.iter_mut().zip(&fds) {
            if p.revents == 0 {
                k += 1;
                continue;
            }
            let end = loop {
                match f.stream.read(&mut buf) {
                    Ok(0) => break Some(How::Eof),
                    Ok(n) => {
                        let take = n.min(16usize.saturating_sub(f.first.len()));
                        f.first.extend_from_slice(&buf[..take]);
                        f.rx_bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(How::Reset(e.kind())),
                }
            };
            if let Some(how) = end {
                ended.push((k, how));
            }
            k += 1;
        }
        for (k, how) in ended.into_iter().rev() {
            let f = list.swap_remove(k);
            found.push((f.i, Some((now, how)), f.first, f.rx_bytes));
        }
    }
    let left = list.len();
    for f in list {
        found.push((f.i, None, f.first, f.rx_bytes));
    }
    (found, left, most)
}

/// One wave of attackers.
struct Wave {
    outs: Vec<Attacker>,
    /// How long connecting and acting took (all of them).
    acted: Duration,
    /// Still open when the wait ended.
    left: usize,
    /// The most attacker sockets open at once (the client side's view).
    most: usize,
}

/// `n` attackers, interleaved kinds, from OPENERS threads; then waits until the server
/// has ended every one, or `wait` after the last connect.
fn wave(tools: &Arc<Tools>, n: usize, wait: Duration) -> Result<Wave, String> {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let poll = {
        let stop = stop.clone();
        thread::spawn(move || poller(rx, &stop))
    };
    let start = Instant::now();
    let openers: Vec<_> = (0..OPENERS)
        .map(|t| {
            let (tools, tx) = (tools.clone(), tx.clone());
            thread::spawn(move || {
                let mut outs = Vec::new();
                for i in (t..n).step_by(OPENERS) {
                    let kind = KINDS[i % KINDS.len()];
                    let mut out = Attacker::new(kind);
                    if let Some(s) = act(i, kind, &tools, &mut out) {
                        let _ = tx.send((i, s));
                    }
                    outs.push((i, out));
                }
                outs
            })
        })
        .collect();
    drop(tx);
    let mut outs: Vec<Attacker> = (0..n)
        .map(|i| Attacker::new(KINDS[i % KINDS.len()]))
        .collect();
    for h in openers {
        for (i, o) in h.join().map_err(|_| "an opener panicked")? {
            outs[i] = o;
        }
    }
    let acted = start.elapsed();
    let last_connect = outs
        .iter()
        .filter_map(|o| o.connected)
        .max()
        .unwrap_or(start);
    while Instant::now() < last_connect + wait && !poll.is_finished() {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (found, left, most) = poll.join().map_err(|_| "the poller panicked")?;
    for (i, end, first, rx_bytes) in found {
        let o = &mut outs[i];
        if o.ended.is_none() {
            o.ended = end;
        }
        o.first = first;
        o.rx_bytes = rx_bytes;
    }
    Ok(Wave {
        outs,
        acted,
        left,
        most,
    })
}

/// Counts the server's descriptors every 100 ms; returns the most seen.
fn count_fds(pid: u32, stop: &AtomicBool) -> usize {
    let mut most = 0;
    while !stop.load(Ordering::Relaxed) {
        let n = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        most = most.max(n);
        thread::sleep(Duration::from_millis(100));
    }
    most
}

/// RSS growth allowed per attacker the server holds at once, and a fixed allowance on
/// top. Measured on this machine (README, "tls-garbage"): 9.6-9.9 KB per held attacker
/// at the peak with this mix (a quarter half ClientHellos, three quarters completed
/// handshakes), at 800 and at 4,000 held at once; separately, a completed TLS 1.3
/// handshake held idle costs the server 9.1 KB (rustls' session and record layer, the
/// core's connection, its slot) and a silent socket on the TLS port 2.6 KB (the rustls
/// ServerConnection made at accept, the slot). 12 KiB leaves a quarter for the
/// handshakes in flight and the machine's noise; 4 MiB is the allocator's and the
/// accept burst's.
const PER_HELD: u64 = 12 << 10;
const FIXED: u64 = 4 << 20;
/// Waves of attackers, one after the other (memory must come back to the same level
/// after each).
const ROUNDS: usize = 3;
/// RSS after the last round may exceed RSS after the first by this much.
const FLAT: u64 = 1 << 20;

/// 8. TLS garbage at scale.
pub fn tls_garbage(env: &Env, block: &mut Block) -> Result<(), String> {
    let Some((cert_flag, _)) = env.help.flag(&["--tls-cert"]) else {
        return Err("serve --help lists no --tls-cert: the server has no TLS".into());
    };
    let Some((key_flag, _)) = env.help.flag(&["--tls-key"]) else {
        return Err("serve --help lists no --tls-key".into());
    };
    let per_kind = if env.short { 200 } else { 1_000 };
    let n = per_kind * KINDS.len();
    let total = n * ROUNDS;
    let limit = Duration::from_secs(if env.short { 2 } else { 5 });
    let slack = Duration::from_secs(1) + limit / 10;
    let pki = make_pki(env.logdir.join("tls-pki"))?;
    block.line(format!(
        "a throwaway CA and localhost certificate (ECDSA P-256, openssl) in {} (removed at the end)",
        pki.dir.display()
    ));
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(&pki.ca).map_err(|e| format!("the CA: {e}"))?;
    roots.add(ca).map_err(|e| format!("the CA: {e}"))?;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];
    let canary_config = client_config(&roots, &all, true)?;
    let tls13 = client_config(&roots, &[&rustls::version::TLS13], false)?;
    let tls12 = client_config(&roots, &[&rustls::version::TLS12], false)?;
    // A real ClientHello (TLS 1.3 and 1.2 offered, SNI localhost), of which attackers
    // send the first half.
    let mut hello = Vec::new();
    ClientConnection::new(client_config(&roots, &all, false)?, localhost())
        .map_err(|e| e.to_string())?
        .write_tls(&mut hello)
        .map_err(|e| e.to_string())?;
    let mut args = vec![
        cert_flag,
        pki.cert.display().to_string(),
        key_flag,
        pki.key.display().to_string(),
    ];
    match env.help.flag(&["--handshake-timeout"]) {
        Some((name, default)) => {
            block.line(format!(
                "the server gets {name} {} (default {}): the half ClientHellos and silent handshakes end in bounded time",
                secs(limit),
                default.unwrap_or_else(|| "?".into())
            ));
            args.extend([name, format!("{}ms", limit.as_millis())]);
        }
        None => return Err("serve --help lists no --handshake-timeout".into()),
    }
    let dial = Dial::Tls(canary_config, localhost());
    let mut st = stage_dial(env, block, "8-tls-garbage", args, None, &dial)?;
    block.line("canaries: wss (TLS 1.3, rustls with aws-lc-rs, SNI localhost)");
    block.line(format!(
        "{ROUNDS} rounds of {n} attackers ({total} in all), {per_kind} of each kind a round, interleaved, from {OPENERS} threads as fast as they go (full handshakes: no resumption); the ClientHello is {} bytes, half is {}",
        hello.len(),
        hello.len() / 2
    ));
    for k in KINDS {
        block.line(format!("  - {}", k.describe()));
    }
    block.line("  (no renegotiation attempt: rustls' client cannot renegotiate; cli/tests/serve.rs has openssl s_client ask for one over TLS 1.2)");
    let tools = Arc::new(Tools {
        addr: st.server.addr,
        tls13,
        tls12,
        hello,
    });
    let pid = st.server.pid;
    let fds_before = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let stop_fds = Arc::new(AtomicBool::new(false));
    let fd_counter = {
        let stop = stop_fds.clone();
        thread::spawn(move || count_fds(pid, &stop))
    };
    let start = Instant::now();
    let mut outs: Vec<Attacker> = Vec::new();
    let mut after_rounds = Vec::new();
    let mut left = 0;
    let mut most = 0;
    let mut all_ended = start;
    for round in 0..ROUNDS {
        let began = Instant::now();
        let w = wave(&tools, n, limit + slack + Duration::from_secs(2))?;
        all_ended = Instant::now();
        left += w.left;
        most = most.max(w.most);
        // The mio host gives an idle connection's buffers back after a second; the
        // allocator purges at once: RSS a second after the wave's last end.
        thread::sleep(Duration::from_secs(1));
        let after = st.server.rss();
        block.line(format!(
            "round {}: {n} attackers connected and acted in {} ({:.0} a second); all ended {} after the round began; RSS then, a second later: {}",
            round + 1,
            secs(w.acted),
            n as f64 / w.acted.as_secs_f64(),
            secs(all_ended - began),
            mib(after)
        ));
        after_rounds.push(after);
        outs.extend(w.outs);
    }
    // Until RSS is back under twice its value before, 10 s at most.
    let mut back = None;
    while all_ended.elapsed() < Duration::from_secs(10) {
        if st.server.rss() < 2 * st.before {
            back = Some(all_ended.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    stop_fds.store(true, Ordering::Relaxed);
    let most_fds = fd_counter.join().unwrap_or(0);
    let held_most = most_fds.saturating_sub(fds_before);
    // The attackers' connections the server still holds a descriptor for.
    let server_ports = open_peer_ports(pid, st.server.addr.port());
    let still_held = outs
        .iter()
        .filter(|o| o.port != 0 && server_ports.contains(&o.port))
        .count();
    let peak_during = st.sampler.peak_since(start);
    let label = match back {
        Some(d) => format!("back under 2x {} after the last end:", secs(d)),
        None => "10 s after the last end".to_owned(),
    };
    let mem = attacks::finish(block, &mut st, start, &label, "");
    block.line(format!(
        "the server held at most {held_most} attacker descriptors at once ({most_fds} in all, {fds_before} before); the client side followed at most {most} open attackers at once"
    ));
    let growth = peak_during.max(mem.peak).saturating_sub(mem.before);
    let per_held = if held_most > 0 {
        growth / held_most as u64
    } else {
        0
    };
    block.line(format!(
        "RSS growth at the peak per attacker held at once: {} B",
        per_held
    ));

    // Per kind.
    let mut failed_first = BTreeMap::new();
    for k in KINDS {
        let of: Vec<&Attacker> = outs.iter().filter(|o| o.kind == k).collect();
        let ended: Vec<&Attacker> = of.iter().copied().filter(|o| o.ended.is_some()).collect();
        let times: Vec<Duration> = ended.iter().filter_map(|o| o.took()).collect();
        let fastest = times.iter().min().copied();
        let slowest = times.iter().max().copied();
        let mut hows: BTreeMap<String, usize> = BTreeMap::new();
        for o in &ended {
            let what = match (&o.ended, o.alert()) {
                (_, Some(d)) => format!("alert {} then end", alert_name(d)),
                (Some((_, How::Eof)), None) if o.rx_bytes > 0 => {
                    format!("EOF after {} B", o.rx_bytes)
                }
                (Some((_, How::Eof)), None) => "EOF".into(),
                (Some((_, How::Reset(e))), None) => format!("{e:?}"),
                (None, None) => "?".into(),
            };
            *hows.entry(what).or_default() += 1;
        }
        let failed = of.iter().filter(|o| o.failed.is_some()).count();
        if let Some(f) = of.iter().find_map(|o| o.failed.clone()) {
            failed_first.insert(k, f);
        }
        let wrong_version = of
            .iter()
            .filter(|o| o.version.is_some() && o.version != k.version())
            .count();
        block.line(format!(
            "{}: ended {}/{} ({} after {}), {}{}{}",
            k.describe(),
            ended.len(),
            of.len(),
            if k.garbage() {
                "from its bytes"
            } else {
                "from its connect"
            },
            match (fastest, slowest) {
                (Some(a), Some(b)) => format!("{} to {}", secs(a), secs(b)),
                _ => "-".into(),
            },
            hows.iter()
                .map(|(h, c)| format!("{h} x{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            if failed > 0 {
                format!("; {failed} could not attack")
            } else {
                String::new()
            },
            if wrong_version > 0 {
                format!("; {wrong_version} negotiated another version")
            } else {
                String::new()
            },
        ));
    }
    for (k, f) in &failed_first {
        block.line(format!("  first failure ({}): {f}", k.describe()));
    }

    let attacked = outs
        .iter()
        .filter(|o| o.failed.is_none() && o.acted.is_some())
        .filter(|o| match (o.kind.version(), &o.ended) {
            // A handshake the server ended by its timeout before it completed (a slow
            // machine) is an end, not a wrong version.
            (Some(v), _) if o.version.is_some() => o.version == Some(v),
            (Some(_), Some(_)) => true,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .count();
    block.check(
        "every attacker connected and attacked (the TLS ones with the version asked)",
        attacked == total,
        format!("{attacked}/{total}"),
    );
    let garbage: Vec<&Attacker> = outs.iter().filter(|o| o.kind.garbage()).collect();
    let in_time = garbage
        .iter()
        .filter(|o| o.took().is_some_and(|d| d <= AT_ONCE))
        .count();
    let slowest = garbage.iter().filter_map(|o| o.took()).max();
    block.check(
        format!(
            "plain HTTP and random bytes ended by the server at once (within {})",
            secs(AT_ONCE)
        ),
        in_time == garbage.len(),
        format!(
            "{in_time}/{} in time, slowest {}",
            garbage.len(),
            slowest.map_or("-".into(), secs)
        ),
    );
    let alerted = garbage.iter().filter(|o| o.alert().is_some()).count();
    block.check(
        "plain HTTP and random bytes answered with a TLS alert",
        alerted == garbage.len(),
        format!("{alerted}/{}", garbage.len()),
    );
    let slow: Vec<&Attacker> = outs.iter().filter(|o| !o.kind.garbage()).collect();
    let in_time = slow
        .iter()
        .filter(|o| o.took().is_some_and(|d| d <= limit + slack))
        .count();
    let slowest = slow.iter().filter_map(|o| o.took()).max();
    block.check(
        format!(
            "half ClientHellos and silent handshakes ended by the server within the handshake timeout ({} + {} slack, from the connect)",
            secs(limit),
            secs(slack)
        ),
        in_time == slow.len(),
        format!(
            "{in_time}/{} in time, slowest {}; {left} still open when the wait ended",
            slow.len(),
            slowest.map_or("-".into(), secs)
        ),
    );
    block.check(
        "the server holds no attacker connection at the end",
        still_held == 0,
        format!(
            "{still_held} held; {} connections on its port (the {CANARIES} canaries')",
            server_ports.iter().filter(|p| **p != 0).count()
        ),
    );
    let bound = held_most as u64 * PER_HELD + FIXED;
    block.check(
        format!(
            "peak RSS growth under {} KiB per attacker held at once + {}",
            PER_HELD >> 10,
            mib(FIXED)
        ),
        growth <= bound,
        format!(
            "+{} ({held_most} held at once: bound {})",
            mib(growth),
            mib(bound)
        ),
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
    let first = after_rounds.first().copied().unwrap_or(0);
    let last = after_rounds.last().copied().unwrap_or(0);
    block.check(
        format!(
            "RSS flat across the rounds: a second after the last, within {} of a second after the first",
            mib(FLAT)
        ),
        last <= first + FLAT,
        after_rounds
            .iter()
            .map(|r| mib(*r))
            .collect::<Vec<_>>()
            .join(", "),
    );
    drop(pki);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_never_starts_like_a_record() {
        for seed in 0..10_000 {
            let b = noise(seed, 8);
            assert!(!(0x14..=0x18).contains(&b[0]), "seed {seed}: {b:?}");
        }
        assert_ne!(noise(1, 64), noise(2, 64));
    }

    #[test]
    fn alerts_are_read_from_the_first_bytes() {
        let mut a = Attacker::new(Kind::Http);
        a.first = vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50];
        assert_eq!(a.alert(), Some(50));
        a.first = vec![0x17, 0x03, 0x03, 0x00, 0x13];
        assert_eq!(a.alert(), None);
        assert_eq!(alert_name(50), "decode_error");
    }
}
