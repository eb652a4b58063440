//! The desktop app driven by its labels (egui_kittest, headless) against a
//! real tracker and real nodes on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use shoal_core::config::{Config, RetryConfig};
use shoal_core::{Identity, PeerId};
use shoal_gui::activity::{Level, LogFeed};
use shoal_gui::backend::TransferState;
use shoal_gui::{Options, ShoalApp};
use shoal_node::tracker_client::TrackerClient;
use shoal_node::{Node, NodeConfig};

/// Longest wait for anything the network does.
const PATIENCE: Duration = Duration::from_secs(60);

fn retry() -> RetryConfig {
    RetryConfig {
        attempts: 2,
        base_ms: 100,
        factor: 2.0,
        max_ms: 400,
    }
}

/// A tracker (restartable on the same port) and peers, on a runtime of
/// the test's own.
struct Net {
    rt: tokio::runtime::Runtime,
    tracker: SocketAddr,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    nodes: Vec<Node>,
    dirs: Vec<tempfile::TempDir>,
}

impl Net {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut net = Net {
            rt,
            tracker: "127.0.0.1:0".parse().unwrap(),
            stop: None,
            nodes: Vec::new(),
            dirs: Vec::new(),
        };
        net.start_tracker();
        net
    }

    fn url(&self) -> String {
        format!("http://{}", self.tracker)
    }

    fn start_tracker(&mut self) {
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind(self.tracker))
            .unwrap();
        self.tracker = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = shoal_tracker::TrackerConfig {
            max_ttl: Duration::from_secs(2),
            token: None,
            ..Default::default()
        };
        let task = self.rt.spawn(shoal_tracker::run(listener, config, async {
            let _ = rx.await;
        }));
        self.stop = Some((tx, task));
    }

    fn stop_tracker(&mut self) {
        let (tx, task) = self.stop.take().unwrap();
        let _ = tx.send(());
        self.rt.block_on(task).unwrap().unwrap();
    }

    fn dir(&mut self) -> PathBuf {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_owned();
        self.dirs.push(d);
        p
    }

    /// A node called `name` sharing `files`, registered with the tracker.
    fn node(&mut self, name: &str, files: &[(&str, &[u8])], upload_rate: Option<u64>) -> PeerId {
        self.node_with(name, files, |c| c.max_upload_rate = upload_rate)
    }

    /// [`Net::node`] with its config changed by `tweak` first.
    fn node_with(
        &mut self,
        name: &str,
        files: &[(&str, &[u8])],
        tweak: impl FnOnce(&mut NodeConfig),
    ) -> PeerId {
        let share = self.dir();
        for (n, bytes) in files {
            std::fs::write(share.join(n), bytes).unwrap();
        }
        let mut cfg = NodeConfig::new(self.dir(), "127.0.0.1:0".parse().unwrap(), name.into());
        cfg.shares = vec![share];
        cfg.ttl = 2;
        cfg.trackers = vec![TrackerClient::new(&self.url(), None, retry()).unwrap()];
        tweak(&mut cfg);
        let identity = Arc::new(Identity::generate().unwrap());
        let node = self.rt.block_on(Node::start(cfg, identity)).unwrap();
        let id = node.peer_id();
        self.nodes.push(node);
        id
    }

    /// The app with its own data dir and config.toml, not started.
    fn app(&mut self, name: &str) -> App {
        let data = self.dir();
        let share = data.join("share");
        let downloads = data.join("downloads");
        std::fs::create_dir_all(&share).unwrap();
        let config = Config {
            tracker: Some(self.url()),
            name: Some(name.into()),
            shares: vec![share.clone()],
            listen: Some("127.0.0.1:0".into()),
            downloads: Some(downloads.clone()),
            retry: retry(),
            ..Config::default()
        };
        config.save(&data).unwrap();
        Self::open(data)
    }

    /// The app on an existing data dir (as after a restart).
    fn open(data: PathBuf) -> App {
        let share = data.join("share");
        let downloads = data.join("downloads");
        let app = ShoalApp::new(
            Options {
                data_dir: data.clone(),
                start: false,
                get: Vec::new(),
                tracker: None,
            },
            LogFeed::default(),
        )
        .unwrap();
        let harness = Harness::builder()
            .with_size(egui::vec2(1280.0, 900.0))
            .build_ui_state(|ui, app: &mut ShoalApp| app.ui(ui), app);
        App {
            h: harness,
            data,
            share,
            downloads,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in self.nodes.drain(..) {
            self.rt.block_on(n.shutdown());
        }
    }
}

