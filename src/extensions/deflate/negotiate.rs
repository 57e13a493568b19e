//! Extension negotiation for `permessage-deflate` (RFC 7692 §5, §7.1).

use core::fmt;

use super::{
    DeflateConfig, DeflateParams, DirectionParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS,
};
use crate::error::HandshakeError;
use crate::handshake::{ExtensionOffer, ExtensionParam};

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The server's answer broke RFC 7692 §7: "A client MUST _Fail the WebSocket Connection_
/// if the peer server accepted an extension negotiation offer for this extension with an
/// extension negotiation response meeting any of the following conditions".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateNegotiationError {
    /// `permessage-deflate` appears more than once in the answer: the server can accept
    /// one offer only (RFC 6455 §9.1).
    RepeatedExtension,
    /// "an extension parameter not defined for use in a response": an unknown name, or
    /// `client_max_window_bits` when the client did not offer it (§7.1.2.2).
    UnexpectedParam(String),
    /// "multiple extension parameters with the same name".
    DuplicateParam(&'static str),
    /// "an extension parameter with an invalid value": a value on a
    /// `*_no_context_takeover`, a missing value on a `*_max_window_bits`, or a value that
    /// is not a decimal 8..=15 without leading zeroes.
    InvalidValue(&'static str),
    /// The answer does not honour what the client asked for: `server_no_context_takeover`
    /// missing though requested (§7.1.1.1), or `server_max_window_bits` missing or larger
    /// than requested (§7.1.2.1). "The client does not support the configuration that
    /// the response represents."
    NotHonoured(&'static str),
}

impl fmt::Display for DeflateNegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RepeatedExtension => write!(f, "{EXTENSION_NAME} accepted more than once"),
            Self::UnexpectedParam(p) => write!(f, "{EXTENSION_NAME} parameter {p:?} not allowed"),
            Self::DuplicateParam(p) => write!(f, "{EXTENSION_NAME} parameter {p} repeated"),
            Self::InvalidValue(p) => write!(f, "{EXTENSION_NAME} parameter {p} has a bad value"),
            Self::NotHonoured(p) => write!(f, "{EXTENSION_NAME} answer ignores the {p} asked for"),
        }
    }
}

impl core::error::Error for DeflateNegotiationError {}

/// The handshake error a client reports for a bad answer: the
/// `Sec-WebSocket-Extensions` header is invalid.
impl From<DeflateNegotiationError> for HandshakeError {
    fn from(_: DeflateNegotiationError) -> Self {
        HandshakeError::InvalidHeader("Sec-WebSocket-Extensions")
    }
}

/// The four parameters of one offer or answer, syntax-checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only, §7.1.2.2).
    client_max_window_bits: Option<Option<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ParamError {
    Unknown(String),
    Duplicate(&'static str),
    InvalidValue(&'static str),
}

impl From<ParamError> for DeflateNegotiationError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::Unknown(name) => Self::UnexpectedParam(name),
            ParamError::Duplicate(name) => Self::DuplicateParam(name),
            ParamError::InvalidValue(name) => Self::InvalidValue(name),
        }
    }
}

fn is_ours(e: &ExtensionOffer) -> bool {
    e.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// Parses the parameters of one element (§7.1): each name at most once, the
/// `*_no_context_takeover` ones without a value, `server_max_window_bits` with one,
/// `client_max_window_bits` with or without one.
fn parse_params(params: &[ExtensionParam]) -> Result<Params, ParamError> {
    let mut out = Params::default();
    let mut seen = [false; 4];
    for p in params {
        let name = p.name.as_str();
        let (index, canonical) = [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS,
        ]
        .into_iter()
        .enumerate()
        .find(|(_, known)| name.eq_ignore_ascii_case(known))
        .ok_or_else(|| ParamError::Unknown(p.name.clone()))?;
        if core::mem::replace(&mut seen[index], true) {
            return Err(ParamError::Duplicate(canonical));
        }
        let value = p.value.as_deref();
        match index {
            // §7.1.1.1, §7.1.1.2: "This extension parameter has no value."
            0 | 1 => {
                if value.is_some() {
                    return Err(ParamError::InvalidValue(canonical));
                }
                if index == 0 {
                    out.server_no_context_takeover = true;
                } else {
                    out.client_no_context_takeover = true;
                }
            }
            // §7.1.2.1: "This parameter has a decimal integer value without leading
            // zeroes between 8 to 15, inclusive".
            2 => {
                let bits = value
                    .and_then(parse_window_bits)
                    .ok_or(ParamError::InvalidValue(canonical))?;
                out.server_max_window_bits = Some(bits);
            }
            // §7.1.2.2: "This parameter has no value or a decimal integer value without
            // leading zeroes between 8 to 15 inclusive".
            _ => {
                let bits = match value {
                    None => None,
                    Some(v) => {
                        Some(parse_window_bits(v).ok_or(ParamError::InvalidValue(canonical))?)
                    }
                };
                out.client_max_window_bits = Some(bits);
            }
        }
    }
    Ok(out)
}

/// `1*DIGIT` without leading zeroes, 8..=15.
fn parse_window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>()
        .ok()
        .filter(|b| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(b))
}

