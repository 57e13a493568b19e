//! One owned message type for every host: what [`Connection::send`](crate::Connection::send)
//! takes and what the hosts' streams and handlers hand out. Text is [`Utf8Bytes`]
//! (validated once, shared without copying) and binary is [`Bytes`], so a received
//! message can be sent on, to one peer or many, without a copy. A message sent to many
//! server connections can also be encoded once, frame header included:
//! [`PreparedMessage`](crate::PreparedMessage).

use crate::prelude::*;

use bytes::Bytes;

use crate::frame::CloseFrame;
use crate::utf8::Utf8Bytes;

/// A WebSocket message (RFC 6455 §5.6), or a control frame (§5.5), as received or to be
/// sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A Ping (RFC 6455 §5.5.2). Received ones are already answered
    /// (`Config::auto_pong`); sending one asks the peer for a Pong with the same payload
    /// (at most 125 bytes).
    Ping(Bytes),
    /// A Pong (§5.5.3): the answer to a Ping, or an unsolicited heartbeat.
    Pong(Bytes),
    /// A Close frame (§5.5.1). Received: the peer's (the echo is already queued), `None`
    /// when it carried no status code. Sent: starts the closing handshake, as
    /// [`Connection::close`](crate::Connection::close) does; `None` sends 1000 (Normal
    /// Closure), since the core always sends a status code.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// Whether this is a Close frame.
    pub fn is_close(&self) -> bool {
        matches!(self, Self::Close(_))
    }

    /// The text, for a text message.
    pub fn to_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t.as_str()),
            _ => None,
        }
    }

    /// The payload (a Close frame's is empty).
    pub fn into_data(self) -> Bytes {
        match self {
            Self::Text(t) => t.into_bytes(),
            Self::Binary(b) | Self::Ping(b) | Self::Pong(b) => b,
            Self::Close(_) => Bytes::new(),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::Binary(data.into())
    }
}
