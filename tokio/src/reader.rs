//! [`WebSocketReader`], the receiving half: its step hands out the core's messages and
//! reads into the core (straight into its receive buffer), and once the connection is over it moves the
//! [`Teardown`] on, stage by stage, to the end of the stream.

use core::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use futures_core::Stream;
use futures_core::stream::FusedStream;
use wsengine::handshake::{Request, Response};
use wsengine::{CloseCode, Connection, Event, Role, State};

use crate::shared::{Inner, READER, Shared, WRITER};
use crate::stream::WebSocketStream;
use crate::writer::WebSocketWriter;
use crate::{Error, Message, now};

/// How far the end of the connection has come. The reader's step moves it on, one
/// function per state (`running`, `flushing`, `shutting_down`, `lingering`):
///
/// - `Running` → `Flushing` once the core says the connection is over (its error, its
///   `Closed` event, or a core that says the transport may close without either: a
///   refused handshake); straight to `Lingering` if the writer's close has shut the
///   write side down already;
/// - `Flushing` → `ShuttingDown` once the core says the transport may close;
/// - `ShuttingDown` → `Lingering` once the write side is shut down (by either half);
/// - `Lingering` → `Done` at the client's EOF, at once for a client;
/// - `Flushing` → `Done` when the peer's EOF came and nothing is left to write; any
///   teardown stage → `Done` once its deadline has passed or the transport failed;
///   `Running` → `Done` when the transport failed (that error is reported).
///
/// It lives behind the lock, beside the core, because the writer acts on it too (see
/// [`Inner::teardown`](crate::shared::Inner)).
///
/// Every stage of the teardown holds the error to report once it is over (`None` when
/// the connection closed; `closed` says how). Its deadline is the shared deadline of the
/// last writes ([`Inner::until`](crate::shared::Inner)): [`LINGER`](crate::LINGER) after the connection
/// ended, moved to [`LINGER`](crate::LINGER) from then by every write that makes progress. So it bounds
/// a stall, not the time a peer that keeps reading needs to take what was queued before
/// the end; once it passes, the stream ends whatever the stage.
pub(crate) enum Teardown {
    /// The connection is live: the reader delivers what the core has. `shut_down`: the
    /// writer's close has shut the write side down already (the core said the transport
    /// may close), while the core may still hold messages to deliver.
    Running { shut_down: bool },
    /// The connection is over: what is still queued (messages sent before the peer's
    /// Close arrived, then our Close frame or HTTP response) is written until the core
    /// says the transport may close; reads go on meanwhile (a client whose closing
    /// handshake is done waits for the server's EOF or its close timer).
    Flushing { error: Option<Error> },
    /// Everything is written (or abandoned: the core said the transport may close with
    /// bytes still queued, after a timeout): shutting the write side down.
    ShuttingDown { error: Option<Error> },
    /// The write side is shut down: a server reads and discards until the client's EOF,
    /// so that a reset does not destroy the Close frame or HTTP response on its way. A
    /// client, or a server past the client's EOF, is done.
    Lingering { error: Option<Error> },
    /// The stream has ended (`Item::Finished` was returned): nothing more is written;
    /// what the deadline cut short is dropped with the stream.
    Done,
}

impl Teardown {
    /// The connection is over (with `error` if it failed): the teardown starts (the
    /// deadline of the last writes is started by the next [`Inner::tick`]). If the
    /// writer's close has shut the write side down, only the linger is left.
    fn begin(&mut self, error: Option<Error>) {
        *self = match self {
            Self::Running { shut_down: true } => Self::Lingering { error },
            _ => Self::Flushing { error },
        };
    }

    /// `Flushing` is over: everything is written, on to the shutdown.
    fn written(&mut self) {
        *self = match core::mem::replace(self, Self::Done) {
            Self::Flushing { error } => Self::ShuttingDown { error },
            other => other,
        };
    }

