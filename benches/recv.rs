//! The receive path: N masked client frames (one message each), prebuilt into one
//! buffer, fed to an open server `Connection` in 64 KiB `recv` chunks, draining
//! `poll_event` until the last message. The same workload runs against the peers in
//! `benches/compare/`.
//!
//! Two groups measure the same thing: `recv` reports payload bytes/s, `recv_msgs`
//! messages/s.

// A bench reports a broken setup by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use common::engine::{open, recv_all};
use common::workload::{Kind, RecvInput, SIZES, Side, size_label};

fn bench_recv(c: &mut Criterion) {
    for (group_name, per_message) in [("recv", false), ("recv_msgs", true)] {
        let mut group = c.benchmark_group(group_name);
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for size in SIZES {
            for kind in Kind::ALL {
                let input = RecvInput::new(kind, size);
                group.throughput(if per_message {
                    Throughput::Elements(input.messages as u64)
                } else {
                    Throughput::Bytes(input.payload_bytes())
                });
                let id = BenchmarkId::new(kind.name(), size_label(size));
                group.bench_with_input(id, &input, |b, input| {
                    let mut conn = open(Side::Server);
                    b.iter(|| recv_all(&mut conn, input));
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_recv);
criterion_main!(benches);
