//! Which end of a connection this is: a leaf that the configuration, the extensions and
//! the connection all depend on, and that depends on nothing.

/// Which end of the connection this is. Clients mask what they send; servers require
/// masked frames (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opened the connection and sent the handshake request.
    Client,
    /// Accepted the connection and answers the handshake.
    Server,
}
