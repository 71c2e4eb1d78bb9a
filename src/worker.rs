//! The queue consumer loop that `runnerctl worker` runs: bounded concurrency, leases kept alive
//! while a task runs, retries and dead letters by the handler's verdict, a bounded drain on
//! shutdown, and reconnection after a Redis outage (logged once per outage).

use crate::conn::Conn;
use crate::queue::{Delivery, Envelope, Queue, QueueError, Retried};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

/// A handler's verdict on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; acknowledge it.
    Done,
    /// Failed in a way that may pass: retry with backoff, counting the attempt.
    Retry(String),
    /// Not possible yet (for example the group is at `max_runners`): try again after `delay`
    /// without counting an attempt. The task is never dropped.
    Wait { delay: Duration, reason: String },
    /// Can never succeed: straight to the dead-letter stream.
    Fail(String),
    /// This worker no longer holds the task (another took it over): it stopped acting on it and
    /// records nothing.
    Lost,
}

/// Handles tasks. Implementations must be idempotent: a task may be handled twice (after a
/// worker died mid-task, or a lease was lost) and the second time must do no harm.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, task: &Envelope) -> impl Future<Output = Outcome> + Send;
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub concurrency: usize,
    /// This worker's name in the consumer group; unique per process.
    pub consumer: String,
    /// On shutdown, how long tasks in flight may take to finish before they are released.
    pub drain: Duration,
    /// How long one read waits for new tasks (bounds how fast a shutdown is noticed).
    pub poll: Duration,
}

impl WorkerOptions {
    pub fn new(concurrency: usize) -> WorkerOptions {
        WorkerOptions {
            concurrency: concurrency.max(1),
            consumer: consumer_name(),
            drain: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }
}

/// A consumer name unique to this process: host, pid and a random suffix.
pub fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

/// What a worker did, reported when it stops.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WorkerReport {
    pub handled: u64,
    pub retried: u64,
    pub waited: u64,
    pub dead: u64,
    pub released: u64,
    pub lost_leases: u64,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    retried: AtomicU64,
    waited: AtomicU64,
    dead: AtomicU64,
    released: AtomicU64,
    lost: AtomicU64,
}

/// Logs a Redis outage once when it starts and once when it ends.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    failures: u32,
}

impl Outage {
    fn failed(&mut self, what: &str, e: &QueueError) -> Duration {
        if self.since.is_none() {
            tracing::warn!(error = %e, "Redis unreachable while {what}; retrying until it is back");
            self.since = Some(Instant::now());
        }
        self.failures = self.failures.saturating_add(1);
        let ms = (100u64 << self.failures.min(6)).min(5_000);
        Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))
    }

    fn ok(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                "Redis reachable again after {:.1}s",
                since.elapsed().as_secs_f64()
            );
        }
        self.failures = 0;
    }
}

/// Consumes the queue until `shutdown` turns true, then drains. `read_conn` must be a
/// connection of its own (blocking reads hold it).
pub async fn run<H: Handler>(
    queue: Queue,
    mut read_conn: Conn,
    handler: Arc<H>,
    opts: WorkerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> WorkerReport {
    tracing::info!(consumer = %opts.consumer, concurrency = opts.concurrency, "worker started");
    // Alive while it runs, whatever it is doing (`runnerctl_workers_alive`).
    let heartbeat = {
        let (queue, consumer) = (queue.clone(), opts.consumer.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = queue.heartbeat(&consumer).await {
                    tracing::debug!(error = %e, "could not say this worker is alive");
                }
                tokio::time::sleep(crate::queue::HEARTBEAT_EVERY).await;
            }
        })
    };
    let report = run_loop(queue, &mut read_conn, handler, opts, &mut shutdown).await;
    heartbeat.abort();
    report
}

