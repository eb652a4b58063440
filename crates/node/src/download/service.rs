//! The download service: one owner for the downloads of a node (or of a
//! `get`, or of the desktop app).
//!
//! [`Downloads::start`] takes a [`Request`] (what to fetch, where to) and
//! returns a [`Handle`] at once; the download runs on its own task. The
//! handle pauses, resumes and cancels it, tells its [`Status`], and hands
//! out a stream of [`Event`]s (resolving, sources, progress, providers
//! dropped, finishing, done, failed). Pause and cancel return only once
//! every thread of the download has stopped and its `.part` lock is
//! released: pause keeps what arrived (a resume, even by another process,
//! continues from it), cancel removes it.
//!
//! [`Downloads::unfinished`] lists what earlier runs left in a folder
//! (a `.part` with its piece record) and [`Downloads::adopt`] turns each
//! into a paused handle; resuming one asks the sources for providers of
//! its content.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_core::ContentId;
use shoal_core::wire::{FileEntry, PeerRecord};
use tokio::sync::{broadcast, watch};

use super::{
    Control, Progress, Swarm, add_peers, find_content, find_path, local_name, provider_name,
};
use crate::book::PeerBook;
use crate::error::{NodeError, Result};
use crate::index::PART_SUFFIX;
use crate::peer_client::PeerClient;
use crate::pieces::{PIECE_SIZE, PieceState};

/// How often a running download reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Events a slow subscriber may fall behind by before it misses some
/// (progress events carry totals, so a missed one costs nothing).
const EVENT_BACKLOG: usize = 256;

/// What to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `PEER:PATH`: one file of a peer's listing.
    Path {
        /// The peer: a name, an id or an id prefix.
        peer: String,
        /// The file's path in its listing.
        path: String,
    },
    /// `PEER:DIR/`: every file of a peer's folder, keeping the tree.
    Folder {
        /// The peer.
        peer: String,
        /// The folder's path in its listing.
        dir: String,
    },
    /// A content id: from whoever provides it, under the name they list.
    Content(ContentId),
    /// A `shoal:` link: its content id, from the provider it names (at
    /// the addresses it carries) and whoever else the sources report.
    Link(shoal_core::Link),
    /// A file already looked up (a listing clicked, a download resumed):
    /// its entry, and providers to start with (the sources add more).
    Entry {
        /// The listing entry.
        entry: FileEntry,
        /// Providers known already (may be empty).
        peers: Vec<PeerRecord>,
    },
}

/// A target that cannot be parsed: what is wrong with it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct BadTarget {
    /// What was given, escaped.
    pub text: String,
    /// What is wrong with it, if it is a `shoal:` link.
    #[source]
    pub link: Option<shoal_core::LinkError>,
}

impl std::fmt::Display for BadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.link {
            Some(e) => write!(f, "`{}` is not a usable shoal: link: {e}", self.text),
            None => write!(
                f,
                "`{}` is neither PEER:PATH, PEER:DIR/, a shoal: link nor a 64-hex content id",
                self.text
            ),
        }
    }
}

impl FromStr for Target {
    type Err = BadTarget;

    fn from_str(s: &str) -> Result<Self, BadTarget> {
        let s = s.trim();
        if let Ok(cid) = s.parse::<ContentId>() {
            return Ok(Target::Content(cid));
        }
        if shoal_core::Link::looks_like(s) {
            return s.parse().map(Target::Link).map_err(|e| BadTarget {
                text: shoal_core::text::bounded(s, 120),
                link: Some(e),
            });
        }
        let bad = || BadTarget {
            text: shoal_core::text::bounded(s, 200),
            link: None,
        };
        let (peer, path) = s.split_once(':').ok_or_else(bad)?;
        if peer.is_empty() || path.trim_matches('/').is_empty() {
            return Err(bad());
        }
        Ok(if path.ends_with('/') {
            Target::Folder {
                peer: peer.to_owned(),
                dir: path.to_owned(),
            }
        } else {
            Target::Path {
                peer: peer.to_owned(),
                path: path.to_owned(),
            }
        })
    }
}

