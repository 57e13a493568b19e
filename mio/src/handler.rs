//! The embedder's side of the loop: the [`Handler`] it implements, the [`Context`]
//! through which a handler acts on any connection, and what the loop reports
//! ([`Decision`], [`Disconnect`]).

use std::io;
use std::net::SocketAddr;

use mio::Registry;
use wsengine::{
    Accept, ClientRequest, CloseCode, Connection, Error, Event, Message, Reject, Request, Response,
    SendError, State,
};

use crate::event_loop::Conns;
use crate::{ConnId, SlowConsumerAction};

/// A server's answer to an opening request.
#[derive(Debug)]
pub enum Decision {
    /// Upgrade the connection.
    Accept(Accept),
    /// Answer with an HTTP error and close.
    Reject(Reject),
}

/// Why a connection ended, as reported to [`Handler::on_close`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Disconnect {
    /// The connection ended: `clean` when both Close frames were exchanged (`code` is
    /// then the peer's, 1005 if it gave none), otherwise `code` is 1006.
    Closed {
        /// The close code.
        code: CloseCode,
        /// Whether the closing handshake completed.
        clean: bool,
    },
    /// The core failed the connection (protocol error, bad handshake, timeout); a Close
    /// frame or HTTP error response was sent where the error allows one.
    Failed(Error),
    /// The handler rejected the handshake.
    Rejected,
    /// The socket failed.
    Io(io::Error),
    /// Graceful shutdown gave up waiting for this connection's Close reply.
    ShutdownTimeout,
    /// The loop went over [`DriverConfig::max_memory`](crate::DriverConfig::max_memory)
    /// and closed this connection, one of those holding the most, at once (socket reset,
    /// buffers freed): `code` is 1008 when it made no progress in the last second (it
    /// does not read), 1013 when every holder was making progress (overload).
    MemoryBudget {
        /// Why, as a close code (not sent: a peer that does not read would never get
        /// to it).
        code: CloseCode,
    },
    /// The connection could not keep up with what others sent it and
    /// [`DriverConfig::slow_consumer`](crate::DriverConfig::slow_consumer) closed it at
    /// once (socket reset, buffers freed) for reason `code`.
    SlowConsumer {
        /// Why, as a close code (not sent, as for `MemoryBudget`).
        code: CloseCode,
    },
}

/// The embedder's side of the loop. Every method has a default that does nothing
/// (and [`on_request`](Self::on_request) accepts).
#[allow(unused_variables)]
pub trait Handler {
    /// Server: a client asks to upgrade. Look at the path, headers, `Origin`, offered
    /// subprotocols; accept (choosing at most one subprotocol) or reject.
    fn on_request(&mut self, ctx: &mut Context<'_>, id: ConnId, request: &Request) -> Decision {
        Decision::Accept(Accept::new())
    }

