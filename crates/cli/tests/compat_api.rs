//! The seed's peer API on a real node (`--compat-listen`), driven by a
//! Python client written from the seed README alone.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

const TOKEN: &str = "s3cret-token";

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "WARNING: python3 with `requests` is not installed; skipping the seed client test (apt-get install python3-requests)"
        );
    }
    ok
}

fn seed_client(base: &str, token: &str, args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_client.py");
    Command::new("python3")
        .arg(script)
        .args([base, token])
        .args(args)
        .output()
        .expect("run python3")
}

fn compat_node(tmp: &Path, share: &Path, extra: &[&str]) -> (Tracker, NodeProc, String) {
    let t = tracker(30);
    let mut args = vec!["--compat-listen", "127.0.0.1:0", "--compat-token", TOKEN];
    args.extend_from_slice(extra);
    let mut n = node_with(
        &t.url,
        &tmp.join("n"),
        share,
        "alice",
        30,
        "127.0.0.1:0",
        &args,
    );
    let base = n.proc.wait_line("compat listening on ");
    (t, n, base)
}

/// A raw HTTP request to the compat listener; the whole answer.
fn raw(base: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_seeds_client_lists_downloads_and_uploads() {
    if !python_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(share.join("docs")).unwrap();
    fs::write(share.join("hello.txt"), b"hello from shoal").unwrap();
    fs::write(share.join("docs/big.bin"), bytes(3_000_000, 4)).unwrap();
    let (_t, n, base) = compat_node(tmp.path(), &share, &[]);

    let listed = seed_client(&base, TOKEN, &["list"]);
    assert!(listed.status.success(), "{listed:?}");
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mut files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["docs/big.bin", "hello.txt"]);

    for name in ["hello.txt", "docs/big.bin"] {
        let out = tmp.path().join("dl");
        let r = seed_client(&base, TOKEN, &["download", name, out.to_str().unwrap()]);
        assert!(r.status.success(), "{name}: {r:?}");
        assert_eq!(
            fs::read(&out).unwrap(),
            fs::read(share.join(name)).unwrap(),
            "{name}"
        );
    }

    let up = tmp.path().join("from seed.bin");
    fs::write(&up, bytes(1_234_567, 5)).unwrap();
    let r = seed_client(&base, TOKEN, &["upload", up.to_str().unwrap()]);
    assert!(r.status.success(), "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["message"], "File uploaded successfully");
    assert_eq!(v["filename"], "from seed.bin");
    let inbox = n.data.join("inbox");
    assert_eq!(
        fs::read(inbox.join("from seed.bin")).unwrap(),
        bytes(1_234_567, 5)
    );
    // The same name again is not overwritten.
    let r = seed_client(&base, TOKEN, &["upload", up.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["filename"], "from seed (1).bin");

    // Wrong or missing token: 401 and no data.
    for token in ["wrong", ""] {
        let r = seed_client(&base, token, &["list"]);
        assert!(!r.status.success());
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(text.starts_with("401"), "{text}");
        assert!(!text.contains("hello.txt"), "{text}");
    }
    let r = seed_client(
        &base,
        "wrong",
        &[
            "download",
            "hello.txt",
            tmp.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(!r.status.success());
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn traversal_reads_and_writes_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("ok.txt"), b"fine").unwrap();
    fs::write(tmp.path().join("secret.txt"), b"TOP SECRET").unwrap();
    let (_t, n, base) = compat_node(tmp.path(), &share, &[]);
    let auth = format!("Authorization: {TOKEN}\r\n");
    for path in [
        "/download/../secret.txt",
        "/download/..%2fsecret.txt",
        "/download/%2e%2e/secret.txt",
        "/download/..%5csecret.txt",
        "/download//etc/passwd",
        "/download/%2fetc%2fpasswd",
        "/download/ok.txt%00",
        "/download/",
        "/list_files/../download/secret.txt",
    ] {
        let resp = raw(
            &base,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        );
        let status: u16 = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!((400..500).contains(&status), "{path}: {status}");
        assert!(
            !resp.contains("TOP SECRET") && !resp.contains("root:"),
            "{path} leaked"
        );
        assert!(resp.contains("\"error\""), "{path}: {resp}");
    }
    // Multipart file names that try to leave the inbox.
    for evil in [
        "../../escape.txt",
        "/tmp/abs.txt",
        "..\\..\\win.txt",
        "..",
        "a\u{0}b",
    ] {
        let body = format!(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{evil}\"\r\nContent-Type: application/octet-stream\r\n\r\nEVIL\r\n--XX--\r\n"
        );
        let req = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let resp = raw(&base, &req);
        let status: u16 = resp
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(status == 200 || status == 400, "{evil:?}: {resp}");
    }
    assert!(!tmp.path().join("escape.txt").exists());
    assert!(!Path::new("/tmp/abs.txt").exists() || fs::read("/tmp/abs.txt").unwrap() != b"EVIL");
    for e in fs::read_dir(n.data.join("inbox")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(p.parent().unwrap(), n.data.join("inbox"));
        assert_eq!(fs::read(&p).unwrap(), b"EVIL");
    }
    // No file part, or no token: the seed's statuses.
    let resp = raw(
        &base,
        &format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let resp = raw(
        &base,
        "GET /files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

#[test]
fn a_client_that_keeps_guessing_the_token_is_slowed_down() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let (_t, _n, base) = compat_node(tmp.path(), &share, &[]);
    let guess = |token: &str| {
        let started = std::time::Instant::now();
        let resp = raw(
            &base,
            &format!(
                "GET /files HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"
            ),
        );
        (resp, started.elapsed())
    };
    let mut last = std::time::Duration::ZERO;
    for i in 0..6 {
        let (resp, took) = guess(&format!("guess-{i}"));
        assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
        last = took;
    }
    // Three free failures, then 0.5 s, 1 s, 2 s: only a lower bound is
    // checked, so a slow machine cannot make this fail.
    assert!(
        last >= std::time::Duration::from_millis(1500),
        "the sixth guess took {last:?}"
    );
    let (resp, _) = guess(TOKEN);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

/// Class 9: guesses sent in parallel are answered one after another, so
/// parallel guessing is no faster than guessing in turn.
#[test]
fn parallel_guessing_is_no_faster() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let (_t, _n, base) = compat_node(tmp.path(), &share, &[]);
    let guess = |token: String| {
        raw(
            &base,
            &format!(
                "GET /files HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    for i in 0..4 {
        assert!(guess(format!("warm-{i}")).starts_with("HTTP/1.1 401"));
    }
    // Twelve at once: with turns spaced 0.5 s and more, they cannot all be
    // answered within a few seconds as they would be if each only waited
    // for itself.
    let started = std::time::Instant::now();
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| s.spawn(move || guess(format!("parallel-{i}"))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a.starts_with("HTTP/1.1 401")));
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(6),
        "12 parallel guesses answered in {:?}",
        started.elapsed()
    );
}

/// Classes 1 and 5: an upload cannot pass the inbox limit by announcing a
/// huge length or none at all (chunked), nor by racing other uploads.
#[test]
fn uploads_cannot_sidestep_the_inbox_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let (_t, n, base) = compat_node(tmp.path(), &share, &["--max-inbox-size", "1MiB"]);
    let auth = format!("Authorization: {TOKEN}\r\n");
    let status = |resp: &str| -> u16 {
        resp.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    // A Content-Length near 2^64 (that used to wrap the check).
    for len in [u64::MAX, u64::MAX - 1_000_000, 1 << 50] {
        let resp = raw(
            &base,
            &format!(
                "POST /upload HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n--XX\r\n"
            ),
        );
        // Refused, before a byte of the body counts: 413, or hyper's own
        // refusal of a length it cannot represent.
        assert!((400..500).contains(&status(&resp)), "{len}: {resp}");
    }
    // Chunked, no length: 2 MiB in 64 KiB chunks.
    let mut body = String::from(
        "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
    );
    body.push_str(&"z".repeat(2 * 1024 * 1024));
    body.push_str("\r\n--XX--\r\n");
    let mut chunked = String::new();
    for c in body.as_bytes().chunks(64 * 1024) {
        chunked.push_str(&format!("{:x}\r\n", c.len()));
        chunked.push_str(std::str::from_utf8(c).unwrap());
        chunked.push_str("\r\n");
    }
    chunked.push_str("0\r\n\r\n");
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}"
    );
    // Written from another thread: the node answers before it has read it
    // all, and may close while we still write.
    let resp = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(request.as_bytes());
        });
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let _ = writer.join();
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(matches!(status(&resp), 413 | 0), "{resp}");
    let inbox = n.data.join("inbox");
    let used: u64 = fs::read_dir(&inbox)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    assert!(used <= 1024 * 1024, "the inbox holds {used} bytes");
}
