//! Bundle answers: frames are split without panics, never past the body,
//! and a data frame is exactly the size listed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u16>, &[u8])| {
    let (sizes, body) = input;
    let sizes: Vec<u64> = sizes.into_iter().take(64).map(u64::from).collect();
    for (size, got) in sizes.iter().zip(shoal_node::fuzzing::bundle(body, &sizes)) {
        if let Some(len) = got {
            assert_eq!(len as u64, *size);
        }
    }
});
