//! Peers and content found through a private Mainline DHT of bare
//! `shoal dht` nodes on 127.0.0.1, with the tracker gone (real processes).

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// A private DHT: the first `shoal dht` node and `more` joining it.
struct PrivateDht {
    nodes: Vec<Proc>,
    /// `HOST:PORT` of the first node.
    boot: String,
}

fn private_dht(more: usize) -> PrivateDht {
    let mut first = Proc::spawn(&["dht", "--listen", "127.0.0.1:0"], &[]);
    let boot = first.wait_line("dht listening on udp://").trim().to_owned();
    let mut nodes = vec![first];
    for _ in 0..more {
        let mut p = Proc::spawn(
            &["dht", "--listen", "127.0.0.1:0", "--dht-bootstrap", &boot],
            &[],
        );
        p.wait_line("dht listening on udp://");
        nodes.push(p);
    }
    PrivateDht { nodes, boot }
}

/// A DHT client of the test's own, to wait for what the nodes published.
fn watcher(boot: &str) -> (tokio::runtime::Runtime, shoal_dht::Dht) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dht = rt
        .block_on(shoal_dht::Dht::start(&shoal_dht::DhtConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            bootstrap: vec![boot.to_owned()],
            ..Default::default()
        }))
        .unwrap();
    (rt, dht)
}

fn wait_for_provider(w: &(tokio::runtime::Runtime, shoal_dht::Dht), cid: &str, port: u16) {
    let cid: shoal_core::ContentId = cid.parse().unwrap();
    wait_until("the provider's announcement on the DHT", 60, || {
        w.0.block_on(w.1.providers(&cid))
            .iter()
            .any(|a| a.port() == port)
    });
}

fn wait_for_addrs(w: &(tokio::runtime::Runtime, shoal_dht::Dht), id: &str, port: u16) {
    let id: shoal_core::PeerId = id.parse().unwrap();
    wait_until("the node's address item on the DHT", 60, || {
        w.0.block_on(w.1.resolve(&id))
            .is_some_and(|f| f.addrs.iter().any(|a| a.ends_with(&format!(":{port}"))))
    });
}

fn dht_node(t: &str, data: &Path, share: &Path, name: &str, boot: &str) -> NodeProc {
    node_with(
        t,
        data,
        share,
        name,
        30,
        "127.0.0.1:0",
        &["--dht-bootstrap", boot],
    )
}

#[test]
fn with_the_tracker_dead_the_dht_finds_providers_and_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let dht = private_dht(3);
    let mut t = tracker(30);
    let mut nodes = Vec::new();
    let mut files = Vec::new();
    for i in 0..4u64 {
        let share = tmp.path().join(format!("share{i}"));
        fs::create_dir_all(&share).unwrap();
        let data = bytes((1 << 20) + i as usize * 1000, 40 + i);
        fs::write(share.join(format!("file{i}.bin")), &data).unwrap();
        files.push((b3sum(&share.join(format!("file{i}.bin"))), data));
        let name = format!("n{i}");
        let n = dht_node(&t.url, &tmp.path().join(&name), &share, &name, &dht.boot);
        assert!(
            n.proc
                .seen
                .iter()
                .any(|l| l.starts_with("dht listening on udp://")),
            "a node with a DHT says where it listens: {:?}",
            n.proc.seen
        );
        nodes.push(n);
    }
    let w = watcher(&dht.boot);
    wait_for_provider(&w, &files[2].0, nodes[2].port());
    wait_for_addrs(&w, &nodes[3].id, nodes[3].port());

    t.proc.kill();
    let boot = dht.boot.as_str();

    // A data dir that never saw a tracker list: the content id is enough.
    let fresh = tmp.path().join("fresh");
    let got = tmp.path().join("got");
    ok(&shoal(
        &fresh,
        &t.url,
        &[
            "--dht-bootstrap",
            boot,
            "get",
            &files[2].0,
            "-o",
            got.to_str().unwrap(),
        ],
    ));
    assert_eq!(fs::read(got.join("file2.bin")).unwrap(), files[2].1);

    // And a peer id resolves to its addresses.
    let fresh = tmp.path().join("fresh-ls");
    let out = ok(&shoal(
        &fresh,
        &t.url,
        &["--dht-bootstrap", boot, "ls", &nodes[3].id, "--json"],
    ));
    assert_eq!(names(&serde_json::from_str(&out).unwrap()), ["file3.bin"]);

    // An item signed by mallory's own key that points at n3's address:
    // whoever answers there must prove mallory's key, and n3 cannot.
    let mallory = shoal_core::Identity::from_seed([66; 32]);
    let n3_addr = format!("127.0.0.1:{}", nodes[3].port());
    w.0.block_on(w.1.publish(&mallory.secret_seed(), "mallory", &[n3_addr]))
        .unwrap();
    let r = shoal(
        &tmp.path().join("fresh-mallory"),
        &t.url,
        &[
            "--dht-bootstrap",
            boot,
            "ls",
            &mallory.peer_id().to_string(),
        ],
    );
    assert!(!r.status.success());
    assert!(r.stdout.is_empty(), "no listing from the wrong peer");
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("refusing"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );

    // Without the DHT, neither is found.
    let fresh = tmp.path().join("no-dht");
    let r = shoal(&fresh, &t.url, &["ls", &nodes[3].id]);
    assert!(!r.status.success());
    drop(dht.nodes);
}

