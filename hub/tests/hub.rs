//! The hub over real sockets on 127.0.0.1: one server per test, started in-process on a
//! free port, spoken to with wsengine's tokio client (and plain HTTP for the API).

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod hub_tests;
mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_subscribe_publish_round_trip() {
    let hub = TestHub::start(demo_config()).await;
    let mut alice = hub.client().await;
    let connected = alice.request(json!({"type": "connect"})).await;
    assert_eq!(connected["type"], "reply", "{connected}");
    assert_eq!(connected["result"]["user"], "");
    let mut bob = hub.client().await;
    bob.request(json!({"type": "connect"})).await;
    let sub = bob
        .request(json!({"type": "subscribe", "channel": "chat:lobby"}))
        .await;
    assert_eq!(sub["result"]["offset"], 0, "{sub}");
    // Raw text, so that the payload's spelling (key order, `1.50`) is the publisher's.
    alice
        .send_text(r#"{"type":"publish","id":7,"channel":"chat:lobby","payload":{"text": "hi", "n": 1.50}}"#)
        .await;
    let published = alice.recv().await;
    assert_eq!(published["id"], 7, "{published}");
    assert_eq!(published["result"]["offset"], 1, "{published}");
    let publication = bob.recv_text().await;
    assert_eq!(
        publication,
        format!(
            r#"{{"type":"publication","channel":"chat:lobby","offset":1,"epoch":{},"payload":{{"text": "hi", "n": 1.50}},"info":{{"client":{},"user":""}}}}"#,
            sub["result"]["epoch"], connected["result"]["client"]
        )
    );
    hub.stop().await;
}

mod http_api;

/// `[websocket] compression`: a client that offers permessage-deflate gets it (without
/// context takeover), and a publication large enough to compress arrives intact, the
/// same text for a client that did not offer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_negotiated_when_configured() {
    let mut config = demo_config();
    config.websocket.compression = true;
    let hub = TestHub::start(config).await;
    let mut ws_config = wsengine::Config::default();
    ws_config.deflate = Some(wsengine::extensions::deflate::DeflateConfig::default());
    let (ws, response) = wsengine_tokio::connect_with(hub.request_for("/ws"), ws_config)
        .await
        .expect("handshake");
    let offer = response
        .extensions()
        .iter()
        .find(|e| e.name == "permessage-deflate")
        .expect("permessage-deflate negotiated");
    assert!(
        offer
            .params
            .iter()
            .any(|p| p.name == "server_no_context_takeover"),
        "{offer}"
    );
    let mut compressed = TestClient { ws, next_id: 1 };
    compressed.connect(None).await;
    compressed
        .ok(json!({"type": "subscribe", "channel": "big"}))
        .await;
    let (mut plain, _) = hub.connected().await;
    plain
        .ok(json!({"type": "subscribe", "channel": "big"}))
        .await;
    let text = "all work and no play ".repeat(100);
    let (mut publisher, _) = hub.connected().await;
    publisher
        .ok(json!({"type": "publish", "channel": "big", "payload": {"text": text}}))
        .await;
    // `plain`'s join reaches `compressed` first (presence is on in the demo).
    let mut a = compressed.recv().await;
    while a["type"] != "publication" {
        a = compressed.recv().await;
    }
    let b = plain.recv_text().await;
    assert_eq!(a["payload"]["text"], text.as_str());
    assert_eq!(serde_json::from_str::<serde_json::Value>(&b).unwrap(), a);
    hub.stop().await;
}
