//! The client side: WebSocket URLs (RFC 6455 §3), the client's opening handshake
//! (§4.1) and the checks on the server's answer (§4.1, "The client MUST validate the
//! server's response as follows").

use crate::prelude::*;

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::header_values;
use super::negotiate::{ExtensionOffer, is_token, parse_extensions};
use super::url::{WsUrl, parse_ws_url};
use super::{Header, accept_key, find_header, first_two, has_token, head_window, header_slots};
use super::{httparse_reason, is_reserved, put_header, single_header, trim_ows, valid_header};
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

/// The server's opening handshake, checked against the request (RFC 6455 §4.1). Built
/// only by [`parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<Header>,
    protocol: Option<String>,
    extensions: Vec<ExtensionOffer>,
}

impl Response {
    /// The HTTP status (always 101).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Every header, names as sent, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// The subprotocol the server chose, one of [`ClientRequest::protocols`].
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The extensions in use, in the server's order, which is the order they apply to
    /// the data (§9.1). Each is one the request offered.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }
}

/// Parses and checks the server's answer to `request`, sent with `key`, from the start
/// of `buf` (RFC 6455 §4.1).
///
/// - `Ok(Status::Partial)`: the head is incomplete, `buf` holds at most `max_head`
///   bytes and `eof` is false; call again with more.
/// - `Ok(Status::Complete((response, head_len)))`: a 101 that passed every check. The
///   bytes after the first `head_len` are WebSocket frames: they are not consumed.
/// - `Err(HandshakeError::Rejected { .. })`: any other status (§4.1: "If the status code
///   received from the server is not 101, the client handles the response per HTTP").
///   The body is `Content-Length` bytes, or without `Content-Length` everything until
///   the end of the stream (RFC 9112 §6.3), at most `max_head` either way; `Partial`
///   until it has all arrived, unless `eof`. Empty for 1xx, 204 and 304, which have none.
/// - `Err(HandshakeError::UnexpectedEof)`: `eof` with an incomplete head.
/// - `Err(HeadTooLarge | TooManyHeaders | MalformedHttp)`: as for
///   [`parse_request`](super::parse_request).
///
/// A 101 is checked in the order of §4.1 (each "the client MUST _Fail the WebSocket
/// Connection_"): HTTP/1.1 ([`HttpVersion`](HandshakeError::HttpVersion)); `Upgrade:
/// websocket` ([`MissingUpgrade`](HandshakeError::MissingUpgrade)); `Connection:
/// Upgrade` ([`MissingConnectionUpgrade`](HandshakeError::MissingConnectionUpgrade));
/// one `Sec-WebSocket-Accept` equal to `accept_key(key)`
/// ([`AcceptMismatch`](HandshakeError::AcceptMismatch)); only offered extensions
/// ([`ExtensionNotOffered`](HandshakeError::ExtensionNotOffered)); at most one
/// subprotocol, which was offered ([`InvalidHeader`](HandshakeError::InvalidHeader),
/// [`ProtocolNotOffered`](HandshakeError::ProtocolNotOffered)). Names compare exactly
/// (case-sensitively), as offered.
pub fn parse_response(
    buf: &[u8],
    max_head: usize,
    max_headers: usize,
    key: &str,
    request: &ClientRequest,
    eof: bool,
) -> Result<Status<(Response, usize)>, HandshakeError> {
    let window = head_window(buf, max_head);
    let mut slots = header_slots(window, max_headers);
    let mut res = httparse::Response::new(&mut slots);
    let head_len = match res.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(HandshakeError::HeadTooLarge { limit: max_head });
        }
        Ok(httparse::Status::Partial) if eof => return Err(HandshakeError::UnexpectedEof),
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(e) => return Err(HandshakeError::MalformedHttp(httparse_reason(e))),
    };
    // httparse fills every field of a complete response; the defaults are unreachable.
    let status = res.code.unwrap_or_default();
    let version = res.version.unwrap_or_default();
    let headers: Vec<Header> = res.headers.iter().map(Header::from_httparse).collect();
    let after_head = buf.get(head_len..).unwrap_or_default();
    if status != 101 {
        return rejected(status, headers, after_head, max_head, eof);
    }
    check_101(version, headers, key, request).map(|r| Status::Complete((r, head_len)))
}

