//! The upload bandwidth limit: a token bucket the request body stream draws from.
//!
//! Hand-written: it is a dozen lines over `tokio::time`, and the rate-limiter crates count requests
//! (cells), not bytes of a streaming body.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Bytes per second with a small burst; callers wait until their bytes are paid for.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second; the burst is a tenth of a second's worth (at least
    /// `chunk` bytes), so short-term overshoot stays small.
    pub fn new(rate: u64, chunk: usize) -> Self {
        let rate = rate as f64;
        let burst = (rate / 10.0).max(chunk as f64);
        Self { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Waits until `n` bytes may be sent. The lock is held while waiting, so callers go in turn.
    pub async fn take(&self, n: usize) {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let (tokens, last) = *state;
        let mut tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        tokens -= n as f64;
        *state = (tokens, now);
        if tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-tokens / self.rate)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_to_the_rate() {
        let bucket = TokenBucket::new(100_000, 10_000);
        let start = std::time::Instant::now();
        for _ in 0..30 {
            bucket.take(10_000).await;
        }
        // 300 kB at 100 kB/s with a 10 kB burst: about 2.9 s.
        let t = start.elapsed().as_secs_f64();
        assert!((2.7..3.4).contains(&t), "took {t} s");
    }
}
