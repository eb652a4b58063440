//! The two threads behind the network: the verifier checks each piece
//! against the content id, the writer puts good ones at their offsets in
//! the `.part` and, through the [`Flusher`], makes them durable and
//! records them. The network never waits for the CPU or the disk beyond
//! [`PIPE_DEPTH`] pieces.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::picker::Slot;
use super::{Board, Control};
use crate::pieces::{self, PieceState, Verifier};
use crate::swarm::Partial;

/// Pieces buffered between the network, the verifier and the writer.
pub(super) const PIPE_DEPTH: usize = 2;
/// Longest time between two saves of the piece record.
const STATE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Bytes written between two background flushes to disk.
const FLUSH_EVERY: u64 = 8 * 1024 * 1024;

/// A received piece on its way to the disk, and who sent it.
pub(super) struct FromPeer {
    pub(super) index: u64,
    pub(super) data: Vec<Bytes>,
    pub(super) peer: Slot,
}

/// The running verifier and writer of one download.
pub(super) struct Pipeline {
    pub(super) tx: tokio::sync::mpsc::Sender<FromPeer>,
    verifier: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    bad: tokio::sync::mpsc::UnboundedReceiver<(Slot, u64)>,
}

impl Pipeline {
    /// Starts both threads. Pieces written are set in `offered` (so other
    /// peers can fetch them) and recorded in `state` at `state_path`.
    pub(super) fn start(
        board: Board,
        verifier: Arc<Verifier>,
        file: File,
        state: PieceState,
        state_path: PathBuf,
        offered: Option<Arc<Partial>>,
        control: &Control,
    ) -> Self {
        let size = verifier.size();
        let (tx, mut verify_rx) = tokio::sync::mpsc::channel::<FromPeer>(PIPE_DEPTH);
        let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<FromPeer>(PIPE_DEPTH);
        let (bad_tx, bad) = tokio::sync::mpsc::unbounded_channel::<(Slot, u64)>();
        let verifier = {
            let board = board.clone();
            let mark = control.thread();
            tokio::task::spawn_blocking(move || {
                let _mark = mark;
                while let Some(piece) = verify_rx.blocking_recv() {
                    if !verifier.check(piece.index, &piece.data) {
                        board.update(|b| {
                            b.picker.bad(piece.peer, piece.index);
                            b.tallies[piece.peer.index()].bad_pieces += 1;
                        });
                        let _ = bad_tx.send((piece.peer, piece.index));
                        continue;
                    }
                    board.with(|b| b.tallies[piece.peer.index()].good_pieces += 1);
                    if write_tx.blocking_send(piece).is_err() {
                        break;
                    }
                }
            })
        };
        let (mark, flusher_mark) = (control.thread(), control.thread());
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let _mark = mark;
            let mut flusher = Flusher::start(file.try_clone()?, state, state_path, flusher_mark);
            let mut unflushed = 0u64;
            let mut written = Vec::new();
            while let Some(p) = write_rx.blocking_recv() {
                if !board.read(|b| b.picker.wanted(p.index)) {
                    continue; // an end-game copy of a piece already written
                }
                let (start, end) = pieces::piece_range(size, p.index);
                shoal_fs::at::write_all_at(&file, &p.data, start)?;
                if let Some(h) = &offered {
                    h.have.set(p.index);
                }
                board.update(|b| b.picker.written(p.index));
                written.push(p.index);
                unflushed += end - start;
                if unflushed >= FLUSH_EVERY {
                    flusher.flush(std::mem::take(&mut written));
                    unflushed = 0;
                }
            }
            flusher.flush(written);
            flusher.finish()?;
            // Only a complete file gets its full length; an unfinished one
            // keeps the length of what it holds, so what was reserved past
            // it can be given back.
            if board.read(|b| b.picker.finished()) {
                file.set_len(size)?;
            }
            file.sync_all()
        });
        Self {
            tx,
            verifier,
            writer,
            bad,
        }
    }

    /// Waits for both threads to finish what they were given (the sender
    /// must be the last one: every peer task has ended); returns what the
    /// writer did and the bad pieces seen, by peer.
    pub(super) async fn finish(self) -> (std::io::Result<()>, Vec<(Slot, u64)>) {
        let Self {
            tx,
            verifier,
            writer,
            mut bad,
        } = self;
        drop(tx);
        let stopped = |what: &str, e: tokio::task::JoinError| {
            std::io::Error::other(format!("the download's {what} stopped: {e}"))
        };
        let verified = verifier.await.map_err(|e| stopped("verifier", e));
        let written = match writer.await {
            Ok(r) => r,
            Err(e) => Err(stopped("disk writer", e)),
        };
        let mut bad_pieces = Vec::new();
        while let Ok(b) = bad.try_recv() {
            bad_pieces.push(b);
        }
        (verified.and(written), bad_pieces)
    }
}

/// Makes written pieces durable on its own thread: it syncs the file, then
/// records the pieces as verified, so the record never claims a piece the
/// disk might not have, and disk writeback overlaps the download.
struct Flusher {
    tx: std::sync::mpsc::Sender<Vec<u64>>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    fn start(file: File, mut state: PieceState, path: PathBuf, mark: super::ThreadMark) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u64>>();
        let thread = std::thread::spawn(move || {
            let _mark = mark;
            let mut saved = std::time::Instant::now();
            let mut dirty = false;
            while let Ok(mut pieces) = rx.recv() {
                // Coalesce whatever queued up while the last sync ran.
                while let Ok(more) = rx.try_recv() {
                    pieces.extend(more);
                }
                if pieces.is_empty() {
                    continue;
                }
                file.sync_data()?;
                state.mark(pieces);
                dirty = true;
                // The record is a shortcut for resuming (pieces it lists are
                // not re-checked); pieces written since are found by
                // re-verifying the .part, so saving it now and then is enough.
                if saved.elapsed() >= STATE_EVERY {
                    state.save(&path)?;
                    saved = std::time::Instant::now();
                    dirty = false;
                }
            }
            if dirty {
                state.save(&path)?;
            }
            Ok(())
        });
        Self { tx, thread }
    }

    fn flush(&mut self, pieces: Vec<u64>) {
        let _ = self.tx.send(pieces);
    }

    fn finish(self) -> std::io::Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("flusher panicked")))
    }
}
