//! `runnerctl serve`: the webhook endpoint. It proves a delivery comes from GitHub, turns it into
//! a task on the queue and answers, fast; it never calls GitHub or a backend.
//!
//! Routes: `POST /webhook`, `GET /healthz` (the process is up), `GET /readyz` (Redis answers),
//! `GET /metrics` (Prometheus; on its own address when `webhook.metrics_listen` is set).
//!
//! Built on hyper rather than tiny_http: tiny_http 0.12 allocates and reads the whole declared
//! body of a request that is answered without reading it, so one request declaring a huge
//! `Content-Length` aborts the process; hyper lets us refuse it unread.

pub mod metrics;
pub mod webhook;

use crate::config::{RunnerGroup, Secret};
use crate::queue::{Envelope, Queue, QueueOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::Metrics;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use webhook::{Decision, Outcome};

/// GitHub caps webhook payloads at 25 MB.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// Everything the handlers share.
pub struct State {
    secret: Secret,
    manager: String,
    groups: Vec<RunnerGroup>,
    pub max_body: usize,
    redis: RedisLink,
    pub metrics: Metrics,
}

impl State {
    pub fn new(
        secret: Secret,
        manager: &str,
        groups: Vec<RunnerGroup>,
        redis_url: &str,
        options: QueueOptions,
    ) -> State {
        State {
            secret,
            manager: manager.to_string(),
            groups,
            max_body: MAX_BODY,
            redis: RedisLink {
                url: redis_url.to_string(),
                manager: manager.to_string(),
                options,
                queue: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(None),
                up: AtomicBool::new(false),
            },
            metrics: Metrics::default(),
        }
    }
}

/// The Redis connection, made on first use and again after it failed to be made: `serve` starts
/// and answers (503) while Redis is down, and recovers by itself.
struct RedisLink {
    url: String,
    manager: String,
    options: QueueOptions,
    queue: RwLock<Option<Queue>>,
    /// Serializes connection attempts; holds the time of the last failed one.
    connecting: tokio::sync::Mutex<Option<Instant>>,
    up: AtomicBool,
}

impl RedisLink {
    async fn queue(&self) -> Option<Queue> {
        if let Some(q) = self
            .queue
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Some(q.clone());
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(q) = self
            .queue
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Some(q.clone());
        }
        if last_failure.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        match tokio::time::timeout(Duration::from_secs(3), crate::store::connect(&self.url)).await {
            Ok(Ok(conn)) => {
                let q = Queue::new(conn, &self.manager, self.options.clone());
                *self.queue.write().unwrap_or_else(|p| p.into_inner()) = Some(q.clone());
                *last_failure = None;
                Some(q)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis unreachable");
                *last_failure = Some(Instant::now());
                None
            }
            Err(_) => {
                tracing::warn!("Redis did not answer within 3s");
                *last_failure = Some(Instant::now());
                None
            }
        }
    }

    async fn ping(&self) -> bool {
        let ok = match self.queue().await {
            None => false,
            Some(q) => matches!(
                tokio::time::timeout(Duration::from_secs(2), q.ping()).await,
                Ok(Ok(()))
            ),
        };
        self.up.store(ok, Ordering::Relaxed);
        ok
    }
}

type Body = Full<Bytes>;

