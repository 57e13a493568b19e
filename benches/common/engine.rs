//! wsengine's side of the recv and send workloads: connections past the handshake and
//! the loops that feed them. Shared by the root benches and the comparison crate (which
//! includes this file by path), so both measure the same code.

use std::hint::black_box;
use wsengine::Instant;

use bytes::Bytes;
use wsengine::handshake::{parse_request, write_accept};
use wsengine::{Accept, ClientRequest, Config, Connection, Event, Message, Status, Utf8Bytes};
use wsengine_test_support::take_transmit;

use super::workload::{Kind, READ_CHUNK, RecvInput, SendInput, Side, Sink};

/// A browser's opening request (Chrome 131 on Linux, as captured), with the RFC 6455
/// §1.3 key.
pub const CHROME_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: localhost:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://localhost:8080\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

/// Limits large enough for every workload (1 MiB messages), a fixed RNG seed (client
/// masking keys), whole-message delivery and the default 64 KiB receive buffer.
pub fn bench_config() -> Config {
    let mut config = Config::default();
    config.max_frame_size = 16 << 20;
    config.max_message_size = 16 << 20;
    config.recv_buffer_size = READ_CHUNK;
    config.max_send_buffer = 4 << 20;
    config.rng_seed = Some([7; 32]);
    config
}

/// Drains everything the connection has to transmit, as a transport would write it.
/// Returns the number of bytes.
pub fn drain_transmit(conn: &mut Connection) -> usize {
    let mut total = 0;
    loop {
        let chunk = conn.poll_transmit();
        if chunk.is_empty() {
            return total;
        }
        let n = black_box(chunk).len();
        total += n;
        conn.advance_transmit(n);
    }
}

/// Writes everything the connection has to transmit into `sink`, one `poll_transmit`
/// run at a time (a plain `write` per run). Returns the number of bytes.
pub fn write_transmit(conn: &mut Connection, sink: &mut Sink) -> usize {
    let mut total = 0;
    loop {
        let n = sink.write(conn.poll_transmit());
        if n == 0 {
            return total;
        }
        total += n;
        conn.advance_transmit(n);
    }
}

/// Writes everything the connection has to transmit into `sink` with vectored writes
/// (`poll_transmit_vectored`), as a host's `write_vectored` would. Returns the number of
/// bytes. A few slices per write are enough for one message (header, owned payload,
/// what follows) and keep the per-write setup small.
pub fn write_transmit_vectored(conn: &mut Connection, sink: &mut Sink) -> usize {
    let mut total = 0;
    loop {
        let mut iovecs = [std::io::IoSlice::new(&[]); 4];
        let filled = conn.poll_transmit_vectored(&mut iovecs);
        let n: usize = iovecs[..filled].iter().map(|seg| sink.write(seg)).sum();
        // Fewer runs than slots: that was everything (the sink takes all it is given).
        let everything = filled < iovecs.len();
        conn.advance_transmit(n);
        total += n;
        if everything {
            return total;
        }
    }
}

/// A server connection that received `CHROME_REQUEST`, accepted it and sent its 101.
#[allow(clippy::disallowed_methods)] // the host passes the current instant in
pub fn open_server(config: Config) -> Connection {
    let mut conn = Connection::server(config, Instant::ZERO);
    let taken = conn.recv(CHROME_REQUEST);
    assert_eq!(taken, CHROME_REQUEST.len(), "the request fits the buffer");
    match conn.poll_event() {
        Ok(Some(Event::Request(_))) => {}
        other => panic!("expected the request, got {other:?}"),
    }
    conn.accept(Accept::new()).expect("accept the request");
    drain_transmit(&mut conn);
    assert_eq!(conn.state(), wsengine::State::Open);
    conn
}

/// A client connection whose request went out and that accepted the server's 101.
#[allow(clippy::disallowed_methods)] // the host passes the current instant in
pub fn open_client(config: Config) -> Connection {
    let request = ClientRequest::new("ws://localhost:9001/chat").expect("a valid URL");
    let mut conn = Connection::client(request, config, Instant::ZERO).expect("a client");
    let head = take_transmit(&mut conn);
    let request = match parse_request(&head, 16 << 10, 64) {
        Ok(Status::Complete((request, _))) => request,
        other => panic!("the client's request does not parse: {other:?}"),
    };
    let mut response = Vec::new();
    write_accept(&request, &Accept::new(), &mut response).expect("write the 101");
    let taken = conn.recv(&response);
    assert_eq!(taken, response.len(), "the response fits the buffer");
    match conn.poll_event() {
        Ok(Some(Event::Accepted(_))) => {}
        other => panic!("expected the 101 to be accepted, got {other:?}"),
    }
    assert_eq!(conn.state(), wsengine::State::Open);
    conn
}

/// An open connection on `side` with [`bench_config`].
pub fn open(side: Side) -> Connection {
    match side {
        Side::Client => open_client(bench_config()),
        Side::Server => open_server(bench_config()),
    }
}

/// What a recv loop counts: whole messages, and everything that should not happen (any
/// other event, an error, a stall). The loop only counts; its caller asserts once,
/// after the loop, that `unexpected` is zero, so the measured loop has no formatting or
/// panic path of its own (with `panic = "abort"` any panic would end the run anyway).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Whole messages (a `last` text or binary event).
    pub messages: usize,
    /// Other events, errors and stalls.
    pub unexpected: usize,
}

