//! A client connection past its handshake, driven by received bytes and frames,
//! application calls, time and EOF (layout: fuzz/src/conn.rs). Invariants: no panic,
//! memory within the Config limits after every step, a fatal error is sticky and only
//! its Close goes out, and everything transmitted is a valid frame stream for a server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::Role;
use wsengine_fuzz::conn::{ConnInput, run};

fuzz_target!(|input: ConnInput| run(Role::Client, &input));
