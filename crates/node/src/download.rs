//! Downloads: bytes from a peer into `NAME.part`, checked against the
//! content id, fsync'd, and only then given their final name.
//!
//! Nothing unverified ever sits at the final path, and an existing file is
//! never replaced: the final step is a hard link (which fails if the name
//! is taken) followed by removing the `.part`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use shoal_core::wire::{FileEntry, MAX_FILE_SIZE, PeerRecord};
use shoal_core::{ContentId, PeerId};

use crate::book::PeerBook;
use crate::error::{NodeError, Result};
use crate::index::PART_SUFFIX;
use crate::peer_client::PeerClient;
use crate::pieces::{self, PieceState, Verifier};
use crate::reputation::{Reputation, Standing, Tally, now_secs};
use crate::swarm::{Bitmap, Have, Offered, Partial, Partials};
use crate::tracker_client::{TrackerClient, describe};

/// Pieces buffered between the network, the verifier and the writer.
const PIPE_DEPTH: usize = 2;
/// Longest time between two saves of the piece record.
const STATE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Most pieces asked for in one range request.
const MAX_RUN: usize = 4096;
/// Bytes written between two background flushes to disk.
const FLUSH_EVERY: u64 = 8 * 1024 * 1024;
/// How often the tracker is asked for providers that joined.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a peer still downloading is asked which pieces it holds, when
/// it has nothing we need.
const HAVE_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// Wait after a peer answered that all its upload slots are busy.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Answers in a row that carry no data (busy, pieces not held) before a
/// peer is given up on: about a minute of waiting.
const MAX_IDLE_ANSWERS: u32 = 120;
/// Peers asked for the outboard at once.
const OUTBOARDS_AT_ONCE: usize = 4;
/// Longest wait for the next bytes of a range before the peer counts as
/// stalled and its pieces go to others.
const STALL: std::time::Duration = std::time::Duration::from_secs(15);
/// Refreshes in a row that bring no provider, once every known one is
/// gone, before the download gives up.
const MAX_EMPTY_REFRESHES: u32 = 2;

/// What a download may use beyond the peers it starts with.
#[derive(Clone, Default)]
pub struct Swarm {
    /// Asked now and then for providers that joined.
    pub tracker: Option<TrackerClient>,
    /// Where verified pieces are offered to other peers while downloading.
    pub partials: Option<Partials>,
    /// Where what each peer did is recorded, and bans are looked up.
    pub reputation: Option<Reputation>,
}

/// Every known peer's standing (none if there is no reputation database
/// or it cannot be read, which is worth a warning but not a failure).
async fn standings(swarm: &Swarm) -> std::collections::HashMap<PeerId, Standing> {
    let Some(rep) = swarm.reputation.clone() else {
        return Default::default();
    };
    match tokio::task::spawn_blocking(move || rep.all()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read peer reputation; treating every peer as new");
            Default::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer reputation");
            Default::default()
        }
    }
}

/// Receives progress of a transfer (a progress bar, a GUI, nothing).
pub trait Progress: Send + Sync {
    /// The transfer of `name`, `total` bytes, begins.
    fn start(&self, _name: &str, _total: u64) {}
    /// `n` more bytes arrived.
    fn advance(&self, _n: u64) {}
    /// `n` peers are serving the transfer now.
    fn sources(&self, _n: usize) {}
    /// The transfer ended (successfully or not).
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The local file name for a remote path: its last component, if that is
/// a safe name on this system.
pub fn local_name(remote: &str) -> Result<String> {
    let name = remote.rsplit('/').next().unwrap_or("");
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['\\', '\0'])
        || name.chars().any(shoal_core::text::is_hidden);
    if bad {
        return Err(NodeError::UnsafeName(shoal_core::text::bounded(
            remote, 300,
        )));
    }
    Ok(name.to_owned())
}

/// Extensions that make a file a program on some system.
const PROGRAMS: &[&str] = &[
    "exe", "com", "bat", "cmd", "msi", "scr", "ps1", "vbs", "js", "jar", "lnk", "app", "sh",
    "command", "desktop", "appimage",
];

