//! What the two halves share: the core and the write half of the transport behind one
//! lock ([`Inner`]), the [`Fan`] that wakes both halves for the resources they share,
//! and the work either half does with the lock held: the timers, noticing the end of the
//! connection, and writing what the core has queued (see the crate docs).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};

use ::tokio::io::{AsyncWrite, WriteHalf};
use ::tokio::time::Sleep;
use wsengine::{Connection, Instant, MAX_TRANSMIT_SEGMENTS, SendError, State};

use crate::reader::Teardown;
use crate::{Error, LINGER, Message, now};

/// The waker slot of each half (see [`Fan`]).
pub(crate) const READER: usize = 0;
pub(crate) const WRITER: usize = 1;

/// The two halves' wakers, for the resources they share: the socket's write readiness
/// and the core's timer each remember a single waker, so they are polled with the
/// waker of this `Fan`, which wakes every half that is waiting (its slot is set) and
/// empties the slots. A half sets its slot when a poll starts and clears it when the
/// poll returns `Ready`, so only halves that wait are woken.
#[derive(Default)]
pub(crate) struct Fan {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Fan {
    fn slots(&self) -> MutexGuard<'_, [Option<Waker>; 2]> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, who: usize, waker: &Waker) {
        let mut slots = self.slots();
        let slot = &mut slots[who];
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    pub(crate) fn clear(&self, who: usize) {
        self.slots()[who] = None;
    }

