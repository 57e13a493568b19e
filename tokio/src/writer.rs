//! [`WebSocketWriter`], the sending half: messages are handed to the core (or its
//! backlog) when a send is called, and the futures and the [`Sink`] only wait for the
//! bytes to be written.

use core::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ::tokio::io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use wsengine::State;
use wsengine::frame::CloseFrame;

use crate::shared::{READER, Shared, WRITER};
use crate::{Error, Message};

/// The sending half: a [`Sink`] of [`Message`]s. See [`WebSocketStream::split`](crate::WebSocketStream::split).
pub struct WebSocketWriter<S> {
    pub(crate) shared: Arc<Shared<S>>,
}

impl<S> fmt::Debug for WebSocketWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketWriter").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite> WebSocketWriter<S> {
    /// Sends a message; see [`WebSocketStream::send`](crate::WebSocketStream::send).
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

    /// Starts the closing handshake; see [`WebSocketStream::close`](crate::WebSocketStream::close).
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
