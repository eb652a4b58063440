//! Reads and writes at an offset, without moving a shared cursor, so
//! several threads can use clones of one file: `pread`/`pwritev` on Unix,
//! `seek_read`/`seek_write` on Windows (where each call moves the handle's
//! cursor, which nothing else of Shoal's relies on).

use std::fs::File;
use std::io;

/// Fills `buf` from `file` at `offset`; fails on a short file.
pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Writes every buffer of `bufs`, one after another, at `offset`, with as
/// few system calls as the platform allows.
pub fn write_all_at<B: AsRef<[u8]>>(file: &File, bufs: &[B], mut offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        let mut slices: Vec<io::IoSlice<'_>> =
            bufs.iter().map(|b| io::IoSlice::new(b.as_ref())).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match rustix::io::pwritev(file, rest, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    offset += n as u64;
                    io::IoSlice::advance_slices(&mut rest, n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
    #[cfg(windows)]
    {
        for b in bufs {
            let mut b = b.as_ref();
            while !b.is_empty() {
                match std::os::windows::fs::FileExt::seek_write(file, b, offset) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        b = &b[n..];
                        offset += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_land_at_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        write_all_at(&f, &[b"world".as_slice()], 6).unwrap();
        write_all_at(&f, &[b"hel".as_slice(), b"lo ".as_slice()], 0).unwrap();
        let mut buf = [0u8; 11];
        read_exact_at(&f, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello world");
        let mut past = [0u8; 4];
        assert_eq!(
            read_exact_at(&f, &mut past, 9).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
