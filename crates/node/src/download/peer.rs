//! One task per provider of a download: it asks the picker for runs of
//! pieces, fetches each run as one range request, and hands every piece
//! to the verifier as it completes.

use bytes::Bytes;
use shoal_core::wire::PeerRecord;

use super::part::piece_len;
use super::picker::Slot;
use super::pipeline::FromPeer;
use super::{Board, Progress};
use crate::error::{NodeError, Result};
use crate::peer_client::PeerClient;
use crate::pieces;
use crate::pieces::Bitmap;
use crate::reputation::Standing;

/// Most pieces asked for in one range request.
pub(super) const MAX_RUN: usize = 4096;
/// How often a peer still downloading is asked which pieces it holds, when
/// it has nothing we need.
const HAVE_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// Wait after a peer answered that all its upload slots are busy.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Answers in a row that carry no data (busy, pieces not held) before a
/// peer is given up on: about a minute of waiting.
const MAX_IDLE_ANSWERS: u32 = 120;
/// Most pieces a complete provider in a crowd is asked for at once: few
/// in flight from it, so two downloaders seldom ask it for the same piece
/// before either can tell the other has it.
const UNHELD_RUN: usize = 1;
/// How long a complete provider in a crowd waits, finding nothing that no
/// downloader holds, before it is asked for pieces downloaders hold too.
const UNHELD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait for the next bytes of a range before the peer counts as
/// stalled and its pieces go to others.
const STALL: std::time::Duration = std::time::Duration::from_secs(15);

/// What every peer task of one download shares.
pub(super) struct Ctx<'a> {
    pub(super) client: &'a PeerClient,
    pub(super) entry: &'a shoal_core::wire::FileEntry,
    pub(super) board: Board,
    pub(super) verify_tx: tokio::sync::mpsc::Sender<FromPeer>,
    pub(super) progress: &'a dyn Progress,
    /// Once cancelled, no new run starts and waits end at once.
    pub(super) stop: &'a super::Control,
    /// Where this download offers its pieces (and says which it fetches).
    pub(super) offered: Option<std::sync::Arc<crate::swarm::Partial>>,
}

impl Ctx<'_> {
    /// Waits `d`, or less if the download is asked to stop.
    async fn pause_for(&self, d: std::time::Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.stop.cancelled() => {}
        }
    }
}

/// The run length to start a peer with: half a second at its known speed,
/// one piece if it ever sent a bad one.
pub(super) fn first_run(standing: Option<&Standing>) -> usize {
    match standing {
        Some(s) if s.bad_pieces > 0 => 1,
        Some(s) if s.speed > 0 => {
            ((s.speed as f64 * 0.5 / pieces::PIECE_SIZE as f64) as usize).clamp(1, MAX_RUN)
        }
        _ => 16,
    }
}

/// How a request for a run went, short of a hard failure.
enum RunError {
    /// All the peer's upload slots are busy.
    Busy,
    /// The peer (still downloading) does not hold those pieces yet.
    NotHeld,
    /// The peer failed; it is dropped from this download.
    Failed(NodeError),
}

impl From<NodeError> for RunError {
    fn from(e: NodeError) -> Self {
        RunError::Failed(e)
    }
}

/// Which pieces `peer` holds: `None` for all of them, else its bitmap.
async fn pieces_of(ctx: &Ctx<'_>, peer: &PeerRecord) -> Result<Option<Bitmap>> {
    Ok(maps_of(ctx, peer).await?.0)
}

/// Which pieces `peer` holds (`None` for all of them) and which it is
/// fetching now (if it says).
async fn maps_of(ctx: &Ctx<'_>, peer: &PeerRecord) -> Result<(Option<Bitmap>, Option<Bitmap>)> {
    let map = ctx.client.have(peer, ctx.entry.content_id).await?;
    let count = pieces::piece_count(ctx.entry.size);
    let protocol = |reason: &str| NodeError::protocol(peer.peer_id, reason);
    if map.size != ctx.entry.size || map.piece_size != pieces::PIECE_SIZE {
        return Err(protocol(
            "describes the content with another size or piece size",
        ));
    }
    if map.complete {
        return Ok((None, None));
    }
    let bits = map
        .pieces
        .as_deref()
        .and_then(|h| Bitmap::from_hex(count, h))
        .ok_or_else(|| protocol("sent a piece map that does not fit the content"))?;
    // Only a hint: one that does not fit is ignored.
    let fetching = map
        .fetching
        .as_deref()
        .and_then(|h| Bitmap::from_hex(count, h));
    Ok((Some(bits), fetching))
}

