//! Conformance tests of the C ABI, calling the `extern "C"` functions exactly as a C host
//! would (raw pointers, lengths, status codes), through the crate's rlib: the RFC 6455
//! section 5.7 examples, rejection fixtures, the handshake, NULL and invalid arguments,
//! time, and a client/server round trip.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed expectation is a failed test"
)]
#![allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "tests: runs of C calls share one documented contract"
)]

use core::ptr::{null, null_mut};
use std::ffi::CStr;

use wsengine_ffi::*;
use wsengine_test_support::RFC_REQUEST;
use wsengine_test_support::vectors::{
    RFC_FRAGMENTED_HELLO, RFC_MASKED_HELLO, RFC_MASKED_PONG, RFC_UNMASKED_HELLO, RFC_UNMASKED_PING,
};

use wsengine_event_kind::*;
use wsengine_status::*;

const SEC: u64 = 1_000_000_000;

/// An event copied out of the handle (the C struct's pointers die at the next poll).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    kind: wsengine_event_kind,
    data: Vec<u8>,
    last: bool,
    clean: bool,
    code: u16,
}

fn ev(kind: wsengine_event_kind, data: &[u8]) -> Ev {
    Ev {
        kind,
        data: data.to_vec(),
        last: matches!(kind, WSENGINE_EVENT_TEXT | WSENGINE_EVENT_BINARY),
        clean: false,
        code: 0,
    }
}

fn closed(code: u16, clean: bool) -> Ev {
    Ev {
        kind: WSENGINE_EVENT_CLOSED,
        data: Vec::new(),
        last: false,
        clean,
        code,
    }
}

/// Copies `len` bytes at `data`, which the library promises are valid and non-NULL.
fn copy(data: *const u8, len: usize) -> Vec<u8> {
    assert!(!data.is_null(), "the library never hands out NULL");
    // SAFETY: the library guarantees `len` readable bytes at `data` until the next
    // poll_event / mutating call, and the copy happens before any.
    unsafe { core::slice::from_raw_parts(data, len) }.to_vec()
}

fn bytes(b: wsengine_bytes) -> Vec<u8> {
    copy(b.data, b.len)
}

fn default_config() -> wsengine_config {
    let mut config = core::mem::MaybeUninit::<wsengine_config>::uninit();
    // SAFETY: a valid pointer to writable memory for one config.
    let status = unsafe { wsengine_config_default(config.as_mut_ptr()) };
    assert_eq!(status, WSENGINE_OK);
    // SAFETY: wsengine_config_default returned OK, so it wrote the whole struct.
    unsafe { config.assume_init() }
}

/// A seeded test configuration, so client masks are reproducible.
fn test_config() -> wsengine_config {
    let mut c = default_config();
    c.rng_seed_set = 1;
    c.rng_seed = [7; 32];
    c
}

/// A handle, destroyed on drop; each method is one C call.
struct Conn(*mut wsengine_conn);

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: a live handle from wsengine_create, destroyed once.
        unsafe { wsengine_destroy(self.0) }
    }
}

impl Conn {
    fn create(
        role: wsengine_role,
        config: Option<&wsengine_config>,
        request: Option<&wsengine_client_request>,
        now: u64,
    ) -> Result<Self, wsengine_status> {
        let mut out: *mut wsengine_conn = core::ptr::dangling_mut(); // must be overwritten
        // SAFETY: valid or NULL pointers to initialised structs, and a writable `out`.
        let status = unsafe {
            wsengine_create(
                role as i32,
                config.map_or(null(), |c| c as *const _),
                request.map_or(null(), |r| r as *const _),
                now,
                &mut out,
            )
        };
        if status == WSENGINE_OK {
            assert!(!out.is_null());
            Ok(Self(out))
        } else {
            assert!(out.is_null(), "out is NULL after a failure");
            Err(status)
        }
    }

    /// wsengine_create_open: a connection whose handshake was done elsewhere.
    fn create_open(
        role: wsengine_role,
        config: Option<&wsengine_config>,
        deflate: Option<&wsengine_deflate_params>,
    ) -> Result<Self, wsengine_status> {
        let mut out: *mut wsengine_conn = core::ptr::dangling_mut(); // must be overwritten
        // SAFETY: valid or NULL pointers to initialised structs, and a writable `out`.
        let status = unsafe {
            wsengine_create_open(
                role as i32,
                config.map_or(null(), |c| c as *const _),
                deflate.map_or(null(), |d| d as *const _),
                0,
                &mut out,
            )
        };
        if status == WSENGINE_OK {
            assert!(!out.is_null());
            Ok(Self(out))
        } else {
            assert!(out.is_null(), "out is NULL after a failure");
            Err(status)
        }
    }

    /// wsengine_get_deflate_params.
    fn deflate_params(&self) -> (wsengine_status, wsengine_deflate_params) {
        let mut p = core::mem::MaybeUninit::<wsengine_deflate_params>::uninit();
        // SAFETY: live handle, writable (uninitialised) memory for the parameters.
        let status = unsafe { wsengine_get_deflate_params(self.0, p.as_mut_ptr()) };
        // SAFETY: the function writes the struct whenever the handle and pointer are valid.
        (status, unsafe { p.assume_init() })
    }

    fn server(config: &wsengine_config, now: u64) -> Self {
        Self::create(wsengine_role::WSENGINE_ROLE_SERVER, Some(config), None, now).expect("server")
    }

    fn client(config: &wsengine_config, url: &str, protocols: &[&str], now: u64) -> Self {
        let protos: Vec<wsengine_bytes> = protocols
            .iter()
            .map(|p| wsengine_bytes {
                data: p.as_ptr(),
                len: p.len(),
            })
            .collect();
        let request = wsengine_client_request {
            url: url.as_ptr(),
            url_len: url.len(),
            origin: b"http://example.com".as_ptr(),
            origin_len: 18,
            protocols: protos.as_ptr(),
            protocol_count: protos.len(),
            headers: null(),
            header_count: 0,
        };
        Self::create(
            wsengine_role::WSENGINE_ROLE_CLIENT,
            Some(config),
            Some(&request),
            now,
        )
        .expect("client")
    }

    fn recv(&mut self, data: &[u8]) -> (wsengine_status, usize) {
        let mut taken = usize::MAX;
        // SAFETY: live handle, `data.len()` readable bytes, writable `taken`.
        let s = unsafe { wsengine_recv(self.0, data.as_ptr(), data.len(), &mut taken) };
        (s, taken)
    }

    fn recv_all(&mut self, data: &[u8]) {
        assert_eq!(self.recv(data), (WSENGINE_OK, data.len()));
    }

    /// wsengine_recv_buf: the status and the room (its pointer is never NULL).
    fn recv_buf(&mut self) -> (wsengine_status, *mut u8, usize) {
        let mut buf = null_mut();
        let mut len = usize::MAX;
        // SAFETY: live handle, writable `buf` and `len`.
        let s = unsafe { wsengine_recv_buf(self.0, &mut buf, &mut len) };
        if matches!(s, WSENGINE_OK | WSENGINE_AGAIN) {
            assert!(!buf.is_null(), "the room is never NULL");
            assert_eq!(
                s == WSENGINE_AGAIN,
                len == 0,
                "AGAIN exactly when the room is empty"
            );
        }
        (s, buf, len)
    }

    fn commit_recv(&mut self, n: usize) -> wsengine_status {
        // SAFETY: live handle.
        unsafe { wsengine_commit_recv(self.0, n) }
    }

    /// "Reads" as much of `data` as the room wsengine_recv_buf offers into it, commits
    /// that and returns how much it was (0: the buffer is full).
    fn read_into(&mut self, data: &[u8]) -> usize {
        let (_, buf, len) = self.recv_buf();
        let n = len.min(data.len());
        // SAFETY: the library offered `len` >= `n` writable bytes at `buf`, valid until
        // the next call on the handle; `data` is ours and cannot overlap them.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), buf, n) };
        assert_eq!(self.commit_recv(n), WSENGINE_OK);
        n
    }

    fn eof(&mut self) {
        // SAFETY: live handle.
        assert_eq!(unsafe { wsengine_recv_eof(self.0) }, WSENGINE_OK);
    }

    fn poll(&mut self) -> Result<Option<Ev>, wsengine_status> {
        let mut e = core::mem::MaybeUninit::<wsengine_event>::uninit();
        // SAFETY: live handle and writable (uninitialised) event memory.
        let s = unsafe { wsengine_poll_event(self.0, e.as_mut_ptr()) };
        // SAFETY: poll_event writes the event whatever it returns (a non-NULL pointer).
        let e = unsafe { e.assume_init() };
        match s {
            WSENGINE_OK => Ok(Some(Ev {
                kind: e.kind,
                data: copy(e.data, e.len),
                last: e.last,
                clean: e.clean,
                code: e.close_code,
            })),
            WSENGINE_AGAIN => {
                assert_eq!(e.kind, WSENGINE_EVENT_NONE);
                Ok(None)
            }
            s => {
                assert_eq!(e.kind, WSENGINE_EVENT_NONE);
                Err(s)
            }
        }
    }

    /// Every event until AGAIN.
    fn events(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        while let Some(e) = self.poll().expect("no fatal error") {
            out.push(e);
        }
        out
    }

    /// Everything queued for the transport, written in pieces of at most `chunk` bytes.
    fn transmit_chunked(&mut self, chunk: usize) -> Vec<u8> {
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
                assert!(!tx.data.is_null());
                return all;
            }
            let n = tx.len.min(chunk);
            all.extend_from_slice(&copy(tx.data, n));
            // SAFETY: live handle.
            assert_eq!(unsafe { wsengine_advance_transmit(self.0, n) }, WSENGINE_OK);
        }
    }

    fn transmit(&mut self) -> Vec<u8> {
        self.transmit_chunked(usize::MAX)
    }

    fn send_text(&mut self, text: &[u8]) -> wsengine_status {
        // SAFETY: live handle, `text.len()` readable bytes.
        unsafe { wsengine_send_text(self.0, text.as_ptr(), text.len()) }
    }

    fn send_binary(&mut self, data: &[u8]) -> wsengine_status {
        // SAFETY: live handle, `data.len()` readable bytes.
        unsafe { wsengine_send_binary(self.0, data.as_ptr(), data.len()) }
    }

    fn ping(&mut self, data: &[u8]) -> wsengine_status {
        // SAFETY: live handle, `data.len()` readable bytes.
        unsafe { wsengine_ping(self.0, data.as_ptr(), data.len()) }
    }

    fn close(&mut self, code: u16, reason: &[u8]) -> wsengine_status {
        // SAFETY: live handle, `reason.len()` readable bytes.
        unsafe { wsengine_close(self.0, code, reason.as_ptr(), reason.len()) }
    }

    fn accept(&mut self, protocol: Option<&str>) -> wsengine_status {
        let (p, n) = protocol.map_or((null(), 0), |p| (p.as_ptr(), p.len()));
        // SAFETY: live handle, `n` readable bytes at `p` (or NULL), no headers.
        unsafe { wsengine_accept(self.0, p, n, null(), 0) }
    }

    fn state(&self) -> i32 {
        // SAFETY: live handle.
        unsafe { wsengine_get_state(self.0) }
    }

    fn should_close(&self) -> bool {
        // SAFETY: live handle.
        match unsafe { wsengine_should_close_transport(self.0) } {
            0 => false,
            1 => true,
            s => panic!("should_close_transport returned {s}"),
        }
    }

    fn wants_write(&self) -> bool {
        // SAFETY: live handle.
        unsafe { wsengine_wants_write(self.0) == 1 }
    }

    fn close_code(&self) -> u16 {
        // SAFETY: live handle.
        unsafe { wsengine_last_close_code(self.0) }
    }

    fn error_message(&self) -> String {
        // SAFETY: live handle; the string is valid until the next call on it.
        let p = unsafe { wsengine_last_error_message(self.0) };
        // SAFETY: the library returns a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    fn next_timeout(&mut self) -> (wsengine_status, u64) {
        let mut t = 0;
        // SAFETY: live handle, writable `t`.
        let s = unsafe { wsengine_next_timeout(self.0, &mut t) };
        (s, t)
    }

    fn handle_timeout(&mut self, now: u64) {
        // SAFETY: live handle.
        assert_eq!(unsafe { wsengine_handle_timeout(self.0, now) }, WSENGINE_OK);
    }
}

