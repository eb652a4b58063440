//! The piece picker: which pieces each peer of a download fetches next.
//!
//! # Invariant
//!
//! Every piece of the file is in exactly one [`State`]:
//!
//! - `Done`: on disk and verified (written by this download, or checked
//!   before it began). A piece never leaves `Done`.
//! - `Free`: wanted, and no peer is fetching it.
//! - `Asked { copies, received }`: `copies ≥ 1` peers are fetching it
//!   (more than one only in the end game); `received` once a copy reached
//!   the verifier, after which no further copy is handed out.
//!
//! `free` counts the `Free` pieces and `done` the `Done` ones, always.
//! A copy handed out by [`Picker::pick`] is ended exactly once, by
//! [`Picker::returned`] (it will not come, or came bad) or by
//! [`Picker::written`]; when the last copy of an `Asked` piece is returned
//! unwritten, the piece is `Free` again, so nothing a failed peer took is
//! lost.
//!
//! # Policy
//!
//! - **Runs.** A peer asks for a run of consecutive pieces (one range
//!   request), as long as its speed allows, but never more than a fair
//!   share of what is free: `free / (2 × peers)` (at least one) while
//!   several peers fetch, so one fast start cannot take the whole file.
//! - **Rarest first.** Once any peer still downloading takes part, the
//!   file is shared in a crowd: a run starts at a random one of the pieces
//!   fewest such peers hold, and stays among pieces that rare, so the
//!   crowd fetches different pieces from the seeder and trades them. With
//!   only complete providers, runs go in file order (the disk likes it).
//! - **Complete providers in a crowd** are scarce: they are asked first
//!   only for pieces no downloader holds ([`Picker::pick_unheld`]).
//! - **End game.** When a peer finds nothing free that it can fetch, it
//!   gets a copy of a piece others are still fetching, the one with the
//!   fewest copies, the last of those first, so a slow peer cannot hold up
//!   the end.
//! - **Bad data.** A peer caught with a bad piece is dropped at once
//!   ([`Picker::bad`]): its piece goes back, and it is given nothing more.
//!
//! Peers are [`Slot`] handles; the picker knows only which pieces a peer
//! holds, not who it is.

use crate::pieces::Bitmap;

/// A peer of one download, as the picker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(usize);

impl Slot {
    /// Its position in the order peers joined (0 first).
    pub fn index(self) -> usize {
        self.0
    }
}

/// What one piece is doing (see the module's invariant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Verified on disk.
    Done,
    /// Wanted; nobody fetches it.
    Free,
    /// Being fetched by `copies` peers; `received` once a copy is in.
    Asked {
        /// Peers fetching it.
        copies: u32,
        /// A copy reached the verifier.
        received: bool,
    },
}

#[derive(Debug)]
struct Peer {
    /// Which pieces it holds: `None` for a complete provider.
    have: Option<Bitmap>,
    /// Which pieces it (a peer still downloading) says it is fetching.
    fetching: Option<Bitmap>,
    /// Left the download, or was dropped.
    gone: bool,
    /// Caught sending a bad piece.
    dropped: bool,
    /// The piece after its last run: where its next run goes on, if that
    /// piece is still free and among the rarest.
    next: Option<usize>,
}

/// The pieces of one download and who fetches which.
#[derive(Debug)]
pub struct Picker {
    pieces: Vec<State>,
    free: usize,
    done: usize,
    /// How many peers still downloading hold each piece.
    avail: Vec<u16>,
    /// How many peers still downloading are fetching each piece.
    coming: Vec<u16>,
    peers: Vec<Peer>,
    live: usize,
    /// Rarest first (a crowd takes part) rather than file order.
    spread: bool,
}

impl Picker {
    /// `count` pieces, of which `missing` are wanted (the others are on
    /// disk). `spread` starts rarest-first at once (this download offers
    /// its pieces to others, so downloaders of one file should differ).
    pub fn new(count: u64, missing: &[u64], spread: bool) -> Self {
        let mut pieces = vec![State::Done; count as usize];
        let mut free = 0;
        for &p in missing {
            if let Some(s) = pieces.get_mut(p as usize)
                && *s == State::Done
            {
                *s = State::Free;
                free += 1;
            }
        }
        Self {
            done: pieces.len() - free,
            pieces,
            free,
            avail: vec![0; count as usize],
            coming: vec![0; count as usize],
            peers: Vec::new(),
            live: 0,
            spread,
        }
    }

