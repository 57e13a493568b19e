//! The hub protocol's messages (`docs/HUB-PROTOCOL.md`, "Client to server", "Server to
//! client", "Close codes") and its channel names ("Channels, history, recovery").
//!
//! Client frames are parsed by [`parse_client`], which tells a malformed frame (the doc's
//! "Malformed means" in "Details that tests rely on") from a well-formed request. Server
//! messages are [`ServerMessage`], serialised by [`ServerMessage::to_json`].
//!
//! Payloads are [`Payload`], a [`Box<RawValue>`]: the JSON text of the client's `payload` exactly as it
//! arrived (key order, number spelling, whitespace inside it), so a publication reaches its
//! subscribers untouched ("Transport": "passed through untouched").

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The WebSocket subprotocol the client offers and the server selects ("Transport").
pub const SUBPROTOCOL: &str = "wsengine.hub.v1";

/// A request's `id`: a non-negative integer, unique per connection ("Client to server").
pub type RequestId = u64;

/// Close codes the hub sends ("Close codes").
pub mod close {
    /// Normal closure: the client stops.
    pub const NORMAL: u16 = 1000;
    /// Server shutting down or restarting: the client reconnects with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// A binary frame on a JSON protocol ("Transport"): the client stops.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A client message over `max_message_size` (the core sends it on `/ws`; a fallback
    /// session's `POST /api/send` gets it as its session's close).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Overloaded, try again later: the client reconnects with backoff.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Unauthorized: missing or invalid token; the client stops unless `getToken()` gives
    /// a new token.
    pub const UNAUTHORIZED: u16 = 4001;
    /// Token expired: the client gets a new token and reconnects at once.
    pub const TOKEN_EXPIRED: u16 = 4002;
    /// Slow consumer, outbound queue over its cap: reconnect with backoff and recover.
    pub const SLOW_CONSUMER: u16 = 4003;
    /// Rate limited: reconnect after a longer backoff.
    pub const RATE_LIMITED: u16 = 4004;
    /// Bad request: no `connect` first, `connect` too late, or too many malformed messages.
    pub const BAD_REQUEST: u16 = 4005;

    /// The close reason the hub sends with `code` (short, ASCII; a Close frame's reason has
    /// at most 123 bytes), or `""` for a code the hub does not send.
    pub fn reason(code: u16) -> &'static str {
        match code {
            NORMAL => "normal",
            GOING_AWAY => "server shutting down",
            UNSUPPORTED_DATA => "binary frames are not part of the protocol",
            MESSAGE_TOO_BIG => "message too big",
            TRY_AGAIN_LATER => "overloaded, try again later",
            UNAUTHORIZED => "unauthorized",
            TOKEN_EXPIRED => "token expired",
            SLOW_CONSUMER => "slow consumer",
            RATE_LIMITED => "rate limited",
            BAD_REQUEST => "bad request",
            _ => "",
        }
    }
}

/// The most malformed messages one connection may send; the next one closes it with
/// [`close::BAD_REQUEST`] ("Details that tests rely on").
pub const MAX_MALFORMED: u32 = 100;

/// An `error` message's `code` ("Server to client").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A malformed message, or a well-formed request the protocol does not allow
    /// (subscribing twice, an invalid channel name).
    BadRequest,
    /// A request whose `type` the server does not know.
    UnknownType,
    /// Something the request names does not exist.
    NotFound,
    /// A bad token in `refresh`.
    Unauthorized,
    /// The connection may not do this (namespace rules, another user's token).
    PermissionDenied,
    /// The feature is off for this namespace (e.g. presence).
    Disabled,
    /// A configured limit was reached (rates, channels, subscribers).
    LimitExceeded,
    /// The broker is down.
    Unavailable,
    /// A fault of the server.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownType => "unknown_type",
            Self::NotFound => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::PermissionDenied => "permission_denied",
            Self::Disabled => "disabled",
            Self::LimitExceeded => "limit_exceeded",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A publication's payload: any JSON value, kept as the text it arrived as
