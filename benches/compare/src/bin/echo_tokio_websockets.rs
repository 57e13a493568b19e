//! Echo server on tokio-websockets: `ServerBuilder::accept` does the handshake, the
//! stream yields whole messages, `SinkExt::send` sends them back. One current-thread
//! runtime, one task per connection.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{Limits, ServerBuilder};

async fn serve(stream: TcpStream) -> Result<(), tokio_websockets::Error> {
    stream.set_nodelay(true)?;
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
    let addr = wsengine_compare::listen_addr("echo_tokio_websockets");
    wsengine_compare::echo_runtime().block_on(async {
        let listener = TcpListener::bind(addr).await?;
        eprintln!(
            "echo_tokio_websockets listening on {}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(e) = serve(stream).await {
                    eprintln!("connection: {e}");
                }
            });
        }
    })
}
