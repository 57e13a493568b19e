//! The opening handshake through [`Connection`]: a head that trickles in is scanned once,
//! a request with a body is refused, and the Origin allow-list. (The handshake's parsers
//! are tested in `src/handshake/`.)
#![allow(clippy::field_reassign_with_default)] // Config is built as embedders build it

use super::*;
use crate::error::HandshakeError;
use crate::handshake::AllowedOrigins;
use crate::time::test_epoch;

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// REQUEST with `extra` header lines (each ending in CRLF) and the empty line.
fn request(extra: &str) -> Vec<u8> {
    [REQUEST, extra.as_bytes(), b"\r\n"].concat()
}

/// A request padded with headers to about `size` bytes.
fn padded_request(size: usize) -> Vec<u8> {
    let mut extra = String::new();
    while REQUEST.len() + extra.len() < size - 60 {
        extra.push_str("X-Pad: 0123456789012345678901234567890123456789\r\n");
    }
    request(&extra)
}

/// Feeds `input` to a server `chunk` bytes per `recv`, polling after each, and returns
/// the events and the result that ended the polling (an error, or `Ok` when the input ran
/// out), and the connection.
fn serve(
    config: Config,
    input: &[u8],
    chunk: usize,
) -> (Vec<Event>, Result<(), Error>, Connection) {
    let mut c = Connection::server(config, test_epoch());
    let mut events = Vec::new();
    for piece in input.chunks(chunk) {
        let mut piece = piece;
        while !piece.is_empty() {
            let n = c.recv(piece);
            piece = &piece[n..];
            loop {
                match c.poll_event() {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => break,
                    Err(e) => return (events, Err(e), c),
                }
            }
            if n == 0 {
                return (events, Ok(()), c);
            }
        }
    }
    (events, Ok(()), c)
}

/// The status line of what the server queued.
fn status_line(c: &mut Connection) -> String {
    let out = String::from_utf8_lossy(c.poll_transmit()).into_owned();
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_16k_head_one_byte_per_recv_is_scanned_in_linear_time() {
    let config = Config::default();
    let head = padded_request(config.max_handshake_size);
    assert!(head.len() > 16_000 && head.len() <= config.max_handshake_size);
    let mut config = config;
    config.max_headers = 1000;
    let (events, result, c) = serve(config.clone(), &head, 1);
    assert_eq!(result, Ok(()));
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0], Event::Request(r) if r.path() == "/chat"));
    // Once searched, parsed at 1, 2, 4, ... bytes and once whole: under 4 n. A parse on
    // every read looked at n²/2 bytes (134 million here).
    assert!(
        c.head_scan.scanned <= 4 * head.len(),
        "{} bytes looked at for a head of {}",
        c.head_scan.scanned,
        head.len()
    );
    // The same request in one read gives the same event.
    let (whole, result, _) = serve(config, &head, head.len());
    assert_eq!(result, Ok(()));
    assert_eq!(whole, events);
}

#[test]
fn a_head_too_large_one_byte_per_recv_is_still_431() {
    let mut config = Config::default();
    config.max_headers = 1000;
    let head = padded_request(config.max_handshake_size + 4000);
    for chunk in [1, 7, head.len()] {
        let (events, result, mut c) = serve(config.clone(), &head, chunk);
        assert!(events.is_empty());
        assert_eq!(
            result,
            Err(Error::Handshake(HandshakeError::HeadTooLarge {
                limit: config.max_handshake_size
            })),
            "chunk {chunk}"
        );
        assert_eq!(
            status_line(&mut c),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        assert!(c.head_scan.scanned <= 4 * config.max_handshake_size + 4);
    }
}

#[test]
fn garbage_is_refused_early_whatever_the_split() {
    // A TLS ClientHello sent to a plain port: 400 without waiting for a head to end.
    let hello = [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        &[0u8; 200],
    ]
    .concat();
    for chunk in [1, 3, hello.len()] {
        let (_, result, mut c) = serve(Config::default(), &hello, chunk);
        assert!(
            matches!(
                result,
                Err(Error::Handshake(HandshakeError::MalformedHttp(_)))
            ),
            "chunk {chunk}: {result:?}"
        );
        assert_eq!(status_line(&mut c), "HTTP/1.1 400 Bad Request");
    }
}

#[test]
fn a_head_cut_by_the_end_of_stream_is_unexpected_eof() {
    let head = request("");
    let mut c = Connection::server(Config::default(), test_epoch());
    for b in &head[..head.len() - 1] {
        assert_eq!(c.recv(core::slice::from_ref(b)), 1);
        assert_eq!(c.poll_event(), Ok(None));
    }
    c.recv_eof();
    assert_eq!(
        c.poll_event(),
        Err(Error::Handshake(HandshakeError::UnexpectedEof))
    );
}

#[test]
fn a_request_with_a_body_is_400() {
    for extra in ["Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n"] {
        // The "body" would be taken for frames: it is never looked at.
        let input = [request(extra), b"\x81\x85abcdefghi".to_vec()].concat();
        for chunk in [1, input.len()] {
            let (events, result, mut c) = serve(Config::default(), &input, chunk);
            assert!(events.is_empty(), "{extra:?}");
            assert_eq!(
                result,
                Err(Error::Handshake(HandshakeError::RequestBody)),
                "{extra:?}"
            );
            assert_eq!(status_line(&mut c), "HTTP/1.1 400 Bad Request");
            assert_eq!(c.state(), State::Failed);
        }
    }
    let (events, result, _) = serve(Config::default(), &request("Content-Length: 0\r\n"), 1);
    assert_eq!(result, Ok(()));
    assert!(matches!(&events[..], [Event::Request(_)]));
}

fn with_origins(entries: &[&str]) -> Config {
    let mut config = Config::default();
    config.allowed_origins = Some(AllowedOrigins::new(entries).unwrap());
    config
}

#[test]
fn a_refused_origin_is_403_before_the_request_is_reported() {
    let config = with_origins(&["https://example.com", "https://*.example.com"]);
    for origin in [
        "https://evil.com",
        "https://example.com.evil.com",
        "http://example.com",
        "null",
    ] {
        let input = request(&format!("Origin: {origin}\r\n"));
        for chunk in [1, input.len()] {
            let (events, result, mut c) = serve(config.clone(), &input, chunk);
            assert!(events.is_empty(), "{origin}");
            assert_eq!(
                result,
                Err(Error::Handshake(HandshakeError::OriginRefused)),
                "{origin}"
            );
            let out = String::from_utf8_lossy(c.poll_transmit()).into_owned();
            assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{out}");
            assert!(
                !out.contains(origin),
                "the refused value is not echoed: {out}"
            );
            assert_eq!(c.state(), State::Failed);
        }
    }
}

#[test]
fn an_allowed_or_missing_origin_is_reported() {
    let config = with_origins(&["https://example.com", "https://*.example.com"]);
    for extra in [
        "Origin: https://example.com\r\n",
        "Origin: https://Chat.Example.com:443\r\n",
        "",
    ] {
        let (events, result, _) = serve(config.clone(), &request(extra), 5);
        assert_eq!(result, Ok(()), "{extra:?}");
        assert!(matches!(&events[..], [Event::Request(_)]), "{extra:?}");
    }
    // Without a list any Origin is reported, as before.
    let (events, _, _) = serve(Config::default(), &request("Origin: null\r\n"), 1000);
    assert!(matches!(&events[..], [Event::Request(r)] if r.origin() == Some("null")));
}
