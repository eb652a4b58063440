//! `shoal encrypt`, `decrypt` and `share`, and opening encrypted downloads.
//!
//! Passphrases come from `--passphrase-file` (its first line) or a terminal
//! prompt (twice when encrypting), never from an argument, and never reach
//! the log.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use shoal_core::PeerId;
use shoal_crypt::secrecy::SecretString;
use shoal_crypt::{CryptError, Key, Lock, Needs, PeerKey, legacy};

use crate::client::UsageError;
use crate::context::Context;

/// Whether `file` starts with age's magic line.
fn starts_like_age(file: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 22];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head[..] == *shoal_crypt::AGE_MAGIC)
}

/// The passphrase in the first line of `path`.
fn passphrase_from_file(path: &Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
    let first = text.lines().next().unwrap_or("").to_owned();
    Ok(shoal_crypt::passphrase(first)?)
}

fn no_terminal() -> anyhow::Error {
    UsageError(
        "a passphrase is needed and there is no terminal to ask on; give --passphrase-file F"
            .into(),
    )
    .into()
}

fn prompt(text: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal());
    }
    rpassword::prompt_password(text).context("cannot read the passphrase from the terminal")
}

/// A new passphrase: from the file, or asked twice (a mismatch refused).
fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    if let Some(f) = file {
        return passphrase_from_file(f);
    }
    let first = prompt("passphrase: ")?;
    let again = prompt("passphrase again: ")?;
    if first != again {
        anyhow::bail!(UsageError(
            "the two passphrases differ; nothing was written".into()
        ));
    }
    Ok(shoal_crypt::passphrase(first)?)
}

/// An existing passphrase: from the file, or asked once.
fn old_passphrase(file: Option<&Path>) -> Result<SecretString> {
    match file {
        Some(f) => passphrase_from_file(f),
        None => Ok(shoal_crypt::passphrase(prompt("passphrase: ")?)?),
    }
}

/// A recipient: an `ssh-ed25519` key, a peer id, or a peer the tracker
/// knows by name or id prefix.
async fn recipient(ctx: &Context, who: &str) -> Result<PeerKey> {
    if who.starts_with("ssh-") {
        return Ok(PeerKey::from_ssh(who)?);
    }
    if let Ok(id) = who.parse::<PeerId>() {
        return Ok(PeerKey::of_peer(&id)?);
    }
    let (peer, _) = ctx
        .book()
        .await?
        .resolve(who)
        .await
        .with_context(|| format!("cannot encrypt to `{who}`"))?;
    Ok(PeerKey::of_peer(&peer.peer_id)?)
}

