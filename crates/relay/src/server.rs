//! The relay server (see the crate docs for the protocol).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shoal_core::PeerId;
use shoal_net::{Guarded, Limits, RateLimit};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::prefixed::Prefixed;
use crate::proto::{self, Frame, MAGIC, NONCE_LEN, Role};

/// How often a listener is pinged.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A listener that has not answered a ping this long is dropped.
const LISTENER_SILENCE: Duration = Duration::from_secs(60);
/// How long a `connect` waits for the other peer to accept.
const ACCEPT_WAIT: Duration = Duration::from_secs(10);
/// Invites waiting to be sent to one listener; more are refused as busy.
const INVITES_QUEUED: usize = 16;
/// Bytes read at once from each side of a busy pipe.
const PIPE_BUF: usize = 256 * 1024;
/// What a pipe reads with until a read fills it (an idle pipe holds
/// only this).
const FIRST_BUF: usize = 16 * 1024;
/// Longest a write into a pipe may wait for the other side to read.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// What a relay allows.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// TCP connections open at once, in all (listeners, pipes, handshakes).
    pub max_connections: usize,
    /// TCP connections open at once from one client network.
    pub per_client: usize,
    /// Pipes open at once with one peer at either end.
    pub pipes_per_peer: usize,
    /// Bytes per second through all pipes of one peer (`None`: no cap).
    pub rate_per_peer: Option<u64>,
    /// Bytes per second through the whole relay (`None`: no cap).
    pub rate_total: Option<u64>,
    /// A pipe with no byte either way this long is closed.
    pub idle_timeout: Duration,
    /// Time for the handshake, from the first byte to the hello.
    pub hello_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            per_client: 256,
            pipes_per_peer: 32,
            rate_per_peer: None,
            rate_total: None,
            idle_timeout: Duration::from_secs(300),
            hello_timeout: Duration::from_secs(10),
        }
    }
}

type Conn = Guarded<TcpStream>;

struct Listening {
    invites: mpsc::Sender<u64>,
    generation: u64,
}

/// A `connect` waiting for its peer's `accept`. The acceptor's task
/// lives as long as the pipe (so its connection stays counted): it waits
/// on the receiver of the sender it hands over with its stream.
struct Pending {
    to: PeerId,
    stream: oneshot::Sender<(Conn, oneshot::Sender<()>)>,
}

struct PeerUse {
    pipes: usize,
    rate: RateLimit,
}

struct Inner {
    config: RelayConfig,
    listeners: Mutex<HashMap<PeerId, Listening>>,
    pending: Mutex<HashMap<u64, Pending>>,
    peers: Mutex<HashMap<PeerId, PeerUse>>,
    total: RateLimit,
    metrics: Metrics,
    generation: AtomicU64,
    epoch: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a client is sent away.
struct Refusal {
    /// For the metrics.
    reason: &'static str,
    /// For the client; `None` closes without a word (not a relay client).
    message: Option<String>,
}

impl Refusal {
    fn said(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: Some(message.into()),
        }
    }

    fn silent(reason: &'static str) -> Self {
        Self {
            reason,
            message: None,
        }
    }
}

/// A pipe's place in its peers' counts, given back when dropped.
struct PipeSlot {
    inner: Arc<Inner>,
    peers: Vec<PeerId>,
}

impl Drop for PipeSlot {
    fn drop(&mut self) {
        let mut m = lock(&self.inner.peers);
        for p in &self.peers {
            if let Some(u) = m.get_mut(p) {
                u.pipes -= 1;
                if u.pipes == 0 {
                    m.remove(p);
                }
            }
        }
    }
}

/// Counts a connection while it lives.
struct Counted(prometheus_client::metrics::gauge::Gauge);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::getrandom(&mut b).is_err() {
        // No system randomness: fall back to a seeded generator rather
        // than serve no one; tokens are checked against the peer anyway.
        b.iter_mut().for_each(|x| *x = fastrand::u8(..));
    }
    b
}

