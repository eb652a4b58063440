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
pub mod wire;

pub use content::{ContentId, ContentIdError};
pub use error::{ErrorKind, HasKind};
pub use identity::{Identity, IdentityError, PeerId, PeerIdError, SignatureError};

/// Name of the identity file inside a data dir.
pub const IDENTITY_FILE: &str = "identity.key";
