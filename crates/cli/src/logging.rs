//! Logs: coloured by level on the console, and a daily-rolling file in the
//! data dir (`logs/shoal.log` points at today's) with timestamps and full
//! error chains. `RUST_LOG` overrides the level.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the file writer flushing until dropped.
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Target of events meant for the log file only (the console already
/// shows them in another form).
pub const FILE_ONLY: &str = "shoal_file_only";

/// The node service's activity log (what the web UI and the app show):
/// the node's own events say the same on the console already.
const ACTIVITY: &str = shoal_service::activity::TARGET;

/// `server` commands log at info on the console; others only warn.
/// `gui`: the window's activity log gets the node's events too.
pub fn init(
    data_dir: &Path,
    verbose: u8,
    quiet: bool,
    server: bool,
    window: Option<shoal_gui::activity::FeedLayer>,
) -> LogGuard {
    let console_level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) if server => "info",
        (_, 0) => "warn",
        (_, 1) => "debug",
        _ => "trace",
    };
    let console_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,winit=error,shoal={console_level},shoal_node={console_level},shoal_tracker={console_level},{FILE_ONLY}=off,{ACTIVITY}=off"
        ))
    });
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .with_filter(console_filter);

    let log_dir = data_dir.join("logs");
    let _ = std::fs::create_dir_all(&log_dir);
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("shoal")
        .filename_suffix("log")
        .max_log_files(7)
        .latest_symlink("shoal.log")
        .build(&log_dir);
    let (file, guard) = match appender {
        Ok(a) => {
            let (w, g) = tracing_appender::non_blocking(a);
            let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // A tracker's requests are logged only when asked (-v): a
                // busy one takes thousands a second.
                let tracker = if verbose > 0 { "debug" } else { "info" };
                EnvFilter::new(format!(
                    "info,shoal=debug,shoal_node=debug,shoal_tracker={tracker},{FILE_ONLY}=info"
                ))
            });
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(w)
                .with_ansi(false)
                .with_filter(filter);
            (Some(layer), Some(g))
        }
        Err(_) => (None, None),
    };
    tracing_subscriber::registry()
        .with(console)
        .with(file)
        .with(window)
        .init();
    LogGuard(guard)
}