/// A client and a server with the handshake done over an in-memory "transport".
fn open_pair(config: &wsengine_config, now: u64) -> (Conn, Conn) {
    let mut client = Conn::client(config, "ws://example.com/chat", &["chat"], now);
    let mut server = Conn::server(config, now);
    let request = client.transmit();
    assert!(request.starts_with(b"GET /chat HTTP/1.1\r\n"));
    server.recv_all(&request);
    let events = server.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, WSENGINE_EVENT_REQUEST);
    assert_eq!(server.accept(Some("chat")), WSENGINE_OK);
    client.recv_all(&server.transmit());
    assert_eq!(
        client.events(),
        vec![Ev {
            kind: WSENGINE_EVENT_ACCEPTED,
            data: b"chat".to_vec(),
            last: false,
            clean: false,
            code: 0
        }]
    );
    assert_eq!(client.state(), wsengine_state::WSENGINE_STATE_OPEN as i32);
    assert_eq!(server.state(), wsengine_state::WSENGINE_STATE_OPEN as i32);
    (client, server)
}

/// Unmasks a frame the client sent (header of 2 bytes plus a 4-byte key, payload < 126).
/// An unmasked Close frame with `code` and `reason` (under 124 bytes), as a server sends
/// it: the core's automatic Closes carry the error's text as their reason.
fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut frame = vec![
        0x88,
        u8::try_from(2 + reason.len()).expect("a short reason"),
    ];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}

fn unmask_small(frame: &[u8]) -> (u8, Vec<u8>) {
    assert_eq!(frame[1] & 0x80, 0x80, "client frames are masked");
    let len = usize::from(frame[1] & 0x7f);
    assert!(len < 126);
    let key = &frame[2..6];
    let payload = frame[6..6 + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    (frame[0], payload)
}

// ---- RFC 6455 section 5.7 ----

#[test]
fn rfc_5_7_single_frame_unmasked_text_to_client() {
    let (mut client, _server) = open_pair(&test_config(), 0);
    client.recv_all(RFC_UNMASKED_HELLO);
    assert_eq!(client.events(), vec![ev(WSENGINE_EVENT_TEXT, b"Hello")]);
}

#[test]
fn rfc_5_7_single_frame_masked_text_to_server() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    server.recv_all(RFC_MASKED_HELLO);
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_TEXT, b"Hello")]);
}

#[test]
fn rfc_5_7_fragmented_unmasked_text_whole_and_streaming() {
    let frames = RFC_FRAGMENTED_HELLO;
    let (mut client, _server) = open_pair(&test_config(), 0);
    client.recv_all(frames);
    assert_eq!(client.events(), vec![ev(WSENGINE_EVENT_TEXT, b"Hello")]);

    let mut config = test_config();
    config.delivery = wsengine_delivery::WSENGINE_DELIVERY_STREAMING as i32;
    let (mut client, _server) = open_pair(&config, 0);
    client.recv_all(frames);
    let mut first = ev(WSENGINE_EVENT_TEXT, b"Hel");
    first.last = false;
    assert_eq!(client.events(), vec![first, ev(WSENGINE_EVENT_TEXT, b"lo")]);
}

#[test]
fn rfc_5_7_ping_and_masked_pong() {
    let (mut client, mut server) = open_pair(&test_config(), 0);
    // Unmasked Ping "Hello" to the client: the automatic Pong goes back, masked.
    client.recv_all(RFC_UNMASKED_PING);
    assert_eq!(client.events(), vec![ev(WSENGINE_EVENT_PING, b"Hello")]);
    let pong = client.transmit();
    assert_eq!(unmask_small(&pong), (0x8a, b"Hello".to_vec()));
    // The masked Pong of the RFC to the server.
    server.recv_all(RFC_MASKED_PONG);
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_PONG, b"Hello")]);
    assert!(server.transmit().is_empty(), "a Pong is not answered");
}

#[test]
fn rfc_5_7_256_bytes_and_64_kib_binary_in_one_unmasked_frame() {
    let (mut client, _server) = open_pair(&test_config(), 0);
    let payload: Vec<u8> = (0..=255u8).collect();
    let mut frame = vec![0x82, 0x7e, 0x01, 0x00];
    frame.extend_from_slice(&payload);
    client.recv_all(&frame);
    assert_eq!(client.events(), vec![ev(WSENGINE_EVENT_BINARY, &payload)]);

    let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251).to_le_bytes()[0]).collect();
    let mut frame = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
    frame.extend_from_slice(&payload);
    // Larger than the receive buffer (64 KiB): offered in pieces, as a host would.
    let mut rest = &frame[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let (status, taken) = client.recv(rest);
        assert!(status == WSENGINE_OK || status == WSENGINE_AGAIN);
        assert_eq!(status == WSENGINE_OK, taken == rest.len());
        rest = &rest[taken..];
        got.extend(client.events());
    }
    assert_eq!(got, vec![ev(WSENGINE_EVENT_BINARY, &payload)]);
}

#[test]
fn server_sends_the_rfc_frames_unmasked() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    assert_eq!(server.send_text(b"Hello"), WSENGINE_OK);
    assert_eq!(server.ping(b"Hello"), WSENGINE_OK);
    assert_eq!(
        server.transmit(),
        [
            0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
        ]
    );
}

// ---- rejection fixtures ----

#[test]
fn unmasked_frame_to_server_queues_close_1002() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    server.recv_all(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.close_code(), 1002);
    assert!(server.error_message().contains("unmasked"));
    // Sticky.
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.state(), wsengine_state::WSENGINE_STATE_FAILED as i32);
    assert!(!server.should_close(), "the Close frame is still queued");
    assert_eq!(
        server.transmit(),
        close_frame(1002, "unmasked frame from a client")
    );
    assert!(server.should_close());
    assert_eq!(server.send_text(b"late"), WSENGINE_CLOSED);
}

#[test]
fn invalid_utf8_to_server_queues_close_1007() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    // Masked with an all-zero key: the payload is as written. 0xff is never UTF-8.
    server.recv_all(&[0x81, 0x83, 0, 0, 0, 0, b'a', 0xff, b'b']);
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.close_code(), 1007);
    assert_eq!(
        server.transmit(),
        close_frame(1007, "invalid UTF-8 in a text message or close reason")
    );
    assert!(server.should_close());
}

