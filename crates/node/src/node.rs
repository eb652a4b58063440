//! A running node: the index, the HTTPS server, the share watcher and the
//! tracker heartbeat, started together and stopped together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_core::wire::{Announce, Deregistration, Registration};
use shoal_core::{ContentId, Identity, PeerId};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::NodeDb;
use crate::error::{NodeError, Result, TrackerError};
use crate::index::ShareIndex;
use crate::rate::RateLimit;
use crate::server::Uploads;
use crate::swarm::Partials;
use crate::tracker_client::TrackerClient;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the key, database and caches live.
    pub data_dir: PathBuf,
    /// Folders to share.
    pub shares: Vec<PathBuf>,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Name shown to other peers.
    pub name: String,
    /// The trackers to register with (each kept up to date on its own;
    /// none: the node runs without a tracker).
    pub trackers: Vec<TrackerClient>,
    /// TTL asked of the tracker, in seconds (it may grant less).
    pub ttl: u64,
    /// How often shares are rescanned even without change events.
    pub rescan_every: Duration,
    /// Upload limit in bytes per second over all peers (`None`: unlimited).
    pub max_upload_rate: Option<u64>,
    /// Content streams served at once.
    pub max_uploads: usize,
    /// Where pushes from other peers land, and who may push.
    pub inbox: crate::inbox::InboxConfig,
    /// The seed's API on plain HTTP: address and token (see [`crate::compat`]).
    pub compat: Option<(SocketAddr, String)>,
    /// A DHT to publish this node's addresses on and announce its content
    /// ids to (`None`: no DHT, no UDP socket).
    pub dht: Option<shoal_dht::Dht>,
    /// The LAN to announce this node on (`None`: no mDNS, no multicast).
    pub lan: Option<Arc<shoal_lan::Lan>>,
    /// Ask the router to forward the port (UPnP, PCP, NAT-PMP); off
    /// unless asked (see [`crate::reach`]).
    pub port_mapping: bool,
    /// Relays to keep a connection to when the node is not reachable
    /// (`relay://HOST:PORT` or `HOST:PORT`), besides those the trackers
    /// advertise.
    pub relays: Vec<String>,
}

