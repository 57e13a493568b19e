//! The server side: reading the client's opening handshake (RFC 6455 §4.2.1) and the
//! application's answer to it ([`Accept`], [`Reject`]).

use crate::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::header_values;
use super::negotiate::{ExtensionOffer, parse_extensions, parse_protocols};
use super::{Header, ascii_text, find_header, has_token, head_window, header_slots};
use super::{first_two, httparse_reason, single_header, trim_ows};
use crate::Status;
use crate::error::HandshakeError;

/// A client's opening handshake that passed every check of RFC 6455 §4.2.1. Built only
/// by [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    headers: Vec<Header>,
    host: String,
    origin: Option<String>,
    key: String,
    protocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
}

impl Request {
    /// The request method (always `GET`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request-target as sent, query included: the /resource name/ of §4.2.2 step 4
    /// ("an identifier for the service provided by the server"), or an absolute URI.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every header, names as sent, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// The `Host` header: the server's authority (§4.2.1 item 2).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The `Origin` header, if sent: "This header field is sent by all browser clients"
    /// (§4.2.1 item 7). A server that does not check it accepts scripts from anywhere
    /// (§10.2).
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The `Sec-WebSocket-Key` as sent (trimmed), the input of
    /// [`accept_key`](super::accept_key).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The offered subprotocols, in the client's order of preference (§4.1 item 10).
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The offered extensions, in the client's order of preference (§9.1).
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }
}

/// Parses and checks a client's opening handshake (RFC 6455 §4.2.1) from the start of
/// `buf`.
///
/// - `Ok(Status::Partial)`: the head is incomplete and `buf` holds at most `max_head`
///   bytes; call again with more.
/// - `Ok(Status::Complete((request, head_len)))`: the head is the first `head_len` bytes.
///   The bytes after it are WebSocket frames: they are not consumed.
/// - `Err(e)`: answer with [`write_error_response`](super::write_error_response)
///   (status [`HandshakeError::status_hint`]) and close. An incomplete head longer than
///   `max_head`, or a complete one longer than that, is
///   [`HeadTooLarge`](HandshakeError::HeadTooLarge) (431); more than `max_headers` header
///   lines is [`TooManyHeaders`](HandshakeError::TooManyHeaders) (431).
///
/// Only the first `max_head` bytes are ever examined, so the result does not depend on
/// how the input was split into reads.
///
/// The checks run in this order, so that the most specific error wins:
///
/// 1. method `GET` ([`MethodNotGet`](HandshakeError::MethodNotGet), 405);
/// 2. HTTP/1.1 or later ([`HttpVersion`](HandshakeError::HttpVersion));
/// 3. exactly one `Host` ([`MissingHost`](HandshakeError::MissingHost));
/// 4. `Upgrade` with the token `websocket`
///    ([`MissingUpgrade`](HandshakeError::MissingUpgrade));
/// 5. `Connection` with the token `Upgrade`
///    ([`MissingConnectionUpgrade`](HandshakeError::MissingConnectionUpgrade));
/// 6. exactly one `Sec-WebSocket-Version: 13`
///    ([`UnsupportedVersion`](HandshakeError::UnsupportedVersion), 426). This comes
///    before the key because a client speaking another version may format its other
///    headers differently, and what it needs is the 426 with `Sec-WebSocket-Version: 13`
///    that lets it retry (§4.4);
/// 7. exactly one `Sec-WebSocket-Key` decoding to 16 bytes
///    ([`InvalidKey`](HandshakeError::InvalidKey));
/// 8. at most one `Origin`, ASCII (RFC 6454 §7.1)
///    ([`InvalidHeader("Origin")`](HandshakeError::InvalidHeader));
/// 9. `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` grammars
///    ([`parse_protocols`], [`parse_extensions`]).
///
/// Everything else is 400 (§4.2.1: "the server MUST stop processing the client's
/// handshake and return an HTTP response with an appropriate error code (such as 400 Bad
/// Request)").
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
    max_headers: usize,
) -> Result<Status<(Request, usize)>, HandshakeError> {
    let window = head_window(buf, max_head);
    let mut slots = header_slots(window, max_headers);
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= max_head => return Ok(Status::Partial),
        Ok(httparse::Status::Partial) => {
            return Err(HandshakeError::HeadTooLarge { limit: max_head });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(e) => return Err(HandshakeError::MalformedHttp(httparse_reason(e))),
    };
    // httparse fills every field of a complete request; the defaults are unreachable.
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    let version = req.version.unwrap_or_default();
    let headers: Vec<Header> = req.headers.iter().map(Header::from_httparse).collect();
    check_request(method, path, version, headers).map(|r| Status::Complete((r, head_len)))
}

