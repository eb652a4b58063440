//! config.toml as a user (or a careless editor) writes it: an error,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), data).unwrap();
    if let Ok(c) = shoal_core::config::Config::load(dir.path()) {
        let _ = c.tracker_url();
    }
});
