//! At-rest encryption for Shoal, shared by the CLI, the node and the GUI.
//!
//! Files are [age](https://age-encryption.org/v1) files: streamed in 64 KiB
//! authenticated chunks, so memory stays constant and a flipped bit or a
//! cut-off file is an error, never wrong output. A file is locked either
//! with a passphrase (scrypt with a random salt per file) or to one or more
//! peers' keys ([`PeerKey`]), which open it with their own identity and no
//! passphrase. [`legacy`] opens the files the Python seed encrypted.
//!
//! The file functions never leave partial output: they write a temporary
//! file beside the target and give it the target's name only when
//! everything verified, without replacing an existing file.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod format;
pub mod legacy;
mod peer;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use shoal_core::{ErrorKind, HasKind, Identity};

pub use age::secrecy;
pub use peer::{PeerIdentity, PeerKey};

/// scrypt work factor for passphrases: N = 2^18, as the `age` tool uses
/// (about a second, and 256 MiB of memory, whatever the file's size).
pub const SCRYPT_LOG_N: u8 = 18;

/// Bytes of memory scrypt needs at work factor 2^`log_n` (r = 8).
pub fn scrypt_memory(log_n: u8) -> u64 {
    1u64.checked_shl(u32::from(log_n) + 10).unwrap_or(u64::MAX)
}

/// The largest scrypt work factor (log2 N) a passphrase file may ask for
/// here: what half the available memory holds, never below what Shoal
/// and `age` write ([`SCRYPT_LOG_N`]) and never above 2^22 (4 GiB, about
/// a quarter of a minute), so a hostile header cannot make a decrypt
/// allocate the machine away.
pub fn max_scrypt_log_n() -> u8 {
    let by_memory = available_memory()
        .map(|m| (m / 2).max(1).ilog2().saturating_sub(10) as u8)
        .unwrap_or(20);
    by_memory.clamp(SCRYPT_LOG_N, 22)
}

/// Memory available to new allocations, where the system tells.
fn available_memory() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The magic line every age file starts with.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// What goes wrong while encrypting or decrypting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// The passphrase does not open the file.
    #[error("the passphrase is wrong (or the file was changed)")]
    WrongPassphrase,
    /// The file is encrypted to other keys.
    #[error("this file is not encrypted for this peer ({0}); it was meant for someone else")]
    NotForUs(String),
    /// The file is encrypted with a passphrase, and none was given.
    #[error(
        "this file is locked with a passphrase; give one (--passphrase-file F, or at the prompt)"
    )]
    NeedsPassphrase,
    /// The file is encrypted to peers, and a passphrase was given.
    #[error(
        "this file is encrypted to peers' keys, not with a passphrase; open it as the peer it was meant for"
    )]
    NeedsKey,
    /// Not an encrypted file at all.
    #[error("not an encrypted file (no age header); nothing to decrypt")]
    NotEncrypted,
    /// The ciphertext is damaged or cut short.
    #[error("the encrypted data is damaged or cut short: {0}")]
    Corrupt(String),
    /// A passphrase must not be empty.
    #[error("an empty passphrase protects nothing; choose a real one")]
    EmptyPassphrase,
    /// A recipient could not be used.
    #[error("cannot encrypt to that recipient: {0}")]
    BadRecipient(String),
    /// The file asks for more scrypt work than this machine allows.
    #[error(
        "the file asks scrypt for work factor 2^{required} ({}), more than this machine allows (2^{allowed}, by its free memory); it may be hostile, and nothing was written",
        shoal_core::human_size(scrypt_memory(*required))
    )]
    ExcessiveWork {
        /// The work factor (log2 N) the file asks for.
        required: u8,
        /// The most allowed here.
        allowed: u8,
    },
    /// The output exists and was left alone.
    #[error("{0} already exists; move it away or choose another output with -o")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl HasKind for CryptError {
    fn kind(&self) -> ErrorKind {
        match self {
            CryptError::WrongPassphrase
            | CryptError::NotForUs(_)
            | CryptError::NeedsPassphrase
            | CryptError::NeedsKey
            | CryptError::NotEncrypted
            | CryptError::Corrupt(_)
            | CryptError::ExcessiveWork { .. } => ErrorKind::Decryption,
            CryptError::EmptyPassphrase | CryptError::BadRecipient(_) => ErrorKind::Usage,
            CryptError::Exists(_) => ErrorKind::Conflict,
            CryptError::File { .. } => ErrorKind::File,
        }
    }
}

