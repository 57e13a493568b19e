//! The fallback transports (`docs/HUB-PROTOCOL.md`, "Fallback transports: SSE and long
//! polling"): `GET /sse`, `GET /poll` and `POST /api/send`, for clients whose network
//! breaks the WebSocket upgrade.
//!
//! A fallback session is a [`session`] task like a WebSocket's, on an `HttpLink`: the
//! client's messages reach it through a bounded channel fed by `POST /api/send`; its own
//! wait in the session's `Outbox` until a stream (an SSE response body, [`SseBody`]) or
//! a poll takes them. What waits there is the backlog `outbound_cap` bounds. A session
//! with no stream or poll attached for `session_timeout` seconds ends as a dropped
//! WebSocket does.
//!
//! Sessions are found by id in this node's [`Registry`]. The id starts with the node's
//! id, so that a request for a session held by another node can be told apart (it is
//! answered 404 here: forwarding through the broker is not built yet).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use crate::engine::{Mailbox, Publication};
use crate::protocol::{Since, close};
use crate::server::{HttpResponse, Hub, json_error, query_param, respond};
use crate::session::{self, Inbound, Link, Opening, publication_json};

/// Client messages one session may have waiting for its task: past it `POST /api/send`
/// waits (the client's requests slow down; nothing grows).
const INBOX_CAPACITY: usize = 64;

/// How long `POST /api/send` waits for room in a session's inbox before `503`.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closed session waits for a stream or a poll to take its last messages
/// (its `close`).
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The most bytes one SSE write or one poll answer takes from the outbox: a large
/// backlog leaves in pieces, each written before the next is taken.
const MAX_TAKE: usize = 256 * 1024;

/// The two fallback transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Sse,
    LongPolling,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::LongPolling => "long-polling",
        }
    }
}

/// A server message waiting for the client.
struct Outgoing {
    json: Arc<str>,
    /// SSE: the event id (every subscription's position) when it moves one.
    id: Option<String>,
}

/// What the session queued for its client, and who is there to take it.
struct Outbox {
    queue: VecDeque<Outgoing>,
    /// Bytes of `queue` (the JSON texts).
    bytes: usize,
    /// The stream or poll waiting for messages.
    waiter: Option<Waker>,
    /// The session's task, woken when the last stream or poll ends.
    task: Option<Waker>,
    /// Streams and polls open now.
    attached: u32,
    /// When the last one ended (or the session started).
    detached_at: Instant,
    /// The session's `close` is queued: nothing more comes.
    closed: bool,
    /// Long polling: answers given (the opening one is answer 0), the last one (sent
    /// again to a client that asks for it again), and which poll may take the next.
    answers: u64,
    last_answer: Bytes,
    poll_turn: u64,
}

/// One fallback session, as the HTTP handlers and its task share it.
pub(crate) struct Shared {
    id: Arc<str>,
    transport: Transport,
    inbox: mpsc::Sender<Inbound>,
    outbox: Mutex<Outbox>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn wake(outbox: &mut Outbox) {
        if let Some(waker) = outbox.waiter.take() {
            waker.wake();
        }
    }

    fn attach(self: &Arc<Self>) -> Attachment {
        lock(&self.outbox).attached += 1;
        Attachment(Arc::clone(self))
    }
}

/// A stream or a poll, open: the session does not expire while one is.
struct Attachment(Arc<Shared>);

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut outbox = lock(&self.0.outbox);
        outbox.attached = outbox.attached.saturating_sub(1);
        if outbox.attached == 0 {
            outbox.detached_at = Instant::now();
            if let Some(task) = outbox.task.take() {
                task.wake();
            }
        }
    }
}

/// This node's fallback sessions by id.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<Arc<str>, Arc<Shared>>>,
    forwarded: Forwarded,
}

impl Registry {
    fn get(&self, id: &str) -> Option<Arc<Shared>> {
        lock(&self.sessions).get(id).cloned()
    }

    fn insert(&self, shared: Arc<Shared>) {
        lock(&self.sessions).insert(Arc::clone(&shared.id), shared);
    }

