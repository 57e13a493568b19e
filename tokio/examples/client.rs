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

use tokio::io::{AsyncBufReadExt, BufReader};
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

    let connected = match ca {
        // `connect` does both schemes; with a private CA, build the rustls config and
        // use `connect_tls` (Mozilla's roots plus the CA; the host name is verified).
        None => connect(&url).await,
        Some(ca) => {
            let tls_config = tls::client_config(tls::root_store(&[ca])?)?;
            connect_tls(ClientRequest::new(&url)?, Config::default(), tls_config).await
        }
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

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            // `next_line` is cancel-safe: a line half read when the other branch wins
            // is not lost (and here the program ends then anyway).
            line = lines.next_line() => match line? {
                Some(line) => {
                    if writer.send(Message::text(line)).await.is_err() {
                        break; // the connection is over: the printer says why
                    }
                }
                None => break,
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
