//! The routes: the page and its assets, the guard every request passes
//! (Host, Origin, security headers), the API's authentication, and the
//! API's handlers (see the crate docs for the table).

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shoal_service::{Command, ShareLock};

use crate::{Ctx, assets, auth};

/// The header a session's mutating requests carry its CSRF token in.
pub const CSRF_HEADER: &str = "x-shoal-csrf";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type Shared = State<Arc<Ctx>>;

/// An error answer: `{"error": "...", "exit_code"?}` with a status;
/// `exit_code` is what `shoal` exits with for that kind of failure.
pub struct Fail(StatusCode, String, Option<u8>);

impl Fail {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self(status, msg.into(), None)
    }

    fn of(status: StatusCode, f: shoal_service::Failure) -> Self {
        Self(status, f.text, Some(f.kind.exit_code()))
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let body = match self.2 {
            Some(code) => serde_json::json!({ "error": self.1, "exit_code": code }),
            None => serde_json::json!({ "error": self.1 }),
        };
        (self.0, Json(body)).into_response()
    }
}

type Answer = Result<Response, Fail>;

pub(crate) fn router(ctx: Arc<Ctx>) -> Router {
    let uploads = Router::new()
        .route("/shares", post(share))
        .route("/pushes", post(push).get(pushes))
        .layer(DefaultBodyLimit::disable());
    let api = Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/peers/{peer}/files", get(peer_files))
        .route("/transfers", get(transfers))
        .route("/transfers/{id}", get(transfer))
        .route("/transfers/{id}/open", post(open))
        .route("/transfers/{id}/{action}", post(act))
        .route("/downloads", get(downloads).post(download))
        .route("/downloads/{id}/{action}", post(act))
        .route("/pushes/{id}/{action}", post(act))
        .route("/files", get(files))
        .route("/network/{action}", post(network))
        .route("/settings", get(settings).put(save_settings))
        .route("/log", get(log))
        .route("/events", get(events))
        .merge(uploads)
        .layer(from_fn_with_state(ctx.clone(), authenticate));
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .nest("/api/v1", api)
        .fallback(|| async { Fail::new(StatusCode::NOT_FOUND, "no such page or API call") })
        .layer(from_fn_with_state(ctx.clone(), guard))
        .with_state(ctx)
}