/// Drains the events polled so far, matching on `poll_event()`'s result directly.
/// Per message, the work every runner of the comparison does: text looked at as `&str`
/// through the library's accessor, the payload passed to `black_box`.
pub fn drain_events(conn: &mut Connection, tally: &mut Tally) {
    loop {
        match conn.poll_event() {
            Ok(Some(Event::Text { data, last })) => {
                black_box(data.as_str());
                tally.messages += usize::from(last);
            }
            Ok(Some(Event::Binary { data, last })) => {
                black_box(&data[..]);
                tally.messages += usize::from(last);
            }
            Ok(Some(_)) => tally.unexpected += 1,
            Ok(None) => return,
            // An error is sticky: polling again would return it forever.
            Err(_) => {
                tally.unexpected += 1;
                return;
            }
        }
    }
}

/// [`drain_events`] written the way the crate docs teach a host to drive the core:
/// `while let Some(event) = conn.poll_event()? { match event { .. } }` in a function
/// returning `Result`, so what that idiom costs next to the direct `match` shows in the
/// comparison (`wsengine-idiom`). The caller counts an `Err` as unexpected.
pub fn drain_events_idiom(conn: &mut Connection, tally: &mut Tally) -> Result<(), wsengine::Error> {
    while let Some(event) = conn.poll_event()? {
        match event {
            Event::Text { data, last } => {
                black_box(data.as_str());
                tally.messages += usize::from(last);
            }
            Event::Binary { data, last } => {
                black_box(&data[..]);
                tally.messages += usize::from(last);
            }
            _ => tally.unexpected += 1,
        }
    }
    Ok(())
}

/// One iteration of the recv workload on the core alone: feeds `input.wire` to an open
/// server connection in `READ_CHUNK` slices, draining `poll_event` after each `recv`,
/// until the last message. The slices are the input itself: no host read buffer is
/// filled, so this is the core's cost without the copy a host makes when it reads a
/// socket into its own buffer (the comparison's runner pays that copy, as the peers do).
pub fn recv_all(conn: &mut Connection, input: &RecvInput) {
    let mut tally = Tally::default();
    for chunk in input.wire.chunks(READ_CHUNK) {
        let mut data = chunk;
        while !data.is_empty() {
            let taken = conn.recv(data);
            data = &data[taken..];
            drain_events(conn, &mut tally);
            if taken == 0 && conn.recv_capacity() == 0 {
                // Nothing taken and nothing freed: feeding again would spin.
                tally.unexpected += 1;
                break;
            }
        }
    }
    let want = Tally {
        messages: input.messages,
        unexpected: 0,
    };
    assert!(
        tally == want,
        "recv: a message missing, or an unexpected event or error"
    );
}

/// One iteration of the send workload: queues `input.messages` messages on an open
/// connection with `send_text`/`send_binary` (borrowed payload: always copied into the
/// transmit buffer), writing `poll_transmit` into `sink` after each (one transport write
/// per message, as the peers do). Returns the bytes written.
pub fn send_all(conn: &mut Connection, input: &SendInput, sink: &mut Sink) -> usize {
    let (mut written, mut refused) = (0, 0);
    match input.kind {
        Kind::Text => {
            for _ in 0..input.messages {
                refused += usize::from(conn.send_text(black_box(&input.text)).is_err());
                written += write_transmit(conn, sink);
            }
        }
        Kind::Binary => {
            for _ in 0..input.messages {
                refused += usize::from(conn.send_binary(black_box(&input.payload)).is_err());
                written += write_transmit(conn, sink);
            }
        }
    }
    // Counted in the loop, checked once here: no formatting or panic path per message.
    assert!(refused == 0, "send: the connection refused a message");
    written
}

/// The owned payload of every message of the send workload, built once: cloning it is
/// a reference count, as for the peers' `Bytes`-based messages.
#[derive(Debug, Clone)]
pub enum OwnedPayload {
    /// For `send(Message::Text)`.
    Text(Utf8Bytes),
    /// For `send(Message::Binary)`.
    Binary(Bytes),
}

impl OwnedPayload {
    /// The payload of `input`, owned.
    pub fn new(input: &SendInput) -> Self {
        match input.kind {
            Kind::Text => Self::Text(Utf8Bytes::from(input.text.clone())),
            Kind::Binary => Self::Binary(Bytes::from(input.payload.clone())),
        }
    }
}

/// As [`send_all`] with the owned-payload API: `send(Message::Text | Message::Binary)`
/// (a server queues a large payload as its own segment, never copied) and the vectored
/// writes of `poll_transmit_vectored` per message.
pub fn send_all_owned(
    conn: &mut Connection,
    input: &SendInput,
    payload: &OwnedPayload,
    sink: &mut Sink,
) -> usize {
    let (mut written, mut refused) = (0, 0);
    for _ in 0..input.messages {
        let sent = match payload {
            OwnedPayload::Text(t) => conn.send(Message::Text(t.clone())),
            OwnedPayload::Binary(b) => conn.send(Message::Binary(b.clone())),
        };
        refused += usize::from(sent.is_err());
        written += write_transmit_vectored(conn, sink);
    }
    assert!(refused == 0, "send: the connection refused a message");
    written
}