/// A download to start.
#[derive(Clone)]
pub struct Request {
    /// What to fetch.
    pub target: Target,
    /// The folder it goes into.
    pub dir: PathBuf,
    /// Also told of every byte as it arrives (a progress bar).
    pub progress: Option<Arc<dyn Progress>>,
}

impl Request {
    /// `target` into `dir`.
    pub fn new(target: Target, dir: impl Into<PathBuf>) -> Self {
        Self {
            target,
            dir: dir.into(),
            progress: None,
        }
    }

    /// The same, also reporting to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// Where a download stands.
#[derive(Debug, Clone)]
pub enum Status {
    /// Looking up what to fetch and who has it.
    Resolving,
    /// Fetching.
    Running,
    /// Stopped by [`Handle::pause`]; what arrived is kept.
    Paused,
    /// Saved at this path.
    Done(PathBuf),
    /// Stopped by an error; [`Handle::resume`] tries again.
    Failed(Arc<NodeError>),
    /// Stopped by [`Handle::cancel`]; what arrived was removed.
    Cancelled,
}

impl Status {
    /// Whether the download will not go on by itself.
    pub fn is_stopped(&self) -> bool {
        !matches!(self, Status::Resolving | Status::Running)
    }
}

/// What a download reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Looking up the target and its providers.
    Resolving,
    /// Known what to fetch: `name`, `size` bytes.
    Started {
        /// The local name.
        name: String,
        /// Its size.
        size: u64,
    },
    /// `count` providers serve it now.
    SourcesChanged {
        /// Providers.
        count: usize,
    },
    /// Bytes arrived (reported every quarter of a second at most).
    Progress {
        /// Bytes in (including those of earlier runs).
        done: u64,
        /// Bytes in all.
        total: u64,
        /// Bytes per second, lately.
        speed: u64,
        /// Providers serving it.
        sources: usize,
    },
    /// A provider answered: how it was reached.
    Connected {
        /// Its name, escaped.
        name: String,
        /// Its id.
        peer: shoal_core::PeerId,
        /// `direct` or `relay`.
        via: &'static str,
        /// The address dialled, escaped.
        addr: String,
    },
    /// A provider failed and was dropped from this download.
    ProviderDropped {
        /// Its name, as its records give it.
        name: String,
        /// Its id.
        peer: shoal_core::PeerId,
        /// Why, already escaped.
        error: String,
    },
    /// Every byte is in; the file is made durable and named.
    Finishing,
    /// Paused; what arrived is kept.
    Paused,
    /// Saved.
    Done {
        /// Where.
        path: PathBuf,
    },
    /// Failed.
    Failed {
        /// Why.
        error: Arc<NodeError>,
    },
    /// Cancelled; what arrived was removed.
    Cancelled,
}

/// What every download of one owner uses.
struct Env {
    client: Arc<PeerClient>,
    book: Option<PeerBook>,
    swarm: Swarm,
}

struct Inner {
    env: Arc<Env>,
    jobs: Mutex<Vec<Handle>>,
}

/// The owner of downloads: starts them and keeps their handles.
#[derive(Clone)]
pub struct Downloads {
    inner: Arc<Inner>,
}

impl Downloads {
    /// Downloads through `client`, resolving peer names with `book` (none:
    /// only content ids and looked-up entries can be fetched), with the
    /// sources, partial seeding and reputation of `swarm`.
    pub fn new(client: Arc<PeerClient>, book: Option<PeerBook>, swarm: Swarm) -> Self {
        Self {
            inner: Arc::new(Inner {
                env: Arc::new(Env {
                    client,
                    book,
                    swarm,
                }),
                jobs: Mutex::new(Vec::new()),
            }),
        }
    }

    /// What a file target stands for, without downloading it (see
    /// [`resolve_file`]).
    pub async fn resolve(&self, target: &Target) -> Result<(FileEntry, Vec<PeerRecord>)> {
        let env = &self.inner.env;
        resolve_file(target, env.book.as_ref(), &env.client, &env.swarm.sources).await
    }

    /// The client downloads go through.
    pub fn client(&self) -> &Arc<PeerClient> {
        &self.inner.env.client
    }