fn file_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CryptError {
    let path = path.to_owned();
    move |source| CryptError::File {
        action,
        path,
        source,
    }
}

/// How a file is locked.
pub enum Lock {
    /// With a passphrase (scrypt, random salt).
    Passphrase(SecretString),
    /// To these peers' keys (each can open it alone).
    Peers(Vec<PeerKey>),
}

/// How a file is opened.
pub enum Key<'a> {
    /// With a passphrase.
    Passphrase(SecretString),
    /// With this node's own key.
    Identity(&'a Identity),
}

/// A passphrase, refused if empty.
pub fn passphrase(text: String) -> Result<SecretString, CryptError> {
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.is_empty() {
        return Err(CryptError::EmptyPassphrase);
    }
    Ok(SecretString::from(text))
}

/// Encrypts everything `input` yields into `output`; returns the
/// plaintext length.
pub fn encrypt(
    input: &mut dyn Read,
    output: &mut dyn Write,
    lock: &Lock,
) -> Result<u64, CryptError> {
    match lock {
        Lock::Passphrase(p) => {
            let mut r = age::scrypt::Recipient::new(p.clone());
            r.set_work_factor(SCRYPT_LOG_N);
            format::encrypt(&[&r], input, output)
        }
        Lock::Peers(keys) if keys.is_empty() => {
            Err(CryptError::BadRecipient("no recipient given".into()))
        }
        Lock::Peers(keys) => {
            let rs: Vec<&dyn age::Recipient> =
                keys.iter().map(|k| k as &dyn age::Recipient).collect();
            format::encrypt(&rs, input, output)
        }
    }
}

/// Whether `prefix` (the first bytes of a file) is the start of an age file.
pub fn is_age(prefix: &[u8]) -> bool {
    !prefix.is_empty() && (prefix.starts_with(AGE_MAGIC) || AGE_MAGIC.starts_with(prefix))
}

/// What an age file's header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A passphrase.
    Passphrase,
    /// A key it was encrypted to.
    Key,
}

/// Reads the header of an encrypted file to tell what opens it.
pub fn needs(path: &Path) -> Result<Needs, CryptError> {
    let file = std::fs::File::open(path).map_err(file_err("open", path))?;
    let header = format::read_header(&mut BufReader::new(file))?;
    Ok(if header.is_scrypt() {
        Needs::Passphrase
    } else {
        Needs::Key
    })
}

/// Decrypts `input` into `output`, checking every chunk; returns the
/// plaintext length. On error, `output` holds an unverified prefix: the
/// caller must throw it away (the file functions do).
pub fn decrypt(
    mut input: impl BufRead,
    output: &mut dyn Write,
    key: &Key<'_>,
) -> Result<u64, CryptError> {
    let header = format::read_header(&mut input)?;
    let scrypt = header.is_scrypt();
    let file_key = match key {
        Key::Passphrase(_) if !scrypt => return Err(CryptError::NeedsKey),
        Key::Identity(_) if scrypt => return Err(CryptError::NeedsPassphrase),
        Key::Passphrase(p) => {
            let mut id = age::scrypt::Identity::new(p.clone());
            id.set_max_work_factor(max_scrypt_log_n());
            header.file_key(&[&id])
        }
        Key::Identity(me) => header.file_key(&[&PeerIdentity::new(me)]),
    }
    .map_err(|e| match (e, key) {
        (age::DecryptError::ExcessiveWork { required, .. }, _) => CryptError::ExcessiveWork {
            required,
            allowed: max_scrypt_log_n(),
        },
        (
            age::DecryptError::NoMatchingKeys
            | age::DecryptError::DecryptionFailed
            | age::DecryptError::InvalidMac,
            Key::Passphrase(_),
        ) => CryptError::WrongPassphrase,
        (age::DecryptError::NoMatchingKeys, Key::Identity(me)) => {
            CryptError::NotForUs(me.peer_id().short())
        }
        (other, _) => CryptError::Corrupt(other.to_string()),
    })?;
    format::decrypt_payload(&file_key, &mut input, output)
}

