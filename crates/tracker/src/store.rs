//! Where the tracker keeps registrations and the provider index.
//!
//! [`Store`] is the seam for a shared external store (several tracker
//! replicas serving one network); [`MemoryStore`] is the default: a
//! restarted tracker starts empty and refills within one heartbeat.
//! Expiry is evaluated against `tokio::time::Instant`, so tests can pause
//! time instead of sleeping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

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
    /// Where its registration came from (for per-network quotas).
    pub from: Option<IpAddr>,
    /// When it registered first, heartbeats since included (kept by the
    /// store; whatever is given here is ignored on a renewal).
    pub since: Instant,
}

impl StoredPeer {
    /// The public view of this record at `now`.
    pub fn record(&self, now: Instant) -> PeerRecord {
        PeerRecord {
            peer_id: self.peer_id,
            name: self.name.clone(),
            addrs: self.addrs.clone(),
            expires_in: self.expires_at.saturating_duration_since(now).as_secs(),
            reach: None,
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
    /// The announce would take the provider entries of the network it
    /// comes from past [`MAX_PROVIDED_PER_NET`].
    #[error(
        "peers from this network already announce {0} content ids, the most this tracker keeps for one network"
    )]
    Quota(u64),
}

/// Most provider entries (content id, peer) kept for the peers of one
/// network: one IPv4 address, or one IPv6 /64. Free identities cost
/// nothing, so the cap is per network, not per peer.
pub const MAX_PROVIDED_PER_NET: u64 = 200_000;

/// How long a peer's last accepted timestamp outlives its registration,
/// so a message replayed after it left or expired is still refused
/// (messages older than the tracker's skew window are refused anyway).
pub const TOMBSTONE: Duration = Duration::from_secs(10 * 60);

/// The quota key of an address: the IPv4 address, or the IPv6 /64 (the
/// same networks the listener's per-client caps count).
pub use shoal_net::client_key as network_of;

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
    /// Live peers providing `cid`, at most `limit`: when there are more,
    /// the longest registered half of them and a random pick of the rest,
    /// so a crowd of new identities cannot push a real provider out.
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
    /// The last accepted `ts` of peers that left or expired, and until when
    /// it is kept.
    tombstones: HashMap<PeerId, (u64, Instant)>,
    /// Provider entries per network ([`network_of`]).
    per_net: HashMap<IpAddr, u64>,
}

impl Inner {
    fn live(&self, id: &PeerId, now: Instant) -> Option<&StoredPeer> {
        self.peers.get(id).filter(|p| p.expires_at > now)
    }

    fn net_of(&self, id: &PeerId) -> Option<IpAddr> {
        self.peers.get(id).and_then(|p| p.from).map(network_of)
    }

