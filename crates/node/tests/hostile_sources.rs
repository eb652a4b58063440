//! Downloads from peers that misbehave: every kind of lie is an error for
//! that peer, and nothing unverified ever reaches the final path.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shoal_core::config::RetryConfig;
use shoal_core::wire::{FileEntry, PeerRecord, PieceMap};
use shoal_core::{ErrorKind, HasKind, Identity};
use shoal_node::download::{NoProgress, Swarm, download};
use shoal_node::peer_client::PeerClient;
use shoal_node::pieces::{self, PIECE_SIZE};
use shoal_node::reputation::Reputation;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Honest,
    CorruptByte,
    WrongOutboard,
    TruncatedOutboard,
    IgnoresRange,
    ExtraBytes,
    ShortBody,
    /// Claims every piece, then refuses to send any.
    LyingHave,
}

#[derive(Clone)]
struct Fake {
    data: Arc<Vec<u8>>,
    outboard: Arc<Vec<u8>>,
    fault: Fault,
}

async fn outboard(State(f): State<Fake>) -> Vec<u8> {
    let mut o = f.outboard.to_vec();
    match f.fault {
        Fault::WrongOutboard => o[10] ^= 1,
        Fault::TruncatedOutboard => {
            o.pop();
        }
        _ => {}
    }
    o
}

async fn have(State(f): State<Fake>) -> axum::Json<PieceMap> {
    axum::Json(PieceMap {
        size: f.data.len() as u64,
        piece_size: PIECE_SIZE,
        complete: true,
        pieces: None,
        fetching: None,
    })
}

async fn content(State(f): State<Fake>, Path(_cid): Path<String>, headers: HeaderMap) -> Response {
    if f.fault == Fault::LyingHave {
        return (StatusCode::RANGE_NOT_SATISFIABLE, "not held").into_response();
    }
    let size = f.data.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()? + 1)));
    let (start, end) = match (range, f.fault) {
        (_, Fault::IgnoresRange) | (None, _) => {
            return (StatusCode::OK, f.data.to_vec()).into_response();
        }
        (Some(r), _) => r,
    };
    let mut body = f.data[start as usize..end as usize].to_vec();
    match f.fault {
        // A bad byte in every piece it sends.
        Fault::CorruptByte => body[7] ^= 0x40,
        Fault::ExtraBytes => body.extend_from_slice(b"and then some"),
        Fault::ShortBody => {
            // Promise everything, send half, then break the connection.
            let len = body.len();
            let half = bytes::Bytes::from(body[..len / 2].to_vec());
            let stream = futures_util::stream::iter(vec![
                Ok(half),
                Err(std::io::Error::other("connection lost")),
            ]);
            let mut resp = Response::new(axum::body::Body::from_stream(stream));
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, len.into());
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1).parse().unwrap(),
            );
            return resp;
        }
        _ => {}
    }
    let mut resp = (StatusCode::PARTIAL_CONTENT, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_RANGE,
        format!("bytes {start}-{}/{size}", end - 1).parse().unwrap(),
    );
    resp
}

struct Peer {
    record: PeerRecord,
    entry: FileEntry,
    _stop: tokio_util::sync::DropGuard,
}

