//! Encryption at rest with the real binary: `encrypt`/`decrypt` round
//! trips and refusals, and encrypted files shared between real nodes.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that needs no tracker.
fn local(data: &Path, args: &[&str]) -> std::process::Output {
    shoal(data, "http://127.0.0.1:9", args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn round_trips_by_passphrase_and_by_peer_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (me, other) = (tmp.path().join("me"), tmp.path().join("other"));
    let my_id = ok(&local(&me, &["id"])).trim().to_owned();
    let pw = tmp.path().join("pw");
    fs::write(&pw, "correct horse battery staple\n").unwrap();
    for n in [
        0usize,
        1,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        3_000_000,
    ] {
        let plain = tmp.path().join(format!("p{n}"));
        fs::write(&plain, bytes(n, n as u64)).unwrap();
        // By passphrase.
        let ct = tmp.path().join(format!("p{n}.age"));
        ok(&local(
            &me,
            &["encrypt", s(&plain), "--passphrase-file", s(&pw)],
        ));
        let back = tmp.path().join(format!("p{n}.back"));
        ok(&local(
            &other,
            &[
                "decrypt",
                s(&ct),
                "--passphrase-file",
                s(&pw),
                "-o",
                s(&back),
            ],
        ));
        assert_eq!(
            fs::read(&back).unwrap(),
            bytes(n, n as u64),
            "{n} by passphrase"
        );
        // To a peer: the other data dir encrypts for me, I open it.
        let to_me = tmp.path().join(format!("p{n}.me.age"));
        ok(&local(
            &other,
            &["encrypt", s(&plain), "--to", &my_id, "-o", s(&to_me)],
        ));
        let mine = tmp.path().join(format!("p{n}.mine"));
        ok(&local(&me, &["decrypt", s(&to_me), "-o", s(&mine)]));
        assert_eq!(fs::read(&mine).unwrap(), bytes(n, n as u64), "{n} by key");
    }
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (me, other) = (tmp.path().join("me"), tmp.path().join("other"));
    let my_id = ok(&local(&me, &["id"])).trim().to_owned();
    let (pw, wrong, empty) = (
        tmp.path().join("pw"),
        tmp.path().join("wrong"),
        tmp.path().join("empty"),
    );
    fs::write(&pw, "right\n").unwrap();
    fs::write(&wrong, "wrong\n").unwrap();
    fs::write(&empty, "\n").unwrap();
    let plain = tmp.path().join("data.bin");
    fs::write(&plain, bytes(300_000, 1)).unwrap();
    let by_pw = tmp.path().join("data.bin.age");
    ok(&local(
        &me,
        &["encrypt", s(&plain), "--passphrase-file", s(&pw)],
    ));
    let to_me = tmp.path().join("to-me.age");
    ok(&local(
        &other,
        &["encrypt", s(&plain), "--to", &my_id, "-o", s(&to_me)],
    ));
    let out = tmp.path().join("out.bin");

    let r = local(
        &me,
        &[
            "decrypt",
            s(&by_pw),
            "--passphrase-file",
            s(&wrong),
            "-o",
            s(&out),
        ],
    );
    assert_eq!(code(&r), Some(10), "wrong passphrase: {}", stderr(&r));
    assert!(stderr(&r).contains("passphrase is wrong"), "{}", stderr(&r));
    let r = local(&other, &["decrypt", s(&to_me), "-o", s(&out)]);
    assert_eq!(
        code(&r),
        Some(10),
        "a file for another peer: {}",
        stderr(&r)
    );
    assert!(
        stderr(&r).contains("not encrypted for this peer"),
        "{}",
        stderr(&r)
    );
    let r = local(&me, &["decrypt", s(&plain), "-o", s(&out)]);
    assert_eq!(code(&r), Some(10), "not an age file: {}", stderr(&r));
    let r = local(
        &me,
        &[
            "encrypt",
            s(&plain),
            "--passphrase-file",
            s(&empty),
            "-o",
            s(&out),
        ],
    );
    assert_eq!(code(&r), Some(2), "empty passphrase: {}", stderr(&r));
    let r = local(&me, &["encrypt", s(&plain), "-o", s(&out)]);
    assert_eq!(
        code(&r),
        Some(2),
        "no passphrase and no terminal: {}",
        stderr(&r)
    );
    let r = local(
        &me,
        &[
            "encrypt",
            s(tmp.path()),
            "--passphrase-file",
            s(&pw),
            "-o",
            s(&out),
        ],
    );
    assert_ne!(code(&r), Some(0), "a folder is not a file");

    // Damage: a flipped bit anywhere, or a cut, is refused.
    let good = fs::read(&to_me).unwrap();
    for at in [0, 40, good.len() / 3, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x08;
        let p = tmp.path().join("bad.age");
        fs::write(&p, &bad).unwrap();
        let r = local(&me, &["decrypt", s(&p), "-o", s(&out)]);
        assert_eq!(code(&r), Some(10), "flip at {at}: {}", stderr(&r));
    }
    for cut in [10, good.len() / 2, good.len() - 1] {
        let p = tmp.path().join("cut.age");
        fs::write(&p, &good[..cut]).unwrap();
        let r = local(&me, &["decrypt", s(&p), "-o", s(&out)]);
        assert_eq!(code(&r), Some(10), "cut at {cut}: {}", stderr(&r));
    }
    assert!(!out.exists(), "an error left output behind");
    let strays: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    // An existing output is never replaced.
    fs::write(&out, b"mine").unwrap();
    let r = local(&me, &["decrypt", s(&to_me), "-o", s(&out)]);
    assert_eq!(code(&r), Some(9), "{}", stderr(&r));
    assert_eq!(fs::read(&out).unwrap(), b"mine");
}

#[test]
fn a_file_shared_to_one_peer_opens_only_there() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let share_a = tmp.path().join("share-a");
    fs::create_dir_all(&share_a).unwrap();
    let mut nodes = Vec::new();
    for (name, share) in [
        ("alice", share_a.clone()),
        ("bob", tmp.path().join("share-b")),
        ("carol", tmp.path().join("share-c")),
    ] {
        fs::create_dir_all(&share).unwrap();
        nodes.push(node(
            &t.url,
            &tmp.path().join(name),
            &share,
            name,
            30,
            "127.0.0.1:0",
        ));
    }
    wait_for_peers(
        &tmp.path().join("x"),
        &t.url,
        &["alice", "bob", "carol"],
        20,
    );
    let secret = tmp.path().join("plans.txt");
    fs::write(&secret, bytes(200_000, 8)).unwrap();
    // Alice shares it encrypted to Bob (by name, through the tracker).
    let alice = tmp.path().join("alice");
    ok(&shoal(
        &alice,
        &t.url,
        &["share", s(&secret), "--to", "bob", "--into", s(&share_a)],
    ));
    assert!(share_a.join("plans.txt.age").exists());
    assert!(
        !share_a.join("plans.txt").exists(),
        "no plaintext in the share"
    );
    let lists = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        let files = json(&shoal(
            &tmp.path().join("x"),
            &t.url,
            &["ls", "alice", "--json"],
        ));
        files.as_array().unwrap().iter().any(pred)
    };
    wait_until("alice lists it, encrypted", 20, || {
        lists(&|f| f["name"] == "plans.txt.age" && f["encrypted"] == true)
    });

    // Bob gets it and it opens with no passphrase.
    let out_b = tmp.path().join("out-b");
    let r = shoal(
        &tmp.path().join("bob"),
        &t.url,
        &["get", "alice:plans.txt.age", "-o", s(&out_b)],
    );
    ok(&r);
    assert_eq!(
        fs::read(out_b.join("plans.txt")).unwrap(),
        bytes(200_000, 8)
    );
    assert!(
        !out_b.join("plans.txt.age").exists(),
        "the ciphertext is tidied away"
    );

    // Carol gets the same verified bytes and cannot open them.
    let out_c = tmp.path().join("out-c");
    let r = shoal(
        &tmp.path().join("carol"),
        &t.url,
        &["get", "alice:plans.txt.age", "-o", s(&out_c)],
    );
    assert_eq!(code(&r), Some(10), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("shoal decrypt"),
        "says how to retry: {}",
        stderr(&r)
    );
    assert!(!out_c.join("plans.txt").exists());
    assert_eq!(
        b3sum(&out_c.join("plans.txt.age")),
        b3sum(&share_a.join("plans.txt.age")),
        "the verified ciphertext is kept"
    );

    // A passphrase-encrypted share: the right passphrase opens it, a wrong
    // one keeps the ciphertext and leaves nothing at the final path.
    let (pw, wrong) = (tmp.path().join("pw"), tmp.path().join("wrong"));
    fs::write(&pw, "open sesame\n").unwrap();
    fs::write(&wrong, "open says me\n").unwrap();
    let doc = tmp.path().join("doc.bin");
    fs::write(&doc, bytes(70_000, 9)).unwrap();
    ok(&shoal(
        &alice,
        &t.url,
        &[
            "share",
            s(&doc),
            "--encrypt",
            "--passphrase-file",
            s(&pw),
            "--into",
            s(&share_a),
        ],
    ));
    wait_until("alice lists doc.bin.age", 20, || {
        lists(&|f| f["name"] == "doc.bin.age")
    });
    let out_w = tmp.path().join("out-w");
    let r = shoal(
        &tmp.path().join("carol"),
        &t.url,
        &[
            "get",
            "alice:doc.bin.age",
            "--passphrase-file",
            s(&wrong),
            "-o",
            s(&out_w),
        ],
    );
    assert_eq!(code(&r), Some(10), "{}", stderr(&r));
    assert!(!out_w.join("doc.bin").exists());
    assert!(out_w.join("doc.bin.age").exists());
    let out_r = tmp.path().join("out-r");
    ok(&shoal(
        &tmp.path().join("carol"),
        &t.url,
        &[
            "get",
            "alice:doc.bin.age",
            "--passphrase-file",
            s(&pw),
            "-o",
            s(&out_r),
        ],
    ));
    assert_eq!(fs::read(out_r.join("doc.bin")).unwrap(), bytes(70_000, 9));
    // The kept ciphertext opens later with the right passphrase.
    ok(&shoal(
        &tmp.path().join("carol"),
        &t.url,
        &[
            "decrypt",
            s(&out_w.join("doc.bin.age")),
            "--passphrase-file",
            s(&pw),
        ],
    ));
    assert_eq!(fs::read(out_w.join("doc.bin")).unwrap(), bytes(70_000, 9));
}

