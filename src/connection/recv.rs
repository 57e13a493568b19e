//! The receive pipeline: handshake parsing, then frame header -> unmask -> message rules
//! (fragmentation, UTF-8, limits) -> events. It runs lazily inside `poll_event`.

use crate::prelude::*;

use bytes::{Bytes, BytesMut};

use super::state::{Input, Phase};
use super::timers::Timer;
use super::{
    Connection, Event, Handshake, MessageKind, RecvFrame, RecvMessage, Role, Utf8Bytes, deflate,
    wire_len,
};
use crate::Status;
use crate::config::Delivery;
use crate::error::{Error, HandshakeError, ProtocolError};
use crate::frame::{CloseCode, CloseFrame, FrameHeader, OpCode};
use crate::mask::apply_mask;

impl Connection {
    /// The next event, parsing buffered input as needed. `Ok(None)`: nothing more until
    /// new input (`recv`, `recv_eof`, `handle_timeout`) or, for a server, `accept`.
    ///
    /// An `Err` is fatal and sticky (see the type's docs): every later call returns it.
    #[must_use = "events carry messages and errors that must be handled"]
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        // The common case, an open connection: the frame reader's result is returned as
        // it is (a tail call, built where the caller receives it). Rebuilding or even
        // inspecting it here copied the whole result through the stack once more per
        // message, with loads that straddle the stores that wrote it.
        if matches!(self.phase, Phase::Open | Phase::Closing) && self.closed_event.is_none() {
            return self.read_frames();
        }
        self.poll_event_outside_frames()
    }

    /// `poll_event` for everything but the frame reader's common case: the handshake,
    /// the `Closed` event still to report, a sticky error, the terminal phases.
    #[cold]
    fn poll_event_outside_frames(&mut self) -> Result<Option<Event>, Error> {
        if let Some(event) = self.closed_event.take() {
            return Ok(Some(event));
        }
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let event = match self.phase {
            Phase::AwaitingRequest => self.read_request(),
            Phase::AwaitingResponse => self.read_response(),
            Phase::RequestPending => {
                if self.eof {
                    Err(self.fail_handshake(HandshakeError::UnexpectedEof))
                } else {
                    Ok(None)
                }
            }
            Phase::Open | Phase::Closing => self.read_frames(),
            Phase::Closed | Phase::Rejected | Phase::Failed => Ok(None),
        }?;
        match event {
            Some(event) => {
                self.after_event();
                Ok(Some(event))
            }
            None => {
                self.at_rest();
                Ok(self.closed_event.take())
            }
        }
    }

    /// An event is being returned: a large receive buffer that it emptied is given back
    /// (an idle connection holds none).
    #[inline]
    fn after_event(&mut self) {
        if self.rx.is_empty() && self.rx.capacity() > self.recv_limit() {
            self.rx.release();
        }
    }

    /// `poll_event` has used up its input (once per read, not per message): buffers
    /// are given back and the message timer is started or stopped here, off the path
    /// of each message.
    fn at_rest(&mut self) {
        if self.rx.is_empty() && self.rx.capacity() > self.recv_limit() {
            // Give a large receive buffer back at once. One within the limit is kept
            // for the next read (which reclaims it once the application has dropped
            // the events split out of it: no allocation per read) until the connection
            // goes idle (`handle_timeout` gives it back then).
            self.rx.release();
        }
        if self.recv.message.is_none() {
            // Input ran out between messages: the assembly allocation kept for the next
            // message (see `read_data_payload`) is not kept for an idle connection.
            // Whatever its `capacity()` says: after a message was split out of it, the
            // buffer reports no spare room yet still holds the whole allocation, which
            // it would keep alive (and reuse) once the application drops the message.
            if core::mem::take(&mut self.recv.assembly_used) {
                self.recv.assembly.release();
            }
            self.timers.message = Timer::Off;
        } else if !self.timers.message.is_on() && matches!(self.phase, Phase::Open | Phase::Closing)
        {
            // A message has started and input ran out before its end: from now on it
            // has `message_timeout` to complete. A message that arrives whole in one
            // burst never gets here, so the common path never touches the timer.
            self.timers.message = Timer::start(self.config.message_timeout);
        }
    }

    fn read_request(&mut self) -> Result<Option<Event>, Error> {
        let parsed = self.head_scan.parse_request(
            &self.rx,
            self.config.max_handshake_size,
            self.config.max_headers,
            self.eof,
        );
        match parsed {
            Ok(Status::Complete((request, head_len))) => {
                if let Some(allowed) = &self.config.allowed_origins
                    && let Err(e) = allowed.check(&request)
                {
                    return Err(self.fail_handshake(e));
                }
                // Bytes after the head are the client's first frames: keep them.
                self.rx.advance(head_len);
                self.advance(Input::RequestReceived);
                if let Handshake::Server { request: slot } = &mut self.handshake {
                    *slot = Some(Box::new(request.clone()));
                }
                Ok(Some(Event::Request(Box::new(request))))
            }
            Ok(Status::Partial) if self.eof => {
                Err(self.fail_handshake(HandshakeError::UnexpectedEof))
            }
            Ok(Status::Partial) => Ok(None),
            Err(e) => Err(self.fail_handshake(e)),
        }
    }

    fn read_response(&mut self) -> Result<Option<Event>, Error> {
        let Handshake::Client { request, key } = &self.handshake else {
            return Ok(None);
        };
        let parsed = self.head_scan.parse_response(
            &self.rx,
            self.config.max_handshake_size,
            self.config.max_headers,
            key,
            request,
            self.eof,
        );
        match parsed {
            Ok(Status::Complete((response, head_len))) => {
                if let Err(e) = self.take_deflate_answer(&response) {
                    return Err(self.fail_handshake(e));
                }
                self.rx.advance(head_len);
                self.advance(Input::ResponseAccepted);
                Ok(Some(Event::Accepted(Box::new(response))))
            }
            Ok(Status::Partial) => Ok(None),
            Err(e) => Err(self.fail_handshake(e)),
        }
    }

    /// The frames of an open connection: the common frame on its own path, the rest
    /// through the general one; then what `poll_event` does after an event or when
    /// input runs out.
    fn read_frames(&mut self) -> Result<Option<Event>, Error> {
        if self.recv.frame.is_none()
            && self.recv.message.is_none()
            && let Some(frame) = self.whole_frame_in_buffer()
        {
            // A new message: a timer left from the previous one is not this one's.
            self.timers.message = Timer::Off;
            self.rx.advance(frame.header_len);
            let mut payload = self.rx.split_to(frame.payload_len);
            if let Some(key) = frame.key {
                apply_mask(&mut payload, key, 0);
            }
            if frame.kind == MessageKind::Text {
                let mut utf8 = crate::utf8::Utf8Validator::new();
                if utf8.feed(&payload).and_then(|()| utf8.finish()).is_err() {
                    return Err(self.fail_protocol(ProtocolError::InvalidUtf8));
                }
            }
            self.after_event();
            // Built here, in the returned value, from the split-out bytes: moving them
            // through an intermediate enum first cost a copy whose loads straddle the
            // stores that wrote them.
            return Ok(Some(data_event(frame.kind, payload.freeze(), true)));
        }
        match self.read_frames_general() {
            Ok(Some(event)) => {
                self.after_event();
                Ok(Some(event))
            }
            Ok(None) => {
                self.at_rest();
                Ok(self.closed_event.take())
            }
            Err(e) => Err(e),
        }
    }

    /// Every frame the common path does not take: header by header, each checked by
    /// `begin_frame`, payload by payload, control frames, fragments, large frames.
    fn read_frames_general(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let Some(frame) = self.recv.frame else {
                match FrameHeader::decode(&self.rx, self.allowed_rsv()) {
                    Ok(Status::Complete((header, len))) => {
                        self.rx.advance(len);
                        self.begin_frame(header)
                            .map_err(|e| self.fail_protocol(e))?;
                        continue;
                    }
                    Ok(Status::Partial) => return Ok(self.at_end_of_input()),
                    Err(e) => return Err(self.fail_protocol(e)),
                }
            };
            let result = if frame.header.opcode.is_control() {
                self.read_control_frame(frame)
            } else {
                self.read_data_payload(frame)
            };
            match result {
                Ok(Progress::Event(event)) => return Ok(Some(event)),
                Ok(Progress::Continue) => continue,
                Ok(Progress::NeedInput) => return Ok(self.at_end_of_input()),
                Err(e) => return Err(self.fail_protocol(e)),
            }
        }
    }

    /// The common case, one path from header to event: a whole unfragmented text or
    /// binary frame (RSV clear, up to 64 KiB, within the limits, masked as the role
    /// requires) at the front of the receive buffer, with no message in progress. It is
    /// unmasked and validated where it lies and split out as the message (by
    /// `read_frames`). `None`: anything else, which the general path handles (and checks, with the same
    /// outcome for frames taken here: every rule it would apply holds for them).
    #[inline(always)]
    fn whole_frame_in_buffer(&self) -> Option<WholeFrame> {
        let (Some(&b0), Some(&b1)) = (self.rx.first(), self.rx.get(1)) else {
            return None;
        };
        // FIN set, RSV clear, opcode 1 (text) or 2 (binary): §5.2, §5.4.
        let kind = match b0 {
            0x81 => MessageKind::Text,
            0x82 => MessageKind::Binary,
            _ => return None,
        };
        // §5.1: a server takes only masked frames, a client only unmasked ones.
        let masked = b1 & 0x80 != 0;
        if masked != (self.role == Role::Server) {
            return None;
        }
        let (payload_len, ext) = match b1 & 0x7F {
            126 => match self.rx.get(2..4) {
                Some(&[hi, lo]) => (usize::from(u16::from_be_bytes([hi, lo])), 2),
                _ => return None,
            },
            127 => return None,
            len7 => (usize::from(len7), 0),
        };
        let key_at = 2 + ext;
        let header_len = key_at + if masked { 4 } else { 0 };
        // The 16-bit form must be minimal (at least 126): the decoder's error otherwise.
        if (ext == 2 && payload_len < 126)
            || self.rx.len() < header_len + payload_len
            || wire_len(payload_len) > self.config.max_frame_size
            || wire_len(payload_len) > self.config.max_message_size
        {
            return None;
        }
        let key = match self.rx.get(key_at..header_len) {
            Some(&[a, b, c, d]) => Some([a, b, c, d]),
            _ => None,
        };
        Some(WholeFrame {
            kind,
            header_len,
            payload_len,
            key,
        })
    }

    /// All buffered input is used up: if the peer has ended the stream, the connection
    /// ends without a Close frame (RFC 6455 §7.1.5: close code 1006).
    fn at_end_of_input(&mut self) -> Option<Event> {
        // Paused by the inflation rate limit, input is left: not the end of it.
        if self.eof && !self.timers.inflate.is_on() {
            self.abort();
            self.closed_event.take()
        } else {
            None
        }
    }

    /// Checks a new frame header against the role and the message rules.
    fn begin_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        // §5.1: "The server MUST close the connection upon receiving a frame that is not
        // masked" and "A client MUST close a connection if it detects a masked frame".
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > self.config.max_frame_size {
            return Err(ProtocolError::FrameTooBig {
                len: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        let kind = match header.opcode {
            OpCode::Text => Some(MessageKind::Text),
            OpCode::Binary => Some(MessageKind::Binary),
            _ => None,
        };
        // RFC 7692 §6: RSV1 (allowed by the decoder only once permessage-deflate is
        // negotiated) marks the first frame of a compressed message. "An endpoint MUST
        // NOT set the "Per-Message Compressed" bit of control frames and non-first
        // fragments of a data message."
        let compressed = header.rsv & 0x40 != 0;
        if compressed && kind.is_none() {
            return Err(ProtocolError::MisplacedCompressionBit);
        }
        match (header.opcode, &mut self.recv.message, kind) {
            (op, _, _) if op.is_control() => {}
            // §5.4: "a fragmented message consists of a single frame with the FIN bit
            // clear and an opcode other than 0, followed by zero or more frames with the
            // FIN bit clear and the opcode set to 0".
            (OpCode::Continuation, None, _) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(message), _) => {
                message.fragments = message.fragments.saturating_add(1);
                if message.fragments > self.config.max_fragments {
                    return Err(ProtocolError::TooManyFragments(self.config.max_fragments));
                }
                message.len = add_len(
                    message.len,
                    header.payload_len,
                    self.config.max_message_size,
                )?;
            }
            (_, Some(_), Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (_, None, Some(kind)) => {
                let len = add_len(0, header.payload_len, self.config.max_message_size)?;
                // A new message: the previous one's timer (if any) is not this one's.
                self.timers.message = Timer::Off;
                self.recv.message = Some(RecvMessage {
                    kind,
                    len,
                    fragments: 1,
                    compressed,
                });
                self.recv.utf8 = crate::utf8::Utf8Validator::new();
            }
            (_, _, None) => return Err(ProtocolError::ReservedOpcode(header.opcode.bits())),
        }
        self.recv.frame = Some(RecvFrame {
            header,
            remaining: header.payload_len,
            mask_phase: 0,
            held: 0,
        });
        Ok(())
    }

    fn read_control_frame(&mut self, frame: RecvFrame) -> Result<Progress, ProtocolError> {
        // Control payloads are at most 125 bytes (checked by the decoder), and the
        // receive buffer always has room for them: wait for the whole payload.
        let len = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
        if self.rx.len() < len {
            return Ok(Progress::NeedInput);
        }
        self.recv.frame = None;
        let mut payload = self.rx.split_to(len);
        if let Some(key) = frame.header.mask {
            apply_mask(&mut payload, key, 0);
        }
        let payload = payload.freeze();
        Ok(match frame.header.opcode {
            OpCode::Ping => {
                if self.config.auto_pong && self.phase == Phase::Open {
                    self.queue_auto_pong(payload.clone());
                }
                Progress::Event(Event::Ping(payload))
            }
            OpCode::Pong => Progress::Event(Event::Pong(payload)),
            _ => Progress::Event(self.on_peer_close(&payload)?),
        })
    }

    /// RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously
    /// send a Close frame, the endpoint MUST send a Close frame in response. (When
    /// sending a Close frame in response, the endpoint typically echos the status code
    /// it received.)"
    fn on_peer_close(&mut self, payload: &[u8]) -> Result<Event, ProtocolError> {
        let frame = CloseFrame::parse(payload)?;
        if self.phase == Phase::Open {
            let echo = frame.as_ref().map(|f| CloseFrame {
                code: f.code,
                reason: String::new(),
            });
            self.queue_close(echo.as_ref());
        }
        self.advance(Input::PeerClose);
        let code = frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code);
        self.closed_event = Some(Event::Closed { code, clean: true });
        Ok(Event::Close(frame))
    }

    /// Unmasks and validates the payload bytes that have arrived, and hands them on as
    /// the delivery mode says.
    fn read_data_payload(&mut self, mut frame: RecvFrame) -> Result<Progress, ProtocolError> {
        let fresh = (self.rx.len() - frame.held)
            .min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
        let frame_done = u64::try_from(fresh).is_ok_and(|n| n == frame.remaining);
        if fresh == 0 && !frame_done {
            return Ok(Progress::NeedInput);
        }
        let Some(message) = self.recv.message else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let text = message.kind == MessageKind::Text;
        let range = frame.held..frame.held + fresh;
        let carried = Carried::of(&self.recv.utf8);
        // Compressed text is validated after inflating, not on the wire bytes.
        match (frame.header.mask, text && !message.compressed) {
            (Some(key), true) => {
                // One pass while the bytes are hot: unmask a cache-sized block, validate
                // it, go on (§8.1: fail as soon as an invalid byte is seen, even
                // mid-frame).
                for block in self.rx[range].chunks_mut(FUSED_BLOCK) {
                    unmask_and_validate(
                        block,
                        Some(key),
                        &mut frame.mask_phase,
                        Some(&mut self.recv.utf8),
                    )?;
                }
            }
            (Some(key), false) => {
                frame.mask_phase = apply_mask(&mut self.rx[range], key, frame.mask_phase);
            }
            (None, true) => {
                self.recv
                    .utf8
                    .feed(&self.rx[range])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            (None, false) => {}
        }
        frame.remaining -= wire_len(fresh);
        let message_done = frame_done && frame.header.fin;
        if deflate::NEGOTIABLE && message.compressed {
            return self.read_compressed(frame, message, fresh, frame_done, message_done);
        }
        if message_done && text {
            self.recv
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        let ready = frame.held + fresh;
        if frame_done {
            self.recv.frame = None;
        }
        if message_done {
            self.recv.message = None;
        }

        match self.config.delivery {
            Delivery::Whole => {
                if self.goes_to_receive_buffer(&frame.header) {
                    // Keep the bytes in the receive buffer until the frame is complete,
                    // then split them out without copying.
                    if !message_done {
                        frame.held = ready;
                        self.recv.frame = Some(frame);
                        return Ok(Progress::NeedInput);
                    }
                    let data = self.rx.split_to(ready).freeze();
                    return Ok(Progress::Event(data_event(message.kind, data, true)));
                }
                self.reserve_assembly(wire_len(ready) + frame.remaining, ready);
                self.recv.assembly.push(&self.rx[..ready]);
                self.rx.advance(ready);
                if !frame_done {
                    frame.held = 0;
                    self.recv.frame = Some(frame);
                }
                if message_done {
                    let assembly = &mut self.recv.assembly;
                    let data = if assembly.capacity() > 2 * assembly.len() + 4096 {
                        // Reserved for a bigger message than this one: do not hand the
                        // application a mostly empty allocation.
                        let data = Bytes::copy_from_slice(&assembly[..]);
                        assembly.clear();
                        data
                    } else {
                        // Split, not take: the assembly buffer keeps a handle on the
                        // allocation, so once the application has dropped this message
                        // the next one reuses it (`reserve` reclaims a buffer it owns
                        // alone) instead of allocating and page-faulting in a fresh one.
                        // `poll_event` gives it back when input runs out between
                        // messages, so an idle connection holds none.
                        assembly.split().freeze()
                    };
                    self.recv.last_assembled = data.len();
                    return Ok(Progress::Event(data_event(message.kind, data, true)));
                }
                Ok(Progress::Continue)
            }
            Delivery::Streaming => {
                if !frame_done {
                    self.recv.frame = Some(RecvFrame { held: 0, ..frame });
                }
                let data = self.rx.split_to(ready);
                Ok(self.streamed_piece(message.kind, data, &carried, message_done))
            }
        }
    }
}

impl Connection {
    /// How many bytes `recv` would copy straight into the message being assembled: the
    /// rest of the current frame's payload when that frame goes to the assembly buffer
    /// anyway (whole-message delivery, uncompressed, not a one-frame message that fits
    /// the receive buffer, which is split out of it without a copy instead) and nothing
    /// of it waits in the receive buffer.
    pub(super) fn direct_payload_len(&self) -> usize {
        let Some(frame) = self.recv.frame else {
            return 0;
        };
        let direct = matches!(self.phase, Phase::Open | Phase::Closing)
            && self.error.is_none()
            && self.config.delivery == Delivery::Whole
            && self.rx.is_empty()
            && frame.held == 0
            && !frame.header.opcode.is_control()
            && self.recv.message.is_some_and(|m| !m.compressed)
            && !self.goes_to_receive_buffer(&frame.header);
        if direct {
            usize::try_from(frame.remaining).unwrap_or(usize::MAX)
        } else {
            0
        }
    }

    /// While a one-frame message that fits is partly in the receive buffer (and nothing
    /// after it), the bytes still missing from it. `recv` takes no more than that: the
    /// frame completes and is split out, the buffer empties, and the next read starts
    /// at its front. Taking a whole read instead would leave the start of the next
    /// frame in the buffer to be moved to the front on every read (what reads sized
    /// to the frame, as pull-based peers do, avoid).
    pub(super) fn held_frame_rest(&self) -> Option<usize> {
        let frame = self.recv.frame?;
        if frame.header.opcode.is_control()
            || self.config.delivery != Delivery::Whole
            || !self.goes_to_receive_buffer(&frame.header)
        {
            return None;
        }
        let unread = self.rx.len().checked_sub(frame.held)?;
        let rest = usize::try_from(frame.remaining).ok()?.checked_sub(unread)?;
        (rest > 0).then_some(rest)
    }

    /// A one-frame message that fits the receive buffer, with no message being
    /// assembled: it stays in the receive buffer and is split out of it.
    fn goes_to_receive_buffer(&self, header: &FrameHeader) -> bool {
        let single_frame = header.opcode != OpCode::Continuation && header.fin;
        let fits = header.payload_len <= wire_len(self.config.recv_limit());
        single_frame && fits && self.recv.assembly.is_empty()
    }

    /// The direct path of `recv`: copies, unmasks and validates the payload of the
    /// current frame from `data` into the assembly buffer, one cache-sized block at a
    /// time. Returns the bytes taken. A frame finished here is reported by `poll_event`
    /// (`read_data_payload` sees it complete with nothing left to read); invalid UTF-8
    /// fails the connection here, and `poll_event` returns the error.
    pub(super) fn recv_direct(&mut self, data: &[u8]) -> usize {
        let take = self.direct_payload_len().min(data.len());
        let (Some(mut frame), Some(message)) = (self.recv.frame, self.recv.message) else {
            return 0;
        };
        if take == 0 {
            return 0;
        }
        self.activity = true;
        self.reserve_assembly(frame.remaining, take);
        let text = message.kind == MessageKind::Text;
        for block in data[..take].chunks(FUSED_BLOCK) {
            let start = self.recv.assembly.len();
            self.recv.assembly.push(block);
            let block = &mut self.recv.assembly[start..];
            let utf8 = text.then_some(&mut self.recv.utf8);
            if let Err(e) =
                unmask_and_validate(block, frame.header.mask, &mut frame.mask_phase, utf8)
            {
                self.recv.frame = None;
                let _ = self.fail_protocol(e);
                return take;
            }
        }
        frame.remaining -= wire_len(take);
        self.recv.frame = Some(frame);
        take
    }
}

impl Connection {
    /// `recv_buf` while a message is being assembled from a frame larger than the
    /// receive buffer (what `recv` copies straight into the message): the room is the
    /// message's own buffer, up to the rest of the frame, so the transport's read lands
    /// where the message is assembled and nothing is copied. Makes that room and
    /// returns its limit; `None`: no such frame.
    pub(super) fn prepare_message_room(&mut self) -> Option<usize> {
        let direct = self.direct_payload_len();
        let frame = self.recv.frame?;
        if direct == 0 {
            return None;
        }
        self.reserve_assembly(frame.remaining, 0);
        Some(direct)
    }

    /// `commit_recv` after `prepare_message_room`: the `n` bytes read into the message are
    /// unmasked and validated in place, one cache-sized block at a time, as
    /// `recv_direct` does after its copy.
    pub(super) fn commit_message_room(&mut self, n: usize) {
        let (Some(mut frame), Some(message)) = (self.recv.frame, self.recv.message) else {
            panic!("commit_recv: the connection changed since recv_buf");
        };
        assert!(
            wire_len(n) <= frame.remaining,
            "commit_recv: the connection changed since recv_buf"
        );
        let start = self.recv.assembly.len();
        self.recv.assembly.commit(n);
        if n == 0 {
            return;
        }
        self.activity = true;
        let text = message.kind == MessageKind::Text;
        for block in self.recv.assembly[start..].chunks_mut(FUSED_BLOCK) {
            let utf8 = text.then_some(&mut self.recv.utf8);
            if let Err(e) =
                unmask_and_validate(block, frame.header.mask, &mut frame.mask_phase, utf8)
            {
                self.recv.frame = None;
                let _ = self.fail_protocol(e);
                return;
            }
        }
        frame.remaining -= wire_len(n);
        self.recv.frame = Some(frame);
    }
}

/// One block of payload: unmasked in place (RFC 6455 §5.3) and, for text, fed to the
/// streaming validator while it is still in cache (§8.1: fail at the first invalid byte).
fn unmask_and_validate(
    block: &mut [u8],
    mask: Option<[u8; 4]>,
    phase: &mut usize,
    utf8: Option<&mut crate::utf8::Utf8Validator>,
) -> Result<(), ProtocolError> {
    if let Some(key) = mask {
        *phase = apply_mask(block, key, *phase);
    }
    match utf8 {
        Some(validator) => validator
            .feed(block)
            .map_err(|_| ProtocolError::InvalidUtf8),
        None => Ok(()),
    }
}

/// Text payload is unmasked and validated in blocks of this size, so each block is
/// validated while it is still in L1 (32 KiB per core on this project's machine image):
/// one pass over the data instead of two, which measured faster for large text and the
/// same up to 16 KiB (benches/compare/RESULTS.md, "Measurements behind constants").
const FUSED_BLOCK: usize = 16 << 10;

/// The assembly buffer is never reserved more than this far beyond the bytes that have
/// actually arrived, so a peer that announces a large frame and stalls makes the
/// connection hold at most this much extra.
const ASSEMBLY_AHEAD: u64 = 1 << 20;

impl Connection {
    /// Makes room in the assembly buffer for `frame_rest` more bytes of the current frame
    /// (the `in_hand` bytes that have arrived and those announced), in one allocation
    /// where possible: enough for this frame, or for a message as large as the previous
    /// one (fragmented messages do
    /// not announce their total), but never more than [`ASSEMBLY_AHEAD`] beyond what has
    /// arrived. Growth past that doubles, as `Vec` does.
    fn reserve_assembly(&mut self, frame_rest: u64, in_hand: usize) {
        self.recv.assembly_used = true;
        let assembly = &mut self.recv.assembly;
        let have = wire_len(assembly.len());
        let in_hand = wire_len(in_hand).min(frame_rest);
        let wanted = (have + frame_rest).max(wire_len(self.recv.last_assembled));
        let target = wanted
            .min(have + in_hand + ASSEMBLY_AHEAD)
            .min(self.config.max_message_size);
        let spare = wire_len(assembly.capacity() - assembly.len());
        if have + spare < target {
            assembly.reserve(usize::try_from(target - have).unwrap_or(usize::MAX));
        }
    }
}

impl Connection {
    /// Streaming delivery: the event for one piece of a message (compressed or not), text
    /// cut at code point boundaries so each piece is valid UTF-8 on its own. `carried`
    /// is what the validator held back before this piece was fed to it. An empty piece
    /// that does not end the message is no event.
    pub(super) fn streamed_piece(
        &self,
        kind: MessageKind,
        mut data: BytesMut,
        carried: &Carried,
        last: bool,
    ) -> Progress {
        if kind == MessageKind::Text {
            let tail = self.recv.utf8.carried().len();
            data = cut_text_piece(data, carried.as_slice(), tail);
        }
        if data.is_empty() && !last {
            return Progress::Continue;
        }
        Progress::Event(data_event(kind, data.freeze(), last))
    }
}

/// The common frame at the front of the receive buffer (`whole_frame_in_buffer`):
/// plain numbers, so nothing but the payload's own handle moves on the way to the event.
#[derive(Clone, Copy)]
struct WholeFrame {
    kind: MessageKind,
    header_len: usize,
    payload_len: usize,
    key: Option<[u8; 4]>,
}

/// The bytes of an unfinished code point the UTF-8 validator held back at the end of the
/// previous piece (at most 3), copied before the next piece is fed to it.
pub(super) struct Carried {
    bytes: [u8; 4],
    len: usize,
}

impl Carried {
    pub(super) fn of(validator: &crate::utf8::Utf8Validator) -> Self {
        let held = validator.carried();
        let mut bytes = [0u8; 4];
        bytes[..held.len()].copy_from_slice(held);
        Self {
            bytes,
            len: held.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Cuts a streamed text piece at a code point boundary. `carried` are the bytes of a code
/// point the previous piece ended in the middle of (held back then), `tail` how many
/// bytes at the end of `data` start a code point the next piece must finish (held back
/// now, in the validator).
fn cut_text_piece(mut data: BytesMut, carried: &[u8], tail: usize) -> BytesMut {
    let keep = (carried.len() + data.len()).saturating_sub(tail);
    if !carried.is_empty() && keep > 0 {
        let mut joined = BytesMut::with_capacity(keep);
        joined.extend_from_slice(carried);
        joined.extend_from_slice(&data[..keep - carried.len()]);
        joined
    } else {
        data.truncate(keep);
        data
    }
}

/// What handling the current frame produced.
pub(super) enum Progress {
    Event(Event),
    /// Made progress; look at the buffer again.
    Continue,
    /// The buffer holds no more usable bytes (or, with an inflation rate limit,
    /// compressed payload waits for the budget to refill: the inflate timer runs).
    NeedInput,
}

pub(super) fn data_event(kind: MessageKind, data: Bytes, last: bool) -> Event {
    match kind {
        MessageKind::Text => Event::Text {
            data: Utf8Bytes::new_validated(data),
            last,
        },
        MessageKind::Binary => Event::Binary { data, last },
    }
}

/// Adds a frame's length to its message's, enforcing the message size limit as soon as
/// the header announces the excess (before any of its payload is buffered).
fn add_len(so_far: u64, frame: u64, max: u64) -> Result<u64, ProtocolError> {
    match so_far.checked_add(frame) {
        Some(len) if len <= max => Ok(len),
        Some(len) => Err(ProtocolError::MessageTooBig { len, max }),
        None => Err(ProtocolError::MessageTooBig { len: u64::MAX, max }),
    }
}
