//! The fallback transports ("Fallback transports: SSE and long polling"): `GET /sse`,
//! `GET /poll`, `POST /api/send`, over raw HTTP/1.1 on 127.0.0.1. The SSE client here
//! reads the chunked stream and its events itself, as a browser's `EventSource` does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// One SSE event: its `id` when it had one, its `data` as JSON; comments are `None` data.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: Option<Value>,
}

/// A `GET /sse` stream read as `EventSource` reads it.
struct Sse {
    stream: TcpStream,
    /// Bytes read, not yet decoded from chunks.
    raw: Vec<u8>,
    /// The decoded body, not yet split into events.
    body: String,
    events: VecDeque<Event>,
    ended: bool,
    last_id: String,
    session: String,
    addr: SocketAddr,
}

impl Sse {
    /// Opens `/sse?QUERY` with extra header lines; panics unless it is a 200 stream.
    async fn open(addr: SocketAddr, query: &str, headers: &[&str]) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!("GET /sse?{query} HTTP/1.1\r\nHost: {addr}\r\n");
        for h in headers {
            request.push_str(h);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(STEP, stream.read(&mut buf))
                .await
                .expect("head in time")
                .expect("read");
            assert!(n > 0, "closed before the head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        let rest = raw[head_end + 4..].to_vec();
        Self {
            stream,
            raw: rest,
            body: String::new(),
            events: VecDeque::new(),
            ended: false,
            last_id: String::new(),
            session: String::new(),
            addr,
        }
    }

    /// Opens a stream and reads its `session` message.
    async fn session(addr: SocketAddr, query: &str, headers: &[&str]) -> (Self, Value) {
        let mut sse = Self::open(addr, query, headers).await;
        let first = sse.recv().await;
        assert_eq!(first["type"], "session", "{first}");
        assert_eq!(first["transport"], "sse", "{first}");
        sse.session = first["session"].as_str().expect("session id").to_owned();
        (sse, first)
    }

    /// Decodes whole chunks of `raw` into `body`, and whole events of `body`.
    fn decode(&mut self) {
        while let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                break;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                break;
            }
            let chunk = &self.raw[line_end + 2..line_end + 2 + size];
            self.body
                .push_str(std::str::from_utf8(chunk).expect("utf-8"));
            self.raw.drain(..line_end + 2 + size + 2);
        }
        while let Some(end) = self.body.find("\n\n") {
            let block: String = self.body.drain(..end + 2).collect();
            let mut event = Event {
                id: None,
                data: None,
            };
            for line in block.lines().filter(|l| !l.is_empty()) {
                if let Some(id) = line.strip_prefix("id: ") {
                    event.id = Some(id.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data = Some(serde_json::from_str(data).expect("data is JSON"));
                } else {
                    assert!(line.starts_with(':'), "an SSE line: {line:?}");
                }
            }
            self.events.push_back(event);
        }
    }

