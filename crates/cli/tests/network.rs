//! A whole Shoal network of real processes on 127.0.0.1: tracker, nodes, CLI.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

#[test]
fn three_nodes_list_and_serve_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let mut nodes = Vec::new();
    for (i, name) in ["alice", "bob", "carol"].iter().enumerate() {
        let share = tmp.path().join(format!("share-{name}"));
        fs::create_dir_all(&share).unwrap();
        for (j, &n) in INTERESTING_SIZES.iter().enumerate() {
            write(
                &share,
                &format!("size-{n}.bin"),
                &bytes(n, (i * 10 + j) as u64),
            );
        }
        write(
            &share,
            "deep/er/nested name.txt",
            format!("nested of {name}").as_bytes(),
        );
        nodes.push((
            share.clone(),
            node(
                &t.url,
                &tmp.path().join(format!("data-{name}")),
                &share,
                name,
                30,
                "127.0.0.1:0",
            ),
        ));
    }
    let client = tmp.path().join("client");

    wait_for_peers(&client, &t.url, &["alice", "bob", "carol"], 20);
    let human = ok(&shoal(&client, &t.url, &["peers"]));
    for (_, n) in &nodes {
        assert!(human.contains(&n.id), "{human}");
    }

    for (share, n) in &nodes {
        let listing = json(&shoal(&client, &t.url, &["ls", &n.id[..12], "--json"]));
        let files = listing.as_array().unwrap();
        assert_eq!(files.len(), INTERESTING_SIZES.len() + 1);
        for f in files {
            let name = f["name"].as_str().unwrap();
            let local = share.join(name);
            assert_eq!(
                f["size"].as_u64().unwrap(),
                fs::metadata(&local).unwrap().len(),
                "{name}"
            );
            assert_eq!(f["content_id"].as_str().unwrap(), b3sum(&local), "{name}");
            assert_eq!(f["encrypted"], false);
        }
    }

    let (alice_share, _) = &nodes[0];
    let out = tmp.path().join("downloads");
    for &n in INTERESTING_SIZES {
        let name = format!("size-{n}.bin");
        ok(&shoal(
            &client,
            &t.url,
            &["get", &format!("alice:{name}"), "-o", out.to_str().unwrap()],
        ));
        assert_eq!(
            fs::read(out.join(&name)).unwrap(),
            fs::read(alice_share.join(&name)).unwrap(),
            "{name}"
        );
    }
    ok(&shoal(
        &client,
        &t.url,
        &[
            "get",
            "carol:deep/er/nested name.txt",
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        fs::read_to_string(out.join("nested name.txt")).unwrap(),
        "nested of carol"
    );

    // By content id, from whoever provides it.
    let cid = b3sum(&nodes[1].0.join("size-1.bin"));
    let by_id = tmp.path().join("by-id");
    ok(&shoal(
        &client,
        &t.url,
        &["get", &cid, "-o", by_id.to_str().unwrap()],
    ));
    assert_eq!(
        fs::read(by_id.join("size-1.bin")).unwrap(),
        fs::read(nodes[1].0.join("size-1.bin")).unwrap()
    );

    // An existing file is never overwritten.
    fs::write(out.join("size-1.bin"), b"mine").unwrap();
    let again = shoal(
        &client,
        &t.url,
        &["get", "alice:size-1.bin", "-o", out.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(9), "{again:?}");
    assert_eq!(fs::read(out.join("size-1.bin")).unwrap(), b"mine");
    assert!(!out.join("size-1.bin.part").exists());

    // Unknown files and peers are clear errors with their own exit code.
    let missing = shoal(
        &client,
        &t.url,
        &["get", "alice:nope", "-o", out.to_str().unwrap()],
    );
    assert_eq!(missing.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("shoal ls"));
    assert_eq!(
        shoal(&client, &t.url, &["ls", "nobody"]).status.code(),
        Some(4)
    );
}

#[test]
fn new_and_changed_files_are_noticed_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "first", b"1");
    let t = tracker(30);
    let _n = node(
        &t.url,
        &tmp.path().join("d"),
        &share,
        "alice",
        30,
        "127.0.0.1:0",
    );
    let client = tmp.path().join("c");
    write(&share, "later/second", b"22");
    wait_until("new file listed", 20, || {
        names(&json(&shoal(&client, &t.url, &["ls", "alice", "--json"])))
            == ["first", "later/second"]
    });
    fs::remove_file(share.join("first")).unwrap();
    write(&share, "later/second", b"changed");
    let cid = b3sum(&share.join("later/second"));
    wait_until("removal and change noticed", 20, || {
        let l = json(&shoal(&client, &t.url, &["ls", "alice", "--json"]));
        l.as_array().unwrap().len() == 1 && l[0]["content_id"] == cid.as_str()
    });
}

