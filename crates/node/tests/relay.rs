//! Peers reached through a relay on 127.0.0.1: a download through it,
//! byte-identical; the pinned key still decides who answers; a client that
//! proves no key gets no pipe; thousands of idle connections leave it
//! serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_core::config::RetryConfig;
use shoal_core::wire::{FileEntry, PeerRecord};
use shoal_core::{ContentId, Identity};
use shoal_node::download::Swarm;
use shoal_node::download::service::{Downloads, Request, Target};
use shoal_node::peer_client::PeerClient;
use shoal_node::{Node, NodeConfig};
use shoal_relay::proto::{self, Frame};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(60);

fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A relay on a free loopback port.
async fn relay() -> (String, CancellationToken) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = shoal_relay::url_of(l.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(shoal_relay::serve(
        l,
        shoal_relay::RelayConfig::default(),
        stop.clone(),
    ));
    (url, stop)
}

struct Seeder {
    node: Node,
    entry: FileEntry,
    _dirs: Vec<tempfile::TempDir>,
}

/// A node sharing `bytes`, with no tracker, kept reachable through `relay`.
async fn seeder(seed: u8, bytes: &[u8], relay: &str) -> Seeder {
    let share = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("f.bin"), bytes).unwrap();
    let mut cfg = NodeConfig::new(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        format!("seeder{seed}"),
    );
    cfg.shares = vec![share.path().to_owned()];
    cfg.relays = vec![relay.to_owned()];
    let node = Node::start(cfg, Arc::new(Identity::from_seed([seed; 32])))
        .await
        .unwrap();
    let reach = node.reachability();
    until("the node to hold the relay", || {
        reach.borrow().relay.is_some()
    })
    .await;
    assert_eq!(reach.borrow().relay.as_deref(), Some(relay));
    let entry = node
        .index()
        .snapshot()
        .files()
        .next()
        .unwrap()
        .entry
        .clone();
    Seeder {
        node,
        entry,
        _dirs: vec![share, data_dir],
    }
}

fn client(seed: u8) -> Arc<PeerClient> {
    let retry = RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    };
    Arc::new(PeerClient::new(
        Arc::new(Identity::from_seed([seed; 32])),
        retry,
    ))
}

/// Downloads `entry` from `peers` with `c` into `out`; where it was saved.
async fn download(
    c: Arc<PeerClient>,
    entry: &FileEntry,
    peers: Vec<PeerRecord>,
    out: &std::path::Path,
) -> std::path::PathBuf {
    let downloads = Downloads::new(c, None, Swarm::default());
    let target = Target::Entry {
        entry: entry.clone(),
        peers,
    };
    tokio::time::timeout(PATIENCE, downloads.start(Request::new(target, out)).wait())
        .await
        .unwrap()
        .unwrap()
}

