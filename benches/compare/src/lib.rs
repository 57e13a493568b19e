//! wsengine next to tungstenite, fastwebsockets and tokio-websockets on the same
//! in-memory recv and send workloads (`benches/compare.rs`), and echo servers for each
//! peer (`src/bin/`). `workload` and `engine` are the root benches' own files, included
//! by path, so the root benches and this comparison run the same code.

#[allow(dead_code)]
#[path = "../../common/workload.rs"]
pub mod workload;

#[allow(dead_code)]
#[path = "../../common/engine.rs"]
pub mod engine;

pub mod mem;
pub mod peers;

/// The echo servers' command line: `--listen ADDR` (default `127.0.0.1:9001`), or
/// `--help`.
pub fn listen_addr(name: &str) -> std::net::SocketAddr {
    let usage = format!(
        "usage: {name} [--listen ADDR]\n\
         A single-threaded WebSocket echo server: every text or binary message goes back \
         to its sender. Default ADDR 127.0.0.1:9001."
    );
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9001".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(a) => addr = a,
                None => exit_usage(&usage),
            },
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            _ => {
                if let Some(a) = arg.strip_prefix("--listen=") {
                    addr = a.to_owned();
                } else {
                    exit_usage(&usage);
                }
            }
        }
    }
    match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad --listen address {addr:?}: {e}");
            exit_usage(&usage)
        }
    }
}

fn exit_usage(usage: &str) -> ! {
    eprintln!("{usage}");
    std::process::exit(2)
}

/// A current-thread tokio runtime with I/O enabled, for the echo servers.
pub fn echo_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a current-thread runtime")
}