    /// The write side is shut down (by the reader's teardown or the writer's close):
    /// a running connection remembers it, a teardown goes on to the linger.
    pub(crate) fn shut_down(&mut self) {
        *self = match core::mem::replace(self, Self::Done) {
            Self::Running { .. } => Self::Running { shut_down: true },
            Self::Flushing { error } | Self::ShuttingDown { error } => Self::Lingering { error },
            other => other,
        };
    }

    /// Ends the stream: `Done`, and the error to report. That is the teardown's, or
    /// `failure` when a transport error ends a running connection at once (there is no
    /// teardown on a broken transport).
    fn finish(&mut self, failure: Option<Error>) -> Option<Error> {
        match core::mem::replace(self, Self::Done) {
            Self::Running { .. } => failure,
            Self::Flushing { error } | Self::ShuttingDown { error } | Self::Lingering { error } => {
                error
            }
            Self::Done => None,
        }
    }

    /// Whether the write side still takes bytes (and a shutdown): not once it is shut
    /// down, nor after the stream has ended.
    pub(crate) fn writes(&self) -> bool {
        matches!(
            self,
            Self::Running { shut_down: false } | Self::Flushing { .. } | Self::ShuttingDown { .. }
        )
    }
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

/// What one stage of the reader's step decided.
enum Flow {
    /// Return this item.
    Deliver(Item),
    /// The stream ends (`Done`); `failure` is the error to report if the connection was
    /// still running (see [`Teardown::finish`]).
    End(Option<Error>),
    /// Wait for the transport's write side or a timer, both registered.
    Wait,
    /// The state moved on: go round again.
    Again,
    /// Read from the transport (outside the lock), then go round again.
    Read,
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

/// `Running`: hands out the core's next event, writes what is queued, and asks for a
/// read. The connection's end (the core's error or `Closed` event, or a core that says
/// the transport may close without either: a refused handshake) starts the teardown; a
/// transport error ends the stream at once.
fn running<S: AsyncWrite>(
    inner: &mut Inner<S>,
    shared: &Shared<S>,
    closed: &mut Option<(CloseCode, bool)>,
    eof: bool,
) -> Flow {
    match next_item(&mut inner.core, closed) {
        Some(Ok(item)) => {
            // Write the replies the event queued (a Pong, the Close echo) now, or when
            // the socket allows (the fan is registered).
            let _ = inner.flush(&shared.fan, &shared.fan_waker, READER);
            return Flow::Deliver(item);
        }
        Some(Err(error)) => {
            inner.teardown.begin(error);
            return Flow::Again;
        }
        None => {}
    }
    let flushed = inner.flush(&shared.fan, &shared.fan_waker, READER);
    if let Poll::Ready(Err(e)) = flushed {
        return Flow::End(Some(Error::Io(e)));
    }
    if inner.core.should_close_transport() {
        // Over without a Closed event or error (a refused handshake).
        inner.teardown.begin(None);
        return Flow::Again;
    }
    if inner.core.is_send_blocked() && flushed.is_pending() {
        // Backpressure: while the send buffer is full (the peer does not take what is
        // sent to it), read nothing more from it; wait until writes make room. Events
        // the core holds already are still delivered.
        return Flow::Wait;
    }
    if eof { Flow::Wait } else { Flow::Read }
}

/// What every stage of the teardown does first: write what is still queued (nothing
/// once the write side is shut down). Returns whether it is all written, or `None` when
/// the stream ends here: a write failed (the teardown's own error is reported), or the
/// deadline has passed.
fn last_writes<S: AsyncWrite>(
    inner: &mut Inner<S>,
    shared: &Shared<S>,
    closed: &mut Option<(CloseCode, bool)>,
) -> Option<bool> {
    let flushed = inner.flush(&shared.fan, &shared.fan_waker, READER);
    if let Poll::Ready(Err(_)) = flushed {
        return None;
    }
    if inner.until.is_some_and(|until| now() >= until) {
        if inner.core.wants_write()
            && let Some((_, clean)) = closed
        {
            // The peer stopped reading: what was still queued, our Close frame
            // included, never left; the handshake did not complete.
            *clean = false;
        }
        return None;
    }
    Some(flushed.is_ready())
}

/// `Flushing`: writes until the core says the transport may close, reading meanwhile;
/// a peer that ended its side when nothing is left to write ends the stream here.
fn flushing<S: AsyncWrite>(
    inner: &mut Inner<S>,
    shared: &Shared<S>,
    closed: &mut Option<(CloseCode, bool)>,
    eof: bool,
) -> Flow {
    let Some(written) = last_writes(inner, shared, closed) else {
        return Flow::End(None);
    };
    if inner.core.should_close_transport() {
        inner.teardown.written();
        Flow::Again
    } else if eof {
        // Nothing more will arrive: over once nothing waits to be written either.
        if written { Flow::End(None) } else { Flow::Wait }
    } else {
        Flow::Read
    }
}

/// `ShuttingDown`: shuts the write side down, which moves on to `Lingering`.
fn shutting_down<S: AsyncWrite>(
    inner: &mut Inner<S>,
    shared: &Shared<S>,
    closed: &mut Option<(CloseCode, bool)>,
) -> Flow {
    if last_writes(inner, shared, closed).is_none() {
        return Flow::End(None);
    }
    match inner.poll_shutdown(&shared.fan_waker) {
        Poll::Ready(()) => Flow::Again,
        Poll::Pending => Flow::Wait,
    }
}

/// `Lingering`: a server reads (the core discards what arrives) until the client's
/// EOF; a client is done at once.
fn lingering<S: AsyncWrite>(
    inner: &mut Inner<S>,
    shared: &Shared<S>,
    closed: &mut Option<(CloseCode, bool)>,
    eof: bool,
) -> Flow {
    if last_writes(inner, shared, closed).is_none() {
        return Flow::End(None);
    }
    if eof || inner.core.role() == Role::Client {
        Flow::End(None)
    } else {
        Flow::Read
    }
}

/// The receiving half: a [`Stream`] of [`Message`]s. See [`WebSocketStream::split`].
pub struct WebSocketReader<S> {
    pub(crate) shared: Arc<Shared<S>>,
    read: ReadHalf<S>,
    /// The peer ended the stream.
    eof: bool,
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
            eof: false,
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
    /// queued before it) was written gives its code and `false` (see [`LINGER`](crate::LINGER)).
    /// `None` while open and after a failure (which `next` reported).
    pub fn closed(&self) -> Option<(CloseCode, bool)> {
        self.closed
    }

