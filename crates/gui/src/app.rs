//! The window: its state, the events it takes from the worker, and the
//! frame's layout. The views are in [`views`], the settings form in
//! [`settings`], the dialogs in [`dialogs`]. Everything here runs on the UI
//! thread and only talks to the worker through [`Backend`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use egui::{Align, Color32, Layout, RichText, ScrollArea, TextEdit, Ui};
use egui_file_dialog::FileDialog;
use shoal_core::config::{Config, parse_rate};
use shoal_core::wire::{FileEntry, PeerRecord};
use shoal_core::{Identity, PeerId};

use crate::activity::{Level, LogFeed};
use crate::backend::{
    Backend, Command, Direction, Event, NetState, PeerRow, ShareLock, TransferInfo, TransferState,
};
use crate::theme;

mod dialogs;
mod settings;
mod views;

use dialogs::*;
use settings::*;
use views::*;

/// The views below the controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Peers and their files.
    Peers,
    /// Downloads and pushes.
    Transfers,
    /// What this node shares.
    Local,
    /// config.toml.
    Settings,
}

/// A transfer as the transfers view shows it.
pub struct Transfer {
    /// What the worker said about it.
    pub info: TransferInfo,
    /// Where it is.
    pub state: TransferState,
    speed: f64,
    sample: (Instant, u64),
}

impl Transfer {
    /// Done fraction, 0 to 1.
    pub fn fraction(&self) -> f32 {
        let (done, total) = self.info.meter.bytes();
        if total == 0 {
            return if matches!(self.state, TransferState::Done(_)) {
                1.0
            } else {
                0.0
            };
        }
        (done as f64 / total as f64).clamp(0.0, 1.0) as f32
    }

    fn update_speed(&mut self) {
        let (done, _) = self.info.meter.bytes();
        let dt = self.sample.0.elapsed().as_secs_f64();
        if dt >= 0.5 {
            let now = done.saturating_sub(self.sample.1) as f64 / dt;
            self.speed = if self.speed == 0.0 {
                now
            } else {
                0.6 * self.speed + 0.4 * now
            };
            self.sample = (Instant::now(), done);
        }
    }
}

/// The peer being browsed and its files.
pub struct Browse {
    /// The peer.
    pub peer: PeerRecord,
    /// Its listing (`None` while it loads).
    pub files: Option<Result<Vec<FileEntry>, String>>,
}

/// Everything the app shows, and its end of the worker.
pub struct ShoalApp {
    backend: Backend,
    feed: LogFeed,
    data_dir: PathBuf,
    me: PeerId,
    config: Config,
    /// The header's status.
    pub net: NetState,
    port: Option<u16>,
    /// The view below the controls.
    pub view: View,
    /// The peers the tracker knows.
    pub peers: Vec<PeerRow>,
    /// The peer being browsed.
    pub browsing: Option<Browse>,
    /// Downloads and pushes, newest last.
    pub transfers: Vec<Transfer>,
    local: Vec<FileEntry>,
    /// Where the node listens, for links (empty while it is stopped).
    reach: Vec<String>,
    /// How others reach the node.
    reachability: shoal_node::reach::Reachability,
    settings: SettingsForm,
    dialog: Option<Dialog>,
    /// Dropped files waiting for their share dialog.
    drops: std::collections::VecDeque<PathBuf>,
    picker: FileDialog,
    pick_for: Option<PickFor>,
    levels: HashSet<Level>,
    filter: String,
    asked: HashSet<u64>,
    ctx_set: bool,
}

/// How the app starts.
pub struct Options {
    /// The data dir: key, config.toml, logs, downloads by default.
    pub data_dir: PathBuf,
    /// Start the network at once.
    pub start: bool,
    /// Download these (`PEER:PATH` or content ids) at once.
    pub get: Vec<String>,
    /// Use this tracker (and token) instead of config.toml's, for this
    /// run (`--tracker`, `SHOAL_TRACKER`); saving the settings keeps it.
    pub tracker: Option<(String, Option<String>)>,
}

impl ShoalApp {
    /// Loads the data dir's key and config.toml and starts the worker.
    pub fn new(mut opts: Options, feed: LogFeed) -> anyhow::Result<Self> {
        // Folders the settings derive from it are saved as they are shown,
        // so they must not depend on where the app was started.
        if let Ok(abs) = std::path::absolute(&opts.data_dir) {
            opts.data_dir = abs;
        }
        let mut config = Config::load(&opts.data_dir)?;
        if let Some((url, token)) = opts.tracker {
            config.tracker = Some(url);
            config.tracker_token = token.or(config.tracker_token);
        }
        let identity = Arc::new(Identity::load_or_create(&opts.data_dir)?);
        let me = identity.peer_id();
        let backend = Backend::start(
            opts.data_dir.clone(),
            config.clone(),
            identity,
            feed.clone(),
        )?;
        if opts.start {
            backend.send(Command::Start);
        }
        for g in opts.get {
            backend.send(Command::Fetch(g));
        }
        Ok(Self {
            backend,
            feed,
            settings: SettingsForm::from_config(&config, &opts.data_dir),
            data_dir: opts.data_dir,
            me,
            config,
            net: NetState::Offline,
            port: None,
            view: View::Peers,
            peers: Vec::new(),
            browsing: None,
            transfers: Vec::new(),
            local: Vec::new(),
            reach: Vec::new(),
            reachability: Default::default(),
            dialog: None,
            drops: Default::default(),
            picker: FileDialog::new(),
            pick_for: None,
            levels: Level::ALL.into_iter().collect(),
            filter: String::new(),
            asked: HashSet::new(),
            ctx_set: false,
        })
    }