#[test]
fn a_peer_that_stops_heartbeating_expires_and_a_stopped_one_leaves_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    let t = tracker(2);
    let client = tmp.path().join("c");
    let mut crashed = node(
        &t.url,
        &tmp.path().join("d1"),
        &share,
        "crashed",
        2,
        "127.0.0.1:0",
    );
    let mut polite = node(
        &t.url,
        &tmp.path().join("d2"),
        &share,
        "polite",
        60,
        "127.0.0.1:0",
    );
    wait_for_peers(&client, &t.url, &["crashed", "polite"], 20);
    // Survives several TTLs while heartbeating.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        names(&json(&shoal(&client, &t.url, &["peers", "--json"]))),
        ["crashed", "polite"]
    );

    crashed.proc.kill(); // SIGKILL: no goodbye
    wait_for_peers(&client, &t.url, &["polite"], 15);
    assert!(polite.proc.terminate().success());
    wait_for_peers(&client, &t.url, &[], 5);
}

#[test]
fn a_different_key_at_the_peers_address_gets_no_data() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "secret.txt", b"for alice's friends");
    let t = tracker(60);
    let client = tmp.path().join("c");
    let mut alice = node(
        &t.url,
        &tmp.path().join("a"),
        &share,
        "alice",
        60,
        "127.0.0.1:0",
    );
    wait_for_peers(&client, &t.url, &["alice"], 20);
    let port = alice.port();
    let alice_id = alice.id.clone();
    alice.proc.kill();
    // Mallory takes over alice's address with her own key, sharing the same file.
    let mallory = node(
        &t.url,
        &tmp.path().join("m"),
        &share,
        "mallory",
        60,
        &format!("127.0.0.1:{port}"),
    );
    assert_ne!(mallory.id, alice_id);

    let out = tmp.path().join("out");
    let r = shoal(
        &client,
        &t.url,
        &[
            "get",
            &format!("{alice_id}:secret.txt"),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status.code(), Some(5), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains(&mallory.id) && err.contains("refusing"),
        "{err}"
    );
    assert!(!out.join("secret.txt").exists() && !out.join("secret.txt.part").exists());
    let r = shoal(&client, &t.url, &["ls", &alice_id]);
    assert_eq!(r.status.code(), Some(5));
    assert!(r.stdout.is_empty());
}

