//! [`WebSocketStream`] and its halves: the state they share, how they take turns with
//! the core, and how they wake each other (see the module docs of [`super`]).

use core::fmt;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use ::tokio::time::Sleep;
use bytes::{Buf, BytesMut};
use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_sink::Sink;

use super::{Error, LINGER, Message, now};
use wsengine::frame::CloseFrame;
use wsengine::handshake::{Accept, Reject, Request, Response};
use wsengine::{
    CloseCode, Config, Connection, Event, HandshakeError, Instant, MAX_TRANSMIT_SEGMENTS,
    Negotiated, Role, SendError, State,
};

/// The waker slot of each half (see [`Fan`]).
const READER: usize = 0;
const WRITER: usize = 1;

/// Size of the per-thread buffer that socket reads land in before the core takes them:
/// the default receive buffer plus a frame header, so a message of exactly
/// `recv_buffer_size` arrives in one read.
const SCRATCH_LEN: usize = (64 << 10) + wsengine::frame::MAX_HEADER_LEN;

thread_local! {
    /// One read buffer per thread, not per connection: an idle connection holds none.
    /// Bytes only pass through it: each read is handed to the core in the same poll.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The two halves' wakers, for the resources they share: the socket's write readiness
/// and the core's timer each remember a single waker, so they are polled with the
/// waker of this `Fan`, which wakes every half that is waiting (its slot is set) and
/// empties the slots. A half sets its slot when a poll starts and clears it when the
/// poll returns `Ready`, so only halves that wait are woken.
#[derive(Default)]
struct Fan {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Fan {
    fn slots(&self) -> MutexGuard<'_, [Option<Waker>; 2]> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, who: usize, waker: &Waker) {
        let mut slots = self.slots();
        let slot = &mut slots[who];
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn clear(&self, who: usize) {
        self.slots()[who] = None;
    }

    /// Wakes one half if it waits.
    fn wake_half(&self, who: usize) {
        let waker = self.slots()[who].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for Fan {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = self.slots();
            [slots[READER].take(), slots[WRITER].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// What both halves share.
struct Shared<S> {
    inner: Mutex<Inner<S>>,
    fan: Arc<Fan>,
    /// A waker for `fan`, made once.
    fan_waker: Waker,
}

impl<S> Shared<S> {
    /// The lock is only ever held for non-blocking work (never across an await or a
    /// `Pending`); a panic while holding it leaves state the core keeps consistent.
    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The state behind the lock: the core, the write half of the transport (so either half
/// can write what the core has queued) and the timer.
struct Inner<S> {
    core: Connection,
    write: WriteHalf<S>,
    /// Created on the first deadline (inside a poll, so inside the runtime).
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline `timer` is set to.
    armed: Option<Instant>,
    /// Messages handed over while the core's send buffer was full, oldest first. Any
    /// poll of either half moves them into the core as room appears.
    backlog: VecDeque<Message>,
    /// The core refused a backlog message; reported by the next flush.
    deferred: Option<SendError>,
    /// The transport failed; both halves report it (an `io::Error` is not `Clone`).
    io_error: Option<(io::ErrorKind, String)>,
    /// The write side of the transport was shut down.
    shut_down: bool,
    /// The reader has ended the stream: nothing more is written (what is still queued
    /// when the teardown deadline cut it short is dropped with the stream).
    finished: bool,
    /// The connection is over: the last writes, the shutdown and a server's linger end
    /// by this instant at the latest. Every write that makes progress moves it to
    /// [`LINGER`] from then: it bounds a stall, not the time a peer that keeps reading
    /// needs to take what was queued before the end.
    teardown_until: Option<Instant>,
}

impl<S: AsyncWrite> Inner<S> {
    fn io_error(&self) -> Option<io::Error> {
        self.io_error
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    fn fail_io(&mut self, e: &io::Error) {
        if self.io_error.is_none() {
            self.io_error = Some((e.kind(), e.to_string()));
        }
    }

    /// Runs the core's due timers and arms the sleep on the next deadline (the core's
    /// or the teardown's), polled with `waker`. Returns whether `handle_timeout` ran.
    fn service_timers(&mut self, waker: &Waker) -> bool {
        let mut now = now();
        let mut fired = false;
        // A deadline met by the sleep is met again at most once more (rounding); the
        // bound only guards against a core that keeps answering with past deadlines.
        for _ in 0..8 {
            let core_deadline = self.core.poll_timeout();
            if core_deadline.is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
                fired = true;
                continue;
            }
            let deadline = match (core_deadline, self.teardown_until) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return fired,
                },
            };
            if deadline <= now {
                // The teardown deadline has passed; the reader acts on it.
                return fired;
            }
            let at = ::tokio::time::Instant::from_std(deadline.into());
            let timer = match &mut self.timer {
                Some(timer) => {
                    if self.armed != Some(deadline) {
                        timer.as_mut().reset(at);
                    }
                    timer
                }
                slot @ None => slot.insert(Box::pin(::tokio::time::sleep_until(at))),
            };
            self.armed = Some(deadline);
            match timer.as_mut().poll(&mut Context::from_waker(waker)) {
                Poll::Ready(()) => now = now.max(deadline).max(super::now()),
                Poll::Pending => return fired,
            }
        }
        waker.wake_by_ref();
        fired
    }

    /// Hands a message to the core now, or to the backlog while the send buffer is
    /// full (a Close goes straight in unless messages wait before it).
    fn enqueue(&mut self, message: Message) -> Result<(), SendError> {
        let room = !self.core.is_send_blocked() || message.is_close();
        if self.core.state() != State::Open || (self.backlog.is_empty() && room) {
            send_now(&mut self.core, message)
        } else {
            self.backlog.push_back(message);
            Ok(())
        }
    }

    fn drain_backlog(&mut self) {
        while let Some(front) = self.backlog.front() {
            if self.core.is_send_blocked() && !front.is_close() {
                return;
            }
            let Some(message) = self.backlog.pop_front() else {
                return;
            };
            if let Err(e) = send_now(&mut self.core, message) {
                self.deferred.get_or_insert(e);
            }
        }
    }

    /// Writes what the core has queued until it is all written (`Ready(Ok)`) or the
    /// transport would block (`Pending`, `waker` registered). Wakes the other half when
    /// bytes went out: it may be waiting for exactly that.
    fn flush(&mut self, fan: &Fan, waker: &Waker, who: usize) -> Poll<io::Result<()>> {
        if let Some(e) = self.io_error() {
            return Poll::Ready(Err(e));
        }
        if self.shut_down || self.finished {
            // The core said nothing more will be sent, or the connection is over.
            return Poll::Ready(Ok(()));
        }
        let mut cx = Context::from_waker(waker);
        let mut progress = false;
        let result = loop {
            let Self { core, write, .. } = self;
            let mut write = Pin::new(write);
            // One (vectored) write for everything queued: large payloads the core
            // holds as their own segments go out without a copy.
            let mut slices = [IoSlice::new(&[]); MAX_TRANSMIT_SEGMENTS];
            let count = core.poll_transmit_vectored(&mut slices);
            let written = match count {
                0 => break write.poll_flush(&mut cx),
                1 => write.as_mut().poll_write(&mut cx, &slices[0]),
                _ => write
                    .as_mut()
                    .poll_write_vectored(&mut cx, &slices[..count]),
            };
            match written {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    core.advance_transmit(n);
                    progress = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if let Poll::Ready(Err(e)) = &result {
            self.fail_io(e);
        }
        if progress {
            if let Some(until) = &mut self.teardown_until {
                // Messages queued before the peer's Close (and the Close echo behind
                // them) keep going out while the peer reads them.
                *until = now() + LINGER;
            }
            fan.wake_half(1 - who);
        }
        result
    }

    /// Shuts the write side down (once).
    fn poll_shutdown(&mut self, waker: &Waker) -> Poll<()> {
        if self.shut_down {
            return Poll::Ready(());
        }
        let mut cx = Context::from_waker(waker);
        // An error here (the peer is gone) ends the connection all the same.
        ready!(Pin::new(&mut self.write).poll_shutdown(&mut cx)).ok();
        self.shut_down = true;
        Poll::Ready(())
    }
}

/// Queues `message` in the core. A Close while the closing handshake is under way
/// (ours, or the echo of the peer's is queued) or over adds nothing.
fn send_now(core: &mut Connection, message: Message) -> Result<(), SendError> {
    match message {
        Message::Close(_) if matches!(core.state(), State::Closing | State::Closed) => Ok(()),
        message => core.send(message),
    }
}

/// What the reader's step produced.
pub(super) enum Item {
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
    shared: Arc<Shared<S>>,
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

/// The sending half: a [`Sink`] of [`Message`]s. See [`WebSocketStream::split`].
pub struct WebSocketWriter<S> {
    shared: Arc<Shared<S>>,
}

/// A WebSocket connection over a tokio stream: a [`Stream`] of received [`Message`]s
/// and a [`Sink`] of messages to send. Open one with [`accept`](super::accept),
/// [`connect`](super::connect), [`client`](super::client) or
/// [`from_upgraded`](Self::from_upgraded). See the [module docs](super) for
/// cancellation safety, the split halves and timers.
pub struct WebSocketStream<S> {
    writer: WebSocketWriter<S>,
    reader: WebSocketReader<S>,
}

impl<S> fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("core", &self.reader.shared.lock().core)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for WebSocketReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReader")
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for WebSocketWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketWriter").finish_non_exhaustive()
    }
}

/// The outcome of a handshake in progress, kept by the handshake future.
#[derive(Default)]
pub(super) struct Handshake {
    response: Option<Response>,
    /// Why the server's answer was a refusal, reported once the response is written.
    error: Option<Error>,
}

impl<S: AsyncRead + AsyncWrite> WebSocketStream<S> {
    /// Wraps `stream` and a core in any state.
    pub(super) fn new(stream: S, core: Connection) -> Self {
        let (read, write) = ::tokio::io::split(stream);
        let fan = Arc::new(Fan::default());
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                core,
                write,
                timer: None,
                armed: None,
                backlog: VecDeque::new(),
                deferred: None,
                io_error: None,
                shut_down: false,
                finished: false,
                teardown_until: None,
            }),
            fan_waker: Waker::from(Arc::clone(&fan)),
            fan,
        });
        Self {
            writer: WebSocketWriter {
                shared: Arc::clone(&shared),
            },
            reader: WebSocketReader {
                shared,
                read,
                leftover: BytesMut::new(),
                eof: false,
                phase: Phase::Running,
                closed: None,
            },
        }
    }

    /// Wraps a connection whose opening handshake an HTTP server has already done (it
    /// checked the request with [`check_request`](wsengine::handshake::check_request) and
    /// answered with [`accept_headers`](wsengine::handshake::accept_headers), say): the
    /// core starts open ([`Connection::upgraded`]) with the extensions that handshake
    /// `negotiated` (`Negotiated::default()`: none). `role` is [`Role::Server`] for an
    /// upgraded server connection. Errors only for a client without entropy for its
    /// masking keys.
    pub fn from_upgraded(
        stream: S,
        role: Role,
        config: Config,
        negotiated: Negotiated,
    ) -> Result<Self, Error> {
        let core = Connection::upgraded(role, super::whole(config), now(), negotiated)?;
        Ok(Self::new(stream, core))
    }

    /// Drives the opening handshake until the core is open and everything queued (the
    /// 101, the client's request) is written.
    pub(super) fn poll_handshake(
        &mut self,
        cx: &mut Context<'_>,
        decide: &mut dyn FnMut(&Request) -> Result<Accept, Reject>,
        handshake: &mut Handshake,
    ) -> Poll<Result<Option<Response>, Error>> {
        loop {
            {
                let shared = &*self.reader.shared;
                shared.fan.register(READER, cx.waker());
                let mut inner = shared.lock();
                if inner.core.state() == State::Open {
                    let flushed = ready!(inner.flush(&shared.fan, &shared.fan_waker, READER));
                    drop(inner);
                    shared.fan.clear(READER);
                    return Poll::Ready(match flushed {
                        Ok(()) => Ok(handshake.response.take()),
                        Err(e) => Err(Error::Io(e)),
                    });
                }
            }
            match ready!(self.reader.poll_step(cx)) {
                Item::Request(request) => {
                    let decision = decide(&request);
                    let mut inner = self.reader.shared.lock();
                    let core = &mut inner.core;
                    handshake.error = match decision {
                        Ok(accept) => match core.accept(accept) {
                            Ok(()) => None,
                            // An answer the core refuses (a subprotocol the client did
                            // not offer, a bad header) is a server error.
                            Err(e) => {
                                core.reject(Reject::new(500)).ok();
                                Some(Error::Send(e))
                            }
                        },
                        Err(reject) => {
                            let status = reject.status();
                            match core.reject(reject) {
                                Ok(()) => Some(Error::Rejected(status)),
                                Err(e) => {
                                    core.reject(Reject::new(500)).ok();
                                    Some(Error::Send(e))
                                }
                            }
                        }
                    };
                }
                Item::Accepted(response) => handshake.response = Some(response),
                // Not before the handshake completes.
                Item::Message(_) => {}
                Item::Finished(error) => {
                    let error =
                        error
                            .or_else(|| handshake.error.take())
                            .unwrap_or(Error::Connection(wsengine::Error::Handshake(
                                HandshakeError::UnexpectedEof,
                            )));
                    return Poll::Ready(Err(error));
                }
            }
        }
    }

    /// Splits into a sending and a receiving half that can be used from different tasks
    /// (the order of futures-util's `StreamExt::split`). How they share the core is in
    /// the [module docs](super).
    pub fn split(self) -> (WebSocketWriter<S>, WebSocketReader<S>) {
        (self.writer, self.reader)
    }

    /// The next message: `None` once the connection is over and the transport shut down
    /// (after a `Some(Err(..))` if it failed). Cancel-safe. Same as futures-util's
    /// `StreamExt::next`.
    #[allow(
        clippy::should_implement_trait,
        reason = "the async counterpart of StreamExt::next, under the name its users call"
    )]
    pub fn next(&mut self) -> impl Future<Output = Option<Result<Message, Error>>> + '_ {
        self.reader.next()
    }

    /// Sends a message and waits until it is written. The message is handed over when
    /// `send` is called (see the [module docs](super)), so dropping the future neither
    /// loses nor repeats it. Same as futures-util's `SinkExt::send`.
    pub fn send(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> + '_ {
        self.writer.send(message)
    }

    /// Waits until every message handed over so far is written.
    pub fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + '_ {
        self.writer.flush()
    }

    /// Starts the closing handshake (`None`: 1000, Normal Closure) and waits until the
    /// Close frame is written. Keep reading until `next` returns `None`: that is when the
    /// peer's Close has arrived and the transport is shut down. Cancel-safe: the Close is
    /// queued when `close` is called.
    pub fn close(
        &mut self,
        frame: Option<CloseFrame>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.writer.close(frame)
    }

    /// The connection's lifecycle state.
    pub fn state(&self) -> State {
        self.reader.state()
    }

    /// How the connection ended; see [`WebSocketReader::closed`].
    pub fn closed(&self) -> Option<(CloseCode, bool)> {
        self.reader.closed()
    }
}

