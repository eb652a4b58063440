//! The one way Shoal reads an answer from a peer or a tracker: with a cap
//! suited to its kind, so nothing the other side declares or sends sizes
//! an allocation beyond it.

/// Most bytes of a peer's file listing.
pub const MAX_LISTING: u64 = 64 * 1024 * 1024;
/// Most bytes of a piece map (a 4 TiB file at 256 KiB pieces, in hex).
pub const MAX_PIECE_MAP: u64 = 8 * 1024 * 1024;
/// Most bytes of an error answer (`{"error": ...}`) or a small JSON answer.
pub const MAX_SMALL: u64 = 64 * 1024;
/// Most bytes of a page of a tracker's peer list or providers answer.
pub const MAX_TRACKER_PAGE: u64 = 4 * 1024 * 1024;

/// Why a capped read failed.
#[derive(Debug)]
pub(crate) enum CapError<E> {
    /// The answer announced or sent more than the cap.
    TooLarge,
    /// The connection failed while reading.
    Net(E),
}

/// An answer whose body arrives in chunks: a peer's or a tracker's.
pub(crate) trait Chunked: Send {
    /// Why reading failed.
    type Error: Send;
    /// The length it announced.
    fn content_length(&self) -> Option<u64>;
    /// The next chunk; `None` at the end.
    fn chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>, Self::Error>> + Send;
}

impl Chunked for reqwest::Response {
    type Error = reqwest::Error;
    fn content_length(&self) -> Option<u64> {
        reqwest::Response::content_length(self)
    }
    fn chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>, Self::Error>> + Send {
        reqwest::Response::chunk(self)
    }
}

impl Chunked for crate::peer_client::PeerResponse {
    type Error = crate::peer_client::BodyError;
    fn content_length(&self) -> Option<u64> {
        crate::peer_client::PeerResponse::content_length(self)
    }
    fn chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>, Self::Error>> + Send {
        crate::peer_client::PeerResponse::chunk(self)
    }
}

/// Reads a whole answer, refusing one longer than `max` bytes, announced
/// or sent. Memory grows only with what actually arrives.
pub(crate) async fn read_capped<R: Chunked>(
    resp: &mut R,
    max: u64,
) -> Result<Vec<u8>, CapError<R::Error>> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(CapError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(CapError::Net)? {
        if (body.len() as u64).saturating_add(chunk.len() as u64) > max {
            return Err(CapError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `{"error": ...}` message of an error answer, escaped and cut for
/// showing; "no explanation given" when there is none.
pub(crate) async fn error_message<R: Chunked>(mut resp: R) -> String {
    match read_capped(&mut resp, MAX_SMALL).await {
        Ok(body) => serde_json::from_slice::<shoal_core::wire::ErrorBody>(&body)
            .map_or_else(|_| NO_EXPLANATION.into(), |b| b.shown()),
        Err(_) => NO_EXPLANATION.into(),
    }
}

/// What [`error_message`] says of an answer without a Shoal error body.
pub(crate) const NO_EXPLANATION: &str = "no explanation given";