    /// See [`WebSocketStream::release_buffers_when_idle`](crate::WebSocketStream::release_buffers_when_idle).
    pub fn release_buffers_when_idle(&mut self, on: bool) {
        self.shared.lock().release_when_idle = on;
    }

    /// Bytes of memory the connection holds in buffers right now: the core's
    /// ([`Connection::buffered_bytes`]); reads go straight into it. See
    /// [`WebSocketStream::buffered_bytes`].
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().core.buffered_bytes()
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

    /// Whether the stream has ended.
    fn ended(&self) -> bool {
        matches!(self.shared.lock().teardown, Teardown::Done)
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

    /// The reader's loop, under the lock but for the read: feed the core what an earlier
    /// read left over, run timers and note the end of the connection, then let the stage the
    /// [`Teardown`] is in decide (one function per stage, above): hand out an item, go
    /// round again, wait, end the stream (`Finished`), or read into the core, outside
    /// the lock.
    pub(crate) fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Item> {
        let shared = &*self.shared;
        let mut inner = shared.lock();
        if let Teardown::Done = inner.teardown {
            return Poll::Ready(Item::Finished(None));
        }
        shared.fan.register(READER, cx.waker());
        loop {
            inner.tick(&shared.fan, &shared.fan_waker, READER);
            let closed = &mut self.closed;
            let flow = match inner.teardown {
                Teardown::Running { .. } => running(&mut inner, shared, closed, self.eof),
                Teardown::Flushing { .. } => flushing(&mut inner, shared, closed, self.eof),
                Teardown::ShuttingDown { .. } => shutting_down(&mut inner, shared, closed),
                Teardown::Lingering { .. } => lingering(&mut inner, shared, closed, self.eof),
                // Not reached: only this step ends the stream, and returns.
                Teardown::Done => Flow::End(None),
            };
            match flow {
                Flow::Deliver(item) => {
                    drop(inner);
                    shared.fan.clear(READER);
                    return Poll::Ready(item);
                }
                Flow::End(failure) => {
                    let error = inner.teardown.finish(failure);
                    drop(inner);
                    return Poll::Ready(finished(shared, error));
                }
                Flow::Wait => return Poll::Pending,
                Flow::Again => continue,
                Flow::Read => {}
            }
            match read_into_core(&mut inner, &mut self.read, cx) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    inner.fail_io(&e);
                    let error = inner.teardown.finish(Some(Error::Io(e)));
                    drop(inner);
                    return Poll::Ready(finished(shared, error));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The stream has ended (the teardown is `Done`): nothing more to wait for, and the
/// writer may wait for room or for the end.
fn finished<S>(shared: &Shared<S>, error: Option<Error>) -> Item {
    shared.fan.clear(READER);
    shared.fan.wake_half(WRITER);
    Item::Finished(error)
}

/// The stack buffer a connection that holds no buffer is read through
/// (`release_buffers_when_idle`).
const IDLE_READ: usize = 512;

/// Reads once from the transport into a small buffer on the stack, for a connection
/// that holds no buffer: tokio's `poll_read` needs a buffer before it can tell whether
/// bytes are there, and `recv_buf` would allocate the core's receive buffer (a few KiB)
/// to offer one, held for as long as the peer stays quiet. What arrives goes into the
/// core at once (the core allocates then).
fn read_idle<S: AsyncRead + AsyncWrite>(
    inner: &mut Inner<S>,
    read: &mut ReadHalf<S>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let capacity = inner.core.recv_capacity().min(IDLE_READ);
    let mut stack = [0u8; IDLE_READ];
    let mut chunk = ReadBuf::new(&mut stack[..capacity]);
    ready!(Pin::new(read).poll_read(cx, &mut chunk))?;
    let n = chunk.filled().len();
    if n == 0 {
        inner.core.recv_eof();
    } else {
        // At most `recv_capacity` bytes: the core takes them all.
        let taken = inner.core.recv(&stack[..n]);
        debug_assert_eq!(taken, n);
    }
    Poll::Ready(Ok(n))
}

/// Reads once from the transport straight into the core's receive buffer
/// ([`Connection::recv_buf`]), under the lock: a non-blocking read, and nothing read is
/// ever held outside the core. An EOF is handed on too. Returns how many bytes arrived.
fn read_into_core<S: AsyncRead + AsyncWrite>(
    inner: &mut Inner<S>,
    read: &mut ReadHalf<S>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if inner.release_when_idle
        && inner.core.recv_buffered_bytes() == 0
        && inner.core.recv_capacity() > 0
    {
        return read_idle(inner, read, cx);
    }
    let room = inner.core.recv_buf();
    if room.is_empty() {
        // Cannot happen (poll_event drains a full buffer); never mistake a zero-length
        // read for EOF.
        inner.core.commit_recv(0);
        cx.waker().wake_by_ref();
        return Poll::Pending;
    }
    let mut chunk = ReadBuf::new(room);
    let polled = Pin::new(read).poll_read(cx, &mut chunk);
    let n = chunk.filled().len();
    inner.core.commit_recv(n);
    if polled.is_pending() && inner.release_when_idle {
        // The peer went quiet with everything handled: hold no buffer until it speaks
        // again (`read_idle` then reads through the stack).
        inner.core.release_recv_buffers();
    }
    ready!(polled)?;
    if n == 0 {
        inner.core.recv_eof();
    }
    Poll::Ready(Ok(n))
}

impl<S: AsyncRead + AsyncWrite> Stream for WebSocketReader<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

impl<S: AsyncRead + AsyncWrite> FusedStream for WebSocketReader<S> {
    fn is_terminated(&self) -> bool {
        self.ended()
    }
}
