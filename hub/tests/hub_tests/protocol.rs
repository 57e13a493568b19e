//! Every message type and reply shape; what is malformed and what closes.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::engine_fixtures::{fast_publish_node, pipelined_publishes_keep_request_order};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_and_reply_shape() {
    let hub = TestHub::start(demo_config()).await;
    let mut c = hub.client().await;
    let connected = c.connect(None).await;
    assert_eq!(keys(&connected), ["id", "result", "type"], "{connected}");
    let r = &connected["result"];
    assert_eq!(
        keys(r),
        ["client", "expires_at", "ping_interval", "user"],
        "{r}"
    );
    assert!(r["client"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
    assert_eq!(r["user"], "");
    assert_eq!(r["ping_interval"], 25);
    assert!(r["expires_at"].is_null(), "{r}");
    let me = r["client"].clone();

    // subscribe without since: epoch and offset only.
    let sub = c
        .ok(json!({"type": "subscribe", "channel": "room:a"}))
        .await;
    assert_eq!(keys(&sub), ["epoch", "offset"], "{sub}");
    assert_eq!(sub["offset"], 0);
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    assert!(!epoch.is_empty());

    // publish: offset and epoch, then the publication to ourselves (a subscriber).
    let published = c
        .ok(json!({"type": "publish", "channel": "room:a", "payload": {"x": 1}}))
        .await;
    assert_eq!(published, json!({"offset": 1, "epoch": epoch}));
    let publication = c.recv().await;
    assert_eq!(
        publication,
        json!({"type": "publication", "channel": "room:a", "offset": 1, "epoch": epoch,
               "payload": {"x": 1}, "info": {"client": me, "user": ""}})
    );

    // presence: clients with client and user.
    let presence = c.ok(json!({"type": "presence", "channel": "room:a"})).await;
    assert_eq!(presence, json!({"clients": [{"client": me, "user": ""}]}));

    // history: publications (fields of a publication without type), epoch, offset.
    let history = c.ok(json!({"type": "history", "channel": "room:a"})).await;
    assert_eq!(
        history,
        json!({"publications": [{"channel": "room:a", "offset": 1, "epoch": epoch,
                                 "payload": {"x": 1}, "info": {"client": me, "user": ""}}],
               "epoch": epoch, "offset": 1})
    );

    // pong: no reply (the next message is the presence reply below).
    c.send_text(r#"{"type":"pong"}"#).await;
    c.ok(json!({"type": "presence", "channel": "room:a"})).await;

    // Subscribing twice is bad_request; the subscription stays.
    c.err(
        json!({"type": "subscribe", "channel": "room:a"}),
        "bad_request",
    )
    .await;

    // unsubscribe: {}; again (not subscribed): {} as well.
    let un = c
        .ok(json!({"type": "unsubscribe", "channel": "room:a"}))
        .await;
    assert_eq!(un, json!({}));
    let un = c
        .ok(json!({"type": "unsubscribe", "channel": "room:a"}))
        .await;
    assert_eq!(un, json!({}));
    let un = c
        .ok(json!({"type": "unsubscribe", "channel": "never:seen"}))
        .await;
    assert_eq!(un, json!({}));

    // Invalid channel names: bad_request, with the request's id.
    for channel in ["", "has space", "bad/slash", &"x".repeat(256)] {
        let e = c
            .err(
                json!({"type": "subscribe", "channel": channel}),
                "bad_request",
            )
            .await;
        assert!(e["id"].is_u64(), "{e}");
        c.err(
            json!({"type": "publish", "channel": channel, "payload": 1}),
            "bad_request",
        )
        .await;
    }
    // 255 bytes is still a name.
    c.ok(json!({"type": "history", "channel": "y".repeat(255), "limit": 0}))
        .await;

    // Unknown type with a readable id: unknown_type with that id.
    let e = c.err(json!({"type": "frobnicate"}), "unknown_type").await;
    assert_eq!(e["id"], c.next_id - 1);

    // Malformed JSON: bad_request with id null.
    c.send_text("{not json").await;
    let e = c.recv().await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["error"]["code"], "bad_request", "{e}");
    assert!(e["id"].is_null(), "{e}");
    // A publish without payload: bad_request, id readable.
    c.send_text(r#"{"type":"publish","id":900,"channel":"room:a"}"#)
        .await;
    let e = c.recv().await;
    assert_eq!(
        (&e["type"], &e["id"], &e["error"]["code"]),
        (&json!("error"), &json!(900), &json!("bad_request")),
        "{e}"
    );
    // A string id: malformed, id null.
    c.send_text(r#"{"type":"presence","id":"7","channel":"room:a"}"#)
        .await;
    let e = c.recv().await;
    assert_eq!(e["error"]["code"], "bad_request", "{e}");
    assert!(e["id"].is_null(), "{e}");

    // connect again: bad_request.
    c.err(json!({"type": "connect"}), "bad_request").await;

    // refresh where no key is configured: unauthorized.
    c.err(json!({"type": "refresh", "token": "x.y.z"}), "unauthorized")
        .await;

    // Replies come in the order requests arrived.
    for id in 1000..1005u64 {
        c.send_text(
            &json!({"type": "history", "id": id, "channel": "room:a", "limit": 0}).to_string(),
        )
        .await;
    }
    for id in 1000..1005u64 {
        let reply = c.recv().await;
        assert_eq!(reply["id"], id, "{reply}");
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_100_malformed_close_4005() {
    let hub = TestHub::start(demo_config()).await;
    let (mut c, _) = hub.connected().await;
    for i in 0..100 {
        // Alternate the kinds of malformed messages.
        let text = match i % 4 {
            0 => "not json".to_owned(),
            1 => "[1,2]".to_owned(),
            2 => r#"{"id":1}"#.to_owned(),
            _ => r#"{"type":"unknown_thing","id":5}"#.to_owned(),
        };
        c.send_text(&text).await;
    }
    for i in 0..100 {
        let e = c.recv().await;
        assert_eq!(e["type"], "error", "{i}: {e}");
    }
    // Well-formed but refused requests do not count.
    for _ in 0..5 {
        c.err(
            json!({"type": "subscribe", "channel": "bad channel"}),
            "bad_request",
        )
        .await;
    }
    c.ok(json!({"type": "presence", "channel": "ok"})).await;
    // The 101st malformed message: its error, then close 4005.
    c.send_text("nope").await;
    let e = c.recv().await;
    assert_eq!(e["error"]["code"], "bad_request", "{e}");
    assert_eq!(c.closed_with().await, Some(4005));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_before_connect_closes_4005() {
    let hub = TestHub::start(demo_config()).await;
    let firsts = [
        json!({"type": "subscribe", "id": 1, "channel": "a"}).to_string(),
        json!({"type": "publish", "id": 1, "channel": "a", "payload": 1}).to_string(),
        json!({"type": "pong"}).to_string(),
        "garbage".to_owned(),
        json!({"type": "connect"}).to_string(), // no id: malformed
    ];
    for first in firsts {
        let mut c = hub.client().await;
        c.send_text(&first).await;
        assert_eq!(c.closed_with().await, Some(4005), "after {first}");
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_closes_4005() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\nconnect_timeout = 1\n",
    ))
    .await;
    let started = Instant::now();
    let mut idle = hub.client().await;
    // A client that connects in time is not affected.
    let (mut good, _) = hub.connected().await;
    assert_eq!(idle.closed_with().await, Some(4005));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    good.ok(json!({"type": "presence", "channel": "a"})).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_closes_1003() {
    let hub = TestHub::start(demo_config()).await;
    let (mut c, _) = hub.connected().await;
    c.send_binary(br#"{"type":"presence","id":2,"channel":"a"}"#.to_vec())
        .await;
    assert_eq!(c.closed_with().await, Some(1003));
    // Before connect as well.
    let mut c = hub.client().await;
    c.send_binary(vec![1, 2, 3]).await;
    assert_eq!(c.closed_with().await, Some(1003));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_size_closes_1009() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\nmax_message_size = 1024\n",
    ))
    .await;
    let (mut c, _) = hub.connected().await;
    // Just under the limit: served.
    let pad = "p".repeat(900);
    c.ok(json!({"type": "publish", "channel": "a", "payload": pad}))
        .await;
    let big = json!({"type": "publish", "id": 50, "channel": "a", "payload": "q".repeat(2000)});
    c.send_text(&big.to_string()).await;
    assert_eq!(c.closed_with().await, Some(1009));
    hub.stop().await;
}

/// The memory engine answers a publish at once; the pipeline keeps the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_publishes_keep_request_order_in_memory() {
    let hub = fast_publish_node(None).await;
    pipelined_publishes_keep_request_order(&hub).await;
}
