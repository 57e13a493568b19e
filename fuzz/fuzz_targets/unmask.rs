//! Differential: every masking implementation (the functions below and every
//! `MaskPath` this CPU has, SIMD included, through `apply_mask_with`) agrees with RFC 6455 §5.3 (computed here
//! byte by byte) for any key, data, length, starting phase and buffer alignment, touches
//! nothing outside its slice, returns the right next phase, and gives the same result
//! when the data is masked in two pieces with the phase carried over.
//!
//! Input: key [4], phase u64 (little-endian, any value: the contract is `phase % 4`),
//! offset u8 (alignment: `offset % 64` bytes into a larger buffer), cut u8, data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::mask;

type MaskFn = fn(&mut [u8], [u8; 4], usize) -> usize;

/// Every implementation called directly: adding one is one line. Paths listed by
/// `MaskPath::available()` (scalar, word, SSE2, AVX2, ...) are run as well, so a new
/// SIMD path in src/mask/simd.rs is covered as soon as it joins that list.
const IMPLS: &[(&str, MaskFn)] = &[
    ("apply_mask_scalar", mask::apply_mask_scalar),
    ("apply_mask_word", mask::apply_mask_word),
    ("apply_mask", mask::apply_mask),
];

const SENTINEL: u8 = 0xA5;

fuzz_target!(|data: &[u8]| {
    if data.len() < 14 {
        return;
    }
    let key = [data[0], data[1], data[2], data[3]];
    let phase = u64::from_le_bytes(data[4..12].try_into().unwrap()) as usize;
    let offset = usize::from(data[12] % 64);
    let cut = usize::from(data[13]);
    let payload = &data[14..];
    let len = payload.len();

    // The reference, straight from §5.3 ("octet i ... XOR ... masking-key-octet at
    // index (i + phase) modulo 4"), without overflow for any phase.
    let p4 = phase % 4;
    let expected: Vec<u8> = payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[(p4 + i % 4) % 4])
        .collect();
    let expected_phase = (p4 + len % 4) % 4;

    let paths = mask::MaskPath::available().iter().map(|&path| {
        let f = move |buf: &mut [u8], key: [u8; 4], phase: usize| {
            mask::apply_mask_with(path, buf, key, phase).expect("an available path runs")
        };
        (
            format!("{path:?}"),
            Box::new(f) as Box<dyn Fn(&mut [u8], [u8; 4], usize) -> usize>,
        )
    });
    let all = IMPLS
        .iter()
        .map(|&(name, f)| {
            (
                name.to_string(),
                Box::new(f) as Box<dyn Fn(&mut [u8], [u8; 4], usize) -> usize>,
            )
        })
        .chain(paths);
    for (name, f) in all {
        // Whole, at the given alignment.
        let mut buf = vec![SENTINEL; offset + len + 16];
        buf[offset..offset + len].copy_from_slice(payload);
        let next = f(&mut buf[offset..offset + len], key, phase);
        assert_eq!(
            &buf[offset..offset + len],
            &expected[..],
            "{name}: wrong bytes"
        );
        assert_eq!(next, expected_phase, "{name}: wrong next phase");
        assert!(
            buf[..offset]
                .iter()
                .chain(&buf[offset + len..])
                .all(|&b| b == SENTINEL),
            "{name}: wrote outside its slice"
        );

        // In two pieces, the phase carried over.
        let c = if len == 0 { 0 } else { cut % (len + 1) };
        let mut buf = vec![SENTINEL; offset + len + 16];
        buf[offset..offset + len].copy_from_slice(payload);
        let mid = f(&mut buf[offset..offset + c], key, phase);
        let end = f(&mut buf[offset + c..offset + len], key, mid);
        assert_eq!(
            &buf[offset..offset + len],
            &expected[..],
            "{name}: pieces differ"
        );
        assert_eq!(end, expected_phase, "{name}: wrong phase after pieces");
    }
});
