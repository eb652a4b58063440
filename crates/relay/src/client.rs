//! A peer's side of the relay: [`connect`] to a peer through it,
//! [`listen`] for pipes to oneself, [`accept`] one.

use std::time::Duration;

use shoal_core::{Identity, PeerId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::proto::{self, Frame, NONCE_LEN, Role};

/// Longest the handshake with a relay may take (for `connect`, the
/// other peer's acceptance included).
pub const HANDSHAKE_BUDGET: Duration = Duration::from_secs(15);
/// A listener that hears nothing from its relay this long (the relay
/// pings more often) takes it for gone.
pub const SILENCE: Duration = Duration::from_secs(60);

/// What went wrong with a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The relay could not be reached, or the connection broke.
    #[error("relay {relay}: {source}")]
    Io {
        /// The relay's address.
        relay: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The relay said no.
    #[error("relay {relay} refused: {reason}")]
    Refused {
        /// The relay's address.
        relay: String,
        /// Its reason, escaped and cut for showing.
        reason: String,
    },
    /// It did not speak the relay protocol.
    #[error("relay {relay}: {reason}")]
    Protocol {
        /// The relay's address.
        relay: String,
        /// What was wrong.
        reason: String,
    },
}

impl RelayError {
    fn io(relay: &str, source: std::io::Error) -> Self {
        Self::Io {
            relay: relay.to_owned(),
            source,
        }
    }

    fn protocol(relay: &str, reason: impl Into<String>) -> Self {
        Self::Protocol {
            relay: relay.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<RelayError> for std::io::Error {
    fn from(e: RelayError) -> Self {
        match e {
            RelayError::Io { source, .. } => source,
            other => std::io::Error::new(std::io::ErrorKind::ConnectionRefused, other.to_string()),
        }
    }
}

/// `host:port` of a relay given as `relay://host:port` or `host:port`.
pub fn host_port(relay: &str) -> &str {
    relay
        .strip_prefix(shoal_core::wire::RELAY_SCHEME)
        .unwrap_or(relay)
}

/// Opens a connection to `relay` and asks it for `role` as `me`.
async fn open(relay: &str, me: &Identity, role: Role) -> Result<TcpStream, RelayError> {
    let shown = shoal_core::text::bounded(relay, 100);
    let relay = host_port(relay);
    let io = |e| RelayError::io(&shown, e);
    let steps = async {
        let mut s = TcpStream::connect(relay).await.map_err(io)?;
        s.set_nodelay(true).map_err(io)?;
        s.write_all(proto::MAGIC).await.map_err(io)?;
        let nonce = match proto::read_frame(&mut s).await.map_err(io)? {
            Frame::Challenge { nonce } => {
                let mut n = [0u8; NONCE_LEN];
                hex::decode_to_slice(&nonce, &mut n)
                    .map_err(|_| RelayError::protocol(&shown, "its challenge is not valid"))?;
                n
            }
            _ => return Err(RelayError::protocol(&shown, "it sent no challenge")),
        };
        proto::write_frame(&mut s, &proto::hello(me, &nonce, role))
            .await
            .map_err(io)?;
        match proto::read_frame(&mut s).await.map_err(io)? {
            Frame::Ok => Ok(s),
            Frame::Refused { error } => Err(RelayError::Refused {
                relay: shown.clone(),
                reason: shoal_core::text::bounded(&error, 200),
            }),
            _ => Err(RelayError::protocol(&shown, "it answered out of turn")),
        }
    };
    tokio::time::timeout(HANDSHAKE_BUDGET, steps)
        .await
        .unwrap_or_else(|_| {
            Err(RelayError::io(
                &shown,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no pipe within {}s", HANDSHAKE_BUDGET.as_secs()),
                ),
            ))
        })
}

/// A pipe to `to` through `relay`, as `me`. TLS to the peer runs over it
/// end to end; the relay sees only ciphertext.
pub async fn connect(relay: &str, me: &Identity, to: PeerId) -> Result<TcpStream, RelayError> {
    open(relay, me, Role::Connect { to }).await
}

/// My end of the pipe the invite `token` named.
pub async fn accept(relay: &str, me: &Identity, token: u64) -> Result<TcpStream, RelayError> {
    open(relay, me, Role::Accept { token }).await
}

/// A standing connection to a relay that tells of pipes wanted to me.
pub struct Listener {
    relay: String,
    stream: TcpStream,
}

/// Starts listening on `relay` as `me`.
pub async fn listen(relay: &str, me: &Identity) -> Result<Listener, RelayError> {
    let stream = open(relay, me, Role::Listen).await?;
    Ok(Listener {
        relay: shoal_core::text::bounded(relay, 100),
        stream,
    })
}

impl Listener {
    /// The next invite's token; answers pings meanwhile. Fails when the
    /// relay goes away or stays silent for [`SILENCE`].
    pub async fn invite(&mut self) -> Result<u64, RelayError> {
        loop {
            let frame = tokio::time::timeout(SILENCE, proto::read_frame(&mut self.stream))
                .await
                .map_err(|_| {
                    RelayError::io(
                        &self.relay,
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("silent for {}s", SILENCE.as_secs()),
                        ),
                    )
                })?
                .map_err(|e| RelayError::io(&self.relay, e))?;
            match frame {
                Frame::Invite { token } => return Ok(token),
                Frame::Ping => proto::write_frame(&mut self.stream, &Frame::Pong)
                    .await
                    .map_err(|e| RelayError::io(&self.relay, e))?,
                _ => {
                    return Err(RelayError::protocol(
                        &self.relay,
                        "it sent an unexpected frame",
                    ));
                }
            }
        }
    }
}