/// ("Transport": "passed through untouched"). Two payloads are equal when their texts are.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// A payload from JSON text; `None` when `json` is not one JSON value.
    pub fn from_json(json: &str) -> Option<Self> {
        RawValue::from_string(json.to_owned()).ok().map(Self)
    }

    /// The payload's JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a [`RawValue`].
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// The payload as an owned [`RawValue`] (what the engine keeps, as an `Arc`).
    pub fn into_raw(self) -> Box<RawValue> {
        self.0
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Self(raw)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Payload {}

/// `since` in `subscribe` and `history`: the last position the client saw
/// ("Channels, history, recovery").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    /// The offset of the last publication the client saw (0: none).
    pub offset: u64,
    /// The epoch that offset belongs to.
    pub epoch: String,
}

/// One client frame ("Client to server").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// A request: answered with a `reply` or an `error` carrying `id`.
    Request {
        /// The request's `id`.
        id: RequestId,
        /// What it asks.
        request: Request,
    },
    /// `pong`: the answer to a `ping`; no `id`, no reply.
    Pong,
}

/// A request's body ("Client to server", the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `connect`: must be the first message.
    Connect {
        /// The JWT (absent with anonymous access, or when it came as the `token` query
        /// parameter of `/ws`).
        token: Option<String>,
        /// The client's name (informational).
        name: Option<String>,
    },
    /// `subscribe`, with recovery when `since` is given.
    Subscribe {
        /// The channel.
        channel: String,
        /// Where the client left off.
        since: Option<Since>,
    },
    /// `unsubscribe`: a no-op `{}` when not subscribed.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
    /// `publish`.
    Publish {
        /// The channel.
        channel: String,
        /// Any JSON value, passed through untouched.
        payload: Payload,
    },
    /// `presence`: the channel's clients.
    Presence {
        /// The channel.
        channel: String,
    },
    /// `history`.
    History {
        /// The channel.
        channel: String,
        /// At most this many publications (absent: everything retained; 0: none).
        limit: Option<u64>,
        /// Only publications after this position.
        since: Option<Since>,
    },
    /// `refresh`: a new token for the connection.
    Refresh {
        /// The new JWT.
        token: String,
    },
}

impl Request {
    /// The request's `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::Publish { .. } => "publish",
            Self::Presence { .. } => "presence",
            Self::History { .. } => "history",
            Self::Refresh { .. } => "refresh",
        }
    }

    /// The channel the request names, if any.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Self::Subscribe { channel, .. }
            | Self::Unsubscribe { channel }
            | Self::Publish { channel, .. }
            | Self::Presence { channel }
            | Self::History { channel, .. } => Some(channel),
            Self::Connect { .. } | Self::Refresh { .. } => None,
        }
    }
}

/// A frame that is not a well-formed message ("Details that tests rely on", "Malformed
/// means"). The server answers it with [`Malformed::to_error`] and counts it toward
/// [`MAX_MALFORMED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The request's `id` when it could be read (the `error`'s `id` is null otherwise).
    pub id: Option<RequestId>,
    /// [`ErrorCode::BadRequest`], or [`ErrorCode::UnknownType`] for an unknown `type` with
    /// a readable `id`.
    pub code: ErrorCode,
    /// What was wrong, for the `error`'s `message`.
    pub message: String,
}

