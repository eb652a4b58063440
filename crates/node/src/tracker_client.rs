//! The client side of the tracker API, with retry on passing failures.

use std::time::Duration;

use serde::de::DeserializeOwned;
use shoal_core::config::RetryConfig;
use shoal_core::wire::{
    Announce, Deregistration, PeerPage, PeerRecord, Probe, Providers, Registered, Registration,
};
use shoal_core::{ContentId, PeerId};

use crate::error::{NodeError, Result, TrackerError};
use crate::retry::with_retry;

/// Most peers taken from a tracker's list, all pages together.
const MAX_PEERS: usize = 100_000;
/// Most providers taken from one answer.
const MAX_PROVIDERS: usize = 1000;

/// Talks to one tracker.
#[derive(Clone)]
pub struct TrackerClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    retry: RetryConfig,
}

impl std::fmt::Debug for TrackerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerClient")
            .field("base", &self.base)
            .finish()
    }
}

impl TrackerClient {
    /// A client for the tracker at `url` (`http://host:port` or `https://...`).
    pub fn new(url: &str, token: Option<String>, retry: RetryConfig) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if reqwest::Url::parse(&base).map_or(true, |u| {
            !matches!(u.scheme(), "http" | "https") || u.host().is_none()
        }) {
            return Err(NodeError::Tracker(TrackerError::BadUrl {
                url: shoal_core::text::bounded(url, 200),
                reason: "give an http:// or https:// URL, for example http://127.0.0.1:5000",
            }));
        }
        crate::tls::provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            // A redirect would re-send signed registrations elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| NodeError::Internal(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            base,
            token,
            http,
            retry,
        })
    }

    /// The same tracker with another retry policy.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same tracker, tried once per call (for callers whose next
    /// attempt is elsewhere: the next tracker, the next refresh).
    pub fn once(&self) -> Self {
        let mut retry = self.retry;
        retry.attempts = 1;
        self.clone().with_retry(retry)
    }

    /// The retry policy in use.
    pub fn retry(&self) -> RetryConfig {
        self.retry
    }

    /// The tracker's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> NodeError {
        self.unreachable_by(reason, None)
    }

    /// The tracker could not be reached; `e` said why.
    fn failed(&self, e: reqwest::Error) -> NodeError {
        self.unreachable_by(describe(&e), Some(Box::new(e)))
    }

    fn unreachable_by(
        &self,
        reason: impl std::fmt::Display,
        source: Option<crate::error::Cause>,
    ) -> NodeError {
        TrackerError::Unreachable {
            url: self.base.clone(),
            reason: reason.to_string(),
            source,
        }
        .into()
    }

    async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&(dyn erased::Body + Sync)>,
    ) -> Result<Option<T>> {
        self.call_capped(what, method, path, body, crate::body::MAX_SMALL)
            .await
    }

    async fn call_capped<T: DeserializeOwned>(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&(dyn erased::Body + Sync)>,
        max: u64,
    ) -> Result<Option<T>> {
        with_retry(&self.retry, what, || async {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_json());
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| self.failed(e))?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND && what.starts_with("look up") {
                return Ok(None);
            }
            if status.is_server_error() {
                // A Shoal tracker says why (its store is down, say);
                // a proxy in front of it may not.
                let why = crate::body::error_message(resp).await;
                return Err(self.unreachable(if why == crate::body::NO_EXPLANATION {
                    format!("server error {status}")
                } else {
                    format!("server error {status}: {why}")
                }));
            }
            if status.is_redirection() {
                // Not followed: a signed registration must never be re-sent
                // to wherever a tracker (or whoever answers for it) says.
                return Err(NodeError::Tracker(TrackerError::Refused {
                    url: self.base.clone(),
                    status: status.as_u16(),
                    message: "it answered with a redirect, which Shoal does not follow; give the tracker's real URL".into(),
                }));
            }
            if !status.is_success() {
                let message = crate::body::error_message(resp).await;
                return Err(NodeError::Tracker(TrackerError::Refused {
                    url: self.base.clone(),
                    status: status.as_u16(),
                    message,
                }));
            }
            if status == reqwest::StatusCode::NO_CONTENT {
                return Ok(None);
            }
            let bytes = crate::body::read_capped(&mut resp, max)
                .await
                .map_err(|e| match e {
                    crate::body::CapError::TooLarge => {
                        self.unreachable(format!("its answer is larger than {max} bytes"))
                    }
                    crate::body::CapError::Net(e) => self.failed(e),
                })?;
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                self.unreachable_by(
                    format!("answer is not what a Shoal tracker sends: {e}"),
                    Some(Box::new(e)),
                )
            })
        })
        .await
    }

    fn expect<T>(&self, v: Option<T>) -> Result<T> {
        v.ok_or_else(|| self.unreachable("empty answer"))
    }

    /// Registers or renews a peer.
    pub async fn register(&self, reg: &Registration) -> Result<Registered> {
        let path = format!("/v1/peers/{}", reg.peer_id);
        let r = self
            .call("register", reqwest::Method::PUT, &path, Some(reg))
            .await?;
        self.expect(r)
    }

    /// Removes a peer at once. A tracker that does not know the peer (it
    /// restarted, or the record expired) has nothing to remove: success.
    pub async fn deregister(&self, d: &Deregistration) -> Result<()> {
        let path = format!("/v1/peers/{}", d.peer_id);
        match self
            .call::<serde_json::Value>("deregister", reqwest::Method::DELETE, &path, Some(d))
            .await
        {
            Ok(_) | Err(NodeError::Tracker(TrackerError::Refused { status: 404, .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the tracker to dial `id` back at its registered addresses and
    /// say whether it is reachable from outside.
    pub async fn probe(&self, id: PeerId) -> Result<Probe> {
        let path = format!("/v1/peers/{id}/probe");
        let r = self
            .call("reachability check", reqwest::Method::POST, &path, None)
            .await?;
        self.expect(r)
    }

    /// Replaces the set of content ids a peer offers.
    pub async fn announce(&self, a: &Announce) -> Result<()> {
        self.call::<serde_json::Value>("announce", reqwest::Method::PUT, "/v1/providers", Some(a))
            .await
            .map(|_| ())
    }

    /// Every live peer (all pages).
    pub async fn peers(&self) -> Result<Vec<PeerRecord>> {
        let mut out = Vec::new();
        let mut after: Option<PeerId> = None;
        // Bounded: a tracker that keeps handing out pages cannot hold us forever.
        for _ in 0..1000 {
            let path = match after {
                Some(a) => format!("/v1/peers?limit=1000&after={a}"),
                None => "/v1/peers?limit=1000".to_owned(),
            };
            let page: PeerPage = self.expect(
                self.call_capped(
                    "list peers",
                    reqwest::Method::GET,
                    &path,
                    None,
                    crate::body::MAX_TRACKER_PAGE,
                )
                .await?,
            )?;
            out.extend(page.peers.into_iter().map(PeerRecord::sanitized));
            if out.len() > MAX_PEERS {
                out.truncate(MAX_PEERS);
                return Ok(out);
            }
            match page.next {
                Some(n) if Some(n) != after => after = Some(n),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// One live peer, or `None` if the tracker does not know it.
    pub async fn peer(&self, id: PeerId) -> Result<Option<PeerRecord>> {
        let rec: Option<PeerRecord> = self
            .call(
                "look up peer",
                reqwest::Method::GET,
                &format!("/v1/peers/{id}"),
                None,
            )
            .await?;
        Ok(rec.filter(|r| r.peer_id == id).map(PeerRecord::sanitized))
    }

    /// Live peers offering `cid`.
    pub async fn providers(&self, cid: ContentId) -> Result<Vec<PeerRecord>> {
        let p: Option<Providers> = self
            .call_capped(
                "look up providers",
                reqwest::Method::GET,
                &format!("/v1/providers/{cid}"),
                None,
                crate::body::MAX_TRACKER_PAGE,
            )
            .await?;
        let mut peers: Vec<PeerRecord> = p
            .filter(|p| p.content_id == cid)
            .map(|p| p.peers)
            .unwrap_or_default()
            .into_iter()
            .map(PeerRecord::sanitized)
            .collect();
        peers.truncate(MAX_PROVIDERS);
        Ok(peers)
    }
}

/// The shortest useful description of a reqwest error: its innermost cause.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

mod erased {
    /// A JSON body, type-erased so `call` stays one function.
    pub trait Body {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Body for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}
