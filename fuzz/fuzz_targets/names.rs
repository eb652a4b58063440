//! File and peer names from the network: what is kept is one safe path
//! component, and what is shown hides nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shoal_core::text::{escape, is_hidden};

fuzz_target!(|name: &str| {
    assert!(!escape(name).chars().any(is_hidden));
    for kept in [
        shoal_node::inbox::safe_name(name),
        shoal_node::download::local_name(name).ok(),
        shoal_node::download::provider_name(name).ok(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!kept.is_empty() && kept.len() <= 255, "{kept:?}");
        assert!(!kept.contains(['/', '\\', '\0']), "{kept:?}");
        assert!(kept != "." && kept != "..");
        assert!(!kept.chars().any(is_hidden), "{kept:?}");
    }
    if let Ok(p) = shoal_node::download::provider_name(name) {
        assert!(!p.starts_with('.'), "{p:?}");
    }
    if shoal_core::wire::validate_name(name).is_ok() {
        assert!(!name.chars().any(is_hidden));
    }
});
