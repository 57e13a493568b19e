//! The opening handshake (RFC 6455 §4). Server: parse a Chrome request and write the
//! 101, with the plain functions and through a server `Connection`. Client: validate
//! the server's 101, with `parse_response` and through a client `Connection`.

// `Connection::server`/`client` take the current instant.
#![allow(clippy::disallowed_methods)]
// A bench reports a broken setup by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
mod common;

use std::hint::black_box;
use std::time::Duration;
use wsengine::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wsengine::handshake::{parse_request, parse_response, write_accept};
use wsengine::{Accept, ClientRequest, Connection, Event, Status};
use wsengine_test_support::accept_response;
use wsengine_test_support::vectors::KEY;

use common::engine::{CHROME_REQUEST, bench_config, drain_transmit};

const MAX_HEAD: usize = 16 << 10;
const MAX_HEADERS: usize = 64;

/// The server side with the functions: parse, then write the 101.
fn server_functions(request: &[u8], out: &mut Vec<u8>) -> usize {
    let Ok(Status::Complete((req, _))) = parse_request(request, MAX_HEAD, MAX_HEADERS) else {
        panic!("the request parses");
    };
    out.clear();
    write_accept(&req, &Accept::new(), out).expect("write the 101");
    out.len()
}

/// The server side through a `Connection`: recv, `Event::Request`, accept, transmit.
fn server_connection(request: &[u8], now: Instant) -> usize {
    let mut conn = Connection::server(bench_config(), now);
    conn.recv(request);
    let Ok(Some(Event::Request(_))) = conn.poll_event() else {
        panic!("the request parses");
    };
    conn.accept(Accept::new()).expect("accept");
    drain_transmit(&mut conn)
}

/// The client side through a `Connection`: build and send the request, take the 101.
/// The request's key comes from the connection's (seeded) RNG, so the 101 is built per
/// iteration outside the measured part.
fn client_connection(request: &ClientRequest, now: Instant) -> (Connection, Vec<u8>) {
    let mut conn = Connection::client(request.clone(), bench_config(), now).expect("client");
    let head = conn.poll_transmit().to_vec();
    let n = head.len();
    conn.advance_transmit(n);
    let Ok(Status::Complete((req, _))) = parse_request(&head, MAX_HEAD, MAX_HEADERS) else {
        panic!("the client's request parses");
    };
    (conn, accept_response(req.key()))
}

fn bench_handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let now = Instant::ZERO;

    group.bench_function("server_parse_request", |b| {
        b.iter(|| parse_request(black_box(CHROME_REQUEST), MAX_HEAD, MAX_HEADERS).is_ok())
    });
    group.bench_function("server_parse_and_write_101", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| server_functions(black_box(CHROME_REQUEST), &mut out))
    });
    group.bench_function("server_connection", |b| {
        b.iter(|| server_connection(black_box(CHROME_REQUEST), now))
    });

    let request = ClientRequest::new("ws://localhost:9001/chat").expect("a valid URL");
    let response = accept_response(KEY);
    assert!(matches!(
        parse_response(&response, MAX_HEAD, MAX_HEADERS, KEY, &request, false),
        Ok(Status::Complete(_))
    ));
    group.bench_function("client_parse_response", |b| {
        b.iter(|| {
            parse_response(
                black_box(&response),
                MAX_HEAD,
                MAX_HEADERS,
                KEY,
                &request,
                false,
            )
            .is_ok()
        })
    });
    group.bench_function("client_connection_accept_101", |b| {
        b.iter_batched(
            || client_connection(&request, now),
            |(mut conn, response)| {
                conn.recv(black_box(&response));
                let Ok(Some(Event::Accepted(_))) = conn.poll_event() else {
                    panic!("the 101 is accepted");
                };
                conn
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_handshake);
criterion_main!(benches);
