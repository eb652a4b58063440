//! `shoal:` links: one line that hands someone a file.
//!
//! A link carries what a downloader needs with no tracker at all: the
//! file's content id (which decides integrity), its size and name, and
//! the peer id and addresses of a node that provides it. It is built like
//! a magnet link, a query of `key=value` pairs after `shoal:?`:
//!
//! ```text
//! shoal:?v=1&cid=<64 hex>&size=<bytes>&name=<percent-encoded>&peer=<peer id>&addr=<host:port>&addr=...
//! ```
//!
//! - `v` is the format's version, `1` today. A link of a later version is
//!   refused with a message saying so; keys this version does not know are
//!   ignored, so later versions may add keys without a new `v`.
//! - `cid`, `size`, `name` and `peer` appear once each; `addr` one to
//!   [`MAX_ADDRS`] times (`IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`).
//! - Values are percent-encoded (UTF-8); only `name` usually needs it.
//!
//! An `addr` may be `relay://HOST:PORT`, a relay the provider keeps.
//! The addresses are hints, as a tracker's are: the TLS pin to `peer`
//! decides who answers, and the content id decides what is kept. A link is
//! at most [`MAX_LEN`] bytes.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::{ContentId, ErrorKind, HasKind, PeerId};

/// What every link starts with.
pub const SCHEME: &str = "shoal:";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// Most addresses in one link.
pub const MAX_ADDRS: usize = 8;
/// Longest link accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Longest name, in bytes (decoded).
pub const MAX_NAME: usize = 255;

/// Characters left as they are in a value: letters, digits and `-._~`
/// (RFC 3986's unreserved set), plus `:[]` for addresses.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'[')
    .remove(b']');

/// A parsed `shoal:` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The file's content id.
    pub content_id: ContentId,
    /// Its size in bytes.
    pub size: u64,
    /// The name it is shared under (a hint; a downloader makes it safe).
    pub name: String,
    /// A node that provides it.
    pub peer: PeerId,
    /// Where that node listened when the link was made.
    pub addrs: Vec<String>,
}

/// Why a text is not a usable link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// It does not start with `shoal:?`.
    #[error("a link starts with `shoal:?`")]
    Scheme,
    /// Longer than [`MAX_LEN`].
    #[error("it is longer than {MAX_LEN} bytes")]
    TooLong,
    /// Made by a later version of Shoal.
    #[error("it is a version {0} link; this Shoal reads version {VERSION} (update Shoal)")]
    Version(String),
    /// A key that must be there is not.
    #[error("it has no `{0}`")]
    Missing(&'static str),
    /// A key that must be there once is there twice.
    #[error("it has `{0}` twice")]
    Twice(&'static str),
    /// A value that cannot be read.
    #[error("its `{key}` is not {expected}")]
    Bad {
        /// The key.
        key: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// More than [`MAX_ADDRS`] addresses.
    #[error("it has more than {MAX_ADDRS} addresses")]
    TooManyAddrs,
}

impl HasKind for LinkError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl Link {
    /// Whether `text` looks like a link (and so should be parsed as one,
    /// not as `PEER:PATH`).
    pub fn looks_like(text: &str) -> bool {
        text.trim_start()
            .get(..SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |v: &str| utf8_percent_encode(v, VALUE).to_string();
        write!(
            f,
            "{SCHEME}?v={VERSION}&cid={}&size={}&name={}&peer={}",
            self.content_id,
            self.size,
            enc(&self.name),
            self.peer
        )?;
        for a in &self.addrs {
            write!(f, "&addr={}", enc(a))?;
        }
        Ok(())
    }
}

fn valid_addr(a: &str) -> bool {
    // A relay the provider keeps (`relay://HOST:PORT`) is an address too.
    let a = a.strip_prefix(crate::wire::RELAY_SCHEME).unwrap_or(a);
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

impl FromStr for Link {
    type Err = LinkError;

    fn from_str(text: &str) -> Result<Self, LinkError> {
        let text = text.trim();
        if text.len() > MAX_LEN {
            return Err(LinkError::TooLong);
        }
        if !Link::looks_like(text) {
            return Err(LinkError::Scheme);
        }
        let query = text[SCHEME.len()..]
            .strip_prefix('?')
            .ok_or(LinkError::Scheme)?;
        let (mut v, mut cid, mut size, mut name, mut peer) = (None, None, None, None, None);
        let mut addrs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "v" => &mut v,
                "cid" => &mut cid,
                "size" => &mut size,
                "name" => &mut name,
                "peer" => &mut peer,
                "addr" => {
                    if addrs.len() == MAX_ADDRS {
                        return Err(LinkError::TooManyAddrs);
                    }
                    addrs.push(decode(raw, "addr", "text")?);
                    continue;
                }
                _ => continue, // a later version's key
            };
            let key: &'static str = match key {
                "v" => "v",
                "cid" => "cid",
                "size" => "size",
                "name" => "name",
                _ => "peer",
            };
            if slot.is_some() {
                return Err(LinkError::Twice(key));
            }
            *slot = Some(decode(raw, key, "text")?);
        }
        match v.as_deref() {
            None => return Err(LinkError::Missing("v")),
            Some(v) if v == VERSION.to_string() => {}
            Some(v) => {
                return Err(LinkError::Version(crate::text::bounded(v, 20)));
            }
        }
        let bad = |key, expected| LinkError::Bad { key, expected };
        let content_id = cid
            .ok_or(LinkError::Missing("cid"))?
            .parse::<ContentId>()
            .map_err(|_| bad("cid", "a content id (64 hex digits)"))?;
        let size = size
            .ok_or(LinkError::Missing("size"))?
            .parse::<u64>()
            .map_err(|_| bad("size", "a size in bytes"))?;
        let name = name.ok_or(LinkError::Missing("name"))?;
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(bad(
                "name",
                "a file name (1 to 255 bytes, no control characters)",
            ));
        }
        let peer = peer
            .ok_or(LinkError::Missing("peer"))?
            .parse::<PeerId>()
            .map_err(|_| bad("peer", "a peer id"))?;
        if addrs.is_empty() {
            return Err(LinkError::Missing("addr"));
        }
        if !addrs.iter().all(|a| valid_addr(a)) {
            return Err(bad("addr", "HOST:PORT"));
        }
        Ok(Link {
            content_id,
            size,
            name,
            peer,
            addrs,
        })
    }
}