    /// The next event (comments included); `None` once the stream ended.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            self.decode();
            if let Some(event) = self.events.pop_front() {
                if let Some(id) = &event.id {
                    self.last_id.clone_from(id);
                }
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(STEP, self.stream.read(&mut buf))
                .await
                .expect("an event in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// The next message (comments skipped, pings skipped).
    async fn recv(&mut self) -> Value {
        loop {
            let event = self.next_event().await.expect("the stream goes on");
            if let Some(data) = event.data
                && data["type"] != "ping"
            {
                return data;
            }
        }
    }

    /// Sends `message` (or an array) to this session; the HTTP status.
    async fn send(&self, message: &Value) -> u16 {
        send(self.addr, &self.session, &message.to_string()).await
    }

    /// Sends a request and returns the next message (its answer, when nothing else
    /// comes first).
    async fn request(&mut self, message: Value) -> Value {
        assert_eq!(self.send(&message).await, 204);
        self.recv().await
    }
}

/// `POST /api/send?session=ID` with `body`; the status.
async fn send(addr: SocketAddr, session: &str, body: &str) -> u16 {
    http(
        addr,
        "POST",
        &format!("/api/send?session={session}"),
        &[],
        Some(body),
    )
    .await
    .status
}

/// A long-polling session.
struct Polling {
    addr: SocketAddr,
    session: String,
    seq: u64,
    queued: VecDeque<Value>,
}

impl Polling {
    /// Opens a session with `GET /poll?QUERY`; its answer 0 and the session.
    async fn open(addr: SocketAddr, query: &str, headers: &[&str]) -> (Self, Value) {
        let answer = http(addr, "GET", &format!("/poll?{query}"), headers, None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let messages = answer.json();
        let first = messages[0].clone();
        let session = first["session"].as_str().unwrap_or_default().to_owned();
        (
            Self {
                addr,
                session,
                seq: 0,
                queued: VecDeque::new(),
            },
            first,
        )
    }

    /// One poll: the HTTP answer.
    async fn poll_raw(&self, seq: u64, timeout: u64) -> HttpAnswer {
        http(
            self.addr,
            "GET",
            &format!("/poll?session={}&seq={seq}&timeout={timeout}", self.session),
            &[],
            None,
        )
        .await
    }

    /// The next poll's messages.
    async fn poll(&mut self, timeout: u64) -> Vec<Value> {
        let answer = self.poll_raw(self.seq + 1, timeout).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        self.seq += 1;
        answer.json().as_array().expect("an array").clone()
    }

    /// The next message (pings skipped), polling as needed.
    async fn recv(&mut self) -> Value {
        loop {
            if let Some(message) = self.queued.pop_front() {
                if message["type"] == "ping" {
                    continue;
                }
                return message;
            }
            let messages = self.poll(5).await;
            self.queued.extend(messages);
        }
    }

    async fn send(&self, message: &Value) -> u16 {
        send(self.addr, &self.session, &message.to_string()).await
    }

    async fn request(&mut self, message: Value) -> Value {
        assert_eq!(self.send(&message).await, 204);
        self.recv().await
    }
}

fn fallback_config(extra: &str) -> wsengine_hub::config::Config {
    config(&format!(
        "[auth]\nallow_anonymous = true\n[namespaces.default]\npresence = false\n\
         [namespaces.room]\npresence = false\n[namespaces.chat]\npresence = true\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_subscribes_and_gets_publications_with_positions_in_ids() {
    let hub = TestHub::start(fallback_config("")).await;
    let (mut sse, session) = Sse::session(hub.addr, "name=ann", &[]).await;
    assert!(session["client"].is_string(), "{session}");
    assert_eq!(session["user"], "");
    assert_eq!(session["ping_interval"], 25);
    assert!(session["expires_at"].is_null());
    // A batch of two requests in one POST, answered in order.
    let batch = json!([
        {"type": "subscribe", "id": 1, "channel": "room:a"},
        {"type": "subscribe", "id": 2, "channel": "news"},
    ]);
    assert_eq!(sse.send(&batch).await, 204);
    let first = sse.next_event().await.expect("reply");
    let reply = first.data.expect("data");
    assert_eq!(reply["id"], 1, "{reply}");
    let epoch_a = reply["result"]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(
        first.id.as_deref(),
        Some(format!("0:{epoch_a}:room:a").as_str())
    );
    let second = sse.next_event().await.expect("reply");
    let epoch_n = second.data.expect("data")["result"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        second.id.as_deref(),
        Some(format!("0:{epoch_a}:room:a,0:{epoch_n}:news").as_str())
    );
    // A WebSocket client publishes; the SSE client gets it with the moved position.
    let (mut ws, _) = hub.connected().await;
    ws.ok(json!({"type": "publish", "channel": "news", "payload": {"n": 1}}))
        .await;
    let event = sse.next_event().await.expect("publication");
    let publication = event.data.expect("data");
    assert_eq!(publication["type"], "publication");
    assert_eq!(publication["payload"], json!({"n": 1}));
    assert_eq!(publication["info"]["user"], "");
    assert_eq!(
        event.id.as_deref(),
        Some(format!("0:{epoch_a}:room:a,1:{epoch_n}:news").as_str())
    );
    // The SSE client publishes through POST; the WebSocket subscriber gets it.
    ws.ok(json!({"type": "subscribe", "channel": "room:a"}))
        .await;
    let reply = sse
        .request(json!({"type": "publish", "id": 3, "channel": "room:a", "payload": "hi"}))
        .await;
    assert_eq!(reply["result"]["offset"], 1, "{reply}");
    let got = ws.recv().await;
    assert_eq!(got["payload"], "hi");
    assert_eq!(got["info"]["name"], "ann", "{got}");
    // Its own publication comes back on its stream too.
    assert_eq!(sse.recv().await["payload"], "hi");
    // A `connect` on a connected session is refused like on /ws.
    let again = sse.request(json!({"type": "connect", "id": 4})).await;
    assert_eq!(again["error"]["code"], "bad_request", "{again}");
    // The client ends it: `close` 1000, then the response ends.
    assert_eq!(sse.send(&json!({"type": "close"})).await, 204);
    let closed = sse.recv().await;
    assert_eq!(
        closed,
        json!({"type": "close", "code": 1000, "reason": "normal"})
    );
    assert!(sse.next_event().await.is_none(), "the stream ends");
    // The session is gone.
    let status = send(hub.addr, &sse.session, r#"{"type":"pong"}"#).await;
    assert_eq!(status, 404);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_every_subscription_from_last_event_id() {
    let hub = TestHub::start(fallback_config("")).await;
    let (mut ws, _) = hub.connected().await;
    let (mut sse, _) = Sse::session(hub.addr, "", &[]).await;
    for (id, channel) in [(1, "room:a"), (2, "room:b")] {
        let reply = sse
            .request(json!({"type": "subscribe", "id": id, "channel": channel}))
            .await;
        assert_eq!(reply["type"], "reply", "{reply}");
    }
    ws.ok(json!({"type": "publish", "channel": "room:a", "payload": 1}))
        .await;
    assert_eq!(sse.recv().await["payload"], 1);
    let last = sse.last_id.clone();
    // The stream breaks; publications go on meanwhile.
    drop(sse);
    for (channel, payload) in [("room:a", 2), ("room:b", 3), ("room:a", 4)] {
        ws.ok(json!({"type": "publish", "channel": channel, "payload": payload}))
            .await;
    }
    // The browser reconnects with Last-Event-ID: a new session, resumed.
    let header = format!("Last-Event-ID: {last}");
    let (mut sse, session) = Sse::session(hub.addr, "", &[&header]).await;
    assert!(session["client"].is_string());
    let a = sse.recv().await;
    assert_eq!(a["type"], "subscribed", "{a}");
    assert_eq!(a["channel"], "room:a");
    assert_eq!(a["recovered"], true, "{a}");
    let payloads: Vec<_> = a["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payload"].clone())
        .collect();
    assert_eq!(payloads, [json!(2), json!(4)]);
    let b = sse.recv().await;
    assert_eq!(b["channel"], "room:b", "{b}");
    assert_eq!(b["recovered"], true, "{b}");
    assert_eq!(b["publications"][0]["payload"], 3, "{b}");
    // Live publications follow, none repeated.
    ws.ok(json!({"type": "publish", "channel": "room:b", "payload": 5}))
        .await;
    let live = sse.recv().await;
    assert_eq!(
        (live["channel"].clone(), live["offset"].clone()),
        (json!("room:b"), json!(2))
    );
    // The same by the query parameter, with a stale epoch: not recovered.
    let (mut other, _) = Sse::session(hub.addr, "last_event_id=0:stale:room:a", &[]).await;
    let a = other.recv().await;
    assert_eq!(
        (a["channel"].clone(), a["recovered"].clone()),
        (json!("room:a"), json!(false)),
        "{a}"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_pub_sub_lost_answers_and_recovery_by_offsets() {
    let hub = TestHub::start(fallback_config("")).await;
    let (mut poll, session) = Polling::open(hub.addr, "name=bo", &[]).await;
    assert_eq!(session["type"], "session", "{session}");
    assert_eq!(session["transport"], "long-polling");
    let reply = poll
        .request(json!({"type": "subscribe", "id": 1, "channel": "room:x"}))
        .await;
    let epoch = reply["result"]["epoch"].clone();
    // A poll waits for the next message.
    let (mut ws, _) = hub.connected().await;
    ws.ok(json!({"type": "subscribe", "channel": "room:x"}))
        .await;
    let waiting = poll.poll_raw(poll.seq + 1, 10);
    let publish = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.ok(json!({"type": "publish", "channel": "room:x", "payload": "p1"}))
            .await;
    };
    let (answer, ()) = tokio::join!(waiting, publish);
    assert_eq!(ws.recv().await["payload"], "p1");
    assert_eq!(answer.status, 200);
    let first = answer.json();
    assert_eq!(first[0]["payload"], "p1", "{first}");
    // That answer "was lost": the same seq gets the same answer again.
    let again = poll.poll_raw(poll.seq + 1, 10).await;
    assert_eq!(again.json(), first);
    poll.seq += 1;
    // A seq that is neither the last nor the next is a conflict.
    assert_eq!(poll.poll_raw(poll.seq + 5, 0).await.status, 409);
    // Short polling: timeout 0 answers at once, empty.
    let started = std::time::Instant::now();
    assert!(poll.poll(0).await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
    // The client leaves; publications go on; a new session recovers by offsets.
    assert_eq!(poll.send(&json!({"type": "close"})).await, 204);
    assert_eq!(poll.recv().await["code"], 1000);
    assert_eq!(poll.poll_raw(poll.seq + 1, 0).await.status, 404);
    for payload in ["p2", "p3"] {
        ws.ok(json!({"type": "publish", "channel": "room:x", "payload": payload}))
            .await;
        assert_eq!(ws.recv().await["payload"], payload);
    }
    let (mut poll, _) = Polling::open(hub.addr, "", &[]).await;
    let reply = poll
        .request(json!({"type": "subscribe", "id": 1, "channel": "room:x",
                        "since": {"offset": 1, "epoch": epoch}}))
        .await;
    assert_eq!(reply["result"]["recovered"], true, "{reply}");
    let payloads: Vec<_> = reply["result"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payload"].clone())
        .collect();
    assert_eq!(payloads, [json!("p2"), json!("p3")]);
    // History and publishing work the same.
    let history = poll
        .request(json!({"type": "history", "id": 2, "channel": "room:x", "limit": 1}))
        .await;
    assert_eq!(history["result"]["publications"][0]["payload"], "p3");
    let published = poll
        .request(json!({"type": "publish", "id": 3, "channel": "room:x", "payload": "p4"}))
        .await;
    assert_eq!(published["result"]["offset"], 4, "{published}");
    assert_eq!(ws.recv().await["payload"], "p4");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_sessions_check_tokens_like_connect() {
    let config = config(&format!(
        "[auth]\njwt_secret = \"{SECRET}\"\n[namespaces.chat]\nsubscribe = \"token\"\n"
    ));
    let hub = TestHub::start(config).await;
    // No token: the stream carries `close` 4001 and ends.
    let mut sse = Sse::open(hub.addr, "", &[]).await;
    assert_eq!(sse.recv().await["code"], 4001);
    assert!(sse.next_event().await.is_none());
    // An expired one: 4002, over long polling.
    let expired = token(&json!({"sub": "u", "exp": unix_now() - 10}));
    let (_, first) = Polling::open(hub.addr, &format!("token={expired}"), &[]).await;
    assert_eq!(first["type"], "close", "{first}");
    assert_eq!(first["code"], 4002, "{first}");
    // A good one, as a header: the session is the token's user, with its channels.
    let exp = unix_now() + 60;
    let good = token(&json!({"sub": "kim", "exp": exp, "channels": ["chat:k*"]}));
    let bearer = format!("Authorization: Bearer {good}");
    let (mut poll, session) = Polling::open(hub.addr, "", &[&bearer]).await;
    assert_eq!(session["user"], "kim", "{session}");
    let refused = poll
        .request(json!({"type": "subscribe", "id": 1, "channel": "chat:other"}))
        .await;
    assert_eq!(refused["error"]["code"], "permission_denied", "{refused}");
    let allowed = poll
        .request(json!({"type": "subscribe", "id": 2, "channel": "chat:kim"}))
        .await;
    assert_eq!(allowed["type"], "reply", "{allowed}");
    // Over SSE, by the query parameter.
    let (_, session) = Sse::session(hub.addr, &format!("token={good}"), &[]).await;
    assert_eq!(session["user"], "kim");
    assert_eq!(session["expires_at"], exp);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_joins_and_leaves_across_transports() {
    let hub = TestHub::start(fallback_config("")).await;
    let (mut sse, sse_session) = Sse::session(hub.addr, "name=sse", &[]).await;
    sse.request(json!({"type": "subscribe", "id": 1, "channel": "chat:p"}))
        .await;
    let (mut poll, poll_session) = Polling::open(hub.addr, "name=lp", &[]).await;
    poll.request(json!({"type": "subscribe", "id": 1, "channel": "chat:p"}))
        .await;
    let join = sse.recv().await;
    assert_eq!(join["type"], "join", "{join}");
    assert_eq!(join["info"]["client"], poll_session["client"]);
    assert_eq!(join["info"]["name"], "lp");
    let presence = poll
        .request(json!({"type": "presence", "id": 2, "channel": "chat:p"}))
        .await;
    let mut clients: Vec<_> = presence["result"]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].clone())
        .collect();
    clients.sort_by_key(Value::to_string);
    let mut expected = vec![
        sse_session["client"].clone(),
        poll_session["client"].clone(),
    ];
    expected.sort_by_key(Value::to_string);
    assert_eq!(clients, expected);
    // The polling client leaves: the SSE client sees it go.
    assert_eq!(poll.send(&json!({"type": "close"})).await, 204);
    let leave = sse.recv().await;
    assert_eq!(leave["type"], "leave", "{leave}");
    assert_eq!(leave["info"]["client"], poll_session["client"]);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_limits_rate_size_backlog_and_malformed() {
    let hub = TestHub::start(fallback_config(
        "[limits]\npublish_rate = 2\nmax_message_size = 1024\noutbound_cap = 4096\n",
    ))
    .await;
    // Publish rate: the third in a burst of three is refused.
    let (mut poll, _) = Polling::open(hub.addr, "", &[]).await;
    let batch: Vec<Value> = (1..=3)
        .map(|id| json!({"type": "publish", "id": id, "channel": "c", "payload": id}))
        .collect();
    assert_eq!(poll.send(&Value::Array(batch)).await, 204);
    let answers = [poll.recv().await, poll.recv().await, poll.recv().await];
    assert_eq!(answers[0]["type"], "reply");
    assert_eq!(answers[1]["type"], "reply");
    assert_eq!(
        answers[2]["error"]["code"], "limit_exceeded",
        "{:?}",
        answers[2]
    );
    // A body over max_message_size and its allowance: 413, and the session is closed
    // with 1009.
    let big = json!({"type": "publish", "id": 9, "channel": "c", "payload": "x".repeat(8000)});
    assert_eq!(poll.send(&big).await, 413);
    assert_eq!(poll.recv().await["code"], 1009);
    // One message over max_message_size within the allowance: the same.
    let (mut poll, _) = Polling::open(hub.addr, "", &[]).await;
    let over = json!({"type": "publish", "id": 1, "channel": "c", "payload": "x".repeat(1100)});
    assert_eq!(poll.send(&over).await, 413);
    assert_eq!(poll.recv().await["code"], 1009);
    // A body that is not JSON: 400, the session is not charged.
    let (mut poll, _) = Polling::open(hub.addr, "", &[]).await;
    assert_eq!(send(hub.addr, &poll.session, "hello").await, 400);
    // Malformed messages are answered and counted: the 101st closes with 4005.
    let junk = Value::Array((0..101).map(|_| json!({"no": "type"})).collect());
    assert_eq!(poll.send(&junk).await, 204);
    let mut errors = 0;
    loop {
        let message = poll.recv().await;
        if message["type"] == "close" {
            assert_eq!(message["code"], 4005, "{message}");
            break;
        }
        assert_eq!(message["error"]["code"], "bad_request", "{message}");
        errors += 1;
    }
    assert_eq!(errors, 101);
    // A client that does not poll while publications pile up: 4003 once its queue is
    // over outbound_cap, and it recovers on a new session.
    let (mut idle, _) = Polling::open(hub.addr, "", &[]).await;
    let reply = idle
        .request(json!({"type": "subscribe", "id": 1, "channel": "c"}))
        .await;
    // Published through the engine: the WebSocket clients' publish rate is 2 here.
    for n in 0..20 {
        let payload = serde_json::value::to_raw_value(&format!("{n}{}", "y".repeat(400))).unwrap();
        let options = wsengine_hub::engine::HistoryOptions {
            history_size: 100,
            history_ttl: Duration::from_secs(60),
        };
        hub.hub
            .engine
            .publish("c", std::sync::Arc::from(payload), None, options)
            .await
            .unwrap();
    }
    let mut last = Value::Null;
    while last["type"] != "close" {
        last = idle.recv().await;
    }
    assert_eq!(last["code"], 4003, "{last}");
    let _ = reply;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_without_a_stream_or_poll_and_leave_presence() {
    let hub = TestHub::start(fallback_config(
        "[fallback]\nsession_timeout = 1\nheartbeat = 1\n",
    ))
    .await;
    // Heartbeat comments on an idle stream.
    let (mut sse, _) = Sse::session(hub.addr, "", &[]).await;
    let comment = sse.next_event().await.expect("a comment");
    assert!(
        comment.data.is_none() && comment.id.is_none(),
        "{comment:?}"
    );
    // A polling client subscribes with presence, then stops polling.
    let (mut poll, _) = Polling::open(hub.addr, "", &[]).await;
    poll.request(json!({"type": "subscribe", "id": 1, "channel": "chat:e"}))
        .await;
    let (mut ws, _) = hub.connected().await;
    let presence = ws
        .ok(json!({"type": "presence", "channel": "chat:e"}))
        .await;
    assert_eq!(presence["clients"].as_array().unwrap().len(), 1);
    // Within a few timeouts the session is gone, and so is its presence.
    let deadline = std::time::Instant::now() + STEP;
    presence_empties(&mut ws, "chat:e", "the session did not expire").await;
    assert_eq!(poll.poll_raw(poll.seq + 1, 0).await.status, 404);
    // An open stream keeps its session: the SSE session is still there.
    assert_eq!(sse.send(&json!({"type": "pong"})).await, 204);
    while hub.hub.fallback.len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired session stays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.stop().await;
}

/// Asks `channel`'s presence until it is empty, failing with `what` after [`STEP`].
async fn presence_empties(ws: &mut TestClient, channel: &str, what: &str) {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let presence = ws.ok(json!({"type": "presence", "channel": channel})).await;
        if presence["clients"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_session_ends_with_its_stream() {
    let hub = TestHub::start(fallback_config("")).await;
    let (mut sse, _) = Sse::session(hub.addr, "", &[]).await;
    sse.request(json!({"type": "subscribe", "id": 1, "channel": "chat:gone"}))
        .await;
    let (mut ws, _) = hub.connected().await;
    let presence = ws
        .ok(json!({"type": "presence", "channel": "chat:gone"}))
        .await;
    assert_eq!(presence["clients"].as_array().unwrap().len(), 1);
    let session = sse.session.clone();
    // The stream breaks: the session is over at once, not after session_timeout (30 s).
    drop(sse);
    presence_empties(&mut ws, "chat:gone", "the session outlived its stream").await;
    assert_eq!(send(hub.addr, &session, r#"{"type":"pong"}"#).await, 404);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_refusals_and_shutdown() {
    let mut config = fallback_config("");
    config.auth.allowed_origins = vec!["https://ok.example".to_owned()];
    let hub = TestHub::start(config).await;
    // Unknown sessions, a missing seq, wrong methods.
    assert_eq!(send(hub.addr, "nope", "{}").await, 404);
    let answer = http(hub.addr, "GET", "/poll?session=nope&seq=1", &[], None).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(
        http(hub.addr, "POST", "/sse", &[], Some("{}")).await.status,
        405
    );
    assert_eq!(
        http(hub.addr, "GET", "/api/send", &[], None).await.status,
        405
    );
    // The Origin allow-list, on opening requests and on sends.
    let bad = "Origin: https://evil.example";
    let answer = http(hub.addr, "GET", "/poll", &[bad], None).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    let answer = http(hub.addr, "GET", "/sse", &[bad], None).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    let (poll, _) = Polling::open(hub.addr, "", &["Origin: https://ok.example"]).await;
    let answer = http(
        hub.addr,
        "POST",
        &format!("/api/send?session={}", poll.session),
        &[bad],
        Some("{}"),
    )
    .await;
    assert_eq!(answer.status, 403);
    let answer = http(
        hub.addr,
        "GET",
        &format!("/poll?session={}", poll.session),
        &[],
        None,
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    // A graceful stop closes SSE streams with 1001.
    let (mut sse, _) = Sse::session(hub.addr, "", &[]).await;
    let stopping = tokio::spawn(async move {
        let closed = sse.recv().await;
        (closed, sse.next_event().await.is_none())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    hub.stop().await;
    let (closed, ended) = stopping.await.unwrap();
    assert_eq!(closed["code"], 1001, "{closed}");
    assert!(ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_transports_can_be_turned_off() {
    let hub = TestHub::start(fallback_config(
        "[fallback]\nsse = false\nlong_polling = false\n",
    ))
    .await;
    assert_eq!(http(hub.addr, "GET", "/sse", &[], None).await.status, 404);
    assert_eq!(http(hub.addr, "GET", "/poll", &[], None).await.status, 404);
    hub.stop().await;
}

/// A fallback session opened on node `a` and served by `a` and `b` in turn: every
/// request that reaches `b` is forwarded to `a` through the engine ("Across nodes").
async fn session_served_by_two_nodes(a: &TestHub, b: &TestHub) {
    let (mut ws, _) = b.connected().await;
    // Long polling: open on A, subscribe and poll through B.
    let (mut poll, _) = Polling::open(a.addr, "", &[]).await;
    assert!(poll.session.starts_with(&format!("{}.", a.hub.node())));
    assert_eq!(
        send(
            b.addr,
            &poll.session,
            &json!({"type": "subscribe", "id": 1, "channel": "room:n"}).to_string()
        )
        .await,
        204
    );
    poll.addr = b.addr;
    let reply = poll.recv().await;
    assert_eq!(reply["id"], 1, "{reply}");
    assert_eq!(reply["type"], "reply", "{reply}");
    // Publications reach it whichever node answers the poll.
    for (n, node) in [a.addr, b.addr, a.addr].into_iter().enumerate() {
        ws.ok(json!({"type": "publish", "channel": "room:n", "payload": n}))
            .await;
        poll.addr = node;
        let publication = poll.recv().await;
        assert_eq!(publication["payload"], n, "{publication}");
    }
    // An answer lost on one node is sent again by the other.
    ws.ok(json!({"type": "publish", "channel": "room:n", "payload": "again"}))
        .await;
    poll.addr = a.addr;
    let first = poll.poll_raw(poll.seq + 1, 5).await.json();
    poll.addr = b.addr;
    let again = poll.poll_raw(poll.seq + 1, 5).await.json();
    assert_eq!(first, again);
    assert_eq!(first[0]["payload"], "again", "{first}");
    poll.seq += 1;
    // Publishing through B's forwarding: its reply and its publication come back (in
    // either order: on a broker the publication may overtake the reply).
    assert_eq!(
        poll.send(&json!({"type": "publish", "id": 2, "channel": "room:n", "payload": "up"}))
            .await,
        204
    );
    let mut kinds = [poll.recv().await, poll.recv().await]
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    kinds.sort();
    assert_eq!(kinds, ["publication", "reply"]);
    // Closed through B; then A and B both answer 404.
    assert_eq!(poll.send(&json!({"type": "close"})).await, 204);
    let mut closed = poll.recv().await;
    while closed["type"] != "close" {
        closed = poll.recv().await;
    }
    assert_eq!(closed["code"], 1000);
    assert_eq!(poll.poll_raw(poll.seq + 1, 0).await.status, 404);
    poll.addr = a.addr;
    assert_eq!(poll.poll_raw(poll.seq + 1, 0).await.status, 404);
    // SSE: the stream stays on A, its requests go through B.
    let (mut sse, _) = Sse::session(a.addr, "", &[]).await;
    let subscribe = json!({"type": "subscribe", "id": 1, "channel": "room:s"});
    assert_eq!(
        send(b.addr, &sse.session, &subscribe.to_string()).await,
        204
    );
    assert_eq!(sse.recv().await["id"], 1);
    ws.ok(json!({"type": "publish", "channel": "room:s", "payload": "s"}))
        .await;
    assert_eq!(sse.recv().await["payload"], "s");
    // A session of a node that is not there: 404 at once.
    let status = send(b.addr, "0badc0de.00", r#"{"type":"pong"}"#).await;
    assert_eq!(status, 404);
    let answer = http(b.addr, "GET", "/poll?session=0badc0de.00&seq=1", &[], None).await;
    assert_eq!(answer.status, 404, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_served_by_two_nodes_in_turn_on_one_memory_engine() {
    let engine: std::sync::Arc<dyn wsengine_hub::engine::Engine> = std::sync::Arc::new(
        wsengine_hub::engine::memory::MemoryEngine::new(Default::default()),
    );
    let a = two_node_hub(std::sync::Arc::clone(&engine)).await;
    let b = two_node_hub(engine).await;
    session_served_by_two_nodes(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_served_by_two_nodes_in_turn_on_redis() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let a = two_node_hub(redis.engine(&prefix).await).await;
    let b = two_node_hub(redis.engine(&prefix).await).await;
    session_served_by_two_nodes(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn two_node_hub(engine: std::sync::Arc<dyn wsengine_hub::engine::Engine>) -> TestHub {
    TestHub::start_with(wsengine_hub::ServerOptions {
        config: fallback_config(""),
        demo: false,
        static_dir: None,
        tls: None,
        engine: Some(engine),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_served_by_two_nodes_in_turn_on_nats() {
    let nats = NatsServer::start().await;
    let prefix = unique_prefix();
    let a = two_node_hub(nats.engine(&prefix).await).await;
    let b = two_node_hub(nats.engine(&prefix).await).await;
    session_served_by_two_nodes(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_stops_reading_is_a_slow_consumer() {
    let hub = TestHub::start(fallback_config("[limits]\noutbound_cap = 65536\n")).await;
    let (sse, _) = Sse::session(hub.addr, "", &[]).await;
    let subscribe = json!({"type": "subscribe", "id": 1, "channel": "room:slow"});
    assert_eq!(sse.send(&subscribe).await, 204);
    // The client reads nothing more: what the socket and the HTTP side cannot take stays
    // in the session's queue, which outbound_cap bounds (4003), whatever is published.
    let options = wsengine_hub::engine::HistoryOptions {
        history_size: 10,
        history_ttl: Duration::from_secs(60),
    };
    let payload = format!("\"{}\"", "z".repeat(16 * 1024));
    let deadline = std::time::Instant::now() + STEP;
    let mut published = 0u64;
    while hub.metric("wsengine_hub_closes_total{code=\"4003\"}") < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no 4003 after {published} publications of 16 KiB"
        );
        let raw = serde_json::value::RawValue::from_string(payload.clone()).unwrap();
        hub.hub
            .engine
            .publish("room:slow", std::sync::Arc::from(raw), None, options)
            .await
            .unwrap();
        published += 1;
        if published.is_multiple_of(64) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Not before the cap's worth (4 x 16 KiB) was queued. Had the HTTP side taken every
    // event off the queue without waiting for the socket, no 4003 would have come and the
    // loop above would have failed at its deadline.
    assert!(published > 4, "{published}");
    drop(sse);
    hub.stop().await;
}
