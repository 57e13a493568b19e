//! Integration tests of the public API: one test binary (`tests/api.rs` plus the modules
//! in `tests/api/`), which builds faster than one binary per file.
//!
//! Every test drives `Connection`s from bytes in memory with a fake clock: no sockets,
//! no sleeping. The hosts (mio/, tokio/, ffi/) test themselves over 127.0.0.1 in their
//! own crates.

// The tests take a base instant from the real clock once (`support::t0`) and add
// durations to it; the core itself never reads a clock.
#![allow(clippy::disallowed_methods)]
// A test reports failure by panicking: helpers outside `#[test]` functions unwrap too
// (clippy's allow-unwrap-in-tests covers only the test functions themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use wsengine_test_support as support;

#[path = "api/abuse.rs"]
mod abuse;
#[path = "api/alloc.rs"]
mod alloc;
/// Counts allocations per thread for `alloc`'s tests; forwards everything to `System`.
#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;
#[path = "api/chunking.rs"]
mod chunking;
#[path = "api/closing.rs"]
mod closing;
#[path = "api/conformance.rs"]
mod conformance;
#[path = "api/deflate.rs"]
mod deflate;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/regressions.rs"]
mod regressions;
#[path = "api/rfc_examples.rs"]
mod rfc_examples;
#[path = "api/roundtrip.rs"]
mod roundtrip;
#[path = "api/rules.rs"]
mod rules;
#[path = "api/timers.rs"]
mod timers;
