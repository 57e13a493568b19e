//! Tests of the transform: RFC 7692 §7.2.3's examples, limits, memory modes, window
//! bits, and round trips against both flate2 and an independent decoder.

use proptest::prelude::*;

use super::codec::TAIL;
use super::*;

fn config() -> DeflateConfig {
    DeflateConfig {
        min_compress_size: 0,
        ..DeflateConfig::default()
    }
}

fn dir(bits: u8, nct: bool) -> DirectionParams {
    DirectionParams {
        max_window_bits: bits,
        no_context_takeover: nct,
    }
}

fn compressor(bits: u8, nct: bool) -> Compressor {
    Compressor::new(dir(bits, nct), &config())
}

fn decompressor(bits: u8, nct: bool) -> Decompressor {
    Decompressor::new(dir(bits, nct), &config())
}

fn compress(c: &mut Compressor, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(c.compress_message(payload, &mut out));
    out
}

fn decompress(d: &mut Decompressor, payload: &[u8]) -> Result<Vec<u8>, DeflateError> {
    let mut out = Vec::new();
    d.decompress(payload, true, &mut out, usize::MAX)?;
    Ok(out)
}

/// Decompresses with every byte in its own call.
fn decompress_bytewise(d: &mut Decompressor, payload: &[u8]) -> Result<Vec<u8>, DeflateError> {
    let mut out = Vec::new();
    for b in payload {
        d.decompress(core::slice::from_ref(b), false, &mut out, usize::MAX)?;
    }
    d.decompress(&[], true, &mut out, usize::MAX)?;
    Ok(out)
}

/// RFC 7692 §7.2.3.1.
const HELLO: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
/// §7.2.3.2: the second "Hello" with context takeover.
const HELLO_AGAIN: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];
/// §7.2.3.3.
const HELLO_STORED: &[u8] = &[
    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
];
/// §7.2.3.4.
const HELLO_BFINAL: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
/// §7.2.3.5.
const HELLO_TWO_BLOCKS: &[u8] = &[
    0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
];