/// A name a provider chose (for `get CONTENT_ID`, where the user named no
/// file) made safe to save under: hidden characters become `_`, and a
/// leading dot becomes `_.`, so a download never lands as a dotfile such
/// as `.bash_profile`. Says so when it changed the name, and warns when
/// the name is a program's.
pub fn provider_name(remote: &str) -> Result<String> {
    let base = remote.rsplit('/').next().unwrap_or("");
    let mut name: String = base
        .chars()
        .map(|c| {
            if shoal_core::text::is_hidden(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.starts_with('.') && name != "." && name != ".." {
        name.insert(0, '_');
    }
    let name = local_name(&name)?;
    if name != base {
        tracing::warn!(
            listed = %shoal_core::text::escape(base),
            saved = %name,
            "the provider's name for this file was changed to be safe to save"
        );
    }
    if let Some(ext) = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
        && PROGRAMS.contains(&ext.as_str())
    {
        tracing::warn!(
            name = %name,
            "the provider named this file as a program (.{ext}); it is saved without permission to run, but check it before you open it"
        );
    }
    Ok(name)
}

/// Resolves a peer (saying so when only its cached address is known) and
/// fetches its file listing.
pub(crate) async fn listing(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
) -> Result<(PeerRecord, Vec<FileEntry>)> {
    let (peer, source) = book.resolve(peer_query).await?;
    if let crate::book::Source::Cache(why) = &source {
        tracing::warn!("using the cached address of {}: {why}", peer.name);
    }
    let files = client.files(&peer).await?;
    Ok((peer, files))
}

/// The file at `path` in the listing of the peer `peer_query` names.
pub async fn find_path(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
    path: &str,
) -> Result<(PeerRecord, FileEntry)> {
    let (peer, files) = listing(book, client, peer_query).await?;
    let wanted = path.trim_start_matches('/');
    let entry = files
        .into_iter()
        .find(|f| f.name == wanted)
        .ok_or_else(|| NodeError::NoSuchFile {
            peer: peer.peer_id,
            peer_short: peer.name.clone(),
            path: path.to_owned(),
        })?;
    Ok((peer, entry))
}

/// Providers whose listings are read at once while looking for a content.
const LISTINGS_AT_ONCE: usize = 32;
/// Most providers whose listings are read while looking for a content.
const MAX_LISTINGS: usize = 64;
/// Longest time spent reading providers' listings for one content.
const FIND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Once one provider's listing has the content, how much longer the
/// others are waited for (their votes decide a disputed size).
const FIND_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Who provides `cid` (ourselves left out), and its listing entry.
///
/// The providers' listings are read a few at a time, under one deadline,
/// so providers that never answer cost no more than that. Providers may
/// disagree about the size (a liar, or a stale listing): each claim is
/// checked before it is believed (its outboard must hash up to the
/// content id, or for a file of one piece its bytes must), the best
/// supported first, and only providers that agree with the proven claim
/// are returned.
pub async fn find_content(
    book: &PeerBook,
    client: &PeerClient,
    cid: ContentId,
) -> Result<(Vec<PeerRecord>, FileEntry)> {
    use futures_util::StreamExt;
    let mut providers = Vec::new();
    add_peers(&mut providers, book.tracker().providers(cid).await?, client);
    providers.truncate(MAX_LISTINGS);
    let mut last = NodeError::NoProvider(cid);
    // (entry, providers that list it so) per claimed size.
    let mut claims: Vec<(FileEntry, Vec<PeerRecord>)> = Vec::new();
    let asks: Vec<_> = providers
        .iter()
        .cloned()
        .map(|peer| listing_of(client, peer))
        .collect();
    let mut answers = futures_util::stream::iter(asks).buffer_unordered(LISTINGS_AT_ONCE);
    let mut deadline = tokio::time::Instant::now() + FIND_DEADLINE;
    loop {
        let next = tokio::time::timeout_at(deadline, answers.next()).await;
        let Ok(Some((peer, files))) = next else {
            if next.is_err() {
                tracing::warn!("some providers did not answer in time; going on without them");
            }
            break;
        };
        match files {
            Ok(files) => {
                let Some(entry) = files.into_iter().find(|f| f.content_id == cid) else {
                    continue;
                };
                deadline = deadline.min(tokio::time::Instant::now() + FIND_GRACE);
                match claims.iter_mut().find(|(e, _)| e.size == entry.size) {
                    Some((_, peers)) => peers.push(peer),
                    None => claims.push((entry, vec![peer])),
                }
            }
            Err(e) => {
                tracing::warn!(peer = %peer.name, error = %e, "provider unreachable");
                last = e;
            }
        }
    }
    drop(answers);
    // Best supported first; on a tie, the order listings arrived in.
    claims.sort_by_key(|(_, peers)| std::cmp::Reverse(peers.len()));
    for (entry, peers) in claims {
        if entry.size > MAX_FILE_SIZE {
            last = too_large(&peers[0], &entry);
            continue;
        }
        for peer in &peers {
            match prove_size(client, peer, &entry).await {
                Ok(()) => return Ok((peers, entry)),
                Err(e) => {
                    tracing::warn!(peer = %peer.name, size = entry.size, error = %e, "a provider's listing of this content does not hold up");
                    last = e;
                }
            }
        }
    }
    Err(last)
}

/// The outboard of `entry` from `peer`, checked against the content id.
async fn usable_outboard<'a>(
    client: &PeerClient,
    peer: &'a PeerRecord,
    entry: &FileEntry,
    outboard_size: u64,
) -> (&'a PeerRecord, Result<(Verifier, Vec<u8>)>) {
    // A file of one piece has an empty outboard: nothing to ask for.
    let got = if outboard_size == 0 {
        Ok(Vec::new())
    } else {
        client.outboard(peer, entry.content_id, outboard_size).await
    };
    let got = got.and_then(|o| {
        Verifier::new(entry.content_id, entry.size, o.clone())
            .map(|v| (v, o))
            .map_err(|reason| NodeError::Protocol {
                peer: peer.peer_id,
                reason,
            })
    });
    (peer, got)
}

/// A provider's listing, with who it came from.
async fn listing_of(client: &PeerClient, peer: PeerRecord) -> (PeerRecord, Result<Vec<FileEntry>>) {
    let r = client.files(&peer).await;
    (peer, r)
}

/// Checks that `entry`'s size is that of its content: its outboard hashes
/// up to the content id, or (one piece) its bytes do.
async fn prove_size(client: &PeerClient, peer: &PeerRecord, entry: &FileEntry) -> Result<()> {
    let protocol = |reason: String| NodeError::Protocol {
        peer: peer.peer_id,
        reason,
    };
    let outboard_size = pieces::tree(entry.size).outboard_size();
    if outboard_size > 0 {
        return usable_outboard(client, peer, entry, outboard_size)
            .await
            .1
            .map(|_| ());
    }
    if entry.size == 0 {
        return if entry.content_id == ContentId::of(b"") {
            Ok(())
        } else {
            Err(protocol(
                "lists an empty file under a non-empty content id".into(),
            ))
        };
    }
    let mut resp = client
        .content(peer, entry.content_id, Some((0, entry.size)))
        .await?;
    if !resp.status().is_success() {
        return Err(crate::peer_client::refusal(peer, resp).await);
    }
    let body = crate::body::read_capped(&mut resp, entry.size)
        .await
        .map_err(|_| protocol("sent more than the file it listed".into()))?;
    if body.len() as u64 == entry.size && ContentId::of(&body) == entry.content_id {
        Ok(())
    } else {
        Err(protocol(
            "its bytes do not match the size and content id it lists".into(),
        ))
    }
}

fn too_large(peer: &PeerRecord, entry: &FileEntry) -> NodeError {
    NodeError::Protocol {
        peer: peer.peer_id,
        reason: format!(
            "lists {} as {} bytes, more than the largest file Shoal transfers ({} bytes)",
            shoal_core::text::escape(&entry.name),
            entry.size,
            MAX_FILE_SIZE
        ),
    }
}

/// `get PEER:PATH`: resolves the peer, finds the file in its listing and
/// downloads it into `out_dir`, from that peer and every other provider
/// of the same content the tracker knows.
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
    match book.tracker().providers(entry.content_id).await {
        Ok(more) => add_peers(&mut peers, more, client),
        Err(e) => tracing::debug!(error = %e, "no other providers: tracker lookup failed"),
    }
    download_from(client, &peers, &entry, out_dir, progress, swarm).await
}

/// Adds providers not already listed (and not ourselves).
pub fn add_peers(peers: &mut Vec<PeerRecord>, more: Vec<PeerRecord>, client: &PeerClient) {
    for p in more {
        if p.peer_id != client.peer_id() && !peers.iter().any(|q| q.peer_id == p.peer_id) {
            peers.push(p);
        }
    }
}

/// `get CONTENT_ID`: asks the tracker who has it and downloads from all of
/// them at once, under the name the first of them lists it by.
pub async fn get_content(
    book: &PeerBook,
    client: &PeerClient,
    cid: ContentId,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
) -> Result<PathBuf> {
    let (providers, mut entry) = find_content(book, client, cid).await?;
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
    let swarm = Swarm::default();
    download_from(
        client,
        std::slice::from_ref(peer),
        entry,
        out_dir,
        progress,
        &swarm,
    )
    .await
}

/// Downloads `entry` from all of `peers` at once (pieces from each, by
/// speed) into `out_dir`, resuming a partial download if one is there.
/// With a tracker in `swarm`, providers that appear meanwhile join in;
/// with partials, the verified pieces are offered to others as they land.
/// Peers banned in `swarm`'s reputation are skipped.
pub async fn download_from(
    client: &PeerClient,
    peers: &[PeerRecord],
    entry: &FileEntry,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
) -> Result<PathBuf> {
    let name = local_name(&entry.name)?;
    let target = out_dir.join(&name);
    if target.symlink_metadata().is_ok() {
        return Err(NodeError::Exists(target));
    }
    if entry.size > MAX_FILE_SIZE
        && let Some(p) = peers.first()
    {
        return Err(too_large(p, entry));
    }
    let standings = standings(swarm).await;
    let now = now_secs();
    let (peers, banned): (Vec<&PeerRecord>, Vec<&PeerRecord>) = peers
        .iter()
        .partition(|p| !standings.get(&p.peer_id).is_some_and(|s| s.banned(now)));
    for p in &banned {
        tracing::warn!(peer = %p.name, "skipping a peer banned for sending bad data");
    }
    if peers.is_empty()
        && let Some(p) = banned.first()
    {
        return Err(NodeError::Banned {
            peer: p.peer_id,
            name: p.name.clone(),
            until: standings
                .get(&p.peer_id)
                .and_then(|s| s.banned_until)
                .unwrap_or(now),
        });
    }
    let peers: Vec<PeerRecord> = peers.into_iter().cloned().collect();
    std::fs::create_dir_all(out_dir).map_err(NodeError::file("create folder", out_dir))?;
    let part = out_dir.join(format!("{name}{PART_SUFFIX}"));
    let state_path = PieceState::path_for(&part);
    let (file, state, resumed) = open_part(&part, &state_path, entry)?;
    let on_disk = file.metadata().map_or(0, |m| m.len());
    if let Some(free) = crate::fsx::free_space(out_dir)
        && free.saturating_add(on_disk) < entry.size
    {
        return Err(NodeError::File {
            action: "make room for",
            path: part.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "not enough disk space: it needs {} and the disk has {} free",
                    shoal_core::human_size(entry.size - on_disk),
                    shoal_core::human_size(free)
                ),
            ),
        });
    }
    progress.start(&name, entry.size);
    if resumed {
        // What it holds counts once checked (see `recover`).
        tracing::info!(file = %part.display(), "resuming");
    }
    let spare = file.try_clone().map_err(NodeError::file("open", &part))?;
    let part_file = PartFile {
        file,
        state,
        resumed,
        path: part.clone(),
        state_path: state_path.clone(),
    };
    let result = receive(
        client, &peers, entry, part_file, progress, swarm, &standings,
    )
    .await;
    progress.finish();
    if result.is_err() {
        crate::fsx::release_unwritten(&spare, entry.size);
    }
    drop(spare);
    let offered = result?;
    publish(&part, &target)?;
    if let Some(o) = offered {
        o.settle(target.clone());
    }
    let _ = std::fs::remove_file(&state_path);
    tracing::info!(peers = peers.len(), file = %target.display(), size = entry.size, "downloaded and verified");
    Ok(target)
}