fn text(status: u16, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    body.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Answers one request. `metrics_route` says whether `/metrics` is served on this listener.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    metrics_route: bool,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/webhook") => {
            let start = Instant::now();
            let (outcome, reason) = webhook_delivery(&state, req).await;
            state.metrics.record(outcome, start.elapsed());
            let mut r = text(outcome.status(), reason);
            if outcome == Outcome::TooLarge {
                // The rest of the body is not read: this connection cannot be reused.
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
        (_, "/webhook") => {
            state
                .metrics
                .record(Outcome::MethodNotAllowed, Duration::ZERO);
            let mut r = text(405, "use POST");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            r
        }
        (&Method::GET, "/healthz") => text(200, "ok"),
        (&Method::GET, "/readyz") => {
            if state.redis.ping().await {
                text(200, "ready")
            } else {
                text(503, "Redis unreachable")
            }
        }
        (&Method::GET, "/metrics") if metrics_route => {
            let up = state.redis.up.load(Ordering::Relaxed);
            let mut body = state.metrics.render(up);
            body.push_str(&spot_fallbacks(&state).await);
            let mut r = text(200, body.trim_end());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => text(404, "not found"),
    }
}

/// The spot-to-on-demand fallbacks of each group, counted in Redis by the workers.
async fn spot_fallbacks(state: &State) -> String {
    let Some(q) = state.redis.queue().await else {
        return String::new();
    };
    let store = q.store(&state.manager);
    let counts = tokio::time::timeout(
        Duration::from_secs(2),
        store.marks_with_prefix(&crate::manager::ops::spot_fallback_mark("")),
    )
    .await;
    let Ok(Ok(counts)) = counts else {
        return String::new();
    };
    let mut s = String::from(
        "# HELP runnerctl_spot_fallbacks_total Creates that fell back from spot to on-demand.\n# TYPE runnerctl_spot_fallbacks_total counter\n",
    );
    for (group, n) in counts {
        s.push_str(&format!(
            "runnerctl_spot_fallbacks_total{{group=\"{group}\"}} {n}\n"
        ));
    }
    s
}

async fn webhook_delivery(state: &State, req: Request<Incoming>) -> (Outcome, String) {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return (Outcome::TooLarge, "payload over 25 MiB".into());
    }
    let header = |name: &str| -> Option<String> {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let event = header("x-github-event");
    let id = header("x-github-delivery");
    let signature = header("x-hub-signature-256");
    let body = Limited::new(req.into_body(), state.max_body);
    let body = match tokio::time::timeout(Duration::from_secs(30), body.collect()).await {
        Err(_) => return (Outcome::BadRequest, "body not received in time".into()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return (Outcome::TooLarge, "payload over 25 MiB".into())
        }
        Ok(Err(_)) => return (Outcome::BadRequest, "could not read the body".into()),
        Ok(Ok(b)) => b.to_bytes(),
    };
    let delivery = webhook::Delivery {
        event: event.as_deref(),
        id: id.as_deref(),
        signature: signature.as_deref(),
        body: &body,
    };
    match webhook::decide(
        state.secret.expose().as_bytes(),
        &state.manager,
        &state.groups,
        delivery,
    ) {
        Decision::Answer(outcome, reason) => {
            tracing::debug!(event = ?event, delivery = ?id, outcome = outcome.as_str(), "delivery answered");
            (outcome, reason)
        }
        Decision::Enqueue { task, key } => {
            let kind = task.kind();
            let Some(queue) = state.redis.queue().await else {
                return (
                    Outcome::Unavailable,
                    "Redis unreachable; redeliver later".into(),
                );
            };
            let env = Envelope::new(task, Some(key));
            match tokio::time::timeout(Duration::from_secs(5), queue.enqueue_envelope(&env)).await {
                Ok(Ok(e)) if e.duplicate => {
                    tracing::info!(delivery = ?id, kind, "duplicate delivery ignored");
                    (Outcome::Duplicate, "already queued".into())
                }
                Ok(Ok(_)) => {
                    tracing::info!(delivery = ?id, kind, task = %env.id, "delivery queued");
                    state.redis.up.store(true, Ordering::Relaxed);
                    (Outcome::Enqueued, "queued".into())
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, delivery = ?id, "could not enqueue a delivery");
                    state.redis.up.store(false, Ordering::Relaxed);
                    (
                        Outcome::Unavailable,
                        "Redis unreachable; redeliver later".into(),
                    )
                }
                Err(_) => {
                    state.redis.up.store(false, Ordering::Relaxed);
                    (
                        Outcome::Unavailable,
                        "Redis did not answer; redeliver later".into(),
                    )
                }
            }
        }
    }
}

async fn accept(l: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Serves until `shutdown` resolves, then stops accepting, lets the requests in flight finish
/// (up to 30 s) and returns.
pub async fn serve(
    main: TcpListener,
    metrics: Option<TcpListener>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let separate_metrics = metrics.is_some();
    tokio::pin!(shutdown);
    loop {
        let (stream, metrics_route) = tokio::select! {
            s = main.accept() => (s.map(|(s, _)| s), !separate_metrics),
            s = accept(metrics.as_ref()) => (s, true),
            _ = &mut shutdown => break,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(state, req, metrics_route).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(main);
    drop(metrics);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after 30s; closing them");
    }
}
