//! Where the providers of a content come from: a [`Providers`] source.
//!
//! The tracker is one source; the LAN, the DHT and links are others. A
//! download asks every source it was given when it starts, again soon
//! after ([`FIRST_REFRESHES`]: downloaders that start together find each
//! other before they all fetch the same pieces from a seeder) and then
//! every [`REFRESH_EVERY`] while it runs; a provider any of them reports
//! joins in. Adding a source is a new implementation of the trait; the
//! engine does not change.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use shoal_core::ContentId;
use shoal_core::wire::PeerRecord;

use crate::error::Result;
use crate::tracker_client::TrackerClient;

/// How often the sources are asked for providers that joined.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// The waits before the first refreshes, before they settle to
/// [`REFRESH_EVERY`]: a crowd that starts together announces itself within
/// a moment, and each second it does not know itself costs the seeder
/// duplicate pieces.
pub const FIRST_REFRESHES: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(250),
    std::time::Duration::from_millis(250),
    std::time::Duration::from_millis(500),
];

/// How much longer the other sources are waited for once one has named
/// providers.
pub const SLOW_SOURCE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Something that knows who provides a content.
pub trait Providers: Send + Sync {
    /// What it is, for logs ("tracker http://…", "lan").
    fn describe(&self) -> String;
    /// The peers it knows to provide `cid` now. A source that cannot be
    /// reached fails; the engine logs it and asks again later.
    fn providers(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>>;
    /// The same, asked again while a download runs: the next refresh is
    /// the retry, so a source may try only once here.
    fn refresh(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        self.providers(cid)
    }
}

impl Providers for TrackerClient {
    fn describe(&self) -> String {
        format!("tracker {}", self.url())
    }

    fn providers(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(TrackerClient::providers(self, cid))
    }

    fn refresh(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        let tracker = self.once();
        Box::pin(async move { tracker.providers(cid).await })
    }
}

/// The provider a `shoal:` link names, at the addresses it carries.
pub struct FromLink {
    content_id: ContentId,
    peer: PeerRecord,
}

impl FromLink {
    /// The source of `link`.
    pub fn new(link: &shoal_core::Link) -> Self {
        Self {
            content_id: link.content_id,
            peer: PeerRecord {
                peer_id: link.peer,
                name: link.peer.short(),
                addrs: link.addrs.clone(),
                expires_in: 0,
                reach: None,
            },
        }
    }
}

impl FromLink {
    /// The source of `link`'s content at `addrs`, where its peer is now.
    pub fn at(link: &shoal_core::Link, addrs: Vec<String>) -> Self {
        let mut me = Self::new(link);
        me.peer.addrs = addrs;
        me
    }
}

impl Providers for FromLink {
    fn describe(&self) -> String {
        format!("link to peer {}", self.peer.peer_id.short())
    }

    fn providers(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        let found = if cid == self.content_id {
            vec![self.peer.clone()]
        } else {
            Vec::new()
        };
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// The sources one download asks, in order.
#[derive(Clone, Default)]
pub struct Sources(Vec<Arc<dyn Providers>>);

impl Sources {
    /// No source: the download uses only the peers it starts with.
    pub fn none() -> Self {
        Self::default()
    }

    /// These sources.
    pub fn new(sources: Vec<Arc<dyn Providers>>) -> Self {
        Self(sources)
    }

    /// One source.
    pub fn of(source: impl Providers + 'static) -> Self {
        Self(vec![Arc::new(source)])
    }

    /// These sources and `more`.
    pub fn and(mut self, more: Arc<dyn Providers>) -> Self {
        self.0.push(more);
        self
    }

    /// Whether there is no source at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What every source reports for `cid`, each provider once, in the
    /// order the sources and their answers give. Fails only when every
    /// source failed (with the last error).
    pub async fn providers(&self, cid: ContentId) -> Result<Vec<PeerRecord>> {
        self.ask(cid, false).await
    }

    /// [`Sources::providers`], each source asked once (no retries): for
    /// when providers are known already and more are only a bonus.
    pub async fn providers_once(&self, cid: ContentId) -> Result<Vec<PeerRecord>> {
        self.ask(cid, true).await
    }

    async fn ask(&self, cid: ContentId, again: bool) -> Result<Vec<PeerRecord>> {
        use futures_util::StreamExt;
        let mut asks: futures_util::stream::FuturesUnordered<_> = self
            .0
            .iter()
            .map(|s| async move {
                let answer = if again {
                    s.refresh(cid).await
                } else {
                    s.providers(cid).await
                };
                (s, answer)
            })
            .collect();
        let mut found: Vec<PeerRecord> = Vec::new();
        let mut last = None;
        let mut any = false;
        // Once some source has named providers, the others (a dead
        // tracker retrying) get only a moment more; the next refresh
        // asks them again.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, asks.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        tracing::debug!("some provider sources are slow; going on without them");
                        break;
                    }
                },
                None => asks.next().await,
            };
            let Some((source, answer)) = next else { break };
            match answer {
                Ok(peers) => {
                    any = true;
                    if !peers.is_empty() && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + SLOW_SOURCE_GRACE);
                    }
                    for p in peers {
                        if !found.iter().any(|q| q.peer_id == p.peer_id) {
                            found.push(p);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(source = %source.describe(), error = %e, "provider lookup failed");
                    last = Some(e);
                }
            }
        }
        match last {
            Some(e) if !any => Err(e),
            _ => Ok(found),
        }
    }
}

/// Asks `sources` for the providers of `cid` after each of
/// [`FIRST_REFRESHES`], then every [`REFRESH_EVERY`], and passes them on,
/// until the receiver is gone.
pub(super) async fn refresh(
    sources: Sources,
    cid: ContentId,
    tx: tokio::sync::mpsc::Sender<Vec<PeerRecord>>,
) {
    let waits = FIRST_REFRESHES
        .into_iter()
        .chain(std::iter::repeat(REFRESH_EVERY));
    for wait in waits {
        tokio::time::sleep(wait).await;
        let found = sources.ask(cid, true).await.unwrap_or_default();
        if tx.send(found).await.is_err() {
            return;
        }
    }
}
