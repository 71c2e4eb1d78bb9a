//! The runner store port: what the domain keeps about runners, slots, waiting jobs, locks and
//! markers, whatever keeps it. Two implementations: `store::RedisStore` (production, atomic
//! with Lua scripts, every process of a deployment sharing it) and `memory::MemoryStore` (one
//! process, on a clock it is given: simulations and the domain's tests). One contract suite
//! (`tests/store_contract.rs`) holds both to the same behaviour; every property the life-cycle
//! tests rely on is in it.

use crate::model::{Runner, RunnerStatus};
use std::time::Duration;

/// Entries of a runner's history kept.
pub const HISTORY_LEN: u32 = 50;

/// The steps of a job's timeline, in order: its key in the timeline and how it is shown.
/// `queued` is the forge's `created_at` (its clock, seconds); the rest milliseconds:
/// `delivered` when `serve` enqueued the job's task (its host's clock), `decided` when a worker
/// chose its runner (reserved a slot, or took a warm instance), `registered` when the runner
/// was registered on the forge, `instance` when its instance was made or started (Redis's
/// clock), `credential` when the instance fetched its credential from the broker (`serve`'s
/// host), `in_progress` and `completed` when those webhooks reached `serve`.
pub const TIMELINE: &[(&str, &str)] = &[
    ("queued", "queued"),
    ("delivered", "delivered"),
    ("decided", "runner chosen"),
    ("registered", "runner registered"),
    ("instance", "instance started"),
    ("credential", "credential fetched"),
    ("in_progress", "in progress"),
    ("completed", "completed"),
];

/// The phases between the timeline's steps, for `runnerctl_job_phase_seconds`: a phase's name,
/// the step it starts at and the one it ends at.
pub const PHASES: &[(&str, &str, &str)] = &[
    ("delivery", "queued", "delivered"),
    ("decision", "delivered", "decided"),
    ("registration", "decided", "registered"),
    ("instance_start", "registered", "instance"),
    ("runner_start", "instance", "in_progress"),
];

/// How long a job's timeline is kept after its last step.
pub const TIMELINE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The key of job `job`'s timeline under a manager's key prefix (a hash: step → unix ms, and
/// `runner`, `source`, `group`, `repository`, `ran_on`).
pub fn timeline_key(prefix: &str, job: u64) -> String {
    format!("{prefix}timeline:{job}")
}

/// The key of the steps noted under a runner's name (the broker's `credential`, which knows
/// the runner, not its job), read with the timeline of the job whose `runner` it is.
pub fn timeline_runner_key(prefix: &str, runner: &str) -> String {
    format!("{prefix}timeline-runner:{runner}")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis is unreachable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// A connection could not be made: names the server (its password hidden).
    #[error("Redis is unreachable at {url}: {source}")]
    NotConnected {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    /// Redis refused runnerctl in a way waiting will not cure (password, database, TLS).
    #[error("Redis at {url} refused the connection: {source}")]
    Refused {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis error: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("corrupt record `{key}` in Redis: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    /// Whether the configuration must change before this can work.
    pub fn is_refused(&self) -> bool {
        matches!(self, StoreError::Refused { .. })
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::NotConnected { .. }
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The result of asking for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The slot is held; `held` runners of the group exist now, this one included.
    Reserved { held: u32 },
    /// The group has `max_runners` runners already.
    Full { held: u32 },
    /// A runner of this name exists already (a retried reservation): nothing changed.
    Exists,
    /// Asked for demand only, and the group's free runners (reserved, creating, started or idle,
    /// with no job) already cover its waiting jobs: nothing changed.
    Covered { free: u32, waiting: u32 },
    /// Asked for demand, and a warm-pool instance of the group (`name`) was taken for it
    /// instead of a new slot: its record is `creating` now (no new record was made), and the
    /// lock asked for is on `name`.
    Warm { name: String },
}

/// Who asks for a slot: explicit requests take one whenever the group has room; demand takes
/// one only while the group's free runners are fewer than its waiting jobs (or `min_free`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Explicit,
    Demand { min_free: u32 },
}

/// What a reservation does in the same atomic step (one round trip).
#[derive(Debug, Clone, Copy, Default)]
pub struct Also<'a> {
    /// The history entry's detail: why the runner is made.
    pub detail: &'a str,
    /// The runner's lock (name and time to live), taken when it is free.
    pub lock: Option<(&'a str, Duration)>,
    /// A job queued for the group, noted as waiting (unless it started already) for this long,
    /// before the demand is weighed: a replayed delivery of a started job adds no demand.
    pub waiting: Option<(u64, Duration)>,
}

/// The result of a conditional status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Changed; the status it had before.
    Done(RunnerStatus),
    /// Not changed: the runner's status was not one of those expected.
    Refused(RunnerStatus),
    /// No such runner.
    Missing,
}

/// Attributes to change on a runner record. `Some(None)` clears an attribute.
#[derive(Debug, Clone, Default)]
pub struct RunnerPatch {
    pub instance_id: Option<Option<String>>,
    pub forge_id: Option<Option<u64>>,
    pub job_id: Option<Option<u64>>,
    pub requested_at: Option<Option<u64>>,
    pub started_at: Option<u64>,
    pub online_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub error: Option<Option<String>>,
    /// The backend it is made on (a group with several, `backends:`).
    pub backend: Option<String>,
}

impl RunnerPatch {
    /// The record's fields it sets (an empty value clears one), as the store keeps them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let num = |v: &Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        if let Some(v) = &self.instance_id {
            out.push(("instance_id", opt(v)));
        }
        if let Some(v) = &self.forge_id {
            out.push(("forge_id", num(v)));
        }
        if let Some(v) = &self.job_id {
            out.push(("job_id", num(v)));
        }
        if let Some(v) = &self.requested_at {
            out.push(("requested_at", num(v)));
        }
        if let Some(v) = self.started_at {
            out.push(("started_at", v.to_string()));
        }
        if let Some(v) = self.online_at {
            out.push(("online_at", v.to_string()));
        }
        if let Some(v) = self.ended_at {
            out.push(("ended_at", v.to_string()));
        }
        if let Some(v) = &self.error {
            out.push(("error", opt(v)));
        }
        if let Some(v) = &self.backend {
            out.push(("backend", v.clone()));
        }
        out
    }
}

/// One entry of a runner's history (`runners show`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Redis's clock, unix seconds.
    pub at: u64,
    /// `reserved`, a status it moved to, or `removed`.
    pub event: String,
    #[serde(default)]
    pub detail: String,
}

