//! The peer API over HTTPS with mutual TLS (see the crate docs for the protocol).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shoal_core::wire::{ErrorBody, FileEntry, PieceMap};
use shoal_core::{ContentId, PeerId};
use std::io::{Read, Seek};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::db::NodeDb;
use crate::index::{ShareIndex, SharedFile, stamp_of};
use crate::pieces::Verifier;
use crate::rate::RateLimit;
use crate::swarm::{Partial, Partials};
use crate::tls::peer_id_of;
use std::collections::HashMap;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 512;
/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size when streaming a file.
const STREAM_CHUNK: usize = 256 * 1024;

/// The PeerId of the caller, taken from its client certificate.
#[derive(Debug, Clone, Copy)]
pub struct RemotePeer(pub PeerId);

#[derive(Clone)]
struct ApiState {
    index: Arc<ShareIndex>,
    partials: Partials,
    db: Arc<NodeDb>,
    rescan: Arc<Notify>,
    limits: Uploads,
    verifiers: Verifiers,
}

/// Verifiers of shared contents, so each piece served is checked against
/// its content id (see [`Check`]); a few kept in memory.
#[derive(Clone, Default)]
struct Verifiers(Arc<std::sync::Mutex<HashMap<ContentId, Arc<Verified>>>>);

/// Verifiers kept at once.
const MAX_VERIFIERS: usize = 256;

/// A content's verifier, and which pieces of its file (as of `stamp`)
/// already passed: each piece is hashed once per version of the file, so
/// serving it again costs nothing. (An edit in place changes the stamp,
/// its ctime at least, and so starts over.)
pub(crate) struct Verified {
    verifier: Verifier,
    stamp: crate::db::Stamp,
    passed: Vec<std::sync::atomic::AtomicU64>,
}

impl Verified {
    fn new(verifier: Verifier, stamp: crate::db::Stamp) -> Self {
        let words = crate::pieces::piece_count(verifier.size()).div_ceil(64) as usize;
        Self {
            verifier,
            stamp,
            passed: (0..words).map(|_| Default::default()).collect(),
        }
    }

