//! JSON shapes exchanged between peers, the tracker and scripts.
//!
//! Signed messages ([`Registration`], [`Deregistration`], [`Announce`]) are
//! signed over a domain-separated, length-prefixed transcript of their
//! fields (never over JSON text, whose spelling is not canonical), so the
//! tracker can check that a record really comes from the peer it names.

pub mod bundle;
pub mod range;

use serde::{Deserialize, Serialize};

use crate::{ContentId, Identity, PeerId, SignatureError};

/// Longest peer name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Most addresses one peer may register.
pub const MAX_ADDRS: usize = 8;
/// Longest address accepted.
pub const MAX_ADDR_LEN: usize = 270;
/// Longest TTL a peer may ask for, in seconds.
pub const MAX_TTL_SECS: u64 = 24 * 3600;
/// Largest file Shoal transfers (4 TiB). Sizes from the network above it
/// are refused before any arithmetic or allocation depends on them.
pub const MAX_FILE_SIZE: u64 = 1 << 42;
/// Longest error message kept from a peer or tracker, in characters.
pub const MAX_ERROR_LEN: usize = 500;

/// A signature in hex (128 chars).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sig(String);

impl Sig {
    fn new(bytes: [u8; 64]) -> Self {
        Self(hex::encode(bytes))
    }

    fn bytes(&self) -> Option<[u8; 64]> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(&self.0, &mut out).ok()?;
        Some(out)
    }
}

impl std::fmt::Debug for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sig({}…)", self.0.get(..8).unwrap_or(&self.0))
    }
}

/// Builds the byte string a message is signed over.
struct Transcript(Vec<u8>);

impl Transcript {
    fn new(domain: &str) -> Self {
        let mut t = Self(Vec::with_capacity(256));
        t.bytes(b"shoal/v1/");
        t.bytes(domain.as_bytes());
        t
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u64).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
}

/// A message that a peer signs with its identity.
pub trait Signed {
    /// The peer that claims to have signed it.
    fn signer(&self) -> PeerId;
    /// The bytes covered by the signature.
    fn transcript(&self) -> Vec<u8>;
    /// The attached signature.
    fn sig(&self) -> &Sig;
    /// Checks the signature against [`Signed::signer`].
    fn verify(&self) -> Result<(), SignatureError> {
        let sig = self.sig().bytes().ok_or(SignatureError(self.signer()))?;
        self.signer().verify(&self.transcript(), &sig)
    }
}

/// `PUT /v1/peers/{peer_id}`: "I am here, reach me at these addresses".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Who registers.
    pub peer_id: PeerId,
    /// A human name for the peer.
    pub name: String,
    /// `host:port` addresses; an empty or unspecified host is filled in by
    /// the tracker with the address the request came from.
    pub addrs: Vec<String>,
    /// Seconds until the record expires unless renewed.
    pub ttl: u64,
    /// Unix time of signing, in seconds; must increase between registrations.
    pub ts: u64,
    /// `host:port` of the seed-compatible API (`--compat-listen`), listed
    /// to the seed's clients by the legacy discovery protocol; the host is
    /// filled in like those of `addrs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
    /// Signature over all of the above.
    pub sig: Sig,
}

impl Registration {
    /// A signed registration.
    pub fn new(id: &Identity, name: &str, addrs: Vec<String>, ttl: u64, ts: u64) -> Self {
        Self::with_compat(id, name, addrs, None, ttl, ts)
    }

    /// A signed registration that also announces a seed-compatible API at
    /// `compat`.
    pub fn with_compat(
        id: &Identity,
        name: &str,
        addrs: Vec<String>,
        compat: Option<String>,
        ttl: u64,
        ts: u64,
    ) -> Self {
        let mut r = Self {
            peer_id: id.peer_id(),
            name: name.to_owned(),
            addrs,
            ttl,
            ts,
            compat,
            sig: Sig(String::new()),
        };
        r.sig = Sig::new(id.sign(&r.transcript()));
        r
    }

    /// Checks sizes and formats (not the signature).
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        if self.addrs.is_empty() || self.addrs.len() > MAX_ADDRS {
            return Err(format!("between 1 and {MAX_ADDRS} addresses are needed"));
        }
        for a in &self.addrs {
            PeerAddr::parse(a)?;
        }
        if self.ttl == 0 || self.ttl > MAX_TTL_SECS {
            return Err(format!("ttl must be between 1 and {MAX_TTL_SECS} seconds"));
        }
        if let Some(c) = &self.compat {
            HostPort::parse(c)?;
        }
        Ok(())
    }
}