#[test]
fn rfc_7_2_3_1_hello_compresses_to_the_rfc_bytes() {
    let mut c = compressor(15, false);
    assert_eq!(compress(&mut c, b"Hello"), HELLO);
    assert_eq!(
        decompress(&mut decompressor(15, false), HELLO).unwrap(),
        b"Hello"
    );
    assert_eq!(
        decompress_bytewise(&mut decompressor(15, false), HELLO).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7_2_3_2_second_hello_shares_the_window() {
    let mut c = compressor(15, false);
    let first = compress(&mut c, b"Hello");
    let second = compress(&mut c, b"Hello");
    assert_eq!(first, HELLO);
    assert_eq!(second, HELLO_AGAIN);
    assert!(second.len() < first.len());

    let mut d = decompressor(15, false);
    assert_eq!(decompress(&mut d, HELLO).unwrap(), b"Hello");
    assert_eq!(decompress(&mut d, HELLO_AGAIN).unwrap(), b"Hello");
    // Without the first message the back-reference has nothing to point at.
    assert_eq!(
        decompress(&mut decompressor(15, false), HELLO_AGAIN),
        Err(DeflateError::Corrupt)
    );
}

#[test]
fn without_context_takeover_every_message_compresses_alike() {
    for memory in [Memory::PerMessage, Memory::Retain] {
        let cfg = DeflateConfig { memory, ..config() };
        let mut c = Compressor::new(dir(15, true), &cfg);
        assert_eq!(
            compress(&mut c, b"Hello Hello Hello"),
            compress(&mut c, b"Hello Hello Hello")
        );
    }
}

#[test]
fn rfc_7_2_3_3_stored_block() {
    assert_eq!(
        decompress(&mut decompressor(15, false), HELLO_STORED).unwrap(),
        b"Hello"
    );
    assert_eq!(
        decompress_bytewise(&mut decompressor(15, false), HELLO_STORED).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7_2_3_4_bfinal_block_and_later_messages() {
    for nct in [false, true] {
        let mut d = decompressor(15, nct);
        assert_eq!(decompress(&mut d, HELLO_BFINAL).unwrap(), b"Hello");
        // The stream ended; the next messages still decode.
        assert_eq!(decompress(&mut d, HELLO).unwrap(), b"Hello");
        assert_eq!(decompress(&mut d, HELLO_BFINAL).unwrap(), b"Hello");
        assert_eq!(decompress_bytewise(&mut d, HELLO_BFINAL).unwrap(), b"Hello");
        assert_eq!(decompress(&mut d, HELLO).unwrap(), b"Hello");
    }
}

#[test]
fn bfinal_block_without_the_padding_octet() {
    // A sender that ends the message on the BFINAL block itself.
    let mut d = decompressor(15, false);
    assert_eq!(decompress(&mut d, &HELLO_BFINAL[..7]).unwrap(), b"Hello");
    assert_eq!(decompress(&mut d, HELLO).unwrap(), b"Hello");
}

#[test]
fn blocks_after_a_bfinal_block_in_the_same_message() {
    let mut payload = HELLO_BFINAL[..7].to_vec();
    payload.extend_from_slice(HELLO_STORED);
    let mut d = decompressor(15, false);
    assert_eq!(decompress(&mut d, &payload).unwrap(), b"HelloHello");
    assert_eq!(
        decompress_bytewise(&mut d, &payload).unwrap(),
        b"HelloHello"
    );
}

#[test]
fn rfc_7_2_3_5_two_blocks_in_one_message() {
    assert_eq!(
        decompress(&mut decompressor(15, false), HELLO_TWO_BLOCKS).unwrap(),
        b"Hello"
    );
    assert_eq!(
        decompress_bytewise(&mut decompressor(15, false), HELLO_TWO_BLOCKS).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7_2_3_6_empty_fragment_and_empty_messages() {
    let mut d = decompressor(15, false);
    assert_eq!(decompress(&mut d, &[0x00]).unwrap(), b"");
    // An empty compressed payload (RSV1 with no data) is an empty message too.
    assert_eq!(decompress(&mut d, &[]).unwrap(), b"");
    assert_eq!(decompress(&mut d, HELLO).unwrap(), b"Hello");
    // An empty message compresses to the single 0x00 octet of §7.2.3.6, first or not.
    for nct in [false, true] {
        let mut c = compressor(15, nct);
        let mut out = Vec::new();
        c.compress_fragment(b"", true, &mut out).unwrap();
        assert_eq!(out, [0x00]);
        out.clear();
        c.compress_fragment(b"x", true, &mut out).unwrap();
        out.clear();
        c.compress_fragment(b"", true, &mut out).unwrap();
        assert_eq!(out, [0x00]);
    }
    // And an empty final fragment after a non-empty one.
    let mut c = compressor(15, false);
    let mut first = Vec::new();
    c.compress_fragment(b"abc", false, &mut first).unwrap();
    let mut last = Vec::new();
    c.compress_fragment(b"", true, &mut last).unwrap();
    let mut out = Vec::new();
    d.decompress(&first, false, &mut out, usize::MAX).unwrap();
    d.decompress(&last, true, &mut out, usize::MAX).unwrap();
    assert_eq!(out, b"abc");
}

#[test]
fn corrupt_data_is_an_error_that_drops_the_state() {
    let mut d = decompressor(15, false);
    // BTYPE 11 is reserved.
    assert_eq!(decompress(&mut d, &[0x06]), Err(DeflateError::Corrupt));
    assert!(!d.holds_state());
    // Stored block with a bad length check.
    assert_eq!(
        decompress(
            &mut decompressor(15, false),
            &[0x00, 0x05, 0x00, 0xfa, 0xfe, 1, 2, 3, 4, 5]
        ),
        Err(DeflateError::Corrupt)
    );
    assert_eq!(
        DeflateError::Corrupt.close_code(),
        crate::frame::CloseCode::INVALID_PAYLOAD
    );
    assert_eq!(
        DeflateError::TooBig { limit: 1 }.close_code(),
        crate::frame::CloseCode::MESSAGE_TOO_BIG
    );
}

#[test]
fn messages_below_the_threshold_stay_uncompressed() {
    let cfg = DeflateConfig::default();
    let mut c = Compressor::new(dir(15, false), &cfg);
    let mut out = Vec::new();
    assert!(!c.compress_message(&[b'a'; 31], &mut out));
    assert!(out.is_empty());
    assert!(!c.holds_state());
    assert!(c.compress_message(&[b'a'; 32], &mut out));
    assert!(!out.is_empty());
}

#[test]
fn incompressible_message_goes_uncompressed_without_context_takeover() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[4]
        })
        .collect();
    let mut out = vec![1, 2, 3];
    assert!(!compressor(15, true).compress_message(&noise, &mut out));
    assert_eq!(out, [1, 2, 3]);
    // With context takeover the window already has it: it must be sent compressed.
    assert!(compressor(15, false).compress_message(&noise, &mut out));
}

/// `n` MiB of zeros, compressed to about `n` KiB: one sync-flushed MiB repeated, which
/// is a valid stream since each piece only refers to itself.
fn zero_bomb(mib: usize) -> Vec<u8> {
    let mut c = Compressor::new(
        dir(15, true),
        &DeflateConfig {
            level: 9,
            ..config()
        },
    );
    let mut piece = Vec::new();
    c.compress_fragment(&vec![0u8; 1 << 20], false, &mut piece)
        .unwrap();
    let mut bomb = piece.repeat(mib);
    assert!(bomb.ends_with(&TAIL));
    bomb.truncate(bomb.len() - TAIL.len());
    bomb
}

#[test]
fn decompression_bomb_fails_at_the_limit_with_bounded_memory() {
    let bomb = zero_bomb(100);
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    let limit = 1 << 20;

    // In one call.
    let mut d = decompressor(15, false);
    let mut out = Vec::new();
    assert_eq!(
        d.decompress(&bomb, true, &mut out, limit),
        Err(DeflateError::TooBig { limit })
    );
    assert!(
        out.len() <= limit && out.capacity() <= limit,
        "{} {}",
        out.len(),
        out.capacity()
    );
    assert!(!d.holds_state());

    // Frame by frame, into a buffer that already holds other data: the limit counts the
    // message's bytes only.
    let mut d = decompressor(15, false);
    let mut out = vec![7u8; 100];
    let mut result = Ok(());
    for chunk in bomb.chunks(1000) {
        result = d.decompress(chunk, false, &mut out, limit);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(DeflateError::TooBig { limit }));
    assert!(out.len() <= 100 + limit);
    assert!(out.capacity() <= 100 + limit);
}

#[test]
fn limit_is_exact() {
    let mut c = compressor(15, false);
    let payload = vec![b'z'; 10_000];
    let compressed = compress(&mut c, &payload);
    let mut out = Vec::new();
    assert_eq!(
        decompressor(15, false).decompress(&compressed, true, &mut out, 9_999),
        Err(DeflateError::TooBig { limit: 9_999 })
    );
    assert_eq!(out.len(), 9_999);
    let mut out = Vec::new();
    decompressor(15, false)
        .decompress(&compressed, true, &mut out, 10_000)
        .unwrap();
    assert_eq!(out, payload);
    // An empty message fits a zero limit.
    let mut out = Vec::new();
    decompressor(15, false)
        .decompress(&[0x00], true, &mut out, 0)
        .unwrap();
}

#[test]
fn limit_counts_each_message_afresh() {
    let mut c = compressor(15, false);
    let mut d = decompressor(15, false);
    for _ in 0..3 {
        let compressed = compress(&mut c, &[b'q'; 1000]);
        let mut out = Vec::new();
        d.decompress(&compressed, true, &mut out, 1000).unwrap();
        assert_eq!(out.len(), 1000);
    }
}

#[test]
fn state_is_held_only_as_the_mode_says() {
    let cfg = config();
    // Context takeover: kept from the first message on.
    let mut c = Compressor::new(dir(15, false), &cfg);
    let mut d = Decompressor::new(dir(15, false), &cfg);
    assert!(!c.holds_state() && !d.holds_state());
    let m = compress(&mut c, b"some text");
    decompress(&mut d, &m).unwrap();
    assert!(c.holds_state() && d.holds_state());

    // No context takeover, per-message memory: nothing between messages, but state
    // during a fragmented message.
    let mut c = Compressor::new(dir(15, true), &cfg);
    let mut d = Decompressor::new(dir(15, true), &cfg);
    let mut first = Vec::new();
    c.compress_fragment(b"some ", false, &mut first).unwrap();
    assert!(c.holds_state());
    let mut last = Vec::new();
    c.compress_fragment(b"text", true, &mut last).unwrap();
    assert!(!c.holds_state());
    let mut out = Vec::new();
    d.decompress(&first, false, &mut out, usize::MAX).unwrap();
    assert!(d.holds_state());
    d.decompress(&last, true, &mut out, usize::MAX).unwrap();
    assert!(!d.holds_state());
    assert_eq!(out, b"some text");

    // No context takeover, retained memory: kept and reset.
    let retain = DeflateConfig {
        memory: Memory::Retain,
        ..cfg
    };
    let mut c = Compressor::new(dir(12, true), &retain);
    let mut d = Decompressor::new(dir(12, true), &retain);
    for _ in 0..2 {
        let m = compress(&mut c, b"some text some text");
        assert_eq!(decompress(&mut d, &m).unwrap(), b"some text some text");
        assert!(c.holds_state() && d.holds_state());
    }
}

#[test]
fn params_pick_the_direction_by_role() {
    use crate::role::Role;
    let params = DeflateParams {
        client: dir(10, true),
        server: dir(12, false),
    };
    assert_eq!(params.outgoing(Role::Client), dir(10, true));
    assert_eq!(params.incoming(Role::Client), dir(12, false));
    assert_eq!(params.outgoing(Role::Server), dir(12, false));
    assert_eq!(params.incoming(Role::Server), dir(10, true));
    // A server's compressor talks to a client's decompressor.
    let cfg = config();
    let mut c = params.compressor(Role::Server, &cfg);
    let mut d = params.decompressor(Role::Client, &cfg);
    for _ in 0..3 {
        let m = compress(&mut c, b"server to client");
        assert_eq!(decompress(&mut d, &m).unwrap(), b"server to client");
    }
}

/// Text with repeats at every distance up to ~1000 bytes, so a compressor with a large
/// window would use distances past 256.
fn repetitive(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    let words: Vec<Vec<u8>> = (0..200)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            format!("w{:x} ", x >> 20).into_bytes()
        })
        .collect();
    let mut out = Vec::new();
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(&words[(x >> 16) as usize % words.len()]);
    }
    out.truncate(len);
    out
}