    fn remove(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Fallback sessions on this node.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session task's side of a fallback session.
pub(crate) struct HttpLink {
    shared: Arc<Shared>,
    inbox: mpsc::Receiver<Inbound>,
    session_timeout: Duration,
    expiry: Pin<Box<Sleep>>,
    expiry_at: Instant,
}

impl HttpLink {
    fn push(&mut self, json: Arc<str>, id: Option<String>) -> bool {
        let mut outbox = lock(&self.shared.outbox);
        if outbox.closed {
            return false;
        }
        outbox.bytes += json.len();
        outbox.queue.push_back(Outgoing { json, id });
        Shared::wake(&mut outbox);
        true
    }

    /// When the session expires if nothing attaches, or when to look again (`None`:
    /// expired now). The task is woken when the last stream or poll ends.
    fn expiry_deadline(&self, cx: &mut Context<'_>) -> Option<Instant> {
        let mut outbox = lock(&self.shared.outbox);
        let now = Instant::now();
        if outbox.attached > 0 {
            outbox.task = Some(cx.waker().clone());
            // Looked at again one timeout from now as well.
            return Some(now + self.session_timeout);
        }
        if self.shared.transport == Transport::Sse {
            // An SSE session's stream never comes back (a reconnect opens a new
            // session): the client is gone with it.
            return None;
        }
        let at = outbox.detached_at + self.session_timeout;
        (at > now).then_some(at)
    }
}

impl Link for HttpLink {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        if let Poll::Ready(message) = self.inbox.poll_recv(cx) {
            return Poll::Ready(message);
        }
        loop {
            let Some(deadline) = self.expiry_deadline(cx) else {
                // Expired: the client is gone, and nothing reaches the session any more.
                lock(&self.shared.outbox).closed = true;
                return Poll::Ready(None);
            };
            if deadline != self.expiry_at {
                self.expiry.as_mut().reset(deadline);
                self.expiry_at = deadline;
            }
            if self.expiry.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn send_text(&mut self, text: String, position: Option<String>) -> bool {
        self.push(text.into(), position)
    }

    fn send_publication(
        &mut self,
        p: &Publication,
        _compress: bool,
        position: Option<String>,
    ) -> bool {
        let json = Arc::clone(publication_json(p));
        self.push(json, position)
    }

    fn publication_len(&self, p: &Publication, _compress: bool) -> usize {
        publication_json(p).len()
    }

    fn pending_bytes(&self) -> usize {
        lock(&self.shared.outbox).bytes
    }

    fn wants_positions(&self) -> bool {
        self.shared.transport == Transport::Sse
    }

    fn close(&mut self, code: u16) {
        let message = serde_json::json!({
            "type": "close",
            "code": code,
            "reason": close::reason(code),
        });
        self.push(message.to_string().into(), None);
        lock(&self.shared.outbox).closed = true;
    }

    fn gone_code(&self) -> u16 {
        1006
    }

    async fn finish(&mut self) {
        // The `close` is queued: wait (bounded) until a stream or a poll took it, or
        // until nobody is there to take it.
        let started = Instant::now();
        while started.elapsed() < CLOSE_GRACE {
            {
                let outbox = lock(&self.shared.outbox);
                if outbox.queue.is_empty() {
                    break;
                }
                // An SSE session's stream never comes back once gone; a polling client
                // polls again at once, unless it is gone too.
                let gone = match self.shared.transport {
                    Transport::Sse => true,
                    Transport::LongPolling => outbox.detached_at.elapsed() >= self.session_timeout,
                };
                if outbox.attached == 0 && gone {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HttpLink {
    fn drop(&mut self) {
        let mut outbox = lock(&self.shared.outbox);
        outbox.closed = true;
        Shared::wake(&mut outbox);
    }
}

/// Takes what the outbox holds, up to [`MAX_TAKE`] bytes (at least one message).
fn take(outbox: &mut Outbox) -> Vec<Outgoing> {
    let mut taken = Vec::new();
    let mut size = 0;
    while let Some(next) = outbox.queue.front() {
        if !taken.is_empty() && size + next.json.len() > MAX_TAKE {
            break;
        }
        size += next.json.len();
        if let Some(message) = outbox.queue.pop_front() {
            outbox.bytes = outbox.bytes.saturating_sub(message.json.len());
            taken.push(message);
        }
    }
    taken
}

/// An SSE response's body: the session's messages as events, comments when idle.
pub struct SseBody {
    attachment: Attachment,
    heartbeat: Pin<Box<Sleep>>,
    every: Duration,
    done: bool,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let shared = Arc::clone(&self.attachment.0);
        let mut outbox = lock(&shared.outbox);
        let taken = take(&mut outbox);
        if !taken.is_empty() {
            drop(outbox);
            let mut buf = BytesMut::new();
            for message in taken {
                if let Some(id) = &message.id {
                    buf.put_slice(b"id: ");
                    buf.put_slice(id.as_bytes());
                    buf.put_u8(b'\n');
                }
                buf.put_slice(b"data: ");
                buf.put_slice(message.json.as_bytes());
                buf.put_slice(b"\n\n");
            }
            let next = Instant::now() + self.every;
            self.heartbeat.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Frame::data(buf.freeze()))));
        }
        if outbox.closed {
            // Its `close` (or its end) went out: the response ends.
            self.done = true;
            return Poll::Ready(None);
        }
        outbox.waiter = Some(cx.waker().clone());
        drop(outbox);
        if self.heartbeat.as_mut().poll(cx).is_ready() {
            let next = Instant::now() + self.every;
            self.heartbeat.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": hb\n\n")))));
        }
        Poll::Pending
    }
}