    /// Starts a download; it runs until done, failed, paused or
    /// cancelled. A file already downloading into the same folder under
    /// the same name is not started twice: its handle comes back.
    pub fn start(&self, request: Request) -> Handle {
        if let Target::Entry { entry, .. } = &request.target
            && let Some(h) = self.find(&request.dir, entry)
        {
            if !h.status().is_stopped() {
                return h;
            }
            h.resume();
            return h;
        }
        let handle = Handle::new(self.inner.env.clone(), request, Status::Resolving);
        handle.launch();
        self.remember(&handle);
        handle
    }

    /// Every download started or adopted here, oldest first.
    pub fn list(&self) -> Vec<Handle> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Handle>> {
        self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, h: &Handle) {
        let mut jobs = self.lock();
        // Cancelled downloads are forgotten.
        jobs.retain(|j| !matches!(j.status(), Status::Cancelled));
        jobs.push(h.clone());
    }

    fn find(&self, dir: &Path, entry: &FileEntry) -> Option<Handle> {
        self.lock()
            .iter()
            .find(|h| {
                h.shared.request.dir == dir
                    && matches!(&h.shared.request.target, Target::Entry { entry: e, .. }
                        if e.content_id == entry.content_id && e.name == entry.name)
                    && !matches!(h.status(), Status::Cancelled | Status::Done(_))
            })
            .cloned()
    }

    /// The unfinished downloads earlier runs left in `dir`: each `.part`
    /// with a readable piece record, by name.
    pub fn unfinished(dir: &Path) -> Vec<Unfinished> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let suffix = format!("{PART_SUFFIX}.state");
        let mut found: Vec<Unfinished> = entries
            .filter_map(std::result::Result::ok)
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = local_name(file.strip_suffix(&suffix)?).ok()?;
                let state = PieceState::load(&e.path())?;
                Some(Unfinished {
                    have: (state.verified().count() * PIECE_SIZE).min(state.size),
                    entry: FileEntry {
                        encrypted: name.ends_with(".age"),
                        name,
                        size: state.size,
                        content_id: state.content_id,
                        modified: 0,
                    },
                })
            })
            .collect();
        found.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        found
    }

    /// A paused handle for each unfinished download in `dir` (see
    /// [`Downloads::unfinished`]), not already known here.
    pub fn adopt(&self, dir: &Path) -> Vec<Handle> {
        let mut adopted = Vec::new();
        for u in Self::unfinished(dir) {
            if self.find(dir, &u.entry).is_some() {
                continue;
            }
            let request = Request::new(
                Target::Entry {
                    entry: u.entry.clone(),
                    peers: Vec::new(),
                },
                dir,
            );
            let h = Handle::new(self.inner.env.clone(), request, Status::Paused);
            h.shared.total.store(u.entry.size, Ordering::Relaxed);
            h.shared.done.store(u.have, Ordering::Relaxed);
            *h.shared.name.lock().unwrap_or_else(|p| p.into_inner()) = Some(u.entry.name.clone());
            self.remember(&h);
            adopted.push(h);
        }
        adopted
    }

    /// Adopts and resumes every unfinished download in `dir` at once.
    pub fn resume_unfinished(&self, dir: &Path) -> Vec<Handle> {
        let adopted = self.adopt(dir);
        for h in &adopted {
            h.resume();
        }
        adopted
    }

    /// Pauses every running download (as when the app quits).
    pub async fn pause_all(&self) {
        let jobs = self.list();
        futures_util::future::join_all(jobs.iter().map(Handle::pause)).await;
    }
}

/// A download an earlier run left unfinished.
#[derive(Debug, Clone)]
pub struct Unfinished {
    /// What it downloads (its name is the `.part`'s).
    pub entry: FileEntry,
    /// Bytes its record says are verified.
    pub have: u64,
}

