//! The in-memory store: one process's maps, with an expiry index so that
//! expired peers are found without looking at the live ones.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;

use shoal_core::{ContentId, PeerId};
use tokio::time::Instant;

use super::{
    MAX_PROVIDED_PER_NET, Store, StoreError, StoreResult, StoredPeer, TOMBSTONE, network_of, pick,
};

/// Most expired peers dropped under one hold of the lock: a sweep after a
/// mass expiry never stalls requests for long.
const SWEEP_BATCH: usize = 4096;
/// The largest peer id, an upper bound in the expiry index.
const LAST_ID: PeerId = PeerId::from_bytes([0xff; 32]);

#[derive(Default)]
struct Inner {
    peers: BTreeMap<PeerId, StoredPeer>,
    /// `(expires_at, id)` of every peer in `peers`.
    expiry: BTreeSet<(Instant, PeerId)>,
    provided: HashMap<PeerId, (u64, Vec<ContentId>)>,
    providers: HashMap<ContentId, HashSet<PeerId>>,
    /// The last accepted `ts` of peers that left or expired, and until when
    /// it is kept.
    tombstones: HashMap<PeerId, (u64, Instant)>,
    /// `(until, id)` of every tombstone.
    tombstone_expiry: BTreeSet<(Instant, PeerId)>,
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

    fn bury(&mut self, id: PeerId, ts: u64, now: Instant) {
        let until = now + TOMBSTONE;
        if let Some((_, old)) = self.tombstones.insert(id, (ts, until)) {
            self.tombstone_expiry.remove(&(old, id));
        }
        self.tombstone_expiry.insert((until, id));
    }

    fn unbury(&mut self, id: &PeerId) {
        if let Some((_, until)) = self.tombstones.remove(id) {
            self.tombstone_expiry.remove(&(until, *id));
        }
    }

