//! The data dir and `config.toml`: settings the CLI and (later) the GUI share.
//!
//! Command-line flags override the file; the file overrides built-in
//! defaults. A missing file is not an error; a malformed one is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Name of the config file inside a data dir.
pub const CONFIG_FILE: &str = "config.toml";
/// The tracker used when none is configured (the seed's port).
pub const DEFAULT_TRACKER: &str = "http://127.0.0.1:5000";

/// Where a node keeps its key, config, database and logs: `--data-dir`,
/// then `SHOAL_DATA_DIR` (both handled by the CLI), then the platform's
/// data dir.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("shoal")
}

/// Retry with exponential backoff and jitter, used for every network call
/// that may meet a passing failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub attempts: usize,
    /// Delay before the second attempt, in milliseconds.
    pub base_ms: u64,
    /// Growth of the delay per attempt.
    pub factor: f32,
    /// Longest delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            base_ms: 1000,
            factor: 2.0,
            max_ms: 10_000,
        }
    }
}

impl RetryConfig {
    /// Delay before the second attempt.
    pub fn base(&self) -> Duration {
        Duration::from_millis(self.base_ms)
    }
    /// Longest delay.
    pub fn max(&self) -> Duration {
        Duration::from_millis(self.max_ms)
    }
}

/// When a peer that sent bad data is banned, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReputationConfig {
    /// Downloads in which a peer sent bad pieces that get it banned.
    pub ban_after: u32,
    /// How long a ban lasts, in seconds.
    pub ban_secs: u64,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        Self {
            ban_after: 2,
            ban_secs: 24 * 60 * 60,
        }
    }
}

/// The contents of `config.toml`. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Tracker URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracker: Option<String>,
    /// More trackers: a node registers with each, lookups fail over
    /// between them (after `tracker`, if that is set too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trackers: Vec<String>,
    /// Bearer token for a private tracker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracker_token: Option<String>,
    /// Find peers on the local network too (mDNS); off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lan: bool,
    /// Use the public Mainline DHT; off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dht: bool,
    /// Ask the router to forward the node's port (UPnP, PCP, NAT-PMP);
    /// off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub port_mapping: bool,
    /// Relays to be reached through when the node is not reachable
    /// (`relay://HOST:PORT`), besides those the tracker advertises.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
    /// Nodes of a private DHT to join (`HOST:PORT`); implies a DHT.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dht_bootstrap: Vec<String>,
    /// Name shown to other peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Folders to share.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<PathBuf>,
    /// Node listen address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Where downloads are saved when no folder is given (`get` without
    /// `-o`, the desktop app); the current folder for `get` if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downloads: Option<PathBuf>,
    /// Where files other peers send arrive [default: `inbox` in the data dir].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<PathBuf>,
    /// Peers (full ids) that may send files, or `"any"`; nobody if empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accept_from: Vec<String>,
    /// Upload limit over all peers, bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_rate: Option<u64>,
    /// Download limit (downloads and received pushes), bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_download_rate: Option<u64>,
    /// Most the inbox may hold in all, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inbox_size: Option<u64>,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Bans of peers that send bad data.
    pub reputation: ReputationConfig,
    /// The web UI's password: its argon2 hash (PHC string), set by
    /// `shoal web-password`; required when the web UI is not on loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_password: Option<String>,
    /// The node's web UI and control API.
    #[serde(skip_serializing_if = "WebConfig::is_default")]
    pub web: WebConfig,
}

/// `[web]`: where the node serves its web UI and control API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Off entirely (`--no-web`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Listen address [default: 127.0.0.1:5050, or a free port if taken].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// TLS certificate (PEM) for HTTPS [default: one made for the node].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl WebConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `config.toml` exists but cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading failed.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or unknown keys.
    #[error("config file {path} is not valid: {message}; fix or remove it")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// Writing failed.
    #[error("cannot write config file {path}; check that its folder is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl crate::HasKind for ConfigError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            ConfigError::Write { .. } => crate::ErrorKind::File,
            _ => crate::ErrorKind::Usage,
        }
    }
}

