//! The Shoal relay: pipes bytes between two peers that cannot reach each
//! other (both behind routers, say), and nothing else.
//!
//! # Protocol (TCP, version 1)
//!
//! A client opens a TCP connection and sends [`proto::MAGIC`]. The relay
//! answers with a [`proto::Frame::Challenge`] (32 random bytes); the client
//! sends a [`proto::Frame::Hello`]: its PeerId, the role it asks for, and
//! its Ed25519 signature over the challenge and the role. A client that
//! proves no key gets nothing. Frames are a big-endian `u16` length and
//! JSON, at most [`proto::MAX_FRAME`] bytes; the handshake must end within
//! [`RelayConfig::hello_timeout`].
//!
//! - `listen`: the connection stays open; the relay sends `invite`
//!   frames (and pings, answered with pongs) for each pipe wanted to this
//!   peer. A newer `listen` of the same peer replaces the older.
//! - `connect {to}`: the relay invites `to`, waits for it to `accept`,
//!   answers `ok`, and from the next byte on pipes the two connections.
//! - `accept {token}`: the invited peer's end of the pipe.
//!
//! The peers then run their mutual TLS 1.3 through the pipe, end to end:
//! the relay sees only ciphertext, and cannot pass for either side, since
//! each pins the other's key. A connection whose first bytes are `GET ` or
//! `HEAD` is HTTP instead: `GET /metrics` (Prometheus text) and
//! `GET /healthz`.
//!
//! Limits: connections in all and per client address (as every Shoal
//! server, see [`shoal_net`]), pipes per peer, bytes per second per peer
//! and in all, and idle pipes closed after [`RelayConfig::idle_timeout`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod client;
mod metrics;
mod prefixed;
pub mod proto;
mod server;

pub use client::RelayError;
pub use server::{RelayConfig, serve};

/// How a relay at `addr` is written in peers' addresses and in `listening
/// on` lines.
pub fn url_of(addr: std::net::SocketAddr) -> String {
    format!("{}{addr}", shoal_core::wire::RELAY_SCHEME)
}
