//! The per-message DEFLATE transform (RFC 7692 §7.2) over flate2's raw streams.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{DeflateConfig, DeflateError, DirectionParams, Memory};

/// An empty stored block: what a sync flush ends with, stripped by the sender and
/// re-appended by the receiver (§7.2.1 step 4, §7.2.2 step 1).
pub(super) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Window bits zlib can run raw deflate with: 8 becomes 9 (see the module docs).
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Compresses the messages one endpoint sends (RFC 7692 §7.2.1).
///
/// With context takeover the zlib state lives as long as the compressor (~250-380 KB,
/// see the module docs), allocated on the first message. Without it the state is reset
/// after each message, or freed under [`Memory::PerMessage`].
#[derive(Debug)]
pub struct Compressor {
    state: Option<Compress>,
    window_bits: u8,
    level: Compression,
    no_context_takeover: bool,
    memory: Memory,
    min_size: usize,
}

impl Compressor {
    /// A compressor for one direction's agreed parameters. Allocates nothing yet.
    pub fn new(params: DirectionParams, config: &DeflateConfig) -> Self {
        Self {
            state: None,
            window_bits: zlib_bits(params.max_window_bits),
            level: Compression::new(u32::from(config.level.min(9))),
            no_context_takeover: params.no_context_takeover,
            memory: config.memory,
            min_size: config.min_compress_size,
        }
    }

    /// Whether this compressor holds zlib state now (it never does between messages
    /// without context takeover under [`Memory::PerMessage`]).
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }

    /// Compresses one whole message into `out` (appending) and returns true; the caller
    /// sends `out`'s new bytes with RSV1 set on the first frame.
    ///
    /// Returns false, with `out` unchanged, when the message should go uncompressed
    /// (RSV1 clear, the original payload): it is shorter than
    /// [`DeflateConfig::min_compress_size`], or, without context takeover, compressing
    /// did not make it smaller (the receiver's window is not shared, so skipping costs
    /// nothing), or zlib failed (the state is then dropped, and the next message starts a
    /// fresh window, which a compressor may always do).
    #[must_use = "RSV1 must be set exactly when this returns true"]
    pub fn compress_message(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if payload.len() < self.min_size {
            return false;
        }
        let start = out.len();
        match self.compress_fragment(payload, true, out) {
            Ok(()) if self.no_context_takeover && out.len() - start >= payload.len() => {
                out.truncate(start);
                false
            }
            Ok(()) => true,
            Err(_) => {
                out.truncate(start);
                self.state = None;
                false
            }
        }
    }

    /// Compresses one fragment of a message (appending to `out`), for messages sent in
    /// pieces: every call's output is a complete, sync-flushed piece that the receiver
    /// can decode on arrival, and the call with `last` ends the message (§7.2.1: the
    /// trailing `00 00 ff ff` is removed). Every fragment of a message must go through
    /// here, and the message goes out with RSV1 on its first frame.
    pub fn compress_fragment(
        &mut self,
        data: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), DeflateError> {
        let start = out.len();
        let result = self.deflate(data, out);
        if let Err(e) = result {
            self.state = None;
            return Err(e);
        }
        if last {
            if out[start..].ends_with(&TAIL) {
                // §7.2.1 step 4: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the
                // tail end."
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start {
                // zlib emits nothing for an empty input right after a flush. An empty
                // stored block's header byte makes a valid message (§7.2.3.6).
                out.push(0x00);
            } else {
                self.state = None;
                return Err(DeflateError::Internal);
            }
            self.end_message();
        }
        Ok(())
    }

    /// Runs `data` through deflate with a sync flush, appending everything to `out`.
    fn deflate(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let (level, bits) = (self.level, self.window_bits);
        let state = self
            .state
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        // Deflate's worst case is a few bytes per 16 KiB stored block over the input.
        out.reserve(data.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve((out.capacity() / 2).max(data.len() / 2 + 64));
            }
            let before = state.total_in();
            let status = state
                .compress_vec(data, out, FlushCompress::Sync)
                .map_err(|_| DeflateError::Internal)?;
            let used = usize::try_from(state.total_in() - before).unwrap_or(usize::MAX);
            data = data.get(used..).ok_or(DeflateError::Internal)?;
            // Done once all input is in and the flush did not fill the output: "If deflate
            // returns with avail_out == 0, this function must be called again".
            let full = out.len() == out.capacity();
            match status {
                Status::Ok if data.is_empty() && !full => return Ok(()),
                Status::Ok => {}
                // Nothing to do: no input and nothing pending since the last flush.
                Status::BufError if data.is_empty() => return Ok(()),
                Status::BufError | Status::StreamEnd => return Err(DeflateError::Internal),
            }
        }
    }

    fn end_message(&mut self) {
        if self.no_context_takeover {
            match self.memory {
                Memory::PerMessage => self.state = None,
                Memory::Retain => {
                    if let Some(state) = &mut self.state {
                        state.reset();
                    }
                }
            }
        }
    }
}

/// Decompresses the messages one endpoint receives (RFC 7692 §7.2.2), frame by frame.
///
/// Output is bounded: [`decompress`](Self::decompress) inflates in steps of at most
/// 64 KiB and stops with [`DeflateError::TooBig`] as soon as the message would pass its
/// limit, so a small frame that inflates to gigabytes costs at most `limit` bytes.
#[derive(Debug)]
pub struct Decompressor {
    state: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    memory: Memory,
    /// Decompressed bytes of the current message so far.
    produced: usize,
    /// The current message has had some payload.
    has_payload: bool,
    /// The stream hit a block with BFINAL set: further blocks need a fresh stream.
    ended: bool,
}

