//! wsengine next to tungstenite, fastwebsockets and tokio-websockets on the same
//! in-memory recv and send workloads (`benches/compare.rs`), and echo servers for each
//! peer (`src/bin/`). `workload` and `engine` are the root benches' own files, included
//! by path, so the root benches and this comparison run the same code.

#[allow(dead_code)]
#[path = "../../common/workload.rs"]
pub mod workload;

#[allow(dead_code)]
#[path = "../../common/engine.rs"]
pub mod engine;

pub mod mem;
pub mod peers;

/// The echo servers' command line: `--listen ADDR` (default `127.0.0.1:9001`), and
/// for `wss://` both `--tls-cert CERT.pem` and `--tls-key KEY.pem`.
pub struct EchoArgs {
    /// Where to listen.
    pub addr: std::net::SocketAddr,
    /// With `--tls-cert` and `--tls-key`: the TLS acceptor every connection goes
    /// through before the WebSocket handshake.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Parses the echo servers' command line (see [`EchoArgs`]), or prints the usage and
/// exits (`--help`, or a bad argument).
///
/// With TLS, the rustls configuration is wsengine's own,
/// `wsengine_tls::server_config`: the aws-lc-rs provider, TLS 1.3 and 1.2, ALPN
/// `http/1.1`, the certificate and key read by `ServerCertificates::from_files`. Every
/// server of the comparison (`wsengine serve --tls-cert` included) so offers the same
/// protocol versions, cipher suites, key exchange groups and certificate, and only the
/// way each library drives rustls differs: here tokio-rustls' `TlsAcceptor`, as the
/// peers' own TLS examples do.
pub fn echo_args(name: &str) -> EchoArgs {
    let usage = format!(
        "usage: {name} [--listen ADDR] [--tls-cert CERT.pem --tls-key KEY.pem]\n\
         A single-threaded WebSocket echo server: every text or binary message goes back \
         to its sender. Default ADDR 127.0.0.1:9001. With --tls-cert and --tls-key it \
         serves wss:// (rustls with wsengine-tls' configuration: aws-lc-rs, TLS 1.3 and \
         1.2, ALPN http/1.1)."
    );
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9001".to_owned();
    let (mut cert, mut key) = (None, None);
    while let Some(arg) = args.next() {
        let (flag, mut inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || match inline.take().or_else(|| args.next()) {
            Some(v) => v,
            None => exit_usage(&usage),
        };
        match flag.as_str() {
            "--listen" => addr = value(),
            "--tls-cert" => cert = Some(std::path::PathBuf::from(value())),
            "--tls-key" => key = Some(std::path::PathBuf::from(value())),
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            _ => exit_usage(&usage),
        }
    }
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad --listen address {addr:?}: {e}");
            exit_usage(&usage)
        }
    };
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key).unwrap_or_else(|e| {
            eprintln!("{name}: {e}");
            std::process::exit(1)
        })),
        _ => {
            eprintln!("--tls-cert and --tls-key go together");
            exit_usage(&usage)
        }
    };
    EchoArgs { addr, tls }
}

/// A TLS acceptor over wsengine's server configuration for one certificate and key.
fn tls_acceptor(
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
) -> Result<tokio_rustls::TlsAcceptor, wsengine_tls::TlsError> {
    let certificates = wsengine_tls::ServerCertificates::from_files(cert, key)?;
    let config = wsengine_tls::server_config(std::sync::Arc::new(certificates))?;
    Ok(tokio_rustls::TlsAcceptor::from(config))
}

/// "ws" or "wss", for the servers' first line.
pub fn scheme(args: &EchoArgs) -> &'static str {
    if args.tls.is_some() { "wss" } else { "ws" }
}

/// A failed TLS handshake in one line (the certificate check or alert, in words).
pub fn tls_error(e: &std::io::Error) -> String {
    wsengine_tls::describe_io_error(e)
}

fn exit_usage(usage: &str) -> ! {
    eprintln!("{usage}");
    std::process::exit(2)
}

/// A current-thread tokio runtime with I/O enabled, for the echo servers.
pub fn echo_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a current-thread runtime")
}
