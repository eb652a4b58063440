//! The client side of the peer API: mutual TLS with the PeerId pinned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_core::config::RetryConfig;
use shoal_core::wire::{ErrorBody, FileEntry, PeerRecord, PieceMap};
use shoal_core::{ContentId, Identity, PeerId};

use crate::error::{NodeError, Result};
use crate::rate::RateLimit;
use crate::retry::with_retry;
use crate::tls::{self, MismatchSlot};
use crate::tracker_client::describe;

/// Most bytes of a file listing we accept from a peer.
const MAX_LISTING: u64 = 64 * 1024 * 1024;
/// Most bytes of a piece map we accept (a 4 TiB file at 256 KiB pieces).
const MAX_PIECE_MAP: u64 = 8 * 1024 * 1024;

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
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| NodeError::Internal(format!("cannot build peer client: {e}")))?;
        map.insert(peer, (client.clone(), slot.clone()));
        Ok((client, slot))
    }

    /// Sends `GET path` to the first address of `peer` that answers.
    async fn get_once(
        &self,
        peer: &PeerRecord,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<reqwest::Response> {
        self.send_once(peer, |client, addr| {
            let req = client.get(format!("https://{addr}{path}"));
            match range {
                Some((start, end)) => {
                    req.header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1))
                }
                None => req,
            }
        })
        .await
    }

    /// Sends the request `make` builds to the first address of `peer` that
    /// answers. Pinning failures are final; other connection failures try
    /// the next address.
    async fn send_once(
        &self,
        peer: &PeerRecord,
        make: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let (client, slot) = self.client(peer.peer_id)?;
        let mut last = String::from("it has no addresses");
        for addr in &peer.addrs {
            match make(&client, addr).send().await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    if let Some(wrong) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        return Err(NodeError::WrongPeer(wrong));
                    }
                    last = describe(&e);
                }
            }
        }
        Err(NodeError::unreachable(peer, last))
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

    async fn get_ok(
        &self,
        peer: &PeerRecord,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<reqwest::Response> {
        with_retry(&self.retry, "peer request", || async {
            let resp = self.get_once(peer, path, range).await?;
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
        })
        .await
    }

    /// The files `peer` shares.
    pub async fn files(&self, peer: &PeerRecord) -> Result<Vec<FileEntry>> {
        let resp = self.get_ok(peer, "/v1/files", None).await?;
        let body = read_capped(resp, peer, MAX_LISTING, "file listing is too large").await?;
        serde_json::from_slice(&body).map_err(|e| NodeError::Protocol {
            peer: peer.peer_id,
            reason: format!("file listing is not valid: {e}"),
        })
    }

    /// The outboard of `cid` (see [`crate::pieces`]); at most `max` bytes.
    pub async fn outboard(&self, peer: &PeerRecord, cid: ContentId, max: u64) -> Result<Vec<u8>> {
        let resp = self
            .get_ok(peer, &format!("/v1/content/{cid}/outboard"), None)
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
        self.get_once(peer, &format!("/v1/content/{cid}"), range)
            .await
    }

    /// The retry policy of this client.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// Which pieces of `cid` the peer holds.
    pub async fn have(&self, peer: &PeerRecord, cid: ContentId) -> Result<PieceMap> {
        let resp = self
            .get_ok(peer, &format!("/v1/content/{cid}/have"), None)
            .await?;
        let body = read_capped(resp, peer, MAX_PIECE_MAP, "piece map is too large").await?;
        serde_json::from_slice(&body).map_err(|e| NodeError::Protocol {
            peer: peer.peer_id,
            reason: format!("piece map is not valid: {e}"),
        })
    }
}

/// A peer's error answer as [`NodeError::PeerRefused`], in its own words
/// (its `{"error": ...}` body).
pub(crate) async fn refusal(peer: &PeerRecord, resp: reqwest::Response) -> NodeError {
    let status = resp.status().as_u16();
    let body = read_capped(resp, peer, 64 * 1024, "error answer is too large")
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map_or_else(|_| "no explanation given".into(), |b| b.error);
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
    let refuse = || NodeError::Protocol {
        peer: peer.peer_id,
        reason: too_large.to_owned(),
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(refuse());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| NodeError::unreachable(peer, describe(&e)))?
    {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(refuse());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
