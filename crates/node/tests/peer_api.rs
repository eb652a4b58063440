//! The peer API of a real node on 127.0.0.1: pinning both ways, ranges,
//! and hostile requests.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use shoal_core::config::RetryConfig;
use shoal_core::wire::PeerRecord;
use shoal_core::{ContentId, Identity};
use shoal_node::peer_client::PeerClient;
use shoal_node::{Node, NodeConfig, NodeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    node: Node,
    record: PeerRecord,
    _dirs: Vec<tempfile::TempDir>,
    outside_secret: Vec<u8>,
}

async fn fixture() -> Fixture {
    let share = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("hello.txt"), b"hello world").unwrap();
    std::fs::create_dir(share.path().join("sub")).unwrap();
    std::fs::write(share.path().join("sub/inner.bin"), vec![5u8; 70_000]).unwrap();
    let secret = b"root:x:0:0:outside the share".to_vec();
    std::fs::write(outside.path().join("passwd"), &secret).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path().join("passwd"), share.path().join("leak")).unwrap();

    let mut cfg = NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "server".into(),
    );
    cfg.shares = vec![share.path().to_owned()];
    let identity = Arc::new(Identity::from_seed([11; 32]));
    let node = Node::start(cfg, identity).await.unwrap();
    let record = PeerRecord {
        peer_id: node.peer_id(),
        name: "server".into(),
        addrs: vec![node.local_addr().to_string()],
        expires_in: 60,
        reach: None,
    };
    Fixture {
        node,
        record,
        _dirs: vec![share, outside, data],
        outside_secret: secret,
    }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    }
}

fn client(seed: u8) -> PeerClient {
    PeerClient::new(Arc::new(Identity::from_seed([seed; 32])), fast_retry())
}

/// Sends raw request bytes over mutual TLS as `seed`'s identity; returns
/// the whole answer.
async fn raw(f: &Fixture, seed: u8, request: &[u8]) -> String {
    let (cfg, _) =
        shoal_node::tls::client_config(&Identity::from_seed([seed; 32]), f.node.peer_id()).unwrap();
    let tcp = tokio::net::TcpStream::connect(f.node.local_addr())
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("peer.shoal").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {resp:?}"))
}