/// The §4.2.1 checks on a request whose head was already parsed by someone else (an
/// HTTP server such as hyper, which then hands over the upgraded connection), in the
/// order documented on [`parse_request`]. `version` is the HTTP/1 minor version (1 for
/// HTTP/1.1). Answer with [`write_accept`](super::write_accept) (or its headers), then
/// drive frames with [`Connection::upgraded`](crate::Connection::upgraded).
pub fn check_request(
    method: &str,
    path: &str,
    version: u8,
    headers: Vec<Header>,
) -> Result<Request, HandshakeError> {
    // §4.2.1 item 1: "An HTTP/1.1 or higher GET request". Methods are case-sensitive
    // (RFC 7231 §4.1), so `get` is not GET.
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    // httparse accepts only HTTP/1.0 and HTTP/1.1 and reports the minor version.
    if version < 1 {
        return Err(HandshakeError::HttpVersion);
    }
    // §4.2.1 item 2: "A |Host| header field containing the server's authority." Two Host
    // headers make the authority ambiguous (RFC 7230 §5.4 answers them with 400).
    let host = single_header(&headers, "Host")
        .and_then(ascii_text)
        .ok_or(HandshakeError::MissingHost)?
        .to_owned();
    // §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket",
    // treated as an ASCII case-insensitive value."
    if !has_token(header_values(&headers, "Upgrade"), "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    // §4.2.1 item 4: "A |Connection| header field that includes the token "Upgrade",
    // treated as an ASCII case-insensitive value."
    if !has_token(header_values(&headers, "Connection"), "Upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value of 13." §4.4:
    // "If the server doesn't support the requested version, it MUST respond with a
    // |Sec-WebSocket-Version| header field ... containing all versions it is willing to
    // use" (added by write_error_response for this error's 426).
    if single_header(&headers, "Sec-WebSocket-Version").map(trim_ows) != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    // §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded ... value
    // that, when decoded, is 16 bytes in length."
    let key = single_header(&headers, "Sec-WebSocket-Key")
        .map(trim_ows)
        .and_then(ascii_text)
        .filter(|k| STANDARD.decode(k).is_ok_and(|nonce| nonce.len() == 16))
        .ok_or(HandshakeError::InvalidKey)?
        .to_owned();
    // §4.2.1 item 7: "Optionally, an |Origin| header field." Its value is the ASCII
    // serialization of an origin (RFC 6454 §6.1); a second one would let a proxy and
    // this server disagree on which origin to check.
    let origin = match first_two(&headers, "Origin") {
        (None, _) => None,
        (Some(o), None) => Some(
            ascii_text(o)
                .ok_or(HandshakeError::InvalidHeader("Origin"))?
                .to_owned(),
        ),
        (Some(_), Some(_)) => return Err(HandshakeError::InvalidHeader("Origin")),
    };
    let protocols = parse_protocols(header_values(&headers, "Sec-WebSocket-Protocol"))?;
    let extensions = parse_extensions(header_values(&headers, "Sec-WebSocket-Extensions"))?;
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        host,
        origin,
        key,
        protocols,
        extensions,
    })
}

/// The application's acceptance of a [`Request`] (RFC 6455 §4.2.2 step 5): the chosen
/// subprotocol, if any, and extra response headers. Written by
/// [`write_accept`](super::write_accept), which checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
    headers: Vec<Header>,
}

