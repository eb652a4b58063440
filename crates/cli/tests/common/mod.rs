//! Helpers for tests that run the real `shoal` binary on 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// Sizes worth testing: empty, one byte, around a 16 KiB TLS record, 10 MiB.
pub const INTERESTING_SIZES: &[usize] = &[
    0,
    1,
    16 * 1024 - 1,
    16 * 1024,
    16 * 1024 + 1,
    10 * 1024 * 1024,
];

/// Waits for `cond` to hold, polling, failing the test after `secs`.
pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {secs}s waiting for {what}");
}

/// A running `shoal` server process, killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
        Self::spawn_cmd(Command::new(BIN), args, envs)
    }

    /// [`Proc::spawn`] inside the network namespace `ns`.
    pub fn spawn_in(ns: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, BIN]);
        Self::spawn_cmd(cmd, args, envs)
    }

    fn spawn_cmd(mut cmd: Command, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        cmd.args(args)
            .env_remove("SHOAL_TRACKER")
            .env_remove("SHOAL_DATA_DIR")
            .env_remove("SHOAL_TRACKER_TOKEN")
            .env_remove("SHOAL_TRACKER_STORE")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn shoal");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The rest of the first stdout line starting with `prefix`.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return l[prefix.len()..].to_owned();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!("no line starting with {prefix:?}; saw {:?}", self.seen),
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Tracker {
    pub proc: Proc,
    pub url: String,
}

/// A tracker on a free port (or `listen`) with the given max TTL.
pub fn tracker_at(listen: &str, ttl: u64, extra: &[&str]) -> Tracker {
    let ttl = ttl.to_string();
    let mut args = vec!["tracker", "--listen", listen, "--ttl", &ttl];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args, &[]);
    let url = proc.wait_line("listening on ");
    Tracker { proc, url }
}

pub fn tracker(ttl: u64) -> Tracker {
    tracker_at("127.0.0.1:0", ttl, &[])
}

pub struct NodeProc {
    pub proc: Proc,
    pub id: String,
    pub url: String,
    pub data: PathBuf,
}

impl NodeProc {
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

/// A node sharing `share`, registered with `tracker_url`.
pub fn node(
    tracker_url: &str,
    data: &Path,
    share: &Path,
    name: &str,
    ttl: u64,
    listen: &str,
) -> NodeProc {
    node_with(tracker_url, data, share, name, ttl, listen, &[])
}

/// [`node`] with extra `node` flags.
pub fn node_with(
    tracker_url: &str,
    data: &Path,
    share: &Path,
    name: &str,
    ttl: u64,
    listen: &str,
    extra: &[&str],
) -> NodeProc {
    let ttl = ttl.to_string();
    let mut args = vec![
        "--data-dir",
        data.to_str().expect("utf8"),
        "--tracker",
        tracker_url,
        "node",
        "--share",
        share.to_str().expect("utf8"),
        "--listen",
        listen,
        "--name",
        name,
        "--ttl",
        &ttl,
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args, &[]);
    let url = proc.wait_line("listening on ");
    let id = proc.wait_line("peer id ");
    NodeProc {
        proc,
        id,
        url,
        data: data.to_owned(),
    }
}

/// Runs a client command to completion with its own data dir.
pub fn shoal(data: &Path, tracker_url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("--tracker")
        .arg(tracker_url)
        .args(args)
        .env_remove("SHOAL_TRACKER")
        .env_remove("SHOAL_DATA_DIR")
        .env_remove("SHOAL_TRACKER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run shoal")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "shoal failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("valid JSON")
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The content id of a file as `b3sum` prints it. Uses the real `b3sum`
/// when installed (CI installs it) and says loudly when it is not.
pub fn b3sum(path: &Path) -> String {
    match Command::new("b3sum").arg("--no-names").arg(path).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => {
            eprintln!(
                "WARNING: b3sum is not installed; comparing against the blake3 crate instead (apt-get install b3sum)"
            );
            blake3::hash(&std::fs::read(path).expect("read"))
                .to_hex()
                .to_string()
        }
    }
}

pub fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    n.sort();
    n
}

/// Waits until the tracker lists exactly these peer names.
pub fn wait_for_peers(client: &Path, tracker_url: &str, expected: &[&str], secs: u64) {
    wait_until(&format!("peers {expected:?}"), secs, || {
        names(&json(&shoal(client, tracker_url, &["peers", "--json"]))) == expected
    });
}

/// A plain HTTP GET of `path` from `base` (`http://host:port`); the body.
pub fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// Starts `shoal get TARGET -o OUT` in the background.
pub fn spawn_get(client: &Path, tracker_url: &str, target: &str, out: &Path) -> Child {
    Command::new(BIN)
        .args([
            "--data-dir",
            client.to_str().expect("utf8"),
            "--tracker",
            tracker_url,
            "get",
            target,
            "-o",
        ])
        .arg(out)
        .env_remove("SHOAL_DATA_DIR")
        .env_remove("SHOAL_TRACKER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn get")
}

/// Starts `shoal get TARGET -o OUT` and returns once its `.part` (named
/// `part`) holds data: the download is under way.
pub fn spawn_get_until_under_way(
    client: &Path,
    tracker_url: &str,
    target: &str,
    out: &Path,
    part: &str,
) -> Child {
    let child = spawn_get(client, tracker_url, target, out);
    let part = out.join(part);
    wait_until("download under way", 30, || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() > 0)
    });
    child
}

/// Waits for a background command and fails the test, with its stderr,
/// unless it succeeded.
pub fn wait_ok(child: Child) {
    let done = child.wait_with_output().expect("wait");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// Waits until the tracker lists `n` providers of `cid`.
pub fn wait_for_providers(tracker_url: &str, cid: &str, n: usize, secs: u64) {
    wait_until(&format!("{n} providers of {cid}"), secs, || {
        http_get(tracker_url, &format!("/v1/providers/{cid}"))
            .matches("peer_id")
            .count()
            == n
    });
}

/// A tracker, one node called `alice` sharing `share` (with extra `node`
/// flags), and a client data dir that already sees her.
pub struct OneNode {
    pub tracker: Tracker,
    pub alice: NodeProc,
    pub client: PathBuf,
}

pub fn alice_sharing(tmp: &Path, share: &Path, extra: &[&str]) -> OneNode {
    let tracker = tracker(30);
    let alice = node_with(
        &tracker.url,
        &tmp.join("d"),
        share,
        "alice",
        30,
        "127.0.0.1:0",
        extra,
    );
    let client = tmp.join("c");
    wait_for_peers(&client, &tracker.url, &["alice"], 20);
    OneNode {
        tracker,
        alice,
        client,
    }
}
