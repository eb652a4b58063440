//! age files from anywhere: a hostile header or payload is an error,
//! never a panic or an allocation it chose.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = shoal_core::Identity::from_seed([7; 32]);
    let mut out = Vec::new();
    let _ = shoal_crypt::decrypt(data, &mut out, &shoal_crypt::Key::Identity(&me));
});
