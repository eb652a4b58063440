//! The seed's encrypted files (`NAME.encrypted`): one Fernet token, the key
//! from PBKDF2-HMAC-SHA256 over the password (100,000 iterations, 32 bytes,
//! the fixed salt `shareit_p2p_salt`), base64url-encoded as Fernet expects.
//!
//! A token is base64url of `0x80 ‖ timestamp (8) ‖ IV (16) ‖ AES-128-CBC
//! ciphertext ‖ HMAC-SHA256 (32)`, the MAC keyed with the first half of the
//! key and covering everything before it, the cipher keyed with the second
//! half. The file is read twice: once to check the MAC (nothing is written
//! before it matches), once to decrypt, so memory stays constant however
//! large the file.

use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::Path;

use aes::cipher::{BlockDecryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{CryptError, Staged, file_err};

/// The seed's fixed salt.
pub const SALT: &[u8] = b"shareit_p2p_salt";
/// The seed's PBKDF2 iterations.
pub const ITERATIONS: u32 = 100_000;

const VERSION: u8 = 0x80;
const HEADER: usize = 1 + 8 + 16;
const MAC_LEN: usize = 32;
const BLOCK: usize = 16;

/// Whether `prefix` (the first bytes of a file) looks like a Fernet token:
/// base64url of the version byte 0x80 always begins with `gAAAAA`.
pub fn is_fernet(prefix: &[u8]) -> bool {
    prefix.starts_with(b"gAAAAA")
}

/// The Fernet key the seed derived from `password`: (signing, encryption).
fn key_for(password: &str) -> ([u8; 16], [u8; 16]) {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), SALT, ITERATIONS, &mut key);
    let (mut sign, mut enc) = ([0u8; 16], [0u8; 16]);
    sign.copy_from_slice(&key[..16]);
    enc.copy_from_slice(&key[16..]);
    zeroize::Zeroize::zeroize(&mut key);
    (sign, enc)
}

/// Decodes base64url text from `input` a block at a time, ignoring line
/// breaks, calling `sink` with the decoded bytes.
fn decode_stream(
    input: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), CryptError>,
) -> Result<u64, CryptError> {
    let bad = |why: &str| CryptError::Corrupt(format!("not a Fernet token: {why}"));
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| CryptError::Corrupt(e.to_string()))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        carry.extend(buf.iter().copied().filter(|c| !c.is_ascii_whitespace()));
        reader.consume(n);
        let whole = carry.len() / 4 * 4;
        // Keep the last quantum back: it may carry padding.
        let keep = if whole == carry.len() && whole >= 4 {
            4
        } else {
            carry.len() - whole
        };
        let take = carry.len() - keep;
        if take > 0 {
            let out = data_encoding::BASE64URL
                .decode(&carry[..take])
                .map_err(|_| bad("invalid base64"))?;
            total += out.len() as u64;
            sink(&out)?;
            carry.drain(..take);
        }
    }
    if !carry.is_empty() {
        let out = data_encoding::BASE64URL
            .decode(&carry)
            .or_else(|_| data_encoding::BASE64URL_NOPAD.decode(&carry))
            .map_err(|_| bad("invalid base64 at the end"))?;
        total += out.len() as u64;
        sink(&out)?;
    }
    Ok(total)
}

