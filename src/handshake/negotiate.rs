//! Subprotocol and extension negotiation: the list grammars of RFC 6455 §4.1, §4.3 and
//! §9.1, with RFC 2616 `token` and `quoted-string`.

use crate::prelude::*;

use core::fmt;

use crate::error::HandshakeError;

/// One parameter of an extension offer: `name` or `name=value` (RFC 6455 §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionParam {
    /// The parameter name, a token.
    pub name: String,
    /// The value, unescaped if it was sent as a quoted-string; `None` for a bare name.
    pub value: Option<String>,
}

/// One element of a `Sec-WebSocket-Extensions` list: an extension name and its
/// parameters (RFC 6455 §9.1). `Display` gives the wire form,
/// e.g. `permessage-deflate; client_max_window_bits; server_max_window_bits=10`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// The parameters in the order given.
    pub params: Vec<ExtensionParam>,
}

impl ExtensionOffer {
    /// An offer of `name` with no parameters.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter (`value: None` for a bare name).
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: Option<String>) -> Self {
        self.params.push(ExtensionParam {
            name: name.into(),
            value,
        });
        self
    }

    /// Whether every name and value follows §9.1, so that [`Display`](fmt::Display)
    /// gives a valid list element: "the value after quoted-string unescaping MUST
    /// conform to the 'token' ABNF".
    pub(crate) fn is_valid(&self) -> bool {
        is_token(self.name.as_bytes())
            && self.params.iter().all(|p| {
                is_token(p.name.as_bytes())
                    && p.value.as_ref().is_none_or(|v| is_token(v.as_bytes()))
            })
    }
}

impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.params {
            write!(f, "; {}", p.name)?;
            match &p.value {
                None => {}
                Some(v) if is_token(v.as_bytes()) => write!(f, "={v}")?,
                Some(v) => {
                    // quoted-string (RFC 2616 §2.2): escape the two bytes that would end
                    // or escape the string.
                    f.write_str("=\"")?;
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
            }
        }
        Ok(())
    }
}

/// Whether `b` may appear in an RFC 2616 §2.2 `token`: a CHAR that is neither a CTL nor
/// a separator.
pub(crate) fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e)
        && !matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b'@'
                | b','
                | b';'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'='
                | b'{'
                | b'}'
        )
}

/// Whether `s` is an RFC 2616 `token` (`1*<any CHAR except CTLs or separators>`).
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_char(b))
}

/// The elements of comma-separated lists spread over repeated headers (RFC 7230 §7),
/// trimmed, with empty elements skipped.
fn list_elements<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    values
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(super::trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether any comma-separated element of `values` is `token`, ASCII case-insensitively
/// (RFC 6455 §4.2.1 items 3 and 4: `Upgrade: websocket`, `Connection: keep-alive, Upgrade`).
pub(crate) fn has_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &str) -> bool {
    list_elements(values).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses `Sec-WebSocket-Protocol` values: `1#token` (RFC 6455 §4.1 item 10, §11.3.4),
/// comma lists within and across repeated headers, in order of preference.
///
/// Empty list elements are skipped (RFC 7230 §7). Any element that is not a token is
/// [`HandshakeError::InvalidHeader`]: "The elements that comprise this value MUST be
/// non-empty strings with characters in the range U+0021 to U+007E not including
/// separator characters".
pub fn parse_protocols<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<String>, HandshakeError> {
    list_elements(values)
        .map(|e| {
            if is_token(e) {
                Ok(String::from_utf8_lossy(e).into_owned())
            } else {
                Err(HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"))
            }
        })
        .collect()
}

/// Parses `Sec-WebSocket-Extensions` values (RFC 6455 §9.1):
///
/// ```text
/// extension-list = 1#extension
/// extension = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// with optional whitespace between items ("the implied *LWS rule"), lists within and
/// across repeated headers ("this header field MAY be split or combined across multiple
/// lines"), and empty list elements skipped. Quoted values are unescaped.
///
/// Anything else is [`HandshakeError::InvalidHeader`]: "If a value is received by either
/// the client or the server during negotiation that does not conform to the ABNF below,
/// the recipient of such malformed data MUST immediately _Fail the WebSocket
/// Connection_."
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let mut offers = Vec::new();
    for value in values {
        let mut p = Cursor { s: value, pos: 0 };
        parse_extension_list(&mut p, &mut offers)
            .ok_or(HandshakeError::InvalidHeader("Sec-WebSocket-Extensions"))?;
    }
    Ok(offers)
}

/// A read position in one header value.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A non-empty token, or `None` (nothing consumed).
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        let t = self.s.get(start..self.pos)?;
        // Token bytes are ASCII, so this conversion cannot fail.
        (!t.is_empty()).then(|| String::from_utf8_lossy(t).into_owned())
    }

    /// A quoted-string (RFC 2616 §2.2) starting at the opening quote, unescaped.
    fn quoted_string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    // quoted-pair = "\" CHAR
                    let c = self.peek().filter(u8::is_ascii)?;
                    self.pos += 1;
                    out.push(c);
                }
                // qdtext excludes CTLs other than LWS.
                b if b == b'\t' || (b >= 0x20 && b != 0x7f) => out.push(b),
                _ => return None,
            }
        }
        String::from_utf8(out).ok()
    }
}

