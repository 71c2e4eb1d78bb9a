//! `runnerctl serve`: the webhook endpoint. It proves a delivery comes from GitHub, turns it into
//! a task on the queue and answers, fast; it never calls GitHub or a backend.
//!
//! Routes: `POST /webhook`, `GET /healthz` (the process is up), `GET /readyz` (Redis answered
//! within the last second; at most one Redis command a second, whatever the request rate),
//! `GET /metrics` (Prometheus; on `webhook.metrics_listen`, and on the webhook listener only to
//! requests that carry `webhook.metrics_token`).
//!
//! Hostile input: a body is read only up to `webhook.max_body_kib` (a larger declared length is
//! refused unread), within a second plus its size at 64 KiB/s (10 s at most), into a budget of
//! `max_in_flight` × `max_body_kib` bytes for all bodies arriving at once (503 past it); only a
//! body read in full takes one of the `max_in_flight` slots in which deliveries are verified and
//! queued (one past it waits up to 5 s for a slot, then gets 503). At most `max_connections`
//! connections are open, at most `max_connections_per_address` from one address (503 past
//! either), and headers must arrive within 10 s.
//!
//! Built on hyper rather than tiny_http: tiny_http 0.12 allocates and reads the whole declared
//! body of a request that is answered without reading it, so one request declaring a huge
//! `Content-Length` aborts the process; hyper lets us refuse it unread.

pub mod fleet;
pub mod metrics;
pub mod webhook;

use crate::config::{RunnerGroup, Secret};
use crate::forge::WebhookScheme;
use crate::queue::{Envelope, Queue, QueueOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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

/// The default body limit: 1 MiB (GitHub caps payloads at 25 MiB; `workflow_job` ones are a
/// few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a delivery past `max_in_flight` waits for a slot before its 503.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
/// How long a delivery's body may take to arrive: GitHub itself gives up after 10 s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A body must arrive at this many bytes a second on average, after [`BODY_GRACE`]: a slow
/// sender is cut off within about a second, whatever it declared.
pub const MIN_BODY_RATE: u64 = 64 * 1024;
/// How long any body may take before [`MIN_BODY_RATE`] counts.
pub const BODY_GRACE: Duration = Duration::from_secs(1);

/// How much `serve` takes at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: usize,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: MAX_BODY,
            max_connections: 2048,
            max_connections_per_address: 64,
            max_in_flight: 32,
        }
    }
}

impl Limits {
    pub fn from_config(w: &crate::config::WebhookConfig) -> Limits {
        Limits {
            max_body: w.max_body_kib as usize * 1024,
            max_connections: w.max_connections as usize,
            max_connections_per_address: w.max_connections_per_address as usize,
            max_in_flight: w.max_in_flight as usize,
        }
    }

    /// The bytes of bodies held at once while they arrive: what `max_in_flight` deliveries of
    /// the largest size take.
    fn body_budget(&self) -> usize {
        self.max_in_flight
            .max(1)
            .saturating_mul(self.max_body.max(1))
    }
}

/// Everything the handlers share.
pub struct State {
    secret: Secret,
    manager: String,
    groups: Vec<RunnerGroup>,
    pub max_body: usize,
    max_connections: usize,
    connections: std::sync::atomic::AtomicUsize,
    per_address: Arc<crate::addr_limit::PerAddress>,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Bytes of bodies being received, before any is verified.
    body_budget: Arc<tokio::sync::Semaphore>,
    metrics_token: Option<Secret>,
    redis: RedisLink,
    scheme: &'static dyn WebhookScheme,
    broker: Option<Arc<crate::broker::endpoint::Endpoint>>,
    pub metrics: Metrics,
    /// `redis.wait_replicas` and `redis.wait_timeout`, when replicas are waited for.
    durability: Option<(u32, Duration)>,
}

impl State {
    /// The server of a manager: deliveries read with the forge's `scheme`, verified with
    /// `secret`, matched against `groups`, queued in the Redis at `redis_url`.
    pub fn new(
        scheme: &'static dyn WebhookScheme,
        secret: Secret,
        manager: &str,
        groups: Vec<RunnerGroup>,
        redis: impl Into<crate::store::RedisTarget>,
        options: QueueOptions,
    ) -> State {
        State {
            secret,
            manager: manager.to_string(),
            groups,
            max_body: MAX_BODY,
            max_connections: Limits::default().max_connections,
            connections: std::sync::atomic::AtomicUsize::new(0),
            per_address: crate::addr_limit::PerAddress::new(
                Limits::default().max_connections_per_address,
            ),
            in_flight: Arc::new(tokio::sync::Semaphore::new(Limits::default().max_in_flight)),
            body_budget: Arc::new(tokio::sync::Semaphore::new(Limits::default().body_budget())),
            metrics_token: None,
            redis: RedisLink {
                target: redis.into(),
                manager: manager.to_string(),
                options,
                queue: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(None),
                up: AtomicBool::new(false),
                checked: std::sync::Mutex::new(None),
            },
            scheme,
            broker: None,
            metrics: Metrics::default(),
            durability: None,
        }
    }

