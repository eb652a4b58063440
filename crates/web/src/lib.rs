//! The node's web UI and control API: a browser (or a script, or the
//! command line of the same data dir) steers the node through one
//! [`shoal_service::Service`], the same one the desktop app drives.
//!
//! # Where it listens
//!
//! By default on `127.0.0.1:5050` (another free port if that one is
//! taken); `--web-listen ADDR` or `[web] listen` elsewhere, `--no-web` or
//! `[web] disabled = true` not at all. It prints `web ui on URL` and
//! writes `control.json` (`{"url", "api_key"}`, owner-only) into the data
//! dir, removed when the node stops. A non-loopback address needs a
//! password (`shoal web-password`, kept hashed with argon2 in config.toml)
//! and is served over HTTPS (`[web] cert`/`key`, or a certificate made for
//! the node in `web/` of the data dir).
//!
//! # Who may call it
//!
//! - Every answer carries a CSP with no inline script and
//!   `frame-ancestors 'none'`, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer`; the API's answers `Cache-Control: no-store`.
//! - On loopback, a request whose `Host` is not the listen address,
//!   `localhost` or a loopback address with the port gets 403 (a page
//!   that a rebinding DNS points here carries its own name).
//! - `/api/v1/*` wants `Authorization: Bearer API_KEY` (scripts, the
//!   CLI), or the session cookie the page got (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` over HTTPS); without either, 401. A
//!   session's mutating requests (POST, PUT, DELETE) must carry its CSRF
//!   token in `X-Shoal-CSRF`, or get 403.
//! - With a password, the page gets a session only through
//!   `POST /api/v1/login {"password"}`; each failed login from an address
//!   makes its next one wait longer (0.5 s, doubling, at most 16 s).
//!
//! # The API (JSON; errors are `{"error": "what happened and what to do"}`)
//!
//! | | |
//! |---|---|
//! | `GET /api/v1/status` | name, id, `online`/`connecting`/`offline`, port, addresses, version |
//! | `GET /api/v1/peers` | peers with standing and file counts |
//! | `GET /api/v1/peers/{peer}/files` | a peer's listing (name, id or id prefix) |
//! | `GET /api/v1/transfers` | downloads and pushes; `/downloads`, `/pushes` for one kind |
//! | `GET /api/v1/transfers/{id}` | one transfer |
//! | `POST /api/v1/downloads` | `{"target", "dir"?}`: `PEER:PATH`, `PEER:DIR/`, a content id or a link → 202 `{"id"}` |
//! | `POST /api/v1/transfers/{id}/pause` | also `resume`, `cancel`; answers with the transfer |
//! | `POST /api/v1/transfers/{id}/open` | `{"passphrase"}`: opens a `needs-passphrase` download |
//! | `POST /api/v1/pushes` | `{"peer", "path"}` (a local file), or a multipart form with `peer` and `file` → 202 `{"id"}` |
//! | `POST /api/v1/shares` | multipart: `lock` (`plain`, `passphrase`, `peer`), `passphrase`, `peer`, then `file` → 201 `{"path"}` |
//! | `GET /api/v1/files` | what this node shares, each with a `shoal:` link |
//! | `GET /api/v1/settings`, `PUT /api/v1/settings` | config.toml as JSON (the password hash is never shown nor set here) |
//! | `GET /api/v1/log` | the activity log, oldest first |
//! | `GET /api/v1/events` | Server-Sent Events: `status`, `peers`, `transfer`, `progress`, `files`, `settings`, `log` |
//!
//! `progress` batches the running transfers that moved, at most four
//! times a second: `[{"id", "done", "total", "speed", "sources"}]`.
//!
//! ```text
//! POST /api/v1/downloads HTTP/1.1
//! Host: 127.0.0.1:5050
//! Authorization: Bearer 6f1c…
//! Content-Type: application/json
//!
//! {"target": "alice:docs/report.pdf"}
//!
//! HTTP/1.1 202 Accepted
//! Content-Type: application/json
//!
//! {"id": 3}
//!
//! GET /api/v1/events HTTP/1.1
//! Authorization: Bearer 6f1c…
//!
//! HTTP/1.1 200 OK
//! Content-Type: text/event-stream
//!
//! event: transfer
//! data: {"id":3,"direction":"download","name":"report.pdf","peer":"alice","state":"running",…}
//!
//! event: progress
//! data: [{"id":3,"done":1048576,"total":4194304,"speed":2097152,"sources":1}]
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use shoal_service::Service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod api;
mod assets;
pub mod auth;
pub mod control;
mod events;

