//! `/api/v1/events`: the service's notices, the log and the transfers'
//! progress as Server-Sent Events.
//!
//! One ticker reads every running transfer's meter four times a second
//! and sends the ones that moved, in one batch, to every follower; the
//! followers themselves only forward.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use shoal_service::{Notice, Service, TransferState};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::views;

/// How often progress is read and sent.
const TICK: Duration = Duration::from_millis(250);
/// Speed is averaged over about this long.
const SPEED_WINDOW: f64 = 3.0;

/// One transfer's progress in a batch.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    /// The transfer.
    pub id: u64,
    /// Bytes in.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Bytes per second, lately.
    pub speed: u64,
    /// Providers serving it.
    pub sources: usize,
    /// How they were reached: `direct`, `relay`, or both.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub via: String,
}

struct Sample {
    at: Instant,
    done: u64,
    speed: f64,
    sent: (u64, u64, usize, String),
}

/// The ticker's output, and the speeds it measured.
pub struct Progress {
    tx: broadcast::Sender<Arc<Vec<Moved>>>,
    speeds: Arc<Mutex<HashMap<u64, Sample>>>,
}

impl Progress {
    /// Starts the ticker; it ends with `cancel`.
    pub fn start(service: Service, cancel: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(16);
        let speeds: Arc<Mutex<HashMap<u64, Sample>>> = Arc::default();
        let (t, s) = (tx.clone(), speeds.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let batch = measure(&service, &s);
                if !batch.is_empty() && t.receiver_count() > 0 {
                    let _ = t.send(Arc::new(batch));
                }
            }
        });
        Self { tx, speeds }
    }

    /// The measured speed of a transfer, bytes per second.
    pub fn speed(&self, id: u64) -> u64 {
        self.speeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map_or(0, |s| s.speed as u64)
    }
}

/// Reads every running transfer's meter; returns those that moved.
fn measure(service: &Service, speeds: &Mutex<HashMap<u64, Sample>>) -> Vec<Moved> {
    let meters: Vec<(u64, Arc<shoal_service::Meter>)> = service.with_state(|s| {
        s.transfers
            .iter()
            .filter(|(_, t)| t.state == TransferState::Running)
            .map(|(id, t)| (*id, t.info.meter.clone()))
            .collect()
    });
    let now = Instant::now();
    let mut speeds = speeds.lock().unwrap_or_else(|p| p.into_inner());
    speeds.retain(|id, _| meters.iter().any(|(m, _)| m == id));
    let mut batch = Vec::new();
    for (id, meter) in meters {
        let (done, total) = meter.bytes();
        let sources = meter.sources();
        let s = speeds.entry(id).or_insert(Sample {
            at: now,
            done,
            speed: 0.0,
            sent: (u64::MAX, 0, 0, String::new()),
        });
        let dt = now.duration_since(s.at).as_secs_f64();
        if dt > 0.0 {
            let rate = done.saturating_sub(s.done) as f64 / dt;
            let w = (dt / SPEED_WINDOW).min(1.0);
            s.speed = s.speed * (1.0 - w) + rate * w;
            s.at = now;
            s.done = done;
        }
        let via = meter.via();
        let now_sent = (done, total, sources, via.clone());
        if now_sent != s.sent {
            s.sent = now_sent;
            batch.push(Moved {
                id,
                done,
                total,
                speed: s.speed as u64,
                sources,
                via,
            });
        }
    }
    batch
}

/// The event stream of one follower.
pub fn stream(ctx: Arc<crate::Ctx>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let notices = ctx.service.subscribe();
    let log = ctx.service.feed().follow();
    let progress = ctx.progress.tx.subscribe();
    let first = vec![
        json_event("status", &views::status(&ctx)),
        json_event("peers", &views::peers(&ctx)),
        json_event("transfers", &views::transfers(&ctx, None)),
        json_event("files", &views::files(&ctx)),
    ];
    let state = Follow {
        _watching: ctx.service.watch(),
        ctx,
        notices,
        log,
        progress,
        queued: first.into(),
    };
    let s = futures_util::stream::unfold(state, |mut f| async move {
        let next = f.next().await?;
        Some((Ok(next), f))
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

struct Follow {
    /// An open page keeps the peer list fresh.
    _watching: shoal_service::WatchGuard,
    ctx: Arc<crate::Ctx>,
    notices: broadcast::Receiver<Notice>,
    log: broadcast::Receiver<shoal_service::activity::LogLine>,
    progress: broadcast::Receiver<Arc<Vec<Moved>>>,
    queued: std::collections::VecDeque<SseEvent>,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some(e);
            }
            tokio::select! {
                n = self.notices.recv() => match n {
                    Ok(n) => return Some(self.notice(n)),
                    // Fell behind: everything afresh.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.queued.push_back(json_event("status", &views::status(&self.ctx)));
                        self.queued.push_back(json_event("peers", &views::peers(&self.ctx)));
                        self.queued.push_back(json_event("transfers", &views::transfers(&self.ctx, None)));
                        self.queued.push_back(json_event("files", &views::files(&self.ctx)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                l = self.log.recv() => match l {
                    Ok(line) => return Some(json_event("log", &views::LogView::of(&line))),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some(json_event("log", &views::LogView::skipped(n)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                p = self.progress.recv() => match p {
                    Ok(batch) => return Some(json_event("progress", &*batch)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }

    fn notice(&self, n: Notice) -> SseEvent {
        let ctx = &self.ctx;
        match n {
            Notice::Network => json_event("status", &views::status(ctx)),
            Notice::Peers => json_event("peers", &views::peers(ctx)),
            Notice::Transfer(id) => match views::transfer(ctx, id) {
                Some(t) => json_event("transfer", &t),
                None => json_event("transfers", &views::transfers(ctx, None)),
            },
            Notice::LocalFiles => json_event("files", &views::files(ctx)),
            Notice::Settings => json_event("settings", &views::settings(ctx)),
        }
    }
}

fn json_event(name: &str, value: &impl Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}
