//! `shoal tracker`, `shoal node` and `shoal up`: the long-running servers.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use shoal_core::config::Config;
use shoal_node::NodeConfig;
use shoal_node::tracker_client::TrackerClient;
use shoal_tracker::TrackerConfig;
use tokio::net::TcpListener;

use crate::cli::{NodeArgs, RelayArgs, TrackerArgs, UpArgs};
use crate::context::Context as Ctx;

/// Prints a line on stdout at once (scripts and tests wait for these).
pub fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn bind_tracker(listen: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; is another tracker running there? choose another address with --listen"))
}

/// A tracker token must protect something: an empty one is refused
/// rather than starting an open tracker its operator thinks is private.
fn checked_token(token: Option<String>) -> Result<Option<String>> {
    match token {
        Some(t) if t.trim().is_empty() => anyhow::bail!(crate::client::UsageError(
            "--token (or SHOAL_TRACKER_TOKEN) is empty: give a real secret, or leave it out for an open tracker".into()
        )),
        t => Ok(t),
    }
}

/// Serves the tracker over `store` (a Redis store connects lazily: the
/// tracker starts, and answers 503, while Redis is down).
async fn serve_tracker<S: shoal_tracker::store::Store>(
    listener: TcpListener,
    legacy: Option<TcpListener>,
    config: TrackerConfig,
    store: std::sync::Arc<S>,
) -> Result<()> {
    if let Err(e) = store.health().await {
        tracing::warn!(error = %e, "the store does not answer yet: lookups and registrations answer 503 until it does");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ttl = config.max_ttl.as_secs(), private = config.token.is_some(), store = %store.describe(), "tracker started");
    shoal_tracker::run_full(listener, legacy, config, store, shutdown_signal()).await?;
    Ok(())
}

pub async fn tracker(mut args: TrackerArgs) -> Result<()> {
    args.token = checked_token(args.token)?;
    let store = args.store.trim();
    let redis = if store == "memory" {
        None
    } else {
        Some(shoal_tracker::store::RedisStore::open(store).map_err(|e| {
            crate::client::UsageError(format!(
                "--store (or SHOAL_TRACKER_STORE): {e}; `memory` is the default"
            ))
        })?)
    };
    let listener = bind_tracker(args.listen).await?;
    let addr = listener.local_addr()?;
    announce(&format!("listening on http://{addr}"));
    let config = TrackerConfig {
        max_ttl: std::time::Duration::from_secs(args.ttl),
        token: args.token,
        relays: checked_relays(&args.relays)?,
        prober: if args.no_dial_back {
            None
        } else {
            Some(dialback()?)
        },
    };
    let legacy = match args.legacy_listen {
        None => None,
        Some(l) => {
            let legacy = TcpListener::bind(l).await.with_context(|| {
                format!(
                    "cannot listen on {l} for the legacy protocol; choose another --legacy-listen"
                )
            })?;
            let laddr = legacy.local_addr()?;
            announce(&format!("legacy listening on tcp://{laddr}"));
            tracing::warn!(
                %laddr,
                "the seed's discovery protocol is plain TCP without authentication; anyone who reaches it can register and list addresses"
            );
            if config.token.is_some() {
                tracing::warn!(
                    "this tracker is private: its legacy listener lists only what legacy clients registered, never its nodes' addresses"
                );
            }
            Some(legacy)
        }
    };
    match redis {
        None => {
            let store = std::sync::Arc::new(shoal_tracker::store::MemoryStore::default());
            serve_tracker(listener, legacy, config, store).await?
        }
        Some(store) => serve_tracker(listener, legacy, config, std::sync::Arc::new(store)).await?,
    }
    tracing::info!("tracker stopped");
    Ok(())
}

/// Relay URLs as given, each checked: `relay://HOST:PORT` or `HOST:PORT`.
fn checked_relays(relays: &[String]) -> Result<Vec<String>> {
    relays
        .iter()
        .map(|r| {
            let url = shoal_node::reach::relay_url(r.trim());
            let rest = shoal_relay::client::host_port(&url);
            shoal_core::wire::HostPort::parse(rest).map_err(|e| {
                crate::client::UsageError(format!(
                    "--relay {}: {e}; give it as relay://HOST:PORT",
                    shoal_core::text::bounded(r, 100)
                ))
            })?;
            Ok(url)
        })
        .collect()
}