pub use control::Control;

/// Where the web UI listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5050);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// Longest a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the web UI is served.
pub struct Options {
    /// Where: `None` for [`DEFAULT_LISTEN`] (or a free port if taken).
    pub listen: Option<SocketAddr>,
    /// The password's argon2 hash, if one is set.
    pub password: Option<String>,
    /// A certificate and key (PEM files) for HTTPS.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// The node's data dir (control.json, the made certificate, uploads).
    pub data_dir: PathBuf,
}

/// The web UI cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address cannot be bound.
    #[error(
        "cannot serve the web UI on {addr}: {source}; choose another address with --web-listen, or turn it off with --no-web"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A non-loopback address without a password.
    #[error(
        "the web UI on {0} would be reachable from other machines, so it needs a password: set one with `shoal web-password`, or listen on 127.0.0.1"
    )]
    NeedsPassword(SocketAddr),
    /// The password hash in config.toml cannot be used.
    #[error(
        "the web password in config.toml (`web_password`) is not a hash this node can check; set it again with `shoal web-password`"
    )]
    BadHash,
    /// The certificate cannot be used or made.
    #[error("cannot serve HTTPS: {0}")]
    Tls(String),
    /// control.json cannot be written.
    #[error("cannot write {path}: {source}; check the data dir's permissions")]
    Control {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What every request handler shares.
pub(crate) struct Ctx {
    pub(crate) service: Service,
    pub(crate) listen: SocketAddr,
    pub(crate) https: bool,
    pub(crate) password: Option<String>,
    pub(crate) api_key: String,
    pub(crate) sessions: auth::Sessions,
    pub(crate) throttle: auth::Throttle,
    /// Password checks (argon2, costly by design) run at most this many at once.
    pub(crate) logins: tokio::sync::Semaphore,
    pub(crate) cookie: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) progress: events::Progress,
}

impl Ctx {
    /// Whether the `Host` check applies (loopback listen addresses).
    pub(crate) fn checks_host(&self) -> bool {
        self.listen.ip().is_loopback()
    }
}

/// A running web UI; stops when dropped or [`Web::stop`]ped.
pub struct Web {
    url: String,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    data_dir: PathBuf,
    api_key: String,
}