#[test]
fn a_link_reaches_a_node_that_moved_when_the_dht_is_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dht = private_dht(2);
    let mut t = tracker(30);
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let data = bytes(2 << 20, 77);
    fs::write(share.join("moving.bin"), &data).unwrap();
    let alice_dir = tmp.path().join("alice");
    let mut alice = dht_node(&t.url, &alice_dir, &share, "alice", &dht.boot);
    let link = ok(&shoal(
        &alice_dir,
        &t.url,
        &["link", share.join("moving.bin").to_str().unwrap()],
    ))
    .trim()
    .to_owned();
    let old_port = alice.port();
    assert!(link.contains(&format!("%3A{old_port}")) || link.contains(&format!(":{old_port}")));

    // Alice restarts on another port; the link still names the old one.
    assert!(alice.proc.terminate().success());
    let alice = dht_node(&t.url, &alice_dir, &share, "alice", &dht.boot);
    assert_ne!(alice.port(), old_port);
    let w = watcher(&dht.boot);
    wait_for_addrs(&w, &alice.id, alice.port());
    t.proc.kill();

    let got = tmp.path().join("got");
    ok(&shoal(
        &tmp.path().join("fresh"),
        &t.url,
        &[
            "--dht-bootstrap",
            &dht.boot,
            "get",
            &link,
            "-o",
            got.to_str().unwrap(),
        ],
    ));
    assert_eq!(fs::read(got.join("moving.bin")).unwrap(), data);

    // Without the DHT the stale link cannot be had, and says so.
    let r = shoal(
        &tmp.path().join("fresh2"),
        &t.url,
        &[
            "get",
            &link,
            "-o",
            tmp.path().join("got2").to_str().unwrap(),
        ],
    );
    assert!(!r.status.success());
    assert!(!tmp.path().join("got2").join("moving.bin").exists());
    drop(dht.nodes);
}

/// The UDP sockets a process holds (Linux: its descriptors against
/// /proc/net/udp and udp6).
#[cfg(target_os = "linux")]
fn udp_sockets(pid: u32) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        for line in fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            if let Some(inode) = line.split_whitespace().nth(9) {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|l| inodes.contains(l.to_string_lossy().as_ref()))
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn a_node_with_default_settings_holds_no_udp_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("a.txt"), b"a").unwrap();
    let t = tracker(30);
    let quiet = node(
        &t.url,
        &tmp.path().join("q"),
        &share,
        "quiet",
        30,
        "127.0.0.1:0",
    );
    wait_for_peers(&tmp.path().join("c"), &t.url, &["quiet"], 30);
    assert_eq!(
        udp_sockets(quiet.proc.child.id()),
        0,
        "no DHT, no LAN: no UDP"
    );

    // The check can see one: a node with a DHT holds its socket.
    let dht = private_dht(0);
    let loud = dht_node(&t.url, &tmp.path().join("l"), &share, "loud", &dht.boot);
    assert!(udp_sockets(loud.proc.child.id()) >= 1);
}
