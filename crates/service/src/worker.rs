//! The service's loop: it owns the node and the transfers, handles the
//! commands in order, and keeps the header and the peer list fresh.

use super::jobs::{JobCtx, open_with_passphrase, share_file};
use super::*;
use shoal_core::ErrorKind;
use shoal_node::directory::{Backend, DhtBackend, LanBackend};

/// How often the peer list refreshes while online.
const PEERS_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for one peer's listing when counting its files.
const LISTING_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer's file count is fetched again after this long, not at every
/// refresh of the list.
const COUNT_EVERY: Duration = Duration::from_secs(30);
/// Listings fetched at once to count files.
const COUNTS_AT_ONCE: usize = 8;

/// Each peer's file count and when it was fetched (`None`: its listing
/// could not be had).
type FileCounts = Arc<std::sync::Mutex<HashMap<PeerId, (std::time::Instant, Option<usize>)>>>;

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
    /// A peer's folder, as one transfer.
    Folder {
        target: Target,
        name: String,
        peer: String,
        dir: PathBuf,
    },
    Push {
        peer: PeerRecord,
        path: PathBuf,
        /// Remove `path` once the push ends (an upload's copy).
        temporary: bool,
    },
}

struct Running {
    job: Job,
    meter: Arc<Meter>,
    /// A push, or the waiter that opens a download once it is done.
    task: Option<AbortHandle>,
    /// A download's control.
    handle: Option<Handle>,
}

impl Running {
    /// Whether it moves bytes now.
    fn is_running(&self) -> bool {
        match &self.handle {
            Some(h) => !h.status().is_stopped(),
            None => self.task.as_ref().is_some_and(|t| !t.is_finished()),
        }
    }
}

/// The worker's state; lives on the runtime.
pub(super) struct Core {
    data_dir: PathBuf,
    profile: Arc<dyn Profile>,
    /// Discovery the caller fixed; the settings' otherwise.
    fixed_reach: Option<FixedReach>,
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
    /// Owns the downloads; made anew when the client, the tracker or the
    /// node changes (running downloads keep what they started with).
    downloads: Downloads,
    commands: mpsc::UnboundedSender<Command>,
    refreshing: Arc<AtomicBool>,
    counts: FileCounts,
    /// The LAN and the DHT, when the settings turn them on.
    reach: Reach,
}

/// The discovery the settings turn on beyond the tracker, and the
/// settings it was started for.
#[derive(Default)]
struct Reach {
    lan: Option<Arc<shoal_lan::Lan>>,
    dht: Option<shoal_dht::Dht>,
    started_for: Option<(bool, bool, Vec<String>)>,
}

impl Reach {
    /// The directory sources beyond the tracker.
    fn backends(&self, client: &Arc<PeerClient>, me: PeerId) -> Vec<Arc<dyn Backend>> {
        let mut all: Vec<Arc<dyn Backend>> = Vec::new();
        if let Some(lan) = &self.lan {
            all.push(Arc::new(LanBackend::new(lan.clone(), me)));
        }
        if let Some(dht) = &self.dht {
            all.push(Arc::new(DhtBackend::new(dht.clone(), client.clone())));
        }
        all
    }
}

/// A book of `trackers` and `backends`.
fn book_of(
    trackers: Vec<TrackerClient>,
    backends: &[Arc<dyn Backend>],
    data_dir: &Path,
) -> PeerBook {
    backends.iter().fold(
        PeerBook::new(shoal_node::trackers::Trackers::new(trackers), data_dir),
        |b, x| b.with(x.clone()),
    )
}

/// Who a download left from an earlier session comes from.
const ANY_PEER: &str = "whoever has it";

impl Core {
    pub(super) fn new(setup: Setup, sink: Sink, commands: mpsc::UnboundedSender<Command>) -> Self {
        let Setup {
            data_dir,
            config,
            identity,
            feed,
            profile,
            reach,
            watched: _,
        } = setup;
        let client = Arc::new(new_client(&identity, &config));
        let downloads = new_downloads(&data_dir, &config, &*profile, client.clone(), None, &[]);
        Core {
            client,
            downloads,
            data_dir,
            profile,
            fixed_reach: reach,
            config,
            identity,
            feed,
            sink,
            node: None,
            watch: None,
            jobs: HashMap::new(),
            next_id: 0,
            commands,
            refreshing: Arc::new(AtomicBool::new(false)),
            counts: FileCounts::default(),
            reach: Reach::default(),
        }
    }

