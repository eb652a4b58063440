//! Pushes: other peers sending files to this node's inbox.
//!
//! The receiver decides: by default it accepts no pushes; `--accept-from
//! PEER` (or `any`) opens the inbox to those peers. A push is two requests,
//! so a refusal costs the sender nothing:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v1/inbox` `{name, size, content_id}` | 200 `{upload, offset}`: send from `offset`; 403 not accepted from you; 413 over the inbox limit; 507 not enough disk space; 400 a name that cannot be used |
//! | `PUT /v1/inbox/{upload}?offset=N` with the bytes from `N` | 200 `{name}`: the file's name in the inbox; 409 wrong offset (the answer says which); 422 the bytes do not match the content id (they are thrown away) |
//!
//! Bytes arrive in a partial file outside the inbox (so an interrupted push
//! leaves nothing in it, and sending again resumes at `offset`); the whole
//! file is checked against the declared content id before it is linked into
//! the inbox under its name, made safe, never replacing a file
//! (`name (1).ext`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shoal_core::wire::ErrorBody;
use shoal_core::{ContentId, PeerId};
use tokio::io::AsyncWriteExt;

use crate::server::RemotePeer;

/// Who may push files to this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Accept {
    /// Nobody (the default).
    #[default]
    Nobody,
    /// Any peer that proves a key.
    Anyone,
    /// These peers.
    Peers(Vec<PeerId>),
}

impl Accept {
    /// `--accept-from` / `accept_from`: full peer ids, or `any`; nobody
    /// if the list is empty.
    pub fn from_list(list: &[String]) -> Result<Accept, String> {
        if list.is_empty() {
            return Ok(Accept::Nobody);
        }
        if list.iter().any(|p| p.trim() == "any") {
            return Ok(Accept::Anyone);
        }
        list.iter()
            .map(|p| {
                p.trim().parse::<PeerId>().map_err(|_| {
                    format!(
                        "accept from `{p}`: give a full peer id (`shoal id` prints it) or `any`"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Accept::Peers)
    }

    fn allows(&self, peer: &PeerId) -> bool {
        match self {
            Accept::Nobody => false,
            Accept::Anyone => true,
            Accept::Peers(p) => p.contains(peer),
        }
    }
}

/// Where pushes land and who may push.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// The inbox folder.
    pub dir: PathBuf,
    /// Where pushes in progress are kept (outside the inbox).
    pub partial_dir: PathBuf,
    /// Who may push.
    pub accept: Accept,
    /// Most bytes the inbox may hold in all, if limited.
    pub max_size: Option<u64>,
    /// What pushes may take of this node's bandwidth in all.
    pub rate: crate::rate::RateLimit,
    /// Uploads being received, so an offer waits for an earlier attempt
    /// of the same push to finish writing before it reports the offset.
    receiving: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Room promised to pushes and uploads not yet in the inbox.
    pub(crate) reserved: Arc<std::sync::Mutex<Reservations>>,
    /// Where partial files live, decided on first use (see
    /// [`InboxConfig::partial_dir`]).
    partial_in_use: Arc<std::sync::OnceLock<PathBuf>>,
}

/// How long an offer's reservation is kept while nothing arrives for it.
pub const RESERVATION_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The inbox's room, accounted atomically: what it holds, plus every push
/// accepted and every upload under way. An offer or a growing upload is
/// admitted only if all of that together fits the limit and the disk, so
/// parallel offers, offers made before their uploads, and uploads of
/// unknown length cannot overfill it.
#[derive(Debug, Default)]
pub struct Reservations {
    /// Bytes promised, per upload, and when each was last touched.
    held: HashMap<String, (u64, std::time::Instant)>,
}

/// What room there is besides the reservations: what the inbox holds, its
/// limit, and the disk's free bytes, of which `margin` stays free.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    /// Bytes the inbox holds now.
    pub usage: u64,
    /// The inbox limit, if any.
    pub max: Option<u64>,
    /// Free bytes on the disk, if known.
    pub free: Option<u64>,
    /// Bytes always left free.
    pub margin: u64,
}

/// Why room could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// Over the inbox limit.
    Limit,
    /// Over the free disk space.
    Disk,
}

impl Reservations {
    /// Bytes promised to uploads other than `key`.
    fn others(&self, key: &str) -> u64 {
        self.held
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .fold(0u64, |sum, (_, (n, _))| sum.saturating_add(*n))
    }

