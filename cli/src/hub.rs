//! `wsengine hub`: the application server of the `wsengine-hub` crate (the hub protocol,
//! docs/HUB-PROTOCOL.md, "Running it") on a multi-threaded tokio runtime.
//!
//! Exit status: 0 after a graceful stop (SIGTERM or SIGINT: every WebSocket closed with
//! 1001), 2 for a configuration it cannot start with (the file, a flag, a key or
//! certificate file), 1 when it cannot listen, cannot reach its Redis or NATS at start
//! (`--redis`, `--nats`: it does not start without its broker, as Centrifugo does; once
//! running it reconnects by itself) or fails while running, or on a second signal
//! during the stop.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wsengine_hub::auth::Verifier;
use wsengine_hub::config::{self, Config, EngineConfig, EngineKind, Overrides};
use wsengine_hub::{Server, ServerOptions};
use wsengine_mio::tls::{self, ServerCertificates};

use crate::{Level, max_level, reload, signals};

/// Status of a configuration the hub cannot start with (like clap's usage errors).
const EXIT_CONFIG: u8 = 2;
/// Status of a failure to listen or to run.
const EXIT_RUNTIME: u8 = 1;

/// How long the runtime's remaining tasks may take to finish once the sessions are done
/// (or the grace is over): dropped after this.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// `wsengine hub` flags ("Running it"); each one given replaces the file's value.
#[derive(clap::Args, Debug)]
pub(crate) struct HubArgs {
    /// Address to listen on: IP:PORT (an IPv6 address in brackets), HOST:PORT (a name
    /// is resolved, its first IPv4 address preferred: localhost:8000) or :PORT (every
    /// IPv4 interface, 0.0.0.0, as in Go); port 0 takes a free port, printed at start.
    /// Default: the file's `listen`, else 127.0.0.1:8000.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_flag)]
    listen: Option<String>,
    /// The TOML configuration file (docs/HUB-PROTOCOL.md, "Running it"; every key
    /// optional). Without a file and without --jwt-secret, --jwt-public-key or --api-key,
    /// the hub serves the demo configuration: anonymous access, no API key, not for
    /// production.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check HS256/384/512 tokens with this shared secret (`[auth] jwt_secret`; default
    /// none). Other users can read command lines (`ps`): prefer the file for secrets.
    #[arg(long, value_name = "SECRET")]
    jwt_secret: Option<String>,
    /// Check RS256/384/512 and ES256/384 tokens with the public key in this PEM file
    /// (`[auth] jwt_public_key`; default none).
    #[arg(long, value_name = "PATH")]
    jwt_public_key: Option<PathBuf>,
    /// Accept `connect` without a token (`[auth] allow_anonymous`; default off, except in
    /// the demo configuration). Only turns it on.
    #[arg(long)]
    allow_anonymous: bool,
    /// Accept browsers only from this Origin (repeatable; replaces the file's
    /// `allowed_origins`). Others get HTTP 403; requests without an Origin header (not a
    /// browser) are accepted. Default: any Origin.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// The HTTP API's key, sent as `Authorization: apikey KEY` (`[auth] api_key`; default
    /// none). Other users can read command lines (`ps`): prefer the file for secrets.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Use the Redis engine at URL (`[engine] kind = "redis"`; `redis://[user:password@]
    /// host:port[/db]`): every hub on the same Redis acts as one. Redis must answer at
    /// start (else exit 1); the hub reconnects by itself afterwards. Default: the memory
    /// engine (one node).
    #[arg(long, value_name = "URL", conflicts_with = "nats")]
    redis: Option<String>,
    /// Use the NATS engine at URL (`[engine] kind = "nats"`; `nats://[user:password@]
    /// host:port`): publications fan out to every hub on the same NATS; history and
    /// presence stay per node (docs/HUB-PROTOCOL.md, "Engines"). NATS must answer at start
    /// (else exit 1); the hub reconnects by itself afterwards. Default: the memory engine.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Serve the files of this directory at `/`. Default: none.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Serve TLS (https://, wss://) with this certificate chain (PEM, the server's
    /// certificate first); needs --tls-key. Default: plain TCP. SIGHUP re-reads both
    /// files (open connections keep theirs; a pair that fails to load is logged and the
    /// old one stays).
    #[arg(long, requires = "tls_key", value_name = "CERT.pem")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS #8, PKCS #1 or SEC1).
    #[arg(long, requires = "tls_cert", value_name = "KEY.pem")]
    tls_key: Option<PathBuf>,
}

/// Why the hub did not run to a graceful stop: the exit status and one line saying why.
struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    fn config(message: impl Into<String>) -> Self {
        Self {
            status: EXIT_CONFIG,
            message: message.into(),
        }
    }

    fn runtime(message: impl Into<String>) -> Self {
        Self {
            status: EXIT_RUNTIME,
            message: message.into(),
        }
    }
}

