//! Downloads: bytes from a peer into `NAME.part`, checked against the
//! content id, fsync'd, and only then given their final name.
//!
//! Nothing unverified ever sits at the final path, and an existing file is
//! never replaced: the final step is a hard link (which fails if the name
//! is taken) followed by removing the `.part`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use shoal_core::ContentId;
use shoal_core::wire::{FileEntry, PeerRecord};

use crate::book::PeerBook;
use crate::error::{NodeError, Result};
use crate::index::PART_SUFFIX;
use crate::peer_client::PeerClient;
use crate::tracker_client::describe;

/// Batches buffered between the network and the hasher and writer.
const PIPE_DEPTH: usize = 16;
/// Bytes handed over in one batch (fewer thread wake-ups than one chunk each).
const BATCH: usize = 256 * 1024;
/// Bytes written between two background flushes to disk.
const FLUSH_EVERY: usize = 8 * 1024 * 1024;

/// Receives progress of a transfer (a progress bar, a GUI, nothing).
pub trait Progress: Send + Sync {
    /// The transfer of `name`, `total` bytes, begins.
    fn start(&self, _name: &str, _total: u64) {}
    /// `n` more bytes arrived.
    fn advance(&self, _n: u64) {}
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
        || name.chars().any(char::is_control);
    if bad {
        return Err(NodeError::UnsafeName(remote.chars().take(300).collect()));
    }
    Ok(name.to_owned())
}

/// `get PEER:PATH`: resolves the peer, finds the file in its listing and
/// downloads it into `out_dir`.
pub async fn get_path(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
    path: &str,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let (peer, source) = book.resolve(peer_query).await?;
    if let crate::book::Source::Cache(why) = &source {
        tracing::warn!("using the cached address of {}: {why}", peer.name);
    }
    let files = client.files(&peer).await?;
    let wanted = path.trim_start_matches('/');
    let entry = files
        .into_iter()
        .find(|f| f.name == wanted)
        .ok_or_else(|| NodeError::NoSuchFile {
            peer: peer.peer_id,
            peer_short: peer.name.clone(),
            path: path.to_owned(),
        })?;
    download(client, &peer, &entry, out_dir, progress).await
}

