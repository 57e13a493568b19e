//! `wsengine serve --runtime tokio`: the echo server on the tokio
//! adapter (`wsengine_tokio`), one task per connection on a current-thread runtime.
//! It behaves as the mio server's echo mode: every text and binary message goes back
//! unchanged, Pong and Close replies come from the core, connections past
//! `--max-connections` are answered 503 (after their request is read), `--protocol`
//! chooses the subprotocol, and a [`Stop`] (SIGTERM or SIGINT) drains: the listener
//! closes, every open connection gets a Close with 1001 (going away), and the server
//! waits up to `--drain-timeout` for them to end. With `--tls-cert`, each connection
//! runs its TLS handshake with tokio-rustls first, bounded by the handshake timeout (the
//! core's own starts after it).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use wsengine::{CloseCode, CloseFrame, Config, Reject};
use wsengine_tokio::tls::{self, ServerCertificates, TlsAcceptor};
use wsengine_tokio::{Message, accept_with};

use super::{Level, accept_upgrade, connection_line_allowed, listen_error, max_level};

/// A TLS handshake that has not finished by then fails the connection when the core
/// has no handshake timeout (`--handshake-timeout off`).
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The reason of the Close frame every connection gets when the server stops.
const GOING_AWAY_REASON: &str = "server shutting down";

/// The request to stop, set once from the signal thread (outside the runtime) and seen
/// by the accept loop and every connection's task.
#[derive(Clone)]
pub(crate) struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }

    /// Asks the server to drain and stop.
    pub(crate) fn trigger(&self) {
        self.0.send_replace(true);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Resolves once a stop has been asked for (at once if it already has). The sender
/// lives as long as the server ([`Options::stop`]), so the error case (every sender
/// gone) cannot happen while it runs; it counts as a stop.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// What [`run`] serves.
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) config: Config,
    pub(crate) max_connections: usize,
    /// `--protocol`: the subprotocols this server speaks.
    pub(crate) protocols: Vec<String>,
    pub(crate) certificates: Option<Arc<ServerCertificates>>,
    /// How long to wait for the connections once stopped.
    pub(crate) drain_timeout: Duration,
    pub(crate) stop: Stop,
}

/// Runs the echo server until `options.stop` is triggered and the connections have
/// closed (or the drain timeout is over).
pub(crate) fn run(options: Options) -> io::Result<()> {
    let Options {
        listen,
        config,
        max_connections,
        protocols,
        certificates,
        drain_timeout,
        stop,
    } = options;
    let acceptor = match certificates {
        Some(certificates) => Some(TlsAcceptor::from(tls::server_config(certificates)?)),
        None => None,
    };
    let scheme = if acceptor.is_some() { "wss" } else { "ws" };
    let protocols: Arc<[String]> = protocols.into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| listen_error(listen, &e))?;
        log!(
            Level::Info,
            "listening on {scheme}://{} (Echo, tokio runtime)",
            listener.local_addr()?
        );
        let active = Arc::new(AtomicUsize::new(0));
        // Every task holds a sender: `recv` returns `None` once all have ended.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut stop_rx = stop.subscribe();
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stopped(&mut stop_rx) => break,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    log!(Level::Warn, "accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            next_id += 1;
            let id = next_id;
            // Frames are written whole: no Nagle delay.
            let _ = socket.set_nodelay(true);
            let over_cap = active.fetch_add(1, Ordering::Relaxed) >= max_connections;
            let slot = Slot {
                active: Arc::clone(&active),
                _done: done_tx.clone(),
            };
            let conn = Conn {
                id,
                peer,
                config: config.clone(),
                over_cap,
                protocols: Arc::clone(&protocols),
                stop: stop.subscribe(),
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let Some(acceptor) = acceptor else {
                    return conn.serve(socket).await;
                };
                let limit = conn.config.handshake_timeout.unwrap_or(TLS_HANDSHAKE_LIMIT);
                let mut stop = conn.stop.clone();
                let handshake = tokio::time::timeout(limit, acceptor.accept(socket));
                let result = tokio::select! {
                    result = handshake => result,
                    // Not a WebSocket yet: nothing to say goodbye with.
                    () = stopped(&mut stop) => return,
                };
                match result {
                    Ok(Ok(stream)) => conn.serve(stream).await,
                    Ok(Err(e)) => conn_log!(
                        Level::Warn,
                        "c{id}: {peer}: TLS: {}",
                        tls::describe_io_error(&e)
                    ),
                    Err(_) => conn_log!(Level::Warn, "c{id}: {peer}: TLS handshake timed out"),
                }
            });
        }
        // No new connections from here on; the open ones are closing.
        drop(listener);
        drop(done_tx);
        if tokio::time::timeout(drain_timeout, done_rx.recv())
            .await
            .is_err()
        {
            log!(
                Level::Warn,
                "drain timeout: {} connection(s) still open; exiting",
                active.load(Ordering::Relaxed)
            );
        }
        log!(Level::Info, "stopped");
        Ok(())
    })
}