/// The data marker: a key written with a manager's first runner record (or by its first health
/// check). When it is missing while
/// instances or runners of the manager exist, Redis lost its data (a restart without persistence,
/// FLUSHALL, a failover to an empty replica) and deletions of what has no record are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Marker {
    /// Redis seconds when the marker was written.
    pub created_at: u64,
    /// Until then (Redis seconds), nothing without a record is deleted.
    pub hold_until: u64,
}

impl Marker {
    /// The marker written at `now` when it was missing: deletions of what has no record are
    /// held for `hold_if_missing` (none when zero).
    pub fn written_at(now: u64, hold_if_missing: Duration) -> Marker {
        Marker {
            created_at: now,
            hold_until: match hold_if_missing.as_secs() {
                0 => 0,
                h => now + h,
            },
        }
    }
}

/// What the domain keeps. Every method is one atomic step of the store.
#[async_trait::async_trait]
pub trait RunnerStore: Send + Sync {
    /// The deployment's clock, unix seconds: every age, due time and time to live is
    /// measured on it.
    async fn now(&self) -> Result<u64>;
    /// The same clock in milliseconds (sampled: no round trip each time).
    async fn now_ms(&self) -> Result<u64> {
        Ok(self.now().await? * 1000)
    }

    // Records.

    /// A runner's record.
    async fn get(&self, name: &str) -> Result<Option<Runner>>;
    /// Every runner of the manager, by name.
    async fn all_runners(&self) -> Result<Vec<Runner>>;
    /// A group's runners (those holding its slots), by name.
    async fn runners_of_group(&self, group: &str) -> Result<Vec<Runner>>;
    /// A runner's history, oldest first (kept after its record is gone).
    async fn history(&self, name: &str) -> Result<Vec<Event>>;

    /// Takes a slot of `runner.group` for `runner` when fewer than `max` runners hold one and,
    /// for demand, while the group's free runners (`model::counts_as_free`) do not cover its
    /// waiting jobs (or `min_free`); records it with a `reserved` history entry, with `also`
    /// in the same step. The lock's token when it was taken.
    async fn reserve_noting(
        &self,
        runner: &Runner,
        max: u32,
        want: Want,
        also: Also<'_>,
    ) -> Result<(Reservation, Option<String>)>;

    /// [`RunnerStore::reserve_noting`] with nothing else.
    async fn reserve(&self, runner: &Runner, max: u32, want: Want) -> Result<Reservation> {
        Ok(self
            .reserve_noting(runner, max, want, Also::default())
            .await?
            .0)
    }

    /// Changes a runner's status (when given) and attributes, only if its status is one of
    /// `expect` (any, when empty); a change of status is appended to its history. The record
    /// as the change left it.
    async fn update_reading(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        expect: &[RunnerStatus],
        patch: &RunnerPatch,
    ) -> Result<(Transition, Option<Runner>)>;

    /// [`RunnerStore::update_reading`] without the record.
    async fn update(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        expect: &[RunnerStatus],
        patch: &RunnerPatch,
    ) -> Result<Transition> {
        Ok(self.update_reading(name, status, expect, patch).await?.0)
    }

    /// Gives up the reservation `name` (reserved or creating, not registered, no instance)
    /// when the group's other free runners cover its waiting jobs and `min_free`.
    async fn abandon_if_covered(&self, group: &str, name: &str, min_free: u32) -> Result<bool>;