#[test]
fn masked_frame_to_client_queues_masked_close_1002() {
    let (mut client, _server) = open_pair(&test_config(), 0);
    client.recv_all(&[0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1]);
    assert_eq!(client.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(client.close_code(), 1002);
    assert_eq!(
        unmask_small(&client.transmit()),
        (
            0x88,
            close_frame(1002, "masked frame from a server")[2..].to_vec()
        )
    );
}

#[test]
fn oversized_message_is_1009() {
    let mut config = test_config();
    config.max_message_size = 4;
    let (_client, mut server) = open_pair(&config, 0);
    server.recv_all(&[0x82, 0x85, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.close_code(), 1009);
    assert_eq!(
        server.transmit(),
        close_frame(1009, "message of 5+ bytes (max 4)")
    );
}

// ---- the handshake ----

#[test]
fn handshake_request_accessors_and_accept() {
    let mut server = Conn::server(&test_config(), 0);
    server.recv_all(RFC_REQUEST);
    let events = server.events();
    assert_eq!(events, vec![ev(WSENGINE_EVENT_REQUEST, b"/chat")]);
    let h = server.0;
    let mut out = wsengine_bytes {
        data: null(),
        len: 0,
    };
    // SAFETY: for every call in this block, a live handle and writable out-pointers;
    // names point to their length in readable bytes.
    unsafe {
        assert_eq!(wsengine_request_path(h, &mut out), WSENGINE_OK);
        assert_eq!(bytes(out), b"/chat");
        assert_eq!(wsengine_request_host(h, &mut out), WSENGINE_OK);
        assert_eq!(bytes(out), b"server.example.com");
        assert_eq!(wsengine_request_origin(h, &mut out), WSENGINE_OK);
        assert_eq!(bytes(out), b"http://example.com");
        let name = b"sec-websocket-VERSION";
        assert_eq!(
            wsengine_request_header(h, name.as_ptr(), name.len(), &mut out),
            WSENGINE_OK
        );
        assert_eq!(bytes(out), b"13");
        let name = b"X-Missing";
        assert_eq!(
            wsengine_request_header(h, name.as_ptr(), name.len(), &mut out),
            WSENGINE_NOT_FOUND
        );
        assert_eq!(out.len, 0);
        assert!(!out.data.is_null());
        let mut count = 0;
        assert_eq!(wsengine_request_protocol_count(h, &mut count), WSENGINE_OK);
        assert_eq!(count, 2);
        assert_eq!(wsengine_request_protocol(h, 1, &mut out), WSENGINE_OK);
        assert_eq!(bytes(out), b"superchat");
        assert_eq!(
            wsengine_request_protocol(h, 2, &mut out),
            WSENGINE_NOT_FOUND
        );
        assert_eq!(wsengine_request_header_count(h, &mut count), WSENGINE_OK);
        assert_eq!(count, 7);
        let mut header = core::mem::MaybeUninit::<wsengine_header>::uninit();
        assert_eq!(
            wsengine_request_header_at(h, 0, header.as_mut_ptr()),
            WSENGINE_OK
        );
        let header = header.assume_init();
        assert_eq!(copy(header.name, header.name_len), b"Host");
        assert_eq!(copy(header.value, header.value_len), b"server.example.com");
        let mut header = core::mem::MaybeUninit::<wsengine_header>::uninit();
        assert_eq!(
            wsengine_request_header_at(h, 7, header.as_mut_ptr()),
            WSENGINE_NOT_FOUND
        );
    }
    // A subprotocol that was not offered is refused; the request stays pending.
    assert_eq!(server.accept(Some("v2")), WSENGINE_INVALID_ARGUMENT);
    assert!(server.error_message().contains("v2"));
    let extra = wsengine_header {
        name: b"X-Server".as_ptr(),
        name_len: 8,
        value: b"wsengine".as_ptr(),
        value_len: 8,
    };
    let proto = b"chat";
    // SAFETY: live handle, readable protocol bytes and one valid header.
    let s = unsafe { wsengine_accept(h, proto.as_ptr(), proto.len(), &extra, 1) };
    assert_eq!(s, WSENGINE_OK);
    // The request is still readable until the next poll.
    // SAFETY: live handle, writable out.
    assert_eq!(unsafe { wsengine_request_path(h, &mut out) }, WSENGINE_OK);
    assert_eq!(bytes(out), b"/chat");
    let response = String::from_utf8(server.transmit()).expect("ASCII");
    assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    // RFC 6455 section 1.3's accept value for this key.
    assert!(response.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Protocol: chat\r\n"));
    assert!(response.contains("\r\nX-Server: wsengine\r\n"));
    assert!(response.ends_with("\r\n\r\n"));
    assert_eq!(server.state(), wsengine_state::WSENGINE_STATE_OPEN as i32);
    // The pending request is gone now.
    assert_eq!(server.accept(None), WSENGINE_INVALID_STATE);
    assert_eq!(server.poll(), Ok(None));
    // SAFETY: live handle, writable out.
    let status = unsafe { wsengine_request_path(h, &mut out) };
    assert_eq!(status, WSENGINE_INVALID_STATE);
}

#[test]
fn handshake_reject_with_status_header_and_body() {
    let mut server = Conn::server(&test_config(), 0);
    server.recv_all(RFC_REQUEST);
    assert_eq!(server.events()[0].kind, WSENGINE_EVENT_REQUEST);
    let header = wsengine_header {
        name: b"X-Reason".as_ptr(),
        name_len: 8,
        value: b"origin".as_ptr(),
        value_len: 6,
    };
    let body = b"forbidden";
    // SAFETY: live handle, one valid header, readable body.
    let s = unsafe { wsengine_reject(server.0, 403, &header, 1, body.as_ptr(), body.len()) };
    assert_eq!(s, WSENGINE_OK);
    let response = String::from_utf8(server.transmit()).expect("ASCII");
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nX-Reason: origin\r\n"));
    assert!(response.contains("\r\nContent-Length: 9\r\n"));
    assert!(response.ends_with("\r\n\r\nforbidden"));
    assert_eq!(server.state(), wsengine_state::WSENGINE_STATE_CLOSED as i32);
    assert!(server.should_close());
    assert_eq!(server.send_text(b"x"), WSENGINE_CLOSED);
}

#[test]
fn reject_with_invalid_status_is_refused_and_request_stays_pending() {
    let mut server = Conn::server(&test_config(), 0);
    server.recv_all(RFC_REQUEST);
    server.events();
    for status in [0, 101, 600] {
        // SAFETY: live handle, no headers, no body.
        let s = unsafe { wsengine_reject(server.0, status, null(), 0, null(), 0) };
        assert_eq!(s, WSENGINE_INVALID_ARGUMENT, "{status}");
    }
    assert_eq!(server.accept(None), WSENGINE_OK);
}

#[test]
fn bad_request_fails_the_handshake_with_426() {
    let mut server = Conn::server(&test_config(), 0);
    let request = String::from_utf8(RFC_REQUEST.to_vec())
        .expect("ASCII")
        .replace("Version: 13", "Version: 8");
    server.recv_all(request.as_bytes());
    assert_eq!(server.poll(), Err(WSENGINE_HANDSHAKE_FAILED));
    assert_eq!(server.close_code(), 0, "no close code before the handshake");
    let response = String::from_utf8(server.transmit()).expect("ASCII");
    assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
    assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    assert!(server.should_close());
}

#[test]
fn client_reads_response_headers() {
    let config = test_config();
    let mut client = Conn::client(&config, "ws://example.com/chat", &["chat"], 0);
    let mut server = Conn::server(&config, 0);
    server.recv_all(&client.transmit());
    server.events();
    assert_eq!(server.accept(Some("chat")), WSENGINE_OK);
    client.recv_all(&server.transmit());
    assert_eq!(client.poll().expect("ok").expect("event").data, b"chat");
    let mut out = wsengine_bytes {
        data: null(),
        len: 0,
    };
    let name = b"upgrade";
    // SAFETY: live handle, readable name, writable out.
    let s = unsafe { wsengine_response_header(client.0, name.as_ptr(), name.len(), &mut out) };
    assert_eq!(s, WSENGINE_OK);
    assert_eq!(bytes(out), b"websocket");
}

// ---- NULL and invalid arguments ----

#[test]
fn null_handle_is_refused_everywhere() {
    let h: *mut wsengine_conn = null_mut();
    let mut ev = core::mem::MaybeUninit::<wsengine_event>::uninit();
    let mut b = wsengine_bytes {
        data: null(),
        len: 0,
    };
    let mut n = 0usize;
    let mut t = 0u64;
    let mut hd = core::mem::MaybeUninit::<wsengine_header>::uninit();
    let inv = WSENGINE_INVALID_ARGUMENT;
    // SAFETY: NULL handles are part of every function's contract (refused, not read);
    // the other pointers are valid.
    unsafe {
        assert_eq!(wsengine_recv(h, b"x".as_ptr(), 1, &mut n), inv);
        assert_eq!(wsengine_recv_eof(h), inv);
        let mut room = null_mut();
        assert_eq!(wsengine_recv_buf(h, &mut room, &mut n), inv);
        assert_eq!(wsengine_commit_recv(h, 0), inv);
        assert_eq!(wsengine_handle_timeout(h, 0), inv);
        assert_eq!(wsengine_next_timeout(h, &mut t), inv);
        assert_eq!(wsengine_poll_event(h, ev.as_mut_ptr()), inv);
        assert_eq!(wsengine_request_path(h, &mut b), inv);
        assert_eq!(wsengine_request_host(h, &mut b), inv);
        assert_eq!(wsengine_request_origin(h, &mut b), inv);
        assert_eq!(wsengine_request_header(h, b"a".as_ptr(), 1, &mut b), inv);
        assert_eq!(wsengine_request_header_count(h, &mut n), inv);
        assert_eq!(wsengine_request_header_at(h, 0, hd.as_mut_ptr()), inv);
        assert_eq!(wsengine_request_protocol_count(h, &mut n), inv);
        assert_eq!(wsengine_request_protocol(h, 0, &mut b), inv);
        assert_eq!(wsengine_response_header(h, b"a".as_ptr(), 1, &mut b), inv);
        assert_eq!(wsengine_accept(h, null(), 0, null(), 0), inv);
        assert_eq!(wsengine_reject(h, 403, null(), 0, null(), 0), inv);
        assert_eq!(wsengine_send_text(h, b"x".as_ptr(), 1), inv);
        assert_eq!(wsengine_send_binary(h, b"x".as_ptr(), 1), inv);
        assert_eq!(wsengine_send_fragment(h, 1, b"x".as_ptr(), 1, 1), inv);
        assert_eq!(wsengine_ping(h, null(), 0), inv);
        assert_eq!(wsengine_pong(h, null(), 0), inv);
        assert_eq!(wsengine_close(h, 1000, null(), 0), inv);
        assert_eq!(wsengine_poll_transmit(h, &mut b), inv);
        assert_eq!(wsengine_poll_transmit_segments(h, &mut b, 1, &mut n), inv);
        assert_eq!(wsengine_advance_transmit(h, 0), inv);
        assert_eq!(wsengine_recv_capacity(h, &mut n), inv);
        assert_eq!(wsengine_get_state(h), inv as i32);
        assert_eq!(wsengine_wants_write(h), inv as i32);
        assert_eq!(wsengine_should_close_transport(h), inv as i32);
        assert_eq!(wsengine_is_send_blocked(h), inv as i32);
        assert_eq!(wsengine_last_close_code(h), 0);
        assert_eq!(
            CStr::from_ptr(wsengine_last_error_message(h)).to_bytes(),
            b"NULL handle"
        );
        let mut p = core::mem::MaybeUninit::<wsengine_deflate_params>::uninit();
        assert_eq!(wsengine_get_deflate_params(h, p.as_mut_ptr()), inv);
        wsengine_destroy(h);
        assert_eq!(wsengine_config_default(null_mut()), inv);
    }
}

#[test]
fn null_pointers_with_lengths_and_null_outputs_are_refused() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    let h = server.0;
    let inv = WSENGINE_INVALID_ARGUMENT;
    // SAFETY: a live handle; the NULL pointers are refused by contract, never read.
    unsafe {
        assert_eq!(wsengine_recv(h, null(), 5, null_mut()), inv);
        assert_eq!(wsengine_recv(h, null(), 0, null_mut()), WSENGINE_OK);
        assert_eq!(wsengine_send_text(h, null(), 3), inv);
        assert_eq!(wsengine_send_binary(h, null(), 3), inv);
        assert_eq!(wsengine_ping(h, null(), 1), inv);
        assert_eq!(wsengine_close(h, 1000, null(), 2), inv);
        assert_eq!(wsengine_poll_event(h, null_mut()), inv);
        assert_eq!(wsengine_poll_transmit(h, null_mut()), inv);
        assert_eq!(wsengine_next_timeout(h, null_mut()), inv);
        assert_eq!(wsengine_recv_capacity(h, null_mut()), inv);
        let mut n = 0;
        let mut room = null_mut();
        assert_eq!(wsengine_recv_buf(h, null_mut(), &mut n), inv);
        assert_eq!(wsengine_recv_buf(h, &mut room, null_mut()), inv);
        assert_eq!(wsengine_commit_recv(h, 0), inv, "no room was offered");
        assert_eq!(
            wsengine_poll_transmit_segments(h, null_mut(), 4, &mut n),
            inv
        );
        assert_eq!(
            wsengine_poll_transmit_segments(h, null_mut(), 0, &mut n),
            WSENGINE_OK
        );
        assert_eq!(n, 0);
        // Empty messages with NULL data are fine.
        assert_eq!(wsengine_send_binary(h, null(), 0), WSENGINE_OK);
        assert_eq!(wsengine_send_text(h, null(), 0), WSENGINE_OK);
    }
    assert_eq!(server.transmit(), [0x82, 0x00, 0x81, 0x00]);
    // A refused poll_event with a NULL out-pointer does not consume the event.
    server.recv_all(&[0x82, 0x81, 0, 0, 0, 0, 9]);
    // SAFETY: live handle; NULL event refused.
    assert_eq!(unsafe { wsengine_poll_event(h, null_mut()) }, inv);
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_BINARY, &[9])]);
}

#[test]
fn invalid_values_are_refused_and_leave_the_connection_usable() {
    let (mut client, mut server) = open_pair(&test_config(), 0);
    let inv = WSENGINE_INVALID_ARGUMENT;
    assert_eq!(server.send_text(b"a\xffb"), inv);
    assert!(
        server.error_message().to_lowercase().contains("utf-8"),
        "{}",
        server.error_message()
    );
    assert_eq!(server.send_text(b"\xe2\x82"), inv, "truncated code point");
    assert_eq!(server.ping(&[0; 126]), inv);
    assert_eq!(server.ping(&[0; 125]), WSENGINE_OK);
    assert_eq!(server.close(1005, b""), inv);
    assert_eq!(server.close(999, b""), inv);
    assert_eq!(server.close(1000, &[b'x'; 124]), inv);
    assert_eq!(server.close(1000, b"\xff"), inv);
    // SAFETY: live handle; kind 9 is no message kind.
    let status = unsafe { wsengine_send_fragment(server.0, 9, b"x".as_ptr(), 1, 1) };
    assert_eq!(status, inv);
    // SAFETY: live handle; more bytes than are queued.
    let status = unsafe { wsengine_advance_transmit(server.0, 1_000_000) };
    assert_eq!(status, inv);
    // SAFETY: live handle, no pending request.
    let status = unsafe { wsengine_accept(server.0, null(), 0, null(), 0) };
    assert_eq!(status, WSENGINE_INVALID_STATE);
    let mut out = wsengine_bytes {
        data: null(),
        len: 0,
    };
    // The request stayed current after the accept, until this poll.
    // SAFETY: live handle, writable out.
    let status = unsafe { wsengine_request_origin(server.0, &mut out) };
    assert_eq!(status, WSENGINE_OK);
    assert_eq!(server.poll(), Ok(None));
    // SAFETY: live handle, writable out; the current event is no request.
    let status = unsafe { wsengine_request_origin(server.0, &mut out) };
    assert_eq!(status, WSENGINE_INVALID_STATE);
    // Still works: the refused calls changed nothing.
    assert_eq!(server.send_text("héllo".as_bytes()), WSENGINE_OK);
    client.recv_all(&server.transmit());
    let events = client.events();
    assert_eq!(events[0].kind, WSENGINE_EVENT_PING);
    assert_eq!(events[1], ev(WSENGINE_EVENT_TEXT, "héllo".as_bytes()));
}

#[test]
fn text_fragments_may_split_code_points_but_must_end_valid() {
    let (mut client, mut server) = open_pair(&test_config(), 0);
    let text = wsengine_message_kind::WSENGINE_MESSAGE_TEXT as i32;
    let binary = wsengine_message_kind::WSENGINE_MESSAGE_BINARY as i32;
    // SAFETY: live handle and readable fragments.
    unsafe {
        assert_eq!(
            wsengine_send_fragment(server.0, text, b"h\xc3".as_ptr(), 2, 0),
            WSENGINE_OK
        );
        assert_eq!(
            wsengine_send_fragment(server.0, binary, b"x".as_ptr(), 1, 1),
            WSENGINE_INVALID_STATE
        );
        assert_eq!(server.send_text(b"x"), WSENGINE_INVALID_STATE);
        assert_eq!(
            wsengine_send_fragment(server.0, text, b"\xa9".as_ptr(), 1, 1),
            WSENGINE_OK
        );
    }
    client.recv_all(&server.transmit());
    assert_eq!(
        client.events(),
        vec![ev(WSENGINE_EVENT_TEXT, "hé".as_bytes())]
    );
}

