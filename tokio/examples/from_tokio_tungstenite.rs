//! The wsengine half of docs/FROM-TOKIO-TUNGSTENITE.md: an echo server that only serves
//! `/`, limits messages to 1 MiB, and answers the text message `time` with the server's
//! clock. The tokio-tungstenite half, line for line, is
//! `benches/compare/examples/tokio_tungstenite_version.rs`.
//!
//! ```text
//! cargo run -p wsengine-tokio --example from_tokio_tungstenite
//! cargo run -p wsengine-tokio --example client -- ws://127.0.0.1:9003/
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "an example server: it reads the wall clock for the `time` command"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use wsengine::{Accept, Config, Reject, Request};
use wsengine_tokio::{Error, Message, WebSocketStream, accept_with};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/", listener.local_addr()?);
    loop {
        let (socket, peer) = listener.accept().await?;
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut config = Config::default();
            config.max_message_size = 1 << 20;
            // The hook sees the request and may refuse it with an HTTP response.
            let only_root = |request: &Request| {
                // `path()` is the request-target as sent: the query is still on it.
                if request.path().split('?').next() == Some("/") {
                    Ok(Accept::new())
                } else {
                    Err(Reject::new(404).body("only / is served\n"))
                }
            };
            match accept_with(socket, config, only_root).await {
                Ok(ws) => match serve(ws).await {
                    Ok(()) => println!("{peer}: closed"),
                    Err(e) => println!("{peer}: {e}"),
                },
                Err(e) => println!("{peer}: handshake failed: {e}"),
            }
        });
    }
}

async fn serve(mut ws: WebSocketStream<TcpStream>) -> Result<(), Error> {
    // `next` and `send` are inherent methods: no futures-util needed.
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) if text.as_str() == "time" => {
                ws.send(Message::text(now())).await?;
            }
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
            // Pings are answered and the Close echoed by the core when it reads them.
            _ => {}
        }
    }
    Ok(())
}

/// The server's clock, as the answer to `time`.
fn now() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("unix time {}", since_epoch.as_secs())
}