    /// The handshake completed: `None` on a server, the server's response on a client.
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, response: Option<&Response>) {}

    /// A message (or piece of one), Ping, Pong or the peer's Close. Pong and Close
    /// replies are already queued by the core.
    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {}

    /// `id`'s send buffer is full: sends to it return `SendError::Blocked` and the loop
    /// stops reading from it until [`on_writable`](Self::on_writable).
    fn on_blocked(&mut self, ctx: &mut Context<'_>, id: ConnId) {}

    /// `id`'s send buffer has drained below its limit again: after
    /// [`on_blocked`](Self::on_blocked), and after a send through the [`Context`] that
    /// found or left it full (also when the write that followed drained it at once).
    fn on_writable(&mut self, ctx: &mut Context<'_>, id: ConnId) {}

    /// A [`Handle::wake`](crate::Handle::wake) from another thread: take what it
    /// queued for you (in a bounded queue of your own) and send what fits. No callback
    /// of a connection is running, so data sent from here is subject to
    /// [`DriverConfig::slow_consumer`](crate::DriverConfig::slow_consumer).
    fn on_wake(&mut self, ctx: &mut Context<'_>) {}

    /// The connection is over (called once per connection the loop took on). `id` is
    /// invalid afterwards.
    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, why: Disconnect) {}

    /// Accepting failed with something other than `WouldBlock`, typically EMFILE or
    /// ENFILE (out of file descriptors). The loop retries on its own: every 50 ms, and at
    /// once whenever one of its connections is removed. Called at most once per second
    /// (a library does not print; a server may log it).
    fn on_accept_error(&mut self, ctx: &mut Context<'_>, error: &io::Error) {}
}

/// What a [`Handler`] can do while the loop calls it.
pub struct Context<'a> {
    pub(crate) conns: &'a mut Conns,
    pub(crate) registry: &'a Registry,
    /// The connection whose callback is running, if any: sends to it are replies, not
    /// subject to the slow-consumer policy (backpressure covers them).
    pub(crate) current: Option<ConnId>,
}

impl Context<'_> {
    fn with_open(
        &mut self,
        id: ConnId,
        data: bool,
        f: impl FnOnce(&mut Connection) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        if data {
            self.admit(id)?;
        }
        let conn = self.conns.slab.get_mut(id).ok_or(SendError::Closed)?;
        if conn.linger_until.is_some() || conn.evicting || conn.connecting.is_some() {
            return Err(if conn.connecting.is_some() {
                SendError::NotOpen
            } else {
                SendError::Closed
            });
        }
        let sent = f(&mut conn.core);
        if conn.core.is_send_blocked() {
            // The caller has seen (or can see) the buffer full: tell it when it drains.
            conn.owed_writable = true;
        }
        sent?;
        self.conns.dirty.push(id);
        Ok(())
    }

    /// The slow-consumer policy for a data message to `id` (see
    /// [`DriverConfig::slow_consumer`](crate::DriverConfig::slow_consumer)).
    fn admit(&mut self, id: ConnId) -> Result<(), SendError> {
        if self.current == Some(id) {
            return Ok(());
        }
        let policy = self.conns.config.slow_consumer;
        let conn = self.conns.slab.get_mut(id).ok_or(SendError::Closed)?;
        if conn.linger_until.is_some() || conn.evicting {
            return Err(SendError::Closed);
        }
        if conn.core.transmit_len() < policy.max_queued {
            return Ok(());
        }
        match policy.action {
            SlowConsumerAction::Close(code) => {
                conn.evicting = true;
                self.conns.evictions.push((id, code));
                Err(SendError::Closed)
            }
            _ => {
                conn.dropped = conn.dropped.saturating_add(1);
                self.conns.dropped_total = self.conns.dropped_total.saturating_add(1);
                Err(SendError::Blocked)
            }
        }
    }

    /// Queues `message` to `id` (see [`Connection::send`]): an owned payload, so a
    /// received message goes back or on to other connections without a copy. A text or
    /// binary message to a connection other than the one whose callback is running is
    /// subject to [`DriverConfig::slow_consumer`](crate::DriverConfig::slow_consumer).
    pub fn send(&mut self, id: ConnId, message: Message) -> Result<(), SendError> {
        let data = matches!(message, Message::Text(_) | Message::Binary(_));
        self.with_open(id, data, |c| c.send(message))
    }

    /// Queues a text message to `id`, copied from `text`.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.with_open(id, true, |c| c.send_text(text))
    }

    /// Queues a binary message to `id`, copied from `data`.
    pub fn send_binary(&mut self, id: ConnId, data: &[u8]) -> Result<(), SendError> {
        self.with_open(id, true, |c| c.send_binary(data))
    }

    /// How many data messages the slow-consumer policy
    /// ([`SlowConsumerAction::Drop`]) skipped for `id` (`None` if `id` is gone).
    pub fn dropped_messages(&self, id: ConnId) -> Option<u64> {
        self.conns.slab.get(id).map(|c| c.dropped)
    }

    /// How many data messages the slow-consumer policy skipped on this loop, all
    /// connections together.
    pub fn dropped_messages_total(&self) -> u64 {
        self.conns.dropped_total
    }

    /// The sum of [`Connection::buffered_bytes`] over all connections, as last updated
    /// (the figure [`DriverConfig::max_memory`](crate::DriverConfig::max_memory) bounds).
    pub fn buffered_bytes(&self) -> usize {
        self.conns.buffered_total
    }

    /// Starts the closing handshake on `id`.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.with_open(id, false, |c| c.close(code, reason))
    }

    /// Sends `message` to every open connection except `except`; returns how many took
    /// it (blocked peers are skipped: a slow reader must not hold back the room; those
    /// over [`DriverConfig::slow_consumer`](crate::DriverConfig::slow_consumer)'s
    /// threshold are closed or skipped as it says). The payload is shared, not copied,
    /// between the connections (a server does not mask).
    pub fn broadcast(&mut self, message: &Message, except: Option<ConnId>) -> usize {
        let ids: Vec<ConnId> = self.open_connections();
        ids.into_iter()
            .filter(|&id| Some(id) != except)
            .filter(|&id| self.send(id, message.clone()).is_ok())
            .count()
    }

    /// The ids of all connections whose handshake completed and that are not closing.
    pub fn open_connections(&self) -> Vec<ConnId> {
        self.conns
            .slab
            .ids()
            .filter(|&id| {
                self.conns.slab.get(id).is_some_and(|c| {
                    c.linger_until.is_none()
                        && !c.evicting
                        && c.connecting.is_none()
                        && c.core.state() == State::Open
                })
            })
            .collect()
    }

    /// The core connection behind `id`, to inspect its state.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conns.slab.get(id).map(|c| &c.core)
    }

    /// The peer's address.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns.slab.get(id).map(|c| c.peer)
    }

    /// Opens a client connection (see [`EventLoop::connect`](crate::EventLoop::connect):
    /// this blocks the loop while resolving the host name, not while connecting).
    pub fn connect(&mut self, request: ClientRequest) -> io::Result<ConnId> {
        self.conns.connect(self.registry, request)
    }

    /// Stops the loop gracefully (see [`Handle::stop`](crate::Handle::stop)).
    pub fn stop(&mut self) {
        self.conns.stop_requested = true;
    }
}