#[test]
fn with_the_tracker_down_known_peers_still_work_and_nodes_return() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "f.txt", b"still here");
    let mut t = tracker(3);
    let addr = t.url.trim_start_matches("http://").to_owned();
    let client = tmp.path().join("c");
    let _alice = node(
        &t.url,
        &tmp.path().join("a"),
        &share,
        "alice",
        3,
        "127.0.0.1:0",
    );
    wait_for_peers(&client, &t.url, &["alice"], 20);

    t.proc.kill();
    let listing = json(&shoal(&client, &t.url, &["ls", "alice", "--json"]));
    assert_eq!(names(&listing), ["f.txt"]);
    let out = tmp.path().join("out");
    let r = shoal(
        &client,
        &t.url,
        &["get", "alice:f.txt", "-o", out.to_str().unwrap()],
    );
    ok(&r);
    assert!(String::from_utf8_lossy(&r.stderr).contains("cached"));
    assert_eq!(fs::read(out.join("f.txt")).unwrap(), b"still here");

    // The tracker returns empty; the node is back within one heartbeat (1 s here).
    let t2 = tracker_at(&addr, 3, &[]);
    let back = std::time::Instant::now();
    wait_for_peers(&client, &t2.url, &["alice"], 10);
    eprintln!("re-listed {:?} after the tracker returned", back.elapsed());
    // Its content is announced again too.
    let cid = b3sum(&share.join("f.txt"));
    let out2 = tmp.path().join("out2");
    wait_until("content provided again", 10, || {
        shoal(
            &client,
            &t2.url,
            &["get", &cid, "-o", out2.to_str().unwrap()],
        )
        .status
        .success()
    });
}

/// alice sharing `big.bin` (made by `make`) at most `rate` fast, so a
/// download of it is surely under way when a test interrupts it; with the
/// client's data dir and the download folder.
struct SlowAlice {
    t: Tracker,
    _alice: NodeProc,
    client: std::path::PathBuf,
    out: std::path::PathBuf,
    big: std::path::PathBuf,
}

fn slow_alice(tmp: &std::path::Path, make: impl FnOnce(&std::path::Path), rate: &str) -> SlowAlice {
    let share = tmp.join("share");
    fs::create_dir_all(&share).unwrap();
    let big = share.join("big.bin");
    make(&big);
    let t = tracker(30);
    let alice = node_with(
        &t.url,
        &tmp.join("d"),
        &share,
        "alice",
        30,
        "127.0.0.1:0",
        &["--max-upload-rate", rate],
    );
    let client = tmp.join("c");
    wait_for_peers(&client, &t.url, &["alice"], 20);
    SlowAlice {
        t,
        _alice: alice,
        client,
        out: tmp.join("out"),
        big,
    }
}

#[test]
fn killing_get_midway_leaves_nothing_at_the_final_path() {
    let tmp = tempfile::tempdir().unwrap();
    // Sparse, so the test is cheap on disk; every byte is still sent and hashed.
    let sparse = |p: &std::path::Path| {
        fs::File::create(p)
            .unwrap()
            .set_len(256 * 1024 * 1024)
            .unwrap();
    };
    let SlowAlice {
        t,
        _alice,
        client,
        out,
        big,
    } = slow_alice(tmp.path(), sparse, "64MiB");

    let mut get = spawn_get_until_under_way(&client, &t.url, "alice:big.bin", &out, "big.bin.part");
    let part = out.join("big.bin.part");
    get.kill().unwrap();
    get.wait().unwrap();
    assert!(
        !out.join("big.bin").exists(),
        "a killed download left a file at the final path"
    );

    ok(&shoal(
        &client,
        &t.url,
        &["get", "alice:big.bin", "-o", out.to_str().unwrap()],
    ));
    assert_eq!(b3sum(&out.join("big.bin")), b3sum(&big));
    assert!(!part.exists());
}

#[test]
fn ctrl_c_pauses_a_get_and_the_same_command_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |p: &std::path::Path| fs::write(p, bytes(48 * 1024 * 1024, 9)).unwrap();
    let SlowAlice {
        t,
        _alice,
        client,
        out,
        big,
    } = slow_alice(tmp.path(), write, "16MiB");

    let get = spawn_get_until_under_way(&client, &t.url, "alice:big.bin", &out, "big.bin.part");
    let status = std::process::Command::new("kill")
        .args(["-INT", &get.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = get.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{done:?}");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(
        err.contains("run the same command again to resume"),
        "{err}"
    );
    // Paused, not lost: the .part and its record are there, unlocked.
    let part = out.join("big.bin.part");
    assert!(out.join("big.bin.part.state").exists());
    let f = fs::File::open(&part).unwrap();
    f.try_lock()
        .expect("the .part is still locked after the get exited");
    drop(f);
    assert!(!out.join("big.bin").exists());

    ok(&shoal(
        &client,
        &t.url,
        &["get", "alice:big.bin", "-o", out.to_str().unwrap()],
    ));
    assert_eq!(b3sum(&out.join("big.bin")), b3sum(&big));
    assert!(!part.exists());
}

