//! The app's worker: a tokio runtime that owns the embedded node and every
//! transfer. The UI sends [`Command`]s and takes [`Event`]s (and reads the
//! transfers' [`Meter`]s) without ever waiting on the network or the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use shoal_core::config::Config;
use shoal_core::wire::{FileEntry, PeerRecord};
use shoal_core::{ContentId, Identity, PeerId};
use shoal_crypt::secrecy::SecretString;
use shoal_node::book::PeerBook;
use shoal_node::download::{self, Progress, Swarm};
use shoal_node::peer_client::PeerClient;
use shoal_node::reputation::{Reputation, now_secs};
use shoal_node::tracker_client::TrackerClient;
use shoal_node::{Node, NodeConfig, TrackerState};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::activity::{Level, LogFeed};

/// Registration lifetime the app asks for: heartbeats every 5 s, so the
/// header follows the tracker closely.
const TTL: u64 = 15;
/// How often the peer list refreshes while online.
const PEERS_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for one peer's listing when counting its files.
const LISTING_TIMEOUT: Duration = Duration::from_secs(5);

/// What the UI asks of the worker.
pub enum Command {
    /// Start the node and register with the tracker.
    Start,
    /// Deregister and stop the node.
    Stop,
    /// Ask the tracker for peers again.
    RefreshPeers,
    /// Fetch a peer's listing.
    Browse(PeerRecord),
    /// Download one file of a peer's listing.
    Download {
        /// From whom (others with the same content join in).
        peer: PeerRecord,
        /// What.
        file: FileEntry,
    },
    /// Download `PEER:PATH` or a content id, as `shoal get` does.
    Fetch(String),
    /// Put a file into the first share folder, plain or encrypted.
    Share {
        /// The file.
        path: PathBuf,
        /// How to lock it.
        lock: ShareLock,
    },
    /// Push a file into a peer's inbox.
    Send {
        /// To whom.
        peer: PeerRecord,
        /// The file.
        path: PathBuf,
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
    /// Stop every transfer (partial downloads stay), deregister and stop
    /// the node, then say so on `done`.
    Quit(std::sync::mpsc::Sender<()>),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetState {
    /// Not started, or the tracker cannot be reached.
    Offline,
    /// Starting or registering.
    Connecting,
    /// Registered.
    Online,
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
    Failed(String),
    /// Cancelled; what arrived was thrown away.
    Cancelled,
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
    /// Bytes so far, live.
    pub meter: Arc<Meter>,
}

/// What the worker tells the UI.
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
    /// config.toml was written; the app shows these settings now.
    Saved(Box<Config>),
}

/// Live counters of one transfer, written by the engine, read by the UI.
#[derive(Default)]
pub struct Meter {
    total: AtomicU64,
    done: AtomicU64,
    sources: AtomicUsize,
    ctx: std::sync::OnceLock<egui::Context>,
}

impl Meter {
    fn new(ctx: Option<egui::Context>) -> Arc<Self> {
        let m = Meter::default();
        if let Some(c) = ctx {
            let _ = m.ctx.set(c);
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

    /// Peers serving it now.
    pub fn sources(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
    }

    fn repaint(&self) {
        if let Some(c) = self.ctx.get() {
            c.request_repaint_after(Duration::from_millis(100));
        }
    }
}

impl Progress for Meter {
    fn start(&self, _name: &str, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.repaint();
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.repaint();
    }
    fn sources(&self, n: usize) {
        self.sources.store(n, Ordering::Relaxed);
    }
    fn finish(&self) {
        self.sources.store(0, Ordering::Relaxed);
        self.repaint();
    }
}

/// The UI's end of the worker.
pub struct Backend {
    runtime: Option<tokio::runtime::Runtime>,
    commands: mpsc::UnboundedSender<Command>,
    events: std::sync::mpsc::Receiver<Event>,
    sink: Sink,
}

impl Backend {
    /// Starts the worker for the data dir (its key, config.toml, logs).
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
        let (commands, rx) = mpsc::unbounded_channel();
        let (tx, events) = std::sync::mpsc::channel();
        let sink = Sink {
            tx,
            ctx: Arc::new(std::sync::OnceLock::new()),
        };
        let core = Core {
            client: Arc::new(new_client(&identity, &config)),
            data_dir,
            config,
            identity,
            feed,
            sink: sink.clone(),
            node: None,
            watch: None,
            jobs: HashMap::new(),
            next_id: 0,
            commands: commands.clone(),
            refreshing: Arc::new(AtomicBool::new(false)),
        };
        runtime.spawn(core.run(rx));
        Ok(Self {
            runtime: Some(runtime),
            commands,
            events,
            sink,
        })
    }

    /// Repaints `ctx` when events arrive.
    pub fn set_ctx(&self, ctx: &egui::Context) {
        let _ = self.sink.ctx.set(ctx.clone());
    }

    /// Asks the worker to do something.
    pub fn send(&self, c: Command) {
        let _ = self.commands.send(c);
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
        let _ = self.commands.send(Command::Quit(done_tx));
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends events and wakes the UI.
#[derive(Clone)]
struct Sink {
    tx: std::sync::mpsc::Sender<Event>,
    ctx: Arc<std::sync::OnceLock<egui::Context>>,
}

impl Sink {
    fn send(&self, e: Event) {
        let _ = self.tx.send(e);
        if let Some(c) = self.ctx.get() {
            c.request_repaint();
        }
    }

    fn ctx(&self) -> Option<egui::Context> {
        self.ctx.get().cloned()
    }
}

/// What a transfer does, kept so it can be resumed.
#[derive(Clone)]
enum Job {
    Download {
        /// The peer it was asked of (none for a download left from an
        /// earlier session: whoever has the content then).
        peer: Option<PeerRecord>,
        file: FileEntry,
        dir: PathBuf,
    },
    Push {
        peer: PeerRecord,
        path: PathBuf,
    },
}

struct Running {
    job: Job,
    meter: Arc<Meter>,
    task: Option<AbortHandle>,
}

/// The worker's state; lives on the runtime.
struct Core {
    data_dir: PathBuf,
    config: Config,
    identity: Arc<Identity>,
    feed: LogFeed,
    sink: Sink,
    node: Option<Node>,
    /// Stops the status watcher and the peer refresher of the running node.
    watch: Option<tokio_util::sync::DropGuard>,
    jobs: HashMap<u64, Running>,
    next_id: u64,
    client: Arc<PeerClient>,
    commands: mpsc::UnboundedSender<Command>,
    refreshing: Arc<AtomicBool>,
}

/// Who a download left from an earlier session comes from.
const ANY_PEER: &str = "whoever has it";

impl Core {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        self.restore();
        while let Some(c) = rx.recv().await {
            self.handle(c).await;
        }
        self.stop().await;
    }

    async fn handle(&mut self, c: Command) {
        match c {
            Command::Start => self.start().await,
            Command::Stop => self.stop().await,
            Command::RefreshPeers => self.refresh_peers(),
            Command::Browse(peer) => self.browse(peer),
            Command::Download { peer, file } => {
                let dir = self.downloads_dir();
                let busy = self.jobs.values().any(|r| {
                    r.task.as_ref().is_some_and(|t| !t.is_finished())
                        && matches!(&r.job, Job::Download { file: f, dir: d, .. }
                            if f.content_id == file.content_id && f.name == file.name && *d == dir)
                });
                if busy {
                    self.feed.log(
                        Level::Info,
                        format!("{} is being downloaded already", file.name),
                    );
                } else {
                    self.begin(
                        Job::Download {
                            peer: Some(peer),
                            file,
                            dir,
                        },
                        None,
                    );
                }
            }
            Command::Fetch(target) => self.fetch(target),
            Command::Share { path, lock } => self.share(path, lock),
            Command::Send { peer, path } => self.begin(Job::Push { peer, path }, None),
            Command::Pause(id) => {
                // A transfer that just ended keeps its own final state.
                if let Some(r) = self.jobs.get_mut(&id)
                    && let Some(t) = r.task.take_if(|t| !t.is_finished())
                {
                    t.abort();
                    self.sink.send(Event::TransferState {
                        id,
                        state: TransferState::Paused,
                    });
                }
            }
            Command::Resume(id) => {
                if let Some(r) = self.jobs.get(&id) {
                    let job = r.job.clone();
                    self.begin(job, Some(id));
                }
            }
            Command::Cancel(id) => self.cancel(id),
            Command::Open {
                id,
                path,
                passphrase,
            } => self.open(id, path, passphrase),
            Command::Save(config) => self.save(*config).await,
            Command::Quit(done) => {
                for r in self.jobs.values_mut() {
                    if let Some(t) = r.task.take() {
                        t.abort();
                    }
                }
                self.stop().await;
                let _ = done.send(());
            }
        }
    }

    /// Lists the downloads an earlier session left unfinished in the
    /// download folder (their `.part` and piece record), paused, so they
    /// can be resumed from the pieces already verified.
    fn restore(&mut self) {
        let dir = self.downloads_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let suffix = format!("{}.state", shoal_node::index::PART_SUFFIX);
        let mut found: Vec<(String, shoal_node::pieces::PieceState)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = file.strip_suffix(&suffix)?.to_owned();
                let state = shoal_node::pieces::PieceState::load(&e.path())?;
                Some((name, state))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, state) in found {
            self.next_id += 1;
            let id = self.next_id;
            let meter = Meter::new(self.sink.ctx());
            meter.start(&name, state.size);
            meter.advance(
                (state.verified().count() * shoal_node::pieces::PIECE_SIZE).min(state.size),
            );
            self.sink.send(Event::Transfer(TransferInfo {
                id,
                direction: Direction::Download,
                name: name.clone(),
                peer: ANY_PEER.to_owned(),
                meter: meter.clone(),
            }));
            self.sink.send(Event::TransferState {
                id,
                state: TransferState::Paused,
            });
            let file = FileEntry {
                encrypted: name.ends_with(".age"),
                name,
                size: state.size,
                content_id: state.content_id,
                modified: 0,
            };
            self.jobs.insert(
                id,
                Running {
                    job: Job::Download {
                        peer: None,
                        file,
                        dir: dir.clone(),
                    },
                    meter,
                    task: None,
                },
            );
        }
        if !self.jobs.is_empty() {
            self.feed.log(
                Level::Info,
                format!(
                    "{} unfinished download(s) from last time are paused in Transfers; resume them there",
                    self.jobs.len()
                ),
            );
        }
    }

    fn downloads_dir(&self) -> PathBuf {
        self.config
            .downloads
            .clone()
            .unwrap_or_else(|| default_downloads(&self.data_dir))
    }

    fn tracker(&self) -> Result<TrackerClient, String> {
        let url = self
            .config
            .tracker
            .clone()
            .unwrap_or_else(|| shoal_core::config::DEFAULT_TRACKER.to_owned());
        TrackerClient::new(&url, self.config.tracker_token.clone(), self.config.retry)
            .map_err(|e| format!("{e}; fix the tracker URL in Settings"))
    }

    /// The one client of every download, listing and push: its
    /// connections are reused, and its limit covers all downloads together.
    fn client(&self) -> Arc<PeerClient> {
        self.client.clone()
    }

    fn name(&self) -> String {
        self.config
            .name
            .clone()
            .unwrap_or_else(|| format!("peer-{}", self.identity.peer_id().short()))
    }

    async fn start(&mut self) {
        if self.node.is_some() {
            return;
        }
        self.sink.send(Event::Network {
            state: NetState::Connecting,
            port: None,
        });
        let tracker = match self.tracker() {
            Ok(t) => t,
            Err(e) => return self.start_failed(e),
        };
        let cfg = match NodeConfig::from_config(self.data_dir.clone(), &self.config, self.name()) {
            Ok(mut c) => {
                c.tracker = Some(tracker);
                c.ttl = TTL;
                c
            }
            Err(e) => return self.start_failed(format!("{e}; fix it in Settings")),
        };
        for dir in &cfg.shares {
            if !dir.is_dir() {
                self.feed.log(
                    Level::Warning,
                    format!(
                        "share folder {} does not exist; remove it in Settings or create it",
                        dir.display()
                    ),
                );
            }
        }
        let node = match Node::start(cfg, self.identity.clone()).await {
            Ok(n) => n,
            Err(shoal_node::NodeError::DataDirInUse(_)) => {
                return self.start_failed(
                    "another Shoal node runs with this data dir; stop it (or its `shoal up`) and start again".into(),
                );
            }
            Err(e) => return self.start_failed(format!("{e}")),
        };
        let port = node.local_addr().port();
        self.feed.log(
            Level::Info,
            match node.index().snapshot().len() {
                1 => format!("node started on port {port}; sharing 1 file"),
                n => format!("node started on port {port}; sharing {n} files"),
            },
        );
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(watch_status(
            node.watch_tracker(),
            port,
            self.feed.clone(),
            self.sink.clone(),
            self.commands.clone(),
            cancel.clone(),
        ));
        tokio::spawn(refresh_every(
            node.index().clone(),
            node.watch_tracker(),
            self.sink.clone(),
            self.commands.clone(),
            cancel.clone(),
        ));
        self.watch = Some(cancel.drop_guard());
        self.node = Some(node);
    }

    fn start_failed(&self, why: String) {
        self.feed
            .log(Level::Error, format!("cannot start the network: {why}"));
        self.sink.send(Event::Network {
            state: NetState::Offline,
            port: None,
        });
    }

    async fn stop(&mut self) {
        self.watch = None;
        if let Some(node) = self.node.take() {
            node.shutdown().await;
            self.feed.log(Level::Info, "network stopped");
        }
        self.sink.send(Event::Network {
            state: NetState::Offline,
            port: None,
        });
        self.sink.send(Event::LocalFiles(Vec::new()));
    }

    fn refresh_peers(&self) {
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let flag = self.refreshing.clone();
        let tracker = match self.tracker() {
            Ok(t) => t,
            Err(e) => {
                flag.store(false, Ordering::SeqCst);
                return self.feed.log(Level::Error, e);
            }
        };
        let book = PeerBook::new(tracker, &self.data_dir);
        let client = self.client();
        let reputation = Reputation::new(&self.data_dir, self.config.reputation);
        let me = self.identity.peer_id();
        let (sink, feed) = (self.sink.clone(), self.feed.clone());
        tokio::spawn(async move {
            let rows = peer_rows(&book, client, reputation, me).await;
            flag.store(false, Ordering::SeqCst);
            match rows {
                Ok(rows) => sink.send(Event::Peers(rows)),
                Err(e) => feed.log(Level::Warning, format!("cannot list peers: {e}")),
            }
        });
    }

    fn browse(&self, peer: PeerRecord) {
        let client = self.client();
        let sink = self.sink.clone();
        tokio::spawn(async move {
            let files = client.files(&peer).await.map_err(|e| e.to_string());
            sink.send(Event::Listing {
                peer: peer.peer_id,
                files,
            });
        });
    }

    /// `PEER:PATH` or a content id: looks the file up, then downloads it.
    fn fetch(&self, target: String) {
        let tracker = match self.tracker() {
            Ok(t) => t,
            Err(e) => return self.feed.log(Level::Error, e),
        };
        let book = PeerBook::new(tracker, &self.data_dir);
        let client = self.client();
        let (commands, feed) = (self.commands.clone(), self.feed.clone());
        tokio::spawn(async move {
            match lookup(&book, &client, target.trim()).await {
                Ok((peer, file)) => {
                    let _ = commands.send(Command::Download { peer, file });
                }
                Err(e) => feed.log(Level::Error, format!("cannot download `{target}`: {e}")),
            }
        });
    }

    /// Starts (or, with `id`, resumes) a transfer.
    fn begin(&mut self, job: Job, id: Option<u64>) {
        let id = id.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id
        });
        if let Some(r) = self.jobs.get(&id)
            && r.task.as_ref().is_some_and(|t| !t.is_finished())
        {
            return; // running already
        }
        let meter = match self.jobs.get(&id) {
            Some(r) => r.meter.clone(),
            None => {
                let meter = Meter::new(self.sink.ctx());
                let (direction, name, peer) = match &job {
                    Job::Download { peer, file, .. } => (
                        Direction::Download,
                        file.name.clone(),
                        peer.as_ref()
                            .map_or_else(|| ANY_PEER.to_owned(), |p| p.name.clone()),
                    ),
                    Job::Push { peer, path } => (
                        Direction::Push,
                        path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        ),
                        peer.name.clone(),
                    ),
                };
                self.sink.send(Event::Transfer(TransferInfo {
                    id,
                    direction,
                    name,
                    peer,
                    meter: meter.clone(),
                }));
                meter
            }
        };
        self.sink.send(Event::TransferState {
            id,
            state: TransferState::Running,
        });
        let ctx = JobCtx {
            client: self.client(),
            tracker: self.tracker().ok(),
            swarm: Swarm {
                tracker: self.tracker().ok(),
                partials: self.node.as_ref().map(|n| n.partials().clone()),
                reputation: Some(Reputation::new(&self.data_dir, self.config.reputation)),
            },
            identity: self.identity.clone(),
            feed: self.feed.clone(),
            meter: meter.clone(),
        };
        let sink = self.sink.clone();
        let run = job.clone();
        let task = tokio::spawn(async move {
            let state = match run {
                Job::Download { peer, file, dir } => ctx.download(peer, file, dir).await,
                Job::Push { peer, path } => ctx.push(peer, path).await,
            };
            sink.send(Event::TransferState { id, state });
        });
        self.jobs.insert(
            id,
            Running {
                job,
                meter,
                task: Some(task.abort_handle()),
            },
        );
    }

    fn cancel(&mut self, id: u64) {
        let Some(mut r) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(t) = r.task.take() {
            t.abort();
        }
        let feed = self.feed.clone();
        if let Job::Download { file, dir, .. } = &r.job
            && let Ok(name) = download::local_name(&file.name)
        {
            let part = dir.join(format!("{name}{}", shoal_node::index::PART_SUFFIX));
            let name = name.clone();
            tokio::task::spawn_blocking(move || {
                remove_part(&part);
                feed.log(
                    Level::Info,
                    format!("cancelled {name}; what had arrived was removed"),
                );
            });
        } else {
            feed.log(Level::Info, "push cancelled");
        }
        self.sink.send(Event::TransferState {
            id,
            state: TransferState::Cancelled,
        });
    }

    fn open(&self, id: u64, path: PathBuf, passphrase: SecretString) {
        let (sink, feed) = (self.sink.clone(), self.feed.clone());
        tokio::task::spawn_blocking(move || match open_with_passphrase(&path, passphrase) {
            Ok(plain) => {
                feed.log(
                    Level::Success,
                    format!("saved {} (decrypted)", plain.display()),
                );
                sink.send(Event::TransferState {
                    id,
                    state: TransferState::Done(plain),
                });
            }
            Err(e) => {
                feed.log(
                    Level::Error,
                    format!(
                        "cannot open {}: {e}; nothing was written and the encrypted file is kept, so try again",
                        path.display()
                    ),
                );
                sink.send(Event::TransferState {
                    id,
                    state: TransferState::NeedsPassphrase(path),
                });
            }
        });
    }

    fn share(&self, path: PathBuf, lock: ShareLock) {
        let folder = self.config.shares.first().cloned();
        let feed = self.feed.clone();
        tokio::task::spawn_blocking(move || match share_file(&path, folder, lock) {
            Ok(done) => feed.log(Level::Success, format!("shared {}", done.display())),
            Err(e) => feed.log(
                Level::Error,
                format!("cannot share {}: {e}", path.display()),
            ),
        });
    }

    async fn save(&mut self, config: Config) {
        let dir = self.data_dir.clone();
        let c = config.clone();
        let saved = tokio::task::spawn_blocking(move || c.save(&dir)).await;
        match saved {
            Ok(Ok(())) => {
                self.feed.log(
                    Level::Success,
                    format!(
                        "settings saved to {}",
                        self.data_dir
                            .join(shoal_core::config::CONFIG_FILE)
                            .display()
                    ),
                );
                self.client = Arc::new(new_client(&self.identity, &config));
                self.config = config.clone();
                self.sink.send(Event::Saved(Box::new(config)));
                if self.node.is_some() {
                    self.stop().await;
                    self.start().await;
                }
            }
            Ok(Err(e)) => self.feed.log(Level::Error, format!("{e}")),
            Err(e) => self
                .feed
                .log(Level::Error, format!("saving settings failed: {e}")),
        }
    }
}

