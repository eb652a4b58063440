//! Entry points for the fuzz targets (`fuzz/`): the parsers of outside
//! input that are not public on their own. Not an API.

/// Parses a `Range` header for a file of `size` bytes (see the peer API):
/// the range `[start, end)` it asks for, or `None` (the whole file, or a
/// header refused).
pub fn range(header: &str, size: u64) -> Option<(u64, u64)> {
    let v = axum::http::HeaderValue::from_str(header).ok()?;
    crate::server::parse_range(&v, size).ok().flatten()
}

/// Splits a bundle answer into frames for files of `sizes`: for each, the
/// length of its data, or `None` (missing, too large, or malformed).
pub fn bundle(body: &[u8], sizes: &[u64]) -> Vec<Option<usize>> {
    let mut rest = bytes::Bytes::copy_from_slice(body);
    sizes
        .iter()
        .map(|&size| {
            let entry = shoal_core::wire::FileEntry {
                name: "f".into(),
                size,
                content_id: shoal_core::ContentId::of(b""),
                modified: 0,
                encrypted: false,
            };
            match crate::folder::next_frame(&mut rest, &entry) {
                Ok(crate::folder::Frame::Data(d)) => Some(d.len()),
                _ => None,
            }
        })
        .collect()
}
