//! Files encrypted to a peer open with the standard `age` tool given the
//! same key in OpenSSH form, and files `age` encrypts to the peer's
//! `ssh-ed25519` key open with the peer's identity. Skipped, loudly, when
//! `age` is not installed (CI installs it).

use std::io::Write;
use std::process::{Command, Stdio};

use shoal_core::Identity;
use shoal_crypt::{Key, Lock, PeerKey};

fn age_installed() -> bool {
    let ok = Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "WARNING: the `age` tool is not installed; skipping interop with it (apt-get install age)"
        );
    }
    ok
}

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The identity's key as an unencrypted OpenSSH private key file.
fn openssh_private_key(id: &Identity) -> String {
    let pk = *id.peer_id().as_bytes();
    let mut wire = Vec::new();
    ssh_string(&mut wire, b"ssh-ed25519");
    ssh_string(&mut wire, &pk);
    let mut private = Vec::new();
    private.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78]);
    ssh_string(&mut private, b"ssh-ed25519");
    ssh_string(&mut private, &pk);
    let mut sk = id.secret_seed().to_vec();
    sk.extend_from_slice(&pk);
    ssh_string(&mut private, &sk);
    ssh_string(&mut private, b"test");
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut blob = b"openssh-key-v1\0".to_vec();
    ssh_string(&mut blob, b"none");
    ssh_string(&mut blob, b"none");
    ssh_string(&mut blob, b"");
    blob.extend_from_slice(&1u32.to_be_bytes());
    ssh_string(&mut blob, &wire);
    ssh_string(&mut blob, &private);
    let b64 = data_encoding::BASE64.encode(&blob);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[test]
fn the_age_tool_and_shoal_open_each_others_peer_files() {
    if !age_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::from_seed([42; 32]);
    let key_file = dir.path().join("id_ed25519");
    std::fs::write(&key_file, openssh_private_key(&me)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();

    // Shoal encrypts to the peer; age opens it with the peer's key.
    let mut ct = Vec::new();
    let lock = Lock::Peers(vec![PeerKey::of_peer(&me.peer_id()).unwrap()]);
    shoal_crypt::encrypt(&mut &data[..], &mut ct, &lock).unwrap();
    let mut child = Command::new("age")
        .args(["-d", "-i"])
        .arg(&key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Fed from a thread: age writes plaintext while it reads, and a full
    // stdout pipe nobody drains yet would block both sides.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&ct));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, data);

    // age encrypts to the peer's ssh-ed25519 line; Shoal opens it.
    let line = PeerKey::of_peer(&me.peer_id()).unwrap().to_ssh();
    let mut child = Command::new("age")
        .args(["-r", &line])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pt = Vec::new();
    shoal_crypt::decrypt(&out.stdout[..], &mut pt, &Key::Identity(&me)).unwrap();
    assert_eq!(pt, data);
}
