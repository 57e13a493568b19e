//! Reading an HTTP head that arrives in pieces without parsing it again on every read.
//!
//! [`parse_request`](super::parse_request) and [`parse_response`](super::parse_response)
//! are pure: called on every read of a head that trickles in, each call parses the whole
//! buffer again, and a head sent a byte at a time costs O(n²) (the shape of tungstenite's
//! RUSTSEC-2023-0065; bounded here by `Config::max_handshake_size`). A [`HeadScan`] keeps,
//! between calls, where the search for the end of the head (the empty line) stopped, and
//! lets the parser run only when its answer can have changed:
//!
//! - the end of the head has been found (the parse that completes it);
//! - the buffer holds more than `max_head` bytes (431, or the error in the window);
//! - the transport ended (an incomplete head is an error, or a refusal's body is whole);
//! - a refusal's body (client) has all its `Content-Length` bytes;
//! - the buffer has doubled since the last parse: a peer that sends garbage (a TLS
//!   ClientHello to a plain port, a line without `HTTP/1.1`) still hears 400 early, and
//!   the parses of one head add up to at most about twice its length.
//!
//! Every byte is searched once and the parser runs O(log n) times plus once, so a head
//! costs O(n) however it is split; the outcome (request, response, error) is the one the
//! pure parsers give for the same bytes. An error inside a head that trickles in may be
//! reported a little later than a parse on every read would (when the buffer doubles or
//! the head ends), never differently.

use crate::Status;
use crate::error::HandshakeError;

use super::request::{ClientRequest, Request, parse_request};
use super::response::{Response, parse_response_waiting};

/// Where the search for the end of the line that the scanner is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Line {
    /// Before the start line, among the empty lines that httparse skips.
    #[default]
    Leading,
    /// After a CR among those empty lines.
    LeadingCr,
    /// Inside a non-empty line.
    Text,
    /// At the start of a line after a non-empty one.
    Start,
    /// After a CR at the start of a line.
    StartCr,
}

/// The progress of one handshake head through its reads: see the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScan {
    /// Bytes at the start of the buffer already searched for the end of the head.
    searched: usize,
    line: Line,
    /// The buffer length at which parsing can succeed: just past the empty line once
    /// found, or the end of a refusal's body.
    ready_at: Option<usize>,
    /// A parse at a found end answered Partial (not expected for a request): from then
    /// on only the other triggers run the parser.
    end_unreliable: bool,
    /// The buffer length and end-of-stream flag of the last parse.
    parsed_len: usize,
    parsed_eof: bool,
    /// Bytes looked at, by the search and by every parse (tests check it is O(n)).
    #[cfg(test)]
    pub(crate) scanned: usize,
}

impl HeadScan {
    /// Searches the new bytes of `window` for the end of the head, the way httparse reads
    /// it: empty lines before the start line are skipped, lines end with LF or CRLF, and
    /// the head ends with the first empty line after the start line.
    fn search(&mut self, window: &[u8]) {
        if self.ready_at.is_some() || self.end_unreliable {
            return;
        }
        let new = window.get(self.searched..).unwrap_or_default();
        #[cfg(test)]
        {
            self.scanned += new.len();
        }
        for (i, &b) in new.iter().enumerate() {
            self.line = match (self.line, b) {
                (Line::Leading, b'\r') => Line::LeadingCr,
                (Line::Leading | Line::LeadingCr, b'\n') => Line::Leading,
                (Line::Leading | Line::LeadingCr, _) => Line::Text,
                (Line::Text, b'\n') => Line::Start,
                (Line::Text, _) => Line::Text,
                (Line::Start, b'\r') => Line::StartCr,
                (Line::Start | Line::StartCr, b'\n') => {
                    self.ready_at = Some(self.searched + i + 1);
                    self.searched += i + 1;
                    return;
                }
                (Line::Start | Line::StartCr, _) => Line::Text,
            };
        }
        self.searched += new.len();
    }

    /// Whether the parser must run on `buf` now (see the module docs); when not, its
    /// answer would be `Partial` as before, or the same error a little later.
    fn due(&mut self, buf: &[u8], max_head: usize, eof: bool) -> bool {
        let len = buf.len();
        if len == self.parsed_len && eof == self.parsed_eof {
            return false;
        }
        self.search(super::head_window(buf, max_head));
        eof || len > max_head
            || self.ready_at.is_some_and(|at| len >= at)
            || len >= self.parsed_len.saturating_mul(2)
    }