    /// Whether piece `i` is good: known to be, or checked now.
    fn check(&self, i: u64, piece: &[u8]) -> bool {
        use std::sync::atomic::Ordering;
        let (w, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        let Some(word) = self.passed.get(w) else {
            return false;
        };
        if word.load(Ordering::Relaxed) & bit != 0 {
            return true;
        }
        let good = self.verifier.check(i, &[piece]);
        if good {
            word.fetch_or(bit, Ordering::Relaxed);
        }
        good
    }
}

impl Verifiers {
    /// The verifier of `shared`: cached for its stamp, or made from its
    /// outboard (from the database, or computed and stored there). `None`
    /// when the file no longer hashes to its content id.
    async fn get(
        &self,
        db: &Arc<NodeDb>,
        shared: &SharedFile,
    ) -> Result<Option<Arc<Verified>>, ApiError> {
        let cid = shared.entry.content_id;
        if let Some(v) = self.lock().get(&cid)
            && v.stamp == shared.stamp
        {
            return Ok(Some(v.clone()));
        }
        let size = shared.stamp.size;
        let (db, path) = (db.clone(), shared.path.clone());
        let outboard = blocking(move || {
            let file = std::fs::File::open(&path).map_err(|_| not_shared(cid))?;
            outboard_of_shared(&db, cid, size, file)
        })
        .await?;
        let Some(outboard) = outboard else {
            return Ok(None);
        };
        let Ok(v) = Verifier::new(cid, size, outboard) else {
            return Ok(None);
        };
        let v = Arc::new(Verified::new(v, shared.stamp));
        let mut map = self.lock();
        if map.len() >= MAX_VERIFIERS {
            map.clear();
        }
        map.insert(cid, v.clone());
        Ok(Some(v))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, Arc<Verified>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Pieces are checked against the content id as they are read for
/// sending (once per version of the file, see [`Verified`]); when one
/// fails, the file changed behind the index's back (a bad disk, or an
/// edit the stamp did not show): the answer is cut off, so the downloader
/// takes no bad byte and blames no one, and the file stops being served
/// until a scan has hashed it again.
pub(crate) struct Check {
    /// The content's verifier and the pieces known good.
    verified: Arc<Verified>,
    /// Called once, from the reading thread, when a piece fails.
    on_bad: Box<dyn FnOnce() + Send>,
}

impl Check {
    fn new(st: &ApiState, verified: Arc<Verified>, shared: &SharedFile) -> Self {
        let (index, rescan, path) = (st.index.clone(), st.rescan.clone(), shared.path.clone());
        Check {
            verified,
            on_bad: Box::new(move || forget_changed(&index, &rescan, &path)),
        }
    }
}

/// Stops serving a shared file that no longer matches its content id,
/// until a scan has hashed it again.
fn forget_changed(index: &ShareIndex, rescan: &Notify, path: &std::path::Path) {
    tracing::warn!(file = %path.display(), "a shared file no longer matches its content id (changed in place?); it is re-indexed");
    if let Err(e) = index.forget(path) {
        tracing::warn!(error = %e, "cannot forget a changed file");
    }
    rescan.notify_one();
}

/// How much a node gives: a byte rate shared by all uploads, and a cap on
/// uploads streaming at once.
#[derive(Clone, Debug)]
pub struct Uploads {
    /// Bytes per second over all uploads.
    pub rate: RateLimit,
    /// Content streams served at once; more get 503 and try another peer.
    pub slots: Arc<Semaphore>,
    /// Content bytes sent so far.
    pub sent: Arc<std::sync::atomic::AtomicU64>,
    /// When content bytes were last sent (ms since `epoch`).
    last_sent: Arc<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
    max_streams: usize,
}

impl Uploads {
    /// `max_streams` uploads at once, at most `rate` bytes per second in all.
    pub fn new(rate: RateLimit, max_streams: usize) -> Self {
        Self {
            rate,
            slots: Arc::new(Semaphore::new(max_streams.max(1))),
            sent: Default::default(),
            last_sent: Default::default(),
            epoch: std::time::Instant::now(),
            max_streams: max_streams.max(1),
        }
    }

    /// Whether content is streaming now, or was within `window`.
    pub fn busy_within(&self, window: Duration) -> bool {
        use std::sync::atomic::Ordering;
        if self.slots.available_permits() < self.max_streams {
            return true;
        }
        let last = self.last_sent.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        last > 0 && now.saturating_sub(last) < window.as_millis() as u64
    }
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// The routes of the peer API.
pub fn router(
    index: Arc<ShareIndex>,
    partials: Partials,
    db: Arc<NodeDb>,
    rescan: Arc<Notify>,
    limits: Uploads,
    inbox: crate::inbox::Inbox,
) -> Router {
    let pushes = Router::new()
        .route("/v1/inbox", axum::routing::post(crate::inbox::offer))
        .route(
            "/v1/inbox/{upload}",
            axum::routing::put(crate::inbox::upload),
        )
        .with_state(inbox);
    Router::new()
        .route("/v1/files", get(list_files))
        .route("/v1/content/{content_id}", get(content))
        .route("/v1/content/{content_id}/outboard", get(outboard))
        .route("/v1/content/{content_id}/have", get(have))
        .route("/v1/bundle", axum::routing::post(bundle))
        .merge(pushes)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(ApiState {
            index,
            partials,
            db,
            rescan,
            limits,
            verifiers: Verifiers::default(),
        })
}

async fn list_files(
    State(st): State<ApiState>,
    Extension(peer): Extension<RemotePeer>,
) -> Json<Vec<FileEntry>> {
    tracing::debug!(peer = %peer.0.short(), "list files");
    Json(
        st.index
            .snapshot()
            .files()
            .map(|f| f.entry.clone())
            .collect(),
    )
}

fn parse_cid(raw: &str) -> Result<ContentId, ApiError> {
    raw.parse()
        .map_err(|e: shoal_core::ContentIdError| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

fn not_shared(cid: ContentId) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("content {cid} is not shared here"),
    )
}

/// Where the bytes of a content come from: a shared file, or the `.part`
/// of a download in progress (only its verified pieces).
enum Source {
    Shared(std::fs::File, SharedFile),
    Partial(std::fs::File, Arc<Partial>),
}

/// Opens the shared file with content id `cid` or, failing that, the
/// download in progress of it.
fn open_source(st: &ApiState, cid: ContentId) -> Result<Source, ApiError> {
    match open_shared(st, cid) {
        Err(e) if e.0 == StatusCode::NOT_FOUND => {
            let partial = st.partials.get(&cid).ok_or(e)?;
            let file = std::fs::File::open(&partial.part).map_err(|_| not_shared(cid))?;
            Ok(Source::Partial(file, partial))
        }
        Err(e) => Err(e),
        Ok((file, shared)) => Ok(Source::Shared(file, shared)),
    }
}

/// Opens the file with content id `cid` if it is still shared and
/// unchanged since it was indexed.
fn open_shared(st: &ApiState, cid: ContentId) -> Result<(std::fs::File, SharedFile), ApiError> {
    let Some(shared) = st.index.snapshot().by_content(&cid).cloned() else {
        return Err(not_shared(cid));
    };
    match open_checked(&shared, &st.rescan) {
        Ok(file) => Ok((file, shared)),
        Err(Stale::Gone) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("content {cid} is no longer shared here"),
        )),
        Err(Stale::Changed) => Err(changed(cid)),
    }
}

/// Why an indexed file cannot be served now.
pub(crate) enum Stale {
    /// Removed, unreadable, or its path now leads out of the share.
    Gone,
    /// Changed on disk since it was indexed (a rescan is under way).
    Changed,
}

/// Opens an indexed file, checking again that its real path is inside its
/// share (a symlink may have been re-pointed since the last scan) and that
/// it did not change since it was indexed; asks for a rescan if not.
pub(crate) fn open_checked(shared: &SharedFile, rescan: &Notify) -> Result<std::fs::File, Stale> {
    let real = std::fs::canonicalize(&shared.path).map_err(|_| Stale::Gone)?;
    if !real.starts_with(&shared.root) {
        rescan.notify_one();
        return Err(Stale::Gone);
    }
    let file = std::fs::File::open(&real).map_err(|_| Stale::Gone)?;
    let meta = file.metadata().map_err(|_| Stale::Gone)?;
    if stamp_of(&meta) != shared.stamp {
        rescan.notify_one();
        return Err(Stale::Changed);
    }
    Ok(file)
}

fn changed(cid: ContentId) -> ApiError {
    ApiError(
        StatusCode::CONFLICT,
        format!("content {cid} changed on disk; it is being re-indexed, try again shortly"),
    )
}

async fn outboard(
    State(st): State<ApiState>,
    Extension(peer): Extension<RemotePeer>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&raw)?;
    let (file, shared) = match source(&st, cid).await? {
        Source::Shared(file, shared) => (file, shared),
        Source::Partial(_, partial) => return Ok(octets(partial.outboard.clone())),
    };
    tracing::debug!(peer = %peer.0.short(), %cid, "serving outboard");
    let (db, size) = (st.db.clone(), shared.stamp.size);
    match blocking(move || outboard_of_shared(&db, cid, size, file)).await? {
        Some(o) => Ok(octets(o)),
        None => {
            st.rescan.notify_one();
            Err(changed(cid))
        }
    }
}

/// Runs file or database work off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(internal)?
}

