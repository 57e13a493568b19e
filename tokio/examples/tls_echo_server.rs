//! A `wss://` echo server on the tokio adapter: TCP accept, the TLS handshake with
//! tokio-rustls (bounded by a timeout, since the core's handshake timeout starts after
//! it), then the WebSocket handshake and an echo loop, one task per connection.
//!
//! ```sh
//! cargo run -p wsengine-tokio --example tls_echo_server -- CERT.pem KEY.pem 127.0.0.1:9443
//! wsengine client --ca CA.pem wss://localhost:9443/
//! cargo run -p wsengine-tokio --example client -- --ca CA.pem wss://localhost:9443/
//! ```
//!
//! `client.rs` shows how to make a test CA and a certificate for `localhost`.
// An example host: it owns sockets and prints what happens.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use wsengine_tokio::tls::{self, ServerCertificates, TlsAcceptor};
use wsengine_tokio::{Message, accept};

/// Longest a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(cert), Some(key)) = (args.next(), args.next()) else {
        return Err("usage: tls_echo_server CERT.pem KEY.pem [ADDR]".into());
    };
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".to_owned());
    let certificates = Arc::new(ServerCertificates::from_files(cert, key)?);
    let acceptor = TlsAcceptor::from(tls::server_config(certificates)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on wss://{}", listener.local_addr()?);
        loop {
            let (socket, peer) = listener.accept().await?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return println!("{peer}: TLS: {}", tls::describe_io_error(&e)),
                    Err(_) => return println!("{peer}: TLS handshake timed out"),
                };
                let mut ws = match accept(tls).await {
                    Ok(ws) => ws,
                    Err(e) => return println!("{peer}: handshake failed: {e}"),
                };
                while let Some(message) = ws.next().await {
                    match message {
                        Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                            if ws.send(m).await.is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => println!("{peer}: {e}"),
                    }
                }
                println!("{peer}: closed {:?}", ws.closed());
            });
        }
    })
}