impl Config {
    /// Loads `config.toml` from `data_dir`; defaults if it does not exist.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.message().to_owned(),
        })
    }

    /// The name this node goes by: `name`, else `peer-` and the start of
    /// its id.
    pub fn peer_name(&self, id: &crate::PeerId) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("peer-{}", id.short()))
    }

    /// The tracker's URL: `tracker`, else the first of `trackers`, else
    /// [`DEFAULT_TRACKER`].
    pub fn tracker_url(&self) -> String {
        self.tracker_urls().swap_remove(0)
    }

    /// Every tracker: `tracker`, then `trackers` (each once), else
    /// [`DEFAULT_TRACKER`] alone.
    pub fn tracker_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        for u in self.tracker.iter().chain(&self.trackers) {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
        if urls.is_empty() {
            urls.push(DEFAULT_TRACKER.to_owned());
        }
        urls
    }

    /// Writes `config.toml` into `data_dir`: to a temporary file first,
    /// renamed over the old one, so a crash never leaves half a config.
    /// (Comments in a hand-edited file are not kept.)
    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let write = |e: std::io::Error| ConfigError::Write {
            path: path.clone(),
            source: e,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::create_dir_all(data_dir).map_err(write)?;
        let how = shoal_fs::durable::Replace {
            private: false,
            sync: true,
        };
        shoal_fs::durable::replace(&path, text.as_bytes(), how).map_err(write)
    }
}

/// A byte rate such as `10MiB`, `500kB`, `1.5 MB/s` or plain bytes.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s").trim();
    let bytes: bytesize::ByteSize = t
        .parse()
        .map_err(|_| format!("`{s}` is not a rate; use e.g. 10MiB, 500kB or 1048576"))?;
    if bytes.as_u64() == 0 {
        return Err("a rate must be more than 0".into());
    }
    Ok(bytes.as_u64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn several_trackers_come_in_order_each_once() {
        let c = Config::default();
        assert_eq!(c.tracker_urls(), [DEFAULT_TRACKER]);
        let c: Config =
            toml::from_str("tracker = \"http://a:1\"\ntrackers = [\"http://b:2\", \"http://a:1\", \"http://c:3\"]\n")
                .unwrap();
        assert_eq!(c.tracker_urls(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(c.tracker_url(), "http://a:1");
        let c: Config = toml::from_str("trackers = [\"http://b:2\"]\n").unwrap();
        assert_eq!(c.tracker_url(), "http://b:2");
    }

    use super::*;

    #[test]
    fn missing_file_gives_defaults_and_bad_file_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "name = \"x\"\n[retry]\nattempts = 5\n",
        )
        .unwrap();
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.name.as_deref(), Some("x"));
        assert_eq!(c.retry.attempts, 5);
        assert_eq!(c.retry.base_ms, 1000);
        std::fs::write(dir.path().join(CONFIG_FILE), "nmae = 1").unwrap();
        assert!(matches!(
            Config::load(dir.path()),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn saved_config_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            tracker: Some("http://127.0.0.1:5000".into()),
            shares: vec!["/a b".into(), "c".into()],
            downloads: Some("dl".into()),
            inbox: Some("in".into()),
            accept_from: vec!["any".into()],
            max_upload_rate: Some(1 << 20),
            max_download_rate: Some(5),
            max_inbox_size: Some(1 << 30),
            retry: RetryConfig {
                attempts: 7,
                ..Default::default()
            },
            ..Default::default()
        };
        c.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), c);
        Config::default().save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
    }

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("1048576"), Ok(1_048_576));
        assert_eq!(parse_rate("1MiB"), Ok(1_048_576));
        assert_eq!(parse_rate("2 MiB/s"), Ok(2 * 1_048_576));
        assert_eq!(parse_rate("500kB"), Ok(500_000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
    }
}
