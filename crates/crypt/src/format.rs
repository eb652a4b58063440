//! The age v1 file format (<https://c2sp.org/age>): header and payload.
//!
//! The `age` crate supplies the recipient stanzas (scrypt, and our
//! ssh-ed25519 peer keys) and parses them; this module frames the header,
//! checks its MAC, and runs the payload STREAM with ring's ChaCha20-Poly1305
//! (assembly, about twice as fast here as the pure-Rust cipher the `age`
//! crate uses, and the one TLS already loads). Files are interchangeable with
//! the `age` tool's; the tests check that both ways.
//!
//! Payload: a 16-byte nonce, then the plaintext in 64 KiB chunks, each
//! sealed under HKDF-SHA-256(nonce, "payload", file key) with the nonce
//! `counter (11 bytes, big-endian) ‖ last (1 byte)`. Only the final chunk
//! is marked last, so a file cut at a chunk boundary fails to open.

use std::io::{BufRead, Read, Write};

use age::{DecryptError, Identity, Recipient};
use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::primitives::hkdf;
use age_core::secrecy::ExposeSecret;
use data_encoding::BASE64_NOPAD;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;

use crate::CryptError;

const MAGIC: &[u8] = b"age-encryption.org/v1\n";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const NONCE: usize = 16;
/// Chunks processed per read and write: few, so the data is still in the
/// CPU cache when the cipher runs over it.
const BATCH: usize = 16;
/// Longest header accepted (real ones are a few hundred bytes per stanza).
const MAX_HEADER: usize = 1024 * 1024;
const SCRYPT: &str = "scrypt";

fn io_err(what: &'static str) -> impl Fn(std::io::Error) -> CryptError {
    move |source| CryptError::File {
        action: what,
        path: "the stream".into(),
        source,
    }
}

fn corrupt(why: &str) -> CryptError {
    CryptError::Corrupt(why.to_owned())
}

fn header_mac(file_key: &FileKey, header: &[u8]) -> [u8; 32] {
    let key = hkdf(&[], b"header", file_key.expose_secret());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(header);
    mac.finalize().into_bytes().into()
}

fn payload_key(file_key: &FileKey, nonce: &[u8; NONCE]) -> LessSafeKey {
    let key = hkdf(nonce, b"payload", file_key.expose_secret());
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("32-byte key"))
}

fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn random<const N: usize>() -> Result<[u8; N], CryptError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| io_err("draw random bytes for")(std::io::Error::other(e)))?;
    Ok(b)
}

/// Encrypts `input` into `output` for `recipients`; returns the plaintext
/// length.
pub fn encrypt(
    recipients: &[&dyn Recipient],
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> Result<u64, CryptError> {
    let file_key = FileKey::new(Box::new(random::<FILE_KEY_BYTES>()?));
    let mut header = MAGIC.to_vec();
    for r in recipients {
        let (stanzas, _) = r
            .wrap_file_key(&file_key)
            .map_err(|e| CryptError::BadRecipient(e.to_string()))?;
        for s in stanzas {
            write_stanza(&mut header, &s);
        }
    }
    header.extend_from_slice(b"---");
    let mac = header_mac(&file_key, &header);
    header.push(b' ');
    header.extend_from_slice(BASE64_NOPAD.encode(&mac).as_bytes());
    header.push(b'\n');
    output.write_all(&header).map_err(io_err("write"))?;

    let nonce = random::<NONCE>()?;
    output.write_all(&nonce).map_err(io_err("write"))?;
    let key = payload_key(&file_key, &nonce);
    // A chunk is read (64 KiB, so it is still in the CPU cache when sealed)
    // straight into the output buffer; the next is read before it is sealed,
    // to know whether it is the last.
    let mut out: Vec<u8> = vec![0u8; (BATCH + 1) * (CHUNK + TAG)];
    let mut at = 0usize; // sealed bytes at the front of `out`
    let mut len = read_full(input, &mut out[..CHUNK])?;
    let mut total = len as u64;
    let mut counter = 0u64;
    loop {
        // Look ahead into the slot after this chunk's tag.
        let next_at = at + len + TAG;
        let next_len = if len == CHUNK {
            read_full(input, &mut out[next_at..next_at + CHUNK])?
        } else {
            0
        };
        let last = next_len == 0;
        let tag = key
            .seal_in_place_separate_tag(
                chunk_nonce(counter, last),
                Aad::empty(),
                &mut out[at..at + len],
            )
            .map_err(|_| corrupt("the cipher refused a chunk"))?;
        out[at + len..next_at].copy_from_slice(tag.as_ref());
        counter += 1;
        total += next_len as u64;
        if last {
            output.write_all(&out[..next_at]).map_err(io_err("write"))?;
            return Ok(total);
        }
        if next_at >= BATCH * (CHUNK + TAG) {
            output.write_all(&out[..next_at]).map_err(io_err("write"))?;
            out.copy_within(next_at..next_at + next_len, 0);
            at = 0;
        } else {
            at = next_at;
        }
        len = next_len;
    }
}

fn write_stanza(out: &mut Vec<u8>, s: &Stanza) {
    out.extend_from_slice(b"-> ");
    out.extend_from_slice(s.tag.as_bytes());
    for a in &s.args {
        out.push(b' ');
        out.extend_from_slice(a.as_bytes());
    }
    out.push(b'\n');
    let body = BASE64_NOPAD.encode(&s.body);
    let mut rest = body.as_bytes();
    while rest.len() >= 64 {
        out.extend_from_slice(&rest[..64]);
        out.push(b'\n');
        rest = &rest[64..];
    }
    // The last body line is always short, empty if need be.
    out.extend_from_slice(rest);
    out.push(b'\n');
}

/// Reads as much as fits, stopping early only at the end of the input.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize, CryptError> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read")(e)),
        }
    }
    Ok(n)
}