#[test]
fn create_refuses_bad_roles_configs_and_requests() {
    let inv: Result<(), _> = Err(WSENGINE_INVALID_ARGUMENT);
    let server = wsengine_role::WSENGINE_ROLE_SERVER;
    let client = wsengine_role::WSENGINE_ROLE_CLIENT;
    let config = test_config();
    for role in [0, 3, -1] {
        let mut out = null_mut();
        // SAFETY: valid pointers; the role is checked.
        let s = unsafe { wsengine_create(role, null(), null(), 0, &mut out) };
        assert_eq!(s, WSENGINE_INVALID_ARGUMENT, "role {role}");
        assert!(out.is_null());
    }
    // SAFETY: a NULL out-pointer is refused.
    let s = unsafe { wsengine_create(server as i32, null(), null(), 0, null_mut()) };
    assert_eq!(s, WSENGINE_INVALID_ARGUMENT);
    // NULL config: the defaults.
    assert!(Conn::create(server, None, None, 0).is_ok());

    let mut c = config;
    c.struct_size = 0;
    assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());
    let mut c = config;
    c.struct_size = size_of::<wsengine_config>() - 1;
    assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());
    let mut c = config;
    c.delivery = 7;
    assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());
    let mut c = config;
    c.keepalive_interval_ns = SEC;
    c.keepalive_timeout_ns = 0;
    assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());

    let url = "ws://example.com/";
    let mut request = wsengine_client_request {
        url: url.as_ptr(),
        url_len: url.len(),
        origin: null(),
        origin_len: 0,
        protocols: null(),
        protocol_count: 0,
        headers: null(),
        header_count: 0,
    };
    assert!(Conn::create(client, Some(&config), Some(&request), 0).is_ok());
    assert_eq!(
        Conn::create(client, Some(&config), None, 0).err(),
        inv.err()
    );
    assert_eq!(
        Conn::create(server, Some(&config), Some(&request), 0).err(),
        inv.err()
    );
    for bad in [
        "http://example.com/",
        "ws://",
        "ws://a/#frag",
        "ws://h\u{e9}/x\u{0}",
    ] {
        request.url = bad.as_ptr();
        request.url_len = bad.len();
        assert_eq!(
            Conn::create(client, Some(&config), Some(&request), 0).err(),
            inv.err(),
            "{bad}"
        );
    }
    request.url = null();
    request.url_len = 5;
    assert_eq!(
        Conn::create(client, Some(&config), Some(&request), 0).err(),
        inv.err()
    );
    request.url = url.as_ptr();
    request.url_len = url.len();
    let bad_protocol = wsengine_bytes {
        data: b"a b".as_ptr(),
        len: 3,
    };
    request.protocols = &bad_protocol;
    request.protocol_count = 1;
    assert_eq!(
        Conn::create(client, Some(&config), Some(&request), 0).err(),
        inv.err()
    );
    request.protocols = null();
    assert_eq!(
        Conn::create(client, Some(&config), Some(&request), 0).err(),
        inv.err(),
        "NULL protocols with a count"
    );
}

#[test]
fn library_information() {
    assert_eq!(wsengine_abi_version(), WSENGINE_ABI_VERSION);
    // SAFETY: static NUL-terminated strings.
    unsafe {
        assert_eq!(
            CStr::from_ptr(wsengine_version()).to_str(),
            Ok(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            CStr::from_ptr(wsengine_status_name(WSENGINE_BLOCKED as i32)).to_bytes(),
            b"WSENGINE_BLOCKED"
        );
        assert_eq!(
            CStr::from_ptr(wsengine_status_name(12345)).to_bytes(),
            b"WSENGINE_UNKNOWN"
        );
    }
    let c = default_config();
    assert_eq!(c.struct_size, size_of::<wsengine_config>());
    assert_eq!(c.max_message_size, 16 << 20);
    assert_eq!(c.handshake_timeout_ns, 10 * SEC);
    assert_eq!(c.close_timeout_ns, 5 * SEC);
    // Keepalive is on by default (the core's Config::default, issue 14).
    assert_eq!(c.keepalive_interval_ns, 30 * SEC);
    assert_eq!(c.keepalive_timeout_ns, 10 * SEC);
    assert_eq!(c.auto_pong, 1);
    assert_eq!(
        c.delivery,
        wsengine_delivery::WSENGINE_DELIVERY_WHOLE as i32
    );
}

// ---- time ----

#[test]
fn handshake_timeout_on_the_callers_clock() {
    // An arbitrary origin: the handle only uses differences.
    let t0 = 123_456_789_000;
    let mut server = Conn::server(&test_config(), t0);
    assert_eq!(server.next_timeout(), (WSENGINE_OK, t0 + 10 * SEC));
    server.handle_timeout(t0 + 10 * SEC - 1);
    assert_eq!(server.poll(), Ok(None));
    server.handle_timeout(t0 + 10 * SEC);
    assert_eq!(server.poll(), Err(WSENGINE_TIMEOUT));
    assert_eq!(server.close_code(), 0);
    assert!(server.should_close());
    assert!(server.transmit().is_empty(), "nothing is sent on a timeout");
    assert_eq!(server.next_timeout(), (WSENGINE_AGAIN, u64::MAX));
}

#[test]
fn no_timer_when_timeouts_are_off() {
    let mut config = test_config();
    config.handshake_timeout_ns = 0;
    let mut server = Conn::server(&config, 5);
    assert_eq!(server.next_timeout(), (WSENGINE_AGAIN, u64::MAX));
}

#[test]
fn time_before_creation_counts_as_creation() {
    let mut server = Conn::server(&test_config(), 50 * SEC);
    server.handle_timeout(0);
    assert_eq!(server.poll(), Ok(None));
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 60 * SEC));
}

#[test]
fn keepalive_pings_then_times_out_with_1006() {
    let mut config = test_config();
    config.keepalive_interval_ns = SEC;
    config.keepalive_timeout_ns = 2 * SEC;
    let t0 = 7;
    let (_client, mut server) = open_pair(&config, t0);
    // The accept started the keepalive timer without a time of its own: it is due at
    // once, and starts from the time handed to wsengine_handle_timeout.
    assert_eq!(server.next_timeout(), (WSENGINE_OK, t0));
    server.handle_timeout(t0);
    assert_eq!(server.next_timeout(), (WSENGINE_OK, t0 + SEC));
    // The first check sees the handshake's bytes as activity; the second pings.
    server.handle_timeout(t0 + SEC);
    assert!(server.transmit().is_empty());
    assert_eq!(server.next_timeout(), (WSENGINE_OK, t0 + 2 * SEC));
    server.handle_timeout(t0 + 2 * SEC);
    assert_eq!(server.poll(), Ok(None));
    let ping = server.transmit();
    assert_eq!(ping[0], 0x89, "a keepalive Ping");
    assert_eq!(server.next_timeout(), (WSENGINE_OK, t0 + 4 * SEC));
    server.handle_timeout(t0 + 4 * SEC - 1);
    assert_eq!(server.poll(), Ok(None));
    server.handle_timeout(t0 + 4 * SEC);
    assert_eq!(server.poll(), Err(WSENGINE_TIMEOUT));
    assert_eq!(server.close_code(), 1006);
    assert!(server.should_close());
}

#[test]
fn close_timeout_ends_an_unanswered_close_with_1006() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    assert_eq!(server.close(1001, b"going away"), WSENGINE_OK);
    assert_eq!(server.close(1000, b""), WSENGINE_CLOSING);
    assert_eq!(server.send_text(b"x"), WSENGINE_CLOSING);
    let frame = server.transmit();
    assert_eq!(&frame[..4], [0x88, 12, 0x03, 0xe9]);
    // Due "now" (the last time passed in); it starts when the host hands a time in.
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 0));
    server.handle_timeout(0);
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 5 * SEC));
    server.handle_timeout(5 * SEC);
    assert_eq!(server.events(), vec![closed(1006, false)]);
    assert!(server.should_close());
}

// ---- round trip ----

#[test]
fn client_server_round_trip_through_the_c_api() {
    let (mut client, mut server) = open_pair(&test_config(), 0);
    // Text and a large binary message, written to the "socket" in small pieces.
    assert_eq!(client.send_text("hello wörld".as_bytes()), WSENGINE_OK);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7).to_le_bytes()[0]).collect();
    assert_eq!(client.send_binary(&big), WSENGINE_OK);
    assert_eq!(client.ping(b"p"), WSENGINE_OK);
    assert!(client.wants_write());
    let wire = client.transmit_chunked(1000);
    assert!(!client.wants_write());
    let mut got = Vec::new();
    for piece in wire.chunks(4096) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (_, taken) = server.recv(rest);
            rest = &rest[taken..];
            got.extend(server.events());
        }
    }
    assert_eq!(
        got,
        vec![
            ev(WSENGINE_EVENT_TEXT, "hello wörld".as_bytes()),
            ev(WSENGINE_EVENT_BINARY, &big),
            ev(WSENGINE_EVENT_PING, b"p"),
        ]
    );

    // The server echoes, using the event's own pointer (valid until the next poll).
    client.recv_all(&server.transmit()); // the Pong
    assert_eq!(client.events(), vec![ev(WSENGINE_EVENT_PONG, b"p")]);
    assert_eq!(server.send_binary(&big), WSENGINE_OK);
    let mut segments = [wsengine_bytes {
        data: null(),
        len: 0,
    }; 4];
    let mut n = 0;
    // SAFETY: live handle, room for 4 segments, writable count.
    let s = unsafe { wsengine_poll_transmit_segments(server.0, segments.as_mut_ptr(), 4, &mut n) };
    assert_eq!(s, WSENGINE_OK);
    assert!(n >= 1);
    let vectored: Vec<u8> = segments[..n].iter().flat_map(|b| bytes(*b)).collect();
    let wire = server.transmit();
    assert_eq!(vectored, wire);
    let mut rest = &wire[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let (_, taken) = client.recv(rest);
        rest = &rest[taken..];
        got.extend(client.events());
    }
    assert_eq!(got, vec![ev(WSENGINE_EVENT_BINARY, &big)]);

    // The client closes; the server echoes and closes the transport first.
    assert_eq!(client.close(1000, b"bye"), WSENGINE_OK);
    server.recv_all(&client.transmit());
    let mut close = ev(WSENGINE_EVENT_CLOSE, b"bye");
    close.last = false;
    close.code = 1000;
    assert_eq!(server.events(), vec![close, closed(1000, true)]);
    assert!(!server.should_close(), "the echo is still queued");
    client.recv_all(&server.transmit());
    assert!(server.should_close());
    let mut echo = ev(WSENGINE_EVENT_CLOSE, b"");
    echo.last = false;
    echo.code = 1000;
    assert_eq!(client.events(), vec![echo, closed(1000, true)]);
    assert!(
        !client.should_close(),
        "a client waits for the server's EOF"
    );
    client.eof();
    assert_eq!(client.poll(), Ok(None));
    assert!(client.should_close());
    assert_eq!(client.state(), wsengine_state::WSENGINE_STATE_CLOSED as i32);
    // Bytes after the end are discarded and count as taken.
    assert_eq!(client.recv(b"late"), (WSENGINE_OK, 4));
}

#[test]
fn eof_without_close_is_1006() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    server.eof();
    assert_eq!(server.events(), vec![closed(1006, false)]);
    assert!(server.should_close());
}

#[test]
fn recv_takes_at_most_the_capacity() {
    let mut config = test_config();
    config.recv_buffer_size = 256;
    let (_client, mut server) = open_pair(&config, 0);
    let mut cap = 0;
    // SAFETY: live handle, writable `cap`.
    let status = unsafe { wsengine_recv_capacity(server.0, &mut cap) };
    assert_eq!(status, WSENGINE_OK);
    // The configured size plus one frame header (14 bytes).
    assert_eq!(cap, 256 + 14);
    // A 1000-byte masked binary message.
    let mut frame = vec![0x82, 0xfe, 0x03, 0xe8, 0, 0, 0, 0];
    frame.extend_from_slice(&[5; 1000]);
    let (s, taken) = server.recv(&frame);
    assert_eq!((s, taken), (WSENGINE_AGAIN, 256 + 14));
    let mut rest = &frame[taken..];
    let mut got = server.events();
    while !rest.is_empty() {
        let (_, taken) = server.recv(rest);
        assert!(taken > 0, "draining events makes room");
        rest = &rest[taken..];
        got.extend(server.events());
    }
    assert_eq!(got, vec![ev(WSENGINE_EVENT_BINARY, &[5; 1000])]);
}

#[test]
fn backpressure_blocks_sends_until_transmitted() {
    let mut config = test_config();
    config.max_send_buffer = 1000;
    let (_client, mut server) = open_pair(&config, 0);
    assert_eq!(
        server.send_binary(&[1; 1500]),
        WSENGINE_OK,
        "an empty buffer takes one"
    );
    // SAFETY: live handle.
    assert_eq!(unsafe { wsengine_is_send_blocked(server.0) }, 1);
    assert_eq!(server.send_binary(b"x"), WSENGINE_BLOCKED);
    assert_eq!(server.close(1000, b""), WSENGINE_OK, "a Close always fits");
    server.transmit();
    // SAFETY: live handle.
    assert_eq!(unsafe { wsengine_is_send_blocked(server.0) }, 0);
}

// ---- a handshake done elsewhere: wsengine_create_open ----

/// Moves everything `from` transmits into `to` and returns `to`'s events.
fn deliver(from: &mut Conn, to: &mut Conn) -> Vec<Ev> {
    let wire = from.transmit();
    let mut rest = &wire[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let (_, taken) = to.recv(rest);
        rest = &rest[taken..];
        got.extend(to.events());
    }
    got.extend(to.events());
    got
}

