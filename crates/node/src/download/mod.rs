//! Downloads: bytes from peers into `NAME.part`, checked piece by piece
//! against the content id, fsync'd, and only then given their final name.
//!
//! The parts, along the seams later capabilities plug into:
//!
//! - [`service`]: the owner of a node's downloads; starts one from a
//!   [`service::Request`] and hands back a [`service::Handle`] to pause,
//!   resume or cancel it and to follow its [`service::Event`]s.
//! - [`resolve`]: what the user named (a peer's path, a content id) turned
//!   into a listing entry and its first providers.
//! - [`providers`]: where providers come from, a [`providers::Providers`]
//!   trait (the tracker today).
//! - [`picker`]: which pieces each peer fetches (rarest first, fair
//!   shares, end game), one state per piece.
//! - `peer`: one task per provider, fetching runs of pieces.
//! - `pipeline`: the verifier and writer threads.
//! - [`part`]: the `.part` file, its lock, its recovery and publication.
//!
//! How a peer is dialled is the [`crate::peer_client`]'s concern.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_core::ContentId;
use shoal_core::wire::{FileEntry, PeerRecord};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;

use crate::book::PeerBook;
use crate::error::{NodeError, Result};
use crate::peer_client::PeerClient;
use crate::reputation::{Reputation, Tally};
use crate::swarm::Partials;

mod engine;
pub mod part;
mod peer;
pub mod picker;
mod pipeline;
pub mod providers;
pub mod resolve;
pub mod service;

pub(crate) use part::link_into_place;
pub use providers::{Providers, Sources};
pub(crate) use resolve::listing;
pub use resolve::{add_peers, find_content, find_path, local_name, provider_name};

/// What a download may use beyond the peers it starts with.
#[derive(Clone, Default)]
pub struct Swarm {
    /// Asked now and then for providers that joined.
    pub sources: Sources,
    /// Where verified pieces are offered to other peers while downloading.
    pub partials: Option<Partials>,
    /// Where what each peer did is recorded, and bans are looked up.
    pub reputation: Option<Reputation>,
}

impl Swarm {
    /// Providers that join come from `sources`; nothing else.
    pub fn with_sources(sources: Sources) -> Self {
        Self {
            sources,
            ..Self::default()
        }
    }
}

