//! The task queue, in Redis, shared by every `serve` and `worker` of a manager.
//!
//! - `tasks`: a stream read through the consumer group `workers`. A worker reads a task, handles
//!   it, and only then acknowledges and deletes it. A task a dead worker held stays pending and is
//!   claimed by another worker once idle for the visibility timeout (`XAUTOCLAIM`); a live worker
//!   keeps its lease by touching the task while it works.
//! - `delayed`: a sorted set of tasks to retry, scored by due time (ms). Workers move due tasks
//!   back onto the stream, atomically, so each moves once.
//! - `dead`: a stream of tasks that failed every attempt, with their last error; an operator
//!   requeues them with `runnerctl tasks requeue`.
//! - `dedup:{key}`: idempotency keys (a webhook delivery id, a job id and action). A task with a
//!   key already seen within the retention is not enqueued again.
//!
//! Acknowledging, retrying and dead-lettering check that the task is still held by the calling
//! worker, so a worker that lost its lease never completes a task a second time.

use crate::conn::Conn;
use crate::model::unix_now_ms;
use crate::store::{is_connection_error, StoreError};
use redis::{AsyncCommands, Script, Value};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::time::Duration;

/// The version of the task format written by this build.
pub const TASK_VERSION: u32 = 1;

const GROUP: &str = "workers";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Redis is unreachable: {0}")]
    Unavailable(#[source] redis::RedisError),
    #[error("Redis error: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("no dead task with id `{0}`")]
    NoSuchTask(String),
    #[error("cannot encode task: {0}")]
    Encode(String),
}

impl QueueError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        if is_connection_error(&e) {
            QueueError::Unavailable(e)
        } else {
            QueueError::Redis(e)
        }
    }
}

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) | StoreError::NotConnected { source: e, .. } => {
                QueueError::Unavailable(e)
            }
            StoreError::Redis(e) | StoreError::Refused { source: e, .. } => QueueError::Redis(e),
            StoreError::Corrupt { key, reason } => QueueError::Encode(format!("{key}: {reason}")),
        }
    }
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// The queue's tasks by where they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// On the stream, not held by a worker.
    pub waiting: u64,
    /// Waiting for a retry.
    pub delayed: u64,
    /// Held by a worker.
    pub in_flight: u64,
    pub dead: u64,
}

/// What a task asks a worker to do. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Task {
    /// A `workflow_job` was queued (or is waiting): make a runner for it.
    JobQueued {
        job_id: u64,
        run_id: u64,
        /// `owner/name` of the repository the job runs for.
        repository: String,
        labels: Vec<String>,
        /// The group the webhook server matched, by the README's rule.
        group: String,
        /// When the forge queued the job (its `created_at`, unix seconds by its clock), for the
        /// job's timeline; absent in tasks of older versions and when the payload lacks it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued_at: Option<u64>,
    },
    /// A runner took a job.
    JobInProgress {
        job_id: u64,
        runner_name: String,
        /// The forge's id of the runner that took the job: checked against ours of that name
        /// (absent in tasks of older versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runner_id: Option<u64>,
        runner_group_id: Option<u64>,
        /// How long the job waited for a runner, by the forge's clock (for the job-wait
        /// histogram); absent in tasks of older versions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited_secs: Option<u64>,
    },
    /// A job finished: its runner goes.
    JobCompleted {
        job_id: u64,
        runner_name: Option<String>,
        /// The forge's ids of the runner and its group, checked against ours before the runner
        /// is deleted (absent in tasks of older versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runner_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runner_group_id: Option<u64>,
        conclusion: Option<String>,
    },
    /// Make a runner in a group (health check, `runners create`).
    CreateRunner { group: String },
    /// Delete a runner.
    DeleteRunner { name: String, force: bool },
    /// One health-check pass over a group.
    GroupHealthCheck { group: String },
    /// A scale-set message runnerctl could not read: written straight to the dead letters
    /// with its id (the session goes on). Requeued, it does nothing.
    ScaleSetMessage {
        scale_set: String,
        message_id: u64,
        body: String,
    },
    /// Does nothing but wait `sleep_ms` and count itself under `mark`; fails its first
    /// `fail_times` attempts. For testing and benchmarking the queue.
    Noop {
        mark: String,
        #[serde(default)]
        sleep_ms: u64,
        #[serde(default)]
        fail_times: u32,
    },
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::JobQueued { .. } => "job_queued",
            Task::JobInProgress { .. } => "job_in_progress",
            Task::JobCompleted { .. } => "job_completed",
            Task::CreateRunner { .. } => "create_runner",
            Task::DeleteRunner { .. } => "delete_runner",
            Task::GroupHealthCheck { .. } => "group_health_check",
            Task::ScaleSetMessage { .. } => "scale_set_message",
            Task::Noop { .. } => "noop",
        }
    }
}

