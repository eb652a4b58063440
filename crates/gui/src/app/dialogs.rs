//! The dialogs (share, passphrase, download, send) and the file picker.
//! Every dialog can be cancelled; bad input is refused in place.

use super::*;

/// How the share dialog locks the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Plain,
    Passphrase,
    Peer,
}

/// A dialog over the window; every one can be cancelled.
pub(super) enum Dialog {
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
pub(super) enum PickFor {
    ShareFile,
    SendFile,
    ShareFolder,
    Downloads,
    Inbox,
}

impl ShoalApp {
    pub(super) fn open_picker(&mut self, what: PickFor) {
        self.pick_for = Some(what);
        match what {
            PickFor::ShareFile | PickFor::SendFile => self.picker.pick_file(),
            PickFor::ShareFolder | PickFor::Downloads | PickFor::Inbox => {
                self.picker.pick_directory();
            }
        }
    }

    pub(super) fn file_picker(&mut self, ctx: &egui::Context) {
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

    pub(super) fn dialogs(&mut self, ctx: &egui::Context) {
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
                    labelled_field(ui, "PEER:PATH, content id or shoal: link", target);
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

pub(super) fn share_dialog(path: String) -> Dialog {
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
pub(super) fn share_command(
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
pub(super) fn existing_file(path: &str) -> Result<PathBuf, String> {
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

pub(super) fn labelled_field(ui: &mut Ui, label: &str, value: &mut String) {
    let l = ui.label(label);
    ui.add(TextEdit::singleline(value).desired_width(360.0))
        .labelled_by(l.id);
}

/// A masked field; true when Enter was pressed in it.
pub(super) fn secret_field(ui: &mut Ui, label: &str, value: &mut String) -> bool {
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

pub(super) fn show_error(ui: &mut Ui, error: &Option<String>) {
    if let Some(e) = error {
        ui.label(RichText::new(e).color(theme::RED));
    }
}
