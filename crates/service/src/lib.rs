//! The node service: one owner of a node and of every transfer it runs,
//! shared by the desktop app and the web UI (and, through the web UI's
//! control API, the command line).
//!
//! A [`Service`] takes [`Command`]s and keeps a [`State`] (header, peers,
//! transfers, local files, settings) that anyone can read at any time;
//! each change is also sent as an [`Event`] to the app's channel and as a
//! [`Notice`] to every subscriber (the web UI's event stream). Nobody
//! waits on the network or the disk to send a command. The loop is in
//! `worker`, what a running transfer does in `jobs`.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use shoal_core::config::Config;
use shoal_core::wire::{FileEntry, PeerRecord};
use shoal_core::{Identity, PeerId};
use shoal_crypt::secrecy::SecretString;
use shoal_node::book::PeerBook;
use shoal_node::download::service::{Downloads, Handle, Request, Status, Target};
use shoal_node::download::{Progress, Sources, Swarm};
use shoal_node::peer_client::PeerClient;
use shoal_node::reputation::{Reputation, now_secs};
use shoal_node::tracker_client::TrackerClient;
use shoal_node::{Node, NodeConfig, TrackerState};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::activity::{Level, LogFeed};

pub mod activity;
mod jobs;
mod state;
mod worker;

pub use state::{Notice, State, Transfer};

use worker::Core;

/// An answer to a command, for callers that wait for one (the control API).
pub type Reply<T> = tokio::sync::oneshot::Sender<T>;

/// Wakes a UI that draws frames (the app's repaint), at most after the
/// given delay.
pub type Waker = Arc<dyn Fn(Duration) + Send + Sync>;

/// What the service is asked to do.
pub enum Command {
    /// Start the node and register with the tracker.
    Start,
    /// Deregister and stop the node.
    Stop,
    /// Ask the tracker for peers again.
    RefreshPeers,
    /// Fetch a peer's listing (answered with [`Event::Listing`]).
    Browse(PeerRecord),
    /// A peer's listing, by its name, id or id prefix.
    Files {
        /// The peer.
        peer: String,
        /// Its record and files, or why not.
        reply: Reply<Result<(PeerRecord, Vec<FileEntry>), String>>,
    },
    /// Download one file of a peer's listing.
    Download {
        /// From whom (others with the same content join in).
        peer: PeerRecord,
        /// What.
        file: FileEntry,
    },
    /// Download `PEER:PATH` or a content id, as `shoal get` does.
    Fetch(String),
    /// Download `PEER:PATH`, `PEER:DIR/`, a content id or a link into
    /// `dir` (the download folder if none); the same file into the same
    /// folder twice is one transfer (a paused one is resumed).
    Get {
        /// What.
        target: String,
        /// Where to (default: the download folder).
        dir: Option<PathBuf>,
        /// The transfer's id, or why it cannot start.
        reply: Reply<Result<u64, Failure>>,
    },
    /// Put a file into the first share folder, plain or encrypted.
    Share {
        /// The file.
        path: PathBuf,
        /// How to lock it.
        lock: ShareLock,
    },
    /// Put a file into the first share folder and say where it went;
    /// with `temporary`, the file is removed afterwards either way (an
    /// upload).
    Publish {
        /// The file.
        path: PathBuf,
        /// How to lock it.
        lock: ShareLock,
        /// Whether `path` is a temporary copy to remove.
        temporary: bool,
        /// The shared file, or why not.
        reply: Reply<Result<PathBuf, String>>,
    },
    /// Push a file into a peer's inbox.
    Send {
        /// To whom.
        peer: PeerRecord,
        /// The file.
        path: PathBuf,
    },
    /// Push a file into the inbox of a peer named by name, id or prefix;
    /// with `temporary`, the file is removed once the push ends.
    Push {
        /// The peer.
        peer: String,
        /// The file.
        path: PathBuf,
        /// Whether `path` is a temporary copy to remove.
        temporary: bool,
        /// The transfer's id, or why it cannot start.
        reply: Reply<Result<u64, Failure>>,
    },
    /// Stop a transfer, keeping what arrived.
    Pause(u64),
    /// Go on with a paused or failed transfer.
    Resume(u64),
    /// Stop a transfer and throw away what arrived.
    Cancel(u64),
    /// Decrypt a downloaded file with a passphrase.
    Open {
        /// The transfer.
        id: u64,
        /// The encrypted file.
        path: PathBuf,
        /// The passphrase.
        passphrase: SecretString,
    },
    /// Write config.toml and apply it.
    Save(Box<Config>),
    /// Run the command, then answer (once it has done what it does in
    /// order: a pause has stopped the download, a start has started or
    /// failed).
    Then(Box<Command>, Reply<()>),
    /// Stop every transfer (partial downloads stay), deregister and stop
    /// the node, then say so on `done`.
    Quit(std::sync::mpsc::Sender<()>),
    #[doc(hidden)]
    Resolved {
        peer: Option<PeerRecord>,
        file: FileEntry,
        dir: PathBuf,
        reply: Option<Reply<Result<u64, Failure>>>,
    },
    #[doc(hidden)]
    Folder {
        target: Target,
        dir: PathBuf,
        reply: Reply<Result<u64, Failure>>,
    },
    #[doc(hidden)]
    Pushing {
        peer: PeerRecord,
        path: PathBuf,
        temporary: bool,
        reply: Reply<Result<u64, Failure>>,
    },
}