#[test]
fn create_open_starts_open_without_a_handshake() {
    let server_role = wsengine_role::WSENGINE_ROLE_SERVER;
    let client_role = wsengine_role::WSENGINE_ROLE_CLIENT;
    let mut server = Conn::create_open(server_role, None, None).expect("server");
    let mut client = Conn::create_open(client_role, Some(&test_config()), None).expect("client");
    for c in [&server, &client] {
        assert_eq!(c.state(), wsengine_state::WSENGINE_STATE_OPEN as i32);
        assert_eq!(c.deflate_params().0, WSENGINE_NOT_FOUND);
        assert!(!c.wants_write(), "no handshake bytes");
    }
    // The RFC 6455 section 5.7 masked "Hello", then the server's unmasked echo.
    server.recv_all(RFC_MASKED_HELLO);
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_TEXT, b"Hello")]);
    assert_eq!(server.send_text(b"Hello"), WSENGINE_OK);
    assert_eq!(server.transmit(), RFC_UNMASKED_HELLO);
    // The client masks.
    assert_eq!(client.send_text(b"hi"), WSENGINE_OK);
    let frame = client.transmit();
    assert_eq!(unmask_small(&frame), (0x81, b"hi".to_vec()));
    server.recv_all(&frame);
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_TEXT, b"hi")]);
    // The closing handshake works as after wsengine_create.
    assert_eq!(client.close(1000, b""), WSENGINE_OK);
    let mut close = ev(WSENGINE_EVENT_CLOSE, b"");
    close.last = false;
    close.code = 1000;
    assert_eq!(
        deliver(&mut client, &mut server),
        vec![close, closed(1000, true)]
    );
    assert!(!server.should_close());
    server.transmit();
    assert!(server.should_close());
}

#[test]
fn create_open_refuses_bad_arguments() {
    let server = wsengine_role::WSENGINE_ROLE_SERVER;
    let inv: Result<(), _> = Err(WSENGINE_INVALID_ARGUMENT);
    for role in [0, 3, -1] {
        let mut out = null_mut();
        // SAFETY: valid pointers; the role is checked.
        let s = unsafe { wsengine_create_open(role, null(), null(), 0, &mut out) };
        assert_eq!(s, WSENGINE_INVALID_ARGUMENT, "role {role}");
        assert!(out.is_null());
    }
    // SAFETY: a NULL out-pointer is refused.
    let s = unsafe { wsengine_create_open(server as i32, null(), null(), 0, null_mut()) };
    assert_eq!(s, WSENGINE_INVALID_ARGUMENT);
    let mut c = test_config();
    c.struct_size = 8;
    assert_eq!(Conn::create_open(server, Some(&c), None).err(), inv.err());
    let mut c = test_config();
    c.deflate.level = 10;
    let params = wsengine_deflate_params {
        server_no_context_takeover: 0,
        client_no_context_takeover: 0,
        server_max_window_bits: 0,
        client_max_window_bits: 0,
    };
    assert_eq!(
        Conn::create_open(server, Some(&c), Some(&params)).err(),
        inv.err(),
        "the compression policy is checked"
    );
    for bits in [1, 7, 16, 255] {
        let mut p = params;
        p.server_max_window_bits = bits;
        assert_eq!(
            Conn::create_open(server, None, Some(&p)).err(),
            inv.err(),
            "server bits {bits}"
        );
        let mut p = params;
        p.client_max_window_bits = bits;
        assert_eq!(
            Conn::create_open(server, None, Some(&p)).err(),
            inv.err(),
            "client bits {bits}"
        );
    }
    let mut p = params;
    p.server_max_window_bits = 8;
    p.client_max_window_bits = 15;
    assert!(Conn::create_open(server, None, Some(&p)).is_ok());
    let mut p = core::mem::MaybeUninit::<wsengine_deflate_params>::uninit();
    let conn = Conn::create_open(server, None, None).expect("server");
    // SAFETY: live handle; the NULL out-pointer is refused.
    let status = unsafe { wsengine_get_deflate_params(conn.0, null_mut()) };
    assert_eq!(status, WSENGINE_INVALID_ARGUMENT);
    // SAFETY: live handle, writable memory.
    let status = unsafe { wsengine_get_deflate_params(conn.0, p.as_mut_ptr()) };
    assert_eq!(status, WSENGINE_NOT_FOUND);
}

/// A compressible text of `len` bytes.
fn compressible(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog; "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Sends `message` from `from` to `to` as text; returns the first byte of the frame on
/// the wire and its length, and checks that `to` receives the message.
fn send_compressed(from: &mut Conn, to: &mut Conn, message: &[u8]) -> (u8, usize) {
    assert_eq!(from.send_text(message), WSENGINE_OK);
    let wire = from.transmit();
    to.recv_all(&wire);
    assert_eq!(to.events(), vec![ev(WSENGINE_EVENT_TEXT, message)]);
    (wire[0], wire.len())
}

#[test]
fn create_open_with_deflate_params_compresses() {
    let params = wsengine_deflate_params {
        server_no_context_takeover: 1,
        client_no_context_takeover: 0,
        server_max_window_bits: 10,
        client_max_window_bits: 0, // absent: 15
    };
    let mut config = test_config();
    config.deflate.level = 9;
    let server_role = wsengine_role::WSENGINE_ROLE_SERVER;
    let client_role = wsengine_role::WSENGINE_ROLE_CLIENT;
    let mut server = Conn::create_open(server_role, Some(&config), Some(&params)).unwrap();
    let mut client = Conn::create_open(client_role, Some(&config), Some(&params)).unwrap();
    let expected = wsengine_deflate_params {
        client_max_window_bits: 15,
        ..params
    };
    assert_eq!(server.deflate_params(), (WSENGINE_OK, expected));
    assert_eq!(client.deflate_params(), (WSENGINE_OK, expected));
    let message = compressible(2000);
    for _ in 0..2 {
        let (first, len) = send_compressed(&mut client, &mut server, &message);
        assert_eq!(first, 0xC1, "FIN, RSV1 (compressed), text");
        assert!(len < 500, "{len} bytes on the wire");
        let (first, len) = send_compressed(&mut server, &mut client, &message);
        assert_eq!(first, 0xC1);
        assert!(len < 500, "{len} bytes on the wire");
    }
    // Below min_compress_size (default 32): sent as is.
    let (first, len) = send_compressed(&mut server, &mut client, b"short");
    assert_eq!((first, len), (0x81, 7));
}

// ---- permessage-deflate negotiated in the handshake ----

#[test]
fn deflate_config_defaults_and_checks() {
    let c = default_config();
    let d = c.deflate;
    assert_eq!(
        (d.enabled, d.level, d.min_compress_size, d.retain_memory),
        (0, 6, 32, 0)
    );
    assert_eq!(
        (
            d.server_no_context_takeover,
            d.client_no_context_takeover,
            d.server_max_window_bits,
            d.client_max_window_bits
        ),
        (0, 0, 0, 0)
    );
    let server = wsengine_role::WSENGINE_ROLE_SERVER;
    let inv: Result<(), _> = Err(WSENGINE_INVALID_ARGUMENT);
    for enabled in [0, 1] {
        let mut c = test_config();
        c.deflate.enabled = enabled;
        c.deflate.level = 10;
        assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());
        for bits in [7, 16] {
            let mut c = test_config();
            c.deflate.enabled = enabled;
            c.deflate.server_max_window_bits = bits;
            assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());
            let mut c = test_config();
            c.deflate.enabled = enabled;
            c.deflate.client_max_window_bits = bits;
            assert_eq!(Conn::create(server, Some(&c), None, 0).err(), inv.err());
        }
    }
    let mut c = test_config();
    c.deflate.enabled = 1;
    c.deflate.level = 0;
    c.deflate.server_max_window_bits = 8;
    c.deflate.client_max_window_bits = 15;
    c.deflate.retain_memory = 1;
    assert!(Conn::create(server, Some(&c), None, 0).is_ok());
}

/// A client with `client_deflate` and a server with `server_deflate` through the
/// handshake; returns them open, and the client's request.
fn deflate_pair(
    client_deflate: wsengine_deflate_config,
    server_deflate: wsengine_deflate_config,
) -> (Conn, Conn, Vec<u8>) {
    let mut config = test_config();
    config.deflate = client_deflate;
    let mut client = Conn::client(&config, "ws://example.com/chat", &[], 0);
    config.deflate = server_deflate;
    let mut server = Conn::server(&config, 0);
    let request = client.transmit();
    server.recv_all(&request);
    assert_eq!(server.events()[0].kind, WSENGINE_EVENT_REQUEST);
    assert_eq!(server.accept(None), WSENGINE_OK);
    client.recv_all(&server.transmit());
    assert_eq!(client.events()[0].kind, WSENGINE_EVENT_ACCEPTED);
    (client, server, request)
}

#[test]
fn deflate_is_negotiated_in_the_handshake() {
    let mut on = default_config().deflate;
    on.enabled = 1;
    let mut server_side = on;
    server_side.server_no_context_takeover = 1;
    let (mut client, mut server, request) = deflate_pair(on, server_side);
    let request = String::from_utf8(request).unwrap();
    assert!(
        request.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{request}"
    );
    let (status, params) = server.deflate_params();
    assert_eq!(status, WSENGINE_OK);
    assert_eq!(client.deflate_params(), (WSENGINE_OK, params));
    assert_eq!(params.server_no_context_takeover, 1, "the server's policy");
    assert_eq!(params.client_no_context_takeover, 0);
    let message = compressible(3000);
    let (first, len) = send_compressed(&mut client, &mut server, &message);
    assert_eq!(first, 0xC1);
    assert!(len < 500, "{len}");
    let (first, len) = send_compressed(&mut server, &mut client, &message);
    assert_eq!(first, 0xC1);
    assert!(len < 500, "{len}");
}

#[test]
fn deflate_is_not_used_unless_both_sides_enable_it() {
    let mut on = default_config().deflate;
    on.enabled = 1;
    let off = default_config().deflate;
    for (client_side, server_side) in [(on, off), (off, on)] {
        let (mut client, mut server, request) = deflate_pair(client_side, server_side);
        let offered = String::from_utf8(request)
            .unwrap()
            .contains("permessage-deflate");
        assert_eq!(offered, client_side.enabled == 1);
        assert_eq!(client.deflate_params().0, WSENGINE_NOT_FOUND);
        assert_eq!(server.deflate_params().0, WSENGINE_NOT_FOUND);
        let message = compressible(1000);
        let (first, len) = send_compressed(&mut server, &mut client, &message);
        assert_eq!((first, len), (0x81, 1004), "uncompressed");
    }
}

/// An 8-aligned buffer standing for a caller's wsengine_config of some other size.
#[repr(C, align(8))]
struct CallerStruct([u8; 512]);

impl CallerStruct {
    /// Filled with 0xAA, a value no default has (and an invalid deflate level).
    fn new() -> Self {
        Self([0xAA; 512])
    }

    fn config(&mut self) -> *mut wsengine_config {
        self.0.as_mut_ptr().cast()
    }

    /// Whether every byte from `from` on is still 0xAA.
    fn untouched_from(&self, from: usize) -> bool {
        // SAFETY: indices below the buffer's length; those bytes were initialised by
        // `new` and written (if at all) with plain bytes.
        (from..self.0.len()).all(|i| unsafe { self.0.as_ptr().add(i).read() } == 0xAA)
    }
}

/// The size of ABI 1's wsengine_config: everything before `deflate`.
const SIZE_V1: usize = core::mem::offset_of!(wsengine_config, deflate);

#[test]
fn config_init_with_the_whole_size_writes_what_config_default_writes() {
    let mut buf = CallerStruct::new();
    let size = size_of::<wsengine_config>();
    // SAFETY: `size` writable bytes at an aligned pointer.
    let status = unsafe { wsengine_config_init(buf.config(), size) };
    assert_eq!(status, WSENGINE_OK);
    assert!(buf.untouched_from(size));
    // SAFETY: wsengine_config_init wrote a whole, aligned wsengine_config.
    let init = unsafe { buf.config().read() };
    assert_eq!(init.struct_size, size);
    assert_eq!(format!("{init:?}"), format!("{:?}", default_config()));
    assert!(Conn::create(wsengine_role::WSENGINE_ROLE_SERVER, Some(&init), None, 0).is_ok());
}

