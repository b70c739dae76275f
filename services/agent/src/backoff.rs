//! Retry delays: exponential backoff with jitter.

use std::time::Duration;

use rand::Rng;

/// The delay before retry number `attempt` (1 for the first retry): `base * 2^(attempt-1)` capped at
/// `max`, then drawn uniformly from its upper half so that many agents do not retry in step.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    let half = exp / 2;
    half + Duration::from_nanos(rng.random_range(0..=(exp - half).as_nanos() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_jittered_and_are_capped() {
        let mut rng = rand::rng();
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..40 {
            let exp = (base * 2u32.pow((attempt - 1).min(20))).min(max);
            for _ in 0..50 {
                let d = retry_delay(attempt, base, max, &mut rng);
                assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?} outside {exp:?}");
            }
        }
    }
}
