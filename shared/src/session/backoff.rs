//! Reconnect backoff: the one policy used by the session engine and the daemon's pod actors.

use std::time::Duration;

use rand::Rng;

/// The longest wait between two reconnect attempts, whatever the base.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Exponential backoff: retry `n` (1-based) waits `base * 2^(n-1)`, at most [`MAX_BACKOFF`],
/// scaled by a jitter of ±25% so many pods dropped at once do not reconnect in lockstep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
}

impl Backoff {
    pub fn new(base: Duration) -> Self {
        Backoff { base }
    }

    /// The delay before retry `retry` (1-based), with a random jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with_jitter(retry, rand::rng().random_range(0.75..=1.25))
    }

    /// The delay before retry `retry` (1-based) with the given jitter factor (clamped to
    /// `0.75..=1.25`); retry 0 waits nothing.
    pub fn delay_with_jitter(&self, retry: u32, jitter: f64) -> Duration {
        if retry == 0 {
            return Duration::ZERO;
        }
        let doubled = self
            .base
            .saturating_mul(1u32 << (retry - 1).min(16))
            .min(MAX_BACKOFF);
        doubled.mul_f64(jitter.clamp(0.75, 1.25))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_retry_from_the_base() {
        let b = Backoff::new(Duration::from_secs(1));
        assert_eq!(b.delay_with_jitter(0, 1.0), Duration::ZERO);
        assert_eq!(b.delay_with_jitter(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay_with_jitter(2, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay_with_jitter(4, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn is_capped_and_jitter_is_bounded() {
        let b = Backoff::new(Duration::from_secs(1));
        assert_eq!(b.delay_with_jitter(40, 1.0), MAX_BACKOFF);
        assert_eq!(b.delay_with_jitter(2, 9.0), Duration::from_millis(2500));
        assert_eq!(b.delay_with_jitter(2, 0.0), Duration::from_millis(1500));
        for _ in 0..100 {
            let d = b.delay(3);
            assert!(
                d >= Duration::from_secs(3) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }
}
