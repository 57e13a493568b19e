//! The HTTP side besides `/ws`: the API for backends (`/api/*`), `/health`, `/metrics`
//! and the static pages (`--static DIR`) (`docs/HUB-PROTOCOL.md`, "HTTP API").
//!
//! Where the protocol is silent, this module chose:
//! - `/api/*` needs `Authorization: apikey KEY` (the scheme is case-insensitive), checked
//!   before the path or the method: 401 `unauthorized` without it or with another key.
//!   With no `api_key` configured the API is open in demo mode and refused otherwise
//!   (403 `permission_denied`), so that a production server never runs an open API by
//!   accident.
//! - Errors are `{"error": {"code", "message"}}` with the protocol's codes: 400
//!   `bad_request` (bad body or parameters, bad channel), 400 `disabled` (presence off for
//!   the namespace), 401, 403, 404 `not_found`, 405 `bad_request` with `Allow`, 408
//!   `bad_request` (the body did not arrive within 30 s), 413 `limit_exceeded` (a body
//!   over `max_message_size` + 4 KiB), 500 `internal`, 503 `unavailable`.
//! - `POST /api/publish` takes a bare JSON object `{"channel", "payload"}` (other fields
//!   are ignored, `payload` may be any JSON value, `null` included, as over the
//!   WebSocket); every namespace's publish policy lets the API through (`api` means
//!   API-only).
//! - `GET /api/history`: `channel`, optional `limit` (absent: everything retained), and
//!   optional `since_offset` with `since_epoch` (both or neither), with the `history`
//!   request's meaning ("Details": `history`). Query values are percent-decoded.
//! - `GET /api/channels` counts the subscribers of every node: the Redis engine sums the
//!   nodes' reports (each node's as of its last report, every 10 s; this node's live);
//!   with the memory engine (one node) it is this node's count (`Hub::channels`).
//! - `POST /api/send` (the fallback transports' upstream) does not exist yet: 404 like
//!   any unknown path, after the key check.
//! - `/health` asks the engine whether it can serve ([`Engine::health`](crate::engine::Engine::health):
//!   by default the position of the channel [`HEALTH_CHANNEL`], a valid channel name and
//!   the engine's cheapest call; the Redis engine pings Redis and checks its pub/sub
//!   link), bounded by 5 s; any engine error or the timeout is `degraded` with
//!   `broker: "down"` and 503. Every answer has `engine` (`memory`, `redis`) and
//!   `broker` (`up` or `down`; always `up` for the memory engine).
//! - Static files: `GET`/`HEAD` only; `/` and directories serve their `index.html` (a
//!   directory without a trailing `/` is redirected to it, so relative links work);
//!   refused with 404: segments that are empty inside the path or start with `.` (`..`,
//!   hidden files), `\`, NUL or `/` after percent-decoding, invalid escapes, anything whose
//!   canonical path is outside the directory (symlinks out of it included), anything not
//!   a regular file, and files over [`MAX_STATIC_FILE`] bytes.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::engine::{EngineError, HistoryOptions, PresenceEntry, StreamPosition};
use crate::protocol::{self, ErrorCode};
use crate::server::{HttpResponse, Hub, json_error, query_param, respond};
use crate::session::WirePublication;

/// The content type of every JSON answer.
const JSON: &str = "application/json";

/// The content type of `GET /metrics` (prometheus-client writes OpenMetrics text).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The channel whose position `/health` asks the engine for by default: a valid channel
/// name (names starting with `_` would be valid too, but a dotted name is unlikely to
/// collide with an application's channel).
pub use crate::engine::HEALTH_CHANNEL;

/// How long `/health` waits for the engine before it says `degraded`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a request body may have beyond `max_message_size`: the JSON around the payload
/// (`channel`, field names).
const BODY_SLACK: u64 = 4096;

/// How long a request body may take to arrive (hyper bounds only the headers).
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest static file served (16 MiB): files are read whole into memory.
pub const MAX_STATIC_FILE: u64 = 16 * 1024 * 1024;

/// A refused request before it reaches the engine: the parts of its JSON error (a
/// `Result` with a whole response in its `Err` would be large).
pub(crate) struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub(crate) fn response(&self) -> HttpResponse {
        json_error(self.status, self.code.as_str(), &self.message)
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

/// Answers every request that is not the WebSocket upgrade.
pub async fn handle(hub: Arc<Hub>, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return api(&hub, req).await;
    }
    let get_or_head = matches!(*req.method(), Method::GET | Method::HEAD);
    match path {
        "/health" | "/metrics" if !get_or_head => method_not_allowed("GET, HEAD"),
        "/health" => health(&hub).await,
        "/metrics" => respond(StatusCode::OK, METRICS_CONTENT_TYPE, hub.metrics.encode()),
        _ if !get_or_head => method_not_allowed("GET, HEAD"),
        _ => match &hub.static_dir {
            Some(dir) => serve_static(dir, path).await,
            None if path == "/" => index_page(),
            None => not_found(),
        },
    }
}

