//! Durable names: a file reaches its final name only whole and synced,
//! and never replaces a file it should not.
//!
//! Two ways a file gets its name:
//!
//! - [`replace`]: small records of Shoal's own (config, keys, the peer
//!   book, a download's piece record) are written to a fresh temporary
//!   name beside the target (never through a planted symlink), synced if
//!   asked, and renamed over the old one; a crash leaves the old or the
//!   new, never a mix.
//! - [`publish`] (and [`link_noclobber`] with one [`sync_dir`] for many):
//!   a finished download, a received file, a decrypted file: a hard link
//!   to the final name, which fails if the name is taken, then the
//!   temporary name goes; on file systems without hard links, a check and
//!   a rename. The caller syncs the file's data first.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How [`replace`] writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replace {
    /// Readable and writable by the owner only (Unix mode 0600).
    pub private: bool,
    /// Synced to disk (data and folder) before it returns.
    pub sync: bool,
}

/// A temporary name for writing `path`: beside it, hidden, one the share
/// index never serves (`.shoal-NAME.PID.N.tmp`), and unique to this call,
/// so two processes writing one file never write into each other's.
pub fn temp_name(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".shoal-{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `data` as the whole new content of `path`, atomically. The
/// temporary is created afresh (`create_new`), so nothing is ever written
/// through a symlink planted at its name.
pub fn replace(path: &Path, data: &[u8], how: Replace) -> io::Result<()> {
    let tmp = temp_name(path);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if how.private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        if how.sync {
            f.sync_all()?;
        }
        Ok(())
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    if how.sync {
        sync_parent(path);
    }
    Ok(())
}

/// Gives the complete file at `src` the name `target` without ever
/// replacing a file there: `AlreadyExists` if the name is taken (and
/// `src` is left as it was). The caller syncs the folder (see [`publish`]).
pub fn link_noclobber(src: &Path, target: &Path) -> io::Result<()> {
    match std::fs::hard_link(src, target) {
        Ok(()) => std::fs::remove_file(src),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        // File systems without hard links: check, then rename (a small
        // race with another writer of the same name, accepted there).
        Err(_) => {
            if target.symlink_metadata().is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(src, target)
        }
    }
}

/// [`link_noclobber`], then the new name made durable.
pub fn publish(src: &Path, target: &Path) -> io::Result<()> {
    link_noclobber(src, target)?;
    sync_parent(target);
    Ok(())
}

/// Makes the entries of the folder holding `path` durable (best effort:
/// some systems cannot sync a folder, and the data is already synced).
pub fn sync_parent(path: &Path) {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => sync_dir(d),
        _ => sync_dir(Path::new(".")),
    }
}

/// Makes the entries of `dir` durable (best effort, as [`sync_parent`]).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    // Windows has no folder handle to sync; NTFS journals its entries.
    #[cfg(not(unix))]
    let _ = dir;
}

/// Makes the data of many new files durable at once: one `syncfs` of the
/// file system holding `one` on Linux, else each file synced in turn.
pub fn sync_files<'a>(one: &File, paths: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = paths.into_iter();
        rustix::fs::syncfs(one).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = one;
        for p in paths {
            File::open(p)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        replace(&p, b"one", Replace::default()).unwrap();
        replace(
            &p,
            b"two",
            Replace {
                private: true,
                sync: true,
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.toml"], "a temporary was left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn temporaries_are_hidden_and_never_reused() {
        let p = Path::new("/x/state.json");
        let (a, b) = (temp_name(p), temp_name(p));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".shoal-state.json.") && name.ends_with(".tmp"));
    }

    #[test]
    fn publish_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (src, target) = (dir.path().join("a.part"), dir.path().join("a"));
        std::fs::write(&src, b"new").unwrap();
        std::fs::write(&target, b"old").unwrap();
        assert_eq!(
            publish(&src, &target).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert!(src.exists(), "the source is kept when the name is taken");
        std::fs::remove_file(&target).unwrap();
        publish(&src, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!src.exists());
    }
}