    /// Starts (or stops) the LAN and the DHT as the settings say; nothing
    /// is sent anywhere while both are off.
    async fn ensure_reach(&mut self) {
        if let Some(fixed) = &self.fixed_reach {
            if self.reach.started_for.is_none() {
                self.reach = Reach {
                    lan: fixed.lan.clone(),
                    dht: fixed.dht.clone(),
                    started_for: Some((false, false, Vec::new())),
                };
                self.renew_downloads();
            }
            return;
        }
        let want = (
            self.config.lan,
            self.config.dht,
            self.config.dht_bootstrap.clone(),
        );
        if self.reach.started_for.as_ref() == Some(&want) {
            return;
        }
        self.reach = Reach::default();
        if want.0 {
            match shoal_lan::Lan::start() {
                Ok(lan) => {
                    self.feed
                        .log(Level::Info, "finding peers on the local network (mDNS)");
                    self.reach.lan = Some(Arc::new(lan));
                }
                Err(e) => self.feed.log(Level::Warning, format!("{e}")),
            }
        }
        if want.1 || !want.2.is_empty() {
            let cfg = shoal_dht::DhtConfig {
                listen: None,
                bootstrap: want.2.clone(),
                public: want.1,
                server: false,
            };
            match shoal_dht::Dht::start(&cfg).await {
                Ok(dht) => {
                    self.feed
                        .log(Level::Info, format!("on the DHT at {}", dht.url()));
                    self.reach.dht = Some(dht);
                }
                Err(e) => self.feed.log(Level::Warning, format!("{e}")),
            }
        }
        self.reach.started_for = Some(want);
        self.renew_downloads();
    }

    fn backends(&self) -> Vec<Arc<dyn Backend>> {
        self.reach.backends(&self.client, self.identity.peer_id())
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        self.ensure_reach().await;
        self.restore();
        while let Some(c) = rx.recv().await {
            self.handle(c).await;
        }
        self.stop().await;
    }

