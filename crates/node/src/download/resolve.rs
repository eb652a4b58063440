//! Turning what the user named into what to fetch: safe local names, a
//! peer's listing, and the providers of a content with its proven size.

use shoal_core::ContentId;
use shoal_core::wire::{FileEntry, MAX_FILE_SIZE, PeerRecord};

use super::providers::Sources;
use crate::book::PeerBook;
use crate::error::{NodeError, Result};
use crate::peer_client::PeerClient;
use crate::pieces::{self, Verifier};

/// The local file name for a remote path: its last component, if that is
/// a safe name on this system.
pub fn local_name(remote: &str) -> Result<String> {
    let name = remote.rsplit('/').next().unwrap_or("");
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['\\', '\0'])
        || name.chars().any(shoal_core::text::is_hidden);
    if bad {
        return Err(NodeError::UnsafeName(shoal_core::text::bounded(
            remote, 300,
        )));
    }
    Ok(name.to_owned())
}

/// Extensions that make a file a program on some system.
const PROGRAMS: &[&str] = &[
    "exe", "com", "bat", "cmd", "msi", "scr", "ps1", "vbs", "js", "jar", "lnk", "app", "sh",
    "command", "desktop", "appimage",
];

/// A name a provider chose (for `get CONTENT_ID`, where the user named no
/// file) made safe to save under: hidden characters become `_`, and a
/// leading dot becomes `_.`, so a download never lands as a dotfile such
/// as `.bash_profile`. Says so when it changed the name, and warns when
/// the name is a program's.
pub fn provider_name(remote: &str) -> Result<String> {
    let base = remote.rsplit('/').next().unwrap_or("");
    let mut name: String = base
        .chars()
        .map(|c| {
            if shoal_core::text::is_hidden(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.starts_with('.') && name != "." && name != ".." {
        name.insert(0, '_');
    }
    let name = local_name(&name)?;
    if name != base {
        tracing::warn!(
            listed = %shoal_core::text::escape(base),
            saved = %name,
            "the provider's name for this file was changed to be safe to save"
        );
    }
    if let Some(ext) = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
        && PROGRAMS.contains(&ext.as_str())
    {
        tracing::warn!(
            name = %name,
            "the provider named this file as a program (.{ext}); it is saved without permission to run, but check it before you open it"
        );
    }
    Ok(name)
}

/// Resolves a peer (saying so when only its cached address is known) and
/// fetches its file listing.
pub(crate) async fn listing(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
) -> Result<(PeerRecord, Vec<FileEntry>)> {
    let (peer, source) = book.resolve(peer_query).await?;
    if let crate::book::Source::Cache(why) = &source {
        tracing::warn!("using the cached address of {}: {why}", peer.name);
    }
    let files = client.files(&peer).await?;
    Ok((peer, files))
}

/// The file at `path` in the listing of the peer `peer_query` names.
pub async fn find_path(
    book: &PeerBook,
    client: &PeerClient,
    peer_query: &str,
    path: &str,
) -> Result<(PeerRecord, FileEntry)> {
    let (peer, files) = listing(book, client, peer_query).await?;
    let wanted = path.trim_start_matches('/');
    let entry = files
        .into_iter()
        .find(|f| f.name == wanted)
        .ok_or_else(|| NodeError::NoSuchFile {
            peer: peer.peer_id,
            peer_short: peer.name.clone(),
            path: path.to_owned(),
        })?;
    Ok((peer, entry))
}

/// Providers whose listings are read at once while looking for a content.
const LISTINGS_AT_ONCE: usize = 32;
/// Most providers whose listings are read while looking for a content.
const MAX_LISTINGS: usize = 64;
/// Longest time spent reading providers' listings for one content.
const FIND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Once one provider's listing has the content, how much longer the
/// others are waited for (their votes decide a disputed size).
const FIND_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Who provides `cid` (ourselves left out), and its listing entry.
///
/// The providers' listings are read a few at a time, under one deadline,
/// so providers that never answer cost no more than that. Providers may
/// disagree about the size (a liar, or a stale listing): each claim is
/// checked before it is believed (its outboard must hash up to the
/// content id, or for a file of one piece its bytes must), the best
/// supported first, and only providers that agree with the proven claim
/// are returned.
pub async fn find_content(
    sources: &Sources,
    client: &PeerClient,
    cid: ContentId,
) -> Result<(Vec<PeerRecord>, FileEntry)> {
    use futures_util::StreamExt;
    let mut providers = Vec::new();
    add_peers(&mut providers, sources.providers(cid).await?, client);
    providers.truncate(MAX_LISTINGS);
    let mut last = NodeError::NoProvider(cid);
    // (entry, providers that list it so) per claimed size.
    let mut claims: Vec<(FileEntry, Vec<PeerRecord>)> = Vec::new();
    let asks: Vec<_> = providers
        .iter()
        .cloned()
        .map(|peer| listing_of(client, peer))
        .collect();
    let mut answers = futures_util::stream::iter(asks).buffer_unordered(LISTINGS_AT_ONCE);
    let mut deadline = tokio::time::Instant::now() + FIND_DEADLINE;
    loop {
        let next = tokio::time::timeout_at(deadline, answers.next()).await;
        let Ok(Some((peer, files))) = next else {
            if next.is_err() {
                tracing::warn!("some providers did not answer in time; going on without them");
            }
            break;
        };
        match files {
            Ok(files) => {
                let Some(entry) = files.into_iter().find(|f| f.content_id == cid) else {
                    continue;
                };
                deadline = deadline.min(tokio::time::Instant::now() + FIND_GRACE);
                match claims.iter_mut().find(|(e, _)| e.size == entry.size) {
                    Some((_, peers)) => peers.push(peer),
                    None => claims.push((entry, vec![peer])),
                }
            }
            Err(e) => {
                tracing::warn!(peer = %peer.name, error = %e, "provider unreachable");
                last = e;
            }
        }
    }
    drop(answers);
    // Best supported first; on a tie, the order listings arrived in.
    claims.sort_by_key(|(_, peers)| std::cmp::Reverse(peers.len()));
    for (entry, peers) in claims {
        if entry.size > MAX_FILE_SIZE {
            last = too_large(&peers[0], &entry);
            continue;
        }
        for peer in &peers {
            match prove_size(client, peer, &entry).await {
                Ok(()) => return Ok((peers, entry)),
                Err(e) => {
                    tracing::warn!(peer = %peer.name, size = entry.size, error = %e, "a provider's listing of this content does not hold up");
                    last = e;
                }
            }
        }
    }
    Err(last)
}

/// The outboard of `entry` from `peer`, checked against the content id.
pub(super) async fn usable_outboard<'a>(
    client: &PeerClient,
    peer: &'a PeerRecord,
    entry: &FileEntry,
    outboard_size: u64,
) -> (&'a PeerRecord, Result<(Verifier, Vec<u8>)>) {
    // A file of one piece has an empty outboard: nothing to ask for.
    let got = if outboard_size == 0 {
        Ok(Vec::new())
    } else {
        client.outboard(peer, entry.content_id, outboard_size).await
    };
    let got = got.and_then(|o| {
        Verifier::new(entry.content_id, entry.size, o.clone())
            .map(|v| (v, o))
            .map_err(|reason| NodeError::protocol(peer.peer_id, reason))
    });
    (peer, got)
}

/// A provider's listing, with who it came from.
async fn listing_of(client: &PeerClient, peer: PeerRecord) -> (PeerRecord, Result<Vec<FileEntry>>) {
    let r = client.files(&peer).await;
    (peer, r)
}

/// Checks that `entry`'s size is that of its content: its outboard hashes
/// up to the content id, or (one piece) its bytes do.
async fn prove_size(client: &PeerClient, peer: &PeerRecord, entry: &FileEntry) -> Result<()> {
    let protocol = |reason: String| NodeError::protocol(peer.peer_id, reason);
    let outboard_size = pieces::tree(entry.size).outboard_size();
    if outboard_size > 0 {
        return usable_outboard(client, peer, entry, outboard_size)
            .await
            .1
            .map(|_| ());
    }
    if entry.size == 0 {
        return if entry.content_id == ContentId::of(b"") {
            Ok(())
        } else {
            Err(protocol(
                "lists an empty file under a non-empty content id".into(),
            ))
        };
    }
    let mut resp = client
        .content(peer, entry.content_id, Some((0, entry.size)))
        .await?;
    if !resp.status().is_success() {
        return Err(crate::peer_client::refusal(peer, resp).await);
    }
    let body = crate::body::read_capped(&mut resp, entry.size)
        .await
        .map_err(|_| protocol("sent more than the file it listed".into()))?;
    if body.len() as u64 == entry.size && ContentId::of(&body) == entry.content_id {
        Ok(())
    } else {
        Err(protocol(
            "its bytes do not match the size and content id it lists".into(),
        ))
    }
}

pub(super) fn too_large(peer: &PeerRecord, entry: &FileEntry) -> NodeError {
    NodeError::protocol(
        peer.peer_id,
        format!(
            "lists {} as {} bytes, more than the largest file Shoal transfers ({} bytes)",
            shoal_core::text::escape(&entry.name),
            entry.size,
            MAX_FILE_SIZE
        ),
    )
}

/// Adds providers not already listed (and not ourselves).
pub fn add_peers(peers: &mut Vec<PeerRecord>, more: Vec<PeerRecord>, client: &PeerClient) {
    for p in more {
        if p.peer_id != client.peer_id() && !peers.iter().any(|q| q.peer_id == p.peer_id) {
            peers.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_are_single_safe_components() {
        assert_eq!(local_name("a/b/c.txt").unwrap(), "c.txt");
        assert_eq!(local_name("x").unwrap(), "x");
        for bad in [
            "",
            "a/",
            "..",
            "a/..",
            ".",
            "a\\b",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
            "a\u{202e}txt.exe",
            "x\u{200b}",
            "\x1b]0;title\x07",
        ] {
            assert!(local_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn provider_chosen_names_are_never_dotfiles() {
        assert_eq!(provider_name(".bash_profile").unwrap(), "_.bash_profile");
        assert_eq!(provider_name("x/.ssh").unwrap(), "_.ssh");
        assert_eq!(provider_name("a\u{202e}fdp.exe").unwrap(), "a_fdp.exe");
        assert_eq!(provider_name("report.pdf").unwrap(), "report.pdf");
        assert!(provider_name("..").is_err());
        assert!(provider_name("a\\b").is_err());
    }
}