fn piece_len(size: u64, i: u64) -> u64 {
    let (s, e) = pieces::piece_range(size, i);
    e - s
}

/// Opens the `.part` of `entry` with its piece record: the existing one if
/// it belongs to the same content, a fresh one otherwise.
///
/// The record of an earlier attempt is only a hint: it says which content
/// the `.part` holds, but every piece is checked again against the content
/// id before it counts (see [`recover`]), so a record that lies, or a
/// `.part` changed behind our back, can cost time but never put a bad
/// byte at the final path. The `.part` is never a symlink or anything but
/// a regular file: a planted link is refused, not followed.
fn open_part(
    part: &Path,
    state_path: &Path,
    entry: &FileEntry,
) -> Result<(File, PieceState, bool)> {
    let file = crate::fsx::open_own(part).map_err(NodeError::file("create", part))?;
    if file.try_lock().is_err() {
        return Err(NodeError::File {
            action: "write (another shoal download is writing it)",
            path: part.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
        });
    }
    let len = file
        .metadata()
        .map_err(NodeError::file("inspect", part))?
        .len();
    match PieceState::load(state_path) {
        Some(s) if s.content_id != entry.content_id => {
            return Err(NodeError::ChangedSource {
                part: part.to_owned(),
                had: s.content_id,
                now: entry.content_id,
            });
        }
        Some(s) if s.size == entry.size && len <= entry.size => {
            return Ok((file, PieceState::new(entry.content_id, entry.size), true));
        }
        _ => {}
    }
    // Start afresh. The file grows as pieces land at their offsets; its
    // space is reserved once the outboard has proven the size.
    file.set_len(0).map_err(NodeError::file("truncate", part))?;
    let state = PieceState::new(entry.content_id, entry.size);
    state
        .save(state_path)
        .map_err(NodeError::file("write", state_path))?;
    Ok((file, state, false))
}

/// Reserves disk space for the whole file, once its size is proven (its
/// outboard hashed up to the content id): a full disk is reported before
/// the pieces come, and the filesystem lays the file out in one go. A
/// download that fails gives the unwritten rest back
/// ([`crate::fsx::release_unwritten`]).
fn reserve(file: &File, part: &Path, size: u64) -> Result<()> {
    match crate::fsx::preallocate(file, size) {
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => Err(NodeError::File {
            action: "make room for",
            path: part.to_owned(),
            source: e,
        }),
        // Filesystems that cannot preallocate simply fill in as we write.
        _ => Ok(()),
    }
}

/// An open `.part` and what is known about its pieces.
struct PartFile {
    file: File,
    state: PieceState,
    /// Whether it held an earlier attempt (whose unrecorded pieces may
    /// still be good).
    resumed: bool,
    path: PathBuf,
    state_path: PathBuf,
}

