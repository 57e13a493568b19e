//! permessage-deflate (RFC 7692) inside the connection, all of it in this file: the
//! offer (client) and its answer (server), checking the answer (client), the negotiated
//! state (one compressor, one decompressor, their buffers), compressing what is sent and
//! inflating what arrives with RSV1. Compiled with the `deflate` feature; without it,
//! `no_deflate.rs` has the same functions, doing nothing.

use crate::prelude::*;

use bytes::{Bytes, BytesMut};

use super::recv::{Carried, Progress, data_event};
use super::{Connection, MessageKind, Negotiated, PreparedMessage, RecvFrame, RecvMessage};
use crate::config::{Config, Delivery};
use crate::error::{HandshakeError, ProtocolError, SendError};
use crate::extensions::deflate::{
    Compressor, Decompressor, DeflateConfig, DeflateError, DeflateParams,
};
use crate::frame::OpCode;
use crate::handshake::{Accept, ClientRequest, Request, Response};
use crate::role::Role;
use crate::time::{Duration, Instant};

/// Whether a message can be compressed at all in this build: yes (see `no_deflate.rs`).
pub(super) const NEGOTIABLE: bool = true;

/// RSV1: "Per-Message Compressed" (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0x40;

#[derive(Debug)]
pub(crate) struct DeflateState {
    pub(crate) params: DeflateParams,
    pub(crate) compressor: Compressor,
    pub(crate) decompressor: Decompressor,
    /// Whole-message delivery: the decompressed message so far.
    pub(crate) inflated: Vec<u8>,
    /// Compressed output of the frame being sent (reused: no allocation per message).
    pub(crate) scratch: Vec<u8>,
    /// The fragmented message being sent is compressed.
    pub(crate) sending_compressed: bool,
    /// `DeflateConfig::max_inflated_size`.
    pub(crate) max_inflated: usize,
    /// `DeflateConfig::max_compress_size`.
    pub(crate) max_compress: usize,
    /// `DeflateConfig::max_inflate_rate`, in bytes per second.
    pub(crate) inflate_rate: Option<u64>,
    /// Bytes that may still be inflated (a token bucket of one second's worth; below
    /// zero by at most one call's output), as of `refilled_at`.
    pub(crate) inflate_budget: i64,
    pub(crate) refilled_at: Option<Instant>,
}

/// The compressor's output buffer is kept between messages up to this size; a larger
/// one (after a large message) is given back at once.
const SCRATCH_KEEP: usize = 64 << 10;

impl DeflateState {
    pub(crate) fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> Self {
        Self {
            params,
            compressor: params.compressor(role, config),
            decompressor: params.decompressor(role, config),
            inflated: Vec::new(),
            scratch: Vec::new(),
            sending_compressed: false,
            max_inflated: config.max_inflated_size,
            max_compress: config.max_compress_size,
            inflate_rate: config.max_inflate_rate,
            inflate_budget: 0,
            refilled_at: None,
        }
    }
}

/// Bytes held by the deflate buffers (the message being inflated, the compressor's
/// output), not counting zlib's own state.
pub(super) fn buffered_bytes(state: Option<&DeflateState>) -> usize {
    state.map_or(0, |s| {
        s.inflated.capacity().saturating_add(s.scratch.capacity())
    })
}

/// Gives back the deflate buffers of an idle connection: the inflated bytes of a
/// message (only between messages) and the compressor's output buffer.
pub(super) fn release_idle_buffers(state: Option<&mut DeflateState>, between_messages: bool) {
    if let Some(s) = state {
        if between_messages && s.inflated.capacity() > 0 {
            s.inflated = Vec::new();
        }
        if s.scratch.capacity() > 0 {
            s.scratch = Vec::new();
        }
    }
}

/// RFC 7692 §5: a client offers permessage-deflate when `Config::deflate` is set, unless
/// the application put an offer of its own in the request.
pub(crate) fn with_offer(request: ClientRequest, config: &Config) -> ClientRequest {
    match &config.deflate {
        Some(policy)
            if !request.extensions().iter().any(|e| {
                e.name
                    .eq_ignore_ascii_case(crate::extensions::deflate::EXTENSION_NAME)
            }) =>
        {
            request.extension(crate::extensions::deflate::client_offer(policy))
        }
        _ => request,
    }
}

/// A connection whose handshake was done elsewhere: the state for the parameters it
/// `negotiated`, with `Config::deflate`'s policy (the defaults when that is `None`).
pub(super) fn from_negotiated(
    negotiated: &Negotiated,
    role: Role,
    config: &Config,
) -> Option<DeflateState> {
    let params = negotiated.deflate?;
    let policy = config.deflate.clone().unwrap_or_default();
    Some(DeflateState::new(params, role, &policy))
}

