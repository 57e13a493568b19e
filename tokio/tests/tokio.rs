//! The tokio adapter: echo over a real 127.0.0.1 socket, futures
//! cancelled at random points over a transport that trickles one byte per poll, split
//! halves in separate tasks, the closing handshake and its timers, and the
//! already-upgraded path (`check_request` + `accept_headers` + `from_upgraded`), and the
//! non-blocking hand-over (`try_send`, `try_send_prepared`, `pending_bytes`).
//!
//! Every test runs on its own current-thread runtime under a time limit.
// Test code: a failed unwrap is a failed test; the tests read the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use wsengine::handshake::{Header, accept_headers, check_request};
use wsengine::{
    Accept, ClientRequest, CloseCode, CloseFrame, Config, HandshakeError, Negotiated, Reject, Role,
    State,
};
use wsengine_tokio::{
    Error, LINGER, Message, PreparedMessage, TrySendError, WebSocketStream, accept, accept_with,
    client, connect, connect_with,
};

/// Runs `test` on a fresh current-thread runtime, failing it after `limit`.
fn run<F: Future>(limit: Duration, test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        tokio::time::timeout(limit, test)
            .await
            .expect("the test finished in time")
    })
}

fn config() -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([9; 32]);
    c
}

/// A listener on 127.0.0.1 with an ephemeral port, and its `ws://` URL.
async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/echo", listener.local_addr().expect("addr"));
    (listener, url)
}

/// Echoes text and binary messages until the stream ends; returns how many it echoed
/// and how the connection ended.
async fn echo<S>(mut ws: WebSocketStream<S>) -> (usize, Option<(CloseCode, bool)>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut echoed = 0;
    while let Some(message) = ws.next().await {
        let message = message.expect("no error");
        if matches!(message, Message::Text(_) | Message::Binary(_)) {
            ws.send(message).await.expect("echo");
            echoed += 1;
        }
    }
    (echoed, ws.closed())
}

/// A server task that accepts one connection and echoes on it.
fn spawn_echo_server(
    listener: TcpListener,
) -> tokio::task::JoinHandle<(usize, Option<(CloseCode, bool)>)> {
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let ws = accept(socket).await.expect("handshake");
        echo(ws).await
    })
}

#[test]
fn echo_round_trip_over_tcp() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = spawn_echo_server(listener);
        let (mut ws, response) = connect(&url).await.expect("connect");
        assert_eq!(response.status(), 101);
        assert_eq!(ws.state(), State::Open);

        let big: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = [
            Message::text("hello"),
            Message::text("caf\u{e9} \u{20ac} \u{1f600}"),
            Message::binary(vec![0u8, 1, 2, 255]),
            Message::binary(Bytes::new()),
            Message::Binary(big.clone()),
        ];
        for m in &sent {
            ws.send(m.clone()).await.expect("send");
        }
        ws.send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .expect("ping");
        for m in &sent {
            assert_eq!(ws.next().await.expect("a message").expect("no error"), *m);
        }
        // The server's core answered the Ping by itself.
        assert_eq!(
            ws.next().await.expect("a pong").expect("no error"),
            Message::Pong(Bytes::from_static(b"are you there"))
        );

        ws.close(None).await.expect("close");
        assert_eq!(ws.state(), State::Closing);
        match ws.next().await.expect("the close echo").expect("no error") {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::NORMAL),
            other => panic!("expected the Close echo, got {other:?}"),
        }
        assert!(ws.next().await.is_none(), "the stream ends after the close");
        assert_eq!(ws.closed(), Some((CloseCode::NORMAL, true)));
        let (echoed, closed) = server.await.expect("server task");
        assert_eq!(echoed, sent.len());
        assert_eq!(closed, Some((CloseCode::NORMAL, true)));
    });
}

// ---- cancellation safety ----

/// A small seeded generator (xorshift64*), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A transport that returns `Pending` (waking itself at once) before every byte it
/// reads or writes, and moves one byte per call: every await point inside the adapter
/// is hit at every byte.
struct Trickle<S> {
    inner: S,
    read_ready: bool,
    write_ready: bool,
}

