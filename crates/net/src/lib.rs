//! How Shoal's servers take connections: the tracker's, the node's mutual
//! TLS API and the seed-compatible API all accept through [`serve`], so
//! every listener has the same defences against clients that hold
//! resources without using them, before any authentication:
//!
//! - a cap on connections in all and per client address (an IPv4 address
//!   or an IPv6 /64); a client over its share is closed at once, others
//!   keep being served;
//! - a deadline for each request's headers (hyper's, which also closes
//!   idle keep-alive connections);
//! - request bodies must keep a minimum rate ([`MinRateBody`]): time spent
//!   waiting for a client's bytes is measured, so a body dripping a byte
//!   every few seconds is cut off, while a server that reads slowly on
//!   purpose (a rate limit) costs the client nothing;
//! - a client that stops reading its answer is cut off after
//!   [`Limits::write_stall`] ([`Guarded`]), freeing what the answer held;
//! - accept errors (out of file descriptors) pause the loop, never stop
//!   it, and [`raise_open_file_limit`] lifts the soft limit at start;
//! - on shutdown the loop stops accepting, tells every connection to
//!   finish its request, and waits for them (at most [`DRAIN`]).
//!
//! Not here: what a request may ask for (each API caps its own bodies and
//! answers), and rate limits of bytes (the node's `RateLimit`).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod body;
mod io;
pub mod rate;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use body::MinRateBody;
pub use io::Guarded;
pub use rate::RateLimit;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for open connections to finish.
pub const DRAIN: Duration = Duration::from_secs(3);

/// What one listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, in all; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections open at once from one client network.
    pub per_client: usize,
    /// Time for a request's headers (and for an idle keep-alive).
    pub header_timeout: Duration,
    /// Longest a write may wait for a client that does not read.
    pub write_stall: Duration,
    /// Slowest a request body may arrive, in bytes per second of waiting.
    pub min_body_rate: u64,
    /// Waiting allowed before [`Limits::min_body_rate`] applies.
    pub body_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            per_client: 64,
            header_timeout: Duration::from_secs(20),
            write_stall: Duration::from_secs(30),
            min_body_rate: 1024,
            body_grace: Duration::from_secs(10),
        }
    }
}

/// The client network an address counts against: the IPv4 address, or
/// the IPv6 /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Connections open per client network.
#[derive(Default, Clone)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection's place in [`PerClient`], given back when dropped.
struct Slot {
    map: PerClient,
    key: IpAddr,
}

impl PerClient {
    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let key = client_key(ip);
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            map: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// Accepts connections on `listener` until `shutdown`, within `limits`,
/// handing each (wrapped in [`Guarded`]) to `handle` on its own task; then
/// drains them (see the crate docs).
pub async fn serve<H, Fut>(
    listener: TcpListener,
    limits: Limits,
    shutdown: CancellationToken,
    handle: H,
) where
    H: Fn(Guarded<TcpStream>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::default();
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = shutdown.cancelled() => break,
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors or similar: pause, keep going.
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = shutdown.cancelled() => break,
                    }
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(slot) = per_client.take(remote.ip(), limits.per_client) else {
            tracing::debug!(%remote, "closing a connection: that client has too many open");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let io = Guarded::new(tcp, limits.write_stall);
        let conn = handle(io, remote);
        tasks.spawn(async move {
            let _held = (permit, slot);
            conn.await;
        });
    }
    tasks.close();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        tracing::debug!("connections still open after the drain; closing them");
    }
}

/// Serves HTTP/1.1 requests of one connection with `app` until the client
/// leaves or `shutdown` (then the request under way finishes first, for at
/// most [`DRAIN`]). `tag` adds what the handlers need to know about the
/// connection to each request's extensions. Request bodies go through
/// [`MinRateBody`].
pub async fn serve_http<I, T>(
    io: I,
    app: axum::Router,
    limits: Limits,
    tag: T,
    shutdown: CancellationToken,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: Fn(&mut axum::http::Extensions) + Clone + Send + Sync + 'static,
{
    use tower::ServiceExt;
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let tag = tag.clone();
        async move {
            let mut req = req.map(|b| {
                axum::body::Body::new(MinRateBody::new(b, limits.min_body_rate, limits.body_grace))
            });
            tag(req.extensions_mut());
            let resp = match app.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN, conn).await.unwrap_or(Ok(()))
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit (at
/// most 1,048,576), so caps on connections, not the kernel, decide how
/// many clients a server holds. Returns the limit in force.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut lim = getrlimit(Resource::Nofile);
        let hard = lim.maximum.unwrap_or(1 << 20).min(1 << 20);
        if lim.current.is_some_and(|c| c < hard) {
            lim.current = Some(hard);
            if setrlimit(Resource::Nofile, lim).is_err() {
                return getrlimit(Resource::Nofile).current;
            }
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}