/// A task with what the queue needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version; a worker dead-letters a version it does not know.
    pub v: u32,
    /// Unique id of the task (stays the same across retries).
    pub id: String,
    /// Idempotency key it was enqueued under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Attempts that failed so far.
    #[serde(default)]
    pub attempt: u32,
    /// Unix milliseconds when first enqueued.
    pub enqueued_at: u64,
    /// The last error, when retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub task: Task,
}

impl Envelope {
    pub fn new(task: Task, key: Option<String>) -> Envelope {
        Envelope {
            v: TASK_VERSION,
            id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            key,
            attempt: 0,
            enqueued_at: unix_now_ms(),
            last_error: None,
            task,
        }
    }
}

/// Queue tuning, from the `queue:` section of the configuration.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// A task held this long by a worker that does not touch it is given to another worker.
    pub visibility_timeout: Duration,
    /// Attempts before a task goes to the dead-letter stream.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt, with jitter, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long an idempotency key is remembered.
    pub dedup_ttl: Duration,
    /// How long one handling of a task may take; then it is stopped and retried.
    pub handler_deadline: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            visibility_timeout: Duration::from_secs(60),
            max_attempts: 10,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            dedup_ttl: Duration::from_secs(3 * 86400),
            handler_deadline: Duration::from_secs(900),
        }
    }
}

impl QueueOptions {
    /// The delay before retry number `attempt` (1-based): exponential, capped, with full jitter
    /// over its upper half so that retries of many tasks spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.retry_base.as_millis() as u64;
        let cap = self.retry_max.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        let d = exp.min(cap).max(1);
        Duration::from_millis(d / 2 + fastrand::u64(0..=d / 2))
    }
}

/// A task handed to a worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The stream entry id.
    pub entry: String,
    /// The task, or why it could not be read.
    pub envelope: std::result::Result<Envelope, String>,
    /// The stored text, kept to dead-letter unreadable entries as they were.
    pub raw: String,
    /// How many times the stream handed this entry to a worker (known for claimed entries;
    /// 1 for new ones).
    pub deliveries: u64,
}

/// The result of an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub entry: String,
    /// True when the idempotency key was seen before: nothing was added.
    pub duplicate: bool,
}

/// What happened to a failed task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Scheduled again at this unix time in ms.
    At(u64),
    /// Moved to the dead-letter stream.
    Dead,
    /// This worker no longer held the task; another has it.
    LostLease,
}

/// A task as `runnerctl tasks list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// `waiting`, `in-flight`, `delayed` or `dead`.
    pub state: &'static str,
    /// Stream entry id (its first part is when it was added, in unix ms); `None` for a delayed
    /// task, which waits outside the stream.
    pub entry: Option<String>,
    /// The task's id, kept across retries; `tasks requeue` takes it (or the entry).
    pub id: String,
    pub kind: String,
    pub attempt: u32,
    /// In-flight: the worker holding it; delayed: when due (unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<u64>,
    /// `due_at` as RFC 3339 (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub task: serde_json::Value,
}

/// Enqueue: KEYS stream, dedup key, second dedup key (placeholders when unused). ARGV payload,
/// ttl secs, how many of the two keys are used (0, 1 or 2). Seen under either key: nothing added.
static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/queue_enqueue.lua")));

/// Finish (ack, retry or dead-letter) a task if this consumer still holds it.
/// KEYS stream, delayed zset, dead stream. ARGV group, consumer, entry, mode ('ack', 'delay',
/// 'dead', 'release'), payload, delay ms, error. A delay counts from Redis's clock.
/// Returns {1, due ms} when done, {0, 0} when the consumer no longer held the task.
static FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/queue_finish.lua")));

