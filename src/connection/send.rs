//! The send path: the server's handshake answer, frame encoding (masked for clients),
//! the bounded transmit buffer, and the automatic Pong and Close replies.

use crate::prelude::*;

use core::fmt;

use bytes::Bytes;

use super::state::{Command, Input};
use super::{
    Connection, Handshake, MAX_UNWRITTEN_PONGS, MessageKind, PreparedMessage, Role, wire_len,
};
use crate::error::SendError;
use crate::frame::{
    CloseCode, CloseFrame, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode,
};
use crate::handshake::{Accept, Reject};
use crate::mask::apply_mask;
use crate::message::Message;

/// A client copies and masks its payload in blocks of this size (each block is masked
/// while still in L1).
const MASK_BLOCK: usize = 16 << 10;

/// A server queues owned payloads (and prepared frames) of at least this size as their
/// own transmit segment; smaller ones are cheaper to copy than to write as a separate
/// `iovec`.
const ZERO_COPY_MIN: usize = 4 << 10;

/// RFC 6455 §5.5: a Close body is a 2-byte code plus a reason, within 125 bytes.
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// A Close frame body being formatted (`queue_close_with`): the code, then as much of
/// the reason as fits in the 125 bytes of a control frame (RFC 6455 §5.5), cut on a
/// character boundary so that it stays UTF-8 (§5.5.1; a peer fails a Close with an
/// invalid reason with 1007).
pub(super) struct CloseBody {
    buf: [u8; MAX_CONTROL_PAYLOAD],
    len: usize,
    /// A piece did not fit: later, shorter pieces are not appended after the cut.
    cut: bool,
}

impl CloseBody {
    pub(super) fn new() -> Self {
        Self {
            buf: [0u8; MAX_CONTROL_PAYLOAD],
            len: 0,
            cut: false,
        }
    }

    /// The body so far.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for CloseBody {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        let mut n = s.len().min(self.buf.len() - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.cut = n < s.len();
        Ok(())
    }
}

impl Connection {
    /// Server: accepts the request reported by [`Event::Request`](super::Event::Request),
    /// queuing the `101 Switching Protocols` response (RFC 6455 §4.2.2). Frames that
    /// arrived after the request are processed from the next `poll_event` on.
    pub fn accept(&mut self, accept: Accept) -> Result<(), SendError> {
        self.phase.permits(Command::Accept)?;
        let Handshake::Server {
            request: Some(request),
        } = &self.handshake
        else {
            return Err(SendError::NoPendingRequest);
        };
        let (accept, deflate) = self.answer_deflate_offer(request, accept);
        let mut head = Vec::new();
        crate::handshake::write_accept(request, &accept, &mut head)?;
        self.tx.extend_from_slice(&head);
        self.handshake = Handshake::Server { request: None };
        self.transition(Input::Accept).map_err(|v| v.send_error())?;
        self.deflate = deflate.map(Box::new);
        Ok(())
    }

    /// Server: rejects the request with an HTTP response (status, headers, body). The
    /// connection is over once the response is transmitted.
    pub fn reject(&mut self, reject: Reject) -> Result<(), SendError> {
        self.phase.permits(Command::Reject)?;
        let mut head = Vec::new();
        crate::handshake::write_reject(&reject, &mut head)?;
        self.tx.extend_from_slice(&head);
        self.handshake = Handshake::Server { request: None };
        self.transition(Input::Reject).map_err(|v| v.send_error())
    }

