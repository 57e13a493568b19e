//! Explicit SIMD unmasking for x86_64: SSE2 (always present on x86_64) and AVX2, picked
//! at runtime (with the `std` feature; without it, from the target features the build was
//! compiled for). Soft-float targets without SSE2 (x86_64-unknown-none) compile none of
//! it. The only module of the crate allowed `unsafe` (besides `Utf8Bytes::as_str`, one
//! call of `from_utf8_unchecked`); each block says why it is
//! sound. Other targets (aarch64 included) use the word loop in `mask/mod.rs`, which LLVM
//! vectorises (NEON there): this machine cannot compile aarch64, and SIMD code that
//! cannot be tested here is not written. `cfg(miri)` and `cfg(wsengine_disable_simd)`
//! compile none of this.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, Ordering};

/// Which implementation [`super::apply_mask`] uses on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MaskPath {
    /// One byte at a time: the reference.
    Scalar,
    /// Eight bytes at a time, safe code that LLVM vectorises.
    Word,
    /// 16 bytes at a time with SSE2 (x86_64).
    Sse2,
    /// 32 bytes at a time with AVX2 (x86_64, detected at runtime).
    Avx2,
}

impl MaskPath {
    /// Every path this build has and this CPU can run, the reference first.
    pub fn available() -> &'static [Self] {
        match detected() {
            Detected::Avx2 => &[Self::Scalar, Self::Word, Self::Sse2, Self::Avx2],
            Detected::Sse2 => &[Self::Scalar, Self::Word, Self::Sse2],
            Detected::None => &[Self::Scalar, Self::Word],
        }
    }

    /// The fastest available path: what `apply_mask` uses for long buffers.
    pub fn best() -> Self {
        match detected() {
            Detected::Avx2 => Self::Avx2,
            Detected::Sse2 => Self::Sse2,
            Detected::None => Self::Word,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Detected {
    None,
    Sse2,
    Avx2,
}

/// 0: not yet detected; otherwise 1 + the `Detected` discriminant. One relaxed load per
/// call after the first (as httparse's `simd/runtime.rs` does).
static DETECTED: AtomicU8 = AtomicU8::new(0);

fn detected() -> Detected {
    match DETECTED.load(Ordering::Relaxed) {
        1 => Detected::None,
        2 => Detected::Sse2,
        3 => Detected::Avx2,
        _ => {
            let d = detect();
            let code = match d {
                Detected::None => 1,
                Detected::Sse2 => 2,
                Detected::Avx2 => 3,
            };
            DETECTED.store(code, Ordering::Relaxed);
            d
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(miri),
    not(wsengine_disable_simd)
))]
fn detect() -> Detected {
    #[cfg(feature = "std")]
    let avx2 = std::is_x86_feature_detected!("avx2");
    // Without std there is no runtime detection: AVX2 only when the build targets it
    // (`-C target-feature=+avx2` or a `target-cpu` that has it).
    #[cfg(not(feature = "std"))]
    let avx2 = cfg!(target_feature = "avx2");
    if avx2 { Detected::Avx2 } else { Detected::Sse2 }
}

#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(miri),
    not(wsengine_disable_simd)
)))]
fn detect() -> Detected {
    Detected::None
}

/// Runs `path` if this CPU has it; `None` otherwise. Returns the phase after `buf`.
pub fn apply_mask_with(
    path: MaskPath,
    buf: &mut [u8],
    key: [u8; 4],
    phase: usize,
) -> Option<usize> {
    Some(match path {
        MaskPath::Scalar => super::apply_mask_scalar(buf, key, phase),
        MaskPath::Word => super::apply_mask_word(buf, key, phase),
        MaskPath::Sse2 | MaskPath::Avx2 => {
            if !MaskPath::available().contains(&path) {
                return None;
            }
            simd(path, buf, key, phase)
        }
    })
}

/// The dispatch of [`super::apply_mask`] for buffers long enough to pay for SIMD.
#[inline]
pub(super) fn apply_mask_best(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    match detected() {
        Detected::Avx2 => simd(MaskPath::Avx2, buf, key, phase),
        Detected::Sse2 => simd(MaskPath::Sse2, buf, key, phase),
        Detected::None => super::apply_mask_word(buf, key, phase),
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(miri),
    not(wsengine_disable_simd)
))]
fn simd(path: MaskPath, buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let phase = phase % 4;
    let rotated = super::rotate_key(key, phase);
    let word = i32::from_ne_bytes(rotated);
    let done = match path {
        // SAFETY: callers reach this arm only after `detected()` saw AVX2 on this CPU
        // (`apply_mask_with` checks `available()`, `apply_mask_best` matches on it).
        MaskPath::Avx2 => unsafe { x86::avx2(buf, word) },
        // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
        _ => unsafe { x86::sse2(buf, word) },
    };
    // Whole vectors keep the phase; the tail (< 32 bytes) goes through the word loop.
    super::apply_mask_word(&mut buf[done..], rotated, 0);
    (phase + buf.len()) % 4
}

