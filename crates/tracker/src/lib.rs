//! The Shoal tracker: a phone book of peers. It never sees file data.
//!
//! # Protocol (HTTP/JSON, version 1)
//!
//! Participants are *peers* (Shoal nodes, each named by its [`PeerId`](shoal_core::PeerId), the
//! Ed25519 public key) and the *tracker*. Goals: a peer can find the
//! addresses of other peers by id or name, and the peers offering a content
//! id; nobody can register, renew, announce for or delete a peer without
//! its private key. Non-goals: the tracker does not vouch for addresses
//! (peers pin each other's keys in TLS, so a wrong address costs only a
//! failed connection) and stores nothing durable.
//!
//! | request | body | answer |
//! | --- | --- | --- |
//! | `PUT /v1/peers/{peer_id}` | [`Registration`](shoal_core::wire::Registration) | 200 [`Registered`](shoal_core::wire::Registered) |
//! | `GET /v1/peers?after=ID&limit=N` | | 200 [`PeerPage`](shoal_core::wire::PeerPage) |
//! | `GET /v1/peers/{peer_id}` | | 200 [`PeerRecord`] / 404 |
//! | `DELETE /v1/peers/{peer_id}` | [`Deregistration`](shoal_core::wire::Deregistration) | 204 |
//! | `PUT /v1/providers` | [`Announce`](shoal_core::wire::Announce) | 200 `{"providing": N}` |
//! | `GET /v1/providers/{content_id}` | | 200 [`Providers`](shoal_core::wire::Providers) |
//! | `POST /v1/peers/{peer_id}/probe` | | 200 [`Probe`](shoal_core::wire::Probe) / 404 / 501 / 503 |
//! | `GET /healthz` | | 200 `ok` / 503 why the store does not answer |
//! | `GET /metrics` | | 200 Prometheus text |
//!
//! Signed messages carry `ts`, Unix **milliseconds**; the tracker accepts a
//! `ts` within five minutes of its own clock and only newer than the last
//! one it accepted from that peer, so a captured message cannot be replayed.
//! A registration lives for `min(ttl, --ttl)` seconds; re-registering is the
//! heartbeat. Addresses whose host is empty or unspecified (`:7000`,
//! `0.0.0.0:7000`) are filled with the address the request came from. A
//! loopback address (a peer on the tracker's own machine) is shown to
//! callers from other machines as the tracker address they connected to.
//! When the tracker was started with `--token`, every `/v1` request needs
//! `Authorization: Bearer TOKEN`.
//!
//! A probe dials the peer back at its direct addresses (see [`probe`]) and
//! says whether it answered there, proving its key; listings then carry
//! `reach` (`direct`, `relayed`, `unreachable`) for a peer probed lately,
//! and the answer names the relays this tracker advertises (`--relay`).
//!
//! Errors are `{"error": "..."}` with 400 (malformed), 401 (token), 403
//! (signature), 404, 409 (replayed or stale message), 413 (body too large),
//! 503 (the store does not answer; see [`store`]).
//!
//! Replicas: trackers sharing one [`store::RedisStore`] are one tracker to
//! their clients. `GET /v1/peers` pages follow the store's order (the
//! `next` id is the cursor), which stays valid while peers come and go.
//!
//! ```text
//! → PUT /v1/peers/mfrg…  {"peer_id":"mfrg…","name":"alice","addrs":[":7001"],"ttl":60,"ts":1764100000000,"sig":"…"}
//! ← 200 {"ttl":60,"addrs":["127.0.0.1:7001"],"providing":0}
//! → PUT /v1/providers    {"peer_id":"mfrg…","content_ids":["af13…"],"ts":1764100000001,"sig":"…"}
//! ← 200 {"providing":1}
//! → GET /v1/providers/af13…
//! ← 200 {"content_id":"af13…","peers":[{"peer_id":"mfrg…","name":"alice","addrs":["127.0.0.1:7001"],"expires_in":59}]}
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod api;
pub mod legacy;
mod metrics;
pub mod probe;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use api::router;
use store::{MemoryStore, Store};
use tokio::net::TcpListener;

