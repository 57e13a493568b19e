//! Publish rate, channel and subscriber counts.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use wsengine_tokio::Message;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_burst_over_the_rate_is_limit_exceeded() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\npublish_rate = 5\n",
    ))
    .await;
    let (mut c, _) = hub.connected().await;
    for i in 0..5 {
        let r = c
            .ok(json!({"type": "publish", "channel": "r", "payload": i}))
            .await;
        assert_eq!(r["offset"], i + 1);
    }
    c.err(
        json!({"type": "publish", "channel": "r", "payload": 5}),
        "limit_exceeded",
    )
    .await;
    // The refused one was not published; other requests are not limited.
    let h = c
        .ok(json!({"type": "history", "channel": "r", "limit": 0}))
        .await;
    assert_eq!(h["offset"], 5);
    // The bucket refills at the rate.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = c
        .ok(json!({"type": "publish", "channel": "r", "payload": 6}))
        .await;
    assert_eq!(r["offset"], 6);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_twice_the_rate_closes_4004() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\npublish_rate = 5\n",
    ))
    .await;
    let (mut c, _) = hub.connected().await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(7);
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / 12));
    let (mut sent, mut ok, mut refused) = (0u64, 0u64, 0u64);
    let mut can_send = true;
    let code = loop {
        tokio::select! {
            _ = tick.tick(), if can_send => {
                sent += 1;
                let text = json!({"type": "publish", "id": sent, "channel": "r", "payload": sent}).to_string();
                if c.ws.send(Message::text(text)).await.is_err() {
                    can_send = false;
                }
            }
            message = c.ws.next() => match message {
                Some(Ok(Message::Text(t))) => {
                    let m: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                    match (m["type"].as_str(), m["error"]["code"].as_str()) {
                        (Some("reply"), _) => ok += 1,
                        (Some("error"), Some("limit_exceeded")) => refused += 1,
                        _ => panic!("unexpected {m}"),
                    }
                }
                Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code.0),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break c.ws.closed().map(|(code, _)| code.0),
            },
            () = tokio::time::sleep_until(deadline) => panic!("no close in 7 s: sent {sent}, ok {ok}, refused {refused}"),
        }
    };
    let took = started.elapsed();
    assert_eq!(code, Some(4004), "sent {sent}, ok {ok}, refused {refused}");
    assert!(took >= Duration::from_secs(4), "closed too early: {took:?}");
    assert!(ok >= 5 && refused > 0, "ok {ok}, refused {refused}");
    assert!(hub.metric("wsengine_hub_closes_total{code=\"4004\"}") >= 1.0);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_subscriber_limits() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\nmax_channels_per_client = 2\nmax_subscribers_per_channel = 1\n",
    ))
    .await;
    let (mut a, _) = hub.connected().await;
    a.ok(json!({"type": "subscribe", "channel": "one"})).await;
    a.ok(json!({"type": "subscribe", "channel": "two"})).await;
    a.err(
        json!({"type": "subscribe", "channel": "three"}),
        "limit_exceeded",
    )
    .await;
    // Room again after an unsubscribe.
    a.ok(json!({"type": "unsubscribe", "channel": "two"})).await;
    a.ok(json!({"type": "subscribe", "channel": "three"})).await;

    // One subscriber per channel: B is refused "one", then served once A leaves it.
    let (mut b, _) = hub.connected().await;
    b.err(
        json!({"type": "subscribe", "channel": "one"}),
        "limit_exceeded",
    )
    .await;
    b.ok(json!({"type": "subscribe", "channel": "two"})).await;
    a.ok(json!({"type": "unsubscribe", "channel": "one"})).await;
    b.ok(json!({"type": "subscribe", "channel": "one"})).await;
    // A disconnect frees the place too.
    drop(b);
    let (mut c, _) = hub.connected().await;
    let deadline = Instant::now() + STEP;
    loop {
        let (_, r) = c
            .request_all(json!({"type": "subscribe", "channel": "one"}))
            .await;
        if r["type"] == "reply" {
            break;
        }
        assert_eq!(r["error"]["code"], "limit_exceeded", "{r}");
        assert!(Instant::now() < deadline, "the place never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.stop().await;
}
