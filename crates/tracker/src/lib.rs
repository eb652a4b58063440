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
//! | `GET /healthz` | | 200 `ok` |
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
//! Errors are `{"error": "..."}` with 400 (malformed), 401 (token), 403
//! (signature), 404, 409 (replayed or stale message), 413 (body too large).
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
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use api::router;
use axum::response::IntoResponse;
use store::{MemoryStore, Store};
use tokio::net::TcpListener;

/// How a tracker behaves.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Longest TTL granted to a registration.
    pub max_ttl: Duration,
    /// Bearer token required on `/v1` (a private network), if any.
    pub token: Option<String>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_ttl: Duration::from_secs(60),
            token: None,
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

/// Serves the tracker on `listener` and the seed's discovery protocol on
/// `legacy` (see [`legacy`]), with an in-memory store, until `shutdown`.
pub async fn run_with_legacy(
    listener: TcpListener,
    legacy: TcpListener,
    config: TrackerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let book = Arc::new(legacy::LegacyBook::new(config.max_ttl));
    let store = Arc::new(MemoryStore::default());
    let legacy_task = tokio::spawn(legacy::serve(
        legacy,
        book,
        store.clone(),
        stopped(stop_rx.clone()),
    ));
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
            loop {
                tick.tick().await;
                store.sweep(tokio::time::Instant::now()).await;
            }
        })
    };
    let app = router(config, store);
    let result = serve(listener, app, shutdown).await;
    sweeper.abort();
    result
}

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 1024;
/// Time allowed for a request's headers (also closes idle keep-alives).
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// Accepts connections until `shutdown`, each with a header timeout, at
/// most [`MAX_CONNECTIONS`] at once, so slow or idle clients cannot starve
/// the others.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::ServiceExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    while let Some((tcp, remote, permit)) = next_conn(&listener, &slots, &mut shutdown).await {
        let conn_info = api::Conn::new(remote, tcp.local_addr().ok());
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(conn_info));
                    let app = app.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(app.oneshot(req).await.into_response())
                    }
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    Ok(())
}

/// The next connection, once a connection slot is free; `None` once
/// `shutdown` resolves. Failed accepts (out of file descriptors, say) are
/// logged and retried after a short pause.
pub(crate) async fn next_conn(
    listener: &TcpListener,
    slots: &Arc<tokio::sync::Semaphore>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<(
    tokio::net::TcpStream,
    std::net::SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = tokio::select! {
        p = slots.clone().acquire_owned() => p.ok()?,
        () = shutdown.as_mut() => return None,
    };
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, remote)) => return Some((tcp, remote, permit)),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
