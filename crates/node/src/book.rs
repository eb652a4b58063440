//! The peer book: who is out there, by name or id prefix, from the tracker
//! or, when the tracker cannot be reached, from the last list we saw.
//!
//! The cache (`peers.json` in the data dir) keeps every peer seen in the
//! last 30 days with its last known addresses. Because peers pin each
//! other's keys, a stale address can only cost a failed connection, never
//! a talk with the wrong peer.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_core::PeerId;
use shoal_core::wire::PeerRecord;

use crate::error::{NodeError, Result};
use crate::tracker_client::TrackerClient;

/// File name of the peer cache inside the data dir.
pub const PEERS_CACHE: &str = "peers.json";
const KEEP_SECS: u64 = 30 * 24 * 3600;

/// Where a listing came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Fresh from the tracker.
    Tracker,
    /// From the cache, because the tracker failed with this error.
    Cache(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    peers: Vec<Cached>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    #[serde(flatten)]
    record: PeerRecord,
    last_seen: u64,
}

/// Finds peers.
pub struct PeerBook {
    tracker: TrackerClient,
    cache_path: PathBuf,
}

impl PeerBook {
    /// A book backed by `tracker`, caching in `data_dir`.
    pub fn new(tracker: TrackerClient, data_dir: &Path) -> Self {
        Self {
            tracker,
            cache_path: data_dir.join(PEERS_CACHE),
        }
    }

    /// The tracker behind this book.
    pub fn tracker(&self) -> &TrackerClient {
        &self.tracker
    }

    /// Every peer: live ones from the tracker, or the cached list if the
    /// tracker cannot be reached.
    pub async fn list(&self) -> Result<(Vec<PeerRecord>, Source)> {
        match self.tracker.peers().await {
            Ok(peers) => {
                self.remember(&peers);
                Ok((peers, Source::Tracker))
            }
            Err(e) if e.is_transient() => {
                let cached = self.load().peers.into_iter().map(|c| c.record).collect();
                Ok((cached, Source::Cache(e.to_string())))
            }
            Err(e) => Err(e),
        }
    }

    /// Finds one peer by full id, name, or unique id prefix. Peers the
    /// tracker no longer lists are looked up in the cache too.
    pub async fn resolve(&self, query: &str) -> Result<(PeerRecord, Source)> {
        let (live, source) = self.list().await?;
        if let Some(p) = pick(&live, query)? {
            return Ok((p, source));
        }
        let cached: Vec<PeerRecord> = self.load().peers.into_iter().map(|c| c.record).collect();
        if let Some(p) = pick(&cached, query)? {
            let why = match source {
                Source::Cache(e) => e,
                Source::Tracker => "the tracker does not list it now".into(),
            };
            return Ok((p, Source::Cache(why)));
        }
        Err(NodeError::UnknownPeer {
            query: query.to_owned(),
            hint: match source {
                Source::Tracker => format!(
                    " to the tracker at {}; run `shoal peers` to see who is online",
                    self.tracker.url()
                ),
                Source::Cache(e) => {
                    format!(" (the tracker is unreachable: {e}; and no cached peer matches)")
                }
            },
        })
    }

    fn load(&self) -> Cache {
        std::fs::read(&self.cache_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn remember(&self, peers: &[PeerRecord]) {
        let now = unix_secs();
        let mut cache = self.load();
        cache.peers.retain(|c| {
            now.saturating_sub(c.last_seen) < KEEP_SECS
                && !peers.iter().any(|p| p.peer_id == c.record.peer_id)
        });
        cache.peers.extend(peers.iter().map(|p| Cached {
            record: p.clone(),
            last_seen: now,
        }));
        cache.peers.sort_by_key(|c| c.record.peer_id);
        // The cache is a convenience: failing to write it must not fail the command.
        if let Err(e) = write_atomic(
            &self.cache_path,
            &serde_json::to_vec_pretty(&cache).unwrap_or_default(),
        ) {
            tracing::debug!(error = %e, "cannot write peer cache");
        }
    }
}

fn pick(peers: &[PeerRecord], query: &str) -> Result<Option<PeerRecord>> {
    if let Ok(id) = query.parse::<PeerId>() {
        return Ok(peers.iter().find(|p| p.peer_id == id).cloned());
    }
    let by_name: Vec<&PeerRecord> = peers.iter().filter(|p| p.name == query).collect();
    let by_prefix: Vec<&PeerRecord> = if query.is_empty() {
        Vec::new()
    } else {
        peers
            .iter()
            .filter(|p| {
                p.peer_id
                    .to_string()
                    .starts_with(&query.to_ascii_lowercase())
            })
            .collect()
    };
    let matches = if by_name.is_empty() {
        by_prefix
    } else {
        by_name
    };
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(NodeError::AmbiguousPeer {
            query: query.to_owned(),
            candidates: many
                .iter()
                .map(|p| format!("{} ({})", p.name, p.peer_id.short()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes a small file by temp file and rename, so readers never see half of it.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::Identity;

    fn rec(seed: u8, name: &str) -> PeerRecord {
        PeerRecord {
            peer_id: Identity::from_seed([seed; 32]).peer_id(),
            name: name.into(),
            addrs: vec![],
            expires_in: 1,
        }
    }

    #[test]
    fn pick_by_id_name_and_prefix() {
        let peers = vec![rec(1, "alice"), rec(2, "bob"), rec(3, "bob")];
        let id = peers[0].peer_id.to_string();
        assert_eq!(pick(&peers, &id).unwrap().unwrap().name, "alice");
        assert_eq!(
            pick(&peers, "alice").unwrap().unwrap().peer_id,
            peers[0].peer_id
        );
        assert_eq!(pick(&peers, &id[..10]).unwrap().unwrap().name, "alice");
        assert!(matches!(
            pick(&peers, "bob"),
            Err(NodeError::AmbiguousPeer { .. })
        ));
        assert!(pick(&peers, "carol").unwrap().is_none());
        assert!(pick(&peers, "").unwrap().is_none());
    }
}
