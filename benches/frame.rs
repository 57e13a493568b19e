//! Frame header codec (RFC 6455 §5.2): decode and encode of a masked header in each of
//! the three length forms (7-bit, 16-bit and 64-bit extended length).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsengine::frame::MAX_HEADER_LEN;
use wsengine::{FrameHeader, OpCode, Status};

/// (form, payload length): one of each length encoding.
const FORMS: [(&str, u64); 3] = [
    ("len7_125B", 125),
    ("len16_1KiB", 1024),
    ("len64_1MiB", 1 << 20),
];

fn header(payload_len: u64) -> FrameHeader {
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some([0x37, 0xfa, 0x21, 0x3d]),
        payload_len,
    }
}

fn bench_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for (form, len) in FORMS {
        let h = header(len);
        let mut wire = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut wire);
        // Decode from a buffer that also holds payload bytes, as a receive buffer does.
        let mut buf = wire[..n].to_vec();
        buf.extend_from_slice(&[0u8; 32]);
        assert_eq!(FrameHeader::decode(&buf, 0), Ok(Status::Complete((h, n))));
        group.bench_with_input(BenchmarkId::new("decode", form), &buf, |b, buf| {
            b.iter(|| FrameHeader::decode(black_box(buf), 0))
        });
        group.bench_with_input(BenchmarkId::new("encode", form), &h, |b, h| {
            let mut out = [0u8; MAX_HEADER_LEN];
            b.iter(|| black_box(h).encode(black_box(&mut out)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_frame);
criterion_main!(benches);
