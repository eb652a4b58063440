//! Several `shoal tracker` processes on one real `redis-server`: one
//! network. A node registered with both stays listed when one tracker
//! dies, `get` goes through the other, and a Redis that dies and comes
//! back empty is refilled by the node's next heartbeat.

mod common;
#[path = "../../tracker/tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use common::*;
use redis_server::{RedisServer, available};

#[test]
fn trackers_on_one_redis_serve_one_network_and_survive_each_others_and_redis_death() {
    if !available("tracker replicas") {
        return;
    }
    let mut redis = RedisServer::start();
    let store = redis.url();
    let mut a = tracker_at("127.0.0.1:0", 3, &["--store", &store]);
    let b = tracker_at("127.0.0.1:0", 3, &["--store", &store]);
    assert_eq!(http_get(&a.url, "/healthz"), "ok\n");

    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let content = bytes(300_000, 16);
    std::fs::write(share.join("hello.bin"), &content).unwrap();
    // Heartbeats every second (a third of the 3 s TTL), to both trackers.
    let mut alice = node_with(
        &a.url,
        &tmp.path().join("alice"),
        &share,
        "alice",
        3,
        "127.0.0.1:0",
        &["--tracker", &b.url, "--no-web"],
    );
    let client = tmp.path().join("client");
    wait_for_peers(&client, &b.url, &["alice"], 10);
    wait_for_peers(&client, &a.url, &["alice"], 10);

    // One tracker dies: the node stays listed, `get` by name goes through
    // the other (the dead one, named first, costs one refused connection).
    a.proc.kill();
    let out = tmp.path().join("got");
    let got = shoal(
        &client,
        &a.url,
        &[
            "--tracker",
            &b.url,
            "get",
            "alice:hello.bin",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    ok(&got);
    assert_eq!(std::fs::read(out.join("hello.bin")).unwrap(), content);
    // Beyond one TTL: still listed, by the heartbeats to the live one.
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        assert_eq!(
            names(&json(&shoal(&client, &b.url, &["peers", "--json"]))),
            ["alice"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Redis dies: the tracker says so at once and keeps running; the node
    // keeps running too.
    redis.kill();
    let t = Instant::now();
    let health = http_get(&b.url, "/healthz");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(
        health.starts_with("the tracker's store is unavailable: redis://127.0.0.1:"),
        "{health}"
    );
    // Lookups get 503: what `peers` shows comes from its own cache.
    let peers = shoal(&client, &b.url, &["peers", "--json"]);
    let err = String::from_utf8_lossy(&peers.stderr);
    assert!(err.contains("503"), "{err}");
    assert_eq!(json(&peers)[0]["sources"], serde_json::json!(["cache"]));

    // Back, empty: within one heartbeat (1 s, and its retries) the node is
    // listed again.
    redis.restart();
    let back = Instant::now();
    wait_for_peers(&client, &b.url, &["alice"], 10);
    let took = back.elapsed();
    // One heartbeat is 1 s; its retries of the 503s before it, and the
    // `peers` commands polling, take the rest.
    eprintln!("listed again {took:?} after Redis returned");
    assert!(
        took < Duration::from_secs(3),
        "listed again only after {took:?}"
    );
    assert_eq!(http_get(&b.url, "/healthz"), "ok\n");
    assert!(
        alice.proc.child.try_wait().unwrap().is_none(),
        "the node kept running"
    );
    let mut b = b;
    assert!(
        b.proc.child.try_wait().unwrap().is_none(),
        "the tracker kept running"
    );
}

#[test]
fn a_tracker_speaks_tls_to_redis_and_checks_its_certificate() {
    if !available("rediss") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A CA of the test's own, and a certificate for 127.0.0.1 it signs.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        tmp.path().join("ca.pem"),
        tmp.path().join("cert.pem"),
        tmp.path().join("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let redis = RedisServer::start_tls(&cert_pem, &key_pem, &ca_pem, "hunter2");
    // The password travels in the env, not on the command line.
    let store = format!("rediss://:hunter2@127.0.0.1:{}/0", redis.port);

    let mut trusted = Proc::spawn(
        &["tracker", "--listen", "127.0.0.1:0", "--ttl", "3"],
        &[
            ("SHOAL_TRACKER_STORE", store.as_str()),
            ("SSL_CERT_FILE", ca_pem.to_str().unwrap()),
        ],
    );
    let url = trusted.wait_line("listening on ");
    wait_until("healthz ok over TLS", 10, || {
        http_get(&url, "/healthz") == "ok\n"
    });
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let _bob = node(
        &url,
        &tmp.path().join("bob"),
        &share,
        "bob",
        3,
        "127.0.0.1:0",
    );
    wait_for_peers(&tmp.path().join("client"), &url, &["bob"], 10);

    // The system's roots do not vouch for this Redis: 503, and why.
    let mut untrusted = Proc::spawn(
        &["tracker", "--listen", "127.0.0.1:0", "--store", &store],
        &[],
    );
    let url = untrusted.wait_line("listening on ");
    let health = http_get(&url, "/healthz");
    assert!(
        health.starts_with("the tracker's store is unavailable:") && health.contains("certificate"),
        "{health}"
    );
    assert!(!health.contains("hunter2"), "{health}");

    // A wrong password: 503, and why, and never the password.
    let wrong = format!("rediss://:guess@127.0.0.1:{}/0", redis.port);
    let mut refused = Proc::spawn(
        &["tracker", "--listen", "127.0.0.1:0"],
        &[
            ("SHOAL_TRACKER_STORE", wrong.as_str()),
            ("SSL_CERT_FILE", ca_pem.to_str().unwrap()),
        ],
    );
    let url = refused.wait_line("listening on ");
    let health = http_get(&url, "/healthz");
    assert!(
        health.starts_with("the tracker's store is unavailable: rediss://127.0.0.1:"),
        "{health}"
    );
    assert!(!health.contains("guess"), "{health}");
}
