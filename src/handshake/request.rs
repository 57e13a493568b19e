//! The opening request, RFC 6455 §4.1 and §4.2.1, both ways: the client builds it from a
//! `ws://`/`wss://` URL and writes it ([`ClientRequest`], [`ClientRequest::write`]); the
//! server parses and checks it ([`parse_request`], or [`check_request`] for a head that an
//! HTTP server already parsed) into a [`Request`].

use crate::prelude::*;

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::negotiate::{ExtensionOffer, is_token, parse_extensions, parse_protocols};
use super::url::{WsUrl, parse_ws_url};
use super::{Header, ascii_text, find_header, first_two, has_token, head_window};
use super::{header_slots, header_values, httparse_reason, is_reserved, put_header};
use super::{single_header, trim_ows, valid_header};
use crate::Status;
use crate::error::HandshakeError;

/// Why a [`ClientRequest`] could not be built or written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The URL is not a valid `ws://` or `wss://` URI (RFC 6455 §3); says what is wrong.
    InvalidUrl(&'static str),
    /// A header name or value that would corrupt the HTTP head, a header the handshake
    /// writes itself, an extension that breaks the §9.1 grammar, or a key that is not
    /// base64 of 16 bytes.
    InvalidHeader,
    /// A subprotocol that is not a token, or offered twice (§4.1 item 10).
    InvalidProtocol,
    /// No entropy to seed the RNG: the operating system's source or the embedder's
    /// generator failed (`Config::seed_from`), or a `no_std` build has no
    /// `Config::rng_seed`.
    Entropy,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid WebSocket URL: {why}"),
            Self::InvalidHeader => f.write_str("invalid header, extension or key"),
            Self::InvalidProtocol => f.write_str("subprotocol is not a token or is repeated"),
            Self::Entropy => f.write_str("no entropy to seed the RNG"),
        }
    }
}

impl core::error::Error for RequestError {}

/// Headers [`ClientRequest::write`] writes itself: set them with the builder methods,
/// so that [`parse_response`] checks the answer against what was really offered.
const CLIENT_OWN_HEADERS: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Origin",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

/// A client's opening handshake (RFC 6455 §4.1), built from a `ws://` or `wss://` URL.
///
/// ```
/// # use wsengine::handshake::ClientRequest;
/// let req = ClientRequest::new("ws://[::1]:9001/chat?x=1")?
///     .origin("http://example.com")
///     .protocol("chat");
/// assert_eq!(req.host_header(), "[::1]:9001");
/// assert_eq!(req.resource(), "/chat?x=1");
/// # Ok::<(), wsengine::handshake::RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    host: String,
    port: u16,
    secure: bool,
    resource: String,
    host_header: String,
    origin: Option<String>,
    protocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
    headers: Vec<Header>,
}

