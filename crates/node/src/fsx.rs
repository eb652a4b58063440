//! Files Shoal creates or opens for itself in folders the user named
//! (downloads, inboxes): never through a symlink someone planted, and with
//! the disk space they need accounted for. Unix calls sit behind one `cfg`
//! seam each, with a portable fallback.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens (creating if needed) one of Shoal's own working files, such as a
/// `.part`, for reading and writing without truncating it. A symlink at
/// `path` is refused, never followed, and so is anything but a regular file.
pub fn open_own(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    #[cfg(not(unix))]
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(not_regular(path));
    }
    let file = opts.open(path).map_err(|e| {
        // ELOOP: the last component is a symlink.
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            not_regular(path)
        } else {
            e
        }
    })?;
    if !file.metadata()?.is_file() {
        return Err(not_regular(path));
    }
    Ok(file)
}

/// Creates a new file of Shoal's at `path`; fails if anything (a file, a
/// symlink, even a dangling one) is already there.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symlink or not a regular file; Shoal does not write through it (remove it to go on)",
            path.display()
        ),
    )
}

/// Reserves `size` bytes for `file` without changing its length. Errors
/// other than a full disk mean "cannot preallocate here", which callers
/// may ignore.
pub fn preallocate(file: &File, size: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if size > 0 {
        use rustix::fs::{FallocateFlags, fallocate};
        return match fallocate(file, FallocateFlags::KEEP_SIZE, 0, size) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOSPC) => Err(io::Error::from(io::ErrorKind::StorageFull)),
            Err(e) => Err(e.into()),
        };
    }
    let _ = (file, size);
    Ok(())
}

/// Gives back space reserved by [`preallocate`] beyond the file's length
/// (what was written) up to `size`.
pub fn release_unwritten(file: &File, size: u64) {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return;
    };
    // Truncating to the length it has frees blocks reserved past it (ext4,
    // tmpfs); punching them covers file systems where it does not.
    let _ = file.set_len(len);
    #[cfg(target_os = "linux")]
    if size > len {
        use rustix::fs::{FallocateFlags, fallocate};
        let _ = fallocate(
            file,
            FallocateFlags::KEEP_SIZE | FallocateFlags::PUNCH_HOLE,
            len,
            size - len,
        );
    }
    let _ = (file, len, size);
}

/// Bytes free for this user on the file system holding `dir` (`None` if
/// it cannot be told).
pub fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = rustix::fs::statvfs(dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The device of the file system holding `path` (`None` if it cannot be
/// told), to tell whether two folders can be linked across.
pub fn device_of(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
