//! Errors of the node library, each mapped to a [`ErrorKind`].

use std::path::PathBuf;

use shoal_core::{ContentId, ErrorKind, HasKind, PeerId};

/// Anything that can go wrong in a node, a download or a tracker call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The tracker could not be reached or answered with a server error.
    #[error("cannot reach the tracker at {url}: {reason}")]
    TrackerUnreachable {
        /// Tracker URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The tracker refused a request.
    #[error("the tracker at {url} refused the request ({status}): {message}")]
    TrackerRefused {
        /// Tracker URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The tracker's explanation.
        message: String,
    },
    /// A peer could not be reached at any of its addresses.
    #[error("cannot reach peer {peer} ({name}) at {addrs}: {reason}")]
    PeerUnreachable {
        /// The peer.
        peer: PeerId,
        /// Its name.
        name: String,
        /// Addresses tried.
        addrs: String,
        /// The last failure.
        reason: String,
    },
    /// The peer at the address is not the one asked for.
    #[error("{0}")]
    WrongPeer(#[from] crate::tls::WrongPeer),
    /// A peer answered with an error status.
    #[error("peer {peer} answered {status}: {message}")]
    PeerRefused {
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
    #[error("node database {path}: {reason}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What failed.
        reason: String,
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
    /// A tracker URL that is not one.
    #[error("`{url}` is not a tracker URL: {reason}")]
    BadTrackerUrl {
        /// What was given, escaped.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
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
        NodeError::PeerUnreachable {
            peer: peer.peer_id,
            name: peer.name.clone(),
            addrs: peer.addrs.join(", "),
            reason: reason.into(),
        }
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

impl HasKind for NodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            NodeError::TrackerUnreachable { .. }
            | NodeError::PeerUnreachable { .. }
            | NodeError::Listen { .. } => ErrorKind::Network,
            NodeError::BadTrackerUrl { .. } | NodeError::BadName { .. } => ErrorKind::Usage,
            NodeError::TrackerRefused { status, .. } | NodeError::PeerRefused { status, .. } => {
                match status {
                    401 | 403 => ErrorKind::Authentication,
                    404 => ErrorKind::NotFound,
                    _ => ErrorKind::Protocol,
                }
            }
            NodeError::WrongPeer(_) | NodeError::NameChanged { .. } => ErrorKind::Authentication,
            NodeError::Protocol { .. } => ErrorKind::Protocol,
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