/// A temporary file beside `target`, given `target`'s name by
/// [`Staged::commit`] (never replacing a file) or removed when dropped.
///
/// A durable one is on disk before it gets its name: every [`SYNC_EVERY`]
/// bytes a helper thread flushes what was written so far, so the sync
/// before the rename has little left to do and writeback overlaps the
/// work. Use it when the input goes away afterwards; when the input stays
/// (as for `encrypt` and `decrypt`, like `age` or `cp`), a crash cannot
/// lose anything and the syncs are skipped.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    durable: bool,
    unsynced: u64,
    syncer: Option<Syncer>,
}

/// Bytes written between two background syncs.
const SYNC_EVERY: u64 = 16 * 1024 * 1024;

struct Syncer {
    tx: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Syncer {
    fn start(file: std::fs::File) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                file.sync_data()?;
            }
            Ok(())
        });
        Self { tx, thread }
    }

    fn finish(self) -> std::io::Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the disk sync thread stopped")))
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.tmp.as_file_mut().write(buf)?;
        self.unsynced += n as u64;
        if self.durable && self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if self.syncer.is_none() {
                self.syncer = Some(Syncer::start(self.tmp.as_file().try_clone()?));
            }
            if let Some(s) = &self.syncer {
                let _ = s.tx.send(());
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Staged {
    /// Starts writing what will become `target` (on disk before it is
    /// named, if `durable`).
    pub fn new(target: &Path, durable: bool) -> Result<Self, CryptError> {
        if target.symlink_metadata().is_ok() {
            return Err(CryptError::Exists(target.to_owned()));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".shoal-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(file_err("create a file in", &dir))?;
        Ok(Self {
            tmp,
            target: target.to_owned(),
            durable,
            unsynced: 0,
            syncer: None,
        })
    }

    /// Syncs the file and gives it its final name.
    pub fn commit(mut self) -> Result<PathBuf, CryptError> {
        if let Some(s) = self.syncer.take() {
            s.finish().map_err(file_err("sync", &self.target))?;
        }
        if self.durable {
            self.tmp
                .as_file()
                .sync_all()
                .map_err(file_err("sync", &self.target))?;
        }
        let (durable, target) = (self.durable, self.target);
        let (_, tmp) = self.tmp.keep().map_err(|e| CryptError::File {
            action: "name",
            path: target.clone(),
            source: e.error,
        })?;
        if let Err(e) = shoal_fs::durable::link_noclobber(&tmp, &target) {
            let _ = std::fs::remove_file(&tmp);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                CryptError::Exists(target.clone())
            } else {
                CryptError::File {
                    action: "name",
                    path: target.clone(),
                    source: e,
                }
            });
        }
        if durable {
            shoal_fs::durable::sync_parent(&target);
        }
        Ok(target)
    }
}

/// Encrypts the file `src` into a new file `dst` (on disk before it is
/// named, if `durable`).
pub fn encrypt_file(src: &Path, dst: &Path, lock: &Lock, durable: bool) -> Result<u64, CryptError> {
    transform(src, dst, durable, "encrypt", |mut input, out| {
        encrypt(&mut input, out, lock)
    })
}

/// Decrypts the file `src` into a new file `dst`; nothing is left at `dst`
/// unless every byte verified (and it is on disk, if `durable`).
pub fn decrypt_file(
    src: &Path,
    dst: &Path,
    key: &Key<'_>,
    durable: bool,
) -> Result<u64, CryptError> {
    transform(src, dst, durable, "decrypt", |input, out| {
        decrypt(BufReader::with_capacity(256 * 1024, input), out, key)
    })
}

/// Runs `f` from the file `src` into a staged `dst`, which is named only
/// if `f` succeeds.
pub(crate) fn transform(
    src: &Path,
    dst: &Path,
    durable: bool,
    action: &'static str,
    f: impl FnOnce(std::fs::File, &mut dyn Write) -> Result<u64, CryptError>,
) -> Result<u64, CryptError> {
    let input = std::fs::File::open(src).map_err(file_err("open", src))?;
    if input.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(CryptError::File {
            action,
            path: src.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::IsADirectory),
        });
    }
    let mut out = Staged::new(dst, durable)?;
    let mut writer = std::io::BufWriter::with_capacity(256 * 1024, &mut out);
    let n = f(input, &mut writer)?;
    writer.flush().map_err(file_err("write", dst))?;
    drop(writer);
    out.commit()?;
    Ok(n)
}

