//! WebSocket URLs (RFC 6455 §3): the `ws://` and `wss://` URIs a
//! [`ClientRequest`](super::ClientRequest) is built from, checked against RFC 3986 (host,
//! port, path, query) and taken apart into what the opening handshake needs.

use crate::prelude::*;

use core::net::Ipv6Addr;

use super::request::RequestError;

/// A `ws://` or `wss://` URI taken apart (RFC 6455 §3).
pub(super) struct WsUrl {
    /// The host: a lowercased reg-name or IPv4 address, or an IPv6 address without
    /// brackets.
    pub(super) host: String,
    /// The port, the scheme's default unless the URL gave one.
    pub(super) port: u16,
    /// Whether the scheme is `wss`.
    pub(super) secure: bool,
    /// The /resource name/: path (at least `/`) and query.
    pub(super) resource: String,
    /// The `Host` header value (§4.1 item 4).
    pub(super) host_header: String,
}

/// Parses and checks a WebSocket URI (RFC 6455 §3), as documented on
/// [`ClientRequest::new`](super::ClientRequest::new).
pub(super) fn parse_ws_url(url: &str) -> Result<WsUrl, RequestError> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or(RequestError::InvalidUrl("missing scheme"))?;
    // §3: "The URI is called "secure" ... if the scheme component matches "wss"
    // case-insensitively."
    let secure = if scheme.eq_ignore_ascii_case("wss") {
        true
    } else if scheme.eq_ignore_ascii_case("ws") {
        false
    } else {
        return Err(RequestError::InvalidUrl("scheme is not ws or wss"));
    };
    let rest = rest
        .strip_prefix("//")
        .ok_or(RequestError::InvalidUrl("missing // after the scheme"))?;
    if rest.contains('#') {
        return Err(RequestError::InvalidUrl(
            "fragment identifiers MUST NOT be used",
        ));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(RequestError::InvalidUrl("userinfo is not allowed"));
    }

    let (host, port, ipv6) = if let Some(literal) = authority.strip_prefix('[') {
        let (literal, after) = literal
            .split_once(']')
            .ok_or(RequestError::InvalidUrl("unclosed IPv6 literal"))?;
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err(RequestError::InvalidUrl("invalid IPv6 literal"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(RequestError::InvalidUrl("junk after the IPv6 literal"))?,
            ),
        };
        (literal, port, true)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if !is_reg_name(host) {
            return Err(RequestError::InvalidUrl("invalid character in host"));
        }
        (host, port, false)
    };
    if host.is_empty() {
        return Err(RequestError::InvalidUrl("empty host"));
    }
    let host = host.to_ascii_lowercase();

    // §3: "the default for "ws" is port 80, while the default for "wss" is port 443."
    let default_port = if secure { 443 } else { 80 };
    let port = match port {
        None | Some("") => default_port,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(RequestError::InvalidUrl("port out of range")),
            Ok(n) => n,
        },
        Some(_) => return Err(RequestError::InvalidUrl("port is not a number")),
    };

    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    if !is_uri_part(path, b"/") || !is_uri_part(query, b"/?") {
        return Err(RequestError::InvalidUrl(
            "invalid character in path or query",
        ));
    }
    // §3: the resource name is "/" if the path component is empty, the path, "?" if
    // the query component is non-empty, and the query.
    let mut resource = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    if !query.is_empty() {
        resource.push('?');
        resource.push_str(query);
    }

    // §4.1 item 4: "The request MUST contain a |Host| header field whose value
    // contains /host/ plus optionally ":" followed by /port/ (when not using the
    // default port)."
    let mut host_header = if ipv6 {
        format!("[{host}]")
    } else {
        host.clone()
    };
    if port != default_port {
        host_header.push(':');
        host_header.push_str(&port.to_string());
    }

    Ok(WsUrl {
        host,
        port,
        secure,
        resource,
        host_header,
    })
}

/// RFC 3986 §2.3 `unreserved` and §2.2 `sub-delims`.
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