impl Malformed {
    fn bad(id: Option<RequestId>, message: impl Into<String>) -> Self {
        Self {
            id,
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }

    /// The `error` message answering this frame.
    pub fn to_error(&self) -> ServerMessage {
        ServerMessage::error(self.id, self.code, self.message.clone())
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Malformed {}

type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// Parses one text frame from a client ("Client to server").
///
/// Malformed ("Details that tests rely on"): not a JSON object, no string `type`, a
/// missing or non-numeric `id` on a request (an `id` must be an integer in
/// `0..=u64::MAX`), or a field of the wrong type or missing (a `publish` without
/// `payload`): [`ErrorCode::BadRequest`]. An unknown `type` with a readable `id`:
/// [`ErrorCode::UnknownType`]. Fields the request does not use are ignored (newer clients
/// may send more); an optional field that is `null` counts as absent. A `pong` needs no
/// `id` and any `id` it has is ignored.
pub fn parse_client(text: &str) -> Result<ClientMessage, Malformed> {
    let fields: Fields<'_> = serde_json::from_str(text)
        .map_err(|_| Malformed::bad(None, "a message must be one JSON object"))?;
    let id = fields
        .get("id")
        .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok());
    let ty = match fields.get("type") {
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map_err(|_| Malformed::bad(id, "`type` must be a string"))?,
        None => return Err(Malformed::bad(id, "missing `type`")),
    };
    if ty == "pong" {
        return Ok(ClientMessage::Pong);
    }
    let Some(id) = id else {
        let message = if fields.contains_key("id") {
            "`id` must be a non-negative integer"
        } else {
            "missing `id`"
        };
        return Err(Malformed::bad(None, message));
    };
    let bad = |message: String| Malformed::bad(Some(id), message);
    let request = match ty.as_str() {
        "connect" => Request::Connect {
            token: optional(&fields, "token", "a string").map_err(bad)?,
            name: optional(&fields, "name", "a string").map_err(bad)?,
        },
        "subscribe" => Request::Subscribe {
            channel: required(&fields, "channel", "a string").map_err(bad)?,
            since: optional(&fields, "since", SINCE).map_err(bad)?,
        },
        "unsubscribe" => Request::Unsubscribe {
            channel: required(&fields, "channel", "a string").map_err(bad)?,
        },
        "publish" => Request::Publish {
            channel: required(&fields, "channel", "a string").map_err(bad)?,
            payload: match fields.get("payload") {
                Some(raw) => Payload((*raw).to_owned()),
                None => return Err(bad("missing `payload`".to_owned())),
            },
        },
        "presence" => Request::Presence {
            channel: required(&fields, "channel", "a string").map_err(bad)?,
        },
        "history" => Request::History {
            channel: required(&fields, "channel", "a string").map_err(bad)?,
            limit: optional(&fields, "limit", "a non-negative integer").map_err(bad)?,
            since: optional(&fields, "since", SINCE).map_err(bad)?,
        },
        "refresh" => Request::Refresh {
            token: required(&fields, "token", "a string").map_err(bad)?,
        },
        _ => {
            return Err(Malformed {
                id: Some(id),
                code: ErrorCode::UnknownType,
                message: format!("unknown type `{ty}`"),
            });
        }
    };
    Ok(ClientMessage::Request { id, request })
}

const SINCE: &str = "an object {\"offset\": integer, \"epoch\": string}";

fn required<T: DeserializeOwned>(fields: &Fields<'_>, name: &str, what: &str) -> Result<T, String> {
    match fields.get(name) {
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|_| format!("`{name}` must be {what}"))
        }
        None => Err(format!("missing `{name}`")),
    }
}

fn optional<T: DeserializeOwned>(
    fields: &Fields<'_>,
    name: &str,
    what: &str,
) -> Result<Option<T>, String> {
    match fields.get(name) {
        Some(raw) if raw.get() != "null" => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| format!("`{name}` must be {what}")),
        _ => Ok(None),
    }
}

/// `{"client", "user"}`: who published, joined or left ("Server to client").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The server-made client id.
    pub client: String,
    /// The token's `sub`, or `""` when anonymous.
    pub user: String,
    /// The `name` the client gave in `connect` (an addition to the contract: a chat shows
    /// who is online by name without a token per user); absent when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The longest `connect` `name` kept, in bytes; a longer one is cut at a character
/// boundary (the name is informational: shown in presence, join/leave and publications).
pub const MAX_CLIENT_NAME: usize = 64;

/// `name` cut to at most [`MAX_CLIENT_NAME`] bytes at a character boundary.
pub fn client_name(name: &str) -> &str {
    if name.len() <= MAX_CLIENT_NAME {
        return name;
    }
    let mut end = MAX_CLIENT_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// A publication: the `publication` message's fields, and an item of `publications` in
/// `subscribe` and `history` replies ("Details that tests rely on": the same fields
/// without `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publication {
    /// The channel.
    pub channel: String,
    /// Its offset in the channel's stream (the first is 1).
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: String,
    /// The payload exactly as published.
    pub payload: Payload,
    /// The publisher; absent for the HTTP API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
}