impl Signed for Registration {
    fn signer(&self) -> PeerId {
        self.peer_id
    }
    fn transcript(&self) -> Vec<u8> {
        let mut t = Transcript::new("register");
        t.bytes(self.peer_id.as_bytes()).bytes(self.name.as_bytes());
        t.u64(self.addrs.len() as u64);
        for a in &self.addrs {
            t.bytes(a.as_bytes());
        }
        t.u64(self.ttl).u64(self.ts);
        // Only present when used, so registrations without it sign as before.
        if let Some(c) = &self.compat {
            t.bytes(b"compat").bytes(c.as_bytes());
        }
        t.0
    }
    fn sig(&self) -> &Sig {
        &self.sig
    }
}

/// Signed `DELETE /v1/peers/{peer_id}` body: "forget me now".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deregistration {
    /// Who leaves.
    pub peer_id: PeerId,
    /// Unix time of signing, in seconds.
    pub ts: u64,
    /// Signature.
    pub sig: Sig,
}

impl Deregistration {
    /// A signed deregistration.
    pub fn new(id: &Identity, ts: u64) -> Self {
        let mut d = Self {
            peer_id: id.peer_id(),
            ts,
            sig: Sig(String::new()),
        };
        d.sig = Sig::new(id.sign(&d.transcript()));
        d
    }
}

impl Signed for Deregistration {
    fn signer(&self) -> PeerId {
        self.peer_id
    }
    fn transcript(&self) -> Vec<u8> {
        let mut t = Transcript::new("deregister");
        t.bytes(self.peer_id.as_bytes()).u64(self.ts);
        t.0
    }
    fn sig(&self) -> &Sig {
        &self.sig
    }
}

/// `PUT /v1/providers`: the complete set of content ids a peer offers.
/// Each announce replaces the previous set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// Who provides.
    pub peer_id: PeerId,
    /// Everything it offers publicly.
    pub content_ids: Vec<ContentId>,
    /// Unix time of signing, in seconds.
    pub ts: u64,
    /// Signature.
    pub sig: Sig,
}

impl Announce {
    /// A signed announce.
    pub fn new(id: &Identity, content_ids: Vec<ContentId>, ts: u64) -> Self {
        let mut a = Self {
            peer_id: id.peer_id(),
            content_ids,
            ts,
            sig: Sig(String::new()),
        };
        a.sig = Sig::new(id.sign(&a.transcript()));
        a
    }
}

impl Signed for Announce {
    fn signer(&self) -> PeerId {
        self.peer_id
    }
    fn transcript(&self) -> Vec<u8> {
        let mut t = Transcript::new("announce");
        t.bytes(self.peer_id.as_bytes());
        t.u64(self.content_ids.len() as u64);
        for c in &self.content_ids {
            t.bytes(c.as_bytes());
        }
        t.u64(self.ts);
        t.0
    }
    fn sig(&self) -> &Sig {
        &self.sig
    }
}

/// The tracker's answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// The TTL the tracker granted (it may cap the one asked for).
    pub ttl: u64,
    /// The addresses as stored, with unspecified hosts filled in.
    pub addrs: Vec<String>,
    /// How many content ids the tracker holds for this peer; zero after a
    /// tracker restart, which tells the peer to announce again.
    pub providing: u64,
}

/// A live peer as the tracker lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's id.
    pub peer_id: PeerId,
    /// Its name.
    pub name: String,
    /// Where to reach it.
    pub addrs: Vec<String>,
    /// Seconds left before the record expires.
    pub expires_in: u64,
    /// How it can be reached, when the tracker has dialled it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reach>,
}

/// One page of `GET /v1/peers?after=ID&limit=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPage {
    /// Peers in PeerId order.
    pub peers: Vec<PeerRecord>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<PeerId>,
}

/// `GET /v1/providers/{content_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Providers {
    /// The content asked about.
    pub content_id: ContentId,
    /// Live peers that offer it.
    pub peers: Vec<PeerRecord>,
}

/// One shared file, as `GET /v1/files` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the share, `/`-separated.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the bytes.
    pub content_id: ContentId,
    /// Last modification, Unix seconds.
    pub modified: u64,
    /// Whether the file is at-rest encrypted (age).
    pub encrypted: bool,
}

