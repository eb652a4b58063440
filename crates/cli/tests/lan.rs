//! Peers found on the LAN over mDNS, between two network namespaces the
//! test makes and joins by a veth pair (multicast never leaves them).
//! Needs root and `ip` (iproute2); elsewhere each test says SKIP.

mod common;

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Output, Stdio};

use common::*;

/// Two namespaces, `a` (10.x.y.1) and `b` (10.x.y.2), on one veth link;
/// removed on drop.
struct Lan {
    a: String,
    b: String,
    /// The first three octets of the link's addresses.
    subnet: String,
    stop: tempfile::TempDir,
}

impl Lan {
    fn new(tag: &str) -> Option<Lan> {
        if !Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
            || !is_root()
        {
            eprintln!("SKIP: LAN tests need root and iproute2 (`ip netns`)");
            return None;
        }
        let n = std::process::id() % 200 + 20;
        let a = format!("shl{tag}{n}a");
        let b = format!("shl{tag}{n}b");
        let subnet = format!("10.{n}.{}", tag.as_bytes()[0]);
        let lan = Lan {
            a: a.clone(),
            b: b.clone(),
            subnet: subnet.clone(),
            stop: tempfile::tempdir().unwrap(),
        };
        let (va, vb) = (format!("{a}v"), format!("{b}v"));
        for cmd in [
            format!("netns add {a}"),
            format!("netns add {b}"),
            format!("link add {va} type veth peer name {vb}"),
            format!("link set {va} netns {a}"),
            format!("link set {vb} netns {b}"),
            format!("-n {a} addr add {subnet}.1/24 dev {va}"),
            format!("-n {b} addr add {subnet}.2/24 dev {vb}"),
            format!("-n {a} link set {va} up"),
            format!("-n {b} link set {vb} up"),
            format!("-n {a} link set lo up"),
            format!("-n {b} link set lo up"),
            format!("-n {a} route add 224.0.0.0/4 dev {va}"),
            format!("-n {b} route add 224.0.0.0/4 dev {vb}"),
        ] {
            let ok = Command::new("ip")
                .args(cmd.split(' '))
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {cmd} failed");
        }
        Some(lan)
    }

    /// The file that tells a helper in a namespace to stop.
    fn stop_file(&self) -> std::path::PathBuf {
        self.stop.path().join("stop")
    }

    /// Runs a client command inside `ns`.
    fn shoal(&self, ns: &str, data: &std::path::Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, BIN, "--data-dir"])
            .arg(data)
            .args(args)
            .env_remove("SHOAL_TRACKER")
            .env_remove("SHOAL_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run shoal")
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

fn lan_node(ns: &str, data: &std::path::Path, share: &std::path::Path, name: &str) -> Proc {
    node_in(ns, data, share, name, true)
}

fn node_in(
    ns: &str,
    data: &std::path::Path,
    share: &std::path::Path,
    name: &str,
    lan: bool,
) -> Proc {
    let mut p = Proc::spawn_in(
        ns,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            if lan { "--lan" } else { "-q" },
            "node",
            "--listen",
            "0.0.0.0:0",
            "--share",
            share.to_str().unwrap(),
            "--name",
            name,
        ],
        &[],
    );
    p.wait_line("peer id ");
    p
}

