//! Echo server on tungstenite, through tokio-tungstenite: one current-thread runtime,
//! one task per connection, every text or binary message sent back with `send`.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

async fn serve(stream: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    stream.set_nodelay(true)?;
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
    let addr = wsengine_compare::listen_addr("echo_tungstenite");
    wsengine_compare::echo_runtime().block_on(async {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("echo_tungstenite listening on {}", listener.local_addr()?);
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
