//! The shared store: registrations in one Redis (or Valkey) that several
//! tracker replicas use at once, so that what one accepts every other
//! answers at once.
//!
//! # Keys (`shoal:` prefix, one database)
//!
//! | key | type | what | expires |
//! | --- | --- | --- | --- |
//! | `shoal:p:{peer}` | hash | `r` the record (JSON), `e` expiry and `s` first registration (Unix ms), `f` its network | the registration's TTL |
//! | `shoal:ts:{peer}` | string | the last accepted `ts` (replay protection for every replica) | TTL + [`TOMBSTONE`] |
//! | `shoal:all` | zset, score 0 | every peer, in id order (`ZRANGEBYLEX` pages) | swept |
//! | `shoal:exp` | zset | every peer, scored by expiry | swept |
//! | `shoal:c:{content}` | zset | the peers providing it, scored by their expiry (`ZRANGEBYSCORE now +inf`) | pruned on read and swept |
//! | `shoal:pv:{peer}` | set | what a peer provides | swept, or TTL + [`TOMBSTONE`] |
//! | `shoal:pm:{peer}` | hash | `ts` of its announce, `net` its quota's network | as `pv` |
//! | `shoal:q:{net}` | string | provider entries of one network | with its last entry |
//!
//! Every write is one Lua script, so replicas never interleave halfway.
//! Expiry is the key's own TTL (a replica never shows an expired peer,
//! whether or not a sweep ran); the sweep, any replica's, takes what the
//! `exp` index says ran out (no scan of the live ones) and drops its
//! provider entries. Scripts build keys from the prefix, so this is for
//! one Redis, not a cluster.
//!
//! Every call has a deadline ([`CALL_TIMEOUT`]); a Redis that is down or
//! slow makes calls fail with [`StoreError::Unavailable`] within it, and
//! the connection is re-established in the background when Redis returns.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};
use serde::{Deserialize, Serialize};
use shoal_core::{ContentId, PeerId};
use tokio::time::Instant;

use super::{
    MAX_PROVIDED_PER_NET, Store, StoreError, StoreResult, StoredPeer, TOMBSTONE, network_of,
    pick_providers,
};

/// Longest time any one store call may take, retries included.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(750);
/// Most provider candidates read for one lookup (the pick is then made
/// among them, see [`pick_providers`]).
const MAX_CANDIDATES: usize = 1000;
/// Most expired peers one sweep script takes.
const SWEEP_BATCH: usize = 1000;
/// Most index entries one listing script looks at (expired ones not yet
/// swept are skipped).
const MAX_SCANNED: usize = 4000;
/// Key prefix.
const PREFIX: &str = "shoal:";

