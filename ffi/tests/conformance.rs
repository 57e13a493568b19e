//! The conformance vectors of `wsengine_test_support::vectors` (shared with the Rust hosts'
//! runners in `tests/api/`, `mio/tests/` and `tokio/tests/`) against the C ABI: an echo server driven only through the
//! `extern "C"` functions, as a C host would drive it (raw pointers, lengths, status
//! codes), after a handshake through `wsengine_create` and after one done elsewhere
//! (`wsengine_create_open`), with whole reads and reads of one byte.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed expectation is a failed test"
)]

use core::ptr::{null, null_mut};
use wsengine_test_support::vectors;

use wsengine_ffi::*;

use wsengine_event_kind::*;
use wsengine_status::*;

use wsengine_test_support::conformance::{EchoServer, run_in_memory};
use wsengine_test_support::vectors::{ACCEPT, Observed, REQUEST, Vector, run_all, vectors};

/// The echo server's configuration: the vectors' limits, the rest default.
fn config() -> wsengine_config {
    let mut config = core::mem::MaybeUninit::<wsengine_config>::uninit();
    // SAFETY: a valid pointer to writable memory for one config.
    let status = unsafe { wsengine_config_default(config.as_mut_ptr()) };
    assert_eq!(status, WSENGINE_OK);
    // SAFETY: wsengine_config_default returned OK, so it wrote the whole struct.
    let mut config = unsafe { config.assume_init() };
    config.max_frame_size = vectors::MAX_FRAME_SIZE;
    config.max_message_size = vectors::MAX_MESSAGE_SIZE;
    config.max_fragments = vectors::MAX_FRAGMENTS;
    config
}

/// A handle, destroyed on drop.
struct Conn(*mut wsengine_conn);

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: a live handle from wsengine_create, destroyed once.
        unsafe { wsengine_destroy(self.0) }
    }
}

/// How the connection is opened.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// wsengine_create, the RFC request, wsengine_accept.
    Handshake,
    /// wsengine_create_open: the handshake was done elsewhere.
    Open,
}

impl Conn {
    fn open(start: Start) -> Result<Self, String> {
        let config = config();
        let mut out = null_mut();
        let role = wsengine_role::WSENGINE_ROLE_SERVER as i32;
        let status = match start {
            // SAFETY: an initialised config, no request, a writable `out`.
            Start::Handshake => unsafe { wsengine_create(role, &config, null(), 0, &mut out) },
            // SAFETY: an initialised config, no deflate parameters, a writable `out`.
            Start::Open => unsafe { wsengine_create_open(role, &config, null(), 0, &mut out) },
        };
        if status != WSENGINE_OK {
            return Err(format!("create: {status:?}"));
        }
        let mut conn = Self(out);
        if let Start::Handshake = start {
            let (status, taken) = conn.recv_status(REQUEST);
            if (status, taken) != (WSENGINE_OK, REQUEST.len()) {
                return Err(format!("recv of the request: {status:?}, {taken}"));
            }
            let mut event = core::mem::MaybeUninit::<wsengine_event>::uninit();
            // SAFETY: live handle, writable event memory.
            let status = unsafe { wsengine_poll_event(conn.0, event.as_mut_ptr()) };
            // SAFETY: poll_event writes the event whatever it returns.
            let kind = unsafe { event.assume_init() }.kind;
            if (status, kind) != (WSENGINE_OK, WSENGINE_EVENT_REQUEST) {
                return Err(format!("expected the request, got {status:?} {kind:?}"));
            }
            // SAFETY: live handle; no subprotocol, no headers.
            let status = unsafe { wsengine_accept(conn.0, null(), 0, null(), 0) };
            if status != WSENGINE_OK {
                return Err(format!("accept: {status:?}"));
            }
            let head = String::from_utf8_lossy(&conn.transmit()).into_owned();
            if !head.starts_with("HTTP/1.1 101 ") || !head.contains(ACCEPT) {
                return Err(format!("unexpected response {head:?}"));
            }
        }
        Ok(conn)
    }

