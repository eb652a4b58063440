//! Where the tracker keeps registrations and the provider index.
//!
//! [`Store`] is the seam; [`MemoryStore`] is the default (a restarted
//! tracker starts empty and refills within one heartbeat), [`RedisStore`]
//! the shared one: several tracker replicas on one Redis serve one
//! network. Expiry is evaluated against `tokio::time::Instant`, so tests of
//! the memory store can pause time instead of sleeping.

mod memory;
mod redis;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

pub use memory::MemoryStore;
pub use redis::{RedisStore, StoreUrlError};

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
    pub fn into_record(self, now: Instant) -> PeerRecord {
        PeerRecord {
            peer_id: self.peer_id,
            name: self.name,
            addrs: self.addrs,
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
    /// The store could not be reached or did not answer in time.
    #[error("the tracker's store is unavailable: {0}")]
    Unavailable(String),
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

/// What a store call gives: a value, or why not.
pub type StoreResult<T> = Result<T, StoreError>;

/// Storage for live peers and what they provide. Every call may fail with
/// [`StoreError::Unavailable`] (a shared store that is down or slow; the
/// memory store never does) and returns within a bounded time.
pub trait Store: Send + Sync + 'static {
    /// Inserts or renews a peer. Returns how many content ids it provides.
    fn put_peer(
        &self,
        peer: StoredPeer,
        now: Instant,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// A live peer.
    fn get_peer(
        &self,
        id: PeerId,
        now: Instant,
    ) -> impl Future<Output = StoreResult<Option<StoredPeer>>> + Send;
    /// Up to `limit` live peers after `after`, in the store's id order
    /// (stable while peers come and go, so paging with the last id seen
    /// visits every peer that stays registered exactly once).
    fn list_peers(
        &self,
        after: Option<PeerId>,
        limit: usize,
        now: Instant,
    ) -> impl Future<Output = StoreResult<Vec<StoredPeer>>> + Send;
    /// Removes a peer if `ts` is not older than its registration.
    fn remove_peer(
        &self,
        id: PeerId,
        ts: u64,
        now: Instant,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Replaces the set of content ids a live peer provides.
    fn set_provided(
        &self,
        id: PeerId,
        ts: u64,
        ids: Vec<ContentId>,
        now: Instant,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Live peers providing `cid`, at most `limit`: when there are more,
    /// the longest registered half of them and a random pick of the rest,
    /// so a crowd of new identities cannot push a real provider out.
    fn providers(
        &self,
        cid: ContentId,
        limit: usize,
        now: Instant,
    ) -> impl Future<Output = StoreResult<Vec<StoredPeer>>> + Send;
    /// Number of live peers.
    fn live_peers(&self, now: Instant) -> impl Future<Output = StoreResult<usize>> + Send;
    /// Drops peers that expired by `now`, and their provider entries. Takes
    /// only what expired (no scan of the live ones).
    fn sweep(&self, now: Instant) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether the store answers (for `/healthz`).
    fn health(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// What it is, for logs: `memory`, `redis://host:port/db`.
    fn describe(&self) -> String;
}

/// At most `limit` of `live`: all if they fit, else the longest
/// registered half and a random pick of the others.
pub fn pick_providers(live: Vec<StoredPeer>, limit: usize) -> Vec<StoredPeer> {
    pick(live, limit, |p| (p.since, p.peer_id))
}

/// [`pick_providers`] on anything that knows when it registered and who
/// it is: `key` gives `(since, peer_id)`.
pub fn pick<T>(mut live: Vec<T>, limit: usize, key: impl Fn(&T) -> (Instant, PeerId)) -> Vec<T> {
    if live.len() > limit {
        live.sort_by_key(&key);
        let senior = limit / 2;
        let mut rest = live.split_off(senior);
        fastrand::shuffle(&mut rest);
        rest.truncate(limit - senior);
        live.extend(rest);
    }
    live.sort_by_key(|t| key(t).1);
    live
}
