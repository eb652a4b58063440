//! Being reached from outside: router port mapping (`--port-mapping`),
//! the tracker's dial-back (a probe), and a relay for a node nobody can
//! dial (`--relay`, or the relays a tracker advertises).
//!
//! The node registers, in this order: the external address its gateway
//! mapped, its own addresses, and `relay://HOST:PORT` while it keeps a
//! connection to a relay. Each change re-registers at once. A downloader
//! dials direct addresses first, then relays (see [`crate::peer_client`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_core::wire::{MAX_ADDRS, RELAY_SCHEME, Reach};
use shoal_core::{Identity, PeerId};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::server::Conns;
use crate::tracker_client::TrackerClient;

/// How long a mapping is leased for; renewed at half of it.
pub const MAPPING_LEASE: Duration = Duration::from_secs(3600);
/// How often reachability is checked again while nothing changes.
const REPROBE_EVERY: Duration = Duration::from_secs(600);
/// Longest wait between attempts at a relay, or at a port mapping.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Longest wait between port mapping attempts after no gateway answered.
const MAPPING_RETRY: Duration = Duration::from_secs(300);
/// How long a node waits for a tracker to take its registration before
/// it uses a relay it was given without a probe.
const UNDECIDED_WAIT: Duration = Duration::from_secs(10);
/// Relays taken from one tracker's answer.
const MAX_ADVERTISED: usize = 4;
/// Pipes from a relay served at once.
const MAX_RELAYED: usize = 128;

/// Where the node stands on being reached, for the apps and `-v`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reachability {
    /// What the last probe found (direct or unreachable); `None` before
    /// one answered (or with no tracker).
    pub probed: Option<Reach>,
    /// The address the gateway forwards, when port mapping works.
    pub mapped: Option<String>,
    /// The relay this node keeps a connection to, if any.
    pub relay: Option<String>,
}

impl Reachability {
    /// How others reach this node: direct if the probe said so, relayed
    /// while it holds a relay, else what the probe said.
    pub fn reach(&self) -> Option<Reach> {
        match (self.probed, &self.relay) {
            (Some(Reach::Direct), _) => Some(Reach::Direct),
            (_, Some(_)) => Some(Reach::Relayed),
            (p, None) => p,
        }
    }

    /// The addresses to register, given the node's own.
    pub fn addrs(&self, own: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self.mapped.iter().cloned().collect();
        for a in own {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out.truncate(MAX_ADDRS - usize::from(self.relay.is_some()));
        out.extend(self.relay.iter().cloned());
        out
    }
}

/// A relay as written in addresses: `relay://HOST:PORT`.
pub fn relay_url(relay: &str) -> String {
    if relay.starts_with(RELAY_SCHEME) {
        relay.to_owned()
    } else {
        format!("{RELAY_SCHEME}{relay}")
    }
}

/// Keeps `port` mapped on the gateway while the node runs, and removes
/// the mapping when `shutdown` fires.
pub(crate) async fn keep_mapped(
    port: u16,
    state: watch::Sender<Reachability>,
    shutdown: CancellationToken,
) {
    let mut wait = Duration::from_secs(5);
    let mut warned = false;
    loop {
        let attempt = tokio::select! {
            m = shoal_portmap::map(port, MAPPING_LEASE) => m,
            () = shutdown.cancelled() => return,
        };
        match attempt {
            Ok(mut m) => {
                tracing::info!(
                    protocol = m.protocol(),
                    external = %m.external,
                    "the router forwards {} to this node",
                    m.external
                );
                warned = false;
                wait = Duration::from_secs(5);
                state.send_modify(|s| s.mapped = Some(m.external.to_string()));
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(m.renew_in()) => {
                            if let Err(e) = m.renew().await {
                                tracing::warn!(error = %e, "port mapping lapsed; mapping again");
                                break;
                            }
                            tracing::debug!(external = %m.external, "port mapping renewed");
                        }
                        () = shutdown.cancelled() => {
                            match tokio::time::timeout(Duration::from_secs(3), m.remove()).await {
                                Ok(Ok(())) => tracing::info!("port mapping removed from the router"),
                                Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove the port mapping; it lapses with its lease"),
                                Err(_) => tracing::warn!("the router did not answer the removal of the port mapping; it lapses with its lease"),
                            }
                            state.send_modify(|s| s.mapped = None);
                            return;
                        }
                    }
                }
                state.send_modify(|s| s.mapped = None);
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "port mapping: no router mapped the port; will keep trying (a relay can still reach this node)");
                    warned = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return,
                }
                wait = (wait * 4).min(MAPPING_RETRY);
            }
        }
    }
}

/// What the reach task needs.
pub(crate) struct Reaching {
    pub identity: Arc<Identity>,
    pub trackers: Vec<TrackerClient>,
    /// Relays given by the user (`--relay`).
    pub relays: Vec<String>,
    pub state: watch::Sender<Reachability>,
    /// The addresses last registered with any tracker.
    pub registered: watch::Receiver<Vec<String>>,
    pub conns: Conns,
}

