//! Peers behind NAT, in network namespaces the test makes (and removes):
//! two homes, each behind a router that masquerades with nftables, and a
//! "public" namespace between the routers where the tracker and the relay
//! run. The public side needs addresses miniupnpd takes for public (it
//! refuses to map onto private or documentation ranges), 11.11.1.0/24 and
//! 11.11.2.0/24: the namespaces have no link to the host's network, so
//! nothing sent to them leaves. Needs root, `ip` and
//! `nft`; the port-mapping test needs miniupnpd and upnpc, the capture
//! test tcpdump. Each test says SKIP when they are missing, and fails
//! instead under `CI=1` (which installs them).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// The public addresses of the routers and of the public namespace.
const PUB1: &str = "11.11.1.1";
const R1: &str = "11.11.1.2";
const PUB2: &str = "11.11.2.1";
const R2: &str = "11.11.2.2";
/// The home networks (the same private range in both, as at home).
const HOME_GW: &str = "192.168.1.1";
const HOME_HOST: &str = "192.168.1.2";

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the tools are here; says SKIP (or fails under CI=1) if not.
fn ready(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if is_root() && missing.is_empty() {
        return true;
    }
    let why = if is_root() {
        format!("missing {}", missing.join(", "))
    } else {
        "not root".to_owned()
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "NAT tests cannot run under CI: {why}"
    );
    eprintln!("SKIP: NAT tests need root and {}: {why}", tools.join(", "));
    false
}

/// The namespaces: `public`, `r1`/`h1` (home 1), `r2`/`h2` (home 2).
struct Net {
    public: String,
    r1: String,
    h1: String,
    r2: String,
    h2: String,
    tmp: tempfile::TempDir,
}

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split(' '))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args} failed");
}

impl Net {
    fn new(tag: &str) -> Net {
        let n = std::process::id() % 1000;
        let name = |x: &str| format!("shn{tag}{n}{x}");
        let net = Net {
            public: name("p"),
            r1: name("r1"),
            h1: name("h1"),
            r2: name("r2"),
            h2: name("h2"),
            tmp: tempfile::tempdir().unwrap(),
        };
        for ns in net.all() {
            ip(&format!("netns add {ns}"));
            ip(&format!("-n {ns} link set lo up"));
        }
        // veth names must be short: a tag and a number each.
        let link = |a: &str, a_if: &str, a_ip: &str, b: &str, b_if: &str, b_ip: &str| {
            ip(&format!("link add {a_if} type veth peer name {b_if}"));
            ip(&format!("link set {a_if} netns {a}"));
            ip(&format!("link set {b_if} netns {b}"));
            ip(&format!("-n {a} addr add {a_ip} dev {a_if}"));
            ip(&format!("-n {b} addr add {b_ip} dev {b_if}"));
            ip(&format!("-n {a} link set {a_if} up"));
            ip(&format!("-n {b} link set {b_if} up"));
        };
        let v = |x: &str| format!("sv{tag}{n}{x}");
        link(
            &net.public,
            &v("p1"),
            &format!("{PUB1}/24"),
            &net.r1,
            &v("w1"),
            &format!("{R1}/24"),
        );
        link(
            &net.public,
            &v("p2"),
            &format!("{PUB2}/24"),
            &net.r2,
            &v("w2"),
            &format!("{R2}/24"),
        );
        link(
            &net.r1,
            &v("l1"),
            &format!("{HOME_GW}/24"),
            &net.h1,
            &v("h1"),
            &format!("{HOME_HOST}/24"),
        );
        link(
            &net.r2,
            &v("l2"),
            &format!("{HOME_GW}/24"),
            &net.h2,
            &v("h2"),
            &format!("{HOME_HOST}/24"),
        );
        ip(&format!("-n {} route add default via {PUB1}", net.r1));
        ip(&format!("-n {} route add default via {PUB2}", net.r2));
        ip(&format!("-n {} route add default via {HOME_GW}", net.h1));
        ip(&format!("-n {} route add default via {HOME_GW}", net.h2));
        for ns in [&net.public, &net.r1, &net.r2] {
            net.sh(ns, "sysctl -qw net.ipv4.ip_forward=1");
        }
        // Masquerading NAT on each router's public side, and the tables
        // and chains miniupnpd adds its rules to (it creates none).
        for (r, wan) in [(&net.r1, v("w1")), (&net.r2, v("w2"))] {
            let rules = format!(
                "table inet filter {{
                   chain forward {{ type filter hook forward priority 0; policy accept; jump miniupnpd; }}
                   chain miniupnpd {{ }}
                 }}
                 table inet nat {{
                   chain prerouting {{ type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }}
                   chain postrouting {{ type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; oifname \"{wan}\" masquerade; }}
                   chain prerouting_miniupnpd {{ }}
                   chain postrouting_miniupnpd {{ }}
                 }}"
            );
            let path = net.tmp.path().join(format!("{r}.nft"));
            fs::write(&path, rules).unwrap();
            net.sh(r, &format!("nft -f {}", path.display()));
        }
        net
    }

