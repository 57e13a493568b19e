//! The results of a run: errors, process samples from /proc, the text report and the
//! JSON document (schema `wsengine-load/1`, documented in README.md).

use std::fmt::Write as _;
use std::io;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::{MAX_SAMPLES, Mode, Settings};
use crate::{Level, max_level};

/// What went wrong, by kind. Any of them makes the run fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The opening handshake failed (HTTP error, bad response).
    Handshake,
    /// An echo differed from what was sent: content, length, kind, order, or a message
    /// that was never sent.
    Mismatch,
    /// The server broke RFC 6455 (the core failed the connection) or a send failed.
    Protocol,
    /// The server closed a connection, or the stream ended, before the run was over.
    Closed,
    /// A socket error.
    Io,
    /// Messages still unanswered when the drain timeout ran out.
    Missing,
    /// A closing handshake at the end did not complete.
    UncleanClose,
}

impl Kind {
    pub(crate) const ALL: [Kind; 7] = [
        Kind::Handshake,
        Kind::Mismatch,
        Kind::Protocol,
        Kind::Closed,
        Kind::Io,
        Kind::Missing,
        Kind::UncleanClose,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Handshake => "handshake",
            Kind::Mismatch => "mismatch",
            Kind::Protocol => "protocol",
            Kind::Closed => "closed",
            Kind::Io => "io",
            Kind::Missing => "missing",
            Kind::UncleanClose => "unclean_close",
        }
    }
}

/// Error counts by kind and the first few descriptions.
#[derive(Debug, Default, Clone)]
pub(crate) struct Errors {
    counts: [u64; 7],
    pub(crate) samples: Vec<String>,
}

impl Errors {
    /// Counts one error (a [`Kind::Missing`] description counts as one however many
    /// messages it names); the first few are logged and kept.
    pub(crate) fn count(&mut self, kind: Kind, why: String) {
        let slot = Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.counts[slot] += 1;
        if self.samples.len() < MAX_SAMPLES {
            log!(Level::Warn, "{}: {why}", kind.name());
            self.samples.push(why);
        }
    }

    pub(crate) fn get(&self, kind: Kind) -> u64 {
        let slot = Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.counts[slot]
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// CPU time and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcSample {
    /// utime + stime.
    pub(crate) cpu: Duration,
    /// VmRSS in bytes.
    pub(crate) rss: u64,
}

impl ProcSample {
    pub(crate) fn read(pid: u32) -> io::Result<Self> {
        Self::read_proc(&pid.to_string())
    }

    pub(crate) fn read_self() -> io::Result<Self> {
        Self::read_proc("self")
    }

    fn read_proc(pid: &str) -> io::Result<Self> {
        let read = |file: &str| {
            let path = format!("/proc/{pid}/{file}");
            std::fs::read_to_string(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))
        };
        let bad = |what: &str| io::Error::other(format!("/proc/{pid}/{what}: unexpected format"));
        let cpu = parse_stat_cpu(&read("stat")?).ok_or_else(|| bad("stat"))?;
        let rss = parse_vmrss(&read("status")?).ok_or_else(|| bad("status"))?;
        Ok(Self { cpu, rss })
    }
}

/// utime + stime: fields 14 and 15 of /proc/PID/stat, in clock ticks. Linux reports
/// them in USER_HZ, which is 100 on every architecture it runs on today.
pub(crate) fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    // Field 2 is the command in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace(); // field 3 first
    let utime: u64 = fields.nth(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime).saturating_mul(10)))
}

/// VmRSS from /proc/PID/status, in bytes.
pub(crate) fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        _ => None,
    }
}

/// Fails early, with the fix, when the soft limit on open files cannot hold `n`
/// connections. (Raising it needs `setrlimit`, which std does not offer.)
pub(crate) fn check_fd_limit(n: usize) -> io::Result<()> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(()); // not Linux: let connect report it
    };
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return Ok(());
    };
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let (Some(soft), hard) = (numbers.next(), numbers.next().unwrap_or("?")) else {
        return Ok(());
    };
    let Ok(soft) = soft.parse::<usize>() else {
        return Ok(()); // unlimited
    };
    let need = n + 32;
    if soft < need {
        return Err(io::Error::other(format!(
            "{n} connections need about {need} file descriptors but the limit is {soft} \
             (hard limit {hard}): run `ulimit -n {need}` (or more) in this shell first, \
             and for the server too"
        )));
    }
    Ok(())
}

