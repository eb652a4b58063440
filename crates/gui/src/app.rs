//! The window: header, controls, the peers / transfers / local files /
//! settings views, the activity log and the dialogs. Everything here runs
//! on the UI thread and only talks to the worker through [`Backend`].

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

/// How the share dialog locks the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    Plain,
    Passphrase,
    Peer,
}

/// A dialog over the window; every one can be cancelled.
enum Dialog {
    Share {
        path: String,
        lock: Lock,
        pass: String,
        again: String,
        peer: Option<PeerId>,
        error: Option<String>,
    },
    Passphrase {
        id: u64,
        path: PathBuf,
        pass: String,
        error: Option<String>,
    },
    Download {
        target: String,
        error: Option<String>,
    },
    Send {
        peer: PeerRecord,
        path: String,
        error: Option<String>,
    },
}

/// What a pick in the file dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PickFor {
    ShareFile,
    SendFile,
    ShareFolder,
    Downloads,
    Inbox,
}

/// The settings form: text as typed, checked when saved.
#[derive(Default, Clone)]
struct SettingsForm {
    tracker: String,
    name: String,
    shares: Vec<String>,
    downloads: String,
    inbox: String,
    accept_any: bool,
    accept: String,
    upload: String,
    download: String,
    inbox_size: String,
    error: Option<String>,
}

impl SettingsForm {
    fn from_config(c: &Config, data_dir: &Path) -> Self {
        let rate = |r: Option<u64>| r.map(|b| b.to_string()).unwrap_or_default();
        Self {
            tracker: c
                .tracker
                .clone()
                .unwrap_or_else(|| shoal_core::config::DEFAULT_TRACKER.to_owned()),
            name: c.name.clone().unwrap_or_default(),
            shares: c.shares.iter().map(|p| p.display().to_string()).collect(),
            downloads: c
                .downloads
                .clone()
                .unwrap_or_else(|| crate::backend::default_downloads(data_dir))
                .display()
                .to_string(),
            inbox: c
                .inbox
                .clone()
                .unwrap_or_else(|| data_dir.join("inbox"))
                .display()
                .to_string(),
            accept_any: c.accept_from.iter().any(|a| a == "any"),
            accept: c
                .accept_from
                .iter()
                .filter(|a| *a != "any")
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            upload: rate(c.max_upload_rate),
            download: rate(c.max_download_rate),
            inbox_size: rate(c.max_inbox_size),
            error: None,
        }
    }

    /// The config these fields describe, on top of `base` (which keeps
    /// what the form does not show).
    fn to_config(&self, base: &Config) -> Result<Config, String> {
        let mut c = base.clone();
        let tracker = self.tracker.trim();
        if !(tracker.starts_with("http://") || tracker.starts_with("https://")) {
            return Err("the tracker URL must start with http:// or https://".into());
        }
        c.tracker = Some(tracker.to_owned());
        let name = self.name.trim();
        if !name.is_empty() {
            shoal_core::wire::validate_name(name).map_err(|m| format!("name: {m}"))?;
        }
        c.name = (!name.is_empty()).then(|| name.to_owned());
        c.shares = self
            .shares
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        c.downloads =
            Some(PathBuf::from(self.downloads.trim())).filter(|p| !p.as_os_str().is_empty());
        c.inbox = Some(PathBuf::from(self.inbox.trim())).filter(|p| !p.as_os_str().is_empty());
        c.accept_from = if self.accept_any {
            vec!["any".into()]
        } else {
            self.accept
                .split(|ch: char| ch.is_whitespace() || ch == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        shoal_node::inbox::Accept::from_list(&c.accept_from)?;
        let rate = |s: &str, what: &str| -> Result<Option<u64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                parse_rate(s).map(Some).map_err(|e| format!("{what}: {e}"))
            }
        };
        c.max_upload_rate = rate(&self.upload, "upload limit")?;
        c.max_download_rate = rate(&self.download, "download limit")?;
        c.max_inbox_size = rate(&self.inbox_size, "inbox size limit")?;
        Ok(c)
    }
}

