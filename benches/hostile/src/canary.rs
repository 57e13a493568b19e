//! Canary clients: each sends a small text message every 50 ms and waits for it to come
//! back (its echo, or in broadcast mode its own message among everyone's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::ws::{self, Conn};

/// How a canary connects: plain ws, or wss through a rustls client (the TLS attack).
#[derive(Clone)]
pub enum Dial {
    Plain,
    Tls(Arc<ClientConfig>, ServerName<'static>),
}

impl Dial {
    pub fn open(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        match self {
            Dial::Plain => Conn::open(addr, false, timeout),
            Dial::Tls(config, name) => Conn::open_tls(addr, config, name.clone(), timeout),
        }
    }
}

/// The interval between two messages of one canary.
const PERIOD: Duration = Duration::from_millis(50);
/// A message whose echo has not come back after this is lost.
const LOST_AFTER: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Stats {
    pub sent: u64,
    pub lost: u64,
    pub wrong: u64,
    pub rtts: Vec<Duration>,
    /// Canaries that could not connect, or whose connection ended (and how).
    pub failures: Vec<String>,
}

impl Stats {
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.rtts.is_empty() {
            return None;
        }
        let mut v = self.rtts.clone();
        v.sort();
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    }
}

pub struct Canaries {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Stats>>,
}

impl Canaries {
    /// Starts `n` canaries and waits until each is connected (or failed).
    pub fn start(addr: SocketAddr, n: usize, dial: &Dial) -> Canaries {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(std::sync::Barrier::new(n + 1));
        let handles = (0..n)
            .map(|id| {
                let (stop, ready, dial) = (stop.clone(), ready.clone(), dial.clone());
                thread::spawn(move || run(addr, &dial, id, &stop, &ready))
            })
            .collect();
        ready.wait();
        Canaries { stop, handles }
    }

    /// No canaries (what is left after `stop`).
    pub fn empty() -> Canaries {
        Canaries {
            stop: Arc::new(AtomicBool::new(true)),
            handles: Vec::new(),
        }
    }

    /// Stops them and sums their statistics.
    pub fn stop(self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Stats::default();
        for h in self.handles {
            let s = h.join().unwrap_or_else(|_| Stats {
                failures: vec!["canary thread panicked".into()],
                ..Stats::default()
            });
            all.sent += s.sent;
            all.lost += s.lost;
            all.wrong += s.wrong;
            all.rtts.extend(s.rtts);
            all.failures.extend(s.failures);
        }
        all
    }
}

fn run(
    addr: SocketAddr,
    dial: &Dial,
    id: usize,
    stop: &AtomicBool,
    ready: &std::sync::Barrier,
) -> Stats {
    let mut stats = Stats::default();
    let conn = dial.open(addr, Duration::from_secs(5));
    ready.wait();
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            stats.failures.push(format!("canary {id}: connecting: {e}"));
            return stats;
        }
    };
    let prefix = format!("canary {id:02} #");
    let mut due = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(due.saturating_duration_since(Instant::now()));
        // Every 50 ms; after a stall, on from now (no burst to catch up).
        due = (due + PERIOD).max(Instant::now());
        seq += 1;
        let text = format!("{prefix}{seq:08} ..........");
        let sent_at = Instant::now();
        stats.sent += 1;
        if let Err(e) = conn.send(
            &ws::frame(ws::OP_TEXT, true, false, text.as_bytes(), true),
            LOST_AFTER,
        ) {
            stats.lost += 1;
            stats.failures.push(format!("canary {id}: sending: {e}"));
            return stats;
        }
        let deadline = sent_at + LOST_AFTER;
        loop {
            match conn.read_frame(deadline) {
                Ok(None) => {
                    stats.lost += 1;
                    break;
                }
                Ok(Some(f)) => match f.opcode {
                    ws::OP_TEXT | ws::OP_BINARY => {
                        if f.payload == text.as_bytes() {
                            stats.rtts.push(sent_at.elapsed());
                            break;
                        }
                        // Other clients' messages (broadcast) and late echoes pass;
                        // anything else that claims to be ours is wrong.
                        let p = f.payload.strip_prefix(prefix.as_bytes());
                        let late = p
                            .and_then(|p| p.get(..8))
                            .and_then(|d| std::str::from_utf8(d).ok())
                            .and_then(|d| d.parse::<u64>().ok())
                            .is_some_and(|n| n < seq);
                        if p.is_some() && !late {
                            stats.wrong += 1;
                            break;
                        }
                    }
                    ws::OP_PING => {
                        let _ = conn.send(
                            &ws::frame(ws::OP_PONG, true, false, &f.payload, true),
                            LOST_AFTER,
                        );
                    }
                    ws::OP_CLOSE => {
                        stats.lost += 1;
                        stats.failures.push(format!(
                            "canary {id}: closed by the server ({})",
                            f.close_code()
                        ));
                        return stats;
                    }
                    _ => {}
                },
                Err(e) => {
                    stats.lost += 1;
                    stats.failures.push(format!("canary {id}: {e}"));
                    return stats;
                }
            }
        }
    }
    let _ = conn.send(&ws::close_frame(1000), Duration::from_millis(200));
    stats
}
