//! One download from start to end: the `.part` opened, the outboard
//! proven, pieces recovered, peer tasks run while sources bring more
//! providers, the file published, the reputation recorded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Control;
use shoal_core::wire::{FileEntry, MAX_FILE_SIZE, PeerRecord};
use shoal_core::{ContentId, PeerId};

use super::part::{self, PartFile, piece_len};
use super::peer::{Ctx, first_run, worker};
use super::picker::Picker;
use super::pipeline::Pipeline;
use super::resolve::{local_name, too_large, usable_outboard};
use super::{Board, Progress, Swarm, providers};
use crate::error::{NodeError, Result};
use crate::peer_client::PeerClient;
use crate::pieces;
use crate::reputation::{Standing, Tally, now_secs};
use crate::swarm::{Have, Offered, Partial};

/// Peers asked for the outboard at once.
const OUTBOARDS_AT_ONCE: usize = 4;
/// Most pieces of the first run from a peer while the download offers its
/// own pieces to others (see `run_workers`).
const CROWD_FIRST_RUN: usize = 8;
/// How long range requests in flight may go on once a download is asked
/// to stop: a run is about half a second of data at its peer's speed, so
/// most end in time and no byte that came is fetched again.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(800);
/// How long a download with no provider left goes on asking its sources,
/// from the first refresh that brought none, before it gives up: one more
/// steady refresh (the first ones come faster, see
/// [`providers::FIRST_REFRESHES`]).
const NOBODY_PATIENCE: std::time::Duration = providers::REFRESH_EVERY;

/// Every known peer's standing (none if there is no reputation database
/// or it cannot be read, which is worth a warning but not a failure).
async fn standings(swarm: &Swarm) -> HashMap<PeerId, Standing> {
    let Some(rep) = swarm.reputation.clone() else {
        return Default::default();
    };
    match tokio::task::spawn_blocking(move || rep.all()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read peer reputation; treating every peer as new");
            Default::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer reputation");
            Default::default()
        }
    }
}

/// Downloads `entry` from all of `peers` at once (pieces from each, by
/// speed) into `out_dir`, resuming a partial download if one is there,
/// until it is done, fails, or `stop` is cancelled. Stopped, it returns
/// [`NodeError::Stopped`] once every thread of it has ended and its
/// `.part` is unlocked, with the pieces that arrived kept for a resume.
pub(super) async fn run(
    client: &PeerClient,
    peers: &[PeerRecord],
    entry: &FileEntry,
    out_dir: &Path,
    progress: &dyn Progress,
    swarm: &Swarm,
    stop: &Control,
) -> Result<PathBuf> {
    let name = local_name(&entry.name)?;
    let target = out_dir.join(&name);
    if target.symlink_metadata().is_ok() {
        return Err(NodeError::Exists(target));
    }
    if entry.size > MAX_FILE_SIZE
        && let Some(p) = peers.first()
    {
        return Err(too_large(p, entry));
    }
    let standings = standings(swarm).await;
    let now = now_secs();
    let (peers, banned): (Vec<&PeerRecord>, Vec<&PeerRecord>) = peers
        .iter()
        .partition(|p| !standings.get(&p.peer_id).is_some_and(|s| s.banned(now)));
    for p in &banned {
        tracing::warn!(peer = %p.name, "skipping a peer banned for sending bad data");
    }
    if peers.is_empty()
        && let Some(p) = banned.first()
    {
        return Err(NodeError::Banned {
            peer: p.peer_id,
            name: p.name.clone(),
            until: standings
                .get(&p.peer_id)
                .and_then(|s| s.banned_until)
                .unwrap_or(now),
        });
    }
    let peers: Vec<PeerRecord> = peers.into_iter().cloned().collect();
    std::fs::create_dir_all(out_dir).map_err(NodeError::file("create folder", out_dir))?;
    let part_path = part::part_path(out_dir, &name);
    let part = PartFile::open(&part_path, entry)?;
    let on_disk = part.file.metadata().map_or(0, |m| m.len());
    part::check_room(out_dir, &part_path, entry, on_disk)?;
    progress.start(&name, entry.size);
    if part.resumed {
        // What it holds counts once checked (see `recover`).
        tracing::info!(file = %part_path.display(), "resuming");
    }
    let spare = part
        .file
        .try_clone()
        .map_err(NodeError::file("open", &part_path))?;
    let result = receive(
        client, &peers, entry, part, progress, swarm, &standings, stop,
    )
    .await;
    if result.is_err() {
        shoal_fs::release_unwritten(&spare, entry.size);
    }
    drop(spare);
    let offered = result?;
    progress.finishing();
    part::publish(&part_path, &target)?;
    if let Some(o) = offered {
        o.settle(target.clone());
    }
    let _ = std::fs::remove_file(pieces::PieceState::path_for(&part_path));
    tracing::info!(peers = peers.len(), file = %target.display(), size = entry.size, "downloaded and verified");
    Ok(target)
}

