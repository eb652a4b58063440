//! The seed's discovery protocol, for its clients (`--legacy-listen ADDR`).
//!
//! One request per TCP connection, sent without a newline (the seed's
//! client writes the bare command and reads the answer):
//!
//! | request | answer |
//! | --- | --- |
//! | `REGISTER host:port` | `Registered` |
//! | `GET_PEERS` | a Python list literal: `['10.0.0.5:5001', 'laptop:5002']` |
//! | anything else | `Invalid request` |
//!
//! The seed's client evaluates the `GET_PEERS` answer as Python, so only
//! strictly checked addresses are ever stored: an IPv4 address or a DNS
//! host name, a colon, and a port from 1 to 65535 in plain digits. Nothing
//! a client sends is echoed back. Registrations expire after the tracker's
//! TTL unless renewed, like any other. Requests longer than
//! [`MAX_REQUEST`] bytes, or slower than [`REQUEST_TIMEOUT`], are dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_net::Guarded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::store::Store;

/// Longest request accepted.
pub const MAX_REQUEST: usize = 512;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After the first bytes of a request, how long more may trickle in.
const SETTLE: Duration = Duration::from_millis(100);
/// Connections handled at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Most registrations kept (oldest expire first anyway).
const MAX_ENTRIES: usize = 10_000;

/// The seed clients registered through the legacy protocol.
#[derive(Debug)]
pub struct LegacyBook {
    entries: Mutex<HashMap<String, Instant>>,
    ttl: Duration,
}

impl LegacyBook {
    /// Registrations live `ttl` unless renewed.
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or renews) a checked address; false when the book is full.
    fn register(&self, addr: String) -> bool {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, exp| *exp > now);
        if map.len() >= MAX_ENTRIES && !map.contains_key(&addr) {
            return false;
        }
        map.insert(addr, now + self.ttl);
        true
    }

    /// The live addresses, sorted.
    pub fn live(&self) -> Vec<String> {
        let now = Instant::now();
        let mut v: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, exp)| **exp > now)
            .map(|(a, _)| a.clone())
            .collect();
        v.sort();
        v
    }
}

/// A `host:port` the seed's client can be given safely, in canonical form;
/// `None` for anything else.
pub fn checked_addr(s: &str) -> Option<String> {
    let (host, port) = s.rsplit_once(':')?;
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        host.parse::<Ipv4Addr>().ok()?.to_string()
    } else if is_hostname(host) {
        host.to_ascii_lowercase()
    } else {
        return None;
    };
    Some(format!("{host}:{port}"))
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and
/// inner hyphens, 1-63 characters each, 253 in all.
fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The Python list literal of `addrs` (each already checked, so it holds
/// nothing that needs escaping).
pub fn python_list(addrs: &[String]) -> String {
    let items: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
    format!("[{}]", items.join(", "))
}

/// Serves the legacy protocol on `listener` until `shutdown`. `GET_PEERS`
/// lists the legacy registrations and, given a `store`, the
/// seed-compatible APIs of the Shoal nodes in it (a private tracker gives
/// none: its nodes are not for unauthenticated clients).
pub async fn serve<S: Store>(
    listener: TcpListener,
    book: Arc<LegacyBook>,
    store: Option<Arc<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = shoal_net::Limits {
        max_connections: MAX_CONNECTIONS,
        per_client: 64,
        ..crate::LIMITS
    };
    let stop = crate::cancel_on(shutdown);
    shoal_net::serve(listener, limits, stop, move |tcp, remote| {
        let (book, store) = (book.clone(), store.clone());
        async move {
            if let Err(e) = handle(tcp, &book, store.as_deref()).await {
                tracing::debug!(%remote, error = %e, "legacy connection ended");
            }
        }
    })
    .await;
}

/// Reads one request: up to a newline, or whatever arrived once the client
/// paused (the seed's client sends no newline and waits for the answer).
async fn read_request(tcp: &mut Guarded<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let until = if buf.is_empty() {
            deadline
        } else {
            (Instant::now() + SETTLE).min(deadline)
        };
        match tokio::time::timeout_at(until, tcp.read(&mut chunk)).await {
            Ok(Ok(0)) => return Ok((!buf.is_empty()).then_some(buf)),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_REQUEST {
                    return Ok(None);
                }
                if buf.contains(&b'\n') {
                    return Ok(Some(buf));
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok((!buf.is_empty()).then_some(buf)),
        }
    }
}

/// Most Shoal nodes looked at for `GET_PEERS`.
const MAX_LISTED: usize = 10_000;

async fn handle<S: Store>(
    mut tcp: Guarded<TcpStream>,
    book: &LegacyBook,
    store: Option<&S>,
) -> std::io::Result<()> {
    let Some(raw) = read_request(&mut tcp).await? else {
        return tcp.write_all(b"Invalid request").await;
    };
    let text = String::from_utf8_lossy(&raw);
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let answer = if line == "GET_PEERS" {
        let mut all = book.live();
        let nodes = match store {
            // A store that is down lists only the legacy registrations.
            Some(s) => s
                .list_peers(None, MAX_LISTED, Instant::now())
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        all.extend(
            nodes
                .into_iter()
                .filter_map(|p| p.compat.as_deref().and_then(checked_addr)),
        );
        all.sort();
        all.dedup();
        python_list(&all)
    } else if let Some(addr) = line.strip_prefix("REGISTER ") {
        match checked_addr(addr) {
            Some(a) if book.register(a.clone()) => {
                tracing::info!(addr = %a, "legacy peer registered");
                "Registered".to_owned()
            }
            Some(_) => "Registry full".to_owned(),
            None => "Invalid address".to_owned(),
        }
    } else {
        "Invalid request".to_owned()
    };
    tcp.write_all(answer.as_bytes()).await?;
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_addresses_pass() {
        assert_eq!(
            checked_addr("10.0.0.5:5001").as_deref(),
            Some("10.0.0.5:5001")
        );
        assert_eq!(
            checked_addr("Laptop.local:80").as_deref(),
            Some("laptop.local:80")
        );
        assert_eq!(
            checked_addr("127.0.0.1:65535").as_deref(),
            Some("127.0.0.1:65535")
        );
        for bad in [
            "",
            ":80",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "host:080080",
            "host: 80",
            "1.2.3.4.5:80",
            "999.1.1.1:80",
            "1.2.3:80",
            "[::1]:80",
            "::1:80",
            "a'b:80",
            "a\"b:80",
            "x', __import__('os').system('id'), '",
            "__import__('os'):80",
            "a]b:80",
            "a b:80",
            "-a:80",
            "a-:80",
            "a..b:80",
            "a\nb:80",
            "a\\b:80",
            "héllo:80",
        ] {
            assert_eq!(checked_addr(bad), None, "{bad:?}");
        }
        assert!(checked_addr(&format!("{}:80", "a".repeat(64))).is_none());
    }

    #[test]
    fn the_list_is_a_python_literal() {
        assert_eq!(python_list(&[]), "[]");
        assert_eq!(
            python_list(&["1.2.3.4:5".into(), "h:6".into()]),
            "['1.2.3.4:5', 'h:6']"
        );
    }
}