/// Why something failed, and what kind of failure it is (the command
/// line's exit code).
#[derive(Debug, Clone)]
pub struct Failure {
    /// What happened and what to do, for people.
    pub text: String,
    /// Its kind.
    pub kind: shoal_core::ErrorKind,
    /// The node's own error, when there is one (a caller's hints use it).
    pub source: Option<Arc<shoal_node::NodeError>>,
}

impl PartialEq for Failure {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.kind == other.kind
    }
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: shoal_core::ErrorKind, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            kind,
            source: None,
        }
    }

    /// The failure a node error stands for.
    pub fn of(e: &shoal_node::NodeError) -> Self {
        use shoal_core::HasKind;
        Self::new(e.kind(), e.to_string())
    }

    /// The failure a node error stands for, keeping the error.
    pub fn owning(e: shoal_node::NodeError) -> Self {
        let mut f = Self::of(&e);
        f.source = Some(Arc::new(e));
        f
    }

    /// The same failure, its text put in context.
    pub fn context(mut self, before: &str) -> Self {
        self.text = format!("{before}: {}", self.text);
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// How a shared file is locked.
pub enum ShareLock {
    /// Not at all.
    Plain,
    /// With a passphrase.
    Passphrase(SecretString),
    /// To a peer's key.
    Peer(PeerId),
}

/// The node's standing with the tracker, as the header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetState {
    /// Not started, or the tracker cannot be reached.
    #[default]
    Offline,
    /// Starting or registering.
    Connecting,
    /// Registered.
    Online,
}

impl NetState {
    /// `online`, `connecting` or `offline`.
    pub fn name(self) -> &'static str {
        match self {
            NetState::Offline => "offline",
            NetState::Connecting => "connecting",
            NetState::Online => "online",
        }
    }
}

/// A peer as the peers view lists it.
#[derive(Debug, Clone)]
pub struct PeerRow {
    /// The tracker's record.
    pub record: PeerRecord,
    /// `new`, `good`, `suspect` or `banned`.
    pub verdict: &'static str,
    /// Files it shares, if its listing could be fetched.
    pub files: Option<usize>,
}

/// Whether a transfer brings a file here or sends one away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A download.
    Download,
    /// A push into a peer's inbox.
    Push,
}

/// Where a transfer is.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferState {
    /// Moving bytes.
    Running,
    /// Stopped by the user; resumable.
    Paused,
    /// Downloaded and verified, but encrypted with a passphrase: the
    /// ciphertext at this path waits for it.
    NeedsPassphrase(PathBuf),
    /// Done; the file is here (for a push: its name in the peer's inbox).
    Done(PathBuf),
    /// Failed; resumable.
    Failed(Failure),
    /// Cancelled; what arrived was thrown away.
    Cancelled,
}

impl TransferState {
    /// `running`, `paused`, `needs-passphrase`, `done`, `failed` or
    /// `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            TransferState::Running => "running",
            TransferState::Paused => "paused",
            TransferState::NeedsPassphrase(_) => "needs-passphrase",
            TransferState::Done(_) => "done",
            TransferState::Failed(_) => "failed",
            TransferState::Cancelled => "cancelled",
        }
    }

    /// Whether it will not change by itself any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TransferState::Done(_) | TransferState::Cancelled | TransferState::NeedsPassphrase(_)
        )
    }
}