struct App {
    h: Harness<'static, ShoalApp>,
    data: PathBuf,
    share: PathBuf,
    downloads: PathBuf,
}

impl App {
    /// Steps frames until `cond` holds; fails after [`PATIENCE`].
    fn wait(&mut self, what: &str, cond: impl Fn(&Harness<'static, ShoalApp>) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.h.step();
            if cond(&self.h) {
                return;
            }
            if Instant::now() > deadline {
                let log = self.h.state().feed().with_lines(|l| {
                    l.iter()
                        .map(|x| format!("{:?} {}", x.level, x.text))
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                panic!("timed out waiting for {what}; the app's log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn click(&mut self, label: &str) {
        // Let sizes settle (a dialog re-centres a frame after it grows),
        // so the click lands where the widget is.
        self.h.step();
        self.h.step();
        self.h.get_by_label(label).click();
        self.h.step();
        self.h.step();
    }

    fn has(&self, label: &str) -> bool {
        self.h.query_by_label(label).is_some()
    }

    fn type_into(&mut self, label: &str, text: &str) {
        self.h.get_by_label(label).focus();
        self.h.step();
        self.h.get_by_label(label).type_text(text);
        self.h.step();
    }

    fn start_and_see(&mut self, peer: &str) {
        self.click("Start network");
        self.wait("ONLINE", |h| h.query_by_label("ONLINE").is_some());
        self.wait(&format!("peer {peer} listed"), |h| {
            h.query_by_label(peer).is_some()
        });
    }

    fn logged(&self, level: Level, text: &str) -> bool {
        self.h
            .state()
            .feed()
            .with_lines(|l| l.iter().any(|x| x.level == level && x.text.contains(text)))
    }

    fn last_transfer(&self) -> TransferState {
        self.h
            .state()
            .transfers
            .last()
            .map(|t| t.state.clone())
            .expect("a transfer")
    }

    fn drop_file(&mut self, path: &Path) {
        self.h
            .input_mut()
            .dropped_files
            .push(Arc::new(Dropped(path.to_owned())));
        self.h.step();
        self.h.step();
    }
}

/// Whether the newest transfer is done.
fn last_is_done(h: &Harness<'static, ShoalApp>) -> bool {
    h.state()
        .transfers
        .last()
        .is_some_and(|t| matches!(t.state, TransferState::Done(_)))
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn start_see_peers_browse_and_download_to_100_percent() {
    let mut net = Net::new();
    let big = random_bytes(5 * 1024 * 1024 + 123);
    net.node("alice", &[("big.bin", &big), ("note.txt", b"hi")], None);
    let mut app = net.app("me");
    assert!(app.has("OFFLINE"));

    app.start_and_see("alice");
    app.wait("alice's file count", |h| {
        h.state()
            .peers
            .iter()
            .any(|p| p.record.name == "alice" && p.files == Some(2))
    });
    app.click("alice");
    app.wait("alice's listing", |h| {
        h.query_by_label("Download big.bin").is_some()
    });
    assert!(app.has("Download note.txt"));
    app.click("Download big.bin");
    app.wait("the download to finish", last_is_done);
    app.wait("100% on the bar", |h| h.query_by_label("100%").is_some());
    assert!(app.has("Done"));
    let got = std::fs::read(app.downloads.join("big.bin")).unwrap();
    assert_eq!(blake3::hash(&got), blake3::hash(&big));
    assert!(app.logged(Level::Success, "saved"));

    // The Download button takes PEER:PATH, as `shoal get` does.
    app.click("Download");
    app.type_into("PEER:PATH, content id or shoal: link", "alice:note.txt");
    app.click("Start download");
    app.wait("note.txt saved", |h| {
        h.state().transfers.len() == 2
            && matches!(h.state().transfers[1].state, TransferState::Done(_))
    });
    assert_eq!(
        std::fs::read(app.downloads.join("note.txt")).unwrap(),
        b"hi"
    );
    // A name nobody shares is a red line, not a transfer.
    app.click("Download");
    app.type_into("PEER:PATH, content id or shoal: link", "alice:nope.txt");
    app.click("Start download");
    app.wait("the error", |h| {
        h.state().feed().with_lines(|l| {
            l.iter()
                .any(|x| x.level == Level::Error && x.text.contains("shares no file `nope.txt`"))
        })
    });
    assert_eq!(app.h.state().transfers.len(), 2);
}

#[test]
fn a_file_shared_with_a_passphrase_opens_only_with_it() {
    let mut net = Net::new();
    let mut bob = net.app("bob");
    let mut carol = net.app("carol");
    let secret = random_bytes(300_000);
    let outside = bob.data.join("secret.txt");
    std::fs::write(&outside, &secret).unwrap();

    bob.click("Start network");
    bob.wait("bob ONLINE", |h| h.query_by_label("ONLINE").is_some());

    // Dropped onto the window: the share dialog opens with the file.
    bob.drop_file(&outside);
    assert!(bob.has("Share a file"));
    bob.click("Encrypt with a passphrase");
    // An empty passphrase, then two that differ, are refused in place.
    bob.click("Share");
    assert!(bob.has("Share a file"));
    assert!(bob.h.query_by_label_contains("empty").is_some());
    bob.type_into("Passphrase", "correct horse");
    bob.type_into("Passphrase again", "correct hose");
    bob.click("Share");
    assert!(bob.has("the two passphrases differ; type them again"));
    bob.type_into("Passphrase again", "correct horse");
    bob.click("Share");
    assert!(!bob.has("Share a file"), "the dialog closes once shared");
    let shared = bob.share.join("secret.txt.age");
    bob.wait("the encrypted copy in the share", |_| shared.exists());
    assert!(
        !bob.share.join("secret.txt").exists(),
        "no plaintext shared"
    );
    assert!(
        std::fs::read(&shared)
            .unwrap()
            .starts_with(b"age-encryption.org/v1")
    );
    bob.click("Local files");
    bob.wait("the shared file in Local files", |h| {
        h.query_by_label("🔒 secret.txt.age").is_some()
    });

    carol.start_and_see("bob");
    carol.click("bob");
    carol.wait("bob's encrypted file listed", |h| {
        h.query_by_label("Download secret.txt.age").is_some()
    });
    assert!(carol.has("🔒 secret.txt.age"));
    carol.click("Download secret.txt.age");
    carol.wait("the passphrase dialog", |h| {
        h.query_by_label("Passphrase").is_some()
    });
    let plain = carol.downloads.join("secret.txt");

    // Cancelled: the verified ciphertext waits; the transfer offers the
    // dialog again.
    carol.click("Cancel");
    assert!(!carol.has("Open an encrypted file"));
    assert!(carol.downloads.join("secret.txt.age").exists());
    carol.click("Enter passphrase");

    // A wrong passphrase: a red line in the log, nothing at the final path.
    carol.type_into("Passphrase", "wrong horse");
    carol.click("Open");
    carol.wait("the red error", |h| {
        h.state().feed().with_lines(|l| {
            l.iter()
                .any(|x| x.level == Level::Error && x.text.contains("cannot open"))
        })
    });
    assert_eq!(
        shoal_gui::theme::level_color(Level::Error),
        shoal_gui::theme::RED
    );
    carol.wait("the red line in the window", |h| {
        h.query_by_label_contains("cannot open").is_some()
    });
    assert!(!plain.exists(), "nothing at the final path");
    carol.wait("the transfer waits for the passphrase", |h| {
        h.state()
            .transfers
            .last()
            .is_some_and(|t| matches!(t.state, TransferState::NeedsPassphrase(_)))
    });
    let leftovers: Vec<_> = std::fs::read_dir(&carol.downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        leftovers,
        ["secret.txt.age"],
        "only the verified ciphertext"
    );

    // The right one opens it.
    carol.click("Enter passphrase");
    carol.type_into("Passphrase", "correct horse");
    carol.click("Open");
    carol.wait("the file opened", last_is_done);
    assert_eq!(std::fs::read(&plain).unwrap(), secret);
    assert!(!carol.downloads.join("secret.txt.age").exists());
    assert!(carol.logged(Level::Success, "(decrypted)"));
}

#[test]
fn the_header_follows_the_tracker_down_and_up() {
    let mut net = Net::new();
    let mut app = net.app("me");
    app.click("Start network");
    app.wait("ONLINE", |h| h.query_by_label("ONLINE").is_some());
    let port = net.tracker.port();

    net.stop_tracker();
    app.wait("OFFLINE", |h| h.query_by_label("OFFLINE").is_some());
    assert!(app.logged(Level::Warning, "tracker unreachable"));

    net.start_tracker();
    assert_eq!(net.tracker.port(), port);
    app.wait("ONLINE again", |h| h.query_by_label("ONLINE").is_some());

    app.click("Stop network");
    app.wait("OFFLINE once stopped", |h| {
        h.query_by_label("OFFLINE").is_some() && h.query_by_label("Start network").is_some()
    });
}

#[test]
fn transfers_pause_resume_and_cancel() {
    let mut net = Net::new();
    let data = random_bytes(6 * 1024 * 1024);
    let other = random_bytes(6 * 1024 * 1024 + 1);
    // Slow enough (2 MiB/s) to catch it running.
    net.node(
        "slowpoke",
        &[("a.bin", &data), ("b.bin", &other)],
        Some(2 * 1024 * 1024),
    );
    let mut app = net.app("me");
    app.start_and_see("slowpoke");
    app.click("slowpoke");
    app.wait("the listing", |h| {
        h.query_by_label("Download a.bin").is_some()
    });
    app.click("Download a.bin");
    app.wait("bytes arriving", |h| {
        h.state()
            .transfers
            .last()
            .is_some_and(|t| t.info.meter.bytes().0 > 0)
    });
    app.click("Pause");
    app.wait("paused", |h| h.query_by_label("Paused").is_some());
    assert_eq!(app.last_transfer(), TransferState::Paused);
    assert!(!app.downloads.join("a.bin").exists());
    // Paused means stopped: the `.part` is unlocked at once, so another
    // download (or `shoal get`) could take it.
    let part = std::fs::File::open(app.downloads.join("a.bin.part")).unwrap();
    part.try_lock()
        .expect("the paused download still holds its .part");
    drop(part);
    // Closed while paused: the next session lists it, paused, and resumes
    // it from the pieces already verified.
    let dir = app.data.clone();
    drop(app);
    let mut app = Net::open(dir);
    app.wait("the paused download listed again", |h| {
        h.state().transfers.len() == 1
            && h.state().transfers[0].state == TransferState::Paused
            && h.query_by_label("Paused").is_some()
    });
    assert_eq!(app.h.state().transfers[0].info.name, "a.bin");
    assert!(app.h.state().transfers[0].info.meter.bytes().0 > 0);
    assert!(app.logged(Level::Info, "unfinished download"));
    app.click("Start network");
    app.wait("ONLINE", |h| h.query_by_label("ONLINE").is_some());
    app.click("Resume");
    app.wait("done after resuming", last_is_done);
    assert_eq!(std::fs::read(app.downloads.join("a.bin")).unwrap(), data);

    // Cancel: what arrived is thrown away, nothing at the final path.
    app.click("Peers");
    app.wait("slowpoke listed", |h| {
        h.query_by_label("slowpoke").is_some()
    });
    app.click("slowpoke");
    app.wait("the listing", |h| {
        h.query_by_label("Download b.bin").is_some()
    });
    app.click("Download b.bin");
    app.wait("b arriving", |h| {
        h.state().transfers.len() == 2 && h.state().transfers[1].info.meter.bytes().0 > 0
    });
    app.click("Cancel");
    app.wait("cancelled", |h| h.query_by_label("Cancelled").is_some());
    // Cancelled means removed, by the time the row says so.
    assert!(!app.downloads.join("b.bin.part").exists());
    assert!(!app.downloads.join("b.bin").exists());
    assert!(!app.downloads.join("b.bin.part.state").exists());
}

#[test]
fn every_dialog_cancels_and_bad_input_changes_nothing() {
    let mut net = Net::new();
    let mut app = net.app("me");
    let share_before = std::fs::read_dir(&app.share).unwrap().count();

    // Share: nothing chosen, a folder, a file that vanished; then cancel.
    app.click("Share file");
    assert!(app.has("Share a file"));
    app.click("Share");
    assert!(app.has("choose a file first"));
    let folder = app.data.clone();
    app.type_into("File", folder.to_str().unwrap());
    app.click("Share");
    assert!(app.h.query_by_label_contains("is a folder").is_some());
    // The file picker opens over the dialog and cancels back to it.
    app.click("Browse…");
    assert!(app.has("📂 Open File"));
    assert!(!app.has("Share a file"), "the picker has the screen");
    app.click("🚫 Cancel");
    assert!(!app.has("📂 Open File"));
    assert!(app.has("Share a file"));
    app.click("Cancel");
    assert!(!app.has("Share a file"));

    let gone = app.data.join("gone.txt");
    std::fs::write(&gone, b"x").unwrap();
    app.drop_file(&gone);
    std::fs::remove_file(&gone).unwrap();
    app.click("Share");
    assert!(app.h.query_by_label_contains("does not exist").is_some());
    app.h.key_press(egui::Key::Escape);
    app.h.step();
    app.h.step();
    assert!(!app.has("Share a file"), "Escape closes a dialog");
    assert_eq!(std::fs::read_dir(&app.share).unwrap().count(), share_before);

    // Encrypt to a peer without choosing one.
    let file = app.data.join("f.txt");
    std::fs::write(&file, b"f").unwrap();
    app.drop_file(&file);
    app.click("Encrypt to a peer");
    app.click("Share");
    assert!(app.has("choose the peer to encrypt to"));
    app.click("Cancel");

    // Download: empty target, then cancel.
    app.click("Download");
    app.click("Start download");
    assert!(
        app.h
            .query_by_label_contains("type what to download")
            .is_some()
    );
    app.click("Cancel");
    assert!(!app.has("Start download"));

    // Two files dropped at once: one dialog after the other.
    let second = app.data.join("second.txt");
    std::fs::write(&second, b"2").unwrap();
    for p in [&file, &second] {
        app.h
            .input_mut()
            .dropped_files
            .push(Arc::new(Dropped(p.clone())));
    }
    app.h.step();
    app.h.step();
    assert_eq!(app.h.get_by_label("File").value().as_deref(), file.to_str());
    app.click("Cancel");
    assert_eq!(
        app.h.get_by_label("File").value().as_deref(),
        second.to_str()
    );
    app.click("Cancel");
    assert!(!app.has("Share a file"));

    // With no share folder, sharing says where to add one.
    let mut config = Config::load(&app.data).unwrap();
    config.shares.clear();
    config.save(&app.data).unwrap();
    let bare = ShoalApp::new(
        Options {
            data_dir: app.data.clone(),
            start: false,
            get: Vec::new(),
            tracker: None,
        },
        LogFeed::default(),
    )
    .unwrap();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 900.0))
        .build_ui_state(|ui, app: &mut ShoalApp| app.ui(ui), bare);
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(file.clone())));
    h.step();
    h.step();
    h.get_by_label("Share").click();
    h.step();
    h.step();
    assert!(h.query_by_label_contains("no share folder yet").is_some());
    drop(h);
    config.shares = vec![app.share.clone()];
    config.save(&app.data).unwrap();

    // Settings: a bad rate is refused and config.toml is untouched.
    let config_path = app.data.join("config.toml");
    let before = std::fs::read_to_string(&config_path).unwrap();
    app.click("Settings");
    app.type_into("Upload limit (e.g. 10MiB; empty: none)", "fast");
    app.click("Save settings");
    assert!(app.h.query_by_label_contains("upload limit").is_some());
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), before);
    app.click("Revert");

