//! `shoal id`, `peers`, `ls` and `get`: commands that talk to a tracker and peers.

use std::io::Write;

use anyhow::Result;
use shoal_core::ContentId;
use shoal_node::book::Source;
use shoal_node::download;

use crate::context::Context;
use crate::progress::Bar;

pub fn id(ctx: &Context) -> Result<()> {
    println!("{}", ctx.identity()?.peer_id());
    Ok(())
}

fn warn_if_cached(source: &Source) {
    if let Source::Cache(why) = source {
        tracing::warn!("showing the last known peer list: {why}");
    }
}

/// The stable `--json` output: pretty JSON and a newline on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub async fn peers(ctx: &Context, json: bool) -> Result<()> {
    let (peers, source) = ctx.book()?.list().await?;
    warn_if_cached(&source);
    if json {
        return print_json(&peers);
    }
    let mut out = std::io::stdout().lock();
    if peers.is_empty() {
        writeln!(out, "no peers online (tracker {})", ctx.tracker_url)?;
        return Ok(());
    }
    let w = peers
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(out, "{:w$}  {:52}  ADDRESSES", "NAME", "PEER ID")?;
    for p in &peers {
        writeln!(out, "{:w$}  {}  {}", p.name, p.peer_id, p.addrs.join(", "))?;
    }
    Ok(())
}

pub async fn ls(ctx: &Context, peer: &str, json: bool) -> Result<()> {
    let (record, source) = ctx.book()?.resolve(peer).await?;
    warn_if_cached(&source);
    let files = ctx.peer_client()?.files(&record).await?;
    if json {
        return print_json(&files);
    }
    let mut out = std::io::stdout().lock();
    if files.is_empty() {
        writeln!(out, "{} shares no files", record.name)?;
        return Ok(());
    }
    for f in &files {
        let lock = if f.encrypted { " (encrypted)" } else { "" };
        writeln!(
            out,
            "{}  {:>10}  {}{lock}",
            f.content_id,
            human(f.size),
            f.name
        )?;
    }
    Ok(())
}

pub async fn get(
    ctx: &Context,
    target: &str,
    out_dir: &std::path::Path,
    max_rate: Option<u64>,
) -> Result<()> {
    let book = ctx.book()?;
    let client = ctx
        .peer_client()?
        .with_download_limit(shoal_node::rate::RateLimit::new(max_rate));
    let bar = Bar::new(ctx.quiet);
    let path = if let Ok(cid) = target.parse::<ContentId>() {
        download::get_content(&book, &client, cid, out_dir, &bar).await?
    } else {
        let Some((peer, path)) = target.split_once(':') else {
            anyhow::bail!(UsageError(format!(
                "`{target}` is neither PEER:PATH nor a 64-hex content id; example: shoal get alice:docs/report.pdf"
            )));
        };
        if path.ends_with('/') {
            download::get_folder(&book, &client, peer, path, out_dir, &bar).await?
        } else {
            download::get_path(&book, &client, peer, path, out_dir, &bar).await?
        }
    };
    if !ctx.quiet {
        eprintln!("saved {}", path.display());
    }
    Ok(())
}

/// A mistake on the command line.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
