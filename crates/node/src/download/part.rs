//! The `.part` of a download: opened (or resumed) under a lock, its space
//! reserved once the size is proven, its pieces recovered after a crash,
//! and published under its final name only when complete and verified.
//!
//! Nothing unverified ever sits at the final path, and an existing file is
//! never replaced: the final step is a hard link (which fails if the name
//! is taken) followed by removing the `.part` ([`shoal_fs::durable`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use shoal_core::wire::FileEntry;

use crate::error::{NodeError, Result};
use crate::index::PART_SUFFIX;
use crate::pieces::{self, PieceState, Verifier};

/// Where the `.part` of a download named `name` in `dir` lives.
pub fn part_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{PART_SUFFIX}"))
}

/// The bytes of piece `i` of a file of `size` bytes.
pub(super) fn piece_len(size: u64, i: u64) -> u64 {
    let (s, e) = pieces::piece_range(size, i);
    e - s
}

/// An open `.part` and what is known about its pieces.
pub(super) struct PartFile {
    pub(super) file: File,
    pub(super) state: PieceState,
    /// Whether it held an earlier attempt (whose unrecorded pieces may
    /// still be good).
    pub(super) resumed: bool,
    pub(super) path: PathBuf,
    pub(super) state_path: PathBuf,
}

impl PartFile {
    /// Opens the `.part` at `path` for `entry` with its piece record: the
    /// existing one if it belongs to the same content, a fresh one
    /// otherwise. The `.part` stays locked while this (or a clone of its
    /// file) is open, so two downloads never write one file.
    ///
    /// The record of an earlier attempt is only a hint: it says which
    /// content the `.part` holds, but every piece is checked again against
    /// the content id before it counts (see [`recover`]), so a record that
    /// lies, or a `.part` changed behind our back, can cost time but never
    /// put a bad byte at the final path. The `.part` is never a symlink or
    /// anything but a regular file: a planted link is refused, not followed.
    pub(super) fn open(path: &Path, entry: &FileEntry) -> Result<Self> {
        let state_path = PieceState::path_for(path);
        let file = shoal_fs::open_own(path).map_err(NodeError::file("create", path))?;
        if file.try_lock().is_err() {
            return Err(NodeError::File {
                action: "write (another shoal download is writing it)",
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
            });
        }
        let len = file
            .metadata()
            .map_err(NodeError::file("inspect", path))?
            .len();
        let fresh = PieceState::new(entry.content_id, entry.size);
        let resumed = match PieceState::load(&state_path) {
            Some(s) if s.content_id != entry.content_id => {
                return Err(NodeError::ChangedSource {
                    part: path.to_owned(),
                    had: s.content_id,
                    now: entry.content_id,
                });
            }
            Some(s) => s.size == entry.size && len <= entry.size,
            None => false,
        };
        if !resumed {
            // Start afresh. The file grows as pieces land at their
            // offsets; its space is reserved once the outboard has proven
            // the size.
            file.set_len(0).map_err(NodeError::file("truncate", path))?;
            fresh
                .save(&state_path)
                .map_err(NodeError::file("write", &state_path))?;
        }
        Ok(Self {
            file,
            state: fresh,
            resumed,
            path: path.to_owned(),
            state_path,
        })
    }
}

/// Checks that the disk holding `dir` has room for what `entry` still
/// needs beyond the `on_disk` bytes its `.part` holds.
pub(super) fn check_room(dir: &Path, part: &Path, entry: &FileEntry, on_disk: u64) -> Result<()> {
    match shoal_fs::free_space(dir) {
        Some(free) if free.saturating_add(on_disk) < entry.size => Err(NodeError::File {
            action: "make room for",
            path: part.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "not enough disk space: it needs {} and the disk has {} free",
                    shoal_core::human_size(entry.size - on_disk),
                    shoal_core::human_size(free)
                ),
            ),
        }),
        _ => Ok(()),
    }
}

/// Reserves disk space for the whole file, once its size is proven (its
/// outboard hashed up to the content id): a full disk is reported before
/// the pieces come, and the filesystem lays the file out in one go. A
/// download that fails gives the unwritten rest back
/// ([`shoal_fs::release_unwritten`]).
pub(super) fn reserve(file: &File, part: &Path, size: u64) -> Result<()> {
    match shoal_fs::preallocate(file, size) {
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => Err(NodeError::File {
            action: "make room for",
            path: part.to_owned(),
            source: e,
        }),
        // Filesystems that cannot preallocate simply fill in as we write.
        _ => Ok(()),
    }
}

/// The pieces among `missing` whose bytes in `file` already verify;
/// stops early (with what it found) once `stop` says so.
pub(super) fn recover(
    file: &File,
    verifier: &Verifier,
    missing: &[u64],
    stop: &super::Control,
) -> Vec<u64> {
    let mut buf = vec![0u8; pieces::PIECE_SIZE as usize];
    let size = verifier.size();
    missing
        .iter()
        .copied()
        .take_while(|_| !stop.is_cancelled())
        .filter(|&i| {
            let (start, end) = pieces::piece_range(size, i);
            let piece = &mut buf[..(end - start) as usize];
            shoal_fs::at::read_exact_at(file, piece, start).is_ok() && verifier.check(i, &[&*piece])
        })
        .collect()
}

/// Gives a verified `.part` its final name without ever replacing a file,
/// and makes the new name durable.
pub(super) fn publish(part: &Path, target: &Path) -> Result<()> {
    link_into_place(part, target)?;
    shoal_fs::durable::sync_parent(target);
    Ok(())
}

/// Gives a verified `.part` its final name without ever replacing a file
/// (the `.part` goes if the name is taken); the caller makes the folder
/// durable.
pub(crate) fn link_into_place(part: &Path, target: &Path) -> Result<()> {
    match shoal_fs::durable::link_noclobber(part, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(part);
            Err(NodeError::Exists(target.to_owned()))
        }
        Err(e) => Err(NodeError::File {
            action: "name",
            path: target.to_owned(),
            source: e,
        }),
    }
}

/// Removes a stopped download's `.part` and its piece record.
pub(super) fn remove(part: &Path) {
    let _ = std::fs::remove_file(part);
    let _ = std::fs::remove_file(PieceState::path_for(part));
}