impl NodeConfig {
    /// Defaults for everything but the essentials.
    pub fn new(data_dir: PathBuf, listen: SocketAddr, name: String) -> Self {
        Self {
            inbox: crate::inbox::InboxConfig::new(data_dir.join("inbox"), &data_dir),
            data_dir,
            shares: Vec::new(),
            listen,
            name,
            trackers: Vec::new(),
            ttl: 60,
            rescan_every: Duration::from_secs(60),
            max_upload_rate: None,
            max_uploads: 16,
            compat: None,
            dht: None,
            lan: None,
            port_mapping: false,
            relays: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// The node `config.toml` describes (shares, listen address, name,
    /// inbox, who may push, rate limits) for the peer `me`. The CLI lays
    /// its flags over this; the desktop app uses it as is.
    pub fn from_config(
        data_dir: PathBuf,
        config: &shoal_core::config::Config,
        me: &PeerId,
    ) -> Result<Self> {
        let listen = match &config.listen {
            Some(s) => s.parse().map_err(|_| {
                NodeError::Settings(format!(
                    "`listen = {s:?}` in config.toml is not an address like 0.0.0.0:7000"
                ))
            })?,
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut cfg = NodeConfig::new(data_dir, listen, config.peer_name(me));
        cfg.shares = config.shares.clone();
        cfg.port_mapping = config.port_mapping;
        for r in &config.relays {
            let url = crate::reach::relay_url(r);
            shoal_core::wire::PeerAddr::parse(&url)
                .ok()
                .filter(shoal_core::wire::PeerAddr::is_relay)
                .ok_or_else(|| {
                    NodeError::Settings(format!(
                        "`relays` in config.toml: `{}` is not relay://HOST:PORT",
                        shoal_core::text::bounded(r, 100)
                    ))
                })?;
            cfg.relays.push(url);
        }
        cfg.max_upload_rate = config.max_upload_rate;
        if let Some(dir) = &config.inbox {
            cfg.inbox.dir = dir.clone();
        }
        cfg.inbox.max_size = config.max_inbox_size;
        cfg.inbox.rate = RateLimit::new(config.max_download_rate);
        cfg.inbox.accept = crate::inbox::Accept::from_list(&config.accept_from)
            .map_err(|m| NodeError::Settings(format!("{m} (in config.toml)")))?;
        Ok(cfg)
    }
}

/// Where the node stands with its tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerState {
    /// The node runs without a tracker.
    None,
    /// The first registration is under way.
    Connecting,
    /// The last registration succeeded.
    Online,
    /// The last registration failed; the node keeps trying.
    Offline,
}

/// A running node. Dropping it without [`Node::shutdown`] stops the tasks
/// but does not deregister.
pub struct Node {
    peer_id: PeerId,
    local_addr: SocketAddr,
    index: Arc<ShareIndex>,
    partials: Partials,
    uploads: crate::server::Uploads,
    compat_addr: Option<SocketAddr>,
    tracker_state: tokio::sync::watch::Receiver<TrackerState>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    data_dir: std::path::PathBuf,
    listening: crate::listening::Listening,
    reach: tokio::sync::watch::Receiver<crate::reach::Reachability>,
    /// Stops port mapping and the relay, after the heartbeats.
    reach_stop: CancellationToken,
    reach_tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Indexes the shares, binds the listener and starts serving.
    pub async fn start(config: NodeConfig, identity: Arc<Identity>) -> Result<Node> {
        shoal_core::wire::validate_name(&config.name).map_err(|reason| NodeError::BadName {
            name: shoal_core::text::bounded(&config.name, 100),
            reason,
        })?;
        let db = Arc::new(NodeDb::open(&config.data_dir)?);
        let index = Arc::new(ShareIndex::new(&config.shares, db.clone())?);
        // Watch before the first scan, so nothing created in between is missed.
        let rescan = Arc::new(Notify::new());
        let watcher = start_watcher(&index, rescan.clone());
        let started = std::time::Instant::now();
        let report = {
            let index = index.clone();
            tokio::task::spawn_blocking(move || index.scan())
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))??
        };
        tracing::info!(
            files = report.files,
            hashed = report.hashed,
            hashed_mib = report.hashed_bytes / (1024 * 1024),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "shares indexed"
        );

        let tls = crate::tls::server_config(&identity)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| NodeError::listen(config.listen, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let shutdown = CancellationToken::new();
        let partials = Partials::new();
        let uploads = Uploads::new(RateLimit::new(config.max_upload_rate), config.max_uploads);
        let inbox = Arc::new(config.inbox.clone());
        let app = crate::server::router(
            index.clone(),
            partials.clone(),
            db,
            rescan.clone(),
            uploads.clone(),
            inbox.clone(),
        );
        let mut compat_addr = None;
        let mut compat_task = None;
        if let Some((addr, token)) = config.compat.clone() {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| NodeError::listen(addr, e))?;
            compat_addr = l.local_addr().ok();
            compat_task = Some(tokio::spawn(crate::compat::serve(
                l,
                token,
                index.clone(),
                rescan.clone(),
                inbox,
                uploads.clone(),
                shutdown.clone(),
            )));
        }
        let conns = crate::server::Conns::new(tls.clone(), app.clone(), shutdown.clone());
        let mut tasks = vec![tokio::spawn(crate::server::serve(
            listener,
            tls,
            app,
            shutdown.clone(),
        ))];
        let (reach_tx, reach) = tokio::sync::watch::channel(crate::reach::Reachability::default());
        // Stopped after the heartbeats deregistered (see `shutdown`).
        let reach_stop = CancellationToken::new();
        let mut reach_tasks = Vec::new();
        if config.port_mapping {
            reach_tasks.push(tokio::spawn(crate::reach::keep_mapped(
                local_addr.port(),
                reach_tx.clone(),
                reach_stop.clone(),
            )));
        }
        let (registered_tx, registered) = tokio::sync::watch::channel(Vec::new());
        if !config.trackers.is_empty() || !config.relays.is_empty() {
            reach_tasks.push(tokio::spawn(crate::reach::keep_reachable(
                crate::reach::Reaching {
                    identity: identity.clone(),
                    trackers: config.trackers.clone(),
                    relays: config.relays.clone(),
                    state: reach_tx.clone(),
                    registered,
                    conns,
                },
                reach_stop.clone(),
            )));
        }
        tasks.extend(compat_task);
        tasks.push(tokio::spawn(watch_shares(
            index.clone(),
            watcher,
            rescan,
            config.rescan_every,
            shutdown.clone(),
        )));
        let listening =
            crate::listening::Listening::new(identity.peer_id(), local_addr, &config.shares);
        if let Err(e) = listening.write(&config.data_dir) {
            tracing::warn!(error = %e, "cannot record where this node listens; `shoal link` will not find it");
        }
        // Links carry the mapped address and the relay too, once known.
        tasks.push(tokio::spawn(keep_listening(
            listening.clone(),
            config.data_dir.clone(),
            reach.clone(),
            shutdown.clone(),
        )));
        if let Some(lan) = &config.lan {
            if local_addr.ip().is_loopback() {
                tracing::warn!(
                    "announcing on the LAN a node that listens on loopback only: others will not reach it; listen on 0.0.0.0 or a LAN address"
                );
            }
            match lan.announce(&identity.peer_id(), &config.name, local_addr.port()) {
                Ok(()) => tracing::info!("announced on the LAN (mDNS)"),
                Err(e) => tracing::warn!(error = %e, "cannot announce on the LAN"),
            }
        }
        if let Some(dht) = config.dht.clone() {
            tasks.push(tokio::spawn(on_the_dht(
                dht,
                identity.clone(),
                config.name.clone(),
                listening.addrs.clone(),
                local_addr.port(),
                Offers {
                    index: index.clone(),
                    partials: partials.clone(),
                },
                shutdown.clone(),
            )));
        }
        let (state_tx, tracker_state) = tokio::sync::watch::channel(TrackerState::None);
        if !config.trackers.is_empty() {
            state_tx.send_replace(TrackerState::Connecting);
            let states = Arc::new(States {
                each: Mutex::new(vec![TrackerState::Connecting; config.trackers.len()]),
                all: state_tx,
            });
            let addr = if local_addr.ip().is_unspecified() {
                format!(":{}", local_addr.port())
            } else {
                local_addr.to_string()
            };
            let compat = compat_addr.map(|a| {
                if a.ip().is_unspecified() {
                    format!(":{}", a.port())
                } else {
                    a.to_string()
                }
            });
            let me = Me {
                identity: identity.clone(),
                name: config.name.clone(),
                addrs: vec![addr],
                compat,
                ttl: config.ttl,
                reach: reach.clone(),
                registered: Arc::new(registered_tx),
                clock: Arc::new(AtomicU64::new(0)),
            };
            for (i, tracker) in config.trackers.iter().enumerate() {
                tasks.push(tokio::spawn(heartbeat(
                    tracker.clone(),
                    me.clone(),
                    Offers {
                        index: index.clone(),
                        partials: partials.clone(),
                    },
                    Slot {
                        i,
                        states: states.clone(),
                    },
                    shutdown.clone(),
                )));
            }
        }
        Ok(Node {
            peer_id: identity.peer_id(),
            local_addr,
            index,
            partials,
            uploads,
            compat_addr,
            tracker_state,
            shutdown,
            tasks,
            data_dir: config.data_dir.clone(),
            listening,
            reach,
            reach_stop,
            reach_tasks,
        })
    }

