//! The seed's discovery protocol on a real `shoal tracker --legacy-listen`:
//! its clients register and list, hostile lines are refused and never
//! echoed, and idle connections cannot stop it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// One request the way the seed's client sends it: the bare command, no
/// newline, then read the answer until the server closes.
fn ask(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn legacy_tracker(ttl: u64) -> (Proc, String) {
    let (p, _, legacy) = legacy_tracker_with_url(ttl);
    (p, legacy)
}

/// A tracker with the legacy protocol: the process, its URL and the
/// legacy address.
fn legacy_tracker_with_url(ttl: u64) -> (Proc, String, String) {
    let ttl = ttl.to_string();
    let mut p = Proc::spawn(
        &[
            "tracker",
            "--listen",
            "127.0.0.1:0",
            "--ttl",
            &ttl,
            "--legacy-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let url = p.wait_line("listening on ");
    let addr = p.wait_line("legacy listening on tcp://");
    (p, url, addr)
}

/// Python's view of a GET_PEERS answer, when python3 is installed.
fn python_eval(answer: &str) -> Option<Vec<String>> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import ast,sys,json; v=ast.literal_eval(sys.stdin.read()); assert isinstance(v, list) and all(isinstance(x, str) for x in v); print(json.dumps(v))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(answer.as_bytes())?;
            c.wait_with_output()
        });
    match out {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) => panic!("python could not read {answer:?}: {o:?}"),
        Err(_) => {
            eprintln!(
                "WARNING: python3 is not installed; not checking GET_PEERS with Python's parser"
            );
            None
        }
    }
}

#[test]
fn seed_clients_register_and_list_and_nothing_hostile_gets_in() {
    let (_t, addr) = legacy_tracker(30);
    assert_eq!(ask(&addr, b"GET_PEERS"), "[]");
    assert_eq!(ask(&addr, b"REGISTER 127.0.0.1:5001"), "Registered");
    assert_eq!(ask(&addr, b"REGISTER localhost:5002\n"), "Registered");
    // Renewing is not a second entry.
    assert_eq!(ask(&addr, b"REGISTER 127.0.0.1:5001"), "Registered");
    let peers = ask(&addr, b"GET_PEERS");
    assert_eq!(peers, "['127.0.0.1:5001', 'localhost:5002']");
    if let Some(v) = python_eval(&peers) {
        assert_eq!(v, ["127.0.0.1:5001", "localhost:5002"]);
    }

    let long = format!("REGISTER {}:80", "a".repeat(10 * 1024));
    let hostile: Vec<&[u8]> = vec![
        b"REGISTER __import__('os').system('id'):80",
        b"REGISTER ', __import__('os').system('id'), ':80",
        b"REGISTER 1.2.3.4:80'] + [__import__('os')",
        b"REGISTER \"quoted\":80",
        b"REGISTER [1.2.3.4]:80",
        b"REGISTER host:80\nREGISTER evil':81",
        b"REGISTER a\rb:80",
        b"REGISTER 1.2.3.4:0",
        b"REGISTER 1.2.3.4:65536",
        b"REGISTER 1.2.3.4:-1",
        b"REGISTER 1.2.3.4",
        b"REGISTER ",
        b"REGISTER 300.1.1.1:80",
        b"REGISTER h\xffst:80",
        b"register 1.2.3.4:80",
        b"GET_PEERS please",
        b"",
        long.as_bytes(),
    ];
    for line in &hostile {
        let answer = ask(&addr, line);
        assert_ne!(answer, "Registered", "{:?}", String::from_utf8_lossy(line));
        assert!(
            !answer.contains("import") && !answer.contains('\'') && !answer.contains("quoted"),
            "echoed: {answer:?}"
        );
        assert!(
            answer.len() < 64,
            "a long answer to a hostile line: {answer:?}"
        );
    }
    // The newline case registered only its first, valid line, if anything.
    let peers = ask(&addr, b"GET_PEERS");
    let v = python_eval(&peers).unwrap_or_default();
    for p in &v {
        assert!(
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c)),
            "{p:?} in {peers}"
        );
    }
    assert!(
        !peers.contains("evil") && !peers.contains("import"),
        "{peers}"
    );

    // A thousand connections opened and dropped without a word.
    for _ in 0..1000 {
        drop(TcpStream::connect(&addr).unwrap());
    }
    // Served again as soon as those are closed (one client may hold only
    // so many connections at once).
    wait_until("the legacy listener to answer again", 10, || {
        ask(&addr, b"GET_PEERS").contains("127.0.0.1:5001")
    });
}