    /// Removes a runner's record and releases its slot (`removed` in its history); `group`, when
    /// the caller read it, saves a read. Whether it existed.
    async fn remove_of(&self, name: &str, group: Option<&str>) -> Result<bool>;

    /// [`RunnerStore::remove_of`] of a runner whose group is not known.
    async fn remove(&self, name: &str) -> Result<bool> {
        self.remove_of(name, None).await
    }

    // Jobs.

    /// Remembers (for a day) that a job started or ended, removes it from the waiting jobs of
    /// `groups`, and reads the record of `runner`.
    async fn mark_job_started(
        &self,
        groups: &[String],
        job_id: u64,
        runner: Option<&str>,
    ) -> Result<Option<Runner>>;
    /// Whether a job started (or ended) within the last day.
    async fn job_started(&self, job_id: u64) -> Result<bool>;
    /// The ids of a group's waiting jobs that have not expired.
    async fn waiting_jobs(&self, group: &str) -> Result<Vec<u64>>;
    /// How many of a group's jobs wait (expired ones forgotten).
    async fn waiting(&self, group: &str) -> Result<u32>;
    /// How long the group's oldest waiting job has waited, seconds (0 when none), its jobs
    /// noted for `ttl`.
    async fn oldest_waiting_secs(&self, group: &str, ttl: Duration) -> Result<u64>;
    /// A group's waiting jobs and free runners.
    async fn supply(&self, group: &str) -> Result<(u32, u32)>;

    // Locks: a token per holder, an expiry, renewal and release only by the holder.

    /// Takes `name` for `ttl` unless someone holds it (exclusively or shared).
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>>;
    /// Extends `name` by `ttl` if `token` still holds it.
    async fn renew_lock(&self, name: &str, token: &str, ttl: Duration) -> Result<bool>;
    /// Releases `name` if `token` holds it.
    async fn unlock(&self, name: &str, token: &str) -> Result<()>;
    /// A shared hold on `name` for `ttl` (any number at once) unless it is held exclusively.
    async fn try_lock_shared(&self, name: &str, ttl: Duration) -> Result<Option<String>>;
    /// Gives up a shared hold.
    async fn unlock_shared(&self, name: &str, token: &str) -> Result<()>;
    /// `name` for `ttl` when nobody holds it, shared or exclusively (expired holds ignored).
    async fn try_lock_exclusive(&self, name: &str, ttl: Duration) -> Result<Option<String>>;

    // Counters.

    /// Adds one to the counter `mark`; its new value.
    async fn count_mark(&self, mark: &str) -> Result<u64>;
    /// Every counter whose name starts with `prefix`, by the rest of its name.
    async fn marks_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64)>>;
    /// Notes that a scope's reusable registration token was handed out.
    async fn note_token_use(&self, scope: &str) -> Result<()>;
    /// Uses of a scope's token since its last replacement, and when that was.
    async fn token_state(&self, scope: &str) -> Result<(u64, Option<u64>)>;
    /// A replacement of the scope's token at `at`, the `uses` seen before it counted.
    async fn token_replaced(&self, scope: &str, uses: u64, at: u64) -> Result<()>;
    /// Advances a round-robin cursor; its previous value.
    async fn next_cursor(&self, name: &str) -> Result<u64>;
    /// What [`RunnerStore::next_cursor`] would answer, moving nothing.
    async fn peek_cursor(&self, name: &str) -> Result<u64>;
    /// A backend's circuit breaker as kept (JSON; see `manager::breaker`), `None` when none.
    async fn breaker(&self, key: &str) -> Result<Option<String>>;
    /// Keeps a breaker's state.
    async fn set_breaker(&self, key: &str, value: &str) -> Result<()>;

    // What tells lost data.

    /// The data marker, and whether it was missing (written now, held `hold_if_missing`).
    async fn marker(&self, hold_if_missing: Duration) -> Result<(Marker, bool)>;
    /// The marker as [`RunnerStore::marker`] would answer, writing nothing (as if at `now`).
    async fn peek_marker(&self, hold_if_missing: Duration, now: u64) -> Result<(Marker, bool)>;
    // Job timelines (see [`TIMELINE`]).

    /// Notes steps of a job's timeline, each kept from the first time it is noted: `times`
    /// (step, unix ms; 0 means now by this store's clock) and `texts` (name, value).
    async fn note_job(
        &self,
        job_id: u64,
        times: &[(&str, u64)],
        texts: &[(&str, &str)],
    ) -> Result<()>;
    /// A job's timeline as noted (empty when nothing is known), with the steps noted under
    /// its runner's name (`credential`, by the broker).
    async fn job_timeline(&self, job_id: u64)
        -> Result<std::collections::BTreeMap<String, String>>;

    /// When each of a group's suspects was first seen; suspects not listed are forgotten.
    async fn first_seen(&self, group: &str, suspects: &[String]) -> Result<Vec<u64>>;
    /// [`RunnerStore::first_seen`] remembering nothing: one not seen before is seen at `now`.
    async fn peek_first_seen(&self, group: &str, suspects: &[String], now: u64)
        -> Result<Vec<u64>>;
}
