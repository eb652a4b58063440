//! Clients that hold a tracker's resources without using them, on real
//! sockets on 127.0.0.1: each is cut off, and everyone else is served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn tracker() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shoal_tracker::run(
        listener,
        shoal_tracker::TrackerConfig::default(),
        async move {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

/// A connection from `source` (another loopback address is another client).
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{source}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// One plain request; the answer's first line.
async fn ask(mut c: TcpStream, request: &str) -> String {
    c.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn idle_connections_from_one_client_do_not_starve_the_others() {
    let (addr, _stop) = tracker().await;
    let cap = shoal_tracker::LIMITS.per_client;
    let mut idle = Vec::new();
    for _ in 0..cap + 40 {
        idle.push(connect_from("127.0.0.1", addr).await);
    }
    // The ones over the client's share are closed at once.
    let mut closed = 0;
    for c in idle.iter_mut().rev().take(40) {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 40, "connections over the per-client cap are closed");
    // Another client is served while they sit there.
    for source in ["127.0.0.2", "127.0.0.3"] {
        let c = connect_from(source, addr).await;
        let line = ask(c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert!(line.contains("200"), "{source}: {line}");
    }
}

#[tokio::test]
async fn a_dripping_request_body_is_cut_off() {
    let (addr, _stop) = tracker().await;
    let mut c = connect_from("127.0.0.1", addr).await;
    c.write_all(
        b"PUT /v1/providers HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    // One byte a second: far below the minimum body rate.
    let ended = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if c.write_all(b" ").await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_millis(10), c.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => break true,
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
    };
    assert!(ended, "the tracker still waited for the body after 30 s");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn made_up_methods_do_not_mint_metric_series() {
    let (addr, _stop) = tracker().await;
    for i in 0..200 {
        let c = connect_from("127.0.0.1", addr).await;
        let _ = ask(c, &format!("X{i}Y /healthz HTTP/1.1\r\nHost: t\r\n\r\n")).await;
    }
    let mut c = connect_from("127.0.0.1", addr).await;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).await.unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("shoal_tracker_http_requests_total{"))
        .count();
    assert!(series < 10, "{series} series:\n{text}");
    assert!(!text.contains("X1Y"), "{text}");
}
