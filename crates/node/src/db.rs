//! The node's embedded database (redb): a content-id cache keyed by path,
//! size and modification time, so a restart does not re-hash anything that
//! did not change.

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};
use shoal_core::ContentId;

use crate::error::{NodeError, Result};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "shoal.redb";

/// path bytes → size (8, LE) ‖ mtime ns (8, LE) ‖ ctime ns (8, LE) ‖ content id (32)
/// (v2 added the status-change time: v1 entries are not read, so an
/// upgrade hashes every share once.)
const HASHES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("hashes_v2");

/// content id ‖ piece chunk log → outboard (see [`crate::pieces`]).
const OUTBOARDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("outboards_v1");

/// What a cached entry is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// File size in bytes.
    pub size: u64,
    /// Modification time in ns since the Unix epoch.
    pub mtime_ns: u64,
    /// Status-change time (ctime) in ns since the Unix epoch, where the
    /// system has one (else 0). Tools can put an mtime back after editing
    /// a file in place; nothing but the clock puts back a ctime, so an
    /// edit that kept size and mtime still changes the stamp.
    pub ctime_ns: u64,
}

/// The open database.
pub struct NodeDb {
    db: Database,
    path: PathBuf,
}

fn path_key(p: &Path) -> &[u8] {
    p.as_os_str().as_encoded_bytes()
}

/// Opens (or creates) a redb database, setting a damaged one aside.
///
/// A database file that is cut short or corrupt (a crash mid-write, a
/// full disk, a bad copy) is a cache Shoal can rebuild: it is renamed to
/// `NAME.broken-UNIXTIME`, a warning says so, and a new one is made. redb
/// may panic on some damage rather than return an error; that is caught
/// here too.
pub fn open_redb(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    match try_open(path) {
        Ok(Ok(db)) => return Ok(db),
        Ok(Err(e @ redb::DatabaseError::DatabaseAlreadyOpen)) => return Err(e),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if e.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            return Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)));
        }
        Ok(Err(e)) => {
            tracing::debug!(path = %path.display(), error = %e, "database does not open");
        }
        Err(()) => {}
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".broken-{stamp}"));
    let aside = PathBuf::from(aside);
    if let Err(e) = std::fs::rename(path, &aside) {
        return Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)));
    }
    tracing::warn!(
        path = %path.display(),
        moved_to = %aside.display(),
        "the database was damaged; it was set aside and a new one is made (hashes are computed again, remembered peers start afresh)"
    );
    try_open(path).unwrap_or_else(|()| {
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(
            std::io::Error::other("a new database could not be made"),
        )))
    })
}

/// `Database::create`, with a panic inside redb turned into `Err(())`.
fn try_open(
    path: &Path,
) -> std::result::Result<std::result::Result<Database, redb::DatabaseError>, ()> {
    // redb asserts on some kinds of damage; its message would reach the
    // terminal as a crash report, so the hook is quiet while it runs. The
    // hook is the process's: one open at a time swaps it, or two could
    // leave the quiet one in place for good.
    static QUIET: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = QUIET.lock().unwrap_or_else(|p| p.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| {
        let db = Database::create(path)?;
        // A database that opens may still be damaged inside: touch it.
        let txn = db.begin_read().map_err(|e| {
            redb::DatabaseError::Storage(redb::StorageError::Io(std::io::Error::other(
                e.to_string(),
            )))
        })?;
        drop(txn);
        Ok(db)
    });
    std::panic::set_hook(hook);
    r.map_err(|_| ())
}

