/// A frame opcode (RFC 6455 §5.2). The set is closed: the reserved values 0x3-0x7 and
/// 0xB-0xF have no variant, so a value of this type is always one the engine can handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message (§5.4).
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: Close (§5.5.1).
    Close,
    /// 0x9: Ping (§5.5.2).
    Ping,
    /// 0xA: Pong (§5.5.3).
    Pong,
}

impl OpCode {
    /// The opcode for the low nibble `bits`, or `None` for a reserved value.
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// RFC 6455 §5.5: "Control frames are identified by opcodes where the most
    /// significant bit of the opcode is 1."
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nibble_round_trips_or_is_reserved() {
        for bits in 0u8..16 {
            match OpCode::from_bits(bits) {
                Some(op) => assert_eq!(op.bits(), bits),
                None => assert!(matches!(bits, 0x3..=0x7 | 0xB..=0xF), "{bits:#x}"),
            }
        }
    }

    #[test]
    fn control_opcodes_have_the_high_bit() {
        assert!(
            OpCode::Close.is_control() && OpCode::Ping.is_control() && OpCode::Pong.is_control()
        );
        assert!(!OpCode::Text.is_control() && !OpCode::Binary.is_control());
        assert!(!OpCode::Continuation.is_control());
    }
}
