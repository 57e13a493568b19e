//! [`Handle`]: other threads' way into a running loop. Commands go into a shared list
//! and a `mio::Waker` wakes the loop, which runs them between readiness events.

use std::io;
use std::sync::{Arc, Mutex};

use mio::Waker;
use wsengine::{CloseCode, Message};

use crate::ConnId;

/// What a [`Handle`] asks of the loop.
pub(crate) enum Command {
    Stop,
    Wake,
    Send(ConnId, Message),
    Close(ConnId, CloseCode, String),
}

impl Command {
    /// The connection the command is for (none: the loop itself).
    pub(crate) fn target(&self) -> Option<ConnId> {
        match self {
            Self::Stop | Self::Wake => None,
            Self::Send(id, _) | Self::Close(id, ..) => Some(*id),
        }
    }
}

/// What the loop and its handles share: the commands not yet run, and the waker that
/// tells the loop there are some.
pub(crate) struct Shared {
    pub(crate) commands: Mutex<Vec<Command>>,
    pub(crate) waker: Waker,
}

/// Talks to a running [`EventLoop`](crate::EventLoop) from other threads. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    fn push(&self, command: Command) -> io::Result<()> {
        self.shared
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(command);
        self.shared.waker.wake()
    }

    /// Stops the loop gracefully: no new connections, every open one is closed with
    /// 1001, and `run` returns once they are closed or the shutdown timeout expires.
    pub fn stop(&self) -> io::Result<()> {
        self.push(Command::Stop)
    }

    /// Queues `message` to `id` (a connection still in its handshake gets it once
    /// open; dropped if `id` is gone or cannot send, and so when its send buffer is full:
    /// to send more than the buffer holds, feed it from [`Handler::on_wake`](crate::Handler::on_wake)
    /// and [`Handler::on_writable`](crate::Handler::on_writable) instead, see [`wake`](Self::wake)). `Message::text(string)` and
    /// `Message::binary(vec)` build one from a `String` or a `Vec<u8>` without a copy.
    pub fn send(&self, id: ConnId, message: Message) -> io::Result<()> {
        self.push(Command::Send(id, message))
    }

    /// Calls [`Handler::on_wake`](crate::Handler::on_wake) on the loop's thread (once
    /// per call, in order with the other commands). For a handler that takes work from
    /// other threads through a bounded queue of its own: the producer pushes, then wakes
    /// the loop; the handler moves what fits into its connections and, when one is
    /// blocked, waits for [`on_writable`](crate::Handler::on_writable). Unlike
    /// [`send`](Self::send), nothing is dropped and nothing queues without bound.
    pub fn wake(&self) -> io::Result<()> {
        self.push(Command::Wake)
    }

    /// Starts the closing handshake on `id`.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: impl Into<String>) -> io::Result<()> {
        self.push(Command::Close(id, code, reason.into()))
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}