    /// A peer joins; it holds every piece until [`Picker::set_have`] says
    /// otherwise.
    pub fn join(&mut self) -> Slot {
        self.peers.push(Peer {
            have: None,
            fetching: None,
            gone: false,
            dropped: false,
            next: None,
        });
        self.live += 1;
        Slot(self.peers.len() - 1)
    }

    /// The peer leaves: what it holds no longer counts toward rarity. Its
    /// copies in flight must be ended by the caller first.
    pub fn leave(&mut self, peer: Slot) {
        let Some(p) = self.peers.get_mut(peer.0) else {
            return;
        };
        if std::mem::replace(&mut p.gone, true) {
            return;
        }
        self.live -= 1;
        if let Some(old) = p.have.take() {
            for i in old.added_since(None) {
                if let Some(a) = self.avail.get_mut(i as usize) {
                    *a = a.saturating_sub(1);
                }
            }
        }
        if let Some(old) = p.fetching.take() {
            for i in old.added_since(None) {
                if let Some(c) = self.coming.get_mut(i as usize) {
                    *c = c.saturating_sub(1);
                }
            }
        }
    }

    /// The peer (still downloading) says it is fetching `fetching` now.
    pub fn set_fetching(&mut self, peer: Slot, fetching: Option<Bitmap>) {
        let Some(p) = self.peers.get_mut(peer.0) else {
            return;
        };
        if p.gone {
            return;
        }
        let fetching = fetching.filter(|f| f.len() == self.pieces.len() as u64);
        if let Some(old) = std::mem::replace(&mut p.fetching, fetching) {
            for i in old.added_since(None) {
                self.coming[i as usize] = self.coming[i as usize].saturating_sub(1);
            }
        }
        if let Some(new) = &p.fetching {
            for i in new.added_since(None) {
                self.coming[i as usize] = self.coming[i as usize].saturating_add(1);
            }
        }
    }

    /// The peer now holds `have` (`None`: every piece, it is complete).
    pub fn set_have(&mut self, peer: Slot, have: Option<Bitmap>) {
        let Some(p) = self.peers.get_mut(peer.0) else {
            return;
        };
        if p.gone {
            return;
        }
        let old = std::mem::replace(&mut p.have, have);
        let new = p.have.as_ref();
        if let Some(old) = &old {
            for i in old.added_since(None) {
                if !new.is_some_and(|n| n.has(i)) {
                    self.avail[i as usize] = self.avail[i as usize].saturating_sub(1);
                }
            }
        }
        if let Some(new) = new {
            for i in new.added_since(old.as_ref()) {
                if let Some(a) = self.avail.get_mut(i as usize) {
                    *a = a.saturating_add(1);
                }
            }
            // A peer still downloading takes part: share as a crowd.
            self.spread = true;
        }
    }

    /// Whether `peer` was caught sending a bad piece (or left).
    pub fn is_out(&self, peer: Slot) -> bool {
        self.peers.get(peer.0).is_none_or(|p| p.gone || p.dropped)
    }

    /// Peers taking part now.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Whether every piece is done.
    pub fn finished(&self) -> bool {
        self.done == self.pieces.len()
    }

    /// Pieces not yet done.
    pub fn remaining(&self) -> usize {
        self.pieces.len() - self.done
    }

    /// Pieces nobody is fetching.
    pub fn free(&self) -> usize {
        self.free
    }

    /// The state of piece `i`.
    pub fn state(&self, i: u64) -> Option<State> {
        self.pieces.get(i as usize).copied()
    }

    /// Whether piece `i` is still wanted from the copy in hand (not done).
    pub fn wanted(&self, i: u64) -> bool {
        matches!(self.state(i), Some(State::Asked { .. } | State::Free))
    }

    /// The most pieces one pick may take now.
    pub fn fair_share(&self) -> usize {
        if self.live > 1 {
            (self.free / (2 * self.live)).max(1)
        } else {
            usize::MAX
        }
    }

