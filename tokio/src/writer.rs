//! [`WebSocketWriter`], the sending half: a message goes into the core when a send is
//! called if the core has room for it, otherwise the send waits for room (holding the
//! message) and then hands it over; from then on the futures and the [`Sink`] only wait
//! for the bytes to be written, or for the end of the connection, which ends them with
//! an error. `try_send` and `try_send_prepared` hand a message over at once or give it
//! back, and wait for nothing.

use core::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ::tokio::io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use wsengine::frame::CloseFrame;
use wsengine::{Connection, PreparedMessage, SendError, State};

use crate::shared::{READER, Shared, WRITER, send_now, waits_for_room};
use crate::{Error, Message, TrySendError, now};

/// The sending half: a [`Sink`] of [`Message`]s. See [`WebSocketStream::split`](crate::WebSocketStream::split).
pub struct WebSocketWriter<S> {
    pub(crate) shared: Arc<Shared<S>>,
    /// A message the [`Sink`] took (`start_send`) while the core had no room for it: only
    /// when something else (a keepalive Ping, say) filled the send buffer between
    /// `poll_ready` and `start_send`. At most one; every later poll hands it over first.
    pub(crate) held: Option<Message>,
}

impl<S> fmt::Debug for WebSocketWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketWriter").finish_non_exhaustive()
    }
}

/// The payload bytes of a message (what it holds besides its enum).
pub(crate) fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(frame) => frame.as_ref().map_or(0, |f| f.reason.len()),
    }
}

impl<S: AsyncRead + AsyncWrite> WebSocketWriter<S> {
    /// Sends a message; see [`WebSocketStream::send`](crate::WebSocketStream::send).
    pub fn send(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> + '_ {
        let (mut early, mut waiting) = match self.offer(message) {
            Ok(waiting) => (None, waiting),
            Err(e) => (Some(e), None),
        };
        std::future::poll_fn(move |cx| {
            if let Some(e) = early.take() {
                return Poll::Ready(Err(e));
            }
            if waiting.is_some() {
                ready!(self.poll_hand_over(cx, &mut waiting))?;
            }
            self.poll_flush_inner(cx)
        })
    }

    /// Hands `message` to the core now, never waiting; see
    /// [`WebSocketStream::try_send`](crate::WebSocketStream::try_send).
    pub fn try_send(&mut self, message: Message) -> Result<(), TrySendError> {
        self.try_hand_over(message, waits_for_room, |core, message| {
            send_now(core, message)
        })
    }

    /// Hands a prepared message to the core now, never waiting; see
    /// [`WebSocketStream::try_send_prepared`](crate::WebSocketStream::try_send_prepared).
    pub fn try_send_prepared(&mut self, message: &PreparedMessage) -> Result<(), TrySendError<()>> {
        self.try_hand_over(
            (),
            // As `waits_for_room` says of a data message.
            |core, ()| core.is_send_blocked() && core.state() == State::Open,
            |core, ()| core.send_prepared(message),
        )
    }

    /// Bytes waiting for the transport; see
    /// [`WebSocketStream::pending_bytes`](crate::WebSocketStream::pending_bytes).
    pub fn pending_bytes(&self) -> usize {
        self.shared.lock().core.transmit_len()
    }

    /// What `try_send` and `try_send_prepared` share: under the lock, `send` hands
    /// `item` to the core unless the transport failed, or it must wait for room
    /// (`waits`, or the Sink holds a message that must go first), and the reader is
    /// woken to write it.
    fn try_hand_over<T>(
        &mut self,
        item: T,
        waits: impl FnOnce(&Connection, &T) -> bool,
        send: impl FnOnce(&mut Connection, T) -> Result<(), SendError>,
    ) -> Result<(), TrySendError<T>> {
        let shared = &*self.shared;
        let mut inner = shared.lock();
        if let Some(e) = inner.io_error() {
            return Err(TrySendError::Refused(Error::Io(e)));
        }
        if self.held.is_some() || waits(&inner.core, &item) {
            return Err(TrySendError::Full(item));
        }
        send(&mut inner.core, item).map_err(|e| TrySendError::Refused(Error::Send(e)))?;
        drop(inner);
        // Nothing here writes, and nothing else may be about to: a reader parked in
        // `next` (in another task, say) waits for input, not for this message. Woken,
        // its poll writes what is queued. The slot empties on waking, so a burst of
        // hand-overs costs the reader one poll, not one per message.
        shared.fan.wake_half(READER);
        Ok(())
    }

