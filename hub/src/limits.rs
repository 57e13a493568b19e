//! The rate limits ("Slow consumers and limits"; "Details that tests rely on": rate
//! limits): token buckets with the time passed in, so that tests drive them without
//! sleeping.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens, refilled at `rate` per second.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token: true when there was one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token, for `Retry-After` (at least one second: the header
    /// counts whole seconds).
    pub fn retry_after(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        let secs = if self.rate > 0.0 {
            (missing / self.rate).ceil()
        } else {
            1.0
        };
        Duration::from_secs_f64(secs.max(1.0))
    }
}

/// The `publish_rate` policy of one connection ("Details": over the rate,
/// `limit_exceeded`; a connection still at twice the rate after 5 s is closed with
/// 4004): a bucket for the answer, and a count of attempts per one-second window for
/// the close.
#[derive(Debug, Clone)]
pub struct PublishLimiter {
    bucket: TokenBucket,
    rate: u32,
    window_start: Instant,
    window_attempts: u32,
    /// Consecutive whole windows with at least twice the rate of attempts.
    hot_windows: u32,
}

/// What a publish attempt gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishVerdict {
    /// Within the rate.
    Allowed,
    /// Over the rate: answer `limit_exceeded`.
    Refused,
    /// At twice the rate for 5 seconds: close with 4004.
    Close,
}

/// How many consecutive seconds at twice the rate close the connection.
pub const HOT_SECONDS: u32 = 5;

impl PublishLimiter {
    /// A limiter of `rate` publishes per second (burst: the same).
    pub fn new(rate: u32, now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(rate, rate, now),
            rate,
            window_start: now,
            window_attempts: 0,
            hot_windows: 0,
        }
    }

    /// Counts one attempt at `now`.
    pub fn attempt(&mut self, now: Instant) -> PublishVerdict {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            let hot = u64::from(self.window_attempts) >= 2 * u64::from(self.rate);
            // A window that ended more than a second ago had no attempts: not hot.
            self.hot_windows = if hot && elapsed < Duration::from_secs(2) {
                self.hot_windows + 1
            } else {
                0
            };
            self.window_start = now;
            self.window_attempts = 0;
        }
        self.window_attempts = self.window_attempts.saturating_add(1);
        let over_now = u64::from(self.window_attempts) >= 2 * u64::from(self.rate);
        if self.hot_windows >= HOT_SECONDS || (self.hot_windows + 1 >= HOT_SECONDS && over_now) {
            return PublishVerdict::Close;
        }
        if self.bucket.take(now) {
            PublishVerdict::Allowed
        } else {
            PublishVerdict::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 10, t0);
        assert!((0..10).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
        assert_eq!(b.retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn publish_limiter_refuses_over_the_rate_and_closes_after_five_hot_seconds() {
        let t0 = Instant::now();
        let mut l = PublishLimiter::new(10, t0);
        let mut verdicts = Vec::new();
        // 25 attempts per second (2.5x the rate), for 6 seconds.
        for second in 0..6u64 {
            for i in 0..25u64 {
                let at = t0 + Duration::from_millis(second * 1000 + i * 40);
                verdicts.push((second, l.attempt(at)));
            }
        }
        let first_second: Vec<_> = verdicts.iter().filter(|(s, _)| *s == 0).collect();
        let allowed = first_second
            .iter()
            .filter(|(_, v)| *v == PublishVerdict::Allowed)
            .count();
        // The burst (10) and the refill over the 0.96 s the attempts span (9).
        assert_eq!(allowed, 19, "{first_second:?}");
        let close_at = verdicts
            .iter()
            .position(|(_, v)| *v == PublishVerdict::Close)
            .expect("closed");
        assert_eq!(verdicts[close_at].0, 4, "closed in the fifth hot second");
        assert!(
            verdicts[..close_at]
                .iter()
                .all(|(_, v)| *v != PublishVerdict::Close)
        );
    }

    #[test]
    fn publish_limiter_forgives_a_pause() {
        let t0 = Instant::now();
        let mut l = PublishLimiter::new(2, t0);
        for second in [0u64, 1, 2, 3, 5, 6, 7, 8] {
            for i in 0..5u64 {
                let v = l.attempt(t0 + Duration::from_millis(second * 1000 + i * 100));
                assert_ne!(v, PublishVerdict::Close, "second {second}");
            }
        }
    }
}