/// Which pieces of a content a peer holds (`GET /v1/content/{id}/have`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceMap {
    /// Size of the content in bytes.
    pub size: u64,
    /// Piece size in bytes.
    pub piece_size: u64,
    /// True when the peer holds every piece.
    pub complete: bool,
    /// When not complete: one bit per piece (piece `i` is bit `i % 8` of
    /// byte `i / 8`), as lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<String>,
    /// When not complete: the pieces it is fetching now, in the same
    /// form (so a crowd does not ask a seeder for them again). Optional:
    /// older peers leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetching: Option<String>,
}

/// Every error answer of the tracker and the node: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// Checks a peer name: 1 to 64 characters; no control, bidirectional or
/// invisible characters (see [`crate::text::is_hidden`]), so a name cannot
/// rewrite a terminal or pass for another; no spaces at either end.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(format!("name must have 1 to {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(crate::text::is_hidden) {
        return Err("name must not contain control, bidirectional or invisible characters".into());
    }
    if name.trim() != name {
        return Err("name must not start or end with spaces".into());
    }
    Ok(())
}

impl ErrorBody {
    /// The message as it may be shown: escaped and cut to [`MAX_ERROR_LEN`].
    pub fn shown(&self) -> String {
        crate::text::bounded(&self.error, MAX_ERROR_LEN)
    }
}

impl PeerRecord {
    /// The record as it may be used and shown, whoever sent it: a name
    /// with hidden characters made visible and cut to [`MAX_NAME_LEN`], at
    /// most [`MAX_ADDRS`] addresses, each a valid `host:port`.
    pub fn sanitized(mut self) -> Self {
        if validate_name(&self.name).is_err() {
            self.name = crate::text::bounded(self.name.trim(), MAX_NAME_LEN);
            if self.name.is_empty() {
                self.name = format!("peer-{}", self.peer_id.short());
            }
        }
        self.addrs.retain(|a| PeerAddr::parse(a).is_ok());
        self.addrs.truncate(MAX_ADDRS);
        self
    }
}

/// The scheme of a relay address: `relay://HOST:PORT` is "reach me
/// through the relay there".
pub const RELAY_SCHEME: &str = "relay://";

/// One address of a peer: `HOST:PORT` to dial directly, or
/// `relay://HOST:PORT`, a relay that pipes bytes to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// Dialled over TCP.
    Direct(HostPort),
    /// A relay the peer keeps a connection to; its host is never
    /// unspecified.
    Relay(HostPort),
}

impl PeerAddr {
    /// Parses `host:port` (as [`HostPort::parse`]) or `relay://host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix(RELAY_SCHEME) {
            Some(rest) => {
                let hp = HostPort::parse(rest)?;
                if hp.is_unspecified() {
                    return Err(format!(
                        "`{}`: a relay address needs its host",
                        crate::text::bounded(s, 80)
                    ));
                }
                Ok(Self::Relay(hp))
            }
            None => Ok(Self::Direct(HostPort::parse(s)?)),
        }
    }

    /// Whether it is reached through a relay.
    pub fn is_relay(&self) -> bool {
        matches!(self, Self::Relay(_))
    }

    /// The host and port dialled (the relay's, for a relay address).
    pub fn host_port(&self) -> &HostPort {
        match self {
            Self::Direct(h) | Self::Relay(h) => h,
        }
    }

    /// The same, mutably.
    pub fn host_port_mut(&mut self) -> &mut HostPort {
        match self {
            Self::Direct(h) | Self::Relay(h) => h,
        }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Direct(h) => h.fmt(f),
            Self::Relay(h) => write!(f, "{RELAY_SCHEME}{h}"),
        }
    }
}

/// How a peer can be reached, as a tracker found out by dialling it back
/// (`POST /v1/peers/{id}/probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// One of its direct addresses answered from outside.
    Direct,
    /// None did, but it keeps a relay address.
    Relayed,
    /// Nothing the tracker tried reached it.
    Unreachable,
}

impl Reach {
    /// The word shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
            Self::Unreachable => "unreachable",
        }
    }
}

/// The tracker's answer to `POST /v1/peers/{id}/probe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What the dial-back found.
    pub reach: Reach,
    /// Each direct address tried, and whether the peer answered there.
    pub addrs: Vec<ProbedAddr>,
    /// Relays the tracker advertises (`relay://HOST:PORT`).
    #[serde(default)]
    pub relays: Vec<String>,
}

/// One address a probe tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbedAddr {
    /// The address.
    pub addr: String,
    /// Whether the peer answered there, proving its key.
    pub reachable: bool,
}