impl Accept {
    /// Accepts with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses a subprotocol. It must be one of [`Request::protocols`], exactly: "The
    /// value chosen MUST be derived from the client's handshake" (§4.2.2 step 4).
    #[must_use]
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Adds a response header (e.g. `Set-Cookie`, or `Sec-WebSocket-Extensions` for a
    /// negotiated extension).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// The chosen subprotocol.
    pub fn chosen_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The extra headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
}

/// The application's refusal of a [`Request`]: an HTTP status other than 101 (e.g. 403
/// for an unwanted origin, §4.2.2 step 4; 401 with `WWW-Authenticate`, step 2; a 3xx
/// redirect, step 3), extra headers and a body. Written by
/// [`write_reject`](super::write_reject), which checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    status: u16,
    headers: Vec<Header>,
    body: Bytes,
}

impl Reject {
    /// A refusal with `status`, no extra headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Sets the body (`Content-Length` is added when written).
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The extra headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The client handshake of RFC 6455 §1.2 / §1.3.
    pub(crate) const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    const MAX_HEAD: usize = 8192;
    const MAX_HEADERS: usize = 32;

    /// Parses `input` whole, one byte at a time (Partial until the last byte), and with
    /// trailing frame bytes (not consumed), and checks that all three agree.
    fn parse3(input: &[u8]) -> Result<Request, HandshakeError> {
        let whole = parse_request(input, MAX_HEAD, MAX_HEADERS);
        for end in 0..input.len() {
            match parse_request(&input[..end], MAX_HEAD, MAX_HEADERS) {
                Ok(Status::Partial) => {}
                other => {
                    // An error may be detected before the head ends; it must be final.
                    assert!(other.is_err(), "complete before the last byte at {end}");
                    assert_eq!(other, whole, "split at {end}");
                    return other.map(|_| unreachable!());
                }
            }
        }
        let mut trailing = input.to_vec();
        trailing.extend_from_slice(b"\x81\x05hello");
        let with_frames = parse_request(&trailing, MAX_HEAD, MAX_HEADERS);
        assert_eq!(with_frames, whole);
        match whole? {
            Status::Complete((req, n)) => {
                assert_eq!(n, input.len(), "head_len excludes the trailing bytes");
                Ok(req)
            }
            Status::Partial => panic!("complete input parsed as Partial"),
        }
    }

    /// RFC_REQUEST with header `name` replaced by `line` (or removed when empty).
    fn with(name: &str, line: &str) -> Vec<u8> {
        let text = core::str::from_utf8(RFC_REQUEST).unwrap();
        let mut out = String::new();
        for l in text.split_inclusive("\r\n") {
            if l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                if !line.is_empty() {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            } else {
                out.push_str(l);
            }
        }
        out.into_bytes()
    }

    fn rejected(input: &[u8]) -> (HandshakeError, u16) {
        let err = parse3(input).unwrap_err();
        let status = err.status_hint();
        (err, status)
    }

