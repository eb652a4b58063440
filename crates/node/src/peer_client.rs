//! The client side of the peer API: mutual TLS with the PeerId pinned,
//! HTTP/1.1 over whatever stream a [`Dialer`] opens to one of the peer's
//! addresses, connections kept for reuse.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use shoal_core::config::RetryConfig;
use shoal_core::wire::{FileEntry, PeerRecord, PieceMap};
use shoal_core::{ContentId, Identity, PeerId};

use crate::dial::{Dialer, Direct, Relayed};
use crate::error::{NodeError, PeerError, Result};
use crate::rate::RateLimit;
use crate::retry::with_retry;
use crate::tls::{self, MismatchSlot};

use crate::body::{MAX_LISTING, MAX_PIECE_MAP};

/// Most addresses of one peer that are tried.
pub const MAX_ADDRS: usize = shoal_core::wire::MAX_ADDRS;
/// Longest time spent reaching a peer, all its addresses together.
pub const CONNECT_BUDGET: Duration = Duration::from_secs(20);
/// Longest time to open one address: the stream, TLS and HTTP together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of an answer (its head, or a chunk).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait before the next address joins the race.
const RACE_STAGGER: Duration = Duration::from_millis(300);
/// Longest a listing may take to arrive, whole.
pub const LISTING_DEADLINE: Duration = Duration::from_secs(30);
/// Longest an outboard may take to arrive, whole.
const OUTBOARD_DEADLINE: Duration = Duration::from_secs(60);
/// Longest a piece map may take to arrive, whole.
const HAVE_DEADLINE: Duration = Duration::from_secs(20);
/// Longest one request to a peer may take, its retries included.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(120);
/// Longest an upload (a push) may take, answer included.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);
/// A connection unused this long is not reused.
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Idle connections kept per peer.
const MAX_IDLE_PER_PEER: usize = 8;
/// The TLS server name sent to peers (a peer is known by its key, never
/// by a name; see [`crate::tls`]).
const SERVER_NAME: &str = "peer.shoal";

/// The body of a request to a peer.
pub type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

fn empty() -> RequestBody {
    full(Bytes::new())
}

/// A request body of these bytes.
pub fn body_of(b: impl Into<Bytes>) -> RequestBody {
    full(b)
}

fn full(b: impl Into<Bytes>) -> RequestBody {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request body streamed from `chunks`.
pub fn streamed(
    chunks: impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> RequestBody {
    use futures_util::TryStreamExt;
    http_body_util::StreamBody::new(chunks.map_ok(hyper::body::Frame::data)).boxed_unsync()
}

/// Connections to peers that can take another request.
type Idle = Arc<Mutex<HashMap<PeerId, Vec<(SendRequest<RequestBody>, Instant)>>>>;

/// Connects to peers as `identity`: one pinned TLS configuration per peer,
/// streams from the first [`Dialer`] that reaches an address, connections
/// reused while they last.
pub struct PeerClient {
    identity: Arc<Identity>,
    retry: RetryConfig,
    download: RateLimit,
    tls: Mutex<HashMap<PeerId, (Arc<rustls::ClientConfig>, MismatchSlot)>>,
    idle: Idle,
    dialers: Vec<Arc<dyn Dialer>>,
    routes: Mutex<HashMap<PeerId, Route>>,
}

/// How a peer was last reached: which dialer, at which address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// `direct` or `relay`.
    pub via: &'static str,
    /// The address dialled (`host:port`, or `relay://host:port`).
    pub addr: String,
}

/// An answer from a peer: its status and headers, and its body read chunk
/// by chunk (each due within 30 s, and all of it by the
/// request's deadline if it had one).
pub struct PeerResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    deadline: Option<tokio::time::Instant>,
    /// The connection, given back for reuse once the body has ended.
    back: Option<(Idle, PeerId, SendRequest<RequestBody>)>,
}

/// Reading an answer's body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Nothing came for too long, or the whole answer was late.
    #[error("it sent nothing for {0}s")]
    Stalled(u64),
    /// The connection broke, or the answer was not what was asked for.
    #[error("{reason}")]
    Broken {
        /// What went wrong, in a few words.
        reason: String,
        /// The HTTP layer's error, if it reported one.
        #[source]
        source: Option<hyper::Error>,
    },
}