/// [`open_source`], off the async worker threads.
async fn source(st: &ApiState, cid: ContentId) -> Result<Source, ApiError> {
    let st = st.clone();
    blocking(move || open_source(&st, cid)).await
}

/// The outboard of a shared file: from the database, or computed from
/// `file` and stored there (empty for a file of one piece). `None` when
/// the file no longer hashes to `cid`. Blocking: run it through
/// [`blocking`].
fn outboard_of_shared(
    db: &NodeDb,
    cid: ContentId,
    size: u64,
    file: std::fs::File,
) -> Result<Option<Vec<u8>>, ApiError> {
    if let Some(o) = db.outboard(&cid).map_err(internal)? {
        return Ok(Some(o));
    }
    if size <= crate::pieces::PIECE_SIZE {
        return Ok(Some(Vec::new()));
    }
    let (root, o) = crate::pieces::outboard_of(file, size).map_err(internal)?;
    if root != cid {
        return Ok(None);
    }
    db.put_outboard(&cid, &o).map_err(internal)?;
    Ok(Some(o))
}

fn octets(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        body,
    )
        .into_response()
}

/// Which pieces of a content this node holds: all of a shared file, the
/// verified ones of a download in progress.
async fn have(
    State(st): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<PieceMap>, ApiError> {
    let cid = parse_cid(&raw)?;
    if let Some(shared) = st.index.snapshot().by_content(&cid) {
        return Ok(Json(PieceMap {
            size: shared.stamp.size,
            piece_size: crate::pieces::PIECE_SIZE,
            complete: true,
            pieces: None,
            fetching: None,
        }));
    }
    let partial = st.partials.get(&cid).ok_or_else(|| not_shared(cid))?;
    Ok(Json(partial.piece_map()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the node's log".into(),
    )
}

async fn content(
    State(st): State<ApiState>,
    Extension(peer): Extension<RemotePeer>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&raw)?;
    let (file, size, partial, shared) = match source(&st, cid).await? {
        Source::Shared(file, shared) => (file, shared.stamp.size, None, Some(shared)),
        Source::Partial(file, partial) => (file, partial.size, Some(partial), None),
    };
    let (status, start, len) = match headers.get(header::RANGE) {
        None => (StatusCode::OK, 0, size),
        Some(v) => match parse_range(v, size) {
            Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e - s),
            Ok(None) => (StatusCode::OK, 0, size),
            Err(()) => {
                let mut resp = ApiError(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("range not satisfiable for {size} bytes"),
                )
                .into_response();
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&shoal_core::wire::range::unsatisfied(size))
                        .unwrap_or(HeaderValue::from_static("*")),
                );
                return Ok(resp);
            }
        },
    };
    if let Some(p) = &partial
        && !p.have.covers(start, start + len)
    {
        return Err(ApiError(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "this peer is still downloading that content and does not hold those pieces yet; \
             ask /have for the pieces it holds"
                .into(),
        ));
    }
    tracing::debug!(peer = %peer.0.short(), %cid, start, len, "serving content");
    let check = match &shared {
        Some(shared) => match st.verifiers.get(&st.db, shared).await? {
            Some(v) => Some(Check::new(&st, v, shared)),
            None => {
                forget_changed(&st.index, &st.rescan, &shared.path);
                return Err(changed(cid));
            }
        },
        None => None,
    };
    let Ok(slot) = st.limits.slots.clone().try_acquire_owned() else {
        return Err(busy());
    };
    let body = Body::from_stream(stream_file(
        file,
        start,
        len,
        st.limits.clone(),
        slot,
        check,
    ));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{cid}\"")) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&shoal_core::wire::range::content_range(
            start,
            start + len,
            size,
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

/// Most content ids in one bundle request.
pub const MAX_BUNDLE: usize = 1024;
/// Largest file sent in a bundle; larger ones are fetched by range.
pub const MAX_BUNDLE_FILE: u64 = crate::pieces::PIECE_SIZE;

/// Many small files in one answer, so a folder of thousands of files is
/// not thousands of round trips. The body is a JSON array of content ids;
/// the answer is a frame for each, in order ([`shoal_core::wire::bundle`]).
async fn bundle(
    State(st): State<ApiState>,
    Extension(peer): Extension<RemotePeer>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ids: Vec<ContentId> = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON array of content ids: {e}"),
        )
    })?;
    if ids.len() > MAX_BUNDLE {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_BUNDLE} content ids per bundle"),
        ));
    }
    let Ok(slot) = st.limits.slots.clone().try_acquire_owned() else {
        return Err(busy());
    };
    tracing::debug!(peer = %peer.0.short(), files = ids.len(), "serving a bundle");
    let limits = st.limits.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf: Vec<u8> = Vec::with_capacity(STREAM_CHUNK + 64);
        for cid in ids {
            let file = open_shared(&st, cid)
                .ok()
                .map(|(f, shared)| (f, shared.stamp.size));
            use shoal_core::wire::bundle::{Frame, encode};
            match file {
                None => encode(&mut buf, Frame::Missing),
                Some((_, size)) if size > MAX_BUNDLE_FILE => encode(&mut buf, Frame::TooLarge),
                Some((f, size)) => {
                    let mut data = Vec::with_capacity(size as usize);
                    match f.take(size).read_to_end(&mut data) {
                        Ok(n) if n as u64 == size => encode(&mut buf, Frame::Data(&data)),
                        _ => encode(&mut buf, Frame::Missing),
                    }
                }
            }
            if buf.len() >= STREAM_CHUNK {
                let chunk = Bytes::from(std::mem::take(&mut buf));
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return; // the client went away
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(buf)));
        }
    });
    let body = Body::from_stream(limited(rx, limits, slot));
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        body,
    )
        .into_response())
}