/// `/api/*`: the key first (nothing about the API is answered without it), then the path
/// and the method.
async fn api(hub: &Hub, req: Request<Incoming>) -> HttpResponse {
    if let Err(refused) = authorize(hub, req.headers()) {
        return refused.response();
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    match (req.uri().path(), method) {
        ("/api/publish", Method::POST) => publish(hub, req).await,
        ("/api/publish", _) => method_not_allowed("POST"),
        ("/api/history", Method::GET) => history(hub, &query).await,
        ("/api/presence", Method::GET) => presence(hub, &query).await,
        ("/api/channels", Method::GET) => channels(hub).await,
        ("/api/history" | "/api/presence" | "/api/channels", _) => method_not_allowed("GET"),
        _ => not_found(),
    }
}

/// Checks `Authorization: apikey KEY` against the configured key.
fn authorize(hub: &Hub, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = hub.config.auth.api_key.as_deref() else {
        if hub.demo {
            return Ok(());
        }
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PermissionDenied,
            "the HTTP API is off: configure an API key (`api_key` in [auth], or --api-key)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| presented_key(v.as_bytes()));
    match given {
        Some(given) if same_key(given, expected.as_bytes()) => Ok(()),
        Some(_) => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "wrong API key",
        )),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the API needs the header `Authorization: apikey KEY`",
        )),
    }
}

/// The key of an `Authorization` value `apikey KEY` (RFC 9110 §11.1: the scheme is
/// case-insensitive); `None` for another scheme or no key.
fn presented_key(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let split = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let (scheme, key) = value.split_at(split);
    let key = key.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"apikey") && !key.is_empty()).then_some(key)
}

/// Compares keys in time independent of where they differ, so that a client cannot find
/// the key byte by byte from response times. The length is not hidden (it says little).
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // Keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// The body of `POST /api/publish`.
#[derive(Deserialize)]
struct PublishBody {
    channel: String,
    /// Kept as the text the backend sent ("Transport": passed through untouched).
    payload: Box<RawValue>,
}

/// The answer of `POST /api/publish`.
#[derive(Serialize)]
struct PublishAnswer<'a> {
    offset: u64,
    epoch: &'a str,
}

/// `POST /api/publish`.
async fn publish(hub: &Hub, req: Request<Incoming>) -> HttpResponse {
    let body = match read_body(hub, req).await {
        Ok(body) => body,
        Err(refused) => return refused.response(),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request("the body is not UTF-8");
    };
    // serde would take an array for a struct too; the protocol's bodies are objects.
    if !text.trim_start().starts_with('{') {
        return bad_request("the body must be a JSON object {\"channel\", \"payload\"}");
    }
    let parsed: PublishBody = match serde_json::from_str(text) {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(&format!("bad body: {e}")),
    };
    if let Err(e) = protocol::validate_channel(&parsed.channel) {
        return bad_request(&format!("bad channel: {e}"));
    }
    let namespace = hub.config.channel_namespace(&parsed.channel);
    let opts = HistoryOptions {
        history_size: usize::try_from(namespace.history_size).unwrap_or(usize::MAX),
        history_ttl: Duration::from_secs(namespace.history_ttl),
    };
    let started = Instant::now();
    let result = hub
        .engine
        .publish(&parsed.channel, Arc::from(parsed.payload), None, opts)
        .await;
    observe(hub, started);
    match result {
        Ok(p) => {
            hub.metrics.publications.inc();
            json_ok(&PublishAnswer {
                offset: p.offset,
                epoch: &p.epoch,
            })
        }
        Err(e) => engine_error(&e),
    }
}

/// Reads a request body of at most `max_message_size` + [`BODY_SLACK`] bytes.
pub(crate) async fn read_body(hub: &Hub, req: Request<Incoming>) -> Result<Bytes, Refusal> {
    let max = hub
        .config
        .limits
        .max_message_size
        .saturating_add(BODY_SLACK);
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::LimitExceeded,
            format!("the body is over {max} bytes"),
        )
    };
    // A declared length over the limit is refused before anything is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), usize::try_from(max).unwrap_or(usize::MAX));
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Refusal::bad_request("the body could not be read")),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BadRequest,
            "the body did not arrive in time",
        )),
    }
}

/// The answer of `GET /api/history`: the `history` reply's fields.
#[derive(Serialize)]
struct HistoryAnswer<'a> {
    publications: Vec<WirePublication<'a>>,
    epoch: &'a str,
    offset: u64,
}