/// The peers `--lan peers --json` lists in `ns`.
fn lan_peers(lan: &Lan, ns: &str, data: &std::path::Path) -> Vec<serde_json::Value> {
    let out = lan.shoal(ns, data, &["--lan", "peers", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn nodes_on_the_lan_see_each_other_and_transfer_with_no_tracker() {
    let Some(lan) = Lan::new("f") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let data = bytes(1 << 20, 5);
    fs::write(share.join("lan.bin"), &data).unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let mut alice = lan_node(&lan.a, &tmp.path().join("alice"), &share, "alice");
    let mut bob = lan_node(&lan.b, &tmp.path().join("bob"), &empty, "bob");
    let alice_id = alice.wait_line("peer id ");
    let bob_id = bob.wait_line("peer id ");

    // Each side sees the other within 5 s, found by the LAN.
    let mut seen = Vec::new();
    wait_until("alice from bob's side", 5, || {
        seen = lan_peers(&lan, &lan.b, &tmp.path().join("c-b"));
        seen.iter().any(|p| p["peer_id"] == alice_id.as_str())
    });
    let row = seen
        .iter()
        .find(|p| p["peer_id"] == alice_id.as_str())
        .unwrap();
    assert_eq!(row["name"], "alice");
    assert_eq!(row["sources"][0], "lan", "{row}");
    wait_until("bob from alice's side", 5, || {
        lan_peers(&lan, &lan.a, &tmp.path().join("c-a"))
            .iter()
            .any(|p| p["peer_id"] == bob_id.as_str())
    });

    let cid = b3sum(&share.join("lan.bin"));
    let got = tmp.path().join("got");
    let out = lan.shoal(
        &lan.b,
        &tmp.path().join("carol"),
        &["--lan", "get", &cid, "-o", got.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(got.join("lan.bin")).unwrap(), data);

    // Without --lan nothing is heard.
    let out = lan.shoal(&lan.b, &tmp.path().join("dave"), &["peers", "--json"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&alice_id));

    // An announcement of another id at alice's address is only a hint:
    // alice's key does not match it, so nothing is listed from it.
    let fake_id = fake_peer_id(0);
    let port = alice
        .wait_line("listening on ")
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let alice_ip = format!("{}.1", lan.subnet);
    let mut sender = Command::new("ip")
        .args(["netns", "exec", &lan.a])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "flood_sender", "--ignored", "--nocapture"])
        .env("SHOAL_TEST_FLOOD", "1")
        .env("SHOAL_TEST_FLOOD_AT", format!("{alice_ip}:{port}"))
        .env("SHOAL_TEST_FLOOD_REPEAT", "40")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let out = lan.shoal(&lan.b, &tmp.path().join("erin"), &["--lan", "ls", &fake_id]);
    assert!(sender.wait().unwrap().success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "listing a peer that is not there must fail"
    );
    assert!(out.stdout.is_empty(), "no listing from the wrong peer");
    assert!(
        err.contains("refusing"),
        "the key decides, and it says so: {err}"
    );
}

/// The multicast packets to 224.0.0.251:5353 heard in `ns` while `during`
/// runs (the listener starts first and stops after it).
fn mdns_heard(lan: &Lan, ns: &str, iface_ip: &str, during: impl FnOnce()) -> u64 {
    let mut listener = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "mdns_listener", "--ignored", "--nocapture"])
        .env("SHOAL_TEST_LISTEN_ON", iface_ip)
        .env("SHOAL_TEST_STOP", lan.stop_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = listener.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    // It says when it listens, and then how much it heard when told to stop.
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening"));
    assert!(ready, "the listener did not start");
    during();
    fs::write(lan.stop_file(), b"").unwrap();
    let heard = lines
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("heard ").and_then(|n| n.parse().ok()))
        .unwrap();
    let _ = listener.wait();
    let _ = fs::remove_file(lan.stop_file());
    heard
}

#[test]
fn a_node_without_lan_sends_no_multicast() {
    let Some(lan) = Lan::new("m") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("a.txt"), b"a").unwrap();
    let b_ip = format!("{}.2", lan.subnet);
    let quiet = mdns_heard(&lan, &lan.b, &b_ip, || {
        let mut n = node_in(&lan.a, &tmp.path().join("quiet"), &share, "quiet", false);
        n.wait_line("peer id ");
        // Commands without --lan stay quiet too.
        lan.shoal(&lan.a, &tmp.path().join("c"), &["peers"]);
        lan.shoal(&lan.a, &tmp.path().join("c"), &["ls", "quiet"]);
        n.terminate();
    });
    assert_eq!(quiet, 0, "a node and commands without --lan sent multicast");
    // The listener does hear a node with --lan, so the zero above means something.
    let loud = mdns_heard(&lan, &lan.b, &b_ip, || {
        let mut n = lan_node(&lan.a, &tmp.path().join("loud"), &share, "loud");
        n.wait_line("peer id ");
        // Seen on its own side, so its announcements have gone out (the
        // listener holds port 5353 on the other).
        wait_until("a --lan node's announcement", 10, || {
            lan_peers(&lan, &lan.a, &tmp.path().join("c2")).len() == 1
        });
        n.terminate();
    });
    assert!(loud > 0);
}

/// Not a test: listens for mDNS multicast inside a namespace until a stop
/// file appears, then prints how many packets it heard (it returns at once
/// unless SHOAL_TEST_LISTEN_ON is set).
#[test]
#[ignore = "a helper run by a_node_without_lan_sends_no_multicast"]
fn mdns_listener() {
    let Ok(ip) = std::env::var("SHOAL_TEST_LISTEN_ON") else {
        return;
    };
    let ip: Ipv4Addr = ip.parse().unwrap();
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5353)).unwrap();
    sock.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &ip)
        .unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    println!("listening");
    let stop = std::path::PathBuf::from(std::env::var("SHOAL_TEST_STOP").unwrap());
    let mut heard = 0u64;
    let mut buf = [0u8; 9000];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !stop.exists() && std::time::Instant::now() < deadline {
        if sock.recv_from(&mut buf).is_ok() {
            heard += 1;
        }
    }
    println!("heard {heard}");
}

