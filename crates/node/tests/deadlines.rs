//! Class 3 of the hardening issue: every client operation ends within its
//! deadline, however a peer stalls: dripping answers, addresses that
//! accept and never speak, providers that never answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use shoal_core::config::RetryConfig;
use shoal_core::wire::{Announce, PeerRecord, Registration};
use shoal_core::{ContentId, Identity};
use shoal_node::peer_client::{CONNECT_BUDGET, LISTING_DEADLINE, PeerClient};
use shoal_node::tracker_client::TrackerClient;
use tokio_util::sync::CancellationToken;

fn client() -> PeerClient {
    let retry = RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    };
    PeerClient::new(Arc::new(Identity::from_seed([1; 32])), retry)
}

/// A peer whose listing arrives one byte every two seconds, forever.
async fn dripping_peer(seed: u8) -> (PeerRecord, tokio_util::sync::DropGuard) {
    let identity = Identity::from_seed([seed; 32]);
    let app = Router::new().route(
        "/v1/files",
        get(|| async {
            let s = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), ()))
            });
            axum::body::Body::from_stream(s)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let tls = shoal_node::tls::server_config(&identity).unwrap();
    tokio::spawn(shoal_node::server::serve(listener, tls, app, stop.clone()));
    let record = PeerRecord {
        peer_id: identity.peer_id(),
        name: "drip".into(),
        addrs: vec![addr.to_string()],
        expires_in: 60,
        reach: None,
    };
    (record, stop.drop_guard())
}

/// A TCP port that accepts connections and never says a word.
async fn silent_port() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_dripping_listing_ends_at_its_deadline() {
    let (peer, _stop) = dripping_peer(60).await;
    let started = Instant::now();
    let err = client().files(&peer).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took < LISTING_DEADLINE + Duration::from_secs(10),
        "{took:?}: {err}"
    );
    assert!(
        took >= LISTING_DEADLINE - Duration::from_secs(1),
        "{took:?}: {err}"
    );
}

#[tokio::test]
async fn many_dead_addresses_cost_one_budget() {
    let (silent, _task) = silent_port().await;
    let id = Identity::from_seed([61; 32]).peer_id();
    let peer = PeerRecord {
        peer_id: id,
        name: "many".into(),
        addrs: (0..200).map(|_| silent.to_string()).collect(),
        expires_in: 60,
        reach: None,
    };
    let started = Instant::now();
    let err = client().files(&peer).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took < CONNECT_BUDGET + Duration::from_secs(12),
        "{took:?}: {err}"
    );
}

/// Registers `id` at `addr` with the tracker and announces `cid`.
async fn provide(tracker: &TrackerClient, id: &Identity, addr: &str, cid: ContentId) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let name = format!("p{}", &id.peer_id().to_string()[..6]);
    tracker
        .register(&Registration::new(id, &name, vec![addr.into()], 60, ts))
        .await
        .unwrap();
    tracker
        .announce(&Announce::new(id, vec![cid], ts + 1))
        .await
        .unwrap();
}

/// A tracker on 127.0.0.1 and a node registered with it sharing `bytes`
/// as `wanted.bin`, announced: what the tests below attack.
struct Network {
    tracker: TrackerClient,
    honest: shoal_node::Node,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn network(bytes: &[u8], seed: u8) -> Network {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let turl = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shoal_tracker::run(
        listener,
        shoal_tracker::TrackerConfig::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let retry = RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    };
    let tracker = TrackerClient::new(&turl, None, retry).unwrap();
    let share = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("wanted.bin"), bytes).unwrap();
    let mut cfg = shoal_node::NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "honest".into(),
    );
    cfg.shares = vec![share.path().to_owned()];
    cfg.trackers = vec![tracker.clone()];
    let honest = shoal_node::Node::start(cfg, Arc::new(Identity::from_seed([seed; 32])))
        .await
        .unwrap();
    Network {
        tracker,
        honest,
        _stop: stop,
        _dirs: vec![share, data],
    }
}

/// Waits until the tracker lists `n` providers of `cid`.
async fn wait_for_providers(tracker: &TrackerClient, cid: ContentId, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracker.providers(cid).await.unwrap().len() < n {
        assert!(Instant::now() < deadline, "the honest node never announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `get CONTENT_ID` through the tracker, into a new folder.
async fn get_content(tracker: &TrackerClient, cid: ContentId) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let swarm = shoal_node::download::Swarm::with_sources(shoal_node::download::Sources::of(
        tracker.clone(),
    ));
    let got = shoal_node::download::get_content(
        &client(),
        cid,
        out.path(),
        &shoal_node::download::NoProgress,
        &swarm,
    )
    .await
    .unwrap();
    std::fs::read(got).unwrap()
}

#[tokio::test]
async fn providers_that_never_answer_do_not_stall_a_content_download() {
    // A tracker, one honest node sharing a file, and 30 providers of the
    // same content that accept connections and never answer.
    let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 241) as u8).collect();
    let cid = ContentId::of(&bytes);
    let net = network(&bytes, 70).await;
    let (silent, _task) = silent_port().await;
    for i in 0..30u8 {
        provide(
            &net.tracker,
            &Identity::from_seed([100 + i; 32]),
            &silent.to_string(),
            cid,
        )
        .await;
    }
    wait_for_providers(&net.tracker, cid, 31).await;
    let started = Instant::now();
    assert_eq!(get_content(&net.tracker, cid).await, bytes);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(40), "took {took:?}");
    net.honest.shutdown().await;
}

/// Class 9: one provider listing a content under a wrong size does not
/// block `get CONTENT_ID` for everyone: each size claim is proven (its
/// outboard must hash up to the content id) before it is believed.
#[tokio::test]
async fn a_provider_lying_about_the_size_does_not_block_a_content_download() {
    let bytes: Vec<u8> = (0..900_000u32).map(|i| (i % 239) as u8).collect();
    let cid = ContentId::of(&bytes);
    let net = network(&bytes, 71).await;
    let tracker = &net.tracker;

    // Two liars (so the lie has more votes), each listing another size.
    let mut guards = Vec::new();
    for (seed, size) in [(80u8, 5_000_000u64), (81, 5_000_000)] {
        let identity = Identity::from_seed([seed; 32]);
        let listing = serde_json::json!([{
            "name": "wanted.bin", "size": size, "content_id": cid.to_string(),
            "modified": 0, "encrypted": false
        }]);
        let outboard = vec![0u8; shoal_node::pieces::tree(size).outboard_size() as usize];
        let app = Router::new()
            .route("/v1/files", get(move || async move { axum::Json(listing) }))
            .route(
                "/v1/content/{cid}/outboard",
                get(move || async move { outboard }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let tls = shoal_node::tls::server_config(&identity).unwrap();
        tokio::spawn(shoal_node::server::serve(l, tls, app, stop.clone()));
        guards.push(stop.drop_guard());
        provide(tracker, &identity, &addr.to_string(), cid).await;
    }
    wait_for_providers(tracker, cid, 3).await;
    assert_eq!(get_content(tracker, cid).await, bytes);
    net.honest.shutdown().await;
}