/// Checks reachability whenever the registered direct addresses change
/// (and now and then), and keeps a relay while the node is not reachable.
pub(crate) async fn keep_reachable(r: Reaching, shutdown: CancellationToken) {
    let Reaching {
        identity,
        trackers,
        relays,
        state,
        mut registered,
        conns,
    } = r;
    let mut relay: Option<RelayTask> = None;
    let direct = |a: &Vec<String>| -> Vec<String> {
        a.iter()
            .filter(|a| !a.starts_with(RELAY_SCHEME))
            .cloned()
            .collect()
    };
    let mut probed_for: Option<Vec<String>> = None;
    // No tracker took a registration within a while: decide without a probe.
    let mut waited = false;
    loop {
        let now = direct(&registered.borrow_and_update());
        let mut candidates = relays.clone();
        let mut reach = None;
        if trackers.is_empty() {
            // No tracker to ask: a relay, if given, is the safe way.
        } else if !now.is_empty() {
            let probed = tokio::select! {
                p = probe(&trackers, identity.peer_id()) => p,
                () = shutdown.cancelled() => return leave(&mut relay).await,
            };
            if let Some((p, t)) = probed {
                tracing::info!(
                    tracker = t,
                    reach = p.reach.as_str(),
                    "reachability checked by the tracker"
                );
                reach = Some(if p.addrs.iter().any(|a| a.reachable) {
                    Reach::Direct
                } else {
                    Reach::Unreachable
                });
                // What a tracker advertises is checked like any address
                // it sends: a relay address, at most a few.
                let advertised = p
                    .relays
                    .iter()
                    .filter(|r| shoal_core::wire::PeerAddr::parse(r).is_ok_and(|a| a.is_relay()));
                for r in advertised.take(MAX_ADVERTISED) {
                    if !candidates.contains(r) {
                        candidates.push(r.clone());
                    }
                }
            }
            probed_for = Some(now.clone());
        }
        if reach.is_some() || trackers.is_empty() {
            state.send_if_modified(|s| {
                let changed = s.probed != reach;
                s.probed = reach;
                changed
            });
        }
        // With trackers, nothing is decided before the first probe (or its failure).
        let decided = trackers.is_empty() || probed_for.is_some() || waited;
        let want_relay = reach != Some(Reach::Direct) && !candidates.is_empty();
        match (&relay, want_relay) {
            _ if !decided => {}
            (Some((_, _, list)), true) if *list == candidates => {}
            (_, true) => {
                leave(&mut relay).await;
                let stop = shutdown.child_token();
                let task = tokio::spawn(keep_relay(
                    candidates.clone(),
                    identity.clone(),
                    state.clone(),
                    conns.clone(),
                    stop.clone(),
                ));
                relay = Some((stop, task, candidates));
            }
            (Some(_), false) => {
                tracing::info!("reachable directly; leaving the relay");
                leave(&mut relay).await;
            }
            (None, false) => {}
        }
        // Wait for the registered direct addresses to change, or a while.
        let until = tokio::time::Instant::now()
            + if decided {
                REPROBE_EVERY
            } else {
                UNDECIDED_WAIT
            };
        waited = true;
        loop {
            tokio::select! {
                r = registered.changed() => {
                    if r.is_err() { break; }
                    if probed_for.as_ref() != Some(&direct(&registered.borrow())) { break; }
                }
                () = tokio::time::sleep_until(until) => break,
                () = shutdown.cancelled() => return leave(&mut relay).await,
            }
        }
    }
}

/// The task keeping a relay: what stops it, and the relays it was given.
type RelayTask = (CancellationToken, tokio::task::JoinHandle<()>, Vec<String>);

/// Stops the relay task, if one runs, and waits for it.
async fn leave(relay: &mut Option<RelayTask>) {
    if let Some((stop, task, _)) = relay.take() {
        stop.cancel();
        let _ = task.await;
    }
}

/// The first tracker's answer to a probe of `me`.
async fn probe(trackers: &[TrackerClient], me: PeerId) -> Option<(shoal_core::wire::Probe, &str)> {
    for t in trackers {
        match t.once().probe(me).await {
            Ok(p) => return Some((p, t.url())),
            Err(e) => tracing::debug!(tracker = t.url(), error = %e, "reachability check failed"),
        }
    }
    None
}

/// Keeps a listening connection to one of `relays` (the next one when a
/// relay fails), serving each pipe it invites with `conns`.
async fn keep_relay(
    relays: Vec<String>,
    identity: Arc<Identity>,
    state: watch::Sender<Reachability>,
    conns: Conns,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_RELAYED));
    let mut wait = Duration::from_secs(1);
    let mut i = 0usize;
    loop {
        let relay = relay_url(&relays[i % relays.len()]);
        i += 1;
        let listening = tokio::select! {
            l = shoal_relay::client::listen(&relay, &identity) => l,
            () = shutdown.cancelled() => break,
        };
        match listening {
            Ok(mut l) => {
                tracing::info!(relay = %relay, "reachable through the relay");
                wait = Duration::from_secs(1);
                state.send_modify(|s| s.relay = Some(relay.clone()));
                let remote = shoal_relay::client::host_port(&relay)
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                loop {
                    let token = tokio::select! {
                        t = l.invite() => t,
                        () = shutdown.cancelled() => break,
                    };
                    let token = match token {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the relay; reconnecting");
                            break;
                        }
                    };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::debug!("too many relayed connections; declining one");
                        continue;
                    };
                    let (relay, identity, conns) = (relay.clone(), identity.clone(), conns.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        match shoal_relay::client::accept(&relay, &identity, token).await {
                            Ok(s) => {
                                let io =
                                    shoal_net::Guarded::new(s, crate::server::LIMITS.write_stall);
                                conns.serve(io, remote).await;
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "cannot take a relayed connection")
                            }
                        }
                    });
                }
                state.send_modify(|s| s.relay = None);
                if shutdown.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(relay = %relay, error = %e, "cannot use the relay; trying again")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => break,
        }
        wait = (wait * 2).min(MAX_RETRY);
    }
    state.send_modify(|s| s.relay = None);
}
