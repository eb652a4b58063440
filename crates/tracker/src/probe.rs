//! Dialling a peer back (`POST /v1/peers/{id}/probe`): is it reachable
//! from outside at the addresses it registered? The tracker tries each
//! direct address with a [`Prober`] (the `shoal` binary gives one that
//! runs a TLS handshake and checks the key the peer proves), keeps the
//! answer for a while, and shows it in listings as `reach`.
//!
//! Bounded: one probe per peer per [`MIN_INTERVAL`] (a repeat gets the
//! kept answer), [`MAX_CONCURRENT`] at once, each address within
//! [`ADDR_TIMEOUT`]; at most [`MAX_KEPT`] answers kept.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_core::PeerId;
use shoal_core::wire::{PeerAddr, ProbedAddr, Reach};
use tokio::time::Instant;

/// Repeats within this time get the kept answer.
pub const MIN_INTERVAL: Duration = Duration::from_secs(20);
/// Probes running at once; more get 503.
pub const MAX_CONCURRENT: usize = 32;
/// Longest one address may take to answer.
pub const ADDR_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers kept (the oldest go first beyond it).
pub const MAX_KEPT: usize = 100_000;
/// How long an answer is shown in listings.
const KEPT_FOR: Duration = Duration::from_secs(3600);

/// Checks whether `peer` answers at `addr`, proving its key.
pub trait Prober: Send + Sync {
    /// True when it does.
    fn probe<'a>(
        &'a self,
        peer: PeerId,
        addr: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

#[derive(Clone)]
struct Kept {
    /// The direct addresses probed.
    direct: Vec<String>,
    results: Vec<ProbedAddr>,
    at: Instant,
}

/// The probes' answers and their bounds.
pub(crate) struct Probes {
    prober: Option<Arc<dyn Prober>>,
    kept: Mutex<HashMap<PeerId, Kept>>,
    running: Arc<tokio::sync::Semaphore>,
}

/// Why a probe gave no answer.
pub(crate) enum ProbeError {
    /// This tracker has no prober.
    Unsupported,
    /// Too many probes at once.
    Busy,
}

/// The direct addresses among `addrs`.
pub(crate) fn direct(addrs: &[String]) -> Vec<String> {
    addrs
        .iter()
        .filter(|a| PeerAddr::parse(a).is_ok_and(|p| !p.is_relay()))
        .cloned()
        .collect()
}

fn has_relay(addrs: &[String]) -> bool {
    addrs
        .iter()
        .any(|a| PeerAddr::parse(a).is_ok_and(|p| p.is_relay()))
}

fn reach_of(results: &[ProbedAddr], addrs: &[String]) -> Reach {
    if results.iter().any(|r| r.reachable) {
        Reach::Direct
    } else if has_relay(addrs) {
        Reach::Relayed
    } else {
        Reach::Unreachable
    }
}

impl Probes {
    pub(crate) fn new(prober: Option<Arc<dyn Prober>>) -> Self {
        Self {
            prober,
            kept: Mutex::default(),
            running: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the last probe of `peer` found, if it is recent and was of
    /// the addresses it has now.
    pub(crate) fn reach(&self, peer: PeerId, addrs: &[String]) -> Option<Reach> {
        let kept = self.kept();
        let k = kept.get(&peer)?;
        (k.at.elapsed() < KEPT_FOR && k.direct == direct(addrs))
            .then(|| reach_of(&k.results, addrs))
    }

    /// Dials `peer` back at its direct `addrs` (or answers from a probe
    /// made moments ago).
    pub(crate) async fn probe(
        &self,
        peer: PeerId,
        addrs: &[String],
    ) -> Result<(Reach, Vec<ProbedAddr>), ProbeError> {
        let prober = self.prober.clone().ok_or(ProbeError::Unsupported)?;
        let now_direct = direct(addrs);
        if let Some(k) = self.kept().get(&peer)
            && k.direct == now_direct
            && k.at.elapsed() < MIN_INTERVAL
        {
            return Ok((reach_of(&k.results, addrs), k.results.clone()));
        }
        let _permit = self
            .running
            .clone()
            .try_acquire_owned()
            .map_err(|_| ProbeError::Busy)?;
        let mut set = tokio::task::JoinSet::new();
        for (i, a) in now_direct.iter().enumerate() {
            let (prober, a) = (prober.clone(), a.clone());
            set.spawn(async move {
                let ok = tokio::time::timeout(ADDR_TIMEOUT, prober.probe(peer, &a))
                    .await
                    .unwrap_or(false);
                (i, ok)
            });
        }
        let mut results: Vec<ProbedAddr> = now_direct
            .iter()
            .map(|a| ProbedAddr {
                addr: a.clone(),
                reachable: false,
            })
            .collect();
        while let Some(r) = set.join_next().await {
            if let Ok((i, ok)) = r {
                results[i].reachable = ok;
            }
        }
        let mut kept = self.kept();
        if kept.len() >= MAX_KEPT {
            let cutoff = Instant::now() - MIN_INTERVAL.min(KEPT_FOR);
            kept.retain(|_, k| k.at > cutoff);
            if kept.len() >= MAX_KEPT {
                return Ok((reach_of(&results, addrs), results));
            }
        }
        kept.insert(
            peer,
            Kept {
                direct: now_direct,
                results: results.clone(),
                at: Instant::now(),
            },
        );
        Ok((reach_of(&results, addrs), results))
    }
}
