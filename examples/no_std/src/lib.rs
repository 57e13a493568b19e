//! wsengine's core in a `#![no_std]` + `alloc` program: a server connection answers a
//! client's handshake and echoes a message, with time from the host's tick counter and
//! no operating system anywhere. `wsengine_no_std_echo` returns 0 when the exchange went
//! as RFC 6455 says.
//!
//! The allocator and the panic handler are what a bare-metal program provides anyway;
//! here they are the smallest that work (a bump allocator over a static arena, and a
//! loop).
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use wsengine::{Accept, Config, Connection, Event, Instant};

/// A client's opening request and one masked text frame "Hello" (RFC 6455 §1.3, §5.7).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
/// The RFC's accept key for that request (§1.3).
const ACCEPT: &[u8] = b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The unmasked "Hello" a server sends back (§5.7).
const HELLO: &[u8] = b"\x81\x05Hello";

/// Runs the exchange; 0 on success, a positive step number where it went wrong.
#[unsafe(no_mangle)]
pub extern "C" fn wsengine_no_std_echo(now_ticks_ms: u64) -> u32 {
    let now = Instant::from_millis(now_ticks_ms);
    let mut conn = Connection::server(Config::default(), now);
    if conn.recv(REQUEST) != REQUEST.len() {
        return 1;
    }
    let mut echoed = false;
    loop {
        match conn.poll_event() {
            Ok(Some(Event::Request(_))) => {
                if conn.accept(Accept::new()).is_err() {
                    return 2;
                }
            }
            Ok(Some(Event::Text { data, last: true })) => {
                if data != "Hello" || conn.send_text(data.as_str()).is_err() {
                    return 3;
                }
                echoed = true;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return 4,
        }
    }
    let mut out = Vec::new();
    while !conn.poll_transmit().is_empty() {
        let n = conn.poll_transmit().len();
        out.extend_from_slice(conn.poll_transmit());
        conn.advance_transmit(n);
    }
    let has_accept = out.windows(ACCEPT.len()).any(|w| w == ACCEPT);
    if !echoed || !has_accept || !out.ends_with(HELLO) {
        return 5;
    }
    conn.handle_timeout(now + core::time::Duration::from_secs(1));
    0
}

const ARENA_SIZE: usize = 1 << 20;

/// Never frees: enough for one connection's short life.
struct Bump {
    arena: UnsafeCell<[u8; ARENA_SIZE]>,
    next: AtomicUsize,
}

// SAFETY: `next` hands out disjoint ranges of the arena atomically.
unsafe impl Sync for Bump {}

// SAFETY: every returned block lies inside the arena, is aligned as asked, and is never
// handed out twice (the cursor only moves forward).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.arena.get() as usize;
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + current).next_multiple_of(layout.align()) - base;
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= ARENA_SIZE => end,
                _ => return core::ptr::null_mut(),
            };
            match self.next.compare_exchange_weak(
                current,
                end,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (base + start) as *mut u8,
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    arena: UnsafeCell::new([0; ARENA_SIZE]),
    next: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