impl<S> Trickle<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            read_ready: false,
            write_ready: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Trickle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !std::mem::replace(&mut self.read_ready, false) {
            self.read_ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut one = [0u8; 1];
        let mut chunk = ReadBuf::new(&mut one);
        let result = Pin::new(&mut self.inner).poll_read(cx, &mut chunk);
        if result.is_pending() {
            // Not consumed: the next call may read at once.
            self.read_ready = true;
        }
        ready!(result)?;
        buf.put_slice(chunk.filled());
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Trickle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !std::mem::replace(&mut self.write_ready, false) {
            self.write_ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, &buf[..buf.len().min(1)]);
        if result.is_pending() {
            self.write_ready = true;
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `select!` between `operation` and a countdown of `polls` polls: if the countdown wins,
/// `operation` is dropped wherever it stands (`None`). With `polls == 0` the operation
/// gets exactly one poll.
async fn within<F: Future>(polls: u64, operation: F) -> Option<F::Output> {
    let mut operation = std::pin::pin!(operation);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = operation.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if left == 0 {
            return Poll::Ready(None);
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The `i`th message of the cancellation test: text (with multi-byte characters that
/// the one-byte reads split) or binary, mostly small, one larger than the receive buffer.
fn nth_message(i: usize, rng: &mut Rng) -> Message {
    let len = if i == 17 {
        70_000
    } else {
        usize::try_from(rng.below(600)).expect("small")
    };
    if i.is_multiple_of(2) {
        let text: String = "a\u{e9}\u{20ac}\u{1f600}"
            .chars()
            .cycle()
            .skip(i % 4)
            .take(len / 3)
            .collect();
        Message::text(text)
    } else {
        Message::binary(
            (0..len)
                .map(|j| (i * 31 + j).to_le_bytes()[0])
                .collect::<Vec<u8>>(),
        )
    }
}

/// One seed by default; `WSENGINE_CANCEL_SEEDS=N` runs N more (the seed of each run is
/// printed first, so a failure names the seed that replays it).
#[test]
fn cancelled_futures_lose_nothing() {
    let extra: u64 = std::env::var("WSENGINE_CANCEL_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    for seed in 0..=extra {
        let seed = 0x5eed_cafe_f00d_0001 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        eprintln!("cancellation seed {seed:#x}");
        cancellation_run(seed);
    }
}

fn cancellation_run(seed: u64) {
    const MESSAGES: usize = 60;
    const LIMIT: Duration = Duration::from_secs(120);
    run(LIMIT, async move {
        let (a, b) = tokio::io::duplex(4096);
        let expected: Vec<Message> = {
            let mut rng = Rng(seed);
            (0..MESSAGES).map(|i| nth_message(i, &mut rng)).collect()
        };

        // The server echoes; every `next` and `send` may be cancelled.
        let server = tokio::spawn(async move {
            let mut rng = Rng(seed ^ 1);
            let mut ws = accept(Trickle::new(b)).await.expect("server handshake");
            let mut echoed = 0;
            let mut pings = 0;
            let mut cancelled = 0;
            loop {
                let next = loop {
                    if let Some(next) = within(rng.below(12), ws.next()).await {
                        break next;
                    }
                    cancelled += 1;
                };
                match next {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        echoed += 1;
                        let send = ws.send(m);
                        if rng.below(8) == 0 {
                            drop(send); // never polled: the echo is queued all the same
                            cancelled += 1;
                        } else if within(rng.below(12), send).await.is_none() {
                            cancelled += 1;
                        }
                    }
                    Some(Ok(Message::Ping(_))) => pings += 1,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("server: {e}"),
                    None => break,
                }
            }
            (echoed, pings, cancelled, ws.closed())
        });

        let request = ClientRequest::new("ws://trickle.test/").expect("url");
        // When the client's Close goes out, the server still holds tens of KB of echoes
        // (it echoes the 70 000-byte message one byte per poll while it reads); at one
        // byte per poll they can take longer than the default 5 s close timeout on a
        // loaded machine, which would end the connection with 1006. The run's time limit
        // bounds this test, not the client's close timer.
        let mut config = config();
        config.close_timeout = Some(LIMIT);
        let (ws, _) = client(Trickle::new(a), request, config)
            .await
            .expect("client handshake");
        let (mut writer, mut reader) = ws.split();

        // The client's reader, in its own task: every `next` may be cancelled.
        let check = expected.clone();
        let reading = tokio::spawn(async move {
            let mut rng = Rng(seed ^ 2);
            let mut received = 0;
            let mut pongs = 0;
            let mut last_pong = None;
            let mut cancelled = 0;
            loop {
                let next = loop {
                    if let Some(next) = within(rng.below(12), reader.next()).await {
                        break next;
                    }
                    cancelled += 1;
                };
                match next {
                    Some(Ok(Message::Pong(p))) => {
                        pongs += 1;
                        last_pong = Some(p);
                    }
                    Some(Ok(Message::Close(_))) => {}
                    Some(Ok(m)) => {
                        assert_eq!(m, check[received], "message {received}");
                        received += 1;
                    }
                    Some(Err(e)) => panic!("client: {e}"),
                    None => break,
                }
            }
            (received, pongs, last_pong, cancelled, reader.closed())
        });

        // The client's writer: sends, pings, and finally closes, all cancellable.
        let mut rng = Rng(seed ^ 3);
        let mut pings = 0;
        let mut last_ping = None;
        let mut cancelled = 0;
        for (i, message) in expected.iter().enumerate() {
            let send = writer.send(message.clone());
            if rng.below(10) == 0 {
                drop(send);
                cancelled += 1;
            } else if within(rng.below(12), send).await.is_none() {
                cancelled += 1;
            }
            if i % 7 == 3 {
                pings += 1;
                last_ping = Some(Bytes::from(vec![i.to_le_bytes()[0]]));
                let ping = writer.send(Message::Ping(Bytes::from(vec![i.to_le_bytes()[0]])));
                if within(rng.below(12), ping).await.is_none() {
                    cancelled += 1;
                }
            }
        }
        while within(rng.below(12), writer.flush()).await.is_none() {}
        // The Close is queued when `close` is called, behind every message: even if
        // this future is dropped, the reader's polls write it.
        let _ = within(rng.below(12), writer.close(None)).await;
        let (received, pongs, last_pong, reads_cancelled, closed) =
            reading.await.expect("client reader");
        let (echoed, server_pings, server_cancelled, server_closed) = server.await.expect("server");
        // The seeds cancel plenty of futures on every side, mid-frame included.
        assert!(cancelled > 20, "client sends cancelled: {cancelled}");
        assert!(
            reads_cancelled > 100,
            "client reads cancelled: {reads_cancelled}"
        );
        assert!(
            server_cancelled > 100,
            "server cancellations: {server_cancelled}"
        );
        assert_eq!(echoed, MESSAGES, "the server echoed every message");
        assert_eq!(server_pings, pings);
        assert_eq!(received, MESSAGES, "every echo arrived intact and in order");
        // RFC 6455 §5.5.3: a Ping that arrives while the Pong to an earlier one waits
        // unwritten is answered in its place, so some Pongs answer several Pings; the
        // latest Ping is always answered.
        assert!(
            (1..=pings).contains(&pongs),
            "{pongs} Pongs for {pings} Pings"
        );
        assert_eq!(last_pong, last_ping, "the latest Ping was answered");
        assert_eq!(closed, Some((CloseCode::NORMAL, true)));
        assert_eq!(server_closed, Some((CloseCode::NORMAL, true)));
    });
}

// ---- split halves ----

/// The `i`th message one side of the split test sends.
fn numbered(side: u8, i: usize) -> Message {
    let len = 1 + (i * 37) % 1500;
    let mut data = vec![side; len];
    data[..8.min(len)].copy_from_slice(&(i as u64).to_be_bytes()[..8.min(len)]);
    Message::binary(data)
}

#[test]
fn split_halves_send_and_receive_concurrently() {
    const EACH: usize = 500;
    run(Duration::from_secs(60), async {
        let (listener, url) = listen().await;
        // Server: its reader and writer in separate tasks; the reader's automatic Pongs
        // go out on the write side the writer task is streaming on.
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let (mut writer, mut reader) = accept(socket).await.expect("handshake").split();
            let sending = tokio::spawn(async move {
                for i in 0..EACH {
                    writer.send(numbered(b's', i)).await.expect("server send");
                }
                writer
            });
            let mut received = 0;
            let mut pings = 0;
            while let Some(message) = reader.next().await {
                match message.expect("no error") {
                    Message::Ping(_) => pings += 1,
                    Message::Close(_) => {}
                    m => {
                        assert_eq!(m, numbered(b'c', received));
                        received += 1;
                    }
                }
            }
            let writer = sending.await.expect("server writer");
            assert!(reader.reunite(writer).is_ok(), "halves of one stream");
            (received, pings)
        });

        let (ws, _) = connect(&url).await.expect("connect");
        let (mut writer, mut reader) = ws.split();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let reading = tokio::spawn(async move {
            let mut received = 0;
            let mut pongs = 0;
            while let Some(message) = reader.next().await {
                match message.expect("no error") {
                    Message::Pong(_) => pongs += 1,
                    Message::Close(_) => {}
                    m => {
                        assert_eq!(m, numbered(b's', received));
                        received += 1;
                        counter.store(received, Ordering::Relaxed);
                    }
                }
            }
            (received, pongs)
        });
        let mut pings = 0;
        for i in 0..EACH {
            writer.send(numbered(b'c', i)).await.expect("client send");
            if i % 25 == 0 {
                writer
                    .send(Message::Ping(Bytes::from(format!("ping {i}"))))
                    .await
                    .expect("ping");
                pings += 1;
            }
        }
        // Close once the server's messages are all in: after the close the server's
        // writer could send no more.
        while seen.load(Ordering::Relaxed) < EACH {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        writer.close(None).await.expect("close");
        let (received, pongs) = reading.await.expect("client reader");
        let (server_received, server_pings) = server.await.expect("server");
        assert_eq!(server_received, EACH);
        assert_eq!(server_pings, pings);
        assert_eq!(pongs, pings);
        assert_eq!(
            received, EACH,
            "messages sent before the peer's Close arrive"
        );
    });
}

// ---- closing ----

#[test]
fn server_initiated_close_handshake() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut ws = accept(socket).await.expect("handshake");
            ws.send(Message::text("last words")).await.expect("send");
            let bye = CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: "bye".into(),
            };
            ws.close(Some(bye)).await.expect("close");
            // Sending after the close is refused; closing again is a no-op.
            assert!(matches!(
                ws.send(Message::text("late")).await,
                Err(Error::Send(wsengine::SendError::Closing))
            ));
            ws.close(None).await.expect("a second close does nothing");
            let mut seen = Vec::new();
            while let Some(message) = ws.next().await {
                seen.push(message.expect("no error"));
            }
            (seen, ws.closed())
        });
        let (mut ws, _) = connect(&url).await.expect("connect");
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message.expect("no error"));
        }
        let bye = CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: "bye".into(),
        };
        assert_eq!(
            seen,
            [Message::text("last words"), Message::Close(Some(bye))]
        );
        assert_eq!(ws.closed(), Some((CloseCode::GOING_AWAY, true)));
        let (server_seen, server_closed) = server.await.expect("server");
        // The client's core echoed the code (RFC 6455 §5.5.1).
        let echo = CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: String::new(),
        };
        assert_eq!(server_seen, [Message::Close(Some(echo))]);
        assert_eq!(server_closed, Some((CloseCode::GOING_AWAY, true)));
    });
}

