//! The loop itself: readiness events, reads into the core, one vectored write per
//! wakeup, the timer heap, the connection cap, lingering closes and graceful shutdown
//! (see the crate docs for what it does for each connection).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::vec::IntoIter;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use wsengine::time::{Duration, Instant};
use wsengine::{
    ClientRequest, CloseCode, Connection, Event, MAX_TRANSMIT_SEGMENTS, Reject, SendError, State,
};

use crate::handle::{Command, Handle, Shared};
use crate::handler::{Context, Decision, Disconnect, Handler};
use crate::slab::Slab;
use crate::tls_layer::{self, Session};
use crate::{ConnId, DriverConfig, TRY_AGAIN_LATER};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Reads per connection per turn of the loop (at most 64 KiB each with the default
/// receive buffer) before the others get theirs. A turn is as long as every busy
/// connection's budget together, and a connection with something new waits up to one
/// turn: a small budget keeps that wait short under a flood, at the cost of one more
/// `epoll_wait` per budget for a bulk reader (the measurements: benches/hostile/README.md).
const READ_BUDGET: usize = 4;
/// With TLS, one read of the budget is as many of rustls' reads (4 KiB at most each) as
/// make this much, so a TLS connection gets about what a plain one gets per turn.
const TLS_READ_BATCH: usize = 64 << 10;

/// The memory budget counts a connection's buffered bytes plus 1/8 of them: what its
/// buffers cost the process beyond their bytes, since allocators hand out blocks in size
/// classes (jemalloc rounds a 64 KiB + 14 B receive buffer, which a queued echo of a 64
/// KiB message keeps alive, up to 80 KiB). Without it, RSS passed `max_memory` under the
/// hostile suite's stuffed attack by the rounding (benches/hostile/README.md).
const ALLOCATOR_SHARE: usize = 8;

/// How long a connection goes without being serviced before the loop gives its empty
/// buffers back (`EventLoop::sweep_idle`).
const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// After accepting failed (EMFILE, ENFILE...), try again this soon (and at once when a
/// connection is removed).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// Accept errors reach the handler at most this often.
const ACCEPT_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A connection that wrote nothing and completed no message for this long makes no
/// progress: the memory budget closes it (1008) before any that does.
const PROGRESS_WINDOW: Duration = Duration::from_secs(1);
/// Beyond its receive buffer, what an idle connection may hold (transmit tail, deflate
/// state) without counting as holding memory for the budget's first round.
const IDLE_SLACK: usize = 16 << 10;

/// A client connection whose TCP connect is under way (non-blocking).
pub(crate) struct Connecting {
    request: ClientRequest,
    /// The resolved addresses not tried yet.
    rest: IntoIter<SocketAddr>,
    /// When the current attempt gives up.
    deadline: Instant,
}

/// One connection: its socket, its core, and the loop's bookkeeping.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    /// TLS between the socket and the core (`wss://`), if any.
    tls: Option<Session>,
    pub(crate) core: Connection,
    pub(crate) peer: SocketAddr,
    /// A readable edge was seen and reads have not hit `WouldBlock` since.
    readable: bool,
    /// The peer's end of stream (or an error) was reported: read until `Ok(0)`, since
    /// no further readiness event will come for it.
    read_closed: bool,
    /// The send buffer is full (`Connection::is_send_blocked`), as the handler last heard
    /// (`on_blocked`, `on_writable`).
    send_blocked: bool,
    /// A send through the `Context` left the buffer full (or was refused): the handler
    /// saw it full and is owed an `on_writable`, even if the flush that follows drains it
    /// before the loop's own check, which then sees no change.
    pub(crate) owed_writable: bool,
    /// Not reading: the send buffer is full (backpressure), unless
    /// `DriverConfig::read_while_send_blocked`.
    paused: bool,
    /// Registered for write readiness.
    writable_interest: bool,
    /// The deadline this connection has in the timer heap.
    deadline: Option<Instant>,
    /// How the connection ended, once the core said so.
    outcome: Option<Disconnect>,
    /// The connection is over: write side shut, discarding input until EOF or then.
    pub(crate) linger_until: Option<Instant>,
    /// The TCP connect is still under way (client).
    pub(crate) connecting: Option<Box<Connecting>>,
    /// The slow-consumer policy chose to close it: the loop does so after the callback.
    pub(crate) evicting: bool,
    /// Data messages the slow-consumer policy skipped for it.
    pub(crate) dropped: u64,
    /// Its share of `Conns::buffered_total`, as last counted.
    accounted: usize,
    /// When it last wrote to its socket or received a message.
    last_progress: Instant,
    /// Serviced since the last idle sweep (see `EventLoop::sweep_idle`).
    active: bool,
    /// In `EventLoop::recently_active`.
    listed: bool,
    /// In `EventLoop::ready` (at most once: see `EventLoop::schedule`).
    queued: bool,
    /// The byte a read took beyond what the core could take (see `EventLoop::service`):
    /// the core gets it before anything read after it.
    carry: Option<u8>,
}

