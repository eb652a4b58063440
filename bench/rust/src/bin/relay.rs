//! A relayed download against a direct one, on 127.0.0.1 (run by
//! `bench/relay.sh`): a node (in this process) shares a file and keeps a
//! connection to a relay (`shoal relay`, its own process, so its CPU and
//! memory are its own); a downloader (in this process) fetches the file
//! RUNS times directly and RUNS times through the relay, interleaved.
//! Then 100 idle pipes are opened through the relay and 4 downloads run
//! through it at once, while the relay's RSS is sampled.
//!
//!   relay SHOAL_BINARY SIZE_MIB RUNS

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shoal_core::Identity;
use shoal_core::config::RetryConfig;
use shoal_core::wire::{FileEntry, PeerRecord};
use shoal_node::download::Swarm;
use shoal_node::download::service::{Downloads, Request, Target};
use shoal_node::peer_client::PeerClient;
use shoal_node::{Node, NodeConfig};

fn ticks_of(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("status")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn fetch(client: Arc<PeerClient>, entry: &FileEntry, peer: PeerRecord) -> Result<f64> {
    let out = tempfile::tempdir()?;
    let downloads = Downloads::new(client, None, Swarm::default());
    let target = Target::Entry {
        entry: entry.clone(),
        peers: vec![peer],
    };
    let start = Instant::now();
    let path = downloads
        .start(Request::new(target, out.path()))
        .wait()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    if std::fs::metadata(&path)?.len() != entry.size {
        bail!("a download came out the wrong size");
    }
    Ok(secs)
}

fn client(seed: u8) -> Arc<PeerClient> {
    Arc::new(PeerClient::new(
        Arc::new(Identity::from_seed([seed; 32])),
        RetryConfig::default(),
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, shoal, size, runs] = &args[..] else {
        bail!("usage: relay SHOAL_BINARY SIZE_MIB RUNS");
    };
    let size: usize = size.parse()?;
    let runs: usize = runs.parse()?;
    // The relay, its own process.
    let mut relay = std::process::Command::new(shoal)
        // 100 idle pipes to one node: above the default per-peer cap.
        .args([
            "-q",
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--pipes-per-peer",
            "256",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let relay_pid = relay.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(relay.stdout.take().context("stdout")?),
        &mut line,
    )?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .context("the relay did not say where it listens")?
        .to_owned();
    let result = run(&url, relay_pid, size, runs).await;
    let _ = relay.kill();
    let _ = relay.wait();
    result
}

async fn run(url: &str, relay_pid: u32, size: usize, runs: usize) -> Result<()> {
    let share = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(share.path().join("big.bin"))?);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..size {
            for b in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&chunk)?;
        }
    }
    let mut cfg = NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse()?,
        "seeder".into(),
    );
    cfg.shares = vec![share.path().to_owned()];
    cfg.relays = vec![url.to_owned()];
    cfg.max_uploads = 64;
    let node = Node::start(cfg, Arc::new(Identity::from_seed([1; 32]))).await?;
    let reach = node.reachability();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reach.borrow().relay.is_none() {
        if Instant::now() > deadline {
            bail!("the node did not take up the relay");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = node
        .index()
        .snapshot()
        .files()
        .next()
        .context("nothing shared")?
        .entry
        .clone();
    let record = |addr: String| PeerRecord {
        peer_id: node.peer_id(),
        name: "seeder".into(),
        addrs: vec![addr],
        expires_in: 60,
        reach: None,
    };
    let direct = record(node.local_addr().to_string());
    let relayed = record(url.to_owned());
    let hz = 100.0; // USER_HZ on Linux
    let (mut d, mut r) = (Vec::new(), Vec::new());
    let mut relay_ticks = 0u64;
    for i in 0..runs {
        // A fresh client each run: no connection kept from the last; which
        // goes first alternates.
        for relayed_now in [i % 2 == 1, i % 2 == 0] {
            if relayed_now {
                let before = ticks_of(relay_pid)?;
                let c = client(100 + i as u8);
                r.push(fetch(c.clone(), &entry, relayed.clone()).await?);
                relay_ticks += ticks_of(relay_pid)? - before;
                if c.route(node.peer_id()).map(|r| r.via) != Some("relay") {
                    bail!("the relayed run did not go through the relay");
                }
            } else {
                d.push(fetch(client(10 + i as u8), &entry, direct.clone()).await?);
            }
        }
    }
    let gib = (size * runs) as f64 / 1024.0;
    let show = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("{size} MiB, {runs} runs interleaved");
    println!(
        "  direct:   {} s  (median {:.2} s)",
        show(&d),
        median(&mut d.clone())
    );
    println!(
        "  relayed:  {} s  (median {:.2} s)",
        show(&r),
        median(&mut r.clone())
    );
    let (md, mr) = (median(&mut d), median(&mut r));
    println!(
        "  relayed speed {:.2}x direct ({:.0} vs {:.0} MiB/s)",
        md / mr,
        size as f64 / mr,
        size as f64 / md
    );
    println!(
        "  relay CPU {:.2} s per GiB piped ({:.2} s over {:.1} GiB)",
        relay_ticks as f64 / hz / gib,
        relay_ticks as f64 / hz,
        gib
    );

    // 100 idle pipes, then 4 busy ones, the relay's RSS sampled.
    let rss_before = status_kib(relay_pid, "VmRSS:")?;
    let mut idle = Vec::new();
    for i in 0..100u32 {
        let me = Identity::from_seed([(i % 200) as u8 + 20; 32]);
        idle.push(shoal_relay::client::connect(url, &me, node.peer_id()).await?);
    }
    let pipes_open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let open = pipes_open.clone();
    let sampling = tokio::spawn(async move {
        let mut peak = 0;
        while open.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(status_kib(relay_pid, "VmRSS:").unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    let busy: Vec<_> = (0..4u8)
        .map(|i| {
            let (entry, relayed) = (entry.clone(), relayed.clone());
            tokio::spawn(async move { fetch(client(200 + i), &entry, relayed).await })
        })
        .collect();
    let start = Instant::now();
    for b in busy {
        b.await??;
    }
    let busy_secs = start.elapsed().as_secs_f64();
    pipes_open.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampling.await?;
    let hwm = status_kib(relay_pid, "VmHWM:")?;
    println!(
        "  relay RSS: {} MiB before; peak {} MiB with 100 idle + 4 busy pipes ({size} MiB each, {busy_secs:.2} s); VmHWM of the whole run {} MiB",
        rss_before / 1024,
        peak / 1024,
        hwm / 1024
    );
    drop(idle);
    node.shutdown().await;
    Ok(())
}
