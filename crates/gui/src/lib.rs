//! Shoal's desktop app (`shoal gui`): an egui window around an embedded
//! node, in the seed's dark look. The window never waits on the network or
//! the disk: the node service ([`backend`], shared with the web UI)
//! owns the node and the transfers, and the UI ([`app`]) sends it commands and reads its events.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod theme;

/// The node service the app is a front end of (the web UI is another).
pub use shoal_service as backend;
pub use shoal_service::activity;

pub use app::{Options, ShoalApp, View};

/// Opens the window and runs until it is closed; the node is shut down
/// cleanly (deregistered) on the way out. `feed` is the log the window
/// shows; give the same feed to [`activity::FeedLayer`] in the process's
/// `tracing` subscriber so the node's events appear in it.
pub fn run(opts: Options, feed: activity::LogFeed) -> anyhow::Result<()> {
    if cfg!(all(unix, not(target_os = "macos")))
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
        && std::env::var_os("WAYLAND_SOCKET").is_none()
    {
        return Err(NoWindow(
            "there is no display (DISPLAY and WAYLAND_DISPLAY are unset); run it in a desktop session, or use the command-line commands (`shoal --help`)".into(),
        )
        .into());
    }
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
        NoWindow(format!(
            "{e}; check that the display works (DISPLAY or WAYLAND_DISPLAY) and that OpenGL is available"
        ))
        .into()
    })
}

/// The window could not be opened (no display, no OpenGL): a matter of
/// the environment, not a bug.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the window: {0}")]
pub struct NoWindow(pub String);
