//! permessage-deflate throughput (RFC 7692): [`Compressor::compress_message`] and
//! [`Decompressor::decompress`] on whole messages, in bytes of *uncompressed* payload
//! per second, for text-like (the chat pattern of `common::workload`, very repetitive)
//! and pseudo-random (incompressible) payloads, with context takeover (the default: the
//! window carries over between messages, the state lives on) and without (a fresh
//! window per message; `Memory::Retain`, so the state is reset, not reallocated).
//!
//! Ids: `compress/<kind>/<takeover|no_takeover>/<size>` and the same for `decompress`.
//! Level 6, 15 window bits (the defaults), `min_compress_size` 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsengine::Role;
use wsengine::extensions::deflate::{DeflateConfig, DeflateParams, DirectionParams, Memory};

use common::workload::{Kind, payload, size_label};

const SIZES: [usize; 3] = [1 << 10, 16 << 10, 1 << 20];

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Binary => "random",
    }
}

fn setup(takeover: bool) -> (DeflateParams, DeflateConfig) {
    let dir = DirectionParams {
        no_context_takeover: !takeover,
        ..DirectionParams::default()
    };
    let params = DeflateParams {
        client: dir,
        server: dir,
    };
    let mut config = DeflateConfig::default();
    config.min_compress_size = 0;
    config.memory = Memory::Retain;
    (params, config)
}

fn bench_deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20);
    for kind in [Kind::Text, Kind::Binary] {
        for takeover in [true, false] {
            let mode = if takeover { "takeover" } else { "no_takeover" };
            for size in SIZES {
                let data = payload(kind, size);
                group.throughput(Throughput::Bytes(size as u64));
                let (params, config) = setup(takeover);
                let id = format!("{}/{mode}", kind_name(kind));

                let mut compressor = params.compressor(Role::Server, &config);
                let mut out = Vec::with_capacity(size + 1024);
                group.bench_with_input(
                    BenchmarkId::new(format!("compress/{id}"), size_label(size)),
                    &data,
                    |b, data| {
                        b.iter(|| {
                            out.clear();
                            // Without context takeover, incompressible data may be
                            // sent as is; the work is the same.
                            let _ = compressor.compress_message(black_box(data), &mut out);
                            black_box(out.len())
                        })
                    },
                );

                // Decompress: a run of messages from a compressor with the same
                // parameters, replayed in order (with context takeover each one refers
                // back into the ones before), with a fresh decompressor per replay.
                let mut sender = params.compressor(Role::Client, &config);
                let runs = if size >= 1 << 20 { 4 } else { 64 };
                let messages: Vec<Vec<u8>> = (0..runs)
                    .map(|_| {
                        let mut m = Vec::new();
                        let compressed = sender.compress_message(&data, &mut m);
                        assert!(compressed || !takeover);
                        if !compressed {
                            // Sent as is: a stored message must still go through the
                            // decompressor, so compress without the size check.
                            sender.compress_fragment(&data, true, &mut m).unwrap();
                        }
                        m
                    })
                    .collect();
                let mut decompressor = params.decompressor(Role::Server, &config);
                let mut next = 0usize;
                let mut inflated = Vec::with_capacity(size);
                group.bench_with_input(
                    BenchmarkId::new(format!("decompress/{id}"), size_label(size)),
                    &messages,
                    |b, messages| {
                        b.iter(|| {
                            if next == messages.len() {
                                next = 0;
                                decompressor = params.decompressor(Role::Server, &config);
                            }
                            inflated.clear();
                            decompressor
                                .decompress(
                                    black_box(&messages[next]),
                                    true,
                                    &mut inflated,
                                    usize::MAX,
                                )
                                .unwrap();
                            next += 1;
                            black_box(inflated.len())
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_deflate);
criterion_main!(benches);