impl Web {
    /// Binds and serves the web UI of `service`; writes control.json.
    pub async fn start(service: Service, opts: Options) -> Result<Web, WebError> {
        let want = opts.listen.unwrap_or(DEFAULT_LISTEN);
        if !want.ip().is_loopback() && opts.password.is_none() {
            return Err(WebError::NeedsPassword(want));
        }
        if let Some(h) = &opts.password
            && !auth::usable_hash(h)
        {
            return Err(WebError::BadHash);
        }
        let listener = match TcpListener::bind(want).await {
            Ok(l) => l,
            Err(e) if opts.listen.is_none() && e.kind() == std::io::ErrorKind::AddrInUse => {
                let other = SocketAddr::new(want.ip(), 0);
                let l = TcpListener::bind(other)
                    .await
                    .map_err(|source| WebError::Bind {
                        addr: other,
                        source,
                    })?;
                tracing::info!(
                    "port {} is taken (another node's web UI?); this one is on port {}",
                    want.port(),
                    l.local_addr().map_or(0, |a| a.port())
                );
                l
            }
            Err(source) => return Err(WebError::Bind { addr: want, source }),
        };
        let addr = listener
            .local_addr()
            .map_err(|source| WebError::Bind { addr: want, source })?;
        let tls = if addr.ip().is_loopback() && opts.cert.is_none() {
            None
        } else {
            Some(tls_acceptor(&opts, addr)?)
        };
        let cert_file = tls.as_ref().map(|_| match &opts.cert {
            Some((c, _)) => c.clone(),
            None => opts.data_dir.join("web").join("cert.pem"),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        let url = format!("{scheme}://{host}/");
        let api_key = auth::token();
        let cancel = CancellationToken::new();
        let ctx = Arc::new(Ctx {
            progress: events::Progress::start(service.clone(), cancel.clone()),
            service,
            listen: addr,
            https: tls.is_some(),
            password: opts.password,
            api_key: api_key.clone(),
            sessions: auth::Sessions::default(),
            throttle: auth::Throttle::default(),
            logins: tokio::sync::Semaphore::new(2),
            cookie: format!("shoal_session_{}", addr.port()),
            data_dir: opts.data_dir.clone(),
        });
        let app = api::router(ctx);
        // Uploads a crash left half-written go; the node is the only user.
        let _ = std::fs::remove_dir_all(opts.data_dir.join("uploads"));
        Control::write(&opts.data_dir, &url, &api_key, cert_file.as_deref()).map_err(|source| {
            WebError::Control {
                path: opts.data_dir.join(control::CONTROL_FILE),
                source,
            }
        })?;
        let task = tokio::spawn(serve(listener, tls, app, cancel.clone()));
        Ok(Web {
            url,
            addr,
            cancel,
            task: Some(task),
            data_dir: opts.data_dir,
            api_key,
        })
    }

    /// Where to point a browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key scripts send as `Authorization: Bearer KEY`.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Stops serving and removes control.json.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        Control::remove(&self.data_dir, &self.api_key);
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.cancel.cancel();
        if self.task.is_some() {
            Control::remove(&self.data_dir, &self.api_key);
        }
    }
}

/// Accepts connections until cancelled, at most [`MAX_CONNECTIONS`] at once.
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    cancel: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "web ui: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = app
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let tls = tls.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let served = match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        r = conn => r,
                        () = cancel.cancelled() => Ok(()),
                    }
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        r = conn => r,
                        () = cancel.cancelled() => Ok(()),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, %peer, "web ui connection ended");
            }
        });
    }
}

/// The TLS acceptor: the given certificate, or one made for this node
/// (ECDSA P-256, which browsers take; kept in `web/` of the data dir).
fn tls_acceptor(opts: &Options, addr: SocketAddr) -> Result<tokio_rustls::TlsAcceptor, WebError> {
    let (cert_pem, key_pem) = match &opts.cert {
        Some((c, k)) => (read(c)?, read(k)?),
        None => own_certificate(&opts.data_dir, addr)?,
    };
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| WebError::Tls(format!("the certificate is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(WebError::Tls(
            "the certificate file holds no certificate".into(),
        ));
    }
    let key = <rustls::pki_types::PrivateKeyDer<'static> as rustls::pki_types::pem::PemObject>::from_pem_slice(
        key_pem.as_bytes(),
    )
    .map_err(|e| WebError::Tls(format!("the key file holds no usable private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(shoal_node::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebError::Tls(format!("the certificate and key do not fit: {e}")))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &Path) -> Result<String, WebError> {
    std::fs::read_to_string(path)
        .map_err(|e| WebError::Tls(format!("cannot read {}: {e}", path.display())))
}

/// The node's own web certificate, made on first use.
fn own_certificate(data_dir: &Path, addr: SocketAddr) -> Result<(String, String), WebError> {
    let dir = data_dir.join("web");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if let (Ok(c), Ok(k)) = (
        std::fs::read_to_string(&cert),
        std::fs::read_to_string(&key),
    ) {
        return Ok((c, k));
    }
    let fail = |e: &dyn std::fmt::Display| WebError::Tls(format!("cannot make a certificate: {e}"));
    let pair = rcgen::KeyPair::generate().map_err(|e| fail(&e))?;
    // The names the node's own URLs and the command line use, and the
    // address it listens on.
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
        names.push(addr.ip().to_string());
    }
    let params = rcgen::CertificateParams::new(names).map_err(|e| fail(&e))?;
    let made = params.self_signed(&pair).map_err(|e| fail(&e))?;
    let (c, k) = (made.pem(), pair.serialize_pem());
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    shoal_fs::durable::replace(&cert, c.as_bytes(), Default::default()).map_err(|e| fail(&e))?;
    shoal_fs::durable::replace(
        &key,
        k.as_bytes(),
        shoal_fs::durable::Replace {
            private: true,
            sync: true,
        },
    )
    .map_err(|e| fail(&e))?;
    Ok((c, k))
}
