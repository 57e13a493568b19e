//! JWT auth: connect, the query parameter, expiry while connected, refresh, the
//! `channels` claim and the namespaces' policies.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use wsengine_hub::config::Config;

use crate::support::*;

fn auth_config() -> Config {
    config(&format!(
        r#"
[auth]
jwt_secret = "{SECRET}"
allow_anonymous = false
[namespaces.chat]
subscribe = "token"
publish = "token"
[namespaces.feed]
publish = "api"
"#
    ))
}

fn good(sub: &str, exp_in: u64) -> String {
    token(&json!({"sub": sub, "exp": unix_now() + exp_in}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_needs_a_good_token() {
    let hub = TestHub::start(auth_config()).await;
    // No token: 4001.
    let mut c = hub.client().await;
    c.send_text(r#"{"type":"connect","id":1}"#).await;
    assert_eq!(c.closed_with().await, Some(4001));
    // Bad signature: 4001.
    let forged = token_with(&json!({"sub": "eve", "exp": unix_now() + 60}), "another");
    let mut c = hub.client().await;
    c.send_text(&json!({"type": "connect", "id": 1, "token": forged}).to_string())
        .await;
    assert_eq!(c.closed_with().await, Some(4001));
    // Garbage: 4001.
    let mut c = hub.client().await;
    c.send_text(r#"{"type":"connect","id":1,"token":"a.b.c"}"#)
        .await;
    assert_eq!(c.closed_with().await, Some(4001));
    // Expired: 4002 (exp == now is expired: no leeway).
    let expired = token(&json!({"sub": "alice", "exp": unix_now() - 1}));
    let mut c = hub.client().await;
    c.send_text(&json!({"type": "connect", "id": 1, "token": expired}).to_string())
        .await;
    assert_eq!(c.closed_with().await, Some(4002));
    // Good: user and expires_at from the token.
    let exp = unix_now() + 600;
    let t = token(&json!({"sub": "alice", "exp": exp}));
    let mut c = hub.client().await;
    let r = c.connect(Some(&t)).await;
    assert_eq!(r["result"]["user"], "alice");
    assert_eq!(r["result"]["expires_at"], exp);
    assert!(r["result"]["client"].is_string());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_query_parameter() {
    let hub = TestHub::start(auth_config()).await;
    let t = good("bob", 600);
    let mut c = hub
        .client_with(hub.request_for(&format!("/ws?token={t}")))
        .await
        .expect("handshake");
    let r = c.connect(None).await;
    assert_eq!(r["result"]["user"], "bob");
    c.ok(json!({"type": "presence", "channel": "room"})).await;
    // A bad token in the query: 4001 at connect.
    let mut c = hub
        .client_with(hub.request_for("/ws?token=x.y.z"))
        .await
        .expect("handshake");
    c.send_text(r#"{"type":"connect","id":1}"#).await;
    assert_eq!(c.closed_with().await, Some(4001));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp_passing_while_connected_closes_4002() {
    let hub = TestHub::start(auth_config()).await;
    let exp = unix_now() + 2;
    let mut c = hub.client().await;
    c.connect(Some(&token(&json!({"sub": "al", "exp": exp}))))
        .await;
    c.ok(json!({"type": "presence", "channel": "room"})).await;
    let started = Instant::now();
    assert_eq!(c.closed_with().await, Some(4002));
    assert!(started.elapsed() < Duration::from_secs(3), "late close");
    // Not before exp.
    assert!(unix_now() >= exp, "closed before exp");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_extends_and_refuses_bad_tokens() {
    let hub = TestHub::start(auth_config()).await;
    let first_exp = unix_now() + 2;
    let mut c = hub.client().await;
    c.connect(Some(&token(&json!({"sub": "al", "exp": first_exp}))))
        .await;
    // Refused refreshes keep the connection and its exp.
    c.err(
        json!({"type": "refresh", "token": good("mallory", 600)}),
        "permission_denied",
    )
    .await;
    c.err(json!({"type": "refresh", "token": "x.y.z"}), "unauthorized")
        .await;
    let forged = token_with(&json!({"sub": "al", "exp": unix_now() + 600}), "other");
    c.err(json!({"type": "refresh", "token": forged}), "unauthorized")
        .await;
    let expired = token(&json!({"sub": "al", "exp": unix_now() - 5}));
    c.err(json!({"type": "refresh", "token": expired}), "unauthorized")
        .await;
    // A good refresh before exp.
    let second_exp = unix_now() + 4;
    let r = c
        .ok(json!({"type": "refresh", "token": token(&json!({"sub": "al", "exp": second_exp}))}))
        .await;
    assert_eq!(r, json!({"expires_at": second_exp}));
    // Alive past the first exp.
    while unix_now() < first_exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.ok(json!({"type": "presence", "channel": "room"})).await;
    // ... and closed at the second.
    assert_eq!(c.closed_with().await, Some(4002));
    assert!(unix_now() >= second_exp);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_claim_and_namespace_policies() {
    let hub = TestHub::start(auth_config()).await;
    // Without the claim: the token namespace refuses subscribe, publish, presence, history.
    let mut plain = hub.client().await;
    plain.connect(Some(&good("pat", 600))).await;
    for ty in ["subscribe", "presence", "history"] {
        plain
            .err(
                json!({"type": ty, "channel": "chat:lobby"}),
                "permission_denied",
            )
            .await;
    }
    plain
        .err(
            json!({"type": "publish", "channel": "chat:lobby", "payload": 1}),
            "permission_denied",
        )
        .await;
    // Other namespaces are open to everyone connected.
    plain
        .ok(json!({"type": "subscribe", "channel": "other:x"}))
        .await;
    // With "chat:*": allowed.
    let t = token(&json!({"sub": "kim", "exp": unix_now() + 600, "channels": ["chat:*"]}));
    let mut kim = hub.client().await;
    kim.connect(Some(&t)).await;
    let sub = kim
        .ok(json!({"type": "subscribe", "channel": "chat:lobby"}))
        .await;
    assert_eq!(sub["offset"], 0);
    let r = kim
        .ok(json!({"type": "publish", "channel": "chat:lobby", "payload": "hi"}))
        .await;
    assert_eq!(r["offset"], 1);
    // An exact pattern does not reach other channels.
    let t = token(&json!({"sub": "lee", "exp": unix_now() + 600, "channels": ["chat:one"]}));
    let mut lee = hub.client().await;
    lee.connect(Some(&t)).await;
    lee.ok(json!({"type": "subscribe", "channel": "chat:one"}))
        .await;
    lee.err(
        json!({"type": "subscribe", "channel": "chat:two"}),
        "permission_denied",
    )
    .await;
    // publish = "api": no WebSocket publish, whatever the token says; subscribing is fine.
    let t = token(&json!({"sub": "root", "exp": unix_now() + 600, "channels": ["*"]}));
    let mut root = hub.client().await;
    root.connect(Some(&t)).await;
    root.ok(json!({"type": "subscribe", "channel": "feed:news"}))
        .await;
    root.err(
        json!({"type": "publish", "channel": "feed:news", "payload": 1}),
        "permission_denied",
    )
    .await;
    hub.stop().await;
}