impl Connection {
    /// Server, RFC 7692 §5: accepts the first permessage-deflate offer the policy can
    /// honour and answers with the parameters in use; no acceptable offer (or no policy):
    /// no compression.
    pub(super) fn answer_deflate_offer(
        &self,
        request: &Request,
        accept: Accept,
    ) -> (Accept, Option<DeflateState>) {
        let Some(policy) = &self.config.deflate else {
            return (accept, None);
        };
        match crate::extensions::deflate::negotiate_server(request.extensions(), policy) {
            Some((params, answer)) => (
                accept.header("Sec-WebSocket-Extensions", answer.to_string()),
                Some(DeflateState::new(params, self.role, policy)),
            ),
            None => (accept, None),
        }
    }

    /// Client, RFC 7692 §5: checks the server's answer against our offer; a bad answer
    /// fails the handshake ("the client MUST _Fail the WebSocket Connection_").
    pub(super) fn take_deflate_answer(
        &mut self,
        response: &Response,
    ) -> Result<(), HandshakeError> {
        let Some(policy) = self.config.deflate.clone() else {
            return Ok(());
        };
        if let Some(params) =
            crate::extensions::deflate::negotiate_client(response.extensions(), &policy)?
        {
            self.deflate = Some(Box::new(DeflateState::new(params, self.role, &policy)));
        }
        Ok(())
    }

    /// Encodes a whole message compressed, when permessage-deflate is negotiated and
    /// compressing pays (`Compressor::compress_message`); false: nothing was encoded.
    pub(super) fn encode_compressed_message(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        let Some(state) = self.deflate.as_mut() else {
            return false;
        };
        if payload.len() > state.max_compress {
            return false;
        }
        let mut out = core::mem::take(&mut state.scratch);
        out.clear();
        let compressed = state.compressor.compress_message(payload, &mut out);
        if compressed {
            self.encode_frame_rsv(opcode, true, RSV1, &out);
        }
        keep_scratch(self.deflate.as_deref_mut(), out);
        compressed
    }

