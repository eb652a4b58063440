//! The web UI in a real browser: headless Chromium (Debian's), driven by
//! `browser/ui.mjs` through playwright-core from npm (no browser is
//! downloaded), against a real tracker and nodes on 127.0.0.1. This test
//! starts them, runs the script, and checks what landed on disk.
//!
//! `.ci/run` installs Chromium and `npm ci`s the script's one package;
//! elsewhere, without them, the test says SKIP loudly (and fails under CI).
//! With SHOAL_SCREENSHOTS=DIR it also saves the README's screenshots.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether the browser and the driver are here; if not, says so (and
/// fails when run by CI, which installs them).
fn ready() -> bool {
    let missing: Vec<String> = [
        (chromium(), "Chromium (apt install chromium)"),
        (
            script_dir().join("node_modules/playwright-core"),
            "playwright-core (npm ci --prefix crates/web/tests/browser)",
        ),
    ]
    .into_iter()
    .filter(|(p, _)| !p.exists())
    .map(|(_, what)| what.to_owned())
    .collect();
    let node = Command::new("node").arg("--version").output().is_ok();
    let mut missing = missing;
    if !node {
        missing.push("Node.js (apt install nodejs)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "SKIP browser test: missing {}; .ci/run installs them",
        missing.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("\n*** {msg} ***\n");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_web_ui_in_chromium_does_what_the_app_does() {
    if !ready() {
        return;
    }
    let mut net = Net::new().await;
    let big = bytes(12 << 20, 31);
    let other = bytes(12 << 20, 32);
    let locked = {
        let dir = net.dir();
        let plain = dir.join("locked.txt");
        std::fs::write(&plain, b"behind a passphrase").unwrap();
        let out = net.dir();
        let lock = shoal_crypt::Lock::Passphrase("open sesame".to_owned().into());
        std::fs::read(shoal_crypt::share_into(&plain, &out, Some(&lock)).unwrap()).unwrap()
    };
    net.node(
        "bob",
        &[
            ("big.bin", &big),
            ("other.bin", &other),
            ("small.txt", b"hi"),
            ("locked.txt.age", &locked),
        ],
        Some(2 << 20),
        false,
    )
    .await;
    let me = net.me("alice", |_| {}).await;
    let upload = me.data.join("to-share.bin");
    let uploaded = bytes(700_000, 33);
    std::fs::write(&upload, &uploaded).unwrap();

    let mut cmd = Command::new("node");
    cmd.arg(script_dir().join("ui.mjs"))
        .current_dir(script_dir())
        .env("SHOAL_URL", format!("{}/", me.base))
        .env("SHOAL_UPLOAD", &upload)
        .env("CHROMIUM", chromium());
    if let Some(dir) = std::env::var_os("SHOAL_SCREENSHOTS") {
        cmd.env("SHOAL_SCREENSHOTS", dir);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["consoleErrors"], serde_json::json!([]));
    // The one refused request: the wrong passphrase.
    assert_eq!(
        seen["expectedErrors"].as_array().unwrap().len(),
        1,
        "{seen}"
    );
    let steps: Vec<&str> = seen["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "online",
            "browsed",
            "progress",
            "paused",
            "done",
            "opened with a passphrase",
            "cancelled",
            "shared by input",
            "shared by drop, encrypted",
            "local files",
            "log",
            "settings",
            "keyboard",
            "phone width"
        ]
    );
    assert!(seen["midway"].as_str().unwrap().contains('%'), "{seen}");

    // What the clicks did, on disk.
    assert_eq!(std::fs::read(me.downloads.join("big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(me.downloads.join("locked.txt")).unwrap(),
        b"behind a passphrase"
    );
    assert!(
        !me.downloads.join("locked.txt.age").exists(),
        "the ciphertext goes once opened"
    );
    assert!(!me.downloads.join("other.bin").exists());
    assert!(!me.downloads.join("other.bin.part").exists());
    assert_eq!(
        std::fs::read(me.share.join("to-share.bin")).unwrap(),
        uploaded
    );
    let age = me.share.join("dropped.txt.age");
    let opened = me.data.join("dropped.txt");
    shoal_crypt::decrypt_file(
        &age,
        &opened,
        &shoal_crypt::Key::Passphrase("correct horse battery".to_owned().into()),
        true,
    )
    .unwrap();
    assert_eq!(std::fs::read(&opened).unwrap(), b"dropped and locked");
    let toml = std::fs::read_to_string(me.data.join("config.toml")).unwrap();
    assert!(toml.contains("name = \"alice-web\""), "{toml}");
}
