//! Masking, RFC 6455 §5.3: "octet i of the transformed data ("transformed-octet-i") is
//! the XOR of octet i of the original data ("original-octet-i") with octet at index
//! i modulo 4 of the masking key ("masking-key-octet-j")".
//!
//! Masking and unmasking are the same XOR. [`apply_mask`] is the entry point; `phase` is
//! the position in the key of `buf[0]` (the payload offset modulo 4), so a payload that
//! arrives in several reads is unmasked piece by piece with the phase carried over.
//!
//! Two safe implementations live here: [`apply_mask_scalar`], the byte-at-a-time
//! reference, and [`apply_mask_word`], a word-at-a-time loop that LLVM vectorises on any
//! target (NEON on aarch64). Explicit SSE2/AVX2 paths, picked at runtime, live in
//! `mask/simd.rs`, the only module of the crate with `unsafe` blocks besides the one-line
//! `Utf8Bytes::as_str` (src/utf8.rs); [`MaskPath`] lists what
//! this CPU has and [`apply_mask_with`] runs a given path (for tests, fuzzing, benches).

mod simd;

pub use simd::{MaskPath, apply_mask_with};

/// Below this length the SIMD setup costs more than it saves: the word path and AVX2
/// meet around 128-200 bytes (benches/compare/RESULTS.md, "Measurements behind
/// constants").
const SIMD_MIN_LEN: usize = 128;

/// XORs `buf` with `key`, starting at key index `phase % 4`. Returns the phase for the
/// byte after `buf`, to pass to the next call on the same payload. Uses the fastest path
/// the CPU has (detected once, cached).
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    if buf.len() < SIMD_MIN_LEN {
        apply_mask_word(buf, key, phase)
    } else {
        simd::apply_mask_best(buf, key, phase)
    }
}

/// The reference implementation: one byte at a time, exactly as §5.3 states it.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    // Reduce first: `phase + i` overflows for a phase near `usize::MAX` (fuzz: unmask).
    let phase = phase % 4;
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(phase + i) % 4];
    }
    (phase + buf.len()) % 4
}

/// Word at a time: rotate the key to the phase, widen it to 8 bytes and XOR 8-byte
/// chunks, then finish the tail byte by byte. `chunks_exact_mut` with `u64` lets LLVM
/// emit SSE2/AVX2 (or NEON) without `unsafe`.
pub fn apply_mask_word(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let phase = phase % 4;
    let rotated = rotate_key(key, phase);
    let k = u32::from_le_bytes(rotated);
    let wide = u64::from(k) << 32 | u64::from(k);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_le_bytes(word) ^ wide).to_le_bytes());
    }
    // Whole 8-byte chunks keep the phase, so the tail starts at the same key index:
    // one 4-byte step if it fits (the key again, whole), then at most 3 bytes.
    let tail = chunks.into_remainder();
    let tail = match tail.split_first_chunk_mut::<4>() {
        Some((four, rest)) => {
            *four = (u32::from_le_bytes(*four) ^ k).to_le_bytes();
            rest
        }
        None => tail,
    };
    for (b, m) in tail.iter_mut().zip(rotated) {
        *b ^= m;
    }
    (phase + buf.len()) % 4
}

/// The key as seen from key index `phase % 4`: `rotate_key(k, 1)` is `[k1, k2, k3, k0]`.
/// Rotated as a `u32` (one instruction): `<[u8]>::rotate_left` is a call, and for 16-byte
/// payloads it was a quarter of the unmasking cost.
fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    // Little-endian: key byte j sits at bits 8j, so rotating right by `phase` bytes puts
    // key byte `phase` first.
    u32::from_le_bytes(key)
        .rotate_right([0, 8, 16, 24][phase % 4])
        .to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_5_7_masked_hello() {
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn word_matches_scalar_for_all_short_lengths_offsets_and_phases() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..=320u32).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
        for offset in 0..64 {
            for len in 0..=257 {
                for phase in 0..4 {
                    let mut a = data[offset..offset + len].to_vec();
                    let mut b = a.clone();
                    let pa = apply_mask_scalar(&mut a, key, phase);
                    let pb = apply_mask_word(&mut b, key, phase);
                    assert_eq!((a, pa), (b, pb), "offset {offset} len {len} phase {phase}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn masking_in_pieces_equals_masking_at_once(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            key in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(0usize..2048, 0..8),
        ) {
            let mut whole = data.clone();
            apply_mask_scalar(&mut whole, key, 0);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut pieces = data.clone();
            let mut phase = 0;
            let mut start = 0;
            for end in cuts.into_iter().chain([data.len()]) {
                phase = apply_mask(&mut pieces[start..end], key, phase);
                start = end;
            }
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn masking_twice_is_identity(data in proptest::collection::vec(any::<u8>(), 0..512), key in any::<[u8; 4]>(), phase in 0usize..4) {
            let mut buf = data.clone();
            apply_mask(&mut buf, key, phase);
            apply_mask(&mut buf, key, phase);
            prop_assert_eq!(buf, data);
        }
    }
}
