//! The one time type of the core. The core never reads a clock: hosts pass instants in
//! (`Connection::server(config, now)`, `handle_timeout(now)`) and get deadlines back
//! (`poll_timeout`).
//!
//! [`Instant`] is wsengine's own type, the same with and without the `std` feature, so
//! turning `std` on (feature unification may do it behind an embedder's back) never
//! changes an API. It is a point on the host's monotonic clock, as a [`Duration`] since
//! an origin the host chooses: a `no_std` host passes its tick counter
//! ([`Instant::from_nanos`]), a C host its `CLOCK_MONOTONIC` nanoseconds, and a `std`
//! host calls [`Instant::now`] or converts a `std::time::Instant` with `From`.
//!
//! One connection must be driven by one clock: instants from different origins do not
//! compare meaningfully.

use core::ops::{Add, AddAssign, Sub};

pub use core::time::Duration;

/// A point on the host's monotonic clock: the time elapsed since an origin the host
/// chooses (boot, process start, anything that does not move). Instants never go
/// backwards for one connection.
///
/// Arithmetic never panics: adding saturates at the largest instant, subtracting
/// instants saturates at zero (as `std::time::Instant::saturating_duration_since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    since_origin: Duration,
}

impl Instant {
    /// The origin itself.
    pub const ZERO: Self = Self::from_duration(Duration::ZERO);

    /// The instant `since_origin` after the host's origin.
    pub const fn from_duration(since_origin: Duration) -> Self {
        Self { since_origin }
    }

    /// The instant `nanos` nanoseconds after the host's origin (a C host's
    /// `CLOCK_MONOTONIC`, an embedded tick counter scaled to nanoseconds).
    pub const fn from_nanos(nanos: u64) -> Self {
        Self::from_duration(Duration::from_nanos(nanos))
    }

    /// The instant `millis` milliseconds after the host's origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self::from_duration(Duration::from_millis(millis))
    }

    /// Time since the host's origin.
    pub const fn duration_since_origin(self) -> Duration {
        self.since_origin
    }

    /// `self + d`, or `None` past the largest representable instant.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        self.since_origin.checked_add(d).map(Self::from_duration)
    }

    /// `self - d`, or `None` before the origin.
    pub fn checked_sub(self, d: Duration) -> Option<Self> {
        self.since_origin.checked_sub(d).map(Self::from_duration)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.since_origin.saturating_sub(earlier.since_origin)
    }

    /// Time from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        self.since_origin.checked_sub(earlier.since_origin)
    }
}

impl Add<Duration> for Instant {
    type Output = Self;

    /// Saturates at the largest representable instant.
    fn add(self, d: Duration) -> Self {
        Self::from_duration(self.since_origin.saturating_add(d))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;

    /// Saturates at the origin.
    fn sub(self, d: Duration) -> Self {
        Self::from_duration(self.since_origin.saturating_sub(d))
    }
}

impl Sub for Instant {
    type Output = Duration;

    /// Saturates at zero, as `saturating_duration_since`.
    fn sub(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(feature = "std")]
mod std_clock {
    use super::{Duration, Instant};
    use std::sync::OnceLock;

    /// The std origin sits this far after wsengine's zero, so a `std::time::Instant`
    /// taken before the first conversion (which fixes the origin) still maps to a
    /// distinct, earlier wsengine instant instead of saturating. 2^32 s is 136 years.
    const STD_ORIGIN_OFFSET: Duration = Duration::from_secs(1 << 32);

    fn std_origin() -> std::time::Instant {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        // The only clock read in the library outside the drivers, and only with `std`.
        #[allow(clippy::disallowed_methods)]
        *ORIGIN.get_or_init(std::time::Instant::now)
    }

    impl Instant {
        /// Now, on the process's monotonic clock (`std::time::Instant::now`).
        #[allow(clippy::disallowed_methods)]
        pub fn now() -> Self {
            Self::from(std::time::Instant::now())
        }
    }

    impl From<std::time::Instant> for Instant {
        /// Maps std's monotonic clock onto wsengine's: the first conversion in the
        /// process fixes the origin. Converting back with `From<Instant>` gives the same
        /// `std::time::Instant` (to the nanosecond).
        fn from(t: std::time::Instant) -> Self {
            let origin = std_origin();
            let since = match t.checked_duration_since(origin) {
                Some(after) => STD_ORIGIN_OFFSET.saturating_add(after),
                None => STD_ORIGIN_OFFSET.saturating_sub(origin.duration_since(t)),
            };
            Self::from_duration(since)
        }
    }

    impl From<Instant> for std::time::Instant {
        /// The inverse of `From<std::time::Instant>`. An instant that did not come
        /// from std's clock and lies outside what `std::time::Instant` can hold
        /// saturates at the mapped origin.
        fn from(t: Instant) -> Self {
            let origin = std_origin();
            let mapped = match t.since_origin.checked_sub(STD_ORIGIN_OFFSET) {
                Some(after) => origin.checked_add(after),
                None => origin.checked_sub(STD_ORIGIN_OFFSET - t.since_origin),
            };
            mapped.unwrap_or(origin)
        }
    }
}

/// A fixed starting instant for unit tests.
#[cfg(test)]
pub(crate) fn test_epoch() -> Instant {
    Instant::from_millis(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let max = Instant::from_duration(Duration::MAX);
        assert_eq!(max + Duration::from_secs(1), max);
        assert_eq!(max.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::ZERO - max, Duration::ZERO);
        assert_eq!(
            Instant::from_millis(1_500) - Instant::from_millis(1_000),
            Duration::from_millis(500)
        );
        assert_eq!(Instant::ZERO.checked_duration_since(max), None);
    }

    #[cfg(feature = "std")]
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn std_instants_round_trip_and_keep_their_order() {
        let before = std::time::Instant::now();
        let now = Instant::now();
        let later = before + Duration::from_millis(250);
        let (b, l) = (Instant::from(before), Instant::from(later));
        assert!(b <= now);
        assert_eq!(l - b, Duration::from_millis(250));
        assert_eq!(std::time::Instant::from(b), before);
        assert_eq!(std::time::Instant::from(l), later);
    }
}