/// A received piece on its way to the disk.
struct Piece {
    index: u64,
    data: Arc<Vec<Bytes>>,
}

/// Which pieces are wanted, asked for, done; which peers are dropped; and
/// what each peer did. Shared by the peer workers, the verifier and the
/// writer.
struct Sched {
    /// Pieces wanted that nobody is fetching.
    free: Vec<bool>,
    free_count: usize,
    /// Pieces being fetched (or verified, or written), with how many copies.
    asked: std::collections::HashMap<u64, u32>,
    /// Pieces written.
    done: u64,
    total: u64,
    /// Pieces received and handed to the verifier (not worth a copy).
    received: std::collections::HashSet<u64>,
    /// Peers caught sending a bad piece.
    dropped: std::collections::HashSet<usize>,
    /// How many peers still downloading are known to hold each piece.
    avail: Vec<u16>,
    /// Start runs at a random one of the rarest pieces rather than the
    /// first: downloaders of one file then fetch different pieces and can
    /// trade them.
    spread: bool,
    /// Workers running.
    live: usize,
    /// What each peer (by roster position) did in this download.
    tallies: Vec<Tally>,
}

impl Sched {
    fn new(pieces: u64, missing: &[u64], spread: bool) -> Self {
        let mut free = vec![false; pieces as usize];
        for &p in missing {
            free[p as usize] = true;
        }
        Self {
            free,
            free_count: missing.len(),
            asked: Default::default(),
            done: 0,
            total: missing.len() as u64,
            received: Default::default(),
            dropped: Default::default(),
            avail: vec![0; pieces as usize],
            spread,
            live: 0,
            tallies: Vec::new(),
        }
    }

    fn finished(&self) -> bool {
        self.done == self.total
    }

    /// Up to `max` consecutive pieces that `have` holds (`None`: all) and
    /// nobody is fetching; when there are none (the end game), one piece
    /// others are still fetching.
    fn take(&mut self, max: usize, have: Option<&Bitmap>) -> Vec<u64> {
        let n = self.free.len();
        let can = |p: usize| self.free[p] && have.is_none_or(|h| h.has(p as u64));
        let start = if self.spread {
            // Rarest first, ties broken at random (reservoir sampling).
            let (mut best, mut ties, mut pick) = (u16::MAX, 0u64, None);
            for p in (0..n).filter(|&p| can(p)) {
                let a = self.avail[p];
                if a < best {
                    (best, ties, pick) = (a, 1, Some(p));
                } else if a == best {
                    ties += 1;
                    if fastrand::u64(..ties) == 0 {
                        pick = Some(p);
                    }
                }
            }
            pick
        } else {
            (0..n).find(|&p| can(p))
        };
        let mut run: Vec<u64> = Vec::new();
        if let Some(mut p) = start {
            // Spread runs stay among the rarest pieces.
            let level = self.avail[p];
            while run.len() < max && p < n && can(p) && (!self.spread || self.avail[p] == level) {
                run.push(p as u64);
                p += 1;
            }
        }
        if run.is_empty()
            && let Some((&p, _)) = self
                .asked
                .iter()
                .filter(|(p, _)| !self.received.contains(p) && have.is_none_or(|h| h.has(**p)))
                // Fewest copies first; of those the last piece, which its
                // peer will reach last.
                .min_by_key(|(p, n)| (**n, std::cmp::Reverse(**p)))
        {
            run.push(p);
        }
        for &p in &run {
            if std::mem::take(&mut self.free[p as usize]) {
                self.free_count -= 1;
            }
            *self.asked.entry(p).or_insert(0) += 1;
        }
        run
    }

    /// A copy of piece `p` will not arrive (or arrived bad).
    fn give_back(&mut self, p: u64) {
        self.received.remove(&p);
        if let Some(n) = self.asked.get_mut(&p) {
            *n -= 1;
            if *n == 0 {
                self.asked.remove(&p);
                self.free[p as usize] = true;
                self.free_count += 1;
            }
        }
    }

    /// Piece `p` is written; later copies are dropped.
    fn complete(&mut self, p: u64) {
        self.received.remove(&p);
        if self.asked.remove(&p).is_some() {
            self.done += 1;
        }
    }

    /// A peer still downloading now holds the pieces of `now` (it held
    /// those of `before`).
    fn add_have(&mut self, before: Option<&Bitmap>, now: &Bitmap) {
        for i in now.added_since(before) {
            if let Some(a) = self.avail.get_mut(i as usize) {
                *a = a.saturating_add(1);
            }
        }
        self.spread = true;
    }

    /// A peer still downloading left this download.
    fn remove_have(&mut self, had: &Bitmap) {
        for i in had.added_since(None) {
            if let Some(a) = self.avail.get_mut(i as usize) {
                *a = a.saturating_sub(1);
            }
        }
    }
}

type SharedSched = Arc<(std::sync::Mutex<Sched>, tokio::sync::Notify)>;

fn lock(s: &SharedSched) -> std::sync::MutexGuard<'_, Sched> {
    s.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// A received piece on its way to the disk, and who sent it.
struct FromPeer {
    piece: Piece,
    peer: usize,
}

/// What every worker of one download shares.
struct Ctx<'a> {
    client: &'a PeerClient,
    entry: &'a FileEntry,
    sched: SharedSched,
    verify_tx: tokio::sync::mpsc::Sender<FromPeer>,
    progress: &'a dyn Progress,
}

/// The run length to start a peer with: half a second at its known speed,
/// one piece if it ever sent a bad one.
fn first_run(standing: Option<&Standing>) -> usize {
    match standing {
        Some(s) if s.bad_pieces > 0 => 1,
        Some(s) if s.speed > 0 => {
            ((s.speed as f64 * 0.5 / pieces::PIECE_SIZE as f64) as usize).clamp(1, MAX_RUN)
        }
        _ => 16,
    }
}

/// Asks the tracker for the providers of `cid` every [`REFRESH_EVERY`]
/// and passes them on, until the receiver is gone.
async fn refresh_providers(
    tracker: TrackerClient,
    cid: ContentId,
    tx: tokio::sync::mpsc::Sender<Vec<PeerRecord>>,
) {
    // One attempt each time: the next refresh is the retry.
    let mut once = tracker.retry();
    once.attempts = 1;
    let tracker = tracker.with_retry(once);
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        let found = match tracker.providers(cid).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "provider refresh failed");
                Vec::new()
            }
        };
        if tx.send(found).await.is_err() {
            return;
        }
    }
}

