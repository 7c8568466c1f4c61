//! Reconnect delays: exponential, capped, with jitter drawn from an injected random source.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first reconnect.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Fraction of the delay added or removed at random (0.2: ±20 %), so that many clients cut off at
    /// once do not come back at once.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(250), max: Duration::from_secs(30), factor: 2.0, jitter: 0.2 }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30) as i32;
        let base = (self.initial.as_secs_f64() * self.factor.powi(exponent)).min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 { rng.random_range(-self.jitter..=self.jitter) } else { 0.0 };
        Duration::from_secs_f64((base * (1.0 + spread)).clamp(0.0, self.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let backoff = Backoff { jitter: 0.0, ..Backoff::default() };
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<u128> = (1..=10).map(|a| backoff.delay(a, &mut rng).as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }

    #[test]
    fn jitter_stays_within_its_band_and_is_reproducible() {
        let backoff = Backoff::default();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50).map(|_| backoff.delay(3, &mut rng)).collect::<Vec<_>>()
        };
        let delays = draw(7);
        assert_eq!(delays, draw(7));
        assert!(delays.iter().all(|d| (800..=1200).contains(&d.as_millis())), "{delays:?}");
        assert!(delays.iter().any(|d| d.as_millis() != 1000));
    }
}
