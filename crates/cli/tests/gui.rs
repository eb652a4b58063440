//! `shoal gui` where no window can open: a clear error, not a crash.

mod common;

use std::process::{Command, Stdio};

#[test]
fn without_a_display_gui_says_so_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(common::BIN)
        .arg("--data-dir")
        .arg(tmp.path())
        .arg("gui")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("there is no display"), "{err}");
    assert!(!err.contains("looks like a bug"), "{err}");
}
