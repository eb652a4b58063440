//! Shoal on the Mainline DHT (BitTorrent's, through the `mainline` crate):
//! where a peer is, and who provides a content, with no tracker.
//!
//! # What goes into the DHT
//!
//! - **A peer's addresses**, as a BEP-44 mutable item signed by the peer's
//!   own Ed25519 key (the [`PeerId`] *is* that key) under the salt
//!   [`ADDRS_SALT`]. Its value is a small JSON object,
//!   `{"v":1,"name":"alice","addrs":["192.0.2.7:5001"]}`, at most
//!   [`MAX_VALUE`] bytes; its sequence number is the time it was made, in
//!   milliseconds, so the newest wins. Only the key's owner can write it,
//!   and the DHT nodes check the signature; still, an address from the DHT
//!   is only a hint: the peers' TLS pin decides who answers there.
//! - **Providers**, as BEP-5 announced peers under an info-hash derived
//!   from the content id ([`info_hash`]): the address of the announcing
//!   node's peer port. A provider found so is known by address only; the
//!   dialler learns its key from the TLS handshake, and a content's bytes
//!   are checked against its content id whoever sends them.
//!
//! # What it reveals
//!
//! Anyone on the DHT can read a peer's name and addresses given its id,
//! and the addresses of the providers of a content given its id. A node
//! that publishes also answers the DHT's own traffic while it runs.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures_util::StreamExt;
use mainline::async_dht::AsyncDht;
use mainline::{Id, MutableItem};
use serde::{Deserialize, Serialize};
use shoal_core::{ContentId, PeerId};

/// The salt of a peer's address item: its namespace in the DHT.
pub const ADDRS_SALT: &[u8] = b"shoal/addrs/v1";
/// The largest value BEP-44 stores.
pub const MAX_VALUE: usize = 1000;
/// Most addresses one item carries.
pub const MAX_ADDRS: usize = 8;
/// Most providers one lookup returns.
pub const MAX_PROVIDERS: usize = 64;
/// Once a lookup has an answer, how much longer it waits for more (the
/// rest of an iterative lookup mostly waits out nodes that do not answer).
pub const ANSWER_GRACE: Duration = Duration::from_millis(300);
/// How long a lookup may take at most.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// An address item older than this is taken to be from a peer that left
/// (a running peer republishes every [`REPUBLISH_EVERY`]).
pub const ITEM_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// How often a running node publishes its addresses again.
pub const REPUBLISH_EVERY: Duration = Duration::from_secs(30 * 60);
/// The port bare DHT nodes listen on unless told otherwise (BitTorrent's).
pub const DEFAULT_PORT: u16 = 6881;

/// What went wrong with the DHT.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// The UDP socket could not be opened.
    #[error(
        "cannot open the DHT's UDP socket on {addr}: {source}; pick another --listen address or port"
    )]
    Bind {
        /// Where it was asked to listen.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Only IPv4 is spoken on the DHT.
    #[error("the DHT listens on IPv4 only, not {0}; give an address like 0.0.0.0:6881")]
    NotIpv4(SocketAddr),
    /// A store did not take.
    #[error("the DHT did not store it: {0}")]
    Put(String),
    /// Nothing this large fits in one DHT item.
    #[error("{0}")]
    TooLarge(String),
}

/// How to join a DHT.
#[derive(Debug, Clone, Default)]
pub struct DhtConfig {
    /// Where to listen (`None`: any port on all interfaces).
    pub listen: Option<SocketAddr>,
    /// Nodes to join through (`HOST:PORT`): a private DHT's.
    pub bootstrap: Vec<String>,
    /// Join the public Mainline DHT through its well-known bootstrap
    /// nodes (and [`DhtConfig::bootstrap`] too). Without it and without
    /// bootstrap nodes, the node is the first of a private DHT and sends
    /// nothing until another node contacts it.
    pub public: bool,
    /// Answer other nodes' queries and store their items at once (a bare
    /// DHT node, a bootstrap). Otherwise the node does so once it learns
    /// it is reachable.
    pub server: bool,
}

/// A node on the DHT. Cloning shares it; it leaves when the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Dht {
    dht: AsyncDht,
    local: SocketAddrV4,
}

/// What a peer publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddrs {
    /// The format's version.
    pub v: u32,
    /// Its name.
    pub name: String,
    /// Where it listens (`IP:PORT`).
    pub addrs: Vec<String>,
}