    /// Sets `key`'s reservation to `bytes` (`need` of them still to arrive)
    /// if, with what the inbox holds and every other reservation, it fits
    /// `room`'s limit and leaves its margin of the disk free. Reservations
    /// idle for longer than [`RESERVATION_TTL`] and not `busy` lapse first.
    pub fn reserve(
        &mut self,
        key: &str,
        bytes: u64,
        need: u64,
        room: Room,
        busy: &dyn Fn(&str) -> bool,
    ) -> Result<(), NoRoom> {
        let Room {
            usage,
            max,
            free,
            margin,
        } = room;
        let now = std::time::Instant::now();
        self.held
            .retain(|k, (_, at)| now.duration_since(*at) < RESERVATION_TTL || k == key || busy(k));
        let others = self.others(key);
        let total = usage.checked_add(others).and_then(|t| t.checked_add(bytes));
        if let Some(max) = max
            && total.is_none_or(|t| t > max)
        {
            return Err(NoRoom::Limit);
        }
        let wanted = need.checked_add(others).and_then(|t| t.checked_add(margin));
        if let Some(free) = free
            && wanted.is_none_or(|w| w > free)
        {
            return Err(NoRoom::Disk);
        }
        self.held.insert(key.to_owned(), (bytes, now));
        Ok(())
    }

    /// Keeps `key`'s reservation from lapsing; false if it has none.
    pub fn touch(&mut self, key: &str) -> bool {
        match self.held.get_mut(key) {
            Some((_, at)) => {
                *at = std::time::Instant::now();
                true
            }
            None => false,
        }
    }

    /// Drops `key`'s reservation (its file arrived, or it was given up).
    pub fn release(&mut self, key: &str) {
        self.held.remove(key);
    }

    /// Bytes promised in all.
    pub fn total(&self) -> u64 {
        self.others("")
    }
}

impl InboxConfig {
    /// Whether an upload is being received right now.
    pub(crate) fn is_receiving(&self, upload: &str) -> bool {
        let map = self.receiving.lock().unwrap_or_else(|p| p.into_inner());
        map.get(upload).is_some_and(|m| m.try_lock().is_err())
    }

    /// Reserves room for `key` (see [`Reservations::reserve`]), measuring
    /// what the inbox holds now. Blocking: it walks the inbox.
    pub(crate) fn reserve(&self, key: &str, bytes: u64, need: u64) -> Result<(), NoRoom> {
        let room = Room {
            usage: inbox_usage(&self.dir),
            max: self.max_size,
            free: [self.partial_dir(), self.dir.clone()]
                .iter()
                .filter_map(|d| free_space(d))
                .min(),
            margin: DISK_MARGIN,
        };
        let mut r = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        r.reserve(key, bytes, need, room, &|k| self.is_receiving(k))
    }

    pub(crate) fn release(&self, key: &str) {
        self.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(key);
    }

    /// Where partial files live: the configured folder when it is on the
    /// inbox's file system, else a hidden folder inside the inbox, so a
    /// finished file is linked into place, never copied across disks.
    /// Decided once, when first needed (both folders are made then).
    pub(crate) fn partial_dir(&self) -> PathBuf {
        self.partial_in_use
            .get_or_init(|| {
                let _ = std::fs::create_dir_all(&self.dir);
                let _ = std::fs::create_dir_all(&self.partial_dir);
                match (
                    shoal_fs::device_of(&self.partial_dir),
                    shoal_fs::device_of(&self.dir),
                ) {
                    (Some(a), Some(b)) if a != b => self.dir.join(SAME_DISK_PARTIAL),
                    _ => self.partial_dir.clone(),
                }
            })
            .clone()
    }

    /// The lock of one upload.
    fn lock_of(&self, upload: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.receiving.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, m| Arc::strong_count(m) > 1);
        map.entry(upload.to_owned()).or_default().clone()
    }
}

impl InboxConfig {
    /// An inbox in `dir`, pushes in progress in `data_dir`, nobody allowed.
    pub fn new(dir: PathBuf, data_dir: &Path) -> Self {
        Self {
            dir,
            partial_dir: data_dir.join("inbox-partial"),
            accept: Accept::Nobody,
            max_size: None,
            rate: crate::rate::RateLimit::default(),
            receiving: Default::default(),
            reserved: Default::default(),
            partial_in_use: Default::default(),
        }
    }
}

/// `POST /v1/inbox`: what the sender wants to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offer {
    /// File name (a name, not a path; made safe by the receiver).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the bytes.
    pub content_id: ContentId,
}

