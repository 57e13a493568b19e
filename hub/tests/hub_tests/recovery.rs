//! Offsets, epochs and recovery after a reconnect.

use serde_json::{Value, json};

use crate::support::*;

/// Publishes `count` payloads `{"n": first..}` to `channel`; returns the last offset.
async fn publish_n(c: &mut TestClient, channel: &str, first: u64, count: u64) -> u64 {
    let mut last = 0;
    for n in first..first + count {
        let r = c
            .ok(json!({"type": "publish", "channel": channel, "payload": {"n": n}}))
            .await;
        last = r["offset"].as_u64().expect("offset");
    }
    last
}

/// Subscribes with `since` and returns the result.
async fn subscribe_since(c: &mut TestClient, channel: &str, offset: u64, epoch: &Value) -> Value {
    c.ok(json!({"type": "subscribe", "channel": channel,
                "since": {"offset": offset, "epoch": epoch}}))
        .await
}

fn recovery_config(recovery_max: u32) -> wsengine_hub::config::Config {
    config(&format!(
        "[auth]\nallow_anonymous = true\n[limits]\nrecovery_max = {recovery_max}\npublish_rate = 100000\n[namespaces.news]\npresence = false\nhistory_size = 1000\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_recovers_missed_then_live_without_gap_or_repeat() {
    let hub = TestHub::start(recovery_config(1000)).await;
    let channel = "news:live";
    let (mut publisher, _) = hub.connected().await;
    publish_n(&mut publisher, channel, 0, 3).await;

    // A subscribes, reads its position, and goes away.
    let (mut a, _) = hub.connected().await;
    let sub = a.ok(json!({"type": "subscribe", "channel": channel})).await;
    let since = sub["offset"].as_u64().expect("offset");
    let epoch = sub["epoch"].clone();
    assert_eq!(since, 3);
    drop(a);

    // 20 publications pass while A is away.
    let last_missed = publish_n(&mut publisher, channel, 100, 20).await;
    assert_eq!(last_missed, since + 20);

    // Another publisher keeps publishing while A comes back.
    let mut busy = hub.connected().await.0;
    let live = 40u64;
    let busy_task = tokio::spawn(async move {
        let last = publish_n(&mut busy, channel, 1000, live).await;
        (busy, last)
    });
    // Let the concurrent publisher get going before the subscribe.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (mut a, _) = hub.connected().await;
    let sub = subscribe_since(&mut a, channel, since, &epoch).await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["epoch"], epoch);
    // More publications right after subscribing, from the first publisher too.
    let publisher_task = tokio::spawn(async move {
        publish_n(&mut publisher, channel, 5000, 10).await;
        publisher
    });
    let recovered = sub["publications"]
        .as_array()
        .expect("publications")
        .clone();
    let reply_offset = sub["offset"].as_u64().expect("offset");
    assert_eq!(recovered.len() as u64, reply_offset - since, "{sub}");
    // Exactly the 20 missed ones first, in order, with their payloads.
    for (i, p) in recovered.iter().take(20).enumerate() {
        assert_eq!(p["offset"], since + 1 + i as u64, "{p}");
        assert_eq!(p["payload"], json!({"n": 100 + i}), "{p}");
        assert_eq!(p["channel"], channel);
        assert_eq!(p["epoch"], epoch);
        assert!(p.get("type").is_none(), "{p}");
    }
    let total = since + 20 + live + 10;
    let mut offsets: Vec<u64> = recovered
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect();
    while offsets.last().copied().unwrap_or(since) < total {
        let m = a.recv().await;
        assert_eq!(m["type"], "publication", "{m}");
        assert_eq!(m["epoch"], epoch);
        offsets.push(m["offset"].as_u64().expect("offset"));
    }
    let expected: Vec<u64> = (since + 1..=total).collect();
    assert_eq!(offsets, expected, "a gap or a repeat");
    let (_busy, busy_last) = busy_task.await.expect("busy");
    let _publisher = publisher_task.await.expect("publisher");
    assert!(busy_last <= total);
    // Nothing more after the last one.
    a.quiet_for(std::time::Duration::from_millis(100)).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_recovery_max_missed_is_not_recovered() {
    let hub = TestHub::start(recovery_config(5)).await;
    let (mut p, _) = hub.connected().await;
    let (mut a, _) = hub.connected().await;
    let sub = a
        .ok(json!({"type": "subscribe", "channel": "news:x"}))
        .await;
    let epoch = sub["epoch"].clone();
    a.ok(json!({"type": "unsubscribe", "channel": "news:x"}))
        .await;

    // Exactly recovery_max missed: recovered.
    publish_n(&mut p, "news:x", 0, 5).await;
    let sub = subscribe_since(&mut a, "news:x", 0, &epoch).await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["publications"].as_array().map(Vec::len), Some(5));
    a.ok(json!({"type": "unsubscribe", "channel": "news:x"}))
        .await;

    // One more: not recovered, no publications, the current position.
    publish_n(&mut p, "news:x", 5, 1).await;
    let sub = subscribe_since(&mut a, "news:x", 0, &epoch).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    assert_eq!(sub["offset"], 6);
    assert_eq!(sub["epoch"], epoch);
    assert!(sub.get("publications").is_none(), "{sub}");
    a.ok(json!({"type": "unsubscribe", "channel": "news:x"}))
        .await;

    // Nothing missed: recovered with no publications.
    let sub = subscribe_since(&mut a, "news:x", 6, &epoch).await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["publications"], json!([]));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_epoch_is_not_recovered() {
    let hub = TestHub::start(recovery_config(1000)).await;
    let (mut p, _) = hub.connected().await;
    publish_n(&mut p, "news:e", 0, 3).await;
    let (mut a, _) = hub.connected().await;
    let sub = subscribe_since(&mut a, "news:e", 1, &json!("not-the-epoch")).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    assert_eq!(sub["offset"], 3);
    assert_ne!(sub["epoch"], "not-the-epoch");
    assert!(sub.get("publications").is_none(), "{sub}");
    // An offset ahead of the stream: not recovered either.
    let epoch = sub["epoch"].clone();
    let mut b = hub.connected().await.0;
    let sub = subscribe_since(&mut b, "news:e", 99, &epoch).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_changes_the_epoch() {
    let hub = TestHub::start(recovery_config(1000)).await;
    let (mut p, _) = hub.connected().await;
    publish_n(&mut p, "news:r", 0, 3).await;
    let sub = p
        .ok(json!({"type": "subscribe", "channel": "news:r"}))
        .await;
    assert_eq!(sub["offset"], 3);
    let old_epoch = sub["epoch"].clone();
    hub.stop().await;

    let hub = TestHub::start(recovery_config(1000)).await;
    let (mut a, _) = hub.connected().await;
    let sub = subscribe_since(&mut a, "news:r", 3, &old_epoch).await;
    assert_eq!(sub["recovered"], false, "{sub}");
    assert_ne!(sub["epoch"], old_epoch, "{sub}");
    assert_eq!(sub["offset"], 0, "{sub}");
    // The new stream starts at offset 1.
    let r = a
        .ok(json!({"type": "publish", "channel": "news:r", "payload": 0}))
        .await;
    assert_eq!(r["offset"], 1);
    assert_eq!(r["epoch"], sub["epoch"]);
    hub.stop().await;
}
