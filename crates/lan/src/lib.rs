//! Shoal on the local network: a node announces itself over mDNS (DNS-SD
//! service [`SERVICE`]) and others on the LAN find it with no tracker.
//!
//! # What goes on the wire
//!
//! A service instance named by the peer id, on the node's port, with the
//! node's interface addresses and a TXT record `v=1`, `id=<peer id>`,
//! `name=<name>`. Everyone on the LAN segment sees it. An answer is only a
//! hint about *where* a peer is: anyone can announce any id, so the
//! peers' TLS pin decides who answers there.
//!
//! # Bounds
//!
//! At most [`MAX_PEERS`] peers are kept (the least recently seen go
//! first), each forgotten [`LIFETIME`] after it was last heard. A flood
//! of announcements ([`FLOOD`] new instances since the last reset) restarts
//! the mDNS daemon, which drops its record cache, so the memory a flood
//! can take stays bounded however long it lasts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use shoal_core::PeerId;

/// The DNS-SD service type.
pub const SERVICE: &str = "_shoal._tcp.local.";
/// Most peers kept.
pub const MAX_PEERS: usize = 256;
/// How long a peer is kept after it was last heard.
pub const LIFETIME: Duration = Duration::from_secs(150);
/// New peers (or malformed announcements) heard since the daemon
/// started that make it restart: four times what is kept.
pub const FLOOD: usize = 4 * MAX_PEERS;
/// Most addresses kept per peer.
pub const MAX_ADDRS: usize = 8;

/// The LAN could not be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot use the local network (mDNS): {0}; turn --lan off, or allow multicast on UDP port 5353"
)]
pub struct LanError(String);

/// A peer heard on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanPeer {
    /// The id it claims (the TLS pin checks it).
    pub peer_id: PeerId,
    /// Its name (a safe one: a bad name becomes the short id).
    pub name: String,
    /// Where it says it listens.
    pub addrs: Vec<SocketAddr>,
}

struct Heard {
    peer: LanPeer,
    fullname: String,
    at: Instant,
}

#[derive(Default)]
struct Book {
    peers: HashMap<PeerId, Heard>,
    /// New peers and malformed announcements since the daemon (re)started.
    resolved: usize,
    /// Announcements dropped for being malformed.
    junk: u64,
}

impl Book {
    fn hear(&mut self, peer: LanPeer, fullname: String, now: Instant) {
        self.peers
            .retain(|_, h| now.duration_since(h.at) < LIFETIME);
        if !self.peers.contains_key(&peer.peer_id) && self.peers.len() >= MAX_PEERS {
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(_, h)| h.at)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.peers.remove(&id);
            }
        }
        self.peers.insert(
            peer.peer_id,
            Heard {
                peer,
                fullname,
                at: now,
            },
        );
    }

    fn forget(&mut self, fullname: &str) {
        self.peers.retain(|_, h| h.fullname != fullname);
    }
}

