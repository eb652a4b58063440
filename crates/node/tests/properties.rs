//! Property tests of the arithmetic on sizes and offsets from the network
//! (class 1 of the hardening issue) and of the inbox's accounting of
//! reservations (class 5).

use proptest::prelude::*;
use shoal_node::inbox::{NoRoom, Reservations, Room};

/// Sizes worth trying: small, around the protocol limit, and near 2^64.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..10_000,
        (1u64 << 42) - 2..(1u64 << 42) + 2,
        u64::MAX - 100..=u64::MAX,
        any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Reserve { key: u8, bytes: u64, need: u64 },
    Release { key: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, size(), size()).prop_map(|(key, bytes, need)| Op::Reserve { key, bytes, need }),
        (0u8..6).prop_map(|key| Op::Release { key }),
    ]
}

proptest! {
    /// Whatever is offered, in whatever order, what the inbox holds and
    /// has promised never exceeds its limit, nor the disk; nothing
    /// overflows.
    #[test]
    fn reservations_never_overfill(
        usage in size(),
        max in proptest::option::of(size()),
        free in proptest::option::of(size()),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let mut r = Reservations::default();
        let none = |_: &str| false;
        for op in ops {
            match op {
                Op::Reserve { key, bytes, need } => {
                    let before = r.total();
                    let room = Room { usage, max, free, margin: 1024 };
                    match r.reserve(&key.to_string(), bytes, need, room, &none) {
                        Ok(()) => {
                            if let Some(max) = max {
                                prop_assert!(usage.checked_add(r.total()).is_some_and(|t| t <= max));
                            }
                        }
                        Err(NoRoom::Limit | NoRoom::Disk) => prop_assert!(r.total() <= before),
                    }
                }
                Op::Release { key } => r.release(&key.to_string()),
            }
        }
    }

    /// A `Range` header, whatever its numbers, yields a range inside the
    /// file or an error.
    #[test]
    fn ranges_stay_inside_the_file(size in size(), a in size(), b in size(), form in 0u8..4) {
        let header = match form {
            0 => format!("bytes={a}-{b}"),
            1 => format!("bytes={a}-"),
            2 => format!("bytes=-{b}"),
            _ => format!("bytes={a}-{b},{b}-{a}"),
        };
        if let Some((s, e)) = shoal_node::fuzzing::range(&header, size) {
            prop_assert!(s < e && e <= size, "{header} of {size}: {s}..{e}");
        }
    }

    /// Bundle frames with lengths up to 2^64 are split without overflow:
    /// a data frame is exactly the size listed, and never past the body.
    #[test]
    fn bundle_frames_never_overflow(
        frames in proptest::collection::vec((0u8..4, size(), 0usize..64), 0..8),
        sizes in proptest::collection::vec(0u64..64, 0..8),
    ) {
        let mut body = Vec::new();
        for (status, len, real) in &frames {
            body.push(*status);
            body.extend_from_slice(&len.to_le_bytes());
            body.extend(std::iter::repeat_n(7u8, *real));
        }
        for (want, got) in sizes.iter().zip(shoal_node::fuzzing::bundle(&body, &sizes)) {
            if let Some(n) = got {
                prop_assert_eq!(n as u64, *want);
            }
        }
    }
}