impl BodyError {
    fn said(reason: impl Into<String>) -> Self {
        BodyError::Broken {
            reason: reason.into(),
            source: None,
        }
    }
}

impl PeerResponse {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The length the peer announced, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    /// The next bytes of the body; `None` at its end.
    pub async fn chunk(&mut self) -> std::result::Result<Option<Bytes>, BodyError> {
        loop {
            let mut wait = READ_TIMEOUT;
            if let Some(d) = self.deadline {
                wait = wait.min(d.saturating_duration_since(tokio::time::Instant::now()));
            }
            let frame = tokio::time::timeout(wait, self.body.frame())
                .await
                .map_err(|_| BodyError::Stalled(wait.as_secs()))?;
            match frame {
                None => {
                    if let Some((idle, peer, sender)) = self.back.take() {
                        give_back(&idle, peer, sender);
                    }
                    return Ok(None);
                }
                Some(Err(e)) => {
                    return Err(BodyError::Broken {
                        reason: innermost(&e),
                        source: Some(e),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// A small body as text (at most [`crate::body::MAX_SMALL`] bytes).
    pub async fn text(mut self) -> std::result::Result<String, BodyError> {
        let body = crate::body::read_capped(&mut self, crate::body::MAX_SMALL)
            .await
            .map_err(|e| match e {
                crate::body::CapError::TooLarge => BodyError::said("the answer is too large"),
                crate::body::CapError::Net(e) => e,
            })?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// A small body as JSON (at most [`crate::body::MAX_SMALL`] bytes).
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> std::result::Result<T, BodyError> {
        let text = self.text().await?;
        serde_json::from_str(&text)
            .map_err(|e| BodyError::said(format!("not the JSON expected: {e}")))
    }

    /// The whole body, however long (for tests and tiny answers; use
    /// a capped read for anything a peer may inflate).
    pub async fn bytes(mut self) -> std::result::Result<Bytes, BodyError> {
        let mut all = Vec::new();
        while let Some(c) = self.chunk().await? {
            all.extend_from_slice(&c);
        }
        Ok(all.into())
    }
}

/// The innermost cause of an error: the shortest useful description.
pub(crate) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

fn give_back(idle: &Idle, peer: PeerId, sender: SendRequest<RequestBody>) {
    if sender.is_closed() {
        return;
    }
    let mut map = idle.lock().unwrap_or_else(|p| p.into_inner());
    let list = map.entry(peer).or_default();
    if list.len() < MAX_IDLE_PER_PEER {
        list.push((sender, Instant::now()));
    }
}

/// A request to send, made anew for each address tried.
struct Ask<'a> {
    method: Method,
    path: &'a str,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Option<Bytes>,
}

impl Ask<'_> {
    fn build(&self, addr: &str, body: RequestBody) -> Result<hyper::Request<RequestBody>> {
        let mut req = hyper::Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header(header::HOST, addr);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.body(body)
            .map_err(|e| NodeError::Internal(format!("cannot build a request: {e}")))
    }

    fn body(&self) -> RequestBody {
        self.body.clone().map_or_else(empty, full)
    }
}

/// Why one address could not be used.
enum AttemptError {
    /// Nothing could be sent or nothing came back: try the next address.
    Failed(Failure),
}

/// What failed, in a few words, and the error that said so.
struct Failure {
    reason: String,
    source: Option<crate::error::Cause>,
}

impl Failure {
    fn said(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            source: None,
        }
    }

    fn of(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            reason: innermost(&e),
            source: Some(Box::new(e)),
        }
    }

    fn against(self, peer: &PeerRecord) -> NodeError {
        NodeError::unreachable_by(peer, self.reason, self.source)
    }
}

impl PeerClient {
    /// A client that presents `identity` to the peers it calls, reaching
    /// them directly over TCP, or through the relays their addresses name.
    pub fn new(identity: Arc<Identity>, retry: RetryConfig) -> Self {
        Self {
            dialers: vec![Arc::new(Relayed::new(identity.clone())), Arc::new(Direct)],
            identity,
            retry,
            download: RateLimit::unlimited(),
            tls: Mutex::new(HashMap::new()),
            idle: Idle::default(),
            routes: Mutex::default(),
        }
    }

    /// How `peer` was last reached, if it was.
    pub fn route(&self, peer: PeerId) -> Option<Route> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned()
    }

    /// The same client, receiving at most this fast in all.
    pub fn with_download_limit(mut self, limit: RateLimit) -> Self {
        self.download = limit;
        self
    }

    /// The same client, also reaching peers through `dialer` (tried
    /// before the ones it had, for the addresses it reaches).
    pub fn with_dialer(mut self, dialer: Arc<dyn Dialer>) -> Self {
        self.dialers.insert(0, dialer);
        self
    }

    /// The download limit of this client.
    pub fn download_limit(&self) -> &RateLimit {
        &self.download
    }

    /// The id this client presents.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    fn tls_for(&self, peer: PeerId) -> Result<(Arc<rustls::ClientConfig>, MismatchSlot)> {
        let mut map = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&peer) {
            return Ok(c.clone());
        }
        let (cfg, slot) = tls::client_config(&self.identity, peer)?;
        let entry = (Arc::new(cfg), slot);
        map.insert(peer, entry.clone());
        Ok(entry)
    }

