//! A streaming, fail-fast UTF-8 validator (RFC 6455 §8.1: "When an endpoint is to
//! interpret a byte stream as UTF-8 but finds that the byte stream is not, in fact, a
//! valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_").
//!
//! Text arrives in pieces (frames, and reads within a frame). The validator carries the
//! 1-3 bytes of a code point cut at a piece boundary and fails on the first byte that
//! cannot begin or continue a valid sequence, so the connection fails as soon as the
//! invalid byte is seen rather than at the end of the message. The whole-buffer check is
//! `simdutf8::compat`, which keeps std's `valid_up_to`/`error_len` contract (its `basic`
//! flavour does not say where the error is, nor whether the input was only truncated).

use core::fmt;

use bytes::Bytes;

use crate::prelude::*;

/// Bytes known to be valid UTF-8: the payload of a text message or of a piece of one.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps `text`.
    pub fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Only the validator's callers build these, from bytes it accepted.
    pub(crate) fn new_validated(bytes: Bytes) -> Self {
        debug_assert!(
            core::str::from_utf8(&bytes).is_ok(),
            "Utf8Bytes built from bytes the validator did not accept"
        );
        Self(bytes)
    }

    /// The text, without a second validation pass: the bytes were validated once, as
    /// they arrived (fused with unmasking), and that is what makes a text message cost
    /// one pass over its payload.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees valid UTF-8: `from_static`, `From<String>`
        // and `From<&str>` take `str`s; `new_validated` is crate-private and called only
        // on bytes the streaming validator accepted (checked again there in debug builds,
        // which the tests and fuzz targets use); the bytes are immutable (`Bytes`) and
        // no method hands out a mutable view.
        unsafe { core::str::from_utf8_unchecked(&self.0) }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// The input can never become valid UTF-8, whatever follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Pieces shorter than this are validated padded to this length (see `feed`).
const SHORT_PIECE: usize = 64;

/// Streaming validator state: the bytes of an incomplete code point carried over.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece. On success the input so far is a valid prefix of some
    /// UTF-8 text; the bytes of a code point still incomplete at its end are held in the
    /// validator and returned by [`carried`](Self::carried). They are always a suffix of
    /// the input fed so far, so a caller that hands text on in pieces can cut each piece
    /// at a code point boundary by leaving them for the next one.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), Utf8Error> {
        let mut rest = piece;
        if self.partial_len > 0 {
            // Finish the carried code point one byte at a time: each byte either keeps
            // the sequence a valid prefix, completes it, or fails it (fail fast).
            while self.partial_len > 0 {
                let Some((&b, tail)) = rest.split_first() else {
                    return Ok(());
                };
                rest = tail;
                let n = usize::from(self.partial_len);
                self.partial[n] = b;
                let cand = &self.partial[..=n];
                match core::str::from_utf8(cand) {
                    Ok(_) => self.partial_len = 0,
                    Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                    // Still a valid prefix; a code point is at most 4 bytes, so n + 1 < 4.
                    Err(_) => self.partial_len += 1,
                }
            }
        }
        if !rest.is_empty() && rest.len() < SHORT_PIECE {
            // simdutf8 hands inputs under 64 bytes to core::str::from_utf8, which took
            // ~170 instructions for a 16-byte chat message with one accented letter.
            // Padded with NULs to one 64-byte block, the input takes the SIMD path; NULs
            // are ASCII, so the padded block is valid exactly when the input is valid and
            // ends on a code point boundary. Otherwise the exact check below tells an
            // invalid input from one cut short. All-ASCII pieces (most short JSON) are
            // settled by a word-at-a-time check first.
            if rest.is_ascii() {
                return Ok(());
            }
            let mut padded = [0u8; SHORT_PIECE];
            padded[..rest.len()].copy_from_slice(rest);
            if simdutf8::basic::from_utf8(&padded).is_ok() {
                return Ok(());
            }
        }
        match simdutf8::compat::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Error),
            Err(e) => {
                // A truncated but so far valid sequence at the end: carry it.
                let tail = &rest[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = u8::try_from(tail.len()).map_err(|_| Utf8Error)?;
                Ok(())
            }
        }
    }

    /// Ends the message: an incomplete code point at the end is an error (§8.1).
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Whether the input so far ends on a code point boundary.
    pub fn is_boundary(&self) -> bool {
        self.partial_len == 0
    }

    /// The carried bytes of an incomplete code point (0-3 bytes).
    pub fn carried(&self) -> &[u8] {
        &self.partial[..usize::from(self.partial_len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_in_pieces(data: &[u8], cuts: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &end in cuts.iter().chain([&data.len()]) {
            let end = end.clamp(start, data.len());
            v.feed(&data[start..end])?;
            start = end;
        }
        v.finish()
    }

    #[test]
    fn code_point_split_across_pieces() {
        let s = "κόσμε".as_bytes();
        for cut in 0..=s.len() {
            assert_eq!(feed_in_pieces(s, &[cut]), Ok(()), "cut {cut}");
        }
    }

    #[test]
    fn incomplete_code_point_at_end_of_message_fails() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ab\xce"), Ok(()));
        assert_eq!(v.carried(), b"\xce");
        assert_eq!(v.finish(), Err(Utf8Error));
    }

    #[test]
    fn fails_on_the_first_invalid_byte_even_mid_sequence() {
        // 0xF4 0x90 can never start a valid sequence (above U+10FFFF): fail at once,
        // before the rest of the sequence arrives (Autobahn 6.4.x).
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xce\xba\xf4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(Utf8Error));
    }

    #[test]
    fn surrogates_and_overlongs_are_invalid() {
        for bad in [&b"\xed\xa0\x80"[..], b"\xc0\xaf", b"\xe0\x80\xaf", b"\xff"] {
            assert_eq!(feed_in_pieces(bad, &[]), Err(Utf8Error), "{bad:?}");
            assert_eq!(feed_in_pieces(bad, &[1]), Err(Utf8Error), "{bad:?}");
        }
    }

    #[test]
    fn carried_bytes_are_the_incomplete_suffix() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe2"), Ok(()));
        assert_eq!(v.feed(b"\x82"), Ok(()));
        assert_eq!(v.carried(), b"\xe2\x82");
        assert_eq!(v.feed(b"\xacx"), Ok(()));
        assert!(v.is_boundary());
    }

    proptest! {
        #[test]
        fn streaming_agrees_with_std_for_any_split(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let expected = core::str::from_utf8(&data).is_ok();
            prop_assert_eq!(feed_in_pieces(&data, &cuts).is_ok(), expected);
        }

        #[test]
        fn streaming_accepts_valid_text_for_any_split(s in "\\PC*", cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(feed_in_pieces(s.as_bytes(), &cuts), Ok(()));
        }

        #[test]
        fn fails_no_later_than_the_first_bad_byte(data in proptest::collection::vec(any::<u8>(), 1..32)) {
            // The first byte that makes the input invalid is the first i for which
            // data[..=i] is no longer a valid prefix (std: an error with a known length).
            let bad_at = (0..data.len())
                .find(|&i| matches!(core::str::from_utf8(&data[..=i]), Err(e) if e.error_len().is_some()));
            let mut v = Utf8Validator::new();
            let failed_at = data.iter().position(|b| v.feed(core::slice::from_ref(b)).is_err());
            prop_assert_eq!(failed_at, bad_at);
        }
    }
}
