//! Shoal's file handling, the same on Linux, macOS and Windows: durable
//! names ([`durable`]), its own working files never opened through a
//! planted symlink ([`own`]), positional reads and writes ([`at`]), and
//! disk space ([`space`]). Every platform call sits behind a `cfg` seam
//! here, so the crates above have none.
#![deny(missing_docs)]

pub mod at;
pub mod durable;
pub mod own;
pub mod space;

pub use own::{create_new, open_own};
pub use space::{device_of, free_space, preallocate, release_unwritten};
