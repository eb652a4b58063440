//! `shoal send`: pushing files to another peer's inbox (see [`crate::inbox`]
//! for the protocol). An interrupted push resumes where the receiver's copy
//! stopped when it is sent again.

use std::path::Path;

use shoal_core::wire::PeerRecord;

use crate::download::Progress;
use crate::error::{NodeError, Result};
use crate::inbox::{Accepted, Offer, Received};
use crate::peer_client::PeerClient;

/// Sends the file at `path` to `peer`; returns its name in the peer's inbox.
pub async fn send_file(
    client: &PeerClient,
    peer: &PeerRecord,
    path: &Path,
    progress: &dyn Progress,
) -> Result<Received> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| NodeError::UnsafeName(path.display().to_string()))?
        .to_owned();
    let meta = std::fs::metadata(path).map_err(NodeError::file("read", path))?;
    if !meta.is_file() {
        return Err(NodeError::File {
            action: "send (it is not a file)",
            path: path.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    let size = meta.len();
    let p = path.to_owned();
    let content_id = tokio::task::spawn_blocking(move || crate::index::hash_file(&p))
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
        .map_err(NodeError::file("read", path))?;
    let offer = Offer {
        name: name.clone(),
        size,
        content_id,
    };
    progress.start(&name, size);
    let result = push(client, peer, path, &offer, progress).await;
    progress.finish();
    result
}

async fn push(
    client: &PeerClient,
    peer: &PeerRecord,
    path: &Path,
    offer: &Offer,
    progress: &dyn Progress,
) -> Result<Received> {
    // Twice at most: a second offer learns the receiver's offset if the
    // first upload raced with another.
    for _ in 0..2 {
        let resp = client.post_json(peer, "/v1/inbox", offer).await?;
        let accepted: Accepted = answer(peer, resp).await?;
        if accepted.offset > offer.size {
            return Err(NodeError::protocol(
                peer.peer_id,
                format!(
                    "claims to hold {} bytes of a {}-byte file",
                    accepted.offset, offer.size
                ),
            ));
        }
        if accepted.offset > 0 {
            tracing::info!(offset = accepted.offset, "resuming an interrupted push");
        }
        progress.advance(accepted.offset);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(NodeError::file("read", path))?;
        if accepted.offset > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(accepted.offset))
                .await
                .map_err(NodeError::file("read", path))?;
        }
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        // The body stream reports what it hands over; this task shows it.
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let counted = futures_util::StreamExt::map(stream, move |chunk| {
            if let Ok(c) = &chunk {
                let _ = sent_tx.send(c.len() as u64);
            }
            chunk
        });
        let url = format!("/v1/inbox/{}?offset={}", accepted.upload, accepted.offset);
        let request = client.put_body(
            peer,
            &url,
            crate::peer_client::streamed(counted),
            offer.size - accepted.offset,
        );
        tokio::pin!(request);
        let resp = loop {
            tokio::select! {
                r = &mut request => break r,
                Some(n) = sent_rx.recv() => progress.advance(n),
            }
        };
        // What was handed over before the answer came, not yet shown.
        while let Ok(n) = sent_rx.try_recv() {
            progress.advance(n);
        }
        let resp = resp?;
        if resp.status() == hyper::StatusCode::CONFLICT {
            continue;
        }
        return answer(peer, resp).await;
    }
    Err(NodeError::protocol(
        peer.peer_id,
        "kept disagreeing about how much of the file it has",
    ))
}

/// The JSON answer of a successful request, or the peer's refusal in its
/// own words.
async fn answer<T: serde::de::DeserializeOwned>(
    peer: &PeerRecord,
    mut resp: crate::peer_client::PeerResponse,
) -> Result<T> {
    if !resp.status().is_success() {
        return Err(crate::peer_client::refusal(peer, resp).await);
    }
    let protocol = |reason: String| NodeError::protocol(peer.peer_id, reason);
    let body = crate::body::read_capped(&mut resp, crate::body::MAX_SMALL)
        .await
        .map_err(|_| protocol("answered a push with too much, or broke off".into()))?;
    serde_json::from_slice(&body)
        .map_err(|e| protocol(format!("answered a push with something else: {e}")))
}