/// Connection bookkeeping shared by the loop and the handler's [`Context`].
pub(crate) struct Conns {
    pub(crate) slab: Slab<Conn>,
    /// Connections whose transmit buffer, timers or state changed outside their own
    /// servicing (sends from the handler for another connection, commands).
    pub(crate) dirty: Vec<ConnId>,
    pub(crate) config: DriverConfig,
    pub(crate) stop_requested: bool,
    /// The sum of `Connection::buffered_bytes` over all connections (each one's
    /// `accounted`), updated whenever a connection is settled or removed.
    pub(crate) buffered_total: usize,
    /// Connections the slow-consumer policy closes once the running callback returns.
    pub(crate) evictions: Vec<(ConnId, CloseCode)>,
    /// Data messages the slow-consumer policy skipped, all connections together.
    pub(crate) dropped_total: u64,
    /// The loop's clock, read once per turn (progress stamps).
    now: Instant,
}

impl Conns {
    fn add(
        &mut self,
        registry: &Registry,
        stream: TcpStream,
        tls: Option<Session>,
        peer: SocketAddr,
        core: Connection,
        connecting: Option<Box<Connecting>>,
    ) -> io::Result<ConnId> {
        let interest = if connecting.is_some() {
            // Writable: the connect finished (or failed).
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let conn = Conn {
            stream,
            tls,
            core,
            peer,
            readable: false,
            read_closed: false,
            send_blocked: false,
            owed_writable: false,
            paused: false,
            writable_interest: connecting.is_some(),
            deadline: None,
            outcome: None,
            linger_until: None,
            connecting,
            evicting: false,
            dropped: 0,
            accounted: 0,
            last_progress: self.now,
            active: false,
            listed: false,
            queued: false,
            carry: None,
        };
        let id = self
            .slab
            .insert(conn)
            .ok_or_else(|| io::Error::other("too many connections"))?;
        let registered = match self.slab.get_mut(id) {
            Some(c) => registry.register(&mut c.stream, Token(id.index as usize), interest),
            None => Err(io::Error::other("connection vanished")),
        };
        if let Err(e) = registered {
            self.slab.remove(id);
            return Err(e);
        }
        self.dirty.push(id);
        Ok(id)
    }

    pub(crate) fn connect(
        &mut self,
        registry: &Registry,
        request: ClientRequest,
    ) -> io::Result<ConnId> {
        // RFC 6455 §4.1 step 5: wss:// runs the handshake over TLS.
        let tls = if request.is_secure() {
            Some(tls_layer::client_session(&mut self.config, request.host())?)
        } else {
            None
        };
        // A core now checks the request at once; the one that runs is made when the TCP
        // connect completes, so its handshake timeout starts then.
        let core = Connection::client(request.clone(), self.config.connection.clone(), self.now)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Name resolution blocks (std has no other); the connects do not.
        let addrs: Vec<SocketAddr> = (request.host(), request.port())
            .to_socket_addrs()?
            .collect();
        let mut rest = addrs.into_iter();
        let (stream, peer) = start_connect(&mut rest)?;
        let connecting = Box::new(Connecting {
            request,
            rest,
            deadline: self.now + self.config.connect_timeout,
        });
        self.add(registry, stream, tls, peer, core, Some(connecting))
    }
}

/// Starts a non-blocking connect to the first of `rest` that takes one.
fn start_connect(rest: &mut IntoIter<SocketAddr>) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for addr in rest.by_ref() {
        match TcpStream::connect(addr) {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The mio event loop. Build it, [`listen`](Self::listen) and/or
/// [`connect`](Self::connect), then [`run`](Self::run).
pub struct EventLoop<H> {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    handler: H,
    conns: Conns,
    shared: Arc<Shared>,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections that still had readable data when their read budget ran out (or
    /// resumed reading), to service on the next turn without waiting for an event. Each
    /// at most once (`Conn::queued`), and each connection is serviced at most once per
    /// turn: every connection gets the same read budget per turn, whatever the mix of
    /// readiness events and leftovers that brought it there.
    ready: Vec<ConnId>,
    /// What a turn services (the listener as `None`): kept between turns so that a turn
    /// allocates nothing.
    touched: Vec<Option<ConnId>>,
    scratch: Vec<u8>,
    shutdown_deadline: Option<Instant>,
    /// Accepting failed for want of descriptors (or the like): try again then.
    accept_retry: Option<Instant>,
    /// When an accept error was last reported to the handler.
    accept_reported: Option<Instant>,
    /// Connections serviced since they were last found idle, for `sweep_idle`.
    recently_active: Vec<ConnId>,
    /// When `sweep_idle` runs next (while `recently_active` is not empty).
    next_sweep: Option<Instant>,
}

impl<H: Handler> EventLoop<H> {
    /// A loop with no listener and no connection yet.
    pub fn new(config: DriverConfig, handler: H) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(Self {
            poll,
            events: Events::with_capacity(1024),
            listener: None,
            handler,
            // Reads after a connection is over are discarded into it (`linger_read`);
            // live connections read into their core's own buffer.
            scratch: vec![0; config.read_chunk.max(1)],
            conns: Conns {
                slab: Slab::new(),
                dirty: Vec::new(),
                config,
                stop_requested: false,
                buffered_total: 0,
                evictions: Vec::new(),
                dropped_total: 0,
                now: Instant::now(),
            },
            shared: Arc::new(Shared {
                commands: Mutex::new(Vec::new()),
                waker,
            }),
            timers: BinaryHeap::new(),
            ready: Vec::new(),
            touched: Vec::new(),
            shutdown_deadline: None,
            accept_retry: None,
            recently_active: Vec::new(),
            next_sweep: None,
            accept_reported: None,
        })
    }

    /// Listens on `addr` with [`DriverConfig::backlog`] and returns the bound address
    /// (port 0 picks a free port).
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // As std and mio do on Unix: a restarted server can bind while old connections
        // sit in TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        let backlog = i32::try_from(self.conns.config.backlog).unwrap_or(i32::MAX);
        socket.listen(backlog)?;
        socket.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(socket.into());
        self.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let local = listener.local_addr()?;
        self.listener = Some(listener);
        Ok(local)
    }

    /// Opens a client connection to `request`'s URL: resolves the host (IPv4 and IPv6;
    /// resolution blocks), then connects without blocking, trying each address in turn
    /// for at most [`DriverConfig::connect_timeout`] each (a timer of the loop), and
    /// sends the opening handshake once connected. An error here means the request is
    /// invalid, the name did not resolve or no address could even start a connect; a
    /// connect that fails later ends the connection with [`Disconnect::Io`]
    /// (reported to [`Handler::on_close`]).
    pub fn connect(&mut self, request: ClientRequest) -> io::Result<ConnId> {
        self.conns.connect(self.poll.registry(), request)
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Consumes the loop, returning the handler.
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// How many connections the loop holds (including ones lingering after close).
    pub fn connection_count(&self) -> usize {
        self.conns.slab.len()
    }

    /// The sum of [`Connection::buffered_bytes`] over all connections, as last updated
    /// (what [`DriverConfig::max_memory`] bounds).
    pub fn buffered_bytes(&self) -> usize {
        self.conns.buffered_total
    }

    /// Runs until stopped (graceful shutdown done), or, with no listener, until no
    /// connection is left.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            self.conns.now = now;
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_all();
            }
            self.run_commands();
            self.flush_dirty();
            if self.conns.stop_requested && self.shutdown_deadline.is_none() {
                self.begin_shutdown(now);
            }
            self.fire_timers(now);
            self.sweep_idle(now);
            self.flush_dirty();
            self.enforce_budget();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.slab.is_empty() {
                    return Ok(());
                }
                if now >= deadline {
                    self.drop_all();
                    return Ok(());
                }
            } else if self.listener.is_none() && self.conns.slab.is_empty() {
                return Ok(());
            }
            let timeout = if self.ready.is_empty() {
                self.next_timeout(now)
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.conns.now = Instant::now();
            let mut touched = std::mem::take(&mut self.touched);
            for event in self.events.iter() {
                match event.token() {
                    LISTENER => touched.push(None),
                    WAKER => {}
                    Token(index) => {
                        if let Some(id) = self.conns.slab.id_at(index) {
                            if let Some(c) = self.conns.slab.get_mut(id) {
                                if event.is_read_closed() || event.is_error() {
                                    c.read_closed = true;
                                }
                                if event.is_readable() || c.read_closed {
                                    c.readable = true;
                                }
                                // Already queued: serviced once, from `ready` below.
                                if c.queued {
                                    continue;
                                }
                            }
                            touched.push(Some(id));
                        }
                    }
                }
            }
            for id in self.ready.drain(..) {
                if let Some(c) = self.conns.slab.get_mut(id) {
                    c.queued = false;
                    touched.push(Some(id));
                }
            }
            for &t in &touched {
                match t {
                    None => self.accept_all(),
                    Some(id) => self.service(id),
                }
                self.flush_dirty();
                self.enforce_budget();
            }
            touched.clear();
            self.touched = touched;
        }
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        let earliest = [
            timer,
            self.shutdown_deadline,
            self.accept_retry,
            self.next_sweep,
        ]
        .into_iter()
        .flatten()
        .min();
        earliest.map(|t| t.saturating_duration_since(now))
    }

