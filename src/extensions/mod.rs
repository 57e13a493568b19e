//! WebSocket extensions (RFC 6455 §9): the building blocks, kept out of the
//! [`Connection`](crate::Connection) state machine so that each can be tested on its own.
//!
//! - [`deflate`]: `permessage-deflate` (RFC 7692), negotiation and the per-message
//!   DEFLATE transform. Behind the `deflate` feature (on by default), which brings in
//!   `flate2` on the pure-Rust zlib-rs backend.

pub mod deflate;
