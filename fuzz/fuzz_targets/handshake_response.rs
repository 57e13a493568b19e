//! Arbitrary bytes as the server's answer to a client `Connection` that sent a fixed
//! request (fixed `Config::rng_seed`, so a fixed `Sec-WebSocket-Key`; fuzz/seed.sh puts
//! the matching `Sec-WebSocket-Accept` in the seeds and the dictionary), fed in
//! arbitrary read sizes. The connection must agree with `parse_response` on the whole
//! input: `Accepted` with the same response, then the bytes after the head processed as
//! frames exactly as by a client fed the head alone first; or the same error, sticky,
//! with nothing sent; or, incomplete, nothing at all.
//!
//! Input: flags u8 (bit0 EOF at the end; bit3 max_handshake_size 512; bit4 max_headers
//! 8; bit5 recv_buffer_size 256), chunk u8 (read sizes), then the response bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::handshake::parse_response;
use wsengine::{Connection, Error, Event, Role, State, Status};
use wsengine_fuzz::{Chunker, PeerCheck, base_config, client_request, drain, feed, no_op};
use wsengine_test_support::{Outcome, head_header, t0, take_transmit};

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let chunk = data.get(1).copied().unwrap_or(0);
    let res = data.get(2..).unwrap_or_default();
    let eof = flags & 1 != 0;
    let mut config = base_config();
    if flags & 0x08 != 0 {
        config.max_handshake_size = 512;
    }
    if flags & 0x10 != 0 {
        config.max_headers = 8;
    }
    if flags & 0x20 != 0 {
        config.recv_buffer_size = 256;
    }
    let request = client_request();
    let new_client = || {
        let mut c = Connection::client(request.clone(), config.clone(), t0()).expect("a client");
        let head = take_transmit(&mut c);
        let head = core::str::from_utf8(&head).expect("an ASCII head");
        let key = head_header(head, "Sec-WebSocket-Key")
            .expect("a key")
            .to_owned();
        (c, key)
    };
    let (mut conn, key) = new_client();
    let expected = parse_response(
        res,
        config.max_handshake_size,
        config.max_headers,
        &key,
        &request,
        eof,
    );

    let mut out = Outcome::default();
    feed(
        &mut conn,
        &mut out,
        res,
        &mut Chunker::new(chunk),
        &mut no_op,
    );
    if eof {
        conn.recv_eof();
        drain(&mut conn, &mut out, &mut no_op);
    }
    // The head is parsed once its end is found (or at end of stream, or when the buffer
    // has doubled): an error in a head that arrived in pieces may be reported later than
    // the whole head's, never differently. End the stream to see it.
    if expected.is_err() && out.error.is_none() && conn.state() == State::Handshake {
        conn.recv_eof();
        drain(&mut conn, &mut out, &mut no_op);
    }
    let tx = take_transmit(&mut conn);

    match expected {
        Ok(Status::Complete((response, n))) => {
            assert_eq!(
                out.events.first(),
                Some(&Event::Accepted(Box::new(response)))
            );
            // The reference gets the head alone, then the rest in one read.
            let (mut reference, _) = new_client();
            let mut ref_out = Outcome::default();
            feed(
                &mut reference,
                &mut ref_out,
                &res[..n],
                &mut Chunker::new(0),
                &mut no_op,
            );
            assert!(matches!(ref_out.events.as_slice(), [Event::Accepted(_)]));
            ref_out.events.clear();
            feed(
                &mut reference,
                &mut ref_out,
                &res[n..],
                &mut Chunker::new(0),
                &mut no_op,
            );
            if eof {
                reference.recv_eof();
                drain(&mut reference, &mut ref_out, &mut no_op);
            }
            assert_eq!(
                &out.events[1..],
                &ref_out.events[..],
                "events after the head"
            );
            assert_eq!(out.error, ref_out.error, "error after the head");
            assert_eq!(
                tx,
                take_transmit(&mut reference),
                "frames sent after the 101"
            );
            let mut peer = PeerCheck::new(Role::Client);
            peer.push(&tx);
        }
        Ok(Status::Partial) => {
            assert!(!eof, "Partial at EOF");
            assert!(out.events.is_empty(), "{:?}", out.events);
            assert_eq!(out.error, None);
            assert_eq!(conn.state(), State::Handshake);
            assert!(tx.is_empty());
        }
        Err(e) => {
            assert!(out.events.is_empty(), "{:?}", out.events);
            assert_eq!(out.error, Some(Error::Handshake(e.clone())));
            assert_eq!(conn.state(), State::Failed);
            assert!(
                tx.is_empty(),
                "a client sent {tx:?} after a failed handshake"
            );
            assert_eq!(conn.poll_event(), Err(Error::Handshake(e)));
            assert!(conn.should_close_transport());
        }
    }
});
