//! Runs the example server (the built binary) on 127.0.0.1:0, upgrades through hyper,
//! round-trips messages with wsengine's tokio client, checks the plain HTTP paths, and
//! stops the server by closing its standard input.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine::{ClientRequest, CloseCode, Config};
use wsengine_tokio::{Message, connect_with};

/// The example server, killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends a raw HTTP request and returns the response head (hyper may keep the
/// connection open after it).
async fn http(addr: &str, request: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1024];
        let n = socket.read(&mut chunk).await.expect("response");
        assert!(n > 0, "the server closed before the head was complete");
        response.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn hyper_upgrade_example_echoes_through_the_tokio_adapter() {
    let child = Command::new(env!("CARGO_BIN_EXE_hyper_upgrade"))
        .args(["--listen", "127.0.0.1:0", "--stop-on-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the example server");
    let mut server = Server(child);
    let mut line = String::new();
    let stdout = server.0.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ws://")
        .expect("the listening line")
        .to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let request = ClientRequest::new(&format!("ws://{addr}/ws"))
                .expect("url")
                .protocol("echo");
            let (mut ws, response) = connect_with(request, Config::default())
                .await
                .expect("upgrade through hyper");
            assert_eq!(response.status(), 101);
            assert_eq!(response.protocol(), Some("echo"));

            let big = Bytes::from(vec![0xa5; 200_000]);
            let messages = [
                Message::text("hello through hyper"),
                Message::text("caf\u{e9}"),
                Message::binary(vec![1u8, 2, 3]),
                Message::Binary(big),
            ];
            for m in &messages {
                ws.send(m.clone()).await.expect("send");
            }
            for m in &messages {
                assert_eq!(ws.next().await.expect("echo").expect("no error"), *m);
            }
            ws.send(Message::Ping(Bytes::from_static(b"hi")))
                .await
                .expect("ping");
            assert_eq!(
                ws.next().await.expect("pong").expect("no error"),
                Message::Pong(Bytes::from_static(b"hi"))
            );
            ws.close(None).await.expect("close");
            while let Some(m) = ws.next().await {
                assert!(m.expect("no error").is_close());
            }
            assert_eq!(ws.closed(), Some((CloseCode::NORMAL, true)));

            // Plain HTTP still works, and a broken upgrade is answered by check_request's
            // verdict.
            let page = http(
                &addr,
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            assert!(page.starts_with("HTTP/1.1 200"), "{page}");
            let refused = http(
                &addr,
                "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            )
            .await;
            assert!(refused.starts_with("HTTP/1.1 426"), "{refused}");
            assert!(
                refused
                    .to_ascii_lowercase()
                    .contains("sec-websocket-version: 13")
            );
        })
        .await
        .expect("the round trip finished in time");
    });

    // Stop the server: its standard input ends.
    drop(server.0.stdin.take());
    let mut waits = 0;
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        waits += 1;
        assert!(waits < 500, "the server did not stop within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
