//! Byte-rate limits for uploads and downloads (governor's GCRA limiter,
//! one cell per byte).

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A shared limit in bytes per second, or none.
#[derive(Clone, Default)]
pub struct RateLimit {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    burst: u32,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.limiter {
            Some(_) => write!(f, "RateLimit({} B/s)", self.burst),
            None => f.write_str("RateLimit(unlimited)"),
        }
    }
}

impl RateLimit {
    /// No limit.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// At most `bytes_per_sec` (an average over an eighth of a second, so
    /// an idle link does not send a second's worth at once); `None` or
    /// zero means no limit.
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        let Some(rate) = bytes_per_sec.filter(|&r| r > 0) else {
            return Self::default();
        };
        let rate = u32::try_from(rate).unwrap_or(u32::MAX);
        let Some(per_sec) = NonZeroU32::new(rate) else {
            return Self::default();
        };
        let burst = (rate / 8).max(1);
        let quota = Quota::per_second(per_sec)
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Some(Arc::new(RateLimiter::direct(quota))),
            burst,
        }
    }

    /// Waits until `n` more bytes may pass.
    pub async fn take(&self, mut n: usize) {
        let Some(l) = &self.limiter else { return };
        while n > 0 {
            let step = n.min(self.burst as usize);
            if let Some(cells) = NonZeroU32::new(step as u32) {
                // `step` never exceeds the burst, so this cannot fail.
                let _ = l.until_n_ready(cells).await;
            }
            n -= step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_the_average_rate() {
        let l = RateLimit::new(Some(200_000));
        let start = std::time::Instant::now();
        // An eighth of a second's worth passes at once; the rest of the
        // 400 kB take about two seconds.
        for _ in 0..40 {
            l.take(10_000).await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!(secs >= 1.7, "400 kB at 200 kB/s took only {secs}s");
        let free = RateLimit::unlimited();
        free.take(usize::MAX / 2).await;
    }
}
