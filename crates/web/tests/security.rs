//! Who may use the web UI: Host, Origin and CSRF checks, keys, sessions,
//! the password and its slowdown, HTTPS off loopback, and the security
//! headers on every answer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn csp_ok(r: &reqwest::Response) {
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("no CSP on {} {}", r.status(), r.url()))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
}

/// The page's session cookie and CSRF token.
async fn session(me: &Me) -> (String, String) {
    let r = me.http.get(me.url("/")).send().await.unwrap();
    csp_ok(&r);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = r.text().await.unwrap();
    let csrf = page
        .split("name=\"shoal-csrf\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    (cookie.split(';').next().unwrap().to_owned(), csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_elsewhere_are_refused() {
    let mut net = Net::new().await;
    let me = net.me("alice", |_| {}).await;

    // DNS rebinding: another name for this address.
    for path in ["/", "/api/v1/status", "/assets/app.js"] {
        let r = me
            .http
            .get(me.url(path))
            .header("host", "evil.example")
            .bearer_auth(&me.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        csp_ok(&r);
    }
    let port = me.web.local_addr().port();
    let r = me
        .http
        .get(me.url("/api/v1/status"))
        .header("host", format!("localhost:{port}"))
        .bearer_auth(&me.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Neither key nor session: 401; a wrong key: 401.
    let r = me.http.get(me.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    csp_ok(&r);
    let r = me
        .http
        .get(me.url("/api/v1/events"))
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A session reads; its writes need its token.
    let (cookie, csrf) = session(&me).await;
    let r = me
        .http
        .get(me.url("/api/v1/status"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json!({ "target": "bob:x" });
    let no_token = me
        .http
        .post(me.url("/api/v1/downloads"))
        .header("cookie", &cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    let wrong = me
        .http
        .post(me.url("/api/v1/downloads"))
        .header("cookie", &cookie)
        .header("x-shoal-csrf", "f".repeat(64))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    // Another site's page posting here, even with the token: refused.
    let cross = me
        .http
        .post(me.url("/api/v1/downloads"))
        .header("cookie", &cookie)
        .header("x-shoal-csrf", &csrf)
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    csp_ok(&cross);
    // The page itself: accepted (bob does not exist, so 422, not 403).
    let own = me
        .http
        .post(me.url("/api/v1/downloads"))
        .header("cookie", &cookie)
        .header("x-shoal-csrf", &csrf)
        .header("origin", me.base.clone())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 422);

    // Every answer has the headers: an asset, a 404, the event stream.
    for path in ["/assets/app.css", "/nowhere", "/api/v1/nowhere"] {
        let r = me
            .http
            .get(me.url(path))
            .bearer_auth(&me.key)
            .send()
            .await
            .unwrap();
        csp_ok(&r);
    }
    let r = me.get("/api/v1/events").await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    csp_ok(&r);
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_guards_the_page_and_wrong_ones_slow_down() {
    let mut net = Net::new().await;
    let hash = shoal_web::auth::hash_password("correct horse").unwrap();
    let me = net.me("alice", |o| o.password = Some(hash.clone())).await;

    // The page asks for the password and hands out no session.
    let r = me.http.get(me.url("/")).send().await.unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("name=\"shoal-login\" content=\"1\"")
    );

    let login = |pw: &'static str| {
        let me = &me;
        async move {
            let started = Instant::now();
            let r = me
                .http
                .post(me.url("/api/v1/login"))
                .json(&json!({ "password": pw }))
                .send()
                .await
                .unwrap();
            (r, started.elapsed())
        }
    };
    let (r, _) = login("wrong").await;
    assert_eq!(r.status(), 401);
    let (r, _) = login("wrong again").await;
    assert_eq!(r.status(), 401);
    let (r, third) = login("still wrong").await;
    assert_eq!(r.status(), 401);
    // After two failures the third waits at least 1 s (0.5 s, doubling).
    assert!(third >= Duration::from_secs(1), "third try took {third:?}");

    let (r, _) = login("correct horse").await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let csrf = r.json::<serde_json::Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = me
        .http
        .get(me.url("/api/v1/status"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(csrf.len(), 64);
    // The settings never show the hash.
    let s = me.get_json("/api/v1/settings").await;
    assert_eq!(s["web_password_set"], true);
    assert!(!s.to_string().contains("argon2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_web_ui_needs_a_password_and_speaks_https() {
    let mut net = Net::new().await;
    let data = net.dir();
    let identity = std::sync::Arc::new(shoal_core::Identity::load_or_create(&data).unwrap());
    let service = shoal_service::Service::spawn(
        shoal_service::Setup::from_settings(
            data.clone(),
            Default::default(),
            identity,
            Default::default(),
        ),
        None,
    );
    let everywhere = "0.0.0.0:0".parse().unwrap();
    let refused = shoal_web::Web::start(
        service.clone(),
        shoal_web::Options {
            listen: Some(everywhere),
            password: None,
            cert: None,
            data_dir: data.clone(),
        },
    )
    .await;
    let e = refused.err().expect("refused without a password");
    assert!(e.to_string().contains("password"), "{e}");
    assert!(!data.join("control.json").exists());

    let hash = shoal_web::auth::hash_password("correct horse").unwrap();
    let web = shoal_web::Web::start(
        service,
        shoal_web::Options {
            listen: Some(everywhere),
            password: Some(hash),
            cert: None,
            data_dir: data.clone(),
        },
    )
    .await
    .unwrap();
    assert!(web.url().starts_with("https://"), "{}", web.url());
    let port = web.local_addr().port();
    // Plain HTTP gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // HTTPS with the node's own certificate, and a Secure cookie.
    let pem = std::fs::read(data.join("web/cert.pem")).unwrap();
    let cert = reqwest::Certificate::from_pem(&pem).unwrap();
    let _ = shoal_node::tls::provider();
    let tls = reqwest::Client::builder()
        .add_root_certificate(cert)
        .no_proxy()
        .build()
        .unwrap();
    let r = tls
        .post(format!("https://127.0.0.1:{port}/api/v1/login"))
        .json(&json!({ "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("control.json")).unwrap()).unwrap();
    assert!(c["url"].as_str().unwrap().starts_with("https://"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("control.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    web.stop().await;
    assert!(!data.join("control.json").exists(), "removed on stop");
}
