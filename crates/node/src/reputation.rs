//! Reputation: what each peer has been like to download from, kept in the
//! data dir's `reputation.redb`.
//!
//! Good pieces, bad pieces, failures and speed are counted per download and
//! added here when it ends. A peer caught sending a bad piece is dropped
//! from that download at once and gets a strike; one that reaches
//! `ban_after` strikes is banned for `ban_secs` and skipped by every
//! download until then.
//!
//! The database is opened only for the moment of a read or an update, so a
//! running node, several `get` commands and `shoal peers` can all use it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use shoal_core::PeerId;
use shoal_core::config::ReputationConfig;

use crate::error::{NodeError, Result};

/// File name of the reputation database inside the data dir.
pub const REPUTATION_FILE: &str = "reputation.redb";

/// peer id (32 bytes) → [`Standing`] as JSON.
const STANDINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("standings_v1");

/// How long to wait for another process to finish its update.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// A peer's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Standing {
    /// Pieces it sent that verified.
    pub good_pieces: u64,
    /// Pieces it sent that did not.
    pub bad_pieces: u64,
    /// Downloads in which it failed (unreachable, broke the protocol).
    pub failures: u64,
    /// Bytes received from it.
    pub bytes: u64,
    /// Its recent speed in bytes per second (smoothed over downloads).
    pub speed: u64,
    /// Downloads it sent bad pieces in since its last ban.
    pub strikes: u32,
    /// Unix seconds until which it is banned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned_until: Option<u64>,
    /// Unix seconds of the last download it took part in.
    pub last_seen: u64,
}

impl Standing {
    /// Whether it is banned at Unix second `now`.
    pub fn banned(&self, now: u64) -> bool {
        self.banned_until.is_some_and(|t| t > now)
    }

    /// A short word for people: `banned`, `suspect`, `good` or `new`.
    pub fn verdict(&self, now: u64) -> &'static str {
        if self.banned(now) {
            "banned"
        } else if self.bad_pieces > 0 {
            "suspect"
        } else if self.good_pieces > 0 {
            "good"
        } else {
            "new"
        }
    }
}

/// What one download saw of one peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Pieces that verified.
    pub good_pieces: u64,
    /// Pieces that did not.
    pub bad_pieces: u64,
    /// Whether the peer failed (and was dropped).
    pub failed: bool,
    /// Bytes received.
    pub bytes: u64,
    /// Time spent receiving them.
    pub busy: Duration,
}