    // A good one lands in config.toml, where the CLI reads it.
    app.type_into("Download limit (e.g. 10MiB; empty: none)", "3MiB");
    app.click("Anyone");
    app.click("Save settings");
    app.wait("settings saved", |h| {
        h.state().feed().with_lines(|l| {
            l.iter()
                .any(|x| x.level == Level::Success && x.text.contains("settings saved"))
        })
    });
    let saved = Config::load(&app.data).unwrap();
    assert_eq!(saved.max_download_rate, Some(3 * 1024 * 1024));
    assert_eq!(saved.accept_from, ["any"]);
    assert_eq!(saved.tracker.as_deref(), Some(net.url().as_str()));
    assert!(
        !saved.lan && !saved.dht,
        "discovery beyond the tracker is opt-in"
    );

    // A private DHT (one node on 127.0.0.1; the LAN and the public DHT
    // stay off here): saved, and the app joins it.
    let first = net
        .rt
        .block_on(shoal_dht::Dht::start(&shoal_dht::DhtConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            server: true,
            ..Default::default()
        }))
        .unwrap();
    let boot = first.local_addr().to_string();
    app.type_into("Private DHT nodes, HOST:PORT (one per line)", &boot);
    app.click("Save settings");
    app.wait("the app on the DHT", |h| {
        h.state()
            .feed()
            .with_lines(|l| l.iter().any(|x| x.text.contains("on the DHT at udp://")))
    });
    let saved = Config::load(&app.data).unwrap();
    assert_eq!(saved.dht_bootstrap, [boot]);
    assert!(!saved.lan && !saved.dht);
}

