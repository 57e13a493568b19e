//! Messages (text, binary, fragmented at arbitrary points, pings interleaved) sent by a
//! client and a server `Connection` to each other through arbitrary read sizes arrive
//! equal and in order, in Whole and Streaming delivery (layout: fuzz/src/roundtrip.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine_fuzz::roundtrip::{RoundtripInput, run};

fuzz_target!(|input: RoundtripInput| run(&input));
