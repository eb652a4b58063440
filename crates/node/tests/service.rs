//! The download service against real nodes on 127.0.0.1: pause, resume
//! and cancel from inside, the unfinished downloads of a folder, and a
//! provider source that reports a new provider mid-download.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use shoal_core::config::RetryConfig;
use shoal_core::wire::{FileEntry, PeerRecord};
use shoal_core::{ContentId, Identity};
use shoal_node::download::service::{Downloads, Event, Request, Status, Target};
use shoal_node::download::{Providers, Sources, Swarm};
use shoal_node::peer_client::PeerClient;
use shoal_node::{Node, NodeConfig};

/// How long any awaited condition may take.
const PATIENCE: Duration = Duration::from_secs(60);

struct Seeder {
    node: Node,
    record: PeerRecord,
    entry: FileEntry,
    _dirs: Vec<tempfile::TempDir>,
}

/// Deterministic, incompressible-looking bytes.
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

/// A node sharing `bytes` as `name`, sending at most `rate` bytes/s.
async fn seeder(seed: u8, name: &str, bytes: &[u8], rate: Option<u64>) -> Seeder {
    let share = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join(name), bytes).unwrap();
    let mut cfg = NodeConfig::new(
        data_dir.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        format!("seeder{seed}"),
    );
    cfg.shares = vec![share.path().to_owned()];
    cfg.max_upload_rate = rate;
    let node = Node::start(cfg, Arc::new(Identity::from_seed([seed; 32])))
        .await
        .unwrap();
    let record = PeerRecord {
        peer_id: node.peer_id(),
        name: format!("seeder{seed}"),
        addrs: vec![node.local_addr().to_string()],
        expires_in: 60,
        reach: None,
    };
    let entry = node
        .index()
        .snapshot()
        .files()
        .next()
        .unwrap()
        .entry
        .clone();
    assert_eq!(entry.content_id, ContentId::of(bytes));
    Seeder {
        node,
        record,
        entry,
        _dirs: vec![share, data_dir],
    }
}

fn client() -> Arc<PeerClient> {
    let retry = RetryConfig {
        attempts: 2,
        ..RetryConfig::default()
    };
    Arc::new(PeerClient::new(
        Arc::new(Identity::from_seed([200; 32])),
        retry,
    ))
}

/// A provider source whose answer a test changes as it goes.
#[derive(Clone, Default)]
struct FakeSource(
    Arc<Mutex<Vec<PeerRecord>>>,
    Arc<std::sync::atomic::AtomicUsize>,
);