/// Every request: the `Host` check on loopback, a foreign `Origin`
/// refused, and the security headers on every answer.
async fn guard(State(ctx): Shared, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let mut resp = if ctx.checks_host() && !auth::host_allowed(host.as_deref(), ctx.listen) {
        Fail::new(
            StatusCode::FORBIDDEN,
            format!(
                "this web UI answers only as {} or localhost; open that address",
                ctx.listen
            ),
        )
        .into_response()
    } else if !same_origin(req.headers(), host.as_deref(), ctx.https)
        && !matches!(*req.method(), Method::GET | Method::HEAD)
    {
        Fail::new(
            StatusCode::FORBIDDEN,
            "a request from another site's page is refused",
        )
        .into_response()
    } else {
        let api = req.uri().path().starts_with("/api/");
        let mut r = next.run(req).await;
        if api {
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        r
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// Whether the request's `Origin` (if any) is this server.
fn same_origin(headers: &HeaderMap, host: Option<&str>, https: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true; // not from a page (a script, curl, the CLI)
    };
    let scheme = if https { "https://" } else { "http://" };
    host.is_some_and(|h| origin.strip_prefix(scheme) == Some(h))
}

/// The API: a Bearer key, or a session (whose mutating requests carry
/// its CSRF token).
async fn authenticate(State(ctx): Shared, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(a) = headers.get(header::AUTHORIZATION) {
        let key = a
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if auth::same(key.trim(), &ctx.api_key) {
            return next.run(req).await;
        }
        return Fail::new(
            StatusCode::UNAUTHORIZED,
            "wrong API key; take the one in control.json of the node's data dir (it changes each time the node starts)",
        )
        .into_response();
    }
    let Some(csrf) = session_of(&ctx, headers) else {
        return Fail::new(
            StatusCode::UNAUTHORIZED,
            "not signed in: open the web UI's page (and sign in), or send Authorization: Bearer with the key in control.json",
        )
        .into_response();
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth::same(sent, &csrf) {
            return Fail::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token; reload the page",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The session's CSRF token, if the request carries a live session.
fn session_of(ctx: &Ctx, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = auth::cookie(cookies, &ctx.cookie)?;
    ctx.sessions.csrf(id)
}

fn session_cookie(ctx: &Ctx, id: &str) -> HeaderValue {
    let secure = if ctx.https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict{secure}",
        ctx.cookie
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The page. Without a password, opening it starts a session; with one,
/// the page asks for it first.
async fn index(State(ctx): Shared, headers: HeaderMap) -> Response {
    let mut new_cookie = None;
    let csrf = match session_of(&ctx, &headers) {
        Some(c) => Some(c),
        None if ctx.password.is_none() => {
            let (id, csrf) = ctx.sessions.open();
            new_cookie = Some(session_cookie(&ctx, &id));
            Some(csrf)
        }
        None => None,
    };
    let page = assets::index(csrf.as_deref().unwrap_or(""), csrf.is_none());
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = new_cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::get(&name) {
        Some((body, mime)) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => Fail::new(StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[derive(Deserialize)]
struct Login {
    password: String,
}

async fn login(
    State(ctx): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<Login>,
) -> Answer {
    let Some(hash) = ctx.password.clone() else {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "this web UI has no password; just open the page",
        ));
    };
    let ip = peer.ip();
    let wait = ctx.throttle.wait(ip);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let Ok(_turn) = ctx.logins.acquire().await else {
        return Err(stopped());
    };
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &body.password))
        .await
        .unwrap_or(false);
    if !ok {
        ctx.throttle.failed(ip);
        tracing::warn!(%ip, "web ui: wrong password");
        return Err(Fail::new(
            StatusCode::UNAUTHORIZED,
            "wrong password; each wrong try makes the next one wait longer",
        ));
    }
    ctx.throttle.succeeded(ip);
    let (id, csrf) = ctx.sessions.open();
    let mut r = Json(serde_json::json!({ "csrf": csrf })).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&ctx, &id));
    Ok(r)
}

async fn logout(State(ctx): Shared, headers: HeaderMap) -> Response {
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| auth::cookie(c, &ctx.cookie))
    {
        ctx.sessions.close(id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Starts or stops the node's network side, as the app's button does.
async fn network(State(ctx): Shared, Path(action): Path<String>) -> Answer {
    let c = match action.as_str() {
        "start" => Command::Start,
        "stop" => Command::Stop,
        _ => {
            return Err(Fail::new(
                StatusCode::NOT_FOUND,
                "POST /api/v1/network/start or /api/v1/network/stop",
            ));
        }
    };
    ctx.service.run(c).await;
    Ok(Json(views::status(&ctx)).into_response())
}

async fn status(State(ctx): Shared) -> Response {
    Json(views::status(&ctx)).into_response()
}

/// The peers as the trackers (and the LAN, the DHT) list them now: asked
/// afresh, waited for at most [`PEERS_PATIENCE`] (then the last list).
async fn peers(State(ctx): Shared) -> Response {
    send_and_wait(&ctx, Command::RefreshPeers, PEERS_PATIENCE, |n| {
        n == shoal_service::Notice::Peers
    })
    .await;
    Json(views::peers(&ctx)).into_response()
}

/// Sends `c`, then waits (at most `patience`) for the first notice that
/// `answers` it.
async fn send_and_wait(
    ctx: &Ctx,
    c: Command,
    patience: std::time::Duration,
    answers: impl Fn(shoal_service::Notice) -> bool,
) {
    let mut notices = ctx.service.subscribe();
    ctx.service.send(c);
    let _ = tokio::time::timeout(patience, async {
        loop {
            match notices.recv().await {
                Ok(n) if answers(n) => return,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    })
    .await;
}

/// Longest `GET /api/v1/peers` waits for the fresh list.
const PEERS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(6);

async fn peer_files(State(ctx): Shared, Path(peer): Path<String>) -> Answer {
    let got = ctx
        .service
        .ask(|reply| Command::Files { peer, reply })
        .await
        .ok_or_else(stopped)?;
    match got {
        Ok((record, files)) => Ok(Json(serde_json::json!({
            "peer": views::PeerView::of_record(&record),
            "files": files.iter().map(views::FileView::of).collect::<Vec<_>>(),
        }))
        .into_response()),
        Err(e) => Err(Fail::new(StatusCode::BAD_GATEWAY, e)),
    }
}

fn stopped() -> Fail {
    Fail::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node is stopping; start it again",
    )
}

async fn transfers(State(ctx): Shared) -> Response {
    Json(views::transfers(&ctx, None)).into_response()
}

async fn downloads(State(ctx): Shared) -> Response {
    Json(views::transfers(
        &ctx,
        Some(shoal_service::Direction::Download),
    ))
    .into_response()
}

async fn pushes(State(ctx): Shared) -> Response {
    Json(views::transfers(&ctx, Some(shoal_service::Direction::Push))).into_response()
}

async fn transfer(State(ctx): Shared, Path(id): Path<u64>) -> Answer {
    views::transfer(&ctx, id)
        .map(|t| Json(t).into_response())
        .ok_or_else(|| no_transfer(id))
}

fn no_transfer(id: u64) -> Fail {
    Fail::new(
        StatusCode::NOT_FOUND,
        format!("no transfer {id}; list them with GET /api/v1/transfers"),
    )
}

async fn act(State(ctx): Shared, Path((id, action)): Path<(u64, String)>) -> Answer {
    if views::transfer(&ctx, id).is_none() {
        return Err(no_transfer(id));
    }
    let c = match action.as_str() {
        "pause" => Command::Pause(id),
        "resume" => Command::Resume(id),
        "cancel" => Command::Cancel(id),
        _ => {
            return Err(Fail::new(
                StatusCode::NOT_FOUND,
                "a transfer can be paused, resumed or cancelled: POST .../pause, .../resume or .../cancel",
            ));
        }
    };
    ctx.service.run(c).await;
    Ok(Json(views::transfer(&ctx, id)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Passphrase {
    passphrase: String,
}

/// Opens a download encrypted with a passphrase (`needs-passphrase`): the
/// plaintext is saved beside it and the ciphertext goes; a wrong
/// passphrase leaves it as it was (422).
async fn open(State(ctx): Shared, Path(id): Path<u64>, Json(body): Json<Passphrase>) -> Answer {
    let waiting = ctx.service.with_state(|s| match s.transfers.get(&id) {
        Some(t) => match &t.state {
            shoal_service::TransferState::NeedsPassphrase(p) => Ok(p.clone()),
            _ => Err(Fail::new(
                StatusCode::CONFLICT,
                format!("transfer {id} is not waiting for a passphrase"),
            )),
        },
        None => Err(no_transfer(id)),
    })?;
    // The decryption answers with the transfer's new state (done, or
    // waiting again after a wrong passphrase).
    let open = Command::Open {
        id,
        path: waiting,
        passphrase: body.passphrase.into(),
    };
    send_and_wait(&ctx, open, OPEN_PATIENCE, |n| {
        n == shoal_service::Notice::Transfer(id)
    })
    .await;
    let t = views::transfer(&ctx, id).ok_or_else(|| no_transfer(id))?;
    let state = ctx
        .service
        .with_state(|s| s.transfers.get(&id).map(|t| t.state.name()));
    if state == Some("needs-passphrase") {
        return Err(Fail::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "that passphrase does not open it; the encrypted file is kept, so try again",
        ));
    }
    Ok(Json(t).into_response())
}

/// Longest an open waits for the decryption (large files take a while).
const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Download {
    target: String,
    #[serde(default)]
    dir: Option<PathBuf>,
}

async fn download(State(ctx): Shared, Json(body): Json<Download>) -> Answer {
    if let Some(d) = &body.dir
        && !d.is_absolute()
    {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "`dir` must be an absolute path (or left out for the download folder)",
        ));
    }
    let target = body.target;
    let dir = body.dir;
    let got = ctx
        .service
        .ask(|reply| Command::Get { target, dir, reply })
        .await
        .ok_or_else(stopped)?;
    match got {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response()),
        Err(e) => Err(Fail::of(StatusCode::UNPROCESSABLE_ENTITY, e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushPath {
    peer: String,
    path: PathBuf,
}

/// A push: of a local file (JSON) or of an uploaded one (multipart).
async fn push(State(ctx): Shared, req: Request) -> Answer {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (peer, path, temporary) = if is_json {
        let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
            .await
            .map_err(|e| Fail::new(StatusCode::BAD_REQUEST, format!("bad body: {e}")))?;
        let body: PushPath = serde_json::from_slice(&bytes).map_err(|e| {
            Fail::new(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"peer\", \"path\"}}: {e}"),
            )
        })?;
        if !body.path.is_absolute() || !body.path.is_file() {
            return Err(Fail::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{} is not a file; give its absolute path",
                    body.path.display()
                ),
            ));
        }
        (body.peer, body.path, false)
    } else {
        let up = upload::receive(&ctx, req, None).await?;
        let peer = up.field("peer").ok_or_else(|| {
            Fail::new(
                StatusCode::BAD_REQUEST,
                "say which peer to send it to (`peer`)",
            )
        })?;
        (peer, up.keep(), true)
    };
    let got = ctx
        .service
        .ask(|reply| Command::Push {
            peer,
            path,
            temporary,
            reply,
        })
        .await
        .ok_or_else(stopped)?;
    match got {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response()),
        Err(e) => Err(Fail::of(StatusCode::UNPROCESSABLE_ENTITY, e)),
    }
}

/// An upload shared: plain, with a passphrase, or to a peer's key.
async fn share(State(ctx): Shared, req: Request) -> Answer {
    let folder = ctx.service.with_state(shoal_service::State::share_folder);
    let Some(folder) = folder else {
        return Err(Fail::new(
            StatusCode::CONFLICT,
            "no share folder is set; add one in Settings first",
        ));
    };
    let up = upload::receive(&ctx, req, Some(&folder)).await?;
    let lock = match up.field("lock").as_deref().unwrap_or("plain") {
        "plain" => ShareLock::Plain,
        "passphrase" => match up.field("passphrase") {
            Some(p) if !p.is_empty() => ShareLock::Passphrase(p.into()),
            _ => {
                return Err(Fail::new(
                    StatusCode::BAD_REQUEST,
                    "give the passphrase to encrypt it with",
                ));
            }
        },
        "peer" => {
            let found = match up.field("peer") {
                Some(p) => ctx.service.with_state(|s| {
                    s.peers
                        .iter()
                        .find(|r| r.record.peer_id.to_string() == p || r.record.name == p)
                        .map(|r| r.record.peer_id)
                        .or_else(|| p.parse().ok())
                }),
                None => None,
            };
            match found {
                Some(id) => ShareLock::Peer(id),
                None => {
                    return Err(Fail::new(
                        StatusCode::BAD_REQUEST,
                        "give the peer (its name or full id) to encrypt it to",
                    ));
                }
            }
        }
        other => {
            let other = shoal_core::text::bounded(other, 40);
            return Err(Fail::new(
                StatusCode::BAD_REQUEST,
                format!("`lock` is plain, passphrase or peer, not `{other}`"),
            ));
        }
    };
    let path = up.keep();
    let got = ctx
        .service
        .ask(|reply| Command::Publish {
            path,
            lock,
            temporary: true,
            reply,
        })
        .await
        .ok_or_else(stopped)?;
    match got {
        Ok(p) => Ok((StatusCode::CREATED, Json(serde_json::json!({ "path": p }))).into_response()),
        Err(e) => Err(Fail::new(StatusCode::UNPROCESSABLE_ENTITY, e)),
    }
}

async fn files(State(ctx): Shared) -> Response {
    Json(views::files(&ctx)).into_response()
}

async fn settings(State(ctx): Shared) -> Response {
    Json(views::settings(&ctx)).into_response()
}

async fn save_settings(State(ctx): Shared, body: axum::body::Bytes) -> Answer {
    let bad = |e: serde_json::Error| {
        Fail::new(
            StatusCode::BAD_REQUEST,
            format!("these are not settings this node knows: {e}"),
        )
    };
    let mut value: serde_json::Value = serde_json::from_slice(&body).map_err(bad)?;
    if let Some(o) = value.as_object_mut() {
        // What GET adds for the page.
        o.remove("web_password_set");
        o.remove("downloads_default");
    }
    let mut config: shoal_core::config::Config = serde_json::from_value(value).map_err(bad)?;
    // The password is set by `shoal web-password` only.
    config.web_password = ctx.service.with_state(|s| s.config.web_password.clone());
    let want = config.clone();
    ctx.service.run(Command::Save(Box::new(config))).await;
    let saved = ctx.service.with_state(|s| s.config == want);
    if saved {
        Ok(Json(views::settings(&ctx)).into_response())
    } else {
        let why = ctx.service.feed().with_lines(|l| {
            l.iter()
                .rev()
                .find(|x| x.level == shoal_service::activity::Level::Error)
                .map(|x| x.text.clone())
        });
        Err(Fail::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            why.unwrap_or_else(|| "the settings were not saved; see the log".into()),
        ))
    }
}

async fn log(State(ctx): Shared) -> Response {
    let lines: Vec<views::LogView> = ctx
        .service
        .feed()
        .with_lines(|l| l.iter().map(views::LogView::of).collect());
    Json(lines).into_response()
}

async fn events(State(ctx): Shared) -> Response {
    crate::events::stream(ctx).into_response()
}

/// Uploads: streamed to a fresh folder under the data dir's `uploads`,
/// after the free space is checked against the announced size.
mod upload {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Room left beyond the upload itself.
    const MARGIN: u64 = 16 << 20;
    /// Form fields other than the file are small.
    const FIELD_MAX: usize = 4096;

    /// An upload on disk; removed when dropped unless handed on with
    /// [`Upload::keep`] (a request whose client went away midway leaves
    /// nothing behind).
    pub struct Upload {
        pub path: PathBuf,
        fields: Vec<(String, String)>,
        kept: bool,
    }

    impl Drop for Upload {
        fn drop(&mut self) {
            if !self.kept {
                self.discard();
            }
        }
    }

    impl Upload {
        /// Hands the file on: whoever takes the path removes it.
        pub fn keep(mut self) -> PathBuf {
            self.kept = true;
            std::mem::take(&mut self.path)
        }

        pub fn field(&self, name: &str) -> Option<String> {
            self.fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }

        /// Removes the upload (it will not be used).
        fn discard(&self) {
            let _ = std::fs::remove_file(&self.path);
            if let Some(d) = self.path.parent() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }

    /// Receives the form's fields and its file; `also` is another folder
    /// the file will be written to (the share), whose free space counts too.
    pub async fn receive(ctx: &Ctx, req: Request, also: Option<&FsPath>) -> Result<Upload, Fail> {
        let size: u64 = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Fail::new(
                    StatusCode::LENGTH_REQUIRED,
                    "an upload must say its size (Content-Length)",
                )
            })?;
        let base = ctx.data_dir.join("uploads");
        std::fs::create_dir_all(&base).map_err(|e| {
            Fail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot create {}: {e}", base.display()),
            )
        })?;
        // The upload, then its copy into the share (or the peer's inbox
        // elsewhere): room for it twice here is the careful guess.
        let need = size.saturating_mul(2).saturating_add(MARGIN);
        if let Some(free) = shoal_fs::space::free_space(&base)
            && free < need
        {
            return Err(Fail::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "not enough free space for {size} bytes in {} ({free} free); free some and try again",
                    base.display()
                ),
            ));
        }
        if let Some(dir) = also
            && let Some(free) = shoal_fs::space::free_space(dir)
            && free < size.saturating_add(MARGIN)
        {
            return Err(Fail::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "not enough free space for {size} bytes in {} ({free} free); free some and try again",
                    dir.display()
                ),
            ));
        }
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
            Fail::new(
                StatusCode::BAD_REQUEST,
                format!("expected a multipart form: {e}"),
            )
        })?;
        let mut fields = Vec::new();
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| Fail::new(StatusCode::BAD_REQUEST, format!("bad form: {e}")))?;
            let Some(mut field) = field else {
                return Err(Fail::new(
                    StatusCode::BAD_REQUEST,
                    "the form has no `file`; put the other fields first and the file last",
                ));
            };
            let name = field.name().unwrap_or("").to_owned();
            if name != "file" {
                let text = field.text().await.map_err(|e| {
                    Fail::new(StatusCode::BAD_REQUEST, format!("bad form field: {e}"))
                })?;
                if text.len() > FIELD_MAX || fields.len() > 16 {
                    return Err(Fail::new(StatusCode::BAD_REQUEST, "form fields too large"));
                }
                fields.push((name, text));
                continue;
            }
            let given = field.file_name().unwrap_or("").to_owned();
            let Some(safe) = shoal_node::inbox::safe_name(&given) else {
                return Err(Fail::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "`{}` is not a usable file name; rename the file",
                        shoal_core::text::bounded(&given, 80)
                    ),
                ));
            };
            let dir = base.join(crate::auth::token());
            std::fs::create_dir(&dir).map_err(|e| {
                Fail::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot create {}: {e}", dir.display()),
                )
            })?;
            let path = dir.join(&safe);
            let up = Upload {
                path,
                fields,
                kept: false,
            };
            let written = async {
                let mut file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&up.path)
                    .await?;
                let mut got = 0u64;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                {
                    got += chunk.len() as u64;
                    if got > size {
                        return Err(std::io::Error::other("more bytes than announced"));
                    }
                    file.write_all(&chunk).await?;
                }
                file.flush().await?;
                Ok::<_, std::io::Error>(())
            }
            .await;
            if let Err(e) = written {
                return Err(Fail::new(
                    StatusCode::BAD_REQUEST,
                    format!("the upload did not arrive whole ({e}); nothing was kept, try again"),
                ));
            }
            return Ok(up);
        }
    }

    use axum::extract::FromRequest;
}