/// A peer's addresses as found on the DHT, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its name (a safe one: a bad name becomes the short id).
    pub name: String,
    /// Its addresses, each a valid socket address.
    pub addrs: Vec<String>,
    /// How old the item is.
    pub age: Duration,
}

impl Dht {
    /// Joins a DHT as `config` says. This opens a UDP socket: call it only
    /// when the user asked for a DHT.
    pub async fn start(config: &DhtConfig) -> Result<Self, DhtError> {
        let mut b = mainline::Dht::builder();
        if let Some(listen) = config.listen {
            let SocketAddr::V4(v4) = listen else {
                return Err(DhtError::NotIpv4(listen));
            };
            b.bind_address(*v4.ip()).port(v4.port());
        }
        if config.public {
            if !config.bootstrap.is_empty() {
                let mut all: Vec<String> = mainline::DEFAULT_BOOTSTRAP_NODES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                all.extend(config.bootstrap.iter().cloned());
                b.bootstrap(&all);
            }
        } else if config.bootstrap.is_empty() {
            b.no_bootstrap();
        } else {
            b.bootstrap(&config.bootstrap);
        }
        if config.server {
            b.server_mode();
        }
        let dht = b.build().map_err(|source| DhtError::Bind {
            addr: config
                .listen
                .map_or_else(|| "0.0.0.0:0".to_owned(), |a| a.to_string()),
            source,
        })?;
        let dht = dht.as_async();
        let local = dht.info().await.local_addr();
        Ok(Self { dht, local })
    }

    /// Where its UDP socket is bound.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.local)
    }

    /// `udp://ADDR`, as printed when it starts.
    pub fn url(&self) -> String {
        format!("udp://{}", self.local)
    }

    /// Waits for the first lookup of its own neighbourhood to finish;
    /// whether it found any node.
    pub async fn bootstrapped(&self) -> bool {
        self.dht.bootstrapped().await
    }

    /// How many nodes it knows now.
    pub async fn known_nodes(&self) -> usize {
        self.dht.to_bootstrap().await.len()
    }

    /// Publishes `name` and `addrs` as the address item of the key whose
    /// secret seed is `seed` (newer than any item it finds there).
    pub async fn publish(
        &self,
        seed: &[u8; 32],
        name: &str,
        addrs: &[String],
    ) -> Result<(), DhtError> {
        let key = mainline::SigningKey::from_bytes(seed);
        let value = encode(name, addrs)?;
        let public = key.verifying_key().to_bytes();
        // The whole lookup, not the first answers: a put of a target whose
        // get is still under way in mainline does not store.
        let previous = self
            .dht
            .get_mutable_most_recent(&public, Some(ADDRS_SALT))
            .await
            .map(|p| p.seq());
        // Newer than anything stored, even with a clock that went back.
        let seq = previous.map_or(now_millis(), |p| now_millis().max(p + 1));
        let cas = previous;
        let item = MutableItem::new(key, &value, seq, Some(ADDRS_SALT));
        self.dht
            .put_mutable(item, cas)
            .await
            .map(|_| ())
            .map_err(|e| DhtError::Put(e.to_string()))
    }

    /// The addresses `peer` published, if the DHT has a fresh item: the
    /// newest found within [`ANSWER_GRACE`] of the first, or by the end
    /// of the lookup.
    pub async fn resolve(&self, peer: &PeerId) -> Option<Found> {
        let mut items = self
            .dht
            .get_mutable(peer.as_bytes(), Some(ADDRS_SALT), None);
        let mut deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        let mut best: Option<(i64, Found)> = None;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, items.next()).await {
            let Some(found) = decode(peer, item.value(), item.seq()) else {
                tracing::debug!(peer = %peer.short(), "the DHT holds an address item for this peer that is garbled or stale");
                continue;
            };
            if best.is_none() {
                deadline = deadline.min(tokio::time::Instant::now() + ANSWER_GRACE);
            }
            if best.as_ref().is_none_or(|(seq, _)| item.seq() > *seq) {
                best = Some((item.seq(), found));
            }
        }
        best.map(|(_, f)| f)
    }

    /// Announces that the node listening on `port` (at the address the
    /// DHT sees this socket at) provides `cid`.
    pub async fn announce(&self, cid: &ContentId, port: u16) -> Result<(), DhtError> {
        self.dht
            .announce_peer(info_hash(cid), Some(port))
            .await
            .map(|_| ())
            .map_err(|e| DhtError::Put(e.to_string()))
    }

    /// The addresses announced as providers of `cid`, at most
    /// [`MAX_PROVIDERS`]: those that arrive within [`ANSWER_GRACE`] of the
    /// first, or by the end of the lookup (at most [`LOOKUP_TIMEOUT`]).
    pub async fn providers(&self, cid: &ContentId) -> Vec<SocketAddr> {
        let mut found: Vec<SocketAddr> = Vec::new();
        let mut stream = self.dht.get_peers(info_hash(cid));
        let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        let mut deadline = deadline;
        while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, stream.next()).await {
            if found.is_empty() && !batch.is_empty() {
                deadline = deadline.min(tokio::time::Instant::now() + ANSWER_GRACE);
            }
            for a in batch {
                let a = SocketAddr::V4(a);
                if a.port() != 0 && !a.ip().is_unspecified() && !found.contains(&a) {
                    found.push(a);
                }
            }
            if found.len() >= MAX_PROVIDERS {
                found.truncate(MAX_PROVIDERS);
                break;
            }
        }
        found
    }
}