/// Functions every script shares.
const COMMON: &str = r"
local P = ARGV[1]
local function drop_provided(id)
  local pv = P .. 'pv:' .. id
  local pm = P .. 'pm:' .. id
  local ids = redis.call('SMEMBERS', pv)
  for _, c in ipairs(ids) do redis.call('ZREM', P .. 'c:' .. c, id) end
  local net = redis.call('HGET', pm, 'net')
  if net and #ids > 0 then
    local q = P .. 'q:' .. net
    if redis.call('DECRBY', q, #ids) <= 0 then redis.call('DEL', q) end
  end
  redis.call('DEL', pv, pm)
end
local function forget(id)
  drop_provided(id)
  redis.call('DEL', P .. 'p:' .. id)
  redis.call('ZREM', P .. 'all', id)
  redis.call('ZREM', P .. 'exp', id)
end
";

/// ARGV: prefix, id, ts, record, expires ms, ttl ms, since ms, net,
/// tombstone ms. → {0, providing} | {1} stale.
const PUT: &str = r"
local id, ts = ARGV[2], tonumber(ARGV[3])
local last = redis.call('GET', P .. 'ts:' .. id)
if last and tonumber(last) >= ts then return {1} end
local p = P .. 'p:' .. id
local old = redis.call('HMGET', p, 's', 'f')
local since = ARGV[7]
if old[1] then
  since = old[1]
  if old[2] ~= ARGV[8] then drop_provided(id) end
else
  -- An expired peer starts afresh: its old provider set is gone.
  drop_provided(id)
end
redis.call('HSET', p, 'r', ARGV[4], 'e', ARGV[5], 's', since, 'f', ARGV[8])
redis.call('PEXPIRE', p, ARGV[6])
local keep = tonumber(ARGV[6]) + tonumber(ARGV[9])
redis.call('SET', P .. 'ts:' .. id, ARGV[3], 'PX', keep)
redis.call('ZADD', P .. 'all', 0, id)
redis.call('ZADD', P .. 'exp', ARGV[5], id)
local pv = P .. 'pv:' .. id
local ids = redis.call('SMEMBERS', pv)
for _, c in ipairs(ids) do redis.call('ZADD', P .. 'c:' .. c, ARGV[5], id) end
if #ids > 0 then
  redis.call('PEXPIRE', pv, keep)
  redis.call('PEXPIRE', P .. 'pm:' .. id, keep)
end
return {0, #ids}
";

/// ARGV: prefix, id, ts, tombstone ms. → 0 | 1 stale | 2 not registered.
const REMOVE: &str = r"
local id, ts = ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', P .. 'p:' .. id) == 0 then return 2 end
local tk = P .. 'ts:' .. id
local last = tonumber(redis.call('GET', tk) or '0')
if last > ts then return 1 end
forget(id)
redis.call('SET', tk, tostring(math.max(last, ts)), 'PX', ARGV[4])
return 0
";

/// ARGV: prefix, id, ts, quota, tombstone ms, content ids...
/// → {0, n} | {1} stale | {2} not registered | {3, others} quota.
const PROVIDE: &str = r"
local id, ts = ARGV[2], tonumber(ARGV[3])
local p = P .. 'p:' .. id
local rec = redis.call('HMGET', p, 'e', 'f')
if not rec[1] then return {2} end
local pm = P .. 'pm:' .. id
local pv = P .. 'pv:' .. id
local last = redis.call('HGET', pm, 'ts')
if last and tonumber(last) >= ts then return {1} end
local n = #ARGV - 5
local net = rec[2]
local q = P .. 'q:' .. net
local others = tonumber(redis.call('GET', q) or '0') - redis.call('SCARD', pv)
if others < 0 then others = 0 end
if others + n > tonumber(ARGV[4]) then return {3, others} end
drop_provided(id)
for i = 6, #ARGV do
  redis.call('SADD', pv, ARGV[i])
  redis.call('ZADD', P .. 'c:' .. ARGV[i], rec[1], id)
end
if n > 0 then redis.call('INCRBY', q, n) end
redis.call('HSET', pm, 'ts', ARGV[3], 'net', net)
local keep = redis.call('PTTL', p) + tonumber(ARGV[5])
redis.call('PEXPIRE', pm, keep)
if n > 0 then redis.call('PEXPIRE', pv, keep) end
return {0, n}
";

/// ARGV: prefix, after ('' for the start), limit, most scanned.
/// → {id, r, e, s, ...} of live peers.
const LIST: &str = r"
local from = '-'
if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local out, found = {}, 0
while found < limit and budget > 0 do
  local ids = redis.call('ZRANGEBYLEX', P .. 'all', from, '+', 'LIMIT', 0, math.min(budget, limit - found + 16))
  if #ids == 0 then break end
  budget = budget - #ids
  for _, id in ipairs(ids) do
    if found < limit then
      local v = redis.call('HMGET', P .. 'p:' .. id, 'r', 'e', 's')
      if v[1] then
        out[#out + 1] = id; out[#out + 1] = v[1]; out[#out + 1] = v[2]; out[#out + 1] = v[3]
        found = found + 1
      end
    end
    from = '(' .. id
  end
end
return out
";

/// ARGV: prefix, content id, now ms, most read. → {id, r, e, s, ...}.
const PROVIDERS: &str = r"
local c = P .. 'c:' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', c, '-inf', ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', c, '(' .. ARGV[3], '+inf', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', P .. 'p:' .. id, 'r', 'e', 's')
  if v[1] then
    out[#out + 1] = id; out[#out + 1] = v[1]; out[#out + 1] = v[2]; out[#out + 1] = v[3]
  end
end
return out
";

/// ARGV: prefix, now ms, batch. → how many were dropped.
/// A registration Redis still holds (a replica whose clock runs ahead)
/// is left to its own TTL.
const SWEEP: &str = r"
local ids = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  if redis.call('EXISTS', P .. 'p:' .. id) == 0 then forget(id) end
end
return #ids
";

/// A `--store` URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreUrlError(String);

/// A record as kept in Redis (the fields of [`StoredPeer`] that are not
/// kept beside it).
#[derive(Serialize, Deserialize)]
struct Rec {
    name: String,
    addrs: Vec<String>,
    ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<IpAddr>,
}

/// Maps the process's `Instant`s to Unix milliseconds, the clock every
/// replica shares.
#[derive(Clone, Copy)]
struct Clock {
    at: Instant,
    unix_ms: u64,
}

impl Clock {
    fn new() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            at: Instant::now(),
            unix_ms,
        }
    }

    fn ms(&self, i: Instant) -> u64 {
        if i >= self.at {
            self.unix_ms + (i - self.at).as_millis() as u64
        } else {
            self.unix_ms
                .saturating_sub((self.at - i).as_millis() as u64)
        }
    }

    fn instant(&self, ms: u64) -> Instant {
        if ms >= self.unix_ms {
            self.at + Duration::from_millis(ms - self.unix_ms)
        } else {
            self.at
                .checked_sub(Duration::from_millis(self.unix_ms - ms))
                .unwrap_or(self.at)
        }
    }
}

struct Scripts {
    put: Script,
    remove: Script,
    provide: Script,
    list: Script,
    providers: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Self {
            put: s(PUT),
            remove: s(REMOVE),
            provide: s(PROVIDE),
            list: s(LIST),
            providers: s(PROVIDERS),
            sweep: s(SWEEP),
        }
    }
}

/// The Redis store (see the module docs).
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Scripts,
    clock: Clock,
    /// `redis://host:port/db`, without the password.
    shown: String,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[:PASSWORD@]HOST:PORT/DB`
    /// or `rediss://` for TLS, checked against the system's roots or
    /// `SSL_CERT_FILE`). Connects lazily: a tracker starts while Redis is
    /// down and serves once it is up.
    pub fn open(url: &str) -> Result<Self, StoreUrlError> {
        let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
        if !scheme_ok {
            return Err(StoreUrlError(
                "a store is `memory` or a URL redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS)"
                    .into(),
            ));
        }
        if url.starts_with("rediss://") {
            // rediss:// uses the process's rustls provider: the workspace's one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let unusable =
            |e: redis::RedisError| StoreUrlError(format!("the store URL is not usable: {e}"));
        let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(unusable)?;
        // Calls are pipelined on one connection: without TCP_NODELAY, Nagle
        // and delayed ACKs hold some answers back 40 ms.
        let info = info.set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(unusable)?;
        let info = client.get_connection_info();
        let scheme = if url.starts_with("rediss://") {
            "rediss"
        } else {
            "redis"
        };
        let shown = format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT / 2))
            .set_response_timeout(Some(CALL_TIMEOUT / 2))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unusable)?;
        Ok(Self {
            conn,
            scripts: Scripts::new(),
            clock: Clock::new(),
            shown,
        })
    }

    /// Runs `script` with `args` after the prefix, within [`CALL_TIMEOUT`].
    async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        args: impl FnOnce(&mut redis::ScriptInvocation<'_>),
    ) -> StoreResult<T> {
        let mut inv = script.prepare_invoke();
        inv.arg(PREFIX);
        args(&mut inv);
        let mut conn = self.conn.clone();
        self.deadline(async move { inv.invoke_async(&mut conn).await })
            .await
    }

    async fn deadline<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        let late = || {
            StoreError::Unavailable(format!(
                "{} did not answer within {} ms",
                self.shown,
                CALL_TIMEOUT.as_millis()
            ))
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(late()),
            Ok(Err(e)) => {
                let text = e.to_string();
                let hint = if text.contains("certificate") {
                    " (rediss:// checks Redis's certificate against the system's roots, or those in the file SSL_CERT_FILE names)"
                } else {
                    ""
                };
                Err(StoreError::Unavailable(format!(
                    "{}: {}{hint}",
                    self.shown,
                    shoal_core::text::bounded(&text, 200)
                )))
            }
            Err(_) => Err(late()),
        }
    }

    /// Peers from a script's flat `{id, r, e, s, ...}` answer; entries
    /// that do not parse (written by something else) are skipped.
    fn peers(&self, flat: Vec<String>) -> Vec<StoredPeer> {
        flat.chunks_exact(4)
            .filter_map(|c| self.peer(&c[0], &c[1], &c[2], &c[3]))
            .collect()
    }

    fn peer(&self, id: &str, r: &str, e: &str, s: &str) -> Option<StoredPeer> {
        let peer_id: PeerId = id.parse().ok()?;
        let rec: Rec = serde_json::from_str(r).ok()?;
        Some(StoredPeer {
            peer_id,
            name: rec.name,
            addrs: rec.addrs,
            ts: rec.ts,
            compat: rec.compat,
            expires_at: self.clock.instant(e.parse().ok()?),
            from: rec.from,
            since: self.clock.instant(s.parse().ok()?),
        })
    }
}

