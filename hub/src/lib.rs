//! `wsengine hub`: the application server on top of the wsengine hosts, speaking the hub
//! protocol (`docs/HUB-PROTOCOL.md`): channels and namespaces, JWT auth, history with
//! offsets and epochs and recovery after reconnects, presence, slow-consumer and rate
//! limits, an HTTP API for backends and Prometheus metrics.
//!
//! Built in slices (issue #17). This crate is never inside the core: it sits on the
//! hosts.

pub mod auth;
pub mod config;
pub mod engine;
pub mod fallback;
pub mod http_api;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod session;

pub use server::{Hub, Server, ServerOptions};