/// One download: control it, follow it.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    owner: Arc<Env>,
    request: Request,
    events: broadcast::Sender<Event>,
    /// A receiver made with the handle, so the first subscriber misses
    /// nothing since the start.
    first: Mutex<Option<broadcast::Receiver<Event>>>,
    status: watch::Sender<Status>,
    /// The running task and what stops it.
    run: tokio::sync::Mutex<Option<(Control, tokio::task::JoinHandle<()>)>>,
    /// The control of the latest run.
    control: Mutex<Control>,
    /// What the target resolved to, once it has.
    resolved: Mutex<Option<(FileEntry, Vec<PeerRecord>)>>,
    name: Mutex<Option<String>>,
    done: AtomicU64,
    total: AtomicU64,
    sources: AtomicUsize,
    /// How each provider that answered was reached.
    routes: Mutex<Vec<Source>>,
}

/// A provider of a download and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    /// Its id.
    pub peer_id: shoal_core::PeerId,
    /// Its name, escaped.
    pub name: String,
    /// `direct` or `relay`.
    pub via: &'static str,
    /// The address dialled, escaped.
    pub addr: String,
}

impl Handle {
    fn new(owner: Arc<Env>, request: Request, status: Status) -> Self {
        let resolved = match &request.target {
            Target::Entry { entry, peers } => Some((entry.clone(), peers.clone())),
            _ => None,
        };
        let (events, first) = broadcast::channel(EVENT_BACKLOG);
        Self {
            shared: Arc::new(Shared {
                owner,
                request,
                events,
                first: Mutex::new(Some(first)),
                status: watch::channel(status).0,
                run: tokio::sync::Mutex::new(None),
                control: Mutex::new(Control::new()),
                resolved: Mutex::new(resolved),
                name: Mutex::new(None),
                done: AtomicU64::new(0),
                total: AtomicU64::new(0),
                sources: AtomicUsize::new(0),
                routes: Mutex::default(),
            }),
        }
    }

    /// What was asked for.
    pub fn target(&self) -> &Target {
        &self.shared.request.target
    }

    /// The folder it goes into.
    pub fn dir(&self) -> &Path {
        &self.shared.request.dir
    }

    /// The local name, once known.
    pub fn name(&self) -> Option<String> {
        self.shared
            .name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The providers that answered, and how each was reached.
    pub fn sources(&self) -> Vec<Source> {
        self.shared
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bytes in and bytes in all (0 until known).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.done.load(Ordering::Relaxed),
            self.shared.total.load(Ordering::Relaxed),
        )
    }

    /// Threads of its latest run still alive (none once a pause or
    /// cancel has returned).
    pub fn threads(&self) -> usize {
        self.shared
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .threads()
    }