async fn run_loop<H: Handler>(
    queue: Queue,
    read_conn: &mut Conn,
    handler: Arc<H>,
    opts: WorkerOptions,
    shutdown: &mut watch::Receiver<bool>,
) -> WorkerReport {
    let mut w = Worker::new(queue, handler, opts);
    while !*shutdown.borrow() {
        while w.tasks.try_join_next().is_some() {}
        let free = w.slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = w.tasks.join_next() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let batch = match w.next_batch(read_conn, free).await {
            Next::Go(batch) => batch,
            Next::Again => continue,
            Next::Wait(wait) => {
                sleep_or_shutdown(wait, shutdown).await;
                continue;
            }
        };
        if *shutdown.borrow() {
            // Stopping: tasks read just now go back to the queue for another worker.
            for d in &batch {
                w.release(d).await;
            }
            break;
        }
        w.dispatch(batch).await;
    }
    w.drain().await
}

/// What the loop does next.
enum Next {
    Go(Vec<Delivery>),
    /// Look again at once (the consumer group must be made again).
    Again,
    /// Redis is unreachable: wait this long.
    Wait(Duration),
}

/// The state of a running worker.
struct Worker<H> {
    queue: Queue,
    handler: Arc<H>,
    opts: WorkerOptions,
    counters: Arc<Counters>,
    slots: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashMap<String, Delivery>>>,
    tasks: JoinSet<()>,
    outage: Outage,
    group_ready: bool,
    maintenance_every: Duration,
    last_maintenance: Option<Instant>,
    /// Consumers idle this long with no task are of stopped workers (a live one reads every
    /// `poll`): they are removed.
    prune_every: Duration,
    last_prune: Option<Instant>,
}

