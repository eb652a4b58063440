//! The seed-compatible API's requests, raw bytes over one connection
//! (routes, headers, the token check, multipart uploads and their file
//! names): any request is answered with HTTP or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// A seed-API node: a share with one file, an inbox
/// of 1 MiB, the token `t`.
struct CompatFixture {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    next_client: std::sync::atomic::AtomicU32,
    _dirs: Vec<tempfile::TempDir>,
}

impl CompatFixture {
    /// Sets one up in temporary folders.
    fn new() -> Self {
        use std::sync::Arc;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (share, data) = (tempdir(), tempdir());
        std::fs::write(share.path().join("hello.txt"), b"hello").expect("a shared file");
        let db = Arc::new(shoal_node::db::NodeDb::open(data.path()).expect("a database"));
        let index = Arc::new(
            shoal_node::index::ShareIndex::new(&[share.path().to_owned()], db).expect("an index"),
        );
        index.scan().expect("a scan");
        let mut inbox = shoal_node::inbox::InboxConfig::new(data.path().join("inbox"), data.path());
        inbox.max_size = Some(1 << 20);
        let uploads = shoal_node::server::Uploads::new(shoal_node::rate::RateLimit::unlimited(), 4);
        let app = shoal_node::compat::router(
            "t",
            index,
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(inbox),
            uploads,
        );
        Self {
            runtime,
            app,
            next_client: Default::default(),
            _dirs: vec![share, data],
        }
    }

    /// Serves `bytes` as one client's connection; returns the answer.
    fn request(&self, bytes: &[u8]) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A new client address each time, so no client is slowed down.
        let n = self
            .next_client
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let remote = std::net::SocketAddr::from((n.to_be_bytes(), 40000));
        let app = self.app.clone();
        self.runtime.block_on(async move {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let tag = move |ext: &mut axum::http::Extensions| {
                ext.insert(axum::extract::ConnectInfo(remote));
            };
            let conn = tokio::spawn(shoal_net::serve_http(
                server,
                app,
                shoal_node::compat::LIMITS,
                tag,
                tokio_util::sync::CancellationToken::new(),
            ));
            let _ = client.write_all(bytes).await;
            let _ = client.shutdown().await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                client.read_to_end(&mut out),
            )
            .await;
            conn.abort();
            out
        })
    }
}


fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

static FIXTURE: std::sync::LazyLock<CompatFixture> = std::sync::LazyLock::new(CompatFixture::new);

fuzz_target!(|data: &[u8]| {
    let answer = FIXTURE.request(data);
    if !answer.is_empty() {
        assert!(answer.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&answer));
    }
});
