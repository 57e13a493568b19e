//! The NATS engine (issue #19): a real `nats-server`, engine-level checks and two
//! in-process hub nodes on it. Publications fan out to every node; each node keeps its
//! own stream per channel (offsets, epoch, history) and its own presence
//! (docs/HUB-PROTOCOL.md, "Engines").

use std::time::Duration;

use serde_json::{Value, json};
use wsengine_hub::engine::{ChannelEvent, Engine, RecvError};

use super::engine_fixtures::{
    at, fast_publish_node, info, next_publication, node, opts, payload,
    pipelined_publishes_keep_request_order,
};
use crate::support::*;

/// Two nodes on one NATS (one prefix).
async fn two_nodes(nats: &NatsServer) -> (TestHub, TestHub) {
    let prefix = unique_prefix();
    let a = node(nats.engine(&prefix).await).await;
    let b = node(nats.engine(&prefix).await).await;
    (a, b)
}

/// Waits until `hub`'s stream of `channel` has reached `offset` (publications of the
/// other node arrive through NATS).
async fn wait_offset(hub: &TestHub, channel: &str, offset: u64) -> Value {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let path = format!("/api/history?channel={channel}&limit=0");
        let answer = http(hub.addr, "GET", &path, &[], None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let json = answer.json();
        if json["offset"] == offset {
            return json;
        }
        assert!(tokio::time::Instant::now() < deadline, "{json}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One engine: the memory engine's contract (offsets, history, recovery) on its node, and
/// a publication of another engine (node) applied to this node's own stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_streams_per_node_and_fan_out() {
    let nats = NatsServer::start().await;
    let prefix = unique_prefix();
    let a = nats.engine(&prefix).await;
    let b = nats.engine(&prefix).await;
    assert_eq!(a.name(), "nats");
    a.health().await.unwrap();
    let empty = a.position("c.x:y").await.unwrap();
    assert_eq!(empty.offset, 0);
    let epoch = empty.epoch.clone();
    // B subscribes; A publishes: B gets each one with B's own offsets, once.
    let mut sb = b.subscribe("c.x:y", None, 1000).await.unwrap();
    for n in 1..=5 {
        let p = a.publish("c.x:y", payload(n), None, opts(3)).await.unwrap();
        assert_eq!((p.offset, &p.epoch), (n, &epoch));
    }
    let mut b_epoch = None;
    for n in 1..=5 {
        match tokio::time::timeout(STEP, sb.recv()).await.unwrap() {
            Ok(ChannelEvent::Publication(p)) => {
                assert_eq!(p.offset, n);
                assert_eq!(p.payload.get(), format!(r#"{{"n":{n}}}"#));
                assert_eq!(p.channel.as_ref(), "c.x:y");
                b_epoch.get_or_insert_with(|| p.epoch.clone());
                assert_eq!(Some(&p.epoch), b_epoch.as_ref());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_ne!(
        b_epoch.as_ref(),
        Some(&epoch),
        "each node has its own epoch"
    );
    // History and recovery on A, as the memory engine's.
    let h = a.history("c.x:y", None, None).await.unwrap();
    let offsets: Vec<u64> = h.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [3, 4, 5]);
    assert_eq!(h.position, at(5, &epoch));
    let r = a.recover("c.x:y", at(2, &epoch), 1000).await.unwrap();
    assert!(r.recovered);
    assert_eq!(r.publications.len(), 3);
    assert!(
        !a.recover("c.x:y", at(1, &epoch), 1000)
            .await
            .unwrap()
            .recovered
    );
    // A's epoch means nothing on B.
    let r = b.recover("c.x:y", at(2, &epoch), 1000).await.unwrap();
    assert!(!r.recovered);
    assert_eq!(r.position.offset, 5);
    // B's history is whole even for a channel it has no subscriber of.
    a.publish("quiet", payload(1), Some(info("k-1")), opts(10))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let h = b.history("quiet", None, None).await.unwrap();
        if h.position.offset == 1 {
            assert_eq!(h.publications[0].info, Some(info("k-1")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{h:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Presence is per node.
    a.presence_add("c.x:y", info("k-2")).await.unwrap();
    assert_eq!(a.presence("c.x:y").await.unwrap(), [info("k-2")]);
    assert!(b.presence("c.x:y").await.unwrap().is_empty());
}

/// Publishers on both nodes, subscribers on both: every publication reaches every
/// subscriber once, with its node's offsets 1, 2, 3... and each publisher's order kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_every_publication_once_in_order() {
    let nats = NatsServer::start().await;
    let (a, b) = two_nodes(&nats).await;
    let channel = "chat:room";
    let (mut sa, _) = a.connected().await;
    let (mut sb, _) = b.connected().await;
    let ra = sa
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let rb = sb
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let (mut pa, _) = a.connected().await;
    let (mut pb, _) = b.connected().await;
    const EACH: u64 = 20;
    for n in 0..EACH {
        for (publisher, name) in [(&mut pa, "a"), (&mut pb, "b")] {
            publisher
                .ok(json!({"type": "publish", "channel": channel, "payload": {"from": name, "n": n}}))
                .await;
        }
    }
    // The HTTP API of either node fans out too.
    for hub in [&a, &b] {
        let body = json!({"channel": channel, "payload": {"from": "api", "n": 0}}).to_string();
        let answer = http(hub.addr, "POST", "/api/publish", &[], Some(&body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    for (subscriber, reply) in [(&mut sa, &ra), (&mut sb, &rb)] {
        let mut next = std::collections::HashMap::new();
        for offset in 1..=2 * EACH + 2 {
            let p = next_publication(subscriber).await;
            assert_eq!(p["offset"], offset, "{p}");
            assert_eq!(p["epoch"], reply["epoch"], "{p}");
            let from = p["payload"]["from"].as_str().unwrap().to_owned();
            let n = p["payload"]["n"].as_u64().unwrap();
            let expected = next.entry(from.clone()).or_insert(0);
            if from != "api" {
                assert_eq!(n, *expected, "{from}'s order: {p}");
            }
            *expected += 1;
        }
        assert_eq!(next["a"], EACH);
        assert_eq!(next["b"], EACH);
        assert_eq!(next["api"], 2);
        // Nothing more (no repeat).
        if let Some(extra) = subscriber.recv_within(Duration::from_millis(300)).await {
            assert_ne!(extra["type"], "publication", "{extra}");
        }
    }
    assert_ne!(ra["epoch"], rb["epoch"], "each node has its own epoch");
    a.stop().await;
    b.stop().await;
}

/// Recovery: on the same node, what was published meanwhile on either node is
/// recovered; on the other node the epoch differs, so `recovered` is false.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_the_same_node_and_not_on_the_other() {
    let nats = NatsServer::start().await;
    let (a, b) = two_nodes(&nats).await;
    let channel = "news:r";
    let (mut c, _) = a.connected().await;
    let sub = c.ok(json!({"type": "subscribe", "channel": channel})).await;
    let epoch = sub["epoch"].clone();
    let (mut publisher, _) = a.connected().await;
    for n in 1..=3 {
        publisher
            .ok(json!({"type": "publish", "channel": channel, "payload": {"n": n}}))
            .await;
    }
    for n in 1..=3 {
        assert_eq!(next_publication(&mut c).await["offset"], n);
    }
    drop(c);
    // Missed while away: 4..=6, through both nodes' API.
    for (hub, n) in [(&a, 4), (&b, 5), (&a, 6)] {
        let body = json!({"channel": channel, "payload": {"n": n}}).to_string();
        let answer = http(hub.addr, "POST", "/api/publish", &[], Some(&body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        wait_offset(&a, channel, n).await;
    }
    let (mut c, _) = a.connected().await;
    let r = c
        .ok(json!({"type": "subscribe", "channel": channel, "since": {"offset": 3, "epoch": epoch}}))
        .await;
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["offset"], 6);
    let recovered: Vec<Value> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payload"]["n"].clone())
        .collect();
    assert_eq!(recovered, [json!(4), json!(5), json!(6)]);
    // Then live, from the other node, with no repeat.
    let body = json!({"channel": channel, "payload": {"n": 7}}).to_string();
    let answer = http(b.addr, "POST", "/api/publish", &[], Some(&body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let p = next_publication(&mut c).await;
    assert_eq!(
        (p["offset"].clone(), p["payload"]["n"].clone()),
        (json!(7), json!(7))
    );
    // On the other node: another epoch, not recovered (the client reloads).
    let (mut d, _) = b.connected().await;
    let r = d
        .ok(json!({"type": "subscribe", "channel": channel, "since": {"offset": 3, "epoch": epoch}}))
        .await;
    assert_eq!(r["recovered"], false, "{r}");
    assert_ne!(r["epoch"], epoch);
    a.stop().await;
    b.stop().await;
}

/// The engine's subscriptions end as interrupted when NATS goes; calls are unavailable
/// within the bound; after a restart a new epoch starts on the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_ends_subscriptions_when_nats_goes_and_comes_back() {
    let mut nats = NatsServer::start().await;
    let e = nats.engine(&unique_prefix()).await;
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    let first = e.publish("c", payload(1), None, opts(10)).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Publication(_))
    ));
    nats.kill();
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Err(RecvError::Interrupted)
    );
    let started = tokio::time::Instant::now();
    let err = e
        .publish("c", payload(2), None, opts(10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(e.health().await.is_err());
    assert!(e.subscribe("c", None, 1000).await.is_err());
    assert!(e.position("c").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    nats.restart().await;
    let deadline = tokio::time::Instant::now() + STEP;
    while e.health().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "health stays down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    assert_eq!(s.start().offset, 0);
    assert_ne!(s.start().epoch, first.epoch);
    let p = e.publish("c", payload(3), None, opts(10)).await.unwrap();
    assert_eq!(p.offset, 1);
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Publication(p))
    );
}

/// A NATS that hangs (stopped: connections open, no answer): health is down within the
/// operation timeout (2 s here), the subscription ends as interrupted once the client's
/// pings go unanswered (every 500 ms here), calls are then unavailable at once, and all is
/// well once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_calls_are_bounded_when_nats_hangs() {
    let nats = NatsServer::start().await;
    let e = nats.engine(&unique_prefix()).await;
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    nats.signal("STOP");
    let started = tokio::time::Instant::now();
    let err = e.health().await.unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Err(RecvError::Interrupted)
    );
    let started = tokio::time::Instant::now();
    let err = e
        .publish("c", payload(1), None, opts(10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(e.subscribe("c", None, 1000).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
    nats.signal("CONT");
    let deadline = tokio::time::Instant::now() + STEP;
    while e.health().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "health stays down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    let p = e.publish("c", payload(2), None, opts(10)).await.unwrap();
    assert_eq!(p.offset, 1);
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Publication(p))
    );
}

/// NATS killed: subscribers closed with 1013, publish unavailable, health 503 with the
/// broker down; NATS back on the same port: health 200 and fan-out across nodes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_is_unavailable_then_recovered() {
    let mut nats = NatsServer::start().await;
    let (a, b) = two_nodes(&nats).await;
    let health = http(a.addr, "GET", "/health", &[], None).await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(
        health.json(),
        json!({"status": "ok", "engine": "nats", "broker": "up"})
    );
    let channel = "news:o";
    let (mut subscriber, _) = b.connected().await;
    let sub = subscriber
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let (mut publisher, _) = a.connected().await;
    publisher
        .ok(json!({"type": "publish", "channel": channel, "payload": 1}))
        .await;
    assert_eq!(next_publication(&mut subscriber).await["offset"], 1);

    nats.kill();
    assert_eq!(subscriber.closed_with().await, Some(1013));
    let started = tokio::time::Instant::now();
    publisher
        .err(
            json!({"type": "publish", "channel": channel, "payload": 2}),
            "unavailable",
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (mut late, _) = b.connected().await;
    late.err(
        json!({"type": "subscribe", "channel": channel}),
        "unavailable",
    )
    .await;
    for hub in [&a, &b] {
        let health = http(hub.addr, "GET", "/health", &[], None).await;
        assert_eq!(health.status, 503, "{health:?}");
        assert_eq!(
            health.json(),
            json!({"status": "degraded", "engine": "nats", "broker": "down"})
        );
    }
    let api = http(
        a.addr,
        "POST",
        "/api/publish",
        &[],
        Some(&json!({"channel": channel, "payload": 3}).to_string()),
    )
    .await;
    assert_eq!(api.status, 503, "{api:?}");
    assert_eq!(api.json()["error"]["code"], "unavailable");

    nats.restart().await;
    let deadline = tokio::time::Instant::now() + STEP;
    for hub in [&a, &b] {
        loop {
            let health = http(hub.addr, "GET", "/health", &[], None).await;
            if health.status == 200 {
                assert_eq!(health.json()["broker"], "up");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{health:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The subscriber comes back to its node: a new epoch there, so not recovered.
    let (mut back, _) = b.connected().await;
    let r = back
        .ok(json!({"type": "subscribe", "channel": channel, "since": {"offset": 1, "epoch": sub["epoch"]}}))
        .await;
    assert_eq!(r["recovered"], false, "{r}");
    assert_ne!(r["epoch"], sub["epoch"]);
    // Fan-out from the other node works again.
    let (mut publisher, _) = a.connected().await;
    publisher
        .ok(json!({"type": "publish", "channel": channel, "payload": 4}))
        .await;
    let p = next_publication(&mut back).await;
    assert_eq!(p["payload"], 4);
    assert_eq!(p["offset"], 1);
    assert_eq!(p["epoch"], r["epoch"]);
    a.stop().await;
    b.stop().await;
}

/// A connection's publishes are pipelined to the broker: request order kept (offsets,
/// answers, a refusal in its place, a history after them), and publishes sent just before
/// a close still happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_publishes_keep_request_order_on_nats() {
    let nats = NatsServer::start().await;
    let hub = fast_publish_node(Some(nats.engine(&unique_prefix()).await)).await;
    pipelined_publishes_keep_request_order(&hub).await;
}
