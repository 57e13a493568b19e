//! The tokio-tungstenite half of docs/FROM-TOKIO-TUNGSTENITE.md: an echo server that
//! only serves `/`, limits messages to 1 MiB, and answers the text message `time` with
//! the server's clock. The wsengine half, line for line, is
//! `tokio/examples/from_tokio_tungstenite.rs` in the main workspace.
//!
//! ```text
//! cargo run --manifest-path benches/compare/Cargo.toml --example tokio_tungstenite_version
//! cargo run -p wsengine-tokio --example client -- ws://127.0.0.1:9003/
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "an example server: it reads the wall clock for the `time` command"
)]
#![allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback refuses with a whole http::Response"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};

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
            let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
            // The callback sees the request and may refuse it with an HTTP response.
            let only_root = |request: &Request, response: Response| {
                if request.uri().path() == "/" {
                    Ok(response)
                } else {
                    let mut refusal = ErrorResponse::new(Some("only / is served\n".into()));
                    *refusal.status_mut() = StatusCode::NOT_FOUND;
                    Err(refusal)
                }
            };
            match accept_hdr_async_with_config(socket, only_root, Some(config)).await {
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
    // `next` comes from futures-util's StreamExt, `send` from SinkExt.
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) if text.as_str() == "time" => {
                ws.send(Message::text(now())).await?;
            }
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
            // Pings are answered and the Close echoed by tungstenite when it reads them.
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
