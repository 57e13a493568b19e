//! The one time type of the core. The core never reads a clock: hosts pass instants in
//! (`Connection::server(config, now)`, `handle_timeout(now)`). Keeping the type behind this
//! alias means a `no_std` build only has to swap this line.

/// A monotonic instant, as passed in by the host.
pub type Instant = std::time::Instant;

pub use core::time::Duration;

/// A fixed starting instant for unit tests (the only place the core reads the clock).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> Instant {
    Instant::now()
}