fn new_client(identity: &Arc<Identity>, config: &Config) -> PeerClient {
    PeerClient::new(identity.clone(), config.retry)
        .with_download_limit(shoal_node::rate::RateLimit::new(config.max_download_rate))
}

/// Downloads go here unless config.toml says otherwise.
pub fn default_downloads(data_dir: &Path) -> PathBuf {
    data_dir.join("downloads")
}

/// Sends the header's status whenever the node's standing changes, and
/// refreshes peers when it comes online.
async fn watch_status(
    mut state: tokio::sync::watch::Receiver<TrackerState>,
    port: u16,
    feed: LogFeed,
    sink: Sink,
    commands: mpsc::UnboundedSender<Command>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut was = TrackerState::None;
    loop {
        let now = *state.borrow_and_update();
        match now {
            TrackerState::Online if was != TrackerState::Online => {
                feed.push(Level::Success, "ONLINE: the tracker lists this node");
            }
            TrackerState::Offline if was != TrackerState::Offline => feed.push(
                Level::Warning,
                "OFFLINE: tracker unreachable; still serving, will keep trying (check the tracker URL in Settings)",
            ),
            _ => {}
        }
        was = now;
        let net = match now {
            TrackerState::Online => NetState::Online,
            TrackerState::Connecting => NetState::Connecting,
            TrackerState::Offline | TrackerState::None => NetState::Offline,
        };
        sink.send(Event::Network {
            state: net,
            port: Some(port),
        });
        if net == NetState::Online {
            let _ = commands.send(Command::RefreshPeers);
        }
        tokio::select! {
            r = state.changed() => if r.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// Refreshes the local listing when it changes and the peer list now and
/// then while the tracker is reachable.
async fn refresh_every(
    index: Arc<shoal_node::index::ShareIndex>,
    tracker: tokio::sync::watch::Receiver<TrackerState>,
    sink: Sink,
    commands: mpsc::UnboundedSender<Command>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut changes = index.subscribe();
    let mut tick = tokio::time::interval(PEERS_EVERY);
    loop {
        let files: Vec<FileEntry> = index.snapshot().files().map(|f| f.entry.clone()).collect();
        sink.send(Event::LocalFiles(files));
        tokio::select! {
            _ = tick.tick() => {
                if *tracker.borrow() == TrackerState::Online {
                    let _ = commands.send(Command::RefreshPeers);
                }
            }
            r = changes.changed() => if r.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

async fn peer_rows(
    book: &PeerBook,
    client: Arc<PeerClient>,
    reputation: Reputation,
    me: PeerId,
) -> Result<Vec<PeerRow>, String> {
    let (peers, _) = book.list().await.map_err(|e| e.to_string())?;
    let standings = tokio::task::spawn_blocking(move || reputation.all())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let now = now_secs();
    let mut set = tokio::task::JoinSet::new();
    for (i, p) in peers.iter().enumerate().filter(|(_, p)| p.peer_id != me) {
        let (client, p) = (client.clone(), p.clone());
        set.spawn(async move {
            let n = tokio::time::timeout(LISTING_TIMEOUT, client.files(&p)).await;
            (i, n.ok().and_then(Result::ok).map(|f| f.len()))
        });
    }
    let mut counts = HashMap::new();
    while let Some(Ok((i, n))) = set.join_next().await {
        counts.insert(i, n);
    }
    Ok(peers
        .into_iter()
        .enumerate()
        .filter(|(_, p)| p.peer_id != me)
        .map(|(i, record)| PeerRow {
            verdict: standings
                .get(&record.peer_id)
                .map_or("new", |s| s.verdict(now)),
            files: counts.get(&i).copied().flatten(),
            record,
        })
        .collect())
}

async fn lookup(
    book: &PeerBook,
    client: &PeerClient,
    target: &str,
) -> Result<(PeerRecord, FileEntry), String> {
    if let Ok(cid) = target.parse::<ContentId>() {
        let providers = book
            .tracker()
            .providers(cid)
            .await
            .map_err(|e| e.to_string())?;
        for p in providers
            .into_iter()
            .filter(|p| p.peer_id != client.peer_id())
        {
            if let Ok(files) = client.files(&p).await
                && let Some(f) = files.into_iter().find(|f| f.content_id == cid)
            {
                return Ok((p, f));
            }
        }
        return Err(format!("no live peer provides content {cid}"));
    }
    let Some((peer, path)) = target.split_once(':') else {
        return Err("give PEER:PATH (e.g. alice:docs/report.pdf) or a 64-hex content id".into());
    };
    if path.ends_with('/') || path.is_empty() {
        return Err(
            "the app downloads one file at a time; for a folder use `shoal get PEER:DIR/`".into(),
        );
    }
    let (record, _) = book.resolve(peer).await.map_err(|e| e.to_string())?;
    let files = client.files(&record).await.map_err(|e| e.to_string())?;
    let wanted = path.trim_start_matches('/');
    let file = files
        .into_iter()
        .find(|f| f.name == wanted)
        .ok_or_else(|| format!("{} shares no file `{wanted}`", record.name))?;
    Ok((record, file))
}

/// What a running transfer needs.
struct JobCtx {
    client: Arc<PeerClient>,
    tracker: Option<TrackerClient>,
    swarm: Swarm,
    identity: Arc<Identity>,
    feed: LogFeed,
    meter: Arc<Meter>,
}

impl JobCtx {
    async fn download(
        self,
        peer: Option<PeerRecord>,
        file: FileEntry,
        dir: PathBuf,
    ) -> TransferState {
        let mut peers: Vec<PeerRecord> = peer.into_iter().collect();
        if let Some(t) = &self.tracker
            && let Ok(more) = t.providers(file.content_id).await
        {
            for p in more {
                if p.peer_id != self.client.peer_id()
                    && !peers.iter().any(|q| q.peer_id == p.peer_id)
                {
                    peers.push(p);
                }
            }
        }
        if peers.is_empty() {
            let e = format!("no live peer provides {} now; resume it later", file.name);
            self.feed.log(Level::Warning, e.clone());
            return TransferState::Failed(e);
        }
        // A paused download's writer may still be letting go of the file.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let result = loop {
            let r = download::download_from(
                &self.client,
                &peers,
                &file,
                &dir,
                &*self.meter,
                &self.swarm,
            )
            .await;
            match r {
                Err(shoal_node::NodeError::File { source, .. })
                    if source.kind() == std::io::ErrorKind::ResourceBusy
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => break r,
            }
        };
        let path = match result {
            Ok(p) => p,
            Err(shoal_node::NodeError::Exists(p)) => {
                let e = format!(
                    "{} already exists; move it away, or choose another download folder in Settings",
                    p.display()
                );
                self.feed.log(
                    Level::Error,
                    format!("download of {} failed: {e}", file.name),
                );
                return TransferState::Failed(e);
            }
            Err(e) => {
                self.feed.log(
                    Level::Error,
                    format!("download of {} failed: {e}", file.name),
                );
                return TransferState::Failed(e.to_string());
            }
        };
        let identity = self.identity.clone();
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || open_with_key(&p, &identity)).await;
        match opened {
            Ok(Opened::Plain) => {
                self.feed
                    .log(Level::Success, format!("saved {}", path.display()));
                TransferState::Done(path)
            }
            Ok(Opened::Decrypted(plain)) => {
                self.feed.log(
                    Level::Success,
                    format!("saved {} (decrypted)", plain.display()),
                );
                TransferState::Done(plain)
            }
            Ok(Opened::NeedsPassphrase) => {
                self.feed.log(
                    Level::Info,
                    format!(
                        "downloaded {}; it is encrypted with a passphrase, enter it to open the file",
                        path.display()
                    ),
                );
                TransferState::NeedsPassphrase(path)
            }
            Ok(Opened::Failed(e)) => {
                self.feed.log(
                    Level::Error,
                    format!(
                        "downloaded and verified {}, but cannot open it: {e}; it is kept as it is",
                        path.display()
                    ),
                );
                TransferState::Done(path)
            }
            Err(e) => TransferState::Failed(e.to_string()),
        }
    }

    async fn push(self, peer: PeerRecord, path: PathBuf) -> TransferState {
        match shoal_node::send::send_file(&self.client, &peer, &path, &*self.meter).await {
            Ok(got) => {
                self.feed.log(
                    Level::Success,
                    format!(
                        "sent {} to {} (in its inbox as {})",
                        path.display(),
                        peer.name,
                        got.name
                    ),
                );
                TransferState::Done(PathBuf::from(got.name))
            }
            Err(e) => {
                self.feed.log(
                    Level::Error,
                    format!("cannot send {} to {}: {e}", path.display(), peer.name),
                );
                TransferState::Failed(e.to_string())
            }
        }
    }
}

enum Opened {
    Plain,
    Decrypted(PathBuf),
    NeedsPassphrase,
    Failed(String),
}

/// Opens a downloaded `.age` file meant for this node's key; says when a
/// passphrase is needed instead. The ciphertext goes once the plaintext
/// is on disk.
fn open_with_key(path: &Path, identity: &Identity) -> Opened {
    let Some(out) = shoal_crypt::plain_name(path) else {
        return Opened::Plain;
    };
    let is_age = path.extension().is_some_and(|e| e == "age");
    if !is_age {
        return if shoal_crypt::is_fernet_file(path) {
            Opened::NeedsPassphrase
        } else {
            Opened::Plain
        };
    }
    match shoal_crypt::needs(path) {
        Ok(shoal_crypt::Needs::Passphrase) => Opened::NeedsPassphrase,
        Ok(shoal_crypt::Needs::Key) => {
            match shoal_crypt::decrypt_file(path, &out, &shoal_crypt::Key::Identity(identity), true)
            {
                Ok(_) => {
                    let _ = std::fs::remove_file(path);
                    Opened::Decrypted(out)
                }
                Err(e) => Opened::Failed(e.to_string()),
            }
        }
        Err(e) => Opened::Failed(e.to_string()),
    }
}

/// Decrypts `path` (age or the seed's Fernet) with a passphrase into its
/// plain name; removes the ciphertext once the plaintext is on disk.
fn open_with_passphrase(path: &Path, passphrase: SecretString) -> Result<PathBuf, String> {
    use shoal_crypt::secrecy::ExposeSecret;
    let out = shoal_crypt::plain_name(path)
        .ok_or_else(|| format!("{} is not an encrypted file", path.display()))?;
    if shoal_crypt::is_fernet_file(path) {
        shoal_crypt::legacy::decrypt_file(path, &out, passphrase.expose_secret(), true)
            .map_err(|e| e.to_string())?;
    } else {
        shoal_crypt::decrypt_file(path, &out, &shoal_crypt::Key::Passphrase(passphrase), true)
            .map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_file(path);
    Ok(out)
}

/// Puts `src` into `folder` (the first share): copied, or encrypted as
/// `NAME.age`. Never replaces a file there.
fn share_file(src: &Path, folder: Option<PathBuf>, lock: ShareLock) -> Result<PathBuf, String> {
    let folder = folder.ok_or("no share folder is set; add one in Settings first".to_owned())?;
    let meta = std::fs::metadata(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist (any more)".to_owned(),
        _ => format!("cannot read it: {e}"),
    })?;
    if meta.is_dir() {
        return Err(
            "it is a folder; share files one by one, or add the folder as a share in Settings"
                .into(),
        );
    }
    if !folder.is_dir() {
        return Err(format!(
            "the share folder {} does not exist; create it or choose another in Settings",
            folder.display()
        ));
    }
    let name = src
        .file_name()
        .ok_or_else(|| "it has no file name".to_owned())?;
    let plain = folder.join(name);
    let crypt = |lock: shoal_crypt::Lock| {
        let mut s = plain.clone().into_os_string();
        s.push(".age");
        let dst = PathBuf::from(s);
        shoal_crypt::encrypt_file(src, &dst, &lock, false)
            .map(|_| dst)
            .map_err(|e| e.to_string())
    };
    match lock {
        ShareLock::Plain => shoal_crypt::copy_file(src, &plain)
            .map(|()| plain)
            .map_err(|e| e.to_string()),
        ShareLock::Passphrase(p) => crypt(shoal_crypt::Lock::Passphrase(p)),
        ShareLock::Peer(id) => {
            let key = shoal_crypt::PeerKey::of_peer(&id).map_err(|e| e.to_string())?;
            crypt(shoal_crypt::Lock::Peers(vec![key]))
        }
    }
}

/// Removes a cancelled download's partial file and its piece record,
/// once the engine's writer has let go of it (a few seconds at most).
fn remove_part(part: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while let Ok(f) = std::fs::File::open(part) {
        if f.try_lock().is_ok() || std::time::Instant::now() > deadline {
            break;
        }
        drop(f);
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(part);
    let _ = std::fs::remove_file(shoal_node::pieces::PieceState::path_for(part));
}