/// Move due delayed tasks onto the stream, by Redis's clock. KEYS delayed zset, stream. ARGV
/// limit.
static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/queue_promote.lua")));

/// Renews a lease only while the caller holds the task: KEYS stream. ARGV group, consumer,
/// entry. Returns 1 when renewed, 0 when another worker holds it or it is finished.
static TOUCH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/queue_touch.lua")));

/// Removes consumers that hold no task and have been idle longer than ARGV[2] ms, never
/// ARGV[3] (the caller). KEYS stream. ARGV group, idle ms, caller. Atomic, so a consumer that
/// takes a task meanwhile is never removed with it. Returns how many were removed.
static PRUNE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/queue_prune.lua")));

/// A worker says it is alive: KEYS workers zset. ARGV consumer, forget-after secs. Scores are
/// Redis seconds; members not heard of for ARGV[2] seconds are removed.
static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/queue_heartbeat.lua")));

/// How many workers were heard of within ARGV[1] seconds (Redis's clock). KEYS workers zset.
static WORKERS_ALIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/queue_workers_alive.lua")));

/// Requeue one dead task. KEYS dead stream, stream. ARGV entry, payload.
static REQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/queue_requeue.lua")));

/// How often a running worker says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// A worker not heard of for this long is not counted alive.
pub const WORKER_ALIVE_WITHIN: Duration = Duration::from_secs(60);

/// The task queue of one manager.
#[derive(Clone)]
pub struct Queue {
    conn: Conn,
    prefix: String,
    pub options: QueueOptions,
}

impl Queue {
    /// The store of the same manager, over this queue's connection.
    /// How many tasks wait on the stream, wait for a retry, are held by workers, and are dead.
    pub async fn depth(&self) -> Result<QueueDepth> {
        let mut c = self.conn.clone();
        let (len, delayed, dead): (u64, u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(self.stream_key())
            .cmd("ZCARD")
            .arg(self.delayed_key())
            .cmd("XLEN")
            .arg(self.dead_key())
            .query_async(&mut c)
            .await?;
        // XPENDING's summary: the count first. No group yet: nothing held.
        let pending: redis::RedisResult<Vec<redis::Value>> = redis::cmd("XPENDING")
            .arg(self.stream_key())
            .arg(GROUP)
            .query_async(&mut c)
            .await;
        let in_flight = match pending {
            Ok(v) => match v.first() {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 0,
            },
            Err(_) => 0,
        };
        Ok(QueueDepth {
            waiting: len.saturating_sub(in_flight),
            delayed,
            in_flight,
            dead,
        })
    }

    pub fn store(&self, manager: &str) -> crate::store::RedisStore {
        crate::store::RedisStore::new(self.conn.clone(), manager)
    }

    pub fn new(conn: Conn, manager: &str, options: QueueOptions) -> Queue {
        Queue {
            conn,
            prefix: crate::store::prefix(manager),
            options,
        }
    }

    pub fn stream_key(&self) -> String {
        format!("{}tasks", self.prefix)
    }
    fn delayed_key(&self) -> String {
        format!("{}delayed", self.prefix)
    }
    fn dead_key(&self) -> String {
        format!("{}dead", self.prefix)
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }

    /// Creates the stream and its consumer group when they do not exist.
    pub async fn ensure_group(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream_key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Adds a task. With an idempotency key seen before, adds nothing and says so.
    /// Waits until `replicas` replicas have every write made so far on this connection, for at
    /// most `timeout` (Redis `WAIT`); how many have.
    pub async fn wait_replicas(&self, replicas: u32, timeout: Duration) -> Result<u32> {
        let mut c = self.conn.clone();
        let n: u32 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await?;
        Ok(n)
    }

    /// A small write on this connection (a key of the queue's slot, expiring in a minute), so
    /// that a `WAIT` after it covers every write the master had before it.
    pub async fn replication_probe(&self) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}replication-probe", self.prefix))
            .arg(1)
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    pub async fn enqueue(&self, task: Task, key: Option<String>) -> Result<Enqueued> {
        self.enqueue_envelope(&Envelope::new(task, key)).await
    }

    pub async fn enqueue_envelope(&self, env: &Envelope) -> Result<Enqueued> {
        self.enqueue_envelope_also(env, None).await
    }

    /// Enqueues under the envelope's key and also under `also`: a task seen under either is
    /// not added again (a webhook replayed under a new delivery id is still the same job event).
    pub async fn enqueue_envelope_also(
        &self,
        env: &Envelope,
        also: Option<&str>,
    ) -> Result<Enqueued> {
        let payload = serde_json::to_string(env).map_err(|e| QueueError::Encode(e.to_string()))?;
        let keys: Vec<String> = env
            .key
            .iter()
            .map(String::as_str)
            .chain(also)
            .map(|k| format!("{}dedup:{k}", self.prefix))
            .collect();
        let mut inv = ENQUEUE.prepare_invoke();
        inv.key(self.stream_key());
        for i in 0..2 {
            inv.key(
                keys.get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("{}dedup:", self.prefix)),
            );
        }
        inv.arg(payload)
            .arg(self.options.dedup_ttl.as_secs().max(1))
            .arg(keys.len());
        let mut c = self.conn.clone();
        let (added, entry): (i64, String) = inv.invoke_async(&mut c).await?;
        Ok(Enqueued {
            entry,
            duplicate: added == 0,
        })
    }

