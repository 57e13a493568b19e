//! A `ws://` echo server on the tokio adapter: one task per connection, each running the
//! adapter's loop: `next` until it returns `None`, `send` back every text or binary
//! message. Pings, Pongs and the closing handshake are the core's business.
//!
//! ```text
//! cargo run -p wsengine-tokio --example tokio_echo_server -- 127.0.0.1:9001
//! cargo run -p wsengine-tokio --example client -- ws://127.0.0.1:9001/
//! ```
//!
//! For `wss://`, the same loop runs over a TLS stream: see `tls_echo_server.rs`.

use tokio::net::TcpListener;
use wsengine_tokio::{Message, WebSocketStream, accept};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server on ws://{}/", listener.local_addr()?);
    loop {
        let (socket, peer) = listener.accept().await?;
        // Frames are written whole: no need for Nagle's delay.
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            // `accept` answers any path with no subprotocol; `accept_with` looks at the
            // request first (see the crate docs).
            match accept(socket).await {
                Ok(ws) => echo(ws, peer).await,
                Err(e) => println!("{peer}: handshake failed: {e}"),
            }
        });
    }
}

async fn echo(mut ws: WebSocketStream<tokio::net::TcpStream>, peer: std::net::SocketAddr) {
    println!("{peer}: open");
    while let Some(message) = ws.next().await {
        match message {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                // Fails only once the connection is over; `next` then says why.
                if ws.send(m).await.is_err() {
                    break;
                }
            }
            // Ping, Pong, the peer's Close: already answered by the core.
            Ok(_) => {}
            // A protocol error, a timeout, the socket failed: `next` returns `None` next.
            Err(e) => println!("{peer}: {e}"),
        }
    }
    // (code, whether the closing handshake completed)
    println!("{peer}: closed {:?}", ws.closed());
}
