//! Retry with exponential backoff and jitter (backon), from [`RetryConfig`].

use std::future::Future;

use backon::{ExponentialBuilder, Retryable};
use shoal_core::config::RetryConfig;

use crate::error::{NodeError, PeerError, TrackerError};

impl NodeError {
    /// Worth another attempt: the network, not the request, failed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            NodeError::Tracker(TrackerError::Unreachable { .. })
                | NodeError::Peer(PeerError::Unreachable { .. })
        )
    }
}

fn policy(cfg: &RetryConfig) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(cfg.base())
        .with_max_delay(cfg.max())
        .with_factor(cfg.factor)
        .with_max_times(cfg.attempts.saturating_sub(1))
        .with_jitter()
}

/// The waits between attempts, for callers that retry on their own terms
/// (a download gives a failing peer's pieces to others while it waits).
pub fn delays(cfg: &RetryConfig) -> impl Iterator<Item = std::time::Duration> + Send {
    use backon::BackoffBuilder;
    policy(cfg).build()
}

/// Runs `op` until it succeeds, fails for good, or attempts run out.
pub async fn with_retry<T, Fut, F>(cfg: &RetryConfig, what: &str, op: F) -> Result<T, NodeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NodeError>>,
{
    op.retry(policy(cfg))
        .sleep(tokio::time::sleep)
        .when(NodeError::is_transient)
        .notify(|e, d| tracing::debug!(error = %e, retry_in = ?d, "{what} failed, retrying"))
        .await
}