/// Serves the relay on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, config: RelayConfig, shutdown: CancellationToken) {
    let limits = Limits {
        max_connections: config.max_connections,
        per_client: config.per_client,
        header_timeout: config.hello_timeout,
        write_stall: Duration::from_secs(30),
        min_body_rate: 1024,
        body_grace: Duration::from_secs(10),
    };
    let inner = Arc::new(Inner {
        total: RateLimit::new(config.rate_total),
        config,
        listeners: Mutex::default(),
        pending: Mutex::default(),
        peers: Mutex::default(),
        metrics: Metrics::new(),
        generation: AtomicU64::new(1),
        epoch: Instant::now(),
    });
    let app = {
        let inner = inner.clone();
        axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let text = inner.metrics.render();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            text,
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }))
    };
    let stop = shutdown.clone();
    shoal_net::serve(listener, limits, shutdown, move |io, remote| {
        let inner = inner.clone();
        let app = app.clone();
        let shutdown = stop.clone();
        async move { inner.handle(io, remote, app, limits, shutdown).await }
    })
    .await;
}

impl Inner {
    async fn handle(
        self: Arc<Self>,
        mut io: Conn,
        remote: SocketAddr,
        app: axum::Router,
        limits: Limits,
        shutdown: CancellationToken,
    ) {
        self.metrics.connections.inc();
        let _counted = Counted(self.metrics.connections.clone());
        let mut head = [0u8; 4];
        match tokio::time::timeout(self.config.hello_timeout, io.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            _ => return self.metrics.refuse("silent"),
        }
        if &head == b"GET " || &head == b"HEAD" {
            let io = Prefixed::new(&head, io);
            let _ = shoal_net::serve_http(io, app, limits, |_| {}, shutdown).await;
            return;
        }
        let hello =
            tokio::time::timeout(self.config.hello_timeout, self.hello(&mut io, head)).await;
        let (peer, role) = match hello {
            Ok(Ok(h)) => h,
            Ok(Err(r)) => return self.refuse(&mut io, r).await,
            Err(_) => return self.metrics.refuse("hello_timeout"),
        };
        tracing::debug!(%remote, %peer, ?role, "relay client");
        match role {
            Role::Listen => self.listen(io, peer, shutdown).await,
            Role::Connect { to } => self.connect(io, peer, to, shutdown).await,
            Role::Accept { token } => self.accept(io, peer, token).await,
        }
    }