    #[test]
    fn rfc_1_2_sample_request_is_accepted() {
        let req = parse3(RFC_REQUEST).unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.protocols(), ["chat", "superchat"]);
        assert!(req.extensions().is_empty());
        assert_eq!(req.headers().len(), 7);
        assert_eq!(req.header("sec-websocket-version"), Some(&b"13"[..]));
        assert_eq!(req.header("X-Missing"), None);
    }

    #[test]
    fn path_keeps_the_query() {
        let input = String::from_utf8(RFC_REQUEST.to_vec())
            .unwrap()
            .replace("/chat", "/chat?room=1&x=%20");
        assert_eq!(
            parse3(input.as_bytes()).unwrap().path(),
            "/chat?room=1&x=%20"
        );
    }

    #[test]
    fn post_request_is_405() {
        let input = String::from_utf8(RFC_REQUEST.to_vec())
            .unwrap()
            .replacen("GET", "POST", 1);
        assert_eq!(
            rejected(input.as_bytes()),
            (HandshakeError::MethodNotGet, 405)
        );
    }

    #[test]
    fn lowercase_get_is_405() {
        let input = String::from_utf8(RFC_REQUEST.to_vec())
            .unwrap()
            .replacen("GET", "get", 1);
        assert_eq!(rejected(input.as_bytes()).0, HandshakeError::MethodNotGet);
    }

    #[test]
    fn http_1_0_request_is_400() {
        let input = String::from_utf8(RFC_REQUEST.to_vec())
            .unwrap()
            .replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert_eq!(
            rejected(input.as_bytes()),
            (HandshakeError::HttpVersion, 400)
        );
    }

    #[test]
    fn request_without_host_is_400() {
        assert_eq!(
            rejected(&with("Host", "")),
            (HandshakeError::MissingHost, 400)
        );
    }

    #[test]
    fn request_with_two_hosts_is_400() {
        let input = with("Host", "Host: a.example\r\nHost: b.example");
        assert_eq!(rejected(&input), (HandshakeError::MissingHost, 400));
    }

    #[test]
    fn request_with_non_ascii_host_is_400() {
        let input = with("Host", "Host: caf\u{e9}.example");
        assert_eq!(rejected(&input), (HandshakeError::MissingHost, 400));
    }

    #[test]
    fn request_without_upgrade_token_is_400() {
        assert_eq!(
            rejected(&with("Upgrade", "")),
            (HandshakeError::MissingUpgrade, 400)
        );
        assert_eq!(
            rejected(&with("Upgrade", "Upgrade: h2c")),
            (HandshakeError::MissingUpgrade, 400)
        );
    }

    #[test]
    fn upgrade_token_is_case_insensitive_in_a_list() {
        let input = with("Upgrade", "Upgrade: h2c, WebSocket");
        assert!(parse3(&input).is_ok());
    }

    #[test]
    fn request_without_connection_upgrade_is_400() {
        assert_eq!(
            rejected(&with("Connection", "Connection: keep-alive")),
            (HandshakeError::MissingConnectionUpgrade, 400)
        );
        assert_eq!(
            rejected(&with("Connection", "")),
            (HandshakeError::MissingConnectionUpgrade, 400)
        );
    }

    #[test]
    fn connection_token_found_across_repeated_headers() {
        let input = with(
            "Connection",
            "Connection: keep-alive\r\nConnection: upgrade",
        );
        assert!(parse3(&input).is_ok());
        let input = with("Connection", "Connection: keep-alive, UPGRADE");
        assert!(parse3(&input).is_ok());
    }

    #[test]
    fn version_8_gets_426_with_version_header() {
        let input = with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8");
        assert_eq!(rejected(&input), (HandshakeError::UnsupportedVersion, 426));
        let mut out = Vec::new();
        super::super::write_error_response(&rejected(&input).0, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn missing_version_is_426() {
        assert_eq!(
            rejected(&with("Sec-WebSocket-Version", "")),
            (HandshakeError::UnsupportedVersion, 426)
        );
    }

    #[test]
    fn repeated_version_is_426() {
        let input = with(
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13",
        );
        assert_eq!(rejected(&input), (HandshakeError::UnsupportedVersion, 426));
    }

    #[test]
    fn version_is_checked_before_the_key() {
        // An old client with an old-style key should learn which version to speak (§4.4).
        let input = with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8");
        let input = String::from_utf8(input)
            .unwrap()
            .replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
        assert_eq!(
            rejected(input.as_bytes()),
            (HandshakeError::UnsupportedVersion, 426)
        );
    }

    #[test]
    fn key_not_decoding_to_16_bytes_is_400() {
        for bad in [
            "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P", // 15 bytes, unpadded
            "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=", // 17 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ", // missing padding
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!", // not base64
            "",
        ] {
            assert_eq!(
                rejected(&with("Sec-WebSocket-Key", bad)),
                (HandshakeError::InvalidKey, 400),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn repeated_key_is_400() {
        let input = with(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        );
        assert_eq!(rejected(&input), (HandshakeError::InvalidKey, 400));
    }

    #[test]
    fn non_ascii_origin_is_400() {
        let input = with("Origin", "Origin: http://caf\u{e9}.example");
        assert_eq!(
            rejected(&input),
            (HandshakeError::InvalidHeader("Origin"), 400)
        );
    }

    #[test]
    fn repeated_origin_is_400() {
        let input = with(
            "Origin",
            "Origin: http://a.example\r\nOrigin: http://b.example",
        );
        assert_eq!(
            rejected(&input),
            (HandshakeError::InvalidHeader("Origin"), 400)
        );
    }

    #[test]
    fn request_without_origin_is_accepted() {
        assert_eq!(parse3(&with("Origin", "")).unwrap().origin(), None);
    }

    #[test]
    fn invalid_protocol_token_is_400() {
        let input = with(
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Protocol: chat, a b",
        );
        assert_eq!(
            rejected(&input),
            (HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"), 400)
        );
    }

    #[test]
    fn protocols_listed_across_repeated_headers() {
        let input = with(
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat, v2",
        );
        assert_eq!(
            parse3(&input).unwrap().protocols(),
            ["chat", "superchat", "v2"]
        );
    }

    #[test]
    fn extensions_are_parsed_from_the_request() {
        let input = with(
            "Origin",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Sec-WebSocket-Extensions: x-foo",
        );
        let req = parse3(&input).unwrap();
        assert_eq!(req.extensions().len(), 2);
        assert_eq!(req.extensions()[0].name, "permessage-deflate");
        assert_eq!(req.extensions()[1].name, "x-foo");
    }

    #[test]
    fn malformed_extensions_are_400() {
        let input = with("Origin", "Sec-WebSocket-Extensions: foo; =1");
        assert_eq!(
            rejected(&input),
            (
                HandshakeError::InvalidHeader("Sec-WebSocket-Extensions"),
                400
            )
        );
    }

    #[test]
    fn malformed_http_is_400() {
        let (err, status) = rejected(b"GET /chat HTTP/1.1\r\nHost server\r\n\r\n");
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
        assert_eq!(status, 400);
    }

    #[test]
    fn head_too_large_is_431() {
        // Incomplete and over the limit.
        let err = parse_request(&RFC_REQUEST[..100], 64, MAX_HEADERS).unwrap_err();
        assert_eq!(err, HandshakeError::HeadTooLarge { limit: 64 });
        assert_eq!(err.status_hint(), 431);
        // Incomplete but within the limit: wait.
        assert_eq!(
            parse_request(&RFC_REQUEST[..64], 64, MAX_HEADERS),
            Ok(Status::Partial)
        );
        // Complete, but longer than the limit.
        let limit = RFC_REQUEST.len() - 1;
        assert_eq!(
            parse_request(RFC_REQUEST, limit, MAX_HEADERS),
            Err(HandshakeError::HeadTooLarge { limit })
        );
        // Exactly at the limit is fine.
        assert!(parse_request(RFC_REQUEST, RFC_REQUEST.len(), MAX_HEADERS).is_ok());
    }

    #[test]
    fn too_many_headers_is_431() {
        let err = parse_request(RFC_REQUEST, MAX_HEAD, 3).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders);
        assert_eq!(err.status_hint(), 431);
    }

    #[test]
    fn empty_input_is_partial() {
        assert_eq!(
            parse_request(b"", MAX_HEAD, MAX_HEADERS),
            Ok(Status::Partial)
        );
    }

    #[test]
    fn accept_and_reject_builders_keep_what_they_are_given() {
        let a = Accept::new().protocol("chat").header("X-A", "1");
        assert_eq!(a.chosen_protocol(), Some("chat"));
        assert_eq!(a.headers()[0].value, b"1");
        let r = Reject::new(403).header("X-B", "2").body("no");
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()[0].name, "X-B");
        assert_eq!(&r.body_bytes()[..], b"no");
    }
}