/// `connect`'s reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectResult {
    /// The server-made client id.
    pub client: String,
    /// The token's `sub`, or `""`.
    pub user: String,
    /// Seconds between `ping`s.
    pub ping_interval: u64,
    /// The token's `exp` (unix seconds), or null without a token.
    pub expires_at: Option<u64>,
}

/// `subscribe`'s reply ("Channels, history, recovery").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribeResult {
    /// The channel's epoch.
    pub epoch: String,
    /// The channel's latest offset (0 when empty).
    pub offset: u64,
    /// Whether the missed publications are all here; present only when `since` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// The missed publications, oldest first; present only when recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publications: Option<Vec<Publication>>,
}

/// `publish`'s reply (and `POST /api/publish`'s body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishResult {
    /// The publication's offset.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: String,
}

/// `presence`'s reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceResult {
    /// The channel's clients.
    pub clients: Vec<ClientInfo>,
}

/// `history`'s reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryResult {
    /// The publications, oldest first.
    pub publications: Vec<Publication>,
    /// The channel's epoch.
    pub epoch: String,
    /// The channel's latest offset.
    pub offset: u64,
}

/// `refresh`'s reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshResult {
    /// The new token's `exp`.
    pub expires_at: Option<u64>,
}

/// A `reply`'s `result`, one shape per request type ("Client to server", the table).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ReplyResult {
    /// For `connect`.
    Connect(ConnectResult),
    /// For `subscribe`.
    Subscribe(SubscribeResult),
    /// For `unsubscribe`: `{}`.
    Empty(Empty),
    /// For `publish`.
    Publish(PublishResult),
    /// For `presence`.
    Presence(PresenceResult),
    /// For `history`.
    History(HistoryResult),
    /// For `refresh`.
    Refresh(RefreshResult),
}

/// The empty object `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// An `error`'s `error` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// The code.
    pub code: ErrorCode,
    /// A human-readable message.
    pub message: String,
}

/// A server-to-client message ("Server to client").
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// The answer to a request.
    Reply {
        /// The request's `id`.
        id: RequestId,
        /// Its result.
        result: ReplyResult,
    },
    /// A refused or malformed request.
    Error {
        /// The request's `id`, or null when it could not be read.
        id: Option<RequestId>,
        /// Code and message.
        error: ErrorBody,
    },
    /// A publication on a subscribed channel.
    Publication(Publication),
    /// Someone subscribed to a channel with presence.
    Join {
        /// The channel.
        channel: String,
        /// Who.
        info: ClientInfo,
    },
    /// Someone left a channel with presence.
    Leave {
        /// The channel.
        channel: String,
        /// Who.
        info: ClientInfo,
    },
    /// Sent every `ping_interval` seconds; the client answers `pong`.
    Ping,
}

impl ServerMessage {
    /// A `reply`.
    pub fn reply(id: RequestId, result: ReplyResult) -> Self {
        Self::Reply { id, result }
    }

    /// An `error`.
    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            id,
            error: ErrorBody {
                code,
                message: message.into(),
            },
        }
    }

    /// The message as the text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail (string keys, no custom serialisers); the
        // fallback only keeps the function total.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","id":null,"error":{"code":"internal","message":"serialisation"}}"#
                .to_owned()
        })
    }
}

/// Why a channel name is refused ("Channels, history, recovery").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_CHANNEL_LEN`] bytes.
    TooLong,
    /// The name has a byte outside `[A-Za-z0-9_.:-]`.
    BadCharacter,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty channel name",
            Self::TooLong => "channel name longer than 255 bytes",
            Self::BadCharacter => "channel name outside [A-Za-z0-9_.:-]",
        })
    }
}

impl std::error::Error for ChannelError {}

/// The longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 255;

/// The namespace of channels without one ("Channels, history, recovery"; the
/// configuration's `[namespaces.default]`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Checks a channel name: 1-255 bytes of `[A-Za-z0-9_.:-]`.
pub fn validate_channel(name: &str) -> Result<(), ChannelError> {
    if name.is_empty() {
        return Err(ChannelError::Empty);
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(ChannelError::TooLong);
    }
    if !name.bytes().all(is_channel_byte) {
        return Err(ChannelError::BadCharacter);
    }
    Ok(())
}

