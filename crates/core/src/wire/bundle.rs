//! The framing of a bundle answer (`POST /v1/bundle`): for each content id
//! asked, in order, a frame: a status byte, the length (8 bytes,
//! little-endian; 0 unless the status is [`OK`]), then that many bytes.

/// Frame status: the file's bytes follow.
pub const OK: u8 = 0;
/// Frame status: not shared here (or changed since indexed).
pub const MISSING: u8 = 1;
/// Frame status: too large for a bundle; fetch it by range.
pub const TOO_LARGE: u8 = 2;
/// Bytes of a frame's status and length.
pub const FRAME_HEAD: usize = 9;

/// One frame of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<T> {
    /// The file's bytes.
    Data(T),
    /// Not shared there.
    Missing,
    /// Too large for a bundle.
    TooLarge,
}

/// Appends `frame` to `buf`.
pub fn encode(buf: &mut Vec<u8>, frame: Frame<&[u8]>) {
    let (status, data): (u8, &[u8]) = match frame {
        Frame::Data(d) => (OK, d),
        Frame::Missing => (MISSING, &[]),
        Frame::TooLarge => (TOO_LARGE, &[]),
    };
    buf.push(status);
    buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    buf.extend_from_slice(data);
}

/// Why a frame cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a frame's head, or than its length says, remain
    /// (more may come).
    #[error("a bundle ended early")]
    Short,
    /// Data of another length than the file's.
    #[error("sent {got} bytes for a file of {size} bytes in a bundle")]
    WrongLength {
        /// What the frame said.
        got: u64,
        /// What the file has.
        size: u64,
    },
    /// A status byte or length no frame has.
    #[error("sent an unknown bundle frame ({status}, {len})")]
    Unknown {
        /// The status byte.
        status: u8,
        /// The length.
        len: u64,
    },
}

/// Takes the next frame, for a file of `size` bytes, off the front of
/// `rest`; on an error `rest` is left as it was.
pub fn decode(rest: &mut bytes::Bytes, size: u64) -> Result<Frame<bytes::Bytes>, FrameError> {
    if rest.len() < FRAME_HEAD {
        return Err(FrameError::Short);
    }
    let status = rest[0];
    let mut len = [0u8; 8];
    len.copy_from_slice(&rest[1..FRAME_HEAD]);
    let len = u64::from_le_bytes(len);
    let frame = match status {
        OK if len != size => return Err(FrameError::WrongLength { got: len, size }),
        OK if ((rest.len() - FRAME_HEAD) as u64) < len => return Err(FrameError::Short),
        OK => {
            let mut data = rest.split_to(FRAME_HEAD + len as usize);
            return Ok(Frame::Data(data.split_off(FRAME_HEAD)));
        }
        MISSING if len == 0 => Frame::Missing,
        TOO_LARGE if len == 0 => Frame::TooLarge,
        _ => return Err(FrameError::Unknown { status, len }),
    };
    let _ = rest.split_to(FRAME_HEAD);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let files: [&[u8]; 3] = [b"hello", b"", b"x"];
        let mut buf = Vec::new();
        encode(&mut buf, Frame::Data(files[0]));
        encode(&mut buf, Frame::Missing);
        encode(&mut buf, Frame::Data(files[1]));
        encode(&mut buf, Frame::TooLarge);
        encode(&mut buf, Frame::Data(files[2]));
        let mut rest = bytes::Bytes::from(buf);
        assert_eq!(
            decode(&mut rest, 5),
            Ok(Frame::Data(bytes::Bytes::from_static(b"hello")))
        );
        assert_eq!(decode(&mut rest, 9), Ok(Frame::Missing));
        assert_eq!(decode(&mut rest, 0), Ok(Frame::Data(bytes::Bytes::new())));
        assert_eq!(decode(&mut rest, 1 << 30), Ok(Frame::TooLarge));
        assert_eq!(
            decode(&mut rest, 1),
            Ok(Frame::Data(bytes::Bytes::from_static(b"x")))
        );
        assert!(rest.is_empty());
        assert_eq!(decode(&mut rest, 1), Err(FrameError::Short));
    }

    #[test]
    fn bad_frames_are_refused_and_leave_the_rest() {
        let mut buf = Vec::new();
        encode(&mut buf, Frame::Data(b"abc"));
        let whole = bytes::Bytes::from(buf);
        let mut rest = whole.clone();
        assert_eq!(
            decode(&mut rest, 4),
            Err(FrameError::WrongLength { got: 3, size: 4 })
        );
        assert_eq!(rest, whole);
        let mut cut = whole.slice(..FRAME_HEAD + 2);
        assert_eq!(decode(&mut cut, 3), Err(FrameError::Short));
        let mut odd = bytes::Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode(&mut odd, 0),
            Err(FrameError::Unknown { status: 7, len: 0 })
        );
    }
}
