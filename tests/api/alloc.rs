//! Allocations per received and per sent message in steady state, counted by the
//! counting global allocator of this test binary (`tests/api.rs`). Counters are per
//! thread, so tests running in parallel do not disturb each other.
//!
//! Goals (issue: hot path): at most 1 allocation per received whole message (the payload
//! when it spans reads or fragments, none otherwise) and 0 per sent message.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wsengine::{Config, Connection, Event};

use crate::support::{masked, open_client, open_server};

/// Counts allocations (and reallocations, which may move) made by the current thread.
pub(crate) struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// Test-only unsafe: a `GlobalAlloc` impl cannot be written without it.
#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter is a const-initialised thread-local `Cell`, which
// never allocates, so counting cannot recurse into the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn big_config() -> Config {
    let mut c = Config::default();
    c.max_message_size = 64 << 20;
    c.max_frame_size = 64 << 20;
    c
}

/// Feeds `stream` in 64 KiB reads (as a driver would) and drops every event at once;
/// returns the number of data messages seen.
fn receive_all(conn: &mut Connection, stream: &[u8]) -> usize {
    let mut messages = 0;
    for chunk in stream.chunks(64 << 10) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let n = conn.recv(rest);
            rest = &rest[n..];
            while let Some(event) = conn.poll_event().unwrap() {
                if matches!(event, Event::Binary { .. } | Event::Text { .. }) {
                    messages += 1;
                }
            }
        }
    }
    messages
}

/// Allocations per received message once the connection is warm.
fn per_received_message(size: usize, text: bool, fragments: usize) -> f64 {
    let mut conn = open_server(big_config());
    let payload: Vec<u8> = if text {
        "ab".repeat(size / 2 + 1).into_bytes()[..size].to_vec()
    } else {
        vec![7; size]
    };
    let count = ((4 << 20) / size.max(1)).clamp(4, 2000);
    let mut stream = Vec::new();
    for _ in 0..count {
        let piece = size.div_ceil(fragments).max(1);
        let mut parts: Vec<&[u8]> = payload.chunks(piece).collect();
        if parts.is_empty() {
            parts.push(&[]);
        }
        for (i, part) in parts.iter().enumerate() {
            let opcode = match (i, text) {
                (0, true) => 1,
                (0, false) => 2,
                _ => 0,
            };
            stream.extend(masked(i + 1 == parts.len(), opcode, part));
        }
    }
    // Warm up: buffers reach their steady size.
    assert_eq!(receive_all(&mut conn, &stream), count);
    let before = allocations();
    assert_eq!(receive_all(&mut conn, &stream), count);
    (allocations() - before) as f64 / count as f64
}

/// Allocations per sent message once the connection is warm (transmit drained after
/// every 64 KiB, as a driver would).
fn per_sent_message(size: usize, client: bool) -> f64 {
    let mut conn = if client {
        open_client(big_config())
    } else {
        open_server(big_config())
    };
    let payload = vec![9u8; size];
    let count = ((4 << 20) / size.max(1)).clamp(4, 2000);
    let run = |conn: &mut Connection| {
        for _ in 0..count {
            conn.send_binary(&payload).unwrap();
            if conn.transmit_len() >= 64 << 10 {
                let n = conn.transmit_len();
                conn.advance_transmit(n);
            }
        }
        let n = conn.transmit_len();
        conn.advance_transmit(n);
    };
    run(&mut conn);
    let before = allocations();
    run(&mut conn);
    (allocations() - before) as f64 / count as f64
}

#[test]
fn received_messages_in_one_read_cost_no_allocation() {
    for size in [16, 125, 1024, 16 << 10] {
        for text in [false, true] {
            let per = per_received_message(size, text, 1);
            // The receive buffer is shared with the payloads handed out; a new one is
            // allocated about once per 64 KiB read, which is far below one per message.
            assert!(
                per < 0.2,
                "{size} B text={text}: {per} allocations per message"
            );
        }
    }
}

#[test]
fn received_messages_spanning_reads_or_fragments_cost_at_most_one_allocation() {
    for (size, fragments) in [(1 << 20, 1), (1 << 20, 16), (64 << 10, 4), (200 << 10, 1)] {
        let per = per_received_message(size, false, fragments);
        assert!(
            per <= 1.05,
            "{size} B in {fragments} fragments: {per} allocations per message"
        );
    }
}

#[test]
fn sent_messages_cost_no_allocation_in_steady_state() {
    for size in [16, 125, 1024, 16 << 10, 1 << 20] {
        for client in [false, true] {
            let per = per_sent_message(size, client);
            assert!(
                per < 0.01,
                "{size} B client={client}: {per} allocations per message"
            );
        }
    }
}