#[test]
fn a_private_tracker_needs_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "f", b"x");
    let t = tracker_at("127.0.0.1:0", 30, &["--token", "s3cret"]);
    let mut n = Proc::spawn(
        &[
            "--data-dir",
            tmp.path().join("d").to_str().unwrap(),
            "--tracker",
            &t.url,
            "node",
            "--share",
            share.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "alice",
        ],
        &[("SHOAL_TRACKER_TOKEN", "s3cret")],
    );
    n.wait_line("peer id ");
    let client = tmp.path().join("c");
    let r = shoal(&client, &t.url, &["peers", "--json"]);
    assert_eq!(r.status.code(), Some(5), "{r:?}");
    let r = shoal(&client, &t.url, &["--tracker-token", "wrong", "peers"]);
    assert_eq!(r.status.code(), Some(5));
    wait_until("listed with the token", 20, || {
        names(&json(&shoal(
            &client,
            &t.url,
            &["--tracker-token", "s3cret", "peers", "--json"],
        ))) == ["alice"]
    });
}

#[test]
fn up_runs_a_whole_network_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "hello.txt", b"hello from up");
    let mut up = Proc::spawn(
        &[
            "--data-dir",
            tmp.path().join("d").to_str().unwrap(),
            "up",
            "--share",
            share.to_str().unwrap(),
            "--tracker-listen",
            "127.0.0.1:0",
            "--relay-listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "solo",
        ],
        &[],
    );
    let tracker_url = up.wait_line("tracker listening on ");
    let relay = up.wait_line("relay listening on ");
    assert!(relay.starts_with("relay://127.0.0.1:"), "{relay}");
    up.wait_line("peer id ");
    let client = tmp.path().join("c");
    wait_for_peers(&client, &tracker_url, &["solo"], 20);
    let out = tmp.path().join("out");
    ok(&shoal(
        &client,
        &tracker_url,
        &["get", "solo:hello.txt", "-o", out.to_str().unwrap()],
    ));
    assert_eq!(fs::read(out.join("hello.txt")).unwrap(), b"hello from up");
    // The tracker dialled the node back: reached directly.
    wait_until("the node reached directly", 20, || {
        json(&shoal(&client, &tracker_url, &["peers", "--json"]))[0]["reach"] == "direct"
    });
    assert!(up.terminate().success());
}

#[test]
fn id_is_stable_and_the_key_private() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ok(&shoal(tmp.path(), "http://127.0.0.1:9", &["id"]));
    let b = ok(&shoal(tmp.path(), "http://127.0.0.1:9", &["id"]));
    assert_eq!(a, b);
    assert_eq!(a.trim().len(), 52);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(tmp.path().join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_provider_that_dies_mid_download_costs_nothing_but_its_pieces_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let mut nodes = Vec::new();
    for name in ["one", "two"] {
        let share = tmp.path().join(format!("share-{name}"));
        fs::create_dir_all(&share).unwrap();
        fs::File::create(share.join("big.bin"))
            .unwrap()
            .set_len(128 * 1024 * 1024)
            .unwrap();
        // Rate-limited, so the download is surely under way when one dies.
        nodes.push(node_with(
            &t.url,
            &tmp.path().join(format!("d-{name}")),
            &share,
            name,
            30,
            "127.0.0.1:0",
            &["--max-upload-rate", "32MiB"],
        ));
    }
    let client = tmp.path().join("c");
    let out = tmp.path().join("out");
    wait_for_peers(&client, &t.url, &["one", "two"], 20);
    let cid = b3sum(&tmp.path().join("share-one/big.bin"));
    wait_for_providers(&t.url, &cid, 2, 20);

    let get = spawn_get_until_under_way(&client, &t.url, "one:big.bin", &out, "big.bin.part");
    nodes[0].proc.kill();
    wait_ok(get);
    assert_eq!(b3sum(&out.join("big.bin")), cid);
}