/// What the API answers with.
pub mod views {
    use serde::Serialize;
    use shoal_core::wire::{FileEntry, PeerRecord};
    use shoal_service::activity::{Level, LogLine};
    use shoal_service::{Direction, TransferState};

    use crate::Ctx;

    /// `GET /api/v1/status`.
    #[derive(Serialize)]
    pub struct StatusView {
        name: String,
        peer_id: String,
        short_id: String,
        state: &'static str,
        port: Option<u16>,
        addrs: Vec<String>,
        /// `direct`, `relayed` or `unreachable`, once known.
        reach: Option<&'static str>,
        /// The address the router forwards, with port mapping.
        mapped: Option<String>,
        /// The relay this node keeps, if any.
        relay: Option<String>,
        error: Option<String>,
        sharing: usize,
        version: &'static str,
    }

    pub fn status(ctx: &Ctx) -> StatusView {
        ctx.service.with_state(|s| StatusView {
            name: s.name.clone(),
            peer_id: s.me.to_string(),
            short_id: s.me.short(),
            state: s.net.name(),
            port: s.port,
            addrs: s.reach.clone(),
            reach: s.reachability.reach().map(|r| r.as_str()),
            mapped: s.reachability.mapped.clone(),
            relay: s.reachability.relay.clone(),
            error: s.start_error.as_ref().map(|e| e.text.clone()),
            sharing: s.local.len(),
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    /// A peer.
    #[derive(Serialize)]
    pub struct PeerView {
        peer_id: String,
        name: String,
        addrs: Vec<String>,
        /// `direct`, `relayed` or `unreachable`, as the tracker found.
        #[serde(skip_serializing_if = "Option::is_none")]
        reach: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        verdict: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        files: Option<usize>,
    }

    impl PeerView {
        pub fn of_record(r: &PeerRecord) -> Self {
            Self {
                peer_id: r.peer_id.to_string(),
                name: r.name.clone(),
                addrs: r.addrs.clone(),
                reach: r.reach.map(|r| r.as_str()),
                verdict: None,
                files: None,
            }
        }
    }

    pub fn peers(ctx: &Ctx) -> Vec<PeerView> {
        ctx.service.with_state(|s| {
            s.peers
                .iter()
                .map(|p| PeerView {
                    verdict: Some(p.verdict),
                    files: p.files,
                    ..PeerView::of_record(&p.record)
                })
                .collect()
        })
    }

    /// A file of a listing.
    #[derive(Serialize)]
    pub struct FileView {
        name: String,
        size: u64,
        content_id: String,
        encrypted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    }

    impl FileView {
        pub fn of(f: &FileEntry) -> Self {
            Self {
                name: f.name.clone(),
                size: f.size,
                content_id: f.content_id.to_string(),
                encrypted: f.encrypted,
                link: None,
            }
        }
    }

    pub fn files(ctx: &Ctx) -> Vec<FileView> {
        ctx.service.with_state(|s| {
            s.local
                .iter()
                .map(|f| FileView {
                    link: (!s.reach.is_empty()).then(|| {
                        shoal_core::Link {
                            content_id: f.content_id,
                            size: f.size,
                            name: f.name.rsplit('/').next().unwrap_or(&f.name).to_owned(),
                            peer: s.me,
                            addrs: s.reach.clone(),
                        }
                        .to_string()
                    }),
                    ..FileView::of(f)
                })
                .collect()
        })
    }

    /// A transfer.
    #[derive(Serialize)]
    pub struct TransferView {
        id: u64,
        direction: &'static str,
        name: String,
        peer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        dir: Option<String>,
        state: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// What `shoal` exits with for this failure.
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        done: u64,
        total: u64,
        speed: u64,
        sources: usize,
        finishing: bool,
        /// How the providers were reached: `direct`, `relay`, or both.
        #[serde(skip_serializing_if = "String::is_empty")]
        via: String,
        /// Each provider that answered, and how it was reached.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        routes: Vec<RouteView>,
    }

    #[derive(Serialize)]
    pub struct RouteView {
        peer_id: String,
        name: String,
        via: &'static str,
        addr: String,
    }

    pub fn transfer(ctx: &Ctx, id: u64) -> Option<TransferView> {
        ctx.service
            .with_state(|s| s.transfers.get(&id).cloned())
            .map(|t| view(ctx, &t))
    }

    fn view(ctx: &Ctx, t: &shoal_service::Transfer) -> TransferView {
        let (done, total) = t.info.meter.bytes();
        TransferView {
            id: t.info.id,
            direction: match t.info.direction {
                Direction::Download => "download",
                Direction::Push => "push",
            },
            name: t.info.name.clone(),
            peer: t.info.peer.clone(),
            dir: t.info.dir.as_ref().map(|d| d.display().to_string()),
            state: t.state.name(),
            error: match &t.state {
                TransferState::Failed(e) => Some(e.text.clone()),
                _ => None,
            },
            exit_code: match &t.state {
                TransferState::Failed(e) => Some(e.kind.exit_code()),
                _ => None,
            },
            path: match &t.state {
                TransferState::Done(p) | TransferState::NeedsPassphrase(p) => {
                    Some(p.display().to_string())
                }
                _ => None,
            },
            done,
            total,
            speed: if t.state == TransferState::Running {
                ctx.progress.speed(t.info.id)
            } else {
                0
            },
            sources: t.info.meter.sources(),
            finishing: t.info.meter.is_finishing(),
            via: t.info.meter.via(),
            routes: t
                .info
                .meter
                .routes()
                .into_iter()
                .map(|r| RouteView {
                    peer_id: r.peer_id.to_string(),
                    name: r.name,
                    via: r.via,
                    addr: r.addr,
                })
                .collect(),
        }
    }

    pub fn transfers(ctx: &Ctx, only: Option<Direction>) -> Vec<TransferView> {
        let all: Vec<shoal_service::Transfer> = ctx.service.with_state(|s| {
            s.transfers
                .values()
                .filter(|t| only.is_none_or(|d| t.info.direction == d))
                .cloned()
                .collect()
        });
        all.iter().map(|t| view(ctx, t)).collect()
    }

    /// config.toml without the password's hash.
    pub fn settings(ctx: &Ctx) -> serde_json::Value {
        let mut c = ctx.service.with_state(|s| s.config.clone());
        c.web_password = None;
        let has_password = ctx.password.is_some();
        let mut v = serde_json::to_value(&c).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("web_password_set".into(), has_password.into());
            o.insert(
                "downloads_default".into(),
                shoal_service::default_downloads(&ctx.data_dir)
                    .display()
                    .to_string()
                    .into(),
            );
        }
        v
    }

    /// A line of the log.
    #[derive(Serialize)]
    pub struct LogView {
        time: String,
        level: &'static str,
        text: String,
    }

    impl LogView {
        pub fn of(l: &LogLine) -> Self {
            Self {
                time: l.time.clone(),
                level: l.level.key(),
                text: l.text.clone(),
            }
        }

        pub fn skipped(n: u64) -> Self {
            Self {
                time: String::new(),
                level: Level::Warning.key(),
                text: format!("({n} lines skipped; the log file has them)"),
            }
        }
    }
}
