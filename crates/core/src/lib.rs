//! The shared vocabulary of Shoal.
//!
//! Everything the tracker, the node and the CLI must agree on lives here and
//! nowhere else: who a peer is ([`PeerId`], [`Identity`]), what a file is
//! ([`ContentId`]), the JSON shapes that cross the wire ([`wire`]), the
//! on-disk configuration ([`config`]) and the kinds of failure a user can
//! see ([`ErrorKind`]). It has no networking and no async code, so every
//! other crate can depend on it cheaply.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
mod content;
mod error;
mod identity;
pub mod link;
pub mod text;
pub mod wire;

pub use content::{ContentId, ContentIdError};
pub use error::{ErrorKind, HasKind};
pub use identity::{Identity, IdentityError, PeerId, PeerIdError, SignatureError};
pub use link::{Link, LinkError};

/// Name of the identity file inside a data dir.
pub const IDENTITY_FILE: &str = "identity.key";

/// A size as people read it: `512 B`, `1.5 KiB`, `3.0 GiB` (binary units).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human_size(0), "0 B");
        assert_eq!(super::human_size(1023), "1023 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }
}
