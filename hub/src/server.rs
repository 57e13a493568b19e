//! The hub's HTTP side: hyper 1.x on a multi-threaded tokio runtime serves `GET /ws` (the
//! WebSocket upgrade, checked by the core and run by the tokio adapter), the HTTP API,
//! `/health`, `/metrics` and the static pages (`--static DIR`).
//!
//! The upgrade path ("Transport"; "Auth"; "Details": rate limits): the `connect_rate`
//! bucket (503 with `Retry-After`), the core's check of the request (RFC 6455 §4.2.1),
//! the Origin allow-list (403), the subprotocol (`wsengine.hub.v1`, or none; 400 for
//! only others), then the 101 and a [`session`] on the upgraded
//! connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wsengine::extensions::deflate::negotiate_server;
use wsengine::handshake::{Header, accept_headers, check_request};
use wsengine::{Accept, Negotiated, Role};
use wsengine_tokio::WebSocketStream;

use crate::auth::Verifier;
use crate::config::{Config, EngineConfig, EngineKind};
use crate::engine::Engine;
use crate::engine::memory::{MemoryConfig, MemoryEngine};
use crate::engine::nats::{NatsConfig, NatsEngine};
use crate::engine::redis::{RedisConfig, RedisEngine};
use crate::fallback::{self, HubBody};
use crate::limits::TokenBucket;
use crate::metrics::Metrics;
use crate::protocol::SUBPROTOCOL;
use crate::{http_api, session};
use http_body_util::Either;

/// What the server answers HTTP requests with.
pub type HttpResponse = Response<Full<Bytes>>;

/// How long a TCP connection may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the HTTP side waits for a request's headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a graceful shutdown waits for sessions to finish their closing handshakes,
/// unless [`Server::with_shutdown_grace`] says otherwise.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the server is started with.
pub struct ServerOptions {
    /// The resolved configuration (`config::resolve`).
    pub config: Config,
    /// Whether it is the demo configuration (no file, no auth flag): logged at start.
    pub demo: bool,
    /// Files served at `/` (`--static DIR`).
    pub static_dir: Option<PathBuf>,
    /// TLS (`--tls-cert`/`--tls-key`): every connection is TLS.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The engine; `None` makes the one `config.engine` names (the memory engine by
    /// default; the Redis engine, connected at [`Server::bind`], for `kind = "redis"`).
    pub engine: Option<Arc<dyn Engine>>,
}

/// The state every connection and request of one node shares.
pub struct Hub {
    /// The configuration.
    pub config: Config,
    /// Where streams, history and presence live.
    pub engine: Arc<dyn Engine>,
    /// Checks tokens; `None` when no key is configured (anonymous only).
    pub verifier: Option<Verifier>,
    /// The metrics of `/metrics`.
    pub metrics: Metrics,
    /// Whether it runs the demo configuration.
    pub demo: bool,
    /// Files served at `/`.
    pub static_dir: Option<PathBuf>,
    /// This node's fallback sessions (SSE, long polling).
    pub fallback: fallback::Registry,
    connect_bucket: Mutex<TokenBucket>,
    node: String,
    next_client: AtomicU64,
    subscribers: Mutex<HashMap<Arc<str>, u32>>,
    shutdown: watch::Receiver<bool>,
    /// WebSocket sessions running (spawned after their upgrade, outside the HTTP
    /// connections' tasks): a graceful stop waits for them to reach zero.
    sessions: watch::Sender<usize>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.node)
            .field("engine", &self.engine.name())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A new client id: unique on this node and, through the node's random prefix,
    /// across nodes.
    pub fn new_client_id(&self) -> Arc<str> {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.node).into()
    }

    /// Counts a new subscriber of `channel` on this node, unless the channel has
    /// `max_subscribers_per_channel` already ("Details": counted per node).
    pub fn add_subscriber(&self, channel: &Arc<str>) -> bool {
        let max = self.config.limits.max_subscribers_per_channel;
        let mut map = lock(&self.subscribers);
        let count = map.entry(Arc::clone(channel)).or_insert(0);
        if *count >= max {
            if *count == 0 {
                map.remove(channel);
            }
            return false;
        }
        *count += 1;
        true
    }

    /// Forgets one subscriber of `channel`.
    pub fn remove_subscriber(&self, channel: &str) {
        let mut map = lock(&self.subscribers);
        if let Some(count) = map.get_mut(channel) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(channel);
            }
        }
    }

    /// The channels with subscribers on this node and their counts, sorted by name
    /// (`GET /api/channels`).
    pub fn channels(&self) -> Vec<(Arc<str>, u32)> {
        let mut list: Vec<_> = lock(&self.subscribers)
            .iter()
            .map(|(c, n)| (Arc::clone(c), *n))
            .collect();
        list.sort();
        list
    }

    /// Resolves when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// This node's id (the prefix of its client and session ids).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes a token of the `connect_rate` bucket; `Err(retry_after)` when empty.
    fn admit_connection(&self) -> Result<(), Duration> {
        let mut bucket = lock(&self.connect_bucket);
        if bucket.take(Instant::now()) {
            Ok(())
        } else {
            Err(bucket.retry_after())
        }
    }

    /// Takes a token of the `connect_rate` bucket; when it is empty, the `503` with
    /// `Retry-After` to answer ("Details": rate limits).
    pub(crate) fn refuse_connection(&self) -> Option<HttpResponse> {
        let Err(retry_after) = self.admit_connection() else {
            return None;
        };
        self.metrics.refuse("connect_rate");
        let mut response = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "limit_exceeded",
            "too many new connections; retry later",
        );
        if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().to_string()) {
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, value);
        }
        Some(response)
    }

    /// Counts a session as running until the guard is dropped (a graceful stop waits
    /// for them).
    pub(crate) fn session_started(self: &Arc<Self>) -> SessionGuard {
        self.sessions.send_modify(|n| *n += 1);
        SessionGuard(Arc::clone(self))
    }
}

