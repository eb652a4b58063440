//! The command line beside a running node: `get` and `send` hand their
//! work to the node of the same data dir through its control API (it
//! does the transfer and seeds afterwards; the command follows its
//! events), `transfers` lists what the node does, and `web-password`
//! sets the web UI's password.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use serde::Deserialize;
use shoal_core::ErrorKind;
use shoal_core::text::escape;
use shoal_node::download::Progress;
use shoal_service::Failure;

use crate::client::{Interrupted, UsageError};
use crate::context::Context;
use crate::progress::Bar;

/// The node failed the transfer; its failure keeps its kind (the exit code).
#[derive(Debug)]
pub struct Failed(pub Failure);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl std::error::Error for Failed {}

/// The kind an exit code stands for (the node's API gives codes).
fn kind_of_code(code: u8) -> ErrorKind {
    [
        ErrorKind::Usage,
        ErrorKind::Network,
        ErrorKind::NotFound,
        ErrorKind::Authentication,
        ErrorKind::Integrity,
        ErrorKind::Protocol,
        ErrorKind::File,
        ErrorKind::Conflict,
        ErrorKind::Decryption,
    ]
    .into_iter()
    .find(|k| k.exit_code() == code)
    .unwrap_or(ErrorKind::Internal)
}

/// A transfer as the API shows it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Transfer {
    pub id: u64,
    pub direction: String,
    pub name: String,
    pub peer: String,
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub exit_code: Option<u8>,
    #[serde(default)]
    pub path: Option<String>,
    pub done: u64,
    pub total: u64,
    #[serde(default)]
    pub speed: u64,
    #[serde(default)]
    pub sources: usize,
    /// How each provider was reached.
    #[serde(default)]
    pub routes: Vec<crate::client::SourceView>,
}

#[derive(Deserialize)]
struct Moved {
    id: u64,
    done: u64,
    total: u64,
    #[serde(default)]
    sources: usize,
}