    fn recv_status(&mut self, data: &[u8]) -> (wsengine_status, usize) {
        let mut taken = 0;
        // SAFETY: live handle, `data.len()` readable bytes, writable `taken`.
        let status = unsafe { wsengine_recv(self.0, data.as_ptr(), data.len(), &mut taken) };
        (status, taken)
    }
}

impl EchoServer for Conn {
    fn recv(&mut self, data: &[u8]) -> Result<usize, String> {
        match self.recv_status(data) {
            (WSENGINE_OK | WSENGINE_AGAIN, taken) => Ok(taken),
            (status, _) => Err(format!("recv: {status:?}")),
        }
    }

    /// Polls every event, echoing text and binary messages straight from the event's
    /// pointers (valid until the next poll); returns whether anything happened.
    fn echo_events(&mut self, note: &mut String) -> bool {
        let mut any = false;
        loop {
            let mut event = core::mem::MaybeUninit::<wsengine_event>::uninit();
            // SAFETY: live handle, writable event memory.
            let status = unsafe { wsengine_poll_event(self.0, event.as_mut_ptr()) };
            // SAFETY: poll_event writes the event whatever it returns.
            let event = unsafe { event.assume_init() };
            match status {
                WSENGINE_OK => any = true,
                WSENGINE_AGAIN => return any,
                // Fatal and sticky: the Close frame is queued.
                _ => return true,
            }
            // The event's data: `event.len` readable bytes until the next poll.
            let (data, len) = (event.data, event.len);
            let sent = match event.kind {
                // SAFETY: live handle; `len` readable bytes at `data`.
                WSENGINE_EVENT_TEXT => unsafe { wsengine_send_text(self.0, data, len) },
                // SAFETY: as above.
                WSENGINE_EVENT_BINARY => unsafe { wsengine_send_binary(self.0, data, len) },
                _ => WSENGINE_OK,
            };
            if sent != WSENGINE_OK {
                note.push_str(&format!("echo refused: {sent:?}; "));
            }
        }
    }

    /// Everything queued for the transport.
    fn transmit(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let mut tx = wsengine_bytes {
                data: null(),
                len: 0,
            };
            // SAFETY: live handle, writable `tx`.
            let status = unsafe { wsengine_poll_transmit(self.0, &mut tx) };
            assert_eq!(status, WSENGINE_OK);
            if tx.len == 0 {
                return all;
            }
            // SAFETY: the library guarantees `tx.len` readable bytes at `tx.data` until
            // the next call on the handle.
            all.extend_from_slice(unsafe { core::slice::from_raw_parts(tx.data, tx.len) });
            // SAFETY: live handle.
            let status = unsafe { wsengine_advance_transmit(self.0, tx.len) };
            assert_eq!(status, WSENGINE_OK);
        }
    }

    fn should_close(&self) -> bool {
        // SAFETY: live handle.
        unsafe { wsengine_should_close_transport(self.0) == 1 }
    }
}

/// Feeds the vector's input in reads of at most `read_size` bytes, echoing after each.
fn run_c(vector: &Vector, start: Start, read_size: usize) -> Observed {
    run_in_memory(Conn::open(start), vector, read_size)
}

#[test]
fn conformance_c_abi_whole_reads() {
    run_all("C ABI, wsengine_create, whole reads", &vectors(), |v| {
        run_c(v, Start::Handshake, usize::MAX)
    });
    run_all(
        "C ABI, wsengine_create_open, whole reads",
        &vectors(),
        |v| run_c(v, Start::Open, usize::MAX),
    );
}

#[test]
fn conformance_c_abi_small_reads() {
    run_all("C ABI, wsengine_create, 1-byte reads", &vectors(), |v| {
        run_c(v, Start::Handshake, 1)
    });
    run_all(
        "C ABI, wsengine_create_open, 7-byte reads",
        &vectors(),
        |v| run_c(v, Start::Open, 7),
    );
}