    fn parts(&mut self, current: Option<ConnId>) -> (&mut H, Context<'_>) {
        let Self {
            handler,
            conns,
            poll,
            ..
        } = self;
        (
            handler,
            Context {
                conns,
                registry: poll.registry(),
                current,
            },
        )
    }

    fn run_commands(&mut self) {
        let commands = core::mem::take(
            &mut *self
                .shared
                .commands
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        // Commands for a connection still in its handshake wait for it to open, in order.
        let mut waiting: Vec<Command> = Vec::new();
        for command in commands {
            let target = command.target();
            if target.is_some() && waiting.iter().any(|w| w.target() == target) {
                waiting.push(command);
                continue;
            }
            // A Handle's send is the application's own, as a reply is: not subject to
            // the slow-consumer policy (a blocked connection refuses it as before).
            let (handler, mut ctx) = self.parts(target);
            // A command for a connection that is gone or cannot send is dropped: the
            // sender raced with the connection's end, which it learns through on_close.
            let result = match &command {
                Command::Stop => {
                    ctx.stop();
                    Ok(())
                }
                Command::Wake => {
                    handler.on_wake(&mut ctx);
                    Ok(())
                }
                Command::Send(id, message) => ctx.send(*id, message.clone()),
                Command::Close(id, code, reason) => ctx.close(*id, *code, reason),
            };
            if result == Err(SendError::NotOpen) {
                waiting.push(command);
            }
        }
        if !waiting.is_empty() {
            let mut shared = self
                .shared
                .commands
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            waiting.append(&mut shared);
            *shared = waiting;
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        self.shutdown_deadline = Some(now + self.conns.config.shutdown_timeout);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let ids: Vec<ConnId> = self.conns.slab.ids().collect();
        for id in ids {
            let Some(c) = self.conns.slab.get_mut(id) else {
                continue;
            };
            if c.linger_until.is_some() {
                continue;
            }
            match c.core.state() {
                // RFC 6455 §7.4.1: 1001 "indicates that an endpoint is 'going away', such
                // as a server going down".
                State::Open => {
                    let _ = c.core.close(CloseCode::GOING_AWAY, "server shutting down");
                    self.conns.dirty.push(id);
                }
                State::Handshake => self.finish(id, Disconnect::ShutdownTimeout),
                _ => self.conns.dirty.push(id),
            }
        }
    }

    fn drop_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.slab.ids().collect();
        for id in ids {
            self.finish(id, Disconnect::ShutdownTimeout);
            self.remove(id);
        }
    }

    fn accept_all(&mut self) {
        self.accept_retry = None;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.slab.len() >= self.conns.config.max_connections {
                        // Refused cleanly: an HTTP answer, then close.
                        let _ = stream.write(
                            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                        );
                        let _ = stream.shutdown(Shutdown::Write);
                        continue;
                    }
                    let _ = stream.set_nodelay(self.conns.config.nodelay);
                    // The core's handshake timeout starts now, so it covers the TLS
                    // handshake too.
                    let Ok(tls) = tls_layer::server_session(&self.conns.config) else {
                        continue;
                    };
                    let core =
                        Connection::server(self.conns.config.connection.clone(), self.conns.now);
                    let _ = self
                        .conns
                        .add(self.poll.registry(), stream, tls, peer, core, None);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of file descriptors and the like. The listener is edge-triggered:
                // clients already in the backlog raise no new event, so try again on a
                // timer (and as soon as a connection of ours frees a descriptor).
                Err(e) => {
                    let now = Instant::now();
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    let report = self
                        .accept_reported
                        .is_none_or(|t| now.saturating_duration_since(t) >= ACCEPT_REPORT_INTERVAL);
                    if report {
                        self.accept_reported = Some(now);
                        let (handler, mut ctx) = self.parts(None);
                        handler.on_accept_error(&mut ctx, &e);
                    }
                    return;
                }
            }
        }
    }

    /// Reads, dispatches events, writes and closes for one connection.
    fn service(&mut self, id: ConnId) {
        self.mark_active(id);
        let mut budget = READ_BUDGET;
        loop {
            // Over the memory budget, nobody reads more until `enforce_budget` (at the
            // top of the next turn) has closed the largest holders: the budget is
            // overshot by one read at most, not by a whole turn of everyone's reads.
            let over_budget = self.conns.buffered_total > self.conns.config.max_memory;
            let Some(c) = self.conns.slab.get_mut(id) else {
                return;
            };
            if c.linger_until.is_some() {
                self.linger_read(id);
                return;
            }
            if c.connecting.is_some() {
                if !self.check_connect(id) {
                    return;
                }
                continue;
            }
            if over_budget && c.readable && !c.paused {
                self.schedule(id);
                break;
            }
            let mut read_something = false;
            let may_read = c.readable && !c.paused && budget > 0;
            if let Some(session) = c.tls.as_mut() {
                // TLS: decrypted bytes left from an earlier read go first (the core had
                // no room for them then); only when rustls holds none is the socket read.
                if !c.paused {
                    let mut moved = session.deliver(&mut c.core);
                    if moved == 0 && may_read && !session.at_end() {
                        budget -= 1;
                        // rustls reads at most 4 KiB at a time: read records on until
                        // about what one plain read takes (TLS_READ_BATCH), the core
                        // has no room for more, or the socket is drained, and only then
                        // hand the events to the handler (not once per 4 KiB).
                        let mut batch = 0;
                        loop {
                            match session.receive(&mut c.stream) {
                                Ok(0) => {
                                    c.readable = false;
                                    break;
                                }
                                Ok(n) => {
                                    read_something = true;
                                    batch += n;
                                    moved += session.deliver(&mut c.core);
                                    // A short read drained the socket (as for plain
                                    // reads: Linux's edge-triggered epoll reports what
                                    // comes next), unless its end came with this event.
                                    if cfg!(target_os = "linux")
                                        && session.drained()
                                        && !c.read_closed
                                    {
                                        c.readable = false;
                                        break;
                                    }
                                    if batch >= TLS_READ_BATCH || session.has_plaintext() {
                                        break;
                                    }
                                }
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                    c.readable = false;
                                    break;
                                }
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                                    read_something = true;
                                }
                                Err(e) => {
                                    self.finish(id, Disconnect::Io(e));
                                    self.remove(id);
                                    return;
                                }
                            }
                        }
                    }
                    read_something |= moved > 0;
                    if session.at_end() && c.core.state() != State::Closed {
                        c.readable = false;
                        c.core.recv_eof();
                    }
                }
            } else if may_read
                && let Some(byte) = c.carry
                && c.core.recv(&[byte]) == 1
            {
                // The byte carried from the last read goes first: `dispatch` has
                // drained the core since, so it has room.
                c.carry = None;
            }
            // The read goes straight into the core's buffer (`recv_buf`), plus one byte
            // beyond it: a read that fills no more than the core's room is short, so it
            // drained the socket, even when it brought exactly what the room holds (a
            // message of the receive buffer's size at one in flight, or the rest of a
            // large frame read into its message). Without the extra byte such a read
            // looked full and cost a read that only said WouldBlock. The extra byte is
            // carried to the next read. No room, or a carry the core could not take,
            // cannot happen once `dispatch` has drained the core; if it did, nothing is
            // read past the carry, and no zero-length read is made (its 0 would look
            // like the end of stream).
            if may_read && c.carry.is_none() && c.tls.is_none() {
                let room = c.core.recv_buf();
                let room_len = room.len();
                if room_len == 0 {
                    c.core.commit_recv(0);
                } else {
                    budget -= 1;
                    let mut extra = [0u8; 1];
                    let result = c
                        .stream
                        .read_vectored(&mut [IoSliceMut::new(room), IoSliceMut::new(&mut extra)]);
                    let n = *result.as_ref().unwrap_or(&0);
                    c.core.commit_recv(n.min(room_len));
                    match result {
                        Ok(0) => {
                            c.readable = false;
                            c.core.recv_eof();
                        }
                        Ok(n) => {
                            if n > room_len {
                                c.carry = Some(extra[0]);
                            }
                            read_something = true;
                            // A short read drained the socket: skip the read that would
                            // only say WouldBlock (one syscall per wakeup saved). Safe
                            // with Linux's edge-triggered epoll, which reports every new
                            // arrival after this read (tokio makes the same call) -- but
                            // not an end of stream that came with this very event: then
                            // read on to the 0.
                            if cfg!(target_os = "linux") && n <= room_len && !c.read_closed {
                                c.readable = false;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => read_something = true,
                        Err(e) => {
                            self.finish(id, Disconnect::Io(e));
                            self.remove(id);
                            return;
                        }
                    }
                }
            }
            self.dispatch(id);
            if !self.settle(id) {
                return;
            }
            let Some(c) = self.conns.slab.get(id) else {
                return;
            };
            let more =
                (c.readable || c.tls.as_ref().is_some_and(Session::has_plaintext)) && !c.paused;
            if !more || !read_something {
                break;
            }
            if budget == 0 {
                self.schedule(id);
                break;
            }
        }
    }

    /// Services `id` again on the next turn, once however often this is called before it.
    /// Without the check, a connection whose read budget ran out on every turn (a peer
    /// that floods us) gained one more entry per turn -- from its readiness event and
    /// from each earlier entry -- so turn N read it N times over and the turns grew
    /// without bound, and every other connection waited that long for its turn (the
    /// measurements: benches/hostile/README.md, "Canary latency under a flood").
    fn schedule(&mut self, id: ConnId) {
        if let Some(c) = self.conns.slab.get_mut(id)
            && !c.queued
        {
            c.queued = true;
            self.ready.push(id);
        }
    }

    /// Hands the core's events to the handler.
    fn dispatch(&mut self, id: ConnId) {
        loop {
            let Some(c) = self.conns.slab.get_mut(id) else {
                return;
            };
            let event = match c.core.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => {
                    c.outcome = Some(Disconnect::Failed(e));
                    return;
                }
            };
            match event {
                Event::Request(request) => {
                    let (handler, mut ctx) = self.parts(Some(id));
                    let decision = handler.on_request(&mut ctx, id, &request);
                    let Some(c) = self.conns.slab.get_mut(id) else {
                        return;
                    };
                    let opened = match decision {
                        Decision::Accept(accept) => match c.core.accept(accept) {
                            Ok(()) => true,
                            Err(_) => {
                                // The handler chose an invalid answer (a subprotocol that
                                // was not offered, a bad header): a server error, not a
                                // silent upgrade.
                                let _ = c.core.reject(Reject::new(500));
                                c.outcome = Some(Disconnect::Rejected);
                                false
                            }
                        },
                        Decision::Reject(reject) => {
                            if c.core.reject(reject).is_err() {
                                let _ = c.core.reject(Reject::new(500));
                            }
                            c.outcome = Some(Disconnect::Rejected);
                            false
                        }
                    };
                    self.conns.dirty.push(id);
                    if opened {
                        let (handler, mut ctx) = self.parts(Some(id));
                        handler.on_open(&mut ctx, id, None);
                    }
                }
                Event::Accepted(response) => {
                    let (handler, mut ctx) = self.parts(Some(id));
                    handler.on_open(&mut ctx, id, Some(&response));
                }
                Event::Closed { code, clean } => {
                    c.outcome = Some(Disconnect::Closed { code, clean });
                }
                event => {
                    if matches!(event, Event::Text { .. } | Event::Binary { .. }) {
                        c.last_progress = self.conns.now;
                    }
                    let (handler, mut ctx) = self.parts(Some(id));
                    handler.on_event(&mut ctx, id, event);
                }
            }
        }
    }

    /// After anything touched a connection: write, update backpressure, interest and
    /// timers, and close the transport when the core says so. Returns false if the
    /// connection is gone or lingering.
    fn settle(&mut self, id: ConnId) -> bool {
        if !self.flush(id) {
            return false;
        }
        let Some(c) = self.conns.slab.get_mut(id) else {
            return false;
        };
        // The memory budget's count, O(1), with the allocator's share (see
        // `ALLOCATOR_SHARE`).
        let tls_bytes = c.tls.as_ref().map_or(0, Session::buffered_bytes);
        let bytes = c.core.buffered_bytes().saturating_add(tls_bytes);
        let bytes = bytes.saturating_add(bytes / ALLOCATOR_SHARE);
        self.conns.buffered_total = (self.conns.buffered_total - c.accounted) + bytes;
        c.accounted = bytes;
        if c.linger_until.is_some() || c.connecting.is_some() {
            let connecting = c.connecting.is_some();
            self.update_timer(id);
            return connecting;
        }
        if c.core.should_close_transport() {
            let why = c
                .outcome
                .take()
                .unwrap_or_else(|| match c.core.poll_event() {
                    Err(e) => Disconnect::Failed(e),
                    _ => Disconnect::Closed {
                        code: CloseCode::ABNORMAL,
                        clean: false,
                    },
                });
            self.finish(id, why);
            return false;
        }
        let blocked = c.core.is_send_blocked();
        let was_blocked = c.send_blocked;
        c.send_blocked = blocked;
        let was_paused = c.paused;
        c.paused = blocked && !self.conns.config.read_while_send_blocked;
        let resume = was_paused && !c.paused && c.readable;
        let owed_writable = !blocked && std::mem::take(&mut c.owed_writable);
        let wants_write = c.core.wants_write() || c.tls.as_ref().is_some_and(Session::wants_write);
        if wants_write != c.writable_interest {
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(id.index as usize), interest)
                .is_ok()
            {
                c.writable_interest = wants_write;
            }
        }
        self.update_timer(id);
        if blocked && !was_blocked {
            let (handler, mut ctx) = self.parts(Some(id));
            handler.on_blocked(&mut ctx, id);
        } else if !blocked && (was_blocked || owed_writable) {
            let (handler, mut ctx) = self.parts(Some(id));
            handler.on_writable(&mut ctx, id);
        }
        if resume {
            self.schedule(id);
        }
        true
    }

    /// Writes the transmit buffer until it is empty or the socket would block. Returns
    /// false if the connection was dropped on a write error.
    fn flush(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return false;
        };
        if c.connecting.is_some() {
            return true;
        }
        if let Some(session) = c.tls.as_mut() {
            return match session.flush(&mut c.stream, &mut c.core) {
                Ok(progress) => {
                    if progress {
                        c.last_progress = self.conns.now;
                    }
                    true
                }
                Err(e) => {
                    self.finish(id, Disconnect::Io(e));
                    self.remove(id);
                    false
                }
            };
        }
        loop {
            // One (vectored) write for everything queued: the replies to a whole read
            // leave in as few syscalls as possible, large payloads without a copy.
            let mut slices = [IoSlice::new(&[]); MAX_TRANSMIT_SEGMENTS];
            let count = c.core.poll_transmit_vectored(&mut slices);
            let written = match count {
                0 => return true,
                1 => c.stream.write(&slices[0]),
                _ => c.stream.write_vectored(&slices[..count]),
            };
            match written {
                Ok(0) => {
                    self.finish(id, Disconnect::Io(io::ErrorKind::WriteZero.into()));
                    self.remove(id);
                    return false;
                }
                Ok(n) => {
                    c.core.advance_transmit(n);
                    c.last_progress = self.conns.now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.finish(id, Disconnect::Io(e));
                    self.remove(id);
                    return false;
                }
            }
        }
    }

    fn flush_dirty(&mut self) {
        while let Some((id, code)) = self.conns.evictions.pop() {
            self.evict(id, Disconnect::SlowConsumer { code });
        }
        while let Some(id) = self.conns.dirty.pop() {
            // Sent to from elsewhere (a broadcast): its transmit buffer is in use.
            self.mark_active(id);
            self.dispatch(id);
            self.settle(id);
        }
    }

    fn update_timer(&mut self, id: ConnId) {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return;
        };
        let want = c
            .linger_until
            .or_else(|| c.connecting.as_ref().map(|k| k.deadline))
            .or_else(|| c.core.poll_timeout());
        if want != c.deadline {
            c.deadline = want;
            if let Some(t) = want {
                self.timers.push(Reverse((t, id)));
            }
        }
    }

    /// Notes that `id` is busy, so the next idle sweep leaves its buffers alone (a flag
    /// and, once per idle period, a push: nothing per read).
    fn mark_active(&mut self, id: ConnId) {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return;
        };
        c.active = true;
        if !c.listed {
            c.listed = true;
            self.recently_active.push(id);
            if self.next_sweep.is_none() {
                self.next_sweep = Some(self.conns.now + IDLE_RELEASE);
            }
        }
    }

    /// Gives the buffers of connections that went quiet back: every connection serviced
    /// since the last sweep is looked at once per [`IDLE_RELEASE`]; one not serviced in
    /// that period gets `handle_timeout` (which releases the core's empty buffers) and
    /// leaves the list. So an idle connection that has exchanged messages holds no more
    /// than one that never did, without an allocation per read (the core keeps its
    /// buffers between reads) and without a scan of the idle ones.
    fn sweep_idle(&mut self, now: Instant) {
        if self.next_sweep.is_none_or(|t| t > now) {
            return;
        }
        let mut list = std::mem::take(&mut self.recently_active);
        let mut idle = Vec::new();
        list.retain(|&id| {
            let Some(c) = self.conns.slab.get_mut(id) else {
                return false;
            };
            if !c.listed {
                return false; // removed, and the slot reused by a connection not listed
            }
            if std::mem::take(&mut c.active) {
                return true;
            }
            c.listed = false;
            if c.linger_until.is_none() && c.connecting.is_none() {
                idle.push(id);
            }
            false
        });
        self.recently_active = list;
        for id in idle {
            if let Some(c) = self.conns.slab.get_mut(id) {
                c.core.handle_timeout(now);
                self.dispatch(id);
                self.settle(id);
            }
        }
        self.next_sweep = (!self.recently_active.is_empty()).then(|| now + IDLE_RELEASE);
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                return;
            }
            self.timers.pop();
            let Some(c) = self.conns.slab.get_mut(id) else {
                continue;
            };
            if c.deadline != Some(t) {
                continue; // stale entry
            }
            c.deadline = None;
            if c.linger_until.is_some() {
                self.remove(id);
                continue;
            }
            if c.connecting.is_some() {
                self.next_address(id, io::ErrorKind::TimedOut.into());
                continue;
            }
            c.core.handle_timeout(now);
            self.dispatch(id);
            self.settle(id);
        }
    }

    /// The connection is over for the handler: report it, then shut the socket down. A
    /// server lingers to let its last bytes reach the peer (see the module docs).
    fn finish(&mut self, id: ConnId, why: Disconnect) {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return;
        };
        if c.linger_until.is_some() {
            return;
        }
        // The TLS stream ends with close_notify (RFC 8446 §6.1), so the peer can tell
        // this end from a truncation.
        if let Some(session) = c.tls.as_mut() {
            session.close_notify(&mut c.stream);
        }
        let lingers =
            c.core.role() == wsengine::Role::Server && c.stream.shutdown(Shutdown::Write).is_ok();
        c.linger_until = Some(Instant::now() + self.conns.config.linger);
        c.readable = true;
        let (handler, mut ctx) = self.parts(Some(id));
        handler.on_close(&mut ctx, id, why);
        if lingers && self.conns.slab.get(id).is_some() {
            self.update_timer(id);
            self.linger_read(id);
        } else {
            self.remove(id);
        }
    }

    /// Reads and discards until EOF, then drops the connection.
    fn linger_read(&mut self, id: ConnId) {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return;
        };
        loop {
            match c.stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.remove(id);
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(mut c) = self.conns.slab.remove(id) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.conns.buffered_total -= c.accounted;
            // A descriptor is free (once `c` drops): clients waiting in the backlog
            // after an accept error get it now.
            if self.accept_retry.is_some() {
                self.accept_retry = Some(self.conns.now);
            }
        }
    }

    /// A connect under way became ready: true once connected (the handshake can go),
    /// false while still connecting or once it failed.
    fn check_connect(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return false;
        };
        let failed = match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => None,
                // Not yet (a spurious wakeup): wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failed {
            self.next_address(id, e);
            return false;
        }
        let Some(connecting) = c.connecting.take() else {
            return true;
        };
        let _ = c.stream.set_nodelay(self.conns.config.nodelay);
        // The request was checked when the connect started (else the first core stays):
        // a fresh core, so the handshake timeout starts now.
        if let Ok(core) = Connection::client(
            connecting.request,
            self.conns.config.connection.clone(),
            self.conns.now,
        ) {
            c.core = core;
        }
        c.last_progress = self.conns.now;
        c.readable = true;
        true
    }

    /// The current connect attempt failed with `error`: try the next address, or end the
    /// connection with that error when none is left.
    fn next_address(&mut self, id: ConnId, error: io::Error) {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return;
        };
        let Some(connecting) = c.connecting.as_mut() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        match start_connect(&mut connecting.rest) {
            Ok((stream, peer)) => {
                connecting.deadline = self.conns.now + self.conns.config.connect_timeout;
                c.stream = stream;
                c.peer = peer;
                let registered = self.poll.registry().register(
                    &mut c.stream,
                    Token(id.index as usize),
                    Interest::READABLE | Interest::WRITABLE,
                );
                match registered {
                    Ok(()) => self.update_timer(id),
                    Err(e) => {
                        self.finish(id, Disconnect::Io(e));
                    }
                }
            }
            // Every address was tried: report the last attempt's error (what the
            // blocking connect did), not "no address".
            Err(_) => self.finish(id, Disconnect::Io(error)),
        }
    }

    /// Closes `id` at once, for peers that do not read and so would never get to a Close
    /// frame queued behind what they did not read: reports `why` (with the `code` it
    /// stands for) and drops the connection. The socket is reset (`SO_LINGER` 0), so the
    /// kernel frees its send queue too instead of trying to deliver it for minutes.
    fn evict(&mut self, id: ConnId, why: Disconnect) {
        let Some(c) = self.conns.slab.get_mut(id) else {
            return;
        };
        if c.linger_until.is_none() {
            c.linger_until = Some(self.conns.now);
            let (handler, mut ctx) = self.parts(Some(id));
            handler.on_close(&mut ctx, id, why);
        }
        // (Otherwise already reported: only its buffers are left to free.)
        if let Some(c) = self.conns.slab.get(id) {
            let _ = socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
        }
        self.remove(id);
    }

    /// Over [`DriverConfig::max_memory`]: closes the connections holding the most until
    /// the sum is back under it, those making no progress first (1008), then, if every
    /// holder is making progress, the largest (1013). Scans only when over.
    fn enforce_budget(&mut self) {
        let budget = self.conns.config.max_memory;
        if self.conns.buffered_total <= budget {
            return;
        }
        let now = self.conns.now;
        // What an idle connection may hold: a receive buffer of up to `recv_limit` (kept
        // until it is empty) and a little transmit tail. Above that, or with bytes
        // waiting for its socket, a connection *holds* memory.
        let idle_size = self
            .conns
            .config
            .connection
            .recv_limit()
            .saturating_add(IDLE_SLACK);
        // Stalled holders first (they hold memory without progress: 1008), largest
        // first; then, only if that was not enough, everyone else, largest first (1013).
        let mut victims: Vec<(bool, usize, ConnId)> = self
            .conns
            .slab
            .ids()
            .filter_map(|id| {
                let c = self.conns.slab.get(id)?;
                let stalled = now.saturating_duration_since(c.last_progress) >= PROGRESS_WINDOW;
                let holds = c.core.transmit_len() > 0
                    || c.tls.as_ref().is_some_and(Session::wants_write)
                    || c.accounted > idle_size;
                let stalled_holder = c.linger_until.is_some() || (stalled && holds);
                (c.accounted > 0).then_some((stalled_holder, c.accounted, id))
            })
            .collect();
        victims
            .sort_unstable_by_key(|&(stalled_holder, bytes, _)| Reverse((stalled_holder, bytes)));
        for (stalled_holder, _, id) in victims {
            if self.conns.buffered_total <= budget {
                break;
            }
            // 1008: it holds memory without reading (policy violation); 1013: the server
            // is merely overloaded, try again later.
            let code = if stalled_holder {
                CloseCode::POLICY
            } else {
                TRY_AGAIN_LATER
            };
            self.evict(id, Disconnect::MemoryBudget { code });
        }
        // What the handler sent from its on_close callbacks.
        self.flush_dirty();
    }
}

impl<H> std::fmt::Debug for EventLoop<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("connections", &self.conns.slab.len())
            .finish_non_exhaustive()
    }
}
