//! The relay's handshake: a magic line, a challenge, a signed hello, an
//! answer, then raw bytes (see the crate docs).

use serde::{Deserialize, Serialize};
use shoal_core::{Identity, PeerId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a client sends first.
pub const MAGIC: &[u8; 14] = b"SHOAL-RELAY/1\n";
/// Largest handshake frame.
pub const MAX_FRAME: usize = 1024;
/// Bytes of a challenge.
pub const NONCE_LEN: usize = 32;

/// One handshake message: a big-endian `u16` length, then JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Frame {
    /// Relay → client: sign this.
    Challenge {
        /// [`NONCE_LEN`] random bytes, hex.
        nonce: String,
    },
    /// Client → relay: who I am and what I want, signed over the challenge.
    Hello {
        /// The client's key.
        peer_id: PeerId,
        /// What it asks for.
        role: Role,
        /// Ed25519 signature of [`transcript`], hex.
        sig: String,
    },
    /// Relay → client: granted; for `connect` and `accept`, the pipe
    /// starts with the next byte.
    Ok,
    /// Relay → client: not granted, and why.
    Refused {
        /// For a person.
        error: String,
    },
    /// Relay → listener: someone wants a pipe; accept it with this token.
    Invite {
        /// Names the waiting pipe.
        token: u64,
    },
    /// Relay → listener: still there?
    Ping,
    /// Listener → relay: yes.
    Pong,
}

/// What a client asks of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "as", rename_all = "snake_case")]
pub enum Role {
    /// Keep this connection to be told of pipes to me.
    Listen,
    /// Pipe this connection to that peer.
    Connect {
        /// The peer to reach.
        to: PeerId,
    },
    /// This connection is my end of the pipe I was invited to.
    Accept {
        /// From the invite.
        token: u64,
    },
}

/// What a hello's signature covers: the challenge and the role.
pub fn transcript(nonce: &[u8; NONCE_LEN], role: &Role) -> Vec<u8> {
    let mut t = b"shoal relay hello v1\0".to_vec();
    t.extend_from_slice(nonce);
    match role {
        Role::Listen => t.push(b'L'),
        Role::Connect { to } => {
            t.push(b'C');
            t.extend_from_slice(to.as_bytes());
        }
        Role::Accept { token } => {
            t.push(b'A');
            t.extend_from_slice(&token.to_be_bytes());
        }
    }
    t
}

/// A hello for `role`, signed by `me` over `nonce`.
pub fn hello(me: &Identity, nonce: &[u8; NONCE_LEN], role: Role) -> Frame {
    Frame::Hello {
        peer_id: me.peer_id(),
        role,
        sig: hex::encode(me.sign(&transcript(nonce, &role))),
    }
}

/// Whether `sig` (hex) is `peer`'s signature of the hello for `role`.
pub fn verify(peer: &PeerId, nonce: &[u8; NONCE_LEN], role: &Role, sig: &str) -> bool {
    let mut s = [0u8; 64];
    hex::decode_to_slice(sig, &mut s).is_ok() && peer.verify(&transcript(nonce, role), &s).is_ok()
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads one frame (exactly its bytes, nothing after it).
pub async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Frame> {
    let mut len = [0u8; 2];
    io.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_FRAME {
        return Err(bad(format!(
            "a handshake frame of {len} bytes (at most {MAX_FRAME})"
        )));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| bad(format!("not a relay handshake frame: {e}")))
}

/// Writes one frame.
pub async fn write_frame(io: &mut (impl AsyncWrite + Unpin), frame: &Frame) -> std::io::Result<()> {
    let json = serde_json::to_vec(frame).map_err(|e| bad(e.to_string()))?;
    let len = u16::try_from(json.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_FRAME)
        .ok_or_else(|| bad("a handshake frame too large to send"))?;
    let mut out = Vec::with_capacity(json.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    io.write_all(&out).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_signs_the_challenge_and_the_role() {
        let me = Identity::from_seed([1; 32]);
        let other = Identity::from_seed([2; 32]).peer_id();
        let nonce = [7u8; NONCE_LEN];
        let role = Role::Connect { to: other };
        let Frame::Hello { peer_id, sig, .. } = hello(&me, &nonce, role) else {
            unreachable!()
        };
        assert!(verify(&peer_id, &nonce, &role, &sig));
        assert!(
            !verify(&peer_id, &[8u8; NONCE_LEN], &role, &sig),
            "another challenge"
        );
        assert!(
            !verify(&peer_id, &nonce, &Role::Listen, &sig),
            "another role"
        );
        assert!(!verify(&other, &nonce, &role, &sig), "another key");
        assert!(!verify(&peer_id, &nonce, &role, "zz"), "junk");
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        write_frame(&mut a, &Frame::Invite { token: 9 })
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Frame::Invite { token: 9 }
        );
        a.write_all(&2000u16.to_be_bytes()).await.unwrap();
        assert!(read_frame(&mut b).await.is_err());
    }
}