#[test]
fn closing_the_app_deregisters_its_node() {
    let mut net = Net::new();
    net.node("alice", &[], None);
    let mut app = net.app("leaver");
    app.start_and_see("alice");
    let tracker = TrackerClient::new(&net.url(), None, retry()).unwrap();
    let listed = |net: &Net| {
        net.rt
            .block_on(tracker.peers())
            .unwrap()
            .iter()
            .any(|p| p.name == "leaver")
    };
    assert!(listed(&net));
    drop(app);
    assert!(!listed(&net), "the tracker still lists the closed app");
}

#[test]
fn a_file_sent_to_a_peer_lands_in_its_inbox() {
    let mut net = Net::new();
    let inbox = net.dir();
    let dir = inbox.clone();
    net.node_with("dave", &[], move |c| {
        c.inbox.dir = dir;
        c.inbox.accept = shoal_node::inbox::Accept::Anyone;
    });
    let mut app = net.app("me");
    let file = app.data.join("gift.bin");
    let bytes = random_bytes(700_000);
    std::fs::write(&file, &bytes).unwrap();
    app.start_and_see("dave");

    // A folder is refused in the dialog; cancel, then send the file.
    app.click("Send file to dave");
    let folder = app.data.to_str().unwrap().to_owned();
    app.type_into("File", &folder);
    app.click("Send");
    assert!(app.h.query_by_label_contains("is a folder").is_some());
    app.click("Cancel");
    assert!(!app.has("Send a file"));
    app.click("Send file to dave");
    app.type_into("File", file.to_str().unwrap());
    app.click("Send");
    app.wait("the push done", last_is_done);
    assert!(app.has("100%"));
    assert_eq!(std::fs::read(inbox.join("gift.bin")).unwrap(), bytes);
    assert!(app.logged(Level::Success, "in its inbox as gift.bin"));
}

