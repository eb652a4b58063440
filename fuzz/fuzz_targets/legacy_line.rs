//! The seed's discovery protocol: only plain host:port ever passes, and
//! the Python list it is put in holds nothing to evaluate.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shoal_tracker::legacy::{checked_addr, python_list};

fuzz_target!(|data: &str| {
    let line = data.strip_prefix("REGISTER ").unwrap_or(data);
    if let Some(a) = checked_addr(line) {
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b)), "{a:?}");
        assert_eq!(checked_addr(&a).as_deref(), Some(a.as_str()));
        let list = python_list(&[a]);
        assert_eq!(list.matches('\'').count(), 2);
    }
});
