//! Built without the `deflate` feature: the same functions as `deflate.rs`, doing
//! nothing, so the rest of the connection has no `cfg` of its own. The state cannot
//! exist (an enum without variants), so `Connection::deflate` is always `None`, RSV1 is
//! never allowed, and no message is ever marked compressed.

use bytes::Bytes;

use super::recv::Progress;
use super::{Connection, Negotiated, PreparedMessage, RecvFrame, RecvMessage};
use crate::config::Config;
use crate::error::{HandshakeError, ProtocolError, SendError};
use crate::frame::OpCode;
use crate::handshake::{Accept, ClientRequest, Request, Response};
use crate::role::Role;

/// Whether a message can be compressed at all in this build: no. The receive path tests
/// this before `message.compressed`, so the compiler drops the call to
/// `read_compressed` altogether: with the call in place (never taken), receiving 16-byte
/// messages measured about 15% slower (benches/compare/RESULTS.md, "Measurements behind
/// constants").
pub(super) const NEGOTIABLE: bool = false;

/// RSV1 would be "Per-Message Compressed" (RFC 7692 §6); never allowed here.
pub(crate) const RSV1: u8 = 0x40;

/// No permessage-deflate state can exist without the feature.
#[derive(Debug)]
pub(crate) enum DeflateState {}

/// No deflate buffers exist.
pub(super) fn buffered_bytes(_state: Option<&DeflateState>) -> usize {
    0
}

/// No deflate buffers to give back.
pub(super) fn release_idle_buffers(_state: Option<&mut DeflateState>, _between_messages: bool) {}

/// No offer: the request as it is.
pub(super) fn with_offer(request: ClientRequest, _config: &Config) -> ClientRequest {
    request
}

/// Nothing negotiated can run.
pub(super) fn from_negotiated(
    _negotiated: &Negotiated,
    _role: Role,
    _config: &Config,
) -> Option<DeflateState> {
    None
}

impl Connection {
    /// No answer to an offer: the handshake goes on without compression.
    pub(super) fn answer_deflate_offer(
        &self,
        _request: &Request,
        accept: Accept,
    ) -> (Accept, Option<DeflateState>) {
        (accept, None)
    }

    /// Nothing was offered, so there is nothing to check.
    pub(super) fn take_deflate_answer(
        &mut self,
        _response: &Response,
    ) -> Result<(), HandshakeError> {
        Ok(())
    }

    /// Never compresses.
    pub(super) fn encode_compressed_message(&mut self, _opcode: OpCode, _payload: &[u8]) -> bool {
        false
    }

    /// No compressed frame exists: always the uncompressed one.
    pub(super) fn prepared_frame<'m>(&self, message: &'m PreparedMessage) -> &'m Bytes {
        &message.frame
    }

    /// Never compresses.
    pub(super) fn encode_compressed_fragment(
        &mut self,
        _opcode: OpCode,
        _first: bool,
        _last: bool,
        _data: &[u8],
    ) -> Result<bool, SendError> {
        Ok(false)
    }

    /// Unreachable: the frame decoder refuses RSV1 while nothing is negotiated, so no
    /// message is marked compressed. Answered as that refusal all the same.
    pub(super) fn read_compressed(
        &mut self,
        _frame: RecvFrame,
        _message: RecvMessage,
        _fresh: usize,
        _frame_done: bool,
        _message_done: bool,
    ) -> Result<Progress, ProtocolError> {
        Err(ProtocolError::MisplacedCompressionBit)
    }
}
