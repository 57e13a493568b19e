//! [`WebSocketStream`]: both halves in one value, [`split`](WebSocketStream::split) into
//! them (and [`reunite`](WebSocketReader::reunite)d), and the opening handshake driven
//! through the reader's step.

use core::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ::tokio::io::{AsyncRead, AsyncWrite};
use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_sink::Sink;

use crate::reader::{Item, WebSocketReader};
use crate::shared::{READER, Shared};
use crate::writer::WebSocketWriter;
use crate::{Error, Message, TrySendError, now};
use wsengine::frame::CloseFrame;
use wsengine::handshake::{Accept, Reject, Request, Response};
use wsengine::{
    CloseCode, Config, Connection, HandshakeError, Negotiated, PreparedMessage, Role, State,
};

/// A WebSocket connection over a tokio stream: a [`Stream`] of received [`Message`]s
/// and a [`Sink`] of messages to send. Open one with [`accept`](super::accept),
/// [`connect`](super::connect), [`client`](super::client) or
/// [`from_upgraded`](Self::from_upgraded). See the [module docs](super) for
/// cancellation safety, the split halves and timers.
pub struct WebSocketStream<S> {
    pub(crate) writer: WebSocketWriter<S>,
    pub(crate) reader: WebSocketReader<S>,
}

impl<S> fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("core", &self.reader.shared.lock().core)
            .finish_non_exhaustive()
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
        let shared = Arc::new(Shared::new(core, write));
        Self {
            writer: WebSocketWriter {
                shared: Arc::clone(&shared),
                held: None,
            },
            reader: WebSocketReader::new(shared, read),
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
                    // The 101 (or a client's request) must still be written. The core
                    // stopped its handshake timer when it opened, so a peer that never
                    // reads it is bounded here: by the handshake timeout, as the deadline
                    // of these writes (`until`, moved on by every write that makes
                    // progress), and by keepalive if configured.
                    if inner.core.wants_write()
                        && let Some(timeout) = inner.core.config().handshake_timeout
                    {
                        let deadline = now().checked_add(timeout);
                        if inner.until.is_none() {
                            inner.until = deadline;
                        }
                    }
                    inner.tick(&shared.fan, &shared.fan_waker, READER);
                    if let Some(e) = inner.abandoned() {
                        drop(inner);
                        shared.fan.clear(READER);
                        return Poll::Ready(Err(match e {
                            Error::ConnectionClosed => Error::Connection(wsengine::Error::Timeout(
                                wsengine::Timeout::Handshake,
                            )),
                            e => e,
                        }));
                    }
                    let flushed = ready!(inner.flush(&shared.fan, &shared.fan_waker, READER));
                    if inner.core.state() == State::Open {
                        // Written: the deadline was the handshake's, not the end's.
                        inner.until = None;
                    }
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
    /// `send` is called if the send buffer has room ([`Config::max_send_buffer`]), so
    /// dropping the future neither loses nor repeats it; while the buffer is full, the
    /// send waits for room first, and dropping it then drops the message, unsent (see
    /// the [module docs](super)). Returns an error once the message cannot be written:
    /// the connection failed or ended first ([`Error::Connection`], [`Error::Io`],
    /// [`Error::ConnectionClosed`]). Same as futures-util's `SinkExt::send`.
    pub fn send(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> + '_ {
        self.writer.send(message)
    }

    /// Hands `message` to the core now if it takes it, never waiting: `Ok` once it is
    /// queued; [`TrySendError::Full`] with the message, untouched and not queued, while
    /// the send buffer is full ([`Config::max_send_buffer`] bytes or more wait for the
    /// transport: the peer reads slowly or not at all); [`TrySendError::Refused`] with
    /// the error [`send`](Self::send) gives when the connection failed or is closing, or
    /// the message is invalid. A Close always fits, as for `send`.
    ///
    /// The call writes nothing: the bytes go out when the reader half is next polled
    /// ([`next`](Self::next); a reader already waiting in `next`, in this task or
    /// another, is woken for it), or when [`flush`](Self::flush) or a `send` runs. So
    /// keep polling `next` (as a server does anyway, to see the peer's messages and
    /// Close) or call `flush`; a message handed over and never written ends with the
    /// connection.
    ///
    /// There is no variant that queues above `max_send_buffer`: the core refuses
    /// ([`SendError::Blocked`](wsengine::SendError::Blocked)) so that what one
    /// connection holds stays bounded. For replies that must not be refused where other
    /// messages may be, make `max_send_buffer` the hard limit and keep a lower one of
    /// your own with [`pending_bytes`](Self::pending_bytes) (see the
    /// [module docs](super), "Memory and backpressure").
    pub fn try_send(&mut self, message: Message) -> Result<(), TrySendError> {
        self.writer.try_send(message)
    }

    /// [`try_send`](Self::try_send) for a message encoded once for many connections:
    /// the core queues the prepared frame's bytes without copying them
    /// ([`Connection::send_prepared`], which says which frame goes out with
    /// permessage-deflate). [`TrySendError::Full`] carries no message (the caller still
    /// holds it); a client connection refuses it
    /// ([`SendError::ClientMustMask`](wsengine::SendError::ClientMustMask)). Nothing is
    /// written by the call, as for `try_send`.
    pub fn try_send_prepared(&mut self, message: &PreparedMessage) -> Result<(), TrySendError<()>> {
        self.writer.try_send_prepared(message)
    }

    /// Bytes encoded and waiting for the transport ([`Connection::transmit_len`]): what
    /// the messages handed over and not yet written take, headers included (a shared
    /// prepared frame counted in full). It grows with each hand-over and falls as
    /// writes go out; `max_send_buffer` is the core's limit on it, and an application
    /// may keep a lower one of its own (drop or refuse publications past it, say).
    pub fn pending_bytes(&self) -> usize {
        self.writer.pending_bytes()
    }

    /// Waits until every message handed over so far is written; an error once that can
    /// no longer happen (see [`send`](Self::send)).
    pub fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + '_ {
        self.writer.flush()
    }

    /// Starts the closing handshake (`None`: 1000, Normal Closure) and waits until the
    /// Close frame is written. Keep reading until `next` returns `None`: that is when the
    /// peer's Close has arrived and the transport is shut down. Cancel-safe: the Close is
    /// queued when `close` is called. Returns [`Error::ConnectionClosed`] when the Close
    /// frame can no longer be written (a peer that stopped reading: the close timer
    /// ends the connection), or the connection's failure.
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

    /// For servers holding many mostly quiet connections (a pub/sub hub): when a read
    /// finds nothing more to read and everything received is handled, the core's empty
    /// receive buffers are given back at once ([`Connection::release_recv_buffers`])
    /// instead of at its next timer (the transmit buffer still goes at the timer), and a connection that holds no buffer is read through a small buffer
    /// on the stack (512 bytes), the core allocating only when bytes come. A quiet
    /// connection then holds no buffer between its messages. Off by default: a peer that
    /// sends one message at a time, each after the last was handled, costs an allocation
    /// and a copy of up to 512 bytes per message; a busy one (bytes waiting at each read)
    /// is unaffected.
    pub fn release_buffers_when_idle(&mut self, on: bool) {
        self.reader.release_buffers_when_idle(on);
    }

    /// Bytes of memory the connection holds in buffers right now: the core's
    /// ([`Connection::buffered_bytes`]: the receive buffer, a message being assembled,
    /// what waits for the transport, at most `max_send_buffer` plus one message) and the
    /// adapter's own (read bytes not yet handed to the core, a message the
    /// [`Sink`] took without room). What a host adds up across connections to keep one
    /// memory budget. The adapter keeps no buffer of its own between operations (reads
    /// pass through one buffer per thread), so after a burst an idle connection holds
    /// what its core keeps, and nothing more.
    pub fn buffered_bytes(&self) -> usize {
        // The reader's count is the core's plus its own; the writer adds what it holds.
        let held = self
            .writer
            .held
            .as_ref()
            .map_or(0, crate::writer::message_len);
        self.reader.buffered_bytes().saturating_add(held)
    }

    /// How the connection ended; see [`WebSocketReader::closed`].
    pub fn closed(&self) -> Option<(CloseCode, bool)> {
        self.reader.closed()
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
