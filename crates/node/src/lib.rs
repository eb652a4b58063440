//! A Shoal peer: it shares folders, serves them to other peers over mutual
//! TLS, registers with a tracker, and downloads from other peers.
//!
//! # Peer protocol (HTTPS, mutual TLS 1.3, version 1)
//!
//! Participants: two peers, each named by its PeerId (its Ed25519 public
//! key). Goals: a peer fetches another's file listing and any file's bytes,
//! knowing it talks to exactly the peer it named and that the bytes are the
//! content it asked for. Non-goals: anonymity, and hiding *that* two peers
//! talk.
//!
//! Connection: TLS 1.3 only, Ed25519 self-signed certificates on both
//! sides ([`tls`]). The client accepts only the certificate whose key is
//! the PeerId it dialled; the server requires a client certificate and
//! knows the caller's PeerId from it. A peer without a certificate, or with
//! the wrong key, fails the handshake before any HTTP is exchanged.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/files` | 200 `[FileEntry]`: `{name, size, content_id, modified, encrypted}` |
//! | `GET /v1/content/{content_id}` | 200 the bytes; with `Range: bytes=a-b`, 206 and that range |
//! | `GET /v1/content/{content_id}/outboard` | 200 the BLAKE3 tree's parent hashes (see [`pieces`]) |
//! | `GET /v1/content/{content_id}/have` | 200 `PieceMap`: `{size, piece_size, complete, pieces?, fetching?}` |
//! | `POST /v1/bundle` with `[content_id, ...]` (at most 1024) | 200 a frame per id: status byte (0 data, 1 not shared, 2 too large), length (u64 LE), bytes |
//!
//! `name` is a path relative to the share, `/`-separated. `content_id` is
//! the BLAKE3 hash of the bytes as 64 lowercase hex characters (`b3sum`'s
//! output). Files are addressed by content id only, never by path, so no
//! request can name a file outside the shares. Errors are
//! `{"error": "..."}`: 400 malformed id, 404 not shared, 409 changed on disk
//! since it was indexed (retry shortly), 416 bad range or, from a peer
//! still downloading the content, a range of pieces it does not hold yet,
//! 503 all upload slots busy (try later or elsewhere).
//!
//! A peer that is downloading a content serves the pieces it has verified
//! so far ([`swarm`]): `/have` lists them as a bitmap (and, optionally,
//! the pieces it is fetching now as `fetching`, so a crowd does not ask a
//! seeder for them twice; older peers leave it out), and `/outboard` and
//! ranges made of those pieces work as for a complete file.
//!
//! ```text
//! → GET /v1/files
//! ← 200 [{"name":"docs/a.txt","size":5,"content_id":"ea8f…","modified":1764100000,"encrypted":false}]
//! → GET /v1/content/ea8f…   Range: bytes=0-1
//! ← 206 Content-Range: bytes 0-1/5   "he"
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod body;
pub mod book;
pub mod compat;
pub mod db;
pub mod dial;
pub mod directory;
pub mod download;
mod error;
pub mod folder;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbox;
pub mod index;
pub mod listening;
mod node;
pub mod peer_client;
pub mod pieces;
pub mod rate;
pub mod reach;
pub mod reputation;
mod retry;
pub mod send;
pub mod server;
pub mod swarm;
pub mod tls;
pub mod tracker_client;
pub mod trackers;

pub use error::{Cause, NodeError, PeerError, Result, TrackerError};
pub use node::{Node, NodeConfig, TrackerState};
pub use retry::with_retry;
