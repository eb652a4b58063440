//! The real binary with its web UI: `get` and `send` beside a running
//! node hand their work to it; `transfers` lists it; a web UI off
//! loopback needs a password.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The node's transfers, as `shoal transfers --json` prints them.
fn transfers(data: &std::path::Path) -> serde_json::Value {
    json(
        &Command::new(BIN)
            .args(["--data-dir", s(data), "transfers", "--json"])
            .env_remove("SHOAL_DATA_DIR")
            .output()
            .unwrap(),
    )
}

#[test]
fn get_beside_a_running_node_is_done_by_the_node_paused_by_ctrl_c_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let share = tmp.path().join("bob-share");
    fs::create_dir_all(&share).unwrap();
    let content = bytes(40 << 20, 21);
    fs::write(share.join("big.bin"), &content).unwrap();
    let _bob = node_with(
        &t.url,
        &tmp.path().join("bob"),
        &share,
        "bob",
        30,
        "127.0.0.1:0",
        &["--max-upload-rate", "8MiB", "--no-web"],
    );
    let mine = tmp.path().join("me");
    let my_share = tmp.path().join("my-share");
    fs::create_dir_all(&my_share).unwrap();
    let mut me = node_with(
        &t.url,
        &mine,
        &my_share,
        "me",
        30,
        "127.0.0.1:0",
        &["--web-listen", "127.0.0.1:0"],
    );
    assert!(
        me.proc
            .seen
            .iter()
            .any(|l| l.starts_with("web ui on http://127.0.0.1:")),
        "{:?}",
        me.proc.seen
    );
    let control: serde_json::Value =
        serde_json::from_slice(&fs::read(mine.join("control.json")).unwrap()).unwrap();
    assert_eq!(control["api_key"].as_str().unwrap().len(), 64);
    wait_for_peers(&tmp.path().join("x"), &t.url, &["bob", "me"], 20);
    assert_eq!(transfers(&mine), serde_json::json!([]));

    // Ctrl-C midway: paused in the node, not lost.
    let out = tmp.path().join("out");
    let get = spawn_get(&mine, &t.url, "bob:big.bin", &out);
    wait_until("the node's download under way", 30, || {
        transfers(&mine)
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["state"] == "running" && x["done"].as_u64().unwrap() > 0)
    });
    let status = Command::new("kill")
        .args(["-INT", &get.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = get.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{done:?}");
    let list = transfers(&mine);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["state"], "paused", "{list}");
    let kept = list[0]["done"].as_u64().unwrap();
    assert!(kept > 0 && kept < content.len() as u64);
    assert!(!out.join("big.bin").exists());

    // The same command resumes the same transfer and finishes it.
    ok(&shoal(
        &mine,
        &t.url,
        &["get", "bob:big.bin", "-o", s(&out)],
    ));
    assert_eq!(fs::read(out.join("big.bin")).unwrap(), content);
    let list = transfers(&mine);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one transfer, resumed: {list}"
    );
    assert_eq!(list[0]["state"], "done");

    // The node offers it now: the tracker lists it as a provider.
    let cid = b3sum(&out.join("big.bin"));
    wait_until("the node listed as a provider", 30, || {
        http_get(&t.url, &format!("/v1/providers/{cid}")).contains(&me.id)
    });

    // A failure keeps its exit code: no such file is "not found".
    let r = shoal(&mine, &t.url, &["get", "bob:nope.bin", "-o", s(&out)]);
    assert_eq!(
        r.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );

    // The table names it too.
    let table = ok(&Command::new(BIN)
        .args(["--data-dir", s(&mine), "transfers"])
        .output()
        .unwrap());
    assert!(
        table.contains("big.bin") && table.contains("done"),
        "{table}"
    );

    // Stopped: control.json goes, and get works on its own again.
    me.proc.terminate();
    assert!(!mine.join("control.json").exists());
    let r = Command::new(BIN)
        .args(["--data-dir", s(&mine), "transfers"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no node runs"));
}

#[test]
fn send_beside_a_running_node_is_pushed_by_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tracker(30);
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let bob = node_with(
        &t.url,
        &tmp.path().join("bob"),
        &empty,
        "bob",
        30,
        "127.0.0.1:0",
        &["--accept-from", "any", "--no-web"],
    );
    let mine = tmp.path().join("me");
    let _me = node_with(
        &t.url,
        &mine,
        &empty,
        "me",
        30,
        "127.0.0.1:0",
        &["--web-listen", "127.0.0.1:0"],
    );
    wait_for_peers(&tmp.path().join("x"), &t.url, &["bob", "me"], 20);
    let file = tmp.path().join("note.txt");
    fs::write(&file, b"for bob").unwrap();
    let r = shoal(&mine, &t.url, &["send", "bob", s(&file)]);
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert!(r.status.success(), "{err}");
    assert!(err.contains("in its inbox as note.txt"), "{err}");
    assert_eq!(
        fs::read(bob.data.join("inbox").join("note.txt")).unwrap(),
        b"for bob"
    );
    let list = transfers(&mine);
    assert_eq!(list[0]["direction"], "push", "the node did it: {list}");
}

#[test]
fn a_web_ui_off_loopback_needs_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let r = Command::new(BIN)
        .args([
            "--data-dir",
            s(&data),
            "--tracker",
            "http://127.0.0.1:9",
            "node",
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "0.0.0.0:0",
        ])
        .env_remove("SHOAL_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("password") && err.contains("shoal web-password"),
        "{err}"
    );
    assert!(!data.join("control.json").exists());

    // Set one (from a file; never an argument): stored hashed.
    let pw = tmp.path().join("pw");
    fs::write(&pw, "correct horse battery\n").unwrap();
    ok(&Command::new(BIN)
        .args([
            "--data-dir",
            s(&data),
            "web-password",
            "--password-file",
            s(&pw),
        ])
        .output()
        .unwrap());
    let toml = fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(
        toml.contains("$argon2id$") && !toml.contains("correct horse"),
        "{toml}"
    );
    let short = tmp.path().join("short");
    fs::write(&short, "abc\n").unwrap();
    let r = Command::new(BIN)
        .args([
            "--data-dir",
            s(&data),
            "web-password",
            "--password-file",
            s(&short),
        ])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));

    // Now it starts, over HTTPS.
    let mut node = Proc::spawn(
        &[
            "--data-dir",
            s(&data),
            "--tracker",
            "http://127.0.0.1:9",
            "node",
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "0.0.0.0:0",
        ],
        &[],
    );
    let url = node.wait_line("web ui on ");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    node.wait_line("peer id ");
    // The command line of the data dir follows it over HTTPS, trusting
    // the certificate control.json names.
    let out = ok(&Command::new(BIN)
        .args(["--data-dir", s(&data), "transfers"])
        .output()
        .unwrap());
    assert_eq!(out.trim(), "no transfers");
    node.terminate();
}
