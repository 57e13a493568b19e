//! One workload point of wsengine alone, run a fixed number of iterations: the program
//! to put under a profiler (`valgrind --tool=callgrind`, `perf record`) when a point of
//! the comparison is slow. Instruction counts from callgrind are the same from run to
//! run whatever else the machine does, so they measure a change where wall-clock time
//! on this shared machine cannot.
//!
//! ```sh
//! cargo build --release --bin profile      # or --profile lto: target/lto/profile
//! valgrind --tool=callgrind target/release/profile recv binary 16 5
//! target/release/profile send_server text 1024 200   # prints the best time too
//! ```
//!
//! Arguments: the workload, `text|binary`, the payload size in bytes (16, 125, 1024,
//! 16384 or 1048576, as in the comparison), iterations (default 5). Workloads:
//! `recv` (the comparison's `wsengine` runner: read from a `MemStream` into the core's
//! `recv_buf`, `commit_recv`, `match` on `poll_event`), `recv_idiom` (its
//! `wsengine-idiom` runner: `while let Some(event) = conn.poll_event()?`), `recv_copy`
//! (its `wsengine-copy` runner: the host's own buffer, then `recv`), `recv_core` (the root bench's
//! loop: `recv` straight from the input, no host buffer), `send_client`, `send_server`,
//! `send_server_owned`, and the peers' receive runners of the comparison, measured the
//! same way: `recv_tungstenite`, `recv_fastwebsockets`, `recv_tokio_websockets`.

use std::time::Instant;

use wsengine_compare::engine::{self, OwnedPayload};
use wsengine_compare::peers::{Impl, recv_runner};
use wsengine_compare::workload::{Kind, RecvInput, SendInput, Side, Sink};

fn usage() -> ! {
    eprintln!(
        "usage: profile recv|recv_idiom|recv_copy|recv_core|send_client|send_server|send_server_owned\
         |recv_tungstenite|recv_fastwebsockets|recv_tokio_websockets text|binary SIZE [ITERATIONS]"
    );
    std::process::exit(2);
}

// A benchmark reads the clock; the core never does (it takes time as an argument).
#[allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(workload), Some(kind), Some(size)) = (args.first(), args.get(1), args.get(2)) else {
        usage()
    };
    let kind = match kind.as_str() {
        "text" => Kind::Text,
        "binary" => Kind::Binary,
        _ => usage(),
    };
    let Ok(size) = size.parse::<usize>() else {
        usage()
    };
    let iterations = args.get(3).map_or(Ok(5), |s| s.parse::<usize>());
    let Ok(iterations) = iterations else { usage() };

    let mut run: Box<dyn FnMut()> = match workload.as_str() {
        "recv"
        | "recv_idiom"
        | "recv_copy"
        | "recv_tungstenite"
        | "recv_fastwebsockets"
        | "recv_tokio_websockets" => {
            let imp = match workload.as_str() {
                "recv" => Impl::Wsengine,
                "recv_idiom" => Impl::WsengineIdiom,
                "recv_copy" => Impl::WsengineCopy,
                "recv_tungstenite" => Impl::Tungstenite,
                "recv_fastwebsockets" => Impl::Fastwebsockets,
                _ => Impl::TokioWebsockets,
            };
            let mut runner = recv_runner(imp, &RecvInput::new(kind, size));
            Box::new(move || runner.run())
        }
        "recv_core" => {
            let input = RecvInput::new(kind, size);
            let mut conn = engine::open(Side::Server);
            Box::new(move || engine::recv_all(&mut conn, &input))
        }
        "send_client" | "send_server" | "send_server_owned" => {
            let side = if workload == "send_client" {
                Side::Client
            } else {
                Side::Server
            };
            let input = SendInput::new(kind, size);
            let mut conn = engine::open(side);
            let mut sink = Sink::new();
            if workload == "send_server_owned" {
                let payload = OwnedPayload::new(&input);
                Box::new(move || {
                    engine::send_all_owned(&mut conn, &input, &payload, &mut sink);
                })
            } else {
                Box::new(move || {
                    engine::send_all(&mut conn, &input, &mut sink);
                })
            }
        }
        _ => usage(),
    };
    // One untimed iteration: buffers reach their steady-state sizes.
    run();
    let mut best = f64::MAX;
    for _ in 0..iterations {
        let start = Instant::now();
        run();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{workload} {kind:?} {size} B: {iterations} iterations, best {:.1} µs",
        best * 1e6
    );
}