    /// Where this node listens, as recorded in its data dir.
    pub fn listening(&self) -> &crate::listening::Listening {
        &self.listening
    }

    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https://ADDR`.
    pub fn url(&self) -> String {
        format!("https://{}", self.local_addr)
    }

    /// The share index.
    pub fn index(&self) -> &Arc<ShareIndex> {
        &self.index
    }

    /// Where the seed's API listens, if it does.
    pub fn compat_addr(&self) -> Option<SocketAddr> {
        self.compat_addr
    }

    /// Whether the tracker knows this node now.
    pub fn tracker_state(&self) -> TrackerState {
        *self.tracker_state.borrow()
    }

    /// Changes of [`Node::tracker_state`], to wait on.
    pub fn watch_tracker(&self) -> tokio::sync::watch::Receiver<TrackerState> {
        self.tracker_state.clone()
    }

    /// Downloads in progress whose verified pieces this node serves.
    pub fn partials(&self) -> &Partials {
        &self.partials
    }

    /// Whether the node is sending content to other peers now, or was
    /// within `window`.
    pub fn uploading_within(&self, window: Duration) -> bool {
        self.uploads.busy_within(window)
    }

    /// Content bytes sent to other peers since the node started.
    pub fn bytes_served(&self) -> u64 {
        self.uploads.sent.load(Ordering::Relaxed)
    }