#[tokio::test]
async fn lists_and_serves_with_ranges() {
    let f = fixture().await;
    let c = client(1);
    let files = c.files(&f.record).await.unwrap();
    let names: Vec<&str> = files.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["hello.txt", "sub/inner.bin"],
        "the symlink out of the share must not be listed"
    );

    let hello = ContentId::of(b"hello world");
    let body = c
        .content(&f.record, hello, None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello world");
    let r = c.content(&f.record, hello, Some((6, 11))).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 6-10/11");
    assert_eq!(&r.bytes().await.unwrap()[..], b"world");

    let resp = raw(&f, 1, format!("GET /v1/content/{hello} HTTP/1.1\r\nHost: x\r\nRange: bytes=50-60\r\nConnection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(status(&resp), 416);
}

#[tokio::test]
async fn the_wrong_key_gets_a_connection_error_not_data() {
    let f = fixture().await;
    let mut impostor = f.record.clone();
    impostor.peer_id = Identity::from_seed([99; 32]).peer_id();
    match client(1).files(&impostor).await {
        Err(NodeError::Peer(shoal_node::PeerError::WrongPeer(w))) => {
            assert_eq!(w.expected, impostor.peer_id);
            assert_eq!(w.found, f.node.peer_id().to_string());
        }
        other => panic!("expected WrongPeer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_gets_nothing() {
    #[derive(Debug)]
    struct AcceptAnything;
    impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            vec![rustls::SignatureScheme::ED25519]
        }
    }
    let f = fixture().await;
    let cfg = rustls::ClientConfig::builder_with_provider(shoal_node::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(f.node.local_addr())
        .await
        .unwrap();
    let got = match tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("x").unwrap(), tcp)
        .await
    {
        Err(_) => Vec::new(),
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET /v1/files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut out = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
            assert!(
                read.is_ok(),
                "server kept a certificate-less connection open"
            );
            out
        }
    };
    assert!(
        got.is_empty(),
        "got data without a certificate: {:?}",
        String::from_utf8_lossy(&got)
    );
    // The node still serves everyone else.
    assert_eq!(client(2).files(&f.record).await.unwrap().len(), 2);
}

#[tokio::test]
async fn hostile_requests_get_4xx_and_the_node_keeps_serving() {
    let f = fixture().await;
    let outside_id = ContentId::of(&f.outside_secret);
    let hello = ContentId::of(b"hello world").to_string();
    let paths = vec![
        "/v1/content/../../etc/passwd".to_owned(),
        "/v1/content/..%2f..%2fetc%2fpasswd".to_owned(),
        "/v1/content/%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "/v1/content/%2e%2e".to_owned(),
        "/v1/content/..\\..\\etc\\passwd".to_owned(),
        "/v1/content/%5c..%5cetc".to_owned(),
        "/v1/content//etc/passwd".to_owned(),
        "/v1/content/%2fetc%2fpasswd".to_owned(),
        "/v1/content/C:%5cWindows".to_owned(),
        "/v1/content/%00".to_owned(),
        format!("/v1/content/{}%00", &hello[..63]),
        format!("/v1/content/{}", &hello[..63]),
        format!("/v1/content/{hello}0"),
        format!("/v1/content/{}", hello.replace('a', "g")),
        format!("/v1/content/{outside_id}"),
        "/v1/files/../../etc/passwd".to_owned(),
        "/../../etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "/v1/content/hello.txt".to_owned(),
        "/v1/content/sub%2finner.bin".to_owned(),
    ];
    for p in &paths {
        let resp = raw(
            &f,
            3,
            format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let code = status(&resp);
        assert!((400..500).contains(&code), "GET {p} gave {code}");
        assert!(!resp.contains("root:x"), "GET {p} leaked the outside file");
    }
    // Oversized headers and bodies where none belong.
    let huge = format!(
        "GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200_000)
    );
    let resp = raw(&f, 3, huge.as_bytes()).await;
    assert!(
        resp.is_empty() || (400..500).contains(&status(&resp)),
        "{}",
        &resp[..resp.len().min(100)]
    );
    let resp = raw(&f, 3, b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").await;
    assert_eq!(status(&resp), 405);
    let resp = raw(&f, 3, b"NONSENSE\r\n\r\n").await;
    assert!(resp.is_empty() || status(&resp) == 400);

    // Still serving, and nothing changed.
    assert_eq!(client(4).files(&f.record).await.unwrap().len(), 2);
}

#[tokio::test]
async fn bundles_carry_small_files_and_say_which_they_cannot() {
    let f = fixture().await;
    let c = client(5);
    let hello = ContentId::of(b"hello world");
    let inner = ContentId::of(&vec![5u8; 70_000]);
    let unknown = ContentId::of(b"not shared here");
    let outside = ContentId::of(&f.outside_secret);
    let resp = c
        .bundle(&f.record, &[hello, unknown, inner, outside, hello])
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let mut frames = Vec::new();
    let mut rest = &body[..];
    while !rest.is_empty() {
        let status = rest[0];
        let len = u64::from_le_bytes(rest[1..9].try_into().unwrap()) as usize;
        frames.push((status, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[0], (0, b"hello world".to_vec()));
    assert_eq!(frames[1], (1, Vec::new()), "not shared");
    assert_eq!(frames[2], (0, vec![5u8; 70_000]));
    assert_eq!(frames[3], (1, Vec::new()), "the symlink out of the share");
    assert_eq!(frames[4], (0, b"hello world".to_vec()));

    // Which pieces: all of a shared file.
    let map = c.have(&f.record, inner).await.unwrap();
    assert!(map.complete && map.size == 70_000 && map.pieces.is_none());
    assert!(c.have(&f.record, unknown).await.is_err());

    // Hostile bundles: too many ids, not ids, not JSON.
    let many = vec![hello; shoal_node::server::MAX_BUNDLE + 1];
    assert_eq!(c.bundle(&f.record, &many).await.unwrap().status(), 400);
    for body in [&b"[\"../../etc/passwd\"]"[..], b"{}", b"\xff\xfe", b""] {
        let req = format!(
            "POST /v1/bundle HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let resp = raw(&f, 5, &bytes).await;
        assert_eq!(status(&resp), 400, "{body:?}");
        assert!(!resp.contains("root:x"));
    }
}

/// Class 8: a shared file edited in place, size and mtime kept, is noticed
/// when it is served: the downloader gets no bad byte and blames no one,
/// and the node lists the new content once it re-indexed.
#[tokio::test]
async fn a_file_changed_in_place_is_not_served_under_its_old_id() {
    let share = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = share.path().join("big.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let mut cfg = NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "server".into(),
    );
    cfg.shares = vec![share.path().to_owned()];
    let node = Node::start(cfg, Arc::new(Identity::from_seed([12; 32])))
        .await
        .unwrap();
    let record = PeerRecord {
        peer_id: node.peer_id(),
        name: "server".into(),
        addrs: vec![node.local_addr().to_string()],
        expires_in: 60,
        reach: None,
    };
    let c = client(13);
    let entry = c.files(&record).await.unwrap().remove(0);
    assert_eq!(entry.content_id, ContentId::of(&bytes));

    // Edit in place: same size, mtime put back.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(std::io::SeekFrom::Start(1_000_000)).unwrap();
        f.write_all(b"tampered").unwrap();
        f.set_modified(mtime).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let err = shoal_node::download::download(
        &c,
        &record,
        &entry,
        out.path(),
        &shoal_node::download::NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        !matches!(err, NodeError::BadPiece { .. }),
        "the downloader was made to blame the peer: {err}"
    );
    assert!(!out.path().join("big.bin").exists());

    // Re-indexed: listed under what it holds now.
    let mut edited = bytes.clone();
    edited[1_000_000..1_000_008].copy_from_slice(b"tampered");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let files = c.files(&record).await.unwrap();
        if files.iter().any(|f| f.content_id == ContentId::of(&edited)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never re-indexed: {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown().await;
}

/// Class 4: clients that ask for a large file and never read the answer
/// hold an upload slot only until the write stall cuts them off; then
/// others are served again.
#[tokio::test]
async fn readers_that_never_read_give_their_upload_slots_back() {
    let share = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..64 * 1024 * 1024u32).map(|i| (i >> 9) as u8).collect();
    std::fs::write(share.path().join("big.bin"), &big).unwrap();
    let mut cfg = NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "server".into(),
    );
    cfg.shares = vec![share.path().to_owned()];
    cfg.max_uploads = 4;
    let node = Node::start(cfg, Arc::new(Identity::from_seed([14; 32])))
        .await
        .unwrap();
    let f = Fixture {
        record: PeerRecord {
            peer_id: node.peer_id(),
            name: "server".into(),
            addrs: vec![node.local_addr().to_string()],
            expires_in: 60,
            reach: None,
        },
        node,
        _dirs: vec![share, data],
        outside_secret: Vec::new(),
    };
    let cid = ContentId::of(&big);
    // Four stalled readers: each sends its request and never reads.
    let mut stalled = Vec::new();
    for seed in 30..34u8 {
        let (cfg, _) =
            shoal_node::tls::client_config(&Identity::from_seed([seed; 32]), f.node.peer_id())
                .unwrap();
        let tcp = tokio::net::TcpStream::connect(f.node.local_addr())
            .await
            .unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("peer.shoal").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(format!("GET /v1/content/{cid} HTTP/1.1\r\nHost: p\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stalled.push(tls);
    }
    let c = client(40);
    let range = Some((0, 1024));
    // While they hold the slots, others are told the node is busy...
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut saw_busy = false;
    while std::time::Instant::now() < deadline && !saw_busy {
        saw_busy = c.content(&f.record, cid, range).await.unwrap().status() == 503;
    }
    assert!(saw_busy, "the stalled readers never held the slots");
    // ...until the stall guard frees them.
    let started = std::time::Instant::now();
    loop {
        if c.content(&f.record, cid, range).await.unwrap().status() == 206 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "slots still held after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stalled);
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The first `std::io::Error` in `e`'s source chain.
fn io_cause(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(e);
    while let Some(c) = next {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = c.source();
    }
    None
}

#[tokio::test]
async fn an_unreachable_peer_keeps_the_cause_in_its_error() {
    let mut gone = PeerRecord {
        peer_id: Identity::from_seed([3; 32]).peer_id(),
        name: "gone".into(),
        addrs: vec![closed_port().to_string()],
        expires_in: 60,
        reach: None,
    };
    let err = client(1).files(&gone).await.unwrap_err();
    assert!(err.says_its_cause(), "{err:?}");
    assert!(
        err.to_string().contains("cannot reach peer") && err.to_string().contains("refused"),
        "{err}"
    );
    assert_eq!(
        io_cause(&err),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the socket's error is in the chain: {err:?}"
    );
    // No address at all: nothing below the message.
    gone.addrs.clear();
    let err = client(1).files(&gone).await.unwrap_err();
    assert!(std::error::Error::source(&err).is_none(), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_tracker_keeps_the_cause_in_its_error() {
    let url = format!("http://{}", closed_port());
    let tracker = shoal_node::tracker_client::TrackerClient::new(&url, None, fast_retry()).unwrap();
    let err = tracker.peers().await.unwrap_err();
    assert!(
        matches!(
            &err,
            NodeError::Tracker(shoal_node::TrackerError::Unreachable { url: u, .. }) if *u == url
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(
        io_cause(&err),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the socket's error is in the chain: {err:?}"
    );
}