/// A parsed header: its stanzas, the bytes its MAC covers, and the MAC.
pub struct Header {
    stanzas: Vec<Stanza>,
    covered: Vec<u8>,
    mac: [u8; 32],
}

impl Header {
    /// Whether it is locked with a passphrase.
    pub fn is_scrypt(&self) -> bool {
        self.stanzas.iter().any(|s| s.tag == SCRYPT)
    }

    /// The file key, unwrapped by the first identity that can, with the
    /// header's MAC checked against it.
    pub fn file_key(&self, identities: &[&dyn Identity]) -> Result<FileKey, DecryptError> {
        if self.is_scrypt() && self.stanzas.len() != 1 {
            // A passphrase stanza must stand alone (age spec).
            return Err(DecryptError::InvalidHeader);
        }
        let key = identities
            .iter()
            .find_map(|i| i.unwrap_stanzas(&self.stanzas))
            .unwrap_or(Err(DecryptError::NoMatchingKeys))?;
        let want = header_mac(&key, &self.covered);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], &self.mac[..])) {
            return Err(DecryptError::InvalidMac);
        }
        Ok(key)
    }
}

/// Reads and parses the header from the front of `input`.
pub fn read_header(input: &mut dyn BufRead) -> Result<Header, CryptError> {
    let mut covered: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    let mut next_line = |line: &mut Vec<u8>, covered_len: usize| -> Result<(), CryptError> {
        line.clear();
        let limit = (MAX_HEADER.saturating_sub(covered_len)) as u64 + 1;
        input
            .take(limit)
            .read_until(b'\n', line)
            .map_err(io_err("read"))?;
        if line.last() != Some(&b'\n') {
            return Err(if covered_len == 0 {
                CryptError::NotEncrypted
            } else {
                corrupt("the header is cut short or too long")
            });
        }
        Ok(())
    };
    next_line(&mut line, 0)?;
    if line != MAGIC {
        return Err(CryptError::NotEncrypted);
    }
    covered.extend_from_slice(&line);
    let mut stanzas = Vec::new();
    loop {
        next_line(&mut line, covered.len())?;
        if let Some(rest) = line.strip_prefix(b"--- ") {
            covered.extend_from_slice(b"---");
            let mac = rest
                .strip_suffix(b"\n")
                .and_then(|m| BASE64_NOPAD.decode(m).ok())
                .and_then(|m| <[u8; 32]>::try_from(m).ok())
                .ok_or_else(|| corrupt("the header's MAC line is malformed"))?;
            return Ok(Header {
                stanzas,
                covered,
                mac,
            });
        }
        if !line.starts_with(b"-> ") {
            return Err(corrupt("the header has a line that is not a stanza"));
        }
        // A stanza: its line, then body lines up to the first short one.
        let mut raw = line.clone();
        loop {
            next_line(&mut line, covered.len() + raw.len())?;
            raw.extend_from_slice(&line);
            if line.len() < 65 {
                break;
            }
        }
        let (rest, parsed) = age_core::format::read::age_stanza(&raw)
            .map_err(|_| corrupt("the header has a malformed stanza"))?;
        if !rest.is_empty() {
            return Err(corrupt("the header has a malformed stanza"));
        }
        stanzas.push(Stanza::from(parsed));
        covered.extend_from_slice(&raw);
        if covered.len() > MAX_HEADER {
            return Err(corrupt("the header is too long"));
        }
    }
}