    /// Where it stands now.
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Its status, as it changes.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Its events: the first subscriber gets every event since the
    /// download was started, later ones those from now on (where it
    /// stands is in [`Handle::status`] and [`Handle::bytes`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| self.shared.events.subscribe())
    }

    /// Waits until it is done, failed or cancelled (a pause is waited
    /// through: it may be resumed), and says how it ended.
    pub async fn wait(&self) -> std::result::Result<PathBuf, Arc<NodeError>> {
        let mut rx = self.watch();
        loop {
            match &*rx.borrow_and_update() {
                Status::Done(p) => return Ok(p.clone()),
                Status::Failed(e) => return Err(e.clone()),
                Status::Cancelled => return Err(Arc::new(NodeError::Stopped)),
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err(Arc::new(NodeError::Stopped));
            }
        }
    }

    /// Resumes a paused or failed download (nothing if it runs, is done
    /// or was cancelled).
    pub fn resume(&self) {
        let resumable = matches!(self.status(), Status::Paused | Status::Failed(_));
        if resumable {
            self.launch();
        }
    }

    /// Stops it, keeping what arrived; returns once every thread of it
    /// has stopped and its `.part` is unlocked. Nothing if it is not
    /// running.
    pub async fn pause(&self) {
        if self.stop().await {
            self.set(Status::Paused, Event::Paused);
        }
    }

    /// Stops it and removes what arrived (its `.part` and piece record;
    /// of a folder, the files not yet complete); returns once that is
    /// done. Nothing if it is done already.
    pub async fn cancel(&self) {
        self.stop().await;
        if matches!(self.status(), Status::Done(_) | Status::Cancelled) {
            return;
        }
        let dir = self.shared.request.dir.clone();
        let target = self.shared.request.target.clone();
        let name = self.name();
        let _ = tokio::task::spawn_blocking(move || remove_partial(&dir, &target, name)).await;
        self.set(Status::Cancelled, Event::Cancelled);
    }

    /// Stops the running task, if any; true if one was running.
    async fn stop(&self) -> bool {
        let mut run = self.shared.run.lock().await;
        let Some((stop, task)) = run.take() else {
            return false;
        };
        stop.cancel();
        let _ = task.await;
        // It may have ended on its own meanwhile.
        !matches!(
            self.status(),
            Status::Done(_) | Status::Failed(_) | Status::Cancelled
        )
    }

    fn set(&self, status: Status, event: Event) {
        self.shared.status.send_replace(status);
        let _ = self.shared.events.send(event);
    }

    fn launch(&self) {
        let this = self.clone();
        let Ok(mut run) = self.shared.run.try_lock() else {
            // A pause or cancel is under way; it decides.
            return;
        };
        if run.as_ref().is_some_and(|(_, task)| !task.is_finished()) {
            return;
        }
        let stop = Control::new();
        *self
            .shared
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = stop.clone();
        let s = stop.clone();
        self.shared.status.send_replace(Status::Resolving);
        let task = tokio::spawn(async move { this.run(s).await });
        *run = Some((stop, task));
    }

    async fn run(self, stop: Control) {
        let reporter = Arc::new(Reporter {
            shared: self.shared.clone(),
        });
        let ticker = tokio::spawn(report_progress(self.shared.clone(), stop.clone()));
        let result = self.fetch(&reporter, &stop).await;
        ticker.abort();
        reporter.tick(0);
        match result {
            Err(NodeError::Stopped) if stop.is_cancelled() => {}
            Ok(path) => self.set(Status::Done(path.clone()), Event::Done { path }),
            Err(e) => {
                let e = Arc::new(e);
                self.set(Status::Failed(e.clone()), Event::Failed { error: e });
            }
        }
    }

    async fn fetch(&self, progress: &Arc<Reporter>, stop: &Control) -> Result<PathBuf> {
        let owner = &self.shared.owner;
        let client = &owner.client;
        // A link's provider stays a source for the whole download, so it
        // is asked again if it drops out and comes back.
        let with_link;
        let swarm = match &self.shared.request.target {
            Target::Link(link) => {
                let mut s = owner.swarm.clone();
                s.sources = s
                    .sources
                    .and(Arc::new(super::providers::FromLink::new(link)));
                with_link = s;
                &with_link
            }
            _ => &owner.swarm,
        };
        let dir = &self.shared.request.dir;
        let known = self
            .shared
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (entry, mut peers) = match known {
            Some(k) => k,
            None => {
                let _ = self.shared.events.send(Event::Resolving);
                let resolving = self.resolve(progress, stop);
                // A folder is fetched while it resolves and stops itself
                // (its file downloads end their threads first); a lookup
                // has no threads and is simply dropped.
                let found = if matches!(self.shared.request.target, Target::Folder { .. }) {
                    resolving.await?
                } else {
                    tokio::select! {
                        r = resolving => r?,
                        () = stop.cancelled() => return Err(NodeError::Stopped),
                    }
                };
                match found {
                    Resolved::File(entry, peers) => (entry, peers),
                    Resolved::Folder(path) => return Ok(path),
                }
            }
        };
        *self.shared.name.lock().unwrap_or_else(|p| p.into_inner()) = Some(entry.name.clone());
        *self
            .shared
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((entry.clone(), peers.clone()));
        self.shared.status.send_replace(Status::Running);
        // Every provider the sources know joins from the start (asked
        // once when some are known: the refreshes ask again).
        let ask = async {
            if peers.is_empty() {
                swarm.sources.providers(entry.content_id).await
            } else {
                swarm.sources.providers_once(entry.content_id).await
            }
        };
        let more = tokio::select! {
            r = ask => r,
            () = stop.cancelled() => return Err(NodeError::Stopped),
        };
        match more {
            Ok(more) => add_peers(&mut peers, more, client),
            Err(e) if peers.is_empty() => return Err(e),
            Err(e) => tracing::debug!(error = %e, "no other providers: lookup failed"),
        }
        if peers.is_empty() {
            return Err(NodeError::NoProvider(entry.content_id));
        }
        let progress: &dyn Progress = &**progress;
        super::download_until(client, &peers, &entry, dir, progress, swarm, stop).await
    }

    async fn resolve(&self, progress: &Arc<Reporter>, stop: &Control) -> Result<Resolved> {
        let owner = &self.shared.owner;
        let client = &owner.client;
        match &self.shared.request.target {
            Target::Folder { peer, dir } => {
                self.shared.status.send_replace(Status::Running);
                let progress: Arc<dyn Progress> = progress.clone();
                crate::folder::get_folder_until(
                    owner.book.as_ref().ok_or_else(no_book)?,
                    client,
                    peer,
                    dir,
                    &self.shared.request.dir,
                    &*progress,
                    &owner.swarm,
                    stop,
                )
                .await
                .map(Resolved::Folder)
            }
            target => {
                let (entry, peers) =
                    resolve_file(target, owner.book.as_ref(), client, &owner.swarm.sources).await?;
                Ok(Resolved::File(entry, peers))
            }
        }
    }
}

