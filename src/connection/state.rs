//! Every transition of the connection's lifecycle, in one table (one `match`). Anything
//! the table does not list is a violation: the caller maps it to an API error, and a
//! test walks every (phase, input) pair.
//!
//! ```text
//!  server: AwaitingRequest --request--> RequestPending --accept--> Open
//!                                                      --reject--> Rejected
//!  client: AwaitingResponse --101 validated--> Open
//!  Open --our Close--> Closing --their Close--> Closed
//!  Open --their Close (we echo it)------------> Closed
//!  Open | Closing --EOF / close timeout-------> Closed (abnormal, 1006)
//!  any live phase --error / handshake timeout--> Failed
//! ```

/// Where the connection is in its lifecycle (finer than the public [`State`](super::State)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Phase {
    /// Server: reading the client's opening request.
    AwaitingRequest,
    /// Server: the request was handed to the application, which must accept or reject.
    RequestPending,
    /// Client: the request is queued; reading the server's response.
    AwaitingResponse,
    /// Handshake done; data flows both ways.
    Open,
    /// We sent a Close and wait for the peer's (RFC 6455 §7.1.2).
    Closing,
    /// Both Close frames were exchanged, or the connection ended without them.
    Closed,
    /// Server: the application rejected the request; the response is queued.
    Rejected,
    /// A fatal error; only the queued Close frame or HTTP error response goes out.
    Failed,
}

/// What can move the connection from one phase to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Input {
    RequestReceived,
    Accept,
    Reject,
    ResponseAccepted,
    LocalClose,
    PeerClose,
    /// The transport ended or the close timer expired without a Close exchange.
    Abort,
    Fail,
}

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) phase: Phase,
    pub(crate) input: Input,
}

impl Phase {
    #[cfg(test)]
    pub(crate) const ALL: [Self; 8] = [
        Self::AwaitingRequest,
        Self::RequestPending,
        Self::AwaitingResponse,
        Self::Open,
        Self::Closing,
        Self::Closed,
        Self::Rejected,
        Self::Failed,
    ];

    /// The one transition table.
    pub(crate) fn next(self, input: Input) -> Result<Self, Violation> {
        use self::{Input::*, Phase::*};
        Ok(match (self, input) {
            (AwaitingRequest, RequestReceived) => RequestPending,
            (RequestPending, Accept) => Open,
            (RequestPending, Reject) => Rejected,
            (AwaitingResponse, ResponseAccepted) => Open,
            // §7.1.2: start the closing handshake.
            (Open, LocalClose) => Closing,
            // §5.5.1: answer the peer's Close with ours; then the handshake is complete.
            (Open | Closing, PeerClose) => Closed,
            (Open | Closing, Abort) => Closed,
            (AwaitingRequest | RequestPending | AwaitingResponse | Open | Closing, Fail) => Failed,
            (phase, input) => return Err(Violation { phase, input }),
        })
    }

    /// Whether the handshake is still running.
    pub(crate) fn is_handshake(self) -> bool {
        matches!(
            self,
            Self::AwaitingRequest | Self::RequestPending | Self::AwaitingResponse
        )
    }

    /// Whether nothing more will be received or sent (except what is queued).
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Closed | Self::Rejected | Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUTS: [Input; 8] = [
        Input::RequestReceived,
        Input::Accept,
        Input::Reject,
        Input::ResponseAccepted,
        Input::LocalClose,
        Input::PeerClose,
        Input::Abort,
        Input::Fail,
    ];

    #[test]
    fn every_phase_input_pair_is_allowed_or_a_violation() {
        let mut allowed = 0;
        for phase in Phase::ALL {
            for input in INPUTS {
                match phase.next(input) {
                    Ok(next) => {
                        allowed += 1;
                        // Terminal phases never move again.
                        assert!(!phase.is_terminal(), "{phase:?} moved on {input:?}");
                        if input == Input::Fail {
                            assert_eq!(next, Phase::Failed);
                        }
                    }
                    Err(v) => assert_eq!(v, Violation { phase, input }),
                }
            }
        }
        assert_eq!(allowed, 14);
    }

    #[test]
    fn terminal_phases_accept_nothing() {
        for phase in [Phase::Closed, Phase::Rejected, Phase::Failed] {
            for input in INPUTS {
                assert!(phase.next(input).is_err());
            }
        }
    }

    #[test]
    fn close_handshake_paths() {
        let closing = Phase::Open.next(Input::LocalClose).unwrap();
        assert_eq!(closing, Phase::Closing);
        assert_eq!(closing.next(Input::PeerClose), Ok(Phase::Closed));
        assert_eq!(Phase::Open.next(Input::PeerClose), Ok(Phase::Closed));
        assert!(closing.next(Input::LocalClose).is_err());
    }
}
