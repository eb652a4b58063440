//! Who may use the API: the `Host` check (DNS rebinding), sessions with
//! their CSRF tokens, the API key, the password and the slowdown of
//! failed logins.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use subtle::ConstantTimeEq;

/// Sessions kept at once; the least recently used goes first.
const MAX_SESSIONS: usize = 256;
/// A session unused this long ends.
const SESSION_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Addresses whose failed logins are remembered at once.
const MAX_FAILERS: usize = 4096;
/// Failed logins are forgotten this long after the last one.
const FAILURES_FORGOTTEN: Duration = Duration::from_secs(15 * 60);
/// The first wait after a failed login; it doubles with each more.
const FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait before a login is checked.
const LONGEST_WAIT: Duration = Duration::from_secs(16);

/// A random token: 32 bytes, hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    // No randomness from the OS is not something to go on without.
    getrandom::getrandom(&mut b).unwrap_or_else(|e| panic!("the OS gave no randomness: {e}"));
    hex::encode(b)
}

/// Whether two secrets are equal, in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The argon2id hash (PHC string) of a new password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `hash` (a PHC string) is one this node can check.
pub fn usable_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok()
}

/// Whether `password` matches `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

struct Session {
    csrf: String,
    used: Instant,
}

/// The browser sessions.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session: its id (the cookie) and its CSRF token.
    pub fn open(&self) -> (String, String) {
        let (id, csrf) = (token(), token());
        let mut all = self.lock();
        all.retain(|_, s| s.used.elapsed() < SESSION_IDLE);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                used: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// The CSRF token of a live session.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let mut all = self.lock();
        let s = all.get_mut(id)?;
        if s.used.elapsed() >= SESSION_IDLE {
            all.remove(id);
            return None;
        }
        s.used = Instant::now();
        Some(s.csrf.clone())
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Failed logins by address, to slow guessing down.
#[derive(Default)]
pub struct Throttle {
    inner: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a login from `ip` waits before it is checked.
    pub fn wait(&self, ip: IpAddr) -> Duration {
        let all = self.lock();
        match all.get(&ip) {
            Some((n, at)) if *n > 0 && at.elapsed() < FAILURES_FORGOTTEN => FIRST_WAIT
                .saturating_mul(1 << (n - 1).min(10))
                .min(LONGEST_WAIT),
            _ => Duration::ZERO,
        }
    }

    /// A login from `ip` failed.
    pub fn failed(&self, ip: IpAddr) {
        let mut all = self.lock();
        all.retain(|_, (_, at)| at.elapsed() < FAILURES_FORGOTTEN);
        if all.len() >= MAX_FAILERS
            && !all.contains_key(&ip)
            && let Some(oldest) = all.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
        {
            all.remove(&oldest);
        }
        let e = all.entry(ip).or_insert((0, Instant::now()));
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
    }

    /// A login from `ip` succeeded.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }
}

/// Whether a request's `Host` names this server: on loopback, only the
/// listen address itself, `localhost` or a loopback address with its
/// port may (a page of another site that a rebinding DNS points here
/// carries its own name).
pub fn host_allowed(host: Option<&str>, listen: SocketAddr) -> bool {
    let Some(host) = host else { return false };
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((name, after)) = rest.split_once(']') else {
            return false;
        };
        match after.strip_prefix(':') {
            Some(p) => (name, Some(p)),
            None if after.is_empty() => (name, None),
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) if !p.contains(':') => (n, Some(p)),
            Some(_) => (host, None), // a bare IPv6 address
            None => (host, None),
        }
    };
    let port = match port.map(str::parse::<u16>) {
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => return false,
        None => None,
    };
    if port.is_some_and(|p| p != listen.port()) {
        return false;
    }
    let port_ok = port.is_some() || listen.port() == 80 || listen.port() == 443;
    if !port_ok {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip == listen.ip() || (ip.is_loopback() && listen.ip().is_loopback()),
        Err(_) => false,
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_servers_own_names_pass_the_host_check() {
        let l: SocketAddr = "127.0.0.1:5050".parse().unwrap();
        for ok in [
            "127.0.0.1:5050",
            "localhost:5050",
            "LOCALHOST:5050",
            "[::1]:5050",
        ] {
            assert!(host_allowed(Some(ok), l), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:5050",
            "127.0.0.1:5051",
            "127.0.0.1",
            "localhost.evil.example:5050",
            "10.0.0.1:5050",
            "",
        ] {
            assert!(!host_allowed(Some(bad), l), "{bad}");
        }
        assert!(!host_allowed(None, l));
    }

    #[test]
    fn passwords_hash_and_check() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(usable_hash(&h));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn failed_logins_wait_longer_and_longer() {
        let t = Throttle::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(t.wait(ip), Duration::ZERO);
        t.failed(ip);
        let one = t.wait(ip);
        t.failed(ip);
        t.failed(ip);
        let three = t.wait(ip);
        assert!(one > Duration::ZERO && three > one, "{one:?} {three:?}");
        for _ in 0..40 {
            t.failed(ip);
        }
        assert_eq!(t.wait(ip), LONGEST_WAIT);
        t.succeeded(ip);
        assert_eq!(t.wait(ip), Duration::ZERO);
    }

    #[test]
    fn sessions_are_capped_and_closed() {
        let s = Sessions::default();
        let (first, csrf) = s.open();
        assert_eq!(s.csrf(&first).as_deref(), Some(csrf.as_str()));
        for _ in 0..MAX_SESSIONS + 5 {
            s.open();
        }
        assert!(s.lock().len() <= MAX_SESSIONS);
        let (id, _) = s.open();
        s.close(&id);
        assert!(s.csrf(&id).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(cookie("a=1; shoal=xyz; b=2", "shoal"), Some("xyz"));
        assert_eq!(cookie("shoalx=1", "shoal"), None);
    }
}
