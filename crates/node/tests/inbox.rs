//! Pushes to a real node's inbox on 127.0.0.1, with requests a hostile or
//! clumsy sender could make.

use std::sync::Arc;

use shoal_core::config::RetryConfig;
use shoal_core::wire::PeerRecord;
use shoal_core::{ContentId, Identity};
use shoal_node::inbox::{Accept, Accepted, Offer, Received};
use shoal_node::peer_client::PeerClient;
use shoal_node::{Node, NodeConfig};

struct Receiver {
    node: Node,
    record: PeerRecord,
    inbox: std::path::PathBuf,
    data: tempfile::TempDir,
}

async fn receiver(accept: Accept, max_size: Option<u64>) -> Receiver {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "receiver".into(),
    );
    cfg.inbox.accept = accept;
    cfg.inbox.max_size = max_size;
    let inbox = cfg.inbox.dir.clone();
    let node = Node::start(cfg, Arc::new(Identity::from_seed([50; 32])))
        .await
        .unwrap();
    let record = PeerRecord {
        peer_id: node.peer_id(),
        name: "receiver".into(),
        addrs: vec![node.local_addr().to_string()],
        expires_in: 60,
        reach: None,
    };
    Receiver {
        node,
        record,
        inbox,
        data,
    }
}

fn sender(seed: u8) -> PeerClient {
    let retry = RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    };
    PeerClient::new(Arc::new(Identity::from_seed([seed; 32])), retry)
}