async fn lock(ctx: &Context, to: &[String], passphrase_file: Option<&Path>) -> Result<Lock> {
    if to.is_empty() {
        return Ok(Lock::Passphrase(new_passphrase(passphrase_file)?));
    }
    let mut keys = Vec::new();
    for who in to {
        keys.push(recipient(ctx, who).await?);
    }
    Ok(Lock::Peers(keys))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CryptError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

pub async fn encrypt(
    ctx: &Context,
    file: &Path,
    passphrase_file: Option<&Path>,
    to: &[String],
    output: Option<&Path>,
) -> Result<()> {
    let out = output.map_or_else(|| with_suffix(file, ".age"), Path::to_path_buf);
    let lock = lock(ctx, to, passphrase_file).await?;
    let (src, dst) = (file.to_owned(), out.clone());
    blocking(move || shoal_crypt::encrypt_file(&src, &dst, &lock, false)).await?;
    if !ctx.quiet {
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// Decrypts `file` into `out`: the seed's Fernet files with a password,
/// age files with a passphrase or this node's own key, whichever the file
/// asks for. `durable`: `out` is on disk before it gets its name (needed
/// when `file` is removed afterwards).
async fn open(
    ctx: &Context,
    file: &Path,
    out: &Path,
    passphrase_file: Option<&Path>,
    legacy_hint: bool,
    durable: bool,
) -> Result<()> {
    let (src, dst) = (file.to_owned(), out.to_owned());
    // A `.encrypted` file that is not age is the seed's, even when its
    // first bytes are damaged: it gets the seed's checks and is called
    // damaged, not "no age header".
    let seed_name = file.extension().is_some_and(|e| e == "encrypted") && !starts_like_age(file);
    if legacy_hint || seed_name || shoal_crypt::is_fernet_file(file) {
        let password = old_passphrase(passphrase_file)?;
        return blocking(move || {
            use shoal_crypt::secrecy::ExposeSecret;
            legacy::decrypt_file(&src, &dst, password.expose_secret(), durable).map(|_| ())
        })
        .await;
    }
    let needs = {
        let f = file.to_owned();
        blocking(move || shoal_crypt::needs(&f)).await?
    };
    match needs {
        Needs::Passphrase => {
            let key = Key::Passphrase(old_passphrase(passphrase_file)?);
            blocking(move || shoal_crypt::decrypt_file(&src, &dst, &key, durable).map(|_| ())).await
        }
        Needs::Key => {
            let identity = ctx.identity()?;
            blocking(move || {
                shoal_crypt::decrypt_file(&src, &dst, &Key::Identity(&identity), durable)
                    .map(|_| ())
            })
            .await
        }
    }
}

pub async fn decrypt(
    ctx: &Context,
    file: &Path,
    passphrase_file: Option<&Path>,
    legacy: bool,
    output: Option<&Path>,
) -> Result<()> {
    let out = match output {
        Some(o) => o.to_owned(),
        None => shoal_crypt::plain_name(file).ok_or_else(|| {
            UsageError(format!(
                "{} does not end in .age or .encrypted; say where to write with -o OUT",
                file.display()
            ))
        })?,
    };
    open(ctx, file, &out, passphrase_file, legacy, false).await?;
    if !ctx.quiet {
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

pub async fn share(
    ctx: &Context,
    file: &Path,
    encrypt: bool,
    passphrase_file: Option<&Path>,
    to: &[String],
    into: Option<&Path>,
) -> Result<()> {
    let folder = match into {
        Some(d) => d.to_owned(),
        None => ctx.config.shares.first().cloned().ok_or_else(|| {
            UsageError(
                "no share folder is configured; give --into DIR (a folder your node shares) or add `shares = [\"DIR\"]` to config.toml".into(),
            )
        })?,
    };
    if !folder.is_dir() {
        anyhow::bail!(UsageError(format!(
            "{} is not a folder; give --into DIR with a folder your node shares",
            folder.display()
        )));
    }
    if file.file_name().is_none() {
        anyhow::bail!(UsageError(format!("{} is not a file", file.display())));
    }
    if let (Ok(src), Ok(dir)) = (file.canonicalize(), folder.canonicalize())
        && src.starts_with(&dir)
        && (encrypt || !to.is_empty())
    {
        tracing::warn!(
            file = %file.display(),
            "the file itself is inside the share folder, so its plaintext is shared too; move it out"
        );
    }
    let lock = if encrypt || !to.is_empty() {
        Some(lock(ctx, to, passphrase_file).await?)
    } else {
        None
    };
    let src = file.to_owned();
    let target = blocking(move || shoal_crypt::share_into(&src, &folder, lock.as_ref())).await?;
    if !ctx.quiet {
        eprintln!(
            "shared {} (a running node lists it within a moment)",
            target.display()
        );
    }
    Ok(())
}

/// After `get`: opens an encrypted download (`NAME.age`, or the seed's
/// `NAME.encrypted`) into `NAME`. Returns the plaintext's path, or `None`
/// if the file is not encrypted. On failure the verified ciphertext stays
/// where it is and the error says how to open it later.
pub async fn open_download(
    ctx: &Context,
    path: &Path,
    passphrase_file: Option<&Path>,
) -> Result<Option<PathBuf>> {
    let Some(out) = shoal_crypt::encrypted_download(path) else {
        return Ok(None);
    };
    let again = match passphrase_file {
        Some(f) => format!(" --passphrase-file {}", f.display()),
        None => String::new(),
    };
    open(ctx, path, &out, passphrase_file, false, true)
        .await
        .with_context(|| {
            format!(
                "downloaded and verified {}, but cannot open it; it is kept, so try again with `shoal decrypt {}{again}`",
                path.display(),
                path.display()
            )
        })?;
    Ok(Some(out))
}
