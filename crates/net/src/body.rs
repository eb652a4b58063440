//! A request body that must keep arriving.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error of a body that arrived too slowly.
#[derive(Debug)]
pub struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for TooSlow {}

/// A request body that fails once the time spent *waiting for the client*
/// exceeds `grace` plus what its bytes so far earn at `rate` bytes per
/// second. Time the server spends not asking (writing to disk, a rate
/// limit) is not counted, so only a slow client is cut off.
pub struct MinRateBody<B> {
    inner: B,
    rate: u64,
    grace: Duration,
    received: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> MinRateBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, rate: u64, grace: Duration) -> Self {
        Self {
            inner,
            rate: rate.max(1),
            grace,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        }
    }

    /// Waiting the bytes so far allow in all.
    fn allowance(&self) -> Duration {
        self.grace + Duration::from_secs_f64(self.received as f64 / self.rate as f64)
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                this.timer = None;
                if let Some(Ok(frame)) = &r
                    && let Some(data) = frame.data_ref()
                {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let left = this
                    .allowance()
                    .saturating_sub(this.waited + now.duration_since(since));
                if left.is_zero() {
                    return Poll::Ready(Some(Err(Box::new(TooSlow))));
                }
                let deadline = now + left;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                timer.as_mut().reset(deadline);
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(TooSlow))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields `chunks`, waiting `gap` before each.
    fn drip(
        chunks: usize,
        size: usize,
        gap: Duration,
    ) -> http_body_util::StreamBody<
        impl futures_core_stream::Stream<Item = Result<Frame<Bytes>, std::io::Error>>,
    > {
        let s = futures_core_stream::unfold(0usize, move |i| async move {
            if i == chunks {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok(Frame::data(Bytes::from(vec![0u8; size]))), i + 1))
        });
        http_body_util::StreamBody::new(s)
    }

    mod futures_core_stream {
        pub use futures_util::stream::{Stream, unfold};
    }

    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_is_cut_off_and_a_steady_one_is_not() {
        let slow = MinRateBody::new(
            Box::pin(drip(100, 1, Duration::from_secs(5))),
            1024,
            Duration::from_secs(10),
        );
        assert!(slow.collect().await.is_err());
        let steady = MinRateBody::new(
            Box::pin(drip(100, 4096, Duration::from_secs(1))),
            1024,
            Duration::from_secs(10),
        );
        assert_eq!(steady.collect().await.unwrap().to_bytes().len(), 409_600);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_reads_slowly_does_not_count_against_the_client() {
        let mut body = MinRateBody::new(
            Box::pin(drip(10, 1, Duration::ZERO)),
            1024,
            Duration::from_secs(1),
        );
        let mut n = 0;
        while let Some(f) = body.frame().await {
            f.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        assert_eq!(n, 10);
    }
}