    fn drop_provided(&mut self, id: &PeerId) {
        if let Some(net) = self.net_of(id)
            && let Some((_, ids)) = self.provided.get(id)
            && let Some(n) = self.per_net.get_mut(&net)
        {
            *n = n.saturating_sub(ids.len() as u64);
            if *n == 0 {
                self.per_net.remove(&net);
            }
        }
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

    /// Removes a peer, keeping its last timestamp as a tombstone.
    fn forget(&mut self, id: &PeerId, now: Instant) {
        self.drop_provided(id);
        if let Some(p) = self.peers.remove(id) {
            self.tombstones.insert(*id, (p.ts, now + TOMBSTONE));
        }
    }

    /// The newest timestamp accepted from `id`, live or remembered.
    fn last_ts(&self, id: &PeerId, now: Instant) -> Option<u64> {
        self.peers.get(id).map(|p| p.ts).or_else(|| {
            self.tombstones
                .get(id)
                .filter(|(_, until)| *until > now)
                .map(|(ts, _)| *ts)
        })
    }
}

/// At most `limit` of `live`: all if they fit, else the longest
/// registered half and a random pick of the others.
pub fn pick_providers(mut live: Vec<StoredPeer>, limit: usize) -> Vec<StoredPeer> {
    if live.len() > limit {
        live.sort_by_key(|p| (p.since, p.peer_id));
        let senior = limit / 2;
        let mut rest = live.split_off(senior);
        fastrand::shuffle(&mut rest);
        rest.truncate(limit - senior);
        live.extend(rest);
    }
    live.sort_by_key(|p| p.peer_id);
    live
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
    async fn put_peer(&self, mut peer: StoredPeer, now: Instant) -> Result<u64, StoreError> {
        let mut g = self.lock();
        let id = peer.peer_id;
        if g.last_ts(&id, now).is_some_and(|ts| ts >= peer.ts) {
            return Err(StoreError::Stale);
        }
        g.tombstones.remove(&id);
        if let Some(old) = g.peers.get(&id) {
            let (live, since) = (old.expires_at > now, old.since);
            let moved = old.from.map(network_of) != peer.from.map(network_of);
            if !live || moved {
                // An expired peer starts afresh (its old provider set is
                // gone); one that moved networks announces again under the
                // new network's quota.
                g.drop_provided(&id);
            }
            if live {
                peer.since = since;
            }
        }
        peer.since = peer.since.min(now);
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
                g.forget(&id, _now);
                if let Some(t) = g.tombstones.get_mut(&id) {
                    t.0 = t.0.max(ts);
                }
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
        let mut ids = ids;
        ids.sort_unstable();
        ids.dedup();
        if let Some(net) = g.net_of(&id) {
            let others = g
                .per_net
                .get(&net)
                .copied()
                .unwrap_or(0)
                .saturating_sub(g.provided_count(&id));
            if others.saturating_add(ids.len() as u64) > MAX_PROVIDED_PER_NET {
                return Err(StoreError::Quota(others));
            }
        }
        g.drop_provided(&id);
        if let Some(net) = g.net_of(&id) {
            *g.per_net.entry(net).or_default() += ids.len() as u64;
        }
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
        let live: Vec<StoredPeer> = set
            .iter()
            .filter_map(|id| g.live(id, now))
            .cloned()
            .collect();
        pick_providers(live, limit)
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
            g.forget(&id, now);
        }
        g.tombstones.retain(|_, (_, until)| *until > now);
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
            from: Some("127.0.0.1".parse().unwrap()),
            since: now,
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
    async fn a_message_replayed_after_leaving_or_expiring_is_refused() {
        let s = MemoryStore::default();
        let t0 = Instant::now();
        let a = peer(1, 10, t0, 5);
        s.put_peer(a.clone(), t0).await.unwrap();
        s.remove_peer(a.peer_id, 11, t0).await.unwrap();
        assert_eq!(s.put_peer(a.clone(), t0).await, Err(StoreError::Stale));
        let b = peer(2, 10, t0, 5);
        s.put_peer(b.clone(), t0).await.unwrap();
        let later = t0 + Duration::from_secs(6);
        s.sweep(later).await;
        assert_eq!(s.put_peer(b.clone(), later).await, Err(StoreError::Stale));
        let newer = peer(2, 12, later, 5);
        assert_eq!(s.put_peer(newer, later).await, Ok(0));
        // Tombstones go once no replay could pass the freshness check.
        let much_later = later + TOMBSTONE + Duration::from_secs(10);
        s.sweep(much_later).await;
        assert!(!s.lock().tombstones.contains_key(&a.peer_id));
        s.sweep(much_later + TOMBSTONE + Duration::from_secs(10))
            .await;
        assert!(s.lock().tombstones.is_empty());
    }

    #[tokio::test]
    async fn one_network_cannot_fill_the_provider_index() {
        let s = MemoryStore::default();
        let now = Instant::now();
        let per_peer = MAX_PROVIDED_PER_NET / 4 + 1;
        let ids: Vec<ContentId> = (0..per_peer)
            .map(|i| ContentId::of(&i.to_le_bytes()))
            .collect();
        for seed in 1..=3u8 {
            let p = peer(seed, 1, now, 60);
            s.put_peer(p.clone(), now).await.unwrap();
            s.set_provided(p.peer_id, 2, ids.clone(), now)
                .await
                .unwrap();
        }
        let p = peer(4, 1, now, 60);
        s.put_peer(p.clone(), now).await.unwrap();
        assert!(matches!(
            s.set_provided(p.peer_id, 2, ids.clone(), now).await,
            Err(StoreError::Quota(_))
        ));
        // Re-announcing the same set fits: its own old entries make room.
        let first = peer(1, 0, now, 60).peer_id;
        assert!(s.set_provided(first, 3, ids.clone(), now).await.is_ok());
        // Another network has its own quota.
        let mut other = peer(5, 1, now, 60);
        other.from = Some("10.1.2.3".parse().unwrap());
        s.put_peer(other.clone(), now).await.unwrap();
        assert!(s.set_provided(other.peer_id, 2, ids, now).await.is_ok());
        // Leaving frees the quota.
        s.remove_peer(first, 4, now).await.unwrap();
        assert!(
            s.set_provided(p.peer_id, 3, vec![ContentId::of(b"x")], now)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_crowd_of_new_providers_cannot_push_out_an_old_one() {
        let s = MemoryStore::default();
        let t0 = Instant::now();
        let cid = ContentId::of(b"wanted");
        let real = peer(0, 1, t0, 600);
        s.put_peer(real.clone(), t0).await.unwrap();
        s.set_provided(real.peer_id, 2, vec![cid], t0)
            .await
            .unwrap();
        let later = t0 + Duration::from_secs(30);
        for i in 0..1000u32 {
            let id = Identity::from_seed({
                let mut k = [7u8; 32];
                k[..4].copy_from_slice(&i.to_le_bytes());
                k
            });
            let mut p = peer(1, 1, later, 600);
            p.peer_id = id.peer_id();
            s.put_peer(p.clone(), later).await.unwrap();
            s.set_provided(p.peer_id, 2, vec![cid], later)
                .await
                .unwrap();
        }
        for _ in 0..20 {
            let got = s.providers(cid, 200, later).await;
            assert_eq!(got.len(), 200);
            assert!(got.iter().any(|p| p.peer_id == real.peer_id));
        }
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
