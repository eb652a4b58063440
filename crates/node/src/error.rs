//! Errors of the node library, each mapped to a [`ErrorKind`].
//!
//! Each kind of operation has its own error type: [`TrackerError`] for
//! calls to a tracker, [`PeerError`] for calls to a peer, and
//! [`NodeError`] for what a node and a download do, which wraps the other
//! two. Causes are kept as `source`s (the HTTP client's, the socket's, the
//! file system's, the database's), not flattened into text; a message
//! that already says its innermost cause in a few words says so
//! ([`NodeError::says_its_cause`]), so a front end can show the chain below
//! it only when asked. Messages never name CLI flags: hints about flags
//! belong to the binary.

use std::path::PathBuf;

use shoal_core::{ContentId, ErrorKind, HasKind, PeerId};

/// A cause kept as an error's `source`: what a lower layer (the HTTP
/// client, TLS, the OS) reported, for whoever walks the chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong talking to a tracker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// The tracker could not be reached or answered with a server error.
    #[error("cannot reach the tracker at {url}: {reason}")]
    Unreachable {
        /// Tracker URL.
        url: String,
        /// What failed, in a few words (the innermost cause).
        reason: String,
        /// The transport's error, if there was one.
        #[source]
        source: Option<Cause>,
    },
    /// The tracker refused a request.
    #[error("the tracker at {url} refused the request ({status}): {message}")]
    Refused {
        /// Tracker URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The tracker's explanation.
        message: String,
    },
    /// A tracker URL that is not one.
    #[error("`{url}` is not a tracker URL: {reason}")]
    BadUrl {
        /// What was given, escaped.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What can go wrong talking to a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A peer could not be reached at any of its addresses, or the
    /// connection broke.
    #[error("cannot reach peer {peer} ({name}) at {addrs}: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Its name.
        name: String,
        /// Addresses tried.
        addrs: String,
        /// The last failure, in a few words.
        reason: String,
        /// The transport's error, if there was one.
        #[source]
        source: Option<Cause>,
    },
    /// Nobody proved a key at an address a peer was known by alone (a
    /// provider the DHT reported).
    #[error("cannot learn who listens at {addr}: {reason}")]
    Unidentified {
        /// The address dialled.
        addr: String,
        /// What failed, in a few words.
        reason: String,
        /// The transport's error, if there was one.
        #[source]
        source: Option<Cause>,
    },
    /// The peer at the address is not the one asked for.
    #[error(transparent)]
    WrongPeer(#[from] crate::tls::WrongPeer),
    /// A peer answered with an error status.
    #[error("peer {peer} answered {status}: {message}")]
    Refused {
        /// The peer.
        peer: PeerId,
        /// HTTP status.
        status: u16,
        /// Its explanation.
        message: String,
    },
    /// A peer broke the protocol (wrong length, bad JSON, ...).
    #[error("peer {peer} broke the protocol: {reason}")]
    Protocol {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        reason: String,
    },
}