    fn all(&self) -> [&String; 5] {
        [&self.public, &self.r1, &self.h1, &self.r2, &self.h2]
    }

    /// Runs a shell command in `ns`; it must succeed.
    fn sh(&self, ns: &str, cmd: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", cmd])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "`{cmd}` in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `shoal` client command in `ns`.
    fn shoal(&self, ns: &str, data: &Path, tracker: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, BIN, "--data-dir"])
            .arg(data)
            .args(["--tracker", tracker])
            .args(args)
            .env_remove("SHOAL_TRACKER")
            .env_remove("SHOAL_DATA_DIR")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run shoal")
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// The tracker in the public namespace, advertising `relays`.
    fn tracker(&self, relays: &[&str]) -> (Proc, String) {
        let mut args = vec!["tracker", "--listen", "0.0.0.0:5000", "--ttl", "10"];
        for r in relays {
            args.extend(["--relay", r]);
        }
        let mut p = Proc::spawn_in(&self.public, &args, &[]);
        p.wait_line("listening on ");
        (p, format!("http://{PUB1}:5000"))
    }

    /// The relay in the public namespace.
    fn relay(&self) -> (Proc, String) {
        let mut p = Proc::spawn_in(&self.public, &["relay", "--listen", "0.0.0.0:7100"], &[]);
        p.wait_line("listening on relay://");
        (p, format!("relay://{PUB1}:7100"))
    }

    /// A node in `ns` sharing `share`.
    fn node(&self, ns: &str, data: &Path, share: &Path, tracker: &str, extra: &[&str]) -> Proc {
        let mut args = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "--tracker",
            tracker,
            "node",
            "--listen",
            "0.0.0.0:7000",
            "--no-web",
            "--ttl",
            "10",
            "--share",
            share.to_str().unwrap(),
            "--name",
            "alice",
        ];
        args.extend(extra);
        let mut p = Proc::spawn_in(ns, &args, &[]);
        p.wait_line("peer id ");
        p
    }

    /// `get --json --no-seed TARGET -o OUT` in `ns`, as `data`.
    fn get(&self, ns: &str, data: &Path, tracker: &str, target: &str, out: &Path) -> Output {
        self.shoal(
            ns,
            data,
            tracker,
            &[
                "get",
                "--json",
                "--no-seed",
                target,
                "-o",
                out.to_str().unwrap(),
            ],
        )
    }

    /// alice as `peers --json` in `ns` lists her, once `ok` says so.
    fn wait_for_alice(
        &self,
        ns: &str,
        data: &Path,
        tracker: &str,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        wait_until(what, 60, || {
            let out = self.shoal(ns, data, tracker, &["peers", "--json"]);
            last = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array()?.iter().find(|p| p["name"] == "alice").cloned())
                .unwrap_or(serde_json::Value::Null);
            ok(&last)
        });
        last
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.all() {
            // Every process we started in it is gone by now (Proc kills on
            // drop, before the Net: declared after it).
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Text that must never show in a capture of the encrypted transfer.
const MARKER: &[u8] = b"SHOAL-PLAINTEXT-MARKER-";

fn marked_file(dir: &Path, mib: usize) -> PathBuf {
    let mut body = Vec::with_capacity(mib << 20);
    let mut i = 0u64;
    while body.len() < mib << 20 {
        body.extend_from_slice(MARKER);
        body.extend_from_slice(format!("{i:012}\n").as_bytes());
        i += 1;
    }
    let path = dir.join("notes.txt");
    fs::write(&path, body).unwrap();
    path
}

fn get_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("get --json prints JSON")
}