fn net_key(from: Option<IpAddr>) -> String {
    from.map(network_of)
        .map_or_else(String::new, |n| n.to_string())
}

impl Store for RedisStore {
    async fn put_peer(&self, peer: StoredPeer, now: Instant) -> StoreResult<u64> {
        let rec = Rec {
            name: peer.name,
            addrs: peer.addrs,
            ts: peer.ts,
            compat: peer.compat,
            from: peer.from,
        };
        let json = serde_json::to_string(&rec).unwrap_or_default();
        let ttl = peer.expires_at.saturating_duration_since(now).as_millis() as u64;
        let answer: Vec<u64> = self
            .run(&self.scripts.put, |i| {
                i.arg(peer.peer_id.to_string())
                    .arg(peer.ts)
                    .arg(json)
                    .arg(self.clock.ms(peer.expires_at))
                    .arg(ttl.max(1))
                    .arg(self.clock.ms(peer.since.min(now)))
                    .arg(net_key(peer.from))
                    .arg(TOMBSTONE.as_millis() as u64);
            })
            .await?;
        match answer.as_slice() {
            [0, n] => Ok(*n),
            _ => Err(StoreError::Stale),
        }
    }

    async fn get_peer(&self, id: PeerId, _now: Instant) -> StoreResult<Option<StoredPeer>> {
        // One plain command (no script): the hot path of every lookup.
        let id = id.to_string();
        let mut conn = self.conn.clone();
        let key = format!("{PREFIX}p:{id}");
        let v: Vec<Option<String>> = self
            .deadline(async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("r")
                    .arg("e")
                    .arg("s")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match v.as_slice() {
            [Some(r), Some(e), Some(s)] => self.peer(&id, r, e, s),
            _ => None,
        })
    }