    /// Reads up to `count` new tasks for `consumer`, waiting up to `block` for one. Use a
    /// connection of its own: a blocking read holds the connection while it waits.
    pub async fn read_new(
        &self,
        conn: &mut Conn,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let opts = redis::streams::StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count)
            .block(block.as_millis() as usize);
        let reply: Option<redis::streams::StreamReadReply> = conn
            .xread_options(&[self.stream_key()], &[">"], &opts)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(delivery)
            .collect())
    }

    /// Takes over up to `count` tasks that other workers have held idle for longer than the
    /// visibility timeout.
    pub async fn claim_stale(&self, consumer: &str, count: usize) -> Result<Vec<Delivery>> {
        let mut c = self.conn.clone();
        let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.stream_key())
            .arg(GROUP)
            .arg(consumer)
            .arg(self.options.visibility_timeout.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        let mut out: Vec<Delivery> = reply.claimed.into_iter().map(delivery).collect();
        if !out.is_empty() {
            // How often each was handed out: a task that kills every worker that takes it must
            // not be taken forever.
            let mut pipe = redis::pipe();
            for d in &out {
                pipe.cmd("XPENDING")
                    .arg(self.stream_key())
                    .arg(GROUP)
                    .arg(&d.entry)
                    .arg(&d.entry)
                    .arg(1);
            }
            let rows: Vec<Value> = pipe.query_async(&mut c).await?;
            for (d, row) in out.iter_mut().zip(rows) {
                if let Some(n) = parse_pending_full(&row).first().map(|p| p.3) {
                    d.deliveries = n;
                }
            }
        }
        Ok(out)
    }

    /// Renews `consumer`'s lease on a task it is working on. False when it no longer holds the
    /// task (another worker took it over, or it was finished): the caller must stop acting on it.
    pub async fn touch(&self, consumer: &str, entry: &str) -> Result<bool> {
        let mut inv = TOUCH.prepare_invoke();
        inv.key(self.stream_key())
            .arg(GROUP)
            .arg(consumer)
            .arg(entry);
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await?;
        Ok(n == 1)
    }

    fn workers_key(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// Says that the worker `consumer` is alive (every [`HEARTBEAT_EVERY`], whatever it is
    /// doing: a worker whose every slot is busy reads nothing from the stream).
    pub async fn heartbeat(&self, consumer: &str) -> Result<()> {
        let mut inv = HEARTBEAT.prepare_invoke();
        inv.key(self.workers_key()).arg(consumer).arg(3_600);
        let mut c = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut c).await?;
        Ok(())
    }

    /// How many workers said they were alive within [`WORKER_ALIVE_WITHIN`].
    pub async fn workers_alive(&self) -> Result<u64> {
        let mut inv = WORKERS_ALIVE.prepare_invoke();
        inv.key(self.workers_key())
            .arg(WORKER_ALIVE_WITHIN.as_secs());
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// Removes consumers of stopped workers: those that hold no task and have been idle for
    /// `idle`. Returns how many.
    pub async fn prune_consumers(&self, consumer: &str, idle: Duration) -> Result<u64> {
        let mut inv = PRUNE.prepare_invoke();
        inv.key(self.stream_key())
            .arg(GROUP)
            .arg(idle.as_millis() as u64)
            .arg(consumer);
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }

    async fn finish(
        &self,
        consumer: &str,
        entry: &str,
        mode: &str,
        payload: &str,
        delay_ms: u64,
        error: &str,
    ) -> Result<Option<u64>> {
        let mut inv = FINISH.prepare_invoke();
        inv.key(self.stream_key())
            .key(self.delayed_key())
            .key(self.dead_key())
            .arg(GROUP)
            .arg(consumer)
            .arg(entry)
            .arg(mode)
            .arg(payload)
            .arg(delay_ms)
            .arg(error);
        let mut c = self.conn.clone();
        let (n, due): (i64, u64) = inv.invoke_async(&mut c).await?;
        Ok((n == 1).then_some(due))
    }

    /// Acknowledges a handled task. False when this consumer no longer held it.
    pub async fn ack(&self, consumer: &str, d: &Delivery) -> Result<bool> {
        Ok(self
            .finish(consumer, &d.entry, "ack", "", 0, "")
            .await?
            .is_some())
    }

    /// Puts a task this worker will not finish back on the stream at once (shutdown).
    pub async fn release(&self, consumer: &str, d: &Delivery) -> Result<bool> {
        Ok(self
            .finish(consumer, &d.entry, "release", &d.raw, 0, "")
            .await?
            .is_some())
    }

    /// Sends a task straight to the dead-letter stream.
    pub async fn dead_letter(&self, consumer: &str, d: &Delivery, error: &str) -> Result<bool> {
        Ok(self
            .finish(consumer, &d.entry, "dead", &d.raw, 0, error)
            .await?
            .is_some())
    }

    /// Writes a task straight into the dead-letter stream with `error` (what no worker can
    /// do anything with: a malformed scale-set message).
    pub async fn bury(&self, task: Task, error: &str) -> Result<()> {
        let env = Envelope::new(task, None);
        let payload = serde_json::to_string(&env).map_err(|e| QueueError::Encode(e.to_string()))?;
        let mut c = self.conn.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.dead_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("task")
            .arg(payload)
            .arg("error")
            .arg(error)
            .arg("entry")
            .arg("")
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Schedules a failed task again after its backoff, or dead-letters it after
    /// `max_attempts`. With `count_attempt` false (waiting for capacity) the attempt is not
    /// counted and `delay` is used as is.
    pub async fn retry(
        &self,
        consumer: &str,
        d: &Delivery,
        error: &str,
        delay: Option<Duration>,
        count_attempt: bool,
    ) -> Result<Retried> {
        let Ok(env) = &d.envelope else {
            return Ok(if self.dead_letter(consumer, d, error).await? {
                Retried::Dead
            } else {
                Retried::LostLease
            });
        };
        let mut next = env.clone();
        if count_attempt {
            next.attempt += 1;
        }
        next.last_error = Some(error.to_string());
        let payload =
            serde_json::to_string(&next).map_err(|e| QueueError::Encode(e.to_string()))?;
        if next.attempt >= self.options.max_attempts {
            return Ok(
                if self
                    .finish(consumer, &d.entry, "dead", &payload, 0, error)
                    .await?
                    .is_some()
                {
                    Retried::Dead
                } else {
                    Retried::LostLease
                },
            );
        }
        let wait = delay.unwrap_or_else(|| self.options.backoff(next.attempt));
        Ok(
            match self
                .finish(
                    consumer,
                    &d.entry,
                    "delay",
                    &payload,
                    wait.as_millis() as u64,
                    error,
                )
                .await?
            {
                Some(due) => Retried::At(due),
                None => Retried::LostLease,
            },
        )
    }

    /// Moves delayed tasks whose time has come back onto the stream. Returns how many.
    pub async fn promote_due(&self) -> Result<usize> {
        let mut inv = PROMOTE.prepare_invoke();
        inv.key(self.delayed_key()).key(self.stream_key()).arg(500);
        let mut c = self.conn.clone();
        let n: usize = inv.invoke_async(&mut c).await?;
        Ok(n)
    }

    /// Tasks waiting, in flight and delayed.
    pub async fn list(&self) -> Result<Vec<TaskView>> {
        let mut c = self.conn.clone();
        let mut out = Vec::new();
        let entries: redis::streams::StreamRangeReply =
            c.xrange_count(self.stream_key(), "-", "+", 10_000).await?;
        let pending: Value = redis::cmd("XPENDING")
            .arg(self.stream_key())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(10_000)
            .query_async(&mut c)
            .await
            .or_else(|e| {
                if e.code() == Some("NOGROUP") {
                    Ok(Value::Array(vec![]))
                } else {
                    Err(e)
                }
            })?;
        let held = parse_pending(&pending);
        for e in entries.ids {
            let d = delivery(e);
            let h = held.iter().find(|p| p.0 == d.entry);
            out.push(view(
                if h.is_some() { "in-flight" } else { "waiting" },
                &d,
                h.map(|p| p.1.clone()),
                None,
                h.map(|p| p.2),
                None,
            ));
        }
        let delayed: Vec<(String, f64)> = c.zrange_withscores(self.delayed_key(), 0, 9_999).await?;
        for (raw, score) in delayed {
            let d = Delivery {
                entry: String::new(),
                envelope: parse_envelope(&raw),
                raw,
                deliveries: 0,
            };
            out.push(view("delayed", &d, None, Some(score as u64), None, None));
        }
        Ok(out)
    }

    /// Tasks in the dead-letter stream, oldest first.
    pub async fn dead(&self) -> Result<Vec<TaskView>> {
        let mut c = self.conn.clone();
        let entries: redis::streams::StreamRangeReply =
            c.xrange_count(self.dead_key(), "-", "+", 10_000).await?;
        Ok(entries
            .ids
            .into_iter()
            .map(|e| {
                let error: Option<String> = e.get("error");
                let d = delivery(e);
                view("dead", &d, None, None, None, error)
            })
            .collect())
    }

    /// Puts dead tasks back on the queue with their attempts reset: the one with task id (or
    /// dead-letter entry) `id`, or all of them. Returns how many.
    pub async fn requeue(&self, id: Option<&str>) -> Result<usize> {
        let dead = self.dead().await?;
        let chosen: Vec<&TaskView> = match id {
            Some(id) => {
                let found: Vec<&TaskView> = dead
                    .iter()
                    .filter(|t| t.id == id || t.entry.as_deref() == Some(id))
                    .collect();
                if found.is_empty() {
                    return Err(QueueError::NoSuchTask(id.to_string()));
                }
                found
            }
            None => dead.iter().collect(),
        };
        let mut c = self.conn.clone();
        let mut n = 0;
        for t in chosen {
            let Some(entry) = &t.entry else { continue };
            let raw: Vec<redis::streams::StreamId> = c
                .xrange::<_, _, _, redis::streams::StreamRangeReply>(self.dead_key(), entry, entry)
                .await?
                .ids;
            let Some(raw) = raw.into_iter().next() else {
                continue; // requeued meanwhile by someone else
            };
            let text: String = raw.get("task").unwrap_or_default();
            let payload = match parse_envelope(&text) {
                Ok(mut env) => {
                    env.attempt = 0;
                    env.last_error = None;
                    serde_json::to_string(&env).map_err(|e| QueueError::Encode(e.to_string()))?
                }
                // An unreadable task goes back as it was: a newer worker may read it.
                Err(_) => text,
            };
            let mut inv = REQUEUE.prepare_invoke();
            inv.key(self.dead_key())
                .key(self.stream_key())
                .arg(entry)
                .arg(payload);
            let done: i64 = inv.invoke_async(&mut c).await?;
            n += done as usize;
        }
        Ok(n)
    }
}

fn parse_envelope(raw: &str) -> std::result::Result<Envelope, String> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    match serde_json::from_str::<Version>(raw) {
        Ok(Version { v }) if v > TASK_VERSION => {
            return Err(format!(
                "task format version {v} is newer than this worker's ({TASK_VERSION})"
            ))
        }
        Err(e) => return Err(format!("unreadable task: {e}")),
        Ok(_) => {}
    }
    serde_json::from_str(raw).map_err(|e| format!("unreadable task: {e}"))
}

