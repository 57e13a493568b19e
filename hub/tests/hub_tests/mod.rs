//! The protocol suite (docs/HUB-PROTOCOL.md), one module per area, each test on its own
//! hub on a free port of 127.0.0.1.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod auth;
mod engine_fixtures;
mod fallback;
mod lifecycle;
mod limits;
mod nats;
mod presence;
mod protocol;
mod recovery;
mod redis;
mod slow_consumer;
mod upgrade;