/// What the server answers: a whole body, or an SSE stream.
pub type HubBody = http_body_util::Either<Full<Bytes>, SseBody>;

/// A random session id under this node's id: 128 bits from the TLS stack's system
/// random source (unguessable: the id is the session's credential).
fn new_session_id(node: &str) -> Option<Arc<str>> {
    let mut bytes = [0u8; 16];
    let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
    provider.secure_random.fill(&mut bytes).ok()?;
    let mut id = String::with_capacity(node.len() + 33);
    id.push_str(node);
    id.push('.');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Some(id.into())
}

/// The token of an opening request: `Authorization: Bearer T`, else the `token` query
/// parameter.
fn request_token(headers: &HeaderMap, query: &str) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| query_param(query, "token"))
}

/// The channels and positions of an SSE `Last-Event-ID` ("Fallback transports"): items
/// `OFFSET:EPOCH:CHANNEL` joined by `,`; unreadable items are left out, and so are
/// channels past `max` (the channel limit of a connection).
pub fn parse_positions(id: &str, max: usize) -> Vec<(String, Since)> {
    let mut out: Vec<(String, Since)> = Vec::new();
    for item in id.split(',') {
        if out.len() >= max {
            break;
        }
        let mut parts = item.splitn(3, ':');
        let (Some(offset), Some(epoch), Some(channel)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(offset) = offset.parse::<u64>() else {
            continue;
        };
        if epoch.is_empty() || channel.is_empty() || out.iter().any(|(c, _)| c == channel) {
            continue;
        }
        out.push((
            channel.to_owned(),
            Since {
                offset,
                epoch: epoch.to_owned(),
            },
        ));
    }
    out
}

/// "Auth": a refused Origin gets 403; no Origin (not a browser) is allowed.
fn origin_refused(hub: &Hub, headers: &HeaderMap) -> bool {
    let allowed = &hub.config.auth.allowed_origins;
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    !allowed.is_empty()
        && !allowed
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
}

fn origin_refusal(hub: &Hub) -> HttpResponse {
    hub.metrics.refuse("origin");
    json_error(
        StatusCode::FORBIDDEN,
        "permission_denied",
        "this Origin is not allowed",
    )
}

/// The fallback transports' routes, or `None` for any other path.
pub async fn route(
    hub: &Arc<Hub>,
    req: Request<Incoming>,
) -> Result<Response<HubBody>, Request<Incoming>> {
    let path = req.uri().path();
    let fallback = hub.config.fallback;
    let answer = match path {
        "/sse" if fallback.sse => match *req.method() {
            Method::GET => return Ok(sse(hub, &req)),
            _ => method_not_allowed("GET"),
        },
        "/poll" if fallback.long_polling => match *req.method() {
            Method::GET => poll(hub, &req).await,
            _ => method_not_allowed("GET"),
        },
        "/api/send" if fallback.sse || fallback.long_polling => match *req.method() {
            Method::POST => send(hub, req).await,
            _ => method_not_allowed("POST"),
        },
        _ => return Err(req),
    };
    Ok(answer.map(http_body_util::Either::Left))
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        "method not allowed",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// `GET /sse`: a new session and its stream.
fn sse(hub: &Arc<Hub>, req: &Request<Incoming>) -> Response<HubBody> {
    let attachment = match open(hub, req, Transport::Sse) {
        Ok((_, attachment)) => attachment,
        Err(refusal) => return (*refusal).map(http_body_util::Either::Left),
    };
    let every = Duration::from_secs(hub.config.fallback.heartbeat);
    let body = SseBody {
        attachment,
        heartbeat: Box::pin(tokio::time::sleep(every)),
        every,
        done: false,
    };
    let mut response = Response::new(http_body_util::Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx buffers responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `GET /sse`, and `GET /poll` without `session`: a new session, connected with the
/// request's token, attached (it cannot expire before its first answer is taken).
fn open(
    hub: &Arc<Hub>,
    req: &Request<Incoming>,
    transport: Transport,
) -> Result<(Arc<Shared>, Attachment), Box<HttpResponse>> {
    if origin_refused(hub, req.headers()) {
        return Err(Box::new(origin_refusal(hub)));
    }
    if let Some(refusal) = hub.refuse_connection() {
        return Err(Box::new(refusal));
    }
    let query = req.uri().query().unwrap_or("");
    let Some(id) = new_session_id(hub.node()) else {
        return Err(Box::new(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no random source",
        )));
    };
    let resume = match transport {
        Transport::Sse => req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| query_param(query, "last_event_id"))
            .map(|last| parse_positions(&last, hub.config.limits.max_channels_per_client as usize))
            .unwrap_or_default(),
        Transport::LongPolling => Vec::new(),
    };
    let opening = Opening {
        session: Arc::clone(&id),
        transport: transport.as_str(),
        token: request_token(req.headers(), query),
        name: query_param(query, "name"),
        resume,
    };
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_CAPACITY);
    let now = Instant::now();
    let shared = Arc::new(Shared {
        id: Arc::clone(&id),
        transport,
        inbox: inbox_tx,
        outbox: Mutex::new(Outbox {
            queue: VecDeque::new(),
            bytes: 0,
            waiter: None,
            task: None,
            attached: 0,
            detached_at: now,
            closed: false,
            answers: 0,
            last_answer: Bytes::new(),
            poll_turn: 0,
        }),
    });
    let session_timeout = Duration::from_secs(hub.config.fallback.session_timeout);
    let link = HttpLink {
        shared: Arc::clone(&shared),
        inbox: inbox_rx,
        session_timeout,
        expiry: Box::pin(tokio::time::sleep_until(now + session_timeout)),
        expiry_at: now + session_timeout,
    };
    // Attached before the task starts: the session cannot expire before its first
    // answer is taken.
    let attachment = shared.attach();
    hub.fallback.insert(Arc::clone(&shared));
    let guard = hub.session_started();
    let task_hub = Arc::clone(hub);
    tokio::spawn(async move {
        let _running = guard;
        session::run_link(Arc::clone(&task_hub), link, None, Some(opening)).await;
        task_hub.fallback.remove(&id);
    });
    Ok((shared, attachment))
}

/// `GET /poll`: opens a session (no `session`), or answers a poll of one, here or on the
/// node that holds it.
async fn poll(hub: &Arc<Hub>, req: &Request<Incoming>) -> HttpResponse {
    if origin_refused(hub, req.headers()) {
        return origin_refusal(hub);
    }
    let query = req.uri().query().unwrap_or("");
    let Some(id) = query_param(query, "session") else {
        // A new session: its first answer (answer 0) holds its `session` message (or its
        // `close`), bounded by the connect timeout.
        let (shared, _attachment) = match open(hub, req, Transport::LongPolling) {
            Ok(opened) => opened,
            Err(refusal) => return *refusal,
        };
        let wait = Duration::from_secs(hub.config.limits.connect_timeout);
        return answer_poll(&shared, 0, wait).await;
    };
    let Some(seq) = query_param(query, "seq").and_then(|s| s.parse::<u64>().ok()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "seq (the answers received) is required",
        );
    };
    let max = hub.config.fallback.poll_timeout;
    let timeout = query_param(query, "timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(max, |t| t.min(max));
    match holder(hub, &id) {
        None => local_poll(hub, &id, seq, timeout).await,
        Some(node) => {
            let wait = Duration::from_secs(timeout) + FORWARD_GRACE;
            let message = NodeMessage::Poll {
                session: id.clone(),
                seq,
                timeout,
                from: hub.node().to_owned(),
                req: 0,
            };
            forward(hub, node, message, wait).await
        }
    }
}

/// The node holding session `id` when it is another one than this (its id's prefix),
/// `None` when it is this one.
fn holder<'a>(hub: &Hub, id: &'a str) -> Option<&'a str> {
    let (node, _) = id.split_once('.')?;
    (node != hub.node()).then_some(node)
}

