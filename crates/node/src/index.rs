//! The share index: which files a node offers, under which names and
//! content ids.
//!
//! Shares are folders the user names. With one share, names are paths
//! relative to it; with several, each name starts with its share's folder
//! name, so nothing collides. Symlinks are followed only when they resolve
//! to a file inside the same share; links that leave it, directory links
//! and `*.part` files (downloads in progress, with their `.part.state`)
//! are never listed. Content ids
//! are cached in the node database by path, size and mtime, and a scan
//! hashes only new or changed files, large ones with all cores.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use shoal_core::ContentId;
use shoal_core::wire::FileEntry;
use tokio::sync::watch;

use crate::db::{NodeDb, Stamp};
use crate::error::{NodeError, Result};

/// Suffix of downloads in progress, never shared.
pub const PART_SUFFIX: &str = ".part";

/// Whether a file is something Shoal is still writing: a download's
/// `.part` and its records, or a staged encryption or copy
/// (`.shoal-*.tmp`). Such files are never shared.
pub fn is_in_progress(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.ends_with(PART_SUFFIX)
        || name.ends_with(crate::pieces::STATE_SUFFIX)
        || name.ends_with(".state-new")
        || (name.starts_with(".shoal-") && name.ends_with(".tmp"))
}
/// Read size when hashing; big enough to keep every core busy.
const HASH_BUF: usize = 8 * 1024 * 1024;

/// A shared file: its public entry and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFile {
    /// What `GET /v1/files` shows.
    pub entry: FileEntry,
    /// The path on disk.
    pub path: PathBuf,
    /// The share folder it belongs to (canonical).
    pub root: PathBuf,
    /// Size and mtime the content id is valid for.
    pub stamp: Stamp,
}

/// An immutable view of the index at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    files: BTreeMap<String, SharedFile>,
    by_cid: HashMap<ContentId, String>,
}

impl Snapshot {
    /// All files, in name order.
    pub fn files(&self) -> impl Iterator<Item = &SharedFile> {
        self.files.values()
    }