/// Everything the app shows, and its end of the worker.
pub struct ShoalApp {
    backend: Backend,
    feed: LogFeed,
    data_dir: PathBuf,
    me: PeerId,
    name: String,
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
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("peer-{}", me.short()));
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
            name,
            config,
            net: NetState::Offline,
            port: None,
            view: View::Peers,
            peers: Vec::new(),
            browsing: None,
            transfers: Vec::new(),
            local: Vec::new(),
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
            self.backend.set_ctx(&ctx);
            self.feed.set_ctx(&ctx);
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
                Event::Saved(config) => {
                    self.name = config
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("peer-{}", self.me.short()));
                    self.config = *config;
                    self.settings = SettingsForm::from_config(&self.config, &self.data_dir);
                }
            }
        }
    }

    /// Files dropped onto the window open the share dialog (one at a time).
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

    fn header(&mut self, ui: &mut Ui) {
        theme::card().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new("🐟 Shoal")
                        .size(26.0)
                        .strong()
                        .color(theme::CYAN),
                );
                ui.add_space(12.0);
                ui.vertical(|ui| {
                    ui.label(RichText::new(&self.name).strong().size(16.0));
                    let short = self.me.short();
                    if ui
                        .button(RichText::new(format!("id {short}…")).color(theme::MUTED))
                        .on_hover_text("copy the full peer id")
                        .clicked()
                    {
                        ui.ctx().copy_text(self.me.to_string());
                        self.feed.push(Level::Info, "peer id copied");
                    }
                });
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    let port = self
                        .port
                        .map_or_else(|| "port —".to_owned(), |p| format!("port {p}"));
                    ui.label(RichText::new(port).color(theme::MUTED));
                    let (text, color) = match self.net {
                        NetState::Online => ("ONLINE", theme::GREEN),
                        NetState::Offline => ("OFFLINE", theme::RED),
                        NetState::Connecting => ("CONNECTING", theme::YELLOW),
                    };
                    ui.label(RichText::new(text).strong().size(18.0).color(color));
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
                    ui.painter().circle_filled(rect.center(), 6.0, color);
                });
            });
        });
    }

    fn controls(&mut self, ui: &mut Ui) {
        theme::card().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal_wrapped(|ui| {
                let running = self.port.is_some() || self.net == NetState::Connecting;
                if running {
                    if ui.button(accent("Stop network", theme::RED)).clicked() {
                        self.backend.send(Command::Stop);
                    }
                } else if ui.button(accent("Start network", theme::GREEN)).clicked() {
                    self.backend.send(Command::Start);
                }
                if ui.button(accent("Share file", theme::PURPLE)).clicked() {
                    self.dialog = Some(share_dialog(String::new()));
                }
                if ui.button(accent("Download", theme::CYAN)).clicked() {
                    self.dialog = Some(Dialog::Download {
                        target: String::new(),
                        error: None,
                    });
                }
                ui.separator();
                for (view, label) in [
                    (View::Peers, "Peers"),
                    (View::Transfers, "Transfers"),
                    (View::Local, "Local files"),
                    (View::Settings, "Settings"),
                ] {
                    if ui.selectable_label(self.view == view, label).clicked() {
                        self.view = view;
                        if view == View::Peers {
                            self.backend.send(Command::RefreshPeers);
                        }
                    }
                }
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    if ui.button("Exit").clicked() {
                        ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                });
            });
        });
    }

    fn peers_view(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading(RichText::new("Peers").color(theme::CYAN));
            if ui.button("Refresh").clicked() {
                self.backend.send(Command::RefreshPeers);
            }
        });
        if self.peers.is_empty() {
            ui.label(
                RichText::new(match self.net {
                    NetState::Online => "No other peers online yet.",
                    _ => "Start the network to see who is online.",
                })
                .color(theme::MUTED),
            );
        }
        let mut browse = None;
        let mut send = None;
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            ui.horizontal(|ui| {
                for (h, w) in PEER_COLUMNS {
                    cell(ui, w, |ui| {
                        ui.label(RichText::new(h).color(theme::MUTED));
                    });
                }
            });
            // Only the rows in view are laid out: a tracker may list thousands.
            let row_h = ui.spacing().interact_size.y + 6.0;
            ScrollArea::vertical().id_salt("peers").show_rows(
                ui,
                row_h,
                self.peers.len(),
                |ui, rows| {
                    for row in &self.peers[rows] {
                        let p = &row.record;
                        let selected = self
                            .browsing
                            .as_ref()
                            .is_some_and(|b| b.peer.peer_id == p.peer_id);
                        ui.horizontal(|ui| {
                            let [name, id, standing, files, _] = PEER_COLUMNS.map(|c| c.1);
                            cell(ui, name, |ui| {
                                if ui.selectable_label(selected, &p.name).clicked() {
                                    browse = Some(p.clone());
                                }
                            });
                            cell(ui, id, |ui| {
                                ui.label(RichText::new(p.peer_id.short()).monospace())
                                    .on_hover_text(p.peer_id.to_string());
                            });
                            cell(ui, standing, |ui| {
                                ui.label(
                                    RichText::new(row.verdict).color(verdict_color(row.verdict)),
                                );
                            });
                            cell(ui, files, |ui| {
                                ui.label(row.files.map_or("?".to_owned(), |n| n.to_string()));
                            });
                            if labelled_button(ui, "Send file…", format!("Send file to {}", p.name))
                                .clicked()
                            {
                                send = Some(p.clone());
                            }
                        });
                    }
                },
            );
            self.files_of_peer(&mut cols[1]);
        });
        if let Some(p) = browse {
            self.backend.send(Command::Browse(p.clone()));
            self.browsing = Some(Browse {
                peer: p,
                files: None,
            });
        }
        if let Some(peer) = send {
            self.dialog = Some(Dialog::Send {
                peer,
                path: String::new(),
                error: None,
            });
        }
    }

    fn files_of_peer(&mut self, ui: &mut Ui) {
        let Some(b) = &self.browsing else {
            ui.label(RichText::new("Click a peer to see its files.").color(theme::MUTED));
            return;
        };
        ui.label(
            RichText::new(format!("Files of {}", b.peer.name))
                .strong()
                .color(theme::PURPLE),
        );
        let mut get = None;
        match &b.files {
            None => {
                ui.spinner();
            }
            Some(Err(e)) => {
                ui.label(RichText::new(format!("cannot list its files: {e}")).color(theme::RED));
            }
            Some(Ok(files)) if files.is_empty() => {
                ui.label(RichText::new("It shares no files.").color(theme::MUTED));
            }
            Some(Ok(files)) => {
                let row_h = ui.spacing().interact_size.y + 6.0;
                ScrollArea::vertical().id_salt("files").show_rows(
                    ui,
                    row_h,
                    files.len(),
                    |ui, rows| {
                        for f in &files[rows] {
                            ui.horizontal(|ui| {
                                let lock = if f.encrypted { "🔒 " } else { "" };
                                cell(ui, 260.0, |ui| {
                                    ui.add(
                                        egui::Label::new(format!("{lock}{}", f.name)).truncate(),
                                    )
                                    .on_hover_text(format!("{}\n{}", f.name, f.content_id));
                                });
                                cell(ui, 80.0, |ui| {
                                    ui.label(RichText::new(human(f.size)).color(theme::MUTED));
                                });
                                if labelled_button(ui, "⬇ Download", format!("Download {}", f.name))
                                    .clicked()
                                {
                                    get = Some(f.clone());
                                }
                            });
                        }
                    },
                );
            }
        }
        if let Some(file) = get {
            let peer = b.peer.clone();
            self.backend.send(Command::Download { peer, file });
        }
    }

    fn transfers_view(&mut self, ui: &mut Ui) {
        ui.heading(RichText::new("Transfers").color(theme::CYAN));
        if self.transfers.is_empty() {
            ui.label(
                RichText::new("Nothing yet: download a file from a peer, or send one.")
                    .color(theme::MUTED),
            );
            return;
        }
        let mut commands = Vec::new();
        let mut ask = None;
        ScrollArea::vertical().id_salt("transfers").show(ui, |ui| {
            for t in self.transfers.iter_mut().rev() {
                t.update_speed();
                ui.horizontal(|ui| {
                    let arrow = match t.info.direction {
                        Direction::Download => "⬇",
                        Direction::Push => "⬆",
                    };
                    let who = match t.info.direction {
                        Direction::Download => format!("from {}", t.info.peer),
                        Direction::Push => format!("to {}", t.info.peer),
                    };
                    ui.label(RichText::new(arrow).color(theme::CYAN));
                    ui.label(RichText::new(&t.info.name).strong());
                    ui.label(RichText::new(who).color(theme::MUTED));
                });
                ui.horizontal(|ui| {
                    let f = t.fraction();
                    ui.add(
                        egui::ProgressBar::new(f)
                            .desired_width(280.0)
                            .fill(theme::PURPLE)
                            .text(format!("{}%", (f * 100.0).floor() as u32)),
                    );
                    let (done, total) = t.info.meter.bytes();
                    let mut facts = format!("{} of {}", human(done), human(total));
                    if t.state == TransferState::Running {
                        facts += &format!(
                            " · {}/s · {} · {} source{}",
                            human(t.speed as u64),
                            eta(total.saturating_sub(done), t.speed),
                            t.info.meter.sources(),
                            if t.info.meter.sources() == 1 { "" } else { "s" }
                        );
                    }
                    ui.label(RichText::new(facts).color(theme::MUTED));
                });
                ui.horizontal(|ui| {
                    let id = t.info.id;
                    match &t.state {
                        TransferState::Running => {
                            ui.label(RichText::new("Running").color(theme::BLUE));
                            if ui.button("Pause").clicked() {
                                commands.push(Command::Pause(id));
                            }
                            if ui.button("Cancel").clicked() {
                                commands.push(Command::Cancel(id));
                            }
                        }
                        TransferState::Paused | TransferState::Failed(_) => {
                            match &t.state {
                                TransferState::Failed(e) => {
                                    ui.label(RichText::new("Failed").color(theme::RED))
                                        .on_hover_text(e);
                                }
                                _ => {
                                    ui.label(RichText::new("Paused").color(theme::YELLOW));
                                }
                            }
                            if ui.button("Resume").clicked() {
                                commands.push(Command::Resume(id));
                            }
                            if ui.button("Cancel").clicked() {
                                commands.push(Command::Cancel(id));
                            }
                        }
                        TransferState::NeedsPassphrase(path) => {
                            ui.label(RichText::new("Encrypted").color(theme::YELLOW));
                            if ui.button("Enter passphrase").clicked() {
                                ask = Some((id, path.clone()));
                            }
                            if ui.button("Open folder").clicked() {
                                open_folder(path.parent());
                            }
                        }
                        TransferState::Done(path) => {
                            ui.label(RichText::new("Done").color(theme::GREEN));
                            if t.info.direction == Direction::Download
                                && ui.button("Open folder").clicked()
                            {
                                open_folder(path.parent());
                            }
                        }
                        TransferState::Cancelled => {
                            ui.label(RichText::new("Cancelled").color(theme::MUTED));
                        }
                    }
                });
                ui.separator();
            }
        });
        for c in commands {
            self.backend.send(c);
        }
        if let Some((id, path)) = ask {
            self.dialog = Some(Dialog::Passphrase {
                id,
                path,
                pass: String::new(),
                error: None,
            });
        }
    }

    fn local_view(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading(RichText::new("Local files").color(theme::CYAN));
            for dir in &self.config.shares {
                if ui.button(format!("Open {}", dir.display())).clicked() {
                    open_folder(Some(dir));
                }
            }
        });
        if self.config.shares.is_empty() {
            ui.label(
                RichText::new("No share folder yet: add one in Settings.").color(theme::MUTED),
            );
        } else if self.port.is_none() {
            ui.label(
                RichText::new("Start the network to index and offer your shares.")
                    .color(theme::MUTED),
            );
        }
        let row_h = ui.spacing().interact_size.y + 6.0;
        ScrollArea::vertical().id_salt("local").show_rows(
            ui,
            row_h,
            self.local.len(),
            |ui, rows| {
                for f in &self.local[rows] {
                    ui.horizontal(|ui| {
                        let lock = if f.encrypted { "🔒 " } else { "" };
                        cell(ui, 360.0, |ui| {
                            ui.add(egui::Label::new(format!("{lock}{}", f.name)).truncate());
                        });
                        cell(ui, 90.0, |ui| {
                            ui.label(RichText::new(human(f.size)).color(theme::MUTED));
                        });
                        ui.label(RichText::new(f.content_id.to_string()).monospace().small())
                            .on_hover_text("content id: `shoal get` takes it");
                    });
                }
            },
        );
    }

    fn settings_view(&mut self, ui: &mut Ui) {
        ui.heading(RichText::new("Settings").color(theme::CYAN));
        ui.label(
            RichText::new(format!(
                "Kept in {} (the CLI reads the same file).",
                self.data_dir
                    .join(shoal_core::config::CONFIG_FILE)
                    .display()
            ))
            .color(theme::MUTED),
        );
        let s = &mut self.settings;
        let mut pick = None;
        ScrollArea::vertical().id_salt("settings").show(ui, |ui| {
            egui::Grid::new("settings-grid")
                .num_columns(2)
                .spacing([16.0, 10.0])
                .show(ui, |ui| {
                    labelled_field(ui, "Tracker URL", &mut s.tracker);
                    ui.end_row();
                    labelled_field(ui, "Name", &mut s.name);
                    ui.end_row();
                    ui.label("Share folders");
                    ui.vertical(|ui| {
                        let mut remove = None;
                        for (i, dir) in s.shares.iter_mut().enumerate() {
                            ui.horizontal(|ui| {
                                ui.add(TextEdit::singleline(dir).desired_width(360.0));
                                if ui.button("Remove").clicked() {
                                    remove = Some(i);
                                }
                            });
                        }
                        if let Some(i) = remove {
                            s.shares.remove(i);
                        }
                        ui.horizontal(|ui| {
                            if ui.button("Add folder…").clicked() {
                                pick = Some(PickFor::ShareFolder);
                            }
                            if ui.button("Add empty row").clicked() {
                                s.shares.push(String::new());
                            }
                        });
                    });
                    ui.end_row();
                    labelled_field(ui, "Download folder", &mut s.downloads);
                    if ui.button("Choose…").clicked() {
                        pick = Some(PickFor::Downloads);
                    }
                    ui.end_row();
                    labelled_field(ui, "Inbox folder", &mut s.inbox);
                    if ui.button("Choose… ").clicked() {
                        pick = Some(PickFor::Inbox);
                    }
                    ui.end_row();
                    ui.label("Who may send files");
                    ui.vertical(|ui| {
                        ui.checkbox(&mut s.accept_any, "Anyone");
                        if !s.accept_any {
                            let l = ui.label(
                                RichText::new("These peer ids (one per line; none: nobody)")
                                    .color(theme::MUTED),
                            );
                            ui.add(
                                TextEdit::multiline(&mut s.accept)
                                    .desired_rows(2)
                                    .desired_width(420.0),
                            )
                            .labelled_by(l.id);
                        }
                    });
                    ui.end_row();
                    labelled_field(ui, "Upload limit (e.g. 10MiB; empty: none)", &mut s.upload);
                    ui.end_row();
                    labelled_field(
                        ui,
                        "Download limit (e.g. 10MiB; empty: none)",
                        &mut s.download,
                    );
                    ui.end_row();
                    labelled_field(
                        ui,
                        "Inbox size limit (e.g. 10GiB; empty: none)",
                        &mut s.inbox_size,
                    );
                    ui.end_row();
                });
            if let Some(e) = &s.error {
                ui.label(RichText::new(e).color(theme::RED));
            }
            ui.horizontal(|ui| {
                if ui.button(accent("Save settings", theme::GREEN)).clicked() {
                    match s.to_config(&self.config) {
                        Ok(c) => {
                            s.error = None;
                            self.backend.send(Command::Save(Box::new(c)));
                        }
                        Err(e) => s.error = Some(e),
                    }
                }
                if ui.button("Revert").clicked() {
                    *s = SettingsForm::from_config(&self.config, &self.data_dir);
                }
            });
        });
        if let Some(p) = pick {
            self.open_picker(p);
        }
    }

    fn log(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Activity").strong().color(theme::CYAN));
            for level in Level::ALL {
                let mut on = self.levels.contains(&level);
                if ui
                    .checkbox(
                        &mut on,
                        RichText::new(level.name()).color(theme::level_color(level)),
                    )
                    .changed()
                {
                    if on {
                        self.levels.insert(level);
                    } else {
                        self.levels.remove(&level);
                    }
                }
            }
            let l = ui.label("Filter");
            ui.add(TextEdit::singleline(&mut self.filter).desired_width(160.0))
                .labelled_by(l.id);
        });
        let needle = self.filter.to_lowercase();
        theme::card().show(ui, |ui| {
            ScrollArea::vertical()
                .id_salt("log-lines")
                .stick_to_bottom(true)
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    self.feed.with_lines(|lines| {
                        for l in lines.iter().filter(|l| {
                            self.levels.contains(&l.level)
                                && (needle.is_empty() || l.text.to_lowercase().contains(&needle))
                        }) {
                            ui.horizontal_wrapped(|ui| {
                                ui.label(RichText::new(&l.time).monospace().color(theme::MUTED));
                                ui.label(RichText::new(&l.text).color(theme::level_color(l.level)));
                            });
                        }
                    });
                });
        });
    }

    fn open_picker(&mut self, what: PickFor) {
        self.pick_for = Some(what);
        match what {
            PickFor::ShareFile | PickFor::SendFile => self.picker.pick_file(),
            PickFor::ShareFolder | PickFor::Downloads | PickFor::Inbox => {
                self.picker.pick_directory();
            }
        }
    }

    fn file_picker(&mut self, ctx: &egui::Context) {
        self.picker.update(ctx);
        let Some(path) = self.picker.take_picked() else {
            return;
        };
        let text = path.display().to_string();
        match (self.pick_for.take(), &mut self.dialog) {
            (Some(PickFor::ShareFile), Some(Dialog::Share { path, .. }))
            | (Some(PickFor::SendFile), Some(Dialog::Send { path, .. })) => *path = text,
            (Some(PickFor::ShareFolder), _) => self.settings.shares.push(text),
            (Some(PickFor::Downloads), _) => self.settings.downloads = text,
            (Some(PickFor::Inbox), _) => self.settings.inbox = text,
            _ => {}
        }
    }

    fn dialogs(&mut self, ctx: &egui::Context) {
        // While the file picker is open it has the screen to itself (a
        // modal below it would swallow its clicks); the dialog comes back
        // with the picked path, or unchanged if the picker is cancelled.
        if *self.picker.state() == egui_file_dialog::DialogState::Open {
            return;
        }
        let Some(mut dialog) = self.dialog.take() else {
            return;
        };
        let mut close = false;
        let mut pick = None;
        let title = match &dialog {
            Dialog::Share { .. } => "Share a file",
            Dialog::Passphrase { .. } => "Open an encrypted file",
            Dialog::Download { .. } => "Download a file",
            Dialog::Send { .. } => "Send a file",
        };
        let peers: Vec<(PeerId, String)> = self
            .peers
            .iter()
            .map(|p| (p.record.peer_id, p.record.name.clone()))
            .collect();
        egui::Modal::new(egui::Id::new("dialog")).show(ctx, |ui| {
            ui.set_width(460.0);
            ui.heading(RichText::new(title).color(theme::CYAN));
            match &mut dialog {
                Dialog::Share {
                    path,
                    lock,
                    pass,
                    again,
                    peer,
                    error,
                } => {
                    ui.horizontal(|ui| {
                        labelled_field(ui, "File", path);
                        if ui.button("Browse…").clicked() {
                            pick = Some(PickFor::ShareFile);
                        }
                    });
                    ui.label(RichText::new("or drop a file onto the window").color(theme::MUTED));
                    ui.horizontal(|ui| {
                        ui.radio_value(lock, Lock::Plain, "Plain");
                        ui.radio_value(lock, Lock::Passphrase, "Encrypt with a passphrase");
                        ui.radio_value(lock, Lock::Peer, "Encrypt to a peer");
                    });
                    match lock {
                        Lock::Plain => {}
                        Lock::Passphrase => {
                            secret_field(ui, "Passphrase", pass);
                            secret_field(ui, "Passphrase again", again);
                        }
                        Lock::Peer => {
                            let chosen = peer
                                .and_then(|id| peers.iter().find(|(p, _)| *p == id))
                                .map_or("choose a peer", |(_, n)| n.as_str());
                            egui::ComboBox::from_label("Peer")
                                .selected_text(chosen)
                                .show_ui(ui, |ui| {
                                    for (id, name) in &peers {
                                        ui.selectable_value(peer, Some(*id), name);
                                    }
                                });
                            if peers.is_empty() {
                                ui.label(
                                    RichText::new("No peers known: start the network first.")
                                        .color(theme::MUTED),
                                );
                            }
                        }
                    }
                    show_error(ui, error);
                    ui.horizontal(|ui| {
                        if ui.button(accent("Share", theme::PURPLE)).clicked() {
                            let checked = if self.config.shares.is_empty() {
                                Err("no share folder yet: add one in Settings (Share folders), then share again".to_owned())
                            } else {
                                share_command(path, *lock, pass, again, *peer)
                            };
                            match checked {
                                Ok(c) => {
                                    self.backend.send(c);
                                    close = true;
                                }
                                Err(e) => *error = Some(e),
                            }
                        }
                        if ui.button("Cancel").clicked() {
                            close = true;
                        }
                    });
                }
                Dialog::Passphrase {
                    id,
                    path,
                    pass,
                    error,
                } => {
                    ui.label(format!(
                        "{} is encrypted with a passphrase.",
                        path.file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                    ));
                    let enter = secret_field(ui, "Passphrase", pass);
                    show_error(ui, error);
                    ui.horizontal(|ui| {
                        if ui.button(accent("Open", theme::GREEN)).clicked() || enter {
                            match shoal_crypt::passphrase(std::mem::take(pass)) {
                                Ok(p) => {
                                    self.backend.send(Command::Open {
                                        id: *id,
                                        path: path.clone(),
                                        passphrase: p,
                                    });
                                    close = true;
                                }
                                Err(e) => *error = Some(e.to_string()),
                            }
                        }
                        if ui.button("Cancel").clicked() {
                            close = true;
                        }
                    });
                }
                Dialog::Download { target, error } => {
                    labelled_field(ui, "PEER:PATH or content id", target);
                    show_error(ui, error);
                    ui.horizontal(|ui| {
                        if ui.button(accent("Start download", theme::CYAN)).clicked() {
                            if target.trim().is_empty() {
                                *error = Some(
                                    "type what to download, e.g. alice:docs/report.pdf".into(),
                                );
                            } else {
                                self.backend.send(Command::Fetch(target.trim().to_owned()));
                                close = true;
                            }
                        }
                        if ui.button("Cancel").clicked() {
                            close = true;
                        }
                    });
                }
                Dialog::Send { peer, path, error } => {
                    ui.label(format!("Into the inbox of {}", peer.name));
                    ui.horizontal(|ui| {
                        labelled_field(ui, "File", path);
                        if ui.button("Browse…").clicked() {
                            pick = Some(PickFor::SendFile);
                        }
                    });
                    show_error(ui, error);
                    ui.horizontal(|ui| {
                        if ui.button(accent("Send", theme::PURPLE)).clicked() {
                            match existing_file(path) {
                                Ok(p) => {
                                    self.backend.send(Command::Send {
                                        peer: peer.clone(),
                                        path: p,
                                    });
                                    close = true;
                                }
                                Err(e) => *error = Some(e),
                            }
                        }
                        if ui.button("Cancel").clicked() {
                            close = true;
                        }
                    });
                }
            }
        });
        if ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
            close = true;
        }
        if !close {
            self.dialog = Some(dialog);
        }
        if let Some(p) = pick {
            self.open_picker(p);
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

/// Columns of the peer list: heading and width.
const PEER_COLUMNS: [(&str, f32); 5] = [
    ("Name", 120.0),
    ("Id", 80.0),
    ("Standing", 70.0),
    ("Files", 40.0),
    ("", 0.0),
];

/// A button showing `text` that screen readers (and tests) know by the
/// longer `label`, e.g. "Download" known as "Download notes.txt".
fn labelled_button(ui: &mut Ui, text: &str, label: String) -> egui::Response {
    let r = ui.button(text);
    r.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Button, true, &label));
    r
}

