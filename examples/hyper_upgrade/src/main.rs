//! An HTTP server that does the WebSocket upgrade itself, with wsengine doing only what
//! an HTTP server cannot: hyper 1.x parses the request; wsengine checks it
//! (`handshake::check_request`, RFC 6455 §4.2.1) and gives the headers of the 101
//! (`handshake::accept_headers`); hyper sends the 101 and hands over the upgraded
//! connection; wsengine's tokio adapter runs the WebSocket on it
//! (`tokio::WebSocketStream::from_upgraded`, which starts the core open with
//! `Connection::upgraded`). Here the WebSocket echoes every message.
//!
//! ```text
//! cargo run --manifest-path examples/hyper_upgrade/Cargo.toml -- --listen 127.0.0.1:9002
//! ```
//!
//! Requests without `Upgrade` get a plain HTTP answer: the same server serves pages and
//! sockets. The subprotocol `echo` is chosen when the client offers it. The first line
//! on stdout is `listening on ws://ADDR`; with `--stop-on-eof` the server exits when
//! its standard input ends (how the test stops it).

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wsengine::handshake::{Header, accept_headers, check_request};
use wsengine::{Accept, Config, Negotiated, Role};
use wsengine_tokio::{Message, WebSocketStream};

fn main() -> ExitCode {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 9002));
    let mut stop_on_eof = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse())) {
            ("--listen", Some(Ok(addr))) => listen = addr,
            ("--stop-on-eof", value) => {
                stop_on_eof = true;
                if value.is_some() {
                    return usage();
                }
            }
            _ => return usage(),
        }
    }
    if stop_on_eof {
        std::thread::spawn(|| {
            let _ = io::stdin().lock().read_to_end(&mut Vec::new());
            std::process::exit(0);
        });
    }
    match run(listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper_upgrade: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: hyper_upgrade [--listen ADDR] [--stop-on-eof]");
    ExitCode::from(2)
}

fn run(listen: SocketAddr) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await?;
        let mut out = io::stdout().lock();
        writeln!(out, "listening on ws://{}", listener.local_addr()?)?;
        out.flush()?;
        drop(out);
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service_fn(handle))
                    .with_upgrades();
                if let Err(e) = connection.await {
                    eprintln!("http: {e}");
                }
            });
        }
    })
}

/// One HTTP request: a WebSocket upgrade, or a plain page.
async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if !req.headers().contains_key(hyper::header::UPGRADE) {
        return Ok(text(
            StatusCode::OK,
            "A WebSocket echo lives here: connect with ws://.\n",
        ));
    }
    // 1. wsengine checks the request hyper parsed (RFC 6455 §4.2.1).
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: value.as_bytes().to_vec(),
        })
        .collect();
    let version = match req.version() {
        Version::HTTP_11 => 1,
        _ => 0, // HTTP/1.0: refused by check_request
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let request = match check_request(req.method().as_str(), path, version, headers) {
        Ok(request) => request,
        Err(e) => {
            let status = StatusCode::from_u16(e.status_hint()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = text(status, &format!("{e}\n"));
            if status == StatusCode::UPGRADE_REQUIRED {
                // §4.4: name the version we speak.
                response.headers_mut().insert(
                    HeaderName::from_static("sec-websocket-version"),
                    HeaderValue::from_static("13"),
                );
            }
            return Ok(response);
        }
    };

    // 2. The application's answer, and the 101's headers from wsengine.
    let accept = if request.protocols().iter().any(|p| p == "echo") {
        Accept::new().protocol("echo")
    } else {
        Accept::new()
    };
    let Ok(headers) = accept_headers(&request, &accept) else {
        return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "bad answer\n"));
    };
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in headers {
        // accept_headers checked names and values; hyper checks them again.
        match (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "bad header\n")),
        }
    }

    // 3. Once hyper has sent the 101, the connection is ours: wrap it and echo.
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return eprintln!("upgrade: {e}"),
        };
        match WebSocketStream::from_upgraded(
            TokioIo::new(upgraded),
            Role::Server,
            Config::default(),
            Negotiated::default(),
        ) {
            Ok(ws) => echo(ws).await,
            Err(e) => eprintln!("websocket: {e}"),
        }
    });
    Ok(response)
}

/// Echoes text and binary messages until the stream ends (Pong and Close replies are
/// the core's).
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = ws.next().await {
        match message {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(e) = ws.send(m).await {
                    eprintln!("echo: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("websocket: {e}"),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