/// Runs `shoal ARGS` on a terminal (through `script`), answering each
/// prompt as it appears; returns the exit code and what the terminal showed.
fn on_terminal(data: &Path, dir: &Path, args: &[&str], answers: &[&str]) -> Option<(i32, String)> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!(
            "WARNING: `script` (util-linux) is not installed; skipping the terminal prompt test"
        );
        return None;
    }
    let mut cmd = format!("'{}' --data-dir '{}'", BIN, data.display());
    for a in args {
        cmd.push_str(&format!(" '{a}'"));
    }
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn script");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut stdin = child.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (i, answer) in answers.iter().enumerate() {
        // Wait for the (i+1)-th prompt before typing.
        while seen.matches("passphrase").count() <= i {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("no prompt {} in {seen:?}", i + 1),
            }
        }
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let status = child.wait().unwrap();
    while let Ok(b) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        seen.push_str(&String::from_utf8_lossy(&b));
    }
    Some((status.code().unwrap_or(-1), seen))
}

#[test]
fn the_terminal_prompt_asks_twice_and_refuses_a_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("me");
    fs::write(tmp.path().join("note.txt"), b"dear diary").unwrap();
    let Some((code, seen)) = on_terminal(
        &data,
        tmp.path(),
        &["encrypt", "note.txt"],
        &["zebra-17", "walrus-42"],
    ) else {
        return;
    };
    assert_eq!(code, 2, "{seen}");
    assert!(seen.contains("differ"), "{seen}");
    assert!(!tmp.path().join("note.txt.age").exists());
    let (code, seen) = on_terminal(
        &data,
        tmp.path(),
        &["encrypt", "note.txt"],
        &["same", "same"],
    )
    .unwrap();
    assert_eq!(code, 0, "{seen}");
    let (code, seen) = on_terminal(
        &data,
        tmp.path(),
        &["decrypt", "note.txt.age", "-o", "back.txt"],
        &["same"],
    )
    .unwrap();
    assert_eq!(code, 0, "{seen}");
    assert_eq!(
        fs::read(tmp.path().join("back.txt")).unwrap(),
        b"dear diary"
    );
    let (code, seen) = on_terminal(
        &data,
        tmp.path(),
        &["decrypt", "note.txt.age", "-o", "wrong.txt"],
        &["not the same"],
    )
    .unwrap();
    assert_eq!(code, 10, "{seen}");
    assert!(!tmp.path().join("wrong.txt").exists());
}

#[test]
fn a_file_the_seed_encrypted_opens_on_get() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crypt/tests/fixtures/legacy/plain-100000.bin.encrypted");
    fs::copy(&fixture, share.join("report.bin.encrypted")).unwrap();
    let net = alice_sharing(tmp.path(), &share, &[]);
    let pw = tmp.path().join("pw");
    fs::write(&pw, "correct horse\n").unwrap();
    let out = tmp.path().join("out");
    ok(&shoal(
        &net.client,
        &net.tracker.url,
        &[
            "get",
            "alice:report.bin.encrypted",
            "--passphrase-file",
            s(&pw),
            "-o",
            s(&out),
        ],
    ));
    let want: Vec<u8> = (0..100_000usize)
        .map(|i| ((i * 7 + 3) % 256) as u8)
        .collect();
    assert_eq!(fs::read(out.join("report.bin")).unwrap(), want);
    assert!(!out.join("report.bin.encrypted").exists());
}
