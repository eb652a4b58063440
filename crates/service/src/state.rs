//! What the service knows at this moment, for front ends that read it
//! when they need it (a page load, an API call) rather than follow every
//! event.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shoal_core::PeerId;
use shoal_core::config::Config;
use shoal_core::wire::FileEntry;

use crate::{Event, NetState, PeerRow, TransferInfo, TransferState};

/// Transfers that ended kept in the list; older ended ones fall off
/// (running and paused ones always stay).
const ENDED_KEPT: usize = 200;

/// What changed; read the [`State`] for what it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The header: status, port, reach.
    Network,
    /// The peer list.
    Peers,
    /// A transfer began or changed state.
    Transfer(u64),
    /// What this node shares.
    LocalFiles,
    /// config.toml.
    Settings,
}

/// A transfer and where it is.
#[derive(Clone)]
pub struct Transfer {
    /// What it is, with its live meter.
    pub info: TransferInfo,
    /// Where it is.
    pub state: TransferState,
}

/// The service's state.
pub struct State {
    /// This node's id.
    pub me: PeerId,
    /// Its name (as the running node has it, else as the settings say).
    pub name: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Standing with the tracker.
    pub net: NetState,
    /// The node's port while it runs.
    pub port: Option<u16>,
    /// Where the node listens (what links carry).
    pub reach: Vec<String>,
    /// How others reach the running node (default while it is stopped).
    pub reachability: shoal_node::reach::Reachability,
    /// Why the node last failed to start, until it starts.
    pub start_error: Option<crate::Failure>,
    /// The running node's URL (`https://ADDR`, what `listening on` says).
    pub node_url: Option<String>,
    /// Where the running node serves the seed's API, if it does.
    pub compat: Option<std::net::SocketAddr>,
    /// Bytes the node served peers, as of its last stop.
    pub served: u64,
    /// The running node's share folders (the command line's `--share`
    /// wins over the settings'); empty while it is stopped.
    pub node_shares: Vec<std::path::PathBuf>,
    /// The peers.
    pub peers: Vec<PeerRow>,
    /// Every transfer, by id.
    pub transfers: BTreeMap<u64, Transfer>,
    /// What this node shares.
    pub local: Vec<FileEntry>,
    /// config.toml as the service uses it.
    pub config: Config,
}

impl State {
    pub(crate) fn new(config: Config, me: PeerId, data_dir: PathBuf) -> Self {
        Self {
            name: config.peer_name(&me),
            me,
            data_dir,
            net: NetState::Offline,
            port: None,
            reach: Vec::new(),
            reachability: Default::default(),
            start_error: None,
            node_url: None,
            compat: None,
            served: 0,
            node_shares: Vec::new(),
            peers: Vec::new(),
            transfers: BTreeMap::new(),
            local: Vec::new(),
            config,
        }
    }

    /// Where a shared file goes: the running node's first share folder,
    /// else the settings' first.
    pub fn share_folder(&self) -> Option<std::path::PathBuf> {
        self.node_shares
            .first()
            .or(self.config.shares.first())
            .cloned()
    }

    /// Takes in an event; says what it changed.
    pub(crate) fn apply(&mut self, e: &Event) -> Option<Notice> {
        Some(match e {
            Event::Network { state, port } => {
                self.net = *state;
                self.port = *port;
                if port.is_some() {
                    self.start_error = None;
                }
                Notice::Network
            }
            Event::Reach(addrs) => {
                self.reach = addrs.clone();
                Notice::Network
            }
            Event::Reachability(r) => {
                self.reachability = r.clone();
                Notice::Network
            }
            Event::Peers(rows) => {
                self.peers = rows.clone();
                Notice::Peers
            }
            Event::Listing { .. } => return None,
            Event::Transfer(info) => {
                self.transfers.insert(
                    info.id,
                    Transfer {
                        info: info.clone(),
                        state: TransferState::Running,
                    },
                );
                self.forget_old();
                Notice::Transfer(info.id)
            }
            Event::TransferState { id, state } => {
                let t = self.transfers.get_mut(id)?;
                t.state = state.clone();
                Notice::Transfer(*id)
            }
            Event::LocalFiles(files) => {
                self.local = files.clone();
                Notice::LocalFiles
            }
            Event::Saved(config) => {
                self.config = (**config).clone();
                if self.port.is_none() {
                    self.name = self.config.peer_name(&self.me);
                }
                Notice::Settings
            }
        })
    }

    /// Drops the oldest ended transfers beyond [`ENDED_KEPT`].
    fn forget_old(&mut self) {
        let ended: Vec<u64> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.state.is_final())
            .map(|(id, _)| *id)
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(ENDED_KEPT)) {
            self.transfers.remove(id);
        }
    }
}