    fn can(&self, peer: &Peer, i: usize, unheld: bool) -> bool {
        self.pieces[i] == State::Free
            && peer.have.as_ref().is_none_or(|h| h.has(i as u64))
            && (!unheld || (self.avail[i] == 0 && self.coming[i] == 0))
    }

    /// Whether the download is shared in a crowd (some peer still
    /// downloading takes part now), where a complete provider is asked
    /// first only for pieces no such peer holds (see
    /// [`Picker::pick_unheld`]). A lone download from complete providers
    /// is not, even while it offers its own pieces.
    pub fn in_crowd(&self) -> bool {
        self.peers.iter().any(|p| !p.gone && p.have.is_some())
    }

    /// [`Picker::pick`] for a complete provider in a crowd: only pieces
    /// that no peer still downloading holds, end-game copies included. A
    /// crowd's pieces then come from the (scarce) complete providers once
    /// each, and spread among the downloaders; pieces a downloader holds
    /// are fetched from it. Empty when there are none now.
    pub fn pick_unheld(&mut self, peer: Slot, max: usize) -> Vec<u64> {
        self.pick_from(peer, max, true)
    }

    /// Up to `max` consecutive pieces for `peer` (never more than
    /// [`Picker::fair_share`]); in the end game, one copy of a piece
    /// others fetch. Empty when there is nothing it can fetch now. A peer
    /// picks again only once every copy of its last pick has ended
    /// (received, returned or written), so it is never given a copy of a
    /// piece it is fetching itself.
    pub fn pick(&mut self, peer: Slot, max: usize) -> Vec<u64> {
        self.pick_from(peer, max, false)
    }

    fn pick_from(&mut self, peer: Slot, max: usize, unheld: bool) -> Vec<u64> {
        let Some(p) = self.peers.get(peer.0) else {
            return Vec::new();
        };
        if p.gone || p.dropped || max == 0 {
            return Vec::new();
        }
        let max = max.min(self.fair_share());
        let n = self.pieces.len();
        let mut run: Vec<u64> = Vec::new();
        if self.free > 0 {
            let start = if self.spread {
                // Rarest first, ties broken at random (reservoir sampling),
                // but a peer goes on where its last run ended while that
                // piece is among the rarest: random starts alone would cut
                // the file into ever shorter free stretches, and so into
                // ever shorter runs (a lone download made hundreds of
                // one-piece requests).
                let (mut best, mut ties, mut pick) = (u16::MAX, 0u64, None);
                for i in (0..n).filter(|&i| self.can(p, i, unheld)) {
                    let a = self.avail[i];
                    if a < best {
                        (best, ties, pick) = (a, 1, Some(i));
                    } else if a == best {
                        ties += 1;
                        if fastrand::u64(..ties) == 0 {
                            pick = Some(i);
                        }
                    }
                }
                match p.next {
                    Some(j) if j < n && self.can(p, j, unheld) && self.avail[j] == best => Some(j),
                    _ => pick,
                }
            } else {
                (0..n).find(|&i| self.can(p, i, unheld))
            };
            if let Some(mut i) = start {
                let level = self.avail[i];
                while run.len() < max
                    && i < n
                    && self.can(p, i, unheld)
                    && (!self.spread || self.avail[i] == level)
                {
                    run.push(i as u64);
                    i += 1;
                }
            }
        }
        if run.is_empty() {
            // The end game: a copy of what others are still fetching.
            let copy = (0..n)
                .filter(|&i| p.have.as_ref().is_none_or(|h| h.has(i as u64)))
                .filter(|&i| !unheld || self.avail[i] == 0)
                .filter_map(|i| match self.pieces[i] {
                    State::Asked {
                        copies,
                        received: false,
                    } => Some((copies, std::cmp::Reverse(i), i)),
                    _ => None,
                })
                .min()
                .map(|(_, _, i)| i as u64);
            run.extend(copy);
        }
        for &i in &run {
            let s = &mut self.pieces[i as usize];
            *s = match *s {
                State::Free => {
                    self.free -= 1;
                    State::Asked {
                        copies: 1,
                        received: false,
                    }
                }
                State::Asked { copies, received } => State::Asked {
                    copies: copies + 1,
                    received,
                },
                State::Done => State::Done,
            };
        }
        if let Some(&last) = run.last() {
            self.peers[peer.0].next = Some(last as usize + 1);
        }
        run
    }

