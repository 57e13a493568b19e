//! The recv and send workloads of `benches/compare.rs`, timed interleaved: one
//! iteration of each implementation in turn (the order rotating every round), many
//! rounds, so a burst of load from another process on this shared machine hits every
//! implementation alike instead of whichever criterion happened to be measuring.
//! Prints one markdown table: the median time per iteration and messages/s of each
//! implementation, and wsengine's ratio to the best peer (messages/s).
//!
//! ```sh
//! cargo run --release --bin interleave -- [ROUNDS] [FILTER...]
//! ```
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
    let names: Vec<&str> = points[0].runners.iter().map(|(i, _)| i.name()).collect();
    let send = points.iter().any(|p| p.id.starts_with("send"));
    let all: Vec<&str> = if send {
        Impl::SEND.iter().map(|i| i.name()).collect()
    } else {
        names.clone()
    };
    println!(
        "{rounds} interleaved rounds per point; cells: median µs per iteration · messages/s\n"
    );
    print!("| point |");
    for n in &all {
        print!(" {n} |");
    }
    println!(" wsengine / best peer |");
    print!("|---|");
    for _ in &all {
        print!("---:|");
    }
    println!("---:|");
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
        print!("| {} |", point.id);
        for name in &all {
            match point.runners.iter().position(|(i, _)| i.name() == *name) {
                Some(i) => print!(
                    " {:.1} · {} |",
                    medians[i] * 1e6,
                    rate(point.messages as f64 / medians[i])
                ),
                None => print!(" – |"),
            }
        }
        let ws = |imp: Impl| {
            point
                .runners
                .iter()
                .position(|(i, _)| *i == imp)
                .map(|i| medians[i])
        };
        let (best_name, best) = point
            .runners
            .iter()
            .zip(&medians)
            .filter(|((i, _), _)| !matches!(i, Impl::Wsengine | Impl::WsengineOwned))
            .map(|((i, _), m)| (i.name(), *m))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one peer");
        let mut cell = String::new();
        for imp in [Impl::Wsengine, Impl::WsengineOwned] {
            if let Some(t) = ws(imp) {
                if !cell.is_empty() {
                    cell.push_str(" / ");
                }
                cell.push_str(&format!("{:.2}×", best / t));
            }
        }
        println!(" {cell} ({best_name}) |");
    }
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
