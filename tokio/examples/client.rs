//! A line-based client on the tokio adapter: connects to a `ws://` or `wss://` URL,
//! sends each line of stdin as a text message, prints every message received, and
//! closes cleanly (1000) at the end of stdin. The stream is split: a task owns the
//! reader half and prints, `main` owns the writer half and sends.
//!
//! ```text
//! cargo run -p wsengine-tokio --example tokio_echo_server
//! cargo run -p wsengine-tokio --example client -- ws://127.0.0.1:9001/
//! ```
//!
//! `wss://` end to end with a private CA: make a CA and a certificate for `localhost`
//! (no key is committed; these are throwaway files), run the TLS echo server with it,
//! and trust the CA with `--ca`:
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
//!     -subj /CN=test-ca -keyout ca.key -out ca.pem
//! openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
//!     -keyout key.pem -out req.csr
//! printf 'subjectAltName=DNS:localhost\n' > san.ext
//! openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
//!     -extfile san.ext -out cert.pem
//! cargo run -p wsengine-tokio --example tls_echo_server -- cert.pem key.pem 127.0.0.1:9443
//! cargo run -p wsengine-tokio --example client -- --ca ca.pem wss://localhost:9443/
//! ```
//!
//! (`mkcert localhost` does the same: `--ca "$(mkcert -CAROOT)/rootCA.pem"`.) Without
//! `--ca`, `wss://` trusts Mozilla's roots, as a browser would.

use std::path::PathBuf;

use wsengine::{ClientRequest, Config, Message};
use wsengine_tokio::{connect, connect_tls, tls};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "ws://127.0.0.1:9001/".to_owned();
    let mut ca = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ca" => ca = Some(PathBuf::from(args.next().ok_or("--ca needs a PEM file")?)),
            _ => url = arg,
        }
    }

    let request = ClientRequest::new(&url)?;
    let connected = match ca {
        // With a private CA, build the rustls configuration and use `connect_tls`
        // (Mozilla's roots plus the CA; the host name is verified).
        Some(ca) if request.is_secure() => {
            let tls_config = tls::client_config(tls::root_store(&[ca])?)?;
            connect_tls(request, Config::default(), tls_config).await
        }
        // `connect` does both schemes (`wss://` with Mozilla's roots).
        _ => connect(&url).await,
    };
    let (ws, response) = connected.map_err(|e| match e {
        // A refused certificate is an io::Error with the rustls error inside: in words.
        wsengine_tokio::Error::Io(e) => tls::describe_io_error(&e),
        e => e.to_string(),
    })?;
    eprintln!("connected to {url} ({})", response.status());

    let (mut writer, mut reader) = ws.split();
    // The reader half answers Pings and completes the closing handshake on its own, so
    // it must keep being polled until it returns `None`.
    let mut printer = tokio::spawn(async move {
        while let Some(message) = reader.next().await {
            match message {
                Ok(Message::Text(text)) => println!("{}", text.as_str()),
                Ok(Message::Binary(data)) => println!("<{} bytes>", data.len()),
                Ok(_) => {}
                Err(e) => eprintln!("error: {e}"),
            }
        }
        eprintln!("closed {:?}", reader.closed());
    });

    // Stdin on a thread of its own: tokio's `stdin` reads on a blocking thread that
    // cannot be cancelled, so the runtime would not shut down until the next line.
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    if writer.send(Message::text(line)).await.is_err() {
                        break; // the connection is over: the printer says why
                    }
                }
                None => break, // end of stdin
            },
            // The server closed (or the connection failed): nothing left to send to.
            done = &mut printer => return Ok(done?),
        }
    }
    // End of stdin: send Close (1000) and wait for the server's, which ends the reader.
    let _ = writer.close(None).await;
    printer.await?;
    Ok(())
}