    /// Which of a prepared message's frames this connection sends: the one compressed on
    /// its own, or the uncompressed one.
    ///
    /// The compressed frame was made from an empty window. That is what the client
    /// expects of every message once `server_no_context_takeover` is negotiated
    /// (RFC 7692 §7.1.1.1: the client may reset its window per message), so it fits
    /// there, if the client can hold the window it was compressed with
    /// (`server_max_window_bits`, §7.1.2.1). With context takeover it does not: the
    /// client's decompressor would add the message to its window, while our compressor,
    /// which never saw it, goes on from its own history, so the next message it
    /// compresses could refer back by a distance that in the client's window lands in
    /// the wrong bytes (silently wrong data, or a failed connection). Resetting our
    /// compressor after each prepared message would keep the two in step, but would throw
    /// away the context that shrinks everything else sent on the connection; the
    /// uncompressed frame goes out instead, which §6 allows for any message and which
    /// leaves the client's window as it was (it bypasses the decompressor).
    pub(super) fn prepared_frame<'m>(&self, message: &'m PreparedMessage) -> &'m Bytes {
        let (Some(state), Some(deflated)) = (self.deflate.as_deref(), &message.deflated) else {
            return &message.frame;
        };
        let ours = state.params.outgoing(self.role);
        if ours.no_context_takeover && deflated.window_bits <= ours.max_window_bits {
            &deflated.frame
        } else {
            &message.frame
        }
    }

    /// Encodes one fragment of a compressed message: with permessage-deflate negotiated
    /// every fragmented message is compressed, each fragment sync-flushed so the peer
    /// can inflate it on arrival, RSV1 on the first frame only (RFC 7692 §6). `Ok(false)`:
    /// not compressing, nothing was encoded.
    pub(super) fn encode_compressed_fragment(
        &mut self,
        opcode: OpCode,
        first: bool,
        last: bool,
        data: &[u8],
    ) -> Result<bool, SendError> {
        let Some(state) = self.deflate.as_mut() else {
            return Ok(false);
        };
        if first {
            // Decided once per message, on its first fragment (RSV1 goes on the first
            // frame only, RFC 7692 §6).
            state.sending_compressed = data.len() <= state.max_compress;
        }
        if !state.sending_compressed {
            return Ok(false);
        }
        let mut out = core::mem::take(&mut state.scratch);
        out.clear();
        let compressed = state.compressor.compress_fragment(data, last, &mut out);
        if compressed.is_ok() {
            let rsv = if first { RSV1 } else { 0 };
            self.encode_frame_rsv(opcode, last, rsv, &out);
        }
        keep_scratch(self.deflate.as_deref_mut(), out);
        // A compressor failure cannot be answered with an uncompressed fragment in the
        // middle of a compressed message: the send fails.
        compressed.map_err(|_| SendError::Closed)?;
        Ok(true)
    }

    /// A compressed message's payload (RFC 7692 §7.2.2): the unmasked bytes that arrived
    /// are inflated as they come (bounded by `DeflateConfig::max_inflated_size` and
    /// `max_message_size` in *decompressed* bytes, so a small frame that inflates to
    /// gigabytes fails with 1009 early), and text is
    /// validated on the inflated bytes, fail-fast as for uncompressed messages.
    pub(super) fn read_compressed(
        &mut self,
        frame: RecvFrame,
        message: RecvMessage,
        fresh: usize,
        frame_done: bool,
        message_done: bool,
    ) -> Result<Progress, ProtocolError> {
        if self.inflate_paused() {
            // The bytes are unmasked already: they wait at the front of the receive
            // buffer as held bytes of the frame (which stays current even if complete)
            // and are inflated once the budget allows.
            self.recv.frame = Some(RecvFrame {
                held: frame.held + fresh,
                ..frame
            });
            return Ok(Progress::NeedInput);
        }
        self.recv.frame = if frame_done {
            None
        } else {
            Some(RecvFrame { held: 0, ..frame })
        };
        if message_done {
            self.recv.message = None;
        }
        let input = self.rx.split_to(frame.held + fresh);
        let message_limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        let text = message.kind == MessageKind::Text;
        let Some(state) = self.deflate.as_mut() else {
            return Err(ProtocolError::MisplacedCompressionBit);
        };
        let limit = message_limit.min(state.max_inflated);
        let carried = Carried::of(&self.recv.utf8);
        let mut piece = Vec::new();
        let out = match self.config.delivery {
            Delivery::Whole => &mut state.inflated,
            Delivery::Streaming => &mut piece,
        };
        let before = out.len();
        state
            .decompressor
            .decompress(&input, message_done, out, limit)
            .inspect(|()| {
                if state.inflate_rate.is_some() {
                    let made = i64::try_from(out.len() - before).unwrap_or(i64::MAX);
                    state.inflate_budget = state.inflate_budget.saturating_sub(made);
                }
            })
            .map_err(|e| match e {
                DeflateError::TooBig { limit } if limit < message_limit => {
                    ProtocolError::InflatedTooBig {
                        max: super::wire_len(limit),
                    }
                }
                e => ProtocolError::from(e),
            })?;
        if text {
            self.recv
                .utf8
                .feed(&out[before..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            if message_done {
                self.recv
                    .utf8
                    .finish()
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        match self.config.delivery {
            Delivery::Whole if message_done => {
                let data = Bytes::from(core::mem::take(&mut state.inflated));
                Ok(Progress::Event(data_event(message.kind, data, true)))
            }
            Delivery::Whole => Ok(Progress::Continue),
            Delivery::Streaming => {
                let data = BytesMut::from(Bytes::from(piece));
                Ok(self.streamed_piece(message.kind, data, &carried, message_done))
            }
        }
    }
}

impl Connection {
    /// With `DeflateConfig::max_inflate_rate`: refills the budget for the time passed
    /// since it was last refilled and says whether inflating must wait; if so, the
    /// inflate timer names when the budget is positive again.
    pub(super) fn inflate_paused(&mut self) -> bool {
        let now = self.now;
        let Some(state) = self.deflate.as_mut() else {
            return false;
        };
        let Some(rate) = state.inflate_rate else {
            return false;
        };
        let burst = i64::try_from(rate).unwrap_or(i64::MAX);
        let earned = match state.refilled_at {
            // The first compressed payload starts with a full second's budget.
            None => burst,
            Some(then) => {
                let nanos = now.saturating_duration_since(then).as_nanos();
                let earned = u128::from(rate).saturating_mul(nanos) / 1_000_000_000;
                i64::try_from(earned).unwrap_or(i64::MAX)
            }
        };
        state.inflate_budget = state.inflate_budget.saturating_add(earned).min(burst);
        state.refilled_at = Some(now);
        if state.inflate_budget > 0 {
            self.timers.inflate = super::timers::Timer::Off;
            return false;
        }
        // Until the budget is back above zero, rounded up to a whole nanosecond.
        let missing = u128::from(state.inflate_budget.unsigned_abs()) + 1;
        let nanos = (missing * 1_000_000_000).div_ceil(u128::from(rate.max(1)));
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.timers.inflate = super::timers::Timer::after(now, wait);
        true
    }
}

/// Puts the compressor's output buffer back for the next message, unless a large
/// message made it large.
fn keep_scratch(state: Option<&mut DeflateState>, mut out: Vec<u8>) {
    if let Some(state) = state {
        if out.capacity() > SCRATCH_KEEP {
            out = Vec::new();
        }
        state.scratch = out;
    }
}

impl From<DeflateError> for ProtocolError {
    fn from(e: DeflateError) -> Self {
        match e {
            DeflateError::TooBig { limit } => ProtocolError::MessageTooBig {
                len: super::wire_len(limit).saturating_add(1),
                max: super::wire_len(limit),
            },
            // Corrupt input, and zlib failures valid input cannot cause: the peer sent
            // something that does not decode (RFC 6455 §7.4.1, 1007).
            _ => ProtocolError::InvalidCompressedData,
        }
    }
}
