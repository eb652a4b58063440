//! Kinds of failure, shared so that every crate's errors map to one exit code each.

/// What went wrong, in the terms a user acts on. The CLI turns each kind into
/// its own exit code and a hint about what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The command line or configuration is wrong.
    Usage,
    /// A peer or the tracker could not be reached, or the connection broke.
    Network,
    /// The peer, file or content asked for does not exist.
    NotFound,
    /// A token or certificate was missing or wrong, or access was refused.
    Authentication,
    /// Bytes did not match the content id they were promised under.
    Integrity,
    /// The other side spoke something that is not the Shoal protocol.
    Protocol,
    /// A local file or folder could not be read or written.
    File,
    /// The target already exists and was left alone.
    Conflict,
    /// An encrypted file could not be opened: wrong passphrase, not meant
    /// for this peer, or not an encrypted file at all.
    Decryption,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind (documented in the README).
    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Network => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Authentication => 5,
            ErrorKind::Integrity => 6,
            ErrorKind::Protocol => 7,
            ErrorKind::File => 8,
            ErrorKind::Conflict => 9,
            ErrorKind::Decryption => 10,
        }
    }
}

/// Implemented by every library error so the binary can classify it.
pub trait HasKind {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}