fn decode(raw: &str, key: &'static str, expected: &'static str) -> Result<String, LinkError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| LinkError::Bad { key, expected })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Link {
        Link {
            content_id: ContentId::of(b"hello"),
            size: 5,
            name: "notes & plans/ä 100%.txt".into(),
            peer: crate::Identity::from_seed([7; 32]).peer_id(),
            addrs: vec![
                "127.0.0.1:4000".into(),
                "[::1]:4000".into(),
                "nas.local:4000".into(),
                "relay://relay.example:7100".into(),
            ],
        }
    }

    #[test]
    fn a_link_reads_back_as_it_was_written() {
        let link = sample();
        let text = link.to_string();
        assert!(text.starts_with("shoal:?v=1&cid="), "{text}");
        assert!(!text.contains(' ') && !text.contains('\n'), "{text}");
        assert_eq!(text.parse::<Link>().unwrap(), link);
    }

    #[test]
    fn keys_of_a_later_version_are_ignored_but_a_later_version_is_refused() {
        let text = format!("{}&relay=https%3A%2F%2Fexample", sample());
        assert_eq!(text.parse::<Link>().unwrap(), sample());
        let newer = sample().to_string().replace("v=1", "v=2");
        assert_eq!(newer.parse::<Link>(), Err(LinkError::Version("2".into())));
        assert!(
            LinkError::Version("2".into())
                .to_string()
                .contains("update Shoal")
        );
    }

    #[test]
    fn garbled_links_say_what_is_wrong() {
        let good = sample().to_string();
        let cases: Vec<(String, LinkError)> = vec![
            ("magnet:?xt=1".into(), LinkError::Scheme),
            ("shoal:v=1".into(), LinkError::Scheme),
            (good.replace("v=1&", ""), LinkError::Missing("v")),
            (good.replace("&size=5", ""), LinkError::Missing("size")),
            (
                good.replace("&size=5", "&size=five"),
                LinkError::Bad {
                    key: "size",
                    expected: "a size in bytes",
                },
            ),
            (
                good.replace("cid=", "cid=zz"),
                LinkError::Bad {
                    key: "cid",
                    expected: "a content id (64 hex digits)",
                },
            ),
            (
                format!("{good}&peer={}", sample().peer),
                LinkError::Twice("peer"),
            ),
            (
                good.split("&addr=").next().unwrap().to_owned(),
                LinkError::Missing("addr"),
            ),
            (
                format!("{good}&addr=no-port"),
                LinkError::Bad {
                    key: "addr",
                    expected: "HOST:PORT",
                },
            ),
            (
                format!("{good}&addr=a%20b:1"),
                LinkError::Bad {
                    key: "addr",
                    expected: "HOST:PORT",
                },
            ),
            (
                format!("{good}&addr=%FF:1"),
                LinkError::Bad {
                    key: "addr",
                    expected: "text",
                },
            ),
            (
                format!("{good}{}", "&addr=h:1".repeat(6)),
                LinkError::TooManyAddrs,
            ),
            (
                format!("{good}&x={}", "a".repeat(MAX_LEN)),
                LinkError::TooLong,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Link>(), Err(want.clone()), "{text}");
            assert_eq!(want.kind(), ErrorKind::Usage);
        }
        let control = good.replace("name=", "name=%0A");
        assert!(matches!(
            control.parse::<Link>(),
            Err(LinkError::Bad { key: "name", .. })
        ));
    }

    #[test]
    fn a_link_is_told_from_peer_paths() {
        assert!(Link::looks_like("shoal:?v=1"));
        assert!(Link::looks_like("  SHOAL:?v=1"));
        assert!(!Link::looks_like("shoa"));
        assert!(!Link::looks_like("alice:notes.txt"));
    }

    proptest! {
        #[test]
        fn any_link_round_trips(
            name in "\\PC{1,60}",
            size in any::<u64>(),
            seed in any::<[u8; 32]>(),
            ports in proptest::collection::vec(1u16.., 1..=MAX_ADDRS),
        ) {
            prop_assume!(name.len() <= MAX_NAME);
            let link = Link {
                content_id: ContentId::of(&seed),
                size,
                name,
                peer: crate::Identity::from_seed(seed).peer_id(),
                addrs: ports.iter().map(|p| format!("10.0.0.1:{p}")).collect(),
            };
            let text = link.to_string();
            prop_assert!(!text.contains(char::is_whitespace));
            prop_assert_eq!(text.parse::<Link>().unwrap(), link);
        }

        #[test]
        fn no_text_makes_the_parser_panic(text in "\\PC{0,300}") {
            let _ = text.parse::<Link>();
            let _ = format!("shoal:?{text}").parse::<Link>();
        }
    }
}