/// A poll of a session of this node.
async fn local_poll(hub: &Hub, id: &str, seq: u64, timeout: u64) -> HttpResponse {
    let Some(shared) = hub.fallback.get(id) else {
        return unknown_session();
    };
    if shared.transport != Transport::LongPolling {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "this session is not a long-polling one",
        );
    }
    answer_poll(&shared, seq, Duration::from_secs(timeout)).await
}

fn unknown_session() -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such session: it ended or expired",
    )
}

/// Answer `seq` of a long-polling session: the last one again, or the next one, made of
/// what is queued within `wait`.
async fn answer_poll(shared: &Arc<Shared>, seq: u64, wait: Duration) -> HttpResponse {
    let turn = {
        let mut outbox = lock(&shared.outbox);
        if seq > 0 && seq == outbox.answers {
            // The client did not receive the last answer: the same again.
            return json_answer(outbox.last_answer.clone());
        }
        if outbox.closed && outbox.queue.is_empty() {
            // Its `close` went out in an answer: the session is over.
            return unknown_session();
        }
        let expected = if outbox.poll_turn == 0 && outbox.answers == 0 {
            0
        } else {
            outbox.answers + 1
        };
        if seq != expected {
            return json_error(
                StatusCode::CONFLICT,
                "bad_request",
                &format!("seq {seq}: the next answer is {expected}"),
            );
        }
        // A new poll ends the one waiting (it answers `[]`).
        outbox.poll_turn += 1;
        Shared::wake(&mut outbox);
        outbox.poll_turn
    };
    let _attachment = shared.attach();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let superseded = std::future::poll_fn(|cx| {
        let mut outbox = lock(&shared.outbox);
        if outbox.poll_turn != turn {
            return Poll::Ready(true);
        }
        if !outbox.queue.is_empty() || outbox.closed {
            return Poll::Ready(false);
        }
        outbox.waiter = Some(cx.waker().clone());
        drop(outbox);
        deadline.as_mut().poll(cx).map(|()| false)
    })
    .await;
    if superseded {
        return json_answer(Bytes::from_static(b"[]"));
    }
    let mut outbox = lock(&shared.outbox);
    if outbox.poll_turn != turn {
        return json_answer(Bytes::from_static(b"[]"));
    }
    let taken = take(&mut outbox);
    let mut body =
        BytesMut::with_capacity(2 + taken.iter().map(|m| m.json.len() + 1).sum::<usize>());
    body.put_u8(b'[');
    for (i, message) in taken.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(message.json.as_bytes());
    }
    body.put_u8(b']');
    let body = body.freeze();
    outbox.answers = seq;
    outbox.last_answer = body.clone();
    json_answer(body)
}

