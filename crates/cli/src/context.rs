//! What every command needs: the data dir, its config, its identity, and
//! clients built from the global flags.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use shoal_core::Identity;
use shoal_core::config::{Config, default_data_dir};
use shoal_node::book::PeerBook;
use shoal_node::directory::{DhtBackend, LanBackend};
use shoal_node::peer_client::PeerClient;
use shoal_node::reputation::Reputation;
use shoal_node::tracker_client::TrackerClient;
use shoal_node::trackers::Trackers;

use crate::cli::Global;

pub struct Context {
    pub data_dir: PathBuf,
    pub config: Config,
    /// The trackers, in the order given (at least one).
    pub tracker_urls: Vec<String>,
    pub tracker_token: Option<String>,
    pub quiet: bool,
    /// Find peers on the LAN too.
    pub lan: bool,
    /// How to join a DHT, if the user asked for one.
    pub dht: Option<shoal_dht::DhtConfig>,
    dht_node: tokio::sync::OnceCell<shoal_dht::Dht>,
    lan_node: tokio::sync::OnceCell<Arc<shoal_lan::Lan>>,
}

/// How long a command with `--lan` listens before it answers: mDNS
/// responders answer within a few hundred milliseconds.
const LAN_BROWSE: std::time::Duration = std::time::Duration::from_millis(1500);

impl Context {
    pub fn new(g: &Global) -> Result<Self> {
        let data_dir = g.data_dir.clone().unwrap_or_else(default_data_dir);
        let config = Config::load(&data_dir)?;
        let tracker_urls = if g.tracker.is_empty() {
            config.tracker_urls()
        } else {
            let mut urls: Vec<String> = Vec::new();
            for u in &g.tracker {
                if !urls.contains(u) {
                    urls.push(u.clone());
                }
            }
            urls
        };
        let tracker_token = g
            .tracker_token
            .clone()
            .or_else(|| config.tracker_token.clone());
        let bootstrap = if g.dht_bootstrap.is_empty() {
            config.dht_bootstrap.clone()
        } else {
            g.dht_bootstrap.clone()
        };
        let public = g.dht || config.dht;
        let dht = (public || !bootstrap.is_empty()).then_some(shoal_dht::DhtConfig {
            listen: None,
            bootstrap,
            public,
            server: false,
        });
        Ok(Self {
            lan: g.lan || config.lan,
            dht,
            dht_node: tokio::sync::OnceCell::new(),
            lan_node: tokio::sync::OnceCell::new(),
            data_dir,
            config,
            tracker_urls,
            tracker_token,
            quiet: g.quiet,
        })
    }

    pub fn identity(&self) -> Result<Arc<Identity>> {
        Ok(Arc::new(Identity::load_or_create(&self.data_dir)?))
    }

    /// A client of each tracker (a bad URL is a usage error).
    pub fn tracker_clients(&self) -> Result<Vec<TrackerClient>> {
        self.tracker_urls
            .iter()
            .map(|u| {
                Ok(TrackerClient::new(
                    u,
                    self.tracker_token.clone(),
                    self.config.retry,
                )?)
            })
            .collect()
    }

    /// The trackers, asked in turn.
    pub fn trackers(&self) -> Result<Trackers> {
        Ok(Trackers::new(self.tracker_clients()?))
    }

    /// The trackers, for messages.
    pub fn tracker_list(&self) -> String {
        self.tracker_urls.join(", ")
    }

    /// The peer directory: the trackers, and the DHT and the LAN if asked for.
    pub async fn book(&self) -> Result<PeerBook> {
        let mut book = PeerBook::new(self.trackers()?, &self.data_dir);
        if let Some(lan) = self.lan_node(true).await? {
            let me = self.identity()?.peer_id();
            book = book.with(Arc::new(LanBackend::new(lan.clone(), me)));
        }
        if let Some(dht) = self.dht_node().await? {
            let client = Arc::new(self.peer_client()?);
            book = book.with(Arc::new(DhtBackend::new(dht.clone(), client)));
        }
        Ok(book)
    }

    /// This command's mDNS listener, started on first use if the user
    /// asked for the LAN; with `browse`, the first use listens for
    /// [`LAN_BROWSE`] before it returns, so answers are in.
    pub async fn lan_node(&self, browse: bool) -> Result<Option<&Arc<shoal_lan::Lan>>> {
        if !self.lan {
            return Ok(None);
        }
        let lan = self
            .lan_node
            .get_or_try_init(|| async {
                let lan = Arc::new(shoal_lan::Lan::start()?);
                if browse {
                    tokio::time::sleep(LAN_BROWSE).await;
                }
                Ok::<_, anyhow::Error>(lan)
            })
            .await?;
        Ok(Some(lan))
    }

    /// This command's DHT node, joined on first use (a client: it asks,
    /// it stores nothing for others), if the user asked for a DHT.
    pub async fn dht_node(&self) -> Result<Option<&shoal_dht::Dht>> {
        let Some(cfg) = &self.dht else {
            return Ok(None);
        };
        let dht = self
            .dht_node
            .get_or_try_init(|| async {
                let dht = shoal_dht::Dht::start(cfg).await?;
                tracing::debug!(url = %dht.url(), "joined the DHT");
                Ok::<_, anyhow::Error>(dht)
            })
            .await?;
        Ok(Some(dht))
    }

    pub fn reputation(&self) -> Reputation {
        Reputation::new(&self.data_dir, self.config.reputation)
    }

    /// The name this data dir goes by: `name` in config.toml, else
    /// `peer-` and the start of the peer id.
    pub fn name(&self, identity: &Identity) -> String {
        self.config.peer_name(&identity.peer_id())
    }

    pub fn peer_client(&self) -> Result<PeerClient> {
        Ok(PeerClient::new(self.identity()?, self.config.retry))
    }
}