/// A fixed-width cell of a row, its content left-aligned.
fn cell(ui: &mut Ui, width: f32, add: impl FnOnce(&mut Ui)) {
    let h = ui.spacing().interact_size.y;
    ui.allocate_ui_with_layout(
        egui::vec2(width, h),
        Layout::left_to_right(Align::Center),
        |ui| {
            ui.set_min_width(width);
            add(ui);
        },
    );
}

fn share_dialog(path: String) -> Dialog {
    Dialog::Share {
        path,
        lock: Lock::Plain,
        pass: String::new(),
        again: String::new(),
        peer: None,
        error: None,
    }
}

/// The share command the dialog's fields describe, or what is wrong.
fn share_command(
    path: &str,
    lock: Lock,
    pass: &mut String,
    again: &mut String,
    peer: Option<PeerId>,
) -> Result<Command, String> {
    let path = existing_file(path)?;
    let lock = match lock {
        Lock::Plain => ShareLock::Plain,
        Lock::Passphrase => {
            if pass != again {
                again.clear();
                return Err("the two passphrases differ; type them again".into());
            }
            let p = shoal_crypt::passphrase(std::mem::take(pass)).map_err(|e| e.to_string())?;
            again.clear();
            ShareLock::Passphrase(p)
        }
        Lock::Peer => ShareLock::Peer(peer.ok_or("choose the peer to encrypt to")?),
    };
    Ok(Command::Share { path, lock })
}

