//! `shoal id`, `peers`, `ls` and `get`: commands that talk to a tracker and peers.

use std::io::Write;

use anyhow::{Context as _, Result};
use shoal_core::text::escape;
use std::net::{IpAddr, SocketAddr};

use shoal_node::book::Source;
use shoal_node::download::Swarm;
use shoal_node::download::service::{Downloads, Request, Target};
use shoal_node::reputation::{Standing, now_secs};
use shoal_node::{Node, NodeConfig};

use crate::context::Context;
use crate::progress::Bar;

pub fn id(ctx: &Context, ssh: bool) -> Result<()> {
    let id = ctx.identity()?.peer_id();
    if ssh {
        println!("{}", shoal_crypt::PeerKey::of_peer(&id)?.to_ssh());
    } else {
        println!("{id}");
    }
    Ok(())
}

/// Prints a link to `path`, a file the node running on this data dir
/// shares (`shoal node` or `shoal up` must be running).
pub fn link(ctx: &Context, path: &std::path::Path) -> Result<()> {
    let Some(node) = shoal_node::listening::Listening::of_running(&ctx.data_dir)? else {
        return Err(UsageError(format!(
            "no node runs on the data dir {}; start one that shares the file (`shoal node --share DIR` or `shoal up --share DIR`), then ask for the link again",
            ctx.data_dir.display()
        ))
        .into());
    };
    println!("{}", node.link(path)?);
    Ok(())
}

fn warn_if_cached(source: &Source) {
    if let Source::Cache(why) = source {
        tracing::warn!("{why}; showing the last known peers too (and any the LAN or DHT found)");
    }
}

/// The stable `--json` output: pretty JSON and a newline on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A peer as `peers --json` shows it: its tracker record and its standing.
#[derive(serde::Serialize)]
struct PeerView<'a> {
    #[serde(flatten)]
    listed: &'a shoal_node::book::Listed,
    reputation: Reputation<'a>,
}

#[derive(serde::Serialize)]
struct Reputation<'a> {
    /// `new`, `good`, `suspect` or `banned`.
    verdict: &'static str,
    #[serde(flatten)]
    standing: &'a Standing,
}

pub async fn peers(ctx: &Context, json: bool) -> Result<()> {
    let (peers, source) = ctx.book().await?.list().await?;
    warn_if_cached(&source);
    let reputation = ctx.reputation();
    let standings = tokio::task::spawn_blocking(move || reputation.all())
        .await?
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read peer reputation");
            Default::default()
        });
    let unknown = Standing::default();
    let now = now_secs();
    let views: Vec<PeerView<'_>> = peers
        .iter()
        .map(|listed| {
            let standing = standings.get(&listed.record.peer_id).unwrap_or(&unknown);
            PeerView {
                listed,
                reputation: Reputation {
                    verdict: standing.verdict(now),
                    standing,
                },
            }
        })
        .collect();
    if json {
        return print_json(&views);
    }
    let mut out = std::io::stdout().lock();
    if peers.is_empty() {
        let lan = if ctx.lan {
            "; nobody answered on the LAN"
        } else {
            ""
        };
        writeln!(out, "no peers online (tracker {}{lan})", ctx.tracker_list())?;
        return Ok(());
    }
    let w = peers
        .iter()
        .map(|p| escape(&p.record.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:w$}  {:52}  {:9}  {:11}  {:11}  ADDRESSES",
        "NAME", "PEER ID", "STANDING", "REACH", "FOUND BY"
    )?;
    for v in &views {
        let p = &v.listed.record;
        let found: Vec<&str> = v.listed.sources.iter().map(|o| o.as_str()).collect();
        writeln!(
            out,
            "{:w$}  {}  {:9}  {:11}  {:11}  {}",
            escape(&p.name),
            p.peer_id,
            v.reputation.verdict,
            p.reach.map_or("-", |r| r.as_str()),
            found.join(","),
            escape(&p.addrs.join(", "))
        )?;
    }
    Ok(())
}

