//! A `.part.state` record found on disk: loaded or refused, never a
//! panic, and a loaded one is consistent with its size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shoal_node::pieces::PieceState;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.part.state");
    std::fs::write(&path, data).unwrap();
    if let Some(s) = PieceState::load(&path) {
        let _ = s.missing().len();
    }
});