/// Whether `b` may appear in a channel name.
pub fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

/// A channel's namespace: the part before the first `:`; [`DEFAULT_NAMESPACE`] when there
/// is no `:` or nothing before it (`":x"`).
pub fn namespace_of(channel: &str) -> &str {
    match channel.split_once(':') {
        Some((ns, _)) if !ns.is_empty() => ns,
        _ => DEFAULT_NAMESPACE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn req(text: &str) -> (RequestId, Request) {
        match parse_client(text) {
            Ok(ClientMessage::Request { id, request }) => (id, request),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn malformed(text: &str) -> Malformed {
        match parse_client(text) {
            Err(m) => m,
            Ok(ok) => panic!("{text}: parsed as {ok:?}"),
        }
    }

    fn since(offset: u64, epoch: &str) -> Option<Since> {
        Some(Since {
            offset,
            epoch: epoch.to_owned(),
        })
    }

    #[test]
    fn parses_connect() {
        assert_eq!(
            req(r#"{"type":"connect","id":1,"token":"t.k.n","name":"web"}"#),
            (
                1,
                Request::Connect {
                    token: Some("t.k.n".into()),
                    name: Some("web".into())
                }
            )
        );
        assert_eq!(
            req(r#"{"type":"connect","id":2}"#),
            (
                2,
                Request::Connect {
                    token: None,
                    name: None
                }
            )
        );
        assert_eq!(
            req(r#"{"id":3,"type":"connect","token":null}"#),
            (
                3,
                Request::Connect {
                    token: None,
                    name: None
                }
            )
        );
    }

    #[test]
    fn parses_subscribe_with_and_without_since() {
        assert_eq!(
            req(r#"{"type":"subscribe","id":5,"channel":"chat:lobby"}"#),
            (
                5,
                Request::Subscribe {
                    channel: "chat:lobby".into(),
                    since: None
                }
            )
        );
        assert_eq!(
            req(r#"{"type":"subscribe","id":6,"channel":"c","since":{"offset":41,"epoch":"ab"}}"#),
            (
                6,
                Request::Subscribe {
                    channel: "c".into(),
                    since: since(41, "ab")
                }
            )
        );
    }

    #[test]
    fn parses_the_other_requests() {
        assert_eq!(
            req(r#"{"type":"unsubscribe","id":7,"channel":"c"}"#),
            (
                7,
                Request::Unsubscribe {
                    channel: "c".into()
                }
            )
        );
        assert_eq!(
            req(r#"{"type":"presence","id":8,"channel":"c"}"#),
            (
                8,
                Request::Presence {
                    channel: "c".into()
                }
            )
        );
        assert_eq!(
            req(r#"{"type":"history","id":9,"channel":"c"}"#),
            (
                9,
                Request::History {
                    channel: "c".into(),
                    limit: None,
                    since: None
                }
            )
        );
        assert_eq!(
            req(
                r#"{"type":"history","id":10,"channel":"c","limit":0,"since":{"offset":0,"epoch":"e"}}"#
            ),
            (
                10,
                Request::History {
                    channel: "c".into(),
                    limit: Some(0),
                    since: since(0, "e")
                }
            )
        );
        assert_eq!(
            req(r#"{"type":"refresh","id":11,"token":"new"}"#),
            (
                11,
                Request::Refresh {
                    token: "new".into()
                }
            )
        );
        assert_eq!(parse_client(r#"{"type":"pong"}"#), Ok(ClientMessage::Pong));
        assert_eq!(
            parse_client(r#"{"type":"pong","id":"x"}"#),
            Ok(ClientMessage::Pong)
        );
    }

    #[test]
    fn publish_payload_passes_through_untouched() {
        let text = r#"{"type":"publish","id":12,"channel":"c","payload": {"z":1, "a":[1.50,18446744073709551616]} ,"extra":true}"#;
        let (id, request) = req(text);
        assert_eq!(id, 12);
        let Request::Publish { channel, payload } = request else {
            panic!("{request:?}")
        };
        assert_eq!(channel, "c");
        assert_eq!(payload.get(), r#"{"z":1, "a":[1.50,18446744073709551616]}"#);
        for p in ["null", "\"s\"", "0", "[]"] {
            let (_, r) = req(&format!(
                r#"{{"type":"publish","id":1,"channel":"c","payload":{p}}}"#
            ));
            assert_eq!(
                r,
                Request::Publish {
                    channel: "c".into(),
                    payload: Payload::from_json(p).unwrap()
                }
            );
        }
    }

    #[test]
    fn malformed_without_a_readable_id() {
        for text in [
            "",
            "not json",
            "[1,2]",
            "\"connect\"",
            "42",
            "null",
            r#"{"type":"connect","id":1"#,
            r#"{"id":1}"#,
        ] {
            let m = malformed(text);
            assert_eq!(m.code, ErrorCode::BadRequest, "{text}");
            if text.starts_with("{\"id\"") {
                assert_eq!(m.id, Some(1));
            } else {
                assert_eq!(m.id, None, "{text}");
            }
        }
        for text in [
            r#"{"type":"connect"}"#,
            r#"{"type":"connect","id":"1"}"#,
            r#"{"type":"connect","id":-1}"#,
            r#"{"type":"connect","id":1.5}"#,
            r#"{"type":"connect","id":null}"#,
            r#"{"type":"subscribe","channel":"c"}"#,
            r#"{"type":"nope"}"#,
        ] {
            let m = malformed(text);
            assert_eq!((m.id, m.code), (None, ErrorCode::BadRequest), "{text}");
        }
    }

    #[test]
    fn malformed_type() {
        for text in [
            r#"{"id":4,"type":7}"#,
            r#"{"id":4,"type":null}"#,
            r#"{"id":4}"#,
        ] {
            let m = malformed(text);
            assert_eq!((m.id, m.code), (Some(4), ErrorCode::BadRequest), "{text}");
        }
    }

    #[test]
    fn malformed_fields_keep_the_id() {
        for text in [
            r#"{"type":"publish","id":3,"channel":"c"}"#,
            r#"{"type":"publish","id":3,"payload":1}"#,
            r#"{"type":"publish","id":3,"channel":5,"payload":1}"#,
            r#"{"type":"subscribe","id":3}"#,
            r#"{"type":"subscribe","id":3,"channel":null}"#,
            r#"{"type":"subscribe","id":3,"channel":"c","since":5}"#,
            r#"{"type":"subscribe","id":3,"channel":"c","since":{"offset":1}}"#,
            r#"{"type":"subscribe","id":3,"channel":"c","since":{"offset":"1","epoch":"e"}}"#,
            r#"{"type":"unsubscribe","id":3}"#,
            r#"{"type":"presence","id":3,"channel":[]}"#,
            r#"{"type":"history","id":3,"channel":"c","limit":-1}"#,
            r#"{"type":"history","id":3,"channel":"c","limit":"5"}"#,
            r#"{"type":"refresh","id":3}"#,
            r#"{"type":"refresh","id":3,"token":1}"#,
            r#"{"type":"connect","id":3,"token":1}"#,
            r#"{"type":"connect","id":3,"name":{}}"#,
        ] {
            let m = malformed(text);
            assert_eq!((m.id, m.code), (Some(3), ErrorCode::BadRequest), "{text}");
        }
        assert_eq!(
            malformed(r#"{"type":"publish","id":3,"channel":"c"}"#).message,
            "missing `payload`"
        );
    }

    #[test]
    fn unknown_type_with_an_id() {
        let m = malformed(r#"{"type":"rpc","id":9}"#);
        assert_eq!((m.id, m.code), (Some(9), ErrorCode::UnknownType));
        assert_eq!(
            serde_json::from_str::<Value>(&m.to_error().to_json()).unwrap(),
            json!({"type":"error","id":9,"error":{"code":"unknown_type","message":"unknown type `rpc`"}})
        );
    }

    fn json_of(m: &ServerMessage) -> Value {
        serde_json::from_str(&m.to_json()).unwrap()
    }

    fn info() -> ClientInfo {
        ClientInfo {
            client: "c1".into(),
            user: "u1".into(),
            name: None,
        }
    }

    #[test]
    fn client_info_name_is_optional_and_bounded() {
        let named = ClientInfo {
            name: Some("Ada".into()),
            ..info()
        };
        assert_eq!(
            serde_json::to_string(&named).unwrap(),
            r#"{"client":"c1","user":"u1","name":"Ada"}"#
        );
        assert_eq!(
            serde_json::to_string(&info()).unwrap(),
            r#"{"client":"c1","user":"u1"}"#
        );
        assert_eq!(client_name("short"), "short");
        let long = "é".repeat(40); // 80 bytes, two per character
        assert_eq!(client_name(&long), "é".repeat(32));
        let odd = format!("a{}", "é".repeat(40)); // the cut falls inside a character
        assert_eq!(client_name(&odd).len(), 63);
    }

    fn publication(offset: u64, info: Option<ClientInfo>) -> Publication {
        Publication {
            channel: "chat:a".into(),
            offset,
            epoch: "E".into(),
            payload: Payload::from_json(r#"{"b":2,"a":1}"#).unwrap(),
            info,
        }
    }

    #[test]
    fn serialises_replies() {
        let connect = ServerMessage::reply(
            1,
            ReplyResult::Connect(ConnectResult {
                client: "c1".into(),
                user: String::new(),
                ping_interval: 25,
                expires_at: None,
            }),
        );
        assert_eq!(
            json_of(&connect),
            json!({"type":"reply","id":1,"result":{"client":"c1","user":"","ping_interval":25,"expires_at":null}})
        );
        let fresh = ServerMessage::reply(
            2,
            ReplyResult::Subscribe(SubscribeResult {
                epoch: "E".into(),
                offset: 0,
                recovered: None,
                publications: None,
            }),
        );
        assert_eq!(
            json_of(&fresh),
            json!({"type":"reply","id":2,"result":{"epoch":"E","offset":0}})
        );
        let recovered = ServerMessage::reply(
            3,
            ReplyResult::Subscribe(SubscribeResult {
                epoch: "E".into(),
                offset: 7,
                recovered: Some(true),
                publications: Some(vec![publication(7, Some(info()))]),
            }),
        );
        assert_eq!(
            json_of(&recovered),
            json!({"type":"reply","id":3,"result":{"epoch":"E","offset":7,"recovered":true,"publications":[
                {"channel":"chat:a","offset":7,"epoch":"E","payload":{"a":1,"b":2},"info":{"client":"c1","user":"u1"}}
            ]}})
        );
        let empty = ServerMessage::reply(4, ReplyResult::Empty(Empty {}));
        assert_eq!(empty.to_json(), r#"{"type":"reply","id":4,"result":{}}"#);
        let publish = ServerMessage::reply(
            5,
            ReplyResult::Publish(PublishResult {
                offset: 8,
                epoch: "E".into(),
            }),
        );
        assert_eq!(
            json_of(&publish),
            json!({"type":"reply","id":5,"result":{"offset":8,"epoch":"E"}})
        );
        let presence = ServerMessage::reply(
            6,
            ReplyResult::Presence(PresenceResult {
                clients: vec![info()],
            }),
        );
        assert_eq!(
            json_of(&presence),
            json!({"type":"reply","id":6,"result":{"clients":[{"client":"c1","user":"u1"}]}})
        );
        let history = ServerMessage::reply(
            7,
            ReplyResult::History(HistoryResult {
                publications: vec![],
                epoch: "E".into(),
                offset: 3,
            }),
        );
        assert_eq!(
            json_of(&history),
            json!({"type":"reply","id":7,"result":{"publications":[],"epoch":"E","offset":3}})
        );
        let refresh = ServerMessage::reply(
            8,
            ReplyResult::Refresh(RefreshResult {
                expires_at: Some(1_900_000_000),
            }),
        );
        assert_eq!(
            json_of(&refresh),
            json!({"type":"reply","id":8,"result":{"expires_at":1_900_000_000u64}})
        );
    }

    #[test]
    fn serialises_pushes_and_errors() {
        let with_info = ServerMessage::Publication(publication(1, Some(info())));
        assert_eq!(
            json_of(&with_info),
            json!({"type":"publication","channel":"chat:a","offset":1,"epoch":"E","payload":{"a":1,"b":2},"info":{"client":"c1","user":"u1"}})
        );
        // The payload's text goes out as it came in.
        let api = ServerMessage::Publication(publication(2, None));
        assert_eq!(
            api.to_json(),
            r#"{"type":"publication","channel":"chat:a","offset":2,"epoch":"E","payload":{"b":2,"a":1}}"#
        );
        let join = ServerMessage::Join {
            channel: "c".into(),
            info: info(),
        };
        assert_eq!(
            json_of(&join),
            json!({"type":"join","channel":"c","info":{"client":"c1","user":"u1"}})
        );
        let leave = ServerMessage::Leave {
            channel: "c".into(),
            info: info(),
        };
        assert_eq!(
            json_of(&leave),
            json!({"type":"leave","channel":"c","info":{"client":"c1","user":"u1"}})
        );
        assert_eq!(ServerMessage::Ping.to_json(), r#"{"type":"ping"}"#);
        assert_eq!(
            json_of(&ServerMessage::error(None, ErrorCode::BadRequest, "x")),
            json!({"type":"error","id":null,"error":{"code":"bad_request","message":"x"}})
        );
        assert_eq!(
            json_of(&ServerMessage::error(
                Some(3),
                ErrorCode::Disabled,
                "presence is off"
            )),
            json!({"type":"error","id":3,"error":{"code":"disabled","message":"presence is off"}})
        );
    }

    #[test]
    fn error_codes_spell_as_the_doc() {
        let all = [
            (ErrorCode::BadRequest, "bad_request"),
            (ErrorCode::UnknownType, "unknown_type"),
            (ErrorCode::NotFound, "not_found"),
            (ErrorCode::Unauthorized, "unauthorized"),
            (ErrorCode::PermissionDenied, "permission_denied"),
            (ErrorCode::Disabled, "disabled"),
            (ErrorCode::LimitExceeded, "limit_exceeded"),
            (ErrorCode::Unavailable, "unavailable"),
            (ErrorCode::Internal, "internal"),
        ];
        for (code, text) in all {
            assert_eq!(code.as_str(), text);
            assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
        }
    }

    #[test]
    fn close_codes() {
        use close::*;
        let codes = [
            (NORMAL, 1000),
            (GOING_AWAY, 1001),
            (UNSUPPORTED_DATA, 1003),
            (TRY_AGAIN_LATER, 1013),
            (UNAUTHORIZED, 4001),
            (TOKEN_EXPIRED, 4002),
            (SLOW_CONSUMER, 4003),
            (RATE_LIMITED, 4004),
            (BAD_REQUEST, 4005),
        ];
        for (code, n) in codes {
            assert_eq!(code, n);
            assert!(!reason(code).is_empty() && reason(code).len() <= 123);
        }
        assert_eq!(reason(4999), "");
    }

    #[test]
    fn channel_names() {
        assert_eq!(validate_channel("a"), Ok(()));
        assert_eq!(validate_channel("chat:lobby"), Ok(()));
        assert_eq!(validate_channel("A-z_0.9:x:y"), Ok(()));
        assert_eq!(validate_channel(":"), Ok(()));
        assert_eq!(validate_channel(&"x".repeat(255)), Ok(()));
        assert_eq!(validate_channel(""), Err(ChannelError::Empty));
        assert_eq!(
            validate_channel(&"x".repeat(256)),
            Err(ChannelError::TooLong)
        );
        for bad in ["a b", "a/b", "chat:*", "é", "a\0", "a\n", "#", "a,b"] {
            assert_eq!(
                validate_channel(bad),
                Err(ChannelError::BadCharacter),
                "{bad:?}"
            );
        }
        // 255 bytes of a multi-byte character would be too long before it is refused.
        assert_eq!(
            validate_channel(&"é".repeat(128)),
            Err(ChannelError::TooLong)
        );
    }

    #[test]
    fn namespaces() {
        assert_eq!(namespace_of("chat:lobby"), "chat");
        assert_eq!(namespace_of("chat:a:b"), "chat");
        assert_eq!(namespace_of("chat:"), "chat");
        assert_eq!(namespace_of("lobby"), "default");
        assert_eq!(namespace_of(":lobby"), "default");
    }
}
