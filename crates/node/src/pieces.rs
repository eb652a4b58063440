//! Pieces: how a download is cut, verified and remembered.
//!
//! A file is cut into pieces of [`PIECE_SIZE`] bytes (the last may be
//! shorter). Each piece is a complete subtree of the file's BLAKE3 tree, so
//! with the *outboard* (the tree's parent hashes, in bao-tree's post-order
//! layout with 256 KiB chunk groups) a downloader can check any piece
//! against the content id alone, before writing it. The outboard costs 64
//! bytes per piece: 256 KiB for a 1 GiB file, nothing for a single piece.
//! (256 KiB rather than larger pieces: a piece is verified and written
//! while it is still in the CPU cache, which measurably speeds downloads.)
//!
//! The set of verified pieces of a download is kept beside the `.part` in
//! `NAME.part.state`, written only after the pieces it lists are on disk.
//! It is saved every half second; pieces written since are found on resume
//! by checking what the `.part` holds against the outboard. So a download
//! resumes after a kill, a crash or a reboot without fetching a piece that
//! reached the disk intact.

use std::io::Read;
use std::path::{Path, PathBuf};

use bao_tree::{BaoTree, BlockSize};
use serde::{Deserialize, Serialize};

use shoal_core::ContentId;

/// log2 of the chunks (1 KiB each) in a piece.
pub const PIECE_CHUNK_LOG: u8 = 8;
/// Bytes in a piece.
pub const PIECE_SIZE: u64 = 1024 << PIECE_CHUNK_LOG;
/// Suffix of the piece record beside a `.part`.
pub const STATE_SUFFIX: &str = ".part.state";

/// The BLAKE3 tree of a file of `size` bytes, with piece-sized groups.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BlockSize::from_chunk_log(PIECE_CHUNK_LOG))
}

/// Number of pieces of a file of `size` bytes.
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_SIZE)
}

/// Byte range `[start, end)` of piece `i`.
pub fn piece_range(size: u64, i: u64) -> (u64, u64) {
    let start = i * PIECE_SIZE;
    (start, (start + PIECE_SIZE).min(size))
}

/// Computes the content id and the outboard of a reader's bytes.
pub fn outboard_of(data: impl Read, size: u64) -> std::io::Result<(ContentId, Vec<u8>)> {
    let tree = tree(size);
    let mut out = Vec::with_capacity(tree.outboard_size() as usize);
    let root = bao_tree::io::sync::outboard_post_order(
        std::io::BufReader::with_capacity(1 << 20, data),
        tree,
        &mut out,
    )?;
    Ok((root.into(), out))
}

/// Checks pieces of one file against its content id.
///
/// The outboard is checked once, whole, when the verifier is made: every
/// parent pair must hash to its parent, up to the content id. That yields
/// the expected chaining value of every piece, so checking a piece is one
/// BLAKE3 pass over its bytes, with no copy.
pub struct Verifier {
    size: u64,
    expected: Expected,
}

enum Expected {
    /// A file of one piece: its hash is the content id.
    Root(blake3::Hash),
    /// Chaining values of the pieces, in order.
    Pieces(Vec<blake3::hazmat::ChainingValue>),
}