#[test]
fn legacy_registrations_expire_like_any_other() {
    let (_t, addr) = legacy_tracker(2);
    assert_eq!(ask(&addr, b"REGISTER 10.1.2.3:5005"), "Registered");
    assert_eq!(ask(&addr, b"GET_PEERS"), "['10.1.2.3:5005']");
    wait_until("the registration to expire", 15, || {
        ask(&addr, b"GET_PEERS") == "[]"
    });
}

#[test]
fn shoal_nodes_with_the_seed_api_are_listed_to_seed_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let (_t, url, legacy) = legacy_tracker_with_url(30);
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let mut n = node_with(
        &url,
        &tmp.path().join("n"),
        &share,
        "alice",
        30,
        "127.0.0.1:0",
        &["--compat-listen", "127.0.0.1:0", "--compat-token", "t"],
    );
    let compat = n.proc.wait_line("compat listening on http://");
    assert_eq!(ask(&legacy, b"REGISTER 127.0.0.1:5001"), "Registered");
    wait_until("the node's seed API in GET_PEERS", 20, || {
        ask(&legacy, b"GET_PEERS").contains(&format!("'{compat}'"))
    });
    let peers = ask(&legacy, b"GET_PEERS");
    assert!(peers.contains("'127.0.0.1:5001'"), "{peers}");
    if let Some(v) = python_eval(&peers) {
        assert_eq!(v.len(), 2, "{v:?}");
    }
    // Gone when the node leaves.
    assert!(n.proc.terminate().success());
    wait_until("the node to leave GET_PEERS", 20, || {
        !ask(&legacy, b"GET_PEERS").contains(&compat)
    });
}

/// Class 9: a private tracker's legacy listener (which cannot check a
/// token) never hands out its nodes' addresses, only what legacy clients
/// registered themselves.
#[test]
fn a_private_trackers_legacy_listener_lists_no_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Proc::spawn(
        &[
            "tracker",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "private-net",
            "--legacy-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let url = t.wait_line("listening on ");
    let legacy = t.wait_line("legacy listening on tcp://");
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let mut n = Proc::spawn(
        &[
            "--data-dir",
            tmp.path().join("n").to_str().unwrap(),
            "--tracker",
            &url,
            "--tracker-token",
            "private-net",
            "node",
            "--share",
            share.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "alice",
            "--compat-listen",
            "127.0.0.1:0",
            "--compat-token",
            "t",
        ],
        &[],
    );
    let compat = n.wait_line("compat listening on http://");
    n.wait_line("peer id ");
    // The node is registered (the token opens the tracker to it)...
    let client = tmp.path().join("c");
    wait_until("the node to register", 20, || {
        let out = std::process::Command::new(BIN)
            .args(["--data-dir", client.to_str().unwrap(), "--tracker", &url])
            .args(["--tracker-token", "private-net", "peers", "--json"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("alice")
    });
    // ...but the legacy listener does not give it away.
    assert_eq!(ask(&legacy, b"REGISTER 127.0.0.1:5001"), "Registered");
    let peers = ask(&legacy, b"GET_PEERS");
    assert_eq!(peers, "['127.0.0.1:5001']", "{peers}");
    assert!(!peers.contains(&compat));
}