fn busy() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many downloads from this node right now; try again or another peer".into(),
    )
}

/// Streams `len` bytes of `file` from `start`, from a blocking thread, a
/// few chunks ahead of the network. With a [`Check`], whole pieces are
/// read and each is verified before any of its bytes is sent.
pub(crate) fn stream_file(
    mut file: std::fs::File,
    start: u64,
    len: u64,
    limits: Uploads,
    slot: tokio::sync::OwnedSemaphorePermit,
    check: Option<Check>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let end = start.saturating_add(len);
        let Some(check) = check else {
            if start > 0
                && let Err(e) = file.seek(std::io::SeekFrom::Start(start))
            {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut rest = file.take(len);
            loop {
                let mut buf = Vec::with_capacity(STREAM_CHUNK);
                match (&mut rest).take(STREAM_CHUNK as u64).read_to_end(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            break; // the client went away
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
            return;
        };
        let piece = crate::pieces::PIECE_SIZE;
        let size = check.verified.verifier.size();
        let mut i = start / piece;
        if let Err(e) = file.seek(std::io::SeekFrom::Start(i * piece)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        while i * piece < end {
            let (ps, pe) = crate::pieces::piece_range(size, i);
            let mut buf = Vec::with_capacity((pe - ps) as usize);
            let read = (&mut file).take(pe - ps).read_to_end(&mut buf);
            if !matches!(read, Ok(n) if n as u64 == pe - ps) || !check.verified.check(i, &buf) {
                (check.on_bad)();
                let _ = tx.blocking_send(Err(std::io::Error::other(
                    "the file changed on disk since it was indexed",
                )));
                return;
            }
            let from = start.max(ps) - ps;
            let to = end.min(pe) - ps;
            let mut chunk = Bytes::from(buf);
            let chunk = chunk
                .split_off(from as usize)
                .split_to((to - from) as usize);
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // the client went away
            }
            i += 1;
        }
    });
    limited(rx, limits, slot)
}

/// Passes chunks on at the upload rate, counting them, holding the upload
/// slot until the stream ends or is dropped.
fn limited(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    limits: Uploads,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold((rx, limits, slot), |(mut rx, limits, slot)| async move {
        let item = rx.recv().await?;
        if let Ok(b) = &item {
            limits.rate.take(b.len()).await;
            limits
                .sent
                .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            limits.last_sent.store(
                (limits.epoch.elapsed().as_millis() as u64).max(1),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        Some((item, (rx, limits, slot)))
    })
}

/// Parses a `Range` header into `[start, end)` (see
/// [`shoal_core::wire::range::parse`]).
pub(crate) fn parse_range(v: &HeaderValue, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let s = v.to_str().map_err(|_| ())?;
    shoal_core::wire::range::parse(s, size).map_err(|_| ())
}

/// What the peer API's listener allows (see [`shoal_net`]).
pub const LIMITS: shoal_net::Limits = shoal_net::Limits {
    max_connections: MAX_CONNECTIONS,
    per_client: MAX_CONNECTIONS / 8,
    header_timeout: HEADER_TIMEOUT,
    write_stall: std::time::Duration::from_secs(30),
    min_body_rate: 1024,
    body_grace: std::time::Duration::from_secs(10),
};

/// Accepts TLS connections on `listener` and serves `app` until
/// `shutdown`, within [`LIMITS`]; returns once open connections drained.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: CancellationToken,
) {
    let conns = Conns::new(tls, app, shutdown.clone());
    shoal_net::serve(listener, LIMITS, shutdown, move |tcp, remote| {
        conns.clone().serve(tcp, remote)
    })
    .await;
}

/// Serves the peer API on one stream at a time, from wherever it came:
/// the listener, or a relay that piped a peer to us.
#[derive(Clone)]
pub struct Conns {
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
}

impl Conns {
    /// Serves `app` over mutual TLS with `tls` until `shutdown`.
    pub fn new(tls: Arc<rustls::ServerConfig>, app: Router, shutdown: CancellationToken) -> Self {
        Self {
            acceptor: TlsAcceptor::from(tls),
            app,
            shutdown,
        }
    }

    /// Runs the TLS handshake on `io` (from `remote`), learns the caller's
    /// PeerId, and serves its requests until it leaves.
    pub async fn serve<I>(self, io: I, remote: std::net::SocketAddr)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(io)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return;
            }
        };
        let Some(peer) = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| peer_id_of(c).ok())
        else {
            return;
        };
        let tag = move |ext: &mut axum::http::Extensions| {
            ext.insert(RemotePeer(peer));
            ext.insert(axum::extract::ConnectInfo(remote));
        };
        if let Err(e) = shoal_net::serve_http(tls, self.app, LIMITS, tag, self.shutdown).await {
            tracing::debug!(%remote, error = %e, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        parse_range(&HeaderValue::from_str(s).unwrap(), size)
    }

    /// Bytes that went bad under an unchanged stamp (a bad disk) are never
    /// sent: the stream is cut at the bad piece and the file reported.
    #[tokio::test]
    async fn a_piece_that_no_longer_matches_is_never_sent() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..5 * crate::pieces::PIECE_SIZE as usize + 77)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let (cid, outboard) = crate::pieces::outboard_of(&data[..], data.len() as u64).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let verified = Arc::new(Verified::new(
            Verifier::new(cid, data.len() as u64, outboard).unwrap(),
            stamp_of(&meta),
        ));
        let stream = |start: u64, len: u64, bad: Arc<std::sync::atomic::AtomicBool>| {
            let uploads = Uploads::new(RateLimit::unlimited(), 1);
            let slot = uploads.slots.clone().try_acquire_owned().unwrap();
            let check = Check {
                verified: verified.clone(),
                on_bad: Box::new(move || bad.store(true, std::sync::atomic::Ordering::SeqCst)),
            };
            let file = std::fs::File::open(&path).unwrap();
            stream_file(file, start, len, uploads, slot, Some(check))
        };
        // Intact: exactly the bytes asked for, at any offset.
        let bad = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (start, len) = (300_000u64, 700_000u64);
        let got: Vec<u8> = stream(start, len, bad.clone())
            .map(|c| c.unwrap().to_vec())
            .concat()
            .await;
        assert_eq!(got, data[start as usize..(start + len) as usize]);
        assert!(!bad.load(std::sync::atomic::Ordering::SeqCst));
        // One bit flipped in piece 3: pieces 0-2 pass, then an error.
        let mut rotten = data.clone();
        rotten[3 * crate::pieces::PIECE_SIZE as usize + 10] ^= 1;
        std::fs::write(&path, &rotten).unwrap();
        let verified_fresh = Arc::new(Verified::new(
            Verifier::new(cid, data.len() as u64, {
                crate::pieces::outboard_of(&data[..], data.len() as u64)
                    .unwrap()
                    .1
            })
            .unwrap(),
            stamp_of(&meta),
        ));
        let bad = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let uploads = Uploads::new(RateLimit::unlimited(), 1);
        let slot = uploads.slots.clone().try_acquire_owned().unwrap();
        let flag = bad.clone();
        let check = Check {
            verified: verified_fresh,
            on_bad: Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)),
        };
        let file = std::fs::File::open(&path).unwrap();
        let items: Vec<std::io::Result<Bytes>> =
            stream_file(file, 0, data.len() as u64, uploads, slot, Some(check))
                .collect()
                .await;
        let sent: usize = items
            .iter()
            .filter_map(|c| c.as_ref().ok())
            .map(|b| b.len())
            .sum();
        assert_eq!(sent, 3 * crate::pieces::PIECE_SIZE as usize);
        assert!(items.last().unwrap().is_err());
        assert!(bad.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(r("bytes=90-", 100), Ok(Some((90, 100))));
        assert_eq!(r("bytes=-10", 100), Ok(Some((90, 100))));
        assert_eq!(r("bytes=95-200", 100), Ok(Some((95, 100))));
        assert_eq!(r("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(r("bytes=100-", 100), Err(()));
        assert_eq!(r("bytes=5-4", 100), Err(()));
        assert_eq!(r("bytes=x-4", 100), Err(()));
        assert_eq!(r("bytes=-0", 100), Err(()));
        assert_eq!(r("bytes=0-", 0), Err(()));
    }
}
