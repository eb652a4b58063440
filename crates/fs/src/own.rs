//! Files Shoal creates or opens for itself in folders the user named
//! (downloads, inboxes): never through a symlink someone planted.

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
    let file = opts.open(path).map_err(|e| refused_link(path, e))?;
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

/// ELOOP (the last component is a symlink, refused by `O_NOFOLLOW`) as
/// the error that says so.
#[cfg(unix)]
fn refused_link(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        not_regular(path)
    } else {
        e
    }
}

#[cfg(not(unix))]
fn refused_link(_path: &Path, e: io::Error) -> io::Error {
    e
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