/// Anything that can go wrong in a node, a download or a tracker call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A tracker call failed.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// A call to a peer failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// No peer matches the given name or id prefix.
    #[error("no peer called `{query}` is known{hint}")]
    UnknownPeer {
        /// What the user typed.
        query: String,
        /// A hint about where we looked.
        hint: String,
    },
    /// Several peers match.
    #[error("`{query}` matches several peers: {candidates}; use more of the peer id")]
    AmbiguousPeer {
        /// What the user typed.
        query: String,
        /// The matches.
        candidates: String,
    },
    /// A folder download left out files whose names cannot be used here.
    #[error(
        "{count} file(s) of the folder were skipped because their names cannot be used here (for example `{example}`); the rest is in {}", folder.display()
    )]
    SkippedNames {
        /// How many.
        count: usize,
        /// One of them, escaped.
        example: String,
        /// Where the rest went.
        folder: PathBuf,
    },
    /// A pinned name now belongs to another key.
    #[error(
        "the name `{name}` was pinned to peer {pinned} when you first used it, but now belongs to {now}; \
         this may be someone else using the name. If its owner really has a new key, use the full peer id {now} once, which moves the pin"
    )]
    NameChanged {
        /// The name.
        name: String,
        /// The key it was pinned to.
        pinned: PeerId,
        /// The key that now uses it.
        now: PeerId,
    },
    /// The file is not in the peer's listing.
    #[error(
        "peer {peer} shares no file `{path}`; run `shoal ls {peer_short}` to see what it shares"
    )]
    NoSuchFile {
        /// The peer.
        peer: PeerId,
        /// Its short id.
        peer_short: String,
        /// The path asked for.
        path: String,
    },
    /// Nobody provides a content id.
    #[error("no live peer provides content {0}")]
    NoProvider(ContentId),
    /// Received bytes do not hash to the promised content id.
    #[error(
        "downloaded bytes do not match content id {expected} (got {actual}); the peer sent bad data, nothing was kept"
    )]
    Integrity {
        /// The content id asked for.
        expected: ContentId,
        /// What arrived.
        actual: ContentId,
    },
    /// A piece did not match the content id.
    #[error(
        "peer {name} ({peer}) sent a piece ({piece}) that does not match the content id; it was discarded and nothing bad was written"
    )]
    BadPiece {
        /// The peer.
        peer: PeerId,
        /// Its name.
        name: String,
        /// The piece index.
        piece: u64,
    },
    /// Every peer that could serve the download is banned.
    #[error(
        "peer {name} ({peer}) is banned until {until} (Unix time) for sending bad data, and no other peer has the content; \
         wait, or remove reputation.redb from the data dir to forgive every peer"
    )]
    Banned {
        /// The peer.
        peer: PeerId,
        /// Its name.
        name: String,
        /// Unix seconds when the ban ends.
        until: u64,
    },
    /// A partial download belongs to other content than the one asked for now.
    #[error(
        "{part} holds part of content {had}, but the file is now {now}; remove it (and its .state) to start over"
    )]
    ChangedSource {
        /// The partial file.
        part: PathBuf,
        /// The content it holds part of.
        had: ContentId,
        /// The content asked for now.
        now: ContentId,
    },
    /// The target file exists.
    #[error("{0} already exists; it was left as it is")]
    Exists(PathBuf),
    /// A name from a peer cannot be used as a local file name.
    #[error("`{0}` cannot be used as a local file name")]
    UnsafeName(String),
    /// A local file operation failed.
    #[error("cannot {action} {path}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process (a running node) has the data dir's database open.
    #[error(
        "node database {0} is already in use by another shoal node; each node needs a data dir of its own"
    )]
    DataDirInUse(PathBuf),
    /// The embedded database failed.
    #[error("node database {}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: Box<redb::Error>,
    },
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    /// Something else went wrong.
    #[error("{0}")]
    Internal(String),
    /// A setting (flag or config.toml) cannot be used.
    #[error("{0}")]
    Settings(String),
    /// A peer name this node cannot use.
    #[error("the peer name `{name}` cannot be used: {reason}")]
    BadName {
        /// The name, escaped.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An address to listen on cannot be had.
    #[error("cannot listen on {addr}: {}", listen_reason(source))]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The download was paused or cancelled before it finished.
    #[error("the download was stopped before it finished; what arrived is kept for a resume")]
    Stopped,
}

fn listen_reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address in use (another program, or another shoal node, listens there)"
        }
        std::io::ErrorKind::AddrNotAvailable => "no such address on this machine",
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)"
        }
        _ => "the system refused",
    }
}

impl NodeError {
    /// Binding `addr` failed.
    pub fn listen(addr: std::net::SocketAddr, source: std::io::Error) -> Self {
        NodeError::Listen { addr, source }
    }

    /// `peer` could not be reached, or the connection to it broke.
    pub(crate) fn unreachable(
        peer: &shoal_core::wire::PeerRecord,
        reason: impl Into<String>,
    ) -> Self {
        Self::unreachable_by(peer, reason, None)
    }