/// Fetches pieces from one peer until the download is finished, the peer
/// fails, or it is caught sending a bad piece. Runs grow with the peer's
/// measured speed (about half a second of data each), so a fast peer takes
/// more of the file; in the end game idle peers fetch copies of the pieces
/// still outstanding, so a slow peer cannot hold up the last piece. A peer
/// still downloading is asked now and then which pieces it holds.
pub(super) async fn worker(
    ctx: &Ctx<'_>,
    me: Slot,
    peer: PeerRecord,
    mut run_len: usize,
) -> Result<()> {
    let board = &ctx.board;
    let mut have = match pieces_of(ctx, &peer).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(peer = %peer.name, error = %e, "peer cannot say which pieces it holds");
            board.with(|b| {
                b.tallies[me.index()].failed = true;
                b.picker.leave(me);
            });
            return Err(e);
        }
    };
    board.update(|b| b.picker.set_have(me, have.clone()));
    if let Some(route) = ctx.client.route(peer.peer_id) {
        tracing::info!(peer = %peer.name, via = route.via, addr = %route.addr, "fetching from a provider");
        ctx.progress.connected(&peer, &route);
    }
    let mut polled = std::time::Instant::now();
    let mut unheld_since: Option<std::time::Instant> = None;
    let mut idle_answers = 0u32;
    // Waits before asking again after a connection failure; reset by success.
    let mut backoff: Option<Box<dyn Iterator<Item = std::time::Duration> + Send>> = None;
    let result = loop {
        let notified = board.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let run = {
            let mut b = board.lock();
            if b.picker.finished() || b.picker.is_out(me) || ctx.stop.is_cancelled() {
                break Ok(());
            }
            // A complete provider in a crowd is scarce: it is asked for
            // what no downloader holds, and for the rest only once the
            // downloaders holding it have had a moment to deliver.
            let patient = unheld_since.is_none_or(|t| t.elapsed() < UNHELD_PATIENCE);
            if have.is_none() && b.picker.in_crowd() && patient {
                let run = b.picker.pick_unheld(me, run_len.min(UNHELD_RUN));
                if run.is_empty() {
                    unheld_since.get_or_insert_with(std::time::Instant::now);
                } else {
                    unheld_since = None;
                }
                run
            } else {
                let run = b.picker.pick(me, run_len);
                if !run.is_empty() {
                    unheld_since = None;
                }
                run
            }
        };
        let mut ask_pieces = false;
        if run.is_empty() {
            if have.is_none() {
                // Everything is asked for and nothing is free to copy yet
                // (or only what downloaders hold: look again once they had
                // their moment).
                let patience = unheld_since.map_or(STALL, |t| {
                    UNHELD_PATIENCE.saturating_sub(t.elapsed())
                        + std::time::Duration::from_millis(1)
                });
                tokio::select! {
                    () = notified => {}
                    () = ctx.pause_for(patience) => {}
                }
                continue;
            }
            // It holds nothing we need yet: wait for news, then ask again.
            tokio::select! {
                () = notified => {}
                () = ctx.pause_for(HAVE_POLL) => {}
            }
            ask_pieces = polled.elapsed() >= HAVE_POLL;
        } else {
            let started = std::time::Instant::now();
            let mut sent = 0usize;
            if let Some(o) = &ctx.offered {
                run.iter().for_each(|&i| o.fetching.set(i));
            }
            let result = fetch_run(ctx, me, &peer, &run, &mut sent).await;
            if let Some(o) = &ctx.offered {
                run.iter().for_each(|&i| o.fetching.clear(i));
            }
            board.update(|b| {
                for &p in &run[sent..] {
                    b.picker.returned(p);
                }
                let bytes: u64 = run[..sent]
                    .iter()
                    .map(|&i| piece_len(ctx.entry.size, i))
                    .sum();
                let t = &mut b.tallies[me.index()];
                t.bytes += bytes;
                t.busy += started.elapsed();
            });
            match result {
                Ok(()) => {
                    idle_answers = 0;
                    backoff = None;
                    // What a peer still downloading holds changes all the
                    // time; the crowd's rarity is only as good as it is fresh.
                    ask_pieces = have.is_some() && polled.elapsed() >= HAVE_POLL;
                    let bytes = (run.len() as u64 * pieces::PIECE_SIZE) as f64;
                    let rate = bytes / started.elapsed().as_secs_f64().max(1e-3);
                    // Half a second at the speed it showed, growing at most
                    // twofold a run, so a burst it allowed once (a rate
                    // limiter's allowance) cannot buy a run of seconds.
                    let want = (rate * 0.5 / pieces::PIECE_SIZE as f64) as usize;
                    run_len = want.clamp(1, (run.len() * 2).clamp(1, MAX_RUN));
                }
                Err(RunError::Busy) => {
                    idle_answers += 1;
                    let jitter = std::time::Duration::from_millis(fastrand::u64(..250));
                    ctx.pause_for(BUSY_WAIT + jitter).await;
                }
                Err(RunError::NotHeld) => {
                    idle_answers += 1;
                    ask_pieces = true;
                }
                Err(RunError::Failed(e)) if e.is_transient() => {
                    // Its pieces are back in the pool while we wait.
                    let delays = backoff
                        .get_or_insert_with(|| Box::new(crate::retry::delays(ctx.client.retry())));
                    match delays.next() {
                        Some(d) => {
                            tracing::debug!(peer = %peer.name, error = %e, retry_in = ?d, "piece request failed");
                            ctx.pause_for(d).await;
                        }
                        None => break Err(e),
                    }
                }
                Err(RunError::Failed(e)) => break Err(e),
            }
            if idle_answers > MAX_IDLE_ANSWERS {
                break Err(NodeError::unreachable(
                    &peer,
                    "it kept answering busy or without the pieces it listed",
                ));
            }
        }
        if ask_pieces {
            polled = std::time::Instant::now();
            match maps_of(ctx, &peer).await {
                Ok((now, fetching)) => {
                    have = now;
                    board.update(|b| {
                        b.picker.set_have(me, have.clone());
                        b.picker.set_fetching(me, fetching);
                    });
                }
                Err(e) => break Err(e),
            }
        }
    };
    board.update(|b| {
        if result.is_err() {
            b.tallies[me.index()].failed = true;
        }
        b.picker.leave(me);
    });
    if let Err(e) = &result {
        tracing::warn!(peer = %peer.name, error = %e, "peer dropped from this download");
        ctx.progress.provider_dropped(&peer, e);
    }
    result
}