/// Receives progress of a transfer (a progress bar, a GUI, the download
/// service's events, nothing).
pub trait Progress: Send + Sync {
    /// The transfer of `name`, `total` bytes, begins.
    fn start(&self, _name: &str, _total: u64) {}
    /// `n` more bytes arrived.
    fn advance(&self, _n: u64) {}
    /// `n` peers are serving the transfer now.
    fn sources(&self, _n: usize) {}
    /// A provider answered, reached as `route` says (direct or relayed).
    fn connected(&self, _peer: &PeerRecord, _route: &crate::peer_client::Route) {}
    /// A provider failed and was dropped from the transfer.
    fn provider_dropped(&self, _peer: &PeerRecord, _error: &NodeError) {}
    /// Every byte is in; the file is being made durable and named.
    fn finishing(&self) {}
    /// The transfer ended (successfully or not).
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Stops a download from outside, and tells whether its threads have
/// ended. Clones control the same download.
#[derive(Clone, Default)]
pub struct Control {
    stop: CancellationToken,
    threads: Arc<AtomicUsize>,
}

impl Control {
    /// A control of a download not stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the download to stop: it hands out no more pieces, lets the
    /// range requests in flight end (for at most 0.8 s, so the pieces
    /// they carry are kept), and returns [`NodeError::Stopped`].
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Whether [`Control::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Completes once [`Control::cancel`] is called.
    pub async fn cancelled(&self) {
        self.stop.cancelled().await;
    }

    /// Threads of the download (verifier, writer, flusher, recovery)
    /// still running.
    pub fn threads(&self) -> usize {
        self.threads.load(Ordering::SeqCst)
    }

    /// Counts the calling thread as the download's until the mark drops.
    fn thread(&self) -> ThreadMark {
        self.threads.fetch_add(1, Ordering::SeqCst);
        ThreadMark(self.threads.clone())
    }
}

/// One running thread of a download (see [`Control::threads`]).
struct ThreadMark(Arc<AtomicUsize>);

impl Drop for ThreadMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The picker and what each peer did, shared by the peer tasks, the
/// verifier and the writer; changes wake the peer tasks waiting for work.
#[derive(Clone)]
struct Board(Arc<(Mutex<BoardState>, tokio::sync::Notify)>);

struct BoardState {
    picker: picker::Picker,
    /// What each peer (by slot) did in this download.
    tallies: Vec<Tally>,
}

impl Board {
    fn new(picker: picker::Picker) -> Self {
        Self(Arc::new((
            Mutex::new(BoardState {
                picker,
                tallies: Vec::new(),
            }),
            tokio::sync::Notify::new(),
        )))
    }

    fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the board.
    fn read<R>(&self, f: impl FnOnce(&BoardState) -> R) -> R {
        f(&self.lock())
    }

    /// Changes what no waiting task cares about.
    fn with<R>(&self, f: impl FnOnce(&mut BoardState) -> R) -> R {
        f(&mut self.lock())
    }

    /// Changes pieces' states, then wakes the tasks waiting for work.
    fn update<R>(&self, f: impl FnOnce(&mut BoardState) -> R) -> R {
        let r = f(&mut self.lock());
        self.0.1.notify_waiters();
        r
    }

    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.1.notified()
    }
}

/// `get PEER:PATH`: resolves the peer, finds the file in its listing and
/// downloads it into `out_dir`, from that peer and every other provider
/// of the same content the sources know.
pub async fn get_path(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
    path: &str,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
) -> Result<PathBuf> {
    let (peer, entry) = find_path(book, client, peer_query, path).await?;
    let mut peers = vec![peer];
    match swarm.sources.providers(entry.content_id).await {
        Ok(more) => add_peers(&mut peers, more, client),
        Err(e) => tracing::debug!(error = %e, "no other providers: lookup failed"),
    }
    download_from(client, &peers, &entry, out_dir, progress, swarm).await
}

/// `get CONTENT_ID`: asks the sources who has it and downloads from all of
/// them at once, under the name the first of them lists it by.
pub async fn get_content(
    client: &PeerClient,
    cid: ContentId,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
) -> Result<PathBuf> {
    let (providers, mut entry) = find_content(&swarm.sources, client, cid).await?;
    entry.name = provider_name(&entry.name)?;
    download_from(client, &providers, &entry, out_dir, progress, swarm).await
}

/// Downloads `entry` from `peer` into `out_dir`, resuming a partial
/// download of the same content if one is there.
pub async fn download(
    client: &PeerClient,
    peer: &PeerRecord,
    entry: &FileEntry,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    download_from(
        client,
        std::slice::from_ref(peer),
        entry,
        out_dir,
        progress,
        &Swarm::default(),
    )
    .await
}

/// Downloads `entry` from all of `peers` at once (pieces from each, by
/// speed) into `out_dir`, resuming a partial download if one is there.
/// Providers the `swarm`'s sources report meanwhile join in; with
/// partials, the verified pieces are offered to others as they land.
/// Peers banned in `swarm`'s reputation are skipped. To pause or cancel
/// a download, start it through the [`service`].
pub async fn download_from(
    client: &PeerClient,
    peers: &[PeerRecord],
    entry: &FileEntry,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
) -> Result<PathBuf> {
    let never = Control::new();
    download_until(client, peers, entry, out_dir, progress, swarm, &never).await
}

/// [`download_from`], stopping when `stop` is cancelled (with
/// [`NodeError::Stopped`], once every thread of it has ended and its
/// `.part` is unlocked).
pub async fn download_until(
    client: &PeerClient,
    peers: &[PeerRecord],
    entry: &FileEntry,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
    stop: &Control,
) -> Result<PathBuf> {
    let r = engine::run(client, peers, entry, out_dir, progress, swarm, stop).await;
    progress.finish();
    r
}