    /// How others can reach this node (port mapping, probe, relay).
    pub fn reachability(&self) -> tokio::sync::watch::Receiver<crate::reach::Reachability> {
        self.reach.clone()
    }

    /// Stops serving, deregisters from the tracker, removes the port
    /// mapping, leaves the relay, and waits for the tasks.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        self.reach_stop.cancel();
        for t in std::mem::take(&mut self.reach_tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.reach_stop.cancel();
        crate::listening::Listening::remove(&self.data_dir);
    }
}

/// Rewrites the node's `listening.json` whenever a port mapping or a
/// relay comes or goes, so `shoal link` carries them.
async fn keep_listening(
    base: crate::listening::Listening,
    data_dir: PathBuf,
    mut reach: tokio::sync::watch::Receiver<crate::reach::Reachability>,
    shutdown: CancellationToken,
) {
    let mut written = base.addrs.clone();
    loop {
        tokio::select! {
            r = reach.changed() => if r.is_err() { return },
            () = shutdown.cancelled() => return,
        }
        let addrs = reach
            .borrow_and_update()
            .addrs(&base.addrs)
            .into_iter()
            .take(shoal_core::link::MAX_ADDRS)
            .collect::<Vec<_>>();
        if addrs != written {
            let mut now = base.clone();
            now.addrs = addrs.clone();
            if let Err(e) = now.write(&data_dir) {
                tracing::warn!(error = %e, "cannot record where this node listens; `shoal link` may carry old addresses");
            }
            written = addrs;
        }
    }
}

/// Rescans on file-system events (debounced) and every `every` regardless.
async fn watch_shares(
    index: Arc<ShareIndex>,
    _watcher: Option<notify::RecommendedWatcher>,
    rescan: Arc<Notify>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = rescan.notified() => {
                // Let a burst of events (a copy in progress) settle.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let ix = index.clone();
        match tokio::task::spawn_blocking(move || ix.scan()).await {
            Ok(Ok(r)) if r.changed => {
                tracing::info!(files = r.files, hashed = r.hashed, "shares changed")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "rescanning shares failed"),
            Err(e) => tracing::warn!(error = %e, "rescan task failed"),
        }
    }
}

fn start_watcher(index: &ShareIndex, rescan: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| !e.kind.is_access()) {
            rescan.notify_one();
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch shares for changes; rescanning periodically instead");
            return None;
        }
    };
    for root in index.roots() {
        if let Err(e) = w.watch(root, notify::RecursiveMode::Recursive) {
            tracing::warn!(root = %root.display(), error = %e, "cannot watch share; rescanning periodically instead");
        }
    }
    Some(w)
}

/// Unix milliseconds, strictly increasing within this process.
fn next_ts(last: &AtomicU64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // One atomic step, so heartbeats running at once never sign the same ts.
    let next = |prev: u64| now.max(prev + 1);
    let prev = last
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| Some(next(p)))
        .unwrap_or_else(|p| p);
    next(prev)
}

/// How the node stands with each of its trackers, and with all of them:
/// online while any lists it, connecting while any first registration is
/// under way and none lists it, else offline.
struct States {
    each: Mutex<Vec<TrackerState>>,
    all: tokio::sync::watch::Sender<TrackerState>,
}

/// One tracker's place in [`States`].
struct Slot {
    i: usize,
    states: Arc<States>,
}

impl Slot {
    fn get(&self) -> TrackerState {
        self.states.each.lock().unwrap_or_else(|p| p.into_inner())[self.i]
    }

    fn set(&self, s: TrackerState) {
        let mut each = self.states.each.lock().unwrap_or_else(|p| p.into_inner());
        each[self.i] = s;
        let all = if each.contains(&TrackerState::Online) {
            TrackerState::Online
        } else if each.contains(&TrackerState::Connecting) {
            TrackerState::Connecting
        } else {
            TrackerState::Offline
        };
        self.states.all.send_if_modified(|now| {
            let changed = *now != all;
            *now = all;
            changed
        });
    }
}

