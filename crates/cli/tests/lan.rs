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
        let lan = Lan {
            a: a.clone(),
            b: b.clone(),
        };
        let (va, vb) = (format!("{a}v"), format!("{b}v"));
        let subnet = format!("10.{n}.{}", tag.len() + 10);
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

fn lan_node(lan: &Lan, data: &std::path::Path, share: &std::path::Path, name: &str) -> Proc {
    let mut p = Proc::spawn_in(
        &lan.a,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--lan",
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

#[test]
fn a_node_on_the_lan_is_listed_and_fetched_from_with_no_tracker() {
    let Some(lan) = Lan::new("f") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let data = bytes(1 << 20, 5);
    fs::write(share.join("lan.bin"), &data).unwrap();
    let mut alice = lan_node(&lan, &tmp.path().join("alice"), &share, "alice");
    let alice_id = alice.wait_line("peer id ");

    let client = tmp.path().join("bob");
    let mut listed = serde_json::Value::Null;
    wait_until("alice on the LAN", 30, || {
        let out = lan.shoal(&lan.b, &client, &["--lan", "peers", "--json"]);
        listed = serde_json::from_slice(&out.stdout).unwrap_or_default();
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["peer_id"] == alice_id.as_str()))
    });
    let alice_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == alice_id.as_str())
        .unwrap();
    assert_eq!(alice_row["name"], "alice");
    assert_eq!(alice_row["sources"][0], "lan", "{alice_row}");

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
    let mut real = lan_node(&lan, &tmp.path().join("real"), &share, "real");
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
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    sock.set_multicast_ttl_v4(255).unwrap();
    for i in 0..count.min(100_000) {
        let packet = fake_announcement(i);
        sock.send_to(&packet, (Ipv4Addr::new(224, 0, 0, 251), 5353))
            .unwrap();
        if i % 20 == 19 {
            // Let the listener's socket buffer drain (bounded: the loop is).
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// An mDNS response announcing instance `i` of `_shoal._tcp.local.` with
/// a fresh peer id: PTR, SRV, TXT and A records, long TTLs.
fn fake_announcement(i: u32) -> Vec<u8> {
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
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&i.to_le_bytes());
    key[31] = 0x5a;
    let id = shoal_core::PeerId::from_bytes(key).to_string();
    let service = "_shoal._tcp.local.";
    let instance = format!("fake{i}.{service}");
    let host = format!("fakehost{i}.local.");
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 4, 0, 0, 0, 0];
    let mut rdata = Vec::new();
    name(&mut rdata, &instance);
    record(&mut p, service, 12, 1, &rdata);
    let mut srv = vec![0, 0, 0, 0, 0x13, 0x88];
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
    record(
        &mut p,
        &host,
        1,
        0x8001,
        &[10, 250, (i >> 8) as u8, i as u8],
    );
    p
}