/// The writer's close after the peer's Close has arrived: the echo is written and the
/// write side shut down (the core says the transport may close) before the reader has
/// seen the end; the reader's teardown then only lingers for the client's EOF, and both
/// sides see a clean close.
#[test]
fn closing_after_the_peers_close_shuts_down_before_the_stream_ends() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut ws = accept(socket).await.expect("handshake");
            let first = ws.next().await.expect("a message").expect("no error");
            assert_eq!(first, normal_close());
            ws.close(None)
                .await
                .expect("close writes the echo and shuts down");
            assert!(
                ws.next().await.is_none(),
                "the stream ends at the client's EOF"
            );
            ws.closed()
        });
        let (mut ws, _) = connect(&url).await.expect("connect");
        ws.close(None).await.expect("close");
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message.expect("no error"));
        }
        assert_eq!(seen, [normal_close()]);
        assert_eq!(ws.closed(), Some((CloseCode::NORMAL, true)));
        let server_closed = server.await.expect("server");
        assert_eq!(server_closed, Some((CloseCode::NORMAL, true)));
    });
}

#[test]
fn close_timeout_ends_a_connection_whose_peer_never_answers() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut config = Config::default();
            config.close_timeout = Some(Duration::from_millis(300));
            let mut ws = accept_with(socket, config, |_| Ok(Accept::new()))
                .await
                .expect("handshake");
            let started = tokio::time::Instant::now();
            ws.close(None).await.expect("close");
            // The peer never reads, so no Close comes back: the core's close timer,
            // armed on a tokio sleep, ends the connection.
            assert!(ws.next().await.is_none());
            (started.elapsed(), ws.closed())
        });
        // A client that completes the handshake and then never polls again.
        let (idle, _) = connect(&url).await.expect("connect");
        let (elapsed, closed) = server.await.expect("server");
        assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(closed, Some((CloseCode::ABNORMAL, false)));
        drop(idle);
    });
}

/// A transport that reads at most `chunk` bytes and then pauses for `pause`: a peer
/// that keeps reading, slowly.
struct Slow<S> {
    inner: S,
    chunk: usize,
    pause: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Slow<S> {
    fn new(inner: S, chunk: usize, pause: Duration) -> Self {
        Self {
            inner,
            chunk,
            pause,
            sleep: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Slow<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(sleep) = &mut self.sleep {
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        let mut bytes = vec![0u8; self.chunk.min(buf.remaining())];
        let mut chunk = ReadBuf::new(&mut bytes);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut chunk))?;
        buf.put_slice(chunk.filled());
        if !chunk.filled().is_empty() {
            self.sleep = Some(Box::pin(tokio::time::sleep(self.pause)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slow<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The Close frame `close(None)` sends, as the peer sees it.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::NORMAL,
        reason: String::new(),
    }))
}

/// Regression: when the peer's Close arrived, the teardown deadline ([`LINGER`]) used
/// to bound the whole write of what was still queued, so the messages sent before the
/// Close were cut off after 2 s although the peer kept reading them, and the server
/// still reported a clean close (the flaky `cancelled_futures_lose_nothing`: the
/// client got 17 or 46 of its 60 echoes, then EOF). The deadline now only bounds a
/// stall: a peer that keeps reading gets everything.
#[test]
fn messages_queued_before_the_peers_close_reach_a_slow_reader() {
    run(Duration::from_secs(60), async {
        let (a, b) = tokio::io::duplex(1024);
        let big = |i: u8| Message::binary(vec![i; 100_000]);
        let server = tokio::spawn(async move {
            let mut ws = accept(b).await.expect("handshake");
            for i in 0..3 {
                drop(ws.send(big(i))); // queued when called
            }
            let mut seen = Vec::new();
            while let Some(message) = ws.next().await {
                seen.push(message.expect("no error"));
            }
            (seen, ws.closed())
        });
        // 300 KB at most 1 KiB per 10 ms: well over LINGER. The client's own close
        // timer is not what this test is about.
        let mut config = config();
        config.close_timeout = Some(Duration::from_secs(60));
        let slow = Slow::new(a, 1024, Duration::from_millis(10));
        let request = ClientRequest::new("ws://slow.test/").expect("url");
        let (mut ws, _) = client(slow, request, config)
            .await
            .expect("client handshake");
        let started = tokio::time::Instant::now();
        ws.close(None).await.expect("close");
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message.expect("no error"));
        }
        let elapsed = started.elapsed();
        let sizes: Vec<usize> = seen.iter().map(|m| m.clone().into_data().len()).collect();
        assert!(
            seen == [big(0), big(1), big(2), normal_close()],
            "three messages intact, then the Close echo; got payloads of {sizes:?} bytes, \
             ending with {:?}, after {elapsed:?}",
            seen.last().filter(|m| m.is_close()),
        );
        assert!(elapsed > LINGER, "the writes outlast LINGER: {elapsed:?}");
        assert_eq!(ws.closed(), Some((CloseCode::NORMAL, true)));
        let (server_seen, server_closed) = server.await.expect("server");
        assert_eq!(server_seen, [normal_close()]);
        assert_eq!(server_closed, Some((CloseCode::NORMAL, true)));
    });
}

/// A peer that sends its Close and then stops reading does not keep the server's
/// stream open: it ends [`LINGER`] after the last byte written, and `closed` says the
/// closing handshake did not complete (the server's Close never left).
#[test]
fn a_peer_that_stops_reading_after_its_close_is_let_go_after_linger() {
    run(Duration::from_secs(30), async {
        let (a, b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut ws = accept(b).await.expect("handshake");
            drop(ws.send(Message::binary(vec![7u8; 100_000])));
            let mut seen = Vec::new();
            while let Some(message) = ws.next().await {
                seen.push(message.expect("no error"));
            }
            (seen, ws.closed())
        });
        let request = ClientRequest::new("ws://stalled.test/").expect("url");
        let (mut ws, _) = client(a, request, config())
            .await
            .expect("client handshake");
        let started = tokio::time::Instant::now();
        ws.close(None).await.expect("close");
        // The client never reads again.
        let (seen, closed) = server.await.expect("server");
        let elapsed = started.elapsed();
        assert!(elapsed >= LINGER, "{elapsed:?}");
        assert!(elapsed < LINGER + Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(seen, [normal_close()]);
        assert_eq!(closed, Some((CloseCode::NORMAL, false)));
        drop(ws);
    });
}

#[test]
fn keepalive_fails_a_silent_peer() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut config = Config::default();
            config.keepalive = Some(wsengine::Keepalive {
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(100),
            });
            let mut ws = accept_with(socket, config, |_| Ok(Accept::new()))
                .await
                .expect("handshake");
            let error = ws.next().await.expect("an item").expect_err("a timeout");
            assert!(ws.next().await.is_none(), "the stream ends after the error");
            error
        });
        let (idle, _) = connect(&url).await.expect("connect");
        let error = server.await.expect("server");
        assert!(
            matches!(
                error,
                Error::Connection(wsengine::Error::Timeout(wsengine::Timeout::Keepalive))
            ),
            "{error:?}"
        );
        drop(idle);
    });
}

#[test]
fn eof_without_close_ends_the_stream_abnormally() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = spawn_echo_server(listener);
        let (mut ws, _) = connect(&url).await.expect("connect");
        ws.send(Message::text("one")).await.expect("send");
        assert_eq!(
            ws.next().await.expect("echo").expect("no error"),
            Message::text("one")
        );
        drop(ws);
        let (echoed, closed) = server.await.expect("server");
        assert_eq!(echoed, 1);
        assert_eq!(closed, Some((CloseCode::ABNORMAL, false)));
    });
}