    async fn handle(&mut self, c: Command) {
        match c {
            Command::Then(c, reply) => {
                Box::pin(self.handle(*c)).await;
                let _ = reply.send(());
            }
            Command::Files { peer, reply } => self.files(peer, reply),
            Command::Get { target, dir, reply } => {
                let dir = dir.unwrap_or_else(|| self.downloads_dir());
                self.fetch(target, dir, Some(reply));
            }
            Command::Resolved {
                peer,
                file,
                dir,
                reply,
            } => self.download(peer, file, dir, reply),
            Command::Folder { target, dir, reply } => {
                let (name, peer) = match &target {
                    Target::Folder { peer, dir } => (dir.clone(), peer.clone()),
                    _ => (String::new(), String::new()),
                };
                let id = self.begin(
                    Job::Folder {
                        target,
                        name,
                        peer,
                        dir,
                    },
                    None,
                );
                let _ = reply.send(Ok(id));
            }
            Command::Publish {
                path,
                lock,
                temporary,
                reply,
            } => self.publish(path, lock, temporary, Some(reply)),
            Command::Push {
                peer,
                path,
                temporary,
                reply,
            } => self.push_to(peer, path, temporary, reply),
            Command::Pushing {
                peer,
                path,
                temporary,
                reply,
            } => {
                let id = self.begin(
                    Job::Push {
                        peer,
                        path,
                        temporary,
                    },
                    None,
                );
                let _ = reply.send(Ok(id));
            }
            Command::Start => self.start().await,
            Command::Stop => self.stop().await,
            Command::RefreshPeers => self.refresh_peers(),
            Command::Browse(peer) => self.browse(peer),
            Command::Download { peer, file } => {
                let dir = self.downloads_dir();
                self.download(Some(peer), file, dir, None);
            }
            Command::Fetch(target) => {
                let dir = self.downloads_dir();
                self.fetch(target, dir, None);
            }
            Command::Share { path, lock } => self.publish(path, lock, false, None),
            Command::Send { peer, path } => {
                self.begin(
                    Job::Push {
                        peer,
                        path,
                        temporary: false,
                    },
                    None,
                );
            }
            Command::Pause(id) => self.pause(id).await,
            Command::Resume(id) => {
                if let Some(r) = self.jobs.get(&id) {
                    let job = r.job.clone();
                    self.begin(job, Some(id));
                }
            }
            Command::Cancel(id) => self.cancel(id).await,
            Command::Open {
                id,
                path,
                passphrase,
            } => self.open(id, path, passphrase),
            Command::Save(config) => self.save(*config).await,
            Command::Quit(done) => {
                // Downloads stop in order (what arrived is kept for next
                // time); pushes are dropped.
                let mut pausing = tokio::task::JoinSet::new();
                for h in self.jobs.values().filter_map(|r| r.handle.clone()) {
                    pausing.spawn(async move { h.pause().await });
                }
                pausing.join_all().await;
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
    /// download folder, paused, so they can be resumed from the pieces
    /// already verified.
    fn restore(&mut self) {
        let dir = self.downloads_dir();
        for handle in self.downloads.adopt(&dir) {
            let Some(name) = handle.name() else { continue };
            let Target::Entry { entry, .. } = handle.target().clone() else {
                continue;
            };
            self.next_id += 1;
            let id = self.next_id;
            let meter = Meter::new(self.sink.waker());
            let (have, size) = handle.bytes();
            meter.start(&name, size);
            meter.advance(have);
            self.sink.send(Event::Transfer(TransferInfo {
                id,
                direction: Direction::Download,
                name,
                peer: ANY_PEER.to_owned(),
                dir: Some(dir.clone()),
                meter: meter.clone(),
            }));
            self.sink.send(Event::TransferState {
                id,
                state: TransferState::Paused,
            });
            self.jobs.insert(
                id,
                Running {
                    job: Job::Download {
                        peer: None,
                        file: entry,
                        dir: dir.clone(),
                    },
                    meter,
                    task: None,
                    handle: Some(handle),
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

    fn trackers(&self) -> Result<Vec<TrackerClient>, String> {
        self.profile.trackers(&self.config)
    }

    /// The one client of every download, listing and push: its
    /// connections are reused, and its limit covers all downloads together.
    fn client(&self) -> Arc<PeerClient> {
        self.client.clone()
    }

    async fn start(&mut self) {
        if self.node.is_some() {
            return;
        }
        self.sink.send(Event::Network {
            state: NetState::Connecting,
            port: None,
        });
        let trackers = match self.trackers() {
            Ok(t) => t,
            Err(e) => return self.start_failed(Failure::new(ErrorKind::Usage, e)),
        };
        let cfg = match self
            .profile
            .node(&self.data_dir, &self.config, &self.identity.peer_id())
        {
            Ok(mut c) => {
                c.trackers = trackers;
                c.lan = self.reach.lan.clone();
                c.dht = self.reach.dht.clone();
                c
            }
            Err(e) => return self.start_failed(Failure::new(ErrorKind::Usage, e)),
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
        let name = cfg.name.clone();
        let shares = cfg.shares.clone();
        let node = match Node::start(cfg, self.identity.clone()).await {
            Ok(n) => n,
            Err(e @ shoal_node::NodeError::DataDirInUse(_)) => {
                return self.start_failed(Failure {
                    text: "another Shoal node runs with this data dir; stop it (or its `shoal up`) and start again".into(),
                    ..Failure::owning(e)
                });
            }
            Err(e) => return self.start_failed(Failure::owning(e)),
        };
        let port = node.local_addr().port();
        let (url, compat) = (node.url(), node.compat_addr());
        self.sink.update(|s| {
            s.name = name;
            s.node_shares = shares;
            s.node_url = Some(url);
            s.compat = compat;
        });
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
        tokio::spawn(watch_reach(
            node.reachability(),
            self.feed.clone(),
            self.sink.clone(),
            cancel.clone(),
        ));
        self.watch = Some(cancel.drop_guard());
        self.sink.send(Event::Reach(node.listening().addrs.clone()));
        self.node = Some(node);
        self.renew_downloads();
    }

    fn start_failed(&self, why: Failure) {
        self.feed
            .log(Level::Error, format!("cannot start the network: {why}"));
        self.sink.update(|s| s.start_error = Some(why));
        self.sink.send(Event::Network {
            state: NetState::Offline,
            port: None,
        });
    }

    /// New downloads use the client, tracker and node as they are now.
    fn renew_downloads(&mut self) {
        self.downloads = new_downloads(
            &self.data_dir,
            &self.config,
            &*self.profile,
            self.client.clone(),
            self.node.as_ref(),
            &self.backends(),
        );
    }

    async fn stop(&mut self) {
        self.watch = None;
        if let Some(node) = self.node.take() {
            let served = node.bytes_served();
            self.sink.update(|s| {
                s.served = served;
                s.node_url = None;
                s.compat = None;
                s.node_shares.clear();
            });
            node.shutdown().await;
            self.feed.log(Level::Info, "network stopped");
            self.renew_downloads();
        }
        self.sink.send(Event::Network {
            state: NetState::Offline,
            port: None,
        });
        self.sink.send(Event::LocalFiles(Vec::new()));
        self.sink.send(Event::Reach(Vec::new()));
        self.sink.send(Event::Reachability(
            shoal_node::reach::Reachability::default(),
        ));
    }

    fn refresh_peers(&self) {
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let flag = self.refreshing.clone();
        let trackers = match self.trackers() {
            Ok(t) => t,
            Err(e) => {
                flag.store(false, Ordering::SeqCst);
                return self.feed.log(Level::Error, e);
            }
        };
        let book = book_of(trackers, &self.backends(), &self.data_dir);
        let client = self.client();
        let reputation = Reputation::new(&self.data_dir, self.config.reputation);
        let me = self.identity.peer_id();
        let (sink, feed, counts) = (self.sink.clone(), self.feed.clone(), self.counts.clone());
        tokio::spawn(async move {
            let rows = peer_rows(&book, client, reputation, me, counts).await;
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

    /// A peer's listing, by name, id or prefix.
    fn files(&self, peer: String, reply: Reply<Result<(PeerRecord, Vec<FileEntry>), String>>) {
        let trackers = match self.trackers() {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let book = book_of(trackers, &self.backends(), &self.data_dir);
        let client = self.client();
        tokio::spawn(async move {
            let got = async {
                let record = book.resolve(&peer).await.map_err(|e| e.to_string())?.0;
                let files = client.files(&record).await.map_err(|e| e.to_string())?;
                Ok((record, files))
            }
            .await;
            let _ = reply.send(got);
        });
    }

    /// `PEER:PATH`, `PEER:DIR/`, a content id or a link: looks the file
    /// up, then downloads it into `dir`.
    fn fetch(&self, target: String, dir: PathBuf, reply: Option<Reply<Result<u64, Failure>>>) {
        let shown = shoal_core::text::bounded(&target, 200);
        let fail = move |feed: &LogFeed, reply: Option<Reply<Result<u64, Failure>>>, e: Failure| {
            let e = e.context(&format!("cannot download `{shown}`"));
            feed.log(Level::Error, &e.text);
            if let Some(r) = reply {
                let _ = r.send(Err(e));
            }
        };
        if let Err(e) = self.trackers() {
            return fail(&self.feed, reply, Failure::new(ErrorKind::Usage, e));
        }
        let parsed: Target = match target.trim().parse() {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    &self.feed,
                    reply,
                    Failure::new(
                        ErrorKind::Usage,
                        format!(
                            "{e}; give PEER:PATH (e.g. alice:docs/report.pdf), PEER:DIR/, a content id or a shoal: link"
                        ),
                    ),
                );
            }
        };
        if matches!(parsed, Target::Folder { .. }) {
            match reply {
                Some(reply) => self.send_self(Command::Folder {
                    target: parsed,
                    dir,
                    reply,
                }),
                None => fail(
                    &self.feed,
                    None,
                    Failure::new(
                        ErrorKind::Usage,
                        "the app downloads one file at a time; for a folder use `shoal get PEER:DIR/`",
                    ),
                ),
            }
            return;
        }
        let downloads = self.downloads.clone();
        let (commands, feed) = (self.commands.clone(), self.feed.clone());
        tokio::spawn(async move {
            match lookup(&downloads, &parsed).await {
                Ok((peer, file)) => {
                    let _ = commands.send(Command::Resolved {
                        peer: Some(peer),
                        file,
                        dir,
                        reply,
                    });
                }
                Err(e) => fail(&feed, reply, e),
            }
        });
    }

    fn send_self(&self, c: Command) {
        let _ = self.commands.send(c);
    }

    /// Downloads `file` into `dir`, unless it is being downloaded there
    /// already; a paused or failed download of it there is resumed.
    fn download(
        &mut self,
        peer: Option<PeerRecord>,
        file: FileEntry,
        dir: PathBuf,
        reply: Option<Reply<Result<u64, Failure>>>,
    ) {
        let same = self
            .jobs
            .iter()
            .find(|(id, r)| {
                matches!(&r.job, Job::Download { file: f, dir: d, .. }
                    if f.content_id == file.content_id && f.name == file.name && *d == dir)
                    && self.sink.state_of(**id).is_some_and(|s| !s.is_final())
            })
            .map(|(id, r)| (*id, r.is_running()));
        let id = match same {
            Some((id, true)) => {
                self.feed.log(
                    Level::Info,
                    format!("{} is being downloaded already", file.name),
                );
                id
            }
            Some((id, false)) => {
                let job = self.jobs[&id].job.clone();
                self.begin(job, Some(id))
            }
            None => self.begin(Job::Download { peer, file, dir }, None),
        };
        if let Some(r) = reply {
            let _ = r.send(Ok(id));
        }
    }

    /// Pushes `path` to the peer named `peer`.
    fn push_to(
        &self,
        peer: String,
        path: PathBuf,
        temporary: bool,
        reply: Reply<Result<u64, Failure>>,
    ) {
        let trackers = match self.trackers() {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(Failure::new(ErrorKind::Usage, e)));
                return;
            }
        };
        let book = book_of(trackers, &self.backends(), &self.data_dir);
        let commands = self.commands.clone();
        tokio::spawn(async move {
            match book.resolve(&peer).await {
                Ok((record, _)) => {
                    let _ = commands.send(Command::Pushing {
                        peer: record,
                        path,
                        temporary,
                        reply,
                    });
                }
                Err(e) => {
                    if temporary {
                        remove_temporary(&path);
                    }
                    let _ = reply.send(Err(Failure::of(&e)));
                }
            }
        });
    }

    /// Starts (or, with `id`, resumes) a transfer; returns its id.
    fn begin(&mut self, job: Job, id: Option<u64>) -> u64 {
        let id = id.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id
        });
        if self.jobs.get(&id).is_some_and(Running::is_running) {
            return id; // running already
        }
        let meter = match self.jobs.get(&id) {
            Some(r) => r.meter.clone(),
            None => {
                let meter = Meter::new(self.sink.waker());
                let (direction, name, peer, dir) = match &job {
                    Job::Download { peer, file, dir } => (
                        Direction::Download,
                        file.name.clone(),
                        peer.as_ref()
                            .map_or_else(|| ANY_PEER.to_owned(), |p| p.name.clone()),
                        Some(dir.clone()),
                    ),
                    Job::Folder {
                        name, peer, dir, ..
                    } => (
                        Direction::Download,
                        name.clone(),
                        peer.clone(),
                        Some(dir.clone()),
                    ),
                    Job::Push { peer, path, .. } => (
                        Direction::Push,
                        path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        ),
                        peer.name.clone(),
                        None,
                    ),
                };
                self.sink.send(Event::Transfer(TransferInfo {
                    id,
                    direction,
                    name,
                    peer,
                    dir,
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
            identity: self.identity.clone(),
            feed: self.feed.clone(),
            meter: meter.clone(),
        };
        let sink = self.sink.clone();
        let (task, handle) = match job.clone() {
            Job::Download { .. } | Job::Folder { .. } => {
                let (name, target, dir) = match job.clone() {
                    Job::Download { peer, file, dir } => (
                        file.name.clone(),
                        Target::Entry {
                            entry: file,
                            peers: peer.into_iter().collect(),
                        },
                        dir,
                    ),
                    Job::Folder {
                        target, name, dir, ..
                    } => (name, target, dir),
                    Job::Push { .. } => unreachable!("matched above"),
                };
                let progress: Arc<dyn Progress> = meter.clone();
                let handle = self
                    .downloads
                    .start(Request::new(target, dir).with_progress(progress));
                let h = handle.clone();
                let task = tokio::spawn(async move {
                    let state = ctx.finish_download(h, name).await;
                    sink.send(Event::TransferState { id, state });
                });
                (task, Some(handle))
            }
            Job::Push {
                peer,
                path,
                temporary,
            } => {
                let task = tokio::spawn(async move {
                    let state = ctx.push(peer, path.clone()).await;
                    // A failed push is resumed from the same copy.
                    if temporary && matches!(state, TransferState::Done(_)) {
                        remove_temporary(&path);
                    }
                    sink.send(Event::TransferState { id, state });
                });
                (task, None)
            }
        };
        self.jobs.insert(
            id,
            Running {
                job,
                meter,
                task: Some(task.abort_handle()),
                handle,
            },
        );
        id
    }

    /// Stops a transfer, keeping what arrived. A transfer that just ended
    /// keeps its own final state: a download whose bytes are all in is
    /// being made durable and finishes first.
    async fn pause(&mut self, id: u64) {
        let Some(r) = self.jobs.get_mut(&id) else {
            return;
        };
        if !r.is_running() {
            return;
        }
        if let Some(h) = &r.handle {
            h.pause().await;
            if !matches!(h.status(), Status::Paused) {
                return; // it ended meanwhile; its waiter reports how
            }
        }
        if let Some(t) = r.task.take() {
            t.abort();
        }
        self.sink.send(Event::TransferState {
            id,
            state: TransferState::Paused,
        });
    }

    /// Stops a transfer and throws away what arrived; once the download
    /// is done (its bytes are in and it is being named), it is let finish
    /// rather than leave a file behind a "cancelled" row.
    async fn cancel(&mut self, id: u64) {
        let Some(r) = self.jobs.get(&id) else {
            return;
        };
        if let Some(h) = &r.handle {
            h.cancel().await;
            if !matches!(h.status(), Status::Cancelled) {
                return; // done meanwhile; its waiter reports it
            }
        }
        let Some(mut r) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(t) = r.task.take() {
            t.abort();
        }
        match &r.job {
            Job::Download { file, .. } => self.feed.log(
                Level::Info,
                format!("cancelled {}; what had arrived was removed", file.name),
            ),
            Job::Folder { name, .. } => self.feed.log(
                Level::Info,
                format!("cancelled {name}; what had arrived was removed"),
            ),
            Job::Push {
                path, temporary, ..
            } => {
                if *temporary {
                    remove_temporary(path);
                }
                self.feed.log(Level::Info, "push cancelled");
            }
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

    /// Puts `path` into the first share folder (plain or locked); an
    /// upload's temporary copy goes afterwards either way.
    fn publish(
        &self,
        path: PathBuf,
        lock: ShareLock,
        temporary: bool,
        reply: Option<Reply<Result<PathBuf, String>>>,
    ) {
        let folder = self.sink.share_folder();
        let feed = self.feed.clone();
        tokio::task::spawn_blocking(move || {
            let done = share_file(&path, folder, lock);
            let shown = if temporary {
                remove_temporary(&path);
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            } else {
                path.display().to_string()
            };
            match &done {
                Ok(p) => feed.log(Level::Success, format!("shared {}", p.display())),
                Err(e) => feed.log(Level::Error, format!("cannot share {shown}: {e}")),
            }
            if let Some(r) = reply {
                let _ = r.send(done.map_err(|e| format!("cannot share {shown}: {e}")));
            }
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
                self.renew_downloads();
                self.ensure_reach().await;
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

/// The owner of the app's downloads: peers named through the tracker,
/// providers from it, verified pieces offered through the node if it runs.
fn new_downloads(
    data_dir: &Path,
    config: &Config,
    profile: &dyn Profile,
    client: Arc<PeerClient>,
    node: Option<&Node>,
    backends: &[Arc<dyn Backend>],
) -> Downloads {
    let book = profile
        .trackers(config)
        .ok()
        .map(|t| book_of(t, backends, data_dir));
    let swarm = Swarm {
        sources: book.as_ref().map_or_else(Sources::none, PeerBook::sources),
        partials: node.map(|n| n.partials().clone()),
        reputation: Some(Reputation::new(data_dir, config.reputation)),
    };
    Downloads::new(client, book, swarm)
}

fn new_client(identity: &Arc<Identity>, config: &Config) -> PeerClient {
    PeerClient::new(identity.clone(), config.retry)
        .with_download_limit(shoal_node::rate::RateLimit::new(config.max_download_rate))
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
        if net == NetState::Online && sink.watched() {
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
    let mut changed = true;
    loop {
        if changed {
            let files: Vec<FileEntry> = index.snapshot().files().map(|f| f.entry.clone()).collect();
            sink.send(Event::LocalFiles(files));
        }
        tokio::select! {
            _ = tick.tick() => {
                changed = false;
                if *tracker.borrow() == TrackerState::Online && sink.watched() {
                    let _ = commands.send(Command::RefreshPeers);
                }
            }
            r = changes.changed() => {
                if r.is_err() { return }
                changed = true;
            }
            () = cancel.cancelled() => return,
        }
    }
}

/// The rows of the peers view: the tracker's list, each peer's standing,
/// and its file count (fetched again only when older than [`COUNT_EVERY`],
/// a few listings at a time).
async fn peer_rows(
    book: &PeerBook,
    client: Arc<PeerClient>,
    reputation: Reputation,
    me: PeerId,
    counts: FileCounts,
) -> Result<Vec<PeerRow>, String> {
    let (listed, _) = book.list().await.map_err(|e| e.to_string())?;
    let peers: Vec<PeerRecord> = listed.into_iter().map(|l| l.record).collect();
    let standings = tokio::task::spawn_blocking(move || reputation.all())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stale: Vec<PeerRecord> = {
        let known = counts.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .iter()
            .filter(|p| p.peer_id != me)
            .filter(|p| {
                known
                    .get(&p.peer_id)
                    .is_none_or(|(at, _)| at.elapsed() >= COUNT_EVERY)
            })
            .cloned()
            .collect()
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(COUNTS_AT_ONCE));
    let mut set = tokio::task::JoinSet::new();
    for p in stale {
        let (client, slots) = (client.clone(), slots.clone());
        set.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let n = tokio::time::timeout(LISTING_TIMEOUT, client.files(&p)).await;
            (p.peer_id, n.ok().and_then(Result::ok).map(|f| f.len()))
        });
    }
    while let Some(Ok((id, n))) = set.join_next().await {
        counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (std::time::Instant::now(), n));
    }
    let now = now_secs();
    let known = counts.lock().unwrap_or_else(|p| p.into_inner());
    Ok(peers
        .into_iter()
        .filter(|p| p.peer_id != me)
        .map(|record| PeerRow {
            verdict: standings
                .get(&record.peer_id)
                .map_or("new", |s| s.verdict(now)),
            files: known.get(&record.peer_id).and_then(|(_, n)| *n),
            record,
        })
        .collect())
}

/// A file target typed in the app (`PEER:PATH` or a content id), looked
/// up: its first provider and its entry.
async fn lookup(
    downloads: &Downloads,
    target: &Target,
) -> Result<(PeerRecord, FileEntry), Failure> {
    let (file, providers) = downloads
        .resolve(target)
        .await
        .map_err(|e| Failure::of(&e))?;
    // Every other provider joins in once the download starts.
    providers
        .into_iter()
        .next()
        .map(|p| (p, file))
        .ok_or_else(|| Failure::new(ErrorKind::NotFound, "no live peer provides it now"))
}

/// Removes an upload's temporary copy and the folder made for it.
fn remove_temporary(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Tells the app how others reach the node, and logs it when that changes
/// (the node logs its port mapping and relay itself, into the feed too).
async fn watch_reach(
    mut rx: tokio::sync::watch::Receiver<shoal_node::reach::Reachability>,
    feed: LogFeed,
    sink: Sink,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut last = shoal_node::reach::Reachability::default();
    loop {
        let now = rx.borrow_and_update().clone();
        if now.reach() != last.reach()
            && let Some(r) = now.reach()
        {
            feed.log(
                Level::Info,
                format!("others reach this node: {}", r.as_str()),
            );
        }
        sink.send(Event::Reachability(now.clone()));
        last = now;
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}
