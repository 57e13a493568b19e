//! An HTTP header: a leaf that the handshake and the errors (a refused upgrade keeps the
//! server's headers) both use, so neither depends on the other for it.

use crate::prelude::*;

/// An HTTP header as received or to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name, as sent.
    pub name: String,
    /// The raw value.
    pub value: Vec<u8>,
}

impl Header {
    /// Copies a header out of the parser's borrowed view.
    pub(crate) fn from_httparse(h: &httparse::Header<'_>) -> Self {
        Self {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        }
    }
}