// ---- handshake paths ----

#[test]
fn hook_chooses_a_subprotocol_or_rejects() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let (socket, _) = listener.accept().await.expect("accept");
                let outcome = accept_with(socket, Config::default(), |request| {
                    if request.path() == "/private" {
                        Err(Reject::new(403).body("go away"))
                    } else {
                        Ok(Accept::new().protocol("chat"))
                    }
                })
                .await;
                outcomes.push(match outcome {
                    Ok(ws) => echo(ws).await.0.to_string(),
                    Err(e) => e.to_string(),
                });
            }
            outcomes
        });

        let request = ClientRequest::new(&url).expect("url").protocol("chat");
        let (mut ws, response) = connect_with(request, config()).await.expect("connect");
        assert_eq!(response.protocol(), Some("chat"));
        ws.send(Message::text("hi")).await.expect("send");
        assert_eq!(
            ws.next().await.expect("echo").expect("no error"),
            Message::text("hi")
        );
        ws.close(None).await.expect("close");
        while ws.next().await.is_some() {}

        let private = url.replace("/echo", "/private");
        match connect(&private).await {
            Err(Error::Connection(wsengine::Error::Handshake(HandshakeError::Rejected(
                refused,
            )))) => {
                assert_eq!(refused.status, 403);
                assert_eq!(&refused.body[..], b"go away");
            }
            other => panic!("expected a 403, got {other:?}"),
        }
        let outcomes = server.await.expect("server");
        assert_eq!(outcomes[0], "1");
        assert!(
            matches!(outcomes[1].as_str(), s if s.contains("403")),
            "{outcomes:?}"
        );
    });
}

#[cfg(not(feature = "tls"))]
#[test]
fn wss_is_refused_without_tls() {
    run(Duration::from_secs(5), async {
        assert!(matches!(
            connect("wss://127.0.0.1:1/").await,
            Err(Error::TlsUnsupported)
        ));
    });
}

#[test]
fn urls_that_are_not_websocket_are_refused() {
    run(Duration::from_secs(5), async {
        assert!(matches!(
            connect("http://127.0.0.1:1/").await,
            Err(Error::Request(_))
        ));
    });
}

/// An HTTP server of its own: reads the request head, checks it with `check_request`,
/// answers with `accept_headers`, and hands the rest of the stream to `from_upgraded`.
async fn upgrade_by_hand(mut socket: TcpStream) -> WebSocketStream<TcpStream> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        // One byte at a time, so nothing after the head is read (the client sends no
        // frame before the 101 anyway).
        head.push(socket.read_u8().await.expect("request byte"));
    }
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut slots);
    assert!(parsed.parse(&head).expect("HTTP").is_complete());
    let headers: Vec<Header> = parsed
        .headers
        .iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect();
    let request = check_request(
        parsed.method.expect("method"),
        parsed.path.expect("path"),
        parsed.version.expect("version"),
        headers,
    )
    .expect("a valid upgrade");
    let mut response = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for h in accept_headers(&request, &Accept::new()).expect("101 headers") {
        response.extend_from_slice(h.name.as_bytes());
        response.extend_from_slice(b": ");
        response.extend_from_slice(&h.value);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"\r\n");
    socket.write_all(&response).await.expect("101");
    WebSocketStream::from_upgraded(
        socket,
        Role::Server,
        Config::default(),
        Negotiated::default(),
    )
    .expect("wrap")
}

#[test]
fn already_parsed_upgrade_with_check_request_and_accept_headers() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            echo(upgrade_by_hand(socket).await).await
        });
        let (mut ws, response) = connect(&url).await.expect("connect");
        assert_eq!(response.status(), 101);
        for i in 0..10 {
            let m = Message::text(format!("message {i}"));
            ws.send(m.clone()).await.expect("send");
            assert_eq!(ws.next().await.expect("echo").expect("no error"), m);
        }
        ws.close(None).await.expect("close");
        while ws.next().await.is_some() {}
        assert_eq!(ws.closed(), Some((CloseCode::NORMAL, true)));
        assert_eq!(
            server.await.expect("server"),
            (10, Some((CloseCode::NORMAL, true)))
        );
    });
}

#[test]
fn streams_and_futures_can_move_between_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let (a, _b) = tokio::io::duplex(64);
    let ws =
        WebSocketStream::from_upgraded(a, Role::Server, Config::default(), Negotiated::default());
    // from_upgraded needs no runtime: the timer is created on the first poll.
    let mut ws = ws.expect("a server needs no entropy");
    send_sync(&ws);
    send(&ws.next());
    send(&ws.send(Message::text("x")));
    let (writer, reader) = ws.split();
    send_sync(&writer);
    send_sync(&reader);
    let (c, _d) = tokio::io::duplex(64);
    send(&accept(c));
    let (e, _f) = tokio::io::duplex(64);
    send(&client(
        e,
        ClientRequest::new("ws://x/").expect("url"),
        config(),
    ));
}

// ---- the conformance vectors ----

/// Every conformance vector (`wsengine_test_support::vectors`) against a tokio echo server
/// on 127.0.0.1, one TCP connection per vector, from the blocking client the mio
/// driver's runner uses (`conformance::tcp_exchange`, on tokio's blocking pool). The
/// server task is aborted once the client is done.
#[test]
fn conformance_vectors_over_tokio() {
    use wsengine_test_support::vectors::{run_all, vectors};

    let all = vectors();
    let to_run = all.clone();
    let observed = run(Duration::from_secs(120), async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let accepted =
                        accept_with(socket, wsengine_test_support::conformance::config(), |_| {
                            Ok(Accept::new())
                        })
                        .await;
                    let Ok(mut ws) = accepted else { return };
                    // Echo until the stream ends; a fatal error is reported (after the
                    // Close frame went out) and the stream ends after it.
                    while let Some(message) = ws.next().await {
                        if let Ok(m @ (Message::Text(_) | Message::Binary(_))) = message
                            && ws.send(m).await.is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        let client = tokio::task::spawn_blocking(move || {
            to_run
                .iter()
                .map(|v| wsengine_test_support::conformance::tcp_exchange(addr, v))
                .collect::<Vec<_>>()
        });
        let observed = client.await.expect("the client thread");
        server.abort();
        observed
    });
    let mut observed = observed.into_iter();
    run_all("tokio adapter", &all, |_| {
        observed.next().expect("one per vector")
    });
}

// ---- every pending operation ends with the connection (issue #14) ----

/// A one-shot signal between tasks (the adapter's tokio has no `sync` feature): `open`
/// it, and `wait` returns.
#[derive(Clone, Default)]
struct Gate(Arc<std::sync::atomic::AtomicBool>);

