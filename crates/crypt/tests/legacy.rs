//! The seed's Fernet files, made by Python's `cryptography` with the seed's
//! parameters (tests/fixtures/legacy/make.py), open with the right password
//! and refuse a wrong one cleanly.

use std::path::Path;

use shoal_crypt::{CryptError, legacy};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name)
}

/// What make.py encrypted.
fn plain(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + 3) % 256) as u8).collect()
}

#[test]
fn files_the_seed_made_decrypt_byte_for_byte() {
    let out = tempfile::tempdir().unwrap();
    for n in [0, 1, 15, 16, 17, 1000, 100_000] {
        let src = fixture(&format!("plain-{n}.bin.encrypted"));
        assert!(legacy::is_fernet(&std::fs::read(&src).unwrap()[..6]));
        let dst = out.path().join(format!("plain-{n}.bin"));
        let len = legacy::decrypt_file(&src, &dst, "correct horse", true).unwrap();
        assert_eq!(len, n as u64);
        assert_eq!(std::fs::read(&dst).unwrap(), plain(n), "{n} bytes");
    }
}

#[test]
fn a_wrong_password_or_a_damaged_file_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let src = fixture("plain-1000.bin.encrypted");
    let dst = out.path().join("x");
    let e = legacy::decrypt_file(&src, &dst, "wrong horse", false).unwrap_err();
    assert!(matches!(e, CryptError::WrongPassphrase), "{e}");
    assert!(!dst.exists());

    let mut token = std::fs::read(&src).unwrap();
    for (i, what) in [(40, "flipped"), (token.len() - 3, "flipped near the end")] {
        let mut bad = token.clone();
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let p = out.path().join("bad.encrypted");
        std::fs::write(&p, &bad).unwrap();
        assert!(
            legacy::decrypt_file(&p, &dst, "correct horse", false).is_err(),
            "{what}"
        );
        assert!(!dst.exists(), "{what}");
    }
    token.truncate(token.len() / 2);
    let p = out.path().join("cut.encrypted");
    std::fs::write(&p, &token).unwrap();
    assert!(legacy::decrypt_file(&p, &dst, "correct horse", false).is_err());
    std::fs::write(&p, b"not a token at all").unwrap();
    assert!(legacy::decrypt_file(&p, &dst, "correct horse", false).is_err());
    assert!(!dst.exists());
    let leftovers = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(leftovers, 2, "only the two inputs remain");
}