impl<H: Handler> Worker<H> {
    fn new(queue: Queue, handler: Arc<H>, opts: WorkerOptions) -> Worker<H> {
        let maintenance_every = (queue.options.visibility_timeout / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let prune_every = (queue.options.visibility_timeout * 10).max(Duration::from_secs(60));
        Worker {
            slots: Arc::new(Semaphore::new(opts.concurrency)),
            queue,
            handler,
            opts,
            counters: Arc::default(),
            in_flight: Arc::default(),
            tasks: JoinSet::new(),
            outage: Outage::default(),
            group_ready: false,
            maintenance_every,
            last_maintenance: None,
            prune_every,
            last_prune: None,
        }
    }

    /// The next tasks to handle: taken over from stopped workers (every `maintenance_every`),
    /// else new ones.
    async fn next_batch(&mut self, read_conn: &mut Conn, free: usize) -> Next {
        if !self.group_ready {
            match self.queue.ensure_group().await {
                Ok(()) => {
                    self.group_ready = true;
                    self.outage.ok();
                }
                Err(e) => return Next::Wait(self.outage.failed("creating the consumer group", &e)),
            }
        }
        let mut batch = Vec::new();
        if self
            .last_maintenance
            .is_none_or(|t| t.elapsed() >= self.maintenance_every)
        {
            self.last_maintenance = Some(Instant::now());
            match self.maintain(free).await {
                Ok(claimed) => batch = claimed,
                Err(e) if is_nogroup(&e) => {
                    self.group_ready = false;
                    return Next::Again;
                }
                Err(e) => return Next::Wait(self.outage.failed("claiming stale tasks", &e)),
            }
        }
        if !batch.is_empty() {
            return Next::Go(batch);
        }
        match self
            .queue
            .read_new(read_conn, &self.opts.consumer, free, self.opts.poll)
            .await
        {
            Ok(list) => {
                self.outage.ok();
                Next::Go(list)
            }
            Err(e) if is_nogroup(&e) => {
                // Redis lost the stream (restarted without persistence): recreate it.
                tracing::warn!("the task stream or its consumer group vanished; recreating it");
                self.group_ready = false;
                Next::Again
            }
            Err(e) => Next::Wait(self.outage.failed("reading tasks", &e)),
        }
    }

    /// Promotes due retries, takes over tasks of stopped workers (dead-lettering those handed
    /// out too often) and now and then removes the consumers of stopped workers.
    async fn maintain(&mut self, free: usize) -> Result<Vec<Delivery>, QueueError> {
        let promoted = self.queue.promote_due().await?;
        if promoted > 0 {
            tracing::debug!(promoted, "delayed tasks are due");
        }
        let mut batch = Vec::new();
        for d in self.queue.claim_stale(&self.opts.consumer, free).await? {
            if d.deliveries > u64::from(self.queue.options.max_attempts) {
                // Taken over this often without finishing: it kills or stalls every worker
                // that takes it.
                let why = format!(
                    "delivered {} times without finishing (does it stop its worker?)",
                    d.deliveries
                );
                if let Ok(true) = self.queue.dead_letter(&self.opts.consumer, &d, &why).await {
                    tracing::error!(entry = %d.entry, error = %why, "task moved to the dead-letter stream");
                    self.counters.dead.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            tracing::info!(entry = %d.entry, "took over a task a stopped worker held");
            batch.push(d);
        }
        if self
            .last_prune
            .is_none_or(|t| t.elapsed() >= self.prune_every)
        {
            self.last_prune = Some(Instant::now());
            match self
                .queue
                .prune_consumers(&self.opts.consumer, self.prune_every)
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "removed consumers of stopped workers")
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not prune consumers"),
            }
        }
        Ok(batch)
    }

    /// Hands a task back to the queue for another worker.
    async fn release(&self, d: &Delivery) -> bool {
        let released = matches!(self.queue.release(&self.opts.consumer, d).await, Ok(true));
        if released {
            self.counters.released.fetch_add(1, Ordering::Relaxed);
        }
        released
    }

    /// Starts a handler for each task, one slot each.
    async fn dispatch(&mut self, batch: Vec<Delivery>) {
        for d in batch {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.entry.clone(), d.clone());
            let queue = self.queue.clone();
            let handler = self.handler.clone();
            let consumer = self.opts.consumer.clone();
            let counters = self.counters.clone();
            let in_flight = self.in_flight.clone();
            self.tasks.spawn(async move {
                let _permit = permit;
                let outcome = handle_with_lease(&queue, &*handler, &consumer, &d).await;
                settle(&queue, &consumer, &d, outcome, &counters).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&d.entry);
            });
        }
    }

    /// Lets tasks in flight finish for a while, then hands the rest back to the queue.
    async fn drain(mut self) -> WorkerReport {
        let pending = self.tasks.len();
        if pending > 0 {
            tracing::info!(
                pending,
                "stopping: waiting up to {:?} for tasks in flight",
                self.opts.drain
            );
        }
        let tasks = &mut self.tasks;
        let drained = tokio::time::timeout(self.opts.drain, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
            let left: Vec<Delivery> = self
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
                .map(|(_, d)| d)
                .collect();
            for d in left {
                // When it cannot be released, it stays pending and another worker claims it
                // after the visibility timeout. Nothing is lost either way.
                if self.release(&d).await {
                    tracing::info!(entry = %d.entry, "released an unfinished task to the queue");
                }
            }
        }
        let c = &self.counters;
        let report = WorkerReport {
            handled: c.handled.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            dead: c.dead.load(Ordering::Relaxed),
            released: c.released.load(Ordering::Relaxed),
            lost_leases: c.lost.load(Ordering::Relaxed),
        };
        tracing::info!(
            handled = report.handled,
            retried = report.retried,
            waited = report.waited,
            dead = report.dead,
            released = report.released,
            lost_leases = report.lost_leases,
            "worker stopped"
        );
        report
    }
}