impl Gate {
    fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    async fn wait(&self) {
        while !self.0.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Keepalive with a 100 ms interval and timeout.
fn short_keepalive(mut config: Config) -> Config {
    config.keepalive = Some(wsengine::Keepalive {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
    });
    config
}

/// The echo loop of the crate docs, as an embedder writes it.
async fn documented_echo<S>(mut ws: WebSocketStream<S>) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = ws.next().await {
        if let m @ (Message::Text(_) | Message::Binary(_)) = message? {
            ws.send(m).await?;
        }
    }
    Ok(())
}

fn is_keepalive_timeout(error: &Error) -> bool {
    matches!(
        error,
        Error::Connection(wsengine::Error::Timeout(wsengine::Timeout::Keepalive))
    )
}

/// Regression (#14): the documented echo loop, echoing a large message to a peer that
/// then neither reads nor writes, hung forever in `send().await` after keepalive had
/// failed the connection (nothing woke the send, and nothing ended it). The send now
/// returns the keepalive timeout, and the loop with it.
#[test]
fn keepalive_failure_ends_the_echo_loops_pending_send() {
    run(Duration::from_secs(30), async {
        let (a, b) = tokio::io::duplex(16 << 10);
        let server = tokio::spawn(async move {
            let config = short_keepalive(Config::default());
            let ws = accept_with(b, config, |_| Ok(Accept::new()))
                .await
                .expect("handshake");
            let started = tokio::time::Instant::now();
            let ended = tokio::time::timeout(Duration::from_secs(10), documented_echo(ws)).await;
            (ended, started.elapsed())
        });
        let request = ClientRequest::new("ws://silent.test/").expect("url");
        let (mut peer, _) = client(a, request, config()).await.expect("handshake");
        // One message whose echo cannot fit in the transport, then silence: the peer
        // neither reads nor writes again (and stays open).
        peer.send(Message::binary(vec![1u8; 1 << 20]))
            .await
            .expect("the server reads it");
        let (ended, elapsed) = server.await.expect("server");
        let result = ended.expect("the echo loop ends (it used to hang in send)");
        let error = result.expect_err("the connection failed");
        assert!(is_keepalive_timeout(&error), "{error:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        drop(peer);
    });
}

/// Regression (#14): a peer that reads for a while and then stops, while we keep
/// sending: the send that blocks returned only when bytes went out, so after keepalive
/// failed the connection it waited forever. It now returns the keepalive timeout; the
/// stream reports the same error and ends, and the transport is shut down although the
/// core still holds bytes for it (the peer sees EOF once it reads again).
#[test]
fn keepalive_failure_ends_a_send_blocked_by_a_peer_that_stopped_reading() {
    run(Duration::from_secs(30), async {
        const READ_BEFORE_STOPPING: usize = 10;
        let (a, b) = tokio::io::duplex(16 << 10);
        let resume = Gate::default();
        let resumed = resume.clone();
        let server = tokio::spawn(async move {
            let mut ws = accept(b).await.expect("handshake");
            let mut received = 0;
            while received < READ_BEFORE_STOPPING {
                let message = ws.next().await.expect("a message").expect("no error");
                if let Message::Binary(_) = message {
                    received += 1;
                }
            }
            // Stop reading (and writing) until told to go on.
            resumed.wait().await;
            while let Some(message) = ws.next().await {
                if let Ok(Message::Binary(_)) = message {
                    received += 1;
                }
            }
            (received, ws.closed())
        });
        let request = ClientRequest::new("ws://stops-reading.test/").expect("url");
        let config = short_keepalive(config());
        let (mut ws, _) = client(a, request, config).await.expect("handshake");
        let started = tokio::time::Instant::now();
        let mut sent = 0usize;
        let error = loop {
            let send = ws.send(Message::binary(vec![2u8; 32 << 10]));
            match tokio::time::timeout(Duration::from_secs(10), send).await {
                Ok(Ok(())) => sent += 1,
                Ok(Err(e)) => break e,
                Err(_) => panic!("send {sent} still pending after 10 s (it used to hang)"),
            }
        };
        let elapsed = started.elapsed();
        assert!(is_keepalive_timeout(&error), "{error:?}");
        assert!(sent >= READ_BEFORE_STOPPING, "sent {sent}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        // The reader reports the failure, then the stream ends, in bounded time.
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let error = next
            .expect("in time")
            .expect("an item")
            .expect_err("the failure");
        assert!(is_keepalive_timeout(&error), "{error:?}");
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        assert!(next.expect("in time").is_none(), "the stream ends");
        // A later send is refused at once instead of waiting.
        let late = tokio::time::timeout(Duration::from_secs(1), ws.send(Message::text("x")));
        assert!(late.await.expect("at once").is_err());
        // The write side was shut down with bytes still queued: the peer, reading
        // again, gets what reached the transport and then EOF (1006, no Close).
        resume.open();
        let (received, closed) = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server's stream ends")
            .expect("server");
        assert!(
            received >= READ_BEFORE_STOPPING && received <= sent,
            "{received}"
        );
        assert_eq!(closed, Some((CloseCode::ABNORMAL, false)));
        drop(ws);
    });
}

/// Regression (#14, item 4): `close()` to a peer that never reads, with the send buffer
/// full: the Close frame can never be written, the close timer ends the connection
/// (1006), and the pending `close` used to wait forever for the write. It now returns
/// [`Error::ConnectionClosed`] once the last writes' deadline ([`LINGER`]) has passed,
/// and the stream ends.
#[test]
fn close_to_a_peer_that_never_reads_returns_after_the_close_timeout() {
    run(Duration::from_secs(30), async {
        let (a, b) = tokio::io::duplex(16 << 10);
        let server = tokio::spawn(async move {
            let mut config = Config::default();
            config.close_timeout = Some(Duration::from_millis(300));
            let mut ws = accept_with(b, config, |_| Ok(Accept::new()))
                .await
                .expect("handshake");
            // Handed over when called (the core has room), never written in full.
            drop(ws.send(Message::binary(vec![3u8; 1 << 20])));
            let started = tokio::time::Instant::now();
            let closed = tokio::time::timeout(Duration::from_secs(10), ws.close(None)).await;
            let elapsed = started.elapsed();
            let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
            (closed, elapsed, next.map(|n| n.is_none()), ws.closed())
        });
        let request = ClientRequest::new("ws://never-reads.test/").expect("url");
        let (peer, _) = client(a, request, config()).await.expect("handshake");
        let (closed, elapsed, ended, how) = server.await.expect("server");
        let result = closed.expect("close returns (it used to hang)");
        assert!(matches!(result, Err(Error::ConnectionClosed)), "{result:?}");
        assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
        assert!(
            elapsed < Duration::from_millis(300) + LINGER + Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert_eq!(ended, Ok(true), "the stream ends at once");
        assert_eq!(how, Some((CloseCode::ABNORMAL, false)));
        drop(peer);
    });
}

/// Regression (#14): split halves, the writer blocked on a send to a peer that then
/// sends its Close and stops reading. The reader sees the Close, the teardown gives up
/// on the stalled writes after [`LINGER`], and the stream ends; the blocked send used
/// to return `Ok` then (its bytes never written), and now returns
/// [`Error::ConnectionClosed`].
#[test]
fn a_blocked_send_fails_when_the_connection_ends_without_writing_it() {
    run(Duration::from_secs(30), async {
        let (a, b) = tokio::io::duplex(16 << 10);
        let (started, request) = (tokio::time::Instant::now(), "ws://closes.test/");
        let server = tokio::spawn(async move {
            let ws = accept(b).await.expect("handshake");
            let (mut writer, mut reader) = ws.split();
            let reading = tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Some(message) = reader.next().await {
                    seen.push(message.expect("no error"));
                }
                (seen, reader.closed())
            });
            let mut sent = 0;
            let error = loop {
                let send = writer.send(Message::binary(vec![4u8; 1 << 20]));
                match tokio::time::timeout(Duration::from_secs(10), send).await {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(e)) => break e,
                    Err(_) => panic!("send {sent} still pending after 10 s"),
                }
            };
            (
                error,
                sent,
                started.elapsed(),
                reading.await.expect("reader"),
            )
        });
        let request = ClientRequest::new(request).expect("url");
        let (mut peer, _) = client(a, request, config()).await.expect("handshake");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The peer's Close goes out; then it never reads (nor writes) again.
        peer.close(None).await.expect("close");
        let (error, sent, elapsed, (seen, closed)) = server.await.expect("server");
        assert!(matches!(error, Error::ConnectionClosed), "{error:?}");
        assert_eq!(sent, 0, "no 1 MiB message fits in the transport");
        assert!(elapsed >= LINGER, "{elapsed:?}");
        assert!(elapsed < LINGER + Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(seen, [normal_close()]);
        assert_eq!(closed, Some((CloseCode::NORMAL, false)));
        drop(peer);
    });
}

/// Regression (#14, item 4): a client that sends its request and never reads the 101,
/// over a transport too small for it. `accept` waited for the 101 to be written with no
/// timer armed (the handshake timer stops once the core is open), forever; keepalive
/// now runs during that wait and ends it.
#[test]
fn accept_ends_when_the_client_never_reads_the_101() {
    run(Duration::from_secs(30), async {
        let (mut a, b) = tokio::io::duplex(64);
        let server = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let config = short_keepalive(Config::default());
            let accepted = tokio::time::timeout(
                Duration::from_secs(10),
                accept_with(b, config, |_| Ok(Accept::new())),
            )
            .await;
            (accepted.map(|r| r.err()), started.elapsed())
        });
        a.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("the request");
        // Never read.
        let (accepted, elapsed) = server.await.expect("server");
        let error = accepted
            .expect("accept returns (it used to wait forever)")
            .expect("an error");
        assert!(is_keepalive_timeout(&error), "{error:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        drop(a);
    });
}

/// Regression (#14, item 4): the same client without keepalive: the wait for the 101
/// to be written is bounded by the handshake timeout (it had no bound at all).
#[test]
fn accept_ends_at_the_handshake_timeout_when_the_client_never_reads_the_101() {
    run(Duration::from_secs(30), async {
        let (mut a, b) = tokio::io::duplex(64);
        let server = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut config = Config::default();
            config.keepalive = None;
            config.handshake_timeout = Some(Duration::from_millis(300));
            let accepted = tokio::time::timeout(
                Duration::from_secs(10),
                accept_with(b, config, |_| Ok(Accept::new())),
            )
            .await;
            (accepted.map(|r| r.err()), started.elapsed())
        });
        a.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("the request");
        // Never read.
        let (accepted, elapsed) = server.await.expect("server");
        let error = accepted
            .expect("accept returns (it used to wait forever)")
            .expect("an error");
        assert!(
            matches!(
                error,
                Error::Connection(wsengine::Error::Timeout(wsengine::Timeout::Handshake))
            ),
            "{error:?}"
        );
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        drop(a);
    });
}