#[test]
fn config_init_writes_no_more_than_the_callers_struct_holds() {
    let whole = size_of::<wsengine_config>();
    let size_v2 = core::mem::offset_of!(wsengine_config, flush_timeout_ns);
    for size in [SIZE_V1, SIZE_V1 + 1, size_v2, size_v2 + 1, whole - 1] {
        let mut buf = CallerStruct::new();
        let p = buf.config();
        // SAFETY: at least `size` writable bytes at an aligned pointer.
        assert_eq!(unsafe { wsengine_config_init(p, size) }, WSENGINE_OK);
        assert!(
            buf.untouched_from(size),
            "size {size}: wrote past the caller's struct"
        );
        // SAFETY: the fields read lie before SIZE_V1 <= size: written by the call.
        let (struct_size, max_frame_size, max_headers, auto_pong, seed_set) = unsafe {
            (
                (&raw const (*p).struct_size).read(),
                (&raw const (*p).max_frame_size).read(),
                (&raw const (*p).max_headers).read(),
                (&raw const (*p).auto_pong).read(),
                (&raw const (*p).rng_seed_set).read(),
            )
        };
        let d = default_config();
        assert_eq!(struct_size, size, "struct_size says how much was written");
        assert_eq!(max_frame_size, d.max_frame_size);
        assert_eq!(max_headers, d.max_headers);
        assert_eq!((auto_pong, seed_set), (d.auto_pong, d.rng_seed_set));
    }
    // A larger struct (a newer header): only this library's struct is written.
    let mut buf = CallerStruct::new();
    // SAFETY: 512 writable bytes.
    let status = unsafe { wsengine_config_init(buf.config(), 512) };
    assert_eq!(status, WSENGINE_OK);
    assert!(buf.untouched_from(whole));
    // SAFETY: the first field, written by the call.
    assert_eq!(unsafe { buf.config().cast::<usize>().read() }, whole);
}

#[test]
fn config_init_refuses_null_and_sizes_below_the_first_version() {
    // SAFETY: NULL is refused.
    let s = unsafe { wsengine_config_init(null_mut(), size_of::<wsengine_config>()) };
    assert_eq!(s, WSENGINE_INVALID_ARGUMENT);
    for size in [0, 8, SIZE_V1 - 1] {
        let mut buf = CallerStruct::new();
        // SAFETY: 512 writable bytes; the size is checked.
        let s = unsafe { wsengine_config_init(buf.config(), size) };
        assert_eq!(s, WSENGINE_INVALID_ARGUMENT, "size {size}");
        assert!(buf.untouched_from(0), "nothing written for size {size}");
    }
    let mut buf = CallerStruct::new();
    // SAFETY: a misaligned pointer is refused before anything is written.
    let s = unsafe { wsengine_config_init(buf.0.as_mut_ptr().add(1).cast(), 256) };
    assert_eq!(s, WSENGINE_INVALID_ARGUMENT);
    assert!(buf.untouched_from(0));
}

#[test]
fn a_first_version_config_creates_a_working_connection() {
    // A program built against ABI 1's header: its struct ends before `deflate`, and what
    // follows it in memory (0xAA: deflate.level 170, invalid) is not the library's.
    let mut buf = CallerStruct::new();
    let p = buf.config();
    // SAFETY: SIZE_V1 writable bytes at an aligned pointer.
    assert_eq!(unsafe { wsengine_config_init(p, SIZE_V1) }, WSENGINE_OK);
    // SAFETY: a field inside the caller's struct.
    unsafe { (&raw mut (*p).max_message_size).write(1000) };
    let mut server = null_mut();
    // SAFETY: `p` holds an initialised struct of struct_size bytes; valid out-pointer.
    let s = unsafe {
        wsengine_create(
            wsengine_role::WSENGINE_ROLE_SERVER as i32,
            p,
            null(),
            0,
            &mut server,
        )
    };
    assert_eq!(s, WSENGINE_OK, "the bytes past struct_size are not read");
    // The handle works: the handshake, then the caller's limit applies.
    let mut server = Conn(server);
    server.recv_all(RFC_REQUEST);
    assert!(matches!(server.poll(), Ok(Some(e)) if e.kind == WSENGINE_EVENT_REQUEST));
    assert_eq!(server.accept(None), WSENGINE_OK);
    server.transmit();
    let mut big = vec![0x82, 0xFE, 0x03, 0xE9, 0, 0, 0, 0];
    big.extend_from_slice(&[0u8; 1001]);
    server.recv_all(&big);
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.close_code(), 1009);
    // struct_size between two versions is refused, as before.
    // SAFETY: the first field of the caller's struct.
    unsafe { p.cast::<usize>().write(SIZE_V1 + 8) };
    let mut out = null_mut();
    // SAFETY: as above.
    let s = unsafe {
        wsengine_create(
            wsengine_role::WSENGINE_ROLE_SERVER as i32,
            p,
            null(),
            0,
            &mut out,
        )
    };
    assert_eq!(s, WSENGINE_INVALID_ARGUMENT);
    assert!(out.is_null());
}

// ---- ABI 3: flush and message timeouts, deflate limits, the Origin allow-list ----

/// The size of ABI 2's wsengine_config: everything before flush_timeout_ns.
const SIZE_V2: usize = core::mem::offset_of!(wsengine_config, flush_timeout_ns);

#[test]
fn abi_3_fields_default_to_the_cores_defaults() {
    assert_eq!(WSENGINE_ABI_VERSION, 3);
    let c = default_config();
    assert_eq!(c.flush_timeout_ns, 5 * SEC);
    assert_eq!(c.message_timeout_ns, 30 * SEC);
    assert_eq!(c.deflate_max_inflated_size, 1 << 20);
    assert_eq!(c.deflate_max_compress_size, 1 << 20);
    assert_eq!(c.deflate_max_inflate_rate, 0, "off");
    assert!(c.allowed_origins.is_null(), "no Origin check");
    assert_eq!(c.allowed_origin_count, 0);
    assert_eq!(
        SIZE_V2,
        (SIZE_V1 + size_of::<wsengine_deflate_config>())
            .next_multiple_of(align_of::<wsengine_config>()),
        "ABI 2's struct ended with deflate"
    );
}

/// A server configuration with the Origin allow-list `entries` (the array and strings
/// must outlive only the wsengine_create call).
fn with_origins(entries: &[wsengine_bytes]) -> wsengine_config {
    let mut c = test_config();
    c.allowed_origins = entries.as_ptr();
    c.allowed_origin_count = entries.len();
    c
}

fn b(s: &[u8]) -> wsengine_bytes {
    wsengine_bytes {
        data: s.as_ptr(),
        len: s.len(),
    }
}

/// RFC_REQUEST with its Origin replaced (`None`: no Origin header).
fn request_from(origin: Option<&str>) -> Vec<u8> {
    let request = String::from_utf8(RFC_REQUEST.to_vec()).unwrap();
    let replaced = match origin {
        Some(o) => request.replace("Origin: http://example.com", &format!("Origin: {o}")),
        None => request.replace("Origin: http://example.com\r\n", ""),
    };
    assert!(request.contains("\r\nOrigin: http://example.com\r\n"));
    replaced.into_bytes()
}

#[test]
fn an_origin_not_on_the_allow_list_is_refused_with_403() {
    let server_role = wsengine_role::WSENGINE_ROLE_SERVER;
    // The strings and the array live only until wsengine_create returns: it copies them.
    let make = || {
        let strings: Vec<Vec<u8>> = vec![
            b"https://example.com".to_vec(),
            b"https://*.example.org".to_vec(),
        ];
        let entries: Vec<wsengine_bytes> = strings.iter().map(|s| b(s)).collect();
        let config = with_origins(&entries);
        let conn = Conn::create(server_role, Some(&config), None, 0).expect("server");
        drop(entries);
        drop(strings);
        conn
    };
    for origin in [
        Some("https://example.com"),
        Some("HTTPS://Example.COM:443"),
        Some("https://chat.example.org"),
        None,
    ] {
        let mut server = make();
        server.recv_all(&request_from(origin));
        let events = server.events();
        assert_eq!(events[0].kind, WSENGINE_EVENT_REQUEST, "{origin:?}");
        assert_eq!(server.accept(None), WSENGINE_OK);
        assert!(server.transmit().starts_with(b"HTTP/1.1 101 "));
    }
    for origin in [
        "http://example.com",
        "https://example.org",
        "https://example.com.evil.com",
        "null",
    ] {
        let mut server = make();
        server.recv_all(&request_from(Some(origin)));
        assert_eq!(server.poll(), Err(WSENGINE_HANDSHAKE_FAILED), "{origin}");
        assert_eq!(server.poll(), Err(WSENGINE_HANDSHAKE_FAILED), "sticky");
        assert_eq!(server.close_code(), 0);
        assert!(server.error_message().contains("Origin"), "{origin}");
        let response = String::from_utf8(server.transmit()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{response}"
        );
        assert!(
            !response.contains(origin),
            "the refused value is not echoed"
        );
        assert!(server.should_close());
    }
}

#[test]
fn an_empty_allow_list_refuses_every_origin_and_bad_entries_are_refused() {
    let server_role = wsengine_role::WSENGINE_ROLE_SERVER;
    let inv = Some(WSENGINE_INVALID_ARGUMENT);
    // Non-NULL with no entries: every request carrying an Origin is refused.
    let none: [wsengine_bytes; 0] = [];
    let mut c = with_origins(&none);
    c.allowed_origins = core::ptr::NonNull::<wsengine_bytes>::dangling().as_ptr();
    let mut server = Conn::create(server_role, Some(&c), None, 0).unwrap();
    server.recv_all(RFC_REQUEST);
    assert_eq!(server.poll(), Err(WSENGINE_HANDSHAKE_FAILED));
    assert!(server.transmit().starts_with(b"HTTP/1.1 403 "));
    let mut server = Conn::create(server_role, Some(&c), None, 0).unwrap();
    server.recv_all(&request_from(None));
    assert_eq!(server.events()[0].kind, WSENGINE_EVENT_REQUEST, "no Origin");

    for bad in [
        &b"example.com"[..],
        b"https://example.com/path",
        b"https://",
        b"",
        b"https://ex\xffample.com",
        b"https://a.com, https://b.com",
    ] {
        let entries = [b(b"https://ok.example"), b(bad)];
        let c = with_origins(&entries);
        let s = Conn::create(server_role, Some(&c), None, 0).err();
        assert_eq!(s, inv, "{:?}", String::from_utf8_lossy(bad));
        // wsengine_create_open checks it too.
        let s = Conn::create_open(server_role, Some(&c), None).err();
        assert_eq!(s, inv, "{:?}", String::from_utf8_lossy(bad));
    }
    // NULL array with a count, NULL entry with a length.
    let mut c = test_config();
    c.allowed_origins = null();
    c.allowed_origin_count = 1;
    assert!(
        Conn::create(server_role, Some(&c), None, 0).is_ok(),
        "NULL: no list (the count is not read)"
    );
    let entries = [wsengine_bytes {
        data: null(),
        len: 3,
    }];
    let c = with_origins(&entries);
    assert_eq!(Conn::create(server_role, Some(&c), None, 0).err(), inv);
    // A client ignores the list (it is still checked).
    let entries = [b(b"https://example.com")];
    let c = with_origins(&entries);
    let _client = Conn::client(&c, "ws://example.com/", &[], 0);
}

/// A data frame from a client (masked with a zero key): `first` is FIN/RSV/opcode.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).unwrap();
    assert!(len < 126);
    let mut f = vec![first, 0x80 | len, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

#[test]
fn message_timeout_queues_a_close_1008() {
    let mut config = test_config();
    config.keepalive_interval_ns = 0;
    config.message_timeout_ns = 2 * SEC;
    let (_client, mut server) = open_pair(&config, 0);
    server.handle_timeout(SEC);
    assert_eq!(
        server.next_timeout(),
        (WSENGINE_AGAIN, u64::MAX),
        "no message"
    );
    // A text message starts (FIN clear) and never ends; Pings do not help.
    server.recv_all(&client_frame(0x01, b"hel"));
    assert_eq!(server.poll(), Ok(None));
    // Armed from the latest time handed in (as the other timers).
    assert_eq!(server.next_timeout(), (WSENGINE_OK, SEC));
    server.handle_timeout(SEC);
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 3 * SEC));
    server.recv_all(&client_frame(0x89, b"still here"));
    assert_eq!(server.events()[0].kind, WSENGINE_EVENT_PING);
    server.transmit();
    server.handle_timeout(3 * SEC - 1);
    assert_eq!(server.poll(), Ok(None));
    server.handle_timeout(3 * SEC);
    assert_eq!(server.poll(), Err(WSENGINE_TIMEOUT));
    assert_eq!(server.close_code(), 1008);
    assert_eq!(
        server.transmit(),
        close_frame(1008, "data message did not complete in time"),
        "Close 1008 queued"
    );
    assert_eq!(server.poll(), Err(WSENGINE_TIMEOUT), "sticky");
}