/// A transfer as the UI lists it.
#[derive(Clone)]
pub struct TransferInfo {
    /// Its handle for commands.
    pub id: u64,
    /// Download or push.
    pub direction: Direction,
    /// The file's name.
    pub name: String,
    /// The peer it comes from or goes to.
    pub peer: String,
    /// The folder a download goes into.
    pub dir: Option<PathBuf>,
    /// Bytes so far, live.
    pub meter: Arc<Meter>,
}

/// What the service tells the app.
#[derive(Clone)]
pub enum Event {
    /// The header's status and port.
    Network {
        /// Status.
        state: NetState,
        /// The node's port, while it runs.
        port: Option<u16>,
    },
    /// The peers the tracker knows.
    Peers(Vec<PeerRow>),
    /// A peer's listing, or why there is none.
    Listing {
        /// The peer.
        peer: PeerId,
        /// Its files.
        files: Result<Vec<FileEntry>, String>,
    },
    /// A transfer began.
    Transfer(TransferInfo),
    /// A transfer moved to another state.
    TransferState {
        /// Which.
        id: u64,
        /// Its state.
        state: TransferState,
    },
    /// What this node shares.
    LocalFiles(Vec<FileEntry>),
    /// Where the running node listens (empty once it stopped): what a
    /// `shoal:` link to a local file carries.
    Reach(Vec<String>),
    /// How others reach the running node (port mapping, the tracker's
    /// probe, a relay).
    Reachability(shoal_node::reach::Reachability),
    /// config.toml was written; the app shows these settings now.
    Saved(Box<Config>),
}

/// Live counters of one transfer, written by the engine, read by the UI.
#[derive(Default)]
pub struct Meter {
    total: AtomicU64,
    done: AtomicU64,
    sources: AtomicUsize,
    /// Every byte is in and the engine said it is naming the file.
    finishing: AtomicBool,
    waker: std::sync::OnceLock<Waker>,
    /// How each provider that answered was reached.
    routes: std::sync::Mutex<Vec<Route>>,
}

/// A provider of a transfer and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its id.
    pub peer_id: PeerId,
    /// Its name, escaped.
    pub name: String,
    /// `direct` or `relay`.
    pub via: &'static str,
    /// The address dialled, escaped.
    pub addr: String,
}

impl Meter {
    /// The providers that answered, and how each was reached.
    pub fn routes(&self) -> Vec<Route> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A word for how the providers were reached: `direct`, `relay`, or
    /// both (`direct+relay`); empty before any answered.
    pub fn via(&self) -> String {
        let routes = self.routes();
        let mut kinds: Vec<&str> = routes.iter().map(|r| r.via).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds.join("+")
    }

    fn new(waker: Option<Waker>) -> Arc<Self> {
        let m = Meter::default();
        if let Some(w) = waker {
            let _ = m.waker.set(w);
        }
        Arc::new(m)
    }

    /// Bytes so far and in all.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// Whether every byte is in and the file is being made durable (or
    /// opened): nothing is left to pause or cancel.
    pub fn is_finishing(&self) -> bool {
        self.finishing.load(Ordering::Relaxed)
    }

    /// Peers serving it now.
    pub fn sources(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
    }

    fn repaint(&self) {
        if let Some(w) = self.waker.get() {
            w(Duration::from_millis(100));
        }
    }
}

impl Progress for Meter {
    fn start(&self, _name: &str, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.finishing.store(false, Ordering::Relaxed);
        self.repaint();
    }
    fn finishing(&self) {
        self.finishing.store(true, Ordering::Relaxed);
        self.repaint();
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.repaint();
    }
    fn sources(&self, n: usize) {
        self.sources.store(n, Ordering::Relaxed);
    }
    fn connected(
        &self,
        peer: &shoal_core::wire::PeerRecord,
        route: &shoal_node::peer_client::Route,
    ) {
        let r = Route {
            peer_id: peer.peer_id,
            name: shoal_core::text::escape(&peer.name).into_owned(),
            via: route.via,
            addr: shoal_core::text::bounded(&route.addr, 300),
        };
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        match routes.iter_mut().find(|x| x.peer_id == r.peer_id) {
            Some(x) => *x = r,
            None => routes.push(r),
        }
        drop(routes);
        self.repaint();
    }
    fn finish(&self) {
        self.sources.store(0, Ordering::Relaxed);
        self.repaint();
    }
}