// ---- the send backlog obeys the send limit (issue #14) ----

/// Regression (#14): every `send` handed its message over when called, into an
/// unbounded backlog once the core's send buffer was full, so 64 cancelled 1 MiB sends
/// to a peer that does not read left 64 MiB queued although the limit
/// (`max_send_buffer`) is 4 MiB, and all 64 went out later. A send now waits for room
/// before it hands its message over; a cancelled one leaves nothing beyond the limit
/// plus one message.
#[test]
fn cancelled_sends_leave_no_more_than_the_send_limit_queued() {
    run(Duration::from_secs(60), async {
        const MESSAGE: usize = 1 << 20;
        let limit = Config::default().max_send_buffer;
        let (a, b) = tokio::io::duplex(64 << 10);
        let go = Gate::default();
        let gone = go.clone();
        let server = tokio::spawn(async move {
            let mut ws = accept(b).await.expect("handshake");
            let mut cancelled = 0;
            for i in 0..64u8 {
                let send = ws.send(Message::binary(vec![i; MESSAGE]));
                if tokio::time::timeout(Duration::from_millis(2), send)
                    .await
                    .is_err()
                {
                    cancelled += 1;
                }
            }
            let held = ws.buffered_bytes();
            // Then let the peer read everything that was queued, and close.
            go.open();
            ws.close(None).await.expect("close");
            while ws.next().await.is_some() {}
            (cancelled, held)
        });
        let request = ClientRequest::new("ws://not-reading-yet.test/").expect("url");
        let (mut ws, _) = client(a, request, config()).await.expect("handshake");
        gone.wait().await;
        let mut received = 0usize;
        while let Some(message) = ws.next().await {
            match message.expect("no error") {
                Message::Binary(data) => {
                    assert_eq!(data.len(), MESSAGE);
                    received += 1;
                }
                Message::Close(_) => {}
                other => panic!("{other:?}"),
            }
        }
        let (cancelled, held) = server.await.expect("server");
        assert!(cancelled >= 60, "the sends were cancelled: {cancelled}");
        let bound = limit + MESSAGE;
        assert!(
            received * MESSAGE <= bound,
            "{received} messages of 1 MiB were queued beyond the limit of {limit} bytes"
        );
        // What the connection held in memory after the cancelled sends: the queued
        // bytes plus the receive buffer.
        assert!(held <= bound + (128 << 10), "{held} bytes held");
    });
}

/// The `Sink` obeys the same limit: `poll_ready` waits for room while the send buffer
/// is full, and items pushed with `start_send` regardless are refused beyond one
/// ([`SendError::Blocked`](wsengine::SendError::Blocked)) instead of queuing without
/// bound.
#[test]
fn the_sink_waits_for_room_and_refuses_beyond_one_held_message() {
    use futures_sink::Sink;
    run(Duration::from_secs(30), async {
        const MESSAGE: usize = 1 << 20;
        let limit = Config::default().max_send_buffer;
        let (a, b) = tokio::io::duplex(64 << 10);
        let request = ClientRequest::new("ws://sink.test/").expect("url");
        let server = tokio::spawn(accept(b));
        let (peer, _) = client(a, request, config())
            .await
            .expect("client handshake");
        let mut ws = server.await.expect("task").expect("server handshake");
        let mut accepted = 0;
        loop {
            let ready = std::future::poll_fn(|cx| Pin::new(&mut ws).poll_ready(cx));
            let Ok(result) = tokio::time::timeout(Duration::from_millis(50), ready).await else {
                break;
            };
            result.expect("ready");
            Pin::new(&mut ws)
                .start_send(Message::binary(vec![5u8; MESSAGE]))
                .expect("taken after poll_ready");
            accepted += 1;
            assert!(accepted <= 64, "poll_ready never waits");
        }
        // The peer reads nothing: the core took messages up to the limit.
        assert_eq!(accepted * MESSAGE, limit + MESSAGE, "{accepted} accepted");
        let held = ws.buffered_bytes();
        Pin::new(&mut ws)
            .start_send(Message::binary(vec![6u8; MESSAGE]))
            .expect("one message is held without room");
        assert!(ws.buffered_bytes() >= held + MESSAGE);
        let refused = Pin::new(&mut ws).start_send(Message::binary(vec![7u8; MESSAGE]));
        assert!(
            matches!(refused, Err(Error::Send(wsengine::SendError::Blocked))),
            "{refused:?}"
        );
        assert!(ws.buffered_bytes() <= limit + 2 * MESSAGE + (128 << 10));
        drop(peer);
    });
}