pub async fn ls(ctx: &Context, peer: &str, json: bool) -> Result<()> {
    let (record, source) = ctx.book().await?.resolve(peer).await?;
    warn_if_cached(&source);
    let files = ctx.peer_client()?.files(&record).await?;
    if json {
        return print_json(&files);
    }
    let mut out = std::io::stdout().lock();
    if files.is_empty() {
        writeln!(out, "{} shares no files", escape(&record.name))?;
        return Ok(());
    }
    for f in &files {
        let lock = if f.encrypted { " (encrypted)" } else { "" };
        writeln!(
            out,
            "{}  {:>10}  {}{lock}",
            f.content_id,
            shoal_core::human_size(f.size),
            escape(&f.name)
        )?;
    }
    Ok(())
}

/// How `get` behaves beyond what to fetch.
pub struct GetOptions {
    /// Print the outcome as JSON.
    pub json: bool,
    pub max_download_rate: Option<u64>,
    pub max_upload_rate: Option<u64>,
    /// Offer verified pieces to other peers while downloading.
    pub seed: bool,
    /// Passphrase of an encrypted download.
    pub passphrase_file: Option<std::path::PathBuf>,
    /// Open encrypted downloads.
    pub decrypt: bool,
}

pub async fn get(
    ctx: &Context,
    target: &str,
    out_dir: &std::path::Path,
    opts: GetOptions,
) -> Result<()> {
    let given = target;
    let target: Target =
        target
            .parse()
            .map_err(|e: shoal_node::download::service::BadTarget| {
                if e.link.is_some() {
                    UsageError(format!("{e}; ask for the link again, and copy all of it"))
                } else {
                    UsageError(format!(
                        "{e}; examples: shoal get alice:docs/report.pdf, shoal get alice:docs/"
                    ))
                }
            })?;
    // A node runs on this data dir: it downloads (and seeds afterwards).
    if opts.seed
        && let Some(got) = crate::remote::get(
            ctx,
            given,
            out_dir,
            opts.passphrase_file.as_deref(),
            opts.decrypt,
        )
        .await?
    {
        if opts.json {
            print_json(&got)?;
        }
        return Ok(());
    }
    let book = ctx.book().await?;
    let client = ctx
        .peer_client()?
        .with_download_limit(shoal_node::rate::RateLimit::new(opts.max_download_rate));
    let seeder = if opts.seed {
        start_seeder(ctx, opts.max_upload_rate).await
    } else {
        None
    };
    let swarm = Swarm {
        sources: book.sources(),
        partials: seeder.as_ref().map(|n| n.partials().clone()),
        reputation: Some(ctx.reputation()),
    };
    let downloads = Downloads::new(std::sync::Arc::new(client), Some(book), swarm);
    let bar = std::sync::Arc::new(Bar::new(ctx.quiet));
    let handle = downloads.start(Request::new(target, out_dir).with_progress(bar));
    // Ctrl-C or SIGTERM pauses: every piece that arrived stays in the
    // `.part`, and the same command resumes from there.
    let result = tokio::select! {
        r = handle.wait() => r,
        () = crate::serve::shutdown_signal() => {
            handle.pause().await;
            if let Some(node) = seeder {
                node.shutdown().await;
            }
            anyhow::bail!(Interrupted);
        }
    };
    // An encrypted file is opened now; its ciphertext is still offered to
    // others while we linger, and removed after.
    let opened = match &result {
        Ok(path) if opts.decrypt && path.is_file() => {
            crate::crypt::open_download(ctx, path, opts.passphrase_file.as_deref()).await
        }
        _ => Ok(None),
    };
    if let Ok(path) = &result
        && !ctx.quiet
    {
        match &opened {
            Ok(Some(plain)) => eprintln!("saved {} (decrypted)", plain.display()),
            _ => eprintln!("saved {}", path.display()),
        }
    }
    if let (Some(node), Ok(_)) = (&seeder, &result) {
        linger(node, ctx.quiet).await;
    }
    if let Some(node) = seeder {
        tracing::debug!(bytes = node.bytes_served(), "stopped offering pieces");
        node.shutdown().await;
    }
    let path = result?;
    let opened = opened?;
    if opened.is_some() {
        let _ = std::fs::remove_file(&path);
    }
    if opts.json {
        let saved = opened.unwrap_or(path);
        print_json(&GetOutcome {
            saved: std::path::absolute(&saved).unwrap_or(saved),
            sources: handle
                .sources()
                .into_iter()
                .map(|s| SourceView {
                    peer_id: s.peer_id.to_string(),
                    name: s.name,
                    via: s.via.to_owned(),
                    addr: s.addr,
                })
                .collect(),
        })?;
    }
    Ok(())
}

