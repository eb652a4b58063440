//! Folders: `get PEER:DIR/`. Small files come many to a request (a
//! bundle, see [`crate::server::MAX_BUNDLE`]) and are made durable
//! together; larger ones go through the piece engine a few at a time.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use shoal_core::ContentId;
use shoal_core::wire::{FileEntry, PeerRecord};

use crate::book::PeerBook;
use crate::download::Control;

use crate::download::{Progress, Swarm, download_until, link_into_place, listing, local_name};
use crate::error::{NodeError, PeerError, Result};
use crate::index::PART_SUFFIX;
use crate::peer_client::PeerClient;
use crate::reputation::Tally;
use crate::server::{MAX_BUNDLE, MAX_BUNDLE_FILE};

/// Large files fetched at once by a folder download.
const FOLDER_PARALLEL: usize = 4;
/// Bundles in flight at once.
const BUNDLES_AT_ONCE: usize = 4;
/// Most bytes asked for in one bundle.
const BUNDLE_BYTES: u64 = 4 * 1024 * 1024;
/// Times a bundle is asked for again while the peer is busy.
const BUSY_RETRIES: u32 = 60;

/// `get PEER:DIR/`: every file the peer shares under `DIR`, into
/// `out_dir/<last part of DIR>/`, keeping the tree. Small files come in
/// bundles of hundreds per request over a few connections, are checked
/// against their content ids, written, synced to disk together and only
/// then given their names; larger files go through the piece engine. A file
/// that is already there with the same content is skipped, so an
/// interrupted folder download picks up where it stopped. The files are not
/// offered to other peers while they download (they are small and many);
/// what the peer does is recorded in `swarm`'s reputation.
///
/// It stops when `stop` is cancelled (with [`NodeError::Stopped`], once
/// every file download in flight has ended; files already complete stay).
#[allow(clippy::too_many_arguments)]
pub async fn get_folder_until(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
    dir: &str,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
    stop: &Control,
) -> Result<PathBuf> {
    let (peer, files) = listing(book, client, peer_query).await?;
    download_folder(client, peer, files, dir, out_dir, progress, swarm, stop).await
}

/// [`get_folder_until`] once the peer and its listing are known.
#[allow(clippy::too_many_arguments)]
pub async fn download_folder(
    client: &PeerClient,
    peer: PeerRecord,
    files: Vec<FileEntry>,
    dir: &str,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
    stop: &Control,
) -> Result<PathBuf> {
    let dir = dir.trim_matches('/');
    let root_name = local_name(dir)?;
    let prefix = format!("{dir}/");
    let files: Vec<FileEntry> = files
        .into_iter()
        .filter(|f| f.name.starts_with(&prefix))
        .collect();
    if files.is_empty() {
        return Err(NodeError::NoSuchFile {
            peer: peer.peer_id,
            peer_short: peer.name.clone(),
            path: prefix,
        });
    }
    let root = out_dir.join(&root_name);
    let (plan, skipped) = plan_folder(files, &prefix, &root);
    for name in &skipped {
        tracing::warn!(name = %name, "skipping a file whose name cannot be used here");
    }
    let total: u64 = plan
        .iter()
        .fold(0u64, |sum, (f, _)| sum.saturating_add(f.size));
    progress.start(&format!("{root_name}/ ({} files)", plan.len()), total);

    // What an earlier run already fetched is skipped.
    let (plan, done_bytes) = tokio::task::spawn_blocking(move || {
        let mut todo = Vec::new();
        let mut done = 0;
        for (entry, dir) in plan {
            if already_there(&dir, &entry) {
                done += entry.size;
            } else {
                todo.push((entry, dir));
            }
        }
        (todo, done)
    })
    .await
    .map_err(|e| NodeError::Internal(format!("checking the folder stopped: {e}")))?;
    progress.advance(done_bytes);

    let (small, mut large): (Vec<_>, Vec<_>) = plan
        .into_iter()
        .partition(|(f, _)| f.size <= MAX_BUNDLE_FILE);
    let bundles = Bundles {
        client,
        peer: &peer,
        progress,
        lying: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
    };
    let fetching = futures_util::stream::iter(batches(small))
        .map(|batch| bundles.fetch(batch))
        .buffer_unordered(BUNDLES_AT_ONCE)
        .collect::<Vec<Outcome>>();
    // A bundle in flight is dropped: its files are written to temporary
    // names only once whole, so nothing half-done is left at a final name.
    let outcomes = tokio::select! {
        o = fetching => o,
        () = stop.cancelled() => return Err(NodeError::Stopped),
    };
    let mut results: Vec<Result<PathBuf>> = Vec::new();
    for o in outcomes {
        results.extend(o.results);
        large.extend(o.too_large);
    }
    let tally = bundles
        .tally
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(rep) = swarm.reputation.clone() {
        let id = peer.peer_id;
        let _ = tokio::task::spawn_blocking(move || rep.record(&[(id, tally)])).await;
    }

    if !bundles.lying.load(Ordering::Relaxed) {
        let quiet = Forward(progress);
        let peers = [peer];
        let swarm = &Swarm {
            reputation: swarm.reputation.clone(),
            ..Swarm::default()
        };
        let more: Vec<Result<PathBuf>> = futures_util::stream::iter(large)
            .map(|(entry, target_dir)| {
                let (peers, quiet) = (&peers, &quiet);
                async move {
                    download_until(client, peers, &entry, &target_dir, quiet, swarm, stop).await
                }
            })
            .buffer_unordered(FOLDER_PARALLEL)
            .collect()
            .await;
        results.extend(more);
    }
    progress.finish();
    if stop.is_cancelled() {
        return Err(NodeError::Stopped);
    }
    let failed: Vec<NodeError> = results.into_iter().filter_map(|r| r.err()).collect();
    let n = failed.len();
    // Bad data first: it is the reason to distrust the rest.
    let first = failed
        .iter()
        .position(|e| matches!(e, NodeError::BadPiece { .. }))
        .unwrap_or(0);
    match failed.into_iter().nth(first) {
        None if !skipped.is_empty() => Err(NodeError::SkippedNames {
            count: skipped.len(),
            example: skipped[0].clone(),
            folder: root,
        }),
        None => Ok(root),
        Some(e) => {
            tracing::warn!(failed = n, "some files of the folder were not downloaded");
            Err(e)
        }
    }
}

