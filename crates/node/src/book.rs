//! The peer book: who is out there, by name or id prefix, from the tracker
//! or, when the tracker cannot be reached, from the last list we saw.
//!
//! # Names are labels, ids are identities
//!
//! A query is resolved by these rules, in order, so a name can never
//! stand in for a key the user meant:
//!
//! 1. a full peer id is that peer;
//! 2. a prefix of an id (at least [`MIN_PREFIX`] characters, too many to
//!    grind a key for) is the one peer whose id starts with it, and wins
//!    over any peer *named* like it; several matches are an error listing
//!    them;
//! 3. otherwise it is a name: one peer so named, else an error listing the
//!    candidates. The first time a name is used it is pinned to that
//!    peer's key (`known_peers.json` in the data dir, as SSH's
//!    known_hosts); later, a different key under the same name is refused
//!    ([`NodeError::NameChanged`]) until the user names the new key by its
//!    full id once, which moves the pin. A pinned name whose peer is live
//!    under another name still finds it.
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
use crate::trackers::Trackers;

/// File name of the peer cache inside the data dir.
pub const PEERS_CACHE: &str = "peers.json";
/// File name of the pinned names inside the data dir.
pub const PINS_FILE: &str = "known_peers.json";
/// Shortest id prefix taken as an id rather than a name.
pub const MIN_PREFIX: usize = 8;
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
    trackers: Trackers,
    cache_path: PathBuf,
    pins_path: PathBuf,
}

/// Names pinned to the keys they were first used for.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    names: std::collections::BTreeMap<String, PeerId>,
}

impl PeerBook {
    /// A book backed by `trackers` (one tracker, or several asked in
    /// turn), caching in `data_dir`.
    pub fn new(trackers: impl Into<Trackers>, data_dir: &Path) -> Self {
        Self {
            trackers: trackers.into(),
            cache_path: data_dir.join(PEERS_CACHE),
            pins_path: data_dir.join(PINS_FILE),
        }
    }

    /// The trackers behind this book.
    pub fn trackers(&self) -> &Trackers {
        &self.trackers
    }

