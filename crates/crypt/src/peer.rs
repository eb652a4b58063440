//! Encrypting to a peer: its Ed25519 key used as an age `ssh-ed25519`
//! recipient, so a file can be meant for one peer with no password, and
//! the standard `age` tool (with the same key in OpenSSH form) agrees.
//!
//! The stanza is age's `ssh-ed25519` one: the Ed25519 public key is mapped
//! to X25519, an ephemeral X25519 share is combined with a tweak derived
//! from the key, and the file key is wrapped with ChaCha20-Poly1305 under
//! an HKDF-SHA-256 key. The identity side derives the X25519 secret from
//! the Ed25519 seed (SHA-512, first half), as OpenSSH keys do.

use std::collections::HashSet;

use age::{DecryptError, EncryptError};
use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::primitives::{aead_decrypt, aead_encrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use data_encoding::BASE64_NOPAD;
use sha2::{Digest, Sha256, Sha512};
use shoal_core::{Identity, PeerId};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::CryptError;

const TAG: &str = "ssh-ed25519";
const LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";
/// A wrapped file key: 16 bytes and a 16-byte tag.
const WRAPPED_LEN: usize = FILE_KEY_BYTES + 16;

/// The SSH wire form of an Ed25519 public key: `string "ssh-ed25519"`,
/// `string key`.
fn ssh_wire(key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(51);
    for part in [TAG.as_bytes(), key.as_slice()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The first four bytes of the SHA-256 of the wire key, base64: lets an
/// identity skip stanzas that are not for it.
fn key_tag(wire: &[u8]) -> String {
    BASE64_NOPAD.encode(&Sha256::digest(wire)[..4])
}

/// A peer's public key as an age recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerKey {
    ed25519: [u8; 32],
    wire: Vec<u8>,
    x25519: [u8; 32],
}

impl PeerKey {
    /// The key of the peer with id `peer`.
    pub fn of_peer(peer: &PeerId) -> Result<Self, CryptError> {
        Self::from_ed25519(*peer.as_bytes())
    }

    fn from_ed25519(key: [u8; 32]) -> Result<Self, CryptError> {
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|_| CryptError::BadRecipient("not a valid Ed25519 public key".into()))?;
        Ok(Self {
            ed25519: key,
            wire: ssh_wire(&key),
            x25519: verifying.to_montgomery().to_bytes(),
        })
    }

    /// Parses an OpenSSH public key line: `ssh-ed25519 AAAA... [comment]`.
    pub fn from_ssh(line: &str) -> Result<Self, CryptError> {
        let bad = |why: &str| CryptError::BadRecipient(format!("{why}: {line:.80}"));
        let mut parts = line.split_whitespace();
        if parts.next() != Some(TAG) {
            return Err(bad("only ssh-ed25519 keys can be recipients"));
        }
        let blob = parts
            .next()
            .and_then(|b| data_encoding::BASE64.decode(b.as_bytes()).ok())
            .ok_or_else(|| bad("the key is not valid base64"))?;
        let key: [u8; 32] = blob
            .get(19..)
            .and_then(|k| k.try_into().ok())
            .filter(|k| ssh_wire(k) == blob)
            .ok_or_else(|| bad("not an ssh-ed25519 key"))?;
        Self::from_ed25519(key)
    }

    /// The OpenSSH public key line for this key.
    pub fn to_ssh(&self) -> String {
        format!("{TAG} {}", data_encoding::BASE64.encode(&self.wire))
    }

    /// The PeerId with this key.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_bytes(self.ed25519)
    }
}

fn random_secret() -> Result<StaticSecret, EncryptError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| EncryptError::Io(std::io::Error::other(e)))?;
    let secret = StaticSecret::from(bytes);
    bytes.zeroize();
    Ok(secret)
}

impl age::Recipient for PeerKey {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let pk = PublicKey::from(self.x25519);
        let esk = random_secret()?;
        let epk = PublicKey::from(&esk);
        let tweak = StaticSecret::from(hkdf(&self.wire, LABEL, &[]));
        let shared = tweak.diffie_hellman(&PublicKey::from(*esk.diffie_hellman(&pk).as_bytes()));
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(epk.as_bytes());
        salt[32..].copy_from_slice(pk.as_bytes());
        let key = hkdf(&salt, LABEL, shared.as_bytes());
        let body = aead_encrypt(&key, file_key.expose_secret());
        Ok((
            vec![Stanza {
                tag: TAG.to_owned(),
                args: vec![key_tag(&self.wire), BASE64_NOPAD.encode(epk.as_bytes())],
                body,
            }],
            HashSet::new(),
        ))
    }
}

/// This node's own key as an age identity: opens files encrypted to it.
pub struct PeerIdentity {
    wire: Vec<u8>,
    secret: StaticSecret,
}

impl PeerIdentity {
    /// The identity of `identity`'s key.
    pub fn new(identity: &Identity) -> Self {
        let mut seed = identity.secret_seed();
        let mut hash = Sha512::digest(seed);
        let mut sk = [0u8; 32];
        sk.copy_from_slice(&hash[..32]);
        let secret = StaticSecret::from(sk);
        seed.zeroize();
        sk.zeroize();
        hash.as_mut_slice().zeroize();
        Self {
            wire: ssh_wire(identity.peer_id().as_bytes()),
            secret,
        }
    }
}

impl age::Identity for PeerIdentity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        if stanza.tag != TAG || stanza.args.first()? != &key_tag(&self.wire) {
            return None;
        }
        if stanza.body.len() != WRAPPED_LEN {
            return Some(Err(DecryptError::InvalidHeader));
        }
        let epk: [u8; 32] = match stanza
            .args
            .get(1)
            .and_then(|a| BASE64_NOPAD.decode(a.as_bytes()).ok())
            .and_then(|b| b.try_into().ok())
        {
            Some(e) => e,
            None => return Some(Err(DecryptError::InvalidHeader)),
        };
        let epk = PublicKey::from(epk);
        let pk = PublicKey::from(&self.secret);
        let tweak = StaticSecret::from(hkdf(&self.wire, LABEL, &[]));
        let shared = tweak.diffie_hellman(&PublicKey::from(
            *self.secret.diffie_hellman(&epk).as_bytes(),
        ));
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(epk.as_bytes());
        salt[32..].copy_from_slice(pk.as_bytes());
        let key = hkdf(&salt, LABEL, shared.as_bytes());
        Some(
            aead_decrypt(&key, FILE_KEY_BYTES, &stanza.body)
                .map_err(DecryptError::from)
                .map(|mut plain| {
                    FileKey::init_with_mut(|k| {
                        k.copy_from_slice(&plain);
                        plain.zeroize();
                    })
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_lines_round_trip_and_match_the_peer_id() {
        let id = Identity::from_seed([7; 32]);
        let key = PeerKey::of_peer(&id.peer_id()).unwrap();
        let line = key.to_ssh();
        assert!(
            line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"),
            "{line}"
        );
        let back = PeerKey::from_ssh(&format!("{line} someone@host")).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.peer_id(), id.peer_id());
        for bad in [
            "",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            "ssh-ed25519",
            "ssh-ed25519 !!!",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
        ] {
            assert!(PeerKey::from_ssh(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn age_crate_test_vector_key_parses() {
        // The ssh-ed25519 test key from the age crate's own tests.
        let k = PeerKey::from_ssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust",
        )
        .unwrap();
        assert_eq!(
            k.to_ssh(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN"
        );
    }
}