/// A path typed or picked that names an existing file (not a folder).
fn existing_file(path: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path.trim());
    if path.trim().is_empty() {
        return Err("choose a file first".into());
    }
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Err(format!(
            "{} is a folder; choose a file (to share a whole folder, add it in Settings)",
            p.display()
        )),
        Ok(_) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} does not exist", p.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

fn labelled_field(ui: &mut Ui, label: &str, value: &mut String) {
    let l = ui.label(label);
    ui.add(TextEdit::singleline(value).desired_width(360.0))
        .labelled_by(l.id);
}

/// A masked field; true when Enter was pressed in it.
fn secret_field(ui: &mut Ui, label: &str, value: &mut String) -> bool {
    ui.horizontal(|ui| {
        let l = ui.label(label);
        let r = ui
            .add(
                TextEdit::singleline(value)
                    .password(true)
                    .desired_width(280.0),
            )
            .labelled_by(l.id);
        r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
    })
    .inner
}

fn show_error(ui: &mut Ui, error: &Option<String>) {
    if let Some(e) = error {
        ui.label(RichText::new(e).color(theme::RED));
    }
}

fn accent(text: &str, color: Color32) -> RichText {
    RichText::new(text).strong().color(color)
}

fn verdict_color(v: &str) -> Color32 {
    match v {
        "good" => theme::GREEN,
        "suspect" => theme::YELLOW,
        "banned" => theme::RED,
        _ => theme::MUTED,
    }
}

