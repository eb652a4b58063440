//! The byte ranges of the peer API: `Range: bytes=a-b` asked, and
//! `Content-Range: bytes a-b/size` answered. Ranges are half-open
//! `[start, end)` here and inclusive on the wire.

/// A `Range` header a server cannot satisfy for the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable")]
pub struct Unsatisfiable;

/// The `Range` header value asking for `[start, end)` (`end > start`).
pub fn request(start: u64, end: u64) -> String {
    format!("bytes={start}-{}", end.saturating_sub(1))
}

/// Parses a `Range` header value for a file of `size` bytes: `Ok(None)`
/// means "serve everything" (a multi-range or foreign unit, which HTTP
/// lets a server ignore); `Err` means unsatisfiable or malformed.
pub fn parse(header: &str, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let s = header.trim();
    let Some(spec) = s.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let number = |t: &str| t.parse::<u64>().map_err(|_| Unsatisfiable);
    let (start, end) = if a.is_empty() {
        let n = number(b)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        (size.saturating_sub(n), size)
    } else {
        let start = number(a)?;
        let end = if b.is_empty() {
            size
        } else {
            let last = number(b)?;
            if last < start {
                return Err(Unsatisfiable);
            }
            last.saturating_add(1).min(size)
        };
        (start, end)
    };
    if start >= size {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

/// The `Content-Range` header value of the answer for `[start, end)` of a
/// file of `size` bytes.
pub fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {start}-{}/{size}", end.saturating_sub(1))
}

/// The `Content-Range` of an unsatisfiable request.
pub fn unsatisfied(size: u64) -> String {
    format!("bytes */{size}")
}

/// Parses a `Content-Range` header value: `[start, end)` and the size.
pub fn parse_content_range(header: &str) -> Option<(u64, u64, u64)> {
    let rest = header.trim().strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (start, last, size): (u64, u64, u64) =
        (a.parse().ok()?, b.parse().ok()?, size.parse().ok()?);
    (start <= last && last < size).then_some((start, last + 1, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip_through_their_headers() {
        for (start, end, size) in [
            (0, 1, 1),
            (0, 11, 11),
            (6, 11, 11),
            (5, 6, 100),
            (1 << 40, (1 << 40) + 7, 1 << 41),
        ] {
            assert_eq!(parse(&request(start, end), size), Ok(Some((start, end))));
            assert_eq!(
                parse_content_range(&content_range(start, end, size)),
                Some((start, end, size))
            );
        }
    }

    #[test]
    fn odd_range_headers() {
        assert_eq!(parse("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(parse("bytes=4-", 10), Ok(Some((4, 10))));
        assert_eq!(parse("bytes=4-100", 10), Ok(Some((4, 10))));
        assert_eq!(parse("bytes=0-1,3-4", 10), Ok(None));
        assert_eq!(parse("items=0-1", 10), Ok(None));
        for bad in ["bytes=10-", "bytes=5-4", "bytes=-0", "bytes=x-1", "bytes=1"] {
            assert_eq!(parse(bad, 10), Err(Unsatisfiable), "{bad}");
        }
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "0-1/10",
            "bytes a-b/c",
            "bytes */10",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