/// Parses one header value into `offers`; `None` if it breaks the §9.1 grammar.
fn parse_extension_list(p: &mut Cursor<'_>, offers: &mut Vec<ExtensionOffer>) -> Option<()> {
    loop {
        p.skip_ows();
        match p.peek() {
            None => return Some(()),
            // An empty list element (RFC 7230 §7: "a recipient MUST accept empty list
            // elements").
            Some(b',') => {
                p.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut offer = ExtensionOffer::new(p.token()?);
        p.skip_ows();
        while p.eat(b';') {
            p.skip_ows();
            let name = p.token()?;
            p.skip_ows();
            let value = if p.eat(b'=') {
                p.skip_ows();
                let v = match p.peek() {
                    Some(b'"') => p.quoted_string()?,
                    _ => p.token()?,
                };
                // "When using the quoted-string syntax variant, the value after
                // quoted-string unescaping MUST conform to the 'token' ABNF."
                if !is_token(v.as_bytes()) {
                    return None;
                }
                p.skip_ows();
                Some(v)
            } else {
                None
            };
            offer.params.push(ExtensionParam { name, value });
        }
        offers.push(offer);
        match p.peek() {
            None => return Some(()),
            Some(b',') => p.pos += 1,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(values: &[&str]) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        parse_extensions(values.iter().map(|v| v.as_bytes()))
    }

    fn protos(values: &[&str]) -> Result<Vec<String>, HandshakeError> {
        parse_protocols(values.iter().map(|v| v.as_bytes()))
    }

    const BAD_EXT: HandshakeError = HandshakeError::InvalidHeader("Sec-WebSocket-Extensions");

    #[test]
    fn token_match_is_case_insensitive_inside_comma_lists() {
        assert!(has_token([&b"keep-alive, Upgrade"[..]], "upgrade"));
        assert!(has_token([&b"keep-alive,UPGRADE"[..]], "Upgrade"));
        assert!(has_token([&b"close"[..], &b" upgrade "[..]], "Upgrade"));
        assert!(has_token([&b"WebSocket"[..]], "websocket"));
        assert!(!has_token([&b"upgrade-insecure"[..]], "upgrade"));
        assert!(!has_token([&b"keep-alive"[..]], "upgrade"));
        assert!(!has_token(core::iter::empty(), "upgrade"));
    }

    #[test]
    fn protocols_are_a_list_across_repeated_headers() {
        assert_eq!(
            protos(&["chat, superchat", "v2.json"]).unwrap(),
            ["chat", "superchat", "v2.json"]
        );
        assert_eq!(protos(&[" ,chat,, "]).unwrap(), ["chat"]);
        assert!(protos(&[]).unwrap().is_empty());
    }

    #[test]
    fn protocol_that_is_not_a_token_is_invalid() {
        let bad = Err(HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"));
        assert_eq!(protos(&["chat super"]), bad);
        assert_eq!(protos(&["chat/1"]), bad);
        assert_eq!(protos(&["\"chat\""]), bad);
        assert_eq!(protos(&["caf\u{e9}"]), bad);
    }

    #[test]
    fn extension_with_params_and_whitespace() {
        let got = ext(&["permessage-deflate ; client_max_window_bits;server_max_window_bits = 10"])
            .unwrap();
        let want = ExtensionOffer::new("permessage-deflate")
            .param("client_max_window_bits", None)
            .param("server_max_window_bits", Some("10".into()));
        assert_eq!(got, [want]);
    }

    #[test]
    fn extension_list_across_repeated_headers_equals_combined() {
        // RFC 6455 §9.1's own example.
        let split = ext(&["foo", "bar; baz=2"]).unwrap();
        let combined = ext(&["foo, bar; baz=2"]).unwrap();
        assert_eq!(split, combined);
        assert_eq!(split.len(), 2);
        assert_eq!(split[1].params[0].value.as_deref(), Some("2"));
    }

    #[test]
    fn extension_quoted_value_is_unescaped() {
        let got = ext(&[r#"foo; a="10"; b="x\yz""#]).unwrap();
        assert_eq!(got[0].params[0].value.as_deref(), Some("10"));
        assert_eq!(got[0].params[1].value.as_deref(), Some("xyz"));
    }

    #[test]
    fn extension_quoted_value_must_unescape_to_a_token() {
        assert_eq!(ext(&[r#"foo; a="1 0""#]), Err(BAD_EXT));
        assert_eq!(ext(&[r#"foo; a="""#]), Err(BAD_EXT));
        assert_eq!(ext(&[r#"foo; a="x\"y""#]), Err(BAD_EXT));
    }

    #[test]
    fn empty_extension_elements_are_skipped() {
        assert_eq!(ext(&[", foo ,, bar,"]).unwrap().len(), 2);
        assert!(ext(&["", " "]).unwrap().is_empty());
    }

    #[test]
    fn malformed_extensions_are_invalid() {
        for bad in [
            "foo;",
            "foo; =1",
            "foo; a=",
            "foo; a=\"10",
            "foo bar",
            "foo; a=1 2",
            ";a",
            "foo; a=b=c",
            "foo/1",
            "foo; a=\"\x01\"",
            "foo; a=\"x\\",
        ] {
            assert_eq!(ext(&[bad]), Err(BAD_EXT), "{bad:?}");
        }
    }

    #[test]
    fn extension_display_is_the_wire_form() {
        let offer = ExtensionOffer::new("permessage-deflate")
            .param("client_max_window_bits", None)
            .param("server_max_window_bits", Some("10".into()));
        let wire = offer.to_string();
        assert_eq!(
            wire,
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
        );
        assert_eq!(ext(&[&wire]).unwrap(), [offer]);
    }

    #[test]
    fn extension_display_quotes_values_that_are_not_tokens() {
        let offer = ExtensionOffer::new("x").param("a", Some("b c\"d\\".into()));
        assert_eq!(offer.to_string(), r#"x; a="b c\"d\\""#);
        assert!(!offer.is_valid());
    }
}
