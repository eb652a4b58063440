//! Downloads: bytes from a peer into `NAME.part`, checked against the
//! content id, fsync'd, and only then given their final name.
//!
//! Nothing unverified ever sits at the final path, and an existing file is
//! never replaced: the final step is a hard link (which fails if the name
//! is taken) followed by removing the `.part`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use shoal_core::ContentId;
use shoal_core::wire::{FileEntry, PeerRecord};

use crate::book::PeerBook;
use crate::error::{NodeError, Result};
use crate::index::PART_SUFFIX;
use crate::peer_client::PeerClient;
use crate::tracker_client::describe;

/// Chunks buffered between the network and the disk writer.
const PIPE_DEPTH: usize = 64;
/// Write buffer of the disk writer.
const WRITE_BUF: usize = 1024 * 1024;

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

    // Hashing and writing run on their own thread so the network never waits for the disk.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(PIPE_DEPTH);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<ContentId> {
        let mut hasher = blake3::Hasher::new();
        let mut out = BufWriter::with_capacity(WRITE_BUF, file);
        while let Some(chunk) = rx.blocking_recv() {
            hasher.update(&chunk);
            out.write_all(&chunk)?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(hasher.finalize().into())
    });

    let mut got: u64 = 0;
    let net: Result<()> = async {
        while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(peer, &e))? {
            got += chunk.len() as u64;
            if got > entry.size {
                return Err(protocol(format!(
                    "sent more than the {} bytes of the file",
                    entry.size
                )));
            }
            progress.advance(chunk.len() as u64);
            if tx.send(chunk).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| NodeError::Internal(format!("disk writer stopped: {e}")))?
        .map_err(NodeError::file("write", part));
    net?;
    let actual = written?;
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

fn unreachable(peer: &PeerRecord, e: &reqwest::Error) -> NodeError {
    NodeError::PeerUnreachable {
        peer: peer.peer_id,
        name: peer.name.clone(),
        addrs: peer.addrs.join(", "),
        reason: describe(e),
    }
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
