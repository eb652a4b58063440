//! HTTP handlers of the tracker API (see the crate docs for the protocol).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use shoal_core::wire::{
    Announce, Deregistration, ErrorBody, HostPort, PeerAddr, PeerPage, PeerRecord, Probe,
    Providers, Registered, Registration, Signed,
};
use shoal_core::{ContentId, PeerId};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::TrackerConfig;
use crate::metrics::{Metrics, RequestLabels};
use crate::store::{Store, StoreError, StoredPeer};

/// How far a message's `ts` may be from the tracker's clock.
const MAX_SKEW_MS: u64 = 5 * 60 * 1000;
/// Body limit of registrations and deletes.
const SMALL_BODY: usize = 16 * 1024;
/// Body limit of announces (about 60,000 content ids).
const ANNOUNCE_BODY: usize = 4 * 1024 * 1024;
/// Most content ids in one announce.
const MAX_ANNOUNCED: usize = 50_000;
/// Largest page of peers.
const MAX_PAGE: usize = 1000;

/// Both ends of a tracker connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    remote: SocketAddr,
    local: Option<SocketAddr>,
}

impl Conn {
    /// A connection from `remote` accepted on `local`.
    pub(crate) fn new(remote: SocketAddr, local: Option<SocketAddr>) -> Self {
        Self { remote, local }
    }

    /// The record as this caller can use it: peers registered from the
    /// tracker's own machine appear at the address the caller reached the
    /// tracker on.
    fn localize(&self, mut rec: PeerRecord) -> PeerRecord {
        let (Some(local), false) = (self.local, self.remote.ip().to_canonical().is_loopback())
        else {
            return rec;
        };
        for a in &mut rec.addrs {
            if let Ok(mut pa) = PeerAddr::parse(a)
                && pa
                    .host_port()
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
            {
                pa.host_port_mut().host = local.ip().to_canonical().to_string();
                *a = pa.to_string();
            }
        }
        rec
    }

    /// A relay this tracker advertises, as this caller can dial it: an
    /// unspecified host is the address the caller reached the tracker on
    /// (so is a loopback one, for a caller on another machine).
    fn relay_for(&self, relay: &str) -> Option<String> {
        let rest = relay
            .strip_prefix(shoal_core::wire::RELAY_SCHEME)
            .unwrap_or(relay);
        let mut hp = HostPort::parse(rest).ok()?;
        let loopback = hp
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if hp.is_unspecified() || (loopback && !self.remote.ip().to_canonical().is_loopback()) {
            hp.host = self.local?.ip().to_canonical().to_string();
        }
        Some(format!("{}{hp}", shoal_core::wire::RELAY_SCHEME))
    }
}

struct AppState<S> {
    config: TrackerConfig,
    store: Arc<S>,
    metrics: Metrics,
    probes: crate::probe::Probes,
}

impl<S> AppState<S> {
    /// The record as `conn` sees it, with what the last probe found.
    fn shown(&self, conn: &Conn, mut rec: PeerRecord) -> PeerRecord {
        rec.reach = self.probes.reach(rec.peer_id, &rec.addrs);
        conn.localize(rec)
    }
}

type Shared<S> = Arc<AppState<S>>;

/// An error answer: a status and a message for a person.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body is too large".into(),
            )
        } else {
            Self::bad(format!("malformed JSON body: {}", r.body_text()))
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad(r.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Stale => Self(StatusCode::CONFLICT, e.to_string()),
            StoreError::NotRegistered => Self(
                StatusCode::NOT_FOUND,
                "peer is not registered; register first".into(),
            ),
            StoreError::Quota(_) => Self(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            StoreError::Unavailable(_) => Self(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{e}; try again shortly, or another tracker"),
            ),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The tracker's routes over `store`.
pub fn router<S: Store>(config: TrackerConfig, store: Arc<S>) -> Router {
    let state = Arc::new(AppState {
        probes: crate::probe::Probes::new(config.prober.clone()),
        config,
        store,
        metrics: Metrics::new(),
    });
    let v1 = Router::new()
        .route(
            "/v1/peers/{peer_id}",
            put(put_peer::<S>)
                .get(get_peer::<S>)
                .delete(delete_peer::<S>)
                .layer(DefaultBodyLimit::max(SMALL_BODY)),
        )
        .route("/v1/peers", get(list_peers::<S>))
        .route("/v1/peers/{peer_id}/probe", post(probe_peer::<S>))
        .route(
            "/v1/providers",
            put(put_providers::<S>).layer(DefaultBodyLimit::max(ANNOUNCE_BODY)),
        )
        .route("/v1/providers/{content_id}", get(get_providers::<S>))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_token::<S>,
        ));
    Router::new()
        .merge(v1)
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), count::<S>))
        .with_state(state)
}

