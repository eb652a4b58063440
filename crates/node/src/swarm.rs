//! Partial seeding: the verified pieces of downloads in progress, offered
//! to other peers while the download runs.
//!
//! A download registers its `.part` here once it has the outboard; the
//! peer server then answers `/have`, `/outboard` and ranges made only of
//! pieces it holds, and the heartbeat announces the content id to the
//! tracker, so a crowd fetching one file trades pieces among itself
//! instead of all waiting on the first seeder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shoal_core::ContentId;
use shoal_core::wire::PieceMap;
use tokio::sync::watch;

pub use crate::pieces::Bitmap;
use crate::pieces::{PIECE_SIZE, piece_count};

/// The pieces of a download in progress that are verified and written,
/// shared between the writer (which adds) and the server (which reads).
#[derive(Debug)]
pub struct Have {
    size: u64,
    pieces: u64,
    words: Vec<AtomicU64>,
}

impl Have {
    /// Nothing held yet, for a file of `size` bytes.
    pub fn new(size: u64) -> Self {
        let pieces = piece_count(size);
        let n = pieces.div_ceil(64) as usize;
        Self {
            size,
            pieces,
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Marks piece `i` as verified and readable from the `.part`.
    pub fn set(&self, i: u64) {
        if i >= self.pieces {
            return;
        }
        if let Some(w) = self.words.get((i / 64) as usize) {
            w.fetch_or(1 << (i % 64), Ordering::Release);
        }
    }

    /// Marks piece `i` not held.
    pub fn clear(&self, i: u64) {
        if let Some(w) = self.words.get((i / 64) as usize) {
            w.fetch_and(!(1 << (i % 64)), Ordering::Release);
        }
    }

    /// Every piece held, for a file of `size` bytes.
    pub fn full(size: u64) -> Self {
        let mut all = Bitmap::new(piece_count(size));
        for i in 0..all.len() {
            all.set(i);
        }
        Self::from_bitmap(size, &all)
    }

    /// The pieces of `bits` held, for a file of `size` bytes.
    pub fn from_bitmap(size: u64, bits: &Bitmap) -> Self {
        let have = Self::new(size);
        for (w, b) in have.words.iter().zip(bits.words()) {
            w.store(*b, Ordering::Relaxed);
        }
        have
    }

    /// Whether piece `i` is held.
    pub fn has(&self, i: u64) -> bool {
        i < self.pieces
            && self
                .words
                .get((i / 64) as usize)
                .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (i % 64)) != 0)
    }

    /// Whether every piece overlapping bytes `[start, end)` is held.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        if start >= end || end > self.size {
            return false;
        }
        (start / PIECE_SIZE..=(end - 1) / PIECE_SIZE).all(|i| self.has(i))
    }

    /// A copy as a [`Bitmap`].
    pub fn snapshot(&self) -> Bitmap {
        Bitmap::from_words(
            self.words
                .iter()
                .map(|w| w.load(Ordering::Acquire))
                .collect(),
            self.pieces,
        )
    }
}

/// A download in progress that others may fetch verified pieces of.
#[derive(Debug)]
pub struct Partial {
    /// The `.part` file the pieces are written into.
    pub part: PathBuf,
    /// Size of the whole content.
    pub size: u64,
    /// The content's outboard (already checked against the content id).
    pub outboard: Vec<u8>,
    /// Pieces verified and written.
    pub have: Have,
    /// Pieces being fetched now.
    pub fetching: Have,
}

impl Partial {
    /// What `/have` answers for it.
    pub fn piece_map(&self) -> PieceMap {
        PieceMap {
            size: self.size,
            piece_size: PIECE_SIZE,
            complete: false,
            pieces: Some(self.have.snapshot().to_hex()),
            fetching: Some(self.fetching.snapshot().to_hex()),
        }
    }
}

/// The downloads in progress that this node offers, by content id.
#[derive(Clone, Debug)]
pub struct Partials {
    map: Arc<Mutex<HashMap<ContentId, Arc<Partial>>>>,
    version: Arc<watch::Sender<u64>>,
}