/// How the service makes its node and trackers from the settings: the
/// app uses config.toml alone ([`FromSettings`]); `shoal node` puts its
/// command line's flags over it.
pub trait Profile: Send + Sync {
    /// The trackers to register with and ask.
    fn trackers(&self, config: &Config) -> Result<Vec<TrackerClient>, String>;
    /// The node to start (its trackers, LAN and DHT are filled in after).
    fn node(&self, data_dir: &Path, config: &Config, me: &PeerId) -> Result<NodeConfig, String>;
}

/// The app's profile: config.toml's tracker and node, heartbeats every
/// 5 s so the header follows the tracker closely.
pub struct FromSettings;

impl Profile for FromSettings {
    fn trackers(&self, config: &Config) -> Result<Vec<TrackerClient>, String> {
        TrackerClient::new(
            &config.tracker_url(),
            config.tracker_token.clone(),
            config.retry,
        )
        .map(|t| vec![t])
        .map_err(|e| format!("{e}; fix the tracker URL in Settings"))
    }

    fn node(&self, data_dir: &Path, config: &Config, me: &PeerId) -> Result<NodeConfig, String> {
        let mut c = NodeConfig::from_config(data_dir.to_path_buf(), config, me)
            .map_err(|e| format!("{e}; fix it in Settings"))?;
        c.ttl = 15;
        Ok(c)
    }
}

/// Discovery beyond the trackers made by the caller (the command line's
/// `--lan`, `--dht`), used instead of what the settings say.
#[derive(Clone, Default)]
pub struct FixedReach {
    /// The LAN.
    pub lan: Option<Arc<shoal_lan::Lan>>,
    /// The DHT.
    pub dht: Option<shoal_dht::Dht>,
}

/// What a service is made of.
pub struct Setup {
    /// The node's data dir (key, config.toml, logs, downloads).
    pub data_dir: PathBuf,
    /// config.toml as loaded.
    pub config: Config,
    /// The node's key.
    pub identity: Arc<Identity>,
    /// The activity log.
    pub feed: LogFeed,
    /// How the node and trackers are made.
    pub profile: Arc<dyn Profile>,
    /// Discovery fixed by the caller; `None`: as the settings say.
    pub reach: Option<FixedReach>,
    /// Whether someone always looks at the peer list (the app's window):
    /// it is kept fresh (the tracker asked every 5 s, peers' files counted)
    /// always, not only while a [`Service::watch`] guard lives.
    pub watched: bool,
}

impl Setup {
    /// A service as the app runs it: everything from config.toml.
    pub fn from_settings(
        data_dir: PathBuf,
        config: Config,
        identity: Arc<Identity>,
        feed: LogFeed,
    ) -> Self {
        Self {
            data_dir,
            config,
            identity,
            feed,
            profile: Arc::new(FromSettings),
            reach: None,
            watched: true,
        }
    }
}

/// A handle to a running service: send it commands, read its state,
/// follow its changes. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Service {
    /// Starts the service's loop on the current tokio runtime; the app's
    /// events go to `events` if given.
    pub fn spawn(setup: Setup, events: Option<std::sync::mpsc::Sender<Event>>) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: std::sync::Mutex::new(State::new(
                setup.config.clone(),
                setup.identity.peer_id(),
                setup.data_dir.clone(),
            )),
            notices: tokio::sync::broadcast::channel(NOTICE_BACKLOG).0,
            waker: std::sync::OnceLock::new(),
            feed: setup.feed.clone(),
            watchers: AtomicUsize::new(usize::from(setup.watched)),
        });
        let sink = Sink {
            tx: events,
            shared: shared.clone(),
        };
        let core = Core::new(setup, sink, commands.clone());
        tokio::spawn(core.run(rx));
        Self { commands, shared }
    }

    /// Asks the service to do something.
    pub fn send(&self, c: Command) {
        let _ = self.commands.send(c);
    }

    /// Runs `c` and waits until it has done what it does in order (see
    /// [`Command::Then`]).
    pub async fn run(&self, c: Command) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Then(Box::new(c), tx));
        let _ = rx.await;
    }

    /// Sends a command made around a reply and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(make(tx));
        rx.await.ok()
    }

    /// Reads the state as it is now.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.state())
    }

    /// What changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    /// The activity log.
    pub fn feed(&self) -> &LogFeed {
        &self.shared.feed
    }

    /// Someone looks at the peer list (an open web page): while the guard
    /// lives, the list is kept fresh as in the app. A headless node asks
    /// nobody for peers or listings otherwise.
    pub fn watch(&self) -> WatchGuard {
        if self.shared.watchers.fetch_add(1, Ordering::SeqCst) == 0 {
            self.send(Command::RefreshPeers);
        }
        WatchGuard {
            shared: self.shared.clone(),
        }
    }

    /// Wakes a UI that draws frames whenever something changes.
    pub fn set_waker(&self, waker: Waker) {
        let _ = self.shared.waker.set(waker.clone());
        self.shared.feed.set_waker(waker);
    }

    /// Pauses every download (partial ones stay for next time), drops
    /// pushes, deregisters and stops the node, for at most `patience`.
    pub async fn shutdown(&self, patience: Duration) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        self.send(Command::Quit(done_tx));
        let _ = tokio::time::timeout(
            patience,
            tokio::task::spawn_blocking(move || done_rx.recv_timeout(patience)),
        )
        .await;
    }
}

