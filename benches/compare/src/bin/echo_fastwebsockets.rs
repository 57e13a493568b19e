//! Echo server on fastwebsockets, as its own examples do: hyper serves the HTTP/1.1
//! upgrade, `FragmentCollector` reads whole messages, `write_frame` sends them back. One
//! current-thread runtime, one task per connection.

use fastwebsockets::upgrade::{UpgradeFut, upgrade};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
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

fn main() -> std::io::Result<()> {
    let addr = wsengine_compare::listen_addr("echo_fastwebsockets");
    wsengine_compare::echo_runtime().block_on(async {
        let listener = TcpListener::bind(addr).await?;
        eprintln!(
            "echo_fastwebsockets listening on {}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = http1::Builder::new()
                    .serve_connection(io, service_fn(upgrade_request))
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("http: {e}");
                }
            });
        }
    })
}
