//! The hostile-load suite (issues #14 and #16): each attack against a fresh release
//! `wsengine serve`, with 20 canary clients echoing meanwhile and the server's RSS
//! sampled every 100 ms; one block per attack and a PASS/FAIL per target.
//!
//! Usage: wsengine-hostile [--short] [--server PATH] [--only NAME]... [--server-arg ARG]...
//!        [--no-check] [--list]

// The harness owns sockets and reads the clock (the root clippy.toml keeps both out of
// the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod attacks;
mod canary;
mod server;
mod tls;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use server::Help;

/// What every attack needs to know.
pub struct Env {
    pub server: PathBuf,
    pub server_args: Vec<String>,
    pub short: bool,
    pub help: Help,
    pub logdir: PathBuf,
    /// This process's descriptor limit (raised to the hard limit).
    pub nofile: u64,
}

/// One check of a target.
pub struct Check {
    pub target: String,
    pub pass: bool,
    pub got: String,
}

/// The report of one attack.
pub struct Block {
    pub title: String,
    pub lines: Vec<String>,
    pub checks: Vec<Check>,
}

impl Block {
    pub fn new(title: impl Into<String>) -> Block {
        Block {
            title: title.into(),
            lines: Vec::new(),
            checks: Vec::new(),
        }
    }

    pub fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }

    pub fn check(&mut self, target: impl Into<String>, pass: bool, got: impl Into<String>) {
        self.checks.push(Check {
            target: target.into(),
            pass,
            got: got.into(),
        });
    }

    fn print(&self) {
        println!("\n=== {}", self.title);
        for l in &self.lines {
            println!("  {l}");
        }
        for c in &self.checks {
            let verdict = if c.pass { "PASS" } else { "FAIL" };
            println!("  {verdict}  {}: {}", c.target, c.got);
        }
    }
}

const USAGE: &str = "\
wsengine-hostile: the hostile-load suite of issues #14 and #16 against a release `wsengine serve`

Usage: wsengine-hostile [OPTIONS]
  --short            the CI version: shorter attacks, fewer attackers, shorter waits
  --server PATH      the wsengine binary (default: target/release/wsengine of this repo)
  --only NAME        run only this attack (repeatable; a name or its number, see --list)
  --server-arg ARG   one more argument for every `wsengine serve` (repeatable)
  --no-check         report only: exit 0 whatever the targets say
  --list             list the attacks
";

fn main() -> ExitCode {
    let mut short = false;
    let mut check = true;
    let mut only: Vec<String> = Vec::new();
    let mut server_args = Vec::new();
    let mut server = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/release/wsengine"
    ));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--short" => short = true,
            "--no-check" => check = false,
            "--server" => server = PathBuf::from(value("--server")),
            "--only" => only.push(value("--only")),
            "--server-arg" => server_args.push(value("--server-arg")),
            "--list" => {
                for (i, (name, about)) in attacks::ATTACKS.iter().enumerate() {
                    println!("{} {name}: {about}", i + 1);
                }
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    for o in &only {
        let known = attacks::ATTACKS
            .iter()
            .enumerate()
            .any(|(i, (n, _))| o == n || *o == (i + 1).to_string());
        if !known {
            eprintln!("unknown attack {o}; see --list");
            return ExitCode::from(2);
        }
    }
    let help = match Help::read(&server) {
        Ok(h) if h.0.contains("--listen") => h,
        Ok(_) | Err(_) => {
            eprintln!(
                "cannot run {} serve --help: build it first (cargo build --release -p wsengine-cli --bin wsengine) or pass --server",
                server.display()
            );
            return ExitCode::from(2);
        }
    };
    let logdir = std::env::temp_dir().join(format!("wsengine-hostile-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&logdir) {
        eprintln!("creating {}: {e}", logdir.display());
        return ExitCode::from(2);
    }
    let nofile = server::raise_nofile();
    let env = Env {
        server,
        server_args,
        short,
        help,
        logdir,
        nofile,
    };
    let start = Instant::now();
    println!(
        "wsengine hostile-load suite ({}): server {}, {} CPUs, load average {}, descriptor limit {}",
        if short { "--short" } else { "full" },
        env.server.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        env.nofile,
    );
    println!("server logs (RUST_LOG=warn): {}", env.logdir.display());
    let mut summary = Vec::new();
    for (i, (name, _)) in attacks::ATTACKS.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| o == name || *o == (i + 1).to_string()) {
            continue;
        }
        let t = Instant::now();
        let block = attacks::run(&env, i);
        block.print();
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
        let failed = block.checks.iter().filter(|c| !c.pass).count();
        summary.push((block.title.clone(), block.checks.len(), failed));
    }
    println!("\n=== summary");
    let mut failures = 0;
    for (title, n, failed) in &summary {
        let name = title.split(':').next().unwrap_or(title);
        let verdict = if *failed == 0 { "PASS" } else { "FAIL" };
        println!("  {verdict}  {name}: {} of {n} targets met", n - failed);
        failures += failed;
    }
    println!(
        "  {failures} target(s) failed; wall time {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if failures > 0 && check {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
