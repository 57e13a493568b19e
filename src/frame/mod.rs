//! The frame layer, RFC 6455 §5: pure data, no state, no I/O.
//!
//! - [`FrameHeader`] decodes and encodes the 2-14 byte header (§5.2); a short input is
//!   [`Status::Partial`](crate::Status::Partial), never an error.
//! - [`OpCode`] is the closed set of opcodes §5.2 defines; reserved ones are rejected.
//! - [`CloseCode`] is the open space of status codes (§7.4), [`CloseFrame`] a parsed
//!   Close payload (§5.5.1).

mod close;
mod header;
mod opcode;

pub use close::{CloseCode, CloseFrame};
pub use header::{FrameHeader, MAX_HEADER_LEN};
pub use opcode::OpCode;

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: usize = 125;