/// Opens a folder in the system's file manager, without waiting for it.
fn open_folder(dir: Option<&Path>) {
    let Some(dir) = dir else { return };
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener).arg(dir).spawn() {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot open the folder");
    }
}

/// Bytes in binary units.
pub fn human(n: u64) -> String {
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

/// Time left at `speed` bytes per second.
fn eta(left: u64, speed: f64) -> String {
    if speed < 1.0 {
        return "ETA —".into();
    }
    let s = (left as f64 / speed).ceil() as u64;
    if s >= 3600 {
        format!("ETA {}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("ETA {}m{:02}s", s / 60, s % 60)
    } else {
        format!("ETA {s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_values_are_refused() {
        let dir = Path::new("/data");
        let c = Config {
            tracker: Some("http://127.0.0.1:5000".into()),
            shares: vec!["/s".into()],
            accept_from: vec!["any".into()],
            max_upload_rate: Some(1024),
            ..Default::default()
        };
        let form = SettingsForm::from_config(&c, dir);
        let back = form.to_config(&c).unwrap();
        assert_eq!(back.tracker, c.tracker);
        assert_eq!(back.shares, c.shares);
        assert_eq!(back.accept_from, c.accept_from);
        assert_eq!(back.max_upload_rate, Some(1024));
        assert_eq!(back.downloads, Some(dir.join("downloads")));

        let mut bad = form.clone();
        bad.tracker = "ftp://x".into();
        assert!(bad.to_config(&c).unwrap_err().contains("http://"));
        let mut bad = form.clone();
        bad.upload = "fast".into();
        assert!(bad.to_config(&c).unwrap_err().contains("upload limit"));
        let mut bad = form.clone();
        bad.accept_any = false;
        bad.accept = "not-an-id".into();
        assert!(bad.to_config(&c).unwrap_err().contains("not-an-id"));
    }

    #[test]
    fn eta_and_sizes_read_well() {
        assert_eq!(eta(100, 0.0), "ETA —");
        assert_eq!(eta(100, 10.0), "ETA 10s");
        assert_eq!(eta(6000, 10.0), "ETA 10m00s");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