/// Requests one run of consecutive pieces and hands each complete piece to
/// the verifier; `sent` counts the pieces handed over.
async fn fetch_run(
    ctx: &Ctx<'_>,
    me: Slot,
    peer: &PeerRecord,
    run: &[u64],
    sent: &mut usize,
) -> Result<(), RunError> {
    let entry = ctx.entry;
    let protocol = |reason: String| RunError::Failed(NodeError::protocol(peer.peer_id, reason));
    let (start, _) = pieces::piece_range(entry.size, run[0]);
    let (_, end) = pieces::piece_range(entry.size, run[run.len() - 1]);
    let mut resp = ctx
        .client
        .content(peer, entry.content_id, Some((start, end)))
        .await?;
    let expected_range = shoal_core::wire::range::content_range(start, end, entry.size);
    let whole = start == 0 && end == entry.size;
    match resp.status().as_u16() {
        206 if resp
            .headers()
            .get(hyper::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            == Some(expected_range.as_str()) => {}
        200 if whole => {}
        200 => return Err(protocol("ignores Range requests".into())),
        503 => return Err(RunError::Busy),
        416 => return Err(RunError::NotHeld),
        404 => {
            return Err(RunError::Failed(NodeError::refused(
                peer.peer_id,
                404,
                "it no longer has the content",
            )));
        }
        _ => {
            return Err(protocol(format!(
                "answered a request for {expected_range:?} wrongly"
            )));
        }
    }
    if let Some(len) = resp.content_length()
        && len != end - start
    {
        return Err(protocol(format!(
            "announced {len} bytes for a range of {}",
            end - start
        )));
    }
    let mut k = 0usize;
    let mut need = piece_len(entry.size, run[0]);
    let mut segments: Vec<Bytes> = Vec::new();
    let mut got = 0u64;
    loop {
        // A peer that stops sending gives its pieces back to the others.
        let next = tokio::time::timeout(STALL, resp.chunk())
            .await
            .map_err(|_| {
                RunError::Failed(NodeError::unreachable(
                    peer,
                    format!("it sent nothing for {}s", STALL.as_secs()),
                ))
            })?
            .map_err(|e| RunError::Failed(unreachable(peer, e)))?;
        let Some(mut chunk) = next else { break };
        got += chunk.len() as u64;
        if got > end - start {
            return Err(protocol(format!(
                "sent more than the {} bytes asked for",
                end - start
            )));
        }
        ctx.progress.advance(chunk.len() as u64);
        ctx.client.download_limit().take(chunk.len()).await;
        while !chunk.is_empty() {
            if need == 0 {
                return Err(protocol("sent bytes past the pieces asked for".into()));
            }
            let take = need.min(chunk.len() as u64) as usize;
            segments.push(chunk.split_to(take));
            need -= take as u64;
            if need == 0 {
                let piece = FromPeer {
                    index: run[k],
                    data: std::mem::take(&mut segments),
                    peer: me,
                };
                ctx.board.with(|b| b.picker.received(run[k]));
                if ctx.verify_tx.send(piece).await.is_err() {
                    return Ok(());
                }
                k += 1;
                *sent = k;
                if ctx.board.read(|b| b.picker.is_out(me)) {
                    return Ok(()); // caught sending a bad piece: stop at once
                }
                need = run.get(k).map_or(0, |&i| piece_len(entry.size, i));
            }
        }
    }
    if got != end - start {
        return Err(RunError::Failed(NodeError::unreachable(
            peer,
            format!("connection ended after {got} of {} bytes", end - start),
        )));
    }
    Ok(())
}

fn unreachable(peer: &PeerRecord, e: crate::peer_client::BodyError) -> NodeError {
    NodeError::unreachable_by(peer, e.to_string(), Some(Box::new(e)))
}