    /// Queues a text message in one frame (compressed when permessage-deflate is
    /// negotiated and the message is long enough, see `DeflateConfig::min_compress_size`).
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.check_data_send(true)?;
        self.encode_message(OpCode::Text, text.as_bytes(), true);
        Ok(())
    }

    /// Queues a binary message in one frame (compressed as [`send_text`](Self::send_text)
    /// says).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.check_data_send(true)?;
        self.encode_message(OpCode::Binary, data, true);
        Ok(())
    }

    /// Queues a message in one frame that is never compressed, even with
    /// permessage-deflate negotiated: the per-message opt-out for data that is already
    /// compressed or must not share a compression context with other data (secrets next
    /// to attacker-controlled text: CRIME/BREACH-style attacks).
    pub fn send_uncompressed(&mut self, kind: MessageKind, data: &[u8]) -> Result<(), SendError> {
        self.check_data_send(true)?;
        let opcode = match kind {
            MessageKind::Text => {
                core::str::from_utf8(data).map_err(|_| SendError::InvalidUtf8)?;
                OpCode::Text
            }
            MessageKind::Binary => OpCode::Binary,
        };
        self.encode_message(opcode, data, false);
        Ok(())
    }

    /// Queues `message`, taking ownership of its payload (RFC 6455 §5.6, §5.5):
    ///
    /// - `Text` and `Binary`: one frame each (compressed as [`send_text`](Self::send_text)
    ///   says). A server sends a large payload without copying it, as its own segment of
    ///   [`poll_transmit_vectored`](Self::poll_transmit_vectored); a client must mask, so
    ///   it copies. An echo server passes a received payload straight back.
    /// - `Ping` and `Pong` (unsolicited, §5.5.3: "This serves as a unidirectional
    ///   heartbeat."): payload at most 125 bytes.
    /// - `Close`: starts the closing handshake as [`close`](Self::close) does; `None`
    ///   sends 1000 (Normal Closure).
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => {
                self.check_data_send(true)?;
                self.encode_owned(OpCode::Text, text.into_bytes());
                Ok(())
            }
            Message::Binary(data) => {
                self.check_data_send(true)?;
                self.encode_owned(OpCode::Binary, data);
                Ok(())
            }
            Message::Ping(payload) => self.send_control(OpCode::Ping, &payload),
            Message::Pong(payload) => self.send_control(OpCode::Pong, &payload),
            Message::Close(None) => self.close(CloseCode::NORMAL, ""),
            Message::Close(Some(frame)) => self.close(frame.code, &frame.reason),
        }
    }

    /// Server: queues a message encoded once for many connections (fan-out), sharing
    /// its bytes: a frame of at least 4 KiB becomes its own segment of
    /// [`poll_transmit_vectored`](Self::poll_transmit_vectored) (a reference count, no
    /// copy); a smaller one is copied behind the frames already queued, which costs less
    /// than one more `iovec` per write and keeps a run of small frames contiguous.
    ///
    /// The same rules as [`send_text`](Self::send_text) apply (an open connection, no
    /// fragmented send in progress, room in the send buffer). With permessage-deflate
    /// negotiated, the frame [`PreparedMessage::with_deflate`] compressed goes out when
    /// the connection can inflate it (`server_no_context_takeover` negotiated, and a
    /// `server_max_window_bits` at least the window it was compressed with), the
    /// uncompressed frame otherwise (RFC 7692 §6 lets any message go uncompressed); the
    /// connection's own compressor is never involved.
    ///
    /// A client connection refuses it ([`SendError::ClientMustMask`]): RFC 6455 §5.3,
    /// "a client MUST mask all frames that it sends to the server", each with a fresh
    /// key, so there are no bytes to share; use [`send`](Self::send).
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), SendError> {
        if self.role == Role::Client {
            return Err(SendError::ClientMustMask);
        }
        self.check_data_send(true)?;
        let frame = self.prepared_frame(message);
        if frame.len() < ZERO_COPY_MIN {
            let tail = self.tx.tail();
            let before = tail.len();
            super::append(tail, frame);
            self.tx.appended(before);
        } else {
            self.tx.push_bytes(frame.clone());
        }
        Ok(())
    }

    /// Queues one fragment of a message (RFC 6455 §5.4). The first call starts a message
    /// of `kind`; later calls continue it (same `kind`) until one passes `last: true`.
    /// Text fragments may split code points, but the whole message must be valid UTF-8:
    /// it is checked as it goes, and a fragment that breaks it is refused
    /// (`SendError::InvalidUtf8`) without being queued.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        last: bool,
    ) -> Result<(), SendError> {
        let first = match self.send_message {
            None => true,
            Some(k) if k == kind => false,
            Some(_) => return Err(SendError::MessageInProgress),
        };
        self.check_data_send(first)?;
        if kind == MessageKind::Text {
            let mut validator = if first {
                Default::default()
            } else {
                self.send_utf8.clone()
            };
            validator.feed(data).map_err(|_| SendError::InvalidUtf8)?;
            if last {
                validator.finish().map_err(|_| SendError::InvalidUtf8)?;
            }
            self.send_utf8 = validator;
        }
        let opcode = match (first, kind) {
            (false, _) => OpCode::Continuation,
            (true, MessageKind::Text) => OpCode::Text,
            (true, MessageKind::Binary) => OpCode::Binary,
        };
        if !self.encode_compressed_fragment(opcode, first, last, data)? {
            self.encode_frame(opcode, last, data);
        }
        self.send_message = if last { None } else { Some(kind) };
        Ok(())
    }

    /// A Ping or an unsolicited Pong.
    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.check_control_send(payload)?;
        self.encode_frame(opcode, true, payload);
        Ok(())
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2): queues a Close frame with `code`
    /// and `reason` (at most 123 bytes). No data may be sent afterwards; received data
    /// is still delivered until the peer's Close arrives or the close timeout expires.
    /// A Close is accepted even when the send buffer is full.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        // §7.4: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close
        // control frame by an endpoint"; unassigned codes are refused too.
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::CloseReasonTooLong);
        }
        self.phase.permits(Command::Close)?;
        self.queue_close(Some(&CloseFrame {
            code,
            reason: reason.to_owned(),
        }));
        self.transition(Input::LocalClose)
            .map_err(|v| v.send_error())
    }

    fn check_data_send(&self, first: bool) -> Result<(), SendError> {
        self.phase.permits(Command::SendData)?;
        if first && self.send_message.is_some() {
            return Err(SendError::MessageInProgress);
        }
        self.check_room()
    }

    fn check_control_send(&self, payload: &[u8]) -> Result<(), SendError> {
        self.phase.permits(Command::SendControl)?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        self.check_room()
    }

    /// The send buffer is a high-water mark: a send is accepted while less than
    /// `max_send_buffer` bytes wait, so a message larger than the limit can still go
    /// out on its own, and a peer that does not read stops the application quickly.
    fn check_room(&self) -> Result<(), SendError> {
        if self.is_send_blocked() {
            Err(SendError::Blocked)
        } else {
            Ok(())
        }
    }

    /// Encodes one frame into the transmit buffer; a client masks it with a fresh key,
    /// copying and masking in cache-sized blocks so each block is masked while hot.
    fn encode_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.encode_frame_rsv(opcode, fin, 0, payload);
    }

    /// Encodes a whole message, compressed when permessage-deflate is negotiated,
    /// `compress` allows it, and compressing pays (`Compressor::compress_message`).
    fn encode_message(&mut self, opcode: OpCode, payload: &[u8], compress: bool) {
        if compress && self.encode_compressed_message(opcode, payload) {
            return;
        }
        self.encode_frame(opcode, true, payload);
    }

    pub(super) fn encode_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = self.mask_key();
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: wire_len(payload.len()),
        };
        let tail = self.tx.tail();
        let before = tail.len();
        tail.reserve(MAX_HEADER_LEN + payload.len());
        header.put(tail);
        match mask {
            None => super::append(tail, payload),
            Some(key) => {
                let mut phase = 0;
                for block in payload.chunks(MASK_BLOCK) {
                    let start = tail.len();
                    super::append(tail, block);
                    phase = apply_mask(&mut tail[start..], key, phase);
                }
            }
        }
        self.tx.appended(before);
    }

    /// Encodes a frame whose payload the caller owns: a server (no masking) queues a
    /// large payload as its own transmit segment instead of copying it.
    fn encode_owned(&mut self, opcode: OpCode, payload: Bytes) {
        if self.role == Role::Client || payload.len() < ZERO_COPY_MIN || self.deflate.is_some() {
            self.encode_message(opcode, &payload, true);
            return;
        }
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: wire_len(payload.len()),
        };
        let tail = self.tx.tail();
        let before = tail.len();
        header.put(tail);
        self.tx.appended(before);
        self.tx.push_bytes(payload);
    }

    /// Queues our Close frame (`None`: an empty body), once: RFC 6455 §5.5.1, "after
    /// sending a Close frame, the endpoint MUST NOT send any further data frames", and
    /// a second Close is not a reply to anything. Every automatic Close (the echo of
    /// the peer's, a protocol error, a message timeout) and the application's go
    /// through here, so whatever the order of events at most one is ever queued.
    /// Nothing may follow it, so a Pong still waiting (the answer to the latest Ping,
    /// received before any Close) goes out first, whatever the send buffer holds: it is
    /// one frame of at most 127 bytes.
    pub(super) fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        self.queue_close_with(frame.map(|f| (f.code, &f.reason as &dyn fmt::Display)));
    }

    /// [`queue_close`](Self::queue_close) with the reason given as text to format: the
    /// automatic Closes of a failed connection say why (RFC 6455 §5.5.1: the body "MAY
    /// contain UTF-8-encoded data ... [that] may be useful for debugging"), e.g.
    /// "message of 2048+ bytes (max 1024)" with 1009, without allocating: the text is
    /// formatted straight into the frame body, cut at 123 bytes on a character boundary.
    pub(super) fn queue_close_with(&mut self, frame: Option<(CloseCode, &dyn fmt::Display)>) {
        if self.close_queued {
            return;
        }
        self.close_queued = true;
        if let Some(payload) = self.pending_pong.take() {
            self.encode_frame(OpCode::Pong, true, &payload);
        }
        let mut body = CloseBody::new();
        if let Some((code, reason)) = frame {
            body.buf[..2].copy_from_slice(&code.0.to_be_bytes());
            body.len = 2;
            // `CloseBody` never fails; a Display impl that does leaves what it wrote,
            // which is still valid UTF-8.
            let _ = fmt::write(&mut body, format_args!("{reason}"));
        }
        self.encode_frame(OpCode::Close, true, body.bytes());
    }

    /// RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
    /// frame in response, unless it already received a Close frame." §5.5.3: "If an
    /// endpoint receives a Ping frame and has not yet sent Pong frame(s) in response to
    /// previous Ping frame(s), the endpoint MAY elect to send a Pong frame for only the
    /// most recently processed Ping frame." A burst of Pings read together gets a Pong
    /// each (what peers expect, Autobahn's case 2.10 among them), up to
    /// `MAX_UNWRITTEN_PONGS` waiting unwritten; past that, a newer Ping's payload
    /// replaces the one in `pending_pong`, which is encoded once those Pongs have been
    /// written. A ping flood from a peer that does not read costs at most that many Pong
    /// frames and one payload (about 2 KiB), whatever the send buffer holds.
    pub(super) fn queue_auto_pong(&mut self, payload: Bytes) {
        self.pending_pong = Some(payload);
        self.flush_pending_pong();
    }

    pub(super) fn flush_pending_pong(&mut self) {
        // Checked before `take` (which rewrites the slot): every poll_transmit calls this.
        if self.pending_pong.is_some()
            && self.pongs_unwritten < MAX_UNWRITTEN_PONGS
            && !self.is_send_blocked()
            && let Some(payload) = self.pending_pong.take()
        {
            self.encode_frame(OpCode::Pong, true, &payload);
            self.pong_unsent = self.tx.len();
            self.pongs_unwritten += 1;
        }
    }

    /// Keepalive Ping: tiny and exempt from the send limit, since it exists to find out
    /// whether a peer that stopped reading is still there. A new one is queued only once
    /// the previous one has been written: a peer that sends but never reads would
    /// otherwise make them pile up without bound (fuzz: connection_server).
    pub(super) fn send_keepalive_ping(&mut self) {
        if self.keepalive_unsent > 0 {
            return;
        }
        self.encode_frame(OpCode::Ping, true, b"wsengine-keepalive");
        self.keepalive_unsent = self.tx.len();
    }
}