    /// Waits until everything handed over is written; see
    /// [`WebSocketStream::flush`](crate::WebSocketStream::flush).
    pub fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + '_ {
        std::future::poll_fn(|cx| self.poll_flush_inner(cx))
    }

    /// Starts the closing handshake; see [`WebSocketStream::close`](crate::WebSocketStream::close).
    pub fn close(
        &mut self,
        frame: Option<CloseFrame>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        let (mut early, mut waiting) = if self.held.is_some() {
            // Behind the message the Sink holds.
            (None, Some(Message::Close(frame)))
        } else {
            (self.queue_close(frame).err(), None)
        };
        std::future::poll_fn(move |cx| {
            if let Some(e) = early.take() {
                return Poll::Ready(Err(e));
            }
            if waiting.is_some() {
                ready!(self.poll_hand_over(cx, &mut waiting))?;
            }
            self.poll_close_inner(cx)
        })
    }

    /// The connection's lifecycle state.
    pub fn state(&self) -> State {
        self.shared.lock().core.state()
    }

    /// Bytes of memory the connection holds in buffers right now: the core's
    /// ([`Connection::buffered_bytes`](wsengine::Connection::buffered_bytes): the receive
    /// buffer, a message being assembled, what waits for the transport) plus a message
    /// this half holds for lack of room. What a host adds up to keep a memory budget.
    pub fn buffered_bytes(&self) -> usize {
        let core = self.shared.lock().core.buffered_bytes();
        core.saturating_add(self.held.as_ref().map_or(0, message_len))
    }

    /// Hands `message` to the core if it has room (`Ok(None)`), or gives it back to wait
    /// for room (`Ok(Some)`): the core's send buffer holds `max_send_buffer` bytes or
    /// more, or the Sink holds a message that must go first.
    fn offer(&mut self, message: Message) -> Result<Option<Message>, Error> {
        let mut inner = self.shared.lock();
        if let Some(e) = inner.io_error() {
            return Err(Error::Io(e));
        }
        if self.held.is_some() || waits_for_room(&inner.core, &message) {
            return Ok(Some(message));
        }
        send_now(&mut inner.core, message)?;
        Ok(None)
    }

    /// Hands the held message, then the one in `slot`, to the core as room appears,
    /// writing meanwhile. A message that waited for room and finds the connection over
    /// is dropped, unsent, with the error that ended it.
    fn poll_hand_over(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Option<Message>,
    ) -> Poll<Result<(), Error>> {
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        inner.tick(&shared.fan, &shared.fan_waker, WRITER);
        let result = loop {
            let next = if self.held.is_some() {
                &mut self.held
            } else {
                &mut *slot
            };
            let Some(message) = next.take() else {
                break Ok(());
            };
            if !message.is_close() && inner.note_end(&shared.fan, WRITER) {
                break Err(inner.end_error());
            }
            if !waits_for_room(&inner.core, &message) {
                if let Err(e) = send_now(&mut inner.core, message) {
                    break Err(Error::Send(e));
                }
                continue;
            }
            *next = Some(message);
            if let Some(e) = inner.abandoned() {
                break Err(e);
            }
            // Each round writes something (and makes room) or returns.
            match inner.flush(&shared.fan, &shared.fan_waker, WRITER) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => break Err(Error::Io(e)),
                Poll::Pending => return Poll::Pending,
            }
        };
        drop(inner);
        if result.is_err() {
            self.held = None;
            *slot = None;
        }
        shared.fan.clear(WRITER);
        Poll::Ready(result)
    }

    /// Queues a Close now unless the closing handshake has started or the connection is
    /// over (a Close always fits in the core's send buffer).
    fn queue_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        if inner.core.state() == State::Open {
            send_now(&mut inner.core, Message::Close(frame))?;
        }
        Ok(())
    }

    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.held.is_some() {
            ready!(self.poll_hand_over(cx, &mut None))?;
        }
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        inner.tick(&shared.fan, &shared.fan_waker, WRITER);
        let result = loop {
            if let Some(e) = inner.io_error() {
                break Err(Error::Io(e));
            }
            // Room, or a connection that is not open: `start_send` reports why not.
            if !(inner.core.is_send_blocked() && inner.core.state() == State::Open) {
                break Ok(());
            }
            if let Some(e) = inner.abandoned() {
                break Err(e);
            }
            // Each round writes something or returns: the loop ends.
            if let Err(e) = ready!(inner.flush(&shared.fan, &shared.fan_waker, WRITER)) {
                break Err(Error::Io(e));
            }
        };
        drop(inner);
        shared.fan.clear(WRITER);
        Poll::Ready(result)
    }

    /// The Sink's `start_send`: into the core, or held (one message) if something took
    /// the room `poll_ready` saw; a second message without `poll_ready` in between is
    /// refused ([`SendError::Blocked`]).
    fn start_send_inner(&mut self, message: Message) -> Result<(), Error> {
        if self.held.is_some() {
            return Err(Error::Send(SendError::Blocked));
        }
        if let Some(message) = self.offer(message)? {
            self.held = Some(message);
        }
        Ok(())
    }

    /// Writes everything queued: `Ok` once it is written, an error once it never will be
    /// (see [`Inner::abandoned`](crate::shared::Inner)).
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.held.is_some() {
            ready!(self.poll_hand_over(cx, &mut None))?;
        }
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        inner.tick(&shared.fan, &shared.fan_waker, WRITER);
        let result = match inner.abandoned() {
            Some(e) => Err(e),
            None => ready!(inner.flush(&shared.fan, &shared.fan_waker, WRITER)).map_err(Error::Io),
        };
        drop(inner);
        shared.fan.clear(WRITER);
        Poll::Ready(result)
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_flush_inner(cx))?;
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        inner.tick(&shared.fan, &shared.fan_waker, WRITER);
        if inner.core.should_close_transport()
            && inner.poll_shutdown(&shared.fan_waker).is_pending()
            // A shutdown that cannot complete (a TLS close_notify to a peer that does
            // not read) is given up with the last writes' deadline; the Close frame is
            // written.
            && inner.until.is_none_or(|until| now() < until)
        {
            return Poll::Pending;
        }
        drop(inner);
        shared.fan.clear(WRITER);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite> Sink<Message> for WebSocketWriter<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().start_send_inner(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    /// Starts the closing handshake (1000) if it has not started, writes everything, and
    /// shuts the transport down if the core says so already. Keep reading until the
    /// stream ends to complete the handshake.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.held.is_some() {
            ready!(this.poll_hand_over(cx, &mut None))?;
        }
        this.queue_close(None)?;
        this.poll_close_inner(cx)
    }
}
