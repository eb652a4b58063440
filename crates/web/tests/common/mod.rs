//! A real tracker and real nodes on 127.0.0.1, and a node service with
//! its web UI, for the API and browser tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_core::config::{Config, RetryConfig};
use shoal_core::{Identity, PeerId};
use shoal_node::tracker_client::TrackerClient;
use shoal_node::{Node, NodeConfig};
use shoal_service::{Command, Service, Setup};
use shoal_web::Web;

/// Longest wait for anything the network does.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn retry() -> RetryConfig {
    RetryConfig {
        attempts: 2,
        base_ms: 100,
        factor: 2.0,
        max_ms: 400,
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand_like(seed);
    (0..n).map(|_| rng()).collect()
}

fn fastrand_like(mut s: u64) -> impl FnMut() -> u8 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 24) as u8
    }
}

/// Waits for `cond` (async) to hold, failing after [`PATIENCE`].
pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

pub struct Net {
    pub tracker: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    nodes: Vec<Node>,
    dirs: Vec<tempfile::TempDir>,
}

impl Net {
    pub async fn new() -> Net {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = shoal_tracker::TrackerConfig {
            max_ttl: Duration::from_secs(5),
            token: None,
            ..Default::default()
        };
        tokio::spawn(shoal_tracker::run(listener, config, async {
            let _ = rx.await;
        }));
        Net {
            tracker: format!("http://{addr}"),
            stop: Some(tx),
            nodes: Vec::new(),
            dirs: Vec::new(),
        }
    }

    pub fn dir(&mut self) -> PathBuf {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_owned();
        self.dirs.push(d);
        p
    }

    /// A node `name` sharing `files`, registered with the tracker.
    pub async fn node(
        &mut self,
        name: &str,
        files: &[(&str, &[u8])],
        upload_rate: Option<u64>,
        accept_any: bool,
    ) -> (PeerId, PathBuf) {
        let share = self.dir();
        for (n, b) in files {
            std::fs::write(share.join(n), b).unwrap();
        }
        let data = self.dir();
        let mut cfg = NodeConfig::new(data.clone(), "127.0.0.1:0".parse().unwrap(), name.into());
        cfg.shares = vec![share];
        cfg.ttl = 3;
        cfg.max_upload_rate = upload_rate;
        cfg.trackers = vec![TrackerClient::new(&self.tracker, None, retry()).unwrap()];
        if accept_any {
            cfg.inbox.accept = shoal_node::inbox::Accept::from_list(&["any".into()]).unwrap();
        }
        let inbox = cfg.inbox.dir.clone();
        let node = Node::start(cfg, Arc::new(Identity::generate().unwrap()))
            .await
            .unwrap();
        let id = node.peer_id();
        self.nodes.push(node);
        (id, inbox)
    }

    /// This machine's node: a service with its web UI, started.
    pub async fn me(&mut self, name: &str, web: impl FnOnce(&mut shoal_web::Options)) -> Me {
        let data = self.dir();
        let share = data.join("share");
        let downloads = data.join("downloads");
        std::fs::create_dir_all(&share).unwrap();
        let config = Config {
            tracker: Some(self.tracker.clone()),
            name: Some(name.into()),
            shares: vec![share.clone()],
            listen: Some("127.0.0.1:0".into()),
            downloads: Some(downloads.clone()),
            retry: retry(),
            ..Config::default()
        };
        config.save(&data).unwrap();
        let identity = Arc::new(Identity::load_or_create(&data).unwrap());
        let feed = shoal_service::activity::LogFeed::default();
        let service = Service::spawn(
            Setup::from_settings(data.clone(), config, identity, feed),
            None,
        );
        service.run(Command::Start).await;
        let mut opts = shoal_web::Options {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            password: None,
            cert: None,
            data_dir: data.clone(),
        };
        web(&mut opts);
        let web = Web::start(service.clone(), opts).await.unwrap();
        let base = web.url().trim_end_matches('/').to_owned();
        let _ = shoal_node::tls::provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Me {
            key: web.api_key().to_owned(),
            service,
            web,
            data,
            share,
            downloads,
            http,
            base,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub struct Me {
    pub service: Service,
    pub web: Web,
    pub data: PathBuf,
    pub share: PathBuf,
    pub downloads: PathBuf,
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Me {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A multipart upload with these text fields, then the file.
    pub async fn upload(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file_name: &str,
        content: &[u8],
    ) -> reqwest::Response {
        let (body, ctype) = multipart(fields, file_name, content);
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The event stream, read by a task into a channel of (name, data).
    pub async fn events(
        &self,
    ) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
        use futures_util::StreamExt;
        let r = self.get("/api/v1/events").await;
        assert!(r.status().is_success());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut s = r.bytes_stream();
        tokio::spawn(async move {
            let mut buf = String::new();
            while let Some(Ok(chunk)) = s.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let mut name = String::new();
                    let mut data = String::new();
                    for l in block.lines() {
                        if let Some(n) = l.strip_prefix("event:") {
                            name = n.trim().into();
                        } else if let Some(d) = l.strip_prefix("data:") {
                            data = d.trim().into();
                        }
                    }
                    if !name.is_empty() {
                        let v = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                        if tx.send((name, v)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        rx
    }

    /// Waits until the peer list names `name`.
    pub async fn wait_for_peer(&self, name: &str) {
        wait_for(&format!("{name} in the peer list"), || async {
            let v = self.get_json("/api/v1/peers").await;
            v.as_array().unwrap().iter().any(|p| p["name"] == name)
        })
        .await;
    }

    /// Waits until transfer `id` is in `state`; returns it.
    pub async fn wait_state(&self, id: u64, state: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            last = self.get_json(&format!("/api/v1/transfers/{id}")).await;
            if last["state"] == state {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("transfer {id} never got {state}; last {last}");
    }
}

/// A multipart/form-data body and its content type.
pub fn multipart(fields: &[(&str, &str)], file_name: &str, content: &[u8]) -> (Vec<u8>, String) {
    let boundary = "shoal-test-boundary-7f3a";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(content);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (b, format!("multipart/form-data; boundary={boundary}"))
}

/// Every file under `dir`, relative.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