/// Runs `wsengine hub` to its end and returns the process's exit status.
pub(crate) fn run(args: HubArgs) -> ExitCode {
    match run_hub(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // One line: scripts and tests read it, and a multi-line message would be
            // interleaved with other output.
            let one_line = failure.message.split_whitespace().collect::<Vec<_>>();
            log!(Level::Error, "{}", one_line.join(" "));
            ExitCode::from(failure.status)
        }
    }
}

/// `--listen`, read as `serve --listen` reads it ([`crate::parse_listen`]) and handed
/// on as the `IP:PORT` it resolves to (the `listen` key of the file keeps its
/// docs/HUB-PROTOCOL.md meaning).
fn parse_listen_flag(text: &str) -> Result<String, String> {
    crate::parse_listen(text).map(|addr| addr.to_string())
}

/// The file (if any) with the flags over it, checked as far as can be before binding.
struct Prepared {
    options: ServerOptions,
    certificates: Option<Arc<ServerCertificates>>,
}

fn prepare(args: HubArgs) -> Result<Prepared, Failure> {
    if let Some(dir) = &args.static_dir
        && !dir.is_dir()
    {
        return Err(Failure::config(format!(
            "--static {}: not a directory",
            dir.display()
        )));
    }
    let file = match &args.config {
        Some(path) => Some(Config::load(path).map_err(|e| Failure::config(e.to_string()))?),
        None => None,
    };
    let engine = match (args.redis, args.nats) {
        (Some(url), _) => Some(EngineConfig {
            kind: EngineKind::Redis,
            url,
        }),
        (None, Some(url)) => Some(EngineConfig {
            kind: EngineKind::Nats,
            url,
        }),
        (None, None) => None,
    };
    let flags = Overrides {
        listen: args.listen,
        jwt_secret: args.jwt_secret,
        jwt_public_key: args.jwt_public_key,
        allow_anonymous: args.allow_anonymous,
        allowed_origins: args.allowed_origins,
        api_key: args.api_key,
        engine,
    };
    let resolved = config::resolve(file, flags).map_err(|e| Failure::config(e.to_string()))?;
    // `Server::bind` reads the key too, but after binding and with the same error kind
    // as some bind failures: checked here, a bad key file is a configuration error (2).
    Verifier::from_config(&resolved.config.auth).map_err(|e| Failure::config(e.to_string()))?;
    let (certificates, tls) = match args.tls_cert.zip(args.tls_key) {
        Some((cert, key)) => {
            let certificates = ServerCertificates::from_files(cert, key)
                .map(Arc::new)
                .map_err(|e| Failure::config(e.to_string()))?;
            let tls = tls::server_config(Arc::clone(&certificates))
                .map_err(|e| Failure::config(e.to_string()))?;
            (Some(certificates), Some(tls))
        }
        None => (None, None),
    };
    Ok(Prepared {
        options: ServerOptions {
            config: resolved.config,
            demo: resolved.demo,
            static_dir: args.static_dir,
            tls,
            engine: None,
        },
        certificates,
    })
}

fn run_hub(args: HubArgs) -> Result<(), Failure> {
    let Prepared {
        options,
        certificates,
    } = prepare(args)?;
    let demo = options.demo;
    let secure = options.tls.is_some();
    // Before the runtime's threads start, so that they inherit the blocked mask and the
    // signals reach only the thread waiting for them.
    let signal_set = signals::block(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| Failure::runtime(format!("blocking signals: {e}")))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = Mutex::new(Some(stop_tx));
    signals::spawn_waiter(signal_set, move |signal| {
        if signal == signals::Signal::Hangup {
            reload(certificates.as_deref());
            return;
        }
        let first = stop_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match first {
            Some(stop) => {
                log!(Level::Info, "signal: closing every WebSocket (1001)");
                let _ = stop.send(());
            }
            None => {
                log!(Level::Warn, "second signal: exiting now");
                std::process::exit(1);
            }
        }
    })
    .map_err(|e| Failure::runtime(format!("starting the signal thread: {e}")))?;
    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("hub")
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("starting the tokio runtime: {e}")))?;
    let result = runtime.block_on(async move {
        // Its error already names the address ("cannot listen on ADDR: ...").
        let server = Server::bind(options)
            .await
            .map_err(|e| Failure::runtime(e.to_string()))?;
        let addr = server
            .local_addr()
            .map_err(|e| Failure::runtime(format!("the listening address: {e}")))?;
        if demo {
            log!(
                Level::Warn,
                "demo configuration (no --config and no auth flag): anonymous access, no API key; not for production"
            );
        }
        let (http, ws) = if secure {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        // On stdout, flushed: scripts and tests wait for this line to connect. A closed
        // stdout must not stop the server.
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening on {http}://{addr} (WebSocket at {ws}://{addr}/ws)")
            .and_then(|()| out.flush());
        drop(out);
        // `run` closes every WebSocket with 1001 and waits (bounded) for the sessions'
        // closing handshakes before it returns.
        server
            .run(async move {
                // The sender lives as long as the signal thread; should it go, keep
                // serving rather than stop on no signal.
                if stop_rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
            .await
            .map_err(|e| Failure::runtime(format!("serving on {addr}: {e}")))
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result?;
    log!(Level::Info, "stopped");
    Ok(())
}