    /// Removes a peer, keeping its last timestamp as a tombstone.
    fn forget(&mut self, id: &PeerId, now: Instant) {
        self.drop_provided(id);
        if let Some(p) = self.peers.remove(id) {
            self.expiry.remove(&(p.expires_at, *id));
            self.bury(*id, p.ts, now);
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

    /// Peers in `peers` whose registration ran out by `now` (not swept yet).
    fn expired(&self, now: Instant) -> usize {
        self.expiry.range(..=(now, LAST_ID)).count()
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

    /// Drops up to [`SWEEP_BATCH`] expired peers and tombstones; whether
    /// any are left.
    fn sweep_some(&self, now: Instant) -> bool {
        let mut g = self.lock();
        let dead: Vec<PeerId> = g
            .expiry
            .range(..=(now, LAST_ID))
            .take(SWEEP_BATCH)
            .map(|(_, id)| *id)
            .collect();
        for id in &dead {
            g.forget(id, now);
        }
        let gone: Vec<(Instant, PeerId)> = g
            .tombstone_expiry
            .range(..=(now, LAST_ID))
            .take(SWEEP_BATCH)
            .copied()
            .collect();
        for (until, id) in &gone {
            g.tombstone_expiry.remove(&(*until, *id));
            g.tombstones.remove(id);
        }
        dead.len() == SWEEP_BATCH || gone.len() == SWEEP_BATCH
    }
}

impl Store for MemoryStore {
    async fn put_peer(&self, mut peer: StoredPeer, now: Instant) -> StoreResult<u64> {
        let mut g = self.lock();
        let id = peer.peer_id;
        if g.last_ts(&id, now).is_some_and(|ts| ts >= peer.ts) {
            return Err(StoreError::Stale);
        }
        g.unbury(&id);
        if let Some(old) = g.peers.get(&id) {
            let (live, since, expires) = (old.expires_at > now, old.since, old.expires_at);
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
            g.expiry.remove(&(expires, id));
        }
        peer.since = peer.since.min(now);
        g.expiry.insert((peer.expires_at, id));
        g.peers.insert(id, peer);
        Ok(g.provided_count(&id))
    }

    async fn get_peer(&self, id: PeerId, now: Instant) -> StoreResult<Option<StoredPeer>> {
        Ok(self.lock().live(&id, now).cloned())
    }

    async fn list_peers(
        &self,
        after: Option<PeerId>,
        limit: usize,
        now: Instant,
    ) -> StoreResult<Vec<StoredPeer>> {
        let g = self.lock();
        let range = match after {
            Some(a) => g
                .peers
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => g.peers.range(..),
        };
        Ok(range
            .map(|(_, p)| p)
            .filter(|p| p.expires_at > now)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn remove_peer(&self, id: PeerId, ts: u64, now: Instant) -> StoreResult<()> {
        let mut g = self.lock();
        match g.peers.get(&id) {
            None => Err(StoreError::NotRegistered),
            Some(p) if p.ts > ts => Err(StoreError::Stale),
            Some(_) => {
                g.forget(&id, now);
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
    ) -> StoreResult<u64> {
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

    async fn providers(
        &self,
        cid: ContentId,
        limit: usize,
        now: Instant,
    ) -> StoreResult<Vec<StoredPeer>> {
        let g = self.lock();
        let Some(set) = g.providers.get(&cid) else {
            return Ok(Vec::new());
        };
        // Picked by (since, id) first: only the chosen records are copied,
        // however many provide it.
        let live: Vec<(Instant, PeerId)> = set
            .iter()
            .filter_map(|id| g.live(id, now).map(|p| (p.since, *id)))
            .collect();
        Ok(pick(live, limit, |k| *k)
            .into_iter()
            .filter_map(|(_, id)| g.peers.get(&id).cloned())
            .collect())
    }

    async fn live_peers(&self, now: Instant) -> StoreResult<usize> {
        let g = self.lock();
        Ok(g.peers.len().saturating_sub(g.expired(now)))
    }

    async fn sweep(&self, now: Instant) -> StoreResult<()> {
        while self.sweep_some(now) {
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    async fn health(&self) -> StoreResult<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
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
        assert_eq!(s.providers(cid, 10, t0).await.unwrap().len(), 1);
        let later = t0 + Duration::from_secs(6);
        assert!(s.get_peer(a.peer_id, later).await.unwrap().is_none());
        assert!(s.providers(cid, 10, later).await.unwrap().is_empty());
        assert_eq!(s.list_peers(None, 10, later).await.unwrap().len(), 0);
        s.sweep(later).await.unwrap();
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
        s.sweep(later).await.unwrap();
        assert_eq!(s.put_peer(b.clone(), later).await, Err(StoreError::Stale));
        let newer = peer(2, 12, later, 5);
        assert_eq!(s.put_peer(newer, later).await, Ok(0));
        // Tombstones go once no replay could pass the freshness check.
        let much_later = later + TOMBSTONE + Duration::from_secs(10);
        s.sweep(much_later).await.unwrap();
        assert!(!s.lock().tombstones.contains_key(&a.peer_id));
        s.sweep(much_later + TOMBSTONE + Duration::from_secs(10))
            .await
            .unwrap();
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
            let got = s.providers(cid, 200, later).await.unwrap();
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
        let first = s.list_peers(None, 2, now).await.unwrap();
        let rest = s.list_peers(Some(first[1].peer_id), 10, now).await.unwrap();
        assert_eq!(first.len() + rest.len(), 5);
        assert!(first[1].peer_id < rest[0].peer_id);
        assert_eq!(s.live_peers(now).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_mass_expiry_is_swept_in_batches_and_counted_before() {
        let s = MemoryStore::default();
        let t0 = Instant::now();
        let n = SWEEP_BATCH * 2 + 10;
        for i in 0..n as u32 {
            let mut p = peer(1, 1, t0, if i % 2 == 0 { 5 } else { 60 });
            let mut k = [9u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            p.peer_id = Identity::from_seed(k).peer_id();
            s.put_peer(p, t0).await.unwrap();
        }
        let later = t0 + Duration::from_secs(6);
        // Counted right even before the sweep came.
        assert_eq!(s.live_peers(later).await.unwrap(), n / 2);
        assert!(s.sweep_some(later), "a first batch leaves more");
        s.sweep(later).await.unwrap();
        let g = s.lock();
        assert_eq!(g.peers.len(), n / 2);
        assert_eq!(g.expiry.len(), n / 2);
        assert_eq!(g.tombstones.len(), n / 2);
        assert_eq!(g.tombstone_expiry.len(), n / 2);
    }
}