impl Tally {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A peer that was banned by an update.
#[derive(Debug, Clone, PartialEq)]
pub struct Banned {
    /// The peer.
    pub peer: PeerId,
    /// Until when (Unix seconds).
    pub until: u64,
    /// Its bad pieces in all.
    pub bad_pieces: u64,
}

/// The reputation database of one data dir.
#[derive(Debug, Clone)]
pub struct Reputation {
    path: PathBuf,
    policy: ReputationConfig,
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reputation {
    /// The database in `data_dir` (made on the first update).
    pub fn new(data_dir: &Path, policy: ReputationConfig) -> Self {
        Self {
            path: data_dir.join(REPUTATION_FILE),
            policy,
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> NodeError {
        NodeError::database(&self.path, e)
    }

    /// Opens the database, waiting while another process has it open.
    fn open(&self) -> Result<Database> {
        let deadline = Instant::now() + OPEN_WAIT;
        loop {
            match crate::db::open_redb(&self.path) {
                Ok(db) => return Ok(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    // Held for the moment of another process's update.
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// Every peer's standing (empty if nothing was ever recorded).
    pub fn all(&self) -> Result<HashMap<PeerId, Standing>> {
        if !self.path.exists() {
            return Ok(HashMap::new());
        }
        let db = self.open()?;
        let txn = db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(STANDINGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = HashMap::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let Ok(bytes) = <[u8; 32]>::try_from(k.value()) else {
                continue;
            };
            if let Ok(s) = serde_json::from_slice(v.value()) {
                out.insert(PeerId::from_bytes(bytes), s);
            }
        }
        Ok(out)
    }

    /// Adds what downloads saw to each peer's standing, banning those that
    /// reached the limit of bad pieces; returns the peers banned now.
    pub fn record(&self, tallies: &[(PeerId, Tally)]) -> Result<Vec<Banned>> {
        if tallies.iter().all(|(_, t)| t.is_empty()) {
            return Ok(Vec::new());
        }
        let now = now_secs();
        let db = self.open()?;
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        let mut banned = Vec::new();
        {
            let mut table = txn.open_table(STANDINGS).map_err(|e| self.err(e))?;
            for (peer, t) in tallies.iter().filter(|(_, t)| !t.is_empty()) {
                let key = peer.as_bytes().as_slice();
                let mut s: Standing = table
                    .get(key)
                    .map_err(|e| self.err(e))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok())
                    .unwrap_or_default();
                s.good_pieces += t.good_pieces;
                s.bad_pieces += t.bad_pieces;
                s.failures += u64::from(t.failed);
                s.bytes += t.bytes;
                if t.bytes >= 64 * 1024 && !t.busy.is_zero() {
                    let speed = (t.bytes as f64 / t.busy.as_secs_f64()) as u64;
                    s.speed = if s.speed == 0 {
                        speed
                    } else {
                        (s.speed + speed) / 2
                    };
                }
                s.last_seen = now;
                // One strike per download caught lying, however many of
                // its pieces were already on their way.
                s.strikes = s.strikes.saturating_add(u32::from(t.bad_pieces > 0));
                if s.strikes >= self.policy.ban_after.max(1) && t.bad_pieces > 0 {
                    let until = now + self.policy.ban_secs;
                    s.banned_until = Some(until);
                    s.strikes = 0;
                    banned.push(Banned {
                        peer: *peer,
                        until,
                        bad_pieces: s.bad_pieces,
                    });
                }
                let value = serde_json::to_vec(&s).map_err(|e| {
                    NodeError::Internal(format!("cannot encode a peer's standing: {e}"))
                })?;
                table
                    .insert(key, value.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(banned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pieces_add_up_to_a_ban() {
        let dir = tempfile::tempdir().unwrap();
        let rep = Reputation::new(
            dir.path(),
            ReputationConfig {
                ban_after: 2,
                ban_secs: 60,
            },
        );
        assert!(rep.all().unwrap().is_empty());
        let (good, bad) = (PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32]));
        let tally = |g, b| Tally {
            good_pieces: g,
            bad_pieces: b,
            failed: b > 0,
            bytes: g * 100_000,
            busy: Duration::from_secs(1),
        };
        let banned = rep
            .record(&[(good, tally(10, 0)), (bad, tally(3, 2))])
            .unwrap();
        assert!(
            banned.is_empty(),
            "one download with bad pieces is a strike, not a ban"
        );
        let banned = rep.record(&[(bad, tally(0, 1))]).unwrap();
        assert_eq!(banned.len(), 1);
        assert_eq!(banned[0].peer, bad);
        let all = rep.all().unwrap();
        let now = now_secs();
        assert_eq!(all[&good].good_pieces, 10);
        assert_eq!(all[&good].verdict(now), "good");
        assert_eq!(all[&good].speed, 1_000_000);
        assert_eq!(all[&bad].bad_pieces, 3);
        assert_eq!(all[&bad].failures, 2);
        assert!(all[&bad].banned(now));
        assert!(!all[&bad].banned(now + 61));
        assert_eq!(all[&bad].verdict(now), "banned");
    }

    #[test]
    fn a_busy_database_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let rep = Reputation::new(dir.path(), ReputationConfig::default());
        let peer = PeerId::from_bytes([3; 32]);
        let one = Tally {
            good_pieces: 1,
            ..Tally::default()
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (rep, one) = (rep.clone(), one.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        rep.record(&[(peer, one.clone())]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(rep.all().unwrap()[&peer].good_pieces, 20);
    }
}