/// A connection's place under the cap, given back when its task ends (and its part of
/// the drain: the sender is dropped with it).
struct Slot {
    active: Arc<AtomicUsize>,
    /// Never used to send: held, and dropped with the task.
    _done: mpsc::Sender<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection's task state.
struct Conn {
    id: u64,
    peer: SocketAddr,
    config: Config,
    over_cap: bool,
    protocols: Arc<[String]>,
    stop: watch::Receiver<bool>,
}

impl Conn {
    /// The opening handshake, then the echo until the connection ends. A stop during
    /// the handshake drops the connection; after it, closes it with 1001.
    async fn serve<S>(self, socket: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Self {
            id,
            peer,
            config,
            over_cap,
            protocols,
            mut stop,
        } = self;
        let handshake = accept_with(socket, config, |request| {
            if over_cap {
                return Err(Reject::new(503));
            }
            Ok(accept_upgrade(
                format_args!("c{id}: {peer}"),
                request,
                &protocols,
            ))
        });
        let accepted = tokio::select! {
            accepted = handshake => accepted,
            () = stopped(&mut stop) => return,
        };
        let mut ws = match accepted {
            Ok(ws) => ws,
            Err(e) => {
                conn_log!(Level::Warn, "c{id}: {peer}: handshake failed: {e}");
                return;
            }
        };
        let mut closing = false;
        // Poll until the stream ends, errors included: the teardown (Close frame written,
        // transport shut down, lingering for the client's EOF) happens before `None`.
        loop {
            let message = tokio::select! {
                message = ws.next() => message,
                () = stopped(&mut stop), if !closing => {
                    closing = true;
                    // RFC 6455 §7.4.1: 1001, "a server going down"; then keep reading
                    // until the client's Close ends the stream.
                    let frame = CloseFrame {
                        code: CloseCode::GOING_AWAY,
                        reason: GOING_AWAY_REASON.into(),
                    };
                    if let Err(e) = ws.close(Some(frame)).await {
                        log!(Level::Debug, "c{id}: close not sent: {e}");
                    }
                    continue;
                }
            };
            let Some(message) = message else { break };
            match message {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    // Owned payloads go back without a copy.
                    if let Err(e) = ws.send(m).await {
                        log!(Level::Debug, "c{id}: echo not sent: {e}");
                    }
                }
                Ok(Message::Close(frame)) => {
                    log!(Level::Debug, "c{id}: peer sent close {frame:?}");
                }
                Ok(_) => {}
                Err(e) => conn_log!(Level::Warn, "c{id}: failed: {e}"),
            }
        }
        match ws.closed() {
            Some((code, true)) => conn_log!(Level::Info, "c{id}: closed ({code})"),
            Some((code, false)) => conn_log!(Level::Warn, "c{id}: closed abnormally ({code})"),
            None => {}
        }
    }
}