/// Fetches the missing pieces of `entry` from all `peers` at once (and from
/// providers that join meanwhile), checking each piece against the content
/// id before it is written at its offset. A peer that fails is dropped
/// from this download; one that sends a bad piece is dropped at once and
/// its piece fetched elsewhere. What each peer did goes to the reputation
/// database at the end.
async fn receive(
    client: &PeerClient,
    peers: &[PeerRecord],
    entry: &FileEntry,
    part: PartFile,
    progress: &dyn Progress,
    swarm: &Swarm,
    standings: &std::collections::HashMap<PeerId, Standing>,
) -> Result<Option<Offered>> {
    let PartFile {
        file,
        mut state,
        resumed,
        path: part_path,
        state_path,
    } = part;
    let state_path = state_path.as_path();
    let mut missing = state.missing();
    if missing.is_empty() {
        // Nothing to fetch: an empty file (a resumed `.part` is checked
        // piece by piece, so its record never leaves nothing missing).
        if entry.size == 0 && entry.content_id != ContentId::of(b"") {
            return Err(NodeError::Protocol {
                peer: peers
                    .first()
                    .map_or(PeerId::from_bytes([0; 32]), |p| p.peer_id),
                reason: "lists an empty file under a non-empty content id".into(),
            });
        }
        file.sync_all()
            .map_err(NodeError::file("sync", state_path))?;
        return Ok(None);
    }

    // The outboard from the first peer that gives a correct one.
    let mut errors: Vec<NodeError> = Vec::new();
    let mut verified = None;
    let mut no_outboard: Vec<(PeerId, Tally)> = Vec::new();
    let outboard_size = pieces::tree(entry.size).outboard_size();
    {
        use futures_util::StreamExt;
        // A few peers are asked at once, so ones that never answer cost
        // no more than the time a good one takes.
        let asks: Vec<_> = peers
            .iter()
            .map(|peer| usable_outboard(client, peer, entry, outboard_size))
            .collect();
        let mut tries = futures_util::stream::iter(asks).buffer_unordered(OUTBOARDS_AT_ONCE);
        while let Some((peer, got)) = tries.next().await {
            match got {
                Ok(v) => {
                    verified = Some(v);
                    break;
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.name, error = %e, "no usable outboard from this peer; dropped from this download");
                    no_outboard.push((
                        peer.peer_id,
                        Tally {
                            failed: true,
                            ..Tally::default()
                        },
                    ));
                    errors.push(e);
                }
            }
        }
    }
    let peers: Vec<PeerRecord> = peers
        .iter()
        .filter(|p| !no_outboard.iter().any(|(id, _)| *id == p.peer_id))
        .cloned()
        .collect();
    let Some((verifier, outboard)) = verified else {
        record_reputation(swarm, no_outboard).await;
        return Err(errors
            .pop()
            .unwrap_or(NodeError::NoProvider(entry.content_id)));
    };
    let verifier = Arc::new(verifier);
    reserve(&file, &part_path, entry.size)?;
    if resumed {
        // Pieces written after the record was last saved are still good:
        // find them by checking what the .part holds.
        let f = file
            .try_clone()
            .map_err(NodeError::file("read", state_path))?;
        let (v, m) = (verifier.clone(), missing.clone());
        let found = tokio::task::spawn_blocking(move || recover(&f, &v, &m))
            .await
            .map_err(|e| NodeError::Internal(format!("recovery stopped: {e}")))?;
        if !found.is_empty() {
            let bytes: u64 = found.iter().map(|&i| piece_len(entry.size, i)).sum();
            tracing::info!(
                pieces = found.len(),
                bytes,
                "recovered verified pieces from the .part"
            );
            progress.advance(bytes);
            state.mark(found);
            missing = state.missing();
        }
    }

    // Offer what is verified to other peers while the rest arrives.
    let offered = swarm.partials.as_ref().map(|partials| {
        let have = Have::from_bitmap(entry.size, &state.verified());
        let partial = Arc::new(Partial {
            part: part_path.clone(),
            size: entry.size,
            outboard,
            have,
        });
        (partials.offer(entry.content_id, partial.clone()), partial)
    });
    let have = offered.as_ref().map(|(_, p)| p.clone());

    let sched: SharedSched = Arc::new((
        std::sync::Mutex::new(Sched::new(
            pieces::piece_count(entry.size),
            &missing,
            offered.is_some(),
        )),
        tokio::sync::Notify::new(),
    ));
    // Verification and writing run on their own threads, so the network
    // never waits for the CPU or the disk.
    let (verify_tx, mut verify_rx) = tokio::sync::mpsc::channel::<FromPeer>(PIPE_DEPTH);
    let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<Piece>(PIPE_DEPTH);
    let (bad_tx, mut bad_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64)>();
    let verifier_task = {
        let sched = sched.clone();
        tokio::task::spawn_blocking(move || {
            while let Some(FromPeer { piece, peer }) = verify_rx.blocking_recv() {
                if !verifier.check(piece.index, &piece.data) {
                    {
                        let mut s = lock(&sched);
                        s.dropped.insert(peer);
                        s.tallies[peer].bad_pieces += 1;
                        s.give_back(piece.index);
                    }
                    sched.1.notify_waiters();
                    let _ = bad_tx.send((peer, piece.index));
                    continue;
                }
                lock(&sched).tallies[peer].good_pieces += 1;
                if write_tx.blocking_send(piece).is_err() {
                    break;
                }
            }
        })
    };
    let size = entry.size;
    let state_file = state_path.to_owned();
    let writer_task = {
        let sched = sched.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut flusher = Flusher::start(file.try_clone()?, state, state_file);
            let mut unflushed = 0u64;
            let mut written = Vec::new();
            while let Some(p) = write_rx.blocking_recv() {
                if !lock(&sched).asked.contains_key(&p.index) {
                    continue; // an end-game copy of a piece already written
                }
                let (start, end) = pieces::piece_range(size, p.index);
                write_all_at(&file, &p.data, start)?;
                if let Some(h) = &have {
                    h.have.set(p.index);
                }
                lock(&sched).complete(p.index);
                sched.1.notify_waiters();
                written.push(p.index);
                unflushed += end - start;
                if unflushed >= FLUSH_EVERY {
                    flusher.flush(std::mem::take(&mut written));
                    unflushed = 0;
                }
            }
            flusher.flush(written);
            flusher.finish()?;
            // Only a complete file gets its full length; an unfinished one
            // keeps the length of what it holds, so what was reserved past
            // it can be given back.
            if lock(&sched).finished() {
                file.set_len(size)?;
            }
            file.sync_all()
        })
    };

    let ctx = Ctx {
        client,
        entry,
        sched: sched.clone(),
        verify_tx,
        progress,
    };
    let results = run_workers(&ctx, &peers, swarm, standings).await;
    let Ctx { verify_tx, .. } = ctx;
    drop(verify_tx);
    verifier_task
        .await
        .map_err(|e| NodeError::Internal(format!("verifier stopped: {e}")))?;
    let written = writer_task
        .await
        .map_err(|e| NodeError::Internal(format!("disk writer stopped: {e}")))?;
    let (roster, results) = results;
    let tallies = std::mem::take(&mut lock(&sched).tallies);
    no_outboard.extend(roster.iter().map(|p| p.peer_id).zip(tallies));
    record_reputation(swarm, no_outboard).await;
    written.map_err(NodeError::file("write", state_path.with_extension("")))?;
    let mut bad_pieces = Vec::new();
    while let Ok((peer, piece)) = bad_rx.try_recv() {
        let p = &roster[peer];
        tracing::warn!(peer = %p.name, piece, "bad piece: peer dropped from this download");
        bad_pieces.push(NodeError::BadPiece {
            peer: p.peer_id,
            name: p.name.clone(),
            piece,
        });
    }
    if lock(&sched).finished() {
        return Ok(offered.map(|(o, _)| o));
    }
    // Nobody could deliver everything: report what went wrong, bad data first.
    errors.extend(results.into_iter().filter_map(|r| r.err()));
    Err(bad_pieces
        .into_iter()
        .next()
        .or_else(|| errors.pop())
        .unwrap_or_else(|| NodeError::Internal("download stopped with pieces missing".into())))
}