    /// A file by content id.
    pub fn by_content(&self, cid: &ContentId) -> Option<&SharedFile> {
        self.by_cid.get(cid).and_then(|n| self.files.get(n))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when nothing is shared.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every distinct content id.
    pub fn content_ids(&self) -> Vec<ContentId> {
        let mut v: Vec<ContentId> = self.by_cid.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

struct Root {
    path: PathBuf,
    prefix: Option<String>,
}

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    /// Files listed after the scan.
    pub files: usize,
    /// Files whose content id had to be computed.
    pub hashed: usize,
    /// Bytes hashed.
    pub hashed_bytes: u64,
    /// Whether the listing changed.
    pub changed: bool,
}

/// The live index of a node's shares.
pub struct ShareIndex {
    roots: Vec<Root>,
    db: Arc<NodeDb>,
    snapshot: RwLock<Arc<Snapshot>>,
    version: watch::Sender<u64>,
}

impl ShareIndex {
    /// An empty index over these share folders (each must exist).
    pub fn new(shares: &[PathBuf], db: Arc<NodeDb>) -> Result<Self> {
        let mut roots = Vec::new();
        let mut used: HashMap<String, usize> = HashMap::new();
        for s in shares {
            let path = fs::canonicalize(s).map_err(NodeError::file("open share folder", s))?;
            if !path.is_dir() {
                return Err(NodeError::File {
                    action: "share (it is not a folder)",
                    path: s.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
                });
            }
            let base = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("share")
                .to_owned();
            let n = used.entry(base.clone()).or_insert(0);
            *n += 1;
            let prefix = if *n == 1 { base } else { format!("{base}-{n}") };
            roots.push(Root {
                path,
                prefix: Some(prefix),
            });
        }
        if roots.len() == 1 {
            roots[0].prefix = None;
        }
        Ok(Self {
            roots,
            db,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            version: watch::channel(0).0,
        })
    }

    /// The share folders (canonical).
    pub fn roots(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|r| r.path.as_path())
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops serving the file at `path` until the next scan has hashed it
    /// again: what it holds no longer matches its content id (changed in
    /// place, size and mtime kept), so neither the listing nor the hash
    /// cache may vouch for it.
    pub fn forget(&self, path: &Path) -> Result<()> {
        self.db.update(&[], &[path.to_owned()])?;
        let mut guard = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let mut snap = (**guard).clone();
        let names: Vec<String> = snap
            .files
            .iter()
            .filter(|(_, f)| f.path == path)
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        for n in &names {
            snap.files.remove(n);
        }
        snap.by_cid.retain(|_, n| !names.contains(n));
        // Another file with the same content may still serve it.
        for (n, f) in &snap.files {
            snap.by_cid
                .entry(f.entry.content_id)
                .or_insert_with(|| n.clone());
        }
        *guard = Arc::new(snap);
        drop(guard);
        self.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Changes whenever the listing changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Walks the shares and brings the index up to date. Blocking: run it
    /// on a blocking thread.
    pub fn scan(&self) -> Result<ScanReport> {
        let old = self.snapshot();
        let found = self.walk();

        // Reuse what the current snapshot or the database already knows.
        let mut known: Vec<Option<ContentId>> = found
            .iter()
            .map(|f| {
                old.files
                    .get(&f.name)
                    .filter(|o| o.path == f.path && o.stamp == f.stamp)
                    .map(|o| o.entry.content_id)
            })
            .collect();
        let ask: Vec<usize> = (0..found.len()).filter(|&i| known[i].is_none()).collect();
        if !ask.is_empty() {
            let items: Vec<(PathBuf, Stamp)> = ask
                .iter()
                .map(|&i| (found[i].path.clone(), found[i].stamp))
                .collect();
            for (i, c) in ask.iter().zip(self.db.cached(&items)?) {
                known[*i] = c;
            }
        }

        let to_hash: Vec<usize> = (0..found.len()).filter(|&i| known[i].is_none()).collect();
        let hashed: Vec<(usize, Option<Hashed>)> = to_hash
            .par_iter()
            .map(|&i| (i, hash_unchanged(&found[i].path, found[i].stamp)))
            .collect();
        let mut fresh = Vec::new();
        let mut outboards = Vec::new();
        let mut hashed_bytes = 0;
        for (i, hashed) in hashed {
            if let Some((c, outboard)) = hashed {
                known[i] = Some(c);
                hashed_bytes += found[i].stamp.size;
                fresh.push((found[i].path.clone(), found[i].stamp, c));
                if !outboard.is_empty() {
                    outboards.push((c, outboard));
                }
            }
        }
        let seen: std::collections::HashSet<&Path> =
            found.iter().map(|f| f.path.as_path()).collect();
        let gone: Vec<PathBuf> = old
            .files
            .values()
            .filter(|o| !seen.contains(o.path.as_path()))
            .map(|o| o.path.clone())
            .collect();
        self.db.update(&fresh, &gone)?;
        for (cid, outboard) in &outboards {
            self.db.put_outboard(cid, outboard)?;
        }

        let mut snap = Snapshot::default();
        for (f, cid) in found.into_iter().zip(known) {
            // A file that changed while being hashed waits for the next scan.
            let Some(content_id) = cid else { continue };
            snap.by_cid
                .entry(content_id)
                .or_insert_with(|| f.name.clone());
            snap.files.insert(
                f.name.clone(),
                SharedFile {
                    entry: FileEntry {
                        encrypted: f.name.ends_with(".age"),
                        name: f.name,
                        size: f.stamp.size,
                        content_id,
                        modified: f.stamp.mtime_ns / 1_000_000_000,
                    },
                    path: f.path,
                    root: f.root,
                    stamp: f.stamp,
                },
            );
        }
        let changed = snap.files != old.files;
        let report = ScanReport {
            files: snap.files.len(),
            hashed: fresh.len(),
            hashed_bytes,
            changed,
        };
        if changed {
            *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
            self.version.send_modify(|v| *v += 1);
        }
        Ok(report)
    }

    fn walk(&self) -> Vec<Found> {
        let mut out = Vec::new();
        for root in &self.roots {
            for item in walkdir::WalkDir::new(&root.path).follow_links(false) {
                let item = match item {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping unreadable entry in share");
                        continue;
                    }
                };
                if item.file_type().is_dir() {
                    continue;
                }
                let meta = if item.path_is_symlink() {
                    match link_inside(item.path(), &root.path) {
                        Some(m) => m,
                        None => {
                            tracing::debug!(path = %item.path().display(), "not sharing symlink that leaves the share or is not a file");
                            continue;
                        }
                    }
                } else {
                    match item.metadata() {
                        Ok(m) if m.is_file() => m,
                        _ => continue,
                    }
                };
                let Some(rel) = relative_name(item.path(), &root.path) else {
                    tracing::warn!(path = %item.path().display(), "not sharing a file whose name is not UTF-8");
                    continue;
                };
                if is_in_progress(&rel) {
                    continue;
                }
                let name = match &root.prefix {
                    Some(p) => format!("{p}/{rel}"),
                    None => rel,
                };
                out.push(Found {
                    name,
                    path: item.into_path(),
                    root: root.path.clone(),
                    stamp: stamp_of(&meta),
                });
            }
        }
        out
    }
}

struct Found {
    name: String,
    path: PathBuf,
    root: PathBuf,
    stamp: Stamp,
}

/// Size, mtime and ctime of a file's metadata.
pub fn stamp_of(meta: &fs::Metadata) -> Stamp {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    #[cfg(unix)]
    let ctime_ns = {
        use std::os::unix::fs::MetadataExt;
        (meta.ctime().max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.ctime_nsec().max(0) as u64)
    };
    #[cfg(not(unix))]
    let ctime_ns = 0;
    Stamp {
        size: meta.len(),
        mtime_ns,
        ctime_ns,
    }
}

/// Metadata of a symlink's target if it is a file inside `root`.
pub(crate) fn link_inside(link: &Path, root: &Path) -> Option<fs::Metadata> {
    let target = fs::canonicalize(link).ok()?;
    if !target.starts_with(root) {
        return None;
    }
    fs::metadata(&target).ok().filter(|m| m.is_file())
}

fn relative_name(path: &Path, root: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// A content id and the outboard made with it (empty for one-piece files).
type Hashed = (ContentId, Vec<u8>);

/// Hashes a file, or `None` if it is unreadable or changed meanwhile.
/// Files of more than one piece get their outboard made in the same pass,
/// so the first download of them does not wait for it.
fn hash_unchanged(path: &Path, before: Stamp) -> Option<Hashed> {
    let hashed = if before.size > crate::pieces::PIECE_SIZE {
        File::open(path).and_then(|f| crate::pieces::outboard_of(f, before.size))
    } else {
        hash_file(path).map(|c| (c, Vec::new()))
    };
    match hashed {
        Ok(h) => {
            let after = fs::metadata(path).ok().map(|m| stamp_of(&m));
            (after == Some(before)).then_some(h)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot hash shared file");
            None
        }
    }
}

/// The content id of a file. Large files are read on one thread while the
/// previous buffer is hashed on all cores.
pub fn hash_file(path: &Path) -> std::io::Result<ContentId> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    if len <= HASH_BUF as u64 {
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf)?;
        hasher.update(&buf);
        return Ok(hasher.finalize().into());
    }
    // Two buffers travel between the reader and the hasher.
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    for _ in 0..2 {
        let _ = empty_tx.send(vec![0u8; HASH_BUF]);
    }
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> std::io::Result<()> {
            while let Ok(mut buf) = empty_rx.recv() {
                let n = read_full(&mut f, &mut buf)?;
                if n == 0 || full_tx.send((buf, n)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        while let Ok((buf, n)) = full_rx.recv() {
            hasher.update_rayon(&buf[..n]);
            if empty_tx.send(buf).is_err() {
                break;
            }
        }
        drop(empty_tx);
        reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("hash reader panicked")))
    })?;
    Ok(hasher.finalize().into())
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(dirs: &[&Path], data: &Path) -> ShareIndex {
        let db = Arc::new(NodeDb::open(data).unwrap());
        ShareIndex::new(
            &dirs.iter().map(|d| d.to_path_buf()).collect::<Vec<_>>(),
            db,
        )
        .unwrap()
    }