/// `GET /api/history?channel=C[&limit=N][&since_offset=O&since_epoch=E]`.
async fn history(hub: &Hub, query: &str) -> HttpResponse {
    let channel = match channel_param(query) {
        Ok(channel) => channel,
        Err(refused) => return refused.response(),
    };
    let limit = match query_param(query, "limit").map(|l| l.parse::<u64>()) {
        None => None,
        Some(Ok(l)) => Some(usize::try_from(l).unwrap_or(usize::MAX)),
        Some(Err(_)) => return bad_request("`limit` must be a non-negative integer"),
    };
    let since = match (
        query_param(query, "since_offset"),
        query_param(query, "since_epoch"),
    ) {
        (None, None) => None,
        (Some(offset), Some(epoch)) => match offset.parse::<u64>() {
            Ok(offset) => Some(StreamPosition {
                offset,
                epoch: epoch.into(),
            }),
            Err(_) => return bad_request("`since_offset` must be a non-negative integer"),
        },
        _ => return bad_request("`since_offset` and `since_epoch` go together"),
    };
    let started = Instant::now();
    let result = hub.engine.history(&channel, limit, since).await;
    observe(hub, started);
    match result {
        Ok(history) => json_ok(&HistoryAnswer {
            publications: history
                .publications
                .iter()
                .map(|p| WirePublication::item(p))
                .collect(),
            epoch: &history.position.epoch,
            offset: history.position.offset,
        }),
        Err(e) => engine_error(&e),
    }
}

/// The answer of `GET /api/presence`: the `presence` reply's fields.
#[derive(Serialize)]
struct PresenceAnswer<'a> {
    clients: &'a [PresenceEntry],
}

/// `GET /api/presence?channel=C`.
async fn presence(hub: &Hub, query: &str) -> HttpResponse {
    let channel = match channel_param(query) {
        Ok(channel) => channel,
        Err(refused) => return refused.response(),
    };
    if !hub.config.channel_namespace(&channel).presence {
        return json_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::Disabled.as_str(),
            "presence is off for this namespace",
        );
    }
    let started = Instant::now();
    let result = hub.engine.presence(&channel).await;
    observe(hub, started);
    match result {
        Ok(clients) => json_ok(&PresenceAnswer { clients: &clients }),
        Err(e) => engine_error(&e),
    }
}

/// One item of `GET /api/channels`.
#[derive(Serialize)]
struct ChannelCount<'a> {
    channel: &'a str,
    subscribers: u64,
}

/// `GET /api/channels`: the channels with subscribers across the cluster
/// ([`Engine::channels`](crate::engine::Engine::channels)), or on this node for an
/// engine of one node, sorted by name.
async fn channels(hub: &Hub) -> HttpResponse {
    let started = Instant::now();
    let cluster = hub.engine.channels().await;
    observe(hub, started);
    let list = match cluster {
        Ok(Some(list)) => list,
        Ok(None) => hub
            .channels()
            .into_iter()
            .map(|(channel, n)| (channel, u64::from(n)))
            .collect(),
        Err(e) => return engine_error(&e),
    };
    let channels: Vec<_> = list
        .iter()
        .map(|(channel, subscribers)| ChannelCount {
            channel,
            subscribers: *subscribers,
        })
        .collect();
    json_ok(&serde_json::json!({ "channels": channels }))
}

/// The `channel` query parameter, present and valid.
fn channel_param(query: &str) -> Result<String, Refusal> {
    let Some(channel) = query_param(query, "channel") else {
        return Err(Refusal::bad_request(
            "missing the query parameter `channel`",
        ));
    };
    match protocol::validate_channel(&channel) {
        Ok(()) => Ok(channel),
        Err(e) => Err(Refusal::bad_request(format!("bad channel: {e}"))),
    }
}

/// `GET /health`: whether the engine answers.
async fn health(hub: &Hub) -> HttpResponse {
    let started = Instant::now();
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, hub.engine.health()).await;
    observe(hub, started);
    let up = matches!(answer, Ok(Ok(_)));
    let (status, state, broker) = if up {
        (StatusCode::OK, "ok", "up")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded", "down")
    };
    let body = serde_json::json!({
        "status": state,
        "engine": hub.engine.name(),
        "broker": broker,
    });
    respond(status, JSON, body.to_string())
}

/// `GET /` without a static directory: where things are.
fn index_page() -> HttpResponse {
    let body = serde_json::json!({
        "name": "wsengine hub",
        "websocket": "/ws",
        "health": "/health",
        "metrics": "/metrics",
        "api": "/api/publish, /api/history, /api/presence, /api/channels",
    });
    respond(StatusCode::OK, JSON, body.to_string())
}

