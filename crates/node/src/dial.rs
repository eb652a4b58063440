//! How a peer is reached: a [`Dialer`] opens a byte stream to one of its
//! addresses, and the peer client runs mutual TLS and HTTP on top.
//!
//! [`Direct`] dials `host:port` over TCP; [`Relayed`] reaches a peer
//! through a relay (`relay://HOST:PORT`, see [`shoal_relay`]). Because TLS runs end to end over
//! whatever stream a dialer hands back, a dialer can never change who a
//! peer is: the pinned key decides that, and a stream that reaches the
//! wrong peer fails the handshake.

use std::io;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use shoal_core::{Identity, PeerId};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer (TCP, or a pipe through a relay).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A stream a dialer opened.
pub type BoxIo = Box<dyn Io>;

/// One way of reaching peers.
pub trait Dialer: Send + Sync {
    /// What it is, for logs and `--json` ("direct", "relay").
    fn kind(&self) -> &'static str;
    /// Whether it can reach an address of this form.
    fn reaches(&self, addr: &str) -> bool;
    /// Opens a stream to `addr`, where `peer` (when known) should answer.
    /// The caller bounds the time it may take.
    fn dial<'a>(&'a self, peer: Option<PeerId>, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>>;
}

/// TCP to `host:port` (an IP address, or a name the system resolves).
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl Dialer for Direct {
    fn kind(&self) -> &'static str {
        "direct"
    }

    fn reaches(&self, addr: &str) -> bool {
        !addr.contains("://")
    }

    fn dial<'a>(&'a self, _: Option<PeerId>, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxIo)
        })
    }
}

/// Through the relay at `relay://HOST:PORT`, proving `identity`'s key to
/// it. The relay only pipes bytes: TLS to the peer runs end to end.
pub struct Relayed {
    identity: Arc<Identity>,
}

impl Relayed {
    /// A dialer that presents `identity` to relays.
    pub fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

impl Dialer for Relayed {
    fn kind(&self) -> &'static str {
        "relay"
    }

    fn reaches(&self, addr: &str) -> bool {
        addr.starts_with(shoal_core::wire::RELAY_SCHEME)
    }

    fn dial<'a>(&'a self, peer: Option<PeerId>, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let peer = peer.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a relay reaches a peer by its id, and none is known here",
                )
            })?;
            let s = shoal_relay::client::connect(addr, &self.identity, peer).await?;
            Ok(Box::new(s) as BoxIo)
        })
    }
}