    #[test]
    fn lists_nested_files_and_notices_changes() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        fs::create_dir_all(share.path().join("a/b")).unwrap();
        fs::write(share.path().join("a/b/c.txt"), b"hello").unwrap();
        fs::write(share.path().join("top"), b"").unwrap();
        fs::write(share.path().join("x.part"), b"partial").unwrap();
        let idx = index(&[share.path()], data.path());
        let r = idx.scan().unwrap();
        assert_eq!((r.files, r.hashed, r.changed), (2, 2, true));
        let snap = idx.snapshot();
        let names: Vec<&str> = snap.files().map(|f| f.entry.name.as_str()).collect();
        assert_eq!(names, ["a/b/c.txt", "top"]);
        assert_eq!(
            snap.by_content(&ContentId::of(b"hello"))
                .unwrap()
                .entry
                .size,
            5
        );

        let r = idx.scan().unwrap();
        assert_eq!((r.hashed, r.changed), (0, false));

        fs::remove_file(share.path().join("top")).unwrap();
        fs::write(share.path().join("new"), b"n").unwrap();
        let r = idx.scan().unwrap();
        assert_eq!((r.files, r.hashed, r.changed), (2, 1, true));
    }

    #[test]
    fn restart_uses_the_cache() {
        let share = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        fs::write(share.path().join("f"), vec![7u8; 3 * 1024 * 1024]).unwrap();
        {
            let idx = index(&[share.path()], data.path());
            assert_eq!(idx.scan().unwrap().hashed, 1);
        }
        let idx = index(&[share.path()], data.path());
        let r = idx.scan().unwrap();
        assert_eq!((r.files, r.hashed), (1, 0));
        assert_eq!(
            idx.snapshot().files().next().unwrap().entry.content_id,
            ContentId::of(&vec![7u8; 3 * 1024 * 1024])
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_share_are_not_listed() {
        let share = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        fs::write(share.path().join("inside"), b"i").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), share.path().join("leak"))
            .unwrap();
        std::os::unix::fs::symlink(share.path().join("inside"), share.path().join("alias"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), share.path().join("dirlink")).unwrap();
        let idx = index(&[share.path()], data.path());
        idx.scan().unwrap();
        let names: Vec<String> = idx
            .snapshot()
            .files()
            .map(|f| f.entry.name.clone())
            .collect();
        assert_eq!(names, ["alias", "inside"]);
    }

    #[test]
    fn several_shares_get_prefixes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        fs::write(a.path().join("f"), b"1").unwrap();
        fs::write(b.path().join("f"), b"2").unwrap();
        let idx = index(&[a.path(), b.path()], data.path());
        idx.scan().unwrap();
        assert_eq!(idx.snapshot().len(), 2);
    }
}