fn json_answer(body: Bytes) -> HttpResponse {
    let mut response = respond(StatusCode::OK, "application/json", body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `{"type":"close"}`, the client's end of a fallback session.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a str>,
}

/// What `POST /api/send` carries to its session.
enum Upstream {
    /// The messages, in order (each the JSON text of one).
    Messages(Vec<String>),
    /// A body over the size limit (the session closes with 1009).
    Oversized,
}

/// `POST /api/send?session=ID`: the client's messages, queued to its session in order
/// (here, or on the node that holds it).
async fn send(hub: &Arc<Hub>, req: Request<Incoming>) -> HttpResponse {
    if origin_refused(hub, req.headers()) {
        return origin_refusal(hub);
    }
    let query = req.uri().query().unwrap_or("");
    let Some(id) = query_param(query, "session") else {
        return unknown_session();
    };
    let max_message = hub.config.limits.max_message_size;
    let (upstream, refusal) = match crate::http_api::read_body(hub, req).await {
        Ok(body) => match parse_upstream(&body) {
            // One message over the limit is what `/ws` closes with 1009.
            Ok(messages) if messages.iter().any(|m| m.len() as u64 > max_message) => (
                Upstream::Oversized,
                Some(json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "limit_exceeded",
                    "a message is over the message size limit",
                )),
            ),
            Ok(messages) => (Upstream::Messages(messages), None),
            Err(why) => return json_error(StatusCode::BAD_REQUEST, "bad_request", why),
        },
        Err(refusal) if refusal.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (Upstream::Oversized, Some(refusal.response()))
        }
        Err(refusal) => return refusal.response(),
    };
    let answer = match holder(hub, &id) {
        None => local_send(hub, &id, upstream).await,
        Some(node) => {
            let (messages, oversized) = match upstream {
                Upstream::Messages(messages) => (messages, false),
                Upstream::Oversized => (Vec::new(), true),
            };
            let message = NodeMessage::Send {
                session: id.clone(),
                messages,
                oversized,
                from: hub.node().to_owned(),
                req: 0,
            };
            forward(hub, node, message, SEND_TIMEOUT + FORWARD_GRACE).await
        }
    };
    match refusal {
        Some(refusal) if answer.status() != StatusCode::NOT_FOUND => refusal,
        _ => answer,
    }
}

