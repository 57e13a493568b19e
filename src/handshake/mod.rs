//! The opening handshake, RFC 6455 §4, as plain functions over byte buffers.
//!
//! Nothing here owns a socket or a buffer: parsers take `&[u8]` and return
//! [`Status::Partial`](crate::Status::Partial) until the HTTP head is complete, and
//! writers append to a caller's `Vec<u8>`. Every parser reports how many bytes the head
//! took; the bytes after it are WebSocket frames and stay with the caller.
//!
//! - Server: [`parse_request`] -> [`Request`], then [`write_accept`] with an [`Accept`],
//!   [`write_reject`] with a [`Reject`], or [`write_error_response`] for a
//!   [`HandshakeError`](crate::HandshakeError).
//! - Client: [`ClientRequest::new`] from a `ws://`/`wss://` URL, [`generate_key`],
//!   [`ClientRequest::write`], then [`parse_response`] -> [`Response`].
//! - Server policy: [`AllowedOrigins`] (`Origin`, 403), checked by a
//!   [`Connection`](crate::Connection) with `Config::allowed_origins`.
//! - Shared: [`accept_key`] (§4.2.2), [`parse_protocols`] (§4.1), [`parse_extensions`]
//!   (§9.1).
//!
//! The source is cut by message, each file parsing and writing its own:
//!
//! - `request.rs`: the opening request (§4.1, §4.2.1): [`ClientRequest`] and its `write`,
//!   [`parse_request`] and [`check_request`] into a [`Request`], [`RequestError`].
//! - `response.rs`: the server's answer (§4.1, §4.2.2, §4.4): [`Accept`], [`Reject`],
//!   [`write_accept`], [`accept_headers`], [`write_reject`], [`write_error_response`], and
//!   [`parse_response`] into a [`Response`].
//! - `origin.rs`: the `Origin` allow-list (§4.2.2 item 4, §10.2): [`AllowedOrigins`].
//! - `url.rs`: the `ws://`/`wss://` URLs (§3) that [`ClientRequest::new`] takes.
//! - `scan.rs`: a head that arrives in pieces searched once and parsed when complete
//!   (what [`Connection`](crate::Connection) uses instead of parsing on every read).
//! - `key.rs`: `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` (§1.3, §4.1, §4.2.2):
//!   [`generate_key`], [`accept_key`].
//! - `negotiate.rs`: tokens, lists, subprotocols and extension offers (§4.1, §4.3, §9.1).
//! - `mod.rs` (this module): the header helpers the files share (lookup, trimming, the
//!   checks before writing a header, the parse window).

use crate::prelude::*;

mod key;
mod negotiate;
mod origin;
mod request;
mod response;
mod scan;
mod url;

pub use key::{accept_key, generate_key};
pub(crate) use negotiate::has_token;
pub use negotiate::{ExtensionOffer, ExtensionParam, parse_extensions, parse_protocols};
pub use origin::{AllowedOrigins, InvalidOrigin};
pub use request::{ClientRequest, Request, RequestError, check_request, parse_request};
pub use response::{Accept, Reject, Response, parse_response};
pub use response::{accept_headers, write_accept, write_error_response, write_reject};

pub use crate::header::Header;
pub(crate) use scan::HeadScan;

/// The value of the first header called `name` (ASCII case-insensitive, RFC 7230 §3.2).
fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// Every value of the headers called `name`, in order (a list header may be split
/// across lines, RFC 7230 §3.2.2).
fn header_values<'a>(headers: &'a [Header], name: &str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// The first two values of the header called `name`: tells absent, once and repeated
/// apart.
fn first_two<'a>(headers: &'a [Header], name: &str) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
    let mut values = header_values(headers, name);
    (values.next(), values.next())
}

/// The only value of the header called `name`: `None` when it is absent or repeated.
fn single_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    match first_two(headers, name) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// A value that is plain printable ASCII (plus SP/HT), as a `&str`.
fn ascii_text(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        core::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Removes optional whitespace (SP / HTAB, RFC 7230 §3.2.3) around a value.
fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

/// Whether a header we are about to write has a name that is an HTTP token and a value
/// that cannot break the head: no CR or LF (which would start a new header line, i.e.
/// header injection), no NUL and no other control byte except HTAB (RFC 7230 §3.2:
/// `field-vchar = VCHAR / obs-text`), which a strict parser such as httparse rejects.
fn valid_header(name: &str, value: &[u8]) -> bool {
    negotiate::is_token(name.as_bytes())
        && value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether `name` is one of `reserved` (ASCII case-insensitive).
fn is_reserved(name: &str, reserved: &[&str]) -> bool {
    reserved.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// Appends `name: value\r\n`.
fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// httparse's reason for a parse error (its own text is private).
fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid new line",
        httparse::Error::Status => "invalid response status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Header slots for parsing `window`: `max_headers`, but never more than `window` could
/// fill (a header line takes at least 3 bytes, `a:\n`), so a huge limit does not
/// allocate a huge array.
fn header_slots(window: &[u8], max_headers: usize) -> Vec<httparse::Header<'_>> {
    vec![httparse::EMPTY_HEADER; max_headers.min(window.len() / 3 + 1)]
}

/// The part of `buf` the HTTP parser may look at: at most `max_head` bytes.
///
/// Parsing only this window makes the outcome independent of how the input was split:
/// a head that is malformed beyond the limit is reported as too large whether the bad
/// byte arrived with the rest or later.
fn head_window(buf: &[u8], max_head: usize) -> &[u8] {
    buf.get(..max_head).unwrap_or(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use crate::error::HandshakeError;
    use core::fmt;
    use proptest::prelude::*;

    /// Inputs near the fixtures (mutated) as well as arbitrary bytes.
    pub(super) fn near(fixture: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
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
    pub(super) fn consistent<T: PartialEq + fmt::Debug>(
        prefix: &Result<Status<T>, HandshakeError>,
        whole: &Result<Status<T>, HandshakeError>,
    ) -> bool {
        match (prefix, whole) {
            (Ok(Status::Partial), _) => true,
            (Err(HandshakeError::Rejected(r1)), Err(HandshakeError::Rejected(r2))) => r1 == r2,
            _ => prefix == whole,
        }
    }

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn header_injection_is_not_a_valid_header() {
        assert!(valid_header("X-A", b"ok value\t1"));
        assert!(!valid_header("X-A", b"a\r\nEvil: 1"));
        assert!(!valid_header("X-A", b"a\0"));
        assert!(!valid_header("X A", b"a"));
        assert!(!valid_header("", b"a"));
    }

    #[test]
    fn single_header_refuses_repeats() {
        let h = |n: &str, v: &str| Header {
            name: n.into(),
            value: v.into(),
        };
        let headers = [h("Host", "a"), h("host", "b"), h("Origin", "o")];
        assert_eq!(single_header(&headers, "HOST"), None);
        assert_eq!(single_header(&headers, "origin"), Some(&b"o"[..]));
        assert_eq!(find_header(&headers, "host"), Some(&b"a"[..]));
    }
}