/// What a node offers: its shares and its downloads in progress.
struct Offers {
    index: Arc<ShareIndex>,
    partials: Partials,
}

impl Offers {
    fn content_ids(&self) -> Vec<ContentId> {
        let mut ids = self.index.snapshot().content_ids();
        ids.extend(self.partials.content_ids());
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Content ids announced on the DHT at once.
const DHT_ANNOUNCES_AT_ONCE: usize = 4;
/// Most content ids announced on the DHT per [`shoal_dht::REPUBLISH_EVERY`]:
/// a node sharing more announces the first ones (by id) only.
const DHT_MAX_ANNOUNCED: usize = 2000;
/// How soon after a change in the shares new content ids are announced.
const DHT_SETTLE: Duration = Duration::from_secs(2);

/// Publishes this node's addresses on the DHT and, at the same time,
/// announces its content ids there; both again every
/// [`shoal_dht::REPUBLISH_EVERY`] (before the DHT's nodes forget them),
/// new ids soon after the shares change; at most
/// [`DHT_ANNOUNCES_AT_ONCE`] announces run at once.
async fn on_the_dht(
    dht: shoal_dht::Dht,
    identity: Arc<Identity>,
    name: String,
    addrs: Vec<String>,
    port: u16,
    offers: Offers,
    shutdown: CancellationToken,
) {
    let publish = async {
        let seed = identity.secret_seed();
        loop {
            let wait = match dht.publish(&seed, &name, &addrs).await {
                Ok(()) => {
                    tracing::info!(addrs = ?addrs, "published this node's addresses on the DHT");
                    shoal_dht::REPUBLISH_EVERY
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publishing this node's addresses on the DHT failed; trying again in a minute");
                    Duration::from_secs(60)
                }
            };
            tokio::time::sleep(wait).await;
        }
    };
    tokio::select! {
        () = publish => {}
        () = announce_on_the_dht(&dht, port, offers) => {}
        () = shutdown.cancelled() => {}
    }
}

/// The announcing half of [`on_the_dht`]; returns when the shares are gone.
async fn announce_on_the_dht(dht: &shoal_dht::Dht, port: u16, offers: Offers) {
    use futures_util::StreamExt;
    let mut changes = offers.index.subscribe();
    let mut partial_changes = offers.partials.subscribe();
    let mut announced: std::collections::HashSet<ContentId> = Default::default();
    let mut again_at = tokio::time::Instant::now() + shoal_dht::REPUBLISH_EVERY;
    loop {
        if tokio::time::Instant::now() >= again_at {
            announced.clear();
            again_at = tokio::time::Instant::now() + shoal_dht::REPUBLISH_EVERY;
        }
        let mut ids = offers.content_ids();
        ids.truncate(DHT_MAX_ANNOUNCED);
        let fresh: Vec<ContentId> = ids.into_iter().filter(|c| !announced.contains(c)).collect();
        if !fresh.is_empty() {
            let done: Vec<ContentId> = futures_util::stream::iter(fresh)
                .map(|cid| async move { dht.announce(&cid, port).await.map(|()| cid) })
                .buffer_unordered(DHT_ANNOUNCES_AT_ONCE)
                .filter_map(|r| async move {
                    r.map_err(|e| tracing::debug!(error = %e, "announcing on the DHT failed"))
                        .ok()
                })
                .collect()
                .await;
            if !done.is_empty() {
                tracing::debug!(count = done.len(), "announced content on the DHT");
            }
            announced.extend(done);
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        tokio::select! {
            () = tokio::time::sleep_until(until.min(again_at)) => {}
            r = changes.changed() => { if r.is_err() { return; } tokio::time::sleep(DHT_SETTLE).await; }
            r = partial_changes.changed() => { if r.is_err() { return; } tokio::time::sleep(DHT_SETTLE).await; }
        }
    }
}

/// What a node tells the tracker about itself.
#[derive(Clone)]
struct Me {
    identity: Arc<Identity>,
    name: String,
    addrs: Vec<String>,
    compat: Option<String>,
    ttl: u64,
    /// Mapped and relay addresses, registered with `addrs`.
    reach: tokio::sync::watch::Receiver<crate::reach::Reachability>,
    /// Where each successful registration tells what it registered.
    registered: Arc<tokio::sync::watch::Sender<Vec<String>>>,
    /// The last `ts` signed, shared by the heartbeats of every tracker:
    /// replicas on one store see one strictly increasing sequence.
    clock: Arc<AtomicU64>,
}

/// Registers, re-registers every third of the TTL, announces content ids
/// whenever they change (or the tracker forgot them), and deregisters on
/// shutdown. A tracker that is down is retried at every heartbeat; the node
/// keeps serving meanwhile.
async fn heartbeat(
    tracker: TrackerClient,
    me: Me,
    offers: Offers,
    state: Slot,
    shutdown: CancellationToken,
) {
    let Me {
        identity,
        name,
        addrs: own,
        compat,
        ttl,
        mut reach,
        registered,
        clock,
    } = me;
    let mut changes = offers.index.subscribe();
    let mut partial_changes = offers.partials.subscribe();
    let mut announced: Option<(u64, u64)> = None;
    let default_wait = Duration::from_millis(ttl * 1000 / 3).max(Duration::from_millis(200));
    // Retries of one heartbeat end well before the next one is due, so a
    // returning tracker sees the node within one heartbeat.
    let mut retry = tracker.retry();
    retry.base_ms = retry.base_ms.min(default_wait.as_millis() as u64 / 4);
    retry.max_ms = retry.max_ms.min(default_wait.as_millis() as u64 / 2);
    let tracker = tracker.with_retry(retry);
    loop {
        let addrs = reach.borrow_and_update().addrs(&own);
        let sign = || {
            Registration::with_compat(
                &identity,
                &name,
                addrs.clone(),
                compat.clone(),
                ttl,
                next_ts(&clock),
            )
        };
        let register = async {
            match tracker.register(&sign()).await {
                // Another tracker on the same store took a newer message
                // from this node first (replicas): sign again, newer still.
                Err(NodeError::Tracker(TrackerError::Refused { status: 409, .. })) => {
                    tracker.register(&sign()).await
                }
                r => r,
            }
        };
        let register = tokio::select! {
            r = register => r,
            () = shutdown.cancelled() => break,
        };
        let wait = match register {
            Ok(r) => {
                registered.send_if_modified(|v| {
                    let changed = *v != r.addrs;
                    if changed {
                        v.clone_from(&r.addrs);
                    }
                    changed
                });
                if state.get() != TrackerState::Online {
                    tracing::info!(tracker = tracker.url(), addrs = ?r.addrs, ttl = r.ttl, "registered with the tracker");
                    state.set(TrackerState::Online);
                }
                let version = (
                    *changes.borrow_and_update(),
                    *partial_changes.borrow_and_update(),
                );
                let ids = offers.content_ids();
                if announced != Some(version) || r.providing != ids.len() as u64 {
                    let a = Announce::new(&identity, ids.clone(), next_ts(&clock));
                    let announce = match tracker.announce(&a).await {
                        Err(NodeError::Tracker(TrackerError::Refused { status: 409, .. })) => {
                            let a = Announce::new(&identity, ids, next_ts(&clock));
                            tracker.announce(&a).await
                        }
                        r => r,
                    };
                    match announce {
                        Ok(()) => announced = Some(version),
                        Err(e) => {
                            tracing::warn!(error = %e, "announcing content to the tracker failed")
                        }
                    }
                }
                Duration::from_millis(r.ttl * 1000 / 3).max(Duration::from_millis(200))
            }
            Err(e) => {
                if state.get() != TrackerState::Offline {
                    tracing::warn!(error = %e, "tracker unreachable; still serving, will keep trying");
                    state.set(TrackerState::Offline);
                }
                default_wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            r = changes.changed() => { if r.is_err() { break; } }
            r = partial_changes.changed() => { if r.is_err() { break; } }
            r = reach.changed() => {
                // A mapping or relay came or went: register it now.
                if r.is_err() { break; }
            }
            () = shutdown.cancelled() => break,
        }
    }
    if state.get() == TrackerState::Online {
        let d = Deregistration::new(&identity, next_ts(&clock));
        match tokio::time::timeout(Duration::from_secs(3), tracker.deregister(&d)).await {
            Ok(Ok(())) => tracing::info!("deregistered from the tracker"),
            Ok(Err(e)) => tracing::warn!(error = %e, "deregistering failed"),
            Err(_) => tracing::warn!("deregistering timed out"),
        }
    }
}