    /// A copy of piece `i` reached the verifier: no more copies of it are
    /// handed out while it is checked and written.
    pub fn received(&mut self, i: u64) {
        if let Some(State::Asked { received, .. }) = self.pieces.get_mut(i as usize) {
            *received = true;
        }
    }

    /// A copy of piece `i` will not come, or came bad: when it was the
    /// last copy in flight, the piece is free again.
    pub fn returned(&mut self, i: u64) {
        let Some(s) = self.pieces.get_mut(i as usize) else {
            return;
        };
        if let State::Asked { copies, .. } = *s {
            *s = if copies > 1 {
                State::Asked {
                    copies: copies - 1,
                    received: false,
                }
            } else {
                self.free += 1;
                State::Free
            };
        }
    }

    /// `peer` sent a bad copy of piece `i`: it is out of this download,
    /// and the piece is fetched elsewhere.
    pub fn bad(&mut self, peer: Slot, i: u64) {
        if let Some(p) = self.peers.get_mut(peer.0) {
            p.dropped = true;
        }
        self.returned(i);
    }

    /// Piece `i` is on disk: true the first time (later copies are not
    /// written).
    pub fn written(&mut self, i: u64) -> bool {
        match self.pieces.get_mut(i as usize) {
            Some(s @ State::Asked { .. }) => {
                *s = State::Done;
                self.done += 1;
                true
            }
            _ => false,
        }
    }