#[test]
fn a_node_behind_nat_is_reached_through_the_relay_which_sees_only_ciphertext() {
    if !ready(&["ip", "nft", "tcpdump"]) {
        return;
    }
    let net = Net::new("a");
    let (_relay, relay_url) = net.relay();
    let (_tracker, tracker) = net.tracker(&[&relay_url]);
    let share = net.dir("share");
    let file = marked_file(&share, 4);
    let alice = net.dir("alice");
    let _alice = net.node(&net.h1, &alice, &share, &tracker, &[]);
    let bob = net.dir("bob");
    let listed = net.wait_for_alice(&net.h2, &bob, &tracker, "alice relayed", |p| {
        p["reach"] == "relayed"
    });
    let addrs: Vec<&str> = listed["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(addrs.contains(&relay_url.as_str()), "{listed}");

    // A capture on home 1's link to its router, during the download.
    let pcap = net.tmp.path().join("home1.pcap");
    let mut capture = Command::new("ip")
        .args([
            "netns", "exec", &net.h1, "tcpdump", "-U", "-q", "-s", "0", "-B", "131072", "-i",
        ])
        .arg(format!("sva{}h1", std::process::id() % 1000))
        .arg("-w")
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // It says "listening on" once the capture runs.
    let mut said = std::io::BufReader::new(capture.stderr.take().unwrap());
    let mut lines = Vec::new();
    while !lines
        .last()
        .is_some_and(|l: &String| l.contains("listening on"))
    {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut said, &mut line).unwrap();
        assert!(n > 0 && lines.len() < 5, "tcpdump did not start: {lines:?}");
        lines.push(line);
    }
    let out = net.dir("out");
    let got = get_json(&net.get(&net.h2, &bob, &tracker, "alice:notes.txt", &out));
    let _ = Command::new("kill")
        .args(["-INT", &capture.id().to_string()])
        .status();
    let _ = capture.wait();
    assert_eq!(got["sources"][0]["via"], "relay", "{got}");
    assert_eq!(got["sources"][0]["addr"], relay_url.as_str(), "{got}");
    assert_eq!(
        fs::read(out.join("notes.txt")).unwrap(),
        fs::read(&file).unwrap()
    );
    // A link from alice carries her relay: fetched with no tracker at all.
    let link = net.shoal(&net.h1, &alice, &tracker, &["link", file.to_str().unwrap()]);
    let link = String::from_utf8(link.stdout).unwrap().trim().to_owned();
    assert!(
        link.starts_with("shoal:") && link.contains(&format!("relay:%2F%2F{PUB1}:7100")),
        "{link}"
    );
    let carol = net.dir("carol");
    let out2 = net.dir("out2");
    let got = get_json(&net.get(&net.h2, &carol, "http://127.0.0.1:9", &link, &out2));
    assert_eq!(got["sources"][0]["via"], "relay", "{got}");
    assert_eq!(
        fs::read(out2.join("notes.txt")).unwrap(),
        fs::read(&file).unwrap()
    );
    let captured = fs::read(&pcap).unwrap();
    let holds = |b: &[u8]| b.windows(MARKER.len()).any(|w| w == MARKER);
    assert!(
        holds(&fs::read(&file).unwrap()),
        "the search finds the marker in the file"
    );
    // The transfer crossed the link while it was captured (the kernel may
    // drop some packets of a fast capture; the marker repeats every few
    // dozen bytes, so any plaintext caught would show).
    assert!(
        captured.len() > fs::metadata(&file).unwrap().len() as usize / 2,
        "the capture holds only {} bytes",
        captured.len()
    );
    assert!(
        !holds(&captured),
        "plaintext of the file crossed home 1's link"
    );
}

#[test]
fn reachability_is_unreachable_behind_nat_and_direct_on_the_public_side() {
    if !ready(&["ip", "nft"]) {
        return;
    }
    let net = Net::new("b");
    let (_tracker, tracker) = net.tracker(&[]);
    let share = net.dir("share");
    fs::write(share.join("a.txt"), b"hello").unwrap();
    let bob = net.dir("bob");
    {
        let _alice = net.node(&net.h1, &net.dir("alice"), &share, &tracker, &[]);
        let p = net.wait_for_alice(&net.h2, &bob, &tracker, "alice unreachable", |p| {
            p["reach"] == "unreachable"
        });
        assert_eq!(p["addrs"][0], format!("{R1}:7000"), "{p}");
        // And so a download has nothing to reach her by.
        let out = net.shoal(
            &net.h2,
            &bob,
            &tracker,
            &[
                "get",
                "--no-seed",
                "alice:a.txt",
                "-o",
                "/nonexistent-dir-never-made",
            ],
        );
        assert!(!out.status.success());
    }
    let _alice = net.node(&net.public, &net.dir("alice-public"), &share, &tracker, &[]);
    net.wait_for_alice(&net.h2, &bob, &tracker, "alice direct", |p| {
        p["reach"] == "direct"
    });
}

/// miniupnpd on `router`, serving the home side `lan`, mapping onto `wan`.
struct Upnpd(std::process::Child);

