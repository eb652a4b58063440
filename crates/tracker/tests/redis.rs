//! Tracker replicas on one real `redis-server` (on a free loopback port):
//! what one accepts the other answers, replays are refused by all, a Redis
//! that goes answers 503 fast and comes back by itself, expiry matches the
//! memory store's.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, available};
use reqwest::StatusCode;
use shoal_core::wire::{Announce, Deregistration, PeerPage, PeerRecord, Providers, Registration};
use shoal_core::{ContentId, Identity, PeerId};
use shoal_tracker::TrackerConfig;
use shoal_tracker::store::{MemoryStore, RedisStore, Store};
use tokio::sync::oneshot;

struct Replica {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn replica<S: Store>(store: Arc<S>, ttl: u64) -> Replica {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let config = TrackerConfig {
        max_ttl: Duration::from_secs(ttl),
        ..Default::default()
    };
    tokio::spawn(shoal_tracker::run_with_store(
        listener,
        config,
        store,
        async {
            let _ = rx.await;
        },
    ));
    Replica {
        base: format!("http://{addr}"),
        _stop: tx,
    }
}

async fn on_redis(url: &str, ttl: u64) -> Replica {
    replica(Arc::new(RedisStore::open(url).unwrap()), ttl).await
}

/// A Redis and two replicas on it (`None`, said loudly, without Redis).
async fn two_replicas(test: &str, ttl: u64) -> Option<(RedisServer, Replica, Replica)> {
    if !available(test) {
        return None;
    }
    let redis = RedisServer::start();
    let a = on_redis(&redis.url(), ttl).await;
    let b = on_redis(&redis.url(), ttl).await;
    Some((redis, a, b))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn register(r: &Replica, reg: &Registration) -> StatusCode {
    http()
        .put(format!("{}/v1/peers/{}", r.base, reg.peer_id))
        .json(reg)
        .send()
        .await
        .unwrap()
        .status()
}

async fn get(r: &Replica, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", r.base))
        .send()
        .await
        .unwrap()
}

async fn lookup(r: &Replica, id: PeerId) -> StatusCode {
    get(r, &format!("/v1/peers/{id}")).await.status()
}

fn reg(id: &Identity, name: &str, ttl: u64) -> Registration {
    Registration::new(id, name, vec!["127.0.0.1:7001".into()], ttl, now_ms())
}

/// Waits for `cond` with a deadline, polling.
async fn until<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {within:?} waiting for {what}");
}

#[tokio::test]
async fn what_one_replica_accepts_the_other_answers_and_a_replay_is_refused_by_both() {
    let Some((_redis, a, b)) = two_replicas("two replicas", 30).await else {
        return;
    };
    let alice = Identity::from_seed([1; 32]);
    let r = reg(&alice, "alice", 30);
    assert_eq!(register(&a, &r).await, StatusCode::OK);
    // At once, no waiting: the other replica reads the same Redis.
    let rec: PeerRecord = get(&b, &format!("/v1/peers/{}", alice.peer_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec.name, "alice");
    assert_eq!(rec.addrs, ["127.0.0.1:7001"]);
    // The same signed message again, to either replica: a replay.
    assert_eq!(register(&b, &r).await, StatusCode::CONFLICT);
    assert_eq!(register(&a, &r).await, StatusCode::CONFLICT);

    // Announced through one, found through the other.
    let cid = ContentId::of(b"shared by alice");
    let ann = Announce::new(&alice, vec![cid], now_ms() + 1);
    let put = |rep: &Replica, ann: &Announce| {
        http()
            .put(format!("{}/v1/providers", rep.base))
            .json(ann)
            .send()
    };
    assert_eq!(put(&b, &ann).await.unwrap().status(), StatusCode::OK);
    assert_eq!(put(&a, &ann).await.unwrap().status(), StatusCode::CONFLICT);
    let p: Providers = get(&a, &format!("/v1/providers/{cid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p.peers.len(), 1);
    assert_eq!(p.peers[0].peer_id, alice.peer_id());

    // A heartbeat (a newer registration) through the other replica keeps
    // what it provides, and says so.
    let again = Registration::new(&alice, "alice", vec![":7002".into()], 30, now_ms() + 2);
    let answer: serde_json::Value = http()
        .put(format!("{}/v1/peers/{}", b.base, alice.peer_id()))
        .json(&again)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["providing"], 1, "{answer}");
    assert_eq!(answer["addrs"][0], "127.0.0.1:7002", "{answer}");

    // Leaving through one is seen by the other; the deregistration, and
    // every older message, replayed later is refused.
    let bye = Deregistration::new(&alice, now_ms() + 3);
    let del = |rep: &Replica| {
        http()
            .delete(format!("{}/v1/peers/{}", rep.base, alice.peer_id()))
            .json(&bye)
            .send()
    };
    assert_eq!(del(&a).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(lookup(&b, alice.peer_id()).await, StatusCode::NOT_FOUND);
    assert_eq!(register(&b, &again).await, StatusCode::CONFLICT);
    let p: Providers = get(&b, &format!("/v1/providers/{cid}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(p.peers.is_empty());
    let fresh = Registration::new(&alice, "alice", vec![":7003".into()], 30, now_ms() + 4);
    assert_eq!(register(&b, &fresh).await, StatusCode::OK);
    assert_eq!(lookup(&a, alice.peer_id()).await, StatusCode::OK);
}

#[tokio::test]
async fn pages_visit_every_peer_that_stays_once_while_others_come_and_go() {
    let Some((_redis, a, b)) = two_replicas("paging under churn", 30).await else {
        return;
    };
    let seed = |i: u32, tag: u8| {
        let mut k = [tag; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        Identity::from_seed(k)
    };
    let stayers: Vec<Identity> = (0..120).map(|i| seed(i, 1)).collect();
    let leavers: Vec<Identity> = (0..60).map(|i| seed(i, 2)).collect();
    for id in stayers.iter().chain(&leavers) {
        assert_eq!(register(&a, &reg(id, "p", 30)).await, StatusCode::OK);
    }
    let mut seen: Vec<PeerId> = Vec::new();
    let mut after: Option<PeerId> = None;
    let mut churn = 0u32;
    loop {
        let q = match after {
            Some(id) => format!("/v1/peers?limit=25&after={id}"),
            None => "/v1/peers?limit=25".into(),
        };
        let page: PeerPage = get(&b, &q).await.json().await.unwrap();
        seen.extend(page.peers.iter().map(|p| p.peer_id));
        // Between pages: some leave, some new ones come.
        for _ in 0..10 {
            if let Some(l) = leavers.get(churn as usize) {
                let bye = Deregistration::new(l, now_ms());
                let s = http()
                    .delete(format!("{}/v1/peers/{}", a.base, l.peer_id()))
                    .json(&bye)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(s, StatusCode::NO_CONTENT);
            }
            let newcomer = seed(churn, 3);
            assert_eq!(
                register(&a, &reg(&newcomer, "new", 30)).await,
                StatusCode::OK
            );
            churn += 1;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(seen.len() < 1000, "paging does not end");
    }
    let mut sorted = seen.clone();
    sorted.sort_by_key(|id| id.to_string());
    assert_eq!(seen, sorted, "pages come in one order");
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no peer twice");
    for s in &stayers {
        assert!(
            seen.contains(&s.peer_id()),
            "every peer that stayed is listed"
        );
    }
}

#[tokio::test]
async fn a_redis_that_dies_means_503_within_a_second_and_its_return_is_noticed_by_itself() {
    if !available("redis killed") {
        return;
    }
    let mut redis = RedisServer::start();
    let a = on_redis(&redis.url(), 30).await;
    let alice = Identity::from_seed([7; 32]);
    assert_eq!(
        register(&a, &reg(&alice, "alice", 30)).await,
        StatusCode::OK
    );
    assert_eq!(get(&a, "/healthz").await.status(), StatusCode::OK);

    redis.kill();
    for path in [
        "/healthz".to_owned(),
        format!("/v1/peers/{}", alice.peer_id()),
        "/v1/peers".to_owned(),
        format!("/v1/providers/{}", ContentId::of(b"x")),
    ] {
        let t = Instant::now();
        let resp = get(&a, &path).await;
        let took = t.elapsed();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("redis://127.0.0.1:"), "{path}: {text}");
    }
    let t = Instant::now();
    assert_eq!(
        register(&a, &reg(&alice, "alice", 30)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let metrics = get(&a, "/metrics").await.text().await.unwrap();
    assert!(metrics.contains("shoal_tracker_store_up 0"), "{metrics}");

    // Back, empty: the tracker finds it by itself, and a node's next
    // heartbeat (a newer registration) fills it again.
    redis.restart();
    until("healthz to say ok", Duration::from_secs(10), || async {
        get(&a, "/healthz").await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(lookup(&a, alice.peer_id()).await, StatusCode::NOT_FOUND);
    assert_eq!(
        register(&a, &reg(&alice, "alice", 30)).await,
        StatusCode::OK
    );
    assert_eq!(lookup(&a, alice.peer_id()).await, StatusCode::OK);
}

#[tokio::test]
async fn a_peer_that_stops_heartbeating_expires_from_redis_replicas_as_from_memory() {
    if !available("expiry") {
        return;
    }
    let redis = RedisServer::start();
    let ttl = 2;
    let memory = replica(Arc::new(MemoryStore::default()), ttl).await;
    let (a, b) = (
        on_redis(&redis.url(), ttl).await,
        on_redis(&redis.url(), ttl).await,
    );
    let alice = Identity::from_seed([9; 32]);
    let cid = ContentId::of(b"expiring");
    let start = Instant::now();
    let r = reg(&alice, "alice", 60);
    for t in [&memory, &a] {
        assert_eq!(register(t, &r).await, StatusCode::OK);
        let ann = Announce::new(&alice, vec![cid], now_ms() + 1);
        let s = http()
            .put(format!("{}/v1/providers", t.base))
            .json(&ann)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, StatusCode::OK);
    }
    for t in [&memory, &a, &b] {
        let rec: PeerRecord = get(t, &format!("/v1/peers/{}", alice.peer_id()))
            .await
            .json()
            .await
            .unwrap();
        // The tracker's --ttl caps what the peer asked for.
        assert!(rec.expires_in <= ttl, "{}", rec.expires_in);
    }
    let mut gone_at = Vec::new();
    for t in [&memory, &a, &b] {
        until(
            "the peer to expire",
            Duration::from_secs(ttl + 5),
            || async { lookup(t, alice.peer_id()).await == StatusCode::NOT_FOUND },
        )
        .await;
        gone_at.push(start.elapsed());
        let p: Providers = get(t, &format!("/v1/providers/{cid}"))
            .await
            .json()
            .await
            .unwrap();
        assert!(p.peers.is_empty());
        let page: PeerPage = get(t, "/v1/peers").await.json().await.unwrap();
        assert!(page.peers.is_empty());
    }
    // Not before its TTL (less the clock's millisecond rounding) anywhere.
    assert!(
        gone_at[0] >= Duration::from_millis(ttl * 1000 - 50),
        "{gone_at:?}"
    );
    // Gone from the index too, once a sweep ran (every 5 s).
    until(
        "the sweep to count it out",
        Duration::from_secs(10),
        || async {
            let m = get(&b, "/metrics").await.text().await.unwrap();
            m.contains("shoal_tracker_live_peers 0")
        },
    )
    .await;
}

#[tokio::test]
async fn a_redis_that_hangs_means_503_within_a_second_not_a_hung_tracker() {
    if !available("redis slow") {
        return;
    }
    let redis = RedisServer::start();
    let a = on_redis(&redis.url(), 30).await;
    let alice = Identity::from_seed([11; 32]);
    assert_eq!(
        register(&a, &reg(&alice, "alice", 30)).await,
        StatusCode::OK
    );
    // Redis stops answering anyone for 3 s (it keeps the connections).
    assert_eq!(redis.command("CLIENT PAUSE 3000 ALL"), "+OK");
    let t = Instant::now();
    let resp = get(&a, &format!("/v1/peers/{}", alice.peer_id())).await;
    let took = t.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_secs(1), "{took:?}");
    let text = resp.text().await.unwrap();
    assert!(text.contains("did not answer within 750 ms"), "{text}");
    let t = Instant::now();
    assert_eq!(
        get(&a, "/healthz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Answering again: so is the tracker, by itself.
    until(
        "lookups to answer again",
        Duration::from_secs(10),
        || async { lookup(&a, alice.peer_id()).await == StatusCode::OK },
    )
    .await;
}