impl NodeDb {
    /// Opens (or creates) the database in `data_dir` (a damaged one is set
    /// aside and rebuilt: see [`open_redb`]).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(DB_FILE);
        std::fs::create_dir_all(data_dir).map_err(NodeError::file("create", data_dir))?;
        let db = open_redb(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => NodeError::DataDirInUse(path.clone()),
            other => NodeError::database(&path, other),
        })?;
        let this = Self { db, path };
        let txn = this.db.begin_write().map_err(|e| this.err(e))?;
        txn.open_table(HASHES).map_err(|e| this.err(e))?;
        txn.open_table(OUTBOARDS).map_err(|e| this.err(e))?;
        txn.commit().map_err(|e| this.err(e))?;
        Ok(this)
    }

    fn err(&self, e: impl Into<redb::Error>) -> NodeError {
        NodeError::database(&self.path, e)
    }

    /// Looks up many paths at once; `None` where absent or stale.
    pub fn cached(&self, items: &[(PathBuf, Stamp)]) -> Result<Vec<Option<ContentId>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(HASHES).map_err(|e| self.err(e))?;
        items
            .iter()
            .map(|(p, stamp)| {
                let Some(v) = table.get(path_key(p)).map_err(|e| self.err(e))? else {
                    return Ok(None);
                };
                Ok(decode(v.value())
                    .filter(|(s, _)| s == stamp)
                    .map(|(_, c)| c))
            })
            .collect()
    }

    /// Stores freshly computed ids and forgets `gone` paths, in one transaction.
    pub fn update(&self, fresh: &[(PathBuf, Stamp, ContentId)], gone: &[PathBuf]) -> Result<()> {
        if fresh.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(HASHES).map_err(|e| self.err(e))?;
            for (p, stamp, cid) in fresh {
                table
                    .insert(path_key(p), encode(*stamp, *cid).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            for p in gone {
                table.remove(path_key(p)).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

impl NodeDb {
    /// The cached outboard of `cid`.
    pub fn outboard(&self, cid: &ContentId) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(OUTBOARDS).map_err(|e| self.err(e))?;
        Ok(table
            .get(outboard_key(cid).as_slice())
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Caches the outboard of `cid`.
    pub fn put_outboard(&self, cid: &ContentId, outboard: &[u8]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(OUTBOARDS).map_err(|e| self.err(e))?;
            table
                .insert(outboard_key(cid).as_slice(), outboard)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

/// Outboards depend on the piece size, so it is part of the key.
fn outboard_key(cid: &ContentId) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..32].copy_from_slice(cid.as_bytes());
    k[32] = crate::pieces::PIECE_CHUNK_LOG;
    k
}

fn encode(s: Stamp, c: ContentId) -> [u8; 56] {
    let mut out = [0u8; 56];
    out[..8].copy_from_slice(&s.size.to_le_bytes());
    out[8..16].copy_from_slice(&s.mtime_ns.to_le_bytes());
    out[16..24].copy_from_slice(&s.ctime_ns.to_le_bytes());
    out[24..].copy_from_slice(c.as_bytes());
    out
}

fn decode(v: &[u8]) -> Option<(Stamp, ContentId)> {
    let v: &[u8; 56] = v.try_into().ok()?;
    let size = u64::from_le_bytes(v[..8].try_into().ok()?);
    let mtime_ns = u64::from_le_bytes(v[8..16].try_into().ok()?);
    let ctime_ns = u64::from_le_bytes(v[16..24].try_into().ok()?);
    let cid: [u8; 32] = v[24..].try_into().ok()?;
    Some((
        Stamp {
            size,
            mtime_ns,
            ctime_ns,
        },
        ContentId::from_bytes(cid),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_only_on_same_stamp_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = PathBuf::from("/x/y");
        let s = Stamp {
            size: 3,
            mtime_ns: 7,
            ctime_ns: 9,
        };
        let c = ContentId::of(b"abc");
        {
            let db = NodeDb::open(dir.path()).unwrap();
            db.update(&[(p.clone(), s, c)], &[]).unwrap();
            assert!(matches!(
                NodeDb::open(dir.path()),
                Err(NodeError::DataDirInUse(_))
            ));
        }
        let db = NodeDb::open(dir.path()).unwrap();
        let other = Stamp {
            size: 3,
            mtime_ns: 7,
            ctime_ns: 10,
        };
        assert_eq!(
            db.cached(&[(p.clone(), s), (p.clone(), other)]).unwrap(),
            vec![Some(c), None]
        );
        db.update(&[], std::slice::from_ref(&p)).unwrap();
        assert_eq!(db.cached(&[(p, s)]).unwrap(), vec![None]);
    }
}