/// A parsed `host:port` address. The host is empty when unspecified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// IPv4, bracketless IPv6, a DNS name, or empty.
    pub host: String,
    /// The port, never 0.
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`, `[v6]:port` or `:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not a host:port address",
                s.chars().take(80).collect::<String>()
            )
        };
        if s.len() > MAX_ADDR_LEN {
            return Err(bad());
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 || !s.is_ascii() {
            return Err(bad());
        }
        let host = if let Some(v6) = host.strip_prefix('[') {
            let v6 = v6.strip_suffix(']').ok_or_else(bad)?;
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            v6.to_owned()
        } else if host.is_empty() || host.parse::<std::net::Ipv4Addr>().is_ok() {
            host.to_owned()
        } else if host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        {
            host.to_ascii_lowercase()
        } else {
            return Err(bad());
        };
        Ok(Self { host, port })
    }

    /// True when the tracker must fill in the host.
    pub fn is_unspecified(&self) -> bool {
        self.host.is_empty()
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_signature_covers_every_field() {
        let id = Identity::from_seed([3; 32]);
        let r = Registration::new(&id, "alice", vec!["127.0.0.1:7000".into()], 60, 1000);
        assert!(r.verify().is_ok());
        let json = serde_json::to_string(&r).unwrap();
        let back: Registration = serde_json::from_str(&json).unwrap();
        assert!(back.verify().is_ok());

        let mut t = r.clone();
        t.name = "mallory".into();
        assert!(t.verify().is_err());
        let mut t = r.clone();
        t.addrs = vec!["10.0.0.1:7000".into()];
        assert!(t.verify().is_err());
        let mut t = r.clone();
        t.ttl = 61;
        assert!(t.verify().is_err());
        let mut t = r.clone();
        t.ts = 1001;
        assert!(t.verify().is_err());
        let mut t = r.clone();
        t.peer_id = Identity::from_seed([4; 32]).peer_id();
        assert!(t.verify().is_err());
        // The seed-compatible address is covered too, when present.
        assert!(!json.contains("compat"), "absent unless used: {json}");
        let mut t = r.clone();
        t.compat = Some("127.0.0.1:8000".into());
        assert!(t.verify().is_err());
        let c = Registration::with_compat(
            &id,
            "alice",
            vec!["127.0.0.1:7000".into()],
            Some(":8000".into()),
            60,
            1000,
        );
        assert!(c.verify().is_ok() && c.validate().is_ok());
        let mut t = c.clone();
        t.compat = Some(":8001".into());
        assert!(t.verify().is_err());
        let bad = Registration::with_compat(
            &id,
            "alice",
            vec!["127.0.0.1:7000".into()],
            Some("not an address".into()),
            60,
            1000,
        );
        assert!(bad.validate().is_err());
    }

    #[test]
    fn host_port_accepts_addresses_and_rejects_junk() {
        for ok in [
            "127.0.0.1:1",
            ":7000",
            "0.0.0.0:5",
            "[::1]:80",
            "Example.com:443",
            "a-b.c:9",
        ] {
            assert!(HostPort::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "x",
            "1.2.3.4",
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "[::1:80",
            "a b:1",
            "-a:1",
            "a..b:1",
            "'x':1",
            "é:1",
            "h:1\n",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HostPort::parse(":7").unwrap().is_unspecified());
        assert!(HostPort::parse("[::]:7").unwrap().is_unspecified());
        assert_eq!(HostPort::parse("[::1]:8").unwrap().to_string(), "[::1]:8");
    }

    #[test]
    fn peer_addresses_are_direct_or_through_a_relay() {
        let r = PeerAddr::parse("relay://10.0.0.1:7100").unwrap();
        assert!(r.is_relay());
        assert_eq!(r.to_string(), "relay://10.0.0.1:7100");
        let d = PeerAddr::parse(":7000").unwrap();
        assert!(!d.is_relay() && d.host_port().is_unspecified());
        for bad in [
            "relay://:7100",
            "relay://0.0.0.0:1",
            "relay://x",
            "quic://1.2.3.4:5",
        ] {
            assert!(PeerAddr::parse(bad).is_err(), "{bad}");
        }
        let id = Identity::from_seed([3; 32]);
        let reg = Registration::new(
            &id,
            "alice",
            vec!["10.0.0.2:7000".into(), "relay://10.0.0.1:7100".into()],
            60,
            1,
        );
        assert!(reg.validate().is_ok());
    }
}