    /// Checks the module's invariant (tests call it after every step).
    #[cfg(test)]
    fn check(&self) {
        let free = self.pieces.iter().filter(|s| **s == State::Free).count();
        let done = self.pieces.iter().filter(|s| **s == State::Done).count();
        assert_eq!(free, self.free, "free count");
        assert_eq!(done, self.done, "done count");
        assert!(
            self.pieces
                .iter()
                .all(|s| !matches!(s, State::Asked { copies: 0, .. })),
            "an asked piece with no copy"
        );
        assert_eq!(self.live, self.peers.iter().filter(|p| !p.gone).count());
        for (i, &a) in self.avail.iter().enumerate() {
            let holders = self
                .peers
                .iter()
                .filter(|p| !p.gone && p.have.as_ref().is_some_and(|h| h.has(i as u64)))
                .count();
            assert_eq!(a as usize, holders, "availability of piece {i}");
            let fetchers = self
                .peers
                .iter()
                .filter(|p| !p.gone && p.fetching.as_ref().is_some_and(|h| h.has(i as u64)))
                .count();
            assert_eq!(self.coming[i] as usize, fetchers, "fetchers of piece {i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bitmap(len: u64, held: impl IntoIterator<Item = u64>) -> Bitmap {
        let mut b = Bitmap::new(len);
        for i in held {
            b.set(i);
        }
        b
    }

    #[test]
    fn a_lone_peer_takes_runs_in_file_order() {
        let mut p = Picker::new(10, &(0..10).collect::<Vec<_>>(), false);
        let a = p.join();
        assert_eq!(p.pick(a, 4), vec![0, 1, 2, 3]);
        assert_eq!(p.pick(a, 4), vec![4, 5, 6, 7]);
        assert_eq!(p.free(), 2);
        p.check();
    }

    #[test]
    fn a_peer_that_spreads_goes_on_where_its_last_run_ended() {
        // Random starts alone cut a lone download into one-piece runs.
        for _ in 0..20 {
            let mut p = Picker::new(1000, &(0..1000).collect::<Vec<_>>(), true);
            let a = p.join();
            let first = p.pick(a, 8);
            let end = *first.last().unwrap();
            if end + 1 < 1000 {
                let second = p.pick(a, 8);
                assert_eq!(second[0], end + 1, "went on after {first:?}");
            }
            let mut runs = 2;
            while p.free() > 0 {
                assert!(!p.pick(a, 64).is_empty());
                runs += 1;
            }
            // Each random start splits one free stretch in two, so the
            // lone peer needs a few more runs than in file order (16), not
            // the hundreds random starts alone would make.
            assert!(runs <= 40, "{runs} runs of at most 64");
            p.check();
        }
    }

    #[test]
    fn a_download_that_offers_its_pieces_is_no_crowd_until_a_downloader_joins() {
        let mut p = Picker::new(10, &(0..10).collect::<Vec<_>>(), true);
        let seeder = p.join();
        assert!(!p.in_crowd(), "a lone download from a seeder");
        let x = p.join();
        p.set_have(x, Some(bitmap(10, [0])));
        assert!(p.in_crowd());
        p.leave(x);
        assert!(!p.in_crowd());
        assert!(!p.pick(seeder, 10).is_empty());
        p.check();
    }

    #[test]
    fn pieces_already_on_disk_are_never_asked_for() {
        let mut p = Picker::new(6, &[1, 4], false);
        let a = p.join();
        assert_eq!(p.remaining(), 2);
        assert_eq!(p.pick(a, 10), vec![1]);
        assert_eq!(p.pick(a, 10), vec![4]);
        for i in [1, 4] {
            assert!(p.written(i));
        }
        assert!(p.finished());
        p.check();
    }

    #[test]
    fn several_peers_get_fair_shares() {
        let mut p = Picker::new(100, &(0..100).collect::<Vec<_>>(), false);
        let (a, b) = (p.join(), p.join());
        // 100 free, 2 peers: at most 25 each.
        assert_eq!(p.pick(a, 1000).len(), 25);
        assert_eq!(p.pick(b, 1000).len(), 18); // 75 / 4
        p.check();
    }

    #[test]
    fn rarest_pieces_go_first_in_a_crowd() {
        let mut p = Picker::new(8, &(0..8).collect::<Vec<_>>(), false);
        let seeder = p.join();
        let (x, y) = (p.join(), p.join());
        // Pieces 0..6 are held by both partial peers, 6 and 7 by one.
        p.set_have(x, Some(bitmap(8, 0..8)));
        p.set_have(y, Some(bitmap(8, 0..6)));
        let run = p.pick(seeder, 1);
        assert!(run == vec![6] || run == vec![7], "{run:?}");
        p.check();
    }

    #[test]
    fn a_complete_provider_in_a_crowd_is_asked_first_for_what_no_downloader_holds() {
        let mut p = Picker::new(6, &(0..6).collect::<Vec<_>>(), false);
        let seeder = p.join();
        let x = p.join();
        p.set_have(x, Some(bitmap(6, [0, 1, 2, 3])));
        assert!(p.in_crowd());
        let mut got: Vec<u64> = Vec::new();
        loop {
            let run = p.pick_unheld(seeder, 10);
            if run.is_empty() {
                break;
            }
            for &i in &run {
                p.received(i);
                assert!(p.written(i));
            }
            got.extend(run);
        }
        got.sort_unstable();
        assert_eq!(got, vec![4, 5]);
        // The plain pick still takes what x holds (a crowd peer that
        // never delivers must not stall the download).
        let plain = p.pick(seeder, 1);
        assert!(plain.len() == 1 && plain[0] < 4, "{plain:?}");
        // No end-game copy of a piece a downloader holds, from another
        // complete provider either.
        let other = p.join();
        assert!(p.pick_unheld(other, 10).is_empty());
        assert!(p.pick(other, 10).iter().all(|&i| i < 4));
        p.check();
    }

    #[test]
    fn a_complete_provider_is_not_asked_for_what_a_downloader_is_fetching() {
        let mut p = Picker::new(4, &(0..4).collect::<Vec<_>>(), false);
        let seeder = p.join();
        let x = p.join();
        p.set_have(x, Some(bitmap(4, [0])));
        p.set_fetching(x, Some(bitmap(4, [1, 2])));
        p.check();
        assert_eq!(p.pick_unheld(seeder, 10), vec![3]);
        p.set_fetching(x, Some(bitmap(4, [2])));
        p.check();
        assert_eq!(p.pick_unheld(seeder, 10), vec![1]);
        // A map of the wrong size is ignored; leaving forgets it all.
        p.set_fetching(x, Some(bitmap(5, [0])));
        p.leave(x);
        p.check();
    }

    #[test]
    fn a_peer_gets_only_what_it_holds() {
        let mut p = Picker::new(8, &(0..8).collect::<Vec<_>>(), false);
        let x = p.join();
        p.set_have(x, Some(bitmap(8, [5])));
        assert_eq!(p.pick(x, 8), vec![5]);
        p.received(5);
        assert!(p.written(5));
        assert_eq!(p.pick(x, 8), Vec::<u64>::new());
        p.check();
    }

    #[test]
    fn the_end_game_copies_what_is_outstanding_and_the_first_copy_wins() {
        let mut p = Picker::new(2, &[0, 1], false);
        let (a, b) = (p.join(), p.join());
        assert_eq!(p.pick(a, 1), vec![0]);
        assert_eq!(p.pick(a, 1), vec![1]);
        // Nothing free: b copies the last piece first.
        assert_eq!(p.pick(b, 5), vec![1]);
        assert_eq!(
            p.state(1),
            Some(State::Asked {
                copies: 2,
                received: false
            })
        );
        assert!(p.written(1));
        assert!(!p.written(1), "a second copy is not written");
        p.returned(1); // b's copy ends after a's was written
        assert_eq!(p.state(1), Some(State::Done));
        p.check();
    }

    #[test]
    fn a_piece_received_is_not_copied() {
        let mut p = Picker::new(1, &[0], false);
        let (a, b) = (p.join(), p.join());
        assert_eq!(p.pick(a, 1), vec![0]);
        p.received(0);
        assert!(p.pick(b, 1).is_empty());
        // It came bad: free again, and a is out.
        p.bad(a, 0);
        assert!(p.is_out(a));
        assert!(p.pick(a, 1).is_empty());
        assert_eq!(p.pick(b, 1), vec![0]);
        p.check();
    }

    #[test]
    fn a_failed_peers_pieces_go_back() {
        let mut p = Picker::new(10, &(0..10).collect::<Vec<_>>(), false);
        let a = p.join();
        let run = p.pick(a, 10);
        assert_eq!(p.free(), 0);
        for i in run {
            p.returned(i);
        }
        p.leave(a);
        assert_eq!(p.free(), 10);
        let b = p.join();
        assert_eq!(p.pick(b, 10).len(), 10);
        p.check();
    }

    #[test]
    fn a_leaving_partial_peer_no_longer_counts_toward_rarity() {
        let mut p = Picker::new(4, &(0..4).collect::<Vec<_>>(), false);
        let x = p.join();
        p.set_have(x, Some(bitmap(4, [0, 1])));
        p.check();
        p.set_have(x, Some(bitmap(4, [0, 1, 2])));
        p.check();
        p.set_have(x, None); // it completed
        p.check();
        p.set_have(x, Some(bitmap(4, [3])));
        p.leave(x);
        p.check();
    }

    /// What a peer in a simulated download does at each step.
    #[derive(Debug, Clone)]
    enum Step {
        /// Peer `n % peers` asks for up to `max` pieces.
        Pick(usize, usize),
        /// Peer's run arrives: each piece is good unless the peer is bad.
        Deliver(usize),
        /// Peer's run fails: every piece of it is returned.
        Fail(usize),
        /// A partial peer learns more pieces.
        Grow(usize, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..16usize, 1..64usize).prop_map(|(p, m)| Step::Pick(p, m)),
            4 => (0..16usize).prop_map(Step::Deliver),
            1 => (0..16usize).prop_map(Step::Fail),
            1 => (0..16usize, 0..1024u64).prop_map(|(p, s)| Step::Grow(p, s)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random peers (complete or partial, some lying), speeds and
        /// failures: the invariant holds at every step, no peer takes more
        /// than its fair share, a bad peer is given nothing after its first
        /// bad piece, and as long as one honest complete peer stays, every
        /// piece is written exactly once.
        #[test]
        fn any_mix_of_peers_finishes_and_writes_each_piece_once(
            count in 1u64..300,
            on_disk in proptest::collection::vec(any::<bool>(), 300),
            peers in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..300), 1..8),
            steps in proptest::collection::vec(step(), 0..400),
        ) {
            let missing: Vec<u64> = (0..count).filter(|&i| !on_disk[i as usize]).collect();
            let mut p = Picker::new(count, &missing, false);
            // (slot, complete, liar, held, run in flight)
            let mut roster = Vec::new();
            for &(complete, liar, held) in &peers {
                let s = p.join();
                let have = (!complete).then(|| bitmap(count, 0..held.min(count)));
                p.set_have(s, have.clone());
                roster.push((s, complete, liar && !complete, have, Vec::<u64>::new()));
            }
            let honest = p.join();
            let mut writes = vec![0u32; count as usize];
            for s in steps {
                match s {
                    Step::Pick(n, max) => {
                        let (slot, _, _, have, flight) = &mut roster[n % peers.len()];
                        if flight.is_empty() {
                            let fair = p.fair_share();
                            let run = p.pick(*slot, max);
                            prop_assert!(run.len() <= max.min(fair) || run.len() == 1);
                            for w in run.windows(2) {
                                prop_assert_eq!(w[0] + 1, w[1], "a run is consecutive");
                            }
                            for &i in &run {
                                prop_assert!(have.as_ref().is_none_or(|h| h.has(i)), "asked for a piece it lacks");
                            }
                            *flight = run;
                        }
                    }
                    Step::Deliver(n) => {
                        let (slot, _, liar, _, flight) = &mut roster[n % peers.len()];
                        let mut bad = false;
                        for i in std::mem::take(flight) {
                            if bad {
                                p.returned(i);
                            } else if *liar {
                                p.received(i);
                                p.bad(*slot, i);
                                bad = true;
                                prop_assert!(p.pick(*slot, 10).is_empty(), "a bad peer is given more");
                            } else {
                                p.received(i);
                                if p.written(i) {
                                    writes[i as usize] += 1;
                                }
                            }
                        }
                    }
                    Step::Fail(n) => {
                        let (_, _, _, _, flight) = &mut roster[n % peers.len()];
                        for i in std::mem::take(flight) {
                            p.returned(i);
                        }
                    }
                    Step::Grow(n, more) => {
                        let (slot, complete, _, have, _) = &mut roster[n % peers.len()];
                        if !*complete && !p.is_out(*slot) {
                            let held = have.as_ref().map_or(0, Bitmap::count);
                            let grown = bitmap(count, 0..(held + more).min(count));
                            p.set_have(*slot, Some(grown.clone()));
                            *have = Some(grown);
                        }
                    }
                }
                p.check();
            }
            // Everyone still fetching ends; the others leave; the honest
            // complete peer finishes the file.
            for (slot, _, _, _, flight) in &mut roster {
                for i in std::mem::take(flight) {
                    p.returned(i);
                }
                p.leave(*slot);
                p.check();
            }
            prop_assert_eq!(p.free() , p.remaining(), "everything not done is free once nobody fetches");
            let mut rounds = 0;
            while !p.finished() {
                let run = p.pick(honest, 64);
                prop_assert!(!run.is_empty());
                for i in run {
                    p.received(i);
                    prop_assert!(p.written(i));
                    writes[i as usize] += 1;
                }
                rounds += 1;
                prop_assert!(rounds <= count, "no progress");
            }
            p.check();
            for i in 0..count {
                let expected = u32::from(missing.contains(&i));
                prop_assert_eq!(writes[i as usize], expected, "piece {} written", i);
            }
        }

        /// In a crowd, a run never mixes rarities, and it starts at a
        /// piece as rare as any the peer could have taken.
        #[test]
        fn runs_start_at_the_rarest_piece(
            count in 2u64..200,
            holders in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 200), 1..6),
            max in 1usize..32,
        ) {
            let mut p = Picker::new(count, &(0..count).collect::<Vec<_>>(), true);
            let seeder = p.join();
            let mut avail = vec![0u16; count as usize];
            for h in &holders {
                let s = p.join();
                let b = bitmap(count, (0..count).filter(|&i| h[i as usize]));
                for i in b.added_since(None) {
                    avail[i as usize] += 1;
                }
                p.set_have(s, Some(b));
            }
            let rarest = *avail.iter().min().unwrap();
            let run = p.pick(seeder, max);
            prop_assert!(!run.is_empty());
            for &i in &run {
                prop_assert_eq!(avail[i as usize], rarest);
            }
            p.check();
        }
    }
}
