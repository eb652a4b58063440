//! `shoal link` and `shoal get LINK`: a file handed over as one line,
//! fetched with the tracker gone (real processes on 127.0.0.1).

mod common;

use std::fs;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_link_fetches_the_file_with_no_tracker() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let data = bytes(3 << 20, 21);
    fs::write(share.join("holiday photos.bin"), &data).unwrap();
    let mut t = tracker(30);
    let alice_dir = tmp.path().join("alice");
    let alice = node(&t.url, &alice_dir, &share, "alice", 30, "127.0.0.1:0");

    let out = ok(&shoal(
        &alice_dir,
        &t.url,
        &["link", share.join("holiday photos.bin").to_str().unwrap()],
    ));
    let link = out.trim();
    assert_eq!(out.lines().count(), 1, "one line: {out:?}");
    assert!(link.starts_with("shoal:?v=1&"), "{link}");
    assert!(
        link.contains(&b3sum(&share.join("holiday photos.bin"))),
        "{link}"
    );
    assert!(link.contains(&alice.id), "{link}");

    // No tracker at all: the link's address is enough.
    t.proc.kill();
    let client = tmp.path().join("fresh");
    let got = tmp.path().join("got");
    let started = std::time::Instant::now();
    ok(&shoal(
        &client,
        &t.url,
        &["get", link, "-o", got.to_str().unwrap()],
    ));
    eprintln!(
        "get LINK with the tracker down took {:?}",
        started.elapsed()
    );
    assert_eq!(fs::read(got.join("holiday photos.bin")).unwrap(), data);

    // A node that stops takes its record with it; one that crashed left
    // it behind, but its data dir's database is free, so neither makes a
    // link that leads nowhere.
    let record = fs::read(alice_dir.join("listening.json")).unwrap();
    let mut alice = alice;
    assert!(alice.proc.terminate().success());
    assert!(!alice_dir.join("listening.json").exists());
    for _ in ["stopped", "crashed"] {
        let r = shoal(
            &alice_dir,
            &t.url,
            &["link", share.join("holiday photos.bin").to_str().unwrap()],
        );
        assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
        assert!(stderr(&r).contains("no node runs"), "{}", stderr(&r));
        fs::write(alice_dir.join("listening.json"), &record).unwrap();
    }
}

#[test]
fn garbled_links_and_files_outside_the_shares_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("a.txt"), b"shared").unwrap();
    let outside = tmp.path().join("secret.txt");
    fs::write(&outside, b"not shared").unwrap();
    let t = tracker(30);
    let alice_dir = tmp.path().join("alice");
    let _alice = node(&t.url, &alice_dir, &share, "alice", 30, "127.0.0.1:0");

    let r = shoal(&alice_dir, &t.url, &["link", outside.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("not in this node's shares"),
        "{}",
        stderr(&r)
    );
    assert!(r.stdout.is_empty());
    let r = shoal(&alice_dir, &t.url, &["link", share.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));

    let link = ok(&shoal(
        &alice_dir,
        &t.url,
        &["link", share.join("a.txt").to_str().unwrap()],
    ));
    let link = link.trim();
    let client = tmp.path().join("c");
    let got = tmp.path().join("got");
    for (garbled, says) in [
        (link.replace("cid=", "cid=00"), "`cid` is not a content id"),
        (link.replace("v=1", "v=7"), "version 7 link"),
        (
            link.split("&addr=").next().unwrap().to_owned(),
            "has no `addr`",
        ),
        ("shoal:nonsense".to_owned(), "starts with `shoal:?`"),
    ] {
        let r = shoal(
            &client,
            &t.url,
            &["get", &garbled, "-o", got.to_str().unwrap()],
        );
        assert_eq!(r.status.code(), Some(2), "{garbled}: {}", stderr(&r));
        assert!(stderr(&r).contains(says), "{garbled}: {}", stderr(&r));
        assert!(!got.exists(), "nothing written for {garbled}");
    }
}