    /// This node's peer id.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// The log the app shows.
    pub fn feed(&self) -> &LogFeed {
        &self.feed
    }

    /// Stops the node (deregistering) and every transfer.
    pub fn shutdown(&mut self) {
        self.backend.shutdown();
    }

    /// Draws one frame.
    pub fn ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if !self.ctx_set {
            theme::apply(&ctx);
            let c = ctx.clone();
            self.backend.set_waker(std::sync::Arc::new(move |after| {
                if after.is_zero() {
                    c.request_repaint();
                } else {
                    c.request_repaint_after(after);
                }
            }));
            self.ctx_set = true;
        }
        self.take_events();
        self.take_drops(&ctx);
        let running = self
            .transfers
            .iter()
            .any(|t| t.state == TransferState::Running);
        if running {
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }

        egui::Panel::top("header")
            .frame(egui::Frame::new().fill(theme::BG).inner_margin(12))
            .show(ui, |ui| {
                self.header(ui);
                ui.add_space(4.0);
                self.controls(ui);
            });
        egui::Panel::bottom("log")
            .resizable(true)
            .default_size(200.0)
            .frame(egui::Frame::new().fill(theme::BG).inner_margin(12))
            .show(ui, |ui| self.log(ui));
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(theme::BG).inner_margin(12))
            .show(ui, |ui| {
                theme::card().show(ui, |ui| {
                    ui.set_min_size(ui.available_size());
                    match self.view {
                        View::Peers => self.peers_view(ui),
                        View::Transfers => self.transfers_view(ui),
                        View::Local => self.local_view(ui),
                        View::Settings => self.settings_view(ui),
                    }
                });
            });
        self.dialogs(&ctx);
        self.file_picker(&ctx);
    }

    fn take_events(&mut self) {
        for e in self.backend.events() {
            match e {
                Event::Network { state, port } => {
                    self.net = state;
                    self.port = port;
                }
                Event::Peers(rows) => {
                    self.peers = rows;
                    // The browsed listing follows the peer's share.
                    if let Some(b) = &self.browsing
                        && self.view == View::Peers
                    {
                        self.backend.send(Command::Browse(b.peer.clone()));
                    }
                }
                Event::Listing { peer, files } => {
                    if let Some(b) = &mut self.browsing
                        && b.peer.peer_id == peer
                    {
                        b.files = Some(files);
                    }
                }
                Event::Transfer(info) => {
                    let done = info.meter.bytes().0;
                    self.transfers.push(Transfer {
                        info,
                        state: TransferState::Running,
                        speed: 0.0,
                        sample: (Instant::now(), done),
                    });
                    self.view = View::Transfers;
                }
                Event::TransferState { id, state } => {
                    if let TransferState::NeedsPassphrase(path) = &state
                        && self.asked.insert(id)
                        && self.dialog.is_none()
                    {
                        self.dialog = Some(Dialog::Passphrase {
                            id,
                            path: path.clone(),
                            pass: String::new(),
                            error: None,
                        });
                    }
                    if let Some(t) = self.transfers.iter_mut().find(|t| t.info.id == id) {
                        t.state = state;
                    }
                }
                Event::LocalFiles(files) => self.local = files,
                Event::Reach(addrs) => self.reach = addrs,
                Event::Reachability(r) => self.reachability = r,
                Event::Saved(config) => {
                    self.config = *config;
                    self.settings = SettingsForm::from_config(&self.config, &self.data_dir);
                }
            }
        }
    }

    /// Files dropped onto the window each get the share dialog, one after
    /// the other; while files hover over the window, it says what a drop
    /// does.
    fn take_drops(&mut self, ctx: &egui::Context) {
        let (dropped, hovering): (Vec<PathBuf>, bool) = ctx.input(|i| {
            (
                i.raw
                    .dropped_files
                    .iter()
                    .map(|f| f.path().to_owned())
                    .collect(),
                !i.raw.hovered_files.is_empty(),
            )
        });
        self.drops.extend(dropped);
        if self.dialog.is_none()
            && let Some(path) = self.drops.pop_front()
        {
            self.dialog = Some(share_dialog(path.display().to_string()));
        }
        if hovering {
            egui::Area::new(egui::Id::new("drop-hint"))
                .order(egui::Order::Foreground)
                .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
                .show(ctx, |ui| {
                    theme::card()
                        .stroke(egui::Stroke::new(2.0, theme::CYAN))
                        .show(ui, |ui| {
                            ui.label(RichText::new("Drop to share").size(24.0).color(theme::CYAN));
                        });
                });
        }
    }
}

impl eframe::App for ShoalApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        ShoalApp::ui(self, ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}
