//! The test harness: a hub on 127.0.0.1:0 and a protocol client.

#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    unreachable_pub,
    reason = "test harness: a failed step fails the test"
)]

mod broker_process;
mod nats_server;
mod redis_server;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use wsengine::{ClientRequest, Config as WsConfig};
use wsengine_hub::config::Config;
use wsengine_hub::{Server, ServerOptions};
use wsengine_tokio::{MaybeTlsStream, Message, WebSocketStream};

pub use nats_server::NatsServer;
pub use redis_server::{RedisServer, unique_prefix};

/// How long a test waits for any one thing before failing.
pub const STEP: Duration = Duration::from_secs(10);

/// The demo configuration on a free port.
pub fn demo_config() -> Config {
    let mut config = Config::demo();
    config.listen = Some("127.0.0.1:0".to_owned());
    config
}

/// A running hub.
pub struct TestHub {
    pub addr: SocketAddr,
    pub hub: std::sync::Arc<wsengine_hub::Hub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestHub {
    pub async fn start(config: Config) -> Self {
        Self::start_with(ServerOptions {
            config,
            demo: false,
            static_dir: None,
            tls: None,
            engine: None,
        })
        .await
    }

    pub async fn start_with(options: ServerOptions) -> Self {
        // Tests mostly end with clients that no longer read: a short grace keeps their
        // stop quick (`graceful_stop_closes_1001` reads its clients).
        let server = Server::bind(options)
            .await
            .expect("bind")
            .with_shutdown_grace(Duration::from_millis(300));
        let addr = server.local_addr().expect("addr");
        let hub = std::sync::Arc::clone(server.hub());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            hub,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// A WebSocket client at `/ws` offering the hub's subprotocol.
    pub async fn client(&self) -> TestClient {
        self.client_with(
            ClientRequest::new(&self.url("/ws"))
                .expect("url")
                .protocol("wsengine.hub.v1"),
        )
        .await
        .expect("handshake")
    }

    pub async fn client_with(
        &self,
        request: ClientRequest,
    ) -> Result<TestClient, wsengine_tokio::Error> {
        let (ws, _) = tokio::time::timeout(
            STEP,
            wsengine_tokio::connect_with(request, WsConfig::default()),
        )
        .await
        .expect("handshake in time")?;
        Ok(TestClient { ws, next_id: 1 })
    }

    /// Stops the server (graceful: 1001 to every client) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STEP, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A protocol client: requests with automatic ids, replies matched by id.
pub struct TestClient {
    pub ws: WebSocketStream<MaybeTlsStream>,
    pub next_id: u64,
}

impl TestClient {
    /// Sends one text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// The next text message (pings from the server included).
    pub async fn recv_text(&mut self) -> String {
        loop {
            match tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("error: {e}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// The next JSON message.
    pub async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).expect("json")
    }

    /// Sends `request` with the next id and returns the reply or error with that id
    /// (messages before it, publications say, are dropped).
    pub async fn request(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = id.into();
        self.send_text(&request.to_string()).await;
        loop {
            let message = self.recv().await;
            if message["id"] == id && (message["type"] == "reply" || message["type"] == "error") {
                return message;
            }
        }
    }

    /// Reads until the server closes; returns the close code it sent.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("closed in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.0),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return self.ws.closed().map(|(c, _)| c.0),
            }
        }
    }
}

/// An HTTP answer read by [`http`].
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("json body ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close` over a new TCP connection to `addr`;
/// `headers` are extra lines (`"Authorization: apikey k"`). Reads the answer to EOF.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[&str],
    body: Option<&str>,
) -> HttpAnswer {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    http_raw(addr, &request).await
}

/// Writes `request` (a whole HTTP/1.1 request, with `Connection: close`) on a new TCP
/// connection to `addr` and reads the answer to EOF.
pub async fn http_raw(addr: SocketAddr, request: &str) -> HttpAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let raw = tokio::time::timeout(STEP, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        // A server that answers before reading a whole (refused) body may reset the
        // connection after its answer: keep what arrived.
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        raw
    })
    .await
    .expect("an HTTP answer in time");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    }
}