/// Runs a worker per peer, adding providers the tracker reports meanwhile,
/// until the download is finished or no peer is left. Returns every peer
/// that took part (the roster workers are numbered by) and how each ended.
async fn run_workers(
    ctx: &Ctx<'_>,
    peers: &[PeerRecord],
    swarm: &Swarm,
    standings: &std::collections::HashMap<PeerId, Standing>,
) -> (Vec<PeerRecord>, Vec<Result<()>>) {
    use futures_util::StreamExt;
    let mut roster: Vec<PeerRecord> = Vec::new();
    let mut workers = futures_util::stream::FuturesUnordered::new();
    let join = |roster: &mut Vec<PeerRecord>, peer: PeerRecord| {
        let me = roster.len();
        roster.push(peer.clone());
        {
            let mut s = lock(&ctx.sched);
            s.tallies.push(Tally::default());
            s.live += 1;
        }
        worker(
            ctx,
            me,
            peer.clone(),
            first_run(standings.get(&peer.peer_id)),
        )
    };
    for p in peers {
        workers.push(join(&mut roster, p.clone()));
    }
    let (more_tx, mut more_rx) = tokio::sync::mpsc::channel(1);
    let refresher = match swarm.tracker.clone() {
        Some(t) => Some(tokio::spawn(refresh_providers(
            t,
            ctx.entry.content_id,
            more_tx,
        ))),
        None => {
            drop(more_tx);
            None
        }
    };
    let mut results = Vec::new();
    let mut empty_refreshes = 0;
    ctx.progress.sources(workers.len());
    loop {
        if lock(&ctx.sched).finished() && workers.is_empty() {
            break;
        }
        tokio::select! {
            Some(r) = workers.next(), if !workers.is_empty() => {
                results.push(r);
                let mut s = lock(&ctx.sched);
                s.live -= 1;
                if !s.finished() {
                    ctx.progress.sources(s.live);
                }
                if workers.is_empty() && (s.finished() || refresher.is_none()) {
                    break;
                }
            }
            Some(found) = more_rx.recv() => {
                let now = now_secs();
                let mut added = 0;
                for p in found {
                    let known = p.peer_id == ctx.client.peer_id()
                        || roster.iter().any(|q| q.peer_id == p.peer_id)
                        || standings.get(&p.peer_id).is_some_and(|s| s.banned(now));
                    if !known && !lock(&ctx.sched).finished() {
                        tracing::debug!(peer = %p.name, "a provider joined the download");
                        workers.push(join(&mut roster, p));
                        added += 1;
                    }
                }
                if added > 0 {
                    ctx.progress.sources(lock(&ctx.sched).live);
                }
                if workers.is_empty() {
                    empty_refreshes += 1;
                    if empty_refreshes >= MAX_EMPTY_REFRESHES {
                        break;
                    }
                }
            }
            else => break,
        }
    }
    if let Some(r) = refresher {
        r.abort();
    }
    (roster, results)
}