/// Whether `s` is made of `%HH` escapes and bytes accepted by `allowed`.
fn is_pct_encoded_with(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if allowed(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// RFC 3986 §3.2.2 `reg-name` (which includes IPv4 addresses).
fn is_reg_name(s: &str) -> bool {
    is_pct_encoded_with(s, is_unreserved_or_sub_delim)
}

/// RFC 3986 §3.3 path-abempty or §3.4 query: `pchar` plus the bytes in `extra`.
fn is_uri_part(s: &str, extra: &[u8]) -> bool {
    is_pct_encoded_with(s, |b| {
        is_unreserved_or_sub_delim(b) || b == b':' || b == b'@' || extra.contains(&b)
    })
}

#[cfg(test)]
mod tests {
    use crate::handshake::{ClientRequest, RequestError};

    fn url_err(url: &str) -> &'static str {
        match ClientRequest::new(url) {
            Err(RequestError::InvalidUrl(why)) => why,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn ws_url_with_default_port() {
        let r = ClientRequest::new("ws://Example.COM/chat").unwrap();
        assert_eq!(r.host(), "example.com");
        assert_eq!(r.port(), 80);
        assert!(!r.is_secure());
        assert_eq!(r.resource(), "/chat");
        assert_eq!(r.host_header(), "example.com");
    }

    #[test]
    fn wss_url_with_default_port_and_uppercase_scheme() {
        let r = ClientRequest::new("WSS://example.com").unwrap();
        assert_eq!(r.port(), 443);
        assert!(r.is_secure());
        assert_eq!(r.resource(), "/");
        assert_eq!(r.host_header(), "example.com");
    }

    #[test]
    fn explicit_default_port_is_left_out_of_host_header() {
        let r = ClientRequest::new("wss://example.com:443/").unwrap();
        assert_eq!(r.host_header(), "example.com");
        let r = ClientRequest::new("ws://example.com:/").unwrap();
        assert_eq!(r.port(), 80);
    }

    #[test]
    fn ipv6_literal_with_port_and_query() {
        let r = ClientRequest::new("ws://[::1]:9001/chat?x=1").unwrap();
        assert_eq!(r.host(), "::1");
        assert_eq!(r.port(), 9001);
        assert_eq!(r.resource(), "/chat?x=1");
        assert_eq!(r.host_header(), "[::1]:9001");
        let r = ClientRequest::new("wss://[2001:DB8::1]").unwrap();
        assert_eq!(r.host_header(), "[2001:db8::1]");
    }

    #[test]
    fn ipv4_host_and_query_without_path() {
        let r = ClientRequest::new("ws://127.0.0.1:8080?a=b/c?d").unwrap();
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.resource(), "/?a=b/c?d");
        assert_eq!(r.host_header(), "127.0.0.1:8080");
    }

    #[test]
    fn empty_query_is_dropped_from_resource() {
        assert_eq!(ClientRequest::new("ws://h/p?").unwrap().resource(), "/p");
    }

    #[test]
    fn bad_schemes_are_invalid() {
        for url in ["http://h/", "wsx://h/", "ws:h/", "ws:/h", "//h/", "h", ""] {
            assert!(
                matches!(ClientRequest::new(url), Err(RequestError::InvalidUrl(_))),
                "{url}"
            );
        }
        assert_eq!(url_err("https://h/"), "scheme is not ws or wss");
    }

    #[test]
    fn fragment_must_not_be_used() {
        assert_eq!(
            url_err("ws://h/chat#frag"),
            "fragment identifiers MUST NOT be used"
        );
        assert_eq!(url_err("ws://h/#"), "fragment identifiers MUST NOT be used");
        assert!(ClientRequest::new("ws://h/a%23b").is_ok());
    }

    #[test]
    fn userinfo_is_rejected() {
        assert_eq!(url_err("ws://user:pw@h/"), "userinfo is not allowed");
    }

    #[test]
    fn empty_host_is_rejected() {
        assert_eq!(url_err("ws:///chat"), "empty host");
        assert_eq!(url_err("ws://:80/"), "empty host");
    }

    #[test]
    fn bad_ports_are_rejected() {
        assert_eq!(url_err("ws://h:0/"), "port out of range");
        assert_eq!(url_err("ws://h:65536/"), "port out of range");
        assert_eq!(url_err("ws://h:99999999999999999999/"), "port out of range");
        assert_eq!(url_err("ws://h:8o/"), "port is not a number");
        assert_eq!(url_err("ws://h:+80/"), "port is not a number");
        assert_eq!(ClientRequest::new("ws://h:65535").unwrap().port(), 65535);
    }

    #[test]
    fn bad_hosts_and_ipv6_literals_are_rejected() {
        assert_eq!(url_err("ws://[::1/"), "unclosed IPv6 literal");
        assert_eq!(url_err("ws://[::g]/"), "invalid IPv6 literal");
        assert_eq!(url_err("ws://[::1]x/"), "junk after the IPv6 literal");
        assert_eq!(url_err("ws://[fe80::1%25eth0]/"), "invalid IPv6 literal");
        assert_eq!(url_err("ws://::1/"), "invalid character in host");
        assert_eq!(url_err("ws://h st/"), "invalid character in host");
        assert_eq!(url_err("ws://h%zz/"), "invalid character in host");
    }

    #[test]
    fn request_line_injection_in_path_is_rejected() {
        for url in [
            "ws://h/a b",
            "ws://h/a\r\nX: y",
            "ws://h/\u{e9}",
            "ws://h/?q=\"",
            "ws://h/%4",
        ] {
            assert_eq!(
                url_err(url),
                "invalid character in path or query",
                "{url:?}"
            );
        }
    }
}
