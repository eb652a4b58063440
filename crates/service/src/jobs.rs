//! What a running transfer does: a download from its peers (then opening
//! it if it is encrypted), a push into a peer's inbox; and the file work
//! behind sharing and decrypting.

use super::*;

/// What a running transfer needs.
pub(super) struct JobCtx {
    pub(super) client: Arc<PeerClient>,
    pub(super) identity: Arc<Identity>,
    pub(super) feed: LogFeed,
    pub(super) meter: Arc<Meter>,
}

impl JobCtx {
    /// Waits for a download to end, then opens it if it is encrypted for
    /// this node's key. A download cancelled, or paused and not resumed,
    /// never ends here: its waiter is dropped instead.
    pub(super) async fn finish_download(self, handle: Handle, name: String) -> TransferState {
        let path = match handle.wait().await {
            Ok(p) => p,
            Err(e) => {
                let e = match &*e {
                    shoal_node::NodeError::Exists(p) => Failure::new(
                        shoal_core::ErrorKind::Conflict,
                        format!(
                            "{} already exists; move it away, or choose another download folder in Settings",
                            p.display()
                        ),
                    ),
                    e => Failure::of(e),
                };
                self.feed
                    .log(Level::Error, format!("download of {name} failed: {e}"));
                return TransferState::Failed(e);
            }
        };
        let identity = self.identity.clone();
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || open_with_key(&p, &identity)).await;
        match opened {
            Ok(Opened::Plain) => {
                self.feed
                    .log(Level::Success, format!("saved {}", path.display()));
                TransferState::Done(path)
            }
            Ok(Opened::Decrypted(plain)) => {
                self.feed.log(
                    Level::Success,
                    format!("saved {} (decrypted)", plain.display()),
                );
                TransferState::Done(plain)
            }
            Ok(Opened::NeedsPassphrase) => {
                self.feed.log(
                    Level::Info,
                    format!(
                        "downloaded {}; it is encrypted with a passphrase, enter it to open the file",
                        path.display()
                    ),
                );
                TransferState::NeedsPassphrase(path)
            }
            Ok(Opened::Failed(e)) => {
                self.feed.log(
                    Level::Error,
                    format!(
                        "downloaded and verified {}, but cannot open it: {e}; it is kept as it is",
                        path.display()
                    ),
                );
                TransferState::Done(path)
            }
            Err(e) => {
                TransferState::Failed(Failure::new(shoal_core::ErrorKind::Internal, e.to_string()))
            }
        }
    }

    pub(super) async fn push(self, peer: PeerRecord, path: PathBuf) -> TransferState {
        match shoal_node::send::send_file(&self.client, &peer, &path, &*self.meter).await {
            Ok(got) => {
                self.feed.log(
                    Level::Success,
                    format!(
                        "sent {} to {} (in its inbox as {})",
                        path.display(),
                        peer.name,
                        got.name
                    ),
                );
                TransferState::Done(PathBuf::from(got.name))
            }
            Err(e) => {
                self.feed.log(
                    Level::Error,
                    format!("cannot send {} to {}: {e}", path.display(), peer.name),
                );
                TransferState::Failed(Failure::of(&e))
            }
        }
    }
}

enum Opened {
    Plain,
    Decrypted(PathBuf),
    NeedsPassphrase,
    Failed(String),
}

/// Opens a downloaded `.age` file meant for this node's key; says when a
/// passphrase is needed instead. The ciphertext goes once the plaintext
/// is on disk.
fn open_with_key(path: &Path, identity: &Identity) -> Opened {
    let Some(out) = shoal_crypt::encrypted_download(path) else {
        return Opened::Plain;
    };
    if path.extension().is_none_or(|e| e != "age") {
        return Opened::NeedsPassphrase; // the seed's Fernet: a password
    }
    match shoal_crypt::needs(path) {
        Ok(shoal_crypt::Needs::Passphrase) => Opened::NeedsPassphrase,
        Ok(shoal_crypt::Needs::Key) => {
            match shoal_crypt::decrypt_file(path, &out, &shoal_crypt::Key::Identity(identity), true)
            {
                Ok(_) => {
                    let _ = std::fs::remove_file(path);
                    Opened::Decrypted(out)
                }
                Err(e) => Opened::Failed(e.to_string()),
            }
        }
        Err(e) => Opened::Failed(e.to_string()),
    }
}

/// Decrypts `path` (age or the seed's Fernet) with a passphrase into its
/// plain name; removes the ciphertext once the plaintext is on disk.
pub(super) fn open_with_passphrase(
    path: &Path,
    passphrase: SecretString,
) -> Result<PathBuf, String> {
    use shoal_crypt::secrecy::ExposeSecret;
    let out = shoal_crypt::plain_name(path)
        .ok_or_else(|| format!("{} is not an encrypted file", path.display()))?;
    if shoal_crypt::is_fernet_file(path) {
        shoal_crypt::legacy::decrypt_file(path, &out, passphrase.expose_secret(), true)
            .map_err(|e| e.to_string())?;
    } else {
        shoal_crypt::decrypt_file(path, &out, &shoal_crypt::Key::Passphrase(passphrase), true)
            .map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_file(path);
    Ok(out)
}

/// Puts `src` into `folder` (the first share): copied, or encrypted as
/// `NAME.age`. Never replaces a file there.
pub(super) fn share_file(
    src: &Path,
    folder: Option<PathBuf>,
    lock: ShareLock,
) -> Result<PathBuf, String> {
    let folder = folder.ok_or("no share folder is set; add one in Settings first".to_owned())?;
    let meta = std::fs::metadata(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist (any more)".to_owned(),
        _ => format!("cannot read it: {e}"),
    })?;
    if meta.is_dir() {
        return Err(
            "it is a folder; share files one by one, or add the folder as a share in Settings"
                .into(),
        );
    }
    if !folder.is_dir() {
        return Err(format!(
            "the share folder {} does not exist; create it or choose another in Settings",
            folder.display()
        ));
    }
    if src.file_name().is_none() {
        return Err("it has no file name".into());
    }
    let lock = match lock {
        ShareLock::Plain => None,
        ShareLock::Passphrase(p) => Some(shoal_crypt::Lock::Passphrase(p)),
        ShareLock::Peer(id) => Some(shoal_crypt::Lock::Peers(vec![
            shoal_crypt::PeerKey::of_peer(&id).map_err(|e| e.to_string())?,
        ])),
    };
    shoal_crypt::share_into(src, &folder, lock.as_ref()).map_err(|e| e.to_string())
}