impl Verifier {
    /// A verifier from an outboard received from a peer; an outboard that
    /// does not hash up to `content_id` is refused.
    pub fn new(content_id: ContentId, size: u64, outboard: Vec<u8>) -> Result<Self, String> {
        use blake3::hazmat::{ChainingValue, Mode, merge_subtrees_non_root, merge_subtrees_root};
        let tree = tree(size);
        if outboard.len() as u64 != tree.outboard_size() {
            return Err(format!(
                "outboard has {} bytes, a file of {size} bytes needs {}",
                outboard.len(),
                tree.outboard_size()
            ));
        }
        let root = blake3::Hash::from_bytes(*content_id.as_bytes());
        if tree.blocks() <= 1 {
            return Ok(Self {
                size,
                expected: Expected::Root(root),
            });
        }
        enum Slot {
            Leaf(usize),
            Known(ChainingValue),
        }
        let bad = || "outboard does not match the content id".to_owned();
        let mut leaves: Vec<Option<ChainingValue>> = vec![None; piece_count(size) as usize];
        let mut stack: Vec<Slot> = Vec::new();
        let mut pairs = outboard.chunks_exact(64);
        let mut next_leaf = 0usize;
        let mut root_ok = false;
        for item in tree.post_order_chunks_iter() {
            match item {
                bao_tree::iter::BaoChunk::Leaf { .. } => {
                    stack.push(Slot::Leaf(next_leaf));
                    next_leaf += 1;
                }
                bao_tree::iter::BaoChunk::Parent { is_root, .. } => {
                    let pair = pairs.next().ok_or_else(bad)?;
                    let (mut l, mut r) = ([0u8; 32], [0u8; 32]);
                    l.copy_from_slice(&pair[..32]);
                    r.copy_from_slice(&pair[32..]);
                    for (slot, cv) in [(stack.pop(), r), (stack.pop(), l)] {
                        match slot.ok_or_else(bad)? {
                            Slot::Leaf(i) => *leaves.get_mut(i).ok_or_else(bad)? = Some(cv),
                            Slot::Known(k) if k == cv => {}
                            Slot::Known(_) => return Err(bad()),
                        }
                    }
                    if is_root {
                        root_ok = merge_subtrees_root(&l, &r, Mode::Hash) == root;
                    } else {
                        stack.push(Slot::Known(merge_subtrees_non_root(&l, &r, Mode::Hash)));
                    }
                }
            }
        }
        if !root_ok || !stack.is_empty() {
            return Err(bad());
        }
        let pieces: Option<Vec<ChainingValue>> = leaves.into_iter().collect();
        Ok(Self {
            size,
            expected: Expected::Pieces(pieces.ok_or_else(bad)?),
        })
    }

    /// Size of the file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True if `data` (in segments) is exactly piece `index` of the content.
    pub fn check<D: AsRef<[u8]>>(&self, index: u64, data: &[D]) -> bool {
        use blake3::hazmat::HasherExt;
        let (start, end) = piece_range(self.size, index);
        if data.iter().map(|b| b.as_ref().len() as u64).sum::<u64>() != end - start {
            return false;
        }
        let mut hasher = blake3::Hasher::new();
        match &self.expected {
            Expected::Root(root) => {
                for d in data {
                    hasher.update(d.as_ref());
                }
                index == 0 && hasher.finalize() == *root
            }
            Expected::Pieces(cvs) => {
                hasher.set_input_offset(start);
                for d in data {
                    hasher.update(d.as_ref());
                }
                cvs.get(index as usize)
                    .is_some_and(|cv| hasher.finalize_non_root() == *cv)
            }
        }
    }
}

/// The durable record of a partial download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceState {
    /// What is being downloaded.
    pub content_id: ContentId,
    /// Its size.
    pub size: u64,
    /// Piece size the record was made with.
    pub piece_size: u64,
    /// Verified pieces, one bit each, as hex.
    verified: String,
}

impl PieceState {
    /// A fresh record with nothing verified.
    pub fn new(content_id: ContentId, size: u64) -> Self {
        let bytes = piece_count(size).div_ceil(8) as usize;
        Self {
            content_id,
            size,
            piece_size: PIECE_SIZE,
            verified: "00".repeat(bytes),
        }
    }

    /// The verified pieces, decoded once (the record uses the same bit
    /// layout as the peer protocol's piece maps).
    pub fn verified(&self) -> Bitmap {
        let count = piece_count(self.size);
        Bitmap::from_hex(count, &self.verified).unwrap_or_else(|| Bitmap::new(count))
    }

    /// Whether piece `i` is verified and on disk.
    pub fn has(&self, i: u64) -> bool {
        self.verified().has(i)
    }

    /// Marks pieces as verified and on disk.
    pub fn mark(&mut self, pieces: impl IntoIterator<Item = u64>) {
        let mut bits = self.verified();
        for i in pieces {
            bits.set(i);
        }
        self.verified = bits.to_hex();
    }

    /// Pieces still missing.
    pub fn missing(&self) -> Vec<u64> {
        // Decoded once: a large file has hundreds of thousands of pieces.
        let bits = self.verified();
        (0..bits.len()).filter(|&i| !bits.has(i)).collect()
    }

    /// Where the record of `part` lives.
    pub fn path_for(part: &Path) -> PathBuf {
        let mut s = part.as_os_str().to_owned();
        s.push(".state");
        PathBuf::from(s)
    }

    /// Loads a record; `None` if absent or unreadable (start over).
    pub fn load(path: &Path) -> Option<Self> {
        let s: Self = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let consistent = s.piece_size == PIECE_SIZE
            && s.verified.len() == piece_count(s.size).div_ceil(8) as usize * 2;
        consistent.then_some(s)
    }