/// Adds what each peer did to the reputation database; bans are logged.
async fn record_reputation(swarm: &Swarm, tallies: Vec<(PeerId, Tally)>) {
    let Some(rep) = swarm.reputation.clone() else {
        return;
    };
    match tokio::task::spawn_blocking(move || rep.record(&tallies)).await {
        Ok(Ok(banned)) => {
            for b in banned {
                tracing::warn!(
                    peer = %b.peer,
                    bad_pieces = b.bad_pieces,
                    until = b.until,
                    "peer banned for sending bad data"
                );
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record peer reputation"),
        Err(e) => tracing::warn!(error = %e, "cannot record peer reputation"),
    }
}

/// How a request for a run went, short of a hard failure.
enum RunError {
    /// All the peer's upload slots are busy.
    Busy,
    /// The peer (still downloading) does not hold those pieces yet.
    NotHeld,
    /// The peer failed; it is dropped from this download.
    Failed(NodeError),
}

impl From<NodeError> for RunError {
    fn from(e: NodeError) -> Self {
        RunError::Failed(e)
    }
}

/// Which pieces `peer` holds: `None` for all of them, else its bitmap.
async fn pieces_of(ctx: &Ctx<'_>, peer: &PeerRecord) -> Result<Option<Bitmap>> {
    let map = ctx.client.have(peer, ctx.entry.content_id).await?;
    let count = pieces::piece_count(ctx.entry.size);
    let protocol = |reason: &str| NodeError::Protocol {
        peer: peer.peer_id,
        reason: reason.into(),
    };
    if map.size != ctx.entry.size || map.piece_size != pieces::PIECE_SIZE {
        return Err(protocol(
            "describes the content with another size or piece size",
        ));
    }
    if map.complete {
        return Ok(None);
    }
    let bits = map
        .pieces
        .as_deref()
        .and_then(|h| Bitmap::from_hex(count, h))
        .ok_or_else(|| protocol("sent a piece map that does not fit the content"))?;
    Ok(Some(bits))
}

/// Fetches pieces from one peer until the download is finished, the peer
/// fails, or it is caught sending a bad piece. Runs grow with the peer's
/// measured speed (about half a second of data each), so a fast peer takes
/// more of the file; in the end game idle peers fetch copies of the pieces
/// still outstanding, so a slow peer cannot hold up the last piece. A peer
/// still downloading is asked now and then which pieces it holds.
async fn worker(ctx: &Ctx<'_>, me: usize, peer: PeerRecord, mut run_len: usize) -> Result<()> {
    let sched = &ctx.sched;
    let mut have = match pieces_of(ctx, &peer).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(peer = %peer.name, error = %e, "peer cannot say which pieces it holds");
            lock(sched).tallies[me].failed = true;
            return Err(e);
        }
    };
    if let Some(h) = &have {
        lock(sched).add_have(None, h);
    }
    let mut polled = std::time::Instant::now();
    let mut idle_answers = 0u32;
    // Waits before asking again after a connection failure; reset by success.
    let mut backoff: Option<Box<dyn Iterator<Item = std::time::Duration> + Send>> = None;
    let result = loop {
        let notified = sched.1.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let run = {
            let mut s = lock(sched);
            if s.finished() || s.dropped.contains(&me) {
                break Ok(());
            }
            // Never more than a fair share of what is left, so one peer
            // cannot take the whole file while the others wait.
            let fair = if s.live > 1 {
                (s.free_count / (2 * s.live)).max(1)
            } else {
                usize::MAX
            };
            s.take(run_len.min(fair), have.as_ref())
        };
        let mut ask_pieces = false;
        if run.is_empty() {
            if have.is_none() {
                // Everything is asked for and nothing is free to copy yet.
                notified.await;
                continue;
            }
            // It holds nothing we need yet: wait for news, then ask again.
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(HAVE_POLL) => {}
            }
            ask_pieces = polled.elapsed() >= HAVE_POLL;
        } else {
            let started = std::time::Instant::now();
            let mut sent = 0usize;
            let result = fetch_run(ctx, me, &peer, &run, &mut sent).await;
            {
                let mut s = lock(sched);
                for &p in &run[sent..] {
                    s.give_back(p);
                }
                let bytes: u64 = run[..sent]
                    .iter()
                    .map(|&i| piece_len(ctx.entry.size, i))
                    .sum();
                let t = &mut s.tallies[me];
                t.bytes += bytes;
                t.busy += started.elapsed();
            }
            sched.1.notify_waiters();
            match result {
                Ok(()) => {
                    idle_answers = 0;
                    backoff = None;
                    let bytes = (run.len() as u64 * pieces::PIECE_SIZE) as f64;
                    let rate = bytes / started.elapsed().as_secs_f64().max(1e-3);
                    run_len = ((rate * 0.5 / pieces::PIECE_SIZE as f64) as usize).clamp(1, MAX_RUN);
                }
                Err(RunError::Busy) => {
                    idle_answers += 1;
                    let jitter = std::time::Duration::from_millis(fastrand::u64(..250));
                    tokio::time::sleep(BUSY_WAIT + jitter).await;
                }
                Err(RunError::NotHeld) => {
                    idle_answers += 1;
                    ask_pieces = true;
                }
                Err(RunError::Failed(e)) if e.is_transient() => {
                    // Its pieces are back in the pool while we wait.
                    let delays = backoff
                        .get_or_insert_with(|| Box::new(crate::retry::delays(ctx.client.retry())));
                    match delays.next() {
                        Some(d) => {
                            tracing::debug!(peer = %peer.name, error = %e, retry_in = ?d, "piece request failed");
                            tokio::time::sleep(d).await;
                        }
                        None => break Err(e),
                    }
                }
                Err(RunError::Failed(e)) => break Err(e),
            }
            if idle_answers > MAX_IDLE_ANSWERS {
                break Err(NodeError::unreachable(
                    &peer,
                    "it kept answering busy or without the pieces it listed",
                ));
            }
        }
        if ask_pieces {
            polled = std::time::Instant::now();
            match pieces_of(ctx, &peer).await {
                Ok(Some(now)) => {
                    lock(sched).add_have(have.as_ref(), &now);
                    have = Some(now);
                }
                Ok(None) => {
                    if let Some(old) = have.take() {
                        lock(sched).remove_have(&old);
                    }
                }
                Err(e) => break Err(e),
            }
        }
    };
    {
        let mut s = lock(sched);
        if let Some(h) = &have {
            s.remove_have(h);
        }
        if result.is_err() {
            s.tallies[me].failed = true;
        }
    }
    if let Err(e) = &result {
        tracing::warn!(peer = %peer.name, error = %e, "peer dropped from this download");
    }
    result
}

