//! Where a running node listens, recorded in its data dir
//! ([`LISTENING_FILE`]), so commands on that data dir (`shoal link`) can
//! say how to reach it without asking a tracker.
//!
//! The node writes the record when it starts and removes it when it shuts
//! down; a record left by a node that crashed is told apart by the data
//! dir's database, which a running node keeps locked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_core::{ContentId, Link, PeerId};

use crate::error::{NodeError, Result};

/// The record's file name in a data dir.
pub const LISTENING_FILE: &str = "listening.json";

/// Most addresses a record (and so a link) carries.
const MAX_ADDRS: usize = shoal_core::link::MAX_ADDRS;

/// What a running node recorded about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Addresses others may dial, the most widely reachable first.
    pub addrs: Vec<String>,
    /// Its share folders, as given.
    pub shares: Vec<PathBuf>,
}

impl Listening {
    /// The record of a node of `peer_id` bound to `bound` sharing `shares`:
    /// an unspecified address (`0.0.0.0`, `::`) stands for every address of
    /// this machine's interfaces, non-loopback ones first.
    pub fn new(peer_id: PeerId, bound: SocketAddr, shares: &[PathBuf]) -> Self {
        let port = bound.port();
        let addrs = if bound.ip().is_unspecified() {
            let mut ips: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
                .map(|l| l.into_iter().map(|i| i.ip()).collect())
                .unwrap_or_default();
            // Only the family the socket takes (a `::` socket may take
            // both, but v4 first reads better).
            ips.retain(|ip| bound.is_ipv6() || ip.is_ipv4());
            ips.retain(|ip| !matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80));
            ips.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
            ips.dedup();
            if ips.is_empty() {
                ips.push(std::net::Ipv4Addr::LOCALHOST.into());
            }
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, port).to_string())
                .take(MAX_ADDRS)
                .collect()
        } else {
            vec![bound.to_string()]
        };
        Self {
            peer_id,
            addrs,
            shares: shares.to_vec(),
        }
    }

    /// Writes the record into `data_dir`.
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join(LISTENING_FILE);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| NodeError::Internal(format!("cannot encode {LISTENING_FILE}: {e}")))?;
        shoal_fs::durable::replace(&path, &json, shoal_fs::durable::Replace::default())
            .map_err(NodeError::file("write", &path))
    }

    /// Removes the record from `data_dir` (a node shutting down).
    pub fn remove(data_dir: &Path) {
        let _ = std::fs::remove_file(data_dir.join(LISTENING_FILE));
    }

    /// The record of the node running on `data_dir`, if one runs.
    pub fn of_running(data_dir: &Path) -> Result<Option<Self>> {
        let path = data_dir.join(LISTENING_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NodeError::file("read", &path)(e)),
        };
        // A record the node left when it crashed: the database is free.
        match crate::db::NodeDb::open(data_dir) {
            Err(NodeError::DataDirInUse(_)) => {}
            _ => return Ok(None),
        }
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| NodeError::Settings(format!("{} cannot be read: {e}", path.display())))
    }

    /// A link to `file`, which must be in one of the shares: its content
    /// id is computed here (the file is read once).
    pub fn link(&self, file: &Path) -> Result<Link> {
        let path = std::fs::canonicalize(file).map_err(NodeError::file("find", file))?;
        let meta = std::fs::metadata(&path).map_err(NodeError::file("read", &path))?;
        if !meta.is_file() {
            return Err(NodeError::Settings(format!(
                "{} is not a file; a link names one file",
                path.display()
            )));
        }
        let inside = self
            .shares
            .iter()
            .any(|s| std::fs::canonicalize(s).is_ok_and(|root| path.starts_with(&root)));
        if !inside {
            let shares: Vec<String> = self
                .shares
                .iter()
                .map(|s| s.display().to_string())
                .collect();
            return Err(NodeError::Settings(format!(
                "{} is not in this node's shares ({}); a link works only for a file the node shares",
                path.display(),
                shares.join(", ")
            )));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| NodeError::UnsafeName(path.display().to_string()))?;
        let content_id: ContentId =
            crate::index::hash_file(&path).map_err(NodeError::file("read", &path))?;
        Ok(Link {
            content_id,
            size: meta.len(),
            name,
            peer: self.peer_id,
            addrs: self.addrs.clone(),
        })
    }
}
