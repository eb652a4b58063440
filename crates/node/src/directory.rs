//! The sources of the peer directory: each a [`Backend`] that may list
//! peers, find one by id and name the providers of a content.
//!
//! The [`crate::book::PeerBook`] merges them: the tracker(s) (one backend
//! for all of them, failing over inside), the LAN and the DHT when the
//! user turned them on, and the cache of last-seen addresses. Whatever a
//! backend says is a hint about *where* a peer is; *who* answers there is
//! decided by the TLS pin, and a content's bytes by its content id.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use shoal_core::wire::PeerRecord;
use shoal_core::{ContentId, PeerId};

use crate::download::Providers;
use crate::error::Result;
use crate::peer_client::PeerClient;
use crate::trackers::Trackers;

/// Where a peer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A tracker listed it.
    Tracker,
    /// It answered on the LAN (mDNS).
    Lan,
    /// Its address item was found on the DHT.
    Dht,
    /// The cache of peers seen before.
    Cache,
}

impl Origin {
    /// Its name, as `peers` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Tracker => "tracker",
            Origin::Lan => "lan",
            Origin::Dht => "dht",
            Origin::Cache => "cache",
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source of the peer directory. It is also a [`Providers`] source,
/// so a download asks it who provides a content.
pub trait Backend: Providers {
    /// Which kind of source it is.
    fn origin(&self) -> Origin;
    /// The peers it can list now; a source that is asked by id only (the
    /// DHT) lists none.
    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// Where the peer `id` is, if this source knows.
    fn peer(&self, id: PeerId) -> BoxFuture<'_, Result<Option<PeerRecord>>>;
}

impl Backend for Trackers {
    fn origin(&self) -> Origin {
        Origin::Tracker
    }

    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(Trackers::peers(self))
    }

    fn peer(&self, id: PeerId) -> BoxFuture<'_, Result<Option<PeerRecord>>> {
        Box::pin(Trackers::peer(self, id))
    }
}

/// Providers whose keys are learnt at once (DHT answers).
const IDENTIFY_AT_ONCE: usize = 16;
/// Longest time spent learning who the DHT's providers are.
const IDENTIFY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// The Mainline DHT as a source: a peer id resolves to the addresses its
/// owner signed; a content's providers are announced addresses, whose
/// keys are learnt by dialling them.
pub struct DhtBackend {
    dht: shoal_dht::Dht,
    client: Arc<PeerClient>,
    /// The last providers found per content, so a download's refreshes
    /// do not look up the DHT more than once per [`DHT_LOOKUP_EVERY`].
    recent: std::sync::Mutex<Vec<(ContentId, std::time::Instant, Vec<PeerRecord>)>>,
}

/// How often the DHT is asked for the providers of one content at most.
pub const DHT_LOOKUP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// Contents whose providers are remembered.
const DHT_REMEMBERED: usize = 64;

impl DhtBackend {
    /// `dht`, dialling providers with `client`.
    pub fn new(dht: shoal_dht::Dht, client: Arc<PeerClient>) -> Self {
        Self {
            dht,
            client,
            recent: Default::default(),
        }
    }

    async fn find(&self, cid: ContentId) -> Result<Vec<PeerRecord>> {
        let remembered = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent
                .iter()
                .find(|(c, at, _)| *c == cid && at.elapsed() < DHT_LOOKUP_EVERY)
                .map(|(_, _, found)| found.clone())
        };
        if let Some(found) = remembered {
            return Ok(found);
        }
        let found = self.look_up(cid).await?;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|(c, at, _)| *c != cid && at.elapsed() < DHT_LOOKUP_EVERY);
        if recent.len() >= DHT_REMEMBERED {
            recent.remove(0);
        }
        recent.push((cid, std::time::Instant::now(), found.clone()));
        Ok(found)
    }

    async fn look_up(&self, cid: ContentId) -> Result<Vec<PeerRecord>> {
        use futures_util::StreamExt;
        let started = std::time::Instant::now();
        let addrs = self.dht.providers(&cid).await;
        tracing::debug!(
            found = addrs.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "providers from the DHT"
        );
        let me = self.client.peer_id();
        let asks = addrs.into_iter().map(|a| async move {
            let addr = a.to_string();
            match self.client.identify(&addr).await {
                Ok(id) => Some(PeerRecord {
                    peer_id: id,
                    name: id.short(),
                    addrs: vec![addr],
                    expires_in: 0,
                    reach: None,
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "a provider the DHT named does not answer");
                    None
                }
            }
        });
        let mut answers = futures_util::stream::iter(asks).buffer_unordered(IDENTIFY_AT_ONCE);
        let deadline = tokio::time::Instant::now() + IDENTIFY_DEADLINE;
        let mut found: Vec<PeerRecord> = Vec::new();
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await {
            if let Some(p) = answer
                && p.peer_id != me
            {
                match found.iter_mut().find(|q| q.peer_id == p.peer_id) {
                    Some(q) => q.addrs.extend(p.addrs),
                    None => found.push(p),
                }
            }
        }
        Ok(found)
    }
}

impl Providers for DhtBackend {
    fn describe(&self) -> String {
        format!("dht {}", self.dht.url())
    }

    fn providers(&self, cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(self.find(cid))
    }
}

impl Backend for DhtBackend {
    fn origin(&self) -> Origin {
        Origin::Dht
    }

    fn peer(&self, id: PeerId) -> BoxFuture<'_, Result<Option<PeerRecord>>> {
        Box::pin(async move {
            Ok(self.dht.resolve(&id).await.map(|f| PeerRecord {
                peer_id: id,
                name: f.name,
                addrs: f.addrs,
                expires_in: 0,
                reach: None,
            }))
        })
    }
}

/// The LAN as a source: the peers heard over mDNS. They announce no
/// content, so each is a candidate provider whose listing tells.
pub struct LanBackend {
    lan: Arc<shoal_lan::Lan>,
    me: PeerId,
}

impl LanBackend {
    /// `lan`, leaving out the peer `me`.
    pub fn new(lan: Arc<shoal_lan::Lan>, me: PeerId) -> Self {
        Self { lan, me }
    }

    fn records(&self) -> Vec<PeerRecord> {
        self.lan
            .peers()
            .into_iter()
            .filter(|p| p.peer_id != self.me)
            .map(|p| PeerRecord {
                peer_id: p.peer_id,
                name: p.name,
                addrs: p.addrs.iter().map(ToString::to_string).collect(),
                expires_in: shoal_lan::LIFETIME.as_secs(),
                reach: None,
            })
            .collect()
    }
}

impl Providers for LanBackend {
    fn describe(&self) -> String {
        "lan".into()
    }

    fn providers(&self, _cid: ContentId) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(std::future::ready(Ok(self.records())))
    }
}

impl Backend for LanBackend {
    fn origin(&self) -> Origin {
        Origin::Lan
    }

    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerRecord>>> {
        Box::pin(std::future::ready(Ok(self.records())))
    }

    fn peer(&self, id: PeerId) -> BoxFuture<'_, Result<Option<PeerRecord>>> {
        let found = self.records().into_iter().find(|p| p.peer_id == id);
        Box::pin(std::future::ready(Ok(found)))
    }
}