/// The answer to an offer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// Where to send the bytes: `PUT /v1/inbox/{upload}`.
    pub upload: String,
    /// Bytes already received from an earlier attempt.
    pub offset: u64,
}

/// The answer to a complete upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    /// The file's name in the receiver's inbox.
    pub name: String,
}

pub(crate) struct Refused(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Refused {
    tracing::warn!(error = %e, "inbox request failed");
    Refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the receiver could not store the file; see its log".into(),
    )
}

/// The receiver's state shared by the handlers.
pub type Inbox = Arc<InboxConfig>;

/// Names Windows reserves, refused as file names anywhere for portability.
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Longest file name kept, in bytes.
const MAX_NAME: usize = 255;

/// A sender's file name made safe for the inbox: its last path component,
/// no control characters, no reserved device names, at most 255 bytes
/// (the extension kept). `None` if nothing usable is left.
pub fn safe_name(name: &str) -> Option<String> {
    if name.contains('\0') {
        return None;
    }
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    // Controls go; bidi overrides and invisible characters become a
    // visible `_`, so `invoice\u{202e}fdp.exe` cannot pose as a PDF.
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if shoal_core::text::is_hidden(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_end_matches('.').to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return None;
    }
    let stem = cleaned.split('.').next().unwrap_or("");
    let mut out = if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        format!("_{cleaned}")
    } else {
        cleaned
    };
    if out.len() > MAX_NAME {
        let ext = out
            .rfind('.')
            .filter(|&i| i > 0 && out.len() - i <= 16)
            .map(|i| out[i..].to_owned())
            .unwrap_or_default();
        let mut cut = MAX_NAME - ext.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out = format!("{}{ext}", &out[..cut]);
    }
    Some(out)
}

/// The upload id of a push: the sender, the content and the size, so the
/// same push sent again resumes.
fn upload_id(sender: &PeerId, offer: &Offer) -> String {
    let mut h = blake3::Hasher::new();
    h.update(sender.as_bytes());
    h.update(offer.content_id.as_bytes());
    h.update(&offer.size.to_le_bytes());
    h.update(offer.name.as_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

/// What the partial file of an upload records beside it.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    sender: PeerId,
    name: String,
    size: u64,
    content_id: ContentId,
}

fn paths(inbox: &InboxConfig, upload: &str) -> (PathBuf, PathBuf) {
    let dir = inbox.partial_dir();
    (
        dir.join(format!("{upload}.part")),
        dir.join(format!("{upload}.json")),
    )
}

/// The hidden folder inside an inbox that holds partial files when the
/// configured partial folder is on another file system.
pub const SAME_DISK_PARTIAL: &str = ".shoal-partial";

/// Bytes the inbox holds now (files directly in it and below; partial
/// files are accounted by their reservations instead).
pub(crate) fn inbox_usage(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || e.file_name() != SAME_DISK_PARTIAL)
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .fold(0u64, |sum, m| sum.saturating_add(m.len()))
}

pub(crate) use shoal_fs::free_space;

/// Longest an offer waits for an earlier attempt of the same push.
const RECEIVING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Room kept free on the disk beyond the file itself.
pub(crate) const DISK_MARGIN: u64 = 16 * 1024 * 1024;