/// Fetches the missing pieces of `entry` from all `peers` at once (and from
/// providers that join meanwhile), checking each piece against the content
/// id before it is written at its offset. A peer that fails is dropped
/// from this download; one that sends a bad piece is dropped at once and
/// its piece fetched elsewhere. What each peer did goes to the reputation
/// database at the end.
#[allow(clippy::too_many_arguments)]
async fn receive(
    client: &PeerClient,
    peers: &[PeerRecord],
    entry: &FileEntry,
    part: PartFile,
    progress: &dyn Progress,
    swarm: &Swarm,
    standings: &HashMap<PeerId, Standing>,
    stop: &Control,
) -> Result<Option<Offered>> {
    let PartFile {
        file,
        mut state,
        resumed,
        path: part_path,
        state_path,
    } = part;
    let mut missing = state.missing();
    if missing.is_empty() {
        // Nothing to fetch: an empty file (a resumed `.part` is checked
        // piece by piece, so its record never leaves nothing missing).
        if entry.size == 0 && entry.content_id != ContentId::of(b"") {
            let peer = peers
                .first()
                .map_or(PeerId::from_bytes([0; 32]), |p| p.peer_id);
            return Err(NodeError::protocol(
                peer,
                "lists an empty file under a non-empty content id",
            ));
        }
        file.sync_all()
            .map_err(NodeError::file("sync", &state_path))?;
        return Ok(None);
    }

    // The outboard from the first peer that gives a correct one.
    let mut errors: Vec<NodeError> = Vec::new();
    let mut verified = None;
    let mut no_outboard: Vec<(PeerId, Tally)> = Vec::new();
    let outboard_size = pieces::tree(entry.size).outboard_size();
    {
        use futures_util::StreamExt;
        // A few peers are asked at once, so ones that never answer cost
        // no more than the time a good one takes.
        let asks: Vec<_> = peers
            .iter()
            .map(|peer| usable_outboard(client, peer, entry, outboard_size))
            .collect();
        let mut tries = futures_util::stream::iter(asks).buffer_unordered(OUTBOARDS_AT_ONCE);
        loop {
            let next = tokio::select! {
                next = tries.next() => next,
                () = stop.cancelled() => return Err(NodeError::Stopped),
            };
            let Some((peer, got)) = next else { break };
            match got {
                Ok(v) => {
                    verified = Some(v);
                    break;
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.name, error = %e, "no usable outboard from this peer; dropped from this download");
                    progress.provider_dropped(peer, &e);
                    no_outboard.push((
                        peer.peer_id,
                        Tally {
                            failed: true,
                            ..Tally::default()
                        },
                    ));
                    errors.push(e);
                }
            }
        }
    }
    let peers: Vec<PeerRecord> = peers
        .iter()
        .filter(|p| !no_outboard.iter().any(|(id, _)| *id == p.peer_id))
        .cloned()
        .collect();
    let Some((verifier, outboard)) = verified else {
        record_reputation(swarm, no_outboard).await;
        return Err(errors
            .pop()
            .unwrap_or(NodeError::NoProvider(entry.content_id)));
    };
    let verifier = Arc::new(verifier);
    part::reserve(&file, &part_path, entry.size)?;
    if resumed {
        // Pieces written after the record was last saved are still good:
        // find them by checking what the .part holds.
        let f = file
            .try_clone()
            .map_err(NodeError::file("read", &part_path))?;
        let (v, m, s) = (verifier.clone(), missing.clone(), stop.clone());
        let mark = stop.thread();
        let found = tokio::task::spawn_blocking(move || {
            let _mark = mark;
            part::recover(&f, &v, &m, &s)
        })
        .await
        .map_err(|e| NodeError::Internal(format!("recovery stopped: {e}")))?;
        if !found.is_empty() {
            let bytes: u64 = found.iter().map(|&i| piece_len(entry.size, i)).sum();
            tracing::info!(
                pieces = found.len(),
                bytes,
                "recovered verified pieces from the .part"
            );
            progress.advance(bytes);
            state.mark(found);
            missing = state.missing();
        }
        if stop.is_cancelled() {
            return Err(NodeError::Stopped);
        }
    }

    // Offer what is verified to other peers while the rest arrives.
    let offered = swarm.partials.as_ref().map(|partials| {
        let have = Have::from_bitmap(entry.size, &state.verified());
        let partial = Arc::new(Partial {
            part: part_path.clone(),
            size: entry.size,
            outboard,
            have,
            fetching: Have::new(entry.size),
        });
        (partials.offer(entry.content_id, partial.clone()), partial)
    });
    let board = Board::new(Picker::new(
        pieces::piece_count(entry.size),
        &missing,
        offered.is_some(),
    ));
    let pipeline = Pipeline::start(
        board.clone(),
        verifier,
        file,
        state,
        state_path.clone(),
        offered.as_ref().map(|(_, p)| p.clone()),
        stop,
    );
    let ctx = Ctx {
        client,
        entry,
        board: board.clone(),
        verify_tx: pipeline.tx.clone(),
        progress,
        stop,
        offered: offered.as_ref().map(|(_, p)| p.clone()),
    };
    let (roster, results) = run_workers(&ctx, &peers, swarm, standings, stop).await;
    drop(ctx);
    let (written, bad) = pipeline.finish().await;
    let tallies = std::mem::take(&mut board.lock().tallies);
    no_outboard.extend(roster.iter().map(|p| p.peer_id).zip(tallies));
    record_reputation(swarm, no_outboard).await;
    written.map_err(NodeError::file("write", &part_path))?;
    let bad_pieces: Vec<NodeError> = bad
        .into_iter()
        .map(|(slot, piece)| {
            let p = &roster[slot.index()];
            tracing::warn!(peer = %p.name, piece, "bad piece: peer dropped from this download");
            NodeError::BadPiece {
                peer: p.peer_id,
                name: p.name.clone(),
                piece,
            }
        })
        .collect();
    if board.read(|b| b.picker.finished()) {
        return Ok(offered.map(|(o, _)| o));
    }
    if stop.is_cancelled() {
        return Err(NodeError::Stopped);
    }
    // Nobody could deliver everything: report what went wrong, bad data first.
    errors.extend(results.into_iter().filter_map(|r| r.err()));
    Err(bad_pieces
        .into_iter()
        .next()
        .or_else(|| errors.pop())
        .unwrap_or_else(|| NodeError::Internal("download stopped with pieces missing".into())))
}