/// The routes, as label values (known at compile time: counting a
/// request allocates nothing).
const ROUTES: &[&str] = &[
    "/v1/peers/{peer_id}",
    "/v1/peers",
    "/v1/peers/{peer_id}/probe",
    "/v1/providers",
    "/v1/providers/{content_id}",
    "/healthz",
    "/metrics",
];

async fn count<S: Store>(State(st): State<Shared<S>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| **r == m.as_str()).copied())
        .unwrap_or("other");
    // Only methods the API knows become label values: made-up methods
    // must not mint new series.
    let method = match req.method().as_str() {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let resp = next.run(req).await;
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

async fn require_token<S: Store>(
    State(st): State<Shared<S>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &st.config.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "this tracker is private: send `Authorization: Bearer TOKEN` (shoal --tracker-token)".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn parse_peer(s: &str) -> ApiResult<PeerId> {
    s.parse()
        .map_err(|e: shoal_core::PeerIdError| ApiError::bad(e.to_string()))
}

fn check_fresh(ts: u64) -> ApiResult<()> {
    let now = crate::unix_ms();
    if now.abs_diff(ts) > MAX_SKEW_MS {
        return Err(ApiError::bad(
            "message timestamp is more than 5 minutes from the tracker's clock; check the clocks",
        ));
    }
    Ok(())
}

fn check_sig(m: &impl Signed) -> ApiResult<()> {
    m.verify().map_err(|_| {
        ApiError(
            StatusCode::FORBIDDEN,
            "signature does not match the peer id: only a peer's own key can speak for it".into(),
        )
    })
}

async fn put_peer<S: Store>(
    State(st): State<Shared<S>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Registration>, JsonRejection>,
) -> ApiResult<Json<Registered>> {
    let id = parse_peer(&path?.0)?;
    let Json(reg) = body?;
    if reg.peer_id != id {
        return Err(ApiError::bad("peer id in the path and in the body differ"));
    }
    reg.validate().map_err(ApiError::bad)?;
    check_sig(&reg)?;
    check_fresh(reg.ts)?;
    let ttl = reg.ttl.min(st.config.max_ttl.as_secs().max(1));
    let fill = |a: &String| {
        HostPort::parse(a).ok().map(|mut hp| {
            if hp.is_unspecified() {
                hp.host = conn.remote.ip().to_canonical().to_string();
            }
            hp.to_string()
        })
    };
    let fill_addr = |a: &String| match PeerAddr::parse(a) {
        Ok(PeerAddr::Relay(_)) => Some(a.clone()),
        _ => fill(a),
    };
    let addrs: Vec<String> = reg.addrs.iter().filter_map(fill_addr).collect();
    let compat = reg.compat.as_ref().and_then(fill);
    let now = Instant::now();
    let providing = st
        .store
        .put_peer(
            StoredPeer {
                peer_id: id,
                name: reg.name.clone(),
                addrs: addrs.clone(),
                ts: reg.ts,
                compat,
                expires_at: now + std::time::Duration::from_secs(ttl),
                from: Some(conn.remote.ip()),
                since: now,
            },
            now,
        )
        .await?;
    tracing::debug!(peer = %id.short(), name = %reg.name, ?addrs, ttl, "registered");
    Ok(Json(Registered {
        ttl,
        addrs,
        providing,
    }))
}

async fn get_peer<S: Store>(
    State(st): State<Shared<S>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = parse_peer(&path?.0)?;
    let now = Instant::now();
    match st.store.get_peer(id, now).await? {
        Some(p) => Ok(Json(st.shown(&conn, p.into_record(now))).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("peer {id} is not registered"),
        )),
    }
}

/// Dials a registered peer back at its direct addresses (see
/// [`crate::probe`]).
async fn probe_peer<S: Store>(
    State(st): State<Shared<S>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Probe>> {
    let id = parse_peer(&path?.0)?;
    let now = Instant::now();
    let Some(p) = st.store.get_peer(id, now).await? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("peer {id} is not registered; register first, then ask for a probe"),
        ));
    };
    let (reach, addrs) = st.probes.probe(id, &p.addrs).await.map_err(|e| match e {
        crate::probe::ProbeError::Unsupported => ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "this tracker does not dial peers back".into(),
        ),
        crate::probe::ProbeError::Busy => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many reachability checks at once; try again shortly".into(),
        ),
    })?;
    tracing::debug!(peer = %id.short(), reach = reach.as_str(), "probed");
    let relays = st
        .config
        .relays
        .iter()
        .filter_map(|r| conn.relay_for(r))
        .collect();
    Ok(Json(Probe {
        reach,
        addrs,
        relays,
    }))
}

