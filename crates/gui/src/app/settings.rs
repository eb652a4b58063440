//! The settings form: config.toml's keys as text fields, checked when
//! saved.

use super::*;

/// The settings form: text as typed, checked when saved.
#[derive(Default, Clone)]
pub(super) struct SettingsForm {
    pub(super) tracker: String,
    pub(super) name: String,
    pub(super) shares: Vec<String>,
    pub(super) downloads: String,
    pub(super) inbox: String,
    pub(super) accept_any: bool,
    pub(super) accept: String,
    pub(super) upload: String,
    pub(super) download: String,
    pub(super) inbox_size: String,
    pub(super) lan: bool,
    pub(super) dht: bool,
    pub(super) dht_bootstrap: String,
    pub(super) port_mapping: bool,
    pub(super) relays: String,
    pub(super) error: Option<String>,
}

impl SettingsForm {
    pub(super) fn from_config(c: &Config, data_dir: &Path) -> Self {
        let rate = |r: Option<u64>| r.map(|b| b.to_string()).unwrap_or_default();
        Self {
            tracker: c.tracker_url(),
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
            lan: c.lan,
            dht: c.dht,
            dht_bootstrap: c.dht_bootstrap.join("\n"),
            port_mapping: c.port_mapping,
            relays: c.relays.join("\n"),
            error: None,
        }
    }

    /// The config these fields describe, on top of `base` (which keeps
    /// what the form does not show).
    pub(super) fn to_config(&self, base: &Config) -> Result<Config, String> {
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
        c.lan = self.lan;
        c.dht = self.dht;
        c.dht_bootstrap = self
            .dht_bootstrap
            .split(|ch: char| ch.is_whitespace() || ch == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        c.port_mapping = self.port_mapping;
        c.relays = self
            .relays
            .split(|ch: char| ch.is_whitespace() || ch == ',')
            .filter(|s| !s.is_empty())
            .map(shoal_node::reach::relay_url)
            .collect();
        for r in &c.relays {
            let rest = r.strip_prefix(shoal_core::wire::RELAY_SCHEME).unwrap_or(r);
            shoal_core::wire::HostPort::parse(rest)
                .map_err(|e| format!("relay: {e}; give it as relay://HOST:PORT"))?;
        }
        for node in &c.dht_bootstrap {
            let port = node
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none_or(|p| p == 0) {
                return Err(format!(
                    "private DHT node `{}`: give it as HOST:PORT",
                    shoal_core::text::bounded(node, 60)
                ));
            }
        }
        Ok(c)
    }
}

impl ShoalApp {
    pub(super) fn settings_view(&mut self, ui: &mut Ui) {
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
        // Save and its verdict stay in sight however long the form grows.
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
        if let Some(e) = &s.error {
            ui.label(RichText::new(e).color(theme::RED));
        }
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
                    ui.label("Find peers beyond the tracker");
                    ui.vertical(|ui| {
                        ui.checkbox(&mut s.lan, "On the local network (mDNS multicast)");
                        ui.checkbox(
                            &mut s.dht,
                            "On the public Mainline DHT (UDP to nodes worldwide)",
                        );
                        let l = ui.label(
                            RichText::new("Private DHT nodes, HOST:PORT (one per line)")
                                .color(theme::MUTED),
                        );
                        ui.add(
                            TextEdit::multiline(&mut s.dht_bootstrap)
                                .desired_rows(2)
                                .desired_width(420.0),
                        )
                        .labelled_by(l.id);
                    });
                    ui.end_row();
                    ui.label("Behind a router");
                    ui.vertical(|ui| {
                        ui.checkbox(
                            &mut s.port_mapping,
                            "Ask the router to forward my port (UPnP, PCP, NAT-PMP)",
                        );
                        let l = ui.label(
                            RichText::new("Relays, relay://HOST:PORT (one per line)")
                                .color(theme::MUTED),
                        );
                        ui.add(
                            TextEdit::multiline(&mut s.relays)
                                .desired_rows(2)
                                .desired_width(420.0),
                        )
                        .labelled_by(l.id);
                    });
                    ui.end_row();
                });
        });
        if let Some(p) = pick {
            self.open_picker(p);
        }
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
        let mut on = form.clone();
        on.lan = true;
        on.dht_bootstrap = "127.0.0.1:6881\n10.0.0.2:7000".into();
        let back = on.to_config(&c).unwrap();
        assert!(back.lan && !back.dht);
        assert!(!back.port_mapping && back.relays.is_empty());
        assert_eq!(back.dht_bootstrap, ["127.0.0.1:6881", "10.0.0.2:7000"]);
        let mut bad = form.clone();
        bad.dht_bootstrap = "no-port".into();
        assert!(bad.to_config(&c).unwrap_err().contains("HOST:PORT"));
        let mut bad = form.clone();
        bad.accept_any = false;
        bad.accept = "not-an-id".into();
        assert!(bad.to_config(&c).unwrap_err().contains("not-an-id"));
    }
}