    /// Wakes one half if it waits.
    pub(crate) fn wake_half(&self, who: usize) {
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
pub(crate) struct Shared<S> {
    inner: Mutex<Inner<S>>,
    pub(crate) fan: Arc<Fan>,
    /// A waker for `fan`, made once.
    pub(crate) fan_waker: Waker,
}

impl<S> Shared<S> {
    /// The shared state of a new stream: `core` in any state, the write half of its
    /// transport, no timer yet, nothing waiting.
    pub(crate) fn new(core: Connection, write: WriteHalf<S>) -> Self {
        let fan = Arc::new(Fan::default());
        Self {
            inner: Mutex::new(Inner {
                core,
                write,
                timer: None,
                armed: None,
                until: None,
                io_error: None,
                teardown: Teardown::Running { shut_down: false },
                release_when_idle: false,
            }),
            fan_waker: Waker::from(Arc::clone(&fan)),
            fan,
        }
    }

    /// The lock is only ever held for non-blocking work (never across an await or a
    /// `Pending`); a panic while holding it leaves state the core keeps consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The state behind the lock: the core, the write half of the transport (so either half
/// can write what the core has queued), the timer, and how far the end of the
/// connection has come.
pub(crate) struct Inner<S> {
    pub(crate) core: Connection,
    write: WriteHalf<S>,
    /// Created on the first deadline (inside a poll, so inside the runtime).
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline `timer` is set to.
    armed: Option<Instant>,
    /// Once the connection is over (the core failed or closed, whichever half noticed
    /// first): the deadline of the last writes, [`LINGER`] from the end, moved to
    /// [`LINGER`] from then by every write that makes progress. It bounds a stall, not
    /// the time a peer that keeps reading takes; past it, what is still queued is
    /// abandoned: the reader's teardown ends the stream and pending writer operations
    /// return an error (see [`abandoned`](Self::abandoned)).
    pub(crate) until: Option<Instant>,
    /// The transport failed; both halves report it (an `io::Error` is not `Clone`).
    io_error: Option<(io::ErrorKind, String)>,
    /// Running, or how far the teardown has come. The reader moves it on; it is shared
    /// because the writer acts on it too: writes stop once the write side is shut down
    /// or the stream has ended, a write that makes progress moves the teardown's
    /// deadline, the timer is armed on that deadline by whichever half polls it, and the
    /// writer's close may shut the write side down itself.
    pub(crate) teardown: Teardown,
    /// [`WebSocketStream::release_buffers_when_idle`](crate::WebSocketStream::release_buffers_when_idle):
    /// a connection that holds no buffer is read through a small buffer on the stack,
    /// and a read that finds nothing gives the core's empty buffers back.
    pub(crate) release_when_idle: bool,
}

impl<S: AsyncWrite> Inner<S> {
    pub(crate) fn io_error(&self) -> Option<io::Error> {
        self.io_error
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    pub(crate) fn fail_io(&mut self, e: &io::Error) {
        if self.io_error.is_none() {
            self.io_error = Some((e.kind(), e.to_string()));
        }
    }

    /// Runs the core's due timers and arms the sleep on the next deadline (the core's
    /// or the teardown's), polled with `waker`. Returns whether `handle_timeout` ran.
    pub(crate) fn service_timers(&mut self, waker: &Waker) -> bool {
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
            let deadline = match (core_deadline, self.until) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return fired,
                },
            };
            if deadline <= now {
                // The deadline of the last writes has passed; both halves act on it.
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
                Poll::Ready(()) => now = now.max(deadline).max(crate::now()),
                Poll::Pending => return fired,
            }
        }
        waker.wake_by_ref();
        fired
    }

    /// What every poll of either half does first, after registering its waker: runs the
    /// core's due timers (waking the other half when one fired: it may have ended the
    /// connection) and notes the end of the connection ([`note_end`](Self::note_end)),
    /// with the timer armed on the deadline of the last writes once there is one.
    pub(crate) fn tick(&mut self, fan: &Fan, waker: &Waker, who: usize) {
        self.note_end(fan, who);
        if self.service_timers(waker) {
            fan.wake_half(1 - who);
            if self.until.is_none() && self.note_end(fan, who) {
                self.service_timers(waker);
            }
        }
    }

    /// Whether the connection is over: the core failed or closed (a refused handshake
    /// included), or the reader's teardown has begun. The first call that sees it starts
    /// the deadline of the last writes ([`until`](Self::until)) and wakes the other half,
    /// which may be waiting for a write that will never happen.
    pub(crate) fn note_end(&mut self, fan: &Fan, who: usize) -> bool {
        let over = !matches!(self.teardown, Teardown::Running { .. })
            || matches!(self.core.state(), State::Closed | State::Failed);
        if over && self.until.is_none() {
            self.until = Some(now() + LINGER);
            fan.wake_half(1 - who);
        }
        over
    }

    /// Whether what the core still has queued will never be written, and the error a
    /// pending send, flush or close then returns: the transport failed, the stream has
    /// ended or its write side is shut down, the core said the transport may close
    /// anyway (a timer expired: the peer is not reading), or the deadline of the last
    /// writes has passed. `None` while nothing is queued or it may still go out.
    pub(crate) fn abandoned(&mut self) -> Option<Error> {
        if let Some(e) = self.io_error() {
            return Some(Error::Io(e));
        }
        if !self.core.wants_write() {
            return None;
        }
        let given_up = !self.teardown.writes()
            || self.core.should_close_transport()
            || self.until.is_some_and(|until| now() >= until);
        given_up.then(|| self.end_error())
    }

    /// Why the connection ended, for an operation it cut short: the transport's error,
    /// the core's ([`Error::Connection`]: a timeout, a protocol error), or
    /// [`Error::ConnectionClosed`].
    pub(crate) fn end_error(&mut self) -> Error {
        if let Some(e) = self.io_error() {
            return Error::Io(e);
        }
        if self.core.state() == State::Failed {
            // A failed core repeats its error on every `poll_event` (it is sticky) and
            // has no other event left to give (`Event::Closed` belongs to a closed
            // connection, never a failed one), so this takes nothing from the reader.
            if let Err(e) = self.core.poll_event() {
                return Error::Connection(e);
            }
        }
        Error::ConnectionClosed
    }

    /// Writes what the core has queued until it is all written (`Ready(Ok)`) or the
    /// transport would block (`Pending`, `waker` registered). Wakes the other half when
    /// bytes went out: it may be waiting for exactly that.
    pub(crate) fn flush(&mut self, fan: &Fan, waker: &Waker, who: usize) -> Poll<io::Result<()>> {
        if let Some(e) = self.io_error() {
            return Poll::Ready(Err(e));
        }
        if !self.teardown.writes() {
            // The core said nothing more will be sent (the write side is shut down), or
            // the stream has ended.
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
            if self.until.is_some() {
                // The peer is reading: what was queued before the end keeps going out.
                self.until = Some(now() + LINGER);
            }
            fan.wake_half(1 - who);
        }
        result
    }

    /// Shuts the write side down, once (the reader's teardown, or the writer's close
    /// once the core says the transport may close); not after the stream has ended.
    pub(crate) fn poll_shutdown(&mut self, waker: &Waker) -> Poll<()> {
        if !self.teardown.writes() {
            return Poll::Ready(());
        }
        let mut cx = Context::from_waker(waker);
        // An error here (the peer is gone) ends the connection all the same.
        ready!(Pin::new(&mut self.write).poll_shutdown(&mut cx)).ok();
        self.teardown.shut_down();
        Poll::Ready(())
    }
}

/// Whether `message` must wait for room before the core takes it: the core's send buffer
/// holds `max_send_buffer` bytes or more ([`Connection::is_send_blocked`]) and the core
/// would refuse it with [`SendError::Blocked`] rather than for another reason (a Close
/// always fits; a data message after the closing handshake started, or anything on a
/// connection that is over, is refused at once).
pub(crate) fn waits_for_room(core: &Connection, message: &Message) -> bool {
    core.is_send_blocked()
        && match message {
            Message::Close(_) => false,
            Message::Ping(_) | Message::Pong(_) => {
                matches!(core.state(), State::Open | State::Closing)
            }
            Message::Text(_) | Message::Binary(_) => core.state() == State::Open,
        }
}

/// Queues `message` in the core. A Close while the closing handshake is under way
/// (ours, or the echo of the peer's is queued) or over adds nothing.
pub(crate) fn send_now(core: &mut Connection, message: Message) -> Result<(), SendError> {
    match message {
        Message::Close(_) if matches!(core.state(), State::Closing | State::Closed) => Ok(()),
        message => core.send(message),
    }
}
