//! A load generator for the tracker (run by `bench/tracker.sh`), on
//! 127.0.0.1 only, bounded in connections, requests and time.
//!
//! It signs registrations with real Ed25519 keys (before each timed phase,
//! on all cores, so signing does not compete with the tracker while it is
//! measured) and drives `shoal tracker` processes over HTTP/1.1 keep-alive
//! connections, each a closed loop (send, await the answer, send again):
//!
//! 1. **memory**: one tracker (`--store memory`) filled with PEERS
//!    registrations (rate, the tracker's RSS after), then lookups of
//!    random peers and listing pages while renewals run (rates, p50/p99).
//! 2. **opentracker**: rounds of Shoal registrations (signature checks
//!    included) interleaved with rounds of BitTorrent announces to
//!    Debian's `opentracker` (a connection per announce: it closes each).
//! 3. **redis**: two trackers on one `redis-server`, filled with
//!    REDIS_PEERS registrations through both, then lookups through both
//!    while renewals run.
//!
//! The tracker processes, `redis-server` and `opentracker` are children of
//! this one, ended by their PIDs when it ends. CPU seconds are read from
//! `/proc` for every process, this one included: they share 2 cores.
//!
//!   trackerload SHOAL_BINARY [PEERS=1000000] [SECS=15] [REDIS_PEERS=100000] [PHASES=memory,opentracker,redis]
//!
//! (opentracker's rounds use the memory phase's tracker.)

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use shoal_core::Identity;
use shoal_core::wire::{Registration, Signed};
use tokio::net::TcpStream;

/// Connections for lookups, and for registrations beside them.
const LOOKUP_CONNS: usize = 64;
const REG_CONNS: usize = 16;
/// Connections of a fill (registrations only).
const FILL_CONNS: usize = 32;
/// Most requests of any phase, whatever its time.
const MAX_REQUESTS: usize = 20_000_000;
/// Content ids (info hashes) opentracker is told to accept.
const TORRENTS: usize = 1000;

// ---- processes ------------------------------------------------------------

/// A child process, killed by its PID on drop.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("stopped {} (pid {})", self.what, self.child.id());
    }
}

