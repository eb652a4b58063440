//! `shoal`: the command-line face of Shoal. It parses flags, sets up logs
//! and hands each subcommand to the libraries; errors become a friendly
//! message and an exit code per kind (see the README).

mod cli;
mod client;
mod context;
mod crypt;
mod logging;
mod progress;
mod remote;
mod serve;

use std::process::ExitCode;

use clap::Parser;
use shoal_core::{ErrorKind, HasKind};

use crate::cli::{Cli, Command};
use crate::context::Context;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // clap keeps only the subcommand's occurrences of a global flag given
    // on both sides (`shoal --tracker A node --tracker B`); every one counts.
    let given = repeated_flag("--tracker", std::env::args_os().skip(1));
    if given.len() > cli.global.tracker.len() {
        cli.global.tracker = given;
    }
    let given = repeated_flag("--dht-bootstrap", std::env::args_os().skip(1));
    if given.len() > cli.global.dht_bootstrap.len() {
        cli.global.dht_bootstrap = given;
    }
    let detail = cli.global.verbose > 0;
    // Caps on connections, not the kernel's default of 1024 files, decide
    // how many clients a server holds.
    let _ = shoal_net::raise_open_file_limit();
    let ctx = match Context::new(&cli.global) {
        Ok(c) => c,
        Err(e) => return report(&e, detail),
    };
    let server = matches!(
        cli.command,
        Command::Up(_)
            | Command::Tracker(_)
            | Command::Relay(_)
            | Command::Node(_)
            | Command::Dht { .. }
    );
    if let Command::Gui { start, get } = cli.command {
        // The window runs on this thread; the app has its own runtime.
        let feed = shoal_gui::activity::LogFeed::default();
        let _logs = logging::init(
            &ctx.data_dir,
            cli.global.verbose,
            cli.global.quiet,
            false,
            Some(shoal_gui::activity::FeedLayer::new(feed.clone())),
        );
        let opts = shoal_gui::Options {
            data_dir: ctx.data_dir.clone(),
            start,
            get,
            // The app uses one tracker (its Settings have one field).
            tracker: cli
                .global
                .tracker
                .first()
                .cloned()
                .map(|url| (url, cli.global.tracker_token.clone())),
        };
        return match shoal_gui::run(opts, feed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report(&e, detail),
        };
    }
    // A node's activity log: what its web UI shows.
    let feed = shoal_service::activity::LogFeed::default();
    let node = matches!(cli.command, Command::Up(_) | Command::Node(_));
    let _logs = logging::init(
        &ctx.data_dir,
        cli.global.verbose,
        cli.global.quiet,
        server,
        node.then(|| shoal_service::activity::FeedLayer::new(feed.clone())),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return report(
                &anyhow::Error::new(e).context("cannot start the async runtime"),
                detail,
            );
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => serve::up(&ctx, args, feed).await,
            Command::Tracker(args) => serve::tracker(args).await,
            Command::Relay(args) => serve::relay(args).await,
            Command::Node(args) => serve::node(&ctx, args, feed).await,
            Command::Dht { listen } => serve::dht(&ctx, listen).await,
            Command::Id { ssh } => client::id(&ctx, ssh),
            Command::Link { path } => client::link(&ctx, &path),
            Command::Peers { json } => client::peers(&ctx, json).await,
            Command::Ls { peer, json } => client::ls(&ctx, &peer, json).await,
            Command::Get {
                target,
                output,
                max_download_rate,
                max_upload_rate,
                no_seed,
                passphrase_file,
                no_decrypt,
                json,
            } => {
                let opts = client::GetOptions {
                    json,
                    max_download_rate: max_download_rate.or(ctx.config.max_download_rate),
                    max_upload_rate: max_upload_rate.or(ctx.config.max_upload_rate),
                    seed: !no_seed,
                    passphrase_file,
                    decrypt: !no_decrypt,
                };
                let output = output
                    .or_else(|| ctx.config.downloads.clone())
                    .unwrap_or_else(|| ".".into());
                client::get(&ctx, &target, &output, opts).await
            }
            Command::Encrypt {
                file,
                passphrase_file,
                to,
                output,
            } => {
                crypt::encrypt(
                    &ctx,
                    &file,
                    passphrase_file.as_deref(),
                    &to,
                    output.as_deref(),
                )
                .await
            }
            Command::Decrypt {
                file,
                passphrase_file,
                legacy,
                output,
            } => {
                crypt::decrypt(
                    &ctx,
                    &file,
                    passphrase_file.as_deref(),
                    legacy,
                    output.as_deref(),
                )
                .await
            }
            Command::Gui { .. } => unreachable!("handled before the runtime starts"),
            Command::Send { peer, files } => client::send(&ctx, &peer, &files).await,
            Command::Transfers { json } => remote::transfers(&ctx, json).await,
            Command::WebPassword {
                password_file,
                clear,
            } => remote::web_password(&ctx, password_file.as_deref(), clear),
            Command::Share {
                file,
                encrypt,
                passphrase_file,
                to,
                into,
            } => {
                crypt::share(
                    &ctx,
                    &file,
                    encrypt,
                    passphrase_file.as_deref(),
                    &to,
                    into.as_deref(),
                )
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, detail),
    }
}