/// How a tracker behaves.
#[derive(Clone)]
pub struct TrackerConfig {
    /// Longest TTL granted to a registration.
    pub max_ttl: Duration,
    /// Bearer token required on `/v1` (a private network), if any.
    pub token: Option<String>,
    /// Relays advertised to peers that cannot be reached
    /// (`relay://HOST:PORT`; an unspecified host is the tracker's own).
    pub relays: Vec<String>,
    /// How peers are dialled back on a probe (`None`: probes get 501).
    pub prober: Option<Arc<dyn probe::Prober>>,
}

impl std::fmt::Debug for TrackerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerConfig")
            .field("max_ttl", &self.max_ttl)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("relays", &self.relays)
            .field("prober", &self.prober.is_some())
            .finish()
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_ttl: Duration::from_secs(60),
            token: None,
            relays: Vec::new(),
            prober: None,
        }
    }
}

/// Serves the tracker on `listener` with an in-memory store until
/// `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: TrackerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_store(listener, config, Arc::new(MemoryStore::default()), shutdown).await
}

/// Serves the tracker on `listener` (and the seed's discovery protocol on
/// `legacy`, if given) over `store` until `shutdown`.
pub async fn run_full<S: Store>(
    listener: TcpListener,
    legacy: Option<TcpListener>,
    config: TrackerConfig,
    store: Arc<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(legacy) = legacy else {
        return run_with_store(listener, config, store, shutdown).await;
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let book = Arc::new(legacy::LegacyBook::new(config.max_ttl));
    // The legacy protocol has no authentication: a private tracker never
    // hands its nodes' addresses to it, only what legacy clients registered.
    let nodes = if config.token.is_some() {
        None
    } else {
        Some(store.clone())
    };
    let legacy_task = tokio::spawn(legacy::serve(legacy, book, nodes, stopped(stop_rx.clone())));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let result = run_with_store(listener, config, store, stopped(stop_rx)).await;
    let _ = legacy_task.await;
    result
}

/// Serves the tracker on `listener` with the given store.
pub async fn run_with_store<S: Store>(
    listener: TcpListener,
    config: TrackerConfig,
    store: Arc<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let mut down = false;
            loop {
                tick.tick().await;
                // Said once when the store goes and once when it returns,
                // not every five seconds.
                match store.sweep(tokio::time::Instant::now()).await {
                    Ok(()) if down => {
                        down = false;
                        tracing::info!(store = %store.describe(), "the store answers again");
                    }
                    Err(e) if !down => {
                        down = true;
                        tracing::error!(error = %e, "the store is unavailable: lookups and registrations answer 503 until it returns");
                    }
                    _ => {}
                }
            }
        })
    };
    let app = router(config, store);
    let result = serve(listener, app, shutdown).await;
    sweeper.abort();
    result
}

/// What the tracker's listener allows (see [`shoal_net`]).
pub const LIMITS: shoal_net::Limits = shoal_net::Limits {
    max_connections: 4096,
    per_client: 256,
    header_timeout: Duration::from_secs(20),
    write_stall: Duration::from_secs(20),
    min_body_rate: 1024,
    body_grace: Duration::from_secs(5),
};

/// Accepts connections until `shutdown`, within [`LIMITS`], so slow, idle
/// or greedy clients cannot starve the others; drains them before it
/// returns.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = cancel_on(shutdown);
    let conn_stop = stop.clone();
    shoal_net::serve(listener, LIMITS, stop, move |tcp, remote| {
        let conn_info = api::Conn::new(remote, tcp.get_ref().local_addr().ok());
        let tag = move |ext: &mut axum::http::Extensions| {
            ext.insert(axum::extract::ConnectInfo(conn_info));
        };
        let (app, stop) = (app.clone(), conn_stop.clone());
        async move {
            let _ = shoal_net::serve_http(tcp, app, LIMITS, tag, stop).await;
        }
    })
    .await;
    Ok(())
}

/// A token cancelled once `shutdown` resolves.
pub(crate) fn cancel_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        t.cancel();
    });
    token
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
