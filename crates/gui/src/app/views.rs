//! The views: header, controls, peers and their files, transfers, local
//! files, and the activity log.

use super::*;
use shoal_core::text::escape;

impl ShoalApp {
    pub(super) fn header(&mut self, ui: &mut Ui) {
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
                    ui.label(
                        RichText::new(self.config.peer_name(&self.me))
                            .strong()
                            .size(16.0),
                    );
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
                    if self.port.is_some()
                        && let Some(r) = self.reachability.reach()
                    {
                        let text = match &self.reachability.relay {
                            Some(relay) if r == shoal_core::wire::Reach::Relayed => {
                                format!("relayed via {}", shoal_core::text::escape(relay))
                            }
                            _ => r.as_str().to_owned(),
                        };
                        ui.label(RichText::new(text).color(theme::MUTED))
                            .on_hover_text("How other peers reach this node");
                    }
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

    pub(super) fn controls(&mut self, ui: &mut Ui) {
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

    pub(super) fn peers_view(&mut self, ui: &mut Ui) {
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
                                if let Some(reach) = p.reach {
                                    ui.label(RichText::new(reach.as_str()).color(theme::MUTED))
                                        .on_hover_text("How this peer is reached");
                                }
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

    pub(super) fn files_of_peer(&mut self, ui: &mut Ui) {
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
                                        egui::Label::new(format!("{lock}{}", escape(&f.name)))
                                            .truncate(),
                                    )
                                    .on_hover_text(format!(
                                        "{}\n{}",
                                        escape(&f.name),
                                        f.content_id
                                    ));
                                });
                                cell(ui, 80.0, |ui| {
                                    ui.label(
                                        RichText::new(shoal_core::human_size(f.size))
                                            .color(theme::MUTED),
                                    );
                                });
                                if labelled_button(
                                    ui,
                                    "⬇ Download",
                                    format!("Download {}", escape(&f.name)),
                                )
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

    pub(super) fn transfers_view(&mut self, ui: &mut Ui) {
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
                    ui.label(RichText::new(escape(&t.info.name)).strong());
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
                    let mut facts = format!(
                        "{} of {}",
                        shoal_core::human_size(done),
                        shoal_core::human_size(total)
                    );
                    if t.state == TransferState::Running {
                        facts += &format!(
                            " · {}/s · {} · {} source{}",
                            shoal_core::human_size(t.speed as u64),
                            eta(total.saturating_sub(done), t.speed),
                            t.info.meter.sources(),
                            if t.info.meter.sources() == 1 { "" } else { "s" }
                        );
                    }
                    let via = t.info.meter.via();
                    if !via.is_empty() && t.info.direction == Direction::Download {
                        facts += &format!(" · via {via}");
                    }
                    ui.label(RichText::new(facts).color(theme::MUTED));
                });
                ui.horizontal(|ui| {
                    let id = t.info.id;
                    match &t.state {
                        TransferState::Running => {
                            if t.info.meter.is_finishing() {
                                // Every byte is in; it is being made durable or
                                // opened, which is left to finish.
                                ui.label(RichText::new("Finishing").color(theme::BLUE));
                            } else {
                                ui.label(RichText::new("Running").color(theme::BLUE));
                                if ui.button("Pause").clicked() {
                                    commands.push(Command::Pause(id));
                                }
                                if ui.button("Cancel").clicked() {
                                    commands.push(Command::Cancel(id));
                                }
                            }
                        }
                        TransferState::Paused | TransferState::Failed(_) => {
                            match &t.state {
                                TransferState::Failed(e) => {
                                    ui.label(RichText::new("Failed").color(theme::RED))
                                        .on_hover_text(e.text.as_str());
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

    pub(super) fn local_view(&mut self, ui: &mut Ui) {
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
        let mut copied = None;
        ScrollArea::vertical().id_salt("local").show_rows(
            ui,
            row_h,
            self.local.len(),
            |ui, rows| {
                for f in &self.local[rows] {
                    ui.horizontal(|ui| {
                        if !self.reach.is_empty()
                            && ui
                                .button("Copy link")
                                .on_hover_text(
                                    "a shoal: link: `shoal get LINK` (or Download here) fetches the file with no tracker",
                                )
                                .clicked()
                        {
                            let link = shoal_core::Link {
                                content_id: f.content_id,
                                size: f.size,
                                name: f.name.rsplit('/').next().unwrap_or(&f.name).to_owned(),
                                peer: self.me,
                                addrs: self.reach.clone(),
                            };
                            ui.ctx().copy_text(link.to_string());
                            copied = Some(f.name.clone());
                        }
                        let lock = if f.encrypted { "🔒 " } else { "" };
                        cell(ui, 360.0, |ui| {
                            ui.add(egui::Label::new(format!("{lock}{}", f.name)).truncate());
                        });
                        cell(ui, 90.0, |ui| {
                            ui.label(
                                RichText::new(shoal_core::human_size(f.size)).color(theme::MUTED),
                            );
                        });
                        ui.label(RichText::new(f.content_id.to_string()).monospace().small())
                            .on_hover_text("content id: `shoal get` takes it");
                    });
                }
            },
        );
        if let Some(name) = copied {
            self.feed.push(
                Level::Info,
                format!("link to {} copied", shoal_core::text::escape(&name)),
            );
        }
    }

    pub(super) fn log(&mut self, ui: &mut Ui) {
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
}

/// Columns of the peer list: heading and width.
pub(super) const PEER_COLUMNS: [(&str, f32); 5] = [
    ("Name", 120.0),
    ("Id", 80.0),
    ("Standing", 70.0),
    ("Files", 40.0),
    ("", 0.0),
];

/// A button showing `text` that screen readers (and tests) know by the
/// longer `label`, e.g. "Download" known as "Download notes.txt".
pub(super) fn labelled_button(ui: &mut Ui, text: &str, label: String) -> egui::Response {
    let r = ui.button(text);
    r.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Button, true, &label));
    r
}

/// A fixed-width cell of a row, its content left-aligned.
pub(super) fn cell(ui: &mut Ui, width: f32, add: impl FnOnce(&mut Ui)) {
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

pub(super) fn accent(text: &str, color: Color32) -> RichText {
    RichText::new(text).strong().color(color)
}

pub(super) fn verdict_color(v: &str) -> Color32 {
    match v {
        "good" => theme::GREEN,
        "suspect" => theme::YELLOW,
        "banned" => theme::RED,
        _ => theme::MUTED,
    }
}

/// Opens a folder in the system's file manager, without waiting for it.
pub(super) fn open_folder(dir: Option<&Path>) {
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

/// Time left at `speed` bytes per second.
pub(super) fn eta(left: u64, speed: f64) -> String {
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
    fn eta_reads_well() {
        assert_eq!(eta(100, 0.0), "ETA —");
        assert_eq!(eta(100, 10.0), "ETA 10s");
        assert_eq!(eta(6000, 10.0), "ETA 10m00s");
    }
}