/// The kind of the first error in the chain that knows its kind.
fn kind_of(e: &anyhow::Error) -> ErrorKind {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<shoal_crypt::CryptError>() {
            return k.kind();
        }
        if let Some(k) = cause.downcast_ref::<shoal_node::NodeError>() {
            return k.kind();
        }
        if let Some(k) = cause.downcast_ref::<std::sync::Arc<shoal_node::NodeError>>() {
            return k.kind();
        }
        if let Some(k) = cause.downcast_ref::<shoal_core::IdentityError>() {
            return k.kind();
        }
        if let Some(k) = cause.downcast_ref::<shoal_core::config::ConfigError>() {
            return k.kind();
        }
        if cause.is::<client::UsageError>() || cause.is::<shoal_gui::NoWindow>() {
            return ErrorKind::Usage;
        }
        if let Some(f) = cause.downcast_ref::<serve::StartFailed>() {
            return f.0.kind;
        }
        if let Some(f) = cause.downcast_ref::<remote::Failed>() {
            return f.0.kind;
        }
        if let Some(e) = cause.downcast_ref::<shoal_web::WebError>() {
            return match e {
                shoal_web::WebError::Bind { .. } => ErrorKind::Network,
                shoal_web::WebError::Control { .. } => ErrorKind::File,
                _ => ErrorKind::Usage,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::AddrInUse {
                return ErrorKind::Network;
            }
            return ErrorKind::File;
        }
    }
    ErrorKind::Internal
}

/// Every `FLAG VALUE` and `FLAG=VALUE` (`--tracker`, `--dht-bootstrap`)
/// on the command line, in order (up to a `--`), split at commas as clap
/// does.
fn repeated_flag(flag: &str, args: impl Iterator<Item = std::ffi::OsString>) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.map(|a| a.to_string_lossy().into_owned());
    let with_value = format!("{flag}=");
    while let Some(a) = args.next() {
        let value = if a == "--" {
            break;
        } else if a == flag {
            args.next()
        } else {
            a.strip_prefix(&with_value).map(str::to_owned)
        };
        if let Some(v) = value {
            out.extend(v.split(',').filter(|u| !u.is_empty()).map(str::to_owned));
        }
    }
    out
}

/// Prints `e` and its causes, and returns its exit code. Below an error
/// whose message already names its innermost cause (a tracker or peer that
/// cannot be reached), the transport's own chain is shown only with
/// `detail` (`-v`).
fn report(e: &anyhow::Error, detail: bool) -> ExitCode {
    // A closed pipe (`shoal ls x | head`) is the reader's choice, not an error.
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    if e.is::<client::Interrupted>() {
        eprintln!("{e}");
        return ExitCode::from(130);
    }
    let kind = kind_of(e);
    tracing::error!(target: logging::FILE_ONLY, "{}", shown(&format!("{e:#}")));
    eprintln!("error: {}", shown(&e.to_string()));
    for cause in causes(e, detail) {
        eprintln!("  because: {}", shown(&cause));
    }
    if let Some(hint) = flag_hint(e).or_else(|| hint(kind)) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(kind.exit_code())
}

/// The causes of `e` worth a line each: none that repeats what was said
/// already, and, without `detail`, none below an error whose message names
/// its innermost cause.
fn causes(e: &anyhow::Error, detail: bool) -> Vec<String> {
    let mut said = e.to_string();
    let mut lines = Vec::new();
    let mut said_cause = says_its_cause(e.chain().next());
    for cause in e.chain().skip(1) {
        if said_cause && !detail {
            break;
        }
        let text = cause.to_string();
        // A transparent wrapper repeats its inner error's message.
        if !said.contains(&text) {
            said.push_str(&text);
            lines.push(text);
        }
        said_cause |= says_its_cause(Some(cause));
    }
    lines
}

