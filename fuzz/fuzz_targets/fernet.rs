//! The seed's Fernet files: damage is an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x.encrypted");
    std::fs::write(&src, data).unwrap();
    let _ = shoal_crypt::legacy::decrypt_file(&src, &dir.path().join("x"), "pw", false);
});