/// The control API of the node running on a data dir.
pub struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    /// The node running on this data dir, if one runs with its web UI on.
    pub fn of(ctx: &Context) -> Result<Option<Remote>> {
        let Some(control) = shoal_web::Control::of_running(&ctx.data_dir).with_context(|| {
            format!(
                "cannot read {}",
                ctx.data_dir
                    .join(shoal_web::control::CONTROL_FILE)
                    .display()
            )
        })?
        else {
            return Ok(None);
        };
        // reqwest's TLS takes the process's provider: the workspace's one.
        let _ = shoal_node::tls::provider();
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if control.url.starts_with("https://") {
            let cert = control
                .cert
                .clone()
                .unwrap_or_else(|| ctx.data_dir.join("web").join("cert.pem"));
            b = b.use_preconfigured_tls(trusting(&cert)?);
        }
        Ok(Some(Remote {
            base: control.url.trim_end_matches('/').to_owned(),
            key: control.api_key,
            http: b.build().context("cannot make an HTTP client")?,
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach the node's control API at {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        #[derive(Deserialize)]
        struct Error {
            error: String,
            #[serde(default)]
            exit_code: Option<u8>,
        }
        let status = resp.status();
        let body: Option<Error> = resp.json().await.ok();
        let (text, code) = match body {
            Some(e) => (e.error, e.exit_code),
            None => (format!("the node answered {status}"), None),
        };
        let kind = match code {
            Some(c) => kind_of_code(c),
            None if status == reqwest::StatusCode::UNAUTHORIZED => ErrorKind::Authentication,
            None => ErrorKind::Internal,
        };
        Err(Failed(Failure::new(kind, text)).into())
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let resp = self.send(self.http.post(self.url(path)).json(body)).await?;
        Ok(resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Every transfer of the node.
    pub async fn transfers(&self) -> Result<Vec<Transfer>> {
        let resp = self
            .send(
                self.http
                    .get(self.url("/transfers"))
                    .timeout(Duration::from_secs(15)),
            )
            .await?;
        resp.json()
            .await
            .context("the node's transfer list cannot be read")
    }

    /// Starts a transfer (`/downloads` or `/pushes`); its id.
    async fn start(&self, path: &str, body: serde_json::Value) -> Result<u64> {
        let got = self.post_json(path, &body).await?;
        got["id"]
            .as_u64()
            .context("the node did not say which transfer it started")
    }

    /// Follows transfer `id` until it ends, showing it on `bar`; Ctrl-C
    /// pauses it in the node.
    async fn follow(&self, id: u64, bar: &Bar) -> Result<Transfer> {
        let resp = self.send(self.http.get(self.url("/events"))).await?;
        let mut events = resp.bytes_stream();
        let mut buf = Vec::new();
        let mut shown = Shown::default();
        let stop = crate::serve::shutdown_signal();
        tokio::pin!(stop);
        loop {
            let chunk = tokio::select! {
                c = events.next() => c,
                () = &mut stop => {
                    self.post_json(&format!("/transfers/{id}/pause"), &serde_json::Value::Null).await?;
                    anyhow::bail!(Interrupted);
                }
            };
            let Some(chunk) = chunk else {
                anyhow::bail!(Failed(Failure::new(
                    ErrorKind::Network,
                    "the node stopped before the transfer ended; start it again and rerun the command to go on"
                )));
            };
            let chunk = chunk.context("the node's event stream broke off")?;
            buf.extend_from_slice(&chunk);
            while let Some(end) = find(&buf, b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                let (name, data) = parse_event(&block);
                if let Some(t) = shown.take(id, name, data, bar)
                    && is_final(&t.state)
                {
                    return Ok(t);
                }
            }
        }
    }
}

/// What the bar shows of the followed transfer.
#[derive(Default)]
struct Shown {
    started: bool,
    done: u64,
    sources: usize,
}

impl Shown {
    /// Takes an event; the transfer, if it was about ours.
    fn take(&mut self, id: u64, name: &str, data: &str, bar: &Bar) -> Option<Transfer> {
        match name {
            "transfer" => {
                let t: Transfer = serde_json::from_str(data).ok()?;
                (t.id == id).then(|| {
                    self.show(&t.name, t.done, t.total, t.sources, bar);
                    t
                })
            }
            "transfers" => {
                let all: Vec<Transfer> = serde_json::from_str(data).ok()?;
                let t = all.into_iter().find(|t| t.id == id)?;
                self.show(&t.name, t.done, t.total, t.sources, bar);
                Some(t)
            }
            "progress" => {
                let batch: Vec<Moved> = serde_json::from_str(data).ok()?;
                if let Some(m) = batch.into_iter().find(|m| m.id == id)
                    && self.started
                {
                    self.advance(m.done, m.total, m.sources, bar);
                }
                None
            }
            _ => None,
        }
    }

    fn show(&mut self, name: &str, done: u64, total: u64, sources: usize, bar: &Bar) {
        if !self.started && total > 0 {
            bar.start(name, total);
            self.started = true;
        }
        if self.started {
            self.advance(done, total, sources, bar);
        }
    }

    fn advance(&mut self, done: u64, _total: u64, sources: usize, bar: &Bar) {
        if done > self.done {
            bar.advance(done - self.done);
            self.done = done;
        }
        if sources != self.sources {
            bar.sources(sources);
            self.sources = sources;
        }
    }
}

fn is_final(state: &str) -> bool {
    matches!(state, "done" | "failed" | "cancelled" | "needs-passphrase")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An SSE block's event name and data.
fn parse_event(block: &[u8]) -> (&str, &str) {
    let text = std::str::from_utf8(block).unwrap_or("");
    let mut name = "message";
    let mut data = "";
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            data = d.trim_start();
        }
    }
    (name, data)
}

/// A TLS setup that trusts the certificate the node serves (its own, or
/// the one it was given), as control.json names it.
fn trusting(path: &Path) -> Result<rustls::ClientConfig> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the web UI's certificate {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in <rustls::pki_types::CertificateDer<'static> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
        let c = c.with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        roots
            .add(c)
            .with_context(|| format!("{} cannot be trusted as a root", path.display()))?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(shoal_node::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// `get` through the running node: it downloads `target` into `dir` and
/// seeds it afterwards; `None` if no node with a web UI runs here.
/// What `get --json` prints for a download the node made.
fn outcome(saved: PathBuf, t: Transfer) -> crate::client::GetOutcome {
    crate::client::GetOutcome {
        saved,
        sources: t.routes,
    }
}

pub async fn get(
    ctx: &Context,
    target: &str,
    dir: &Path,
    passphrase_file: Option<&Path>,
    decrypt: bool,
) -> Result<Option<crate::client::GetOutcome>> {
    let Some(remote) = Remote::of(ctx)? else {
        return Ok(None);
    };
    let dir = std::path::absolute(dir)
        .with_context(|| format!("cannot resolve the folder {}", dir.display()))?;
    tracing::info!(
        "a node runs on this data dir: it downloads this and offers it to other peers afterwards"
    );
    let id = remote
        .start(
            "/downloads",
            serde_json::json!({ "target": target, "dir": dir }),
        )
        .await?;
    let bar = Bar::new(ctx.quiet);
    let t = remote.follow(id, &bar).await?;
    bar.finish();
    match t.state.as_str() {
        // Still encrypted: the node could not open it (not for its key);
        // this command tries as a `get` of its own would, and fails alike.
        "done" | "needs-passphrase"
            if decrypt
                && t.path.as_deref().is_some_and(|p| {
                    shoal_crypt::encrypted_download(Path::new(p)).is_some()
                }) =>
        {
            let path = PathBuf::from(t.path.clone().unwrap_or_default());
            let opened = crate::crypt::open_download(ctx, &path, passphrase_file).await?;
            let mut saved = path.clone();
            if let Some(plain) = opened {
                let _ = std::fs::remove_file(&path);
                if !ctx.quiet {
                    eprintln!("saved {} (decrypted)", plain.display());
                }
                saved = plain;
            }
            Ok(Some(outcome(saved, t)))
        }
        "done" | "needs-passphrase" => {
            if !ctx.quiet {
                eprintln!("saved {}", escape(t.path.as_deref().unwrap_or(&t.name)));
            }
            let saved = PathBuf::from(t.path.clone().unwrap_or_else(|| t.name.clone()));
            Ok(Some(outcome(saved, t)))
        }
        "cancelled" => Err(Failed(Failure::new(
            ErrorKind::Internal,
            "the download was cancelled in the node (its web UI or app); what had arrived was removed",
        ))
        .into()),
        _ => Err(failure(&t).into()),
    }
}

fn failure(t: &Transfer) -> Failed {
    Failed(Failure::new(
        t.exit_code.map_or(ErrorKind::Internal, kind_of_code),
        t.error
            .clone()
            .unwrap_or_else(|| format!("the transfer {}", t.state)),
    ))
}

/// `send` through the running node: it pushes each file; `None` if no
/// node with a web UI runs here.
pub async fn send(ctx: &Context, peer: &str, files: &[PathBuf]) -> Result<Option<()>> {
    let Some(remote) = Remote::of(ctx)? else {
        return Ok(None);
    };
    for file in files {
        let path = std::path::absolute(file)
            .with_context(|| format!("cannot resolve {}", file.display()))?;
        let id = remote
            .start("/pushes", serde_json::json!({ "peer": peer, "path": path }))
            .await?;
        let bar = Bar::new(ctx.quiet);
        let t = remote.follow(id, &bar).await?;
        bar.finish();
        if t.state != "done" {
            return Err(anyhow::Error::new(failure(&t)).context(format!(
                "cannot send {} to {}",
                file.display(),
                escape(peer)
            )));
        }
        if !ctx.quiet {
            eprintln!(
                "sent {} to {} (in its inbox as {})",
                file.display(),
                escape(&t.peer),
                escape(t.path.as_deref().unwrap_or(&t.name))
            );
        }
    }
    Ok(Some(()))
}

/// `shoal transfers`: what the running node transfers.
pub async fn transfers(ctx: &Context, json: bool) -> Result<()> {
    let Some(remote) = Remote::of(ctx)? else {
        anyhow::bail!(UsageError(format!(
            "no node runs on the data dir {} (or its web UI is off); start one with `shoal node` or `shoal up`",
            ctx.data_dir.display()
        )));
    };
    let all = remote.transfers().await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &all)?;
        writeln!(out)?;
        return Ok(());
    }
    if all.is_empty() {
        writeln!(out, "no transfers")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>4}  {:<8}  {:<16}  {:>5}  {:>10}  {:>11}  {:<16}  NAME",
        "ID", "KIND", "STATE", "DONE", "SIZE", "SPEED", "PEER"
    )?;
    for t in &all {
        let pct = (t.done.saturating_mul(100))
            .checked_div(t.total)
            .map_or_else(|| "-".into(), |p| format!("{p}%"));
        let speed = if t.state == "running" {
            format!("{}/s", shoal_core::human_size(t.speed))
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:>4}  {:<8}  {:<16}  {:>5}  {:>10}  {:>11}  {:<16}  {}",
            t.id,
            t.direction,
            t.state,
            pct,
            shoal_core::human_size(t.total),
            speed,
            escape(&t.peer),
            escape(&t.name)
        )?;
    }
    Ok(())
}

