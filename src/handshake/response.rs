//! The server's writes: the 101 that completes the handshake (RFC 6455 §4.2.2 step 5),
//! an application's refusal, and the error response to a malformed request (§4.2.1,
//! §4.4).

use crate::prelude::*;

use super::request::{Accept, Reject, Request};
use super::{Header, accept_key, find_header, header_values, is_reserved, put_header};
use super::{trim_ows, valid_header};
use crate::error::{HandshakeError, SendError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use crate::handshake::parse_request;
    use crate::handshake::request::tests::RFC_REQUEST;

    fn rfc_request() -> Request {
        match parse_request(RFC_REQUEST, 8192, 32).unwrap() {
            Status::Complete((req, _)) => req,
            Status::Partial => panic!("partial"),
        }
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
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
        let err = HandshakeError::Rejected {
            status: 302,
            headers: Vec::new(),
            body: bytes::Bytes::new(),
        };
        write_error_response(&err, &mut out);
        assert!(text(out).starts_with("HTTP/1.1 400 Bad Request\r\n"));
    }
}
