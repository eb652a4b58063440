//! The command line: every subcommand and flag of `shoal`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use shoal_core::config::parse_rate;

/// Secure hybrid peer-to-peer file sharing.
///
/// A tracker keeps a phone book of peers; files move directly between peers
/// over mutual TLS, checked against their BLAKE3 content id.
#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Where the identity key, config, database and logs live.
    #[arg(long, global = true, env = "SHOAL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A tracker to use; repeat it for several (a node registers with
    /// each, lookups fail over between them) [default: http://127.0.0.1:5000,
    /// or `tracker` / `trackers` in config.toml; SHOAL_TRACKER may list
    /// several, comma-separated].
    #[arg(
        long,
        global = true,
        env = "SHOAL_TRACKER",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub tracker: Vec<String>,
    /// Bearer token of a private tracker.
    #[arg(
        long,
        global = true,
        env = "SHOAL_TRACKER_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub tracker_token: Option<String>,
    /// Find peers on the local network too (mDNS multicast; off unless
    /// asked, or `lan = true` in config.toml).
    #[arg(long, global = true)]
    pub lan: bool,
    /// Use the public Mainline DHT to publish and find peers and content
    /// (UDP to nodes worldwide; off unless asked, or `dht = true`).
    #[arg(long, global = true)]
    pub dht: bool,
    /// Join a private DHT through this node (`HOST:PORT`, a `shoal dht`);
    /// repeat for several. Implies a DHT, but not the public one.
    #[arg(long, global = true, value_name = "ADDR", value_delimiter = ',')]
    pub dht_bootstrap: Vec<String>,
    /// More output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a tracker and a node in one process: a whole network in one command.
    Up(UpArgs),
    /// Run a tracker (the discovery server).
    Tracker(TrackerArgs),
    /// Run a bare DHT node: a bootstrap for a private DHT (first of one
    /// without --dht-bootstrap, joining one with it; the public DHT with --dht).
    Dht {
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:6881", value_name = "ADDR")]
        listen: SocketAddr,
    },
    /// Run a relay: pipes bytes between peers that cannot reach each
    /// other, seeing only their TLS.
    Relay(RelayArgs),
    /// Run a node that shares folders with other peers.
    Node(NodeArgs),
    /// Print this data dir's peer id.
    Id {
        /// Print the key as an OpenSSH `ssh-ed25519` line instead (for
        /// people who encrypt to you with the `age` tool: `age -r "LINE"`).
        #[arg(long)]
        ssh: bool,
    },
    /// Print a `shoal:` link to a file this data dir's running node
    /// shares: one line that `shoal get LINK` fetches with no tracker.
    Link {
        /// The file (in one of the node's shares).
        path: std::path::PathBuf,
    },
    /// List the peers the tracker knows.
    Peers {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the files a peer shares.
    Ls {
        /// Peer name, peer id, or a unique prefix of one.
        peer: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Download a file: `PEER:PATH`, or a content id from whoever has it.
    Get {
        /// `PEER:PATH` (as `shoal ls PEER` shows it) or a 64-hex content id.
        target: String,
        /// Folder to download into [default: `downloads` in config.toml,
        /// else the current folder].
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Receive at most this fast, e.g. `2MiB` or `500kB` (per second)
        /// [default: `max_download_rate` in config.toml].
        #[arg(long, value_name = "RATE", value_parser = parse_rate)]
        max_download_rate: Option<u64>,
        /// While downloading, send verified pieces to other peers at most
        /// this fast (per second) [default: `max_upload_rate` in config.toml].
        #[arg(long, value_name = "RATE", value_parser = parse_rate)]
        max_upload_rate: Option<u64>,
        /// Do not offer verified pieces to other peers while downloading.
        #[arg(long)]
        no_seed: bool,
        /// Passphrase of an encrypted file, from the first line of this file
        /// (otherwise asked on the terminal when needed).
        #[arg(long, value_name = "F")]
        passphrase_file: Option<PathBuf>,
        /// Keep an encrypted file as it is, without decrypting it.
        #[arg(long)]
        no_decrypt: bool,
        /// When done, print where the file was saved and which providers
        /// served it, and how each was reached (direct or relay), as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a file (age format) with a passphrase or to peers' keys.
    Encrypt {
        /// The file to encrypt.
        file: PathBuf,
        /// Read the passphrase from the first line of this file (otherwise
        /// it is asked twice on the terminal).
        #[arg(long, value_name = "F", conflicts_with = "to")]
        passphrase_file: Option<PathBuf>,
        /// Encrypt to this peer instead (a name the tracker knows, a peer id,
        /// or an `ssh-ed25519 ...` key); repeat for several peers.
        #[arg(long, value_name = "PEER")]
        to: Vec<String>,
        /// Where to write [default: FILE.age].
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Decrypt a file encrypted by Shoal (or by the seed, with --legacy).
    Decrypt {
        /// The encrypted file.
        file: PathBuf,
        /// Read the passphrase from the first line of this file (otherwise
        /// it is asked on the terminal when needed; files encrypted to this
        /// peer need none).
        #[arg(long, value_name = "F")]
        passphrase_file: Option<PathBuf>,
        /// The file was encrypted by the seed (Fernet); detected
        /// automatically when it starts like one.
        #[arg(long)]
        legacy: bool,
        /// Where to write [default: FILE without .age or .encrypted].
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// List what the node running on this data dir is transferring.
    Transfers {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set the web UI's password (asked twice on the terminal, or the first
    /// line of --password-file); stored hashed in config.toml.
    WebPassword {
        /// Read the password from the first line of this file.
        #[arg(long, value_name = "F")]
        password_file: Option<PathBuf>,
        /// Remove the password instead (the web UI then serves loopback only).
        #[arg(long, conflicts_with = "password_file")]
        clear: bool,
    },
    /// Send files to a peer's inbox (it must accept files from you).
    Send {
        /// Peer name, peer id, or a unique prefix of one.
        peer: String,
        /// The files to send.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Open the desktop app: a window around a node of this data dir,
    /// with the settings of its config.toml.
    Gui {
        /// Start the network at once.
        #[arg(long)]
        start: bool,
        /// Download `PEER:PATH` or a content id at once (repeatable).
        #[arg(long, value_name = "TARGET")]
        get: Vec<String>,
    },
    /// Put a file into this node's share folder, optionally encrypted.
    Share {
        /// The file to share.
        file: PathBuf,
        /// Encrypt it with a passphrase (asked twice, or --passphrase-file).
        #[arg(long)]
        encrypt: bool,
        /// Passphrase for --encrypt, from the first line of this file.
        #[arg(long, value_name = "F", requires = "encrypt")]
        passphrase_file: Option<PathBuf>,
        /// Encrypt it to this peer (name, peer id or `ssh-ed25519` key);
        /// repeat for several peers.
        #[arg(long, value_name = "PEER", conflicts_with = "encrypt")]
        to: Vec<String>,
        /// The share folder to put it in [default: the first in config.toml].
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct TrackerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:5000", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Also speak the seed's discovery protocol (plain TCP, `REGISTER` and
    /// `GET_PEERS`) on this address, for the seed's own clients.
    #[arg(long, value_name = "ADDR")]
    pub legacy_listen: Option<SocketAddr>,
    /// Longest time a registration lives without a heartbeat, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub ttl: u64,
    /// Require this bearer token on every API call (a private network).
    #[arg(
        long,
        env = "SHOAL_TRACKER_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Advertise this relay (`relay://HOST:PORT`) to nodes it finds
    /// unreachable; repeatable.
    #[arg(long = "relay", value_name = "URL", value_delimiter = ',')]
    pub relays: Vec<String>,
    /// Never dial nodes back to check their reachability (probes get
    /// 501; nodes given a relay then use it).
    #[arg(long)]
    pub no_dial_back: bool,
    /// Where registrations live: `memory` (this process; lost on restart)
    /// or `redis://[:PASSWORD@]HOST:PORT/DB` (`rediss://` for TLS), shared
    /// by every tracker replica given the same URL.
    #[arg(
        long,
        env = "SHOAL_TRACKER_STORE",
        default_value = "memory",
        value_name = "STORE",
        hide_env_values = true,
        hide_default_value = false
    )]
    pub store: String,
}

#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:7100", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Most pipes open at once with one peer at either end.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub pipes_per_peer: u64,
    /// Pipe at most this fast for one peer, e.g. `10MiB` (per second).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate_per_peer: Option<u64>,
    /// Pipe at most this fast in all, e.g. `100MiB` (per second).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate_total: Option<u64>,
    /// Most connections open at once, in all.
    #[arg(long, default_value_t = 16384, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// A folder to share (repeatable). Default: `shares` in config.toml.
    #[arg(long = "share", value_name = "DIR")]
    pub shares: Vec<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:0, a free port].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Name shown to other peers [default: peer-<first 8 chars of the id>].
    #[arg(long)]
    pub name: Option<String>,
    /// Registration lifetime asked of the tracker, in seconds; heartbeats
    /// come every third of it.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub ttl: u64,
    /// Send at most this fast to all peers together, e.g. `10MiB` (per second).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_upload_rate: Option<u64>,
    /// Downloads served at once; further peers are told to try later.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_uploads: u64,
    /// Folder where files other peers send arrive [default: inbox in the data dir].
    #[arg(long, value_name = "DIR")]
    pub inbox: Option<PathBuf>,
    /// Accept files sent by this peer (a peer id), or by `any` peer;
    /// repeatable. By default nobody may send files.
    #[arg(long = "accept-from", value_name = "PEER|any")]
    pub accept_from: Vec<String>,
    /// Receive pushed files at most this fast in all, e.g. `10MiB` (per second).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_download_rate: Option<u64>,
    /// Most the inbox may hold in all, e.g. `10GiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse_rate)]
    pub max_inbox_size: Option<u64>,
    /// Also serve the seed's HTTP API (list, download, upload) on this
    /// address, unencrypted, for the seed's clients; needs --compat-token.
    #[arg(long, value_name = "ADDR", requires = "compat_token")]
    pub compat_listen: Option<SocketAddr>,
    /// The token the seed's clients send in `Authorization`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SHOAL_COMPAT_TOKEN",
        hide_env_values = true,
        requires = "compat_listen"
    )]
    pub compat_token: Option<String>,
    /// Serve the web UI and control API here [default: 127.0.0.1:5050, or
    /// a free port if that is taken; `[web] listen` in config.toml]. An
    /// address other machines can reach needs a password
    /// (`shoal web-password`) and is served over HTTPS.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_web")]
    pub web_listen: Option<SocketAddr>,
    /// Serve no web UI (nor the control API that `get` and `send` of this
    /// data dir hand their work to).
    #[arg(long)]
    pub no_web: bool,
    /// HTTPS certificate (PEM) for the web UI [default: one made for this
    /// node, in `web/` of the data dir].
    #[arg(long, value_name = "FILE", requires = "web_key")]
    pub web_cert: Option<PathBuf>,
    /// The private key (PEM) of --web-cert.
    #[arg(long, value_name = "FILE", requires = "web_cert")]
    pub web_key: Option<PathBuf>,
    /// Ask the router to forward this node's port (UPnP-IGD, PCP or
    /// NAT-PMP), renewed while the node runs and removed when it stops
    /// (off unless asked, or `port_mapping = true` in config.toml).
    #[arg(long)]
    pub port_mapping: bool,
    /// A relay (`relay://HOST:PORT`, a `shoal relay`) to be reached
    /// through when the tracker finds this node unreachable; repeatable
    /// [default: `relays` in config.toml, and the tracker's own].
    #[arg(long = "relay", value_name = "URL", value_delimiter = ',')]
    pub relays: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Address the tracker listens on.
    #[arg(long, default_value = "0.0.0.0:5000", value_name = "ADDR")]
    pub tracker_listen: SocketAddr,
    /// Address the relay listens on (the tracker advertises it).
    #[arg(long, default_value = "0.0.0.0:7100", value_name = "ADDR")]
    pub relay_listen: SocketAddr,
    /// Run no relay.
    #[arg(long)]
    pub no_relay: bool,
}
