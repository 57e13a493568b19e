//! The connection's protocol timers as data. The core never reads a clock: a timer is
//! either off, waiting to be started at the next instant the host passes in, or due at
//! an instant. Starting "at the next instant" lets events that carry no time (an
//! `accept`, a `close`, a parsed Close frame) start timers without a stale clock:
//! `poll_timeout` reports such a timer as due at the last known instant, the host calls
//! `handle_timeout(now)` at once, and the timer starts from that `now`.

use crate::time::{Duration, Instant};

/// One timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Timer {
    #[default]
    Off,
    /// Start at the next `handle_timeout`, to expire this long after it.
    Pending(Duration),
    At(Instant),
}

impl Timer {
    /// A timer that starts at the next instant the host passes in, or `Off` for `None`.
    pub(crate) fn start(after: Option<Duration>) -> Self {
        after.map_or(Self::Off, Self::Pending)
    }

    /// When the host should next call `handle_timeout` for this timer.
    pub(crate) fn deadline(self, last_now: Instant) -> Option<Instant> {
        match self {
            Self::Off => None,
            Self::Pending(_) => Some(last_now),
            Self::At(t) => Some(t),
        }
    }

    /// A timer due `d` after `now`. A deadline past the largest representable instant
    /// (`Duration::MAX`, or any `now + d` that overflows) is never reached: such a timer
    /// is `Off`, not due at once.
    pub(crate) fn after(now: Instant, d: Duration) -> Self {
        now.checked_add(d).map_or(Self::Off, Self::At)
    }

    /// Starts a pending timer at `now`; returns whether the timer has expired.
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        match *self {
            Self::Off => false,
            Self::Pending(d) => {
                *self = Self::after(now, d);
                d.is_zero()
            }
            Self::At(t) => t <= now,
        }
    }

    /// Whether the timer is running (pending or due at an instant).
    pub(crate) fn is_on(self) -> bool {
        self != Self::Off
    }
}

/// Keepalive state (see [`Keepalive`](crate::Keepalive)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum KeepaliveState {
    #[default]
    Idle,
    /// A Ping is out; the timer holds the deadline for any sign of life.
    AwaitingPong,
}

/// All timers of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    pub(crate) handshake: Timer,
    pub(crate) close: Timer,
    pub(crate) keepalive: Timer,
    pub(crate) keepalive_state: KeepaliveState,
    /// A data message has started and not ended (`Config::message_timeout`). Started
    /// lazily, only once `poll_event` runs out of input in the middle of a message.
    pub(crate) message: Timer,
    /// The connection is over and bytes still wait for the transport
    /// (`Config::flush_timeout`).
    pub(crate) flush: Timer,
    /// Inflating is paused until the rate budget refills (`DeflateConfig::max_inflate_rate`).
    pub(crate) inflate: Timer,
}

impl Timers {
    pub(crate) fn earliest(&self, last_now: Instant) -> Option<Instant> {
        [
            self.handshake,
            self.close,
            self.keepalive,
            self.message,
            self.flush,
            self.inflate,
        ]
        .into_iter()
        .filter_map(|t| t.deadline(last_now))
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_timer_starts_at_the_next_instant() {
        let t0 = crate::time::test_epoch();
        let mut t = Timer::start(Some(Duration::from_secs(5)));
        assert_eq!(t.deadline(t0), Some(t0));
        let t1 = t0 + Duration::from_secs(100);
        assert!(!t.poll(t1));
        assert_eq!(t.deadline(t0), Some(t1 + Duration::from_secs(5)));
        assert!(!t.poll(t1 + Duration::from_secs(4)));
        assert!(t.poll(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn a_deadline_past_the_end_of_time_never_fires() {
        let t0 = crate::time::test_epoch();
        let mut t = Timer::start(Some(Duration::MAX));
        assert!(!t.poll(t0), "Duration::MAX must not fire at once");
        assert_eq!(t, Timer::Off);
        assert_eq!(t.deadline(t0), None);
        let late = t0 + Duration::from_secs(u64::MAX / 2);
        assert_eq!(
            Timer::after(late, Duration::from_secs(u64::MAX / 2 + 2)),
            Timer::Off
        );
    }

    #[test]
    fn off_timer_never_fires() {
        let t0 = crate::time::test_epoch();
        let mut t = Timer::start(None);
        assert_eq!(t.deadline(t0), None);
        assert!(!t.poll(t0 + Duration::from_secs(1_000_000)));
    }
}
