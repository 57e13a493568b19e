//! The HTTP side over real sockets: `/api/*`, `/health`, `/metrics` and the static pages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use wsengine_hub::ServerOptions;
use wsengine_hub::config::{Config, NamespaceConfig};
use wsengine_hub::engine::{
    ClientInfo, Engine, EngineError, EngineFuture, HistoryOptions, HistoryResult, Payload,
    PresenceEntry, Publication, Recovery, StreamPosition, Subscription,
};

use crate::support::*;

const KEY: &str = "Authorization: apikey s3cret";

fn keyed_config() -> Config {
    let mut config = demo_config();
    config.auth.api_key = Some("s3cret".to_owned());
    config
}

async fn start_demo(config: Config) -> TestHub {
    TestHub::start_with(ServerOptions {
        config,
        demo: true,
        static_dir: None,
        tls: None,
        engine: None,
    })
    .await
}

fn assert_error(answer: &HttpAnswer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json()["error"]["code"], code, "{answer:?}");
    assert!(answer.json()["error"]["message"].is_string(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_publish_reaches_a_websocket_subscriber_without_info() {
    let hub = TestHub::start(keyed_config()).await;
    let mut bob = hub.client().await;
    bob.request(json!({"type": "connect"})).await;
    let sub = bob
        .request(json!({"type": "subscribe", "channel": "news:x"}))
        .await;
    let body = r#"{"channel": "news:x", "payload": {"z": 1, "a": [1.50, 18446744073709551616]}}"#;
    let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let result = answer.json();
    assert_eq!(
        result,
        json!({"offset": 1, "epoch": sub["result"]["epoch"]})
    );
    assert_eq!(
        bob.recv_text().await,
        format!(
            r#"{{"type":"publication","channel":"news:x","offset":1,"epoch":{},"payload":{{"z": 1, "a": [1.50, 18446744073709551616]}}}}"#,
            sub["result"]["epoch"]
        )
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_needs_the_key() {
    let hub = TestHub::start(keyed_config()).await;
    for headers in [
        &[][..],
        &["Authorization: apikey wrong"][..],
        &["Authorization: apikey s3cre"][..],
        &["Authorization: Bearer s3cret"][..],
        &["Authorization: apikey"][..],
    ] {
        let answer = http(hub.addr, "GET", "/api/channels", headers, None).await;
        assert_error(&answer, 401, "unauthorized");
        // Before the path: nothing of the API is told without the key.
        let answer = http(hub.addr, "GET", "/api/nope", headers, None).await;
        assert_error(&answer, 401, "unauthorized");
    }
    let body = r#"{"channel":"c","payload":1}"#;
    let answer = http(hub.addr, "POST", "/api/publish", &[], Some(body)).await;
    assert_error(&answer, 401, "unauthorized");
    let answer = http(
        hub.addr,
        "GET",
        "/api/channels",
        &["authorization: APIKEY  s3cret"],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_without_a_configured_key_is_refused_outside_demo() {
    let hub = TestHub::start(demo_config()).await;
    let answer = http(hub.addr, "GET", "/api/channels", &[KEY], None).await;
    assert_error(&answer, 403, "permission_denied");
    assert!(
        answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_key")
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_is_open_in_demo_mode() {
    let hub = start_demo(demo_config()).await;
    let body = r#"{"channel":"c","payload":"hi"}"#;
    let answer = http(hub.addr, "POST", "/api/publish", &[], Some(body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["offset"], 1);
    let answer = http(hub.addr, "GET", "/api/channels", &[], None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_publish_refuses_bad_bodies() {
    let hub = TestHub::start(keyed_config()).await;
    for body in [
        "not json",
        "",
        r#"["c", 1]"#,
        r#"{"channel":"c"}"#,
        r#"{"payload":1}"#,
        r#"{"channel":1,"payload":1}"#,
        r#"{"channel":"bad channel","payload":1}"#,
        r#"{"channel":"","payload":1}"#,
        r#"{"channel":"c","payload":1} trailing"#,
    ] {
        let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(body)).await;
        assert_error(&answer, 400, "bad_request");
    }
    // Any JSON value is a payload, as over the WebSocket; unknown fields are ignored.
    let body = r#"{"channel":"c","payload":null,"extra":true}"#;
    let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_wrong_methods() {
    let hub = TestHub::start(keyed_config()).await;
    assert_error(
        &http(hub.addr, "GET", "/api/nope", &[KEY], None).await,
        404,
        "not_found",
    );
    assert_error(
        &http(hub.addr, "GET", "/nope", &[], None).await,
        404,
        "not_found",
    );
    let answer = http(hub.addr, "GET", "/api/publish", &[KEY], None).await;
    assert_error(&answer, 405, "bad_request");
    assert_eq!(answer.header("allow"), Some("POST"));
    let answer = http(hub.addr, "POST", "/api/channels", &[KEY], Some("{}")).await;
    assert_error(&answer, 405, "bad_request");
    assert_eq!(answer.header("allow"), Some("GET"));
    let answer = http(hub.addr, "DELETE", "/health", &[], None).await;
    assert_error(&answer, 405, "bad_request");
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    // Without a static directory, `/` says where things are.
    let answer = http(hub.addr, "GET", "/", &[], None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["websocket"], "/ws");
    assert_eq!(answer.json()["health"], "/health");
    assert_eq!(answer.json()["metrics"], "/metrics");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_publish_body_over_the_limit_is_413() {
    let mut config = keyed_config();
    config.limits.max_message_size = 1024;
    let hub = TestHub::start(config).await;
    // Over 1024 + 4096 bytes.
    let body = format!(
        r#"{{"channel":"c","payload":"{}"}}"#,
        "x".repeat(1024 + 4096)
    );
    let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(&body)).await;
    assert_error(&answer, 413, "limit_exceeded");
    // Without a declared length: the body is cut off at the limit while it is read.
    let chunk = "x".repeat(4096);
    let mut request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{KEY}\r\nTransfer-Encoding: chunked\r\n\r\n",
        hub.addr
    );
    for part in [r#"{"channel":"c","payload":""#, &chunk, &chunk, r#""}"#] {
        request.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
    }
    request.push_str("0\r\n\r\n");
    let answer = http_raw(hub.addr, &request).await;
    assert_error(&answer, 413, "limit_exceeded");
    // Under it (the 4 KiB slack is for the JSON around the payload).
    let body = format!(r#"{{"channel":"c","payload":"{}"}}"#, "x".repeat(1024));
    let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(&body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_history_presence_and_channels() {
    let mut config = keyed_config();
    config.namespaces.insert(
        "quiet".to_owned(),
        NamespaceConfig {
            presence: false,
            ..NamespaceConfig::default()
        },
    );
    let hub = TestHub::start(config).await;
    for n in 1..=3 {
        let body = format!(r#"{{"channel":"chat:room","payload":{{"n": {n}}}}}"#);
        let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(&body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let answer = http(
        hub.addr,
        "GET",
        "/api/history?channel=chat:room&limit=2",
        &[KEY],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let history = answer.json();
    let epoch = history["epoch"].as_str().unwrap().to_owned();
    assert_eq!(history["offset"], 3);
    assert_eq!(
        history["publications"],
        json!([
            {"channel": "chat:room", "offset": 2, "epoch": epoch, "payload": {"n": 2}},
            {"channel": "chat:room", "offset": 3, "epoch": epoch, "payload": {"n": 3}},
        ])
    );
    // The payload's text as published.
    assert!(
        answer.body.contains(r#""payload":{"n": 2}"#),
        "{}",
        answer.body
    );
    let answer = http(
        hub.addr,
        "GET",
        &format!("/api/history?channel=chat:room&since_offset=2&since_epoch={epoch}"),
        &[KEY],
        None,
    )
    .await;
    assert_eq!(answer.json()["publications"][0]["offset"], 3, "{answer:?}");
    assert_eq!(answer.json()["publications"].as_array().unwrap().len(), 1);
    let answer = http(
        hub.addr,
        "GET",
        "/api/history?channel=chat:room",
        &[KEY],
        None,
    )
    .await;
    assert_eq!(answer.json()["publications"].as_array().unwrap().len(), 3);
    for target in [
        "/api/history",
        "/api/history?channel=bad%20name",
        "/api/history?channel=c&limit=x",
        "/api/history?channel=c&limit=-1",
        "/api/history?channel=c&since_offset=1",
        "/api/history?channel=c&since_offset=x&since_epoch=e",
        "/api/presence",
        "/api/presence?channel=",
    ] {
        let answer = http(hub.addr, "GET", target, &[KEY], None).await;
        assert_error(&answer, 400, "bad_request");
    }

    let empty = http(hub.addr, "GET", "/api/channels", &[KEY], None).await;
    assert_eq!(empty.json(), json!({"channels": []}));
    let mut alice = hub.client().await;
    let connected = alice.request(json!({"type": "connect"})).await;
    alice
        .request(json!({"type": "subscribe", "channel": "chat:room"}))
        .await;
    let mut bob = hub.client().await;
    bob.request(json!({"type": "connect"})).await;
    bob.request(json!({"type": "subscribe", "channel": "chat:room"}))
        .await;
    bob.request(json!({"type": "subscribe", "channel": "quiet:x"}))
        .await;
    let answer = http(
        hub.addr,
        "GET",
        "/api/presence?channel=chat:room",
        &[KEY],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let clients = answer.json()["clients"].as_array().unwrap().clone();
    assert_eq!(clients.len(), 2, "{answer:?}");
    assert!(
        clients.contains(&json!({"client": connected["result"]["client"], "user": ""})),
        "{answer:?}"
    );
    let answer = http(
        hub.addr,
        "GET",
        "/api/presence?channel=quiet:x",
        &[KEY],
        None,
    )
    .await;
    assert_error(&answer, 400, "disabled");
    let answer = http(hub.addr, "GET", "/api/channels", &[KEY], None).await;
    assert_eq!(
        answer.json(),
        json!({"channels": [
            {"channel": "chat:room", "subscribers": 2},
            {"channel": "quiet:x", "subscribers": 1},
        ]})
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let hub = TestHub::start(keyed_config()).await;
    let answer = http(hub.addr, "GET", "/health", &[], None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.json(),
        json!({"status": "ok", "engine": "memory", "broker": "up"})
    );

    let publications = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("wsengine_hub_publications_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no publications_total in {text}"))
    };
    let before = http(hub.addr, "GET", "/metrics", &[], None).await;
    assert_eq!(before.status, 200);
    assert_eq!(
        before.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let _client = hub.client().await;
    for _ in 0..2 {
        let body = r#"{"channel":"c","payload":1}"#;
        let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let after = http(hub.addr, "GET", "/metrics", &[], None).await;
    assert_eq!(publications(&after.body), publications(&before.body) + 2);
    assert!(
        after.body.contains("wsengine_hub_connections 1"),
        "{}",
        after.body
    );
    hub.stop().await;
}

/// An engine whose broker is down.
struct DownEngine;

fn down<'a, T>() -> EngineFuture<'a, T> {
    Box::pin(async { Err(EngineError::Unavailable("broker down".to_owned())) })
}

impl Engine for DownEngine {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn publish<'a>(
        &'a self,
        _: &'a str,
        _: Payload,
        _: Option<ClientInfo>,
        _: HistoryOptions,
    ) -> EngineFuture<'a, Arc<Publication>> {
        down()
    }
    fn position<'a>(&'a self, _: &'a str) -> EngineFuture<'a, StreamPosition> {
        down()
    }
    fn history<'a>(
        &'a self,
        _: &'a str,
        _: Option<usize>,
        _: Option<StreamPosition>,
    ) -> EngineFuture<'a, HistoryResult> {
        down()
    }
    fn recover<'a>(
        &'a self,
        _: &'a str,
        _: StreamPosition,
        _: usize,
    ) -> EngineFuture<'a, Recovery> {
        down()
    }
    fn subscribe<'a>(
        &'a self,
        _: &'a str,
        _: Option<StreamPosition>,
        _: usize,
    ) -> EngineFuture<'a, Subscription> {
        down()
    }
    fn presence_add<'a>(&'a self, _: &'a str, _: ClientInfo) -> EngineFuture<'a, ()> {
        down()
    }
    fn presence_remove<'a>(&'a self, _: &'a str, _: &'a str) -> EngineFuture<'a, ()> {
        down()
    }
    fn presence<'a>(&'a self, _: &'a str) -> EngineFuture<'a, Vec<PresenceEntry>> {
        down()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_is_503() {
    let hub = TestHub::start_with(ServerOptions {
        config: keyed_config(),
        demo: false,
        static_dir: None,
        tls: None,
        engine: Some(Arc::new(DownEngine)),
    })
    .await;
    let answer = http(hub.addr, "GET", "/health", &[], None).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(
        answer.json(),
        json!({"status": "degraded", "engine": "redis", "broker": "down"})
    );
    let body = r#"{"channel":"c","payload":1}"#;
    let answer = http(hub.addr, "POST", "/api/publish", &[KEY], Some(body)).await;
    assert_error(&answer, 503, "unavailable");
    let answer = http(hub.addr, "GET", "/api/history?channel=c", &[KEY], None).await;
    assert_error(&answer, 503, "unavailable");
    hub.stop().await;
}

/// A fresh directory under the system's temporary directory.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsengine-hub-static-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files() {
    let base = temp_dir();
    let www = base.join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::create_dir_all(www.join("empty")).unwrap();
    std::fs::write(base.join("Cargo.toml"), "secret").unwrap();
    std::fs::write(www.join("index.html"), "<h1>hub</h1>").unwrap();
    std::fs::write(www.join("app.js"), "let x = 1;").unwrap();
    std::fs::write(www.join("style.CSS"), "a{}").unwrap();
    std::fs::write(www.join("sub/index.html"), "sub page").unwrap();
    std::fs::write(www.join("a b.txt"), "spaced").unwrap();
    std::fs::write(www.join(".env"), "hidden").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("Cargo.toml"), www.join("link.txt")).unwrap();
    let hub = TestHub::start_with(ServerOptions {
        config: keyed_config(),
        demo: false,
        static_dir: Some(www.clone()),
        tls: None,
        engine: None,
    })
    .await;

    for (target, body, content_type) in [
        ("/", "<h1>hub</h1>", "text/html; charset=utf-8"),
        ("/index.html", "<h1>hub</h1>", "text/html; charset=utf-8"),
        (
            "/app.js?v=2",
            "let x = 1;",
            "text/javascript; charset=utf-8",
        ),
        ("/style.CSS", "a{}", "text/css; charset=utf-8"),
        ("/sub/", "sub page", "text/html; charset=utf-8"),
        ("/a%20b.txt", "spaced", "text/plain; charset=utf-8"),
    ] {
        let answer = http(hub.addr, "GET", target, &[], None).await;
        assert_eq!(answer.status, 200, "{target}: {answer:?}");
        assert_eq!(answer.body, body, "{target}");
        assert_eq!(
            answer.header("content-type"),
            Some(content_type),
            "{target}"
        );
    }
    let answer = http(hub.addr, "GET", "/sub", &[], None).await;
    assert_eq!(answer.status, 301, "{answer:?}");
    assert_eq!(answer.header("location"), Some("/sub/"));
    let answer = http(hub.addr, "HEAD", "/app.js", &[], None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-length"), Some("10"));
    assert_eq!(answer.body, "");
    let answer = http(hub.addr, "POST", "/app.js", &[], Some("{}")).await;
    assert_error(&answer, 405, "bad_request");
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));

    for target in [
        "/missing.txt",
        "/empty/",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/Cargo.toml",
        "/sub/../../Cargo.toml",
        "/sub/..%2f..%2fCargo.toml",
        "/..%5cCargo.toml",
        "/.env",
        "/link.txt",
        "//evil.example/",
    ] {
        let answer = http(hub.addr, "GET", target, &[], None).await;
        assert_error(&answer, 404, "not_found");
        assert!(!answer.body.contains("secret"), "{target}");
    }
    // The API and the rest still answer beside the static pages.
    let answer = http(hub.addr, "GET", "/health", &[], None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&base);
}