impl FakeSource {
    fn set(&self, peers: Vec<PeerRecord>) {
        *self.0.lock().unwrap() = peers;
    }
    fn asked(&self) -> usize {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Providers for FakeSource {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn providers(&self, _cid: ContentId) -> BoxFuture<'_, shoal_node::Result<Vec<PeerRecord>>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let peers = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(peers) })
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unlocked(part: &Path) -> bool {
    std::fs::File::open(part).is_ok_and(|f| f.try_lock().is_ok())
}

fn hash_of(path: &Path) -> ContentId {
    shoal_node::index::hash_file(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_download_lets_go_at_once_and_resumes_without_fetching_a_piece_twice() {
    const SIZE: usize = 256 * 1024 * 1024;
    let bytes = data(SIZE, 1);
    // 64 MiB/s: four seconds in all, so a pause lands midway.
    let s = seeder(1, "big.bin", &bytes, Some(64 * 1024 * 1024)).await;
    drop(bytes);
    let out = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(client(), None, Swarm::default());
    let target = Target::Entry {
        entry: s.entry.clone(),
        peers: vec![s.record.clone()],
    };
    let h = downloads.start(Request::new(target.clone(), out.path()));
    let mut events = h.subscribe();
    until("a quarter of the file", || h.bytes().0 > SIZE as u64 / 4).await;

    let asked = Instant::now();
    h.pause().await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(1), "pause took {took:?}");
    assert_eq!(h.threads(), 0, "a thread of the paused download is alive");
    let part = out.path().join("big.bin.part");
    assert!(unlocked(&part), "the .part is still locked after pause");
    assert!(matches!(h.status(), Status::Paused), "{:?}", h.status());
    assert!(!out.path().join("big.bin").exists());
    let (done, _) = h.bytes();
    assert!(done < SIZE as u64, "it finished before the pause");

    // The events told the story so far.
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Started { size, .. } if *size == SIZE as u64))
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Progress { done, .. } if *done > 0))
    );
    assert!(
        matches!(seen.last(), Some(Event::Paused)),
        "{:?}",
        seen.last()
    );

    h.resume();
    let path = tokio::time::timeout(PATIENCE, h.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, out.path().join("big.bin"));
    assert_eq!(hash_of(&path), s.entry.content_id);
    assert!(!part.exists() && !out.path().join("big.bin.part.state").exists());
    // Every piece was served once: the pause let the range in flight end.
    assert_eq!(
        s.node.bytes_served(),
        SIZE as u64,
        "the seeder sent some pieces twice"
    );
    let mut finishing = false;
    while let Ok(e) = events.try_recv() {
        finishing |= matches!(e, Event::Finishing);
        if let Event::Done { path: p } = e {
            assert!(finishing, "done came without finishing first");
            assert_eq!(p, path);
        }
    }
    assert!(finishing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_download_leaves_nothing_behind() {
    let bytes = data(16 * 1024 * 1024, 2);
    let s = seeder(2, "c.bin", &bytes, Some(4 * 1024 * 1024)).await;
    let out = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(client(), None, Swarm::default());
    let h = downloads.start(Request::new(
        Target::Entry {
            entry: s.entry.clone(),
            peers: vec![s.record.clone()],
        },
        out.path(),
    ));
    until("bytes arriving", || h.bytes().0 > 0).await;
    h.cancel().await;
    assert!(matches!(h.status(), Status::Cancelled));
    assert_eq!(h.threads(), 0);
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A cancelled download stays cancelled.
    h.resume();
    assert!(matches!(h.status(), Status::Cancelled));
    assert!(matches!(
        h.wait().await.unwrap_err().as_ref(),
        shoal_node::NodeError::Stopped
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_downloads_are_listed_and_resumed_in_one_call() {
    let a = data(8 * 1024 * 1024, 3);
    let b = data(6 * 1024 * 1024 + 7, 4);
    let sa = seeder(3, "a.bin", &a, Some(4 * 1024 * 1024)).await;
    let sb = seeder(4, "b.bin", &b, Some(4 * 1024 * 1024)).await;
    let out = tempfile::tempdir().unwrap();
    {
        let downloads = Downloads::new(client(), None, Swarm::default());
        let handles: Vec<_> = [&sa, &sb]
            .iter()
            .map(|s| {
                downloads.start(Request::new(
                    Target::Entry {
                        entry: s.entry.clone(),
                        peers: vec![s.record.clone()],
                    },
                    out.path(),
                ))
            })
            .collect();
        until("both running", || handles.iter().all(|h| h.bytes().0 > 0)).await;
        downloads.pause_all().await;
        assert!(handles.iter().all(|h| h.threads() == 0));
    }
    // Another owner (a later run) finds both, by name, paused.
    let found = Downloads::unfinished(out.path());
    let names: Vec<&str> = found.iter().map(|u| u.entry.name.as_str()).collect();
    assert_eq!(names, ["a.bin", "b.bin"]);
    assert_eq!(found[0].entry.content_id, sa.entry.content_id);
    assert_eq!(found[1].entry.size, b.len() as u64);

    // Resumed in one call, with providers from the source.
    let source = FakeSource::default();
    source.set(vec![sa.record.clone(), sb.record.clone()]);
    let downloads = Downloads::new(client(), None, Swarm::with_sources(Sources::of(source)));
    let resumed = downloads.resume_unfinished(out.path());
    assert_eq!(resumed.len(), 2);
    for h in &resumed {
        let path = tokio::time::timeout(PATIENCE, h.wait())
            .await
            .unwrap()
            .unwrap();
        let want = if path.ends_with("a.bin") {
            &sa.entry
        } else {
            &sb.entry
        };
        assert_eq!(hash_of(&path), want.content_id);
    }
    assert!(Downloads::unfinished(out.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_a_source_reports_mid_download_joins_in() {
    let bytes = data(32 * 1024 * 1024, 5);
    // A slow first provider; a second appears in the source once bytes flow.
    let slow = seeder(5, "j.bin", &bytes, Some(2 * 1024 * 1024)).await;
    let fast = seeder(6, "j.bin", &bytes, None).await;
    let source = FakeSource::default();
    let out = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(
        client(),
        None,
        Swarm::with_sources(Sources::of(source.clone())),
    );
    let h = downloads.start(Request::new(
        Target::Entry {
            entry: slow.entry.clone(),
            peers: vec![slow.record.clone()],
        },
        out.path(),
    ));
    let mut events = h.subscribe();
    until("bytes from the slow provider", || h.bytes().0 > 0).await;
    let asked = source.asked();
    source.set(vec![fast.record.clone()]);
    let path = tokio::time::timeout(PATIENCE, h.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash_of(&path), slow.entry.content_id);
    assert!(source.asked() > asked, "the source was never asked again");
    assert!(
        fast.node.bytes_served() > 0,
        "the provider that appeared never served"
    );
    assert!(
        slow.node.bytes_served() < bytes.len() as u64,
        "the slow provider carried the whole file"
    );
    let mut two = false;
    while let Ok(e) = events.try_recv() {
        two |= matches!(e, Event::SourcesChanged { count: 2 });
    }
    assert!(two, "no event said a second source joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_parse_as_the_cli_takes_them() {
    let cid = ContentId::of(b"x");
    assert_eq!(
        cid.to_string().parse::<Target>().unwrap(),
        Target::Content(cid)
    );
    assert_eq!(
        "alice:docs/a.pdf".parse::<Target>().unwrap(),
        Target::Path {
            peer: "alice".into(),
            path: "docs/a.pdf".into()
        }
    );
    assert_eq!(
        "alice:docs/".parse::<Target>().unwrap(),
        Target::Folder {
            peer: "alice".into(),
            dir: "docs/".into()
        }
    );
    for bad in ["", "alice", ":x", "alice:", "alice:/", "abc123"] {
        let e = bad.parse::<Target>().unwrap_err();
        assert!(e.to_string().contains("PEER:PATH"), "{bad:?}: {e}");
    }
}

/// A dialer for `fake://NAME` addresses: TCP to the node the test routed
/// that name to, counting its dials.
struct FakeDialer {
    routes: std::collections::HashMap<String, std::net::SocketAddr>,
    dials: std::sync::atomic::AtomicUsize,
}

impl shoal_node::dial::Dialer for FakeDialer {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn reaches(&self, addr: &str) -> bool {
        addr.starts_with("fake://")
    }
    fn dial<'a>(
        &'a self,
        _peer: Option<shoal_core::PeerId>,
        addr: &'a str,
    ) -> BoxFuture<'a, std::io::Result<shoal_node::dial::BoxIo>> {
        self.dials.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let to = self.routes.get(addr.trim_start_matches("fake://")).copied();
        Box::pin(async move {
            let to = to.ok_or_else(|| std::io::Error::other("no such fake route"))?;
            let tcp = tokio::net::TcpStream::connect(to).await?;
            Ok(Box::new(tcp) as shoal_node::dial::BoxIo)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_dialled_through_whichever_dialer_reaches_their_address() {
    let bytes = data(3 * 1024 * 1024 + 5, 7);
    let s = seeder(7, "d.bin", &bytes, None).await;
    let other = seeder(8, "other.bin", b"someone else", None).await;
    let dialer = Arc::new(FakeDialer {
        routes: [
            ("seeder".to_owned(), s.node.local_addr()),
            ("impostor".to_owned(), other.node.local_addr()),
        ]
        .into(),
        dials: Default::default(),
    });
    let via_fake = |name: &str| PeerRecord {
        addrs: vec![format!("fake://{name}")],
        ..s.record.clone()
    };
    let retry = RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    };
    let client = Arc::new(
        PeerClient::new(Arc::new(Identity::from_seed([201; 32])), retry)
            .with_dialer(dialer.clone()),
    );
    let out = tempfile::tempdir().unwrap();
    let downloads = Downloads::new(client.clone(), None, Swarm::default());
    let h = downloads.start(Request::new(
        Target::Entry {
            entry: s.entry.clone(),
            peers: vec![via_fake("seeder")],
        },
        out.path(),
    ));
    let path = tokio::time::timeout(PATIENCE, h.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    assert!(dialer.dials.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // The stream a dialer opens decides nothing about who answers: one
    // that reaches another node fails the pinned handshake (a new client,
    // so no connection kept from the download is reused).
    let fresh = PeerClient::new(Arc::new(Identity::from_seed([203; 32])), retry)
        .with_dialer(dialer.clone());
    let err = fresh.files(&via_fake("impostor")).await.unwrap_err();
    assert!(
        matches!(
            err,
            shoal_node::NodeError::Peer(shoal_node::PeerError::WrongPeer(_))
        ),
        "expected the wrong key to be caught, got {err}"
    );
    // An address no dialer reaches is not tried, and says so.
    let plain = PeerClient::new(Arc::new(Identity::from_seed([202; 32])), retry);
    let err = plain.files(&via_fake("seeder")).await.unwrap_err();
    assert!(err.to_string().contains("no way to reach"), "{err}");
}
