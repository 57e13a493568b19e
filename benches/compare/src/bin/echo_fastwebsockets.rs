//! Echo server on fastwebsockets, as its own examples do: hyper serves the HTTP/1.1
//! upgrade, `FragmentCollector` reads whole messages, `write_frame` sends them back. One
//! current-thread runtime, one task per connection. With `--tls-cert` and `--tls-key`,
//! each connection's task runs tokio-rustls' TLS handshake first and hyper serves the
//! TLS stream, as fastwebsockets' `tls_server` example does (the WebSocket itself then
//! runs on hyper's `Upgraded`, the same type with or without TLS). That example also
//! turns vectored writes off (`set_writev(false)`); this server keeps the default
//! (vectored above 1 KiB, as `echo_server` does) in both modes, so TLS is the only
//! difference between them.

use fastwebsockets::upgrade::{UpgradeFut, upgrade};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

async fn echo(fut: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // The Close reply is sent by fastwebsockets (auto_close).
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade_request(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade(&mut req)?;
    tokio::spawn(async move {
        if let Err(e) = tokio::task::unconstrained(echo(fut)).await {
            eprintln!("connection: {e}");
        }
    });
    Ok(response)
}

async fn serve_http<S>(stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let conn = http1::Builder::new()
        .serve_connection(io, service_fn(upgrade_request))
        .with_upgrades();
    if let Err(e) = conn.await {
        eprintln!("http: {e}");
    }
}

fn main() -> std::io::Result<()> {
    let args = wsengine_compare::echo_args("echo_fastwebsockets");
    wsengine_compare::echo_runtime().block_on(async {
        let listener = TcpListener::bind(args.addr).await?;
        eprintln!(
            "echo_fastwebsockets listening on {}://{}",
            wsengine_compare::scheme(&args),
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            // Two task types, so a plain connection's task is no larger than without TLS.
            match &args.tls {
                None => {
                    tokio::spawn(serve_http(stream));
                }
                Some(acceptor) => {
                    let accept = acceptor.accept(stream);
                    tokio::spawn(async move {
                        match accept.await {
                            Ok(stream) => serve_http(stream).await,
                            Err(e) => eprintln!("tls: {}", wsengine_compare::tls_error(&e)),
                        }
                    });
                }
            }
        }
    })
}
