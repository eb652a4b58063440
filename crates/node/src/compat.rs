//! The seed's peer API, for its clients, on a separate plain-HTTP listener
//! (`--compat-listen ADDR --compat-token TOKEN`).
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /list_files`, `GET /files` | `{"files": [names]}` |
//! | `GET /download/<name>` | the file's bytes (a name from the list) |
//! | `POST /upload` (multipart, field `file`) | `{"message": "File uploaded successfully", "filename": name}`, the file in the inbox |
//!
//! Every request needs `Authorization: <token>` (compared in constant time;
//! a client that keeps failing is answered more and more slowly). Errors
//! are `{"error": "..."}` with the seed's statuses: 401, 404, 400. Names
//! are looked up in the share index, never used as paths, so no request can
//! reach a file outside the shares; uploads go through the inbox's rules
//! (names made safe, never overwriting, size and disk limits). This
//! listener is not encrypted and its token is the only protection: it is
//! meant for moving users of the seed over, on a trusted network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::inbox::{Inbox, place, safe_name};
use crate::index::ShareIndex;
use crate::server::{Stale, Uploads, open_checked, stream_file};

/// Failed attempts from one address before answers slow down.
const FREE_FAILURES: u32 = 3;
/// Longest delay given to a failing client.
const MAX_DELAY: Duration = Duration::from_secs(8);
/// Failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct CompatState {
    index: Arc<ShareIndex>,
    rescan: Arc<Notify>,
    inbox: Inbox,
    uploads: Uploads,
    /// BLAKE3 of the token: compared in constant time, length included.
    token: [u8; 32],
    /// Per client network: failures so far, the last one, and when the
    /// next request from there may be answered.
    failures: Arc<Mutex<HashMap<IpAddr, Failures>>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    next_turn: Instant,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl CompatState {
    /// Checks the `Authorization` header; a wrong or missing one is
    /// answered with 401. Once a client network has failed
    /// [`FREE_FAILURES`] times, every request from it (right token or not)
    /// waits for its turn, and turns are spaced the more the more it
    /// failed: guesses sent in parallel are answered one after another,
    /// so parallel guessing is no faster than guessing in turn.
    async fn authorize(&self, from: IpAddr, headers: &HeaderMap) -> Result<(), Response> {
        let key = shoal_net::client_key(from);
        let wait = {
            let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            map.get_mut(&key).and_then(|f| {
                let over = f.count.saturating_sub(FREE_FAILURES);
                if over == 0 {
                    return None;
                }
                let turn = f.next_turn.max(now);
                f.next_turn = turn + delay_after(over);
                Some(turn - now)
            })
        };
        if let Some(w) = wait {
            tokio::time::sleep(w).await;
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let given = blake3::hash(given);
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes().as_slice(),
            self.token.as_slice(),
        )) {
            return Ok(());
        }
        let penalty = {
            let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                next_turn: now,
            });
            f.count = f.count.saturating_add(1);
            f.last = now;
            match f.count.saturating_sub(FREE_FAILURES) {
                0 => Duration::ZERO,
                over => delay_after(over),
            }
        };
        tracing::warn!(%from, "compat API: wrong or missing token");
        tokio::time::sleep(penalty).await;
        Err(error(StatusCode::UNAUTHORIZED, "Invalid or missing token"))
    }
}

/// How long a failing client waits, per answer and between turns, after
/// `over` failures beyond the free ones: 0.5 s doubling, at most
/// [`MAX_DELAY`].
fn delay_after(over: u32) -> Duration {
    (Duration::from_millis(250) * 2u32.saturating_pow(over.min(8))).min(MAX_DELAY)
}

/// What the compat listener allows: it is plain HTTP and unauthenticated
/// until the token is checked, so fewer connections than the peer API.
pub const LIMITS: shoal_net::Limits = shoal_net::Limits {
    max_connections: 128,
    per_client: 16,
    header_timeout: Duration::from_secs(20),
    write_stall: Duration::from_secs(30),
    min_body_rate: 1024,
    body_grace: Duration::from_secs(10),
};

/// Serves the seed's API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    token: String,
    index: Arc<ShareIndex>,
    rescan: Arc<Notify>,
    inbox: Inbox,
    uploads: Uploads,
    shutdown: CancellationToken,
) {
    let app = router(&token, index, rescan, inbox, uploads);
    let stop = shutdown.clone();
    shoal_net::serve(listener, LIMITS, shutdown, move |tcp, remote| {
        let (app, stop) = (app.clone(), stop.clone());
        let tag = move |ext: &mut axum::http::Extensions| {
            ext.insert(ConnectInfo(remote));
        };
        async move {
            let _ = shoal_net::serve_http(tcp, app, LIMITS, tag, stop).await;
        }
    })
    .await;
}

/// The routes of the seed's API (served by [`serve`]; each request's
/// `ConnectInfo<SocketAddr>` must be set).
pub fn router(
    token: &str,
    index: Arc<ShareIndex>,
    rescan: Arc<Notify>,
    inbox: Inbox,
    uploads: Uploads,
) -> axum::Router {
    let state = CompatState {
        index,
        rescan,
        inbox,
        uploads,
        token: *blake3::hash(token.as_bytes()).as_bytes(),
        failures: Default::default(),
    };
    axum::Router::new()
        .route("/list_files", get(list_files))
        .route("/files", get(list_files))
        .route("/download/{*name}", get(download))
        .route("/upload", post(upload))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not found") })
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn list_files(
    State(st): State<CompatState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = st.authorize(from.ip(), &headers).await {
        return r;
    }
    let names: Vec<String> = st
        .index
        .snapshot()
        .files()
        .map(|f| f.entry.name.clone())
        .collect();
    Json(json!({ "files": names })).into_response()
}

async fn download(
    State(st): State<CompatState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = st.authorize(from.ip(), &headers).await {
        return r;
    }
    // Only a name exactly as listed: never a path on this machine.
    let snapshot = st.index.snapshot();
    let Some(shared) = snapshot.files().find(|f| f.entry.name == name).cloned() else {
        return error(StatusCode::NOT_FOUND, "File not found");
    };
    let file = match open_checked(&shared, &st.rescan) {
        Ok(f) => f,
        Err(Stale::Gone) => return error(StatusCode::NOT_FOUND, "File not found"),
        Err(Stale::Changed) => {
            return error(
                StatusCode::NOT_FOUND,
                "File changed on disk; try again shortly",
            );
        }
    };
    let Ok(slot) = st.uploads.slots.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many downloads right now; try again shortly",
        );
    };
    let len = shared.stamp.size;
    let mut resp = Response::new(Body::from_stream(stream_file(
        file,
        0,
        len,
        st.uploads.clone(),
        slot,
        None,
    )));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let base = name.rsplit('/').next().unwrap_or("file");
    if let Some(safe) = safe_name(base)
        && let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{}\"",
            safe.replace(['"', '\\'], "_")
        ))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn upload(
    State(st): State<CompatState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if let Err(r) = st.authorize(from.ip(), &headers).await {
        return r;
    }
    let Ok(mut multipart) = multipart else {
        return error(StatusCode::BAD_REQUEST, "No file part");
    };
    // A declared length reserves its room up front (multipart framing
    // included, so it may over-reserve a little); uploads without one
    // reserve as their bytes arrive.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shoal_core::wire::MAX_FILE_SIZE) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The file does not fit in this peer's inbox",
        );
    }
    let key = format!(
        "compat-{}",
        blake3::hash(format!("{from}{:?}", Instant::now()).as_bytes()).to_hex()
    );
    let reservation = Reservation {
        inbox: st.inbox.clone(),
        key,
        bytes: 0,
    };
    let mut reservation = reservation;
    if let Err(r) = reservation.grow_to(declared.unwrap_or(0)).await {
        return r;
    }
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return error(StatusCode::BAD_REQUEST, "No file part"),
            Err(_) => return error(StatusCode::BAD_REQUEST, "Malformed upload"),
        };
        if field.name() != Some("file") {
            continue;
        }
        let Some(name) = field.file_name().and_then(safe_name) else {
            return error(StatusCode::BAD_REQUEST, "No selected file");
        };
        return store(&st, from.ip(), name, field, &mut reservation).await;
    }
}

/// Room held in the inbox for one compat upload, given back when dropped.
struct Reservation {
    inbox: Inbox,
    key: String,
    bytes: u64,
}

impl Reservation {
    /// Holds room for `bytes` in all, or answers why there is none.
    async fn grow_to(&mut self, bytes: u64) -> Result<(), Response> {
        if bytes <= self.bytes {
            return Ok(());
        }
        // Grow in steps, so a long upload does not walk the inbox per
        // chunk; near the limit, by exactly what arrived.
        let step = bytes.max(self.bytes.saturating_add(RESERVE_STEP));
        let (inbox, key) = (self.inbox.clone(), self.key.clone());
        let room = tokio::task::spawn_blocking(move || {
            let mut r = inbox.reserve(&key, step, step).map(|()| step);
            if r.is_err() && step > bytes {
                r = inbox.reserve(&key, bytes, bytes).map(|()| bytes);
            }
            r
        })
        .await
        .unwrap_or(Err(crate::inbox::NoRoom::Disk));
        match room {
            Ok(held) => {
                self.bytes = held;
                Ok(())
            }
            Err(crate::inbox::NoRoom::Limit) => Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The file does not fit in this peer's inbox",
            )),
            Err(crate::inbox::NoRoom::Disk) => Err(error(
                StatusCode::INSUFFICIENT_STORAGE,
                "Not enough disk space on this peer",
            )),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inbox.release(&self.key);
    }
}

/// Room reserved at a time for an upload of unknown length.
const RESERVE_STEP: u64 = 8 * 1024 * 1024;

/// Streams one uploaded file into a partial file, then into the inbox.
async fn store(
    st: &CompatState,
    from: IpAddr,
    name: String,
    mut field: axum::extract::multipart::Field<'_>,
    reservation: &mut Reservation,
) -> Response {
    let inbox = &st.inbox;
    let partial_dir = {
        let inbox = inbox.clone();
        match tokio::task::spawn_blocking(move || inbox.partial_dir()).await {
            Ok(d) => d,
            Err(e) => return crate::inbox::internal(e).into_response(),
        }
    };
    if let Err(e) = tokio::fs::create_dir_all(&partial_dir).await {
        return crate::inbox::internal(e).into_response();
    }
    let part = partial_dir.join(format!(
        "compat-{}.part",
        blake3::hash(format!("{from}{name}{:?}", Instant::now()).as_bytes()).to_hex()
    ));
    let result: Result<u64, Response> = async {
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(|e| crate::inbox::internal(e).into_response())?;
        let mut got = 0u64;
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(_) => return Err(error(StatusCode::BAD_REQUEST, "The upload was cut short")),
            };
            inbox.rate.take(chunk.len()).await;
            got = got.saturating_add(chunk.len() as u64);
            reservation.grow_to(got).await?;
            if let Err(e) = file.write_all(&chunk).await {
                return Err(if e.raw_os_error() == Some(28) {
                    error(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "Not enough disk space on this peer",
                    )
                } else {
                    crate::inbox::internal(e).into_response()
                });
            }
        }
        file.flush()
            .await
            .map_err(|e| crate::inbox::internal(e).into_response())?;
        Ok(got)
    }
    .await;
    let size = match result {
        Ok(n) => n,
        Err(r) => {
            let _ = tokio::fs::remove_file(&part).await;
            return r;
        }
    };
    let cfg = inbox.clone();
    let placed = tokio::task::spawn_blocking(move || {
        let r = place(&cfg, &part, &name);
        if r.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        r
    })
    .await;
    match placed {
        Ok(Ok(name)) => {
            tracing::info!(%from, %name, size, "received a file through the compat API");
            Json(json!({ "message": "File uploaded successfully", "filename": name }))
                .into_response()
        }
        Ok(Err(r)) => r.into_response(),
        Err(e) => crate::inbox::internal(e).into_response(),
    }
}