/// The server's figures over the run (see [`Results`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerStats {
    pub(crate) pid: u32,
    pub(crate) cpu: Duration,
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) settings: Settings,
    pub(crate) started: SystemTime,
    /// TCP connects and opening handshakes of all connections.
    pub(crate) open_time: Duration,
    /// Echo mode: the measurement window. Idle mode: how long the connections were held.
    pub(crate) measured: Duration,
    /// Echoes received (and checked) in the window.
    pub(crate) messages: u64,
    /// Latency of those echoes in nanoseconds (echo mode only).
    pub(crate) latency: Option<Histogram<u64>>,
    pub(crate) errors: Errors,
    /// The span the CPU figures cover: the window (echo), opening and holding (idle).
    pub(crate) cpu_window: Duration,
    pub(crate) client_cpu: Option<Duration>,
    pub(crate) server: Option<ServerStats>,
}

impl Results {
    pub(crate) fn new(settings: Settings, started: SystemTime, open_time: Duration) -> Self {
        Self {
            settings,
            started,
            open_time,
            measured: Duration::ZERO,
            messages: 0,
            latency: None,
            errors: Errors::default(),
            cpu_window: Duration::ZERO,
            client_cpu: None,
            server: None,
        }
    }

    fn kind(&self) -> &'static str {
        if self.settings.text { "text" } else { "binary" }
    }

    /// What the counted unit is: an echoed message, or an opened connection.
    fn unit(&self) -> &'static str {
        match self.settings.mode {
            Mode::Handshakes => "connection",
            _ => "message",
        }
    }

    /// One line saying what ran (the plot's caption).
    pub(crate) fn title(&self) -> String {
        let s = &self.settings;
        if s.mode == Mode::Handshakes {
            return format!("{} connections opening and closing in turn", s.connections);
        }
        format!(
            "{} x {} {}, {} in flight{}",
            s.connections,
            bytes(s.size as u64),
            self.kind(),
            s.in_flight,
            s.rate
                .map(|r| format!(", {} msg/s cap", count(r as f64)))
                .unwrap_or_default()
        )
    }

    fn per_sec(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.messages as f64 / secs
        } else {
            0.0
        }
    }

    fn mb_per_sec(&self) -> f64 {
        self.per_sec() * self.settings.size as f64 / 1e6
    }

    fn cpu_percent(&self, cpu: Duration) -> f64 {
        let window = self.cpu_window.as_secs_f64();
        if window > 0.0 {
            100.0 * cpu.as_secs_f64() / window
        } else {
            0.0
        }
    }

    fn us_per_message(&self, cpu: Duration) -> Option<f64> {
        (self.messages > 0).then(|| cpu.as_secs_f64() * 1e6 / self.messages as f64)
    }

    /// Server RSS growth per connection (idle mode).
    fn rss_per_connection(&self, server: &ServerStats) -> Option<f64> {
        (self.settings.mode == Mode::Idle).then(|| {
            (server.rss_after as f64 - server.rss_before as f64) / self.settings.connections as f64
        })
    }

    /// The human-readable report.
    pub(crate) fn text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(out, "wsengine load {}", s.url);
        let n = s.connections;
        let open_rate = if self.open_time.is_zero() {
            String::new()
        } else {
            format!(" ({}/s)", count(n as f64 / self.open_time.as_secs_f64()))
        };
        match s.mode {
            Mode::Echo => {
                let _ = writeln!(
                    out,
                    "  {n} connections x {} {} messages, {} in flight each, {}",
                    bytes(s.size as u64),
                    self.kind(),
                    s.in_flight,
                    s.rate.map_or("no rate cap".to_owned(), |r| format!(
                        "at most {} msg/s",
                        count(r as f64)
                    )),
                );
                let _ = writeln!(
                    out,
                    "  opened in {:.3} s{open_rate}; warmup {}; measured {}",
                    self.open_time.as_secs_f64(),
                    secs(s.warmup),
                    secs(self.measured)
                );
                let _ = writeln!(
                    out,
                    "messages     {} ({} msg/s)",
                    count(self.messages as f64),
                    count(self.per_sec())
                );
                let _ = writeln!(
                    out,
                    "throughput   {:.2} MB/s of payload each way ({} in {})",
                    self.mb_per_sec(),
                    bytes(self.messages.saturating_mul(s.size as u64)),
                    secs(self.measured)
                );
                if let Some(h) = self.latency.as_ref().filter(|h| !h.is_empty()) {
                    let _ = writeln!(
                        out,
                        "latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (min {}, mean {})",
                        nanos(h.value_at_quantile(0.5) as f64),
                        nanos(h.value_at_quantile(0.9) as f64),
                        nanos(h.value_at_quantile(0.99) as f64),
                        nanos(h.value_at_quantile(0.999) as f64),
                        nanos(h.max() as f64),
                        nanos(h.min() as f64),
                        nanos(h.mean()),
                    );
                } else {
                    let _ = writeln!(out, "latency      none measured");
                }
            }
            Mode::Idle => {
                let _ = writeln!(
                    out,
                    "  {n} idle connections, opened in {:.3} s{open_rate}, held {}",
                    self.open_time.as_secs_f64(),
                    secs(self.measured)
                );
            }
            Mode::Handshakes => {
                let _ = writeln!(
                    out,
                    "  {n} connections, each opening (TCP, TLS for wss:// with no resumption, \
                     WebSocket handshake) and closing in turn; warmup {}; measured {}",
                    secs(s.warmup),
                    secs(self.measured)
                );
                let _ = writeln!(
                    out,
                    "handshakes   {} ({} connections/s)",
                    count(self.messages as f64),
                    count(self.per_sec())
                );
                if let Some(h) = self.latency.as_ref().filter(|h| !h.is_empty()) {
                    let _ = writeln!(
                        out,
                        "setup time   p50 {}  p90 {}  p99 {}  max {}  (connect to 101)",
                        nanos(h.value_at_quantile(0.5) as f64),
                        nanos(h.value_at_quantile(0.9) as f64),
                        nanos(h.value_at_quantile(0.99) as f64),
                        nanos(h.max() as f64),
                    );
                }
            }
        }
        let _ = write!(out, "errors       {}", self.errors.total());
        if self.errors.total() > 0 {
            let by_kind: Vec<String> = Kind::ALL
                .iter()
                .filter(|&&k| self.errors.get(k) > 0)
                .map(|&k| format!("{} {}", k.name(), self.errors.get(k)))
                .collect();
            let _ = write!(out, " ({})", by_kind.join(", "));
            for sample in &self.errors.samples {
                let _ = write!(out, "\n  {sample}");
            }
        }
        out.push('\n');
        if let Some(cpu) = self.client_cpu {
            let _ = writeln!(
                out,
                "client CPU   {:.2} s in {} = {:.1}% of a core{}",
                cpu.as_secs_f64(),
                secs(self.cpu_window),
                self.cpu_percent(cpu),
                self.us_per_message(cpu)
                    .map(|us| format!(", {us:.2} µs per {}", self.unit()))
                    .unwrap_or_default()
            );
        }
        if let Some(server) = &self.server {
            let _ = writeln!(
                out,
                "server CPU   {:.2} s in {} = {:.1}% of a core{} (pid {})",
                server.cpu.as_secs_f64(),
                secs(self.cpu_window),
                self.cpu_percent(server.cpu),
                self.us_per_message(server.cpu)
                    .map(|us| format!(", {us:.2} µs per {}", self.unit()))
                    .unwrap_or_default(),
                server.pid
            );
            let _ = write!(
                out,
                "server RSS   {} before, {} after ({}{})",
                bytes(server.rss_before),
                bytes(server.rss_after),
                if server.rss_after < server.rss_before {
                    "-"
                } else {
                    "+"
                },
                bytes(server.rss_after.abs_diff(server.rss_before))
            );
            if let Some(per) = self.rss_per_connection(server) {
                let _ = write!(out, ": {} bytes per idle connection", count(per));
            }
            out.push('\n');
        }
        out
    }

    /// The JSON document (schema `wsengine-load/1`).
    pub(crate) fn json(&self) -> String {
        let s = &self.settings;
        let started_ms = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut o = String::from("{\n");
        let _ = writeln!(o, "  \"schema\": \"wsengine-load/1\",");
        let mode = match s.mode {
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Handshakes => "handshakes",
        };
        let _ = writeln!(o, "  \"mode\": \"{mode}\",");
        let _ = writeln!(o, "  \"url\": {},", json_str(&s.url));
        let _ = writeln!(o, "  \"started_unix_ms\": {started_ms},");
        let (size, in_flight, text, rate, warmup, duration, hold) = match s.mode {
            Mode::Echo => (
                s.size.to_string(),
                s.in_flight.to_string(),
                s.text.to_string(),
                s.rate.map_or("null".into(), |r| r.to_string()),
                num(s.warmup.as_secs_f64()),
                num(s.duration.as_secs_f64()),
                "null".to_owned(),
            ),
            Mode::Handshakes => (
                "null".to_owned(),
                "null".to_owned(),
                "null".to_owned(),
                "null".to_owned(),
                num(s.warmup.as_secs_f64()),
                num(s.duration.as_secs_f64()),
                "null".to_owned(),
            ),
            Mode::Idle => (
                "null".to_owned(),
                "null".to_owned(),
                "null".to_owned(),
                "null".to_owned(),
                "null".to_owned(),
                "null".to_owned(),
                num(s.hold.as_secs_f64()),
            ),
        };
        let _ = writeln!(
            o,
            "  \"settings\": {{\"connections\": {}, \"size\": {size}, \"in_flight\": {in_flight}, \
             \"text\": {text}, \"rate\": {rate}, \"warmup_s\": {warmup}, \
             \"duration_s\": {duration}, \"hold_s\": {hold}}},",
            s.connections
        );
        let _ = writeln!(o, "  \"open_s\": {},", num(self.open_time.as_secs_f64()));
        let _ = writeln!(o, "  \"measured_s\": {},", num(self.measured.as_secs_f64()));
        let _ = writeln!(o, "  \"messages\": {},", self.messages);
        let _ = writeln!(
            o,
            "  \"payload_bytes\": {},",
            self.messages.saturating_mul(s.size as u64)
        );
        let _ = writeln!(o, "  \"messages_per_s\": {},", num(self.per_sec()));
        let _ = writeln!(o, "  \"mb_per_s\": {},", num(self.mb_per_sec()));
        match self.latency.as_ref().filter(|h| !h.is_empty()) {
            Some(h) => {
                let us = |ns: f64| num(ns / 1e3);
                let _ = writeln!(
                    o,
                    "  \"latency_us\": {{\"count\": {}, \"min\": {}, \"mean\": {}, \"p50\": {}, \
                     \"p90\": {}, \"p99\": {}, \"p99_9\": {}, \"max\": {}}},",
                    h.len(),
                    us(h.min() as f64),
                    us(h.mean()),
                    us(h.value_at_quantile(0.5) as f64),
                    us(h.value_at_quantile(0.9) as f64),
                    us(h.value_at_quantile(0.99) as f64),
                    us(h.value_at_quantile(0.999) as f64),
                    us(h.max() as f64),
                );
            }
            None => {
                let _ = writeln!(o, "  \"latency_us\": null,");
            }
        }
        let _ = write!(o, "  \"errors\": {{\"total\": {}", self.errors.total());
        for kind in Kind::ALL {
            let _ = write!(o, ", \"{}\": {}", kind.name(), self.errors.get(kind));
        }
        let samples: Vec<String> = self.errors.samples.iter().map(|s| json_str(s)).collect();
        let _ = writeln!(o, ", \"samples\": [{}]}},", samples.join(", "));
        let _ = writeln!(
            o,
            "  \"cpu_window_s\": {},",
            num(self.cpu_window.as_secs_f64())
        );
        match self.client_cpu {
            Some(cpu) => {
                let _ = writeln!(
                    o,
                    "  \"client\": {{\"cpu_s\": {}, \"cpu_percent\": {}, \"cpu_us_per_message\": {}}},",
                    num(cpu.as_secs_f64()),
                    num(self.cpu_percent(cpu)),
                    self.us_per_message(cpu).map_or("null".into(), num)
                );
            }
            None => {
                let _ = writeln!(o, "  \"client\": null,");
            }
        }
        match &self.server {
            Some(server) => {
                let _ = writeln!(
                    o,
                    "  \"server\": {{\"pid\": {}, \"cpu_s\": {}, \"cpu_percent\": {}, \
                     \"cpu_us_per_message\": {}, \"rss_before_bytes\": {}, \
                     \"rss_after_bytes\": {}, \"rss_per_connection_bytes\": {}}}",
                    server.pid,
                    num(server.cpu.as_secs_f64()),
                    num(self.cpu_percent(server.cpu)),
                    self.us_per_message(server.cpu).map_or("null".into(), num),
                    server.rss_before,
                    server.rss_after,
                    self.rss_per_connection(server).map_or("null".into(), num),
                );
            }
            None => {
                let _ = writeln!(o, "  \"server\": null");
            }
        }
        o.push_str("}\n");
        o
    }
}

/// A JSON number with three decimals (`null` if not finite).
pub(crate) fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A count with thousands separators, rounded.
pub(crate) fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte size: `20 B`, `16 KiB`, `1.5 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if (value - value.round()).abs() < 0.005 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A latency given in nanoseconds, in the unit that suits it.
pub(crate) fn nanos(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 1e-3 {
        format!("{s:.0} s")
    } else {
        format!("{s:.2} s")
    }
}