/// How a tracker dials peers back: a TLS handshake, as a throwaway
/// identity, that must prove the registered peer's key.
struct Dialback(shoal_node::peer_client::PeerClient);

impl shoal_tracker::probe::Prober for Dialback {
    fn probe<'a>(
        &'a self,
        peer: shoal_core::PeerId,
        addr: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { self.0.identify(addr).await.is_ok_and(|id| id == peer) })
    }
}

fn dialback() -> Result<std::sync::Arc<dyn shoal_tracker::probe::Prober>> {
    let me = shoal_core::Identity::generate()?;
    let client = shoal_node::peer_client::PeerClient::new(
        std::sync::Arc::new(me),
        shoal_core::config::RetryConfig::default(),
    );
    Ok(std::sync::Arc::new(Dialback(client)))
}

/// `shoal relay`: pipes bytes between peers until Ctrl-C.
pub async fn relay(args: RelayArgs) -> Result<()> {
    shoal_net::raise_open_file_limit();
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another relay running there? choose another address with --listen",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    announce(&format!("listening on {}", shoal_relay::url_of(addr)));
    tracing::info!(%addr, "relay started");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(shoal_relay::serve(
        listener,
        relay_config(&args),
        stop.clone(),
    ));
    shutdown_signal().await;
    tracing::info!("stopping");
    stop.cancel();
    let _ = task.await;
    Ok(())
}

fn relay_config(args: &RelayArgs) -> shoal_relay::RelayConfig {
    shoal_relay::RelayConfig {
        max_connections: args.max_connections as usize,
        pipes_per_peer: args.pipes_per_peer as usize,
        rate_per_peer: args.rate_per_peer,
        rate_total: args.rate_total,
        ..Default::default()
    }
}

/// The node config.toml describes, with the command line's flags over it.
fn node_config(
    data_dir: &std::path::Path,
    args: &NodeArgs,
    config: &Config,
    me: &shoal_core::PeerId,
) -> Result<NodeConfig> {
    let mut cfg = NodeConfig::from_config(data_dir.to_path_buf(), config, me)?;
    if !args.shares.is_empty() {
        cfg.shares = args.shares.clone();
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(n) = &args.name {
        cfg.name = n.clone();
    }
    cfg.ttl = args.ttl;
    cfg.max_upload_rate = args.max_upload_rate.or(cfg.max_upload_rate);
    cfg.max_uploads = args.max_uploads as usize;
    if let Some(dir) = &args.inbox {
        cfg.inbox.dir = dir.clone();
    }
    cfg.inbox.max_size = args.max_inbox_size.or(cfg.inbox.max_size);
    if let Some(rate) = args.max_download_rate {
        cfg.inbox.rate = shoal_node::rate::RateLimit::new(Some(rate));
    }
    if !args.accept_from.is_empty() {
        cfg.inbox.accept = shoal_node::inbox::Accept::from_list(&args.accept_from)
            .map_err(|m| crate::client::UsageError(format!("--accept-from: {m}")))?;
    }
    if let (Some(addr), Some(token)) = (args.compat_listen, &args.compat_token) {
        if token.trim().is_empty() {
            anyhow::bail!(crate::client::UsageError(
                "--compat-token must not be empty".into()
            ));
        }
        cfg.compat = Some((addr, token.clone()));
    }
    cfg.port_mapping |= args.port_mapping;
    if !args.relays.is_empty() {
        cfg.relays = checked_relays(&args.relays)?;
    }
    Ok(cfg)
}

/// How `shoal node` makes its node: config.toml (as the web UI's Settings
/// change it) with the command line's flags over it, and the command
/// line's trackers.
struct Flags {
    args: NodeArgs,
    trackers: Vec<TrackerClient>,
}

impl shoal_service::Profile for Flags {
    fn trackers(&self, _config: &Config) -> Result<Vec<TrackerClient>, String> {
        Ok(self.trackers.clone())
    }

    fn node(
        &self,
        data_dir: &std::path::Path,
        config: &Config,
        me: &shoal_core::PeerId,
    ) -> Result<NodeConfig, String> {
        node_config(data_dir, &self.args, config, me).map_err(|e| format!("{e:#}"))
    }
}

/// The node could not start; its failure keeps its kind (the exit code).
#[derive(Debug)]
pub struct StartFailed(pub shoal_service::Failure);

impl std::fmt::Display for StartFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot start the node: {}", self.0)
    }
}