#[test]
fn message_timeout_0_lets_a_message_take_forever() {
    let mut config = test_config();
    config.keepalive_interval_ns = 0;
    config.message_timeout_ns = 0;
    let (_client, mut server) = open_pair(&config, 0);
    server.recv_all(&client_frame(0x01, b"hel"));
    assert_eq!(server.poll(), Ok(None));
    assert_eq!(server.next_timeout(), (WSENGINE_AGAIN, u64::MAX));
    server.handle_timeout(3600 * SEC);
    server.recv_all(&client_frame(0x80, b"lo"));
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_TEXT, b"hello")]);
}

/// A server that failed with a protocol error (1002 queued) at `t`, nothing written.
fn failed_server(config: &wsengine_config, t: u64) -> Conn {
    let (_client, mut server) = open_pair(config, 0);
    server.handle_timeout(t);
    server.recv_all(&[0x81, 0x01, b'x']); // unmasked: 1002
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert!(server.wants_write());
    server
}

#[test]
fn flush_timeout_ends_a_connection_whose_peer_stopped_reading() {
    let mut config = test_config();
    config.keepalive_interval_ns = 0;
    config.flush_timeout_ns = 2 * SEC;
    let mut server = failed_server(&config, SEC);
    assert!(
        !server.should_close(),
        "the Close frame waits to be written"
    );
    // Armed from the latest time handed in (as the other timers).
    assert_eq!(server.next_timeout(), (WSENGINE_OK, SEC));
    server.handle_timeout(SEC);
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 3 * SEC));
    server.handle_timeout(3 * SEC - 1);
    assert!(!server.should_close());
    server.handle_timeout(3 * SEC);
    assert!(server.should_close(), "given up on the unwritten bytes");

    // 0: wait for the bytes however long that takes.
    config.flush_timeout_ns = 0;
    let mut server = failed_server(&config, SEC);
    assert_eq!(server.next_timeout(), (WSENGINE_AGAIN, u64::MAX));
    server.handle_timeout(3600 * SEC);
    assert!(!server.should_close());
    assert_eq!(
        server.transmit(),
        close_frame(1002, "unmasked frame from a client")
    );
    assert!(server.should_close());
}

/// A client and a server with permessage-deflate on, both configured by `tune` (the
/// whole config, where deflate_pair takes only the deflate struct).
fn deflate_pair_with(tune: impl Fn(&mut wsengine_config)) -> (Conn, Conn) {
    let mut config = test_config();
    config.deflate.enabled = 1;
    tune(&mut config);
    let mut client = Conn::client(&config, "ws://example.com/chat", &[], 0);
    let mut server = Conn::server(&config, 0);
    server.recv_all(&client.transmit());
    assert_eq!(server.events()[0].kind, WSENGINE_EVENT_REQUEST);
    assert_eq!(server.accept(None), WSENGINE_OK);
    client.recv_all(&server.transmit());
    assert_eq!(client.events()[0].kind, WSENGINE_EVENT_ACCEPTED);
    assert_eq!(server.deflate_params().0, WSENGINE_OK);
    (client, server)
}

#[test]
fn deflate_max_inflated_size_fails_with_1009_and_0_leaves_max_message_size() {
    let (mut client, mut server) = deflate_pair_with(|c| c.deflate_max_inflated_size = 1000);
    let (first, _) = send_compressed(&mut client, &mut server, &compressible(1000));
    assert_eq!(first, 0xC1);
    assert_eq!(client.send_text(&compressible(1001)), WSENGINE_OK);
    let wire = client.transmit();
    assert_eq!(wire[0], 0xC1, "compressed");
    assert!(wire.len() < 200);
    server.recv_all(&wire);
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.close_code(), 1009);
    assert!(server.error_message().contains("inflates"));
    // 1009, and the error's text as the reason.
    let close = server.transmit();
    assert_eq!(usize::from(close[1]), close.len() - 2);
    assert_eq!([close[0], close[2], close[3]], [0x88, 0x03, 0xf1]);
    let reason = std::str::from_utf8(&close[4..]).expect("UTF-8 reason");
    assert!(server.error_message().ends_with(reason), "{reason:?}");

    // 0: no limit of its own; max_message_size still applies.
    let (mut client, mut server) = deflate_pair_with(|c| {
        c.deflate_max_inflated_size = 0;
        c.max_message_size = 200_000;
    });
    let (first, _) = send_compressed(&mut client, &mut server, &compressible(200_000));
    assert_eq!(first, 0xC1);
    assert_eq!(client.send_text(&compressible(200_001)), WSENGINE_OK);
    server.recv_all(&client.transmit());
    assert_eq!(server.poll(), Err(WSENGINE_PROTOCOL_ERROR));
    assert_eq!(server.close_code(), 1009);
}

#[test]
fn deflate_max_compress_size_sends_larger_messages_uncompressed() {
    let (mut client, mut server) = deflate_pair_with(|c| c.deflate_max_compress_size = 1000);
    let (first, _) = send_compressed(&mut server, &mut client, &compressible(1000));
    assert_eq!(first, 0xC1, "at the limit: compressed");
    let (first, len) = send_compressed(&mut server, &mut client, &compressible(1001));
    assert_eq!((first, len), (0x81, 1005), "over it: as is");
    let (first, _) = send_compressed(&mut client, &mut server, &compressible(1001));
    assert_eq!(first, 0x81);
}

#[test]
fn deflate_max_inflate_rate_spreads_inflating_over_time() {
    let (mut client, mut server) = deflate_pair_with(|c| {
        c.keepalive_interval_ns = 0;
        c.deflate_max_inflate_rate = 10_000;
    });
    server.handle_timeout(0);
    // Four messages of 10,000 bytes at 10,000 inflated bytes per second, the first
    // second's worth at once: the last arrives after about 3 s of the caller's clock.
    let message = compressible(10_000);
    for _ in 0..4 {
        assert_eq!(client.send_text(&message), WSENGINE_OK);
    }
    server.recv_all(&client.transmit());
    let mut now = 0;
    let mut arrivals = Vec::new();
    let mut rounds = 0;
    while arrivals.len() < 4 {
        rounds += 1;
        assert!(rounds < 100, "stuck at {now}: {arrivals:?}");
        for e in server.events() {
            assert_eq!(e, ev(WSENGINE_EVENT_TEXT, &message));
            arrivals.push(now);
        }
        if arrivals.len() < 4 {
            let (status, deadline) = server.next_timeout();
            assert_eq!(status, WSENGINE_OK, "a timer says when to go on");
            assert!(deadline >= now, "never in the past");
            now = deadline;
            assert!(now <= 10 * SEC, "stuck");
            server.handle_timeout(now);
        }
    }
    assert_eq!(arrivals[0], 0, "the first second's worth at once");
    assert!((2 * SEC..=4 * SEC).contains(&arrivals[3]), "{arrivals:?}");

    // 0 (the default): no limit, all four arrive at once.
    let (mut client, mut server) = deflate_pair_with(|_| {});
    for _ in 0..4 {
        assert_eq!(client.send_text(&message), WSENGINE_OK);
    }
    server.recv_all(&client.transmit());
    assert_eq!(server.events().len(), 4);
}

#[test]
fn an_abi_2_config_gets_the_defaults_of_the_fields_it_lacks() {
    // A program built against ABI 2's header: its struct ends with `deflate`; what
    // follows it in memory (0xAA: an allowed_origins pointer that must not be read,
    // huge timeouts) is not the library's.
    let mut buf = CallerStruct::new();
    let p = buf.config();
    // SAFETY: SIZE_V2 writable bytes at an aligned pointer.
    assert_eq!(unsafe { wsengine_config_init(p, SIZE_V2) }, WSENGINE_OK);
    assert!(
        buf.untouched_from(SIZE_V2),
        "nothing written past ABI 2's struct"
    );
    // SAFETY: fields inside the caller's struct, written by the call.
    unsafe {
        assert_eq!((&raw const (*p).struct_size).read(), SIZE_V2);
        assert_eq!((&raw const (*p).deflate.level).read(), 6);
        (&raw mut (*p).keepalive_interval_ns).write(0);
    }
    let mut out = null_mut();
    // SAFETY: `p` holds an initialised struct of struct_size bytes; valid out-pointer.
    let s = unsafe {
        wsengine_create(
            wsengine_role::WSENGINE_ROLE_SERVER as i32,
            p,
            null(),
            0,
            &mut out,
        )
    };
    assert_eq!(s, WSENGINE_OK, "the bytes past struct_size are not read");
    let mut server = Conn(out);
    // No allow-list (the default): any Origin.
    server.recv_all(&request_from(Some("https://anywhere.example")));
    assert!(matches!(server.poll(), Ok(Some(e)) if e.kind == WSENGINE_EVENT_REQUEST));
    assert_eq!(server.accept(None), WSENGINE_OK);
    server.transmit();
    server.handle_timeout(0);
    // The default message timeout, 30 s.
    server.recv_all(&client_frame(0x02, b"part"));
    assert_eq!(server.poll(), Ok(None));
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 0));
    server.handle_timeout(0);
    assert_eq!(server.next_timeout(), (WSENGINE_OK, 30 * SEC));
    server.handle_timeout(30 * SEC);
    assert_eq!(server.poll(), Err(WSENGINE_TIMEOUT));
    assert_eq!(server.close_code(), 1008);

    // Sizes between versions are refused: between ABI 2 and 3, and ABI 3's minus one.
    for size in [SIZE_V2 - 8, SIZE_V2 + 8, size_of::<wsengine_config>() - 8] {
        // SAFETY: the first field of the caller's struct.
        unsafe { p.cast::<usize>().write(size) };
        let mut out = null_mut();
        // SAFETY: as above.
        let s = unsafe {
            wsengine_create(
                wsengine_role::WSENGINE_ROLE_SERVER as i32,
                p,
                null(),
                0,
                &mut out,
            )
        };
        assert_eq!(s, WSENGINE_INVALID_ARGUMENT, "size {size}");
        assert!(out.is_null());
    }
}

#[test]
fn an_abi_2_config_opens_with_the_default_deflate_limits() {
    // wsengine_create_open with ABI 2's struct: the compression policy takes the default
    // deflate_max_compress_size (1 MiB), not the 0xAA bytes after the struct.
    let mut buf = CallerStruct::new();
    let p = buf.config();
    // SAFETY: SIZE_V2 writable bytes at an aligned pointer.
    assert_eq!(unsafe { wsengine_config_init(p, SIZE_V2) }, WSENGINE_OK);
    let params = wsengine_deflate_params {
        server_no_context_takeover: 0,
        client_no_context_takeover: 0,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut out = null_mut();
    // SAFETY: an initialised struct of struct_size bytes, valid params and out-pointer.
    let s = unsafe {
        wsengine_create_open(
            wsengine_role::WSENGINE_ROLE_SERVER as i32,
            p,
            &params,
            0,
            &mut out,
        )
    };
    assert_eq!(s, WSENGINE_OK);
    let mut server = Conn(out);
    assert_eq!(server.send_text(&compressible(2000)), WSENGINE_OK);
    assert_eq!(server.transmit()[0], 0xC1, "compressed");
}

// ---- zero-copy receive: wsengine_recv_buf, wsengine_commit_recv ----

#[test]
fn recv_buf_and_commit_recv_take_a_handshake_and_a_masked_frame() {
    let mut server = Conn::server(&test_config(), 0);
    let mut wire = RFC_REQUEST.to_vec();
    wire.extend_from_slice(RFC_MASKED_HELLO);
    let (s, _, len) = server.recv_buf();
    assert_eq!(s, WSENGINE_OK);
    assert!(len >= wire.len(), "a first room of a few KiB");
    assert_eq!(server.read_into(&wire), wire.len());
    let events = server.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, WSENGINE_EVENT_REQUEST);
    assert_eq!(server.accept(None), WSENGINE_OK);
    assert!(server.transmit().starts_with(b"HTTP/1.1 101 "));
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_TEXT, b"Hello")]);
    // A read that found nothing commits 0.
    let (s, _, _) = server.recv_buf();
    assert_eq!(s, WSENGINE_OK);
    assert_eq!(server.commit_recv(0), WSENGINE_OK);
    assert_eq!(server.events(), vec![]);
}