impl Default for Partials {
    fn default() -> Self {
        Self {
            map: Default::default(),
            version: Arc::new(watch::channel(0).0),
        }
    }
}

impl Partials {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, Arc<Partial>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers `partial` as `cid` until the returned guard is dropped.
    pub fn offer(&self, cid: ContentId, partial: Arc<Partial>) -> Offered {
        self.lock().insert(cid, partial);
        self.version.send_modify(|v| *v += 1);
        Offered {
            partials: self.clone(),
            cid,
            settled: false,
        }
    }

    /// The download in progress of `cid`, if any.
    pub fn get(&self, cid: &ContentId) -> Option<Arc<Partial>> {
        self.lock().get(cid).cloned()
    }

    /// Content ids offered now.
    pub fn content_ids(&self) -> Vec<ContentId> {
        self.lock().keys().copied().collect()
    }

    /// Changes whenever a download is offered or withdrawn.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// Withdraws an offered download when dropped.
#[must_use = "the download is withdrawn when this is dropped"]
pub struct Offered {
    partials: Partials,
    cid: ContentId,
    settled: bool,
}

impl Offered {
    /// The download is complete and now lives at `path`: it stays offered,
    /// whole, for as long as the registry lives.
    pub fn settle(mut self, path: PathBuf) {
        let mut map = self.partials.lock();
        if let Some(p) = map.get(&self.cid) {
            let done = Partial {
                part: path,
                size: p.size,
                outboard: p.outboard.clone(),
                have: Have::full(p.size),
                fetching: Have::new(p.size),
            };
            map.insert(self.cid, Arc::new(done));
        }
        self.settled = true;
    }
}

impl Drop for Offered {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.partials.lock().remove(&self.cid);
        self.partials.version.send_modify(|v| *v += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_round_trip_through_hex() {
        for len in [1u64, 7, 8, 9, 63, 64, 65, 1000] {
            let mut b = Bitmap::new(len);
            for i in (0..len).step_by(3) {
                b.set(i);
            }
            let back = Bitmap::from_hex(len, &b.to_hex()).unwrap();
            assert_eq!(back, b, "len {len}");
            assert_eq!(b.count(), len.div_ceil(3));
        }
        assert!(Bitmap::from_hex(9, "ff").is_none());
        assert!(Bitmap::from_hex(9, "zz00").is_none());
        // Stray bits past the end are ignored.
        let b = Bitmap::from_hex(4, "ff").unwrap();
        assert_eq!(b.count(), 4);
        assert!(!b.has(4));
    }

    #[test]
    fn have_covers_only_held_pieces() {
        let size = 3 * PIECE_SIZE + 10;
        let h = Have::new(size);
        assert!(!h.covers(0, 1));
        h.set(0);
        h.set(1);
        assert!(h.covers(0, 2 * PIECE_SIZE));
        assert!(h.covers(5, PIECE_SIZE + 5));
        assert!(!h.covers(0, 2 * PIECE_SIZE + 1));
        h.set(3);
        assert!(h.covers(3 * PIECE_SIZE, size));
        assert!(!h.covers(3 * PIECE_SIZE - 1, size));
        assert_eq!(h.snapshot().count(), 3);
        h.set(4); // past the last piece: ignored
        h.set(99);
        assert_eq!(h.snapshot().count(), 3);
    }

    #[test]
    fn offers_are_withdrawn_when_dropped() {
        let p = Partials::new();
        let mut changes = p.subscribe();
        let cid = ContentId::of(b"x");
        let partial = Arc::new(Partial {
            part: PathBuf::from("x.part"),
            size: 1,
            outboard: Vec::new(),
            have: Have::new(1),
            fetching: Have::new(1),
        });
        let offered = p.offer(cid, partial);
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        assert_eq!(p.content_ids(), [cid]);
        drop(offered);
        assert!(changes.has_changed().unwrap());
        assert!(p.get(&cid).is_none());
    }
}