/// Server side: answers the client's `Sec-WebSocket-Extensions` offers (RFC 7692 §5).
///
/// Accepts the first `permessage-deflate` offer it can honour, "in the order of the
/// client's preference", and returns the agreed parameters with the element to send
/// back. Offers that break §7 are declined (skipped), as "a server MUST decline an
/// extension negotiation offer for this extension if ... the negotiation offer contains
/// an extension parameter not defined for use in an offer ... an extension parameter
/// with an invalid value ... multiple extension parameters with the same name". Returns
/// `None` (answer without the extension) when no offer is acceptable. Offers of other
/// extensions are ignored.
///
/// Every valid configuration is supported, so a valid offer is never declined:
///
/// - `server_no_context_takeover` is answered when offered or configured (§7.1.1.1: the
///   server "MAY include" it in any answer); likewise `client_no_context_takeover`
///   (§7.1.1.2), echoed when offered since the client has promised it anyway.
/// - `server_max_window_bits` is answered with the smaller of the offered and configured
///   values ("the same or smaller value as the offer", §7.1.2.1), or the configured value
///   when not offered. 8 is accepted: see the module docs on window bits 8.
/// - `client_max_window_bits` is answered only when offered (§7.1.2.2: "A server MUST NOT
///   include the 'client_max_window_bits' extension parameter in an extension negotiation
///   response if the extension negotiation offer being accepted by the response does not
///   include the 'client_max_window_bits' extension parameter"), with the smaller of the
///   offered value and the configured one; not at all when the client offered it bare
///   and nothing is configured.
pub fn negotiate_server(
    offers: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Option<(DeflateParams, ExtensionOffer)> {
    offers
        .iter()
        .filter(|o| is_ours(o))
        .find_map(|o| parse_params(&o.params).ok())
        .map(|offer| answer(&offer, config))
}

fn answer(offer: &Params, config: &DeflateConfig) -> (DeflateParams, ExtensionOffer) {
    let server_nct = offer.server_no_context_takeover || config.server_no_context_takeover;
    let client_nct = offer.client_no_context_takeover || config.client_no_context_takeover;
    let server_bits = match (offer.server_max_window_bits, config.server_bits()) {
        (Some(offered), mine) => Some(offered.min(mine.unwrap_or(MAX_WINDOW_BITS))),
        (None, mine) => mine,
    };
    let client_bits = match (offer.client_max_window_bits, config.client_bits()) {
        (None, _) => None,
        (Some(Some(offered)), mine) => Some(offered.min(mine.unwrap_or(MAX_WINDOW_BITS))),
        (Some(None), mine) => mine,
    };
    let mut response = ExtensionOffer::new(EXTENSION_NAME);
    if server_nct {
        response = response.param(SERVER_NO_CONTEXT_TAKEOVER, None);
    }
    if client_nct {
        response = response.param(CLIENT_NO_CONTEXT_TAKEOVER, None);
    }
    if let Some(bits) = server_bits {
        response = response.param(SERVER_MAX_WINDOW_BITS, Some(bits.to_string()));
    }
    if let Some(bits) = client_bits {
        response = response.param(CLIENT_MAX_WINDOW_BITS, Some(bits.to_string()));
    }
    let params = DeflateParams {
        server: DirectionParams {
            max_window_bits: server_bits.unwrap_or(MAX_WINDOW_BITS),
            no_context_takeover: server_nct,
        },
        // The client promised its offered value even if the answer leaves it out.
        client: DirectionParams {
            max_window_bits: client_bits
                .or(offer.client_max_window_bits.flatten())
                .unwrap_or(MAX_WINDOW_BITS),
            no_context_takeover: client_nct,
        },
    };
    (params, response)
}

/// Client side: the `permessage-deflate` element to put in `Sec-WebSocket-Extensions`.
///
/// Carries `server_no_context_takeover` and `server_max_window_bits=N` when configured
/// (requests the server must honour or decline), `client_no_context_takeover` when
/// configured (a promise, §7.1.1.2), and always `client_max_window_bits`, with the
/// configured value or bare: this client accepts any window the server assigns it.
pub fn client_offer(config: &DeflateConfig) -> ExtensionOffer {
    let mut offer = ExtensionOffer::new(EXTENSION_NAME);
    if config.server_no_context_takeover {
        offer = offer.param(SERVER_NO_CONTEXT_TAKEOVER, None);
    }
    if config.client_no_context_takeover {
        offer = offer.param(CLIENT_NO_CONTEXT_TAKEOVER, None);
    }
    if let Some(bits) = config.server_bits() {
        offer = offer.param(SERVER_MAX_WINDOW_BITS, Some(bits.to_string()));
    }
    offer.param(
        CLIENT_MAX_WINDOW_BITS,
        config.client_bits().map(|b| b.to_string()),
    )
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` answer against
/// [`client_offer`]`(config)`.
///
/// `Ok(None)`: the server declined `permessage-deflate` (messages go uncompressed).
/// `Ok(Some(params))`: accepted; `params` is what both ends use. `Err`: the answer breaks
/// RFC 7692 §7 and the client "MUST _Fail the WebSocket Connection_". Other extensions in
/// `response` are ignored (checking that they were offered is the handshake's job).
pub fn negotiate_client(
    response: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
    let offer = client_offer(config);
    let offered = parse_params(&offer.params).map_err(DeflateNegotiationError::from)?;
    check_answer(response, &offered)
}

/// Checks an answer against the parameters the client offered.
fn check_answer(
    response: &[ExtensionOffer],
    offered: &Params,
) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
    let mut ours = response.iter().filter(|e| is_ours(e));
    let Some(element) = ours.next() else {
        return Ok(None);
    };
    if ours.next().is_some() {
        return Err(DeflateNegotiationError::RepeatedExtension);
    }
    let answer = parse_params(&element.params)?;
    // §7.1.2.1: the answer carries server_max_window_bits "with the same or smaller
    // value as the offer".
    if let Some(asked) = offered.server_max_window_bits {
        match answer.server_max_window_bits {
            Some(bits) if bits <= asked => {}
            _ => return Err(DeflateNegotiationError::NotHonoured(SERVER_MAX_WINDOW_BITS)),
        }
    }
    // §7.1.1.1: "A server accepts an extension negotiation offer that includes the
    // 'server_no_context_takeover' extension parameter by including [it] in the
    // corresponding extension negotiation response".
    if offered.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err(DeflateNegotiationError::NotHonoured(
            SERVER_NO_CONTEXT_TAKEOVER,
        ));
    }
    let client_bits = match answer.client_max_window_bits {
        None => None,
        // §7.1.2.2: "A server MUST NOT include the 'client_max_window_bits' extension
        // parameter in an extension negotiation response if the extension negotiation
        // offer being accepted by the response does not include [it]."
        Some(_) if offered.client_max_window_bits.is_none() => {
            return Err(DeflateNegotiationError::UnexpectedParam(
                CLIENT_MAX_WINDOW_BITS.into(),
            ));
        }
        // In a response it "has a decimal integer value".
        Some(None) => {
            return Err(DeflateNegotiationError::InvalidValue(
                CLIENT_MAX_WINDOW_BITS,
            ));
        }
        Some(Some(bits)) => Some(bits),
    };
    // The client keeps its own promise (the offered value) when the server allows more.
    let client_bits = match (client_bits, offered.client_max_window_bits.flatten()) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(MAX_WINDOW_BITS),
    };
    Ok(Some(DeflateParams {
        server: DirectionParams {
            max_window_bits: answer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            no_context_takeover: answer.server_no_context_takeover,
        },
        client: DirectionParams {
            max_window_bits: client_bits,
            no_context_takeover: answer.client_no_context_takeover
                || offered.client_no_context_takeover,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn offers(header: &str) -> Vec<ExtensionOffer> {
        parse_extensions([header.as_bytes()]).unwrap()
    }

    fn server(header: &str) -> Option<(DeflateParams, String)> {
        server_with(header, &DeflateConfig::default())
    }

    fn server_with(header: &str, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
        negotiate_server(&offers(header), config).map(|(p, r)| (p, r.to_string()))
    }

    fn client(
        answer: &str,
        config: &DeflateConfig,
    ) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
        negotiate_client(&offers(answer), config)
    }

    fn dir(bits: u8, nct: bool) -> DirectionParams {
        DirectionParams {
            max_window_bits: bits,
            no_context_takeover: nct,
        }
    }

    // ---- server side ----

    #[test]
    fn plain_offer_is_accepted_with_a_plain_answer() {
        let (params, answer) = server("permessage-deflate").unwrap();
        assert_eq!(answer, "permessage-deflate");
        assert_eq!(params, DeflateParams::default());
        assert_eq!(params.server, dir(15, false));
    }

    #[test]
    fn no_offer_of_ours_is_none() {
        assert_eq!(server(""), None);
        assert_eq!(server("x-webkit-deflate-frame, foo; a=1"), None);
    }

    #[test]
    fn extension_and_parameter_names_match_case_insensitively() {
        let (params, answer) = server("Permessage-Deflate; Server_No_Context_Takeover").unwrap();
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
        assert!(params.server.no_context_takeover);
    }

    #[test]
    fn offer_with_a_duplicate_parameter_is_declined() {
        assert_eq!(
            server("permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
            None
        );
        assert_eq!(
            server("permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
            None
        );
        assert_eq!(
            server("permessage-deflate; server_max_window_bits=10; SERVER_MAX_WINDOW_BITS=11"),
            None
        );
    }

    #[test]
    fn offer_with_window_bits_out_of_range_is_declined() {
        for bad in [
            "7", "16", "0", "08", "010", "1", "99", "-9", "abc", "9a", "+9",
        ] {
            assert_eq!(
                server(&format!("permessage-deflate; server_max_window_bits={bad}")),
                None,
                "{bad}"
            );
            assert_eq!(
                server(&format!("permessage-deflate; client_max_window_bits={bad}")),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn offer_with_an_unknown_parameter_is_declined() {
        assert_eq!(server("permessage-deflate; max_window_bits=10"), None);
        assert_eq!(
            server("permessage-deflate; client_no_context_takeover; x=1"),
            None
        );
    }

    #[test]
    fn offer_with_a_value_where_none_is_allowed_is_declined() {
        assert_eq!(
            server("permessage-deflate; server_no_context_takeover=1"),
            None
        );
        assert_eq!(
            server("permessage-deflate; client_no_context_takeover=true"),
            None
        );
    }

    #[test]
    fn offer_of_server_max_window_bits_without_a_value_is_declined() {
        assert_eq!(server("permessage-deflate; server_max_window_bits"), None);
    }

    #[test]
    fn second_offer_is_accepted_when_the_first_is_invalid() {
        let (params, answer) = server(
            "permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=10",
        )
        .unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=10");
        assert_eq!(params.server, dir(10, false));
    }

    #[test]
    fn first_acceptable_offer_wins() {
        let (_, answer) =
            server("foo, permessage-deflate; client_no_context_takeover, permessage-deflate")
                .unwrap();
        assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
    }

    #[test]
    fn server_max_window_bits_is_answered_with_the_smaller_value() {
        let (params, answer) = server("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=10");
        assert_eq!(params.server.max_window_bits, 10);

        let mut config = DeflateConfig {
            server_max_window_bits: Some(9),
            ..DeflateConfig::default()
        };
        let (params, answer) =
            server_with("permessage-deflate; server_max_window_bits=12", &config).unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=9");
        assert_eq!(params.server.max_window_bits, 9);

        config.server_max_window_bits = Some(14);
        let (_, answer) =
            server_with("permessage-deflate; server_max_window_bits=12", &config).unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=12");
    }

    #[test]
    fn server_max_window_bits_may_be_answered_without_an_offer() {
        let config = DeflateConfig {
            server_max_window_bits: Some(11),
            ..DeflateConfig::default()
        };
        let (params, answer) = server_with("permessage-deflate", &config).unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=11");
        assert_eq!(params.server.max_window_bits, 11);
    }

    #[test]
    fn server_max_window_bits_8_is_accepted() {
        let (params, answer) = server("permessage-deflate; server_max_window_bits=8").unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=8");
        assert_eq!(params.server.max_window_bits, 8);
    }

    #[test]
    fn client_max_window_bits_is_answered_only_when_offered() {
        let config = DeflateConfig {
            client_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        // Not offered: "MUST NOT include".
        let (params, answer) = server_with("permessage-deflate", &config).unwrap();
        assert_eq!(answer, "permessage-deflate");
        assert_eq!(params.client.max_window_bits, 15);
        // Offered bare: the server may assign a value.
        let (params, answer) =
            server_with("permessage-deflate; client_max_window_bits", &config).unwrap();
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(params.client.max_window_bits, 10);
        // Offered bare, nothing configured: no answer needed.
        let (params, answer) = server("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(answer, "permessage-deflate");
        assert_eq!(params.client.max_window_bits, 15);
    }

    #[test]
    fn client_max_window_bits_value_is_answered_with_the_smaller_value() {
        let (params, answer) = server("permessage-deflate; client_max_window_bits=12").unwrap();
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=12");
        assert_eq!(params.client.max_window_bits, 12);
        let mut config = DeflateConfig {
            client_max_window_bits: Some(9),
            ..DeflateConfig::default()
        };
        let (params, answer) =
            server_with("permessage-deflate; client_max_window_bits=12", &config).unwrap();
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=9");
        assert_eq!(params.client.max_window_bits, 9);
        config.client_max_window_bits = Some(14);
        let (_, answer) =
            server_with("permessage-deflate; client_max_window_bits=12", &config).unwrap();
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=12");
    }

    #[test]
    fn no_context_takeover_is_answered_when_offered_or_configured() {
        let (params, answer) =
            server("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
                .unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(params.server, dir(15, true));
        assert_eq!(params.client, dir(15, true));

        let (params, answer) =
            server_with("permessage-deflate", &DeflateConfig::low_memory()).unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(params.server.no_context_takeover && params.client.no_context_takeover);
    }

    #[test]
    fn quoted_values_are_accepted() {
        let (params, _) = server(r#"permessage-deflate; server_max_window_bits="10""#).unwrap();
        assert_eq!(params.server.max_window_bits, 10);
    }

    #[test]
    fn configured_window_bits_are_clamped() {
        let config = DeflateConfig {
            server_max_window_bits: Some(3),
            client_max_window_bits: Some(40),
            ..DeflateConfig::default()
        };
        let (_, answer) =
            server_with("permessage-deflate; client_max_window_bits", &config).unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=15"
        );
    }

    #[test]
    fn server_answer_is_accepted_by_our_client() {
        let small_windows = DeflateConfig {
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(9),
            ..DeflateConfig::default()
        };
        for config in [
            DeflateConfig::default(),
            DeflateConfig::low_memory(),
            small_windows,
        ] {
            let offer = client_offer(&config).to_string();
            let (server_params, answer) = server_with(&offer, &config).unwrap();
            let client_params = client(&answer, &config).unwrap().unwrap();
            assert_eq!(client_params, server_params, "{offer} -> {answer}");
        }
    }

    // ---- client side ----

    #[test]
    fn default_client_offer() {
        assert_eq!(
            client_offer(&DeflateConfig::default()).to_string(),
            "permessage-deflate; client_max_window_bits"
        );
    }

    #[test]
    fn full_client_offer() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(12),
            ..DeflateConfig::default()
        };
        assert_eq!(
            client_offer(&config).to_string(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
    }

    #[test]
    fn answer_without_the_extension_is_none() {
        let config = DeflateConfig::default();
        assert_eq!(client("", &config), Ok(None));
        assert_eq!(client("x-other", &config), Ok(None));
    }

    #[test]
    fn plain_answer_gives_the_defaults() {
        let params = client("permessage-deflate", &DeflateConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(params, DeflateParams::default());
    }

    #[test]
    fn answer_repeating_the_extension_fails() {
        assert_eq!(
            client(
                "permessage-deflate, permessage-deflate",
                &DeflateConfig::default()
            ),
            Err(DeflateNegotiationError::RepeatedExtension)
        );
    }

    #[test]
    fn answer_with_an_unknown_parameter_fails() {
        assert_eq!(
            client("permessage-deflate; foo", &DeflateConfig::default()),
            Err(DeflateNegotiationError::UnexpectedParam("foo".into()))
        );
    }

    #[test]
    fn answer_with_a_duplicate_parameter_fails() {
        assert_eq!(
            client(
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                &DeflateConfig::default()
            ),
            Err(DeflateNegotiationError::DuplicateParam(
                CLIENT_NO_CONTEXT_TAKEOVER
            ))
        );
    }

    #[test]
    fn answer_with_invalid_values_fails() {
        let config = DeflateConfig::default();
        for (answer, param) in [
            (
                "permessage-deflate; server_max_window_bits=16",
                SERVER_MAX_WINDOW_BITS,
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                SERVER_MAX_WINDOW_BITS,
            ),
            (
                "permessage-deflate; server_max_window_bits",
                SERVER_MAX_WINDOW_BITS,
            ),
            (
                "permessage-deflate; client_max_window_bits=09",
                CLIENT_MAX_WINDOW_BITS,
            ),
            // In an answer client_max_window_bits needs a value.
            (
                "permessage-deflate; client_max_window_bits",
                CLIENT_MAX_WINDOW_BITS,
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                SERVER_NO_CONTEXT_TAKEOVER,
            ),
            (
                "permessage-deflate; client_no_context_takeover=x",
                CLIENT_NO_CONTEXT_TAKEOVER,
            ),
        ] {
            assert_eq!(
                client(answer, &config),
                Err(DeflateNegotiationError::InvalidValue(param)),
                "{answer}"
            );
        }
    }

    #[test]
    fn answer_with_a_parameter_not_offered_fails() {
        // Our own offers always carry client_max_window_bits; an offer without it must
        // not be answered with it.
        let offered = Params::default();
        assert_eq!(
            check_answer(
                &offers("permessage-deflate; client_max_window_bits=10"),
                &offered
            ),
            Err(DeflateNegotiationError::UnexpectedParam(
                CLIENT_MAX_WINDOW_BITS.into()
            ))
        );
    }

    #[test]
    fn answer_may_add_parameters_a_server_may_always_send() {
        let params = client(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9; client_max_window_bits=10",
            &DeflateConfig::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(params.server, dir(9, true));
        assert_eq!(params.client, dir(10, true));
    }

    #[test]
    fn answer_with_a_larger_server_window_than_asked_fails() {
        let config = DeflateConfig {
            server_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        assert_eq!(
            client("permessage-deflate; server_max_window_bits=11", &config),
            Err(DeflateNegotiationError::NotHonoured(SERVER_MAX_WINDOW_BITS))
        );
        assert_eq!(
            client("permessage-deflate", &config),
            Err(DeflateNegotiationError::NotHonoured(SERVER_MAX_WINDOW_BITS))
        );
        let params = client("permessage-deflate; server_max_window_bits=9", &config)
            .unwrap()
            .unwrap();
        assert_eq!(params.server.max_window_bits, 9);
    }

    #[test]
    fn answer_ignoring_server_no_context_takeover_fails() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            client("permessage-deflate", &config),
            Err(DeflateNegotiationError::NotHonoured(
                SERVER_NO_CONTEXT_TAKEOVER
            ))
        );
        let params = client("permessage-deflate; server_no_context_takeover", &config)
            .unwrap()
            .unwrap();
        assert!(params.server.no_context_takeover);
    }

    #[test]
    fn client_keeps_its_own_promises() {
        let config = DeflateConfig {
            client_no_context_takeover: true,
            client_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        // The server may ignore the offered client value, or allow more: the client still
        // compresses as it promised.
        let params = client("permessage-deflate; client_max_window_bits=12", &config)
            .unwrap()
            .unwrap();
        assert_eq!(params.client, dir(10, true));
        let params = client("permessage-deflate", &config).unwrap().unwrap();
        assert_eq!(params.client, dir(10, true));
        let params = client("permessage-deflate; client_max_window_bits=8", &config)
            .unwrap()
            .unwrap();
        assert_eq!(params.client, dir(8, true));
    }

    #[test]
    fn negotiation_error_is_an_invalid_extensions_header() {
        let e: HandshakeError = DeflateNegotiationError::RepeatedExtension.into();
        assert_eq!(e, HandshakeError::InvalidHeader("Sec-WebSocket-Extensions"));
        assert!(
            !DeflateNegotiationError::NotHonoured(SERVER_MAX_WINDOW_BITS)
                .to_string()
                .is_empty()
        );
    }
}
