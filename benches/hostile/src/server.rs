//! The server under attack (a child process, killed on drop), its RSS and its sockets.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// RLIMIT_NOFILE: (soft, hard).
pub fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a pointer to a valid rlimit.
    #[allow(unsafe_code)]
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    (r.rlim_cur, r.rlim_max)
}

/// Raises this process's soft descriptor limit to its hard limit; returns the new soft one.
pub fn raise_nofile() -> u64 {
    let (_, hard) = nofile();
    let r = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: a pointer to a valid rlimit.
    #[allow(unsafe_code)]
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    nofile().0
}

/// A free port on 127.0.0.1 (bound, then released for the server).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `wsengine serve`.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    pub command: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts `path serve --listen 127.0.0.1:PORT args...` (with a descriptor limit of
    /// `nofile` if given) and waits until it accepts connections.
    pub fn start(
        path: &Path,
        args: &[String],
        nofile: Option<u64>,
        log: &Path,
    ) -> io::Result<Server> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(path);
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log)?);
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs before exec.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut command = format!("wsengine serve --listen {addr}");
        for a in args {
            command.push(' ');
            command.push_str(a);
        }
        if let Some(n) = nofile {
            command = format!("(descriptor limit {n}) {command}");
        }
        let child = cmd.spawn()?;
        let mut server = Server {
            pid: child.id(),
            child,
            addr,
            command,
            log: log.to_owned(),
        };
        let start = Instant::now();
        loop {
            server.alive().map_err(io::Error::other)?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other("the server did not listen within 10 s"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        rss(self.pid).unwrap_or(0)
    }

    /// Err with the exit status if the server has exited.
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the server exited ({status}); its log: {}",
                self.log.display()
            )),
            Err(e) => Err(format!("waiting for the server: {e}")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of a process, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The remote ports of the TCP connections to `port` that process `pid` holds a
/// descriptor for (from /proc/PID/fd and /proc/PID/net/tcp).
pub fn open_peer_ports(pid: u32, port: u16) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let t = target.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.insert(n.to_owned());
                }
            }
        }
    }
    let mut ports = HashSet::new();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 {
            continue;
        }
        let port_of = |s: &str| {
            s.rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        if port_of(cols[1]) == Some(port)
            && inodes.contains(cols[9])
            && let Some(p) = port_of(cols[2])
        {
            ports.insert(p);
        }
    }
    ports
}

/// The bytes in the kernel send and receive queues of the server's connections from
/// `peers`.
pub fn queued(pid: u32, port: u16, peers: &[u16]) -> (u64, u64) {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let port_of = |s: &str| {
        s.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let (mut tx_sum, mut rx_sum) = (0, 0);
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 || port_of(cols[1]) != Some(port) {
            continue;
        }
        if port_of(cols[2]).is_some_and(|p| peers.contains(&p)) {
            let mut q = cols[4].split(':');
            let mut next = || u64::from_str_radix(q.next().unwrap_or("0"), 16).unwrap_or(0);
            tx_sum += next();
            rx_sum += next();
        }
    }
    (tx_sum, rx_sum)
}

#[derive(Default)]
struct SampleState {
    samples: Vec<(Instant, u64)>,
    /// Attacker ports to follow: when the server first held them, when it let go.
    watched: Vec<u16>,
    seen: HashMap<u16, Instant>,
    gone: HashMap<u16, Instant>,
}

/// Registers attacker connections with a Sampler, from any thread.
#[derive(Clone)]
pub struct Watcher {
    state: Arc<Mutex<SampleState>>,
    pid: u32,
    port: u16,
}

impl Watcher {
    /// Follow the server's side of the connection from client port `peer`, from now on
    /// (checked at once: a connection the server drops before the next sample counts).
    pub fn watch(&self, peer: u16) {
        // Called after the handshake: the server has held the connection.
        let open = open_peer_ports(self.pid, self.port);
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.watched.push(peer);
        if open.contains(&peer) {
            s.seen.entry(peer).or_insert(now);
        } else if !open.is_empty() {
            // Dropped already (an empty table means the scan failed: leave it to the
            // sampler).
            s.seen.entry(peer).or_insert(now);
            s.gone.entry(peer).or_insert(now);
        }
    }
}

