//! The recv and send workloads of the root benches (`benches/recv.rs`, `benches/send.rs`)
//! on wsengine and its peers, in one criterion run so ratios come from the same run.
//!
//! Ids: `recv/<kind>_<size>/<impl>` and `send_<side>/<kind>_<size>/<impl>`, throughput in
//! payload bytes (`run.sh` derives messages/s from the same medians).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsengine_compare::peers::{Impl, recv_runner, send_runner};
use wsengine_compare::workload::{Kind, RecvInput, SIZES, SendInput, Side, size_label};

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
}

fn bench_recv(c: &mut Criterion) {
    let mut group = c.benchmark_group("recv");
    configure(&mut group);
    for size in SIZES {
        for kind in Kind::ALL {
            let input = RecvInput::new(kind, size);
            group.throughput(Throughput::Bytes(input.payload_bytes()));
            for imp in Impl::RECV {
                let mut runner = recv_runner(imp, &input);
                let id =
                    BenchmarkId::new(format!("{}_{}", kind.name(), size_label(size)), imp.name());
                group.bench_function(id, |b| b.iter(|| runner.run()));
            }
        }
    }
    group.finish();
}

fn bench_send(c: &mut Criterion) {
    for side in Side::ALL {
        let mut group = c.benchmark_group(format!("send_{}", side.name()));
        configure(&mut group);
        for size in SIZES {
            for kind in Kind::ALL {
                let input = SendInput::new(kind, size);
                group.throughput(Throughput::Bytes(input.payload_bytes()));
                for imp in Impl::SEND {
                    let mut runner = send_runner(imp, &input, side);
                    let id = BenchmarkId::new(
                        format!("{}_{}", kind.name(), size_label(size)),
                        imp.name(),
                    );
                    group.bench_function(id, |b| b.iter(|| runner.run()));
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_recv, bench_send);
criterion_main!(benches);