/// A bound, not yet running, hub server.
pub struct Server {
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: watch::Sender<bool>,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// A random hex string for node ids (no RNG crate: std's per-process random hasher keys).
fn random_hex() -> String {
    let a = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let b = std::collections::hash_map::RandomState::new().hash_one(a);
    format!("{:08x}", (a ^ b.rotate_left(17)) & 0xffff_ffff)
}

/// The engine `config` names. The Redis engine connects now: a Redis that cannot be
/// reached is an error (the hub refuses to start, as Centrifugo does), of kind
/// `ConnectionRefused`; so does the NATS engine with a NATS it cannot reach.
pub async fn build_engine(config: &EngineConfig) -> io::Result<Arc<dyn Engine>> {
    match config.kind {
        EngineKind::Memory => Ok(Arc::new(MemoryEngine::new(MemoryConfig::default()))),
        EngineKind::Redis => match RedisEngine::connect(RedisConfig::new(&config.url)).await {
            Ok(engine) => Ok(Arc::new(engine)),
            // The URL is not repeated: it may hold a password.
            Err(e) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("the redis engine cannot start: {e}"),
            )),
        },
        EngineKind::Nats => match NatsEngine::connect(NatsConfig::new(&config.url)).await {
            Ok(engine) => Ok(Arc::new(engine)),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("the nats engine cannot start: {e}"),
            )),
        },
    }
}

