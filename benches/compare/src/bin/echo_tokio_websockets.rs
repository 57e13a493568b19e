//! Echo server on tokio-websockets: `ServerBuilder::accept` does the handshake, the
//! stream yields whole messages, `SinkExt::send` sends them back. One current-thread
//! runtime, one task per connection. With `--tls-cert` and `--tls-key`, each
//! connection's task runs tokio-rustls' TLS handshake first and `accept` takes the TLS
//! stream, as tokio-websockets' `rustls_server` example does.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_websockets::{Limits, ServerBuilder};

async fn serve<S>(stream: S) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (_request, mut ws) = ServerBuilder::new()
        .limits(Limits::default().max_payload_len(Some(64 << 20)))
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        // Pings are answered and Closes echoed by tokio-websockets itself.
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args = wsengine_compare::echo_args("echo_tokio_websockets");
    wsengine_compare::echo_runtime().block_on(async {
        let listener = TcpListener::bind(args.addr).await?;
        eprintln!(
            "echo_tokio_websockets listening on {}://{}",
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