/// Samples the server's RSS every 100 ms and follows which watched client connections
/// the server still holds a descriptor for.
pub struct Sampler {
    watcher: Watcher,
    state: Arc<Mutex<SampleState>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32, port: u16) -> Sampler {
        let state = Arc::new(Mutex::new(SampleState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let handle = thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                let now = Instant::now();
                let r = rss(pid).unwrap_or(0);
                let watched = {
                    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                    s.samples.push((now, r));
                    s.watched.clone()
                };
                if !watched.is_empty() {
                    let open = open_peer_ports(pid, port);
                    let now = Instant::now();
                    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                    // Frozen meanwhile: the clients may be closing their side.
                    let watched: Vec<u16> = watched
                        .into_iter()
                        .filter(|p| s.watched.contains(p))
                        .collect();
                    for p in watched {
                        if open.contains(&p) {
                            s.seen.entry(p).or_insert(now);
                        } else if s.seen.contains_key(&p) {
                            s.gone.entry(p).or_insert(now);
                        }
                    }
                }
                thread::sleep(Duration::from_millis(100).saturating_sub(now.elapsed()));
            }
        });
        Sampler {
            watcher: Watcher {
                state: state.clone(),
                pid,
                port,
            },
            state,
            stop,
            handle: Some(handle),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SampleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stop following connections (before the clients close their own sockets).
    pub fn freeze(&self) {
        self.lock().watched.clear();
    }

    /// Follow the server's side of the connection from this client port.
    pub fn watch(&self, port: u16) {
        self.watcher.watch(port);
    }

    /// A handle for other threads to `watch` with.
    pub fn watcher(&self) -> Watcher {
        self.watcher.clone()
    }

    /// When the server let go of the connection from `port` (None: never seen, or
    /// still held).
    pub fn gone(&self, port: u16) -> Option<Instant> {
        self.lock().gone.get(&port).copied()
    }

    /// Whether the server was ever seen holding the connection from `port`.
    pub fn seen(&self, port: u16) -> bool {
        self.lock().seen.contains_key(&port)
    }

    /// The highest RSS sampled since `from`.
    pub fn peak_since(&self, from: Instant) -> u64 {
        self.lock()
            .samples
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0)
    }

    /// The number of RSS samples taken.
    pub fn count(&self) -> usize {
        self.lock().samples.len()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The `serve --help` text, to find which limits and timers the server has.
pub struct Help(pub String);

impl Help {
    pub fn read(path: &Path) -> io::Result<Help> {
        let out = Command::new(path).args(["serve", "--help"]).output()?;
        Ok(Help(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// The first of `names` that the help lists, with its `[default: ...]` if any.
    pub fn flag(&self, names: &[&str]) -> Option<(String, Option<String>)> {
        let lines: Vec<&str> = self.0.lines().collect();
        for name in names {
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                let is_flag =
                    is_flag_line(t) && t.split([' ', ',', '=', '<', '[']).any(|w| w == *name);
                if !is_flag {
                    continue;
                }
                // The default: on this line or the next ones, up to the next flag.
                let mut default = None;
                for (k, l) in lines[i..].iter().enumerate() {
                    if k > 0 && is_flag_line(l.trim_start()) {
                        break;
                    }
                    if let Some(d) = l.split("[default: ").nth(1) {
                        default = d.split(']').next().map(str::to_owned);
                        break;
                    }
                }
                return Some(((*name).to_owned(), default));
            }
        }
        None
    }
}

/// `--name` or `-n, --name`, not a "- value: ..." line.
fn is_flag_line(t: &str) -> bool {
    t.starts_with("--")
        || (t.starts_with('-') && t.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic))
}

/// "30s", "500ms", "2m", "1.5s", "10" (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// "256MiB", "256M", "1GiB", "268435456".
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "Options:
      --listen <LISTEN>
          Address to listen on
          
          [default: 127.0.0.1:9001]

      --mode <MODE>
          Possible values:
          - echo:      Send every message back
          
          [default: echo]

      --message-timeout <DURATION>
          An incomplete message must finish within this

          [default: 30s]

      --max-memory <BYTES>
          Budget [default: 256MiB]

      --no-deflate
          Do not negotiate permessage-deflate
";

    #[test]
    fn flags_and_defaults_from_help() {
        let h = Help(HELP.to_owned());
        assert_eq!(
            h.flag(&["--fragment-timeout", "--message-timeout"]),
            Some(("--message-timeout".into(), Some("30s".into())))
        );
        assert_eq!(
            h.flag(&["--max-memory"]),
            Some(("--max-memory".into(), Some("256MiB".into())))
        );
        assert_eq!(
            h.flag(&["--mode"]),
            Some(("--mode".into(), Some("echo".into())))
        );
        assert_eq!(
            h.flag(&["--no-deflate"]),
            Some(("--no-deflate".into(), None))
        );
        assert_eq!(h.flag(&["--close-timeout"]), None);
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("never"), None);
        assert_eq!(parse_bytes("256MiB"), Some(256 << 20));
        assert_eq!(parse_bytes("1 GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("268435456"), Some(268_435_456));
    }
}