#[test]
fn a_file_shared_to_a_peer_opens_by_itself_for_that_peer() {
    let mut net = Net::new();
    let mut bob = net.app("bob");
    let mut carol = net.app("carol");
    bob.click("Start network");
    carol.start_and_see("bob");
    bob.wait("bob sees carol", |h| {
        h.state().peers.iter().any(|p| p.record.name == "carol")
    });
    let letter = bob.data.join("letter.txt");
    std::fs::write(&letter, b"for carol only").unwrap();
    bob.drop_file(&letter);
    bob.click("Encrypt to a peer");
    bob.click("Peer");
    // The list pops up under the combo box; its entry is the last "carol".
    let entries = bob.h.query_all_by_label("carol").count();
    assert!(entries >= 2, "carol in the peer list and in the combo box");
    bob.h.query_all_by_label("carol").last().unwrap().click();
    bob.h.step();
    bob.h.step();
    bob.click("Share");
    let shared = bob.share.join("letter.txt.age");
    bob.wait("the encrypted copy", |_| shared.exists());

    carol.click("bob");
    carol.wait("bob's letter listed", |h| {
        h.query_by_label("Download letter.txt.age").is_some()
    });
    carol.click("Download letter.txt.age");
    carol.wait("the letter opened with carol's own key", last_is_done);
    assert!(!carol.has("Open an encrypted file"), "no passphrase asked");
    assert_eq!(
        std::fs::read(carol.downloads.join("letter.txt")).unwrap(),
        b"for carol only"
    );
    assert!(!carol.downloads.join("letter.txt.age").exists());
}