async fn fake_peer(data: Arc<Vec<u8>>, fault: Fault) -> Peer {
    let (cid, ob) = pieces::outboard_of(&data[..], data.len() as u64).unwrap();
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(100);
    let identity =
        Identity::from_seed([NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed); 32]);
    let app = Router::new()
        .route("/v1/content/{cid}", get(content))
        .route("/v1/content/{cid}/outboard", get(outboard))
        .route("/v1/content/{cid}/have", get(have))
        .with_state(Fake {
            data: data.clone(),
            outboard: Arc::new(ob),
            fault,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let tls = shoal_node::tls::server_config(&identity).unwrap();
    tokio::spawn(shoal_node::server::serve(listener, tls, app, stop.clone()));
    Peer {
        record: PeerRecord {
            peer_id: identity.peer_id(),
            name: format!("{fault:?}"),
            addrs: vec![addr.to_string()],
            expires_in: 60,
            reach: None,
        },
        entry: FileEntry {
            name: "file.bin".into(),
            size: data.len() as u64,
            content_id: cid,
            modified: 0,
            encrypted: false,
        },
        _stop: stop.drop_guard(),
    }
}

/// Downloads `entry` from `peers` into `out` as a test client.
async fn fetch(
    peers: &[PeerRecord],
    entry: &FileEntry,
    out: &std::path::Path,
    swarm: &Swarm,
) -> Result<std::path::PathBuf, shoal_node::NodeError> {
    shoal_node::download::download_from(&client(), peers, entry, out, &NoProgress, swarm).await
}

fn client() -> PeerClient {
    let retry = RetryConfig {
        attempts: 1,
        ..RetryConfig::default()
    };
    PeerClient::new(Arc::new(Identity::from_seed([1; 32])), retry)
}

fn sample() -> Arc<Vec<u8>> {
    Arc::new(
        (0..(5 * PIECE_SIZE + 333))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    )
}

#[tokio::test]
async fn every_lie_is_an_error_and_never_a_file() {
    let data = sample();
    let cases = [
        (Fault::CorruptByte, ErrorKind::Integrity),
        (Fault::WrongOutboard, ErrorKind::Protocol),
        (Fault::TruncatedOutboard, ErrorKind::Protocol),
        (Fault::IgnoresRange, ErrorKind::Protocol),
        (Fault::ExtraBytes, ErrorKind::Protocol),
        (Fault::ShortBody, ErrorKind::Network),
    ];
    for (fault, kind) in cases {
        let out = tempfile::tempdir().unwrap();
        if fault == Fault::IgnoresRange {
            // Ignoring Range only shows when part of the file is asked for:
            // get half of it first.
            let half = fake_peer(data.clone(), Fault::ShortBody).await;
            assert!(
                download(
                    &client(),
                    &half.record,
                    &half.entry,
                    out.path(),
                    &NoProgress
                )
                .await
                .is_err()
            );
        }
        let peer = fake_peer(data.clone(), fault).await;
        let err = download(
            &client(),
            &peer.record,
            &peer.entry,
            out.path(),
            &NoProgress,
        )
        .await
        .expect_err(&format!("{fault:?} was accepted"));
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
        assert!(
            !out.path().join("file.bin").exists(),
            "{fault:?} left a file at the final path"
        );
        // Whatever reached the .part was verified: an honest peer finishes it.
        let honest = fake_peer(data.clone(), Fault::Honest).await;
        let path = download(
            &client(),
            &honest.record,
            &honest.entry,
            out.path(),
            &NoProgress,
        )
        .await
        .unwrap_or_else(|e| panic!("honest peer after {fault:?}: {e}"));
        assert_eq!(std::fs::read(path).unwrap(), *data, "after {fault:?}");
    }
}

#[tokio::test]
async fn a_partial_file_of_other_content_is_a_clear_error() {
    let data = sample();
    let out = tempfile::tempdir().unwrap();
    let short = fake_peer(data.clone(), Fault::ShortBody).await;
    assert!(
        download(
            &client(),
            &short.record,
            &short.entry,
            out.path(),
            &NoProgress
        )
        .await
        .is_err()
    );
    // The same name now stands for other bytes.
    let mut other = data.to_vec();
    other[0] ^= 1;
    let changed = fake_peer(Arc::new(other), Fault::Honest).await;
    let err = download(
        &client(),
        &changed.record,
        &changed.entry,
        out.path(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("remove it"), "{err}");
    assert!(!out.path().join("file.bin").exists());
}

#[tokio::test]
async fn honest_peers_finish_what_liars_and_quitters_started() {
    let data = sample();
    for fault in [
        Fault::CorruptByte,
        Fault::ShortBody,
        Fault::WrongOutboard,
        Fault::ExtraBytes,
    ] {
        let out = tempfile::tempdir().unwrap();
        // The misbehaving peer comes first, so it is asked first.
        let bad = fake_peer(data.clone(), fault).await;
        let good = fake_peer(data.clone(), Fault::Honest).await;
        let peers = vec![bad.record.clone(), good.record.clone()];
        let reputation = Reputation::new(out.path(), Default::default());
        let swarm = Swarm {
            reputation: Some(reputation.clone()),
            ..Swarm::default()
        };
        let path = fetch(&peers, &bad.entry, &out.path().join("files"), &swarm)
            .await
            .unwrap_or_else(|e| panic!("{fault:?} with an honest peer beside it: {e}"));
        assert_eq!(std::fs::read(path).unwrap(), *data, "{fault:?}");
        // Its reputation shows it; the honest peer's shows the pieces.
        let standings = reputation.all().unwrap();
        let liar = &standings[&bad.record.peer_id];
        assert!(liar.failures + liar.bad_pieces >= 1, "{fault:?}: {liar:?}");
        if fault == Fault::CorruptByte {
            assert!(liar.bad_pieces >= 1, "{liar:?}");
            assert_eq!(liar.strikes, 1, "one bad piece is not yet a ban");
        }
        let honest = &standings[&good.record.peer_id];
        assert!(honest.good_pieces >= 1, "{honest:?}");
        assert_eq!((honest.bad_pieces, honest.failures), (0, 0));
    }
}

#[tokio::test]
async fn a_second_bad_piece_bans_the_peer_and_later_downloads_skip_it() {
    let data = sample();
    let home = tempfile::tempdir().unwrap();
    let reputation = Reputation::new(home.path(), Default::default());
    let swarm = Swarm {
        reputation: Some(reputation.clone()),
        ..Swarm::default()
    };
    let liar = fake_peer(data.clone(), Fault::CorruptByte).await;
    for round in 0..2 {
        let out = home.path().join(format!("round{round}"));
        let err = fetch(
            std::slice::from_ref(&liar.record),
            &liar.entry,
            &out,
            &swarm,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, shoal_node::NodeError::BadPiece { .. }),
            "round {round}: {err}"
        );
    }
    let now = shoal_node::reputation::now_secs();
    assert!(reputation.all().unwrap()[&liar.record.peer_id].banned(now));
    // Banned: not even asked, and the error says why and what to do.
    let out = home.path().join("round2");
    let err = fetch(
        std::slice::from_ref(&liar.record),
        &liar.entry,
        &out,
        &swarm,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");
    assert!(!out.exists(), "a banned peer's download touched the disk");
    // With an honest peer beside it, the download goes ahead without it.
    let before = reputation.all().unwrap()[&liar.record.peer_id].clone();
    let good = fake_peer(data.clone(), Fault::Honest).await;
    let path = fetch(
        &[liar.record.clone(), good.record.clone()],
        &liar.entry,
        &out,
        &swarm,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *data);
    let standings = reputation.all().unwrap();
    assert_eq!(
        standings[&liar.record.peer_id], before,
        "the banned peer took part"
    );
    assert!(before.bad_pieces >= 2, "{before:?}");
}

#[tokio::test]
async fn a_peer_that_lists_pieces_it_never_sends_costs_nothing_beside_an_honest_one() {
    let data = sample();
    let out = tempfile::tempdir().unwrap();
    let liar = fake_peer(data.clone(), Fault::LyingHave).await;
    let good = fake_peer(data.clone(), Fault::Honest).await;
    // Beside an honest peer, it costs nothing.
    let path = fetch(
        &[liar.record.clone(), good.record.clone()],
        &liar.entry,
        out.path(),
        &Swarm::default(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), *data);
}

/// A fake peer sharing a folder of small files, serving bundles with `fault`.
#[derive(Clone)]
struct FakeFolder {
    files: Arc<Vec<(FileEntry, Vec<u8>)>>,
    fault: Fault,
}

async fn folder_files(State(f): State<FakeFolder>) -> axum::Json<Vec<FileEntry>> {
    axum::Json(f.files.iter().map(|(e, _)| e.clone()).collect())
}

async fn folder_bundle(State(f): State<FakeFolder>, body: bytes::Bytes) -> Vec<u8> {
    let ids: Vec<shoal_core::ContentId> = serde_json::from_slice(&body).unwrap();
    let mut out = Vec::new();
    for id in ids {
        let (_, data) = f.files.iter().find(|(e, _)| e.content_id == id).unwrap();
        let mut data = data.clone();
        match f.fault {
            Fault::CorruptByte => data[0] ^= 1,
            Fault::ExtraBytes => data.extend_from_slice(b"more"),
            _ => {}
        }
        out.push(0u8);
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&data);
    }
    if f.fault == Fault::ShortBody {
        out.truncate(out.len() / 2);
    }
    out
}

async fn fake_folder_peer(
    fault: Fault,
) -> (PeerRecord, Vec<FileEntry>, tokio_util::sync::DropGuard) {
    let files: Vec<(FileEntry, Vec<u8>)> = (0..40)
        .map(|i| {
            let data = format!("file number {i}").repeat(i + 1).into_bytes();
            let entry = FileEntry {
                name: format!("docs/d{}/f{i}.txt", i % 3),
                size: data.len() as u64,
                content_id: shoal_core::ContentId::of(&data),
                modified: 0,
                encrypted: false,
            };
            (entry, data)
        })
        .collect();
    let listing: Vec<FileEntry> = files.iter().map(|(e, _)| e.clone()).collect();
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(200);
    let identity =
        Identity::from_seed([NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed); 32]);
    let app = Router::new()
        .route("/v1/files", get(folder_files))
        .route("/v1/bundle", axum::routing::post(folder_bundle))
        .with_state(FakeFolder {
            files: Arc::new(files),
            fault,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let tls = shoal_node::tls::server_config(&identity).unwrap();
    tokio::spawn(shoal_node::server::serve(listener, tls, app, stop.clone()));
    let record = PeerRecord {
        peer_id: identity.peer_id(),
        name: format!("folder-{fault:?}"),
        addrs: vec![addr.to_string()],
        expires_in: 60,
        reach: None,
    };
    (record, listing, stop.drop_guard())
}

#[tokio::test]
async fn a_lying_bundle_never_leaves_a_wrong_file() {
    let out = tempfile::tempdir().unwrap();
    let reputation = Reputation::new(out.path(), Default::default());
    let swarm = Swarm {
        reputation: Some(reputation.clone()),
        ..Swarm::default()
    };
    for (fault, kind) in [
        (Fault::CorruptByte, ErrorKind::Integrity),
        (Fault::ExtraBytes, ErrorKind::Protocol),
        (Fault::ShortBody, ErrorKind::Protocol),
    ] {
        let (peer, listing, _guard) = fake_folder_peer(fault).await;
        let err = shoal_node::folder::download_folder(
            &client(),
            peer.clone(),
            listing.clone(),
            "docs/",
            out.path(),
            &NoProgress,
            &swarm,
            &Default::default(),
        )
        .await
        .expect_err(&format!("{fault:?} was accepted"));
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
        // Whatever is at a final path is right.
        for e in &listing {
            let path = out.path().join(&e.name);
            if let Ok(got) = std::fs::read(&path) {
                assert_eq!(
                    shoal_core::ContentId::of(&got),
                    e.content_id,
                    "{fault:?}: {}",
                    e.name
                );
            }
        }
        if fault == Fault::CorruptByte {
            let s = &reputation.all().unwrap()[&peer.peer_id];
            assert!(s.bad_pieces >= 1 && s.good_pieces == 0, "{s:?}");
        }
    }
    // An honest peer then fills in everything.
    let (peer, listing, _guard) = fake_folder_peer(Fault::Honest).await;
    let root = shoal_node::folder::download_folder(
        &client(),
        peer,
        listing.clone(),
        "docs/",
        out.path(),
        &NoProgress,
        &swarm,
        &Default::default(),
    )
    .await
    .unwrap();
    for e in &listing {
        let got = std::fs::read(out.path().join(&e.name)).unwrap();
        assert_eq!(shoal_core::ContentId::of(&got), e.content_id, "{}", e.name);
    }
    let leftovers: Vec<_> = walk(&root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Class 8: local files that lie. A record claiming every piece beside a
/// `.part` of garbage, or a `.part` that is a planted symlink, can cost
/// time but never put an unverified byte at the final path or write
/// outside the folder.
#[tokio::test]
async fn local_files_that_lie_never_reach_the_final_path() {
    let data = sample();
    let honest = fake_peer(data.clone(), Fault::Honest).await;
    let size = data.len() as u64;

    // Garbage, or the right bytes with a few flipped, under a record
    // that says every piece was verified.
    for garbage in [vec![0xAAu8; data.len()], {
        let mut d = data.to_vec();
        d[3] ^= 1;
        d[PIECE_SIZE as usize * 2 + 5] ^= 1;
        d
    }] {
        let out = tempfile::tempdir().unwrap();
        let part = out.path().join("file.bin.part");
        std::fs::write(&part, &garbage).unwrap();
        let mut state = pieces::PieceState::new(honest.entry.content_id, size);
        state.mark(0..pieces::piece_count(size));
        state.save(&pieces::PieceState::path_for(&part)).unwrap();
        let got = fetch(
            std::slice::from_ref(&honest.record),
            &honest.entry,
            out.path(),
            &Swarm::default(),
        )
        .await
        .unwrap();
        assert!(
            std::fs::read(&got).unwrap() == *data,
            "published unverified bytes"
        );
    }

    // A planted symlink: refused, and its target untouched.
    #[cfg(unix)]
    {
        let out = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("precious.txt");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, out.path().join("file.bin.part")).unwrap();
        let err = fetch(
            std::slice::from_ref(&honest.record),
            &honest.entry,
            out.path(),
            &Swarm::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::File, "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!out.path().join("file.bin").exists());
    }
}

/// Class 2: a listed size beyond any real file is refused before anything
/// is allocated for it.
#[tokio::test]
async fn absurd_listed_sizes_are_refused_before_allocating() {
    let data = sample();
    let honest = fake_peer(data.clone(), Fault::Honest).await;
    for size in [u64::MAX, u64::MAX / 2, (1 << 42) + 1] {
        let mut entry = honest.entry.clone();
        entry.size = size;
        let out = tempfile::tempdir().unwrap();
        let err = fetch(
            std::slice::from_ref(&honest.record),
            &entry,
            out.path(),
            &Swarm::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Protocol | ErrorKind::File),
            "{size}: {err}"
        );
        assert!(!out.path().join("file.bin").exists());
    }
}

/// Class 5: disk reserved for a download is bounded by what its peers
/// proved: a peer whose data fails leaves no reservation behind.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_download_gives_its_reserved_space_back() {
    use std::os::unix::fs::MetadataExt;
    let data: Arc<Vec<u8>> = Arc::new(
        (0..(256 * PIECE_SIZE))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect(),
    );
    let liar = fake_peer(data.clone(), Fault::CorruptByte).await;
    let out = tempfile::tempdir().unwrap();
    let err = fetch(
        std::slice::from_ref(&liar.record),
        &liar.entry,
        out.path(),
        &Swarm::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let part = out.path().join("file.bin.part");
    let allocated = std::fs::metadata(&part).map_or(0, |m| m.blocks() * 512);
    assert!(
        allocated < 4 * PIECE_SIZE,
        "{allocated} bytes still reserved for a {} byte file nobody proved",
        data.len()
    );

    // A peer that cannot even prove the size reserves nothing at all.
    let bad = fake_peer(data.clone(), Fault::WrongOutboard).await;
    let out = tempfile::tempdir().unwrap();
    let _ = fetch(
        std::slice::from_ref(&bad.record),
        &bad.entry,
        out.path(),
        &Swarm::default(),
    )
    .await
    .unwrap_err();
    let allocated =
        std::fs::metadata(out.path().join("file.bin.part")).map_or(0, |m| m.blocks() * 512);
    assert_eq!(allocated, 0);
}