fn says_its_cause(e: Option<&(dyn std::error::Error + 'static)>) -> bool {
    e.and_then(|e| {
        e.downcast_ref::<shoal_node::NodeError>().or_else(|| {
            e.downcast_ref::<std::sync::Arc<shoal_node::NodeError>>()
                .map(|a| &**a)
        })
    })
    .is_some_and(shoal_node::NodeError::says_its_cause)
}

/// An error text as it may reach a terminal: parts of it came from peers
/// and trackers, so every hidden or control character is made visible
/// (line breaks kept).
fn shown(text: &str) -> String {
    text.lines()
        .map(|l| shoal_core::text::escape(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What to change on the command line for errors the library reports
/// without knowing the flags.
fn flag_hint(e: &anyhow::Error) -> Option<&'static str> {
    use shoal_node::NodeError;
    if let Some(d) = e
        .chain()
        .find_map(|c| c.downcast_ref::<shoal_dht::DhtError>())
    {
        return Some(match d {
            shoal_dht::DhtError::Bind { .. } | shoal_dht::DhtError::NotIpv4(_) => {
                "choose another UDP address with --listen (port 0 picks a free one), or stop what listens there"
            }
            _ => {
                "check the --dht-bootstrap addresses (or dht_bootstrap in config.toml), or run without a DHT"
            }
        });
    }
    if e.chain().any(|c| c.is::<shoal_lan::LanError>()) {
        return Some("run without --lan (and lan = false in config.toml)");
    }
    let node = e.chain().find_map(|c| {
        c.downcast_ref::<NodeError>()
            .or_else(|| c.downcast_ref::<std::sync::Arc<NodeError>>().map(|a| &**a))
    })?;
    Some(match node {
        NodeError::Listen { .. } => {
            "choose another address with --listen (port 0 picks a free one), or stop what listens there"
        }
        NodeError::Tracker(shoal_node::TrackerError::BadUrl { .. }) => {
            "set it with --tracker URL, SHOAL_TRACKER, or tracker (or trackers) in config.toml"
        }
        NodeError::BadName { .. } => "choose another name with --name (or name in config.toml)",
        NodeError::Exists(_) => "move it away, or download into another folder with -o DIR",
        NodeError::DataDirInUse(_) => "give each node its own --data-dir",
        _ => return None,
    })
}

fn hint(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::Network => Some(
            "check that the tracker or peer is running and reachable; --tracker URL (or SHOAL_TRACKER) picks the tracker",
        ),
        ErrorKind::Authentication => Some(
            "a private tracker needs --tracker-token; a peer whose key changed must be looked up again with `shoal peers`",
        ),
        ErrorKind::Integrity => {
            Some("the data was discarded; try again, or get it from another peer")
        }
        ErrorKind::Decryption => Some(
            "nothing was written; check the passphrase (--passphrase-file F reads it from a file), or open it as the peer it was encrypted to (`shoal id` shows who you are)",
        ),
        ErrorKind::Internal => Some(
            "this looks like a bug; run again with -v and report the log (logs/shoal.log in the data dir)",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer error as the peer client makes it: a few words, and the
    /// transport's error below.
    fn unreachable() -> anyhow::Error {
        #[derive(Debug)]
        struct Transport(std::io::Error);
        impl std::fmt::Display for Transport {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Transport {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let peer = shoal_node::PeerError::Unreachable {
            peer: shoal_core::Identity::from_seed([1; 32]).peer_id(),
            name: "alice".into(),
            addrs: "127.0.0.1:9".into(),
            reason: "connection refused".into(),
            source: Some(Box::new(Transport(io))),
        };
        anyhow::Error::new(shoal_node::NodeError::from(peer)).context("cannot download notes.txt")
    }

    #[test]
    fn every_tracker_flag_counts_wherever_it_is() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            repeated_flag(
                "--tracker",
                args(&[
                    "--tracker",
                    "http://a",
                    "node",
                    "--tracker=http://b,http://c",
                    "--share",
                    "x"
                ])
                .into_iter()
            ),
            ["http://a", "http://b", "http://c"]
        );
        assert_eq!(
            repeated_flag(
                "--tracker",
                args(&["get", "--", "--tracker", "x"]).into_iter()
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            repeated_flag(
                "--dht-bootstrap",
                args(&["--dht-bootstrap", "a:1", "dht", "--dht-bootstrap=b:2"]).into_iter()
            ),
            ["a:1", "b:2"]
        );
    }

    #[test]
    fn the_transports_chain_is_shown_only_with_detail() {
        let e = unreachable();
        let plain = causes(&e, false);
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(plain[0].starts_with("cannot reach peer"), "{plain:?}");
        // -v: the transport's own words too, but nothing said twice (the
        // socket's "connection refused" is in the peer error already).
        let detailed = causes(&e, true);
        assert_eq!(
            detailed[1..],
            ["client error (Connect)".to_string()],
            "{detailed:?}"
        );
    }

    #[test]
    fn a_file_error_shows_its_cause_without_detail() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let e = anyhow::Error::new(shoal_node::NodeError::File {
            action: "create",
            path: "/nope/x".into(),
            source: io,
        });
        assert_eq!(causes(&e, false), ["permission denied".to_string()]);
    }
}