impl std::error::Error for StartFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Where and how the web UI is served, from the flags over `[web]`; a
/// non-loopback address without a password is refused here, before
/// anything starts.
fn web_options(ctx: &Ctx, args: &NodeArgs) -> Result<Option<shoal_web::Options>> {
    let web = &ctx.config.web;
    if args.no_web || (web.disabled && args.web_listen.is_none()) {
        return Ok(None);
    }
    let listen = match (args.web_listen, &web.listen) {
        (Some(a), _) => Some(a),
        (None, Some(s)) => Some(s.parse::<SocketAddr>().map_err(|_| {
            crate::client::UsageError(format!(
                "`listen = {s:?}` under [web] in config.toml is not an address like 127.0.0.1:5050"
            ))
        })?),
        (None, None) => None,
    };
    let at = listen.unwrap_or(shoal_web::DEFAULT_LISTEN);
    if !at.ip().is_loopback() && ctx.config.web_password.is_none() {
        anyhow::bail!(crate::client::UsageError(format!(
            "the web UI on {at} would be reachable from other machines, so it needs a password: \
             set one with `shoal web-password` (it is stored hashed), or use --web-listen 127.0.0.1:PORT, or --no-web"
        )));
    }
    let cert = match (&args.web_cert, &args.web_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => web.cert.clone().zip(web.key.clone()),
    };
    Ok(Some(shoal_web::Options {
        listen,
        password: ctx.config.web_password.clone(),
        cert,
        data_dir: ctx.data_dir.clone(),
    }))
}

async fn run_node(
    args: NodeArgs,
    trackers: Vec<TrackerClient>,
    ctx: &Ctx,
    feed: shoal_service::activity::LogFeed,
) -> Result<()> {
    let identity = ctx.identity()?;
    // Bad flags or settings fail here, with their own message and code.
    let cfg = node_config(&ctx.data_dir, &args, &ctx.config, &identity.peer_id())?;
    let web = web_options(ctx, &args)?;
    if cfg.shares.is_empty() {
        tracing::warn!("sharing nothing: add --share DIR to offer files");
    }
    let mut reach = shoal_service::FixedReach::default();
    if let Some(lan) = ctx.lan_node(false).await? {
        reach.lan = Some(lan.clone());
    }
    if let Some(dht) = ctx.dht_node().await? {
        announce(&format!("dht listening on {}", dht.url()));
        reach.dht = Some(dht.clone());
    }
    let service = shoal_service::Service::spawn(
        shoal_service::Setup {
            data_dir: ctx.data_dir.clone(),
            config: ctx.config.clone(),
            identity,
            feed,
            profile: std::sync::Arc::new(Flags { args, trackers }),
            reach: Some(reach),
            // A headless node asks for peers only while a page is open.
            watched: false,
        },
        None,
    );
    service.run(shoal_service::Command::Start).await;
    let (url, compat, peer_id, failed) =
        service.with_state(|s| (s.node_url.clone(), s.compat, s.me, s.start_error.clone()));
    let Some(url) = url else {
        service.shutdown(std::time::Duration::from_secs(2)).await;
        return Err(StartFailed(failed.unwrap_or_else(|| {
            shoal_service::Failure::new(shoal_core::ErrorKind::Internal, "the node did not start")
        }))
        .into());
    };
    announce(&format!("listening on {url}"));
    if let Some(addr) = compat {
        tracing::warn!(
            %addr,
            "the seed's API (--compat-listen) is plain HTTP: its token and every file it serves or receives cross the network unencrypted; use it only on a network you trust"
        );
        announce(&format!("compat listening on http://{addr}"));
    }
    let web = match web {
        None => None,
        Some(opts) => match shoal_web::Web::start(service.clone(), opts).await {
            Ok(w) => {
                announce(&format!("web ui on {}", w.url()));
                Some(w)
            }
            Err(e) => {
                service.shutdown(std::time::Duration::from_secs(5)).await;
                return Err(e.into());
            }
        },
    };
    announce(&format!("peer id {peer_id}"));
    shutdown_signal().await;
    tracing::info!("stopping");
    if let Some(w) = web {
        w.stop().await;
    }
    service.shutdown(std::time::Duration::from_secs(5)).await;
    let served = service.with_state(|s| s.served);
    announce(&format!("served {served} bytes"));
    Ok(())
}