    async fn refuse(&self, io: &mut Conn, r: Refusal) {
        self.metrics.refuse(r.reason);
        if let Some(error) = r.message {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                proto::write_frame(io, &Frame::Refused { error }),
            )
            .await;
        }
    }

    /// The rest of the magic, the challenge and a hello that proves its key.
    async fn hello(&self, io: &mut Conn, head: [u8; 4]) -> Result<(PeerId, Role), Refusal> {
        let mut rest = [0u8; MAGIC.len() - 4];
        io.read_exact(&mut rest)
            .await
            .map_err(|_| Refusal::silent("not_relay"))?;
        if head[..] != MAGIC[..4] || rest[..] != MAGIC[4..] {
            return Err(Refusal::silent("not_relay"));
        }
        let nonce: [u8; NONCE_LEN] = random_bytes();
        proto::write_frame(
            io,
            &Frame::Challenge {
                nonce: hex::encode(nonce),
            },
        )
        .await
        .map_err(|_| Refusal::silent("gone"))?;
        match proto::read_frame(io).await {
            Ok(Frame::Hello { peer_id, role, sig }) => {
                if proto::verify(&peer_id, &nonce, &role, &sig) {
                    Ok((peer_id, role))
                } else {
                    Err(Refusal::said(
                        "no_key",
                        "the hello's signature does not prove that key",
                    ))
                }
            }
            Ok(_) => Err(Refusal::said("no_key", "expected a signed hello")),
            Err(e) => Err(Refusal::said(
                "no_key",
                format!("expected a signed hello: {e}"),
            )),
        }
    }

    /// Holds a listener's connection, sending it invites and pings.
    async fn listen(self: Arc<Self>, io: Conn, peer: PeerId, shutdown: CancellationToken) {
        let (tx, mut rx) = mpsc::channel(INVITES_QUEUED);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let replaced = lock(&self.listeners).insert(
            peer,
            Listening {
                invites: tx,
                generation,
            },
        );
        if replaced.is_none() {
            self.metrics.listening.inc();
        }
        let (mut r, mut w) = tokio::io::split(io);
        let heard = AtomicU64::new(self.now_ms());
        let reader = async {
            while let Ok(Frame::Pong) = proto::read_frame(&mut r).await {
                heard.store(self.now_ms(), Ordering::Relaxed);
            }
        };
        tokio::pin!(reader);
        if proto::write_frame(&mut w, &Frame::Ok).await.is_ok() {
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.tick().await;
            loop {
                tokio::select! {
                    t = rx.recv() => match t {
                        Some(token) => {
                            if proto::write_frame(&mut w, &Frame::Invite { token }).await.is_err() {
                                break;
                            }
                        }
                        // A newer listen of the same peer took over.
                        None => break,
                    },
                    _ = ping.tick() => {
                        let silent = self.now_ms().saturating_sub(heard.load(Ordering::Relaxed));
                        if silent > LISTENER_SILENCE.as_millis() as u64
                            || proto::write_frame(&mut w, &Frame::Ping).await.is_err()
                        {
                            break;
                        }
                    }
                    () = &mut reader => break,
                    () = shutdown.cancelled() => break,
                }
            }
        }
        let mut l = lock(&self.listeners);
        if l.get(&peer).is_some_and(|x| x.generation == generation) {
            l.remove(&peer);
            self.metrics.listening.dec();
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Counts a pipe between `a` and `b`, unless either has too many.
    fn take_pipe(
        self: &Arc<Self>,
        a: PeerId,
        b: PeerId,
    ) -> Option<(PipeSlot, RateLimit, RateLimit)> {
        let mut m = lock(&self.peers);
        let max = self.config.pipes_per_peer;
        if [a, b]
            .iter()
            .any(|p| m.get(p).is_some_and(|u| u.pipes >= max))
        {
            return None;
        }
        let mut peers = vec![a];
        if b != a {
            peers.push(b);
        }
        for p in &peers {
            m.entry(*p)
                .or_insert_with(|| PeerUse {
                    pipes: 0,
                    rate: RateLimit::new(self.config.rate_per_peer),
                })
                .pipes += 1;
        }
        let rate = |p: &PeerId| m.get(p).map(|u| u.rate.clone()).unwrap_or_default();
        let (ra, rb) = (
            rate(&a),
            if b != a {
                rate(&b)
            } else {
                RateLimit::unlimited()
            },
        );
        drop(m);
        Some((
            PipeSlot {
                inner: self.clone(),
                peers,
            },
            ra,
            rb,
        ))
    }

    /// Invites `to`, waits for its accept, and pipes the two.
    async fn connect(
        self: Arc<Self>,
        mut io: Conn,
        from: PeerId,
        to: PeerId,
        shutdown: CancellationToken,
    ) {
        let invites = lock(&self.listeners).get(&to).map(|l| l.invites.clone());
        let Some(invites) = invites else {
            let msg = format!("peer {} is not connected to this relay", to.short());
            return self
                .refuse(&mut io, Refusal::said("not_listening", msg))
                .await;
        };
        let Some((slot, rate_from, rate_to)) = self.take_pipe(from, to) else {
            let msg = "too many pipes open with this peer; try again later";
            return self
                .refuse(&mut io, Refusal::said("pipes_per_peer", msg))
                .await;
        };
        let token = u64::from_be_bytes(random_bytes());
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(token, Pending { to, stream: tx });
        if invites.try_send(token).is_err() {
            lock(&self.pending).remove(&token);
            let msg = "that peer is busy; try again later";
            return self.refuse(&mut io, Refusal::said("busy", msg)).await;
        }
        let other = tokio::time::timeout(ACCEPT_WAIT, rx).await;
        lock(&self.pending).remove(&token);
        let Ok(Ok((other, _done))) = other else {
            let msg = format!(
                "peer {} did not take the pipe within {}s",
                to.short(),
                ACCEPT_WAIT.as_secs()
            );
            return self
                .refuse(&mut io, Refusal::said("not_accepted", msg))
                .await;
        };
        if proto::write_frame(&mut io, &Frame::Ok).await.is_err() {
            return;
        }
        self.metrics.pipes.inc();
        self.metrics.pipes_total.inc();
        let _counted = Counted(self.metrics.pipes.clone());
        self.pipe(io, other, [rate_from, rate_to], shutdown).await;
        drop(slot);
    }

    /// Hands this connection to the `connect` waiting for it, and lives
    /// as long as the pipe.
    async fn accept(self: Arc<Self>, mut io: Conn, peer: PeerId, token: u64) {
        let pending = {
            let mut p = lock(&self.pending);
            match p.remove(&token) {
                Some(w) if w.to == peer => Some(w),
                Some(w) => {
                    // Not this peer's invite: leave it for the right one.
                    p.insert(token, w);
                    None
                }
                None => None,
            }
        };
        let Some(pending) = pending else {
            let msg = "no such invite for this peer (it may have expired)";
            return self.refuse(&mut io, Refusal::said("no_invite", msg)).await;
        };
        if proto::write_frame(&mut io, &Frame::Ok).await.is_err() {
            return;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if pending.stream.send((io, done_tx)).is_ok() {
            // Ends when the pipe drops its sender.
            let _ = done_rx.await;
        }
    }

    /// Copies bytes both ways until both sides end, one fails, the pipe
    /// idles too long, or the relay stops.
    async fn pipe(&self, a: Conn, b: Conn, rates: [RateLimit; 2], shutdown: CancellationToken) {
        // Owned halves (no lock between the directions); writes are
        // bounded by the pump instead of the guard.
        let (ar, aw) = a.into_inner().into_split();
        let (br, bw) = b.into_inner().into_split();
        let last = AtomicU64::new(self.now_ms());
        let limits = [&rates[0], &rates[1], &self.total];
        let up = self.pump(ar, bw, limits, &last);
        let down = self.pump(br, aw, limits, &last);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        while !(up_done && down_done) {
            tokio::select! {
                r = &mut up, if !up_done => { if r.is_err() { break; } up_done = true; }
                r = &mut down, if !down_done => { if r.is_err() { break; } down_done = true; }
                () = shutdown.cancelled() => break,
            }
        }
    }

    async fn pump(
        &self,
        mut r: impl AsyncRead + Unpin,
        mut w: impl AsyncWrite + Unpin,
        limits: [&RateLimit; 3],
        last: &AtomicU64,
    ) -> std::io::Result<()> {
        let idle = self.config.idle_timeout;
        let tick = idle.min(Duration::from_secs(5));
        let mut buf = vec![0u8; FIRST_BUF];
        loop {
            let n = match tokio::time::timeout(tick, r.read(&mut buf)).await {
                Ok(n) => n?,
                Err(_) => {
                    let quiet = self.now_ms().saturating_sub(last.load(Ordering::Relaxed));
                    if quiet >= idle.as_millis() as u64 {
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                    continue;
                }
            };
            if n == 0 {
                let _ = w.shutdown().await;
                return Ok(());
            }
            for l in limits {
                l.take(n).await;
            }
            let full = n == buf.len();
            tokio::time::timeout(WRITE_STALL, w.write_all(&buf[..n]))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            last.store(self.now_ms(), Ordering::Relaxed);
            self.metrics.bytes.inc_by(n as u64);
            if full && buf.len() < PIPE_BUF {
                buf = vec![0u8; PIPE_BUF];
            }
        }
    }
}