impl Server {
    /// Binds `config.listen` (`options.config.listen_addr()`) and builds the node (and its
    /// engine, [`build_engine`], unless `options.engine` gives one). Must be called inside
    /// a tokio runtime.
    pub async fn bind(options: ServerOptions) -> io::Result<Self> {
        let config = options.config;
        let addr = config.listen_addr().to_owned();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let verifier = Verifier::from_config(&config.auth)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let engine = match options.engine {
            Some(engine) => engine,
            None => build_engine(&config.engine).await?,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let rate = config.limits.connect_rate;
        let hub = Hub {
            engine,
            verifier,
            metrics: Metrics::new(),
            demo: options.demo,
            static_dir: options.static_dir,
            fallback: fallback::Registry::default(),
            connect_bucket: Mutex::new(TokenBucket::new(rate, rate, Instant::now())),
            node: random_hex(),
            next_client: AtomicU64::new(1),
            subscribers: Mutex::new(HashMap::new()),
            shutdown: shutdown_rx,
            sessions: watch::Sender::new(0),
            config,
        };
        let hub = Arc::new(hub);
        // Other nodes forward the requests of this node's fallback sessions here.
        match hub.engine.open_mailbox(&hub.node).await {
            Ok(Some(mailbox)) => {
                tokio::spawn(fallback::serve_mailbox(Arc::downgrade(&hub), mailbox));
            }
            Ok(None) => {}
            Err(e) => eprintln!("hub: this node's mailbox: {e}"),
        }
        Ok(Self {
            listener,
            hub,
            tls: options.tls.map(tokio_rustls::TlsAcceptor::from),
            shutdown,
            shutdown_grace: SHUTDOWN_GRACE,
        })
    }

    /// How long [`run`](Self::run) waits, once stopped, for the HTTP connections and the
    /// sessions' closing handshakes (default [`SHUTDOWN_GRACE`]).
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The node's shared state.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until `stop` resolves, then shuts down gracefully: stops accepting, closes
    /// every WebSocket with 1001 ("Close codes": server shutting down) and waits up to a
    /// few seconds for the closing handshakes.
    pub async fn run(self, stop: impl Future<Output = ()>) -> io::Result<()> {
        let mut tasks = JoinSet::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: back off instead of spinning.
                            eprintln!("hub: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let hub = Arc::clone(&self.hub);
                    let tls = self.tls.clone();
                    tasks.spawn(serve_connection(hub, socket, peer, tls));
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(self.listener);
        let _ = self.shutdown.send(true);
        // The HTTP connections end (an upgraded one already has), and the sessions
        // finish their closing handshakes after the 1001 each of them sends.
        let mut sessions = self.hub.sessions.subscribe();
        let _ = tokio::time::timeout(self.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
            let _ = sessions.wait_for(|n| *n == 0).await;
        })
        .await;
        tasks.abort_all();
        Ok(())
    }
}

/// One TCP connection: TLS if configured, then HTTP/1.1 with upgrades.
async fn serve_connection(
    hub: Arc<Hub>,
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = socket.set_nodelay(true);
    match tls {
        None => serve_http(hub, TokioIo::new(socket), peer).await,
        Some(acceptor) => {
            // A failed or slow TLS handshake is the client's problem: nothing to log per
            // connection on a busy server.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await
            {
                serve_http(hub, TokioIo::new(stream), peer).await;
            }
        }
    }
}

async fn serve_http<I>(hub: Arc<Hub>, io: I, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut shutdown = hub.shutdown_signal();
    let service_hub = Arc::clone(&hub);
    let service = service_fn(move |req| {
        let hub = Arc::clone(&service_hub);
        async move { Ok::<_, Infallible>(route(hub, req, peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// Resolves once the server starts shutting down.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the server is gone: stopped as well.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A small JSON or text answer.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    response
}

/// The protocol's HTTP error body `{"error": {"code", "message"}}` ("HTTP API").
pub fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    respond(status, "application/json", body)
}

async fn route(hub: Arc<Hub>, req: Request<Incoming>, peer: SocketAddr) -> Response<HubBody> {
    let path = req.uri().path();
    if path == "/ws" {
        return upgrade(hub, req, peer).map(Either::Left);
    }
    if req.headers().contains_key(hyper::header::UPGRADE) {
        return json_error(StatusCode::NOT_FOUND, "not_found", "WebSocket lives at /ws")
            .map(Either::Left);
    }
    match fallback::route(&hub, req).await {
        Ok(response) => response,
        Err(req) => http_api::handle(hub, req).await.map(Either::Left),
    }
}

/// The value of `name` in a query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts a session as ended when its task ends, however it ends.
pub(crate) struct SessionGuard(Arc<Hub>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// `GET /ws`: the checks before the upgrade, the 101, and the session after it.
fn upgrade(hub: Arc<Hub>, mut req: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
    if let Some(refusal) = hub.refuse_connection() {
        return refusal;
    }
    // RFC 6455 §4.2.1, checked by the core on what hyper parsed.
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
        _ => 0,
    };
    let target = req.uri().path_and_query().map_or("/ws", |p| p.as_str());
    let request = match check_request(req.method().as_str(), target, version, headers) {
        Ok(request) => request,
        Err(e) => {
            hub.metrics.refuse("handshake");
            let status = StatusCode::from_u16(e.status_hint()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = json_error(status, "bad_request", &e.to_string());
            if status == StatusCode::UPGRADE_REQUIRED {
                response.headers_mut().insert(
                    HeaderName::from_static("sec-websocket-version"),
                    HeaderValue::from_static("13"),
                );
            }
            return response;
        }
    };
    // "Auth": a refused Origin gets 403; no Origin (not a browser) is allowed.
    let allowed = &hub.config.auth.allowed_origins;
    if let Some(origin) = request.origin()
        && !allowed.is_empty()
        && !allowed.iter().any(|o| o.eq_ignore_ascii_case(origin))
    {
        hub.metrics.refuse("origin");
        return json_error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "this Origin is not allowed",
        );
    }
    // "Transport": select v1; no subprotocol offered is v1 too; only others is a 400.
    let offered = request.protocols();
    let accept = if offered.is_empty() {
        Accept::new()
    } else if offered.iter().any(|p| p == SUBPROTOCOL) {
        Accept::new().protocol(SUBPROTOCOL)
    } else {
        hub.metrics.refuse("subprotocol");
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the hub speaks the subprotocol wsengine.hub.v1",
        );
    };
    // permessage-deflate when configured and offered (`[websocket] compression`).
    let mut negotiated = Negotiated::default();
    let mut accept = accept;
    if hub.config.websocket.compression
        && let Some((params, answer)) =
            negotiate_server(request.extensions(), &session::deflate_config())
    {
        accept = accept.header("Sec-WebSocket-Extensions", answer.to_string());
        negotiated = negotiated.deflate(params);
    }
    let query_token = req.uri().query().and_then(|q| query_param(q, "token"));
    let Ok(answer) = accept_headers(&request, &accept) else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad answer");
    };
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in answer {
        match (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad header"),
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let running = hub.session_started();
    tokio::spawn(async move {
        let _running = running;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = session::websocket_config(&hub.config);
        match WebSocketStream::from_upgraded(
            TokioIo::new(upgraded),
            Role::Server,
            config,
            negotiated,
        ) {
            Ok(mut ws) => {
                // Most hub clients are quiet between a ping and a publish: hold no
                // buffer while they are.
                ws.release_buffers_when_idle(true);
                session::run(hub, ws, query_token, peer).await;
            }
            Err(e) => eprintln!("hub: websocket: {e}"),
        }
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_finds_and_decodes() {
        assert_eq!(
            query_param("a=1&token=x.y%2Dz&b", "token").as_deref(),
            Some("x.y-z")
        );
        assert_eq!(query_param("b", "b").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "token"), None);
        assert_eq!(
            query_param("token=%zz%4", "token").as_deref(),
            Some("%zz%4")
        );
    }
}
