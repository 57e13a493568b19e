//! Arbitrary bytes as a client's opening request, fed in arbitrary read sizes to a
//! server `Connection`. The connection must agree with `parse_request` on the whole
//! input, and:
//! - an invalid request gets a clean HTTP error response (it parses, status 4xx =
//!   `status_hint`, `Content-Length` matches the body) and a sticky error;
//! - a valid one gets exactly one `Request` event; accepted, a 101 whose
//!   `Sec-WebSocket-Accept` is `accept_key(key)`; the bytes after the head are kept and
//!   processed as frames exactly as by an open server fed only those bytes; rejected, a
//!   parsable response with the chosen status;
//! - incomplete, nothing is sent, and EOF fails it with `UnexpectedEof`.
//!
//! Input: flags u8 (bit0 EOF at the end; bits1-2 the answer: 0/1 accept, 2 accept with
//! the first offered subprotocol, 3 reject 403; bit3 max_handshake_size 512; bit4
//! max_headers 8), chunk u8 (read sizes, see `Chunker`), then the request bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::handshake::{accept_key, parse_request, write_error_response};
use wsengine::{Accept, Connection, Error, Event, HandshakeError, Reject, Role, State, Status};
use wsengine_fuzz::{Chunker, PeerCheck, base_config, drain, feed};
use wsengine_test_support::{Outcome, t0, take_transmit};

/// Parses an HTTP response head with httparse: (status, headers, head length).
fn parse_head(tx: &[u8]) -> (u16, Vec<(String, Vec<u8>)>, usize) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let n = match res.parse(tx) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "the response does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(tx)
        ),
    };
    assert_eq!(res.version, Some(1), "not HTTP/1.1");
    let headers = res
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    (res.code.expect("a status"), headers, n)
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let chunk = data.get(1).copied().unwrap_or(0);
    let req = data.get(2..).unwrap_or_default();
    let eof = flags & 1 != 0;
    let answer = (flags >> 1) & 3;
    let mut config = base_config();
    if flags & 0x08 != 0 {
        config.max_handshake_size = 512;
    }
    if flags & 0x10 != 0 {
        config.max_headers = 8;
    }
    let expected = parse_request(req, config.max_handshake_size, config.max_headers);

    let mut conn = Connection::server(config.clone(), t0());
    let mut out = Outcome::default();
    let mut chosen: Option<String> = None;
    let mut on_event = |c: &mut Connection, e: &Event| {
        if let Event::Request(r) = e {
            match answer {
                3 => c.reject(Reject::new(403)).expect("reject"),
                2 if !r.protocols().is_empty() => {
                    chosen = Some(r.protocols()[0].clone());
                    c.accept(Accept::new().protocol(r.protocols()[0].clone()))
                        .expect("accept with an offered protocol");
                }
                _ => c.accept(Accept::new()).expect("accept"),
            }
        }
    };
    feed(
        &mut conn,
        &mut out,
        req,
        &mut Chunker::new(chunk),
        &mut on_event,
    );
    if eof {
        conn.recv_eof();
        drain(&mut conn, &mut out, &mut on_event);
    }
    // The head is parsed once its end is found (or at end of stream, or when the buffer
    // has doubled): an error in a head that arrived in pieces may be reported later than
    // the whole head's, never differently. End the stream to see it.
    if expected.is_err() && out.error.is_none() && conn.state() == State::Handshake {
        conn.recv_eof();
        drain(&mut conn, &mut out, &mut on_event);
    }
    let tx = take_transmit(&mut conn);

    match expected {
        Ok(Status::Complete((request, n))) => {
            assert_eq!(
                out.events.first(),
                Some(&Event::Request(Box::new(request.clone())))
            );
            assert!(
                !out.events[1..]
                    .iter()
                    .any(|e| matches!(e, Event::Request(_))),
                "a second Request"
            );
            let (status, headers, head_len) = parse_head(&tx);
            if answer == 3 {
                assert_eq!(status, 403);
                assert_eq!(head_len, tx.len(), "bytes after the rejection");
                assert_eq!(header(&headers, "content-length"), Some(&b"0"[..]));
                assert_eq!(conn.state(), State::Closed);
                assert_eq!(out.events.len(), 1);
                assert_eq!(out.error, None);
                return;
            }
            assert_eq!(status, 101);
            assert_eq!(
                header(&headers, "sec-websocket-accept"),
                Some(accept_key(request.key().as_bytes()).as_bytes())
            );
            assert!(
                header(&headers, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"))
            );
            assert_eq!(
                header(&headers, "sec-websocket-protocol"),
                chosen.as_deref().map(str::as_bytes)
            );
            // The bytes after the head are frames: an open server fed only them does the
            // same (events, error, and what it transmits).
            let mut reference = wsengine_fuzz::open_server(config);
            let mut ref_out = Outcome::default();
            feed(
                &mut reference,
                &mut ref_out,
                &req[n..],
                &mut Chunker::new(0),
                &mut wsengine_fuzz::no_op,
            );
            if eof {
                reference.recv_eof();
                drain(&mut reference, &mut ref_out, &mut wsengine_fuzz::no_op);
            }
            assert_eq!(
                &out.events[1..],
                &ref_out.events[..],
                "events after the head"
            );
            assert_eq!(out.error, ref_out.error, "error after the head");
            let frames = &tx[head_len..];
            assert_eq!(
                frames,
                take_transmit(&mut reference),
                "frames sent after the 101"
            );
            let mut peer = PeerCheck::new(Role::Server);
            peer.push(frames);
        }
        Ok(Status::Partial) => {
            assert!(out.events.is_empty(), "{:?}", out.events);
            assert!(tx.is_empty(), "sent {tx:?} for an incomplete request");
            if eof {
                assert_eq!(
                    out.error,
                    Some(Error::Handshake(HandshakeError::UnexpectedEof))
                );
                assert_eq!(conn.state(), State::Failed);
            } else {
                assert_eq!(out.error, None);
                assert_eq!(conn.state(), State::Handshake);
            }
        }
        Err(e) => {
            assert!(out.events.is_empty(), "{:?}", out.events);
            assert_eq!(out.error, Some(Error::Handshake(e.clone())));
            assert_eq!(conn.state(), State::Failed);
            let (status, headers, head_len) = parse_head(&tx);
            assert!((400..500).contains(&status), "status {status} for {e:?}");
            assert_eq!(status, e.status_hint());
            let body = &tx[head_len..];
            assert_eq!(
                header(&headers, "content-length"),
                Some(body.len().to_string().as_bytes())
            );
            let mut written = Vec::new();
            write_error_response(&e, &mut written);
            assert_eq!(tx, written);
            // Sticky, and nothing more is sent.
            assert_eq!(conn.poll_event(), Err(Error::Handshake(e)));
            assert!(conn.poll_transmit().is_empty());
        }
    }
});
