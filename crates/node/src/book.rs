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

use std::sync::Arc;

use crate::directory::Backend;
pub use crate::directory::Origin;
use crate::download::{Providers, Sources};
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
    /// Fresh from the tracker (and the other sources turned on).
    Tracker,
    /// From the cache, because the tracker failed with this error.
    Cache(String),
    /// From another source (the DHT, the LAN), by id.
    Found(Origin),
}

/// A peer in the directory, with every source that knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The peer as the first source listed it.
    #[serde(flatten)]
    pub record: PeerRecord,
    /// Where it was found, in the order the sources were asked.
    pub sources: Vec<Origin>,
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
    others: Vec<Arc<dyn Backend>>,
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
            others: Vec::new(),
            cache_path: data_dir.join(PEERS_CACHE),
            pins_path: data_dir.join(PINS_FILE),
        }
    }

    /// The book with another source (the LAN, the DHT), asked after the
    /// trackers.
    pub fn with(mut self, backend: Arc<dyn Backend>) -> Self {
        self.others.push(backend);
        self
    }

    /// The trackers behind this book.
    pub fn trackers(&self) -> &Trackers {
        &self.trackers
    }

    /// Every source a download asks for providers: the trackers, then
    /// the others.
    pub fn sources(&self) -> Sources {
        let mut all: Vec<Arc<dyn Providers>> = vec![Arc::new(self.trackers.clone())];
        all.extend(self.others.iter().map(|b| b.clone() as Arc<dyn Providers>));
        Sources::new(all)
    }

    /// Every peer the sources list: live ones from the tracker and the
    /// LAN, or, if the tracker cannot be reached, the cached list too.
    pub async fn list(&self) -> Result<(Vec<Listed>, Source)> {
        let others = futures_util::future::join_all(self.others.iter().map(|b| async move {
            match b.peers().await {
                Ok(peers) => peers,
                Err(e) => {
                    tracing::debug!(source = %b.describe(), error = %e, "cannot list peers");
                    Vec::new()
                }
            }
        }));
        let (tracked, others) = futures_util::join!(self.trackers.peers(), others);
        let mut listed: Vec<Listed> = Vec::new();
        let source = match tracked {
            Ok(peers) => {
                merge(&mut listed, peers, Origin::Tracker);
                Source::Tracker
            }
            Err(e) if e.is_transient() || !self.others.is_empty() => Source::Cache(e.to_string()),
            Err(e) => return Err(e),
        };
        for (backend, peers) in self.others.iter().zip(others) {
            merge(&mut listed, peers, backend.origin());
        }
        let live: Vec<PeerRecord> = listed.iter().map(|l| l.record.clone()).collect();
        self.remember(&live);
        if let Source::Cache(_) = source {
            let cached = self.load().peers.into_iter().map(|c| c.record).collect();
            merge(&mut listed, cached, Origin::Cache);
        }
        Ok((listed, source))
    }

    /// Where the peer `id` is: the first answer of the sources asked at
    /// once (the trackers and the others: a dead tracker's retries do not
    /// hold up the DHT), else the cache.
    pub async fn locate(&self, id: PeerId) -> Option<(PeerRecord, Origin)> {
        let all = std::iter::once(&self.trackers as &dyn Backend)
            .chain(self.others.iter().map(|b| b.as_ref()));
        if let Some(found) = first_who_knows(all, id).await {
            return Some(found);
        }
        self.load()
            .peers
            .into_iter()
            .find(|c| c.record.peer_id == id)
            .map(|c| (c.record, Origin::Cache))
    }

    /// Finds one peer by full id, unique id prefix, or name (see the
    /// module docs for the rules). A full id none of the listing sources
    /// knows is asked of the others (the DHT); peers no source lists now
    /// are looked up in the cache too.
    pub async fn resolve(&self, query: &str) -> Result<(PeerRecord, Source)> {
        let (listed, source) = self.list().await?;
        // The cache adds only peers no live source knows.
        let live: Vec<PeerRecord> = listed
            .into_iter()
            .filter(|l| l.sources != [Origin::Cache])
            .map(|l| l.record)
            .collect();
        let cached: Vec<PeerRecord> = self.load().peers.into_iter().map(|c| c.record).collect();
        let pins = self.load_pins();
        let mut found = pick(&live, query, &pins)?.map(|p| (p, source.clone()));
        if found.is_none()
            && let Ok(id) = query.parse::<PeerId>()
            && let Some((p, origin)) =
                first_who_knows(self.others.iter().map(|b| b.as_ref()), id).await
        {
            tracing::info!(peer = %id.short(), source = %origin, "found the peer's addresses");
            found = Some((p, Source::Found(origin)));
        }
        if found.is_none() {
            found = pick(&cached, query, &pins)?.map(|p| {
                let why = match &source {
                    Source::Cache(e) => e.clone(),
                    _ => "the tracker does not list it now".into(),
                };
                (p, Source::Cache(why))
            });
        }
        let Some((peer, from)) = found else {
            return Err(NodeError::UnknownPeer {
                query: shoal_core::text::escape(query).into_owned(),
                hint: match source {
                    Source::Cache(e) => {
                        format!(" (the tracker is unreachable: {e}; and no cached peer matches)")
                    }
                    _ => format!(
                        " to the tracker at {}; run `shoal peers` to see who is online",
                        self.trackers.describe()
                    ),
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

/// The first answer for the peer `id` of `sources`, all asked at once (a
/// slow one, such as a dead tracker retrying, does not hold up the others).
async fn first_who_knows<'a>(
    sources: impl Iterator<Item = &'a dyn Backend>,
    id: PeerId,
) -> Option<(PeerRecord, Origin)> {
    use futures_util::StreamExt;
    let mut asks: futures_util::stream::FuturesUnordered<_> = sources
        .map(|b| async move { (b, b.peer(id).await) })
        .collect();
    while let Some((b, answer)) = asks.next().await {
        match answer {
            Ok(Some(p)) => return Some((p, b.origin())),
            Ok(None) => {}
            Err(e) => tracing::debug!(source = %b.describe(), error = %e, "peer lookup failed"),
        }
    }
    None
}

/// Adds `peers` found by `origin` to `listed`, each peer once; the cache
/// adds only peers no live source knows.
fn merge(listed: &mut Vec<Listed>, peers: Vec<PeerRecord>, origin: Origin) {
    for p in peers {
        match listed.iter_mut().find(|l| l.record.peer_id == p.peer_id) {
            Some(l) if !l.sources.contains(&origin) && origin != Origin::Cache => {
                l.sources.push(origin)
            }
            Some(_) => {}
            None => listed.push(Listed {
                record: p,
                sources: vec![origin],
            }),
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
            reach: None,
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
