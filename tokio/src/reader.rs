//! [`WebSocketReader`], the receiving half: its step hands out the core's messages,
//! reads into the core (outside the lock), and tears the transport down once the
//! connection is over.

use core::fmt;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use bytes::{Buf, BytesMut};
use futures_core::Stream;
use futures_core::stream::FusedStream;
use wsengine::handshake::{Request, Response};
use wsengine::{CloseCode, Connection, Event, Role, State};

use crate::shared::{READER, Shared, WRITER};
use crate::stream::WebSocketStream;
use crate::writer::WebSocketWriter;
use crate::{Error, LINGER, Message, now};

/// Size of the per-thread buffer that socket reads land in before the core takes them:
/// the default receive buffer plus a frame header, so a message of exactly
/// `recv_buffer_size` arrives in one read.
const SCRATCH_LEN: usize = (64 << 10) + wsengine::frame::MAX_HEADER_LEN;

thread_local! {
    /// One read buffer per thread, not per connection: an idle connection holds none.
    /// Bytes only pass through it: each read is handed to the core in the same poll.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What the reader's step produced.
pub(crate) enum Item {
    Message(Message),
    /// Server handshake: the request to answer.
    Request(Request),
    /// Client handshake: the server's 101.
    Accepted(Response),
    /// The connection is over and the transport shut down; the error, if it failed.
    Finished(Option<Error>),
}

/// The next item the core has, without reading: `None` when it needs input, `Err` when
/// the connection is over (with the error if it failed; `closed` says how it ended).
fn next_item(
    core: &mut Connection,
    closed: &mut Option<(CloseCode, bool)>,
) -> Option<Result<Item, Option<Error>>> {
    loop {
        let event = match core.poll_event() {
            Ok(Some(event)) => event,
            Ok(None) => return None,
            Err(e) => return Some(Err(Some(Error::Connection(e)))),
        };
        let message = match event {
            // Whole-message delivery (the adapter sets it): `last` is always true.
            Event::Text { data, .. } => Message::Text(data),
            Event::Binary { data, .. } => Message::Binary(data),
            Event::Ping(payload) => Message::Ping(payload),
            Event::Pong(payload) => Message::Pong(payload),
            Event::Close(frame) => Message::Close(frame),
            Event::Request(request) => return Some(Ok(Item::Request(*request))),
            Event::Accepted(response) => return Some(Ok(Item::Accepted(*response))),
            Event::Closed { code, clean } => {
                *closed = Some((code, clean));
                return Some(Err(None));
            }
            // An event a later core adds: nothing this adapter delivers.
            _ => continue,
        };
        return Some(Ok(Item::Message(message)));
    }
}

/// The reader's lifecycle.
enum Phase {
    /// Delivering messages.
    Running,
    /// The connection is over (the error to report, if it failed): writing the last
    /// bytes, shutting the transport down, lingering.
    Ending(Option<Error>),
    /// `Finished` was returned: the stream has ended.
    Done,
}

/// The receiving half: a [`Stream`] of [`Message`]s. See [`WebSocketStream::split`].
pub struct WebSocketReader<S> {
    pub(crate) shared: Arc<Shared<S>>,
    read: ReadHalf<S>,
    /// Read bytes the core could not take at once (not expected: reads are sized by
    /// `recv_capacity`); offered again first.
    leftover: BytesMut,
    /// The peer ended the stream.
    eof: bool,
    phase: Phase,
    /// How the connection ended, from the core's `Event::Closed`.
    closed: Option<(CloseCode, bool)>,
}

impl<S> fmt::Debug for WebSocketReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReader")
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite> WebSocketReader<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>, read: ReadHalf<S>) -> Self {
        Self {
            shared,
            read,
            leftover: BytesMut::new(),
            eof: false,
            phase: Phase::Running,
            closed: None,
        }
    }

    /// The next message; see [`WebSocketStream::next`].
    #[allow(
        clippy::should_implement_trait,
        reason = "the async counterpart of StreamExt::next, under the name its users call"
    )]
    pub fn next(&mut self) -> impl Future<Output = Option<Result<Message, Error>>> + '_ {
        std::future::poll_fn(|cx| self.poll_message(cx))
    }

    /// The connection's lifecycle state.
    pub fn state(&self) -> State {
        self.shared.lock().core.state()
    }

    /// How the connection ended, once it has (the core's
    /// [`Event::Closed`](wsengine::Event::Closed)): the close code and whether the closing
    /// handshake completed. A clean close gives the peer's code (1005 if it sent none);
    /// a transport that ended without a Close frame, or a close timeout, gives 1006 and
    /// `false`; a peer that sent its Close but stopped reading before ours (and what was
    /// queued before it) was written gives its code and `false` (see [`LINGER`]).
    /// `None` while open and after a failure (which `next` reported).
    pub fn closed(&self) -> Option<(CloseCode, bool)> {
        self.closed
    }

    /// Puts the halves back together; gives them back if they are not of one stream.
    #[allow(clippy::result_large_err)]
    pub fn reunite(
        self,
        writer: WebSocketWriter<S>,
    ) -> Result<WebSocketStream<S>, (WebSocketWriter<S>, WebSocketReader<S>)> {
        if Arc::ptr_eq(&self.shared, &writer.shared) {
            Ok(WebSocketStream {
                writer,
                reader: self,
            })
        } else {
            Err((writer, self))
        }
    }

    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match ready!(self.poll_step(cx)) {
                Item::Message(message) => return Poll::Ready(Some(Ok(message))),
                // Only during the opening handshake (poll_handshake).
                Item::Request(_) | Item::Accepted(_) => {}
                Item::Finished(error) => return Poll::Ready(error.map(Err)),
            }
        }
    }

    /// The reader's loop: run timers, hand out the core's next event, write what is
    /// queued, and read (outside the lock) into the core. Once the connection is over,
    /// tear the transport down and return `Finished`.
    pub(crate) fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Item> {
        let Self {
            shared,
            read,
            leftover,
            eof,
            phase,
            closed,
        } = self;
        let shared = &**shared;
        if let Phase::Done = phase {
            return Poll::Ready(Item::Finished(None));
        }
        shared.fan.register(READER, cx.waker());
        let finish = |phase: &mut Phase| {
            shared.lock().finished = true;
            shared.fan.clear(READER);
            // The writer may wait for room or for the end.
            shared.fan.wake_half(WRITER);
            match core::mem::replace(phase, Phase::Done) {
                Phase::Ending(error) => Poll::Ready(Item::Finished(error)),
                _ => Poll::Ready(Item::Finished(None)),
            }
        };
        loop {
            let mut inner = shared.lock();
            if !leftover.is_empty() {
                let taken = inner.core.recv(leftover);
                leftover.advance(taken);
            }
            if inner.service_timers(&shared.fan_waker) {
                shared.fan.wake_half(WRITER);
            }
            inner.drain_backlog();
            // Backpressure: while sends wait for room, take no new events (a Close echo
            // must not overtake them) and read nothing; write until they fit.
            let backlogged = !inner.backlog.is_empty();
            if matches!(phase, Phase::Running) && !backlogged {
                match next_item(&mut inner.core, closed) {
                    Some(Ok(item)) => {
                        // Write the replies the event queued (a Pong, the Close echo)
                        // now, or when the socket allows (the fan is registered).
                        let _ = inner.flush(&shared.fan, &shared.fan_waker, READER);
                        drop(inner);
                        shared.fan.clear(READER);
                        return Poll::Ready(item);
                    }
                    Some(Err(error)) => *phase = Phase::Ending(error),
                    None => {}
                }
            }
            let flushed = inner.flush(&shared.fan, &shared.fan_waker, READER);
            if let Poll::Ready(Err(e)) = flushed {
                drop(inner);
                if let Phase::Running = phase {
                    *phase = Phase::Ending(Some(Error::Io(e)));
                }
                return finish(phase);
            }
            if matches!(phase, Phase::Running) && inner.core.should_close_transport() {
                // Over without a Closed event or error (a refused handshake).
                *phase = Phase::Ending(None);
            }
            if backlogged && matches!(phase, Phase::Running) {
                if flushed.is_pending() {
                    return Poll::Pending;
                }
                continue;
            }
            if let Phase::Ending(_) = phase {
                let now = now();
                if inner.teardown_until.is_none() {
                    inner.teardown_until = Some(now + LINGER);
                    inner.service_timers(&shared.fan_waker);
                }
                if inner.teardown_until.is_some_and(|t| now >= t) {
                    if inner.core.wants_write()
                        && let Some((_, clean)) = closed
                    {
                        // The peer stopped reading: what was still queued, our Close
                        // frame included, never left; the handshake did not complete.
                        *clean = false;
                    }
                    drop(inner);
                    return finish(phase);
                }
                if inner.core.should_close_transport() {
                    // Everything is written: shut down, then a server reads and
                    // discards until the client's EOF so that a reset cannot destroy
                    // the Close frame or HTTP response on its way.
                    if inner.poll_shutdown(&shared.fan_waker).is_pending() {
                        return Poll::Pending;
                    }
                    if *eof || inner.core.role() == Role::Client {
                        drop(inner);
                        return finish(phase);
                    }
                } else if *eof && flushed.is_ready() {
                    // Nothing more will arrive and nothing waits to be written.
                    drop(inner);
                    return finish(phase);
                }
            }
            if *eof {
                // Waiting for the write side or a timer, both registered.
                return Poll::Pending;
            }
            let capacity = inner.core.recv_capacity();
            drop(inner);
            if capacity == 0 {
                // Cannot happen (poll_event drains a full buffer); never mistake a
                // zero-length read for EOF.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let result = SCRATCH.with_borrow_mut(|buf| {
                if buf.len() < SCRATCH_LEN {
                    buf.resize(SCRATCH_LEN, 0);
                }
                let mut chunk = ReadBuf::new(&mut buf[..capacity.min(SCRATCH_LEN)]);
                ready!(Pin::new(&mut *read).poll_read(cx, &mut chunk))?;
                let n = chunk.filled().len();
                // Into the core at once: nothing read is ever held by a future.
                let mut inner = shared.lock();
                if n == 0 {
                    inner.core.recv_eof();
                } else {
                    let taken = inner.core.recv(&buf[..n]);
                    leftover.extend_from_slice(&buf[taken..n]);
                }
                Poll::Ready(Ok::<usize, io::Error>(n))
            });
            match result {
                Poll::Ready(Ok(0)) => *eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    shared.lock().fail_io(&e);
                    if let Phase::Running = phase {
                        *phase = Phase::Ending(Some(Error::Io(e)));
                    }
                    return finish(phase);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite> Stream for WebSocketReader<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

impl<S: AsyncRead + AsyncWrite> FusedStream for WebSocketReader<S> {
    fn is_terminated(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }
}
