//! What the two halves share: the core and the write half of the transport behind one
//! lock ([`Inner`]), the [`Fan`] that wakes both halves for the resources they share,
//! and the work either half does with the lock held: the timers, the backlog of sends
//! waiting for room, and writing what the core has queued (see the crate docs).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};

use ::tokio::io::{AsyncWrite, WriteHalf};
use ::tokio::time::Sleep;
use wsengine::{Connection, Instant, MAX_TRANSMIT_SEGMENTS, SendError, State};

use crate::reader::Teardown;
use crate::{Message, now};

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
                backlog: VecDeque::new(),
                deferred: None,
                io_error: None,
                teardown: Teardown::Running { shut_down: false },
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
    /// Messages handed over while the core's send buffer was full, oldest first. Any
    /// poll of either half moves them into the core as room appears.
    pub(crate) backlog: VecDeque<Message>,
    /// The core refused a backlog message; reported by the next flush.
    pub(crate) deferred: Option<SendError>,
    /// The transport failed; both halves report it (an `io::Error` is not `Clone`).
    io_error: Option<(io::ErrorKind, String)>,
    /// Running, or how far the teardown has come. The reader moves it on; it is shared
    /// because the writer acts on it too: writes stop once the write side is shut down
    /// or the stream has ended, a write that makes progress moves the teardown's
    /// deadline, the timer is armed on that deadline by whichever half polls it, and the
    /// writer's close may shut the write side down itself.
    pub(crate) teardown: Teardown,
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
            let deadline = match (core_deadline, self.teardown.deadline()) {
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
                Poll::Ready(()) => now = now.max(deadline).max(crate::now()),
                Poll::Pending => return fired,
            }
        }
        waker.wake_by_ref();
        fired
    }

    /// Hands a message to the core now, or to the backlog while the send buffer is
    /// full (a Close goes straight in unless messages wait before it).
    pub(crate) fn enqueue(&mut self, message: Message) -> Result<(), SendError> {
        let room = !self.core.is_send_blocked() || message.is_close();
        if self.core.state() != State::Open || (self.backlog.is_empty() && room) {
            send_now(&mut self.core, message)
        } else {
            self.backlog.push_back(message);
            Ok(())
        }
    }

    pub(crate) fn drain_backlog(&mut self) {
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
            self.teardown.progressed();
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

/// Queues `message` in the core. A Close while the closing handshake is under way
/// (ours, or the echo of the peer's is queued) or over adds nothing.
fn send_now(core: &mut Connection, message: Message) -> Result<(), SendError> {
    match message {
        Message::Close(_) if matches!(core.state(), State::Closing | State::Closed) => Ok(()),
        message => core.send(message),
    }
}