    /// Saves the record (temp file and rename, so it is never half written).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        // A hint for resuming (see `download`), so not synced: pieces it
        // misses are found by checking the `.part`.
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        shoal_fs::durable::replace(path, &json, shoal_fs::durable::Replace::default())
    }
}

/// A set of pieces, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: u64,
}

impl Bitmap {
    /// `len` pieces, none held.
    pub fn new(len: u64) -> Self {
        Self {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// Number of pieces it describes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it describes no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `i` is held.
    pub fn has(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Marks piece `i` held.
    pub fn set(&mut self, i: u64) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Pieces held.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The wire form: bit `i % 8` of byte `i / 8`, as hex.
    pub fn to_hex(&self) -> String {
        let bytes: Vec<u8> = self
            .words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(self.len.div_ceil(8) as usize)
            .collect();
        hex::encode(bytes)
    }

    /// Parses the wire form for `len` pieces; `None` if it does not fit.
    pub fn from_hex(len: u64, s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        if bytes.len() as u64 != len.div_ceil(8) {
            return None;
        }
        let mut map = Self::new(len);
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            map.words[i] = u64::from_le_bytes(w);
        }
        // Bits past the last piece mean nothing; drop them.
        if !len.is_multiple_of(64)
            && let Some(last) = map.words.last_mut()
        {
            *last &= (1u64 << (len % 64)) - 1;
        }
        Some(map)
    }

    /// `len` pieces from their bits (see [`Bitmap::words`]); bits past
    /// `len` are cleared.
    pub fn from_words(mut words: Vec<u64>, len: u64) -> Self {
        words.resize(len.div_ceil(64) as usize, 0);
        if !len.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last &= (1u64 << (len % 64)) - 1;
        }
        Self { words, len }
    }

    /// The bits, 64 pieces a word (piece `i` is bit `i % 64` of word
    /// `i / 64`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Pieces held here and not in `older`.
    pub fn added_since<'a>(&'a self, older: Option<&'a Bitmap>) -> impl Iterator<Item = u64> + 'a {
        (0..self.len).filter(move |&i| self.has(i) && !older.is_some_and(|o| o.has(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
            .collect()
    }

    #[test]
    fn pieces_verify_against_the_content_id_only() {
        for size in [
            0usize,
            1,
            1024,
            PIECE_SIZE as usize - 1,
            PIECE_SIZE as usize,
            PIECE_SIZE as usize + 1,
            3 * PIECE_SIZE as usize + 77,
        ] {
            let d = data(size);
            let (cid, ob) = outboard_of(&d[..], size as u64).unwrap();
            assert_eq!(cid, ContentId::of(&d));
            let v = Verifier::new(cid, size as u64, ob.clone()).unwrap();
            for i in 0..piece_count(size as u64) {
                let (s, e) = piece_range(size as u64, i);
                let piece = &d[s as usize..e as usize];
                // Split into uneven segments, as the network delivers them.
                let mid = piece.len() / 3;
                let segs = [
                    Bytes::copy_from_slice(&piece[..mid]),
                    Bytes::copy_from_slice(&piece[mid..]),
                ];
                assert!(v.check(i, &segs), "size {size} piece {i}");
                let mut bad = piece.to_vec();
                bad[piece.len() / 2] ^= 1;
                assert!(
                    !v.check(i, &[Bytes::from(bad)]),
                    "corrupt piece {i} of {size} passed"
                );
                assert!(!v.check(i, &[Bytes::copy_from_slice(&piece[..piece.len() - 1])]));
            }
            for flip in (0..ob.len()).step_by(61) {
                let mut wrong = ob.clone();
                wrong[flip] ^= 1;
                assert!(
                    Verifier::new(cid, size as u64, wrong).is_err(),
                    "flipped outboard byte {flip} accepted"
                );
            }
            if !ob.is_empty() {
                assert!(Verifier::new(cid, size as u64, ob[..ob.len() - 1].to_vec()).is_err());
                assert!(Verifier::new(ContentId::of(b"other"), size as u64, ob.clone()).is_err());
            }
        }
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part.state");
        let mut s = PieceState::new(ContentId::of(b"x"), 10 * PIECE_SIZE + 1);
        assert_eq!(s.missing().len(), 11);
        s.mark([0, 3, 10]);
        s.save(&path).unwrap();
        let back = PieceState::load(&path).unwrap();
        assert_eq!(back, s);
        assert!(back.has(3) && !back.has(4));
        assert_eq!(back.missing().len(), 8);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(PieceState::load(&path).is_none());
    }
}
