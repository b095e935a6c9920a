//! Retry policies: how often and how patiently a failed step is tried again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the delay between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `delay * n` before retry `n`.
    Linear,
    /// `delay * (2^n - 1)` before retry `n`.
    Exponential,
}

/// Randomness added to the delay, so that many failed steps do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// A uniformly random delay between zero and the computed delay.
    Full,
    /// The computed delay plus or minus up to the base delay.
    PlusMinus,
}

/// How often and how patiently a failed step is tried again (Dagster's `RetryPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts after the first; 0 means a failure is final.
    pub max_retries: u32,
    /// The base delay before a retry.
    #[serde(with = "duration_ms", rename = "delay_ms")]
    pub delay: Duration,
    /// How the delay grows with each retry; `None` keeps it constant.
    pub backoff: Option<Backoff>,
    /// Randomness added to the delay.
    pub jitter: Option<Jitter>,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl RetryPolicy {
    /// Up to `max_retries` more attempts, immediately.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            ..Self::default()
        }
    }

    /// Waits `delay` (scaled by the backoff) before each retry.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Grows the delay with each retry.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Randomizes the delay.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// The delay before retry number `retry` (1 for the first retry), as Dagster computes it.
    pub fn delay_before(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let base = self.delay.as_secs_f64();
        let n = f64::from(retry.max(1));
        let delay = match self.backoff {
            None => base,
            Some(Backoff::Linear) => base * n,
            Some(Backoff::Exponential) => base * (2f64.powf(n) - 1.0),
        };
        let delay = match self.jitter {
            None => delay,
            Some(Jitter::Full) => rng.f64() * delay,
            Some(Jitter::PlusMinus) => delay + (2.0 * rng.f64() * base) - base,
        };
        Duration::try_from_secs_f64(delay.max(0.0)).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_dagster() {
        let mut rng = fastrand::Rng::with_seed(7);
        let base = RetryPolicy::new(3).with_delay(Duration::from_millis(100));
        assert_eq!(base.delay_before(3, &mut rng), Duration::from_millis(100));
        let linear = base.with_backoff(Backoff::Linear);
        assert_eq!(linear.delay_before(3, &mut rng), Duration::from_millis(300));
        let exp = base.with_backoff(Backoff::Exponential);
        assert_eq!(exp.delay_before(1, &mut rng), Duration::from_millis(100));
        assert_eq!(exp.delay_before(3, &mut rng), Duration::from_millis(700));
        for _ in 0..100 {
            let full = exp.with_jitter(Jitter::Full).delay_before(3, &mut rng);
            assert!(full <= Duration::from_millis(700));
            let pm = exp.with_jitter(Jitter::PlusMinus).delay_before(3, &mut rng);
            assert!(pm >= Duration::from_millis(599) && pm <= Duration::from_millis(801));
        }
    }
}
