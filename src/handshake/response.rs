//! The server's answer to the opening request, both ways: the server writes the 101 that
//! completes the handshake (RFC 6455 §4.2.2 step 5: [`write_accept`] or
//! [`accept_headers`] with an [`Accept`]), an application's refusal ([`write_reject`] with
//! a [`Reject`]) or the error response to a malformed request ([`write_error_response`],
//! §4.2.1, §4.4); the client parses it and checks it against its request
//! ([`parse_response`] into a [`Response`], §4.1: "The client MUST validate the server's
//! response as follows").

use crate::prelude::*;

use bytes::Bytes;

use super::negotiate::{ExtensionOffer, is_token, parse_extensions};
use super::request::{ClientRequest, Request};
use super::{Header, accept_key, find_header, first_two, has_token, head_window};
use super::{header_slots, header_values, httparse_reason, is_reserved, put_header};
use super::{single_header, trim_ows, valid_header};
use crate::Status;
use crate::error::{HandshakeError, RefusedResponse, SendError};

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

/// Headers [`write_accept`] writes itself; a second copy from the application would
/// contradict them (two `Sec-WebSocket-Accept` values, a protocol the check below never
/// saw).
const ACCEPT_OWN_HEADERS: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
];

/// Writes the server's opening handshake for `req` (RFC 6455 §4.2.2 step 5):
///
/// ```text
/// HTTP/1.1 101 Switching Protocols
/// Upgrade: websocket
/// Connection: Upgrade
/// Sec-WebSocket-Accept: <accept_key(req.key())>
/// Sec-WebSocket-Protocol: <chosen>        (only if one was chosen)
/// <extra headers>
/// ```
///
/// Errors, with nothing written to `out`:
/// - [`SendError::ProtocolNotOffered`]: the chosen subprotocol is not exactly one of
///   [`Request::protocols`] ("The value chosen MUST be derived from the client's
///   handshake, specifically by selecting one of the values from the
///   |Sec-WebSocket-Protocol| field", §4.2.2 step 4);
/// - [`SendError::InvalidHeader`]: an extra header whose name is not an HTTP token, whose
///   value holds CR, LF, NUL or another control byte, or that repeats one of the headers
///   above.
pub fn write_accept(req: &Request, accept: &Accept, out: &mut Vec<u8>) -> Result<(), SendError> {
    check_accept(req, accept)?;
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    each_accept_header(req, accept, |name, value| put_header(out, name, value));
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The headers of the server's `101 Switching Protocols` answer to `req`, for a host
/// that writes the response itself (an HTTP server such as hyper that parsed the request
/// and hands over the upgraded connection): the same headers, in the same order, that
/// [`write_accept`] writes after its status line, after the same checks (with the same
/// errors). Pair with [`check_request`](super::check_request) and
/// [`Connection::upgraded`](crate::Connection::upgraded).
pub fn accept_headers(req: &Request, accept: &Accept) -> Result<Vec<Header>, SendError> {
    check_accept(req, accept)?;
    let mut headers = Vec::with_capacity(4 + accept.headers().len());
    each_accept_header(req, accept, |name, value| {
        headers.push(Header {
            name: name.to_owned(),
            value: value.to_vec(),
        });
    });
    Ok(headers)
}

/// [`write_accept`]'s checks of the application's answer.
fn check_accept(req: &Request, accept: &Accept) -> Result<(), SendError> {
    if let Some(p) = accept.chosen_protocol()
        && !req.protocols().iter().any(|offered| offered == p)
    {
        return Err(SendError::ProtocolNotOffered(p.to_owned()));
    }
    check_headers(accept.headers(), ACCEPT_OWN_HEADERS)
}

/// Calls `put` with each header of the 101, in order (checked by [`check_accept`]).
fn each_accept_header(req: &Request, accept: &Accept, mut put: impl FnMut(&str, &[u8])) {
    put("Upgrade", b"websocket");
    put("Connection", b"Upgrade");
    put(
        "Sec-WebSocket-Accept",
        accept_key(req.key().as_bytes()).as_bytes(),
    );
    if let Some(p) = accept.chosen_protocol() {
        put("Sec-WebSocket-Protocol", p.as_bytes());
    }
    for h in accept.headers() {
        put(&h.name, &h.value);
    }
}

/// Writes an application's refusal: the status line with a standard reason phrase
/// ("Unknown" for codes without one), the extra headers, `Content-Length` (unless the
/// application set it), `Connection: close` (the engine closes the connection after a
/// refusal) and the body.
///
/// Errors, with nothing written to `out` ([`SendError::InvalidHeader`]):
/// - a status outside 100-599, or 101 (only [`write_accept`] may switch protocols);
/// - a non-empty body with a status that cannot carry one (1xx, 204, 304; RFC 7230
///   §3.3.3);
/// - an application `Content-Length` that is not the body's length: the client would
///   wait for bytes that never come, or read part of the body as something else;
/// - an extra header that [`write_accept`] would also refuse.
pub fn write_reject(reject: &Reject, out: &mut Vec<u8>) -> Result<(), SendError> {
    let status = reject.status();
    if !(100..=599).contains(&status) || status == 101 {
        return Err(SendError::InvalidHeader);
    }
    let body = reject.body_bytes();
    let bodyless = status < 200 || status == 204 || status == 304;
    if bodyless && !body.is_empty() {
        return Err(SendError::InvalidHeader);
    }
    check_headers(reject.headers(), &[])?;
    let length = body.len().to_string();
    let caller_length = find_header(reject.headers(), "Content-Length").is_some();
    if header_values(reject.headers(), "Content-Length").any(|v| trim_ows(v) != length.as_bytes()) {
        return Err(SendError::InvalidHeader);
    }

    put_status_line(out, status);
    for h in reject.headers() {
        put_header(out, &h.name, &h.value);
    }
    // RFC 7230 §3.3.2: "A server MUST NOT send a Content-Length header field in any
    // response with a status code of 1xx (Informational) or 204 (No Content)"; for a
    // 304 it would describe another response's body.
    if !caller_length && !bodyless {
        put_header(out, "Content-Length", length.as_bytes());
    }
    put_header(out, "Connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(())
}

/// Writes the server's answer to a request that [`parse_request`](super::parse_request)
/// refused: status [`HandshakeError::status_hint`], `Connection: close`, and a short
/// `text/plain` body naming the error.
///
/// §4.2.1: "the server MUST stop processing the client's handshake and return an HTTP
/// response with an appropriate error code (such as 400 Bad Request)". For
/// [`HandshakeError::UnsupportedVersion`] the 426 carries `Sec-WebSocket-Version: 13`
/// (§4.4: the server "MUST respond with a |Sec-WebSocket-Version| header field ...
/// containing all versions it is willing to use"); a 405 carries `Allow: GET` (RFC 7231
/// §6.5.5). A request without `Upgrade: websocket` gets 400, not 426: it is not a
/// WebSocket request at all, and 426 would need an `Upgrade` header naming a protocol.
///
/// Client-side errors have no server answer; if one is passed anyway (e.g.
/// [`HandshakeError::Rejected`] with a non-error status), the response is a 400.
pub fn write_error_response(err: &HandshakeError, out: &mut Vec<u8>) {
    let hint = err.status_hint();
    let status = if (400..=599).contains(&hint) {
        hint
    } else {
        400
    };
    let body = format!("{err}\n");
    put_status_line(out, status);
    match status {
        426 => put_header(out, "Sec-WebSocket-Version", b"13"),
        405 => put_header(out, "Allow", b"GET"),
        _ => {}
    }
    put_header(out, "Content-Type", b"text/plain; charset=utf-8");
    put_header(out, "Content-Length", body.len().to_string().as_bytes());
    put_header(out, "Connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// Checks application headers before anything is written.
fn check_headers(headers: &[Header], own: &[&str]) -> Result<(), SendError> {
    if headers
        .iter()
        .all(|h| valid_header(&h.name, &h.value) && !is_reserved(&h.name, own))
    {
        Ok(())
    } else {
        Err(SendError::InvalidHeader)
    }
}

/// Appends `HTTP/1.1 <status> <reason>\r\n`.
fn put_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
}

/// The reason phrase registered for `status` (RFC 9110 §15), "Unknown" otherwise; the
/// phrase is informative only (RFC 9110 §15: "A client SHOULD ignore the reason-phrase").
fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => "Unknown",
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
/// - `Err(HandshakeError::Rejected(..))`: any other status (§4.1: "If the status code
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
    parse_response_waiting(buf, max_head, max_headers, key, request, eof, &mut None)
}

/// [`parse_response`], and when it is `Partial` because a refusal's body is still
/// arriving, the buffer length at which the body is whole in `wait`.
pub(super) fn parse_response_waiting(
    buf: &[u8],
    max_head: usize,
    max_headers: usize,
    key: &str,
    request: &ClientRequest,
    eof: bool,
    wait: &mut Option<usize>,
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
        let result = rejected(status, headers, after_head, max_head, eof, wait);
        *wait = wait.map(|body| head_len.saturating_add(body));
        return result;
    }
    check_101(version, headers, key, request).map(|r| Status::Complete((r, head_len)))
}

/// The [`HandshakeError::Rejected`] for a non-101 answer, or `Partial` while its
/// `Content-Length` body is still arriving (then `wait` is the body's length).
fn rejected(
    status: u16,
    headers: Vec<Header>,
    after_head: &[u8],
    max_head: usize,
    eof: bool,
    wait: &mut Option<usize>,
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
        *wait = Some(wanted);
        return Ok(Status::Partial);
    }
    let body = after_head.get(..wanted).unwrap_or(after_head);
    Err(HandshakeError::Rejected(Box::new(RefusedResponse {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    })))
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
    use crate::handshake::parse_request;
    use crate::handshake::request::tests::RFC_REQUEST;
    use crate::handshake::tests::{consistent, near};
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

    fn rfc_request() -> Request {
        match parse_request(RFC_REQUEST, 8192, 32).unwrap() {
            Status::Complete((req, _)) => req,
            Status::Partial => panic!("partial"),
        }
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

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
    fn rfc_1_2_sample_response_is_written() {
        let mut out = Vec::new();
        write_accept(&rfc_request(), &Accept::new().protocol("chat"), &mut out).unwrap();
        assert_eq!(
            text(out),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             \r\n"
        );
    }

    #[test]
    fn accept_without_protocol_sends_no_protocol_header() {
        let mut out = Vec::new();
        let accept = Accept::new().header("Set-Cookie", "a=b");
        write_accept(&rfc_request(), &accept, &mut out).unwrap();
        let out = text(out);
        assert!(!out.contains("Sec-WebSocket-Protocol"));
        assert!(out.ends_with("Set-Cookie: a=b\r\n\r\n"));
    }

    #[test]
    fn accepting_a_protocol_not_offered_writes_nothing() {
        let mut out = b"kept".to_vec();
        for p in ["mqtt", "Chat", "chat, superchat"] {
            assert_eq!(
                write_accept(&rfc_request(), &Accept::new().protocol(p), &mut out),
                Err(SendError::ProtocolNotOffered(p.into()))
            );
        }
        assert_eq!(out, b"kept");
    }

    #[test]
    fn accept_headers_are_what_write_accept_writes() {
        for accept in [
            Accept::new(),
            Accept::new()
                .protocol("superchat")
                .header("Set-Cookie", "a=b"),
        ] {
            let headers = accept_headers(&rfc_request(), &accept).unwrap();
            let mut expected = Vec::new();
            write_accept(&rfc_request(), &accept, &mut expected).unwrap();
            let mut written = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
            for h in &headers {
                put_header(&mut written, &h.name, &h.value);
            }
            written.extend_from_slice(b"\r\n");
            assert_eq!(text(written), text(expected));
        }
        let headers = accept_headers(&rfc_request(), &Accept::new()).unwrap();
        assert_eq!(headers[2].name, "Sec-WebSocket-Accept");
        assert_eq!(headers[2].value, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accept_headers_refuse_what_write_accept_refuses() {
        assert_eq!(
            accept_headers(&rfc_request(), &Accept::new().protocol("mqtt")),
            Err(SendError::ProtocolNotOffered("mqtt".into()))
        );
        assert_eq!(
            accept_headers(&rfc_request(), &Accept::new().header("X-A", "1\r\nEvil: 2")),
            Err(SendError::InvalidHeader)
        );
    }

    #[test]
    fn accept_header_injection_writes_nothing() {
        let mut out = Vec::new();
        for accept in [
            Accept::new().header("X-A", "1\r\nEvil: 2"),
            Accept::new().header("X-A", "1\n"),
            Accept::new().header("X-A", "1\0"),
            Accept::new().header("X A", "1"),
            Accept::new().header("", "1"),
            Accept::new().header("X-A:", "1"),
            Accept::new().header("sec-websocket-accept", "forged"),
            Accept::new().header("Sec-WebSocket-Protocol", "chat"),
        ] {
            assert_eq!(
                write_accept(&rfc_request(), &accept, &mut out),
                Err(SendError::InvalidHeader),
                "{accept:?}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn reject_403_with_body_and_length() {
        let mut out = Vec::new();
        let reject = Reject::new(403).header("X-Why", "origin").body("go away");
        write_reject(&reject, &mut out).unwrap();
        assert_eq!(
            text(out),
            "HTTP/1.1 403 Forbidden\r\n\
             X-Why: origin\r\n\
             Content-Length: 7\r\n\
             Connection: close\r\n\
             \r\n\
             go away"
        );
    }

    #[test]
    fn reject_with_unregistered_status_says_unknown() {
        let mut out = Vec::new();
        write_reject(&Reject::new(499), &mut out).unwrap();
        assert!(text(out).starts_with("HTTP/1.1 499 Unknown\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn reject_keeps_a_matching_caller_content_length() {
        let mut out = Vec::new();
        let reject = Reject::new(404).header("content-length", "2").body("no");
        write_reject(&reject, &mut out).unwrap();
        assert_eq!(text(out).matches("ontent-").count(), 1);
        let wrong = Reject::new(404).header("Content-Length", "3").body("no");
        assert_eq!(
            write_reject(&wrong, &mut Vec::new()),
            Err(SendError::InvalidHeader)
        );
    }

    #[test]
    fn reject_status_outside_100_599_or_101_is_invalid() {
        let mut out = Vec::new();
        for status in [0, 99, 101, 600, 1000, u16::MAX] {
            assert_eq!(
                write_reject(&Reject::new(status), &mut out),
                Err(SendError::InvalidHeader),
                "{status}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn reject_204_has_no_body_and_no_length() {
        let mut out = Vec::new();
        assert_eq!(
            write_reject(&Reject::new(204).body("x"), &mut out),
            Err(SendError::InvalidHeader)
        );
        write_reject(&Reject::new(204), &mut out).unwrap();
        assert_eq!(
            text(out),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn reject_header_injection_writes_nothing() {
        let mut out = Vec::new();
        let reject = Reject::new(302).header("Location", "/x\r\nSet-Cookie: a=b");
        assert_eq!(
            write_reject(&reject, &mut out),
            Err(SendError::InvalidHeader)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn error_response_426_names_version_13() {
        let mut out = Vec::new();
        write_error_response(&HandshakeError::UnsupportedVersion, &mut out);
        let body = "Sec-WebSocket-Version is not 13\n";
        assert_eq!(
            text(out),
            format!(
                "HTTP/1.1 426 Upgrade Required\r\n\
                 Sec-WebSocket-Version: 13\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\n\
                 Connection: close\r\n\
                 \r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn error_response_405_allows_get() {
        let mut out = Vec::new();
        write_error_response(&HandshakeError::MethodNotGet, &mut out);
        let out = text(out);
        assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"));
        assert!(out.ends_with("\r\n\r\nmethod is not GET\n"));
    }

    #[test]
    fn error_response_missing_upgrade_is_400_not_426() {
        let mut out = Vec::new();
        write_error_response(&HandshakeError::MissingUpgrade, &mut out);
        let out = text(out);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(!out.contains("Sec-WebSocket-Version"));
    }

    #[test]
    fn error_response_431_for_large_heads() {
        let mut out = Vec::new();
        write_error_response(&HandshakeError::HeadTooLarge { limit: 10 }, &mut out);
        assert!(text(out).starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }

    #[test]
    fn error_response_content_length_matches_body() {
        let mut out = Vec::new();
        write_error_response(
            &HandshakeError::ProtocolNotOffered("\u{e9}\"".into()),
            &mut out,
        );
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut res = httparse::Response::new(&mut slots);
        let n = match res.parse(&out).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        let cl = res
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .unwrap();
        let cl: usize = core::str::from_utf8(cl.value).unwrap().parse().unwrap();
        assert_eq!(cl, out.len() - n);
        assert_eq!(res.code, Some(400));
    }

    #[test]
    fn error_response_for_a_client_side_rejection_is_400() {
        let mut out = Vec::new();
        let err = HandshakeError::Rejected(Box::new(RefusedResponse {
            status: 302,
            headers: Vec::new(),
            body: bytes::Bytes::new(),
        }));
        write_error_response(&err, &mut out);
        assert!(text(out).starts_with("HTTP/1.1 400 Bad Request\r\n"));
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
        HandshakeError::Rejected(Box::new(RefusedResponse {
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
        }))
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
        let Err(HandshakeError::Rejected(refused)) =
            parse_response(wire.as_bytes(), max_head, MAX_HEADERS, KEY, &req, false)
        else {
            panic!("not rejected")
        };
        let RefusedResponse { status, body, .. } = *refused;
        assert_eq!((status, body.len()), (500, max_head));
    }

    #[test]
    fn rejected_without_content_length_takes_what_arrived() {
        let req = chat_request();
        let wire = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\nsee /elsewhere";
        // The body runs to the end of the stream, so it is not complete before EOF.
        assert_eq!(parse(wire.as_bytes(), &req, false), Ok(Status::Partial));
        let Err(HandshakeError::Rejected(refused)) = parse(wire.as_bytes(), &req, true) else {
            panic!("not rejected")
        };
        let RefusedResponse {
            status,
            headers,
            body,
        } = *refused;
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
        let Err(HandshakeError::Rejected(refused)) = parse(&wire, &req, false) else {
            panic!("not rejected")
        };
        let RefusedResponse { status, body, .. } = *refused;
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
        let Err(HandshakeError::Rejected(refused)) = parse(&wire, &req, false) else {
            panic!("not rejected")
        };
        let RefusedResponse {
            status,
            headers,
            body,
        } = *refused;
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

    proptest! {
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