/// The messages of a `POST /api/send` body: one JSON object, or an array; else why not.
fn parse_upstream(body: &[u8]) -> Result<Vec<String>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8")?;
    match text.trim_start().as_bytes().first() {
        Some(b'{') => Ok(vec![text.to_owned()]),
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
            .map(|items| items.into_iter().map(|m| m.get().to_owned()).collect())
            .map_err(|_| "the body is not JSON"),
        _ => Err("the body is a JSON object or an array of them"),
    }
}

/// Queues `upstream` to session `id` of this node: `204`, or `404` (no such session, or
/// it is closing), `413` (oversized: the session closes with 1009), `503` (the session
/// took nothing for [`SEND_TIMEOUT`]).
async fn local_send(hub: &Hub, id: &str, upstream: Upstream) -> HttpResponse {
    let Some(shared) = hub.fallback.get(id) else {
        return unknown_session();
    };
    if lock(&shared.outbox).closed {
        // Its `close` is queued: the session takes nothing more.
        return unknown_session();
    }
    let messages = match upstream {
        Upstream::Messages(messages) => messages,
        Upstream::Oversized => {
            let _ = shared.inbox.try_send(Inbound::Oversized);
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "limit_exceeded",
                "the body is over the message size limit",
            );
        }
    };
    for message in messages {
        let inbound = match serde_json::from_str::<TypeOnly<'_>>(&message) {
            Ok(TypeOnly { ty: Some("close") }) => Inbound::Close,
            _ => Inbound::Text(message.into()),
        };
        match tokio::time::timeout(SEND_TIMEOUT, shared.inbox.send(inbound)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return unknown_session(),
            Err(_) => {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the session is not taking messages",
                );
            }
        }
    }
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// How much longer than the request itself a node waits for the holder's answer.
const FORWARD_GRACE: Duration = Duration::from_secs(5);

/// A message between nodes, in their mailboxes ([`Engine::open_mailbox`](crate::engine::Engine::open_mailbox)).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum NodeMessage {
    /// `POST /api/send` for a session of the node it is sent to.
    Send {
        session: String,
        messages: Vec<String>,
        oversized: bool,
        from: String,
        req: u64,
    },
    /// `GET /poll` for a session of the node it is sent to.
    Poll {
        session: String,
        seq: u64,
        timeout: u64,
        from: String,
        req: u64,
    },
    /// The answer to request `req`: its HTTP status and JSON body.
    Reply { req: u64, status: u16, body: String },
}

/// The requests this node forwarded and waits for, by number.
#[derive(Default)]
pub(crate) struct Forwarded {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<(u16, String)>>>,
}