/// The plaintext name of an encrypted file: without `.age` or the seed's
/// `.encrypted`; `None` for other names.
pub fn plain_name(file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".age")
        .or_else(|| name.strip_suffix(".encrypted"))?;
    (!stem.is_empty()).then(|| file.with_file_name(stem))
}

/// Where a downloaded encrypted file opens to: `NAME` for `NAME.age`, and
/// for the seed's `NAME.encrypted` when it starts like a Fernet token;
/// `None` for a file that is not encrypted.
pub fn encrypted_download(path: &Path) -> Option<PathBuf> {
    let out = plain_name(path)?;
    let is_age = path.extension().is_some_and(|e| e == "age");
    (is_age || is_fernet_file(path)).then_some(out)
}

/// Whether `file` starts like the seed's Fernet tokens.
pub fn is_fernet_file(file: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 6];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| legacy::is_fernet(&head))
}

/// Puts `src` into the folder `into` under its own name: a copy, or with
/// `lock` an encrypted copy named `NAME.age`. The new file appears only
/// when complete and never replaces one already there; returns its path.
pub fn share_into(src: &Path, into: &Path, lock: Option<&Lock>) -> Result<PathBuf, CryptError> {
    let name = src.file_name().ok_or_else(|| CryptError::File {
        action: "share (it has no file name)",
        path: src.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let plain = into.join(name);
    match lock {
        None => copy_file(src, &plain).map(|()| plain),
        Some(lock) => {
            let mut s = plain.into_os_string();
            s.push(".age");
            let dst = PathBuf::from(s);
            encrypt_file(src, &dst, lock, false).map(|_| dst)
        }
    }
}

/// Copies `src` to the new file `dst`, which appears only when complete
/// and never replaces a file already there.
pub fn copy_file(src: &Path, dst: &Path) -> Result<(), CryptError> {
    let mut input = std::fs::File::open(src).map_err(|source| CryptError::File {
        action: "open",
        path: src.to_owned(),
        source,
    })?;
    let mut out = Staged::new(dst, false)?;
    std::io::copy(&mut input, &mut out).map_err(|source| CryptError::File {
        action: "copy into",
        path: dst.to_owned(),
        source,
    })?;
    out.commit().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class 10: a passphrase file asking scrypt for more memory than the
    /// machine allows is refused before any of it is allocated.
    #[test]
    fn a_hostile_work_factor_is_refused_before_any_work() {
        use data_encoding::BASE64_NOPAD;
        let salt = BASE64_NOPAD.encode(&[1u8; 16]);
        let body = BASE64_NOPAD.encode(&[2u8; 32]);
        let mac = BASE64_NOPAD.encode(&[3u8; 32]);
        let cap = max_scrypt_log_n();
        assert!((SCRYPT_LOG_N..=22).contains(&cap), "{cap}");
        for wf in [23u8, 30, 40] {
            let mut file =
                format!("age-encryption.org/v1\n-> scrypt {salt} {wf}\n{body}\n--- {mac}\n")
                    .into_bytes();
            file.extend([0u8; 64]);
            let started = std::time::Instant::now();
            let key = Key::Passphrase(SecretString::from("pw".to_owned()));
            let err = decrypt(&file[..], &mut Vec::new(), &key).unwrap_err();
            assert!(
                matches!(err, CryptError::ExcessiveWork { required, allowed } if required == wf && allowed == cap),
                "{err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            assert!(err.to_string().contains("memory"), "{err}");
        }
    }

    fn pass(s: &str) -> SecretString {
        passphrase(s.to_owned()).unwrap()
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn round_trip(data: &[u8], lock: &Lock, key: &Key<'_>) -> Vec<u8> {
        let mut ct = Vec::new();
        encrypt(&mut &data[..], &mut ct, lock).unwrap();
        assert!(ct.starts_with(AGE_MAGIC));
        let mut pt = Vec::new();
        decrypt(&ct[..], &mut pt, key).unwrap();
        pt
    }

    #[test]
    fn round_trips_at_the_chunk_edges() {
        let me = Identity::from_seed([1; 32]);
        for n in [0, 1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 200_000] {
            let data = sample(n);
            let peers = Lock::Peers(vec![PeerKey::of_peer(&me.peer_id()).unwrap()]);
            assert_eq!(round_trip(&data, &peers, &Key::Identity(&me)), data, "{n}");
        }
        let data = sample(64 * 1024 + 1);
        assert_eq!(
            round_trip(
                &data,
                &Lock::Passphrase(pass("pw")),
                &Key::Passphrase(pass("pw"))
            ),
            data
        );
    }

    #[test]
    fn the_wrong_key_or_passphrase_is_a_clear_error() {
        let (me, other) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
        let mut ct = Vec::new();
        let lock = Lock::Peers(vec![PeerKey::of_peer(&me.peer_id()).unwrap()]);
        encrypt(&mut &b"secret"[..], &mut ct, &lock).unwrap();
        let mut out = Vec::new();
        let e = decrypt(&ct[..], &mut out, &Key::Identity(&other)).unwrap_err();
        assert!(matches!(e, CryptError::NotForUs(_)), "{e}");
        let e = decrypt(&ct[..], &mut out, &Key::Passphrase(pass("x"))).unwrap_err();
        assert!(matches!(e, CryptError::NeedsKey), "{e}");
        assert!(out.is_empty());

        let mut ct = Vec::new();
        encrypt(
            &mut &b"secret"[..],
            &mut ct,
            &Lock::Passphrase(pass("right")),
        )
        .unwrap();
        let e = decrypt(&ct[..], &mut out, &Key::Passphrase(pass("wrong"))).unwrap_err();
        assert!(matches!(e, CryptError::WrongPassphrase), "{e}");
        let e = decrypt(&ct[..], &mut out, &Key::Identity(&me)).unwrap_err();
        assert!(matches!(e, CryptError::NeedsPassphrase), "{e}");
        assert!(out.is_empty());
        assert_eq!(e.kind(), ErrorKind::Decryption);
        assert!(matches!(
            passphrase("\n".into()),
            Err(CryptError::EmptyPassphrase)
        ));
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_caught() {
        let me = Identity::from_seed([3; 32]);
        let data = sample(3 * 64 * 1024 + 5);
        let mut ct = Vec::new();
        let lock = Lock::Peers(vec![PeerKey::of_peer(&me.peer_id()).unwrap()]);
        encrypt(&mut &data[..], &mut ct, &lock).unwrap();
        let step = ct.len() / 97;
        for i in (0..ct.len()).step_by(step.max(1)).chain([ct.len() - 1]) {
            let mut bad = ct.clone();
            bad[i] ^= 0x10;
            let mut out = Vec::new();
            assert!(
                decrypt(&bad[..], &mut out, &Key::Identity(&me)).is_err(),
                "flip at {i} of {}",
                ct.len()
            );
        }
        for cut in [0, 10, 100, ct.len() / 2, ct.len() - 17, ct.len() - 1] {
            let mut out = Vec::new();
            assert!(
                decrypt(&ct[..cut], &mut out, &Key::Identity(&me)).is_err(),
                "cut at {cut}"
            );
        }
        let mut out = Vec::new();
        let e = decrypt(&b"just some text\n"[..], &mut out, &Key::Identity(&me)).unwrap_err();
        assert!(matches!(e, CryptError::NotEncrypted), "{e}");
    }

    #[test]
    fn files_appear_only_when_complete_and_never_replace_anything() {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::from_seed([4; 32]);
        let src = dir.path().join("plain.txt");
        std::fs::write(&src, sample(100_000)).unwrap();
        let ct = dir.path().join("plain.txt.age");
        let lock = Lock::Peers(vec![PeerKey::of_peer(&me.peer_id()).unwrap()]);
        encrypt_file(&src, &ct, &lock, true).unwrap();
        assert!(matches!(
            encrypt_file(&src, &ct, &lock, false),
            Err(CryptError::Exists(_))
        ));
        // A damaged copy: an error and no output.
        let mut bytes = std::fs::read(&ct).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let damaged = dir.path().join("damaged.age");
        std::fs::write(&damaged, bytes).unwrap();
        let out = dir.path().join("out.txt");
        assert!(decrypt_file(&damaged, &out, &Key::Identity(&me), true).is_err());
        assert!(!out.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        decrypt_file(&ct, &out, &Key::Identity(&me), false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), sample(100_000));
        assert!(matches!(
            decrypt_file(&ct, &out, &Key::Identity(&me), true),
            Err(CryptError::Exists(_))
        ));
    }
}