    /// Deliveries are answered 202 only once `replicas` replicas have them (at most `timeout`).
    pub fn with_durability(mut self, replicas: u32, timeout: Duration) -> State {
        self.durability = (replicas > 0).then_some((replicas, timeout));
        self
    }

    pub fn with_limits(mut self, l: Limits) -> State {
        self.max_body = l.max_body;
        self.max_connections = l.max_connections.max(1);
        self.per_address = crate::addr_limit::PerAddress::new(l.max_connections_per_address);
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(l.max_in_flight.max(1)));
        self.body_budget = Arc::new(tokio::sync::Semaphore::new(l.body_budget()));
        self
    }

    /// The credential broker served beside, whose counters `/metrics` shows.
    pub fn with_broker(mut self, endpoint: Arc<crate::broker::endpoint::Endpoint>) -> State {
        self.broker = Some(endpoint);
        self
    }

    /// `/metrics` on the webhook listener for requests with this bearer token.
    pub fn with_metrics_token(mut self, token: Option<Secret>) -> State {
        self.metrics_token = token;
        self
    }

    fn metrics_allowed(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.metrics_token else {
            return false;
        };
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        webhook::constant_time_eq(given.as_bytes(), token.expose().as_bytes())
    }
}

/// The Redis connection, made on first use and again after it failed to be made: `serve` starts
/// and answers (503) while Redis is down, and recovers by itself.
struct RedisLink {
    target: crate::store::RedisTarget,
    manager: String,
    options: QueueOptions,
    queue: RwLock<Option<Queue>>,
    /// Serializes connection attempts; holds the time of the last failed one.
    connecting: tokio::sync::Mutex<Option<Instant>>,
    up: AtomicBool,
    /// When Redis was last asked by `/readyz`, and what it said.
    checked: std::sync::Mutex<Option<(Instant, bool)>>,
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
        match tokio::time::timeout(
            Duration::from_secs(3),
            crate::store::connect_to(&self.target),
        )
        .await
        {
            Ok(Ok(conn)) => {
                // Nothing is queued before the keys are in today's layout.
                if let Err(e) = crate::store::migrate_layout(&conn, &self.manager).await {
                    tracing::warn!(error = %e, "could not move Redis keys to today's layout");
                    *last_failure = Some(Instant::now());
                    return None;
                }
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

    /// Whether Redis answers, asked at most once a second.
    async fn ready(&self) -> bool {
        let recent = *self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, ok)) = recent {
            if at.elapsed() < Duration::from_secs(1) {
                return ok;
            }
        }
        let ok = self.ping().await;
        *self.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), ok));
        ok
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
            // A declared length over the limit is refused first, unread and costing nothing.
            let declared = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > state.max_body as u64) {
                state.metrics.record(Outcome::TooLarge, start.elapsed());
                let mut r = text(413, format!("payload over {} KiB", state.max_body / 1024));
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
            let (outcome, reason) = webhook_delivery(&state, req).await;
            state.metrics.record(outcome, start.elapsed());
            let mut r = text(outcome.status(), reason);
            if matches!(
                outcome,
                Outcome::TooLarge | Outcome::Busy | Outcome::BadRequest
            ) {
                // The rest of the body may not have been read: this connection cannot be reused.
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
            if state.redis.ready().await {
                text(200, "ready")
            } else {
                text(503, "Redis unreachable")
            }
        }
        (&Method::GET, "/metrics") if metrics_route || state.metrics_allowed(&req) => {
            // Asked now (at most once a second, within seconds), not left from the last
            // delivery: an idle serve with Redis up says so.
            let up = state.redis.ready().await;
            let mut body = state.metrics.render(up);
            body.push_str(&spot_fallbacks(&state).await);
            match &state.broker {
                Some(b) => body.push_str(&b.render_metrics()),
                None => body.push_str(&crate::broker::endpoint::render_without_broker()),
            }
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

/// The fleet's gauges and Redis-kept counters (see [`fleet::fleet`]).
async fn spot_fallbacks(state: &State) -> String {
    let Some(q) = state.redis.queue().await else {
        return String::new();
    };
    let store = q.store(&state.manager);
    let groups: Vec<String> = state.groups.iter().map(|g| g.name.clone()).collect();
    fleet::fleet(&q, &store, &groups).await
}

async fn webhook_delivery(state: &State, req: Request<Incoming>) -> (Outcome, String) {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || format!("payload over {} KiB", state.max_body / 1024);
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return (Outcome::TooLarge, too_large());
    }
    let header = |name: &str| -> Option<String> {
        req.headers()
            .get(name.to_ascii_lowercase())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let scheme = state.scheme;
    let alt = scheme.alternate_headers();
    let either = |first: &str, k: usize| header(first).or_else(|| alt.and_then(|a| header(a[k])));
    let event = either(scheme.event_header(), 0);
    let id = either(scheme.delivery_header(), 1);
    let signature = either(scheme.signature_header(), 2);
    // The body is read before the delivery takes an in-flight slot: a slow sender holds no
    // slot, only the bytes it sent (within the process's budget), and is cut off when it falls
    // under the minimum rate.
    let (body, _budget) = match read_body(state, req.into_body()).await {
        Ok(read) => read,
        Err(BodyError::TooLarge) => return (Outcome::TooLarge, too_large()),
        Err(BodyError::TooSlow) => {
            return (
                Outcome::BadRequest,
                format!(
                    "body not received in time (at least {} KiB/s after the first second)",
                    MIN_BODY_RATE / 1024
                ),
            )
        }
        Err(BodyError::NoBudget) => {
            return (
                Outcome::Busy,
                "too many bodies arriving at once; redeliver later".into(),
            )
        }
        Err(BodyError::Read) => return (Outcome::BadRequest, "could not read the body".into()),
    };
    // Past the cap, wait a little for a slot (a delivery holds one for about a millisecond),
    // then refuse: GitHub does not retry a failed delivery by itself.
    let slot = tokio::time::timeout(IN_FLIGHT_WAIT, state.in_flight.clone().acquire_owned()).await;
    let Ok(Ok(_slot)) = slot else {
        return (
            Outcome::Busy,
            "too many deliveries at once; redeliver later".into(),
        );
    };
    let delivery = webhook::Delivery {
        event: event.as_deref(),
        id: id.as_deref(),
        signature: signature.as_deref(),
        body: &body,
    };
    match webhook::decide(
        scheme,
        state.secret.expose().as_bytes(),
        &state.manager,
        &state.groups,
        delivery,
    ) {
        Decision::Answer(outcome, reason) => {
            tracing::debug!(
                event = event.as_deref().unwrap_or("-"),
                delivery = id.as_deref().unwrap_or("-"),
                outcome = outcome.as_str(),
                "delivery answered"
            );
            (outcome, reason)
        }
        Decision::Enqueue { task, key, job_key } => {
            enqueue_delivery(state, id.as_deref(), task, key, job_key).await
        }
    }
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    TooSlow,
    NoBudget,
    Read,
}

/// Bytes of the body budget held by one body, given back when dropped.
struct BudgetHeld {
    budget: Arc<tokio::sync::Semaphore>,
    bytes: usize,
}

impl Drop for BudgetHeld {
    fn drop(&mut self) {
        self.budget.add_permits(self.bytes);
    }
}

/// Reads a delivery's body: at most `max_body` bytes, each counted against the process's body
/// budget as it arrives, all of it within [`BODY_GRACE`] plus its size at [`MIN_BODY_RATE`]
/// (never more than [`BODY_TIMEOUT`]).
async fn read_body(state: &State, mut body: Incoming) -> Result<(Bytes, BudgetHeld), BodyError> {
    let start = tokio::time::Instant::now();
    let mut held = BudgetHeld {
        budget: state.body_budget.clone(),
        bytes: 0,
    };
    let mut buf = bytes::BytesMut::new();
    loop {
        let allowed = BODY_GRACE + Duration::from_secs_f64(buf.len() as f64 / MIN_BODY_RATE as f64);
        let deadline = start + allowed.min(BODY_TIMEOUT);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Read),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > state.max_body {
            return Err(BodyError::TooLarge);
        }
        let n = u32::try_from(data.len()).map_err(|_| BodyError::TooLarge)?;
        match state.body_budget.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                held.bytes += data.len();
            }
            Err(_) => return Err(BodyError::NoBudget),
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

/// Queues a delivery's task under its delivery key and job key; the answer.
async fn enqueue_delivery(
    state: &State,
    id: Option<&str>,
    task: crate::queue::Task,
    key: String,
    job_key: String,
) -> (Outcome, String) {
    let kind = task.kind();
    let Some(queue) = state.redis.queue().await else {
        return (
            Outcome::Unavailable,
            "Redis unreachable; redeliver later".into(),
        );
    };
    let env = Envelope::new(task, Some(key));
    let enqueued = queue.enqueue_envelope_also(&env, Some(&job_key));
    match tokio::time::timeout(Duration::from_secs(5), enqueued).await {
        // A resend of a delivery answered 503 for want of replicas: what it queued then may
        // still be on the master alone, so the duplicate waits for the same confirmation.
        Ok(Ok(e)) if e.duplicate && !durable_duplicate(state, &queue).await => {
            tracing::warn!(
                delivery = id.unwrap_or("-"),
                kind,
                "duplicate delivery, but what it queued is not yet on enough replicas"
            );
            (
                Outcome::Unavailable,
                "already queued, but not yet on enough Redis replicas; redeliver later".into(),
            )
        }
        Ok(Ok(e)) if e.duplicate => {
            tracing::info!(
                delivery = id.unwrap_or("-"),
                kind,
                "duplicate delivery ignored"
            );
            (Outcome::Duplicate, "already queued".into())
        }
        Ok(Ok(_)) if !durable(state, &queue).await => {
            tracing::warn!(delivery = id.unwrap_or("-"), kind, task = %env.id, "delivery queued but not on enough replicas");
            (
                Outcome::Unavailable,
                "queued, but not yet on enough Redis replicas; redeliver later".into(),
            )
        }
        Ok(Ok(_)) => {
            tracing::info!(delivery = id.unwrap_or("-"), kind, task = %env.id, "delivery queued");
            state.redis.up.store(true, Ordering::Relaxed);
            (Outcome::Enqueued, "queued".into())
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, delivery = id.unwrap_or("-"), "could not enqueue a delivery");
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

/// Whether what was just queued is on `redis.wait_replicas` replicas (always, without).
async fn durable(state: &State, queue: &Queue) -> bool {
    let Some((n, timeout)) = state.durability else {
        return true;
    };
    match queue.wait_replicas(n, timeout).await {
        Ok(acked) => acked >= n,
        Err(e) => {
            tracing::warn!(error = %e, "Redis WAIT failed");
            false
        }
    }
}

/// Whether what an earlier copy of a delivery queued is on `redis.wait_replicas` replicas
/// (always, without). `WAIT` counts this connection's writes, and that copy may have been
/// written through another connection or process: a write made now comes after it in the
/// replication stream, so replicas that have this write have that one too.
async fn durable_duplicate(state: &State, queue: &Queue) -> bool {
    if state.durability.is_none() {
        return true;
    }
    if let Err(e) = queue.replication_probe().await {
        tracing::warn!(error = %e, "Redis write before WAIT failed");
        return false;
    }
    durable(state, queue).await
}

/// Counts an open connection for as long as it lives.
struct OpenConnection(Arc<State>);

impl OpenConnection {
    fn new(state: Arc<State>) -> OpenConnection {
        state.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(state)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ),
    )
    .await;
}

async fn accept(
    l: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
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
    tokio::pin!(shutdown);
    loop {
        let (stream, metrics_route) = tokio::select! {
            // On the webhook listener, /metrics answers only requests with the token.
            s = main.accept() => (s, false),
            s = accept(metrics.as_ref()) => (s, true),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Past the cap, or past its address's share of it, a new connection gets a short 503
        // and is closed: one sender cannot take the connections GitHub's deliveries need.
        let address = state.per_address.try_acquire(peer.ip());
        if state.connections.load(Ordering::Relaxed) >= state.max_connections || address.is_none() {
            state.metrics.record(Outcome::Busy, Duration::ZERO);
            tokio::spawn(refuse(stream));
            continue;
        }
        let open = (OpenConnection::new(state.clone()), address);
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(state, req, metrics_route).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            // hyper reads ahead up to this much per connection (400 KB by default), also for
            // a delivery still waiting for a slot: a small buffer bounds what 1,000 slow senders
            // cost. GitHub's headers take a few KiB.
            .max_buf_size(16 * 1024)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _open = open;
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