#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(miri),
    not(wsengine_disable_simd)
)))]
fn simd(_path: MaskPath, buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    super::apply_mask_word(buf, key, phase)
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(miri),
    not(wsengine_disable_simd)
))]
mod x86 {
    use core::arch::x86_64::{
        __m128i, __m256i, _mm_loadu_si128, _mm_set1_epi32, _mm_storeu_si128, _mm_xor_si128,
        _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
    };

    /// XORs every whole 32-byte block of `buf` with `key` repeated; returns the number
    /// of bytes done (a multiple of 32). Four blocks per iteration keep two loads and
    /// two stores in flight per cycle.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(buf: &mut [u8], key: i32) -> usize {
        let k = _mm256_set1_epi32(key);
        let mut chunks = buf.chunks_exact_mut(32);
        let mut done = 0;
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunk` is exactly 32 bytes of `buf`, readable and writable;
            // loadu/storeu accept any alignment.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k)) };
            done += 32;
        }
        done
    }

    /// As [`avx2`] with 16-byte SSE2 blocks; returns the bytes done (a multiple of 16).
    ///
    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn sse2(buf: &mut [u8], key: i32) -> usize {
        let k = _mm_set1_epi32(key);
        let mut chunks = buf.chunks_exact_mut(16);
        let mut done = 0;
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `chunk` is exactly 16 bytes of `buf`, readable and writable;
            // loadu/storeu accept any alignment.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k)) };
            done += 16;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_and_word_are_always_available() {
        let paths = MaskPath::available();
        assert_eq!(&paths[..2], &[MaskPath::Scalar, MaskPath::Word]);
        assert!(paths.contains(&MaskPath::best()));
    }

    /// Every available path against the scalar reference, exhaustively: all lengths
    /// 0..=4096 x every key phase 0..4 x every buffer alignment 0..64. The reference runs
    /// once per (length, phase): alignment changes only where the bytes sit. About 3M
    /// calls: seconds optimised, half a minute unoptimised, so the everyday debug run
    /// skips it and `.ci/run` runs it with `cargo test --release --lib mask`.
    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "exhaustive; run with --release (as .ci/run does)"
    )]
    fn every_path_matches_scalar_for_all_lengths_phases_and_alignments() {
        let key = [0x9e, 0x37, 0x79, 0xb9];
        let data: Vec<u8> = (0..4096)
            .map(|i: usize| i.wrapping_mul(31).to_le_bytes()[0])
            .collect();
        let mut got = vec![0u8; 4096 + 64];
        for len in 0..=4096usize {
            for phase in 0..4 {
                let mut expected = data[..len].to_vec();
                let want = super::super::apply_mask_scalar(&mut expected, key, phase);
                for &path in &MaskPath::available()[1..] {
                    for align in 0..64 {
                        let buf = &mut got[align..align + len];
                        buf.copy_from_slice(&data[..len]);
                        let phase_after = apply_mask_with(path, buf, key, phase);
                        assert_eq!(phase_after, Some(want), "{path:?} len {len} phase {phase}");
                        assert!(
                            *buf == expected[..],
                            "{path:?} len {len} phase {phase} align {align}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_path_matches_scalar_for_every_alignment_of_short_buffers() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..400u32).map(|i| i.to_le_bytes()[0] ^ 0x5a).collect();
        for align in 0..64 {
            for len in 0..=257 {
                for phase in 0..4 {
                    let mut expected = data.clone();
                    super::super::apply_mask_scalar(&mut expected[align..align + len], key, phase);
                    for &path in MaskPath::available() {
                        let mut got = data.clone();
                        apply_mask_with(path, &mut got[align..align + len], key, phase);
                        assert!(
                            got == expected,
                            "{path:?} align {align} len {len} phase {phase}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn every_path_matches_scalar_on_large_buffers(
            len in prop_oneof![4096usize..70_000, Just(1 << 20)],
            align in 0usize..64,
            phase in 0usize..4,
            key in any::<[u8; 4]>(),
            seed in any::<u8>(),
        ) {
            let data: Vec<u8> = (0..len + 64).map(|i| i.to_le_bytes()[0].wrapping_mul(seed | 1)).collect();
            let mut expected = data.clone();
            let want = super::super::apply_mask_scalar(&mut expected[align..align + len], key, phase);
            for &path in MaskPath::available() {
                let mut got = data.clone();
                prop_assert_eq!(apply_mask_with(path, &mut got[align..align + len], key, phase), Some(want));
                prop_assert!(got == expected, "{:?}", path);
            }
        }
    }
}
