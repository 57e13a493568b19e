//! What the engine suites (`redis.rs`, `nats.rs`) share: payloads, history options,
//! client infos and positions for engine-level checks, and a hub node on a given engine.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wsengine_hub::ServerOptions;
use wsengine_hub::engine::{ClientInfo, Engine, HistoryOptions, Payload, StreamPosition};

use crate::support::*;

pub(super) fn payload(n: u64) -> Payload {
    serde_json::value::to_raw_value(&json!({"n": n}))
        .unwrap()
        .into()
}

pub(super) fn opts(size: usize) -> HistoryOptions {
    HistoryOptions {
        history_size: size,
        history_ttl: Duration::from_secs(300),
    }
}

pub(super) fn info(client: &str) -> ClientInfo {
    ClientInfo {
        client: client.into(),
        user: "u".into(),
        name: None,
    }
}

pub(super) fn at(offset: u64, epoch: &Arc<str>) -> StreamPosition {
    StreamPosition {
        offset,
        epoch: epoch.clone(),
    }
}

/// A hub node (demo configuration, API open) on `engine`.
pub(super) async fn node(engine: Arc<dyn Engine>) -> TestHub {
    demo_node(demo_config(), Some(engine)).await
}

/// A hub node in demo mode with `config`, on `engine` (the memory engine when `None`).
async fn demo_node(
    config: wsengine_hub::config::Config,
    engine: Option<Arc<dyn Engine>>,
) -> TestHub {
    TestHub::start_with(ServerOptions {
        config,
        demo: true,
        static_dir: None,
        tls: None,
        engine,
    })
    .await
}

/// The next `publication` message (joins and leaves skipped).
pub(super) async fn next_publication(client: &mut TestClient) -> Value {
    loop {
        let message = client.recv().await;
        if message["type"] == "publication" {
            return message;
        }
    }
}

/// A hub node on `engine` (the memory engine when `None`) whose clients may publish
/// fast: the demo configuration with `publish_rate` 10,000.
pub(super) async fn fast_publish_node(engine: Option<Arc<dyn Engine>>) -> TestHub {
    let mut config = demo_config();
    config.limits.publish_rate = 10_000;
    demo_node(config, engine).await
}

/// Pipelined publishes (the session sends up to 32 to the engine before the first is
/// answered): sent back to back on one connection, they get offsets in request order and
/// their answers come in request order, a refused one (a bad channel name) in its place;
/// a `history` sent right after them sees them all; and publishes sent just before the
/// client closes (cleanly) still happen.
pub(super) async fn pipelined_publishes_keep_request_order(hub: &TestHub) {
    let channel = "pipe:order";
    let (mut subscriber, _) = hub.connected().await;
    let subscribed = subscriber
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let base = subscribed["offset"].as_u64().unwrap();
    let (mut publisher, _) = hub.connected().await;
    // Ids 100..=139 in one burst; 120 names a channel that does not exist by the rules.
    for id in 100..140u64 {
        let target = if id == 120 { "bad channel" } else { channel };
        let request = json!({"type": "publish", "id": id, "channel": target, "payload": {"n": id}});
        publisher.send_text(&request.to_string()).await;
    }
    publisher
        .send_text(
            &json!({"type": "history", "id": 200, "channel": channel, "limit": 100}).to_string(),
        )
        .await;
    let mut expected_offset = base;
    for id in (100..140u64).chain([200]) {
        let answer = loop {
            let message = publisher.recv().await;
            if message["type"] == "reply" || message["type"] == "error" {
                break message;
            }
        };
        assert_eq!(answer["id"], id, "answers in request order: {answer}");
        match id {
            120 => assert_eq!(answer["error"]["code"], "bad_request", "{answer}"),
            200 => {
                let history = answer["result"]["publications"].as_array().unwrap();
                let ns: Vec<u64> = history
                    .iter()
                    .filter_map(|p| p["payload"]["n"].as_u64())
                    .collect();
                let sent: Vec<u64> = (100..140).filter(|&id| id != 120).collect();
                assert!(
                    ns.ends_with(&sent),
                    "history sees every publish before it: {ns:?}"
                );
            }
            _ => {
                expected_offset += 1;
                assert_eq!(answer["result"]["offset"], expected_offset, "{answer}");
            }
        }
    }
    // The subscriber: offsets in order, each carrying the publish sent in that place.
    for id in (100..140u64).filter(|&id| id != 120) {
        let p = next_publication(&mut subscriber).await;
        assert_eq!(p["payload"]["n"], id, "{p}");
    }
    // Five publishes, then the client closes at once: they still happen.
    let (mut leaver, _) = hub.connected().await;
    for n in 0..5u64 {
        let request = json!({"type": "publish", "id": 10 + n, "channel": channel, "payload": {"n": 1000 + n}});
        leaver.send_text(&request.to_string()).await;
    }
    // A clean close: queued behind the publishes, then read to the server's Close.
    drop(leaver.ws.close(None));
    assert_eq!(leaver.closed_with().await, Some(1000));
    drop(leaver);
    for n in 0..5u64 {
        let p = next_publication(&mut subscriber).await;
        assert_eq!(p["payload"]["n"], 1000 + n, "{p}");
    }
}