fn ticks_of(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds of each process over a phase.
struct Cpu(Vec<(String, u32, u64)>);

impl Cpu {
    fn start(procs: &[(&str, u32)]) -> Self {
        Self(
            procs
                .iter()
                .map(|(n, p)| ((*n).to_owned(), *p, ticks_of(*p)))
                .collect(),
        )
    }

    fn report(&self, secs: f64) -> String {
        self.0
            .iter()
            .map(|(n, p, t0)| {
                let cpu = (ticks_of(*p).saturating_sub(*t0)) as f64 / 100.0;
                format!("{n} {cpu:.1} CPU-s ({:.0}% of a core)", cpu / secs * 100.0)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn shoal_tracker(bin: &str, extra: &[&str]) -> Result<(Proc, SocketAddr)> {
    let mut child = Command::new(bin)
        .args([
            "-q",
            "tracker",
            "--listen",
            "127.0.0.1:0",
            "--ttl",
            "3600",
            "--no-dial-back",
        ])
        .args(extra)
        .env_remove("SHOAL_TRACKER_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("start shoal tracker")?;
    let out = child.stdout.take().context("stdout")?;
    let proc = Proc {
        child,
        what: format!("shoal tracker {}", extra.join(" ")),
    };
    let mut lines = BufReader::new(out).lines();
    let line = lines.next().context("tracker printed nothing")??;
    let addr = line
        .strip_prefix("listening on http://")
        .context("no listening line")?
        .parse()?;
    // Keep draining stdout, so the tracker never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((proc, addr))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within 10 s")
}

fn redis_server(dir: &std::path::Path) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .context("start redis-server (apt-get install redis-server)")?;
    let p = Proc {
        child,
        what: "redis-server".into(),
    };
    wait_port(port, "redis-server")?;
    Ok((p, port))
}

fn info_hash(i: usize) -> [u8; 20] {
    let h = blake3::hash(&i.to_le_bytes());
    let mut out = [0u8; 20];
    out.copy_from_slice(&h.as_bytes()[..20]);
    out
}

fn opentracker(dir: &std::path::Path) -> Result<(Proc, u16)> {
    // Debian's opentracker only serves listed torrents (a whitelist), and
    // chroots into its root dir, where the list's path is then looked up.
    let list: String = (0..TORRENTS)
        .map(|i| format!("{}\n", hex::encode(info_hash(i))))
        .collect();
    std::fs::write(dir.join("whitelist.txt"), list)?;
    let conf = format!(
        "access.whitelist /whitelist.txt\ntracker.rootdir {}\n",
        dir.display()
    );
    std::fs::write(dir.join("opentracker.conf"), conf)?;
    let port = free_port()?;
    let child = Command::new("opentracker")
        .arg("-f")
        .arg(dir.join("opentracker.conf"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start opentracker (apt-get install opentracker)")?;
    let p = Proc {
        child,
        what: "opentracker".into(),
    };
    wait_port(port, "opentracker")?;
    Ok((p, port))
}

// ---- signed messages ---------------------------------------------------------

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn identity(i: usize) -> Identity {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Identity::from_seed(seed)
}

/// One PUT: the path and the signed body.
#[derive(Clone)]
struct Put {
    path: String,
    body: Bytes,
}

/// Registrations of peers `range`, signed now, on every core.
fn sign(range: std::ops::Range<usize>) -> Vec<Put> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = range.len().div_ceil(threads).max(1);
    let start = Instant::now();
    let ts = now_ms();
    let parts: Vec<Vec<Put>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = range.start + t * chunk;
                let hi = (lo + chunk).min(range.end);
                s.spawn(move || {
                    (lo..hi)
                        .map(|i| {
                            let id = identity(i);
                            let port = 10_000 + (i % 50_000) as u16;
                            let reg = Registration::new(
                                &id,
                                &format!("peer{i}"),
                                vec![format!("127.0.0.1:{port}")],
                                3600,
                                ts,
                            );
                            Put {
                                path: format!("/v1/peers/{}", reg.peer_id),
                                body: Bytes::from(
                                    serde_json::to_vec(&reg).expect("a registration serialises"),
                                ),
                            }
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a signing thread"))
            .collect()
    });
    let out: Vec<Put> = parts.into_iter().flatten().collect();
    eprintln!(
        "signed {} registrations in {:.1} s",
        out.len(),
        start.elapsed().as_secs_f64()
    );
    out
}

// ---- load -------------------------------------------------------------------

/// What one kind of request did in a phase.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    micros: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.micros.extend(o.micros);
    }

    fn line(&mut self, what: &str, secs: f64) -> String {
        self.micros.sort_unstable();
        let q = |p: f64| {
            if self.micros.is_empty() {
                0.0
            } else {
                let i = ((self.micros.len() as f64 * p) as usize).min(self.micros.len() - 1);
                f64::from(self.micros[i]) / 1000.0
            }
        };
        format!(
            "{what}: {:.0}/s ({} ok, {} failed in {secs:.1} s), p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            self.ok as f64 / secs,
            self.ok,
            self.failed,
            q(0.5),
            q(0.99),
            q(0.999)
        )
    }
}

/// What a connection asks for next; `None` ends it.
type Next = Arc<dyn Fn(usize) -> Option<(hyper::Method, String, Bytes)> + Send + Sync>;

/// `conns` keep-alive connections to `addrs` (round robin), each a closed
/// loop of `next` until it says stop, `stop` is set, or `until`.
async fn drive(
    addrs: &[SocketAddr],
    conns: usize,
    next: Next,
    stop: Arc<AtomicBool>,
    until: Instant,
) -> Tally {
    let mut tasks = Vec::new();
    for c in 0..conns {
        let addr = addrs[c % addrs.len()];
        let (next, stop) = (next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let Ok(tcp) = TcpStream::connect(addr).await else {
                t.failed += 1;
                return t;
            };
            let _ = tcp.set_nodelay(true);
            let Ok((mut send, conn)) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await
            else {
                t.failed += 1;
                return t;
            };
            tokio::spawn(conn);
            let host = addr.to_string();
            let mut n = 0usize;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let Some((method, path, body)) = next(c + n * conns) else {
                    break;
                };
                n += 1;
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(HOST, &host);
                if !body.is_empty() {
                    req = req.header(CONTENT_TYPE, "application/json");
                }
                let Ok(req) = req.body(Full::new(body)) else {
                    t.failed += 1;
                    continue;
                };
                let start = Instant::now();
                match send.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let read = resp.into_body().collect().await.is_ok();
                        if ok && read {
                            t.ok += 1;
                            t.micros
                                .push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        } else {
                            t.failed += 1;
                        }
                        if !read {
                            break;
                        }
                    }
                    Err(_) => {
                        t.failed += 1;
                        break;
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.merge(t);
        }
    }
    all
}

/// PUTs `puts[i]` in order, shared by all connections; stops when they
/// are used up.
fn puts_of(puts: Arc<Vec<Put>>, cursor: Arc<AtomicUsize>) -> Next {
    Arc::new(move |_| {
        let i = cursor.fetch_add(1, Ordering::Relaxed);
        if i >= MAX_REQUESTS {
            return None;
        }
        puts.get(i)
            .map(|p| (hyper::Method::PUT, p.path.clone(), p.body.clone()))
    })
}

/// Lookups of random peers among `ids`, one in 50 a listing page.
fn lookups_of(ids: Arc<Vec<String>>, count: Arc<AtomicUsize>) -> Next {
    Arc::new(move |_| {
        if count.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            return None;
        }
        let id = &ids[fastrand::usize(..ids.len())];
        if fastrand::u8(..50) == 0 {
            Some((
                hyper::Method::GET,
                format!("/v1/peers?limit=100&after={id}"),
                Bytes::new(),
            ))
        } else {
            Some((hyper::Method::GET, format!("/v1/peers/{id}"), Bytes::new()))
        }
    })
}

fn ids_of(puts: &[Put]) -> Vec<String> {
    puts.iter()
        .map(|p| p.path.trim_start_matches("/v1/peers/").to_owned())
        .collect()
}

/// Registers all of `puts` through `addrs`; the rate.
async fn fill(addrs: &[SocketAddr], puts: Vec<Put>, procs: &[(&str, u32)]) -> Result<f64> {
    let n = puts.len();
    let cpu = Cpu::start(procs);
    let start = Instant::now();
    let mut t = drive(
        addrs,
        FILL_CONNS,
        puts_of(Arc::new(puts), Arc::new(AtomicUsize::new(0))),
        Arc::new(AtomicBool::new(false)),
        start + Duration::from_secs(600),
    )
    .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  {}",
        t.line(&format!("fill, {n} new registrations"), secs)
    );
    println!("  {}", cpu.report(secs));
    if t.ok != n {
        bail!("{} of {n} registrations failed", n - t.ok);
    }
    Ok(t.ok as f64 / secs)
}

/// Lookups through `addrs` for `secs` while `renewals` are registered.
async fn mixed(
    addrs: &[SocketAddr],
    ids: Arc<Vec<String>>,
    renewals: Vec<Put>,
    secs: u64,
    procs: &[(&str, u32)],
) -> (f64, f64) {
    eprintln!("lookups start");
    let cpu = Cpu::start(procs);
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let regs = tokio::spawn({
        let (addrs, stop) = (addrs.to_vec(), stop.clone());
        async move {
            drive(
                &addrs,
                REG_CONNS,
                puts_of(Arc::new(renewals), Arc::new(AtomicUsize::new(0))),
                stop,
                until,
            )
            .await
        }
    });
    let mut looks = drive(
        addrs,
        LOOKUP_CONNS,
        lookups_of(ids, Arc::new(AtomicUsize::new(0))),
        stop.clone(),
        until,
    )
    .await;
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut regs = regs.await.unwrap_or_default();
    println!(
        "  {}",
        looks.line(
            &format!("lookups ({LOOKUP_CONNS} connections, 1 in 50 a page of 100)"),
            secs
        )
    );
    println!(
        "  {}",
        regs.line(
            &format!("renewals beside them ({REG_CONNS} connections)"),
            secs
        )
    );
    println!("  {}", cpu.report(secs));
    (looks.ok as f64 / secs, regs.ok as f64 / secs)
}

/// Closed-loop announces to opentracker for `secs`, a connection each.
async fn announce_rounds(port: u16, secs: u64, procs: &[(&str, u32)]) -> f64 {
    let cpu = Cpu::start(procs);
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..FILL_CONNS {
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut n = 0u32;
            while Instant::now() < until && t.ok + t.failed < MAX_REQUESTS {
                n += 1;
                let hash = info_hash(fastrand::usize(..TORRENTS));
                let peer: [u8; 20] = std::array::from_fn(|_| fastrand::u8(b'a'..=b'z'));
                let path = format!(
                    "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=0&compact=1&numwant=50",
                    percent_encoding::percent_encode(&hash, percent_encoding::NON_ALPHANUMERIC),
                    std::str::from_utf8(&peer).unwrap_or("x"),
                    10_000 + (c as u32 * 1000 + n) % 50_000
                );
                let begin = Instant::now();
                let ok = async {
                    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                    let _ = tcp.set_nodelay(true);
                    let (mut send, conn) =
                        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
                            .await
                            .ok()?;
                    tokio::spawn(conn);
                    let req = hyper::Request::builder()
                        .uri(path)
                        .header(HOST, "127.0.0.1")
                        .body(Full::new(Bytes::new()))
                        .ok()?;
                    let resp = send.send_request(req).await.ok()?;
                    let ok = resp.status().is_success();
                    let body = resp.into_body().collect().await.ok()?.to_bytes();
                    (ok && !body.starts_with(b"d14:failure")).then_some(())
                }
                .await;
                match ok {
                    Some(()) => {
                        t.ok += 1;
                        t.micros.push(begin.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    None => t.failed += 1,
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.merge(t);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  {}",
        all.line(
            &format!("opentracker announces ({FILL_CONNS} clients, a connection each)"),
            secs
        )
    );
    println!("  {}", cpu.report(secs));
    all.ok as f64 / secs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .context("usage: trackerload SHOAL_BINARY [PEERS] [SECS] [REDIS_PEERS]")?;
    let peers: usize = args.get(2).map_or(Ok(1_000_000), |s| s.parse())?;
    let secs: u64 = args.get(3).map_or(Ok(15), |s| s.parse())?;
    let redis_peers: usize = args.get(4).map_or(Ok(100_000), |s| s.parse())?;
    let phases = args
        .get(5)
        .map_or("memory,opentracker,redis", String::as_str);
    let phase = |p: &str| phases.split(',').any(|q| q == p);
    let me = std::process::id();
    let tmp = tempfile::tempdir()?;

    // The floor under every registration: its signature check, alone, on
    // one core (the tracker does exactly this for each).
    let probe: Vec<Registration> = (0..5000)
        .map(|i| Registration::new(&identity(i), "p", vec![":1".into()], 60, now_ms()))
        .collect();
    let t = Instant::now();
    let ok = probe.iter().filter(|r| r.verify().is_ok()).count();
    println!(
        "== one signature check (ed25519 verify_strict, as the tracker does): {:.1} us on one core ({ok} of {} valid)",
        t.elapsed().as_secs_f64() * 1e6 / probe.len() as f64,
        probe.len()
    );
    println!("== memory store: {peers} peers");
    let (tracker, addr) = shoal_tracker(bin, &[])?;
    eprintln!("memory tracker pid {}", tracker.pid());
    let procs = [("tracker", tracker.pid()), ("load generator", me)];
    let puts = sign(0..peers);
    let ids = Arc::new(ids_of(&puts));
    let reg_rate = fill(&[addr], puts, &procs).await?;
    let rss = status_kib(tracker.pid(), "VmRSS:");
    let hwm = status_kib(tracker.pid(), "VmHWM:");
    println!(
        "  tracker RSS with {peers} live peers: {:.0} MiB (peak {:.0} MiB), {:.0} bytes a peer",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss as f64 * 1024.0 / peers as f64
    );
    let (look_rate, renew_rate) = if phase("memory") {
        let renewals = sign(0..peers.min(400_000));
        mixed(&[addr], ids.clone(), renewals, secs, &procs).await
    } else {
        (0.0, 0.0)
    };

    println!("== side by side: Shoal registrations and opentracker announces, interleaved");
    let ot = if phase("opentracker") {
        opentracker(tmp.path())
    } else {
        Err(anyhow::anyhow!("not asked for"))
    };
    let mut shoal_rounds = Vec::new();
    let mut ot_rounds = Vec::new();
    match &ot {
        Ok((p, port)) => {
            let ot_procs = [("opentracker", p.pid()), ("load generator", me)];
            let round = 5u64;
            for r in 0..3 {
                // Fresh signatures for every round: renewals newer than the last.
                let puts = sign(0..peers.min(200_000));
                println!(" round {}", r + 1);
                let cpu = Cpu::start(&procs);
                let start = Instant::now();
                let mut t = drive(
                    &[addr],
                    FILL_CONNS,
                    puts_of(Arc::new(puts), Arc::new(AtomicUsize::new(0))),
                    Arc::new(AtomicBool::new(false)),
                    start + Duration::from_secs(round),
                )
                .await;
                let s = start.elapsed().as_secs_f64();
                println!(
                    "  {}",
                    t.line(
                        &format!("shoal registrations ({FILL_CONNS} connections)"),
                        s
                    )
                );
                println!("  {}", cpu.report(s));
                shoal_rounds.push(t.ok as f64 / s);
                ot_rounds.push(announce_rounds(*port, round, &ot_procs).await);
            }
        }
        Err(e) => println!("  SKIPPED opentracker: {e:#}"),
    }
    drop(ot);
    drop(tracker);

    println!("== redis store: two trackers on one redis-server, {redis_peers} peers");
    let redis = match redis_server(tmp.path()).and_then(|r| {
        if phase("redis") {
            Ok(r)
        } else {
            Err(anyhow::anyhow!("not asked for"))
        }
    }) {
        Ok(r) => Some(r),
        Err(e) => {
            println!("  SKIPPED redis: {e:#}");
            None
        }
    };
    let mut redis_rates = None;
    if let Some((rp, port)) = &redis {
        let url = format!("redis://127.0.0.1:{port}/0");
        let (t1, a1) = shoal_tracker(bin, &["--store", &url])?;
        let (t2, a2) = shoal_tracker(bin, &["--store", &url])?;
        let procs = [
            ("tracker 1", t1.pid()),
            ("tracker 2", t2.pid()),
            ("redis-server", rp.pid()),
            ("load generator", me),
        ];
        let puts = sign(0..redis_peers);
        let ids = Arc::new(ids_of(&puts));
        let fill_rate = fill(&[a1, a2], puts, &procs).await?;
        println!(
            "  redis-server RSS with {redis_peers} peers: {:.0} MiB",
            status_kib(rp.pid(), "VmRSS:") as f64 / 1024.0
        );
        println!("  lookups alone, through both replicas:");
        let (alone, _) = mixed(&[a1, a2], ids.clone(), Vec::new(), secs, &procs).await;
        println!("  lookups while renewals run:");
        let renewals = sign(0..redis_peers);
        let (l, r) = mixed(&[a1, a2], ids, renewals, secs, &procs).await;
        redis_rates = Some((fill_rate, alone, l, r));
    }

    println!("== summary");
    println!(
        "memory store, {peers} peers: {reg_rate:.0} registrations/s (fill); {look_rate:.0} lookups/s with {renew_rate:.0} renewals/s beside; RSS {:.0} MiB",
        rss as f64 / 1024.0
    );
    if !shoal_rounds.is_empty() {
        println!(
            "side by side, median of {}: shoal {:.0} registrations/s, opentracker {:.0} announces/s",
            shoal_rounds.len(),
            median(&mut shoal_rounds),
            median(&mut ot_rounds)
        );
    }
    if let Some((f, alone, l, r)) = redis_rates {
        println!(
            "redis store, two replicas: {f:.0} registrations/s (fill); {alone:.0} lookups/s alone; {l:.0} lookups/s with {r:.0} renewals/s beside"
        );
    }
    Ok(())
}