/// `POST /v1/inbox`.
pub async fn offer(
    State(inbox): State<Inbox>,
    Extension(peer): Extension<RemotePeer>,
    body: axum::body::Bytes,
) -> Result<Json<Accepted>, Response> {
    let sender = peer.0;
    if !inbox.accept.allows(&sender) {
        tracing::info!(peer = %sender.short(), "refused a push: not accepted from this peer");
        return Err(Refused(
            StatusCode::FORBIDDEN,
            format!(
                "this peer does not accept files from you ({sender}); its owner can allow you with --accept-from {sender}"
            ),
        )
        .into_response());
    }
    let offer: Offer = serde_json::from_slice(&body).map_err(|e| {
        Refused(StatusCode::BAD_REQUEST, format!("not a valid offer: {e}")).into_response()
    })?;
    if offer.size > shoal_core::wire::MAX_FILE_SIZE {
        return Err(Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "that file is larger than the largest Shoal transfers ({} bytes)",
                shoal_core::wire::MAX_FILE_SIZE
            ),
        )
        .into_response());
    }
    let Some(name) = safe_name(&offer.name) else {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "that file name cannot be used; rename the file and send it again".into(),
        )
        .into_response());
    };
    let upload = upload_id(&sender, &offer);
    // An earlier attempt of this push may still be writing what it got.
    let lock = inbox.lock_of(&upload);
    let Ok(_guard) = tokio::time::timeout(RECEIVING_WAIT, lock.lock()).await else {
        return Err(Refused(
            StatusCode::CONFLICT,
            "an earlier attempt to send this file is still arriving; try again shortly".into(),
        )
        .into_response());
    };
    let (part, meta) = paths(&inbox, &upload);
    let cfg = inbox.clone();
    let pending = Pending {
        sender,
        name,
        size: offer.size,
        content_id: offer.content_id,
    };
    let key = upload.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<u64, Refused> {
        std::fs::create_dir_all(&cfg.dir).map_err(internal)?;
        std::fs::create_dir_all(cfg.partial_dir()).map_err(internal)?;
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let have = if have > pending.size { 0 } else { have };
        let need = pending.size - have;
        match cfg.reserve(&key, pending.size, need) {
            Ok(()) => {}
            Err(NoRoom::Limit) => {
                return Err(Refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the receiver's inbox is limited to {} bytes and this file ({} bytes) does not fit beside what it holds and is receiving",
                        cfg.max_size.unwrap_or(0),
                        pending.size
                    ),
                ));
            }
            Err(NoRoom::Disk) => {
                return Err(Refused(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the receiver does not have enough free disk space for this file".into(),
                ));
            }
        }
        if have == 0 {
            std::fs::write(&part, b"").map_err(internal)?;
        }
        std::fs::write(&meta, serde_json::to_vec(&pending).map_err(internal)?)
            .map_err(internal)?;
        Ok(have)
    })
    .await
    .map_err(|e| internal(e).into_response())?;
    let offset = result.map_err(IntoResponse::into_response)?;
    tracing::info!(peer = %sender.short(), upload = %upload, offset, "accepted a push");
    Ok(Json(Accepted { upload, offset }))
}

/// `?offset=N` of an upload.
#[derive(Debug, Deserialize)]
pub struct At {
    offset: u64,
}

/// `PUT /v1/inbox/{upload}`.
pub async fn upload(
    State(inbox): State<Inbox>,
    Extension(peer): Extension<RemotePeer>,
    UrlPath(upload): UrlPath<String>,
    Query(at): Query<At>,
    body: Body,
) -> Result<Json<Received>, Response> {
    let refuse = |code, msg: &str| Refused(code, msg.to_owned()).into_response();
    if upload.len() != 32 || !upload.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refuse(StatusCode::NOT_FOUND, "no such upload"));
    }
    let lock = inbox.lock_of(&upload);
    let Ok(_guard) = lock.try_lock() else {
        return Err(refuse(
            StatusCode::CONFLICT,
            "this file is already being received; send it again shortly",
        ));
    };
    let (part, meta) = paths(&inbox, &upload);
    let reserved = inbox
        .reserved
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .touch(&upload);
    // The record and the length of what arrived, read off the async
    // worker threads.
    let (found, have) = {
        let (meta, part) = (meta.clone(), part.clone());
        tokio::task::spawn_blocking(move || {
            let found: Option<Pending> = std::fs::read(&meta)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            (
                found,
                std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0),
            )
        })
        .await
        .map_err(|e| internal(e).into_response())?
    };
    let pending: Pending = found
        .filter(|p: &Pending| p.sender == peer.0)
        .ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                "no such upload; offer the file first",
            )
        })?;
    if !inbox.accept.allows(&peer.0) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "this peer no longer accepts files from you",
        ));
    }
    if at.offset != have {
        return Err(Refused(
            StatusCode::CONFLICT,
            format!("the receiver has {have} bytes of this file; send from there"),
        )
        .into_response());
    }
    if !reserved {
        // Its offer's reservation lapsed: room is claimed again, or refused.
        let (cfg, key, size) = (inbox.clone(), upload.clone(), pending.size);
        let need = size.saturating_sub(have);
        let room = tokio::task::spawn_blocking(move || cfg.reserve(&key, size, need))
            .await
            .map_err(|e| internal(e).into_response())?;
        match room {
            Ok(()) => {}
            Err(NoRoom::Limit) => {
                return Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "this file no longer fits in the receiver's inbox",
                ));
            }
            Err(NoRoom::Disk) => {
                return Err(refuse(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the receiver does not have enough free disk space for this file",
                ));
            }
        }
    }
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .await
        .map_err(|e| internal(e).into_response())?;
    let mut got = have;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            // The sender went away: what arrived stays for a resume.
            tracing::info!(upload = %upload, error = %e, received = got, "a push was interrupted");
            refuse(StatusCode::BAD_REQUEST, "the upload was cut short")
        })?;
        inbox.rate.take(chunk.len()).await;
        got += chunk.len() as u64;
        if got > pending.size {
            drop(file);
            discard(&part, &meta);
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "sent more bytes than offered; the upload was thrown away",
            ));
        }
        if let Err(e) = file.write_all(&chunk).await {
            let full = e.raw_os_error() == Some(28);
            tracing::warn!(upload = %upload, error = %e, "cannot store a push");
            return Err(if full {
                refuse(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the receiver ran out of disk space; what arrived is kept, send again later to resume",
                )
            } else {
                internal(e).into_response()
            });
        }
    }
    file.flush()
        .await
        .map_err(|e| internal(e).into_response())?;
    drop(file);
    if got < pending.size {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            format!(
                "the upload ended after {got} of {} bytes; send again to resume",
                pending.size
            ),
        )
        .into_response());
    }
    let cfg = inbox.clone();
    let done = tokio::task::spawn_blocking(move || finish(&cfg, &part, &meta, &pending))
        .await
        .map_err(|e| internal(e).into_response())?;
    inbox.release(&upload);
    done.map(Json).map_err(IntoResponse::into_response)
}

