//! Who a peer is: an Ed25519 key pair, and the PeerId that names it.
//!
//! The PeerId *is* the public key, so anyone holding a PeerId can check a
//! signature or a TLS certificate against it without asking anybody.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A peer's public Ed25519 key, written as 52 lowercase base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 32]);

/// A string that is not a PeerId.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{shown}` is not a peer id: expected 52 base32 characters (a-z, 2-7)")]
pub struct PeerIdError {
    /// The offending input, cut short if long.
    pub shown: String,
}

/// A signature did not verify against the PeerId it claims.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("signature does not match peer id {0}")]
pub struct SignatureError(pub PeerId);

impl PeerId {
    /// Length of the textual form.
    pub const TEXT_LEN: usize = 52;

    /// Wraps the raw public key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw public key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 characters: enough for a person to tell peers apart.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }

    /// Checks an Ed25519 signature of `msg` made by this peer.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), SignatureError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError(*self))?;
        key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .map_err(|_| SignatureError(*self))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PeerIdError {
            shown: s.chars().take(80).collect(),
        };
        if s.len() != Self::TEXT_LEN || !s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')) {
            return Err(err());
        }
        let bytes = BASE32_NOPAD
            .decode(s.to_ascii_uppercase().as_bytes())
            .map_err(|_| err())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| err())?;
        // Canonical form only: one id, one spelling.
        let id = Self(bytes);
        if id.to_string() != s {
            return Err(err());
        }
        Ok(id)
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's secret key. Created on first use, kept in the data dir (mode 0600).
pub struct Identity {
    key: SigningKey,
}

/// The identity file could not be read, created or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("cannot {action} identity key {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but is not an Ed25519 PKCS#8 key.
    #[error(
        "identity key {path} is not an Ed25519 private key (PKCS#8 PEM); move it away to create a new identity"
    )]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// Others may read the key file.
    #[error(
        "identity key {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its current mode bits.
        mode: u32,
    },
    /// The system random generator failed.
    #[error("no randomness available to create a key")]
    Random,
}

impl crate::HasKind for IdentityError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            IdentityError::Random => crate::ErrorKind::Internal,
            _ => crate::ErrorKind::File,
        }
    }
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|_| IdentityError::Random)?;
        Ok(Self::from_seed(seed))
    }

    /// The identity with this secret seed (tests and key import).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Loads `identity.key` from `dir`, creating the dir and the key if missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(crate::IDENTITY_FILE);
        let io = |action, source| IdentityError::Io {
            action,
            path: path.clone(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(pem) => {
                check_private(&path)?;
                let key = SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|_| IdentityError::Malformed { path: path.clone() })?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
                let id = Self::generate()?;
                let pem = id
                    .key
                    .to_pkcs8_pem(Default::default())
                    .map_err(|_| IdentityError::Random)?;
                write_private(&path, pem.as_bytes()).map_err(|e| io("write", e))?;
                Ok(id)
            }
            Err(e) => Err(io("read", e)),
        }
    }

    /// This identity's public PeerId.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.key.verifying_key().to_bytes())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// The private key as PKCS#8 DER, for building TLS certificates.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        // Encoding a valid Ed25519 key cannot fail; an empty key makes TLS
        // setup fail loudly instead of panicking here.
        self.key
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The 32-byte secret seed (for deriving other keys, e.g. age identities).
    pub fn secret_seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.peer_id())
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| IdentityError::Io {
            action: "inspect",
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), IdentityError> {
    Ok(())
}

/// Writes a secret file atomically, readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use shoal_fs::durable::{Replace, replace};
    replace(
        path,
        data,
        Replace {
            private: true,
            sync: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_round_trips_as_52_lowercase_chars() {
        let id = Identity::from_seed([7; 32]).peer_id();
        let s = id.to_string();
        assert_eq!(s.len(), 52);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(s.parse::<PeerId>().unwrap(), id);
        assert!(s.to_uppercase().parse::<PeerId>().is_err());
        assert!(s[..51].parse::<PeerId>().is_err());
        assert!(format!("{s}a").parse::<PeerId>().is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_key() {
        let a = Identity::from_seed([1; 32]);
        let b = Identity::from_seed([2; 32]);
        let sig = a.sign(b"hello");
        assert!(a.peer_id().verify(b"hello", &sig).is_ok());
        assert!(a.peer_id().verify(b"hellO", &sig).is_err());
        assert!(b.peer_id().verify(b"hello", &sig).is_err());
    }

    #[test]
    fn key_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(crate::IDENTITY_FILE);
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                Identity::load_or_create(dir.path()),
                Err(IdentityError::Permissions { .. })
            ));
        }
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write_private(&dir.path().join(crate::IDENTITY_FILE), b"nonsense").unwrap();
        assert!(matches!(
            Identity::load_or_create(dir.path()),
            Err(IdentityError::Malformed { .. })
        ));
    }
}
