//! Where the tracker keeps registrations and the provider index.
//!
//! [`Store`] is the seam for a shared external store (several tracker
//! replicas serving one network); [`MemoryStore`] is the default: a
//! restarted tracker starts empty and refills within one heartbeat.
//! Expiry is evaluated against `tokio::time::Instant`, so tests can pause
//! time instead of sleeping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use shoal_core::wire::PeerRecord;
use shoal_core::{ContentId, PeerId};
use tokio::time::Instant;

/// A registration as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPeer {
    /// The peer.
    pub peer_id: PeerId,
    /// Its name.
    pub name: String,
    /// Its addresses, hosts filled in.
    pub addrs: Vec<String>,
    /// Signing time of the registration, Unix milliseconds.
    pub ts: u64,
    /// Its seed-compatible API, host filled in, if it runs one.
    pub compat: Option<String>,
    /// When it expires.
    pub expires_at: Instant,
}

impl StoredPeer {
    /// The public view of this record at `now`.
    pub fn record(&self, now: Instant) -> PeerRecord {
        PeerRecord {
            peer_id: self.peer_id,
            name: self.name.clone(),
            addrs: self.addrs.clone(),
            expires_in: self.expires_at.saturating_duration_since(now).as_secs(),
        }
    }
}

/// Why a store refused a write.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The message is older than one already accepted (a replay).
    #[error("a newer message from this peer was already accepted")]
    Stale,
    /// The peer is not registered (or its registration expired).
    #[error("peer is not registered")]
    NotRegistered,
}