/// `get CONTENT_ID`: asks the tracker who has it and downloads from the
/// first provider that lists it.
pub async fn get_content(
    book: &PeerBook,
    client: &PeerClient,
    cid: ContentId,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let providers = book.tracker().providers(cid).await?;
    let mut last = NodeError::NoProvider(cid);
    for peer in providers {
        let entry = match client.files(&peer).await {
            Ok(files) => files.into_iter().find(|f| f.content_id == cid),
            Err(e) => {
                tracing::warn!(peer = %peer.name, error = %e, "provider unreachable");
                last = e;
                continue;
            }
        };
        let Some(entry) = entry else { continue };
        match download(client, &peer, &entry, out_dir, progress).await {
            Ok(p) => return Ok(p),
            Err(e @ (NodeError::Exists(_) | NodeError::File { .. })) => return Err(e),
            Err(e) => {
                tracing::warn!(peer = %peer.name, error = %e, "download from provider failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// Downloads `entry` from `peer` into `out_dir`.
pub async fn download(
    client: &PeerClient,
    peer: &PeerRecord,
    entry: &FileEntry,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let name = local_name(&entry.name)?;
    let target = out_dir.join(&name);
    if target.symlink_metadata().is_ok() {
        return Err(NodeError::Exists(target));
    }
    std::fs::create_dir_all(out_dir).map_err(NodeError::file("create folder", out_dir))?;
    let part = out_dir.join(format!("{name}{PART_SUFFIX}"));
    let file = open_part(&part)?;
    if let Err(e) = reserve(&file, &part, entry.size) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    progress.start(&name, entry.size);
    let result = receive(client, peer, entry, file, &part, progress).await;
    progress.finish();
    match result {
        Ok(()) => {
            publish(&part, &target)?;
            tracing::info!(peer = %peer.name, file = %target.display(), size = entry.size, "downloaded and verified");
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

fn open_part(part: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)
        .map_err(NodeError::file("create", part))?;
    if file.try_lock().is_err() {
        return Err(NodeError::File {
            action: "write (another shoal download is writing it)",
            path: part.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
        });
    }
    file.set_len(0).map_err(NodeError::file("truncate", part))?;
    Ok(file)
}

/// Reserves disk space for the whole file up front: a full disk is
/// reported before the download starts, and the filesystem lays the file
/// out in one go instead of block by block.
fn reserve(file: &File, part: &Path, size: u64) -> Result<()> {
    #[cfg(target_os = "linux")]
    if size > 0 {
        use rustix::fs::{FallocateFlags, fallocate};
        match fallocate(file, FallocateFlags::KEEP_SIZE, 0, size) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOSPC) => {
                return Err(NodeError::File {
                    action: "make room for",
                    path: part.to_owned(),
                    source: std::io::Error::from(std::io::ErrorKind::StorageFull),
                });
            }
            // Filesystems that cannot preallocate simply grow as we write.
            Err(_) => {}
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, part, size);
    Ok(())
}

async fn receive(
    client: &PeerClient,
    peer: &PeerRecord,
    entry: &FileEntry,
    file: File,
    part: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let protocol = |reason: String| NodeError::Protocol {
        peer: peer.peer_id,
        reason,
    };
    let mut resp = client.content(peer, entry.content_id, None).await?;
    if let Some(len) = resp.content_length()
        && len != entry.size
    {
        return Err(protocol(format!(
            "announced {len} bytes for a file of {}",
            entry.size
        )));
    }

    // Hashing and writing each run on their own thread, so the network
    // never waits for the disk and the two share the cores; a flusher
    // pushes written data to disk as we go, so the final fsync has little
    // left to do.
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(PIPE_DEPTH);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(PIPE_DEPTH);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        while let Some(batch) = hash_rx.blocking_recv() {
            for chunk in batch.iter() {
                hasher.update(chunk);
            }
        }
        ContentId::from(hasher.finalize())
    });
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let flusher = Flusher::start(file.try_clone()?);
        let mut file = file;
        let mut unflushed = 0usize;
        while let Some(batch) = rx.blocking_recv() {
            write_all_vectored(&mut file, &batch)?;
            unflushed += batch.iter().map(Bytes::len).sum::<usize>();
            if unflushed >= FLUSH_EVERY {
                flusher.poke();
                unflushed = 0;
            }
        }
        flusher.finish()?;
        file.sync_all()
    });

    let mut got: u64 = 0;
    let net: Result<()> = async {
        let mut batch = Vec::new();
        let mut batched = 0usize;
        loop {
            let chunk = resp.chunk().await.map_err(|e| unreachable(peer, &e))?;
            let done = chunk.is_none();
            if let Some(chunk) = chunk {
                got += chunk.len() as u64;
                if got > entry.size {
                    return Err(protocol(format!(
                        "sent more than the {} bytes of the file",
                        entry.size
                    )));
                }
                progress.advance(chunk.len() as u64);
                batched += chunk.len();
                batch.push(chunk);
            }
            if batched >= BATCH || (done && !batch.is_empty()) {
                let b = Arc::new(std::mem::take(&mut batch));
                batched = 0;
                if hash_tx.send(b.clone()).await.is_err() || tx.send(b).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            if done {
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    drop(hash_tx);
    let written = writer
        .await
        .map_err(|e| NodeError::Internal(format!("disk writer stopped: {e}")))?
        .map_err(NodeError::file("write", part));
    let actual = hasher
        .await
        .map_err(|e| NodeError::Internal(format!("hasher stopped: {e}")))?;
    net?;
    written?;
    if got != entry.size {
        return Err(protocol(format!(
            "connection ended after {got} of {} bytes",
            entry.size
        )));
    }
    if actual != entry.content_id {
        return Err(NodeError::Integrity {
            expected: entry.content_id,
            actual,
        });
    }
    Ok(())
}

/// Writes every buffer with as few system calls as possible and no copy.
fn write_all_vectored(file: &mut File, bufs: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Flushes a file to disk on its own thread whenever poked, so disk
/// writeback overlaps the download instead of following it.
struct Flusher {
    poke: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    fn start(file: File) -> Self {
        // Capacity 1: pokes while a flush runs coalesce into one more flush.
        let (poke, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                file.sync_data()?;
            }
            Ok(())
        });
        Self { poke, thread }
    }

    fn poke(&self) {
        let _ = self.poke.try_send(());
    }

    fn finish(self) -> std::io::Result<()> {
        drop(self.poke);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("flusher panicked")))
    }
}

fn unreachable(peer: &PeerRecord, e: &reqwest::Error) -> NodeError {
    NodeError::unreachable(peer, describe(e))
}

/// Gives a verified `.part` its final name without ever replacing a file.
fn publish(part: &Path, target: &Path) -> Result<()> {
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
            return sync_dir(target);
        }
    }
    std::fs::remove_file(part).map_err(NodeError::file("remove", part))?;
    sync_dir(target)
}

fn sync_dir(target: &Path) -> Result<()> {
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
        ] {
            assert!(local_name(bad).is_err(), "{bad:?}");
        }
    }
}