async fn offer(c: &PeerClient, r: &Receiver, name: &str, data: &[u8]) -> (u16, String) {
    let o = Offer {
        name: name.into(),
        size: data.len() as u64,
        content_id: ContentId::of(data),
    };
    let resp = c.post_json(&r.record, "/v1/inbox", &o).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn put(
    c: &PeerClient,
    r: &Receiver,
    upload: &str,
    offset: u64,
    body: Vec<u8>,
) -> (u16, String) {
    let len = body.len() as u64;
    let resp = c
        .put_body(
            &r.record,
            &format!("/v1/inbox/{upload}?offset={offset}"),
            shoal_node::peer_client::body_of(body),
            len,
        )
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn accepted(c: &PeerClient, r: &Receiver, o: &Offer) -> Accepted {
    let resp = c.post_json(&r.record, "/v1/inbox", o).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn inbox_names(r: &Receiver) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&r.inbox)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn push(
    c: &PeerClient,
    r: &Receiver,
    name: &str,
    data: &[u8],
) -> Result<String, (u16, String)> {
    let (code, body) = offer(c, r, name, data).await;
    if code != 200 {
        return Err((code, body));
    }
    let a: Accepted = serde_json::from_str(&body).unwrap();
    let (code, body) = put(
        c,
        r,
        &a.upload,
        a.offset,
        data[a.offset as usize..].to_vec(),
    )
    .await;
    if code != 200 {
        return Err((code, body));
    }
    Ok(serde_json::from_str::<Received>(&body).unwrap().name)
}

#[tokio::test]
async fn hostile_names_land_inside_the_inbox_or_nowhere() {
    let r = receiver(Accept::Anyone, None).await;
    let c = sender(1);
    let long = "x".repeat(300) + ".txt";
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("../../escape.txt", Some("escape.txt")),
        ("/etc/passwd", Some("passwd")),
        ("..\\..\\win.ini", Some("win.ini")),
        ("CON", Some("_CON")),
        ("nul.txt", Some("_nul.txt")),
        ("..", None),
        ("", None),
        ("a\0b", None),
        ("dir/", None),
    ];
    for (name, want) in cases {
        match (push(&c, &r, name, name.as_bytes()).await, want) {
            (Ok(got), Some(w)) => assert_eq!(got, w, "{name:?}"),
            (Err((400, _)), None) => {}
            (other, _) => panic!("{name:?}: {other:?}"),
        }
    }
    let got = push(&c, &r, &long, b"long").await.unwrap();
    assert!(got.len() <= 255 && got.ends_with(".txt"), "{got}");
    // Nothing anywhere but the inbox; the data dir's parent untouched.
    for n in inbox_names(&r) {
        assert!(!n.contains('/') && n != ".." && n != ".", "{n}");
    }
    assert!(!r.data.path().parent().unwrap().join("escape.txt").exists());
    assert!(!r.inbox.parent().unwrap().join("escape.txt").exists());
    // Same name again: never overwritten.
    assert_eq!(push(&c, &r, "a.txt", b"1").await.unwrap(), "a.txt");
    assert_eq!(push(&c, &r, "a.txt", b"2").await.unwrap(), "a (1).txt");
    assert_eq!(push(&c, &r, "a.txt", b"3").await.unwrap(), "a (2).txt");
    assert_eq!(std::fs::read(r.inbox.join("a.txt")).unwrap(), b"1");
}

#[tokio::test]
async fn refusals_cost_nothing_and_leave_nothing() {
    let allowed = Identity::from_seed([7; 32]).peer_id();
    let r = receiver(Accept::Peers(vec![allowed]), Some(1024 * 1024)).await;
    // A stranger is told plainly.
    let (code, body) = offer(&sender(8), &r, "x.bin", b"data").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--accept-from"), "{body}");
    // Over the inbox limit, or more than the disk has: refused at the offer,
    // before any byte of the file is sent.
    let c = sender(7);
    let o = Offer {
        name: "huge.bin".into(),
        size: 2 * 1024 * 1024,
        content_id: ContentId::of(b"whatever"),
    };
    let resp = c.post_json(&r.record, "/v1/inbox", &o).await.unwrap();
    assert_eq!(resp.status(), 413);
    let unlimited = receiver(Accept::Anyone, None).await;
    let o = Offer {
        name: "disk.bin".into(),
        size: 1 << 41,
        content_id: ContentId::of(b"whatever"),
    };
    let resp = c
        .post_json(&unlimited.record, "/v1/inbox", &o)
        .await
        .unwrap();
    assert_eq!(resp.status(), 507);
    assert!(inbox_names(&r).is_empty() && inbox_names(&unlimited).is_empty());

    // A lying content id: the bytes are thrown away.
    let o = Offer {
        name: "lie.bin".into(),
        size: 5,
        content_id: ContentId::of(b"truth"),
    };
    let a = accepted(&c, &r, &o).await;
    let (code, body) = put(&c, &r, &a.upload, 0, b"lies!".to_vec()).await;
    assert_eq!(code, 422, "{body}");
    // More bytes than offered: thrown away too.
    let a = accepted(&c, &r, &o).await;
    let (code, _) = put(&c, &r, &a.upload, 0, b"truth and more".to_vec()).await;
    assert_eq!(code, 400);
    assert!(inbox_names(&r).is_empty(), "{:?}", inbox_names(&r));
    let partial = r.data.path().join("inbox-partial");
    let left: Vec<_> = std::fs::read_dir(&partial)
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // Someone else cannot finish another sender's upload.
    let a = accepted(&c, &r, &o).await;
    let (code, _) = put(&sender(9), &r, &a.upload, 0, b"truth".to_vec()).await;
    assert_eq!(code, 404);
    drop(r.node);
}

#[tokio::test]
async fn an_interrupted_push_leaves_nothing_in_the_inbox_and_resumes() {
    let r = receiver(Accept::Anyone, None).await;
    let c = sender(3);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (code, body) = offer(&c, &r, "movie.bin", &data).await;
    assert_eq!(code, 200, "{body}");
    let a: Accepted = serde_json::from_str(&body).unwrap();
    assert_eq!(a.offset, 0);
    // Half the bytes, then the connection breaks.
    let half = data[..1_500_000].to_vec();
    let stream = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(half)),
        Err(std::io::Error::other("cable pulled")),
    ]);
    let _ = c
        .put_body(
            &r.record,
            &format!("/v1/inbox/{}?offset=0", a.upload),
            shoal_node::peer_client::streamed(stream),
            data.len() as u64,
        )
        .await;
    assert!(
        inbox_names(&r).is_empty(),
        "a broken push left {:?}",
        inbox_names(&r)
    );
    // Offered again: it resumes where the receiver's copy stopped (once
    // the receiver has taken in what arrived before the break).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let again = loop {
        let (code, body) = offer(&c, &r, "movie.bin", &data).await;
        assert_eq!(code, 200, "{body}");
        let again: Accepted = serde_json::from_str(&body).unwrap();
        if again.offset > 0 || std::time::Instant::now() > deadline {
            break again;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(again.upload, a.upload);
    assert!(
        again.offset > 0 && again.offset <= 1_500_000,
        "{}",
        again.offset
    );
    // A wrong offset is told the right one.
    let (code, body) = put(&c, &r, &again.upload, 0, data.clone()).await;
    assert_eq!(code, 409, "{body}");
    let (code, body) = put(
        &c,
        &r,
        &again.upload,
        again.offset,
        data[again.offset as usize..].to_vec(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(std::fs::read(r.inbox.join("movie.bin")).unwrap(), data);
}

/// Class 1: sizes from the network are checked before any arithmetic: an
/// offer near 2^64 bytes cannot wrap the limit or disk checks.
#[tokio::test]
async fn offers_of_absurd_sizes_are_refused_whatever_the_limits() {
    let limited = receiver(Accept::Anyone, Some(1024 * 1024)).await;
    let unlimited = receiver(Accept::Anyone, None).await;
    let c = sender(21);
    for size in [
        u64::MAX,
        u64::MAX - 16 * 1024 * 1024 + 1,
        1 << 63,
        (1 << 42) + 1,
    ] {
        for r in [&limited, &unlimited] {
            let o = Offer {
                name: "wrap.bin".into(),
                size,
                content_id: ContentId::of(b"x"),
            };
            let resp = c.post_json(&r.record, "/v1/inbox", &o).await.unwrap();
            let code = resp.status().as_u16();
            assert!(code == 413 || code == 507, "size {size}: {code}");
        }
    }
    assert!(inbox_names(&limited).is_empty() && inbox_names(&unlimited).is_empty());
}

/// Class 5: offers made before their uploads, in parallel, are accounted
/// together: they cannot overfill --max-inbox-size.
#[tokio::test]
async fn parallel_offers_cannot_overfill_the_inbox() {
    let max = 1024 * 1024;
    let r = receiver(Accept::Anyone, Some(max)).await;
    let c = sender(22);
    let mut accepted = 0;
    let mut refused = 0;
    let offers: Vec<Offer> = (0..8u8)
        .map(|i| Offer {
            name: format!("part{i}.bin"),
            size: 400 * 1024,
            content_id: ContentId::of(&[i]),
        })
        .collect();
    let answers = futures_util::future::join_all(
        offers
            .iter()
            .map(|o| c.post_json(&r.record, "/v1/inbox", o)),
    )
    .await;
    for a in answers {
        match a.unwrap().status().as_u16() {
            200 => accepted += 1,
            413 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 2, "two of 400 KiB fit in 1 MiB, not more");
    assert_eq!(refused, 6);
}

/// Unmounts a test's tmpfs when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Class 10: an inbox on another file system than the data dir still
/// takes pushes: partial files live on the inbox's own disk, so the
/// finished file is linked into place, and nothing is stranded.
#[tokio::test]
async fn an_inbox_on_another_disk_takes_pushes() {
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let inbox = elsewhere.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mounted = std::process::Command::new("mount")
        // Room for the file and the 16 MiB kept free beside it.
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&inbox)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED an_inbox_on_another_disk_takes_pushes: cannot mount a tmpfs here (needs root); CI runs it"
        );
        return;
    }
    let _mount = Mount(inbox.clone());
    let mut cfg = NodeConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "receiver".into(),
    );
    cfg.inbox.accept = Accept::Anyone;
    cfg.inbox.dir = inbox.clone();
    let node = Node::start(cfg, Arc::new(Identity::from_seed([51; 32])))
        .await
        .unwrap();
    let r = Receiver {
        record: PeerRecord {
            peer_id: node.peer_id(),
            name: "receiver".into(),
            addrs: vec![node.local_addr().to_string()],
            expires_in: 60,
            reach: None,
        },
        node,
        inbox: inbox.clone(),
        data,
    };
    let c = sender(23);
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 199) as u8).collect();
    assert_eq!(
        push(&c, &r, "across.bin", &body).await.unwrap(),
        "across.bin"
    );
    assert_eq!(std::fs::read(inbox.join("across.bin")).unwrap(), body);
    // Nothing stranded, here or in the data dir.
    let stranded = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .map(|d| d.filter_map(|e| e.ok()).count())
            .unwrap_or(0)
    };
    assert_eq!(stranded(&inbox.join(".shoal-partial")), 0);
    assert_eq!(stranded(&r.data.path().join("inbox-partial")), 0);
    drop(r.node);
}