/// The BEP-5 info-hash under which the providers of `cid` announce:
/// 20 bytes of a BLAKE3 key derived for this use, so it is neither a
/// BitTorrent info-hash nor the content id itself.
pub fn info_hash(cid: &ContentId) -> Id {
    let h = blake3::derive_key("shoal dht provider v1", cid.as_bytes());
    let mut id = [0u8; 20];
    id.copy_from_slice(&h[..20]);
    Id::from_bytes(id).unwrap_or_else(|_| Id::random())
}

/// The item value for `name` and `addrs`: as many addresses as fit.
pub fn encode(name: &str, addrs: &[String]) -> Result<Vec<u8>, DhtError> {
    let mut kept: Vec<String> = addrs.iter().take(MAX_ADDRS).cloned().collect();
    loop {
        let v = PeerAddrs {
            v: 1,
            name: name.to_owned(),
            addrs: kept.clone(),
        };
        let json = serde_json::to_vec(&v).map_err(|e| DhtError::TooLarge(e.to_string()))?;
        if json.len() <= MAX_VALUE {
            return Ok(json);
        }
        if kept.pop().is_none() {
            return Err(DhtError::TooLarge(format!(
                "a name of {} bytes does not fit in a DHT item; pick a shorter --name",
                name.len()
            )));
        }
    }
}