/// Notices a slow subscriber may fall behind by; one that falls further
/// reads the state afresh (notices carry no data of their own).
const NOTICE_BACKLOG: usize = 256;

/// Keeps the peer list fresh while it lives (see [`Service::watch`]).
pub struct WatchGuard {
    shared: Arc<Shared>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.shared.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Shared {
    watchers: AtomicUsize,
    state: std::sync::Mutex<State>,
    notices: tokio::sync::broadcast::Sender<Notice>,
    waker: std::sync::OnceLock<Waker>,
    feed: LogFeed,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The app's end of a service on a runtime of its own.
pub struct Backend {
    runtime: Option<tokio::runtime::Runtime>,
    service: Service,
    events: std::sync::mpsc::Receiver<Event>,
}

impl Backend {
    /// Starts the service for the data dir (its key, config.toml, logs)
    /// on a runtime of its own.
    pub fn start(
        data_dir: PathBuf,
        config: Config,
        identity: Arc<Identity>,
        feed: LogFeed,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shoal-worker")
            .enable_all()
            .build()?;
        let (tx, events) = std::sync::mpsc::channel();
        let setup = Setup::from_settings(data_dir, config, identity, feed);
        let service = {
            let _guard = runtime.enter();
            Service::spawn(setup, Some(tx))
        };
        Ok(Self {
            runtime: Some(runtime),
            service,
            events,
        })
    }

    /// Repaints the UI when events arrive.
    pub fn set_waker(&self, waker: Waker) {
        self.service.set_waker(waker);
    }

    /// Asks the worker to do something.
    pub fn send(&self, c: Command) {
        self.service.send(c);
    }

    /// The events that arrived since the last call.
    pub fn events(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// Deregisters and stops the node (for at most a few seconds), then
    /// stops every transfer; partial downloads stay for next time.
    pub fn shutdown(&mut self) {
        let Some(rt) = self.runtime.take() else {
            return;
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        self.service.send(Command::Quit(done_tx));
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends events: into the state, to the app, to subscribers.
#[derive(Clone)]
struct Sink {
    tx: Option<std::sync::mpsc::Sender<Event>>,
    shared: Arc<Shared>,
}

impl Sink {
    fn send(&self, e: Event) {
        let notice = self.shared.state().apply(&e);
        if let Some(n) = notice {
            let _ = self.shared.notices.send(n);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(e);
        }
        if let Some(w) = self.shared.waker.get() {
            w(Duration::ZERO);
        }
    }

    fn waker(&self) -> Option<Waker> {
        self.shared.waker.get().cloned()
    }

    fn share_folder(&self) -> Option<PathBuf> {
        self.shared.state().share_folder()
    }

    /// Whether anyone looks at the peer list now.
    fn watched(&self) -> bool {
        self.shared.watchers.load(Ordering::SeqCst) > 0
    }

    fn state_of(&self, id: u64) -> Option<TransferState> {
        self.shared
            .state()
            .transfers
            .get(&id)
            .map(|t| t.state.clone())
    }

    /// Changes the state where no event says it.
    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.shared.state());
    }
}

/// Downloads go here unless config.toml says otherwise.
pub fn default_downloads(data_dir: &Path) -> PathBuf {
    data_dir.join("downloads")
}