fn discard(part: &Path, meta: &Path) {
    let _ = std::fs::remove_file(part);
    let _ = std::fs::remove_file(meta);
}

/// Checks a complete upload and links it into the inbox under a free name.
fn finish(
    inbox: &InboxConfig,
    part: &Path,
    meta: &Path,
    pending: &Pending,
) -> Result<Received, Refused> {
    let actual = crate::index::hash_file(part).map_err(internal)?;
    if actual != pending.content_id {
        discard(part, meta);
        tracing::warn!(peer = %pending.sender.short(), "a push did not match its content id; thrown away");
        return Err(Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the bytes received do not match the content id offered ({} ≠ {}); nothing was kept",
                actual, pending.content_id
            ),
        ));
    }
    let name = place(inbox, part, &pending.name)?;
    let _ = std::fs::remove_file(meta);
    tracing::info!(peer = %pending.sender.short(), name = %name, size = pending.size, "received a file");
    Ok(Received { name })
}

/// Makes a complete, checked partial file durable and links it into the
/// inbox under `name` (already made safe), or `name (1).ext` and so on if
/// taken; returns the name used.
pub(crate) fn place(inbox: &InboxConfig, part: &Path, name: &str) -> Result<String, Refused> {
    std::fs::File::open(part)
        .and_then(|f| f.sync_all())
        .map_err(internal)?;
    std::fs::create_dir_all(&inbox.dir).map_err(internal)?;
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 0..10_000u32 {
        let candidate = if n == 0 {
            name.to_owned()
        } else {
            format!("{stem} ({n}){ext}")
        };
        let target = inbox.dir.join(&candidate);
        match shoal_fs::durable::publish(part, &target) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(internal(e)),
        }
    }
    Err(Refused(
        StatusCode::CONFLICT,
        "the inbox already holds too many files of that name".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe_or_refused() {
        assert_eq!(safe_name("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_name("/etc/shadow").as_deref(), Some("shadow"));
        assert_eq!(safe_name("..\\..\\boot.ini").as_deref(), Some("boot.ini"));
        assert_eq!(safe_name("CON").as_deref(), Some("_CON"));
        assert_eq!(safe_name("nul.txt").as_deref(), Some("_nul.txt"));
        assert_eq!(safe_name("a\nb\tc").as_deref(), Some("abc"));
        assert_eq!(safe_name("trailing...").as_deref(), Some("trailing"));
        assert_eq!(
            safe_name("invoice\u{202e}fdp.exe").as_deref(),
            Some("invoice_fdp.exe")
        );
        assert_eq!(safe_name("bob\u{200b}.txt").as_deref(), Some("bob_.txt"));
        for bad in ["", ".", "..", "../", "a/..", "x\0y", "   ", "/"] {
            assert_eq!(safe_name(bad), None, "{bad:?}");
        }
        let long = format!("{}.tar.gz", "é".repeat(200));
        let s = safe_name(&long).unwrap();
        assert!(s.len() <= 255 && s.ends_with(".gz"), "{s}");
    }
}