#[test]
fn upload_and_download_rates_are_limited() {
    let tmp = tempfile::tempdir().unwrap();
    // Different bytes on each node, so no other provider can help.
    let (slow_share, fast_share) = (tmp.path().join("slow"), tmp.path().join("fast"));
    write(&slow_share, "f.bin", &bytes(12 * 1024 * 1024, 5));
    write(&fast_share, "f.bin", &bytes(12 * 1024 * 1024, 6));
    let t = tracker(30);
    let _slow = node_with(
        &t.url,
        &tmp.path().join("d1"),
        &slow_share,
        "slow",
        30,
        "127.0.0.1:0",
        &["--max-upload-rate", "4MiB"],
    );
    let _fast = node(
        &t.url,
        &tmp.path().join("d2"),
        &fast_share,
        "fast",
        30,
        "127.0.0.1:0",
    );
    let client = tmp.path().join("c");
    wait_for_peers(&client, &t.url, &["fast", "slow"], 20);
    // 12 MiB at 4 MiB/s, the first second's worth at once: at least 2 s.
    // Only a lower bound is checked; a slow machine cannot make it fail.
    for (args, what, share) in [
        (vec!["get", "slow:f.bin", "-o"], "upload limit", &slow_share),
        (
            vec!["get", "fast:f.bin", "--max-download-rate", "4MiB", "-o"],
            "download limit",
            &fast_share,
        ),
    ] {
        let out = tmp.path().join(what.replace(' ', "-"));
        let mut args = args;
        args.push(out.to_str().unwrap());
        let started = std::time::Instant::now();
        ok(&shoal(&client, &t.url, &args));
        let secs = started.elapsed().as_secs_f64();
        assert!(
            secs >= 1.8,
            "{what}: 12 MiB at 4 MiB/s took only {secs:.2}s"
        );
        assert_eq!(
            fs::read(out.join("f.bin")).unwrap(),
            fs::read(share.join("f.bin")).unwrap()
        );
    }
}

