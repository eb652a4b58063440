//! The client side of the peer API: mutual TLS with the PeerId pinned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_core::config::RetryConfig;
use shoal_core::wire::{FileEntry, PeerRecord, PieceMap};
use shoal_core::{ContentId, Identity, PeerId};

use crate::error::{NodeError, Result};
use crate::rate::RateLimit;
use crate::retry::with_retry;
use crate::tls::{self, MismatchSlot};
use crate::tracker_client::describe;

use crate::body::{MAX_LISTING, MAX_PIECE_MAP};

/// Most addresses of one peer that are tried.
pub const MAX_ADDRS: usize = shoal_core::wire::MAX_ADDRS;
/// Longest time spent reaching a peer, all its addresses together.
pub const CONNECT_BUDGET: Duration = Duration::from_secs(20);
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

/// Connects to peers as `identity`, one pinned HTTPS client per peer.
pub struct PeerClient {
    identity: Arc<Identity>,
    retry: RetryConfig,
    download: RateLimit,
    clients: Mutex<HashMap<PeerId, (reqwest::Client, MismatchSlot)>>,
}

impl PeerClient {
    /// A client that presents `identity` to the peers it calls.
    pub fn new(identity: Arc<Identity>, retry: RetryConfig) -> Self {
        Self {
            identity,
            retry,
            download: RateLimit::unlimited(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The same client, receiving at most this fast in all.
    pub fn with_download_limit(mut self, limit: RateLimit) -> Self {
        self.download = limit;
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

    fn client(&self, peer: PeerId) -> Result<(reqwest::Client, MismatchSlot)> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&peer) {
            return Ok(c.clone());
        }
        let (cfg, slot) = tls::client_config(&self.identity, peer)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(cfg)
            .http1_only()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| NodeError::Internal(format!("cannot build peer client: {e}")))?;
        map.insert(peer, (client.clone(), slot.clone()));
        Ok((client, slot))
    }

    /// Sends `GET path` to the first address of `peer` that answers,
    /// with the whole answer due within `total` if given.
    async fn get_once(
        &self,
        peer: &PeerRecord,
        path: &str,
        range: Option<(u64, u64)>,
        total: Option<Duration>,
    ) -> Result<reqwest::Response> {
        self.send_once(peer, |client, addr| {
            let mut req = client.get(format!("https://{addr}{path}"));
            if let Some(t) = total {
                req = req.timeout(t);
            }
            match range {
                Some((start, end)) => {
                    req.header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1))
                }
                None => req,
            }
        })
        .await
    }

    /// Sends the request `make` builds to the addresses of `peer` (at most
    /// [`MAX_ADDRS`]), raced: one starts every [`RACE_STAGGER`], or at once
    /// when the one before failed, and the first answer wins. All of it
    /// within [`CONNECT_BUDGET`]. An address that answers with another
    /// peer's key is reported as such when no address answers rightly.
    async fn send_once(
        &self,
        peer: &PeerRecord,
        make: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        use futures_util::StreamExt;
        let (client, slot) = self.client(peer.peer_id)?;
        let addrs: Vec<&String> = peer.addrs.iter().take(MAX_ADDRS).collect();
        if addrs.is_empty() {
            return Err(NodeError::unreachable(peer, "it has no addresses"));
        }
        let deadline = tokio::time::Instant::now() + CONNECT_BUDGET;
        let mut pending = addrs.into_iter();
        let mut racing = futures_util::stream::FuturesUnordered::new();
        let mut last = String::from("it has no addresses");
        let mut wrong = None;
        let start_next = |racing: &mut futures_util::stream::FuturesUnordered<_>,
                          pending: &mut std::vec::IntoIter<&String>| {
            if let Some(addr) = pending.next() {
                racing.push(make(&client, addr).send());
                true
            } else {
                false
            }
        };
        start_next(&mut racing, &mut pending);
        loop {
            if racing.is_empty() && !start_next(&mut racing, &mut pending) {
                break;
            }
            let stagger = tokio::time::sleep(RACE_STAGGER);
            tokio::select! {
                r = racing.next() => match r {
                    Some(Ok(resp)) => return Ok(resp),
                    Some(Err(e)) => {
                        if let Some(w) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            wrong = Some(w);
                        }
                        last = describe(&e);
                        start_next(&mut racing, &mut pending);
                    }
                    None => {}
                },
                () = stagger => { start_next(&mut racing, &mut pending); }
                () = tokio::time::sleep_until(deadline) => {
                    last = format!("no address answered within {}s", CONNECT_BUDGET.as_secs());
                    break;
                }
            }
        }
        match wrong {
            Some(w) => Err(NodeError::WrongPeer(w)),
            None => Err(NodeError::unreachable(peer, last)),
        }
    }

    /// Posts `body` as JSON to `path`; one attempt, any answer returned.
    pub async fn post_json(
        &self,
        peer: &PeerRecord,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::Response> {
        let body = serde_json::to_vec(body)
            .map_err(|e| NodeError::Internal(format!("cannot encode a request: {e}")))?;
        self.send_once(peer, |client, addr| {
            client
                .post(format!("https://{addr}{path}"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await
    }

    /// Streams `body` (`len` bytes) to `path` with PUT; one attempt (a
    /// stream cannot be replayed), any answer returned.
    pub async fn put_body(
        &self,
        peer: &PeerRecord,
        path: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<reqwest::Response> {
        let (client, slot) = self.client(peer.peer_id)?;
        let addr = peer
            .addrs
            .first()
            .ok_or_else(|| NodeError::unreachable(peer, "it has no addresses"))?;
        client
            .put(format!("https://{addr}{path}"))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .timeout(Duration::from_secs(24 * 60 * 60))
            .send()
            .await
            .map_err(|e| {
                if let Some(wrong) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return NodeError::WrongPeer(wrong);
                }
                NodeError::unreachable(peer, describe(&e))
            })
    }

    /// Starts fetching many small files at once (see
    /// [`crate::server::MAX_BUNDLE`] for the answer's framing). One attempt;
    /// the answer is returned whatever its status.
    pub async fn bundle(&self, peer: &PeerRecord, ids: &[ContentId]) -> Result<reqwest::Response> {
        let body = serde_json::to_vec(ids)
            .map_err(|e| NodeError::Internal(format!("cannot encode a bundle request: {e}")))?;
        self.send_once(peer, |client, addr| {
            client
                .post(format!("https://{addr}/v1/bundle"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await
    }

    /// A successful answer to `GET path`, retried on passing failures, all
    /// within [`OPERATION_DEADLINE`]; each attempt's answer due in `total`.
    async fn get_ok(
        &self,
        peer: &PeerRecord,
        path: &str,
        total: Duration,
    ) -> Result<reqwest::Response> {
        let attempts = with_retry(&self.retry, "peer request", || async {
            let resp = self.get_once(peer, path, None, Some(total)).await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let refused = refusal(peer, resp).await;
            if let NodeError::PeerRefused { message, .. } = &refused
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
        serde_json::from_slice(&body).map_err(|e| NodeError::Protocol {
            peer: peer.peer_id,
            reason: format!("file listing is not valid: {e}"),
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
    ) -> Result<reqwest::Response> {
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
        serde_json::from_slice(&body).map_err(|e| NodeError::Protocol {
            peer: peer.peer_id,
            reason: format!("piece map is not valid: {e}"),
        })
    }
}

/// A peer's error answer as [`NodeError::PeerRefused`], in its own words
/// (its `{"error": ...}` body, escaped and cut for showing).
pub(crate) async fn refusal(peer: &PeerRecord, resp: reqwest::Response) -> NodeError {
    let status = resp.status().as_u16();
    let message = crate::body::error_message(resp).await;
    NodeError::PeerRefused {
        peer: peer.peer_id,
        status,
        message,
    }
}

/// Reads a whole answer, refusing one longer than `max` bytes (announced
/// or sent) as a protocol error saying `too_large`.
async fn read_capped(
    mut resp: reqwest::Response,
    peer: &PeerRecord,
    max: u64,
    too_large: &str,
) -> Result<Vec<u8>> {
    crate::body::read_capped(&mut resp, max)
        .await
        .map_err(|e| match e {
            crate::body::CapError::TooLarge => NodeError::Protocol {
                peer: peer.peer_id,
                reason: too_large.to_owned(),
            },
            crate::body::CapError::Net(e) => NodeError::unreachable(peer, describe(&e)),
        })
}