/// `shoal dht`: a bare DHT node that answers and stores for others (a
/// private DHT's bootstrap), until Ctrl-C.
pub async fn dht(ctx: &Ctx, listen: SocketAddr) -> Result<()> {
    let mut cfg = ctx.dht.clone().unwrap_or_default();
    cfg.listen = Some(listen);
    cfg.server = true;
    let dht = shoal_dht::Dht::start(&cfg).await?;
    announce(&format!("dht listening on {}", dht.url()));
    tracing::info!(addr = %dht.local_addr(), bootstrap = ?cfg.bootstrap, public = cfg.public, "dht node started");
    shutdown_signal().await;
    tracing::info!(nodes = dht.known_nodes().await, "stopping");
    Ok(())
}

pub async fn node(ctx: &Ctx, args: NodeArgs, feed: shoal_service::activity::LogFeed) -> Result<()> {
    run_node(args, ctx.tracker_clients()?, ctx, feed).await
}

pub async fn up(ctx: &Ctx, args: UpArgs, feed: shoal_service::activity::LogFeed) -> Result<()> {
    let identity = ctx.identity()?;
    // The quick start names a folder that may not exist yet.
    for dir in &args.node.shares {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create share folder {}", dir.display()))?;
            tracing::info!(
                "created share folder {}; put files there to share them",
                dir.display()
            );
        }
    }
    let listener = bind_tracker(args.tracker_listen).await?;
    let taddr = listener.local_addr()?;
    let local = if taddr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], taddr.port()))
    } else {
        taddr
    };
    announce(&format!("tracker listening on http://{taddr}"));
    let mut relays = Vec::new();
    let relay_stop = tokio_util::sync::CancellationToken::new();
    let mut relay_task = None;
    if !args.no_relay {
        let l = TcpListener::bind(args.relay_listen).await.with_context(|| {
            format!(
                "cannot listen on {} for the relay; choose another --relay-listen, or --no-relay",
                args.relay_listen
            )
        })?;
        let raddr = l.local_addr()?;
        announce(&format!(
            "relay listening on {}",
            shoal_relay::url_of(raddr)
        ));
        // Advertised with the host the node reached the tracker on.
        relays.push(format!("relay://:{}", raddr.port()));
        relay_task = Some(tokio::spawn(shoal_relay::serve(
            l,
            shoal_relay::RelayConfig::default(),
            relay_stop.clone(),
        )));
    }
    let tracker_config = TrackerConfig {
        max_ttl: std::time::Duration::from_secs(args.node.ttl.max(60)),
        token: checked_token(ctx.tracker_token.clone())?,
        relays,
        prober: Some(dialback()?),
    };
    let tracker_task = tokio::spawn(shoal_tracker::run(
        listener,
        tracker_config,
        shutdown_signal(),
    ));
    let client = TrackerClient::new(
        &format!("http://{local}"),
        ctx.tracker_token.clone(),
        ctx.config.retry,
    )?;
    let cfg = node_config(&ctx.data_dir, &args.node, &ctx.config, &identity.peer_id())?;
    let shares = if cfg.shares.is_empty() {
        "nothing (add --share DIR)".to_owned()
    } else {
        cfg.shares
            .iter()
            .map(|s| s.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !ctx.quiet {
        let name = &cfg.name;
        eprintln!(
            "Shoal is up: a tracker on port {port}{relay} and a node named {name} sharing {shares}.\n\
             Try, from another terminal on this machine:\n\
             \x20 shoal peers                          # who is online\n\
             \x20 shoal ls {name}                # what this node shares\n\
             \x20 shoal get {name}:PATH -o DIR   # download a file\n\
             \x20 shoal --data-dir DIR2 gui            # the desktop app, as a second peer\n\
             Or steer this node from a browser: the `web ui on` address below.\n\
             Other machines reach this network with --tracker http://<this host>:{port}.\n\
             Stop with Ctrl-C.",
            port = taddr.port(),
            relay = if args.no_relay { "" } else { ", a relay" },
        );
    }
    let result = run_node(args.node, vec![client], ctx, feed).await;
    if result.is_err() {
        // The node could not start: do not leave the tracker running alone.
        tracker_task.abort();
    }
    let _ = tracker_task.await;
    relay_stop.cancel();
    if let Some(t) = relay_task {
        let _ = t.await;
    }
    result
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