/// Largest output step: bounds the zeroed scratch per step and how far past a limit the
/// work goes before it is noticed.
const MAX_STEP: usize = 64 << 10;
const MIN_STEP: usize = 4 << 10;

impl Decompressor {
    /// A decompressor for one direction's agreed parameters. Allocates nothing yet.
    pub fn new(params: DirectionParams, config: &DeflateConfig) -> Self {
        Self {
            state: None,
            window_bits: zlib_bits(params.max_window_bits),
            no_context_takeover: params.no_context_takeover,
            memory: config.memory,
            produced: 0,
            has_payload: false,
            ended: false,
        }
    }

    /// Whether this decompressor holds zlib state now (it never does between messages
    /// without context takeover under [`Memory::PerMessage`]).
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }

    /// Decompresses the next piece of a compressed message's payload (one frame's, or
    /// part of one), appending the output to `out`. Call it with
    /// `last_fragment_of_message` set on the final piece (FIN set and all of the frame's
    /// payload): the trailing `00 00 ff ff` is then appended (§7.2.2 step 1) and the
    /// message ends.
    ///
    /// `limit` caps the decompressed size of the whole message across calls; `out` never
    /// grows by more than what is left of it (neither in length nor, if it had less
    /// capacity, in capacity), and exceeding it is [`DeflateError::TooBig`]. Invalid data
    /// is [`DeflateError::Corrupt`]. After an error the connection must be failed: the
    /// state is dropped.
    ///
    /// Blocks may follow a block with BFINAL set (§7.2.3.4); they are decoded as a fresh
    /// stream, so data after such a block cannot refer back past it (zlib cannot carry its
    /// window over a stream end, and nothing in flate2 can read the window out). A sender
    /// that does refer back gets `Corrupt`, never wrong data.
    pub fn decompress(
        &mut self,
        input: &[u8],
        last_fragment_of_message: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DeflateError> {
        let result = self.decompress_inner(input, last_fragment_of_message, out, limit);
        if result.is_err() {
            self.state = None;
            self.produced = 0;
            self.has_payload = false;
            self.ended = false;
        }
        result
    }

    fn decompress_inner(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), DeflateError> {
        let max_len = out
            .len()
            .saturating_add(limit.saturating_sub(self.produced));
        if !input.is_empty() {
            self.has_payload = true;
            self.inflate(input, out, max_len, limit)?;
        }
        if last {
            // An empty payload carries no block header for the tail to complete (a
            // sender should send 0x00, §7.2.3.6), and a stream that just ended with
            // BFINAL needs no tail: in both cases there is nothing to terminate.
            if self.has_payload && !self.ended {
                self.inflate(&TAIL, out, max_len, limit)?;
            }
            self.end_message();
        }
        Ok(())
    }

    /// Inflates all of `input`, keeping `out.len() <= max_len`.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
        limit: usize,
    ) -> Result<(), DeflateError> {
        loop {
            if self.ended {
                if input.is_empty() {
                    return Ok(());
                }
                // More blocks after BFINAL: a new stream (with an empty window).
                self.state = None;
                self.ended = false;
            }
            let bits = self.window_bits;
            let state = self
                .state
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
            let (before_in, before_out) = (state.total_in(), state.total_out());
            let room = max_len.saturating_sub(out.len());
            let (status, step) = if room == 0 {
                // At the limit: one more byte of output means the message is too big.
                let mut probe = [0u8; 1];
                let status = state.decompress(input, &mut probe, FlushDecompress::None);
                if state.total_out() != before_out {
                    return Err(DeflateError::TooBig { limit });
                }
                (status, 1)
            } else {
                let step = room
                    .min(MAX_STEP)
                    .min(input.len().saturating_mul(4).max(MIN_STEP));
                let start = out.len();
                let needed = start + step;
                if out.capacity() < needed {
                    // Grow geometrically, but never past the message's limit.
                    let target = out.capacity().saturating_mul(2).clamp(needed, max_len);
                    out.reserve_exact(target - start);
                }
                out.resize(needed, 0);
                let status = state.decompress(input, &mut out[start..], FlushDecompress::None);
                let made = usize::try_from(state.total_out() - before_out).unwrap_or(usize::MAX);
                out.truncate(start + made.min(step));
                (status, step)
            };
            let used = usize::try_from(state.total_in() - before_in).unwrap_or(usize::MAX);
            let made = usize::try_from(state.total_out() - before_out).unwrap_or(usize::MAX);
            self.produced = self.produced.saturating_add(made);
            input = input.get(used..).ok_or(DeflateError::Internal)?;
            match status.map_err(|_| DeflateError::Corrupt)? {
                Status::StreamEnd => self.ended = true,
                // The output step filled up: more may be pending.
                _ if made == step => {}
                _ if input.is_empty() => return Ok(()),
                // Input left, room left, nothing moved: inflate cannot go on.
                _ if used == 0 && made == 0 => return Err(DeflateError::Corrupt),
                _ => {}
            }
        }
    }

    fn end_message(&mut self) {
        self.produced = 0;
        self.has_payload = false;
        if self.no_context_takeover {
            match self.memory {
                Memory::PerMessage => self.state = None,
                Memory::Retain => {
                    if let Some(state) = &mut self.state {
                        state.reset(false);
                    }
                }
            }
            self.ended = false;
        }
    }
}