/// The [`HandshakeError::Rejected`] for a non-101 answer, or `Partial` while its
/// `Content-Length` body is still arriving.
fn rejected(
    status: u16,
    headers: Vec<Header>,
    after_head: &[u8],
    max_head: usize,
    eof: bool,
) -> Result<Status<(Response, usize)>, HandshakeError> {
    // RFC 7230 §3.3.3: 1xx, 204 and 304 responses end at the head.
    let bodyless = status < 200 || status == 204 || status == 304;
    let wanted = match content_length(&headers) {
        _ if bodyless => 0,
        Some(n) => n.min(max_head),
        // RFC 9112 §6.3: without a length the body ends when the connection closes.
        None => max_head,
    };
    if after_head.len() < wanted && !eof {
        return Ok(Status::Partial);
    }
    let body = after_head.get(..wanted).unwrap_or(after_head);
    Err(HandshakeError::Rejected {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    })
}

/// The `Content-Length` of a response: `None` when absent or not a number (then the
/// body is whatever arrived, which is all a rejection needs), saturating when huge.
/// Repeated or listed values must agree (RFC 7230 §3.3.2).
fn content_length(headers: &[Header]) -> Option<usize> {
    let mut length = None;
    for value in header_values(headers, "Content-Length") {
        for element in value.split(|&b| b == b',').map(trim_ows) {
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = element.iter().try_fold(0usize, |n, &d| {
                n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
            });
            let n = n.unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

/// The §4.1 checks on a 101 response.
fn check_101(
    version: u8,
    headers: Vec<Header>,
    key: &str,
    request: &ClientRequest,
) -> Result<Response, HandshakeError> {
    // §4.2.2 step 5.1: "A Status-Line with a 101 response code as per RFC 2616"; 101 does
    // not exist in HTTP/1.0.
    if version < 1 {
        return Err(HandshakeError::HttpVersion);
    }
    // §4.1 item 2: "If the response lacks an |Upgrade| header field or the |Upgrade|
    // header field contains a value that is not an ASCII case-insensitive match for the
    // value "websocket", the client MUST _Fail the WebSocket Connection_."
    if !has_token(header_values(&headers, "Upgrade"), "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    // §4.1 item 3: "If the response lacks a |Connection| header field or the
    // |Connection| header field doesn't contain a token that is an ASCII
    // case-insensitive match for the value "Upgrade", the client MUST _Fail the
    // WebSocket Connection_."
    if !has_token(header_values(&headers, "Connection"), "Upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // §4.1 item 4: "If the response lacks a |Sec-WebSocket-Accept| header field or the
    // |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of
    // ... but ignoring any leading and trailing whitespace, the client MUST _Fail the
    // WebSocket Connection_." Two values cannot both be the one.
    let expected = accept_key(key.as_bytes());
    if single_header(&headers, "Sec-WebSocket-Accept").map(trim_ows) != Some(expected.as_bytes()) {
        return Err(HandshakeError::AcceptMismatch);
    }
    // §4.1 item 5: "If the response includes a |Sec-WebSocket-Extensions| header field
    // and this header field indicates the use of an extension that was not present in
    // the client's handshake ..., the client MUST _Fail the WebSocket Connection_."
    let extensions = parse_extensions(header_values(&headers, "Sec-WebSocket-Extensions"))?;
    if let Some(e) = extensions
        .iter()
        .find(|e| !request.extensions().iter().any(|o| o.name == e.name))
    {
        return Err(HandshakeError::ExtensionNotOffered(e.name.clone()));
    }
    // §4.1 item 6: "If the response includes a |Sec-WebSocket-Protocol| header field and
    // this header field indicates the use of a subprotocol that was not present in the
    // client's handshake ..., the client MUST _Fail the WebSocket Connection_." The
    // server sends one `token` (§4.3 `Sec-WebSocket-Protocol-Server = token`), so a list,
    // a repeat or an empty value is malformed.
    let protocol = match first_two(&headers, "Sec-WebSocket-Protocol") {
        (None, _) => None,
        (Some(p), None) if is_token(trim_ows(p)) => {
            let p = String::from_utf8_lossy(trim_ows(p)).into_owned();
            if !request.protocols().contains(&p) {
                return Err(HandshakeError::ProtocolNotOffered(p));
            }
            Some(p)
        }
        _ => return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Protocol")),
    };
    Ok(Response {
        status: 101,
        headers,
        protocol,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Accept, parse_request, write_accept, write_reject};
    use crate::handshake::{Reject, generate_key};
    use proptest::prelude::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const MAX_HEAD: usize = 8192;
    const MAX_HEADERS: usize = 32;

    /// The server handshake of RFC 6455 §1.2 / §1.3.
    const RFC_RESPONSE: &str = "HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\
        \r\n";

    fn chat_request() -> ClientRequest {
        ClientRequest::new("ws://server.example.com/chat")
            .unwrap()
            .origin("http://example.com")
            .protocol("chat")
            .protocol("superchat")
            .extension(ExtensionOffer::new("permessage-deflate"))
    }

    fn parse(
        buf: &[u8],
        req: &ClientRequest,
        eof: bool,
    ) -> Result<Status<(Response, usize)>, HandshakeError> {
        parse_response(buf, MAX_HEAD, MAX_HEADERS, KEY, req, eof)
    }

    /// Parses `input` whole, one byte at a time (Partial until the last byte), and with
    /// trailing frame bytes (not consumed), and checks that all three agree.
    fn parse3(input: &str, req: &ClientRequest) -> Result<Response, HandshakeError> {
        let input = input.as_bytes();
        let whole = parse(input, req, false);
        for end in 0..input.len() {
            match parse(&input[..end], req, false) {
                Ok(Status::Partial) => {}
                other => {
                    assert!(other.is_err(), "complete before the last byte at {end}");
                    assert_eq!(other, whole, "split at {end}");
                    return other.map(|_| unreachable!());
                }
            }
        }
        let mut trailing = input.to_vec();
        trailing.extend_from_slice(b"\x81\x02hi");
        assert_eq!(parse(&trailing, req, false), whole);
        match whole? {
            Status::Complete((res, n)) => {
                assert_eq!(n, input.len());
                Ok(res)
            }
            Status::Partial => panic!("complete input parsed as Partial"),
        }
    }

    /// RFC_RESPONSE with header `name` replaced by `line` (or removed when empty).
    fn with(name: &str, line: &str) -> String {
        let mut out = String::new();
        for l in RFC_RESPONSE.split_inclusive("\r\n") {
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
        out
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

    #[test]
    fn rfc_1_2_sample_response_is_accepted() {
        let res = parse3(RFC_RESPONSE, &chat_request()).unwrap();
        assert_eq!(res.protocol(), Some("chat"));
        assert!(res.extensions().is_empty());
    }

    #[test]
    fn accept_with_surrounding_whitespace_is_accepted() {
        let input = with(
            "Sec-WebSocket-Accept",
            "Sec-WebSocket-Accept: \t s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \t",
        );
        assert!(parse3(&input, &chat_request()).is_ok());
    }

    #[test]
    fn response_tokens_are_case_insensitive() {
        let input = with("Upgrade", "Upgrade: WebSocket");
        let input = input.replace("Connection: Upgrade", "connection: keep-alive, UPGRADE");
        assert!(parse3(&input, &chat_request()).is_ok());
    }

    #[test]
    fn response_101_over_http_1_0_fails() {
        let input = RFC_RESPONSE.replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert_eq!(
            parse3(&input, &chat_request()),
            Err(HandshakeError::HttpVersion)
        );
    }

    #[test]
    fn response_without_upgrade_websocket_fails() {
        let req = chat_request();
        assert_eq!(
            parse3(&with("Upgrade", ""), &req),
            Err(HandshakeError::MissingUpgrade)
        );
        assert_eq!(
            parse3(&with("Upgrade", "Upgrade: h2c"), &req),
            Err(HandshakeError::MissingUpgrade)
        );
    }

    #[test]
    fn response_without_connection_upgrade_fails() {
        let req = chat_request();
        assert_eq!(
            parse3(&with("Connection", ""), &req),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
        assert_eq!(
            parse3(&with("Connection", "Connection: close"), &req),
            Err(HandshakeError::MissingConnectionUpgrade)
        );
    }

    #[test]
    fn response_with_wrong_or_missing_accept_fails() {
        let req = chat_request();
        for line in [
            "",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo",
            "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Accept: x",
        ] {
            assert_eq!(
                parse3(&with("Sec-WebSocket-Accept", line), &req),
                Err(HandshakeError::AcceptMismatch),
                "{line:?}"
            );
        }
    }

    #[test]
    fn response_with_protocol_not_offered_fails() {
        let input = with("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: mqtt");
        assert_eq!(
            parse3(&input, &chat_request()),
            Err(HandshakeError::ProtocolNotOffered("mqtt".into()))
        );
        // Matching is exact: the client offered "chat", not "Chat".
        let input = with("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: Chat");
        assert_eq!(
            parse3(&input, &chat_request()),
            Err(HandshakeError::ProtocolNotOffered("Chat".into()))
        );
        // Nothing offered: any protocol is one not offered.
        let bare = ClientRequest::new("ws://server.example.com/chat").unwrap();
        assert_eq!(
            parse3(RFC_RESPONSE, &bare),
            Err(HandshakeError::ProtocolNotOffered("chat".into()))
        );
    }

    #[test]
    fn response_with_several_protocols_is_invalid() {
        let bad = Err(HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"));
        for line in [
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat",
            "Sec-WebSocket-Protocol: ",
        ] {
            assert_eq!(
                parse3(&with("Sec-WebSocket-Protocol", line), &chat_request()),
                bad,
                "{line:?}"
            );
        }
    }

    #[test]
    fn response_without_protocol_is_accepted() {
        let res = parse3(&with("Sec-WebSocket-Protocol", ""), &chat_request()).unwrap();
        assert_eq!(res.protocol(), None);
    }

    #[test]
    fn response_with_extension_not_offered_fails() {
        let input = with(
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions: permessage-deflate, x-webkit-deflate-frame",
        );
        assert_eq!(
            parse3(&input, &chat_request()),
            Err(HandshakeError::ExtensionNotOffered(
                "x-webkit-deflate-frame".into()
            ))
        );
    }

    #[test]
    fn response_with_malformed_extensions_fails() {
        let input = with(
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions: permessage-deflate;",
        );
        assert_eq!(
            parse3(&input, &chat_request()),
            Err(HandshakeError::InvalidHeader("Sec-WebSocket-Extensions"))
        );
    }

    #[test]
    fn response_extensions_are_returned_in_server_order() {
        let req = chat_request().extension(ExtensionOffer::new("x-two"));
        let input = with(
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions: x-two\r\nSec-WebSocket-Extensions: permessage-deflate",
        );
        let res = parse3(&input, &req).unwrap();
        let names: Vec<&str> = res.extensions().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["x-two", "permessage-deflate"]);
    }

    #[test]
    fn malformed_response_is_malformed_http() {
        let err = parse3("HTTP/1.1 1o1 Switching\r\n\r\n", &chat_request()).unwrap_err();
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
    }

    #[test]
    fn eof_before_the_head_ends_is_unexpected_eof() {
        let req = chat_request();
        assert_eq!(parse(b"", &req, true), Err(HandshakeError::UnexpectedEof));
        assert_eq!(
            parse(&RFC_RESPONSE.as_bytes()[..30], &req, true),
            Err(HandshakeError::UnexpectedEof)
        );
        assert!(parse(RFC_RESPONSE.as_bytes(), &req, true).is_ok());
    }

    #[test]
    fn response_head_too_large_is_431() {
        let req = chat_request();
        let input = RFC_RESPONSE.as_bytes();
        let err = parse_response(&input[..50], 40, MAX_HEADERS, KEY, &req, false).unwrap_err();
        assert_eq!(err, HandshakeError::HeadTooLarge { limit: 40 });
        assert_eq!(err.status_hint(), 431);
        // Over the limit wins over end of stream: it says more.
        assert_eq!(
            parse_response(&input[..50], 40, MAX_HEADERS, KEY, &req, true),
            Err(HandshakeError::HeadTooLarge { limit: 40 })
        );
        assert_eq!(
            parse_response(input, input.len() - 1, MAX_HEADERS, KEY, &req, false),
            Err(HandshakeError::HeadTooLarge {
                limit: input.len() - 1
            })
        );
        assert_eq!(
            parse_response(input, MAX_HEAD, 2, KEY, &req, false),
            Err(HandshakeError::TooManyHeaders)
        );
    }

    fn rejected_403(body: &str) -> HandshakeError {
        HandshakeError::Rejected {
            status: 403,
            headers: vec![
                Header {
                    name: "Content-Length".into(),
                    value: b"9".to_vec(),
                },
                Header {
                    name: "Connection".into(),
                    value: b"close".to_vec(),
                },
            ],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn rejected_403_body_arriving_in_pieces() {
        let req = chat_request();
        let wire =
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden";
        let head = wire.find("\r\n\r\n").unwrap() + 4;
        // Every prefix before the whole body is Partial: the body is not complete.
        for end in 0..wire.len() {
            assert_eq!(
                parse(&wire.as_bytes()[..end], &req, false),
                Ok(Status::Partial),
                "{end}"
            );
        }
        let err = parse(wire.as_bytes(), &req, false).unwrap_err();
        assert_eq!(err, rejected_403("forbidden"));
        assert_eq!(err.status_hint(), 403);
        // Bytes past Content-Length are not part of the body.
        let more = format!("{wire}HTTP/1.1 200 OK");
        assert_eq!(
            parse(more.as_bytes(), &req, false),
            Err(rejected_403("forbidden"))
        );
        // At end of stream, take what arrived.
        assert_eq!(
            parse(&wire.as_bytes()[..head + 4], &req, true),
            Err(rejected_403("forb"))
        );
    }

    #[test]
    fn rejected_body_is_capped_at_max_head() {
        let req = chat_request();
        let head = "HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n";
        let max_head = 50;
        let wire = format!("{head}{}", "x".repeat(80));
        // Waits for max_head body bytes, not 100000.
        let short = &wire.as_bytes()[..head.len() + max_head - 1];
        assert_eq!(
            parse_response(short, max_head, MAX_HEADERS, KEY, &req, false),
            Ok(Status::Partial)
        );
        let Err(HandshakeError::Rejected { status, body, .. }) =
            parse_response(wire.as_bytes(), max_head, MAX_HEADERS, KEY, &req, false)
        else {
            panic!("not rejected")
        };
        assert_eq!((status, body.len()), (500, max_head));
    }

    #[test]
    fn rejected_without_content_length_takes_what_arrived() {
        let req = chat_request();
        let wire = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\nsee /elsewhere";
        // The body runs to the end of the stream, so it is not complete before EOF.
        assert_eq!(parse(wire.as_bytes(), &req, false), Ok(Status::Partial));
        let Err(HandshakeError::Rejected {
            status,
            headers,
            body,
        }) = parse(wire.as_bytes(), &req, true)
        else {
            panic!("not rejected")
        };
        assert_eq!(status, 302);
        assert_eq!(headers[0].value, b"/elsewhere");
        assert_eq!(&body[..], b"see /elsewhere");
    }

    #[test]
    fn rejected_204_has_no_body() {
        let req = chat_request();
        let mut wire = Vec::new();
        write_reject(&Reject::new(204), &mut wire).unwrap();
        wire.extend_from_slice(b"junk");
        let Err(HandshakeError::Rejected { status, body, .. }) = parse(&wire, &req, false) else {
            panic!("not rejected")
        };
        assert_eq!((status, body.len()), (204, 0));
    }

    #[test]
    fn write_reject_round_trips_through_parse_response() {
        let req = chat_request();
        let mut wire = Vec::new();
        let reject = Reject::new(401)
            .header("WWW-Authenticate", "Basic")
            .body("who?");
        write_reject(&reject, &mut wire).unwrap();
        let Err(HandshakeError::Rejected {
            status,
            headers,
            body,
        }) = parse(&wire, &req, false)
        else {
            panic!("not rejected")
        };
        assert_eq!(status, 401);
        assert_eq!(
            find_header(&headers, "www-authenticate"),
            Some(&b"Basic"[..])
        );
        assert_eq!(&body[..], b"who?");
    }

    #[test]
    fn conflicting_content_lengths_are_ignored() {
        let h = |v: &str| Header {
            name: "Content-Length".into(),
            value: v.into(),
        };
        assert_eq!(content_length(&[h("5")]), Some(5));
        assert_eq!(content_length(&[h("5, 5"), h("5")]), Some(5));
        assert_eq!(content_length(&[h("5"), h("6")]), None);
        assert_eq!(content_length(&[h("-1")]), None);
        assert_eq!(content_length(&[h("")]), None);
        assert_eq!(
            content_length(&[h("999999999999999999999999")]),
            Some(usize::MAX)
        );
    }

    /// Inputs near the fixtures (mutated) as well as arbitrary bytes.
    fn near(fixture: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            (
                proptest::collection::vec((0..fixture.len(), any::<u8>()), 0..4),
                proptest::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(move |(edits, tail)| {
                    let mut v = fixture.to_vec();
                    for (i, b) in edits {
                        v[i] = b;
                    }
                    v.extend(tail);
                    v
                }),
        ]
    }

    /// `prefix` is what parsing an early part of the input gave, `whole` the whole: once
    /// it is not Partial it must be identical.
    fn consistent<T: PartialEq + fmt::Debug>(
        prefix: &Result<Status<T>, HandshakeError>,
        whole: &Result<Status<T>, HandshakeError>,
    ) -> bool {
        match (prefix, whole) {
            (Ok(Status::Partial), _) => true,
            (
                Err(HandshakeError::Rejected {
                    status: s1,
                    headers: h1,
                    body: b1,
                }),
                Err(HandshakeError::Rejected {
                    status: s2,
                    headers: h2,
                    body: b2,
                }),
            ) => s1 == s2 && h1 == h2 && b1 == b2,
            _ => prefix == whole,
        }
    }

    proptest! {
        #[test]
        fn parse_request_never_panics_and_any_split_agrees(
            input in near(crate::handshake::request::tests::RFC_REQUEST),
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

        #[test]
        fn parse_response_never_panics_and_any_split_agrees(
            input in near(RFC_RESPONSE.as_bytes()),
            max_head in 0usize..400,
            max_headers in 0usize..12,
        ) {
            let req = chat_request();
            let whole = parse_response(&input, max_head, max_headers, KEY, &req, false);
            for at in 0..=input.len() {
                let prefix = parse_response(&input[..at], max_head, max_headers, KEY, &req, false);
                prop_assert!(consistent(&prefix, &whole), "at {at}: {prefix:?} vs {whole:?}");
                // At end of stream nothing is Partial any more.
                let at_eof = parse_response(&input[..at], max_head, max_headers, KEY, &req, true);
                prop_assert!(at_eof != Ok(Status::Partial));
            }
            if let Ok(Status::Complete((_, n))) = &whole {
                prop_assert_eq!(
                    &parse_response(&input[..*n], max_head, max_headers, KEY, &req, false),
                    &whole
                );
            }
        }
    }
}