/// What a file target (`PEER:PATH`, a content id, an entry) stands for:
/// its listing entry (named safely) and its first providers, without
/// downloading it. A folder target is refused with [`NodeError::Settings`].
pub async fn resolve_file(
    target: &Target,
    book: Option<&PeerBook>,
    client: &PeerClient,
    sources: &super::Sources,
) -> Result<(FileEntry, Vec<PeerRecord>)> {
    match target {
        Target::Path { peer, path } => {
            let book = book.ok_or_else(no_book)?;
            let (peer, entry) = find_path(book, client, peer, path).await?;
            Ok((entry, vec![peer]))
        }
        Target::Content(cid) => {
            let (providers, mut entry) = find_content(sources, client, *cid).await?;
            entry.name = provider_name(&entry.name)?;
            Ok((entry, providers))
        }
        Target::Link(link) => {
            // The provider the link names, at its addresses, first; the
            // sources only if it cannot be had there (it moved, or left).
            let from_link = std::sync::Arc::new(super::providers::FromLink::new(link));
            let direct = super::Sources::new(vec![from_link.clone()]);
            let (providers, mut entry) = match find_content(&direct, client, link.content_id).await
            {
                Ok(found) => found,
                Err(e) if sources.is_empty() && book.is_none() => return Err(e),
                Err(e) => {
                    tracing::info!(error = %e, "the link's provider cannot be had at its addresses; asking the other sources");
                    let mut all = sources.clone();
                    // Where the link's peer is now (it may have moved):
                    // the DHT or the LAN know by its id.
                    if let Some(book) = book
                        && let Some((now, origin)) = book.locate(link.peer).await
                        && now.addrs != link.addrs
                    {
                        tracing::info!(peer = %link.peer.short(), from = %origin, "the link's peer is at other addresses now");
                        let moved = super::providers::FromLink::at(link, now.addrs);
                        all = all.and(std::sync::Arc::new(moved));
                    }
                    let all = all.and(from_link);
                    find_content(&all, client, link.content_id).await?
                }
            };
            entry.name = provider_name(&entry.name)?;
            Ok((entry, providers))
        }
        Target::Folder { .. } => Err(NodeError::Settings(
            "this is a folder; it cannot be fetched as one file".into(),
        )),
        Target::Entry { entry, peers } => Ok((entry.clone(), peers.clone())),
    }
}

fn no_book() -> NodeError {
    NodeError::Settings("peers are named by a tracker, and none is set".into())
}

enum Resolved {
    File(FileEntry, Vec<PeerRecord>),
    /// A folder, fetched while resolving.
    Folder(PathBuf),
}