fn delivery(e: redis::streams::StreamId) -> Delivery {
    let raw: String = e.get("task").unwrap_or_default();
    Delivery {
        entry: e.id,
        envelope: parse_envelope(&raw),
        raw,
        deliveries: 1,
    }
}

fn view(
    state: &'static str,
    d: &Delivery,
    consumer: Option<String>,
    due_at: Option<u64>,
    idle_ms: Option<u64>,
    error: Option<String>,
) -> TaskView {
    let due = due_at.map(|ms| crate::model::rfc3339(ms / 1000));
    match &d.envelope {
        Ok(env) => TaskView {
            state,
            entry: (!d.entry.is_empty()).then(|| d.entry.clone()),
            id: env.id.clone(),
            kind: env.task.kind().to_string(),
            attempt: env.attempt,
            consumer,
            due_at,
            due,
            idle_ms,
            error: error.or_else(|| env.last_error.clone()),
            task: serde_json::to_value(&env.task).unwrap_or_default(),
        },
        Err(reason) => TaskView {
            state,
            entry: (!d.entry.is_empty()).then(|| d.entry.clone()),
            // Unreadable: its entry is the only name it has.
            id: d.entry.clone(),
            kind: "unreadable".into(),
            attempt: 0,
            consumer,
            due_at,
            due,
            idle_ms,
            error: Some(error.unwrap_or_else(|| reason.clone())),
            task: serde_json::Value::Null,
        },
    }
}