/// Storage for live peers and what they provide.
pub trait Store: Send + Sync + 'static {
    /// Inserts or renews a peer. Returns how many content ids it provides.
    fn put_peer(
        &self,
        peer: StoredPeer,
        now: Instant,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// A live peer.
    fn get_peer(&self, id: PeerId, now: Instant)
    -> impl Future<Output = Option<StoredPeer>> + Send;
    /// Up to `limit` live peers after `after`, in id order.
    fn list_peers(
        &self,
        after: Option<PeerId>,
        limit: usize,
        now: Instant,
    ) -> impl Future<Output = Vec<StoredPeer>> + Send;
    /// Removes a peer if `ts` is not older than its registration.
    fn remove_peer(
        &self,
        id: PeerId,
        ts: u64,
        now: Instant,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces the set of content ids a live peer provides.
    fn set_provided(
        &self,
        id: PeerId,
        ts: u64,
        ids: Vec<ContentId>,
        now: Instant,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Live peers providing `cid`, at most `limit`.
    fn providers(
        &self,
        cid: ContentId,
        limit: usize,
        now: Instant,
    ) -> impl Future<Output = Vec<StoredPeer>> + Send;
    /// Number of live peers.
    fn live_peers(&self, now: Instant) -> impl Future<Output = usize> + Send;
    /// Drops expired peers and their provider entries.
    fn sweep(&self, now: Instant) -> impl Future<Output = ()> + Send;
}

#[derive(Default)]
struct Inner {
    peers: BTreeMap<PeerId, StoredPeer>,
    provided: HashMap<PeerId, (u64, Vec<ContentId>)>,
    providers: HashMap<ContentId, HashSet<PeerId>>,
}

impl Inner {
    fn live(&self, id: &PeerId, now: Instant) -> Option<&StoredPeer> {
        self.peers.get(id).filter(|p| p.expires_at > now)
    }

    fn drop_provided(&mut self, id: &PeerId) {
        if let Some((_, ids)) = self.provided.remove(id) {
            for cid in ids {
                if let Some(set) = self.providers.get_mut(&cid) {
                    set.remove(id);
                    if set.is_empty() {
                        self.providers.remove(&cid);
                    }
                }
            }
        }
    }

    fn provided_count(&self, id: &PeerId) -> u64 {
        self.provided.get(id).map_or(0, |(_, v)| v.len() as u64)
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // in a way worse than losing the tracker; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    async fn put_peer(&self, peer: StoredPeer, now: Instant) -> Result<u64, StoreError> {
        let mut g = self.lock();
        if let Some(old) = g.peers.get(&peer.peer_id) {
            if old.ts >= peer.ts {
                return Err(StoreError::Stale);
            }
            if old.expires_at <= now {
                // An expired peer starts afresh: its old provider set is gone.
                let id = peer.peer_id;
                g.drop_provided(&id);
            }
        }
        let id = peer.peer_id;
        g.peers.insert(id, peer);
        Ok(g.provided_count(&id))
    }

    async fn get_peer(&self, id: PeerId, now: Instant) -> Option<StoredPeer> {
        self.lock().live(&id, now).cloned()
    }

    async fn list_peers(
        &self,
        after: Option<PeerId>,
        limit: usize,
        now: Instant,
    ) -> Vec<StoredPeer> {
        let g = self.lock();
        let range = match after {
            Some(a) => g
                .peers
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => g.peers.range(..),
        };
        range
            .map(|(_, p)| p)
            .filter(|p| p.expires_at > now)
            .take(limit)
            .cloned()
            .collect()
    }

    async fn remove_peer(&self, id: PeerId, ts: u64, _now: Instant) -> Result<(), StoreError> {
        let mut g = self.lock();
        match g.peers.get(&id) {
            None => Err(StoreError::NotRegistered),
            Some(p) if p.ts > ts => Err(StoreError::Stale),
            Some(_) => {
                g.peers.remove(&id);
                g.drop_provided(&id);
                Ok(())
            }
        }
    }

    async fn set_provided(
        &self,
        id: PeerId,
        ts: u64,
        ids: Vec<ContentId>,
        now: Instant,
    ) -> Result<u64, StoreError> {
        let mut g = self.lock();
        if g.live(&id, now).is_none() {
            return Err(StoreError::NotRegistered);
        }
        if g.provided.get(&id).is_some_and(|(old_ts, _)| *old_ts >= ts) {
            return Err(StoreError::Stale);
        }
        g.drop_provided(&id);
        let mut ids = ids;
        ids.sort_unstable();
        ids.dedup();
        for cid in &ids {
            g.providers.entry(*cid).or_default().insert(id);
        }
        let n = ids.len() as u64;
        g.provided.insert(id, (ts, ids));
        Ok(n)
    }

    async fn providers(&self, cid: ContentId, limit: usize, now: Instant) -> Vec<StoredPeer> {
        let g = self.lock();
        let Some(set) = g.providers.get(&cid) else {
            return Vec::new();
        };
        let mut out: Vec<StoredPeer> = set
            .iter()
            .filter_map(|id| g.live(id, now))
            .take(limit)
            .cloned()
            .collect();
        out.sort_by_key(|p| p.peer_id);
        out
    }

    async fn live_peers(&self, now: Instant) -> usize {
        self.lock()
            .peers
            .values()
            .filter(|p| p.expires_at > now)
            .count()
    }

    async fn sweep(&self, now: Instant) {
        let mut g = self.lock();
        let dead: Vec<PeerId> = g
            .peers
            .values()
            .filter(|p| p.expires_at <= now)
            .map(|p| p.peer_id)
            .collect();
        for id in dead {
            g.peers.remove(&id);
            g.drop_provided(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::Identity;
    use std::time::Duration;

    fn peer(seed: u8, ts: u64, now: Instant, ttl: u64) -> StoredPeer {
        StoredPeer {
            compat: None,
            peer_id: Identity::from_seed([seed; 32]).peer_id(),
            name: format!("p{seed}"),
            addrs: vec!["127.0.0.1:1".into()],
            ts,
            expires_at: now + Duration::from_secs(ttl),
        }
    }

    #[tokio::test]
    async fn expiry_replay_and_providers() {
        let s = MemoryStore::default();
        let t0 = Instant::now();
        let a = peer(1, 10, t0, 5);
        let cid = ContentId::of(b"x");
        assert_eq!(s.put_peer(a.clone(), t0).await, Ok(0));
        assert_eq!(s.put_peer(a.clone(), t0).await, Err(StoreError::Stale));
        assert_eq!(
            s.set_provided(a.peer_id, 1, vec![cid, cid], t0).await,
            Ok(1)
        );
        assert_eq!(
            s.set_provided(a.peer_id, 1, vec![], t0).await,
            Err(StoreError::Stale)
        );
        assert_eq!(s.providers(cid, 10, t0).await.len(), 1);
        let later = t0 + Duration::from_secs(6);
        assert!(s.get_peer(a.peer_id, later).await.is_none());
        assert!(s.providers(cid, 10, later).await.is_empty());
        assert_eq!(s.list_peers(None, 10, later).await.len(), 0);
        s.sweep(later).await;
        assert_eq!(
            s.set_provided(a.peer_id, 2, vec![cid], later).await,
            Err(StoreError::NotRegistered)
        );
    }

    #[tokio::test]
    async fn pages_follow_id_order() {
        let s = MemoryStore::default();
        let now = Instant::now();
        for i in 0..5 {
            s.put_peer(peer(i, 1, now, 60), now).await.unwrap();
        }
        let first = s.list_peers(None, 2, now).await;
        let rest = s.list_peers(Some(first[1].peer_id), 10, now).await;
        assert_eq!(first.len() + rest.len(), 5);
        assert!(first[1].peer_id < rest[0].peer_id);
    }
}