// --- Additions for the protocol suite (hub/tests/hub_tests/) ---

/// The HS256 secret of [`auth_config`].
pub const SECRET: &str = "test-secret-0123456789";

/// A configuration from TOML text, on a free port.
pub fn config(toml: &str) -> Config {
    let mut config = Config::from_toml(toml, "test").expect("test configuration");
    config.listen = Some("127.0.0.1:0".to_owned());
    config
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An HS256 token of `claims` signed with `secret`.
pub fn token_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("encode token")
}

/// An HS256 token of `claims` signed with [`SECRET`].
pub fn token(claims: &Value) -> String {
    token_with(claims, SECRET)
}

/// The refused response of a failed handshake (any other failure panics).
pub fn refusal(error: &wsengine_tokio::Error) -> &wsengine::RefusedResponse {
    match error {
        wsengine_tokio::Error::Connection(wsengine::Error::Handshake(
            wsengine::HandshakeError::Rejected(response),
        )) => response,
        other => panic!("not a refused handshake: {other}"),
    }
}

/// The sorted keys of a JSON object.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

impl TestHub {
    /// A client that sent `connect` and got its reply.
    pub async fn connected(&self) -> (TestClient, Value) {
        let mut client = self.client().await;
        let reply = client.connect(None).await;
        (client, reply)
    }

    /// A client request for `path` offering the hub's subprotocol.
    pub fn request_for(&self, path: &str) -> ClientRequest {
        ClientRequest::new(&self.url(path))
            .expect("url")
            .protocol("wsengine.hub.v1")
    }

    /// The value of one series (`name{labels}` exactly as exported), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.hub.metrics.encode();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|v| v.trim().parse::<f64>().expect("metric value"))
            })
            .unwrap_or(0.0)
    }

    /// Waits (up to [`STEP`]) until `series` satisfies `ok`; returns its value.
    pub async fn wait_metric(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let value = self.metric(series);
            if ok(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} stuck at {value}\n{}",
                self.hub.metrics.encode()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl TestClient {
    /// Sends `connect` (with `token` if given) and returns its reply, asserting it is one.
    pub async fn connect(&mut self, token: Option<&str>) -> Value {
        let mut request = serde_json::json!({"type": "connect"});
        if let Some(token) = token {
            request["token"] = token.into();
        }
        let reply = self.request(request).await;
        assert_eq!(reply["type"], "reply", "{reply}");
        reply
    }

    /// Sends `request` with the next id and returns the messages before its answer and
    /// the answer itself (nothing dropped).
    pub async fn request_all(&mut self, mut request: Value) -> (Vec<Value>, Value) {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = id.into();
        self.send_text(&request.to_string()).await;
        let mut before = Vec::new();
        loop {
            let message = self.recv().await;
            if message["id"] == id && (message["type"] == "reply" || message["type"] == "error") {
                return (before, message);
            }
            before.push(message);
        }
    }

    /// Sends a request and asserts the very next message is its reply; returns `result`.
    pub async fn ok(&mut self, request: Value) -> Value {
        let (before, reply) = self.request_all(request).await;
        assert!(before.is_empty(), "unexpected messages: {before:?}");
        assert_eq!(reply["type"], "reply", "{reply}");
        reply["result"].clone()
    }

    /// Sends a request and asserts the very next message is an error with `code`.
    pub async fn err(&mut self, request: Value, code: &str) -> Value {
        let (before, reply) = self.request_all(request).await;
        assert!(before.is_empty(), "unexpected messages: {before:?}");
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
        assert_eq!(keys(&reply), ["error", "id", "type"], "{reply}");
        assert_eq!(keys(&reply["error"]), ["code", "message"], "{reply}");
        reply
    }

    /// Sends one binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(Message::binary(data)).await.expect("send");
    }

    /// The next text message if one comes within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("json"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => panic!("closed: {frame:?}"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("error: {e}"),
                Ok(None) => panic!("connection ended"),
            }
        }
    }

    /// Asserts that no message arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) {
        if let Some(message) = self.recv_within(wait).await {
            panic!("unexpected message: {message}");
        }
    }
}
