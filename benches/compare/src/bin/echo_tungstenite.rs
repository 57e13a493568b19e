//! Echo server on tungstenite, through tokio-tungstenite: one current-thread runtime,
//! one task per connection, every text or binary message sent back with `send`. With
//! `--tls-cert` and `--tls-key`, each connection's task runs tokio-rustls' TLS handshake
//! first and `accept_async` takes the TLS stream.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

async fn serve<S>(stream: S) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        // Pings are answered and Closes echoed by tungstenite itself.
        if let m @ (Message::Text(_) | Message::Binary(_)) = message? {
            ws.send(m).await?;
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args = wsengine_compare::echo_args("echo_tungstenite");
    wsengine_compare::echo_runtime().block_on(async {
        let listener = TcpListener::bind(args.addr).await?;
        eprintln!(
            "echo_tungstenite listening on {}://{}",
            wsengine_compare::scheme(&args),
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            // Two task types, so a plain connection's task is no larger than without TLS.
            match &args.tls {
                None => {
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream).await {
                            eprintln!("connection: {e}");
                        }
                    });
                }
                Some(acceptor) => {
                    let accept = acceptor.accept(stream);
                    tokio::spawn(async move {
                        match accept.await {
                            Ok(stream) => {
                                if let Err(e) = serve(stream).await {
                                    eprintln!("connection: {e}");
                                }
                            }
                            Err(e) => eprintln!("tls: {}", wsengine_compare::tls_error(&e)),
                        }
                    });
                }
            }
        }
    })
}
