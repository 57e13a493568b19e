//! `wsengine serve --runtime tokio`: the echo server on the tokio
//! adapter (`wsengine_tokio`), one task per connection on a current-thread runtime.
//! It behaves as the mio server's echo mode: every text and binary message goes back
//! unchanged, Pong and Close replies come from the core, connections past
//! `--max-connections` are answered 503 (after their request is read). With
//! `--tls-cert`, each connection runs its TLS handshake with tokio-rustls first, bounded
//! by the handshake timeout (the core's own starts after it).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsengine::{Accept, Config, Reject};
use wsengine_tokio::tls::{self, ServerCertificates, TlsAcceptor};
use wsengine_tokio::{Message, accept_with};

use super::{Level, connection_line_allowed, max_level};

/// A TLS handshake that has not finished by then fails the connection when the core
/// has no handshake timeout (`--handshake-timeout off`).
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Runs the echo server until the process is stopped.
pub(crate) fn run(
    listen: SocketAddr,
    config: Config,
    max_connections: usize,
    certificates: Option<Arc<ServerCertificates>>,
) -> io::Result<()> {
    let acceptor = match certificates {
        Some(certificates) => Some(TlsAcceptor::from(tls::server_config(certificates)?)),
        None => None,
    };
    let scheme = if acceptor.is_some() { "wss" } else { "ws" };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        log!(
            Level::Info,
            "listening on {scheme}://{} (Echo, tokio runtime)",
            listener.local_addr()?
        );
        let active = Arc::new(AtomicUsize::new(0));
        let mut next_id = 0u64;
        loop {
            let (socket, peer) = match listener.accept().await {
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
            let slot = Slot(Arc::clone(&active));
            let config = config.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let Some(acceptor) = acceptor else {
                    return echo(id, peer, socket, config, over_cap).await;
                };
                let limit = config.handshake_timeout.unwrap_or(TLS_HANDSHAKE_LIMIT);
                match tokio::time::timeout(limit, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => echo(id, peer, stream, config, over_cap).await,
                    Ok(Err(e)) => conn_log!(
                        Level::Warn,
                        "c{id}: {peer}: TLS: {}",
                        tls::describe_io_error(&e)
                    ),
                    Err(_) => conn_log!(Level::Warn, "c{id}: {peer}: TLS handshake timed out"),
                }
            });
        }
    })
}

/// A connection's place under the cap, given back when its task ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn echo<S>(id: u64, peer: SocketAddr, socket: S, config: Config, over_cap: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let accepted = accept_with(socket, config, |request| {
        if over_cap {
            return Err(Reject::new(503));
        }
        conn_log!(Level::Info, "c{id}: {peer} upgrades {}", request.path());
        Ok(Accept::new())
    })
    .await;
    let mut ws = match accepted {
        Ok(ws) => ws,
        Err(e) => {
            conn_log!(Level::Warn, "c{id}: {peer}: handshake failed: {e}");
            return;
        }
    };
    // Poll until the stream ends, errors included: the teardown (Close frame written,
    // transport shut down, lingering for the client's EOF) happens before `None`.
    while let Some(message) = ws.next().await {
        match message {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                // Owned payloads go back without a copy.
                if let Err(e) = ws.send(m).await {
                    log!(Level::Debug, "c{id}: echo not sent: {e}");
                }
            }
            Ok(Message::Close(frame)) => log!(Level::Debug, "c{id}: peer sent close {frame:?}"),
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