#[test]
fn a_whole_folder_keeps_its_tree_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "docs/a.txt", b"alpha");
    write(&share, "docs/sub/b.bin", &bytes(300 * 1024, 9));
    write(&share, "docs/sub/deeper/empty", b"");
    for i in 0..50 {
        write(
            &share,
            &format!("docs/many/{i:02}.txt"),
            format!("small file {i}").as_bytes(),
        );
    }
    write(&share, "other/x", b"not part of docs");
    let net = alice_sharing(tmp.path(), &share, &[]);
    let (t, client) = (&net.tracker, net.client.clone());
    let out = tmp.path().join("out");
    ok(&shoal(
        &client,
        &t.url,
        &["get", "alice:docs/", "-o", out.to_str().unwrap()],
    ));
    for rel in [
        "a.txt",
        "sub/b.bin",
        "sub/deeper/empty",
        "many/00.txt",
        "many/49.txt",
    ] {
        assert_eq!(
            fs::read(out.join("docs").join(rel)).unwrap(),
            fs::read(share.join("docs").join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(fs::read_dir(out.join("docs/many")).unwrap().count(), 50);
    assert!(!out.join("other").exists() && !out.join("docs/x").exists());

    // Again: what is there is kept, what is missing is fetched.
    fs::remove_file(out.join("docs/many/07.txt")).unwrap();
    ok(&shoal(
        &client,
        &t.url,
        &["get", "alice:docs/", "-o", out.to_str().unwrap()],
    ));
    assert_eq!(
        fs::read_to_string(out.join("docs/many/07.txt")).unwrap(),
        "small file 7"
    );
    // A file changed locally is never overwritten.
    fs::write(out.join("docs/a.txt"), b"mine").unwrap();
    let r = shoal(
        &client,
        &t.url,
        &["get", "alice:docs/", "-o", out.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(9), "{r:?}");
    assert_eq!(fs::read(out.join("docs/a.txt")).unwrap(), b"mine");
    assert_eq!(
        shoal(
            &client,
            &t.url,
            &["get", "alice:nothing/", "-o", out.to_str().unwrap()]
        )
        .status
        .code(),
        Some(4)
    );
}

/// Unmounts a test tmpfs when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_get_resumes_once_there_is_room() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED a_full_disk_is_a_clear_error...: cannot mount a small tmpfs here (needs root); CI runs it"
        );
        return;
    }
    let _mount = Mount(small.clone());
    let share = tmp.path().join("share");
    write(&share, "big.bin", &bytes(12 * 1024 * 1024, 3));
    let net = alice_sharing(tmp.path(), &share, &[]);
    let (t, client) = (&net.tracker, net.client.clone());

    let r = shoal(
        &client,
        &t.url,
        &["get", "alice:big.bin", "-o", small.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(8), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("make room") && err.to_lowercase().contains("space"),
        "{err}"
    );
    assert!(!small.join("big.bin").exists());

    // Room again: the same command finishes the job.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(grown.success());
    ok(&shoal(
        &client,
        &t.url,
        &["get", "alice:big.bin", "-o", small.to_str().unwrap()],
    ));
    assert_eq!(
        fs::read(small.join("big.bin")).unwrap(),
        fs::read(share.join("big.bin")).unwrap()
    );
}

#[test]
fn get_without_o_saves_into_the_configured_download_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("report.txt"), b"quarterly").unwrap();
    let net = alice_sharing(tmp.path(), &share, &[]);
    let downloads = tmp.path().join("my downloads");
    fs::create_dir_all(&net.client).unwrap();
    fs::write(
        net.client.join("config.toml"),
        format!("downloads = {:?}\n", downloads.to_str().unwrap()),
    )
    .unwrap();
    ok(&shoal(
        &net.client,
        &net.tracker.url,
        &["get", "alice:report.txt"],
    ));
    assert_eq!(
        fs::read(downloads.join("report.txt")).unwrap(),
        b"quarterly"
    );
}

#[test]
fn with_two_trackers_one_killed_the_node_stays_listed_and_get_by_name_works() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    write(&share, "f.txt", b"from either tracker");
    let mut a = tracker(30);
    let b = tracker(30);
    let _alice = node_with(
        &a.url,
        &tmp.path().join("a"),
        &share,
        "alice",
        30,
        "127.0.0.1:0",
        &["--tracker", &b.url],
    );
    // It registered with each.
    let client = tmp.path().join("c");
    wait_for_peers(&client, &a.url, &["alice"], 20);
    wait_for_peers(&client, &b.url, &["alice"], 20);

    // The first tracker dies; a client given both (the dead one first)
    // gets a live answer from the other, at once.
    a.proc.kill();
    let fresh = tmp.path().join("fresh");
    let both = |args: &[&str]| {
        let mut all = vec!["--tracker", b.url.as_str()];
        all.extend_from_slice(args);
        shoal(&fresh, &a.url, &all)
    };
    let started = std::time::Instant::now();
    let r = both(&["peers", "--json"]);
    let listed = json(&r);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "alice"),
        "{listed}"
    );
    assert!(
        !String::from_utf8_lossy(&r.stderr).contains("last known"),
        "a live tracker answered, not the cache: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let out = tmp.path().join("out");
    ok(&both(&["get", "alice:f.txt", "-o", out.to_str().unwrap()]));
    assert_eq!(fs::read(out.join("f.txt")).unwrap(), b"from either tracker");
    let took = started.elapsed();
    eprintln!("peers and get with the first tracker dead took {took:?}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}
