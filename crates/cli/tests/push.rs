//! `shoal send` between real processes on 127.0.0.1.

mod common;

use std::fs;

use common::*;

/// A node called `receiver` with its inbox in `tmp/inbox` and extra flags.
fn receiver(
    tmp: &std::path::Path,
    tracker_url: &str,
    extra: &[&str],
) -> (NodeProc, std::path::PathBuf) {
    let share = tmp.join("share");
    fs::create_dir_all(&share).unwrap();
    let inbox = tmp.join("inbox");
    let mut args = vec!["--inbox", inbox.to_str().unwrap()];
    args.extend_from_slice(extra);
    let node = node_with(
        tracker_url,
        &tmp.join("r"),
        &share,
        "receiver",
        30,
        "127.0.0.1:0",
        &args,
    );
    (node, inbox)
}

#[test]
fn an_allowed_sender_delivers_and_a_stranger_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let friend = tmp.path().join("friend");
    let stranger = tmp.path().join("stranger");
    let friend_id = ok(&shoal(&friend, &t.url, &["id"])).trim().to_owned();
    let (_r, inbox) = receiver(tmp.path(), &t.url, &["--accept-from", &friend_id]);
    wait_for_peers(&friend, &t.url, &["receiver"], 20);
    let files = [
        ("empty", 0usize),
        ("one", 1),
        ("big.bin", 100 * 1024 * 1024),
    ];
    let mut args = vec!["send", "receiver"];
    let paths: Vec<String> = files
        .iter()
        .map(|(name, n)| {
            let p = tmp.path().join(name);
            fs::write(&p, bytes(*n, *n as u64)).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    args.extend(paths.iter().map(String::as_str));
    ok(&shoal(&friend, &t.url, &args));
    for (name, _) in files {
        assert_eq!(
            b3sum(&inbox.join(name)),
            b3sum(&tmp.path().join(name)),
            "{name}"
        );
    }
    // A stranger gets a plain refusal and the inbox does not change.
    let before = fs::read_dir(&inbox).unwrap().count();
    let r = shoal(&stranger, &t.url, &["send", "receiver", &paths[1]]);
    assert_eq!(r.status.code(), Some(5), "{r:?}");
    let msg = String::from_utf8_lossy(&r.stderr);
    assert!(msg.contains("does not accept files from you"), "{msg}");
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), before);
    // Sending a folder is a clear error.
    let r = shoal(
        &friend,
        &t.url,
        &["send", "receiver", tmp.path().to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(8), "{r:?}");
}

#[test]
fn a_node_receives_pushes_no_faster_than_its_download_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let (_r, inbox) = receiver(
        tmp.path(),
        &t.url,
        &["--accept-from", "any", "--max-download-rate", "4MiB"],
    );
    let sender = tmp.path().join("s");
    wait_for_peers(&sender, &t.url, &["receiver"], 20);
    let file = tmp.path().join("f.bin");
    fs::write(&file, bytes(12 * 1024 * 1024, 3)).unwrap();
    let started = std::time::Instant::now();
    ok(&shoal(
        &sender,
        &t.url,
        &["send", "receiver", file.to_str().unwrap()],
    ));
    // 12 MiB at 4 MiB/s, the first second's worth at once: at least 2 s.
    // Only a lower bound is checked; a slow machine cannot make it fail.
    let secs = started.elapsed().as_secs_f64();
    assert!(secs >= 1.8, "12 MiB at 4 MiB/s took only {secs:.2}s");
    assert_eq!(b3sum(&inbox.join("f.bin")), b3sum(&file));
}

#[test]
fn config_toml_decides_who_may_push_and_where_it_lands() {
    // The desktop app's Settings write these keys; a CLI node obeys them
    // without flags.
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let friend = tmp.path().join("friend");
    let friend_id = ok(&shoal(&friend, &t.url, &["id"])).trim().to_owned();
    let data = tmp.path().join("r");
    let inbox = tmp.path().join("from-config");
    fs::create_dir_all(&data).unwrap();
    fs::write(
        data.join("config.toml"),
        format!(
            "inbox = {:?}\naccept_from = [{friend_id:?}]\nmax_inbox_size = 1000000\n",
            inbox.to_str().unwrap()
        ),
    )
    .unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let _r = node_with(&t.url, &data, &share, "receiver", 30, "127.0.0.1:0", &[]);
    wait_for_peers(&friend, &t.url, &["receiver"], 20);
    let small = tmp.path().join("small.txt");
    fs::write(&small, b"from a friend").unwrap();
    ok(&shoal(
        &friend,
        &t.url,
        &["send", "receiver", small.to_str().unwrap()],
    ));
    assert_eq!(fs::read(inbox.join("small.txt")).unwrap(), b"from a friend");
    // Over max_inbox_size: refused at the offer, nothing lands.
    let big = tmp.path().join("big.bin");
    fs::write(&big, bytes(2_000_000, 7)).unwrap();
    let r = shoal(
        &friend,
        &t.url,
        &["send", "receiver", big.to_str().unwrap()],
    );
    assert!(!r.status.success(), "{r:?}");
    assert!(!inbox.join("big.bin").exists());
    // Anyone else is still refused.
    let stranger = tmp.path().join("stranger");
    let r = shoal(
        &stranger,
        &t.url,
        &["send", "receiver", small.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(5), "{r:?}");
}