/// Sends `message` to `node`'s mailbox and waits up to `wait` for its answer.
async fn forward(hub: &Hub, node: &str, mut message: NodeMessage, wait: Duration) -> HttpResponse {
    let forwarded = &hub.fallback.forwarded;
    let number = forwarded.next.fetch_add(1, Ordering::Relaxed);
    if let NodeMessage::Send { req, .. } | NodeMessage::Poll { req, .. } = &mut message {
        *req = number;
    }
    let (sender, answer) = oneshot::channel();
    lock(&forwarded.waiting).insert(number, sender);
    let forget = || {
        lock(&forwarded.waiting).remove(&number);
    };
    let Ok(bytes) = serde_json::to_vec(&message) else {
        forget();
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "encoding");
    };
    match hub.engine.send_to_node(node, Bytes::from(bytes)).await {
        Ok(true) => {}
        // No such node: the session it held is gone with it.
        Ok(false) => {
            forget();
            return unknown_session();
        }
        Err(e) => {
            forget();
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &e.to_string(),
            );
        }
    }
    match tokio::time::timeout(wait, answer).await {
        Ok(Ok((status, body))) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            if status == StatusCode::NO_CONTENT {
                let mut response = Response::new(Full::default());
                *response.status_mut() = status;
                response
            } else {
                let mut response = json_answer(Bytes::from(body));
                *response.status_mut() = status;
                response
            }
        }
        _ => {
            forget();
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node holding the session did not answer",
            )
        }
    }
}

/// Serves this node's mailbox: requests forwarded by other nodes for the sessions held
/// here (each answered to its sender), and the answers to the requests this node
/// forwarded. Ends with the engine (or the node).
pub(crate) async fn serve_mailbox(hub: Weak<Hub>, mut mailbox: Mailbox) {
    while let Some(bytes) = mailbox.recv().await {
        let Some(node) = hub.upgrade() else {
            return;
        };
        let Ok(message) = serde_json::from_slice::<NodeMessage>(&bytes) else {
            eprintln!("hub: an undecodable message in this node's mailbox");
            continue;
        };
        match message {
            NodeMessage::Reply { req, status, body } => {
                if let Some(waiting) = lock(&node.fallback.forwarded.waiting).remove(&req) {
                    let _ = waiting.send((status, body));
                }
            }
            request => {
                tokio::spawn(answer_forwarded(node, request));
            }
        }
    }
}

/// Runs a forwarded request on this node and sends its answer back.
async fn answer_forwarded(hub: Arc<Hub>, request: NodeMessage) {
    let (from, req, response) = match request {
        NodeMessage::Send {
            session,
            messages,
            oversized,
            from,
            req,
        } => {
            let upstream = if oversized {
                Upstream::Oversized
            } else {
                Upstream::Messages(messages)
            };
            (from, req, local_send(&hub, &session, upstream).await)
        }
        NodeMessage::Poll {
            session,
            seq,
            timeout,
            from,
            req,
        } => (from, req, local_poll(&hub, &session, seq, timeout).await),
        NodeMessage::Reply { .. } => return,
    };
    let status = response.status().as_u16();
    let body = match http_body_util::BodyExt::collect(response.into_body()).await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(never) => match never {},
    };
    let reply = NodeMessage::Reply { req, status, body };
    if let Ok(bytes) = serde_json::to_vec(&reply) {
        let _ = hub.engine.send_to_node(&from, Bytes::from(bytes)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_skip_bad_items() {
        let parsed = parse_positions("12:ab:chat:lobby,x:y:z,3:cd:news,,4::e,5:ef:news", 10);
        let got: Vec<_> = parsed
            .iter()
            .map(|(c, s)| (c.as_str(), s.offset, s.epoch.as_str()))
            .collect();
        assert_eq!(got, [("chat:lobby", 12, "ab"), ("news", 3, "cd")]);
        assert_eq!(parse_positions("1:a:x,2:b:y,3:c:z", 2).len(), 2);
        assert!(parse_positions("", 10).is_empty());
    }

    #[test]
    fn bearer_token_before_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_token(&headers, "token=q").as_deref(), Some("q"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(request_token(&headers, "token=q").as_deref(), Some("h"));
    }
}
