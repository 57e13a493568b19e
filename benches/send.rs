//! The send path: N messages queued on an open connection, the transmit buffer written
//! after each into a `Sink` (which copies every byte, as a socket write does). Client
//! role masks every frame with a fresh key; server role does not. The same workload
//! runs against the peers in `benches/compare/`.
//!
//! Ids: `<kind>/<size>` use `send_text`/`send_binary` (borrowed payload) and
//! `poll_transmit`; `<kind>_owned/<size>` use `send(Message::Text | Message::Binary)`
//! (owned payload: a server sends large ones without copying) and one vectored write of
//! `poll_transmit_vectored`.

// A bench reports a broken setup by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use common::engine::{OwnedPayload, open, send_all, send_all_owned};
use common::workload::{Kind, SIZES, SendInput, Side, Sink, size_label};

fn bench_send(c: &mut Criterion) {
    for side in Side::ALL {
        let mut group = c.benchmark_group(format!("send_{}", side.name()));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for size in SIZES {
            for kind in Kind::ALL {
                let input = SendInput::new(kind, size);
                group.throughput(Throughput::Bytes(input.payload_bytes()));
                let id = BenchmarkId::new(kind.name(), size_label(size));
                group.bench_with_input(id, &input, |b, input| {
                    let mut conn = open(side);
                    let mut sink = Sink::new();
                    b.iter(|| send_all(&mut conn, input, &mut sink));
                });
                let id = BenchmarkId::new(format!("{}_owned", kind.name()), size_label(size));
                group.bench_with_input(id, &input, |b, input| {
                    let mut conn = open(side);
                    let mut sink = Sink::new();
                    let payload = OwnedPayload::new(input);
                    b.iter(|| send_all_owned(&mut conn, input, &payload, &mut sink));
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_send);
criterion_main!(benches);
