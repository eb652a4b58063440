//! Shoal's desktop app (`shoal gui`): an egui window around an embedded
//! node, in the seed's dark look. The window never waits on the network or
//! the disk: a worker runtime ([`backend`]) owns the node and the
//! transfers, and the UI ([`app`]) sends it commands and reads its events.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod activity;
pub mod app;
pub mod backend;
pub mod theme;

pub use app::{Options, ShoalApp, View};

/// Opens the window and runs until it is closed; the node is shut down
/// cleanly (deregistered) on the way out. `feed` is the log the window
/// shows; give the same feed to [`activity::FeedLayer`] in the process's
/// `tracing` subscriber so the node's events appear in it.
pub fn run(opts: Options, feed: activity::LogFeed) -> anyhow::Result<()> {
    let app = ShoalApp::new(opts, feed)?;
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Shoal")
            .with_inner_size([1180.0, 800.0])
            .with_min_inner_size([720.0, 520.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_native("Shoal", native, Box::new(|_cc| Ok(Box::new(app)))).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the window: {e}; is a display available (DISPLAY or WAYLAND_DISPLAY)?"
        )
    })
}
