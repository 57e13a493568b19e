//! Masking (RFC 6455 §5.3): every implementation in `src/mask`, in place, against
//! `copy_from_slice` of the same bytes (one read and one write of each byte: the
//! physical reference for an unmasking pass).
//!
//! The paths come from `MaskPath::available()` (every path this build has and this CPU
//! can run), so a new `MaskPath` variant is benchmarked with no change here. A function
//! outside `MaskPath` takes one line in `ENTRY_POINTS`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsengine::mask::{self, MaskPath, apply_mask_with};

/// An unmasking function: XORs the buffer in place starting at key index `phase`,
/// returns the phase after it.
type MaskFn = fn(&mut [u8], [u8; 4], usize) -> usize;

/// Functions benchmarked besides the `MaskPath`s: the public entry point, whose
/// dispatch (word loop below 64 bytes, the best SIMD path above) is what the receive
/// path pays.
const ENTRY_POINTS: &[(&str, MaskFn)] = &[("apply_mask", mask::apply_mask)];

/// A path's bench id: `scalar`, `word`, `sse2`, `avx2`, ...
fn path_name(path: MaskPath) -> String {
    format!("{path:?}").to_lowercase()
}

const SIZES: [usize; 6] = [16, 125, 1 << 10, 16 << 10, 64 << 10, 1 << 20];

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked payload sits right after its frame header: 6 bytes into the frame for
/// payloads up to 125 bytes, 8 up to 64 KiB, 14 beyond. The buffer starts there, so
/// the paths see the alignment they get in a real receive buffer.
fn header_len(size: usize) -> usize {
    match size {
        0..=125 => 6,
        126..=0xFFFF => 8,
        _ => 14,
    }
}

fn label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

fn bench_mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let offset = header_len(size);
        let src: Vec<u8> = (0..size + offset)
            .map(|i| i.to_le_bytes()[0].wrapping_mul(31))
            .collect();
        let mut buf = src.clone();
        for &(name, f) in ENTRY_POINTS {
            group.bench_with_input(BenchmarkId::new(name, label(size)), &size, |b, _| {
                let payload = &mut buf[offset..];
                b.iter(|| f(black_box(&mut *payload), black_box(KEY), 0));
            });
        }
        for &path in MaskPath::available() {
            let id = BenchmarkId::new(path_name(path), label(size));
            group.bench_with_input(id, &size, |b, _| {
                let payload = &mut buf[offset..];
                b.iter(|| apply_mask_with(path, black_box(&mut *payload), black_box(KEY), 0));
            });
        }
        group.bench_with_input(
            BenchmarkId::new("copy_from_slice", label(size)),
            &size,
            |b, _| {
                let from = &src[offset..];
                let to = &mut buf[offset..];
                b.iter(|| black_box(&mut *to).copy_from_slice(black_box(from)));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_mask);
criterion_main!(benches);
