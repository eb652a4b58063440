//! The tracker API against a real server on 127.0.0.1, including hostile input.

use std::io::{Read, Write};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use shoal_core::wire::{
    Announce, Deregistration, PeerPage, PeerRecord, Providers, Registered, Registration,
};
use shoal_core::{ContentId, Identity};
use shoal_tracker::TrackerConfig;
use tokio::sync::oneshot;

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
    http: reqwest::Client,
}

async fn start(token: Option<&str>) -> Server {
    start_with(TrackerConfig {
        max_ttl: Duration::from_secs(30),
        token: token.map(str::to_owned),
        ..Default::default()
    })
    .await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl Server {
    async fn put_reg(&self, r: &Registration) -> reqwest::Response {
        self.http
            .put(format!("{}/v1/peers/{}", self.base, r.peer_id))
            .json(r)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// A raw request, so paths reach the server exactly as written.
    fn raw(&self, head: &str, body: &[u8]) -> u16 {
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // One write, so the server has the whole request before it answers.
        let mut req = head.as_bytes().to_vec();
        req.extend_from_slice(body);
        s.write_all(&req).unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status for {head:?}: {text:?}"))
    }
}

fn reg(id: &Identity, name: &str, addr: &str, ts: u64) -> Registration {
    Registration::new(id, name, vec![addr.into()], 30, ts)
}

#[tokio::test]
async fn registration_lookup_fill_and_delete() {
    let s = start(None).await;
    let a = Identity::from_seed([1; 32]);
    let r = s.put_reg(&reg(&a, "alice", ":7001", now_ms())).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Registered = r.json().await.unwrap();
    assert_eq!(body.addrs, ["127.0.0.1:7001"]);
    assert_eq!(body.providing, 0);

    let rec: PeerRecord = s
        .get(&format!("/v1/peers/{}", a.peer_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rec.name.as_str(), rec.addrs[0].as_str()),
        ("alice", "127.0.0.1:7001")
    );

    // Someone else cannot delete alice.
    let mallory = Identity::from_seed([9; 32]);
    let mut forged = Deregistration::new(&mallory, now_ms());
    forged.peer_id = a.peer_id();
    let r = s
        .http
        .delete(format!("{}/v1/peers/{}", s.base, a.peer_id()))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.get(&format!("/v1/peers/{}", a.peer_id())).await.status(),
        StatusCode::OK
    );

    let r = s
        .http
        .delete(format!("{}/v1/peers/{}", s.base, a.peer_id()))
        .json(&Deregistration::new(&a, now_ms() + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get(&format!("/v1/peers/{}", a.peer_id())).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn forged_replayed_and_stale_registrations_are_refused() {
    let s = start(None).await;
    let alice = Identity::from_seed([1; 32]);
    let mallory = Identity::from_seed([2; 32]);

    // Signed by mallory, claiming to be alice.
    let mut forged = reg(&mallory, "alice", "10.9.9.9:1", now_ms());
    forged.peer_id = alice.peer_id();
    assert_eq!(s.put_reg(&forged).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.get(&format!("/v1/peers/{}", alice.peer_id()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let good = reg(&alice, "alice", "127.0.0.1:7001", now_ms());
    assert_eq!(s.put_reg(&good).await.status(), StatusCode::OK);
    // Replays and older messages.
    assert_eq!(s.put_reg(&good).await.status(), StatusCode::CONFLICT);
    let older = reg(&alice, "alice", "10.0.0.1:1", good.ts - 1);
    assert_eq!(s.put_reg(&older).await.status(), StatusCode::CONFLICT);
    // Far from the tracker's clock.
    let stale = reg(&alice, "alice", "127.0.0.1:7001", now_ms() - 10 * 60 * 1000);
    assert_eq!(s.put_reg(&stale).await.status(), StatusCode::BAD_REQUEST);
    // Tampered after signing.
    let mut tampered = reg(&alice, "alice", "127.0.0.1:7001", now_ms() + 5);
    tampered.addrs = vec!["10.6.6.6:1".into()];
    assert_eq!(s.put_reg(&tampered).await.status(), StatusCode::FORBIDDEN);

    let rec: PeerRecord = s
        .get(&format!("/v1/peers/{}", alice.peer_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec.addrs, ["127.0.0.1:7001"]);
}

// Raw requests block their thread; the server runs on the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_change_nothing() {
    let s = start(None).await;
    let a = Identity::from_seed([1; 32]);
    let id = a.peer_id().to_string();
    let good = reg(&a, "alice", "127.0.0.1:7001", now_ms());
    let good_json = serde_json::to_vec(&good).unwrap();

    let paths = [
        "/v1/peers/../../etc/passwd",
        "/v1/peers/..%2f..%2fetc%2fpasswd",
        "/v1/peers/%2e%2e",
        "/v1/peers/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/v1/peers/..\\..\\windows",
        "/v1/peers/%5c..%5cwindows",
        "/v1/peers/%00",
        "/v1/peers/abc%00def",
        "/v1/peers//etc/passwd",
        "/etc/passwd",
        "/v1/peers/C:%5cwindows",
        "/v1/providers/../../etc/passwd",
        "/v1/providers/abc",
        "/v1/providers/%2e%2e%2f",
    ];
    for p in paths {
        for method in ["GET", "PUT", "DELETE"] {
            let head = format!(
                "{method} {p} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                good_json.len()
            );
            let code = s.raw(&head, &good_json);
            assert!((400..500).contains(&code), "{method} {p} gave {code}");
        }
    }
    let peers_path = format!("/v1/peers/{id}");
    let bodies: Vec<(Vec<u8>, u16)> = vec![
        (b"{not json".to_vec(), 400),
        (b"[]".to_vec(), 400),
        (b"".to_vec(), 400),
        (
            json!({"peer_id": id, "name": "x", "addrs": [], "ttl": 1, "ts": 1, "sig": "00"})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            serde_json::to_vec(&json!({"extra": 1, "peer_id": id})).unwrap(),
            400,
        ),
        (vec![b' '; 100 * 1024], 413),
    ];
    for (body, want) in bodies {
        let head = format!(
            "PUT {peers_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        assert_eq!(
            s.raw(&head, &body),
            want,
            "body {:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
    }
    // Hostile names and addresses, correctly signed.
    for (name, addr) in [
        ("", "127.0.0.1:1"),
        ("a\nb", "127.0.0.1:1"),
        (&"n".repeat(65) as &str, "127.0.0.1:1"),
        ("ok", "'); DROP TABLE peers;--:1"),
        ("ok", "127.0.0.1:0"),
        ("ok", "127.0.0.1:99999"),
        ("ok", "[::1:1"),
    ] {
        let r = Registration::new(&a, name, vec![addr.into()], 30, now_ms());
        assert_eq!(
            s.put_reg(&r).await.status(),
            StatusCode::BAD_REQUEST,
            "{name:?} {addr:?}"
        );
    }
    let page: PeerPage = s.get("/v1/peers").await.json().await.unwrap();
    assert!(
        page.peers.is_empty(),
        "hostile input registered something: {page:?}"
    );
    assert_eq!(
        s.get("/v1/peers?limit=abc").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.get("/v1/peers?after=zzz").await.status(),
        StatusCode::BAD_REQUEST
    );

    // Still serving.
    assert_eq!(s.put_reg(&good).await.status(), StatusCode::OK);
    assert_eq!(s.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_makes_the_network_private() {
    let s = start(Some("s3cret")).await;
    let a = Identity::from_seed([1; 32]);
    let r = reg(&a, "alice", "127.0.0.1:1", now_ms());
    assert_eq!(s.put_reg(&r).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.get("/v1/peers").await.status(), StatusCode::UNAUTHORIZED);
    let wrong = s
        .http
        .get(format!("{}/v1/peers", s.base))
        .bearer_auth("s3cre")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = s
        .http
        .put(format!("{}/v1/peers/{}", s.base, a.peer_id()))
        .bearer_auth("s3cret")
        .json(&r)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert_eq!(s.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn providers_pagination_and_metrics() {
    let s = start(None).await;
    let ids: Vec<Identity> = (1..=5).map(|i| Identity::from_seed([i; 32])).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(
            s.put_reg(&reg(id, &format!("p{i}"), "127.0.0.1:1", now_ms()))
                .await
                .status()
                .is_success()
        );
    }
    let mut seen = Vec::new();
    let mut url = "/v1/peers?limit=2".to_owned();
    loop {
        let page: PeerPage = s.get(&url).await.json().await.unwrap();
        assert!(page.peers.len() <= 2);
        seen.extend(page.peers.iter().map(|p| p.peer_id));
        match page.next {
            Some(n) => url = format!("/v1/peers?limit=2&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    let cid = ContentId::of(b"data");
    let put = |a: &Announce| {
        s.http
            .put(format!("{}/v1/providers", s.base))
            .json(a)
            .send()
    };
    assert_eq!(
        put(&Announce::new(&ids[0], vec![cid], now_ms()))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let stranger = Identity::from_seed([42; 32]);
    assert_eq!(
        put(&Announce::new(&stranger, vec![cid], now_ms()))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let mut forged = Announce::new(&stranger, vec![cid], now_ms());
    forged.peer_id = ids[1].peer_id();
    assert_eq!(put(&forged).await.unwrap().status(), StatusCode::FORBIDDEN);

    let p: Providers = s
        .get(&format!("/v1/providers/{cid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        p.peers.iter().map(|r| r.peer_id).collect::<Vec<_>>(),
        [ids[0].peer_id()]
    );
    assert_eq!(
        s.get("/v1/providers/xyz").await.status(),
        StatusCode::BAD_REQUEST
    );

    let m = s.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("shoal_tracker_live_peers 5"), "{m}");
    assert!(m.contains("shoal_tracker_http_requests_total{"), "{m}");
}

#[tokio::test]
async fn idle_and_half_sent_connections_do_not_stop_the_tracker() {
    let s = start(None).await;
    let mut held = Vec::new();
    for i in 0..300 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 0 {
            use tokio::io::AsyncWriteExt;
            c.write_all(b"PUT /v1/peers/x HTTP/1.1\r\nHost: x\r\nContent-Len")
                .await
                .unwrap();
        }
        held.push(c);
    }
    // Another client (another loopback address) is served meanwhile; the
    // one holding them is over its share.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        other.get(format!("{}/healthz", s.base)).send(),
    )
    .await
    .expect("tracker starved")
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(held);
}

/// Class 9: a registration captured before its peer left is refused when
/// replayed after the peer deregistered, as it was while the peer was there.
#[tokio::test]
async fn a_registration_replayed_after_leaving_is_refused() {
    let s = start(None).await;
    let alice = Identity::from_seed([3; 32]);
    let captured = reg(&alice, "alice", "127.0.0.1:7001", now_ms());
    assert_eq!(s.put_reg(&captured).await.status(), StatusCode::OK);
    let r = s
        .http
        .delete(format!("{}/v1/peers/{}", s.base, alice.peer_id()))
        .json(&Deregistration::new(&alice, now_ms() + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The attacker replays what it captured, and older ones.
    for replay in [
        captured.clone(),
        reg(&alice, "alice", "10.6.6.6:1", captured.ts - 1),
    ] {
        assert_eq!(s.put_reg(&replay).await.status(), StatusCode::CONFLICT);
        assert_eq!(
            s.get(&format!("/v1/peers/{}", alice.peer_id()))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
    // Alice herself comes back with a fresh registration.
    let fresh = reg(&alice, "alice", "127.0.0.1:7001", now_ms() + 2);
    assert_eq!(s.put_reg(&fresh).await.status(), StatusCode::OK);
}

/// Answers a dial-back: a peer answers at `addr` only.
struct AnswersAt(String);

impl shoal_tracker::probe::Prober for AnswersAt {
    fn probe<'a>(
        &'a self,
        _peer: shoal_core::PeerId,
        addr: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        let ok = addr == self.0;
        Box::pin(async move { ok })
    }
}

async fn start_with(config: TrackerConfig) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(shoal_tracker::run(listener, config, async {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        addr,
        _stop: tx,
        http: reqwest::Client::new(),
    }
}

#[tokio::test]
async fn a_probe_dials_direct_addresses_and_listings_say_how_a_peer_is_reached() {
    let s = start_with(TrackerConfig {
        relays: vec!["relay://:7100".into()],
        prober: Some(std::sync::Arc::new(AnswersAt("10.0.0.2:7000".into()))),
        ..Default::default()
    })
    .await;
    let probe = |id: shoal_core::PeerId| {
        let url = format!("{}/v1/peers/{id}/probe", s.base);
        let http = s.http.clone();
        async move { http.post(url).send().await.unwrap() }
    };
    // Not registered: nothing to dial.
    let stranger = Identity::from_seed([40; 32]);
    assert_eq!(
        probe(stranger.peer_id()).await.status(),
        StatusCode::NOT_FOUND
    );

    // Behind NAT, with a relay address: relayed.
    let a = Identity::from_seed([41; 32]);
    let reg = Registration::new(
        &a,
        "a",
        vec!["10.0.0.9:7000".into(), "relay://10.0.0.1:7100".into()],
        30,
        now_ms(),
    );
    assert_eq!(s.put_reg(&reg).await.status(), StatusCode::OK);
    let p: shoal_core::wire::Probe = probe(a.peer_id()).await.json().await.unwrap();
    assert_eq!(p.reach, shoal_core::wire::Reach::Relayed);
    assert_eq!(
        p.addrs.len(),
        1,
        "only the direct address is dialled: {p:?}"
    );
    assert!(!p.addrs[0].reachable);
    // The advertised relay, with the host this caller reached the tracker on.
    assert_eq!(p.relays, ["relay://127.0.0.1:7100"]);
    let rec: PeerRecord = s
        .get(&format!("/v1/peers/{}", a.peer_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec.reach, Some(shoal_core::wire::Reach::Relayed));
    assert_eq!(rec.addrs[1], "relay://10.0.0.1:7100");

    // Answers at its address: direct, in the page of peers too.
    let b = Identity::from_seed([42; 32]);
    let reg = Registration::new(&b, "b", vec!["10.0.0.2:7000".into()], 30, now_ms());
    assert_eq!(s.put_reg(&reg).await.status(), StatusCode::OK);
    let p: shoal_core::wire::Probe = probe(b.peer_id()).await.json().await.unwrap();
    assert_eq!(p.reach, shoal_core::wire::Reach::Direct);
    let page: PeerPage = s.get("/v1/peers").await.json().await.unwrap();
    let listed = page
        .peers
        .iter()
        .find(|r| r.peer_id == b.peer_id())
        .unwrap();
    assert_eq!(listed.reach, Some(shoal_core::wire::Reach::Direct));
    // New addresses: what was found no longer holds until probed again.
    let reg = Registration::new(&b, "b", vec!["10.0.0.3:7000".into()], 30, now_ms() + 1);
    assert_eq!(s.put_reg(&reg).await.status(), StatusCode::OK);
    let rec: PeerRecord = s
        .get(&format!("/v1/peers/{}", b.peer_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec.reach, None);
}

#[tokio::test]
async fn a_tracker_that_does_not_dial_back_says_so() {
    let s = start(None).await;
    let a = Identity::from_seed([43; 32]);
    let reg = Registration::new(&a, "a", vec!["10.0.0.9:7000".into()], 30, now_ms());
    assert_eq!(s.put_reg(&reg).await.status(), StatusCode::OK);
    let r = s
        .http
        .post(format!("{}/v1/peers/{}/probe", s.base, a.peer_id()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(r.text().await.unwrap().contains("does not dial peers back"));
}