#[test]
fn commit_recv_misuse_is_refused_without_a_panic() {
    let (_client, mut server) = open_pair(&test_config(), 0);
    let inv = WSENGINE_INVALID_ARGUMENT;

    // No wsengine_recv_buf at all, with 0 or more bytes.
    assert_eq!(server.commit_recv(0), inv);
    assert!(
        server.error_message().contains("wsengine_recv_buf"),
        "{}",
        server.error_message()
    );
    assert_eq!(server.commit_recv(1), inv);

    // More than was offered: refused, and the offer is used up.
    let (_, _, len) = server.recv_buf();
    assert_eq!(server.commit_recv(len + 1), inv);
    assert!(
        server.error_message().contains(&format!(
            "{} bytes committed but wsengine_recv_buf offered {len}",
            len + 1
        )),
        "{}",
        server.error_message()
    );
    assert_eq!(server.commit_recv(0), inv, "used up by the refused commit");
    let (_, _, len) = server.recv_buf();
    assert_eq!(server.commit_recv(usize::MAX), inv);
    assert!(len < usize::MAX);

    // A call that may change the connection in between withdraws the offer.
    type Call = (&'static str, fn(&mut Conn));
    let withdrawing: [Call; 5] = [
        ("poll_event", |c| assert_eq!(c.poll(), Ok(None))),
        ("recv", |c| assert_eq!(c.recv(&[]), (WSENGINE_OK, 0))),
        ("send_text", |c| assert_eq!(c.send_text(b"x"), WSENGINE_OK)),
        ("poll_transmit", |c| drop(c.transmit())),
        ("handle_timeout", |c| c.handle_timeout(1)),
    ];
    for (name, call) in withdrawing {
        let (s, _, _) = server.recv_buf();
        assert_eq!(s, WSENGINE_OK);
        call(&mut server);
        assert_eq!(server.commit_recv(1), inv, "{name}");
        assert_eq!(server.commit_recv(0), inv, "{name}");
    }
    // A refused call withdraws it too (it went through the same entry).
    server.recv_buf();
    assert_eq!(server.send_text(b"\xff"), inv);
    assert_eq!(server.commit_recv(0), inv);

    // Read-only getters change nothing and leave the offer; a second recv_buf replaces
    // it. The refusals left the connection as it was: a frame read into the room arrives.
    server.recv_buf();
    let (_, buf, len) = server.recv_buf();
    let mut cap = 0;
    // SAFETY: live handle, writable `cap`.
    let s = unsafe { wsengine_recv_capacity(server.0, &mut cap) };
    assert_eq!(s, WSENGINE_OK);
    assert_eq!(server.state(), wsengine_state::WSENGINE_STATE_OPEN as i32);
    assert!(!server.wants_write());
    let frame = RFC_MASKED_HELLO;
    assert!(len >= frame.len());
    // SAFETY: the room offered `len` writable bytes at `buf`, still valid: only getters
    // ran since; `frame` is a constant, which cannot overlap it.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), buf, frame.len()) };
    assert_eq!(
        server.commit_recv(frame.len()),
        WSENGINE_OK,
        "{}",
        server.error_message()
    );
    assert_eq!(server.events(), vec![ev(WSENGINE_EVENT_TEXT, b"Hello")]);
    assert_eq!(
        server.state(),
        wsengine_state::WSENGINE_STATE_OPEN as i32,
        "not poisoned"
    );
}

#[test]
fn commit_recv_misuse_is_refused_while_the_room_is_in_a_message() {
    // A large frame's payload is read straight into the message being assembled: a
    // commit after the connection changed is the misuse the core would panic on.
    let mut config = test_config();
    config.recv_buffer_size = 256;
    let (_client, mut server) = open_pair(&config, 0);
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let frame = wsengine_test_support::masked(true, wsengine_test_support::BINARY, &payload);
    let mut rest = &frame[..100];
    while !rest.is_empty() {
        let n = server.read_into(rest);
        rest = &rest[n..];
    }
    assert_eq!(server.events(), vec![], "the frame has begun");
    let (s, _, len) = server.recv_buf();
    assert_eq!(s, WSENGINE_OK);
    assert_eq!(server.commit_recv(len + 1), WSENGINE_INVALID_ARGUMENT);
    server.recv_buf();
    assert_eq!(server.poll(), Ok(None));
    assert_eq!(server.commit_recv(1), WSENGINE_INVALID_ARGUMENT);
    let mut rest = &frame[100..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let n = server.read_into(rest);
        rest = &rest[n..];
        got.extend(server.events());
    }
    assert_eq!(got, vec![ev(WSENGINE_EVENT_BINARY, &payload)]);
}

#[test]
fn recv_buf_offers_no_room_when_the_buffer_is_full() {
    let mut config = test_config();
    config.recv_buffer_size = 256;
    let (_client, mut server) = open_pair(&config, 0);
    // Small frames, never polled: they fill the receive buffer.
    let frame = wsengine_test_support::masked(true, wsengine_test_support::BINARY, &[1; 10]);
    let wire = frame.repeat(100);
    let mut rest = &wire[..];
    loop {
        let n = server.read_into(rest);
        if n == 0 {
            break;
        }
        rest = &rest[n..];
    }
    let taken = wire.len() - rest.len();
    assert_eq!(
        taken,
        256 + 14,
        "the receive limit, as wsengine_recv_capacity says"
    );
    let (s, buf, len) = server.recv_buf();
    assert_eq!((s, len), (WSENGINE_AGAIN, 0));
    assert!(!buf.is_null());
    assert_eq!(
        server.commit_recv(0),
        WSENGINE_OK,
        "0 is allowed after an empty room"
    );
    // Polling drains the buffer and makes room again.
    let mut got = server.events();
    while !rest.is_empty() {
        let n = server.read_into(rest);
        rest = &rest[n..];
        got.extend(server.events());
    }
    assert_eq!(got, vec![ev(WSENGINE_EVENT_BINARY, &[1; 10]); 100]);
}

/// What a server made of some bytes: its events (until the first fatal status), that
/// status, the close code and everything it transmitted.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Ev>,
    fatal: Option<wsengine_status>,
    close_code: u16,
    transmitted: Vec<u8>,
}

/// Polls every event into `run`, accepting a request; false after a fatal status.
fn drain_into(conn: &mut Conn, run: &mut Run) -> bool {
    loop {
        match conn.poll() {
            Ok(Some(e)) => {
                if e.kind == WSENGINE_EVENT_REQUEST {
                    assert_eq!(conn.accept(None), WSENGINE_OK);
                }
                run.events.push(e);
            }
            Ok(None) => return true,
            Err(s) => {
                run.fatal = Some(s);
                return false;
            }
        }
    }
}

/// Feeds `wire` to a new server in reads of `chunk` bytes, through wsengine_recv or
/// (`zero_copy`) wsengine_recv_buf and wsengine_commit_recv, polling events after every
/// call that takes bytes and whenever no more are taken.
fn run_server(config: &wsengine_config, wire: &[u8], chunk: usize, zero_copy: bool) -> Run {
    let mut conn = Conn::server(config, 0);
    let mut run = Run {
        events: Vec::new(),
        fatal: None,
        close_code: 0,
        transmitted: Vec::new(),
    };
    'reads: for piece in wire.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let taken = if zero_copy {
                conn.read_into(rest)
            } else {
                conn.recv(rest).1
            };
            rest = &rest[taken..];
            let before = run.events.len();
            if !drain_into(&mut conn, &mut run) {
                break 'reads;
            }
            assert!(taken > 0 || run.events.len() > before, "stuck");
            run.transmitted.extend(conn.transmit());
        }
    }
    if run.fatal.is_none() {
        drain_into(&mut conn, &mut run);
    }
    run.close_code = conn.close_code();
    run.transmitted.extend(conn.transmit());
    run
}

impl Run {
    /// The run in a line, payloads by length (a large payload in full would bury a
    /// failure message).
    fn summary(&self) -> String {
        let events: Vec<String> = self
            .events
            .iter()
            .map(|e| {
                format!(
                    "{:?}({}, last {}, code {})",
                    e.kind,
                    e.data.len(),
                    e.last,
                    e.code
                )
            })
            .collect();
        format!(
            "events [{}], fatal {:?}, close code {}, {} bytes transmitted",
            events.join(", "),
            self.fatal,
            self.close_code,
            self.transmitted.len()
        )
    }

    /// Consecutive pieces of a streamed message merged into one event (how a stream is
    /// cut into pieces depends on how much each read took); before a fatal error, the
    /// pieces of a message it interrupted dropped (how much of it arrived before the
    /// error depends on the reads too).
    fn whole_messages(mut self) -> Self {
        self.events = merge_pieces(self.events);
        if self.fatal.is_some() && self.events.last().is_some_and(|e| is_data(e) && !e.last) {
            self.events.pop();
        }
        self
    }
}

fn is_data(e: &Ev) -> bool {
    matches!(e.kind, WSENGINE_EVENT_TEXT | WSENGINE_EVENT_BINARY)
}

fn assert_same_run(got: &Run, expected: &Run, what: &str) {
    assert!(
        got == expected,
        "{what}:\n  zero-copy: {}\n  recv:      {}",
        got.summary(),
        expected.summary()
    );
}

/// Consecutive pieces of a streamed message merged into one event.
fn merge_pieces(events: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for e in events {
        match out.last_mut() {
            Some(prev) if prev.kind == e.kind && !prev.last && is_data(&e) => {
                prev.data.extend_from_slice(&e.data);
                prev.last = e.last;
            }
            _ => out.push(e),
        }
    }
    out
}

#[test]
fn recv_buf_gives_the_events_recv_gives_for_the_same_reads() {
    use wsengine_test_support::{BINARY, CLOSE, CONT, PING, TEXT, close_body, masked};
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let big_text: Vec<u8> = (0..70_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut bad_text = big_text.clone();
    bad_text[40_000] = 0xff;
    let messages = [
        masked(true, TEXT, b"Hello"),
        masked(true, BINARY, &[7; 200]),
        masked(true, BINARY, &big),
        masked(false, TEXT, b"frag"),
        masked(true, PING, b"p"),
        masked(false, CONT, "mé".as_bytes()),
        masked(true, CONT, &big_text),
        masked(true, CLOSE, &close_body(1000, b"bye")),
    ]
    .concat();
    // Each wire with the close code it ends with: the closing handshake (a clean close
    // reports no fatal code), an unmasked frame, invalid UTF-8 deep inside a large text
    // frame.
    let unmasked = [
        RFC_REQUEST,
        &masked(true, TEXT, b"ok")[..],
        RFC_UNMASKED_HELLO,
    ];
    let wires = [
        ([RFC_REQUEST, &messages[..]].concat(), 0),
        (unmasked.concat(), 1002),
        (
            [RFC_REQUEST, &masked(true, TEXT, &bad_text)[..]].concat(),
            1007,
        ),
    ];
    let mut small = test_config();
    small.recv_buffer_size = 256;
    let mut streaming = test_config();
    streaming.delivery = wsengine_delivery::WSENGINE_DELIVERY_STREAMING as i32;
    let mut small_streaming = small;
    small_streaming.delivery = streaming.delivery;
    let configs = [
        ("default", test_config()),
        ("small", small),
        ("streaming", streaming),
        ("small streaming", small_streaming),
    ];
    for (name, config) in &configs {
        let whole = config.delivery == wsengine_delivery::WSENGINE_DELIVERY_WHOLE as i32;
        for (w, (wire, code)) in wires.iter().enumerate() {
            for chunk in [1, 3, 100, 1000, 4096, 65_536, usize::MAX] {
                let copied = run_server(config, wire, chunk, false);
                let zero_copy = run_server(config, wire, chunk, true);
                let what = format!("{name}, wire {w}, reads of {chunk}");
                assert_eq!(copied.close_code, *code, "{what}");
                let fatal = (*code != 0).then_some(WSENGINE_PROTOCOL_ERROR);
                assert_eq!(copied.fatal, fatal, "{what}");
                if whole {
                    assert_same_run(&zero_copy, &copied, &what);
                } else {
                    let (zero_copy, copied) = (zero_copy.whole_messages(), copied.whole_messages());
                    assert_same_run(&zero_copy, &copied, &what);
                }
            }
        }
    }
}
