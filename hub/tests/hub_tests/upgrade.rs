//! The upgrade: Origin allow-list, subprotocol, connect rate.

use serde_json::json;
use wsengine::ClientRequest;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allow_list() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\nallowed_origins = [\"https://good.example\"]\n",
    ))
    .await;
    let e = hub
        .client_with(hub.request_for("/ws").origin("https://evil.example"))
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("403"), "{e}");
    assert_eq!(refusal(&e).status, 403);
    assert!(hub.metric("wsengine_hub_refused_total{reason=\"origin\"}") >= 1.0);
    // The allowed Origin.
    let mut c = hub
        .client_with(hub.request_for("/ws").origin("https://good.example"))
        .await
        .expect("good origin");
    c.connect(None).await;
    // No Origin (not a browser).
    let (mut c, _) = hub.connected().await;
    c.ok(json!({"type": "presence", "channel": "a"})).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_negotiation() {
    let hub = TestHub::start(demo_config()).await;
    // Only others: 400.
    let request = ClientRequest::new(&hub.url("/ws"))
        .expect("url")
        .protocol("other");
    let e = hub.client_with(request).await.err().expect("refused");
    assert!(e.to_string().contains("400"), "{e}");
    assert_eq!(refusal(&e).status, 400);
    // None: served (v1).
    let request = ClientRequest::new(&hub.url("/ws")).expect("url");
    let mut c = hub.client_with(request).await.expect("no subprotocol");
    c.connect(None).await;
    // Others and v1: v1 selected.
    let request = ClientRequest::new(&hub.url("/ws"))
        .expect("url")
        .protocol("other")
        .protocol("wsengine.hub.v1");
    let (ws, response) = wsengine_tokio::connect_with(request, wsengine::Config::default())
        .await
        .expect("v1 among others");
    let selected = response
        .headers()
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|h| h.value.clone());
    assert_eq!(selected.as_deref(), Some(&b"wsengine.hub.v1"[..]));
    drop(ws);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rate_answers_503_with_retry_after() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\nconnect_rate = 2\n",
    ))
    .await;
    let _a = hub.client().await;
    let _b = hub.client().await;
    let e = hub
        .client_with(hub.request_for("/ws"))
        .await
        .err()
        .expect("third refused");
    assert!(e.to_string().contains("503"), "{e}");
    let refused = refusal(&e);
    assert_eq!(refused.status, 503);
    let retry_after = refused
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned());
    let secs: u64 = retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&secs), "{secs}");
    assert!(hub.metric("wsengine_hub_refused_total{reason=\"connect_rate\"}") >= 1.0);
    // A second later the bucket has refilled.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (mut c, _) = hub.connected().await;
    c.ok(json!({"type": "presence", "channel": "a"})).await;
    hub.stop().await;
}
