//! Content ids: the BLAKE3 hash of a file's bytes, exactly as `b3sum` prints it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The BLAKE3 hash of a file's bytes; written as 64 lowercase hex chars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; 32]);

/// A string that is not a content id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{shown}` is not a content id: expected 64 hex characters (a BLAKE3 hash as b3sum prints it)"
)]
pub struct ContentIdError {
    /// The offending input, cut short if long.
    pub shown: String,
}

impl ContentId {
    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw hash bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The content id of an in-memory buffer.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl From<blake3::Hash> for ContentId {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = ContentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ContentIdError {
            shown: s.chars().take(80).collect(),
        };
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_matches_b3sum() {
        // `b3sum /dev/null`
        assert_eq!(
            ContentId::of(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn parses_only_64_hex_chars() {
        let id = ContentId::of(b"x").to_string();
        assert_eq!(id.parse::<ContentId>().unwrap().to_string(), id);
        assert_eq!(
            id.to_uppercase().parse::<ContentId>().unwrap().to_string(),
            id
        );
        for bad in [
            "",
            "abc",
            &id[1..],
            &format!("{id}0"),
            &id.replace('a', "g"),
            "../etc/passwd",
        ] {
            assert!(bad.parse::<ContentId>().is_err(), "{bad:?} parsed");
        }
        let multibyte = format!("é{}", &id[2..]);
        assert!(multibyte.parse::<ContentId>().is_err());
    }
}