/// Backpressure, kept from the backlog's days: while the send buffer is full (a peer
/// that sends but does not read), the reader reads nothing more from that peer, so a
/// flood from a non-reader stops at the transport instead of being taken in.
#[test]
fn the_reader_stops_reading_a_peer_that_does_not_read_while_the_send_buffer_is_full() {
    run(Duration::from_secs(30), async {
        const FLOOD: usize = 2000;
        let limit = Config::default().max_send_buffer;
        let (a, b) = tokio::io::duplex(16 << 10);
        let request = ClientRequest::new("ws://flood.test/").expect("url");
        let server = tokio::spawn(accept(b));
        let (peer, _) = client(a, request, config())
            .await
            .expect("client handshake");
        let (mut writer, mut reader) = server.await.expect("task").expect("handshake").split();
        // Fill the send buffer: the peer reads nothing.
        let mut queued = 0;
        while queued <= limit {
            let send = writer.send(Message::binary(vec![8u8; 1 << 20]));
            if tokio::time::timeout(Duration::from_millis(20), send)
                .await
                .is_err()
            {
                queued += 1 << 20;
            }
        }
        // The peer floods 1 KiB messages (and never reads).
        let (mut peer_writer, _peer_reader) = peer.split();
        let flood = tokio::spawn(async move {
            let mut sent = 0;
            while sent < FLOOD {
                let send = peer_writer.send(Message::binary(vec![9u8; 1024]));
                if tokio::time::timeout(Duration::from_secs(1), send)
                    .await
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let mut received = 0;
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), reader.next()).await
        {
            message.expect("no error");
            received += 1;
        }
        let sent = flood.await.expect("flood");
        assert!(
            sent < FLOOD,
            "the flood was stopped at the transport: {sent} sent"
        );
        assert!(received < 200, "{received} messages taken in while blocked");
    });
}

// ---- the non-blocking hand-over: try_send, try_send_prepared, pending_bytes ----

/// A server stream and the client stream at the other end of an in-memory pipe of
/// `capacity` bytes; the client reads nothing unless polled.
async fn piped(
    capacity: usize,
) -> (
    WebSocketStream<tokio::io::DuplexStream>,
    WebSocketStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(capacity);
    let request = ClientRequest::new("ws://hand-over.test/").expect("url");
    let server = tokio::spawn(accept(b));
    let (peer, _) = client(a, request, config())
        .await
        .expect("client handshake");
    let ws = server.await.expect("task").expect("server handshake");
    (ws, peer)
}

#[test]
fn try_send_gives_the_message_back_intact_when_the_peer_does_not_read() {
    run(Duration::from_secs(30), async {
        const MESSAGE: usize = 1 << 20;
        let limit = Config::default().max_send_buffer;
        let (mut ws, peer) = piped(64 << 10).await;
        let mut accepted = 0u8;
        let given_back = loop {
            let data = Bytes::from(vec![accepted; MESSAGE]);
            match ws.try_send(Message::Binary(data.clone())) {
                Ok(()) => accepted += 1,
                Err(TrySendError::Full(Message::Binary(back))) => {
                    assert_eq!(back, data);
                    assert_eq!(back.as_ptr(), data.as_ptr(), "the caller's buffer");
                    break back;
                }
                Err(e) => panic!("{e:?}"),
            }
            assert!(accepted <= 64, "never full");
        };
        // The core took messages up to its limit; the calls wrote nothing.
        assert_eq!(usize::from(accepted) * MESSAGE, limit);
        assert_eq!(ws.pending_bytes(), limit + usize::from(accepted) * 10);
        // A prepared message and a Ping wait for room too; a Close always fits.
        let prepared = PreparedMessage::text("a publication");
        assert!(matches!(
            ws.try_send_prepared(&prepared),
            Err(TrySendError::Full(()))
        ));
        assert!(matches!(
            ws.try_send(Message::Ping(Bytes::from_static(b"?"))),
            Err(TrySendError::Full(Message::Ping(_)))
        ));
        ws.try_send(Message::Close(None))
            .expect("a Close always fits");
        // After the Close: refused with the error `send` gives.
        let refused = ws.try_send(Message::Binary(given_back));
        assert!(
            matches!(
                refused,
                Err(TrySendError::Refused(Error::Send(
                    wsengine::SendError::Closing
                )))
            ),
            "{refused:?}"
        );
        let refused = ws.try_send_prepared(&prepared);
        assert!(
            matches!(
                refused,
                Err(TrySendError::Refused(Error::Send(
                    wsengine::SendError::Closing
                )))
            ),
            "{refused:?}"
        );
        let sent = ws.send(Message::text("late")).await;
        assert!(
            matches!(sent, Err(Error::Send(wsengine::SendError::Closing))),
            "{sent:?}"
        );
        // `Full` converts for `?` as a refusal for lack of room.
        let full: Error = TrySendError::Full(Message::text("x")).into();
        assert!(matches!(full, Error::Send(wsengine::SendError::Blocked)));
        drop(peer);
    });
}

/// The hub's fan-out: one prepared message to several server connections over real
/// sockets, handed over with `try_send_prepared` by a task that then awaits `next`,
/// which writes it. The client that negotiated permessage-deflate (the server answers
/// `server_no_context_takeover`) gets the frame compressed once, the other the plain
/// frame; both read the same messages.
#[test]
fn try_send_prepared_over_tcp_reaches_wsengine_clients_once_next_is_polled() {
    use wsengine::extensions::deflate::DeflateConfig;
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let policy = DeflateConfig::low_memory();
        let text = "a publication for every subscriber, ".repeat(100);
        let data: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let prepared = [
            PreparedMessage::text(text.clone()).with_deflate(&policy),
            PreparedMessage::binary(data.clone()).with_deflate(&policy),
        ];
        for p in &prepared {
            assert!(p.deflated_frame().is_some(), "both compress");
        }
        let mut server_config = config();
        server_config.deflate = Some(policy);
        let to_send = prepared.clone();
        let server = tokio::spawn(async move {
            let mut queued = Vec::new();
            for _ in 0..2 {
                let (socket, _) = listener.accept().await.expect("accept");
                let hook = |_: &wsengine::handshake::Request| Ok(Accept::new());
                let mut ws = accept_with(socket, server_config.clone(), hook)
                    .await
                    .expect("handshake");
                let mut sizes = Vec::new();
                for p in &to_send {
                    let before = ws.pending_bytes();
                    ws.try_send_prepared(p).expect("room");
                    sizes.push(ws.pending_bytes() - before);
                }
                ws.try_send(Message::text("and a reply of its own"))
                    .expect("room");
                // This task only reads from here on: `next` writes what was handed over.
                let mut received = Vec::new();
                while let Some(message) = ws.next().await {
                    received.push(message.expect("no error"));
                }
                assert!(matches!(received.as_slice(), [Message::Close(_)]));
                queued.push(sizes);
            }
            queued
        });
        for deflate in [true, false] {
            let mut client_config = config();
            client_config.deflate = deflate.then(DeflateConfig::default);
            let request = ClientRequest::new(&url).expect("url");
            let (mut ws, _) = connect_with(request, client_config).await.expect("connect");
            for expected in [
                Message::text(text.clone()),
                Message::Binary(data.clone()),
                Message::text("and a reply of its own"),
            ] {
                let got = ws.next().await.expect("a message").expect("no error");
                assert_eq!(got, expected, "deflate: {deflate}");
            }
            ws.close(None).await.expect("close");
            while ws.next().await.is_some() {}
            assert_eq!(ws.closed(), Some((CloseCode::NORMAL, true)));
        }
        let queued = server.await.expect("server");
        let frame_len = |p: &PreparedMessage, deflate: bool| match deflate {
            true => p.deflated_frame().expect("compressed").len(),
            false => p.frame().len(),
        };
        for (sizes, deflate) in queued.iter().zip([true, false]) {
            let expected: Vec<usize> = prepared.iter().map(|p| frame_len(p, deflate)).collect();
            assert_eq!(sizes, &expected, "the frames queued, deflate: {deflate}");
        }
    });
}

/// The split halves as a fan-out server uses them: the reader parked in `next` in its
/// own task, another task hands messages over with `try_send` and never flushes. The
/// hand-over wakes the reader, whose poll writes them.
#[test]
fn try_send_wakes_a_reader_waiting_in_next_to_write_the_message() {
    run(Duration::from_secs(30), async {
        let (listener, url) = listen().await;
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let (mut writer, mut reader) = accept(socket).await.expect("handshake").split();
            let reading = tokio::spawn(async move {
                let mut received = Vec::new();
                while let Some(message) = reader.next().await {
                    received.push(message.expect("no error"));
                }
                (reader, received)
            });
            // Let the reader park in `next`, waiting for input.
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer
                .try_send_prepared(&PreparedMessage::text("fanned out"))
                .expect("room");
            writer
                .try_send(Message::binary(vec![7u8; 100_000]))
                .expect("room");
            let (reader, received) = reading.await.expect("reader");
            assert!(reader.reunite(writer).is_ok());
            received
        });
        let (mut ws, _) = connect(&url).await.expect("connect");
        let first = ws.next().await.expect("a message").expect("no error");
        assert_eq!(first, Message::text("fanned out"));
        let second = ws.next().await.expect("a message").expect("no error");
        assert_eq!(second, Message::binary(vec![7u8; 100_000]));
        ws.close(None).await.expect("close");
        while ws.next().await.is_some() {}
        let received = server.await.expect("server");
        assert!(matches!(received.as_slice(), [Message::Close(_)]));
    });
}