/// (entry, consumer, idle ms, deliveries) of an `XPENDING … start end N` reply.
fn parse_pending_full(v: &Value) -> Vec<(String, String, u64, u64)> {
    let Value::Array(rows) = v else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| {
            let Value::Array(f) = row else { return None };
            let s = |i: usize| -> Option<String> { redis::from_redis_value(f.get(i)?).ok() };
            let n = |i: usize| -> Option<u64> { redis::from_redis_value(f.get(i)?).ok() };
            Some((s(0)?, s(1)?, n(2)?, n(3)?))
        })
        .collect()
}

/// (entry, consumer, idle ms) of an `XPENDING … - + N` reply.
fn parse_pending(v: &Value) -> Vec<(String, String, u64)> {
    parse_pending_full(v)
        .into_iter()
        .map(|(entry, consumer, idle, _)| (entry, consumer, idle))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = QueueOptions {
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            ..QueueOptions::default()
        };
        for attempt in 1..40 {
            let d = o.backoff(attempt);
            let ceiling = (2000u64 << (attempt - 1).min(32)).min(60_000);
            assert!(d.as_millis() as u64 <= ceiling, "attempt {attempt}: {d:?}");
            assert!(
                d.as_millis() as u64 >= ceiling / 2,
                "attempt {attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn envelopes_round_trip_and_refuse_newer_versions() {
        let env = Envelope::new(
            Task::JobCompleted {
                job_id: 7,
                runner_name: Some("r".into()),
                runner_id: Some(3),
                runner_group_id: None,
                conclusion: None,
            },
            Some("k".into()),
        );
        let text = serde_json::to_string(&env).unwrap();
        assert!(text.contains("\"type\":\"job_completed\""));
        assert_eq!(parse_envelope(&text).unwrap(), env);
        // A task of an older version, without the runner's ids, still reads.
        let old = r#"{"v":1,"id":"x","enqueued_at":1,"task":{"type":"job_completed","job_id":7,"runner_name":"r","conclusion":null}}"#;
        assert!(parse_envelope(old).is_ok(), "{old}");
        let newer = text.replace("\"v\":1", "\"v\":2");
        assert!(parse_envelope(&newer).unwrap_err().contains("newer"));
        assert!(parse_envelope("{not json").is_err());
        assert!(parse_envelope("{\"v\":1,\"task\":{\"type\":\"bogus\"}}").is_err());
    }
}