/// Runs a task per peer, adding providers the sources report meanwhile,
/// until the download is finished, no peer is left, or `stop` is
/// cancelled (then every task is dropped at once). Returns every peer that
/// took part (in the order of their slots) and how each ended.
async fn run_workers(
    ctx: &Ctx<'_>,
    peers: &[PeerRecord],
    swarm: &Swarm,
    standings: &HashMap<PeerId, Standing>,
    stop: &Control,
) -> (Vec<PeerRecord>, Vec<Result<()>>) {
    use futures_util::StreamExt;
    let mut roster: Vec<PeerRecord> = Vec::new();
    let mut workers = futures_util::stream::FuturesUnordered::new();
    let join = |roster: &mut Vec<PeerRecord>, peer: PeerRecord| {
        roster.push(peer.clone());
        let me = ctx.board.with(|b| {
            b.tallies.push(Tally::default());
            b.picker.join()
        });
        debug_assert_eq!(me.index() + 1, roster.len());
        // A download that offers its pieces may be one of a crowd that
        // started together: it starts small (runs double as they succeed),
        // so the crowd's first requests to a seeder seldom overlap.
        let first = first_run(standings.get(&peer.peer_id));
        let first = if ctx.offered.is_some() {
            first.min(CROWD_FIRST_RUN)
        } else {
            first
        };
        worker(ctx, me, peer.clone(), first)
    };
    for p in peers {
        workers.push(join(&mut roster, p.clone()));
    }
    let (more_tx, mut more_rx) = tokio::sync::mpsc::channel(1);
    let refresher = if swarm.sources.is_empty() {
        drop(more_tx);
        None
    } else {
        Some(tokio::spawn(providers::refresh(
            swarm.sources.clone(),
            ctx.entry.content_id,
            more_tx,
        )))
    };
    let mut results = Vec::new();
    let mut nobody_since: Option<std::time::Instant> = None;
    ctx.progress.sources(workers.len());
    loop {
        if ctx.board.read(|b| b.picker.finished()) && workers.is_empty() {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => {
                // Runs in flight may end, for a moment, so the pieces
                // they carry are kept; then whatever is left is dropped.
                let grace = tokio::time::sleep(STOP_GRACE);
                tokio::pin!(grace);
                while !workers.is_empty() {
                    tokio::select! {
                        r = workers.next() => results.extend(r),
                        () = &mut grace => break,
                    }
                }
                break;
            }
            Some(r) = workers.next(), if !workers.is_empty() => {
                results.push(r);
                let (finished, live) = ctx.board.read(|b| (b.picker.finished(), b.picker.live()));
                if !finished {
                    ctx.progress.sources(live);
                }
                if workers.is_empty() && (finished || refresher.is_none()) {
                    break;
                }
            }
            Some(found) = more_rx.recv() => {
                let now = now_secs();
                let mut added = 0;
                for p in found {
                    let known = p.peer_id == ctx.client.peer_id()
                        || roster.iter().any(|q| q.peer_id == p.peer_id)
                        || standings.get(&p.peer_id).is_some_and(|s| s.banned(now));
                    if !known && !ctx.board.read(|b| b.picker.finished()) {
                        tracing::debug!(peer = %p.name, "a provider joined the download");
                        workers.push(join(&mut roster, p));
                        added += 1;
                    }
                }
                if added > 0 {
                    ctx.progress.sources(ctx.board.read(|b| b.picker.live()));
                }
                if workers.is_empty() {
                    let since = *nobody_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= NOBODY_PATIENCE {
                        break;
                    }
                } else {
                    nobody_since = None;
                }
            }
            else => break,
        }
    }
    // Tasks still running (stopped): their pieces in flight go back.
    drop(workers);
    if let Some(r) = refresher {
        r.abort();
    }
    (roster, results)
}

/// Adds what each peer did to the reputation database; bans are logged.
async fn record_reputation(swarm: &Swarm, tallies: Vec<(PeerId, Tally)>) {
    let Some(rep) = swarm.reputation.clone() else {
        return;
    };
    match tokio::task::spawn_blocking(move || rep.record(&tallies)).await {
        Ok(Ok(banned)) => {
            for b in banned {
                tracing::warn!(
                    peer = %b.peer,
                    bad_pieces = b.bad_pieces,
                    until = b.until,
                    "peer banned for sending bad data"
                );
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record peer reputation"),
        Err(e) => tracing::warn!(error = %e, "cannot record peer reputation"),
    }
}