/// Reads an item value: only version 1, only valid socket addresses, a
/// safe name, not older than [`ITEM_LIFETIME`].
pub fn decode(peer: &PeerId, value: &[u8], seq: i64) -> Option<Found> {
    let v: PeerAddrs = serde_json::from_slice(value).ok()?;
    if v.v != 1 {
        return None;
    }
    let age = Duration::from_millis(now_millis().saturating_sub(seq).max(0) as u64);
    if age > ITEM_LIFETIME {
        return None;
    }
    let addrs: Vec<String> = v
        .addrs
        .into_iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast())
        .take(MAX_ADDRS)
        .map(|a| a.to_string())
        .collect();
    if addrs.is_empty() {
        return None;
    }
    let name = if shoal_core::wire::validate_name(&v.name).is_ok() {
        v.name
    } else {
        peer.short()
    };
    Some(Found { name, addrs, age })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::Identity;

    fn peer() -> PeerId {
        Identity::from_seed([3; 32]).peer_id()
    }

    #[test]
    fn an_item_round_trips_and_bad_parts_are_dropped() {
        let v = encode("alice", &["127.0.0.1:5001".into(), "[::1]:5001".into()]).unwrap();
        let f = decode(&peer(), &v, now_millis()).unwrap();
        assert_eq!(f.name, "alice");
        assert_eq!(f.addrs, ["127.0.0.1:5001", "[::1]:5001"]);

        let hostile = br#"{"v":1,"name":"\u001b[31mred","addrs":["evil.example:1","0.0.0.0:5","127.0.0.1:0","10.0.0.1:7"]}"#;
        let f = decode(&peer(), hostile, now_millis()).unwrap();
        assert_eq!(f.name, peer().short());
        assert_eq!(f.addrs, ["10.0.0.1:7"]);
    }

    #[test]
    fn stale_garbled_and_unknown_versions_are_nothing() {
        let v = encode("alice", &["127.0.0.1:5001".into()]).unwrap();
        let old = now_millis() - ITEM_LIFETIME.as_millis() as i64 - 1000;
        assert!(decode(&peer(), &v, old).is_none());
        assert!(decode(&peer(), b"not json", now_millis()).is_none());
        assert!(
            decode(
                &peer(),
                br#"{"v":2,"name":"a","addrs":["127.0.0.1:1"]}"#,
                now_millis()
            )
            .is_none()
        );
        assert!(decode(&peer(), br#"{"v":1,"name":"a","addrs":[]}"#, now_millis()).is_none());
    }

    #[test]
    fn what_does_not_fit_is_cut_to_fit() {
        let many: Vec<String> = (0..50)
            .map(|i| format!("[2001:db8::{i:x}]:65535"))
            .collect();
        let v = encode("a", &many).unwrap();
        assert!(v.len() <= MAX_VALUE);
        let f = decode(&peer(), &v, now_millis()).unwrap();
        assert_eq!(f.addrs.len(), MAX_ADDRS);
    }

    #[test]
    fn info_hashes_differ_per_content_and_from_the_id() {
        let a = ContentId::from_bytes([1; 32]);
        let b = ContentId::from_bytes([2; 32]);
        assert_ne!(info_hash(&a), info_hash(&b));
        assert_eq!(info_hash(&a), info_hash(&a));
        assert_ne!(&info_hash(&a).as_bytes()[..], &a.as_bytes()[..20]);
    }

    /// A private DHT on 127.0.0.1: a peer's item and a provider
    /// announcement are found by another node.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_private_dht_carries_addresses_and_providers() {
        let first = Dht::start(&DhtConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            server: true,
            ..Default::default()
        })
        .await
        .unwrap();
        assert_ne!(first.local_addr().port(), 0);
        let boot = vec![first.local_addr().to_string()];
        let mut others = Vec::new();
        for _ in 0..3 {
            others.push(
                Dht::start(&DhtConfig {
                    listen: Some("127.0.0.1:0".parse().unwrap()),
                    bootstrap: boot.clone(),
                    server: true,
                    ..Default::default()
                })
                .await
                .unwrap(),
            );
        }
        let client = DhtConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            bootstrap: boot.clone(),
            ..Default::default()
        };
        let a = Dht::start(&client).await.unwrap();
        let b = Dht::start(&client).await.unwrap();
        assert!(a.bootstrapped().await);
        assert!(b.bootstrapped().await);

        let id = Identity::from_seed([7; 32]);
        a.publish(&id.secret_seed(), "alice", &["127.0.0.1:4000".into()])
            .await
            .unwrap();
        let found = b.resolve(&id.peer_id()).await.unwrap();
        assert_eq!(found.addrs, ["127.0.0.1:4000"]);
        // A newer item wins.
        a.publish(&id.secret_seed(), "alice", &["127.0.0.1:4001".into()])
            .await
            .unwrap();
        assert_eq!(
            b.resolve(&id.peer_id()).await.unwrap().addrs,
            ["127.0.0.1:4001"]
        );
        assert!(
            b.resolve(&Identity::from_seed([8; 32]).peer_id())
                .await
                .is_none()
        );

        // Forged items are refused by the nodes that would store them: one
        // under alice's key signed by someone else, newer than hers.
        let value = encode("alice", &["10.6.6.6:1".into()]).unwrap();
        let mallory = mainline::SigningKey::from_bytes(&[9; 32]);
        let signable =
            mainline::MutableItem::new(mallory, &value, now_millis() + 10_000, Some(ADDRS_SALT));
        let forged = MutableItem::new_signed_unchecked(
            id.peer_id().as_bytes().to_owned(),
            *signable.signature(),
            &value,
            signable.seq(),
            Some(ADDRS_SALT),
        );
        let _ = a.dht.put_mutable(forged, None).await;
        let garbage = MutableItem::new_signed_unchecked(
            id.peer_id().as_bytes().to_owned(),
            [7; 64],
            &value,
            now_millis() + 20_000,
            Some(ADDRS_SALT),
        );
        let _ = a.dht.put_mutable(garbage, None).await;
        assert_eq!(
            b.resolve(&id.peer_id()).await.unwrap().addrs,
            ["127.0.0.1:4001"],
            "only alice's own item counts"
        );

        let cid = ContentId::from_bytes([5; 32]);
        a.announce(&cid, 4001).await.unwrap();
        let providers = b.providers(&cid).await;
        assert_eq!(providers, ["127.0.0.1:4001".parse::<SocketAddr>().unwrap()]);
        assert!(
            b.providers(&ContentId::from_bytes([6; 32]))
                .await
                .is_empty()
        );
    }
}
