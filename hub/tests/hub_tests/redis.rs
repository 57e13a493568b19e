//! The Redis engine (issue #19, first slice): engine-level checks on a real
//! `redis-server`, and two in-process hub nodes on one Redis acting as one (offsets,
//! epochs, recovery on the other node, history, presence, an outage of Redis).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wsengine_hub::engine::redis::RedisEngine;
use wsengine_hub::engine::{ChannelEvent, ClientInfo, Engine, Payload, RecvError};

use super::engine_fixtures::{
    at, fast_publish_node, info, next_publication, node, opts, payload,
    pipelined_publishes_keep_request_order,
};
use crate::support::*;

/// Two nodes on one Redis (one prefix).
async fn two_nodes(redis: &RedisServer) -> (TestHub, TestHub, String) {
    let prefix = unique_prefix();
    let a = node(redis.engine(&prefix).await).await;
    let b = node(redis.engine(&prefix).await).await;
    (a, b, prefix)
}

/// The next `join` or `leave` message (publications skipped).
async fn next_presence_event(client: &mut TestClient) -> Value {
    loop {
        let message = client.recv().await;
        if message["type"] == "join" || message["type"] == "leave" {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_offsets_history_and_recovery() {
    let redis = RedisServer::start().await;
    let e = redis.engine(&unique_prefix()).await;
    assert_eq!(e.name(), "redis");
    // A new channel: offset 0, and the epoch its first publication gets.
    let empty = e.position("c").await.unwrap();
    assert_eq!(empty.offset, 0);
    assert_eq!(empty.epoch.len(), 16, "{empty:?}");
    for n in 1..=5 {
        let p = e.publish("c", payload(n), None, opts(3)).await.unwrap();
        assert_eq!((p.offset, &p.epoch), (n, &empty.epoch));
    }
    let epoch = empty.epoch.clone();
    let h = e.history("c", None, None).await.unwrap();
    let offsets = |ps: &[Arc<wsengine_hub::engine::Publication>]| -> Vec<u64> {
        ps.iter().map(|p| p.offset).collect()
    };
    assert_eq!(offsets(&h.publications), [3, 4, 5]);
    assert_eq!(h.position, at(5, &epoch));
    assert_eq!(h.publications[0].payload.get(), r#"{"n":3}"#);
    assert_eq!(h.publications[0].channel.as_ref(), "c");
    assert!(h.publications[0].time > 1_600_000_000_000);
    assert_eq!(
        offsets(&e.history("c", Some(2), None).await.unwrap().publications),
        [4, 5]
    );
    assert_eq!(
        offsets(
            &e.history("c", Some(1), Some(at(3, &epoch)))
                .await
                .unwrap()
                .publications
        ),
        [4]
    );
    assert!(
        e.history("c", Some(0), None)
            .await
            .unwrap()
            .publications
            .is_empty()
    );
    let other = e
        .history("c", None, Some(at(3, &"x".into())))
        .await
        .unwrap();
    assert!(other.publications.is_empty());
    assert_eq!(other.position, at(5, &epoch));
    // Recovery: exactly the missed ones, or refused.
    let r = e.recover("c", at(2, &epoch), 1000).await.unwrap();
    assert!(r.recovered);
    assert_eq!(offsets(&r.publications), [3, 4, 5]);
    assert!(!e.recover("c", at(1, &epoch), 1000).await.unwrap().recovered);
    assert!(!e.recover("c", at(2, &epoch), 2).await.unwrap().recovered);
    assert!(!e.recover("c", at(6, &epoch), 1000).await.unwrap().recovered);
    assert!(
        !e.recover("c", at(2, &"x".into()), 1000)
            .await
            .unwrap()
            .recovered
    );
    let none = e.recover("c", at(5, &epoch), 0).await.unwrap();
    assert!(none.recovered && none.publications.is_empty());
    // A payload goes out as it came in, info too.
    let text = r#"{"z":1,"a":123456789012345678901234567890}"#;
    let raw: Payload = serde_json::value::RawValue::from_string(text.to_owned())
        .unwrap()
        .into();
    let p = e
        .publish("d", raw, Some(info("x-1")), opts(0))
        .await
        .unwrap();
    assert_eq!(p.offset, 1);
    // history_size 0 keeps none, but offsets grow.
    let h = e.history("d", None, None).await.unwrap();
    assert!(h.publications.is_empty());
    assert_eq!(h.position.offset, 1);
    let p = e.publish("d2", p.payload.clone(), Some(info("x-1")), opts(10));
    let p = p.await.unwrap();
    let stored = &e.history("d2", None, None).await.unwrap().publications[0];
    assert_eq!(stored.payload.get(), text);
    assert_eq!(stored.info, Some(info("x-1")));
    assert_eq!(**stored, *p);
    // Health: up.
    e.health().await.unwrap();
}

/// Two engines (two nodes) on one Redis: a publisher on one, subscribers arriving on
/// the other while it runs, each recovering from where the one before it started: every
/// offset exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_subscribe_with_since_has_no_gap_across_nodes() {
    const TOTAL: u64 = 1500;
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    // Subscriptions are read after the run: room for all of it.
    let mut config = redis.engine_config(&prefix);
    config.channel_capacity = 4096;
    let a = Arc::new(RedisEngine::connect(config).await.unwrap());
    let b = redis.engine(&prefix).await;
    let epoch = a.position("c").await.unwrap().epoch;
    let publisher = {
        let b = b.clone();
        tokio::spawn(async move {
            for n in 1..=TOTAL {
                let p = b
                    .publish("c", payload(n), None, opts(100_000))
                    .await
                    .unwrap();
                assert_eq!(p.offset, n);
            }
        })
    };
    let mut subscriptions = Vec::new();
    let mut since = 0;
    while since < TOTAL {
        let s = a
            .subscribe("c", Some(at(since, &epoch)), usize::MAX)
            .await
            .unwrap();
        assert!(s.recovery.recovered);
        let first = since + 1;
        since = s.start().offset;
        subscriptions.push((first, s));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(STEP, publisher)
        .await
        .unwrap()
        .unwrap();
    let mut mid_run = 0;
    for (first, mut s) in subscriptions {
        let start = s.start().offset;
        if start > 0 && start < TOTAL {
            mid_run += 1;
        }
        let mut seen: Vec<u64> = s.recovery.publications.iter().map(|p| p.offset).collect();
        while seen.last().copied().unwrap_or(start) < TOTAL {
            match tokio::time::timeout(STEP, s.recv()).await.unwrap().unwrap() {
                ChannelEvent::Publication(p) => {
                    assert_eq!(p.epoch, epoch);
                    seen.push(p.offset);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, (first..=TOTAL).collect::<Vec<_>>());
        assert_eq!(s.try_recv(), Ok(None));
    }
    assert!(
        mid_run > 0,
        "no subscription landed while the publisher ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_presence_expires_without_refresh() {
    let redis = RedisServer::start().await;
    let prefix = unique_prefix();
    let a = redis.engine(&prefix).await;
    let mut s = a.subscribe("c", None, 1000).await.unwrap();
    {
        // A node that dies: its entry is never refreshed nor removed.
        let dead = redis.engine(&prefix).await;
        dead.presence_add("c", info("dead-1")).await.unwrap();
    }
    a.presence_add("c", info("live-1")).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        events.push(tokio::time::timeout(STEP, s.recv()).await.unwrap().unwrap());
    }
    assert_eq!(
        events,
        [
            ChannelEvent::Join(info("dead-1")),
            ChannelEvent::Join(info("live-1"))
        ]
    );
    assert_eq!(
        a.presence("c").await.unwrap(),
        [info("dead-1"), info("live-1")]
    );
    // After the TTL (1.5 s here): the dead node's entry is gone, with a leave; the live
    // one stays (its node refreshes it).
    let leave = tokio::time::timeout(STEP, s.recv()).await.unwrap().unwrap();
    assert_eq!(leave, ChannelEvent::Leave(info("dead-1")));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(a.presence("c").await.unwrap(), [info("live-1")]);
    a.presence_remove("c", "live-1").await.unwrap();
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap().unwrap(),
        ChannelEvent::Leave(info("live-1"))
    );
    assert!(a.presence("c").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_ends_subscriptions_when_redis_goes_and_comes_back() {
    let mut redis = RedisServer::start().await;
    let e = redis.engine(&unique_prefix()).await;
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    e.presence_add("c", info("k-1")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Join(info("k-1")))
    );
    e.publish("c", payload(1), None, opts(10)).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Publication(_))
    ));
    redis.kill();
    // The subscription ends as interrupted (not silently).
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
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + STEP;
    while e.health().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "health stays down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The node's presence entries come back with its next refresh (Redis lost them).
    while e.presence("c").await.unwrap() != [info("k-1")] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence not refreshed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new Redis: a new epoch, from offset 1.
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    assert_eq!(s.start().offset, 0);
    let p = e.publish("c", payload(3), None, opts(10)).await.unwrap();
    assert_eq!(p.offset, 1);
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Publication(p))
    );
}

/// A Redis that hangs (stopped: connections open, no answer): every call is
/// `unavailable` within the operation timeout (2 s here), the subscription ends as
/// interrupted once the pub/sub ping goes unanswered, and all is well once it answers
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_calls_are_bounded_when_redis_hangs() {
    let redis = RedisServer::start().await;
    let e = redis.engine(&unique_prefix()).await;
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    redis.signal("STOP");
    // Each call gives up after the operation timeout (2 s), with some slack for a busy
    // machine.
    let bound = Duration::from_millis(3500);
    let started = tokio::time::Instant::now();
    let err = e
        .publish("c", payload(1), None, opts(10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    let started = tokio::time::Instant::now();
    let err = e.history("c", None, None).await.unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    let started = tokio::time::Instant::now();
    let err = e.presence("c").await.unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    let started = tokio::time::Instant::now();
    assert!(e.health().await.is_err());
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Err(RecvError::Interrupted)
    );
    redis.signal("CONT");
    let deadline = tokio::time::Instant::now() + STEP;
    while e.health().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "health stays down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = e.subscribe("c", None, 1000).await.unwrap();
    let p = e.publish("c", payload(2), None, opts(10)).await.unwrap();
    assert_eq!(
        tokio::time::timeout(STEP, s.recv()).await.unwrap(),
        Ok(ChannelEvent::Publication(p))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_every_publication_once_in_offset_order() {
    let redis = RedisServer::start().await;
    let (a, b, _) = two_nodes(&redis).await;
    let channel = "chat:room";
    let (mut sa, _) = a.connected().await;
    let (mut sb, _) = b.connected().await;
    let ra = sa
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let rb = sb
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    // One stream: the same epoch on both nodes.
    assert_eq!(ra["epoch"], rb["epoch"], "{ra} {rb}");
    let epoch = ra["epoch"].clone();
    let (mut pa, _) = a.connected().await;
    let (mut pb, _) = b.connected().await;
    const EACH: u64 = 15;
    for n in 0..EACH {
        for (publisher, name) in [(&mut pa, "a"), (&mut pb, "b")] {
            let r = publisher
                .ok(json!({"type": "publish", "channel": channel, "payload": {"from": name, "n": n}}))
                .await;
            assert_eq!(r["epoch"], epoch);
        }
    }
    for subscriber in [&mut sa, &mut sb] {
        for offset in 1..=2 * EACH {
            let p = next_publication(subscriber).await;
            assert_eq!(p["offset"], offset, "{p}");
            assert_eq!(p["epoch"], epoch, "{p}");
            let from = if offset % 2 == 1 { "a" } else { "b" };
            assert_eq!(p["payload"]["from"], from, "{p}");
        }
        // Nothing more (no repeat).
        if let Some(extra) = subscriber.recv_within(Duration::from_millis(200)).await {
            assert_ne!(extra["type"], "publication", "{extra}");
        }
    }
    // Concurrent publishers on both nodes: one order, the same on both nodes.
    let burst = |hub: &TestHub, name: &'static str| {
        let url = hub.request_for("/ws");
        async move {
            let (ws, _) = wsengine_tokio::connect_with(url, wsengine::Config::default())
                .await
                .unwrap();
            let mut c = TestClient { ws, next_id: 1 };
            c.connect(None).await;
            for n in 0..20 {
                c.ok(json!({"type": "publish", "channel": channel, "payload": {"from": name, "n": n}}))
                    .await;
            }
        }
    };
    tokio::join!(burst(&a, "a"), burst(&b, "b"));
    let mut seen = Vec::new();
    for subscriber in [&mut sa, &mut sb] {
        let mut order = Vec::new();
        for offset in 2 * EACH + 1..=2 * EACH + 40 {
            let p = next_publication(subscriber).await;
            assert_eq!(p["offset"], offset, "{p}");
            order.push(p["payload"].clone());
        }
        seen.push(order);
    }
    assert_eq!(seen[0], seen[1]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_the_other_node_and_history_is_shared() {
    let redis = RedisServer::start().await;
    let (a, b, _) = two_nodes(&redis).await;
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
    // Missed while away: 4..=6 (through both nodes' API).
    for (hub, n) in [(&a, 4), (&b, 5), (&a, 6)] {
        let body = json!({"channel": channel, "payload": {"n": n}}).to_string();
        let answer = http(hub.addr, "POST", "/api/publish", &[], Some(&body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json()["offset"], n);
    }
    let (mut c, _) = b.connected().await;
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
    publisher
        .ok(json!({"type": "publish", "channel": channel, "payload": {"n": 7}}))
        .await;
    let p = next_publication(&mut c).await;
    assert_eq!(
        (p["offset"].clone(), p["payload"]["n"].clone()),
        (json!(7), json!(7))
    );
    // History through the HTTP API: the same on either node.
    let mut answers = Vec::new();
    for hub in [&a, &b] {
        let answer = http(
            hub.addr,
            "GET",
            &format!("/api/history?channel={channel}&limit=3"),
            &[],
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answers.push(answer.json());
    }
    assert_eq!(answers[0], answers[1]);
    let offsets: Vec<Value> = answers[0]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].clone())
        .collect();
    assert_eq!(offsets, [json!(5), json!(6), json!(7)]);
    assert_eq!(answers[0]["epoch"], epoch);
    // A stale epoch is not recovered.
    let (mut d, _) = a.connected().await;
    let r = d
        .ok(json!({"type": "subscribe", "channel": channel, "since": {"offset": 3, "epoch": "stale"}}))
        .await;
    assert_eq!(r["recovered"], false, "{r}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_join_leave_across_nodes() {
    let redis = RedisServer::start().await;
    let (a, b, prefix) = two_nodes(&redis).await;
    let channel = "chat:p";
    let (mut x, rx) = a.connected().await;
    let (mut y, ry) = b.connected().await;
    let info_x = json!({"client": rx["result"]["client"], "user": ""});
    let info_y = json!({"client": ry["result"]["client"], "user": ""});
    x.ok(json!({"type": "subscribe", "channel": channel})).await;
    y.ok(json!({"type": "subscribe", "channel": channel})).await;
    // Y's join (node B) reaches X (node A).
    assert_eq!(
        next_presence_event(&mut x).await,
        json!({"type": "join", "channel": channel, "info": info_y})
    );
    let mut clients: Vec<Value> = Vec::new();
    for (hub, client) in [(&a, &mut x), (&b, &mut y)] {
        let p = client
            .ok(json!({"type": "presence", "channel": channel}))
            .await;
        clients.push(p.clone());
        let answer = http(
            hub.addr,
            "GET",
            &format!("/api/presence?channel={channel}"),
            &[],
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(clients[0], clients[1]);
    let mut expected = vec![info_x.clone(), info_y.clone()];
    expected.sort_by_key(|c| c["client"].as_str().unwrap().to_owned());
    assert_eq!(clients[0]["clients"], json!(expected));
    // Entries stay past their TTL (1.5 s) while their nodes refresh them.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let p = x.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p["clients"], json!(expected));
    // Y leaves (unsubscribes on node B): X hears it on node A.
    y.ok(json!({"type": "unsubscribe", "channel": channel}))
        .await;
    assert_eq!(
        next_presence_event(&mut x).await,
        json!({"type": "leave", "channel": channel, "info": info_y})
    );
    // A node that dies takes its clients out of presence: a third node's engine adds an
    // entry and goes away without removing it (nothing refreshes it any more).
    {
        let dead = redis.engine(&prefix).await;
        let ghost = ClientInfo {
            client: "ghost-1".into(),
            user: "g".into(),
            name: None,
        };
        dead.presence_add(channel, ghost).await.unwrap();
    }
    let ghost = json!({"client": "ghost-1", "user": "g"});
    assert_eq!(
        next_presence_event(&mut x).await,
        json!({"type": "join", "channel": channel, "info": ghost})
    );
    let p = x.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p["clients"].as_array().map(Vec::len), Some(2), "{p}");
    // After its TTL (1.5 s here) node A's sweep drops it and publishes the leave.
    let started = tokio::time::Instant::now();
    assert_eq!(
        next_presence_event(&mut x).await,
        json!({"type": "leave", "channel": channel, "info": ghost})
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let p = x.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p["clients"], json!([info_x]));
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_unavailable_then_recovered() {
    let mut redis = RedisServer::start().await;
    let hub = node(redis.engine(&unique_prefix()).await).await;
    let health = http(hub.addr, "GET", "/health", &[], None).await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(
        health.json(),
        json!({"status": "ok", "engine": "redis", "broker": "up"})
    );
    let channel = "news:o";
    let (mut subscriber, _) = hub.connected().await;
    let sub = subscriber
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let (mut publisher, _) = hub.connected().await;
    publisher
        .ok(json!({"type": "publish", "channel": channel, "payload": 1}))
        .await;
    assert_eq!(next_publication(&mut subscriber).await["offset"], 1);

    redis.kill();
    // The subscriber may have missed publications: closed to recover, not left open.
    assert_eq!(subscriber.closed_with().await, Some(1013));
    let started = tokio::time::Instant::now();
    publisher
        .err(
            json!({"type": "publish", "channel": channel, "payload": 2}),
            "unavailable",
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (mut late, _) = hub.connected().await;
    late.err(
        json!({"type": "subscribe", "channel": channel}),
        "unavailable",
    )
    .await;
    let health = http(hub.addr, "GET", "/health", &[], None).await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(
        health.json(),
        json!({"status": "degraded", "engine": "redis", "broker": "down"})
    );
    let api = http(
        hub.addr,
        "POST",
        "/api/publish",
        &[],
        Some(&json!({"channel": channel, "payload": 3}).to_string()),
    )
    .await;
    assert_eq!(api.status, 503, "{api:?}");
    assert_eq!(api.json()["error"]["code"], "unavailable");

    redis.restart().await;
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let health = http(hub.addr, "GET", "/health", &[], None).await;
        if health.status == 200 {
            assert_eq!(health.json()["broker"], "up");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{health:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The subscriber comes back and asks to recover: Redis lost the stream (a new
    // epoch), so it is told to reload rather than silently missing anything.
    let (mut back, _) = hub.connected().await;
    let r = back
        .ok(json!({"type": "subscribe", "channel": channel, "since": {"offset": 1, "epoch": sub["epoch"]}}))
        .await;
    assert_eq!(r["recovered"], false, "{r}");
    assert_ne!(r["epoch"], sub["epoch"]);
    let published = publisher
        .ok(json!({"type": "publish", "channel": channel, "payload": 4}))
        .await;
    assert_eq!(published["offset"], 1);
    assert_eq!(published["epoch"], r["epoch"]);
    let p = next_publication(&mut back).await;
    assert_eq!(p["payload"], 4);
    hub.stop().await;
}

/// `GET /api/channels` counts every node's subscribers ("counted across the cluster"):
/// the other nodes' as of their last report (every 300 ms here), this node's live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_channels_counts_across_nodes() {
    let redis = RedisServer::start().await;
    let (a, b, _) = two_nodes(&redis).await;
    let mut clients = Vec::new();
    for (hub, channel) in [(&a, "x"), (&a, "x"), (&b, "x"), (&b, "y")] {
        let (mut c, _) = hub.connected().await;
        c.ok(json!({"type": "subscribe", "channel": channel})).await;
        clients.push(c);
    }
    let expected = json!({"channels": [
        {"channel": "x", "subscribers": 3},
        {"channel": "y", "subscribers": 1},
    ]});
    let deadline = tokio::time::Instant::now() + STEP;
    for hub in [&a, &b] {
        loop {
            let answer = http(hub.addr, "GET", "/api/channels", &[], None).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            if answer.json() == expected {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // B's subscribers go: A's count follows B's next report.
    clients.truncate(2);
    let expected = json!({"channels": [{"channel": "x", "subscribers": 2}]});
    loop {
        let answer = http(a.addr, "GET", "/api/channels", &[], None).await;
        if answer.json() == expected {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// A connection's publishes are pipelined to the broker: request order kept (offsets,
/// answers, a refusal in its place, a history after them), and publishes sent just before
/// a close still happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_publishes_keep_request_order_on_redis() {
    let redis = RedisServer::start().await;
    let hub = fast_publish_node(Some(redis.engine(&unique_prefix()).await)).await;
    pipelined_publishes_keep_request_order(&hub).await;
}