    /// [`NodeError::unreachable`], keeping the transport's error.
    pub(crate) fn unreachable_by(
        peer: &shoal_core::wire::PeerRecord,
        reason: impl Into<String>,
        source: Option<Cause>,
    ) -> Self {
        PeerError::Unreachable {
            peer: peer.peer_id,
            name: peer.name.clone(),
            addrs: peer.addrs.join(", "),
            reason: reason.into(),
            source,
        }
        .into()
    }

    /// `peer` broke the protocol.
    pub(crate) fn protocol(peer: PeerId, reason: impl Into<String>) -> Self {
        PeerError::Protocol {
            peer,
            reason: reason.into(),
        }
        .into()
    }

    /// `peer` answered `status`.
    pub(crate) fn refused(peer: PeerId, status: u16, message: impl Into<String>) -> Self {
        PeerError::Refused {
            peer,
            status,
            message: message.into(),
        }
        .into()
    }

    /// The database at `path` failed.
    pub(crate) fn database(path: impl Into<PathBuf>, source: impl Into<redb::Error>) -> Self {
        NodeError::Database {
            path: path.into(),
            source: Box::new(source.into()),
        }
    }

    /// Whether the message already says the innermost cause in a few
    /// words, so that the `source` chain below it (the HTTP client's and
    /// the socket's own errors) is detail a front end shows only when
    /// asked for it.
    pub fn says_its_cause(&self) -> bool {
        matches!(
            self,
            NodeError::Tracker(TrackerError::Unreachable { .. })
                | NodeError::Peer(PeerError::Unreachable { .. })
        )
    }

    pub(crate) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| NodeError::File {
            action,
            path,
            source,
        }
    }
}

impl HasKind for TrackerError {
    fn kind(&self) -> ErrorKind {
        match self {
            TrackerError::Unreachable { .. } => ErrorKind::Network,
            TrackerError::BadUrl { .. } => ErrorKind::Usage,
            TrackerError::Refused { status, .. } => status_kind(*status),
        }
    }
}

impl HasKind for PeerError {
    fn kind(&self) -> ErrorKind {
        match self {
            PeerError::Unreachable { .. } | PeerError::Unidentified { .. } => ErrorKind::Network,
            PeerError::WrongPeer(_) => ErrorKind::Authentication,
            PeerError::Refused { status, .. } => status_kind(*status),
            PeerError::Protocol { .. } => ErrorKind::Protocol,
        }
    }
}

fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Authentication,
        404 => ErrorKind::NotFound,
        _ => ErrorKind::Protocol,
    }
}

impl HasKind for NodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            NodeError::Tracker(e) => e.kind(),
            NodeError::Peer(e) => e.kind(),
            NodeError::Listen { .. } => ErrorKind::Network,
            NodeError::BadName { .. } => ErrorKind::Usage,
            NodeError::NameChanged { .. } => ErrorKind::Authentication,
            NodeError::UnknownPeer { .. }
            | NodeError::NoSuchFile { .. }
            | NodeError::NoProvider(_) => ErrorKind::NotFound,
            NodeError::AmbiguousPeer { .. } | NodeError::Settings(_) => ErrorKind::Usage,
            NodeError::Integrity { .. } | NodeError::BadPiece { .. } | NodeError::Banned { .. } => {
                ErrorKind::Integrity
            }
            NodeError::ChangedSource { .. } => ErrorKind::Conflict,
            NodeError::Exists(_) => ErrorKind::Conflict,
            NodeError::UnsafeName(_) | NodeError::SkippedNames { .. } => ErrorKind::Protocol,
            NodeError::File { .. } | NodeError::Database { .. } | NodeError::DataDirInUse(_) => {
                ErrorKind::File
            }
            NodeError::Tls(_) | NodeError::Internal(_) | NodeError::Stopped => ErrorKind::Internal,
        }
    }
}

/// Result with [`NodeError`].
pub type Result<T, E = NodeError> = std::result::Result<T, E>;