impl ClientRequest {
    /// Parses a WebSocket URI (RFC 6455 §3):
    ///
    /// ```text
    /// ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]
    /// wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]
    /// ```
    ///
    /// The scheme is matched case-insensitively; the host is a reg-name or IPv4 address
    /// (lowercased) or an IPv6 literal in brackets; the port defaults to 80 (`ws`) or
    /// 443 (`wss`), and an empty port (`ws://h:/`) means the default (RFC 3986 §3.2.3).
    /// Rejected: other schemes, userinfo (`user@host`: credentials do not belong in a
    /// URL that ends up in logs; send an `Authorization` header), an empty host, port 0
    /// or above 65535, characters outside RFC 3986 in the path or query, and any `#`:
    /// "Fragment identifiers are meaningless in the context of WebSocket URIs and MUST
    /// NOT be used on these URIs. As with any URI scheme, the character "#", when not
    /// indicating the start of a fragment, MUST be escaped as %23."
    pub fn new(url: &str) -> Result<Self, RequestError> {
        let WsUrl {
            host,
            port,
            secure,
            resource,
            host_header,
        } = parse_ws_url(url)?;
        Ok(Self {
            host,
            port,
            secure,
            resource,
            host_header,
            origin: None,
            protocols: Vec::new(),
            extensions: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Sets `Origin` (§4.1 item 8: required from browsers, optional otherwise).
    #[must_use]
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offers a subprotocol; call again for more, in order of preference (§4.1 item 10).
    #[must_use]
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Offers an extension; call again for more, in order of preference (§9.1).
    #[must_use]
    pub fn extension(mut self, offer: ExtensionOffer) -> Self {
        self.extensions.push(offer);
        self
    }

    /// Adds a header (e.g. `Authorization`, `Cookie`; §4.1 item 12).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// The host to connect to: a lowercased name or IPv4 address, or an IPv6 address
    /// without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to (80 or 443 unless the URL gave one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL was `wss://`: the connection MUST run over TLS (§4.1 step 5).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The /resource name/ (§3): path (at least `/`) and query.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The `Host` header value: the host (IPv6 in brackets) and `:port` when it is not
    /// the scheme's default.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// The `Origin` to send, if any.
    pub fn origin_value(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The offered subprotocols, in order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The offered extensions, in order.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// The extra headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Appends the opening handshake (RFC 6455 §4.1) with `key` as `Sec-WebSocket-Key`
    /// (from [`generate_key`](super::generate_key)):
    ///
    /// ```text
    /// GET <resource> HTTP/1.1
    /// Host: <host_header>
    /// Upgrade: websocket
    /// Connection: Upgrade
    /// Sec-WebSocket-Key: <key>
    /// Sec-WebSocket-Version: 13
    /// Origin: <origin>                      (if set)
    /// Sec-WebSocket-Protocol: a, b          (if any)
    /// Sec-WebSocket-Extensions: x; p=1, y   (if any)
    /// <extra headers>
    /// ```
    ///
    /// On error nothing is written: [`RequestError::InvalidProtocol`] for a subprotocol
    /// that is not a token or is repeated ("The elements that comprise this value MUST
    /// be non-empty strings with characters in the range U+0021 to U+007E not including
    /// separator characters ... and MUST all be unique strings"),
    /// [`RequestError::InvalidHeader`] for a key that is not base64 of 16 bytes (§4.1
    /// item 7), an origin or extra header that would corrupt the head, an extra header
    /// that repeats one written here, or an extension whose names or values are not
    /// tokens (§9.1).
    pub fn write(&self, key: &str, out: &mut Vec<u8>) -> Result<(), RequestError> {
        if !STANDARD.decode(key).is_ok_and(|nonce| nonce.len() == 16) {
            return Err(RequestError::InvalidHeader);
        }
        if let Some(origin) = &self.origin
            && !valid_header("Origin", origin.as_bytes())
        {
            return Err(RequestError::InvalidHeader);
        }
        for (i, p) in self.protocols.iter().enumerate() {
            let repeated = self
                .protocols
                .get(..i)
                .is_some_and(|before| before.contains(p));
            if !is_token(p.as_bytes()) || repeated {
                return Err(RequestError::InvalidProtocol);
            }
        }
        if !self.extensions.iter().all(ExtensionOffer::is_valid) {
            return Err(RequestError::InvalidHeader);
        }
        if !self
            .headers
            .iter()
            .all(|h| valid_header(&h.name, &h.value) && !is_reserved(&h.name, CLIENT_OWN_HEADERS))
        {
            return Err(RequestError::InvalidHeader);
        }

        // §4.1 item 2: "The method of the request MUST be GET, and the HTTP version MUST
        // be at least 1.1."
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.resource.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        put_header(out, "Host", self.host_header.as_bytes());
        put_header(out, "Upgrade", b"websocket");
        put_header(out, "Connection", b"Upgrade");
        put_header(out, "Sec-WebSocket-Key", key.as_bytes());
        put_header(out, "Sec-WebSocket-Version", b"13");
        if let Some(origin) = &self.origin {
            put_header(out, "Origin", origin.as_bytes());
        }
        if !self.protocols.is_empty() {
            put_header(
                out,
                "Sec-WebSocket-Protocol",
                self.protocols.join(", ").as_bytes(),
            );
        }
        if !self.extensions.is_empty() {
            let list: Vec<String> = self.extensions.iter().map(ToString::to_string).collect();
            put_header(out, "Sec-WebSocket-Extensions", list.join(", ").as_bytes());
        }
        for h in &self.headers {
            put_header(out, &h.name, &h.value);
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

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
    /// (§10.2): see [`AllowedOrigins`](super::AllowedOrigins) and
    /// [`Config::allowed_origins`](crate::Config::allowed_origins).
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
/// 3. no body: a `Content-Length` other than 0 or any `Transfer-Encoding` is
///    [`RequestBody`](HandshakeError::RequestBody) (400): §4.1's GET has none, and bytes
///    that a proxy reads as a body but this server as frames are request smuggling;
/// 4. exactly one `Host` ([`MissingHost`](HandshakeError::MissingHost));
/// 5. `Upgrade` with the token `websocket`
///    ([`MissingUpgrade`](HandshakeError::MissingUpgrade));
/// 6. `Connection` with the token `Upgrade`
///    ([`MissingConnectionUpgrade`](HandshakeError::MissingConnectionUpgrade));
/// 7. exactly one `Sec-WebSocket-Version: 13`
///    ([`UnsupportedVersion`](HandshakeError::UnsupportedVersion), 426). This comes
///    before the key because a client speaking another version may format its other
///    headers differently, and what it needs is the 426 with `Sec-WebSocket-Version: 13`
///    that lets it retry (§4.4);
/// 8. exactly one `Sec-WebSocket-Key` decoding to 16 bytes
///    ([`InvalidKey`](HandshakeError::InvalidKey));
/// 9. at most one `Origin`, ASCII (RFC 6454 §7.1)
///    ([`InvalidHeader("Origin")`](HandshakeError::InvalidHeader));
/// 10. `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` grammars
///     ([`parse_protocols`], [`parse_extensions`]).
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
    // §4.1 item 2: "The method of the request MUST be GET": a GET has no body, and the
    // bytes after the head are WebSocket frames. A request that announces a body is
    // refused before anything else is looked at: a proxy in front could take those bytes
    // for the body while we take them for frames (request smuggling, RFC 9112 §6.3, §11.2).
    if announces_body(&headers) {
        return Err(HandshakeError::RequestBody);
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

/// Whether a request announces a body: any `Transfer-Encoding` (whatever its value: a
/// coding we do not know still means the peer thinks a body follows), or a
/// `Content-Length` whose value is anything but zeros (`0`, or a list of them, RFC 9110
/// §8.6: a malformed length is refused too).
fn announces_body(headers: &[Header]) -> bool {
    if header_values(headers, "Transfer-Encoding").next().is_some() {
        return true;
    }
    header_values(headers, "Content-Length").any(|value| {
        value
            .split(|&b| b == b',')
            .map(trim_ows)
            .any(|element| element.is_empty() || !element.iter().all(|&b| b == b'0'))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::handshake::tests::{consistent, near};
    use crate::handshake::{Accept, generate_key, parse_response, write_accept};
    use proptest::prelude::*;

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

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
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

    /// RFC_REQUEST with `extra` header lines added after the Origin line.
    fn adding(extra: &str) -> Vec<u8> {
        with("Origin", &format!("Origin: http://example.com\r\n{extra}"))
    }

    #[test]
    fn request_with_a_body_is_400() {
        for extra in [
            "Content-Length: 5",
            "Content-Length: 1, 1",
            "Content-Length: 0, 7",
            "Content-Length: 0\r\nContent-Length: 3",
            "Content-Length: -0",
            "Content-Length: 0x0",
            "Content-Length:",
            "Content-Length: 99999999999999999999999999",
            "Transfer-Encoding: chunked",
            "transfer-encoding: identity",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding:",
            "Content-Length: 0\r\nTransfer-Encoding: chunked",
        ] {
            assert_eq!(
                rejected(&adding(extra)),
                (HandshakeError::RequestBody, 400),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn request_with_content_length_zero_is_accepted() {
        for extra in [
            "Content-Length: 0",
            "content-length:   0  ",
            "Content-Length: 00",
            "Content-Length: 0, 0",
        ] {
            assert!(parse3(&adding(extra)).is_ok(), "{extra:?}");
        }
    }

    #[test]
    fn check_request_refuses_a_body_too() {
        let parsed = parse3(RFC_REQUEST).unwrap();
        let mut headers = parsed.headers().to_vec();
        assert!(check_request("GET", "/chat", 1, headers.clone()).is_ok());
        headers.push(Header {
            name: "Transfer-Encoding".into(),
            value: b"chunked".to_vec(),
        });
        assert_eq!(
            check_request("GET", "/chat", 1, headers.clone()),
            Err(HandshakeError::RequestBody)
        );
        headers.pop();
        headers.push(Header {
            name: "Content-Length".into(),
            value: b"12".to_vec(),
        });
        assert_eq!(
            check_request("GET", "/chat", 1, headers),
            Err(HandshakeError::RequestBody)
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
    fn request_error_display_names_the_problem() {
        assert_eq!(
            RequestError::InvalidUrl("empty host").to_string(),
            "invalid WebSocket URL: empty host"
        );
    }

    #[test]
    fn client_request_is_written_in_order() {
        let req = ClientRequest::new("ws://[::1]:9001/chat?x=1")
            .unwrap()
            .origin("http://example.com")
            .protocol("chat")
            .protocol("superchat")
            .extension(
                ExtensionOffer::new("permessage-deflate").param("client_max_window_bits", None),
            )
            .header("Authorization", "Bearer t");
        let mut out = Vec::new();
        req.write(KEY, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /chat?x=1 HTTP/1.1\r\n\
             Host: [::1]:9001\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Authorization: Bearer t\r\n\
             \r\n"
        );
    }

    #[test]
    fn client_write_refuses_bad_protocols() {
        let base = ClientRequest::new("ws://h/").unwrap();
        let mut out = Vec::new();
        for req in [
            base.clone().protocol("a b"),
            base.clone().protocol(""),
            base.clone().protocol("a,b"),
            base.clone().protocol("chat").protocol("chat"),
        ] {
            assert_eq!(req.write(KEY, &mut out), Err(RequestError::InvalidProtocol));
        }
        assert!(out.is_empty());
    }

    #[test]
    fn client_write_refuses_bad_headers_and_keys() {
        let base = ClientRequest::new("ws://h/").unwrap();
        let mut out = Vec::new();
        for (req, key) in [
            (base.clone().header("X-A", "1\r\nEvil: 1"), KEY),
            (base.clone().header("X A", "1"), KEY),
            (base.clone().header("host", "other"), KEY),
            (base.clone().header("Sec-WebSocket-Protocol", "chat"), KEY),
            (base.clone().origin("http://a\r\nX: y"), KEY),
            (
                base.clone()
                    .extension(ExtensionOffer::new("x").param("a", Some("b c".into()))),
                KEY,
            ),
            (base.clone().extension(ExtensionOffer::new("x y")), KEY),
            (base.clone(), "short"),
            (base.clone(), "dGhlIHNhbXBsZSBub25jZQ==\r\nX: y"),
        ] {
            assert_eq!(
                req.write(key, &mut out),
                Err(RequestError::InvalidHeader),
                "{req:?}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn client_write_round_trips_through_parse_request() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        let key = generate_key(&mut rng);
        let client = ClientRequest::new("wss://Example.com:8443/a/b?c=d")
            .unwrap()
            .origin("https://example.com")
            .protocol("v2.chat")
            .protocol("v1.chat")
            .extension(
                ExtensionOffer::new("permessage-deflate")
                    .param("client_max_window_bits", None)
                    .param("server_max_window_bits", Some("10".into())),
            )
            .extension(ExtensionOffer::new("x-other"))
            .header("Cookie", "a=b");
        let mut wire = Vec::new();
        client.write(&key, &mut wire).unwrap();
        let n = wire.len();
        wire.extend_from_slice(b"\x81\x80\x00\x00\x00\x00"); // a first frame
        let Status::Complete((req, head_len)) =
            parse_request(&wire, MAX_HEAD, MAX_HEADERS).unwrap()
        else {
            panic!("partial")
        };
        assert_eq!(head_len, n);
        assert_eq!(req.path(), "/a/b?c=d");
        assert_eq!(req.host(), "example.com:8443");
        assert_eq!(req.origin(), Some("https://example.com"));
        assert_eq!(req.key(), key);
        assert_eq!(req.protocols(), client.protocols());
        assert_eq!(req.extensions(), client.extensions());
        assert_eq!(req.header("cookie"), Some(&b"a=b"[..]));

        // And back: the server's 101 satisfies the client's checks.
        let mut answer = Vec::new();
        let accept = Accept::new().protocol("v1.chat").header(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=10",
        );
        write_accept(&req, &accept, &mut answer).unwrap();
        let m = answer.len();
        answer.extend_from_slice(b"\x81\x02hi");
        let Status::Complete((res, head_len)) =
            parse_response(&answer, MAX_HEAD, MAX_HEADERS, &key, &client, false).unwrap()
        else {
            panic!("partial")
        };
        assert_eq!(head_len, m);
        assert_eq!(res.status(), 101);
        assert_eq!(res.protocol(), Some("v1.chat"));
        assert_eq!(res.extensions()[0].params[0].value.as_deref(), Some("10"));
        assert!(res.header("sec-websocket-accept").is_some());
        assert_eq!(res.headers().len(), 5);

        // The same 101 does not match another key.
        assert_eq!(
            parse_response(&answer, MAX_HEAD, MAX_HEADERS, KEY, &client, false),
            Err(HandshakeError::AcceptMismatch)
        );
    }

    proptest! {
        #[test]
        fn parse_request_never_panics_and_any_split_agrees(
            input in near(RFC_REQUEST),
            max_head in 0usize..400,
            max_headers in 0usize..12,
        ) {
            let whole = parse_request(&input, max_head, max_headers);
            for at in 0..=input.len() {
                let prefix = parse_request(&input[..at], max_head, max_headers);
                prop_assert!(consistent(&prefix, &whole), "at {at}: {prefix:?} vs {whole:?}");
            }
            if let Ok(Status::Complete((_, n))) = &whole {
                prop_assert_eq!(&parse_request(&input[..*n], max_head, max_headers), &whole);
            }
        }
    }
}
