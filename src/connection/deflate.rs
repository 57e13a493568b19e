//! permessage-deflate (RFC 7692) inside the connection: the negotiated parameters, one
//! compressor and one decompressor, and the buffers they work in. Only compiled with the
//! `deflate` feature; the receive and send paths call in here for messages with RSV1.

use crate::config::Config;
use crate::error::ProtocolError;
use crate::extensions::deflate::{
    Compressor, Decompressor, DeflateConfig, DeflateError, DeflateParams,
};
use crate::handshake::ClientRequest;
use crate::role::Role;

/// RSV1: "Per-Message Compressed" (RFC 7692 §6).
pub(crate) const RSV1: u8 = 0x40;

#[derive(Debug)]
pub(crate) struct DeflateState {
    pub(crate) params: DeflateParams,
    pub(crate) compressor: Compressor,
    pub(crate) decompressor: Decompressor,
    /// Whole-message delivery: the decompressed message so far.
    pub(crate) inflated: Vec<u8>,
    /// Compressed output of the frame being sent (reused: no allocation per message).
    pub(crate) scratch: Vec<u8>,
    /// The fragmented message being sent is compressed.
    pub(crate) sending_compressed: bool,
}

impl DeflateState {
    pub(crate) fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> Self {
        Self {
            params,
            compressor: params.compressor(role, config),
            decompressor: params.decompressor(role, config),
            inflated: Vec::new(),
            scratch: Vec::new(),
            sending_compressed: false,
        }
    }
}

/// RFC 7692 §5: a client offers permessage-deflate when `Config::deflate` is set, unless
/// the application put an offer of its own in the request.
pub(crate) fn with_offer(request: ClientRequest, config: &Config) -> ClientRequest {
    match &config.deflate {
        Some(policy)
            if !request.extensions().iter().any(|e| {
                e.name
                    .eq_ignore_ascii_case(crate::extensions::deflate::EXTENSION_NAME)
            }) =>
        {
            request.extension(crate::extensions::deflate::client_offer(policy))
        }
        _ => request,
    }
}

impl From<DeflateError> for ProtocolError {
    fn from(e: DeflateError) -> Self {
        match e {
            DeflateError::TooBig { limit } => ProtocolError::MessageTooBig {
                len: (limit as u64).saturating_add(1),
                max: limit as u64,
            },
            // Corrupt input, and zlib failures valid input cannot cause: the peer sent
            // something that does not decode (RFC 6455 §7.4.1, 1007).
            _ => ProtocolError::InvalidCompressedData,
        }
    }
}