/// Runs messages through a compressor and checks them with the independent decoder:
/// the output, and the largest distance across the whole context-takeover stream.
fn max_distance(bits: u8, level: u8, messages: &[Vec<u8>]) -> usize {
    let cfg = DeflateConfig { level, ..config() };
    let mut c = Compressor::new(dir(bits, false), &cfg);
    let mut history = Vec::new();
    let mut max = 0;
    for m in messages {
        let mut payload = Vec::new();
        assert!(c.compress_message(m, &mut payload));
        payload.extend_from_slice(&TAIL);
        let (out, dist) = oracle::inflate(&payload, &history).unwrap();
        assert_eq!(&out, m);
        history.extend_from_slice(&out);
        max = max.max(dist);
    }
    max
}

#[test]
fn window_bits_8_never_refers_back_more_than_256_bytes() {
    let messages: Vec<Vec<u8>> = (0..8).map(|i| repetitive(3000, i)).collect();
    for level in 1..=9 {
        let dist = max_distance(8, level, &messages);
        assert!(dist <= 256, "level {level}: distance {dist}");
        assert!(dist > 0);
    }
    // The same data does use longer distances when the window allows them.
    assert!(max_distance(15, 6, &messages) > 256);
}

#[test]
fn every_window_size_is_respected() {
    let messages: Vec<Vec<u8>> = (0..4).map(|i| repetitive(20_000, i)).collect();
    for bits in 9..=15u8 {
        let dist = max_distance(bits, 6, &messages);
        assert!(dist <= 1 << bits, "bits {bits}: distance {dist}");
    }
}