/// Requests one run of consecutive pieces and hands each complete piece to
/// the verifier; `sent` counts the pieces handed over.
async fn fetch_run(
    ctx: &Ctx<'_>,
    me: usize,
    peer: &PeerRecord,
    run: &[u64],
    sent: &mut usize,
) -> Result<(), RunError> {
    let entry = ctx.entry;
    let protocol = |reason: String| {
        RunError::Failed(NodeError::Protocol {
            peer: peer.peer_id,
            reason,
        })
    };
    let (start, _) = pieces::piece_range(entry.size, run[0]);
    let (_, end) = pieces::piece_range(entry.size, run[run.len() - 1]);
    let mut resp = ctx
        .client
        .content(peer, entry.content_id, Some((start, end)))
        .await?;
    let expected_range = format!("bytes {start}-{}/{}", end - 1, entry.size);
    let whole = start == 0 && end == entry.size;
    match resp.status().as_u16() {
        206 if resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            == Some(expected_range.as_str()) => {}
        200 if whole => {}
        200 => return Err(protocol("ignores Range requests".into())),
        503 => return Err(RunError::Busy),
        416 => return Err(RunError::NotHeld),
        404 => {
            return Err(RunError::Failed(NodeError::PeerRefused {
                peer: peer.peer_id,
                status: 404,
                message: "it no longer has the content".into(),
            }));
        }
        _ => {
            return Err(protocol(format!(
                "answered a request for {expected_range:?} wrongly"
            )));
        }
    }
    if let Some(len) = resp.content_length()
        && len != end - start
    {
        return Err(protocol(format!(
            "announced {len} bytes for a range of {}",
            end - start
        )));
    }
    let mut k = 0usize;
    let mut need = piece_len(entry.size, run[0]);
    let mut segments: Vec<Bytes> = Vec::new();
    let mut got = 0u64;
    loop {
        // A peer that stops sending gives its pieces back to the others.
        let next = tokio::time::timeout(STALL, resp.chunk())
            .await
            .map_err(|_| {
                RunError::Failed(NodeError::unreachable(
                    peer,
                    format!("it sent nothing for {}s", STALL.as_secs()),
                ))
            })?
            .map_err(|e| RunError::Failed(unreachable(peer, &e)))?;
        let Some(mut chunk) = next else { break };
        got += chunk.len() as u64;
        if got > end - start {
            return Err(protocol(format!(
                "sent more than the {} bytes asked for",
                end - start
            )));
        }
        ctx.progress.advance(chunk.len() as u64);
        ctx.client.download_limit().take(chunk.len()).await;
        while !chunk.is_empty() {
            if need == 0 {
                return Err(protocol("sent bytes past the pieces asked for".into()));
            }
            let take = need.min(chunk.len() as u64) as usize;
            segments.push(chunk.split_to(take));
            need -= take as u64;
            if need == 0 {
                let piece = Piece {
                    index: run[k],
                    data: Arc::new(std::mem::take(&mut segments)),
                };
                lock(&ctx.sched).received.insert(run[k]);
                if ctx
                    .verify_tx
                    .send(FromPeer { piece, peer: me })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                k += 1;
                *sent = k;
                if lock(&ctx.sched).dropped.contains(&me) {
                    return Ok(()); // caught sending a bad piece: stop at once
                }
                need = run.get(k).map_or(0, |&i| piece_len(entry.size, i));
            }
        }
    }
    if got != end - start {
        return Err(RunError::Failed(NodeError::unreachable(
            peer,
            format!("connection ended after {got} of {} bytes", end - start),
        )));
    }
    Ok(())
}

/// The pieces among `missing` whose bytes in `file` already verify.
fn recover(file: &File, verifier: &Verifier, missing: &[u64]) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; pieces::PIECE_SIZE as usize];
    let size = verifier.size();
    missing
        .iter()
        .copied()
        .filter(|&i| {
            let (start, end) = pieces::piece_range(size, i);
            let piece = &mut buf[..(end - start) as usize];
            file.read_exact_at(piece, start).is_ok() && verifier.check(i, &[&*piece])
        })
        .collect()
}

fn unreachable(peer: &PeerRecord, e: &reqwest::Error) -> NodeError {
    NodeError::unreachable(peer, describe(e))
}

/// Writes every buffer at `offset` with as few system calls as possible.
fn write_all_at(file: &File, bufs: &[Bytes], mut offset: u64) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match rustix::io::pwritev(file, rest, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                std::io::IoSlice::advance_slices(&mut rest, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Makes written pieces durable on its own thread: it syncs the file, then
/// records the pieces as verified, so the record never claims a piece the
/// disk might not have, and disk writeback overlaps the download.
struct Flusher {
    tx: std::sync::mpsc::Sender<Vec<u64>>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    fn start(file: File, mut state: PieceState, path: PathBuf) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u64>>();
        let thread = std::thread::spawn(move || {
            let mut saved = std::time::Instant::now();
            let mut dirty = false;
            while let Ok(mut pieces) = rx.recv() {
                // Coalesce whatever queued up while the last sync ran.
                while let Ok(more) = rx.try_recv() {
                    pieces.extend(more);
                }
                if pieces.is_empty() {
                    continue;
                }
                file.sync_data()?;
                state.mark(pieces);
                dirty = true;
                // The record is a shortcut for resuming (pieces it lists are
                // not re-checked); pieces written since are found by
                // re-verifying the .part, so saving it now and then is enough.
                if saved.elapsed() >= STATE_EVERY {
                    state.save(&path)?;
                    saved = std::time::Instant::now();
                    dirty = false;
                }
            }
            if dirty {
                state.save(&path)?;
            }
            Ok(())
        });
        Self { tx, thread }
    }

    fn flush(&mut self, pieces: Vec<u64>) {
        let _ = self.tx.send(pieces);
    }

    fn finish(self) -> std::io::Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("flusher panicked")))
    }
}

/// Gives a verified `.part` its final name without ever replacing a file,
/// and makes the new name durable.
fn publish(part: &Path, target: &Path) -> Result<()> {
    link_into_place(part, target)?;
    sync_dir(target)
}

/// Gives a verified `.part` its final name without ever replacing a file;
/// the caller makes the folder durable.
pub(crate) fn link_into_place(part: &Path, target: &Path) -> Result<()> {
    match std::fs::hard_link(part, target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(part);
            return Err(NodeError::Exists(target.to_owned()));
        }
        // Filesystems without hard links: check, then rename (a small race
        // with another writer of the same name, which we accept there).
        Err(_) => {
            if target.symlink_metadata().is_ok() {
                let _ = std::fs::remove_file(part);
                return Err(NodeError::Exists(target.to_owned()));
            }
            std::fs::rename(part, target).map_err(NodeError::file("rename into place", target))?;
            return Ok(());
        }
    }
    std::fs::remove_file(part).map_err(NodeError::file("remove", part))
}

/// Makes the entries of the folder holding `target` durable.
pub(crate) fn sync_dir(target: &Path) -> Result<()> {
    if let Some(dir) = target.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_are_single_safe_components() {
        assert_eq!(local_name("a/b/c.txt").unwrap(), "c.txt");
        assert_eq!(local_name("x").unwrap(), "x");
        for bad in [
            "",
            "a/",
            "..",
            "a/..",
            ".",
            "a\\b",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
            "a\u{202e}txt.exe",
            "x\u{200b}",
            "\x1b]0;title\x07",
        ] {
            assert!(local_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn provider_chosen_names_are_never_dotfiles() {
        assert_eq!(provider_name(".bash_profile").unwrap(), "_.bash_profile");
        assert_eq!(provider_name("x/.ssh").unwrap(), "_.ssh");
        assert_eq!(provider_name("a\u{202e}fdp.exe").unwrap(), "a_fdp.exe");
        assert_eq!(provider_name("report.pdf").unwrap(), "report.pdf");
        assert!(provider_name("..").is_err());
        assert!(provider_name("a\\b").is_err());
    }
}
