//! `Range` headers: a parsed range always lies inside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, &str)| {
    let (size, header) = input;
    if let Some((start, end)) = shoal_node::fuzzing::range(header, size) {
        assert!(start < end && end <= size, "{header:?} over {size}: {start}..{end}");
    }
});