/// Decrypts the seed's file `src` with `password` into a new file `dst`
/// (on disk before it is named, if `durable`). A wrong password is
/// [`CryptError::WrongPassphrase`] and writes nothing.
pub fn decrypt_file(
    src: &Path,
    dst: &Path,
    password: &str,
    durable: bool,
) -> Result<u64, CryptError> {
    let mut file = std::fs::File::open(src).map_err(file_err("open", src))?;
    let (sign, enc) = key_for(password);

    // Pass 1: length and MAC.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&sign)
        .map_err(|e| CryptError::Corrupt(e.to_string()))?;
    let mut tail: Vec<u8> = Vec::with_capacity(2 * MAC_LEN);
    let mut head: Vec<u8> = Vec::with_capacity(HEADER);
    let total = decode_stream(&mut file, |bytes| {
        if head.len() < HEADER {
            let n = (HEADER - head.len()).min(bytes.len());
            head.extend_from_slice(&bytes[..n]);
        }
        // Everything but the last 32 bytes goes into the MAC.
        tail.extend_from_slice(bytes);
        if tail.len() > MAC_LEN {
            let n = tail.len() - MAC_LEN;
            mac.update(&tail[..n]);
            tail.drain(..n);
        }
        Ok(())
    })?;
    let body = total as usize;
    if body == 0 {
        return Err(CryptError::NotEncrypted);
    }
    if body < HEADER + BLOCK + MAC_LEN
        || head.first() != Some(&VERSION)
        || !(body - HEADER - MAC_LEN).is_multiple_of(BLOCK)
    {
        return Err(CryptError::Corrupt(
            "this seed file (Fernet) is damaged: its header or length is not that of a Fernet token".into(),
        ));
    }
    if mac.verify_slice(&tail).is_err() {
        return Err(CryptError::WrongPassphrase);
    }

    // Pass 2: decrypt, now that the MAC matched.
    file.rewind().map_err(file_err("read", src))?;
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&head[9..HEADER]);
    let mut cipher = cbc::Decryptor::<aes::Aes128>::new(&enc.into(), &iv.into());
    let cipher_len = body - HEADER - MAC_LEN;
    let mut out = Staged::new(dst, durable)?;
    let mut writer = std::io::BufWriter::with_capacity(256 * 1024, &mut out);
    let mut seen = 0usize; // decoded bytes so far
    let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut done = 0usize; // ciphertext bytes decrypted
    let mut last_block = [0u8; BLOCK];
    decode_stream(&mut file, |bytes| {
        // Keep only the ciphertext part of the token.
        let start = HEADER.saturating_sub(seen).min(bytes.len());
        let end = (HEADER + cipher_len).saturating_sub(seen).min(bytes.len());
        seen += bytes.len();
        if start < end {
            pending.extend_from_slice(&bytes[start..end]);
        }
        // Decrypt whole blocks, holding back the last one (its padding).
        let ready = pending.len() / BLOCK * BLOCK;
        let hold = if done + ready == cipher_len { BLOCK } else { 0 };
        let n = ready.saturating_sub(hold);
        for block in pending[..n].chunks_exact_mut(BLOCK) {
            cipher.decrypt_block_mut(block.into());
        }
        writer
            .write_all(&pending[..n])
            .map_err(file_err("write", dst))?;
        done += n;
        pending.drain(..n);
        if done + pending.len() == cipher_len && pending.len() == BLOCK {
            last_block.copy_from_slice(&pending);
            cipher.decrypt_block_mut((&mut last_block).into());
            pending.clear();
            done += BLOCK;
        }
        Ok(())
    })?;
    let pad = last_block[BLOCK - 1] as usize;
    if done != cipher_len
        || pad == 0
        || pad > BLOCK
        || last_block[BLOCK - pad..].iter().any(|&b| b as usize != pad)
    {
        return Err(CryptError::Corrupt("bad padding".into()));
    }
    writer
        .write_all(&last_block[..BLOCK - pad])
        .map_err(file_err("write", dst))?;
    writer.flush().map_err(file_err("write", dst))?;
    drop(writer);
    out.commit()?;
    Ok((cipher_len - pad) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_key_derivation_matches_pythons() {
        // base64url(PBKDF2HMAC(SHA256, 32, b"shareit_p2p_salt", 100000).derive(b"password")),
        // from Python's cryptography (see tests/fixtures/legacy/make.py).
        let (sign, enc) = key_for("password");
        let mut key = sign.to_vec();
        key.extend_from_slice(&enc);
        assert_eq!(
            data_encoding::BASE64URL.encode(&key),
            include_str!("../tests/fixtures/legacy/password.key").trim()
        );
    }

    #[test]
    fn fernet_tokens_are_recognised() {
        assert!(is_fernet(b"gAAAAABn"));
        assert!(!is_fernet(b"age-encryption.org/v1"));
        assert!(!is_fernet(b""));
    }
}
