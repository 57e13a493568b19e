//! Every transition of the connection's lifecycle, in one table (one `match`), and which
//! application commands each phase permits, in a second one. The connection moves only
//! through [`Connection::transition`](super::Connection), which looks the move up here,
//! applies the new phase's entry effects, and reports a move the table does not list as
//! a [`Violation`]. A test walks every (phase, input) and (phase, command) pair.
//!
//! ```text
//!  server: AwaitingRequest --request--> RequestPending --accept--> Open
//!                                                      --reject--> Rejected
//!  client: AwaitingResponse --101 validated--> Open
//!  either: AwaitingRequest | AwaitingResponse --handshake done elsewhere--> Open
//!  Open --our Close--> Closing --their Close--> Closed
//!  Open --their Close (we echo it)------------> Closed
//!  Open | Closing --EOF / close timeout-------> Closed (abnormal, 1006)
//!  any live phase --error / timeout-----------> Failed
//! ```
//!
//! # State kept outside the table, and why
//!
//! - `Connection::error`: the data of [`Phase::Failed`]: set on entering it, `Some`
//!   exactly while the phase is `Failed` (the phase says *that* it failed, the error
//!   says *why*, and is what `poll_event` repeats).
//! - `Connection::closed_event`: an output, not a state: the one-shot
//!   `Event::Closed` that entering [`Phase::Closed`] queues for `poll_event`.
//! - `Connection::eof`: a fact about the transport, which can end in any phase; the
//!   receive path feeds [`Input::Abort`] (or fails the handshake) only once the bytes
//!   that arrived before the end are used up, so it cannot be a transition of its own.
//! - `Connection::send_message`: the send side's fragmentation (a fragmented message
//!   being sent), orthogonal to the lifecycle: it matters only while the table permits
//!   [`Command::SendData`], and every phase that does not ignores it.

use crate::error::SendError;

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
    /// Server: a complete, valid opening request was parsed.
    RequestReceived,
    /// Server: the application accepted the request.
    Accept,
    /// Server: the application rejected the request.
    Reject,
    /// Client: the server's 101 passed every check.
    ResponseAccepted,
    /// Either role: the handshake was done by someone else (`Connection::upgraded`).
    UpgradedElsewhere,
    /// We queued our Close frame (the application's `close`).
    LocalClose,
    /// The peer's Close frame arrived.
    PeerClose,
    /// The transport ended or the close timer expired without a Close exchange.
    Abort,
    /// A protocol or handshake error, or a timer that expired.
    Fail,
}

/// What the application can ask of the connection. Every command but `Accept`,
/// `Reject` and `Close` leaves the phase as it is; those three are also inputs of the
/// transition table, and [`Phase::permits`] agrees with it (a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Command {
    /// `accept`.
    Accept,
    /// `reject`.
    Reject,
    /// A data message or fragment: `send`, `send_text`, `send_binary`, ...
    SendData,
    /// A Ping or an unsolicited Pong.
    SendControl,
    /// `close`.
    Close,
}

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) phase: Phase,
    pub(crate) input: Input,
}

impl Violation {
    /// What a command refused by the table tells the application.
    pub(crate) fn send_error(self) -> SendError {
        self.phase.refusal(match self.input {
            Input::Accept => Command::Accept,
            Input::Reject => Command::Reject,
            _ => Command::Close,
        })
    }
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
            (AwaitingRequest | AwaitingResponse, UpgradedElsewhere) => Open,
            // §7.1.2: start the closing handshake.
            (Open, LocalClose) => Closing,
            // §5.5.1: answer the peer's Close with ours; then the handshake is complete.
            (Open | Closing, PeerClose) => Closed,
            (Open | Closing, Abort) => Closed,
            (AwaitingRequest | RequestPending | AwaitingResponse | Open | Closing, Fail) => Failed,
            (phase, input) => return Err(Violation { phase, input }),
        })
    }

    /// The second table: whether the application may issue `command` in this phase,
    /// and if not, the error that says why.
    pub(crate) fn permits(self, command: Command) -> Result<(), SendError> {
        use self::{Command::*, Phase::*};
        match (self, command) {
            (RequestPending, Accept | Reject) => Ok(()),
            (Open, SendData | SendControl | Close) => Ok(()),
            (phase, command) => Err(phase.refusal(command)),
        }
    }

    /// The error for a command this phase does not permit.
    fn refusal(self, command: Command) -> SendError {
        use self::Phase::*;
        match (self, command) {
            (_, Command::Accept | Command::Reject) => SendError::NoPendingRequest,
            (AwaitingRequest | RequestPending | AwaitingResponse, _) => SendError::NotOpen,
            (Closing, _) => SendError::Closing,
            (Open | Closed | Rejected | Failed, _) => SendError::Closed,
        }
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

    const INPUTS: [Input; 9] = [
        Input::RequestReceived,
        Input::Accept,
        Input::Reject,
        Input::ResponseAccepted,
        Input::UpgradedElsewhere,
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
        assert_eq!(allowed, 16);
    }

    const COMMANDS: [Command; 5] = [
        Command::Accept,
        Command::Reject,
        Command::SendData,
        Command::SendControl,
        Command::Close,
    ];

    #[test]
    fn commands_that_move_the_phase_agree_with_the_transition_table() {
        for phase in Phase::ALL {
            for (command, input) in [
                (Command::Accept, Input::Accept),
                (Command::Reject, Input::Reject),
                (Command::Close, Input::LocalClose),
            ] {
                let permitted = phase.permits(command);
                let moved = phase.next(input);
                assert_eq!(permitted.is_ok(), moved.is_ok(), "{phase:?} {command:?}");
                if let Err(v) = moved {
                    assert_eq!(Err(v.send_error()), permitted, "{phase:?} {command:?}");
                }
            }
        }
    }

    #[test]
    fn data_and_control_only_while_open_and_each_refusal_names_the_phase() {
        for phase in Phase::ALL {
            for command in COMMANDS {
                let expected = match (phase, command) {
                    (Phase::RequestPending, Command::Accept | Command::Reject) => Ok(()),
                    (_, Command::Accept | Command::Reject) => Err(SendError::NoPendingRequest),
                    (Phase::Open, _) => Ok(()),
                    (p, _) if p.is_handshake() => Err(SendError::NotOpen),
                    (Phase::Closing, _) => Err(SendError::Closing),
                    _ => Err(SendError::Closed),
                };
                assert_eq!(phase.permits(command), expected, "{phase:?} {command:?}");
            }
        }
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

    #[test]
    fn a_handshake_done_elsewhere_opens_from_either_start_only() {
        assert_eq!(
            Phase::AwaitingRequest.next(Input::UpgradedElsewhere),
            Ok(Phase::Open)
        );
        assert_eq!(
            Phase::AwaitingResponse.next(Input::UpgradedElsewhere),
            Ok(Phase::Open)
        );
        for phase in Phase::ALL {
            if !matches!(phase, Phase::AwaitingRequest | Phase::AwaitingResponse) {
                assert!(phase.next(Input::UpgradedElsewhere).is_err(), "{phase:?}");
            }
        }
    }
}