async fn delete_peer<S: Store>(
    State(st): State<Shared<S>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Deregistration>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let id = parse_peer(&path?.0)?;
    let Json(d) = body?;
    if d.peer_id != id {
        return Err(ApiError::bad("peer id in the path and in the body differ"));
    }
    check_sig(&d)?;
    check_fresh(d.ts)?;
    st.store.remove_peer(id, d.ts, Instant::now()).await?;
    tracing::debug!(peer = %id.short(), "deregistered");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_peers<S: Store>(
    State(st): State<Shared<S>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<PeerPage>> {
    let Query(q) = q?;
    let after = q.after.as_deref().map(parse_peer).transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let now = Instant::now();
    let mut peers = st.store.list_peers(after, limit + 1, now).await?;
    let next = if peers.len() > limit {
        peers.truncate(limit);
        peers.last().map(|p| p.peer_id)
    } else {
        None
    };
    Ok(Json(PeerPage {
        peers: peers
            .into_iter()
            .map(|p| st.shown(&conn, p.into_record(now)))
            .collect(),
        next,
    }))
}

async fn put_providers<S: Store>(
    State(st): State<Shared<S>>,
    body: Result<Json<Announce>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(a) = body?;
    if a.content_ids.len() > MAX_ANNOUNCED {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_ANNOUNCED} content ids per announce"),
        ));
    }
    check_sig(&a)?;
    check_fresh(a.ts)?;
    let n = st
        .store
        .set_provided(a.peer_id, a.ts, a.content_ids, Instant::now())
        .await?;
    Ok(Json(serde_json::json!({ "providing": n })))
}

async fn get_providers<S: Store>(
    State(st): State<Shared<S>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Providers>> {
    let cid: ContentId = path?
        .0
        .parse()
        .map_err(|e: shoal_core::ContentIdError| ApiError::bad(e.to_string()))?;
    let now = Instant::now();
    let peers = st.store.providers(cid, 200, now).await?;
    Ok(Json(Providers {
        content_id: cid,
        peers: peers
            .into_iter()
            .map(|p| st.shown(&conn, p.into_record(now)))
            .collect(),
    }))
}

/// 200 `ok` while the store answers; 503 with the reason when it does not
/// (a load balancer's check: send traffic to another replica).
async fn healthz<S: Store>(State(st): State<Shared<S>>) -> Response {
    match st.store.health().await {
        Ok(()) => {
            st.metrics.store_up.set(1);
            "ok\n".into_response()
        }
        Err(e) => {
            st.metrics.store_up.set(0);
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
    }
}

async fn metrics<S: Store>(State(st): State<Shared<S>>) -> impl IntoResponse {
    match st.store.live_peers(Instant::now()).await {
        Ok(n) => {
            st.metrics.live_peers.set(n as i64);
            st.metrics.store_up.set(1);
        }
        Err(_) => {
            st.metrics.store_up.set(0);
        }
    }
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    (h, st.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_are_shown_at_the_trackers_address_to_remote_callers() {
        let rec = PeerRecord {
            peer_id: shoal_core::Identity::from_seed([1; 32]).peer_id(),
            name: "n".into(),
            addrs: vec!["127.0.0.1:7000".into(), "192.168.1.9:7001".into()],
            expires_in: 5,
            reach: None,
        };
        let remote = Conn {
            remote: "192.168.1.20:40000".parse().unwrap(),
            local: Some("192.168.1.5:5000".parse().unwrap()),
        };
        assert_eq!(
            remote.localize(rec.clone()).addrs,
            ["192.168.1.5:7000", "192.168.1.9:7001"]
        );
        let local = Conn {
            remote: "127.0.0.1:40000".parse().unwrap(),
            local: Some("127.0.0.1:5000".parse().unwrap()),
        };
        assert_eq!(local.localize(rec.clone()).addrs, rec.addrs);
    }
}