#[test]
fn pending_bytes_grows_with_each_hand_over_and_drains_as_writes_go_out() {
    run(Duration::from_secs(30), async {
        const MESSAGE: usize = 50_000;
        let (ws, mut peer) = piped(16 << 10).await;
        let (mut writer, _reader) = ws.split();
        assert_eq!(writer.pending_bytes(), 0);
        let mut queued = 0;
        for i in 0..5u8 {
            writer
                .try_send(Message::binary(vec![i; MESSAGE]))
                .expect("room");
            queued += MESSAGE + 4; // a 16-bit length: 4 header bytes
            assert_eq!(writer.pending_bytes(), queued);
        }
        // The peer does not read: a flush fills the pipe and waits.
        let stalled = tokio::time::timeout(Duration::from_millis(50), writer.flush()).await;
        assert!(stalled.is_err(), "the pipe is full");
        let left = writer.pending_bytes();
        assert!(left < queued && left > 0, "{left} of {queued} bytes left");
        // The peer reads: everything goes out.
        let reading = tokio::spawn(async move {
            for i in 0..5u8 {
                let message = peer.next().await.expect("a message").expect("no error");
                assert_eq!(message, Message::binary(vec![i; MESSAGE]));
            }
            peer
        });
        writer.flush().await.expect("flush");
        assert_eq!(writer.pending_bytes(), 0);
        drop(reading.await.expect("peer"));
    });
}

#[cfg(feature = "tls")]
mod tls {
    //! `wss://` through the adapter: tokio-rustls under it on both ends, certificates
    //! made by rcgen when each test starts.
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::TcpListener;
    use wsengine::ClientRequest;
    use wsengine_test_support::pki::{self, TestPki};
    use wsengine_tokio::tls::{self, ServerCertificates, TlsAcceptor};
    use wsengine_tokio::{Error, Message, accept, connect, connect_tls};

    use super::{config, echo, run};

    /// A TLS echo server for one connection, presenting `cert`: its address.
    async fn tls_echo_server(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Option<usize>>) {
        let certificates = Arc::new(ServerCertificates::from_files(cert, key).unwrap());
        let acceptor = TlsAcceptor::from(tls::server_config(certificates).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            // A client that refuses the certificate ends the TLS handshake here.
            let stream = acceptor.accept(socket).await.ok()?;
            let ws = accept(stream).await.unwrap();
            Some(echo(ws).await.0)
        });
        (addr, task)
    }

    fn trusting(pki: &TestPki) -> Arc<tls::rustls::ClientConfig> {
        tls::client_config(tls::root_store(std::slice::from_ref(&pki.ca)).unwrap()).unwrap()
    }

    #[test]
    fn echo_over_wss_with_tokio_rustls_on_both_ends() {
        let pki = pki::make("tokio-echo");
        run(Duration::from_secs(30), async move {
            for host in ["localhost", "127.0.0.1"] {
                let (addr, server) = tls_echo_server(&pki.cert, &pki.key).await;
                let url = format!("wss://{host}:{}/echo", addr.port());
                let request = ClientRequest::new(&url).unwrap();
                let (mut ws, response) = connect_tls(request, config(), trusting(&pki))
                    .await
                    .expect("connect");
                assert_eq!(response.status(), 101);
                let big = "x".repeat(100_000);
                for text in ["hello", big.as_str()] {
                    ws.send(Message::text(text)).await.unwrap();
                    match ws.next().await {
                        Some(Ok(Message::Text(echoed))) => assert_eq!(echoed.as_str(), text),
                        other => panic!("{other:?}"),
                    }
                }
                ws.close(None).await.unwrap();
                while ws.next().await.is_some() {}
                assert_eq!(ws.closed(), Some((wsengine::CloseCode::NORMAL, true)));
                assert_eq!(server.await.unwrap(), Some(2), "{host}");
            }
        });
    }

    /// Why a client trusting the test CA refuses a server presenting `cert`.
    async fn refusal(pki: &TestPki, cert: &std::path::Path, key: &std::path::Path) -> String {
        let (addr, server) = tls_echo_server(cert, key).await;
        let url = format!("wss://localhost:{}/", addr.port());
        let outcome = connect_tls(ClientRequest::new(&url).unwrap(), config(), trusting(pki)).await;
        assert_eq!(server.await.unwrap(), None);
        match outcome {
            Err(Error::Io(e)) => tls::describe_io_error(&e),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("connected to {cert:?}"),
        }
    }

    #[test]
    fn the_client_refuses_unknown_issuers_expired_certificates_and_wrong_names() {
        let pki = pki::make("tokio-refusals");
        run(Duration::from_secs(30), async move {
            let unknown = refusal(&pki, &pki.untrusted_cert, &pki.untrusted_key).await;
            assert!(unknown.contains("unknown issuer"), "{unknown}");
            let expired = refusal(&pki, &pki.expired_cert, &pki.expired_key).await;
            assert!(expired.contains("expired"), "{expired}");
            let wrong = refusal(&pki, &pki.wrong_name_cert, &pki.wrong_name_key).await;
            assert!(wrong.contains("not valid for"), "{wrong}");
            // `connect` trusts Mozilla's roots only: the private CA is unknown there.
            let (addr, server) = tls_echo_server(&pki.cert, &pki.key).await;
            match connect(&format!("wss://localhost:{}/", addr.port())).await {
                Err(Error::Io(e)) => {
                    let why = tls::describe_io_error(&e);
                    assert!(why.contains("unknown issuer"), "{why}");
                }
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("a private CA was trusted by default"),
            }
            assert_eq!(server.await.unwrap(), None);
        });
    }
}

/// `release_buffers_when_idle`: a quiet connection waiting in `next` holds no buffer,
/// where by default it keeps the receive buffer its last message came into (until the
/// core's timer); messages small and large still arrive whole, in order.
#[test]
fn release_buffers_when_idle_leaves_a_quiet_connection_holding_nothing() {
    run(Duration::from_secs(30), async {
        for release in [false, true] {
            let (mut ws, mut peer) = piped(1 << 20).await;
            ws.release_buffers_when_idle(release);
            let messages = [
                Message::text("hello"),
                Message::binary(vec![7u8; 100_000]),
                Message::text("x".repeat(600)),
            ];
            for message in &messages {
                peer.send(message.clone()).await.expect("send");
                let got = ws.next().await.expect("a message").expect("no error");
                assert_eq!(&got, message);
                // Quiet now: `next` waits, and is cancelled.
                let waiting = tokio::time::timeout(Duration::from_millis(20), ws.next()).await;
                assert!(waiting.is_err(), "nothing more was sent");
                let held = ws.buffered_bytes();
                // A receive buffer is at least 4 KiB; what may stay is the transmit
                // buffer's small tail (the 101's), which the core's timer gives back.
                if release {
                    assert!(
                        held < 1024,
                        "idle after {} bytes: {held}",
                        message_len(message)
                    );
                } else {
                    assert!(
                        held >= 4096,
                        "the receive buffer is kept by default: {held}"
                    );
                }
            }
            drop(peer);
        }
    });
}

fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}
