//! The recv and send workloads of `benches/compare.rs`, timed interleaved: one
//! iteration of each implementation in turn (the order rotating every round), many
//! rounds, so a burst of load from another process on this shared machine hits every
//! implementation alike instead of whichever criterion happened to be measuring.
//! Prints one markdown table: the median time per iteration and messages/s of each
//! implementation, and for each of wsengine's runners its messages/s over the best
//! peer's (above 1: wsengine is faster).
//!
//! ```sh
//! cargo run --release --bin interleave -- [ROUNDS] [FILTER...]
//! cargo run --profile lto --bin interleave -- [ROUNDS] [FILTER...]
//! ```
//!
//! The first line names the build the numbers come from (the cargo profile directory
//! the binary sits in, and whether it unwinds or aborts on panic), so a table is never
//! read as the other profile's. `run.sh` runs one table per profile.
//!
//! `ROUNDS` (default 200) rounds per point; a `FILTER` keeps the points whose id
//! (`recv/binary_16KiB`, `send_server/text_1KiB`, ...) contains it.

use std::hint::black_box;
use std::time::Instant;

use wsengine_compare::peers::{Impl, Runner, recv_runner, send_runner};
use wsengine_compare::workload::{Kind, RecvInput, SIZES, SendInput, Side, size_label};

struct Point {
    id: String,
    messages: usize,
    runners: Vec<(Impl, Box<dyn Runner>)>,
}

fn points(filters: &[String]) -> Vec<Point> {
    let wanted = |id: &str| filters.is_empty() || filters.iter().any(|f| id.contains(f));
    let mut out = Vec::new();
    for size in SIZES {
        for kind in Kind::ALL {
            let id = format!("recv/{}_{}", kind.name(), size_label(size));
            if wanted(&id) {
                let input = RecvInput::new(kind, size);
                out.push(Point {
                    id,
                    messages: input.messages,
                    runners: Impl::RECV
                        .iter()
                        .map(|&imp| (imp, recv_runner(imp, &input)))
                        .collect(),
                });
            }
        }
    }
    for side in Side::ALL {
        for size in SIZES {
            for kind in Kind::ALL {
                let id = format!("send_{}/{}_{}", side.name(), kind.name(), size_label(size));
                if wanted(&id) {
                    let input = SendInput::new(kind, size);
                    out.push(Point {
                        id,
                        messages: input.messages,
                        runners: Impl::SEND
                            .iter()
                            .map(|&imp| (imp, send_runner(imp, &input, side)))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// A benchmark reads the clock; the core never does (it takes time as an argument).
#[allow(clippy::disallowed_methods)]
fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let rounds = match args.first().map(|a| a.parse::<usize>()) {
        Some(Ok(n)) => {
            args.remove(0);
            n.max(1)
        }
        _ => 200,
    };
    let mut points = points(&args);
    if points.is_empty() {
        eprintln!("no point matches {args:?}");
        std::process::exit(2);
    }
    // The columns: every implementation some point runs, in `Impl::ALL`'s order, then
    // one ratio column per wsengine runner.
    let all: Vec<Impl> = Impl::ALL
        .into_iter()
        .filter(|imp| {
            points
                .iter()
                .any(|p| p.runners.iter().any(|(i, _)| i == imp))
        })
        .collect();
    let ours: Vec<Impl> = all.iter().copied().filter(|i| i.is_wsengine()).collect();
    println!("build: {}", build());
    println!(
        "{rounds} interleaved rounds per point; cells: median µs per iteration · messages/s; \
         ratios: messages/s over the best peer's (above 1: wsengine is faster)\n"
    );
    print!("| point |");
    for imp in &all {
        print!(" {} |", imp.name());
    }
    for imp in &ours {
        print!(" {} / best peer |", imp.name());
    }
    println!();
    print!("|---|");
    for _ in all.iter().chain(&ours) {
        print!("---:|");
    }
    println!();
    for point in &mut points {
        let n = point.runners.len();
        let mut samples = vec![Vec::with_capacity(rounds); n];
        // Warm-up: every runner once more (caches, allocations).
        for (_, r) in &mut point.runners {
            r.run();
        }
        for round in 0..rounds {
            for k in 0..n {
                let i = (k + round) % n;
                let start = Instant::now();
                point.runners[i].1.run();
                samples[i].push(black_box(start.elapsed().as_secs_f64()));
            }
        }
        let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        let median_of = |imp: Impl| {
            point
                .runners
                .iter()
                .position(|(i, _)| *i == imp)
                .map(|i| medians[i])
        };
        print!("| {} |", point.id);
        for &imp in &all {
            match median_of(imp) {
                Some(t) => print!(" {:.1} · {} |", t * 1e6, rate(point.messages as f64 / t)),
                None => print!(" – |"),
            }
        }
        // The best peer: the shortest median time (most messages/s).
        let (best_name, best) = point
            .runners
            .iter()
            .zip(&medians)
            .filter(|((i, _), _)| !i.is_wsengine())
            .map(|((i, _), m)| (i.name(), *m))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one peer");
        for &imp in &ours {
            match median_of(imp) {
                // wsengine's messages/s over the peer's: the inverse ratio of the times.
                Some(t) => print!(" {:.2}× ({best_name}) |", best / t),
                None => print!(" – |"),
            }
        }
        println!();
    }
}

/// The build this binary is: the profile directory it was built into (`release`, `lto`,
/// `debug`, ...), and how it handles panics.
fn build() -> String {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(|d| d.file_name())
                .map(|d| d.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    let panic = if cfg!(panic = "abort") {
        "abort"
    } else {
        "unwind"
    };
    let asserts = if cfg!(debug_assertions) {
        ", debug assertions on"
    } else {
        ""
    };
    format!("target/{dir} (panic={panic}{asserts})")
}

fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2}M/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1}k/s", per_second / 1e3)
    } else {
        format!("{per_second:.0}/s")
    }
}