/// Announcing on and listening to the LAN. Dropping it stops both.
pub struct Lan {
    daemon: Arc<Mutex<ServiceDaemon>>,
    book: Arc<Mutex<Book>>,
    /// What this node announces, to announce again after a restart.
    me: Arc<Mutex<Option<ServiceInfo>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Lan {
    /// Starts listening for peers on the LAN (multicast on every
    /// interface, UDP 5353). Call it only when the user asked for the LAN.
    pub fn start() -> Result<Self, LanError> {
        Self::start_on(mdns_sd::MDNS_PORT)
    }

    fn start_on(port: u16) -> Result<Self, LanError> {
        let daemon = new_daemon(port)?;
        let events = daemon
            .browse(SERVICE)
            .map_err(|e| LanError(e.to_string()))?;
        let lan = Self {
            daemon: Arc::new(Mutex::new(daemon)),
            book: Arc::default(),
            me: Arc::default(),
            stop: Arc::default(),
        };
        let (daemon, book, me, stop) = (
            lan.daemon.clone(),
            lan.book.clone(),
            lan.me.clone(),
            lan.stop.clone(),
        );
        std::thread::Builder::new()
            .name("shoal-lan".into())
            .spawn(move || listen(events, daemon, book, me, stop, port))
            .map_err(|e| LanError(e.to_string()))?;
        Ok(lan)
    }

    /// Announces the node `peer_id` named `name`, listening on `port` on
    /// this machine's addresses.
    pub fn announce(&self, peer_id: &PeerId, name: &str, port: u16) -> Result<(), LanError> {
        let id = peer_id.to_string();
        let host = format!("{}.local.", peer_id.short());
        let props = [("v", "1"), ("id", id.as_str()), ("name", name)];
        let info = ServiceInfo::new(SERVICE, &id, &host, "", port, &props[..])
            .map_err(|e| LanError(e.to_string()))?
            .enable_addr_auto();
        lock(&self.daemon)
            .register(info.clone())
            .map_err(|e| LanError(e.to_string()))?;
        *lock(&self.me) = Some(info);
        Ok(())
    }

    /// The peers heard within [`LIFETIME`], most recently heard first.
    pub fn peers(&self) -> Vec<LanPeer> {
        let now = Instant::now();
        let book = lock(&self.book);
        let mut heard: Vec<&Heard> = book
            .peers
            .values()
            .filter(|h| now.duration_since(h.at) < LIFETIME)
            .collect();
        heard.sort_by_key(|h| std::cmp::Reverse(h.at));
        heard.into_iter().map(|h| h.peer.clone()).collect()
    }

    /// How many peers it holds now, and how many announcements it dropped
    /// as malformed.
    pub fn counts(&self) -> (usize, u64) {
        let book = lock(&self.book);
        (book.peers.len(), book.junk)
    }
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (peers, junk) = self.counts();
        f.debug_struct("Lan")
            .field("peers", &peers)
            .field("junk", &junk)
            .finish_non_exhaustive()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = lock(&self.daemon).shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_daemon(port: u16) -> Result<ServiceDaemon, LanError> {
    ServiceDaemon::new_with_port(port).map_err(|e| LanError(e.to_string()))
}

/// Reads the daemon's events until the LAN is dropped; restarts the
/// daemon after a flood.
fn listen(
    mut events: mdns_sd::Receiver<ServiceEvent>,
    daemon: Arc<Mutex<ServiceDaemon>>,
    book: Arc<Mutex<Book>>,
    me: Arc<Mutex<Option<ServiceInfo>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    port: u16,
) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        let event = match events.recv_timeout(Duration::from_millis(500)) {
            Ok(e) => e,
            Err(_) if events.is_disconnected() => return,
            Err(_) => continue,
        };
        match event {
            ServiceEvent::ServiceResolved(s) => {
                let mut b = lock(&book);
                match parse(&s) {
                    Some(peer) => {
                        if !b.peers.contains_key(&peer.peer_id) {
                            b.resolved += 1;
                        }
                        b.hear(peer, s.fullname.clone(), Instant::now());
                    }
                    None => {
                        b.resolved += 1;
                        b.junk += 1;
                    }
                }
                if b.resolved < FLOOD {
                    continue;
                }
                b.resolved = 0;
                drop(b);
                tracing::warn!(
                    "a flood of mDNS announcements on the LAN; restarting mDNS to drop them"
                );
                let Ok(fresh) = new_daemon(port) else {
                    return;
                };
                let Ok(next) = fresh.browse(SERVICE) else {
                    return;
                };
                if let Some(info) = lock(&me).clone() {
                    let _ = fresh.register(info);
                }
                let old = std::mem::replace(&mut *lock(&daemon), fresh);
                let _ = old.shutdown();
                events = next;
            }
            ServiceEvent::ServiceRemoved(_, fullname) => lock(&book).forget(&fullname),
            _ => {}
        }
    }
}

/// A resolved instance as a peer: version 1, a valid id, addresses on
/// its port.
fn parse(s: &mdns_sd::ResolvedService) -> Option<LanPeer> {
    if s.get_property_val_str("v") != Some("1") || s.port == 0 {
        return None;
    }
    let peer_id: PeerId = s.get_property_val_str("id")?.parse().ok()?;
    let name = s
        .get_property_val_str("name")
        .filter(|n| shoal_core::wire::validate_name(n).is_ok())
        .map_or_else(|| peer_id.short(), str::to_owned);
    let mut addrs: Vec<SocketAddr> = s
        .get_addresses_v4()
        .into_iter()
        .map(IpAddr::V4)
        .filter(|ip| !ip.is_unspecified() && !ip.is_multicast())
        .map(|ip| SocketAddr::new(ip, s.port))
        .collect();
    addrs.sort();
    addrs.truncate(MAX_ADDRS);
    if addrs.is_empty() {
        return None;
    }
    Some(LanPeer {
        peer_id,
        name,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::Identity;

    fn peer(seed: u8) -> LanPeer {
        LanPeer {
            peer_id: Identity::from_seed([seed; 32]).peer_id(),
            name: format!("p{seed}"),
            addrs: vec!["10.0.0.1:5000".parse().unwrap()],
        }
    }

    #[test]
    fn the_book_keeps_at_most_max_peers_and_forgets_the_oldest() {
        let mut b = Book::default();
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS + 50) {
            let mut p = peer((i % 251) as u8);
            p.peer_id = PeerId::from_bytes(blake3_like(i));
            b.hear(p, format!("n{i}"), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(b.peers.len(), MAX_PEERS);
        // The first ones heard are gone, the last ones kept.
        assert!(!b.peers.contains_key(&PeerId::from_bytes(blake3_like(0))));
        assert!(
            b.peers
                .contains_key(&PeerId::from_bytes(blake3_like(MAX_PEERS + 49)))
        );
        // Removal by instance name.
        b.forget(&format!("n{}", MAX_PEERS + 49));
        assert!(
            !b.peers
                .contains_key(&PeerId::from_bytes(blake3_like(MAX_PEERS + 49)))
        );
    }

    #[test]
    fn peers_not_heard_for_a_lifetime_expire() {
        let mut b = Book::default();
        let t0 = Instant::now();
        b.hear(peer(1), "a".into(), t0);
        b.hear(peer(2), "b".into(), t0 + LIFETIME + Duration::from_secs(1));
        assert_eq!(b.peers.len(), 1);
        assert!(b.peers.contains_key(&peer(2).peer_id));
    }

    fn blake3_like(i: usize) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        k
    }
}