    /// Every peer: live ones from the tracker, or the cached list if the
    /// tracker cannot be reached.
    pub async fn list(&self) -> Result<(Vec<PeerRecord>, Source)> {
        match self.trackers.peers().await {
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

    /// Finds one peer by full id, unique id prefix, or name (see the
    /// module docs for the rules). Peers the tracker no longer lists are
    /// looked up in the cache too.
    pub async fn resolve(&self, query: &str) -> Result<(PeerRecord, Source)> {
        let (live, source) = self.list().await?;
        let cached: Vec<PeerRecord> = self.load().peers.into_iter().map(|c| c.record).collect();
        let pins = self.load_pins();
        let found = match pick(&live, query, &pins)? {
            Some(p) => Some((p, source.clone())),
            None => pick(&cached, query, &pins)?.map(|p| {
                let why = match &source {
                    Source::Cache(e) => e.clone(),
                    Source::Tracker => "the tracker does not list it now".into(),
                };
                (p, Source::Cache(why))
            }),
        };
        let Some((peer, from)) = found else {
            return Err(NodeError::UnknownPeer {
                query: shoal_core::text::escape(query).into_owned(),
                hint: match source {
                    Source::Tracker => format!(
                        " to the tracker at {}; run `shoal peers` to see who is online",
                        self.trackers.describe()
                    ),
                    Source::Cache(e) => {
                        format!(" (the tracker is unreachable: {e}; and no cached peer matches)")
                    }
                },
            });
        };
        self.pin(query, &peer, pins);
        Ok((peer, from))
    }

    fn load_pins(&self) -> Pins {
        std::fs::read(&self.pins_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Pins a name on first use; a full id moves the pin of its name.
    fn pin(&self, query: &str, peer: &PeerRecord, mut pins: Pins) {
        let name = if query.parse::<PeerId>().is_ok() {
            peer.name.clone()
        } else if is_prefix_query(query) && peer.peer_id.to_string().starts_with(query) {
            return;
        } else {
            query.to_owned()
        };
        if shoal_core::wire::validate_name(&name).is_err()
            || pins.names.get(&name) == Some(&peer.peer_id)
        {
            return;
        }
        if let Some(old) = pins.names.insert(name.clone(), peer.peer_id) {
            tracing::info!(name = %name, old = %old.short(), new = %peer.peer_id.short(), "name pinned to a new key, as asked by its full id");
        }
        if let Ok(json) = serde_json::to_vec_pretty(&pins)
            && let Err(e) = write_atomic(&self.pins_path, &json)
        {
            tracing::warn!(error = %e, "cannot save pinned peer names");
        }
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

/// Whether `query` may be an id prefix: long enough, and in the ids' alphabet.
fn is_prefix_query(query: &str) -> bool {
    query.len() >= MIN_PREFIX
        && query.len() < 52
        && query
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

fn candidates(many: &[&PeerRecord]) -> String {
    many.iter()
        .take(10)
        .map(|p| {
            format!(
                "{} ({})",
                shoal_core::text::escape(&p.name),
                p.peer_id.short()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pick(peers: &[PeerRecord], query: &str, pins: &Pins) -> Result<Option<PeerRecord>> {
    if let Ok(id) = query.parse::<PeerId>() {
        return Ok(peers.iter().find(|p| p.peer_id == id).cloned());
    }
    let shown = || shoal_core::text::escape(query).into_owned();
    if is_prefix_query(query) {
        let by_prefix: Vec<&PeerRecord> = peers
            .iter()
            .filter(|p| p.peer_id.to_string().starts_with(query))
            .collect();
        match by_prefix.as_slice() {
            [] => {}
            [one] => return Ok(Some((*one).clone())),
            many => {
                return Err(NodeError::AmbiguousPeer {
                    query: shown(),
                    candidates: candidates(many),
                });
            }
        }
    }
    let by_name: Vec<&PeerRecord> = peers.iter().filter(|p| p.name == query).collect();
    if let Some(&pinned) = pins.names.get(query) {
        if let Some(p) = peers.iter().find(|p| p.peer_id == pinned) {
            return Ok(Some(p.clone()));
        }
        return match by_name.first() {
            None => Ok(None),
            Some(other) => Err(NodeError::NameChanged {
                name: shown(),
                pinned,
                now: other.peer_id,
            }),
        };
    }
    match by_name.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(NodeError::AmbiguousPeer {
            query: shown(),
            candidates: candidates(many),
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
    shoal_fs::durable::replace(path, data, shoal_fs::durable::Replace::default())
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
        let none = Pins::default();
        let peers = vec![rec(1, "alice"), rec(2, "bob"), rec(3, "bob")];
        let id = peers[0].peer_id.to_string();
        assert_eq!(pick(&peers, &id, &none).unwrap().unwrap().name, "alice");
        assert_eq!(
            pick(&peers, "alice", &none).unwrap().unwrap().peer_id,
            peers[0].peer_id
        );
        assert_eq!(
            pick(&peers, &id[..10], &none).unwrap().unwrap().name,
            "alice"
        );
        assert!(matches!(
            pick(&peers, "bob", &none),
            Err(NodeError::AmbiguousPeer { .. })
        ));
        assert!(pick(&peers, "carol", &none).unwrap().is_none());
        assert!(pick(&peers, "", &none).unwrap().is_none());
    }

    #[test]
    fn an_id_prefix_wins_over_a_name_and_a_pin_over_a_newcomer() {
        let none = Pins::default();
        let bob = rec(2, "bob");
        let prefix = bob.peer_id.to_string()[..MIN_PREFIX].to_owned();
        // Someone named like bob's id prefix does not get bob's files.
        let impostor = rec(9, &prefix);
        let peers = vec![impostor.clone(), bob.clone()];
        assert_eq!(
            pick(&peers, &prefix, &none).unwrap().unwrap().peer_id,
            bob.peer_id
        );
        // A short prefix is a name, so a ground key cannot take a name.
        let short = &bob.peer_id.to_string()[..4];
        assert!(
            pick(std::slice::from_ref(&bob), short, &none)
                .unwrap()
                .is_none()
        );
        // Once pinned, a new key under the name is refused...
        let mut pins = Pins::default();
        pins.names.insert("bob".into(), bob.peer_id);
        let mallory = rec(5, "bob");
        assert!(matches!(
            pick(std::slice::from_ref(&mallory), "bob", &pins),
            Err(NodeError::NameChanged { .. })
        ));
        // ...even beside the real one, who is found whatever it is called now.
        let renamed = rec(2, "robert");
        assert_eq!(
            pick(&[mallory, renamed], "bob", &pins)
                .unwrap()
                .unwrap()
                .peer_id,
            bob.peer_id
        );
    }
}