    async fn list_peers(
        &self,
        after: Option<PeerId>,
        limit: usize,
        _now: Instant,
    ) -> StoreResult<Vec<StoredPeer>> {
        let flat: Vec<String> = self
            .run(&self.scripts.list, |i| {
                i.arg(after.map(|a| a.to_string()).unwrap_or_default())
                    .arg(limit)
                    .arg(MAX_SCANNED.max(limit * 2));
            })
            .await?;
        Ok(self.peers(flat))
    }

    async fn remove_peer(&self, id: PeerId, ts: u64, _now: Instant) -> StoreResult<()> {
        let code: u8 = self
            .run(&self.scripts.remove, |i| {
                i.arg(id.to_string())
                    .arg(ts)
                    .arg(TOMBSTONE.as_millis() as u64);
            })
            .await?;
        match code {
            0 => Ok(()),
            1 => Err(StoreError::Stale),
            _ => Err(StoreError::NotRegistered),
        }
    }

    async fn set_provided(
        &self,
        id: PeerId,
        ts: u64,
        mut ids: Vec<ContentId>,
        _now: Instant,
    ) -> StoreResult<u64> {
        ids.sort_unstable();
        ids.dedup();
        let answer: Vec<u64> = self
            .run(&self.scripts.provide, |i| {
                i.arg(id.to_string())
                    .arg(ts)
                    .arg(MAX_PROVIDED_PER_NET)
                    .arg(TOMBSTONE.as_millis() as u64);
                for cid in &ids {
                    i.arg(cid.to_string());
                }
            })
            .await?;
        match answer.as_slice() {
            [0, n] => Ok(*n),
            [1] => Err(StoreError::Stale),
            [3, others] => Err(StoreError::Quota(*others)),
            _ => Err(StoreError::NotRegistered),
        }
    }

