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
    TestHub::start_with(ServerOptions {
        config: demo_config(),
        demo: true,
        static_dir: None,
        tls: None,
        engine: Some(engine),
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