    /// Records a parse of `len` bytes that answered Partial; `wait` is the length at
    /// which a refusal's body is complete, when that is what is missing.
    fn parsed(&mut self, len: usize, eof: bool, partial: bool, wait: Option<usize>) {
        self.parsed_len = len;
        self.parsed_eof = eof;
        if partial && self.ready_at.is_some_and(|at| len >= at) {
            match wait {
                Some(at) => self.ready_at = Some(at),
                None => {
                    self.ready_at = None;
                    self.end_unreliable = true;
                }
            }
        }
    }

    /// Counts a parse of `buf` (tests only).
    #[allow(clippy::unused_self)]
    fn count_parse(&mut self, _buf: &[u8], _max_head: usize) {
        #[cfg(test)]
        {
            self.scanned += super::head_window(_buf, _max_head).len();
        }
    }

    /// [`parse_request`] for a head that arrives in pieces in `buf` (the buffer only
    /// grows between calls; a new head needs a new `HeadScan`). `eof`: the transport has
    /// ended; an incomplete head is then still `Partial` (the caller decides).
    pub(crate) fn parse_request(
        &mut self,
        buf: &[u8],
        max_head: usize,
        max_headers: usize,
        eof: bool,
    ) -> Result<Status<(Request, usize)>, HandshakeError> {
        if !self.due(buf, max_head, eof) {
            return Ok(Status::Partial);
        }
        self.count_parse(buf, max_head);
        let result = parse_request(buf, max_head, max_headers);
        self.parsed(buf.len(), eof, matches!(result, Ok(Status::Partial)), None);
        result
    }