/// What `get --json` prints.
#[derive(serde::Serialize)]
pub struct GetOutcome {
    /// Where the file is now.
    pub saved: std::path::PathBuf,
    /// The providers that served it.
    pub sources: Vec<SourceView>,
}

/// A provider of a download, and how it was reached.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct SourceView {
    pub peer_id: String,
    pub name: String,
    /// `direct` or `relay`.
    pub via: String,
    /// The address dialled.
    pub addr: String,
}

pub async fn send(ctx: &Context, peer: &str, files: &[std::path::PathBuf]) -> Result<()> {
    // A node runs on this data dir: it pushes them.
    if crate::remote::send(ctx, peer, files).await?.is_some() {
        return Ok(());
    }
    let (record, source) = ctx.book().await?.resolve(peer).await?;
    warn_if_cached(&source);
    let client = ctx.peer_client()?;
    for file in files {
        let bar = Bar::new(ctx.quiet);
        let got = shoal_node::send::send_file(&client, &record, file, &bar)
            .await
            .with_context(|| {
                format!("cannot send {} to {}", file.display(), escape(&record.name))
            })?;
        if !ctx.quiet {
            eprintln!(
                "sent {} to {} (in its inbox as {})",
                file.display(),
                escape(&record.name),
                escape(&got.name)
            );
        }
    }
    Ok(())
}

/// Longest a finished `get` keeps sending pieces to peers still downloading.
const MAX_LINGER: std::time::Duration = std::time::Duration::from_secs(60);
/// A finished `get` leaves once nobody has fetched from it for this long.
const LINGER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Once the file is saved, keeps serving it while other peers are still
/// fetching pieces from us (a crowd downloading together finishes
/// together), for at most [`MAX_LINGER`]. A lone download leaves at once.
async fn linger(node: &Node, quiet: bool) {
    let deadline = tokio::time::Instant::now() + MAX_LINGER;
    if node.uploading_within(LINGER_IDLE) && !quiet {
        eprintln!("sending pieces to peers still downloading (Ctrl-C to stop)");
    }
    while node.uploading_within(LINGER_IDLE) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A node with no shares that serves the verified pieces of this download
/// to other peers and tells the tracker it has them, for as long as `get`
/// runs. Not started when a node already runs with this data dir (it would
/// take over the node's registration); the download goes on either way.
async fn start_seeder(ctx: &Context, max_upload_rate: Option<u64>) -> Option<Node> {
    let identity = ctx.identity().ok()?;
    let ip = ctx
        .config
        .listen
        .as_deref()
        .and_then(|l| l.parse::<SocketAddr>().ok())
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let mut cfg = NodeConfig::new(
        ctx.data_dir.clone(),
        SocketAddr::new(ip, 0),
        ctx.name(&identity),
    );
    cfg.trackers = ctx.tracker_clients().ok()?;
    cfg.ttl = SEEDER_TTL;
    cfg.max_upload_rate = max_upload_rate;
    match Node::start(cfg, identity).await {
        Ok(node) => {
            tracing::debug!(url = %node.url(), "offering verified pieces to other peers");
            Some(node)
        }
        Err(shoal_node::NodeError::DataDirInUse(_)) => {
            tracing::info!(
                "a node runs with this data dir, so this download is not offered to other peers; \
                 use another --data-dir for get to offer it"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "not offering pieces to other peers while downloading");
            None
        }
    }
}

/// Registration TTL of a downloading `get`: short, since it leaves soon.
const SEEDER_TTL: u64 = 30;

/// `get` was stopped by a signal; what arrived is kept.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted: what arrived is kept; run the same command again to resume")
    }
}

impl std::error::Error for Interrupted {}

/// A mistake on the command line.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