impl Drop for Upnpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn miniupnpd(net: &Net, router: &str, wan: &str, lan: &str) -> Upnpd {
    let conf = net.tmp.path().join("miniupnpd.conf");
    fs::write(
        &conf,
        format!(
            "ext_ifname={wan}\nlistening_ip={lan}\nport=0\nenable_natpmp=yes\nenable_upnp=yes\n\
             secure_mode=yes\nsystem_uptime=yes\nupnp_table_name=filter\nupnp_nat_table_name=nat\n\
             upnp_forward_chain=miniupnpd\nupnp_nat_chain=prerouting_miniupnpd\n\
             upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
             uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
             allow 1024-65535 192.168.1.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"
        ),
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", router, "miniupnpd", "-d", "-f"])
        .arg(&conf)
        .arg("-P")
        .arg(net.tmp.path().join("miniupnpd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("miniupnpd");
    Upnpd(child)
}

/// What the router's miniupnpd has mapped, as `upnpc -l` lists it.
fn mappings(net: &Net) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &net.h1, "upnpc", "-l"])
        .output()
        .expect("upnpc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn with_port_mapping_the_download_is_direct_and_the_mapping_goes_when_the_node_stops() {
    if !ready(&["ip", "nft", "miniupnpd", "upnpc"]) {
        return;
    }
    let net = Net::new("c");
    let n = std::process::id() % 1000;
    let _upnpd = miniupnpd(&net, &net.r1, &format!("svc{n}w1"), &format!("svc{n}l1"));
    let (_tracker, tracker) = net.tracker(&[]);
    let share = net.dir("share");
    let file = marked_file(&share, 1);
    let mut alice = net.node(
        &net.h1,
        &net.dir("alice"),
        &share,
        &tracker,
        &["--port-mapping"],
    );
    let bob = net.dir("bob");
    let p = net.wait_for_alice(
        &net.h2,
        &bob,
        &tracker,
        "alice direct through the mapping",
        |p| p["reach"] == "direct",
    );
    assert_eq!(p["addrs"][0], format!("{R1}:7000"), "{p}");
    let listed = mappings(&net);
    assert!(
        listed.contains("7000") && listed.contains("Shoal"),
        "upnpc -l:\n{listed}"
    );
    let out = net.dir("out");
    let got = get_json(&net.get(&net.h2, &bob, &tracker, "alice:notes.txt", &out));
    assert_eq!(got["sources"][0]["via"], "direct", "{got}");
    assert_eq!(got["sources"][0]["addr"], format!("{R1}:7000"), "{got}");
    assert_eq!(
        fs::read(out.join("notes.txt")).unwrap(),
        fs::read(&file).unwrap()
    );
    // SIGTERM: the node removes its mapping before it exits.
    assert!(alice.terminate().success());
    let listed = mappings(&net);
    assert!(
        !listed.contains("Shoal"),
        "the mapping outlived the node:\n{listed}"
    );
}

#[test]
fn a_relay_killed_midway_the_download_resumes_when_it_returns() {
    if !ready(&["ip", "nft"]) {
        return;
    }
    let net = Net::new("d");
    let (mut relay, relay_url) = net.relay();
    let (_tracker, tracker) = net.tracker(&[&relay_url]);
    let share = net.dir("share");
    let file = marked_file(&share, 48);
    // 8 MiB/s: six seconds in all, so the relay dies midway.
    let _alice = net.node(
        &net.h1,
        &net.dir("alice"),
        &share,
        &tracker,
        &["--max-upload-rate", "8MiB"],
    );
    let bob = net.dir("bob");
    net.wait_for_alice(&net.h2, &bob, &tracker, "alice relayed", |p| {
        p["reach"] == "relayed"
    });
    let out = net.dir("out");
    let part = out.join("notes.txt.part");
    let get = Command::new("ip")
        .args(["netns", "exec", &net.h2, BIN, "--data-dir"])
        .arg(&bob)
        .args([
            "--tracker",
            &tracker,
            "get",
            "--json",
            "--no-seed",
            "alice:notes.txt",
            "-o",
        ])
        .arg(&out)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a quarter of the file", 60, || {
        fs::metadata(&part).is_ok_and(|m| m.len() > 12 << 20)
    });
    relay.kill();
    // Back on the same address a moment later.
    let (_relay, _) = net.relay();
    let done = get.wait_with_output().unwrap();
    let got = if done.status.success() {
        eprintln!("the download rode out the relay's restart");
        get_json(&done)
    } else {
        // The download gave up while the relay was gone; the same command
        // resumes from the pieces it kept.
        eprintln!("the download gave up while the relay was gone; resuming");
        assert!(part.exists(), "the .part is gone");
        get_json(&net.get(&net.h2, &bob, &tracker, "alice:notes.txt", &out))
    };
    assert_eq!(got["sources"][0]["via"], "relay", "{got}");
    assert_eq!(
        fs::read(out.join("notes.txt")).unwrap(),
        fs::read(&file).unwrap()
    );
    assert!(!part.exists());
}