    /// [`parse_response`](super::parse_response) for a head that arrives in pieces in
    /// `buf`, as [`parse_request`](Self::parse_request).
    pub(crate) fn parse_response(
        &mut self,
        buf: &[u8],
        max_head: usize,
        max_headers: usize,
        key: &str,
        request: &ClientRequest,
        eof: bool,
    ) -> Result<Status<(Response, usize)>, HandshakeError> {
        if !self.due(buf, max_head, eof) {
            return Ok(Status::Partial);
        }
        self.count_parse(buf, max_head);
        let mut wait = None;
        let result =
            parse_response_waiting(buf, max_head, max_headers, key, request, eof, &mut wait);
        self.parsed(buf.len(), eof, matches!(result, Ok(Status::Partial)), wait);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::request::tests::RFC_REQUEST;
    use crate::handshake::tests::near;
    use crate::handshake::{ClientRequest, parse_response};
    use proptest::prelude::*;

    const MAX_HEAD: usize = 1024;
    const MAX_HEADERS: usize = 32;
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    const RFC_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\
        \r\n";

    fn chat_request() -> ClientRequest {
        ClientRequest::new("ws://server.example.com/chat")
            .unwrap()
            .protocol("chat")
            .protocol("superchat")
    }

    /// Feeds `input` through a `HeadScan` in pieces ending at `cuts` (then whole, then
    /// with the end of stream) and checks it against the pure parser: an answer other
    /// than Partial is the pure parser's for the same bytes, a complete head is found as
    /// soon as its last byte arrives, and at the end of stream both agree.
    fn check_request_splits(input: &[u8], cuts: &[usize]) {
        let pure = |b: &[u8]| parse_request(b, MAX_HEAD, MAX_HEADERS);
        let mut scan = HeadScan::default();
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        ends.sort_unstable();
        ends.push(input.len());
        for end in ends {
            let got = scan.parse_request(&input[..end], MAX_HEAD, MAX_HEADERS, false);
            let want = pure(&input[..end]);
            match got {
                Ok(Status::Partial) => assert!(
                    !matches!(want, Ok(Status::Complete(_))),
                    "complete head at {end} not seen"
                ),
                got => return assert_eq!(got, want, "split at {end}"),
            }
        }
        let got = scan.parse_request(input, MAX_HEAD, MAX_HEADERS, true);
        assert_eq!(got, pure(input), "at end of stream");
    }

    /// As [`check_request_splits`] for a response (the end of stream changes the pure
    /// parser's answer too).
    fn check_response_splits(input: &[u8], cuts: &[usize]) {
        let request = chat_request();
        let pure = |b: &[u8], eof| parse_response(b, MAX_HEAD, MAX_HEADERS, KEY, &request, eof);
        let mut scan = HeadScan::default();
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        ends.sort_unstable();
        ends.push(input.len());
        for end in ends {
            let got =
                scan.parse_response(&input[..end], MAX_HEAD, MAX_HEADERS, KEY, &request, false);
            let want = pure(&input[..end], false);
            match got {
                Ok(Status::Partial) => assert!(
                    want.is_err() || matches!(want, Ok(Status::Partial)),
                    "answer at {end} not seen: {want:?}"
                ),
                got => return assert_eq!(got, want, "split at {end}"),
            }
        }
        let got = scan.parse_response(input, MAX_HEAD, MAX_HEADERS, KEY, &request, true);
        assert_eq!(got, pure(input, true), "at end of stream");
    }

    fn byte_by_byte(input: &[u8]) -> Vec<usize> {
        (0..=input.len()).collect()
    }

    #[test]
    fn request_byte_by_byte_matches_the_pure_parser() {
        let mut with_frames = RFC_REQUEST.to_vec();
        with_frames.extend_from_slice(b"\x81\x85abcdefghi");
        let bad_line = b"GET /chat HTTP/1.1\r\nHost x\r\n\r\n".to_vec();
        let leading = [b"\r\n\n\r\n".as_slice(), RFC_REQUEST].concat();
        let lf_only = String::from_utf8(RFC_REQUEST.to_vec())
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes();
        let too_large = [RFC_REQUEST, &[b'a'; MAX_HEAD]].concat();
        let too_large_no_end = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; MAX_HEAD]].concat();
        let tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
        let bare_cr = b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n".to_vec();
        for input in [
            RFC_REQUEST.to_vec(),
            with_frames,
            bad_line,
            leading,
            lf_only,
            too_large,
            too_large_no_end,
            tls_hello,
            bare_cr,
            b"\r\r".to_vec(),
            Vec::new(),
        ] {
            check_request_splits(&input, &byte_by_byte(&input));
            check_request_splits(&input, &[]);
            check_request_splits(&input, &[3, 40, 41, 200]);
        }
    }

    #[test]
    fn response_byte_by_byte_matches_the_pure_parser() {
        let refusal = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!extra".to_vec();
        let refusal_short = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 50\r\n\r\nnope".to_vec();
        let refusal_no_length = b"HTTP/1.1 500 Oops\r\n\r\nsomething broke".to_vec();
        let wrong_key = String::from_utf8(RFC_RESPONSE.to_vec())
            .unwrap()
            .replace("s3pP", "AAAA")
            .into_bytes();
        for input in [
            RFC_RESPONSE.to_vec(),
            refusal,
            refusal_short,
            refusal_no_length,
            wrong_key,
            b"HTTP/1.1 101\r\nX: \x01\r\n\r\n".to_vec(),
            [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; MAX_HEAD]].concat(),
        ] {
            check_response_splits(&input, &byte_by_byte(&input));
            check_response_splits(&input, &[]);
            check_response_splits(&input, &[5, 60, 61, 200]);
        }
    }

    #[test]
    fn a_refusal_is_reported_once_its_body_is_whole() {
        let request = chat_request();
        let input = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!";
        let mut scan = HeadScan::default();
        for end in 0..input.len() {
            let got =
                scan.parse_response(&input[..end], MAX_HEAD, MAX_HEADERS, KEY, &request, false);
            assert_eq!(got, Ok(Status::Partial), "at {end}");
        }
        let got = scan.parse_response(input, MAX_HEAD, MAX_HEADERS, KEY, &request, false);
        assert!(
            matches!(got, Err(HandshakeError::Rejected(ref r)) if r.status == 403 && r.body == b"nope!"[..]),
            "{got:?}"
        );
    }

    #[test]
    fn a_head_byte_by_byte_is_scanned_in_linear_time() {
        let max_head = 16 << 10;
        let mut head = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n"
            .to_vec();
        while head.len() < max_head - 100 {
            head.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let mut scan = HeadScan::default();
        for end in 0..head.len() {
            let got = scan.parse_request(&head[..end], max_head, 1000, false);
            assert_eq!(got, Ok(Status::Partial));
        }
        let got = scan.parse_request(&head, max_head, 1000, false);
        assert!(matches!(got, Ok(Status::Complete((_, n))) if n == head.len()));
        // Searched once (n), parsed at 1, 2, 4, ... bytes (< 2n) and once whole (n).
        assert!(
            scan.scanned <= 4 * head.len(),
            "{} bytes looked at for a head of {}",
            scan.scanned,
            head.len()
        );
    }

    proptest! {
        #[test]
        fn any_request_split_anyhow_matches_the_pure_parser(
            input in near(RFC_REQUEST),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            check_request_splits(&input, &cuts);
        }

        #[test]
        fn line_endings_split_anyhow_match_the_pure_parser(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "GET / HTTP/1.1", "HTTP/1.1 101 OK", "\r\n", "\n", "\r", "Host: a",
                    "X:", " ", "b", "\t",
                ]),
                0..24,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let input = pieces.concat().into_bytes();
            check_request_splits(&input, &cuts);
            check_response_splits(&input, &cuts);
        }

        #[test]
        fn any_response_split_anyhow_matches_the_pure_parser(
            input in near(RFC_RESPONSE),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            check_response_splits(&input, &cuts);
        }
    }
}
