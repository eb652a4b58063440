//! The app's worker: a tokio runtime that owns the embedded node and every
//! transfer. The UI sends [`Command`]s and takes [`Event`]s (and reads the
//! transfers' [`Meter`]s) without ever waiting on the network or the disk.
//! The worker's loop is in [`worker`], what a running transfer does in
//! [`jobs`].

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
use shoal_node::download::{self, Progress, Sources, Swarm};
use shoal_node::peer_client::PeerClient;
use shoal_node::reputation::{Reputation, now_secs};
use shoal_node::tracker_client::TrackerClient;
use shoal_node::{Node, NodeConfig, TrackerState};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::activity::{Level, LogFeed};

mod jobs;
mod worker;

use worker::Core;

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
    /// Where the running node listens (empty once it stopped): what a
    /// `shoal:` link to a local file carries.
    Reach(Vec<String>),
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
        if let Some(c) = self.ctx.get() {
            c.request_repaint_after(Duration::from_millis(100));
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
        let core = Core::new(
            data_dir,
            config,
            identity,
            feed,
            sink.clone(),
            commands.clone(),
        );
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

/// Downloads go here unless config.toml says otherwise.
pub fn default_downloads(data_dir: &Path) -> PathBuf {
    data_dir.join("downloads")
}
