//! Graceful stop, metrics, history.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_closes_1001() {
    let hub = TestHub::start(demo_config()).await;
    let addr = hub.addr;
    let (mut a, _) = hub.connected().await;
    a.ok(json!({"type": "subscribe", "channel": "s"})).await;
    let (mut b, _) = hub.connected().await;
    // Not yet connected counts too.
    let mut c = hub.client().await;
    let stopping = tokio::spawn(hub.stop());
    assert_eq!(a.closed_with().await, Some(1001));
    assert_eq!(b.closed_with().await, Some(1001));
    assert_eq!(c.closed_with().await, Some(1001));
    tokio::time::timeout(STEP, stopping)
        .await
        .expect("stopped in time")
        .expect("stop");
    // Nobody listens any more.
    let refused = wsengine_tokio::connect(&format!("ws://{addr}/ws")).await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counters_move() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[namespaces.m]\npresence = false\n",
    ))
    .await;
    assert_eq!(hub.metric("wsengine_hub_connections"), 0.0);
    let (mut a, _) = hub.connected().await;
    let (mut b, _) = hub.connected().await;
    assert_eq!(hub.metric("wsengine_hub_connections"), 2.0);
    a.ok(json!({"type": "subscribe", "channel": "m:x"})).await;
    b.ok(json!({"type": "subscribe", "channel": "m:x"})).await;
    assert_eq!(hub.metric("wsengine_hub_subscriptions"), 2.0);
    let (mut p, _) = hub.connected().await;
    assert_eq!(hub.metric("wsengine_hub_connections"), 3.0);
    for i in 0..3 {
        p.ok(json!({"type": "publish", "channel": "m:x", "payload": i}))
            .await;
    }
    for _ in 0..3 {
        assert_eq!(b.recv().await["type"], "publication");
        assert_eq!(a.recv().await["type"], "publication");
    }
    assert_eq!(hub.metric("wsengine_hub_publications_total"), 3.0);
    assert_eq!(hub.metric("wsengine_hub_deliveries_total"), 6.0);
    assert!(hub.metric("wsengine_hub_bytes_received_total") > 0.0);
    assert!(hub.metric("wsengine_hub_bytes_sent_total") > 0.0);
    let text = hub.hub.metrics.encode();
    assert!(
        text.contains("wsengine_hub_broker_round_trip_seconds_count"),
        "{text}"
    );
    b.ws.close(None).await.expect("close");
    hub.wait_metric("wsengine_hub_closes_total{code=\"1000\"}", |v| v == 1.0)
        .await;
    hub.wait_metric("wsengine_hub_connections", |v| v == 2.0)
        .await;
    hub.wait_metric("wsengine_hub_subscriptions", |v| v == 1.0)
        .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limit_since_and_epoch() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[namespaces.h]\nhistory_size = 8\n",
    ))
    .await;
    let (mut c, _) = hub.connected().await;
    // An empty channel: offset 0, nothing.
    let h = c.ok(json!({"type": "history", "channel": "h:x"})).await;
    assert_eq!(h["offset"], 0);
    assert_eq!(h["publications"], json!([]));
    let epoch = h["epoch"].clone();
    for n in 1..=10 {
        c.ok(json!({"type": "publish", "channel": "h:x", "payload": {"n": n}}))
            .await;
    }
    let offsets = |h: &serde_json::Value| -> Vec<u64> {
        h["publications"]
            .as_array()
            .expect("publications")
            .iter()
            .map(|p| p["offset"].as_u64().expect("offset"))
            .collect()
    };
    // No limit: everything retained (history_size 8), oldest first.
    let h = c.ok(json!({"type": "history", "channel": "h:x"})).await;
    assert_eq!(offsets(&h), (3..=10).collect::<Vec<_>>());
    assert_eq!((&h["offset"], &h["epoch"]), (&json!(10), &epoch));
    assert_eq!(h["publications"][0]["payload"], json!({"n": 3}));
    // limit without since: the newest ones.
    let h = c
        .ok(json!({"type": "history", "channel": "h:x", "limit": 3}))
        .await;
    assert_eq!(offsets(&h), [8, 9, 10]);
    // limit 0: none, the position only.
    let h = c
        .ok(json!({"type": "history", "channel": "h:x", "limit": 0}))
        .await;
    assert_eq!(h, json!({"publications": [], "epoch": epoch, "offset": 10}));
    // Paging forward with since.
    let mut since = 4;
    let mut pages = Vec::new();
    loop {
        let h = c
            .ok(json!({"type": "history", "channel": "h:x", "limit": 2,
                       "since": {"offset": since, "epoch": epoch}}))
            .await;
        let page = offsets(&h);
        if page.is_empty() {
            break;
        }
        since = *page.last().expect("page");
        pages.push(page);
    }
    assert_eq!(pages, [vec![5, 6], vec![7, 8], vec![9, 10]]);
    // since without limit: everything after it.
    let h = c
        .ok(json!({"type": "history", "channel": "h:x",
                   "since": {"offset": 7, "epoch": epoch}}))
        .await;
    assert_eq!(offsets(&h), [8, 9, 10]);
    // Another epoch: no publications; the reply's epoch is the current one.
    let h = c
        .ok(json!({"type": "history", "channel": "h:x",
                   "since": {"offset": 1, "epoch": "other"}}))
        .await;
    assert_eq!(h, json!({"publications": [], "epoch": epoch, "offset": 10}));
    hub.stop().await;
}
