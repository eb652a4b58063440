//! The control API against a real tracker and real nodes on 127.0.0.1:
//! what a script (or the CLI) sees.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_started_by_the_api_reports_progress_and_lands_whole() {
    let mut net = Net::new().await;
    let big = bytes(6 << 20, 1);
    net.node(
        "bob",
        &[("big.bin", &big), ("small.txt", b"hi")],
        Some(3 << 20),
        false,
    )
    .await;
    let me = net.me("alice", |_| {}).await;

    let status = me.get_json("/api/v1/status").await;
    assert_eq!(status["name"], "alice");
    assert_eq!(status["state"], "online");
    assert!(status["port"].as_u64().unwrap() > 0);

    me.wait_for_peer("bob").await;
    let listing = me.get_json("/api/v1/peers/bob/files").await;
    let names: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big.bin", "small.txt"]);
    let r = me.get("/api/v1/peers/nobody/files").await;
    assert!(r.status().is_client_error() || r.status().is_server_error());

    let mut events = me.events().await;
    let r = me
        .post("/api/v1/downloads", json!({ "target": "bob:big.bin" }))
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();

    // Progress on the way, then done.
    let mut midway = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (name, data) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("events in time")
            .expect("stream open");
        if name == "progress" {
            for m in data.as_array().unwrap() {
                let (done, total) = (m["done"].as_u64().unwrap(), m["total"].as_u64().unwrap());
                if m["id"] == id && done > 0 && done < total {
                    midway = Some((done, m["speed"].as_u64().unwrap()));
                }
            }
        }
        if name == "transfer" && data["id"] == id && data["state"] == "done" {
            assert_eq!(data["done"], big.len() as u64);
            break;
        }
    }
    let (done, speed) = midway.expect("a progress event between 0 and 100%");
    assert!(done > 0 && speed > 0, "done {done} speed {speed}");
    assert_eq!(std::fs::read(me.downloads.join("big.bin")).unwrap(), big);

    // The same target again is the same transfer, not a second one.
    let again = me
        .post("/api/v1/downloads", json!({ "target": "bob:big.bin" }))
        .await;
    assert!(again.status().is_success() || again.status() == 422);

    // A bad target says what is wrong, with the CLI's exit code.
    let r = me
        .post("/api/v1/downloads", json!({ "target": "no colon here" }))
        .await;
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("PEER:PATH"), "{e}");
    assert_eq!(e["exit_code"], 2);
    let r = me
        .post("/api/v1/downloads", json!({ "target": "bob:missing.bin" }))
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["exit_code"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_and_cancel_through_the_api() {
    let mut net = Net::new().await;
    let big = bytes(8 << 20, 2);
    net.node("bob", &[("big.bin", &big)], Some(1 << 20), false)
        .await;
    let me = net.me("alice", |_| {}).await;
    me.wait_for_peer("bob").await;

    let id = me
        .post("/api/v1/downloads", json!({ "target": "bob:big.bin" }))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    wait_for("bytes to arrive", || async {
        me.get_json(&format!("/api/v1/transfers/{id}")).await["done"]
            .as_u64()
            .unwrap()
            > 0
    })
    .await;
    let t = me
        .post(&format!("/api/v1/transfers/{id}/pause"), json!(null))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(t["state"], "paused", "{t}");
    assert!(me.downloads.join("big.bin.part").exists());
    let kept = t["done"].as_u64().unwrap();

    let r = me
        .post(&format!("/api/v1/downloads/{id}/resume"), json!(null))
        .await;
    assert!(r.status().is_success());
    wait_for("more bytes after the resume", || async {
        let t = me.get_json(&format!("/api/v1/transfers/{id}")).await;
        t["state"] == "running" && t["done"].as_u64().unwrap() > kept
    })
    .await;

    let t = me
        .post(&format!("/api/v1/transfers/{id}/cancel"), json!(null))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(t["state"], "cancelled", "{t}");
    assert_eq!(
        tree(&me.downloads),
        Vec::<String>::new(),
        "cancel leaves nothing"
    );

    let r = me.post("/api/v1/transfers/999/pause", json!(null)).await;
    assert_eq!(r.status(), 404);
    let r = me
        .post(&format!("/api/v1/transfers/{id}/explode"), json!(null))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_are_shared_plain_or_encrypted_and_stay_inside_the_share() {
    let mut net = Net::new().await;
    let me = net.me("alice", |_| {}).await;
    let plain = bytes(300_000, 3);

    let r = me
        .upload("/api/v1/shares", &[("lock", "plain")], "notes.bin", &plain)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(std::fs::read(me.share.join("notes.bin")).unwrap(), plain);

    let r = me
        .upload(
            "/api/v1/shares",
            &[
                ("lock", "passphrase"),
                ("passphrase", "correct horse battery"),
            ],
            "secret.txt",
            b"the plans",
        )
        .await;
    assert_eq!(r.status(), 201);
    let age = me.share.join("secret.txt.age");
    assert!(age.exists() && !me.share.join("secret.txt").exists());
    let out = me.data.join("opened.txt");
    shoal_crypt::decrypt_file(
        &age,
        &out,
        &shoal_crypt::Key::Passphrase("correct horse battery".to_owned().into()),
        true,
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"the plans");

    // Encrypted to a peer's key: only that peer's key opens it.
    let (bob, _) = net.node("bob", &[], None, false).await;
    let r = me
        .upload(
            "/api/v1/shares",
            &[("lock", "peer"), ("peer", &bob.to_string())],
            "for-bob.txt",
            b"only bob",
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let sealed = me.share.join("for-bob.txt.age");
    assert!(matches!(
        shoal_crypt::needs(&sealed).unwrap(),
        shoal_crypt::Needs::Key
    ));
    assert!(
        !std::fs::read(&sealed)
            .unwrap()
            .windows(8)
            .any(|w| w == b"only bob")
    );
    let r = me
        .upload(
            "/api/v1/shares",
            &[("lock", "peer"), ("peer", "nobody")],
            "x.txt",
            b"x",
        )
        .await;
    assert_eq!(r.status(), 400);

    // A name that climbs out lands inside, under its last part.
    let outside = me.share.parent().unwrap().join("evil.txt");
    let r = me
        .upload("/api/v1/shares", &[], "../../evil.txt", b"x")
        .await;
    assert_eq!(r.status(), 201);
    assert!(me.share.join("evil.txt").exists());
    assert!(!outside.exists());
    let r = me.upload("/api/v1/shares", &[], "..", b"x").await;
    assert_eq!(r.status(), 400);
    let r = me
        .upload("/api/v1/shares", &[("lock", "passphrase")], "p.txt", b"x")
        .await;
    assert_eq!(r.status(), 400, "a passphrase lock without a passphrase");

    // Nothing is left in the upload area.
    assert_eq!(tree(&me.data.join("uploads")), Vec::<String>::new());

    // More than the disk holds is refused before a byte is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(me.web.local_addr())
        .await
        .unwrap();
    let req = format!(
        "POST /api/v1/shares HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000000000000\r\n\r\n",
        me.web.local_addr(),
        me.key
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 507"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_is_pushed_to_a_peer_and_settings_land_in_config_toml() {
    let mut net = Net::new().await;
    let (_, bob_inbox) = net.node("bob", &[], None, true).await;
    let me = net.me("alice", |_| {}).await;
    me.wait_for_peer("bob").await;

    let mut events = me.events().await;
    let r = me
        .upload(
            "/api/v1/pushes",
            &[("peer", "bob")],
            "hello.txt",
            b"hello bob",
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let id = me.get_json("/api/v1/pushes").await[0]["id"]
        .as_u64()
        .unwrap();
    me.wait_state(id, "done").await;
    assert_eq!(
        std::fs::read(bob_inbox.join("hello.txt")).unwrap(),
        b"hello bob"
    );
    assert_eq!(tree(&me.data.join("uploads")), Vec::<String>::new());

    // Settings: what is saved is config.toml; the page's extras are not.
    let mut s = me.get_json("/api/v1/settings").await;
    assert_eq!(s["web_password_set"], false);
    s["name"] = json!("alice-renamed");
    s["max_upload_rate"] = json!(123456);
    let r = me
        .http
        .put(me.url("/api/v1/settings"))
        .bearer_auth(&me.key)
        .json(&s)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let toml = std::fs::read_to_string(me.data.join("config.toml")).unwrap();
    assert!(toml.contains("name = \"alice-renamed\""), "{toml}");
    assert!(toml.contains("max_upload_rate = 123456"), "{toml}");
    assert!(!toml.contains("web_password_set"));
    let r = me
        .http
        .put(me.url("/api/v1/settings"))
        .bearer_auth(&me.key)
        .json(&json!({ "nonsense": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The log lines of all that arrived live.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while !seen.iter().any(|t: &String| t.contains("settings saved")) {
        let (name, data) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no live log line; saw {seen:?}"))
            .unwrap();
        if name == "log" {
            seen.push(data["text"].as_str().unwrap().to_owned());
        }
    }
    assert!(seen.iter().any(|t| t.contains("sent")), "{seen:?}");
    let log = me.get_json("/api/v1/log").await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|l| l["level"] == "success")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_files_come_with_links() {
    let mut net = Net::new().await;
    let me = net.me("alice", |_| {}).await;
    std::fs::write(me.share.join("a.txt"), b"abc").unwrap();
    wait_for("the share to be indexed", || async {
        me.get_json("/api/v1/files").await.as_array().unwrap().len() == 1
    })
    .await;
    let f = &me.get_json("/api/v1/files").await[0];
    assert_eq!(f["name"], "a.txt");
    let link: shoal_core::Link = f["link"].as_str().unwrap().parse().unwrap();
    assert_eq!(link.name, "a.txt");
    assert_eq!(link.size, 3);
}
