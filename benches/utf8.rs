//! UTF-8 validation (RFC 6455 §8.1): the streaming `Utf8Validator` fed in 4 KiB pieces
//! (as text arrives in reads; pieces cut code points) against whole-buffer
//! `simdutf8::compat::from_utf8` (what the validator runs on each piece),
//! `simdutf8::basic::from_utf8` (what `Utf8Bytes::as_str` runs) and
//! `std::str::from_utf8` (what tungstenite uses).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsengine::utf8::Utf8Validator;

/// Bytes per corpus: fits in L2, so this measures the validators, not memory.
const CORPUS_LEN: usize = 64 << 10;

/// Piece size for the streaming validator.
const PIECE: usize = 4 << 10;

/// `pattern` repeated to `CORPUS_LEN` bytes, cut at a code point boundary.
fn corpus(pattern: &str) -> Vec<u8> {
    let mut s = String::with_capacity(CORPUS_LEN + pattern.len());
    while s.len() < CORPUS_LEN {
        s.push_str(pattern);
    }
    let mut cut = CORPUS_LEN;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.into_bytes()
}

fn corpora() -> [(&'static str, Vec<u8>); 3] {
    [
        (
            "ascii",
            corpus(
                "{\"id\":1234,\"method\":\"subscribe\",\"params\":{\"channel\":\"trades\",\
                 \"symbols\":[\"BTC-USD\",\"ETH-USD\"]},\"ts\":1732350000123}\n",
            ),
        ),
        (
            "latin_emoji",
            corpus(
                "Ça va très bien, merci ! Grüße aus Köln 👋 — señor niño, smørrebrød \
                 og blåbær 😀🎉. Ζωή, Москва. ",
            ),
        ),
        (
            "cjk",
            corpus("日本語のテキストです。中文文本示例，한국어 텍스트입니다。東京都渋谷区。"),
        ),
    ]
}

fn streaming(data: &[u8]) -> bool {
    let mut v = Utf8Validator::new();
    data.chunks(PIECE).all(|piece| v.feed(piece).is_ok()) && v.finish().is_ok()
}

fn bench_utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, data) in corpora() {
        assert!(streaming(&data), "{name} is valid UTF-8");
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("Utf8Validator_4KiB_pieces", name),
            &data,
            |b, d| b.iter(|| streaming(black_box(d))),
        );
        group.bench_with_input(
            BenchmarkId::new("simdutf8_compat_whole", name),
            &data,
            |b, d| b.iter(|| simdutf8::compat::from_utf8(black_box(d)).is_ok()),
        );
        group.bench_with_input(
            BenchmarkId::new("simdutf8_basic_whole", name),
            &data,
            |b, d| b.iter(|| simdutf8::basic::from_utf8(black_box(d)).is_ok()),
        );
        group.bench_with_input(BenchmarkId::new("std_whole", name), &data, |b, d| {
            b.iter(|| std::str::from_utf8(black_box(d)).is_ok())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_utf8);
criterion_main!(benches);
