//! The `Origin` allow-list (RFC 6455 §4.2.2 item 4, §10.2; origins per RFC 6454).
//!
//! A browser names the page that opened the connection in `Origin`; a server that does
//! not check it lets any web page use its visitors' cookies and credentials against it
//! (cross-site WebSocket hijacking). [`AllowedOrigins`] lists the pages allowed, and
//! [`Config::allowed_origins`](crate::Config::allowed_origins) makes a
//! [`Connection`](crate::Connection) refuse the others with 403 before the request is
//! reported.

use crate::prelude::*;

use alloc::sync::Arc;
use core::fmt;

use super::Request;
use super::trim_ows;
use crate::error::HandshakeError;

/// One origin as RFC 6454 §6.1 serializes it (`scheme "://" host [ ":" port ]`), with the
/// scheme and host lowercased and the scheme's default port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    /// A reg-name or IPv4 address, or an IPv6 literal in brackets.
    host: String,
    /// `None` only for a scheme without a known default port and no port given.
    port: Option<u16>,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `scheme://host[:port]`: that origin only.
    Exact(Origin),
    /// `scheme://*.domain[:port]`: every subdomain of `domain` (one label or more),
    /// not `domain` itself. `origin.host` holds `.domain`.
    Subdomains(Origin),
    /// `null`: the opaque origin (sandboxed frames, `file:` pages, some redirects).
    Null,
}

/// The origins a server accepts in a request's `Origin` header (RFC 6455 §4.2.2 item 4:
/// "If the server does not wish to accept this connection, it MUST return an
/// appropriate HTTP error code (e.g., 403 Forbidden)").
///
/// Entries, as in [`new`](Self::new):
///
/// - `https://example.com`, `http://localhost:8080`, `https://[::1]:8443`: one origin.
///   Scheme and host compare ASCII case-insensitively and a default port (80 for
///   `http`/`ws`, 443 for `https`/`wss`) is the same as none: `HTTPS://Example.COM:443`
///   is `https://example.com`.
/// - `https://*.example.com` (optionally with a port): any subdomain of `example.com`
///   over that scheme and port, at any depth (`a.example.com`, `a.b.example.com`), but
///   neither `example.com` itself (list it too) nor `example.com.evil.com` nor
///   `evilexample.com`.
/// - `null`: the opaque origin that sandboxed frames and `file:` pages send. Refused
///   unless listed (any page can make itself opaque).
///
/// [`allows`](Self::allows) decides: a request **without** `Origin` is allowed (it does
/// not come from a browser, which always sends one, §4.1 item 8; a non-browser client
/// could send any value anyway, so the check protects browsers' users, not the server),
/// a value that is not one serialized origin (a path, a list, userinfo, bad characters)
/// is refused. An empty list refuses every browser.
///
/// Cloning is cheap (the list is shared behind an `Arc`): a [`Config`](crate::Config)
/// holding it is cloned per connection.
///
/// ```
/// # use wsengine::handshake::AllowedOrigins;
/// let allowed = AllowedOrigins::new(["https://example.com", "https://*.example.com"])?;
/// assert!(allowed.allows(Some("https://EXAMPLE.com:443")));
/// assert!(allowed.allows(Some("https://chat.example.com")));
/// assert!(!allowed.allows(Some("https://example.com.evil.com")));
/// assert!(!allowed.allows(Some("http://example.com")));
/// assert!(!allowed.allows(Some("null")));
/// assert!(allowed.allows(None));
/// # Ok::<(), wsengine::handshake::InvalidOrigin>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    patterns: Arc<[Pattern]>,
}

/// An entry given to [`AllowedOrigins::new`] that is not an origin, a wildcard origin
/// or `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid allowed origin {:?}: {}",
            self.entry, self.reason
        )
    }
}

impl core::error::Error for InvalidOrigin {}

impl AllowedOrigins {
    /// The list of `entries` (see the type's docs for their forms).
    pub fn new<I, S>(entries: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = entries
            .into_iter()
            .map(|entry| {
                let entry = entry.as_ref();
                parse_pattern(entry).map_err(|reason| InvalidOrigin {
                    entry: entry.to_owned(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patterns: patterns.into(),
        })
    }

    /// Whether a request whose `Origin` header is `origin` (`None`: no header) is
    /// allowed. Optional whitespace around the value is ignored.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = trim_ows(origin.as_bytes());
        if origin == b"null" {
            return self.patterns.contains(&Pattern::Null);
        }
        let Some(origin) = core::str::from_utf8(origin)
            .ok()
            .and_then(|o| parse_origin(o, false).ok())
        else {
            return false;
        };
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(o) => *o == origin,
            Pattern::Subdomains(o) => {
                o.scheme == origin.scheme
                    && o.port == origin.port
                    && origin.host.len() > o.host.len()
                    && origin.host.ends_with(o.host.as_str())
            }
            Pattern::Null => false,
        })
    }

    /// [`allows`](Self::allows) for a parsed request: `Err(OriginRefused)` (403) when its
    /// `Origin` is not allowed. A [`Connection`](crate::Connection) runs it by itself with
    /// [`Config::allowed_origins`](crate::Config::allowed_origins); call it after
    /// [`check_request`](super::check_request) when the head was parsed elsewhere.
    pub fn check(&self, request: &Request) -> Result<(), HandshakeError> {
        if self.allows(request.origin()) {
            Ok(())
        } else {
            Err(HandshakeError::OriginRefused)
        }
    }
}