/// A file of the static directory, or 404 (see the module's rules).
async fn serve_static(dir: &Path, uri_path: &str) -> HttpResponse {
    let Some(relative) = safe_relative(uri_path) else {
        return not_found();
    };
    let Ok(root) = tokio::fs::canonicalize(dir).await else {
        return not_found();
    };
    let Some((mut file, meta)) = resolve_inside(&root, &root.join(&relative)).await else {
        return not_found();
    };
    let meta = if meta.is_dir() {
        if !uri_path.ends_with('/') {
            // Relative links of the directory's index.html resolve against the URL.
            // `uri_path` has no empty segment (`safe_relative`), so this cannot be a
            // `//host` (another site) redirect.
            return redirect(&format!("{uri_path}/"));
        }
        match resolve_inside(&root, &file.join("index.html")).await {
            Some((index, meta)) => {
                file = index;
                meta
            }
            None => return not_found(),
        }
    } else {
        meta
    };
    if !meta.is_file() || meta.len() > MAX_STATIC_FILE {
        return not_found();
    }
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return not_found();
    };
    // The file may have grown since its metadata was read.
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_STATIC_FILE) {
        return not_found();
    }
    let mut response = respond(StatusCode::OK, content_type(&file), bytes);
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `path`'s canonical form and metadata when it exists inside `root` (itself canonical):
/// a symlink that leads out of the directory is refused.
async fn resolve_inside(root: &Path, path: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let real = tokio::fs::canonicalize(path).await.ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    Some((real, meta))
}

/// The request path as a relative file path, or `None` when it must not be served: each
/// segment percent-decoded and refused when empty (except a trailing `/`), starting with
/// `.` (`.`, `..`, hidden files), or holding `/`, `\` or NUL once decoded.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut out = PathBuf::new();
    for (i, raw) in segments.iter().enumerate() {
        if raw.is_empty() {
            if i == last {
                break;
            }
            return None;
        }
        let segment = percent_decode_strict(raw)?;
        if segment.starts_with('.') || segment.contains(['/', '\\', '\0']) {
            return None;
        }
        // One plain name, nothing a platform reads as a root or a drive.
        let mut components = Path::new(&segment).components();
        if !matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

/// Decodes `%XX` escapes of a path segment; `None` for a bad escape or a result that is
/// not UTF-8. (`+` stays `+`: it means a space only in query strings.)
fn percent_decode_strict(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type of a static file, by its extension.
fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// A JSON answer with 200, or 500 if `value` cannot be written (it always can).
fn json_ok<T: Serialize>(value: &T) -> HttpResponse {
    match serde_json::to_string(value) {
        Ok(body) => respond(StatusCode::OK, JSON, body),
        Err(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal.as_str(),
            "serialisation",
        ),
    }
}

/// An engine failure: 503 when the broker is down, 500 otherwise.
fn engine_error(e: &EngineError) -> HttpResponse {
    let status = match e {
        EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, e.code(), &e.to_string())
}

fn bad_request(message: &str) -> HttpResponse {
    json_error(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest.as_str(),
        message,
    )
}

fn not_found() -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound.as_str(),
        "no such resource",
    )
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest.as_str(),
        &format!("allowed methods: {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn redirect(location: &str) -> HttpResponse {
    let Ok(value) = HeaderValue::from_str(location) else {
        return not_found();
    };
    let mut response = respond(StatusCode::MOVED_PERMANENTLY, JSON, "{}");
    response.headers_mut().insert(header::LOCATION, value);
    response
}

fn observe(hub: &Hub, started: Instant) {
    hub.metrics
        .broker_round_trip
        .observe(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_channel_is_valid() {
        assert!(protocol::validate_channel(HEALTH_CHANNEL).is_ok());
    }

    #[test]
    fn api_key_header() {
        assert_eq!(presented_key(b"apikey abc"), Some(&b"abc"[..]));
        assert_eq!(presented_key(b"  ApiKey \t abc  "), Some(&b"abc"[..]));
        assert_eq!(presented_key(b"Bearer abc"), None);
        assert_eq!(presented_key(b"apikey"), None);
        assert_eq!(presented_key(b"apikey   "), None);
        assert!(same_key(b"secret", b"secret"));
        assert!(!same_key(b"secreT", b"secret"));
        assert!(!same_key(b"secret!", b"secret"));
        assert!(!same_key(b"", b"secret"));
    }

    #[test]
    fn static_paths() {
        assert_eq!(safe_relative("/"), Some(PathBuf::new()));
        assert_eq!(
            safe_relative("/a/b%20c.js"),
            Some(PathBuf::from("a").join("b c.js"))
        );
        assert_eq!(safe_relative("/dir/"), Some(PathBuf::from("dir")));
        for bad in [
            "/../x",
            "/a/../x",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.git/config",
            "/./x",
            "//evil.example",
            "/a//b",
            "/a%2fb",
            "/a%5cb",
            "/a%00b",
            "/%zz",
            "/%2",
            "/%ff",
            "relative",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Path::new("a/INDEX.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("m.mjs")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
