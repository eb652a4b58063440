//! Disk space: reserving it for a download, giving back what a failed one
//! did not use, and how much is free.

use std::fs::File;
use std::io;
use std::path::Path;

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
    fs4::available_space(dir).ok()
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