fn through(peer: shoal_core::PeerId, relay: &str) -> PeerRecord {
    PeerRecord {
        peer_id: peer,
        name: "relayed".into(),
        addrs: vec![relay.to_owned()],
        expires_in: 60,
        reach: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_through_the_relay_is_byte_identical_and_says_so() {
    let (url, _stop) = relay().await;
    let bytes = data(5 * 1024 * 1024 + 7, 1);
    let s = seeder(1, &bytes, &url).await;
    let c = client(100);
    let rec = through(s.node.peer_id(), &url);
    let files = c.files(&rec).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(c.route(s.node.peer_id()).unwrap().via, "relay");

    let out = tempfile::tempdir().unwrap();
    let path = download(c.clone(), &s.entry, vec![rec], out.path()).await;
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(
        ContentId::of(&std::fs::read(&path).unwrap()),
        s.entry.content_id
    );
    // A peer with a direct address as well is dialled directly.
    let c2 = client(101);
    let mut both = through(s.node.peer_id(), &url);
    both.addrs.push(s.node.local_addr().to_string());
    c2.files(&both).await.unwrap();
    assert_eq!(c2.route(s.node.peer_id()).unwrap().via, "direct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pinned_key_decides_who_answers_through_a_relay() {
    let (url, _stop) = relay().await;
    let s = seeder(2, b"secret bytes", &url).await;
    let c = client(102);
    // Nobody listens on the relay as this peer: no pipe.
    let nobody = Identity::from_seed([3; 32]).peer_id();
    let e = c.files(&through(nobody, &url)).await.unwrap_err();
    assert!(e.to_string().contains("not connected to this relay"), "{e}");

    // An impostor listens on the relay as itself (a key it holds), but
    // answers TLS with the seeder's node: the downloader meant the
    // impostor's key and gets a mismatch, not data.
    let impostor = Arc::new(Identity::from_seed([4; 32]));
    let mut l = shoal_relay::client::listen(&url, &impostor).await.unwrap();
    let target = s.node.local_addr();
    let (relay_url, who) = (url.clone(), impostor.clone());
    tokio::spawn(async move {
        while let Ok(token) = l.invite().await {
            let mut pipe = shoal_relay::client::accept(&relay_url, &who, token)
                .await
                .unwrap();
            let mut real = tokio::net::TcpStream::connect(target).await.unwrap();
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut pipe, &mut real).await;
            });
        }
    });
    let e = c
        .files(&through(impostor.peer_id(), &url))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            shoal_node::NodeError::Peer(shoal_node::PeerError::WrongPeer(_))
        ),
        "{e:?}"
    );
    // The seeder itself still answers through the relay.
    assert_eq!(
        c.files(&through(s.node.peer_id(), &url))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Opens a raw connection and runs the handshake up to the challenge.
async fn challenged(url: &str) -> (tokio::net::TcpStream, [u8; 32]) {
    let mut s = tokio::net::TcpStream::connect(shoal_relay::client::host_port(url))
        .await
        .unwrap();
    s.write_all(proto::MAGIC).await.unwrap();
    let Frame::Challenge { nonce } = proto::read_frame(&mut s).await.unwrap() else {
        panic!("no challenge")
    };
    let mut n = [0u8; 32];
    hex::decode_to_slice(nonce, &mut n).unwrap();
    (s, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_proves_no_key_gets_no_pipe() {
    let (url, _stop) = relay().await;
    let s = seeder(5, b"data", &url).await;
    let me = Identity::from_seed([6; 32]);
    // Claims the seeder's id, signs with its own key.
    for role in [
        proto::Role::Connect {
            to: s.node.peer_id(),
        },
        proto::Role::Listen,
    ] {
        let (mut conn, nonce) = challenged(&url).await;
        let Frame::Hello { sig, .. } = proto::hello(&me, &nonce, role) else {
            unreachable!()
        };
        let forged = Frame::Hello {
            peer_id: s.node.peer_id(),
            role,
            sig,
        };
        proto::write_frame(&mut conn, &forged).await.unwrap();
        match proto::read_frame(&mut conn).await.unwrap() {
            Frame::Refused { error } => assert!(error.contains("does not prove"), "{error}"),
            other => panic!("a forged hello got {other:?}"),
        }
        // And then nothing: the relay closed the connection.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut rest),
        )
        .await
        .unwrap()
        .unwrap_or(0);
        assert_eq!(n, 0, "bytes after a refusal");
    }
    // A signature over another challenge (a replayed hello) is refused too.
    let (mut conn, _) = challenged(&url).await;
    let old = proto::hello(
        &me,
        &[0u8; 32],
        proto::Role::Connect {
            to: s.node.peer_id(),
        },
    );
    proto::write_frame(&mut conn, &old).await.unwrap();
    assert!(matches!(
        proto::read_frame(&mut conn).await.unwrap(),
        Frame::Refused { .. }
    ));
    // The forged listen did not take the seeder's place.
    let c = client(103);
    assert_eq!(
        c.files(&through(s.node.peer_id(), &url))
            .await
            .unwrap()
            .len(),
        1
    );
    // The metrics counted the refusals.
    let metrics = http_get(&url, "/metrics").await;
    assert!(
        metrics.contains("shoal_relay_refused_total{reason=\"no_key\"} 3"),
        "{metrics}"
    );
}

/// A plain HTTP GET to the relay's port.
async fn http_get(url: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(shoal_relay::client::host_port(url))
        .await
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
        .await
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_leave_the_relay_serving() {
    shoal_net::raise_open_file_limit();
    let (url, _stop) = relay().await;
    let bytes = data(2 * 1024 * 1024, 7);
    let s = seeder(7, &bytes, &url).await;
    let addr: std::net::SocketAddr = shoal_relay::client::host_port(&url).parse().unwrap();
    // From 16 loopback addresses (the relay caps connections per client
    // address): half say nothing, half send the magic and stall.
    let mut idle = Vec::new();
    for i in 0..2000u32 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::from((
            [127, 0, 1, (i % 16) as u8 + 1],
            0,
        )))
        .unwrap();
        let mut conn = sock.connect(addr).await.unwrap();
        if i % 2 == 1 {
            conn.write_all(proto::MAGIC).await.unwrap();
        }
        idle.push(conn);
    }
    let metrics = http_get(&url, "/metrics").await;
    let open: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoal_relay_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(open >= 2000, "only {open} connections held: {metrics}");
    // Still serving: a listing and a whole download through it.
    let c = client(104);
    let rec = through(s.node.peer_id(), &url);
    let out = tempfile::tempdir().unwrap();
    let path = download(c.clone(), &s.entry, vec![rec], out.path()).await;
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_mixes_direct_and_relayed_providers() {
    let (url, _stop) = relay().await;
    let bytes = data(24 * 1024 * 1024, 9);
    let a = seeder(8, &bytes, &url).await;
    let b = seeder(9, &bytes, &url).await;
    let c = client(105);
    let mut direct = through(a.node.peer_id(), &url);
    direct.addrs = vec![a.node.local_addr().to_string()];
    let relayed = through(b.node.peer_id(), &url);
    let out = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(c, None, Swarm::default());
    let target = Target::Entry {
        entry: a.entry.clone(),
        peers: vec![direct, relayed],
    };
    let h = downloads.start(Request::new(target, out.path()));
    let path = tokio::time::timeout(PATIENCE, h.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let mut via: Vec<&str> = h.sources().iter().map(|s| s.via).collect();
    via.sort_unstable();
    assert_eq!(via, ["direct", "relay"], "{:?}", h.sources());
    // Both served pieces.
    assert!(a.node.bytes_served() > 0 && b.node.bytes_served() > 0);
}

/// A relay with `config` on a free loopback port.
async fn relay_with(config: shoal_relay::RelayConfig) -> (String, CancellationToken) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = shoal_relay::url_of(l.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(shoal_relay::serve(l, config, stop.clone()));
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_caps_pipes_per_peer_and_closes_idle_ones() {
    let (url, _stop) = relay_with(shoal_relay::RelayConfig {
        pipes_per_peer: 2,
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    // A listener that takes every pipe and then says nothing.
    let target = Arc::new(Identity::from_seed([30; 32]));
    let mut l = shoal_relay::client::listen(&url, &target).await.unwrap();
    let (relay_url, who) = (url.clone(), target.clone());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok(token) = l.invite().await {
            held.push(
                shoal_relay::client::accept(&relay_url, &who, token)
                    .await
                    .unwrap(),
            );
        }
    });
    let me = Identity::from_seed([31; 32]);
    let mut a = shoal_relay::client::connect(&url, &me, target.peer_id())
        .await
        .unwrap();
    let _b = shoal_relay::client::connect(&url, &me, target.peer_id())
        .await
        .unwrap();
    let e = shoal_relay::client::connect(&url, &me, target.peer_id())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("too many pipes"), "{e}");
    // An idle pipe is closed by the relay (EOF), well before the deadline.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read(&mut a, &mut buf),
    )
    .await
    .expect("the idle pipe was not closed")
    .unwrap_or(0);
    assert_eq!(n, 0);
    // Its place is free again.
    until_async("a pipe slot to come back", || async {
        shoal_relay::client::connect(&url, &me, target.peer_id())
            .await
            .is_ok()
    })
    .await;
}

async fn until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + PATIENCE;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