#[test]
fn copy_link_puts_a_shoal_link_to_a_local_file_on_the_clipboard() {
    let mut net = Net::new();
    let mut app = net.app("me");
    let bytes = random_bytes(50_000);
    std::fs::write(app.share.join("song.ogg"), &bytes).unwrap();
    app.click("Start network");
    app.wait("ONLINE", |h| h.query_by_label("ONLINE").is_some());
    app.click("Local files");
    app.wait("the file listed", |h| {
        h.query_by_label("song.ogg").is_some()
    });
    app.h.step();
    app.h.get_by_label("Copy link").click();
    // The copy is in the output of the frame that saw the click.
    let mut copied = None;
    for _ in 0..5 {
        app.h.step();
        copied = copied.or_else(|| {
            app.h
                .output()
                .platform_output
                .commands
                .iter()
                .find_map(|c| match c {
                    egui::OutputCommand::CopyText(t) => Some(t.clone()),
                    _ => None,
                })
        });
    }
    let link: shoal_core::Link = copied.expect("something copied").parse().unwrap();
    assert_eq!(link.content_id, shoal_core::ContentId::of(&bytes));
    assert_eq!((link.name.as_str(), link.size), ("song.ogg", 50_000));
    assert_eq!(link.peer, app.h.state().me());
    assert!(
        link.addrs.iter().all(|a| a.starts_with("127.0.0.1:")),
        "{:?}",
        link.addrs
    );
    assert!(app.logged(Level::Info, "link to song.ogg copied"));
}