fn is_nogroup(e: &QueueError) -> bool {
    match e {
        QueueError::Redis(r) | QueueError::Unavailable(r) => {
            r.code() == Some("NOGROUP") || r.to_string().contains("NOGROUP")
        }
        _ => false,
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

/// Runs the handler while renewing the task's lease, so that no other worker takes it over.
/// When the lease is lost (another worker holds the task, or renewals failed for longer than
/// the visibility timeout) the handler is stopped: this worker no longer acts on the task. When
/// it runs past the handler deadline it is stopped and the task retried.
async fn handle_with_lease<H: Handler>(
    queue: &Queue,
    handler: &H,
    consumer: &str,
    d: &Delivery,
) -> Outcome {
    let env = match &d.envelope {
        Ok(env) => env,
        Err(reason) => return Outcome::Fail(reason.clone()),
    };
    let visibility = queue.options.visibility_timeout;
    let every = (visibility / 3).max(Duration::from_millis(100));
    let keep_lease = async {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match queue.touch(consumer, &d.entry).await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(entry = %d.entry, "lost the lease of a task to another worker; stopping work on it");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, entry = %d.entry, "could not renew a task lease");
                    if renewed.elapsed() >= visibility {
                        tracing::warn!(entry = %d.entry, "could not renew a task lease for the visibility timeout; stopping work on it");
                        return;
                    }
                }
            }
        }
    };
    let span =
        tracing::info_span!("task", id = %env.id, kind = env.task.kind(), attempt = env.attempt);
    let deadline = queue.options.handler_deadline;
    tokio::select! {
        outcome = tokio::time::timeout(deadline, handler.handle(env).instrument(span)) => match outcome {
            Ok(o) => o,
            Err(_) => Outcome::Retry(format!(
                "stopped after the handler deadline of {}s",
                deadline.as_secs()
            )),
        },
        _ = keep_lease => Outcome::Lost,
    }
}

/// Records the outcome in Redis, retrying while Redis is away (bounded: after that, the task
/// stays pending and is handled again elsewhere, which handlers tolerate).
/// Tasks handled by this process, by kind and outcome (`done`, `retry`, `wait`, `failed`,
/// `lost`), for `/metrics`.
pub static TASKS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_tasks_total",
    "Tasks this worker handled, by kind and outcome.",
    &["kind", "outcome"],
);

async fn settle(queue: &Queue, consumer: &str, d: &Delivery, outcome: Outcome, c: &Counters) {
    let kind = d
        .envelope
        .as_ref()
        .map(|e| e.task.kind())
        .unwrap_or("unreadable");
    let label = match &outcome {
        Outcome::Done => "done",
        Outcome::Retry(_) => "retry",
        Outcome::Wait { .. } => "wait",
        Outcome::Fail(_) => "failed",
        Outcome::Lost => "lost",
    };
    TASKS.inc(&[kind, label]);
    for attempt in 0..30u32 {
        let result = match &outcome {
            Outcome::Lost => {
                c.lost.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Outcome::Done => queue.ack(consumer, d).await.map(|held| {
                if held {
                    c.handled.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.lost.fetch_add(1, Ordering::Relaxed);
                }
            }),
            Outcome::Retry(err) => queue
                .retry(consumer, d, err, None, true)
                .await
                .map(|r| note_retry(r, kind, err, c, false)),
            Outcome::Wait { delay, reason } => queue
                .retry(consumer, d, reason, Some(*delay), false)
                .await
                .map(|r| note_retry(r, kind, reason, c, true)),
            Outcome::Fail(err) => queue.dead_letter(consumer, d, err).await.map(|held| {
                if held {
                    tracing::error!(entry = %d.entry, kind, error = %err, "task failed for good; moved to the dead-letter stream");
                    c.dead.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.lost.fetch_add(1, Ordering::Relaxed);
                }
            }),
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, attempt, "could not record a task's outcome yet");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(10) + 1)))
                    .await;
            }
        }
    }
    tracing::warn!(entry = %d.entry, "gave up recording a task's outcome; another worker will take it over");
}

fn note_retry(r: Retried, kind: &str, err: &str, c: &Counters, waiting: bool) {
    match r {
        Retried::At(due) => {
            if waiting {
                c.waited.fetch_add(1, Ordering::Relaxed);
                let due = crate::model::rfc3339(due / 1000);
                tracing::debug!(kind, reason = %err, %due, "task waits");
            } else {
                c.retried.fetch_add(1, Ordering::Relaxed);
                let due = crate::model::rfc3339(due / 1000);
                tracing::warn!(kind, error = %err, %due, "task failed; it will be retried");
            }
        }
        Retried::Dead => {
            c.dead.fetch_add(1, Ordering::Relaxed);
            tracing::error!(kind, error = %err, "task failed its last attempt; moved to the dead-letter stream");
        }
        Retried::LostLease => {
            c.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}
