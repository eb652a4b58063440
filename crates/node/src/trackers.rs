//! Several trackers as one: lookups fail over between them.
//!
//! A node may be given several trackers (`--tracker` repeated, or
//! `trackers = [..]` in config.toml). It registers with each (one
//! heartbeat per tracker, see [`crate::Node`]); lookups go through
//! [`Trackers`], which asks them in turn: the first that answers wins, and
//! one that failed is asked last for a while (its backoff grows with each
//! failure in a row, up to [`MAX_BACKOFF`]) so that a dead tracker costs a
//! command no more than one attempt, and only until it is known dead.
//! With several trackers each is tried once per lookup (the next tracker
//! is the retry); a lone tracker keeps its retry policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use shoal_core::wire::PeerRecord;
use shoal_core::{ContentId, PeerId};

use crate::error::{NodeError, Result};
use crate::tracker_client::TrackerClient;

/// Longest time a failed tracker is asked last.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a tracker is asked last after its first failure; doubles with
/// each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

/// The trackers a node or command uses, in the order given.
#[derive(Clone, Debug)]
pub struct Trackers {
    list: Vec<TrackerClient>,
    /// The same, each tried once per call.
    once: Vec<TrackerClient>,
    health: Arc<Vec<Mutex<Health>>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    /// Failures in a row.
    failures: u32,
    /// Asked last until then.
    down_until: Option<Instant>,
}

impl From<TrackerClient> for Trackers {
    fn from(t: TrackerClient) -> Self {
        Self::new(vec![t])
    }
}

impl Trackers {
    /// These trackers, asked in this order while they answer.
    pub fn new(list: Vec<TrackerClient>) -> Self {
        let health = Arc::new(list.iter().map(|_| Mutex::default()).collect());
        let once = list.iter().map(TrackerClient::once).collect();
        Self { list, once, health }
    }

    /// Every tracker, in the order given.
    pub fn all(&self) -> &[TrackerClient] {
        &self.list
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Their URLs, for messages: `http://a, http://b`.
    pub fn describe(&self) -> String {
        self.list
            .iter()
            .map(TrackerClient::url)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn health(&self, i: usize) -> std::sync::MutexGuard<'_, Health> {
        self.health[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order to ask them in now: those not known down first (in the
    /// order given), then the others, the one up again soonest first.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for i in 0..self.list.len() {
            match self.health(i).down_until {
                Some(t) if t > now => down.push((t, i)),
                _ => up.push(i),
            }
        }
        down.sort();
        up.extend(down.into_iter().map(|(_, i)| i));
        up
    }

    fn succeeded(&self, i: usize) {
        *self.health(i) = Health::default();
    }

    fn failed(&self, i: usize) {
        let mut h = self.health(i);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << h.failures.min(8))
            .min(MAX_BACKOFF);
        h.failures = h.failures.saturating_add(1);
        h.down_until = Some(Instant::now() + wait);
    }

    /// Asks the trackers in turn with `call` until one answers; a refusal
    /// (the tracker works, but will not) is an answer too. Fails with the
    /// last error when none answered. With `once` (or several trackers)
    /// each is tried once; a lone tracker otherwise keeps its retries.
    async fn ask<'a, T>(
        &'a self,
        call: impl Fn(&'a TrackerClient) -> BoxFuture<'a, Result<T>> + 'a,
        once: bool,
    ) -> Result<T> {
        let clients = if once || self.list.len() > 1 {
            &self.once
        } else {
            &self.list
        };
        let mut last = None;
        for i in self.order() {
            match call(&clients[i]).await {
                Ok(v) => {
                    self.succeeded(i);
                    return Ok(v);
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(tracker = self.list[i].url(), error = %e, "tracker failed; trying the next");
                    self.failed(i);
                    last = Some(e);
                }
                Err(e) => {
                    self.succeeded(i);
                    return Err(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            NodeError::Settings("no tracker is set; give one with a tracker URL".into())
        }))
    }

    /// Every live peer, from the first tracker that answers.
    pub async fn peers(&self) -> Result<Vec<PeerRecord>> {
        self.ask(|t| Box::pin(t.peers()), false).await
    }

    /// One live peer, from the first tracker that answers.
    pub async fn peer(&self, id: PeerId) -> Result<Option<PeerRecord>> {
        self.ask(move |t| Box::pin(t.peer(id)), false).await
    }

    /// Live peers offering `cid`, from the first tracker that answers.
    pub async fn providers(&self, cid: ContentId) -> Result<Vec<PeerRecord>> {
        self.ask(move |t| Box::pin(t.providers(cid)), false).await
    }
}

impl crate::download::Providers for Trackers {
    fn describe(&self) -> String {
        format!("trackers {}", Trackers::describe(self))
    }

    fn providers(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(Trackers::providers(self, cid))
    }

    fn refresh(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(self.ask(move |t| Box::pin(t.providers(cid)), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    fn client(url: &str) -> TrackerClient {
        TrackerClient::new(url, None, shoal_core::config::RetryConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn a_tracker_that_failed_is_asked_last_until_its_backoff_ends() {
        let (a, b) = (closed(), closed());
        let t = Trackers::new(vec![client(&a), client(&b)]);
        assert_eq!(t.order(), [0, 1]);
        let e = t.peers().await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        // Both failed; the first to fail is up again first.
        assert_eq!(t.order(), [0, 1]);
        t.succeeded(0);
        t.failed(0);
        assert_eq!(t.order(), [1, 0], "a failed tracker goes last");
        t.succeeded(0);
        assert_eq!(t.order(), [0, 1]);
        // Backoff doubles, up to the cap.
        for _ in 0..20 {
            t.failed(1);
        }
        let until = t.health(1).down_until.unwrap();
        assert!(until <= Instant::now() + MAX_BACKOFF);
        assert!(until > Instant::now() + MAX_BACKOFF / 2);
    }

    #[test]
    fn no_tracker_is_a_settings_error() {
        let t = Trackers::new(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(t.peers()).unwrap_err();
        assert!(matches!(e, NodeError::Settings(_)), "{e:?}");
    }
}