/// Small files grouped into bundles: at most [`MAX_BUNDLE`] files and about
/// [`BUNDLE_BYTES`] each.
fn batches(files: Vec<(FileEntry, PathBuf)>) -> Vec<Vec<(FileEntry, PathBuf)>> {
    let mut out: Vec<Vec<(FileEntry, PathBuf)>> = Vec::new();
    let mut bytes = 0;
    for f in files {
        let full = out
            .last()
            .is_none_or(|b| b.len() >= MAX_BUNDLE / 2 || bytes + f.0.size > BUNDLE_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += f.0.size;
        if let Some(b) = out.last_mut() {
            b.push(f);
        }
    }
    out
}

/// What the bundles of one folder download share.
struct Bundles<'a> {
    client: &'a PeerClient,
    peer: &'a PeerRecord,
    progress: &'a dyn Progress,
    /// Set once the peer sent bytes that do not match their content id:
    /// nothing more is asked of it.
    lying: AtomicBool,
    tally: Mutex<Tally>,
}

/// How one bundle went.
#[derive(Default)]
struct Outcome {
    results: Vec<Result<PathBuf>>,
    /// Files the peer would not put in a bundle: fetched by range instead.
    too_large: Vec<(FileEntry, PathBuf)>,
}

impl Bundles<'_> {
    /// Fetches one bundle, checks every file against its content id, and
    /// writes the good ones into place.
    async fn fetch(&self, batch: Vec<(FileEntry, PathBuf)>) -> Outcome {
        if self.lying.load(Ordering::Relaxed) {
            return Outcome::default();
        }
        let started = std::time::Instant::now();
        let body = match self.receive(&batch).await {
            Ok(b) => b,
            Err(e) => {
                self.tally_mut().failed = true;
                tracing::warn!(peer = %self.peer.name, error = %e, "a bundle of files failed");
                // Each file of the bundle failed the same way.
                let mut results: Vec<Result<PathBuf>> =
                    batch.iter().skip(1).map(|_| Err(again(&e))).collect();
                results.insert(0, Err(e));
                return Outcome {
                    results,
                    too_large: Vec::new(),
                };
            }
        };
        let mut outcome = Outcome::default();
        let mut good: Vec<(PathBuf, Bytes)> = Vec::new();
        let mut rest = Bytes::from(body);
        for (entry, dir) in batch {
            let frame = match next_frame(&mut rest, &entry) {
                Ok(f) => f,
                Err(reason) => {
                    outcome
                        .results
                        .push(Err(NodeError::protocol(self.peer.peer_id, reason)));
                    self.tally_mut().failed = true;
                    continue;
                }
            };
            match frame {
                Frame::Data(data) => {
                    if ContentId::of(&data) != entry.content_id {
                        self.lying.store(true, Ordering::Relaxed);
                        let mut t = self.tally_mut();
                        t.bad_pieces += 1;
                        drop(t);
                        outcome.results.push(Err(NodeError::BadPiece {
                            peer: self.peer.peer_id,
                            name: self.peer.name.clone(),
                            piece: 0,
                        }));
                        continue;
                    }
                    self.progress.advance(entry.size);
                    {
                        let mut t = self.tally_mut();
                        t.good_pieces += 1;
                        t.bytes += entry.size;
                    }
                    match local_name(&entry.name) {
                        Ok(name) => good.push((dir.join(name), data)),
                        Err(e) => outcome.results.push(Err(e)),
                    }
                }
                Frame::TooLarge => outcome.too_large.push((entry, dir)),
                Frame::Missing => outcome.results.push(Err(NodeError::refused(
                    self.peer.peer_id,
                    404,
                    format!("{} is no longer shared", entry.name),
                ))),
            }
        }
        self.tally_mut().busy += started.elapsed();
        match tokio::task::spawn_blocking(move || write_batch(good)).await {
            Ok(written) => outcome.results.extend(written),
            Err(e) => outcome.results.push(Err(NodeError::Internal(format!(
                "writing a bundle stopped: {e}"
            )))),
        }
        outcome
    }

    fn tally_mut(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The whole answer to a bundle request (waiting while the peer is
    /// busy), refusing one longer than the files asked for.
    async fn receive(&self, batch: &[(FileEntry, PathBuf)]) -> Result<Vec<u8>> {
        let ids: Vec<ContentId> = batch.iter().map(|(f, _)| f.content_id).collect();
        let max: u64 = batch.iter().fold(0u64, |sum, (f, _)| {
            sum.saturating_add(
                f.size
                    .saturating_add(shoal_core::wire::bundle::FRAME_HEAD as u64),
            )
        });
        let mut tries = 0;
        let mut resp = loop {
            let resp = self.client.bundle(self.peer, &ids).await?;
            match resp.status().as_u16() {
                200 => break resp,
                503 if tries < BUSY_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(
                        250 + fastrand::u64(..250),
                    ))
                    .await;
                }
                _ => return Err(crate::peer_client::refusal(self.peer, resp).await),
            }
        };
        let mut body = Vec::with_capacity(max.min(BUNDLE_BYTES * 2) as usize);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| NodeError::unreachable_by(self.peer, e.to_string(), Some(Box::new(e))))?
        {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(NodeError::protocol(
                    self.peer.peer_id,
                    "sent more than the files of a bundle",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// An error of the same kind and message as `e`, for the other files a
/// failed request was carrying.
fn again(e: &NodeError) -> NodeError {
    match e {
        NodeError::Peer(PeerError::Protocol { peer, reason }) => {
            NodeError::protocol(*peer, reason.clone())
        }
        NodeError::Peer(PeerError::Refused {
            peer,
            status,
            message,
        }) => NodeError::refused(*peer, *status, message.clone()),
        NodeError::Peer(PeerError::Unreachable {
            peer,
            name,
            addrs,
            reason,
            ..
        }) => NodeError::Peer(PeerError::Unreachable {
            peer: *peer,
            name: name.clone(),
            addrs: addrs.clone(),
            reason: reason.clone(),
            source: None,
        }),
        other => NodeError::Internal(other.to_string()),
    }
}

pub(crate) use shoal_core::wire::bundle::Frame;

/// Takes the next frame, for `entry`, off the front of `rest`.
pub(crate) fn next_frame(rest: &mut Bytes, entry: &FileEntry) -> Result<Frame<Bytes>, String> {
    shoal_core::wire::bundle::decode(rest, entry.size).map_err(|e| match e {
        shoal_core::wire::bundle::FrameError::WrongLength { got, size } => format!(
            "sent {got} bytes for {} ({size} bytes) in a bundle",
            shoal_core::text::escape(&entry.name)
        ),
        e => e.to_string(),
    })
}

/// Writes verified files: each to its `.part`, then all synced to disk at
/// once, then each given its final name (never replacing a file), then
/// their folders synced.
fn write_batch(files: Vec<(PathBuf, Bytes)>) -> Vec<Result<PathBuf>> {
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    let mut parts: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut results = Vec::new();
    let mut any: Option<std::fs::File> = None;
    for (target, data) in files {
        let Some(dir) = target.parent().map(Path::to_path_buf) else {
            continue;
        };
        if !made.contains(&dir) {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                results.push(Err(NodeError::file("create folder", &dir)(e)));
                continue;
            }
            made.insert(dir.clone());
        }
        if target.symlink_metadata().is_ok() {
            results.push(Err(NodeError::Exists(target)));
            continue;
        }
        let mut part = target.clone().into_os_string();
        part.push(PART_SUFFIX);
        let part = PathBuf::from(part);
        let written = std::fs::File::create(&part).and_then(|mut f| {
            f.write_all(&data)?;
            Ok(f)
        });
        match written {
            Ok(f) => {
                any.get_or_insert(f);
                parts.push((part, target));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                results.push(Err(NodeError::file("write", &part)(e)));
            }
        }
    }
    // One sync for the whole batch instead of one per file.
    if let Some(f) = &any
        && shoal_fs::durable::sync_files(f, parts.iter().map(|(p, _)| p.as_path())).is_err()
    {
        for (part, _) in parts.drain(..) {
            let _ = std::fs::remove_file(&part);
            results.push(Err(NodeError::File {
                action: "sync",
                path: part,
                source: std::io::Error::other("the disk would not sync"),
            }));
        }
    }
    for (part, target) in parts {
        results.push(link_into_place(&part, &target).map(|()| target));
    }
    for dir in made {
        shoal_fs::durable::sync_dir(&dir);
    }
    results
}

/// Where each file of a folder goes: under `root`, by its path below
/// `prefix`, every component checked, so a hostile listing cannot place a
/// file anywhere else. Files with a name that cannot be used here (a path
/// trick, a backslash, a hidden character, a size beyond Shoal's limit)
/// are left out and returned, shown escaped, so the rest still comes.
fn plan_folder(
    files: Vec<FileEntry>,
    prefix: &str,
    root: &Path,
) -> (Vec<(FileEntry, PathBuf)>, Vec<String>) {
    let mut plan = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        let Some(rel) = f.name.strip_prefix(prefix) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let mut target_dir = root.to_owned();
        let mut ok = f.size <= shoal_core::wire::MAX_FILE_SIZE;
        for part in &parts[..parts.len() - 1] {
            match local_name(part) {
                Ok(p) => target_dir.push(p),
                Err(_) => ok = false,
            }
        }
        ok &= local_name(parts[parts.len() - 1]).is_ok();
        if ok {
            plan.push((f, target_dir));
        } else {
            skipped.push(shoal_core::text::bounded(&f.name, 300));
        }
    }
    (plan, skipped)
}

/// Whether `dir` already holds exactly `entry`'s bytes under its name.
fn already_there(dir: &Path, entry: &FileEntry) -> bool {
    let Ok(name) = local_name(&entry.name) else {
        return false;
    };
    let target = dir.join(name);
    let target = target.as_path();
    std::fs::metadata(target).is_ok_and(|m| m.is_file() && m.len() == entry.size)
        && crate::index::hash_file(target).is_ok_and(|c| c == entry.content_id)
}

/// Passes byte counts on to a folder's single bar, ignoring per-file starts.
struct Forward<'a>(&'a dyn Progress);

impl Progress for Forward<'_> {
    fn advance(&self, n: u64) {
        self.0.advance(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_plans_stay_inside_the_target() {
        let entry = |name: &str| FileEntry {
            name: name.into(),
            size: 0,
            content_id: ContentId::of(b""),
            modified: 0,
            encrypted: false,
        };
        let root = Path::new("/out/docs");
        let (plan, skipped) = plan_folder(
            vec![entry("docs/a"), entry("docs/x/y/b"), entry("other/c")],
            "docs/",
            root,
        );
        assert!(skipped.is_empty());
        let dirs: Vec<&Path> = plan.iter().map(|(_, d)| d.as_path()).collect();
        assert_eq!(dirs, [Path::new("/out/docs"), Path::new("/out/docs/x/y")]);
        for evil in [
            "docs/../../etc/passwd",
            "docs/x/../../y",
            "docs//abs",
            "docs/a\\..\\b/c",
            "docs/nul\0/x",
            "docs/./x",
        ] {
            let (plan, skipped) = plan_folder(vec![entry(evil), entry("docs/ok")], "docs/", root);
            assert_eq!(plan.len(), 1, "{evil:?} was planned");
            assert_eq!(skipped.len(), 1);
        }
    }
}