    async fn providers(
        &self,
        cid: ContentId,
        limit: usize,
        now: Instant,
    ) -> StoreResult<Vec<StoredPeer>> {
        let flat: Vec<String> = self
            .run(&self.scripts.providers, |i| {
                i.arg(cid.to_string())
                    .arg(self.clock.ms(now))
                    .arg(MAX_CANDIDATES.max(limit));
            })
            .await?;
        Ok(pick_providers(self.peers(flat), limit))
    }

    async fn live_peers(&self, now: Instant) -> StoreResult<usize> {
        let mut conn = self.conn.clone();
        let key = format!("{PREFIX}exp");
        let min = format!("({}", self.clock.ms(now));
        self.deadline(async move {
            redis::cmd("ZCOUNT")
                .arg(key)
                .arg(min)
                .arg("+inf")
                .query_async(&mut conn)
                .await
        })
        .await
    }

    async fn sweep(&self, now: Instant) -> StoreResult<()> {
        // Bounded: what expired by `now`, in batches; new expiries wait
        // for the next sweep.
        for _ in 0..100 {
            let n: usize = self
                .run(&self.scripts.sweep, |i| {
                    i.arg(self.clock.ms(now)).arg(SWEEP_BATCH);
                })
                .await?;
            if n < SWEEP_BATCH {
                break;
            }
        }
        Ok(())
    }

    async fn health(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let pong: String = self
            .deadline(async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "{} answered PING with something else",
                self.shown
            )))
        }
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_maps_both_ways() {
        let c = Clock::new();
        let later = c.at + Duration::from_millis(1234);
        assert_eq!(c.ms(later), c.unix_ms + 1234);
        assert_eq!(c.instant(c.unix_ms + 1234), later);
        assert_eq!(c.ms(c.instant(c.unix_ms - 10)), c.unix_ms - 10);
    }

    #[tokio::test]
    async fn urls_are_checked_and_passwords_never_shown() {
        let e = RedisStore::open("memcached://x").err().unwrap();
        assert!(e.to_string().contains("redis://"), "{e}");
        let s = RedisStore::open("redis://:hunter2@127.0.0.1:1/3").unwrap();
        assert_eq!(s.describe(), "redis://127.0.0.1:1/3");
        let s = RedisStore::open("redis://user:hunter2@localhost:6379").unwrap();
        assert_eq!(s.describe(), "redis://localhost:6379/0");
    }

    #[tokio::test]
    async fn a_redis_that_is_not_there_fails_each_call_within_the_deadline() {
        // A port nothing listens on: connection refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = RedisStore::open(&format!("redis://127.0.0.1:{port}/0")).unwrap();
        let t = std::time::Instant::now();
        let e = s.health().await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        let now = Instant::now();
        let t = std::time::Instant::now();
        assert!(matches!(
            s.get_peer(PeerId::from_bytes([1; 32]), now).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
}