/// Removes what a cancelled download left: its `.part` and piece record,
/// or for a folder every `.part` under it.
fn remove_partial(dir: &Path, target: &Target, name: Option<String>) {
    match target {
        Target::Folder { dir: remote, .. } => {
            let Ok(root) = local_name(remote.trim_matches('/')) else {
                return;
            };
            for e in walkdir::WalkDir::new(dir.join(root))
                .follow_links(false)
                .into_iter()
                .filter_map(std::result::Result::ok)
            {
                let n = e.file_name().to_string_lossy();
                if e.file_type().is_file()
                    && (n.ends_with(PART_SUFFIX) || n.ends_with(&format!("{PART_SUFFIX}.state")))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        _ => {
            if let Some(name) = name {
                super::part::remove(&super::part::part_path(dir, &name));
            }
        }
    }
}

/// The engine's progress, turned into the handle's counters and events.
struct Reporter {
    shared: Arc<Shared>,
}

impl Reporter {
    fn extra(&self) -> Option<&Arc<dyn Progress>> {
        self.shared.request.progress.as_ref()
    }

    fn tick(&self, speed: u64) {
        let _ = self.shared.events.send(Event::Progress {
            done: self.shared.done.load(Ordering::Relaxed),
            total: self.shared.total.load(Ordering::Relaxed),
            speed,
            sources: self.shared.sources.load(Ordering::Relaxed),
        });
    }
}

impl Progress for Reporter {
    fn start(&self, name: &str, total: u64) {
        self.shared.total.store(total, Ordering::Relaxed);
        self.shared.done.store(0, Ordering::Relaxed);
        *self.shared.name.lock().unwrap_or_else(|p| p.into_inner()) = Some(name.to_owned());
        let _ = self.shared.events.send(Event::Started {
            name: name.to_owned(),
            size: total,
        });
        if let Some(p) = self.extra() {
            p.start(name, total);
        }
    }

    fn advance(&self, n: u64) {
        self.shared.done.fetch_add(n, Ordering::Relaxed);
        if let Some(p) = self.extra() {
            p.advance(n);
        }
    }

    fn sources(&self, n: usize) {
        self.shared.sources.store(n, Ordering::Relaxed);
        let _ = self.shared.events.send(Event::SourcesChanged { count: n });
        if let Some(p) = self.extra() {
            p.sources(n);
        }
    }

    fn connected(&self, peer: &PeerRecord, route: &crate::peer_client::Route) {
        let source = Source {
            peer_id: peer.peer_id,
            name: shoal_core::text::escape(&peer.name).into_owned(),
            via: route.via,
            addr: shoal_core::text::bounded(&route.addr, 300),
        };
        {
            let mut routes = self.shared.routes.lock().unwrap_or_else(|p| p.into_inner());
            match routes.iter_mut().find(|s| s.peer_id == peer.peer_id) {
                Some(s) => *s = source.clone(),
                None => routes.push(source.clone()),
            }
        }
        let _ = self.shared.events.send(Event::Connected {
            name: source.name,
            peer: source.peer_id,
            via: source.via,
            addr: source.addr,
        });
        if let Some(p) = self.extra() {
            p.connected(peer, route);
        }
    }

    fn provider_dropped(&self, peer: &PeerRecord, error: &NodeError) {
        let _ = self.shared.events.send(Event::ProviderDropped {
            name: shoal_core::text::escape(&peer.name).into_owned(),
            peer: peer.peer_id,
            error: shoal_core::text::escape(&error.to_string()).into_owned(),
        });
        if let Some(p) = self.extra() {
            p.provider_dropped(peer, error);
        }
    }

    fn finishing(&self) {
        let _ = self.shared.events.send(Event::Finishing);
        if let Some(p) = self.extra() {
            p.finishing();
        }
    }

    fn finish(&self) {
        if let Some(p) = self.extra() {
            p.finish();
        }
    }
}

/// Reports progress every [`PROGRESS_EVERY`] while bytes arrive.
async fn report_progress(shared: Arc<Shared>, stop: Control) {
    let reporter = Reporter { shared };
    let mut last = reporter.shared.done.load(Ordering::Relaxed);
    let mut speed = 0f64;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let done = reporter.shared.done.load(Ordering::Relaxed);
        let now = done.saturating_sub(last) as f64 / PROGRESS_EVERY.as_secs_f64();
        // About a two-second average.
        speed = if speed == 0.0 {
            now
        } else {
            speed * 0.875 + now * 0.125
        };
        if done != last {
            reporter.tick(speed as u64);
        }
        last = done;
    }
}