/// Decrypts the payload after the header into `output`, every chunk
/// checked; returns the plaintext length. On error, `output` may hold a
/// verified prefix: the caller throws it away.
pub fn decrypt_payload(
    file_key: &FileKey,
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> Result<u64, CryptError> {
    let mut nonce = [0u8; NONCE];
    if read_full(input, &mut nonce)? != NONCE {
        return Err(corrupt("the file ends before its payload"));
    }
    let key = payload_key(file_key, &nonce);
    let sealed = CHUNK + TAG;
    let mut buf = vec![0u8; (BATCH + 1) * sealed];
    let mut held = 0usize;
    let mut counter = 0u64;
    let mut total = 0u64;
    let mut out = Vec::with_capacity((BATCH + 1) * CHUNK);
    loop {
        let want = (BATCH + 1) * sealed;
        let got = read_full(input, &mut buf[held..want])?;
        let filled = held + got;
        let eof = filled < want;
        let chunks = if eof {
            filled.div_ceil(sealed)
        } else {
            filled / sealed - 1
        };
        if eof && chunks == 0 {
            return Err(corrupt("the payload is missing"));
        }
        out.clear();
        for i in 0..chunks {
            let start = i * sealed;
            let end = (start + sealed).min(filled);
            let last = eof && i == chunks - 1;
            if end - start < TAG || (!last && end - start != sealed) {
                return Err(corrupt("the payload is cut short"));
            }
            let chunk = &mut buf[start..end];
            let plain = key
                .open_in_place(chunk_nonce(counter, last), Aad::empty(), chunk)
                .map_err(|_| {
                    corrupt("a chunk does not authenticate (damaged, cut short or reordered)")
                })?;
            if last && plain.is_empty() && counter > 0 {
                return Err(corrupt("the payload ends with an empty chunk"));
            }
            counter += 1;
            out.extend_from_slice(plain);
        }
        total += out.len() as u64;
        output.write_all(&out).map_err(io_err("write"))?;
        if eof {
            return Ok(total);
        }
        buf.copy_within(chunks * sealed..filled, 0);
        held = filled - chunks * sealed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::SecretString;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 % 241) as u8).collect()
    }

    /// Our files open with the age crate, and its files open with ours.
    #[test]
    fn interchangeable_with_the_age_crate() {
        let pass = SecretString::from("pw".to_owned());
        for n in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            BATCH * CHUNK,
            (BATCH + 1) * CHUNK + 7,
            3 * BATCH * CHUNK,
        ] {
            let data = sample(n);
            // Ours → age crate.
            let mut r = age::scrypt::Recipient::new(pass.clone());
            r.set_work_factor(2);
            let mut ct = Vec::new();
            encrypt(&[&r], &mut &data[..], &mut ct).unwrap();
            let d = age::Decryptor::new_buffered(&ct[..]).unwrap();
            let id = age::scrypt::Identity::new(pass.clone());
            let mut pt = Vec::new();
            d.decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap()
                .read_to_end(&mut pt)
                .unwrap();
            assert_eq!(pt, data, "ours to age, {n} bytes");
            // age crate → ours.
            let mut ct = Vec::new();
            let mut w = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                .unwrap()
                .wrap_output(&mut ct)
                .unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap();
            let mut input = &ct[..];
            let h = read_header(&mut input).unwrap();
            let key = h.file_key(&[&id]).unwrap();
            let mut pt = Vec::new();
            decrypt_payload(&key, &mut input, &mut pt).unwrap();
            assert_eq!(pt, data, "age to ours, {n} bytes");
        }
    }
}
