//! Presence, join and leave.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn sorted(mut clients: Vec<Value>) -> Vec<Value> {
    clients.sort_by_key(|c| c["client"].as_str().unwrap_or_default().to_owned());
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_and_presence() {
    let hub = TestHub::start(demo_config()).await;
    let (mut a, ra) = hub.connected().await;
    let (mut b, rb) = hub.connected().await;
    let info_a = json!({"client": ra["result"]["client"], "user": ""});
    let info_b = json!({"client": rb["result"]["client"], "user": ""});
    let channel = "chat:room";

    a.ok(json!({"type": "subscribe", "channel": channel})).await;
    // No join to the joiner itself: the next message A gets is its presence reply.
    let p = a.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p, json!({"clients": [info_a]}));

    b.ok(json!({"type": "subscribe", "channel": channel})).await;
    let join = a.recv().await;
    assert_eq!(
        join,
        json!({"type": "join", "channel": channel, "info": info_b})
    );
    // B hears no join of its own (nor of A, who was there before).
    let p = b.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(
        sorted(p["clients"].as_array().expect("clients").clone()),
        sorted(vec![info_a.clone(), info_b.clone()])
    );
    // Presence of a channel one is not subscribed to works too (the right to subscribe).
    let (mut c, _) = hub.connected().await;
    let p = c.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p["clients"].as_array().map(Vec::len), Some(2), "{p}");

    // Leave on unsubscribe.
    b.ok(json!({"type": "unsubscribe", "channel": channel}))
        .await;
    let leave = a.recv().await;
    assert_eq!(
        leave,
        json!({"type": "leave", "channel": channel, "info": info_b})
    );
    let p = a.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p, json!({"clients": [info_a]}));
    b.quiet_for(Duration::from_millis(50)).await;

    // Join again, then leave on disconnect.
    b.ok(json!({"type": "subscribe", "channel": channel})).await;
    assert_eq!(
        a.recv().await,
        json!({"type": "join", "channel": channel, "info": info_b})
    );
    drop(b);
    assert_eq!(
        a.recv().await,
        json!({"type": "leave", "channel": channel, "info": info_b})
    );
    let p = a.ok(json!({"type": "presence", "channel": channel})).await;
    assert_eq!(p, json!({"clients": [info_a]}));
    // A closing handshake (not a dropped socket) is a leave as well.
    let (mut d, rd) = hub.connected().await;
    d.ok(json!({"type": "subscribe", "channel": channel})).await;
    let info_d = json!({"client": rd["result"]["client"], "user": ""});
    assert_eq!(
        a.recv().await,
        json!({"type": "join", "channel": channel, "info": info_d})
    );
    d.ws.close(None).await.expect("close");
    assert_eq!(
        a.recv().await,
        json!({"type": "leave", "channel": channel, "info": info_d})
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_off_is_disabled_and_silent() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[namespaces.quiet]\npresence = false\n",
    ))
    .await;
    let (mut a, _) = hub.connected().await;
    let (mut b, _) = hub.connected().await;
    a.ok(json!({"type": "subscribe", "channel": "quiet:x"}))
        .await;
    b.ok(json!({"type": "subscribe", "channel": "quiet:x"}))
        .await;
    a.err(
        json!({"type": "presence", "channel": "quiet:x"}),
        "disabled",
    )
    .await;
    b.ok(json!({"type": "unsubscribe", "channel": "quiet:x"}))
        .await;
    // No join or leave in a namespace without presence.
    a.quiet_for(Duration::from_millis(100)).await;
    // Other namespaces keep it.
    a.ok(json!({"type": "presence", "channel": "loud:x"})).await;
    hub.stop().await;
}

/// `connect`'s `name` (an addition to the contract) is carried in `info`: presence,
/// join and publications; cut to 64 bytes; absent when none was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_name_is_carried_in_info() {
    let hub = TestHub::start(demo_config()).await;
    let mut a = hub.client().await;
    let ra = a.request(json!({"type": "connect", "name": "Ada"})).await;
    let mut b = hub.client().await;
    let long = "x".repeat(100);
    let rb = b.request(json!({"type": "connect", "name": long})).await;
    let channel = "chat:names";
    a.ok(json!({"type": "subscribe", "channel": channel})).await;
    b.ok(json!({"type": "subscribe", "channel": channel})).await;
    let info_b = json!({"client": rb["result"]["client"], "user": "", "name": "x".repeat(64)});
    assert_eq!(
        a.recv().await,
        json!({"type": "join", "channel": channel, "info": info_b})
    );
    let p = a.ok(json!({"type": "presence", "channel": channel})).await;
    let info_a = json!({"client": ra["result"]["client"], "user": "", "name": "Ada"});
    assert_eq!(
        sorted(p["clients"].as_array().expect("clients").clone()),
        sorted(vec![info_a.clone(), info_b])
    );
    a.ok(json!({"type": "publish", "channel": channel, "payload": 1}))
        .await;
    let publication = b.recv().await;
    assert_eq!(publication["info"], info_a, "{publication}");
    // Without a name, `info` has no `name` key at all.
    let (mut c, _) = hub.connected().await;
    c.ok(json!({"type": "subscribe", "channel": channel})).await;
    let join = b.recv().await;
    assert_eq!(join["type"], "join", "{join}");
    assert_eq!(keys(&join["info"]), vec!["client", "user"], "{join}");
    hub.stop().await;
}