/// `shoal web-password`: sets (or clears) the web UI's password in
/// config.toml, hashed.
pub fn web_password(ctx: &Context, file: Option<&Path>, clear: bool) -> Result<()> {
    let mut config = ctx.config.clone();
    if clear {
        config.web_password = None;
    } else {
        let password = match file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the password file {}", f.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
            None => {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    anyhow::bail!(UsageError(
                        "there is no terminal to ask the password on; give --password-file F"
                            .into()
                    ));
                }
                let first = rpassword::prompt_password("web UI password: ")
                    .context("cannot read the password from the terminal")?;
                let again = rpassword::prompt_password("again: ")
                    .context("cannot read the password from the terminal")?;
                if first != again {
                    anyhow::bail!(UsageError(
                        "the two passwords differ; nothing was changed".into()
                    ));
                }
                first
            }
        };
        if password.chars().count() < 8 {
            anyhow::bail!(UsageError(
                "the password is shorter than 8 characters; choose a longer one".into()
            ));
        }
        config.web_password = Some(shoal_web::auth::hash_password(&password).map_err(UsageError)?);
    }
    config.save(&ctx.data_dir)?;
    if !ctx.quiet {
        let what = if clear {
            "removed"
        } else {
            "set (stored hashed)"
        };
        eprintln!(
            "web UI password {what} in {}; a running node uses it once restarted",
            ctx.data_dir.join(shoal_core::config::CONFIG_FILE).display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_codes_map_back_to_kinds() {
        let (n, d) = parse_event(b"event: progress\ndata: [1]\n\n");
        assert_eq!((n, d), ("progress", "[1]"));
        for k in [ErrorKind::NotFound, ErrorKind::Network, ErrorKind::Conflict] {
            assert_eq!(kind_of_code(k.exit_code()), k);
        }
        assert_eq!(kind_of_code(200), ErrorKind::Internal);
    }
}