#[test]
fn oracle_agrees_on_the_rfc_examples() {
    let with_tail = |p: &[u8]| [p, &TAIL[..]].concat();
    for example in [HELLO, HELLO_STORED, HELLO_BFINAL, HELLO_TWO_BLOCKS] {
        assert_eq!(
            oracle::inflate(&with_tail(example), b"").unwrap().0,
            b"Hello"
        );
    }
    assert_eq!(
        oracle::inflate(&with_tail(HELLO_AGAIN), b"Hello").unwrap(),
        (b"Hello".to_vec(), 5)
    );
}

/// Splits `data` at the given cut points (taken modulo its length).
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for p in points {
        pieces.push(&data[at..p]);
        at = p;
    }
    pieces.push(&data[at..]);
    pieces
}

fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b' ')], 0..3000),
        (0usize..5000, any::<u32>()).prop_map(|(len, seed)| repetitive(len, seed)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip(
        messages in proptest::collection::vec(payload_strategy(), 1..6),
        bits in 8u8..=15,
        nct in any::<bool>(),
        retain in any::<bool>(),
        level in 0u8..=9,
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let cfg = DeflateConfig {
            level,
            memory: if retain { Memory::Retain } else { Memory::PerMessage },
            ..config()
        };
        let mut c = Compressor::new(dir(bits, nct), &cfg);
        let mut d = Decompressor::new(dir(bits, nct), &cfg);
        let mut history = Vec::new();
        for m in &messages {
            let mut payload = Vec::new();
            if !c.compress_message(m, &mut payload) {
                // Sent as is, RSV1 clear: the decompressor never sees it.
                prop_assert!(nct);
                continue;
            }
            // Frame by frame at arbitrary cuts.
            let mut out = Vec::new();
            let pieces = split(&payload, &cuts);
            for (i, piece) in pieces.iter().enumerate() {
                d.decompress(piece, i + 1 == pieces.len(), &mut out, m.len()).unwrap();
            }
            prop_assert_eq!(&out, m);
            // The independent decoder agrees, within the negotiated window.
            let with_tail = [&payload[..], &TAIL[..]].concat();
            let (decoded, dist) = oracle::inflate(&with_tail, if nct { &[] } else { &history }).unwrap();
            prop_assert_eq!(&decoded, m);
            prop_assert!(dist <= 1 << bits);
            if nct { history.clear() } else { history.extend_from_slice(m) }
            if nct && !retain {
                prop_assert!(!c.holds_state() && !d.holds_state());
            }
        }
    }

    #[test]
    fn fragmented_sends_round_trip(
        messages in proptest::collection::vec(payload_strategy(), 1..4),
        bits in 8u8..=15,
        nct in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut c = compressor(bits, nct);
        let mut d = decompressor(bits, nct);
        for m in &messages {
            let pieces = split(m, &cuts);
            let mut out = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len();
                let mut frame = Vec::new();
                c.compress_fragment(piece, last, &mut frame).unwrap();
                d.decompress(&frame, last, &mut out, usize::MAX).unwrap();
            }
            prop_assert_eq!(&out, m);
        }
    }

    #[test]
    fn arbitrary_input_never_panics_or_passes_the_limit(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        limit in 0usize..2000,
        last in any::<bool>(),
    ) {
        let mut d = decompressor(15, false);
        let mut out = Vec::new();
        let _ = d.decompress(&data, last, &mut out, limit);
        prop_assert!(out.len() <= limit && out.capacity() <= limit);
    }
}