    fn dialer_for(&self, addr: &str) -> Option<&Arc<dyn Dialer>> {
        self.dialers.iter().find(|d| d.reaches(addr))
    }

    /// A connection to `peer` kept from an earlier request, if one is
    /// ready for another.
    fn take_idle(&self, peer: PeerId) -> Option<SendRequest<RequestBody>> {
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(&peer)?;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && sender.is_ready() && since.elapsed() < IDLE_FOR {
                return Some(sender);
            }
        }
        None
    }

    /// Opens `addr`: a stream from its dialer, TLS pinned to the peer's
    /// key, HTTP/1.1 on top.
    async fn connect(
        &self,
        peer: PeerId,
        addr: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> std::result::Result<SendRequest<RequestBody>, AttemptError> {
        let failed = |e| AttemptError::Failed(Failure::of(e));
        let dialer = self.dialer_for(addr).ok_or_else(|| {
            AttemptError::Failed(Failure::said(format!(
                "no way to reach the address {}",
                shoal_core::text::bounded(addr, 100)
            )))
        })?;
        let open = async {
            let io = dialer.dial(Some(peer), addr).await.map_err(failed)?;
            let name = rustls::pki_types::ServerName::try_from(SERVER_NAME)
                .map_err(|e| AttemptError::Failed(Failure::of(e)))?;
            let tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, io)
                .await
                .map_err(failed)?;
            let (sender, conn) = hyper::client::conn::http1::Builder::new()
                .read_buf_exact_size(Some(64 * 1024))
                .handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| AttemptError::Failed(Failure::of(e)))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            tracing::debug!(addr, via = dialer.kind(), "connected to a peer");
            self.routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    peer,
                    Route {
                        via: dialer.kind(),
                        addr: addr.to_owned(),
                    },
                );
            Ok(sender)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .unwrap_or_else(|_| {
                Err(AttemptError::Failed(Failure::said(format!(
                    "no connection within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))))
            })
    }

    /// Who listens at `addr`: the key the peer there proves in a TLS
    /// handshake (for a provider the DHT knows by address only). Nothing
    /// is asked of it; the connection is dropped.
    pub async fn identify(&self, addr: &str) -> Result<PeerId> {
        let unreachable = |reason: String, source: Option<crate::error::Cause>| {
            NodeError::Peer(crate::error::PeerError::Unidentified {
                addr: shoal_core::text::bounded(addr, 100),
                reason,
                source,
            })
        };
        let (cfg, seen) = tls::identifying_config(&self.identity)?;
        let dialer = self
            .dialer_for(addr)
            .ok_or_else(|| unreachable("no way to reach this address".into(), None))?;
        let open = async {
            let io = dialer.dial(None, addr).await?;
            let name = rustls::pki_types::ServerName::try_from(SERVER_NAME)
                .map_err(std::io::Error::other)?;
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, io)
                .await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Err(_) => Err(unreachable(
                format!("no TLS handshake within {}s", CONNECT_TIMEOUT.as_secs()),
                None,
            )),
            Ok(Err(e)) => Err(unreachable(e.to_string(), Some(Box::new(e)))),
            Ok(Ok(_)) => seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| unreachable("it proved no key".into(), None)),
        }
    }

    /// Sends `req` on `sender` and waits up to `head` for the answer's head.
    async fn exchange(
        &self,
        peer: PeerId,
        mut sender: SendRequest<RequestBody>,
        req: hyper::Request<RequestBody>,
        head: Duration,
        deadline: Option<tokio::time::Instant>,
    ) -> std::result::Result<PeerResponse, AttemptError> {
        let resp = tokio::time::timeout(head, sender.send_request(req))
            .await
            .map_err(|_| {
                AttemptError::Failed(Failure::said(format!(
                    "no answer within {}s",
                    head.as_secs()
                )))
            })?
            .map_err(|e| AttemptError::Failed(Failure::of(e)))?;
        let (parts, body) = resp.into_parts();
        Ok(PeerResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            deadline,
            back: Some((self.idle.clone(), peer, sender)),
        })
    }

    /// One try of `ask` at `addr` (or on a kept connection).
    async fn attempt(
        &self,
        peer: PeerId,
        addr: &str,
        ask: &Ask<'_>,
        tls: Arc<rustls::ClientConfig>,
        total: Option<Duration>,
    ) -> std::result::Result<PeerResponse, AttemptError> {
        let deadline = total.map(|t| tokio::time::Instant::now() + t);
        let head = total.unwrap_or(READ_TIMEOUT).min(READ_TIMEOUT);
        let sender = self.connect(peer, addr, tls).await?;
        let req = ask
            .build(addr, ask.body())
            .map_err(|e| AttemptError::Failed(Failure::of(e)))?;
        self.exchange(peer, sender, req, head, deadline).await
    }

    /// Sends `GET path` to the first address of `peer` that answers,
    /// with the whole answer due within `total` if given.
    async fn get_once(
        &self,
        peer: &PeerRecord,
        path: &str,
        range: Option<(u64, u64)>,
        total: Option<Duration>,
    ) -> Result<PeerResponse> {
        let mut headers = Vec::new();
        if let Some((start, end)) = range
            && let Ok(v) = HeaderValue::from_str(&shoal_core::wire::range::request(start, end))
        {
            headers.push((header::RANGE, v));
        }
        let ask = Ask {
            method: Method::GET,
            path,
            headers,
            body: None,
        };
        self.send_once(peer, &ask, total).await
    }

    /// Sends `ask` to `peer`: on a kept connection if one is ready, else
    /// to its addresses (at most [`MAX_ADDRS`]), raced: one starts every
    /// [`RACE_STAGGER`], or at once when the one before failed, and the
    /// first answer wins. All of it within [`CONNECT_BUDGET`]. An address
    /// that answers with another peer's key is reported as such when no
    /// address answers rightly.
    async fn send_once(
        &self,
        peer: &PeerRecord,
        ask: &Ask<'_>,
        total: Option<Duration>,
    ) -> Result<PeerResponse> {
        use futures_util::StreamExt;
        let (tls, slot) = self.tls_for(peer.peer_id)?;
        if let Some(sender) = self.take_idle(peer.peer_id) {
            let addr = peer.addrs.first().map_or("peer", String::as_str);
            let deadline = total.map(|t| tokio::time::Instant::now() + t);
            let head = total.unwrap_or(READ_TIMEOUT).min(READ_TIMEOUT);
            let req = ask.build(addr, ask.body())?;
            // A kept connection the peer has closed meanwhile fails at
            // once; the request then goes out on a new one.
            if let Ok(resp) = self
                .exchange(peer.peer_id, sender, req, head, deadline)
                .await
            {
                return Ok(resp);
            }
        }
        // Direct addresses first, then relays.
        let mut addrs: Vec<&str> = peer
            .addrs
            .iter()
            .take(MAX_ADDRS)
            .map(String::as_str)
            .collect();
        addrs.sort_by_key(|a| a.starts_with(shoal_core::wire::RELAY_SCHEME));
        if addrs.is_empty() {
            return Err(NodeError::unreachable(peer, "it has no addresses"));
        }
        let deadline = tokio::time::Instant::now() + CONNECT_BUDGET;
        let mut racing = futures_util::stream::FuturesUnordered::new();
        let mut last = Failure::said("it has no addresses");
        let mut wrong = None;
        let mut next = 0;
        let mut start_next = |racing: &mut futures_util::stream::FuturesUnordered<_>| {
            let Some(addr) = addrs.get(next).copied() else {
                return false;
            };
            next += 1;
            racing.push(self.attempt(peer.peer_id, addr, ask, tls.clone(), total));
            true
        };
        start_next(&mut racing);
        loop {
            if racing.is_empty() && !start_next(&mut racing) {
                break;
            }
            let stagger = tokio::time::sleep(RACE_STAGGER);
            tokio::select! {
                r = racing.next() => match r {
                    Some(Ok(resp)) => return Ok(resp),
                    Some(Err(AttemptError::Failed(e))) => {
                        if let Some(w) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            wrong = Some(w);
                        }
                        last = e;
                        start_next(&mut racing);
                    }
                    None => {}
                },
                () = stagger => { start_next(&mut racing); }
                () = tokio::time::sleep_until(deadline) => {
                    last = Failure::said(format!(
                        "no address answered within {}s",
                        CONNECT_BUDGET.as_secs()
                    ));
                    break;
                }
            }
        }
        match wrong {
            Some(w) => Err(PeerError::WrongPeer(w).into()),
            None => Err(last.against(peer)),
        }
    }

    /// Posts `body` as JSON to `path`; one attempt, any answer returned.
    pub async fn post_json(
        &self,
        peer: &PeerRecord,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<PeerResponse> {
        let body = serde_json::to_vec(body)
            .map_err(|e| NodeError::Internal(format!("cannot encode a request: {e}")))?;
        let ask = Ask {
            method: Method::POST,
            path,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: Some(body.into()),
        };
        self.send_once(peer, &ask, None).await
    }

    /// Streams `body` (`len` bytes) to `path` with PUT, to the first
    /// address of `peer` that can be reached; one attempt (a stream cannot
    /// be replayed), any answer returned.
    pub async fn put_body(
        &self,
        peer: &PeerRecord,
        path: &str,
        body: RequestBody,
        len: u64,
    ) -> Result<PeerResponse> {
        let (tls, slot) = self.tls_for(peer.peer_id)?;
        let ask = Ask {
            method: Method::PUT,
            path,
            headers: vec![(header::CONTENT_LENGTH, HeaderValue::from(len))],
            body: None,
        };
        let deadline = Some(tokio::time::Instant::now() + UPLOAD_DEADLINE);
        let wrong = || slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Direct addresses first, then relays; the first that connects.
        let mut addrs: Vec<&String> = peer.addrs.iter().take(MAX_ADDRS).collect();
        addrs.sort_by_key(|a| a.starts_with(shoal_core::wire::RELAY_SCHEME));
        let addr = *addrs
            .first()
            .ok_or_else(|| NodeError::unreachable(peer, "it has no addresses"))?;
        let sender = match self.take_idle(peer.peer_id) {
            Some(s) => s,
            None => {
                let mut last = None;
                let mut found = None;
                for a in &addrs {
                    match self.connect(peer.peer_id, a, tls.clone()).await {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(AttemptError::Failed(e)) => last = Some(e),
                    }
                }
                match (found, last) {
                    (Some(s), _) => s,
                    (None, e) => {
                        let e = e.unwrap_or_else(|| Failure::said("it has no addresses"));
                        return Err(wrong()
                            .map_or_else(|| e.against(peer), |w| PeerError::WrongPeer(w).into()));
                    }
                }
            }
        };
        let req = ask.build(addr, body)?;
        match self
            .exchange(peer.peer_id, sender, req, UPLOAD_DEADLINE, deadline)
            .await
        {
            Ok(r) => Ok(r),
            Err(AttemptError::Failed(e)) => {
                Err(wrong().map_or_else(|| e.against(peer), |w| PeerError::WrongPeer(w).into()))
            }
        }
    }

    /// Starts fetching many small files at once (see
    /// [`crate::server::MAX_BUNDLE`] for the answer's framing). One attempt;
    /// the answer is returned whatever its status.
    pub async fn bundle(&self, peer: &PeerRecord, ids: &[ContentId]) -> Result<PeerResponse> {
        let body = serde_json::to_vec(ids)
            .map_err(|e| NodeError::Internal(format!("cannot encode a bundle request: {e}")))?;
        let ask = Ask {
            method: Method::POST,
            path: "/v1/bundle",
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: Some(body.into()),
        };
        self.send_once(peer, &ask, None).await
    }

    /// A successful answer to `GET path`, retried on passing failures, all
    /// within [`OPERATION_DEADLINE`]; each attempt's answer due in `total`.
    async fn get_ok(&self, peer: &PeerRecord, path: &str, total: Duration) -> Result<PeerResponse> {
        let attempts = with_retry(&self.retry, "peer request", || async {
            let resp = self.get_once(peer, path, None, Some(total)).await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let refused = refusal(peer, resp).await;
            if let NodeError::Peer(PeerError::Refused { message, .. }) = &refused
                && status.is_server_error()
            {
                return Err(NodeError::unreachable(
                    peer,
                    format!("server error {status}: {message}"),
                ));
            }
            Err(refused)
        });
        tokio::time::timeout(OPERATION_DEADLINE, attempts)
            .await
            .unwrap_or_else(|_| {
                Err(NodeError::unreachable(
                    peer,
                    format!(
                        "no answer within {}s, retries included",
                        OPERATION_DEADLINE.as_secs()
                    ),
                ))
            })
    }

    /// The files `peer` shares.
    pub async fn files(&self, peer: &PeerRecord) -> Result<Vec<FileEntry>> {
        let resp = self.get_ok(peer, "/v1/files", LISTING_DEADLINE).await?;
        let body = read_capped(resp, peer, MAX_LISTING, "file listing is too large").await?;
        serde_json::from_slice(&body).map_err(|e| {
            NodeError::protocol(peer.peer_id, format!("file listing is not valid: {e}"))
        })
    }

    /// The outboard of `cid` (see [`crate::pieces`]); at most `max` bytes.
    pub async fn outboard(&self, peer: &PeerRecord, cid: ContentId, max: u64) -> Result<Vec<u8>> {
        let resp = self
            .get_ok(
                peer,
                &format!("/v1/content/{cid}/outboard"),
                OUTBOARD_DEADLINE,
            )
            .await?;
        read_capped(resp, peer, max, "outboard is larger than the file needs").await
    }

    /// Starts fetching the bytes of `cid` (all of them, or `[start, end)`).
    /// One attempt; any answer is returned as it is, for the caller to
    /// judge its status (a busy or partial peer is not a failed one) and
    /// to retry on its own terms (see [`PeerClient::retry`]).
    pub async fn content(
        &self,
        peer: &PeerRecord,
        cid: ContentId,
        range: Option<(u64, u64)>,
    ) -> Result<PeerResponse> {
        self.get_once(peer, &format!("/v1/content/{cid}"), range, None)
            .await
    }

    /// The retry policy of this client.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// Which pieces of `cid` the peer holds.
    pub async fn have(&self, peer: &PeerRecord, cid: ContentId) -> Result<PieceMap> {
        let resp = self
            .get_ok(peer, &format!("/v1/content/{cid}/have"), HAVE_DEADLINE)
            .await?;
        let body = read_capped(resp, peer, MAX_PIECE_MAP, "piece map is too large").await?;
        serde_json::from_slice(&body)
            .map_err(|e| NodeError::protocol(peer.peer_id, format!("piece map is not valid: {e}")))
    }
}

/// A peer's error answer as [`PeerError::Refused`], in its own words
/// (its `{"error": ...}` body, escaped and cut for showing).
pub(crate) async fn refusal(peer: &PeerRecord, resp: PeerResponse) -> NodeError {
    let status = resp.status().as_u16();
    let message = crate::body::error_message(resp).await;
    NodeError::refused(peer.peer_id, status, message)
}

/// Reads a whole answer, refusing one longer than `max` bytes (announced
/// or sent) as a protocol error saying `too_large`.
async fn read_capped(
    mut resp: PeerResponse,
    peer: &PeerRecord,
    max: u64,
    too_large: &str,
) -> Result<Vec<u8>> {
    crate::body::read_capped(&mut resp, max)
        .await
        .map_err(|e| match e {
            crate::body::CapError::TooLarge => {
                NodeError::protocol(peer.peer_id, too_large.to_owned())
            }
            crate::body::CapError::Net(e) => {
                NodeError::unreachable_by(peer, e.to_string(), Some(Box::new(e)))
            }
        })
}