impl<S: AsyncRead + AsyncWrite> WebSocketReader<S> {
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

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
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
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Item> {
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

impl<S: AsyncRead + AsyncWrite> WebSocketWriter<S> {
    /// Sends a message; see [`WebSocketStream::send`].
    pub fn send(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> + '_ {
        let mut early = self.start_send_inner(message).err();
        std::future::poll_fn(move |cx| match early.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => self.poll_flush_inner(cx),
        })
    }

    /// Waits until everything handed over is written.
    pub fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + '_ {
        std::future::poll_fn(|cx| self.poll_flush_inner(cx))
    }

    /// Starts the closing handshake; see [`WebSocketStream::close`].
    pub fn close(
        &mut self,
        frame: Option<CloseFrame>,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        let mut early = self.queue_close(frame).err();
        std::future::poll_fn(move |cx| match early.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => self.poll_close_inner(cx),
        })
    }

    /// The connection's lifecycle state.
    pub fn state(&self) -> State {
        self.shared.lock().core.state()
    }

    fn queue_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        let queued = inner.backlog.iter().any(Message::is_close);
        if inner.core.state() == State::Open && !queued {
            inner.enqueue(Message::Close(frame))?;
        }
        Ok(())
    }

    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        if let Some(e) = inner.io_error() {
            return Poll::Ready(Err(Error::Io(e)));
        }
        if inner.service_timers(&shared.fan_waker) {
            shared.fan.wake_half(READER);
        }
        loop {
            inner.drain_backlog();
            if inner.backlog.is_empty() && !inner.core.is_send_blocked() {
                break;
            }
            // Each round writes something or returns: the loop ends.
            if let Err(e) = ready!(inner.flush(&shared.fan, &shared.fan_waker, WRITER)) {
                return Poll::Ready(Err(Error::Io(e)));
            }
        }
        drop(inner);
        shared.fan.clear(WRITER);
        Poll::Ready(Ok(()))
    }

    fn start_send_inner(&mut self, message: Message) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        if let Some(e) = inner.io_error() {
            return Err(Error::Io(e));
        }
        Ok(inner.enqueue(message)?)
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        if inner.service_timers(&shared.fan_waker) {
            shared.fan.wake_half(READER);
        }
        loop {
            inner.drain_backlog();
            if let Err(e) = ready!(inner.flush(&shared.fan, &shared.fan_waker, WRITER)) {
                return Poll::Ready(Err(Error::Io(e)));
            }
            if inner.backlog.is_empty() {
                break;
            }
        }
        let deferred = inner.deferred.take();
        drop(inner);
        shared.fan.clear(WRITER);
        Poll::Ready(deferred.map_or(Ok(()), |e| Err(Error::Send(e))))
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_flush_inner(cx))?;
        let shared = &*self.shared;
        shared.fan.register(WRITER, cx.waker());
        let mut inner = shared.lock();
        if inner.core.should_close_transport()
            && inner.poll_shutdown(&shared.fan_waker).is_pending()
        {
            return Poll::Pending;
        }
        drop(inner);
        shared.fan.clear(WRITER);
        Poll::Ready(Ok(()))
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

impl<S: AsyncRead + AsyncWrite> Stream for WebSocketStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().reader.poll_message(cx)
    }
}

impl<S: AsyncRead + AsyncWrite> FusedStream for WebSocketStream<S> {
    fn is_terminated(&self) -> bool {
        self.reader.is_terminated()
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
        this.queue_close(None)?;
        this.poll_close_inner(cx)
    }
}

impl<S: AsyncRead + AsyncWrite> Sink<Message> for WebSocketStream<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().writer).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        Pin::new(&mut self.get_mut().writer).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}