#[test]
fn a_flood_of_fake_announcements_keeps_memory_bounded() {
    let Some(lan) = Lan::new("x") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("a.txt"), b"real").unwrap();
    // A listening node in b, a real one and the flood in a.
    let mut listener = Proc::spawn_in(
        &lan.b,
        &[
            "--data-dir",
            tmp.path().join("listener").to_str().unwrap(),
            "--lan",
            "node",
            "--listen",
            "0.0.0.0:0",
            "--name",
            "listener",
        ],
        &[],
    );
    listener.wait_line("peer id ");
    let pid = listener.child.id();
    let before = rss_kib(pid);
    let mut real = lan_node(&lan.a, &tmp.path().join("real"), &share, "real");
    let real_id = real.wait_line("peer id ");

    let flood = Command::new("ip")
        .args(["netns", "exec", &lan.a])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "flood_sender", "--ignored", "--nocapture"])
        .env("SHOAL_TEST_FLOOD", "10000")
        .status()
        .unwrap();
    assert!(flood.success());

    let after = rss_kib(pid);
    eprintln!("listener RSS {before} KiB before, {after} KiB after 10,000 fake announcements");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert!(
        listener.child.try_wait().unwrap().is_none(),
        "the listener survived"
    );
    // It saw the flood for what it was (its log says so).
    let logs = tmp.path().join("listener").join("logs");
    wait_until("the listener to log the flood", 30, || {
        fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                fs::read_to_string(f.path())
                    .is_ok_and(|t| t.contains("a flood of mDNS announcements"))
            })
    });
    // The real peer is still found.
    wait_until("the real peer on the LAN", 30, || {
        let out = lan.shoal(&lan.b, &tmp.path().join("c"), &["--lan", "peers", "--json"]);
        String::from_utf8_lossy(&out.stdout).contains(&real_id)
    });
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Not a test: the flood the test above runs inside a namespace (it
/// returns at once unless SHOAL_TEST_FLOOD is set).
#[test]
#[ignore = "a helper run by a_flood_of_fake_announcements_keeps_memory_bounded"]
fn flood_sender() {
    let Some(count) = std::env::var("SHOAL_TEST_FLOOD")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    else {
        return;
    };
    let at: Option<std::net::SocketAddrV4> = std::env::var("SHOAL_TEST_FLOOD_AT")
        .ok()
        .and_then(|a| a.parse().ok());
    let repeat: u32 = std::env::var("SHOAL_TEST_FLOOD_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .min(1000);
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    sock.set_multicast_ttl_v4(255).unwrap();
    for round in 0..repeat {
        for i in 0..count.min(100_000) {
            let packet = fake_announcement(i, at);
            sock.send_to(&packet, (Ipv4Addr::new(224, 0, 0, 251), 5353))
                .unwrap();
            if i % 20 == 19 {
                // Let the listener's socket buffer drain (bounded: the loop is).
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        if round + 1 < repeat {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The peer id fake announcement `i` claims.
fn fake_peer_id(i: u32) -> String {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&i.to_le_bytes());
    key[31] = 0x5a;
    shoal_core::PeerId::from_bytes(key).to_string()
}

/// An mDNS response announcing instance `i` of `_shoal._tcp.local.` with
/// a fresh peer id: PTR, SRV, TXT and A records, long TTLs.
fn fake_announcement(i: u32, at: Option<std::net::SocketAddrV4>) -> Vec<u8> {
    fn name(out: &mut Vec<u8>, n: &str) {
        for label in n.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    fn record(out: &mut Vec<u8>, owner: &str, ty: u16, class: u16, rdata: &[u8]) {
        name(out, owner);
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&86_400u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    let id = fake_peer_id(i);
    let (ip, port) = at.map_or(([10, 250, (i >> 8) as u8, i as u8], 5000), |a| {
        (a.ip().octets(), a.port())
    });
    let service = "_shoal._tcp.local.";
    let instance = format!("fake{i}.{service}");
    let host = format!("fakehost{i}.local.");
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 4, 0, 0, 0, 0];
    let mut rdata = Vec::new();
    name(&mut rdata, &instance);
    record(&mut p, service, 12, 1, &rdata);
    let mut srv = vec![0, 0, 0, 0];
    srv.extend_from_slice(&port.to_be_bytes());
    name(&mut srv, &host);
    record(&mut p, &instance, 33, 0x8001, &srv);
    let mut txt = Vec::new();
    for kv in [
        "v=1".to_owned(),
        format!("id={id}"),
        format!("name=fake{i}"),
    ] {
        txt.push(kv.len() as u8);
        txt.extend_from_slice(kv.as_bytes());
    }
    record(&mut p, &instance, 16, 0x8001, &txt);
    record(&mut p, &host, 1, 0x8001, &ip);
    p
}
