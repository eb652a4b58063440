//! The activity log: what the app did and what the node reported, colour
//! coded by level, shared between the service (which writes) and the
//! front ends (the app reads it each frame, the web UI follows it).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// How a line is shown: green, blue, yellow or red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Something finished well (green).
    Success,
    /// News (blue).
    Info,
    /// Worth a look, nothing lost (yellow).
    Warning,
    /// Something failed (red).
    Error,
}

impl Level {
    /// Every level, in the order the filter shows them.
    pub const ALL: [Level; 4] = [Level::Success, Level::Info, Level::Warning, Level::Error];

    /// `success`, `info`, `warning` or `error`, for scripts.
    pub fn key(self) -> &'static str {
        match self {
            Level::Success => "success",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// The filter's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Success => "Success",
            Level::Info => "Info",
            Level::Warning => "Warnings",
            Level::Error => "Errors",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// `HH:MM:SS` (UTC, as in the log file).
    pub time: String,
    /// Its colour.
    pub level: Level,
    /// What happened.
    pub text: String,
}

/// Lines kept; older ones fall off (the log file keeps everything).
const KEEP: usize = 5000;

/// Target of the app's own events in the log file; [`FeedLayer`] skips
/// them because they are already in the feed.
pub const TARGET: &str = "shoal_service::activity";

/// Lines a slow follower may fall behind by before it misses some.
const FOLLOW_BACKLOG: usize = 512;

struct Inner {
    lines: VecDeque<LogLine>,
    waker: Option<crate::Waker>,
    follow: tokio::sync::broadcast::Sender<LogLine>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            lines: VecDeque::new(),
            waker: None,
            follow: tokio::sync::broadcast::channel(FOLLOW_BACKLOG).0,
        }
    }
}

/// The log shared by the service and the front ends.
#[derive(Clone, Default)]
pub struct LogFeed {
    inner: Arc<Mutex<Inner>>,
}

impl LogFeed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes a UI whenever a line arrives.
    pub fn set_waker(&self, waker: crate::Waker) {
        self.lock().waker = Some(waker);
    }

    /// The lines that arrive from now on.
    pub fn follow(&self) -> tokio::sync::broadcast::Receiver<LogLine> {
        self.lock().follow.subscribe()
    }

    /// Adds a line without writing it to the log file.
    pub fn push(&self, level: Level, text: impl Into<String>) {
        let line = LogLine {
            time: clock(),
            level,
            text: text.into(),
        };
        let waker = {
            let mut inner = self.lock();
            if inner.lines.len() == KEEP {
                inner.lines.pop_front();
            }
            let _ = inner.follow.send(line.clone());
            inner.lines.push_back(line);
            inner.waker.clone()
        };
        if let Some(w) = waker {
            w(std::time::Duration::ZERO);
        }
    }

    /// Adds a line and writes it to the log file too.
    pub fn log(&self, level: Level, text: impl Into<String>) {
        let text = text.into();
        match level {
            Level::Success | Level::Info => tracing::info!(target: TARGET, "{text}"),
            Level::Warning => tracing::warn!(target: TARGET, "{text}"),
            Level::Error => tracing::error!(target: TARGET, "{text}"),
        }
        self.push(level, text);
    }

    /// Calls `f` with the lines (oldest first).
    pub fn with_lines<R>(&self, f: impl FnOnce(&VecDeque<LogLine>) -> R) -> R {
        f(&self.lock().lines)
    }
}

/// Now as `HH:MM:SS`, UTC.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A `tracing` layer that copies the node's events (info and above, from
/// Shoal's crates) into the feed, so the window and the web UI show what
/// the log file gets.
pub struct FeedLayer {
    feed: LogFeed,
}

impl FeedLayer {
    /// A layer writing into `feed`.
    pub fn new(feed: LogFeed) -> Self {
        Self { feed }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FeedLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let target = meta.target();
        if target == TARGET || !target.starts_with("shoal") {
            return;
        }
        let level = match *meta.level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::INFO => Level::Info,
            _ => return,
        };
        let mut text = Text::default();
        event.record(&mut text);
        self.feed.push(level, text.0);
    }
}

/// An event's message followed by its fields as `key=value`.
#[derive(Default)]
struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_keeps_the_newest_lines() {
        let feed = LogFeed::default();
        for i in 0..KEEP + 10 {
            feed.push(Level::Info, format!("line {i}"));
        }
        feed.with_lines(|l| {
            assert_eq!(l.len(), KEEP);
            assert_eq!(l.front().unwrap().text, "line 10");
            assert_eq!(l.back().unwrap().text, format!("line {}", KEEP + 9));
        });
    }

    #[test]
    fn node_events_reach_the_feed_and_the_apps_own_do_not_twice() {
        use tracing_subscriber::layer::SubscriberExt;
        let feed = LogFeed::default();
        let subscriber = tracing_subscriber::registry().with(FeedLayer::new(feed.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "shoal_node::download", peer = "bob", "provider unreachable");
            tracing::debug!(target: "shoal_node::download", "too chatty");
            tracing::info!(target: "hyper", "not ours");
            feed.log(Level::Success, "saved a.txt");
        });
        feed.with_lines(|l| {
            let got: Vec<_> = l.iter().map(|x| (x.level, x.text.as_str())).collect();
            assert_eq!(
                got,
                [
                    (Level::Warning, "provider unreachable peer=bob"),
                    (Level::Success, "saved a.txt"),
                ]
            );
        });
    }
}
