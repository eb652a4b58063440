//! Every JSON shape a tracker or peer receives: parsing, validating and
//! checking signatures never panic, and sanitised records hold their rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shoal_core::wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<Registration>(data) {
        let _ = r.validate();
        let _ = r.verify();
    }
    if let Ok(a) = serde_json::from_slice::<Announce>(data) {
        let _ = a.verify();
    }
    if let Ok(d) = serde_json::from_slice::<Deregistration>(data) {
        let _ = d.verify();
    }
    for rec in serde_json::from_slice::<PeerPage>(data)
        .map(|p| p.peers)
        .unwrap_or_default()
        .into_iter()
        .chain(serde_json::from_slice::<Providers>(data).map(|p| p.peers).unwrap_or_default())
    {
        let s = rec.sanitized();
        assert!(!s.name.chars().any(shoal_core::text::is_hidden));
        assert!(s.addrs.len() <= MAX_ADDRS);
    }
    let _ = serde_json::from_slice::<Vec<FileEntry>>(data);
    let _ = serde_json::from_slice::<PieceMap>(data);
    let _ = serde_json::from_slice::<shoal_node::inbox::Offer>(data);
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(data) {
        assert!(!e.shown().chars().any(shoal_core::text::is_hidden));
    }
});