fn parse_pattern(entry: &str) -> Result<Pattern, &'static str> {
    let entry = entry.trim();
    if entry == "null" {
        return Ok(Pattern::Null);
    }
    let origin = parse_origin(entry, true)?;
    match origin.host.strip_prefix('*') {
        Some(domain) => Ok(Pattern::Subdomains(Origin {
            host: domain.to_owned(),
            ..origin
        })),
        None => Ok(Pattern::Exact(origin)),
    }
}

/// Parses `scheme "://" host [ ":" port ]`; with `wildcard`, the host may start with
/// `*.` (kept in the returned host).
fn parse_origin(text: &str, wildcard: bool) -> Result<Origin, &'static str> {
    let (scheme, authority) = text.split_once("://").ok_or("no scheme://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err("invalid scheme");
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or("unclosed IPv6 literal")?;
        let (host, rest) = authority.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
        {
            return Err("invalid IPv6 literal");
        }
        (host, rest)
    } else {
        let (host, port) = match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        };
        let name = match host.strip_prefix("*.") {
            Some(domain) if wildcard => domain,
            _ => host,
        };
        let labels_ok = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            });
        if !labels_ok {
            return Err("invalid host (a path, userinfo or an empty label?)");
        }
        (host, port)
    };
    let port = match port {
        "" => None,
        _ => {
            let digits = port.strip_prefix(':').unwrap_or(port);
            if digits.is_empty() || digits.len() > 5 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                return Err("invalid port");
            }
            Some(digits.parse::<u16>().map_err(|_| "invalid port")?)
        }
    };
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    Ok(Origin {
        port: port.or(default),
        host: host.to_ascii_lowercase(),
        scheme,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowedOrigins {
        AllowedOrigins::new(entries).unwrap()
    }

    #[test]
    fn exact_origins_compare_scheme_and_host_without_case_and_default_ports() {
        let allowed = list(&["https://example.com", "http://LocalHost:8080"]);
        for ok in [
            "https://example.com",
            "HTTPS://EXAMPLE.COM",
            "https://Example.Com:443",
            " https://example.com\t",
            "http://localhost:8080",
            "http://LOCALHOST:08080",
        ] {
            assert!(allowed.allows(Some(ok)), "{ok}");
        }
        for no in [
            "http://example.com",
            "https://example.com:8443",
            "wss://example.com",
            "https://www.example.com",
            "https://example.co",
            "https://example.com.evil.com",
            "http://localhost",
            "http://localhost:80",
            "https://example.com/",
            "https://example.com/path",
            "https://user@example.com",
            "https://example.com https://evil.com",
            "https://example.com:",
            "https://example.com:65536",
            "https://example.com.",
            "example.com",
            "",
            "null",
        ] {
            assert!(!allowed.allows(Some(no)), "{no}");
        }
        // A listed default port is the same as none.
        let allowed = list(&["https://example.com:443", "http://a.test:80"]);
        assert!(allowed.allows(Some("https://example.com")));
        assert!(allowed.allows(Some("http://a.test")));
        assert!(!allowed.allows(Some("https://a.test")));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let allowed = list(&["https://*.example.com"]);
        for ok in [
            "https://a.example.com",
            "https://A.B.Example.com",
            "https://a-b.example.com:443",
        ] {
            assert!(allowed.allows(Some(ok)), "{ok}");
        }
        for no in [
            "https://example.com",
            "https://.example.com",
            "https://example.com.evil.com",
            "https://a.example.com.evil.com",
            "https://evilexample.com",
            "https://a.evilexample.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://*.example.com",
        ] {
            assert!(!allowed.allows(Some(no)), "{no}");
        }
        // The apex only when listed; a port on the wildcard.
        let allowed = list(&["https://*.example.com:8443", "https://example.com"]);
        assert!(allowed.allows(Some("https://example.com")));
        assert!(allowed.allows(Some("https://x.example.com:8443")));
        assert!(!allowed.allows(Some("https://x.example.com")));
    }

    #[test]
    fn null_and_missing_origins() {
        let allowed = list(&["https://example.com"]);
        assert!(allowed.allows(None), "no Origin: not a browser");
        assert!(!allowed.allows(Some("null")));
        assert!(!allowed.allows(Some("NULL")));
        let allowed = list(&["null"]);
        assert!(allowed.allows(Some("null")));
        assert!(!allowed.allows(Some("https://example.com")));
        let nothing = list(&[]);
        assert!(nothing.allows(None));
        assert!(!nothing.allows(Some("https://example.com")));
    }

    #[test]
    fn ipv6_and_other_schemes() {
        let allowed = list(&["http://[::1]:3000", "chrome-extension://abcdef"]);
        assert!(allowed.allows(Some("http://[::1]:3000")));
        assert!(!allowed.allows(Some("http://[::2]:3000")));
        assert!(allowed.allows(Some("Chrome-Extension://ABCDEF")));
        assert!(!allowed.allows(Some("chrome-extension://abcdef:1")));
    }

    #[test]
    fn invalid_entries_are_refused_with_a_reason() {
        for bad in [
            "example.com",
            "https://",
            "https://example.com/",
            "https://*",
            "https://*.",
            "https://a.*.example.com",
            "https://*example.com",
            "https://example.com:x",
            "https://[::1",
            "1http://a",
        ] {
            let err = AllowedOrigins::new([bad]).unwrap_err();
            assert_eq!(err.entry, bad);
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn clones_share_the_list() {
        let a = list(&["https://example.com"]);
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.patterns, &b.patterns));
    }
}
