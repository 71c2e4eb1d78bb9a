//! The runner life cycle, with the I/O: create, delete, job events and one health-check pass.
//! The decisions themselves are in `plan` and `matching`; what is here carries them out, in an
//! order that survives a crash at any point (a retried task resumes where the last one stopped,
//! and a health check finishes what nobody finished).
//!
//! Runners of a group are interchangeable: GitHub gives a queued job to any idle runner whose
//! labels fit. So a job does not own "its" runner; the group's demand (its waiting jobs) is met
//! by its free runners (reserved, creating, started or idle, with no job), and a runner is made
//! for a job only while the free ones fall short, in one atomic step in Redis. One task at a time
//! works on a runner (a lock per runner), every age is measured on Redis's clock, and nothing
//! that may run a job is deleted.

mod create;
mod delete;
mod events;
mod failover;
mod health;
mod resume;
mod warm;

pub use failover::CREATES;
pub use warm::{WARM_FAILURES, WARM_TAKEN};

use super::plan::{self, Action, Observed};
use crate::backend::{Backend, BackendError, CreateRequest, OwnerTags};
use crate::bootstrap::{self, Credential, RunnerSetup};
use crate::config::{Config, RunnerGroup};
use crate::forge::{self, Deleted, Forge, ForgeError, Registration, Scope};
use crate::model::Runner;
use crate::model::RunnerStatus;
use crate::store::{
    not_admitted_mark, spot_fallback_mark, Also, Reservation, RunnerPatch, RunnerStore, StoreError,
    Transition, Want,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What an operation's failure came from, kept typed: the command line maps it to an exit
/// code, and its message names what could not be reached (the forge's URL, the backend, Redis,
/// the configuration key).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The configuration does not allow it (no such group, an unreadable template).
    #[error("{0}")]
    Config(String),
    /// The state of the world: a record vanished, a lock was lost, a runner is busy.
    #[error("{0}")]
    State(String),
}

/// Why an operation did not complete, by what the queue should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// May pass on a retry (network, capacity of the cloud, a conflict that resolves).
    #[error("{0}")]
    Transient(Cause),
    /// Will fail again until someone changes something.
    #[error("{0}")]
    Permanent(Cause),
    /// The forge's rate limit (primary or secondary): try again after `wait`, without counting
    /// an attempt.
    #[error("{cause}")]
    RateLimited { wait: Duration, cause: Cause },
    /// Another task works on the same runner or group now, or a job waits for a slot of a full
    /// group: try again shortly, without counting an attempt.
    #[error("{0}")]
    Busy(String),
    /// A backend cannot be reached yet (it was down when the worker started): try again in a
    /// few seconds, without counting an attempt.
    #[error("{0}")]
    Unreachable(Cause),
}

impl Failure {
    /// A transient failure of the state of the world.
    pub fn transient(why: impl Into<String>) -> Failure {
        Failure::Transient(Cause::State(why.into()))
    }

    /// A failure the configuration causes.
    pub fn config(why: impl Into<String>) -> Failure {
        Failure::Permanent(Cause::Config(why.into()))
    }

    /// What it came from.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Failure::Transient(c)
            | Failure::Permanent(c)
            | Failure::Unreachable(c)
            | Failure::RateLimited { cause: c, .. } => Some(c),
            Failure::Busy(_) => None,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Transient(Cause::Store(Arc::new(e)))
    }
}

impl From<ForgeError> for Failure {
    fn from(e: ForgeError) -> Self {
        if let ForgeError::RateLimited { wait, .. } | ForgeError::Deferred { wait, .. } = &e {
            return Failure::RateLimited {
                wait: *wait,
                cause: Cause::Forge(e),
            };
        }
        if e.is_transient() {
            Failure::Transient(Cause::Forge(e))
        } else {
            Failure::Permanent(Cause::Forge(e))
        }
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        if e.code() == crate::backend::NOT_CONNECTED {
            return Failure::Unreachable(Cause::Backend(e));
        }
        if e.is_transient() {
            Failure::Transient(Cause::Backend(e))
        } else {
            Failure::Permanent(Cause::Backend(e))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new runner (or one an earlier attempt had started).
    New(String),
    /// The runner of this seed exists already.
    Exists(String),
    /// The group is at max_runners.
    Full { held: u32 },
    /// The group's free runners already cover its waiting jobs: none is needed.
    Covered,
    /// The group does not admit the job (its `selected_workflows`): GitHub would never give it
    /// to the group's runners. Says why.
    NotAdmitted(String),
}

/// The forge's ids of the runner a job event names, as the delivery gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventIds {
    pub runner_id: Option<u64>,
    pub runner_group_id: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Removed {
    Deleted,
    /// Running a job: left alone.
    Busy,
    /// No such runner.
    Missing,
}

/// One line of a health-check report.
#[derive(Debug, Clone, Serialize)]
pub struct HealthRow {
    pub group: String,
    #[serde(flatten)]
    pub action: Action,
    /// In JSON: `result` (`ok`, `skipped`, `failed` or `planned`) and `detail` (or null).
    #[serde(flatten)]
    pub result: HealthResult,
}

/// What came of one action of a health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthResult {
    /// Done; with a detail (`3 created`) or none.
    Ok(Option<String>),
    /// Left alone, and why (a runner running a job, a pass held while Redis lost its data).
    Skipped(Option<String>),
    Failed(String),
    /// What a dry run would do.
    Planned,
}

impl HealthResult {
    pub fn failed(&self) -> bool {
        matches!(self, HealthResult::Failed(_))
    }
}

impl std::fmt::Display for HealthResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthResult::Ok(None) => f.write_str("ok"),
            HealthResult::Ok(Some(d)) => write!(f, "ok ({d})"),
            HealthResult::Skipped(None) => f.write_str("skipped"),
            HealthResult::Skipped(Some(why)) => write!(f, "skipped: {why}"),
            HealthResult::Failed(why) => write!(f, "failed: {why}"),
            HealthResult::Planned => f.write_str("planned"),
        }
    }
}

impl Serialize for HealthResult {
    /// `{"result": CODE, "detail": TEXT-or-null}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (code, detail) = match self {
            HealthResult::Ok(d) => ("ok", d.as_deref()),
            HealthResult::Skipped(d) => ("skipped", d.as_deref()),
            HealthResult::Failed(d) => ("failed", Some(d.as_str())),
            HealthResult::Planned => ("planned", None),
        };
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("result", code)?;
        m.serialize_entry("detail", &detail)?;
        m.end()
    }
}

/// How long a job queued by webhook counts as waiting when no event clears it (its score in
/// the group's waiting set is when it stops).
pub const WAITING_TTL: Duration = Duration::from_secs(86_400);
/// The lock a task holds while it works on one runner, renewed while it works.
const RUNNER_LOCK_TTL: Duration = Duration::from_secs(10);
/// The lock of a group's health-check pass, renewed while it runs: a holder that dies blocks
/// the group's health checks for at most this long.
const HEALTH_LOCK_TTL: Duration = Duration::from_secs(10);
/// A scope's registration-token lock: held while a token is read, or while a replacement
/// checks that nobody registers with the old one and replaces it.
const TOKEN_LOCK_TTL: Duration = Duration::from_secs(30);

fn token_lock(scope: &Scope) -> String {
    format!("token:{}", scope.path())
}

/// What an attempt at making a runner came to.
enum Made {
    /// Registered and its instance created (or adopted from an interrupted attempt).
    Started,
    /// Others cover the demand it was for: its reservation was given up before registering.
    Abandoned,
    /// Its record vanished (or moved on) while it was being made; what it made is removed.
    Vanished,
    /// Another attempt made it or owns it now.
    Exists,
}

/// A callback told of each runner created: its name and the job it was made for.
pub type OnCreate = Arc<dyn Fn(&str, Option<u64>) + Send + Sync>;

/// The runner manager: the domain joined to its store, forge and backends.
pub struct Manager {
    pub config: Arc<Config>,
    pub store: Arc<dyn RunnerStore>,
    pub forge: Arc<dyn Forge>,
    backends: HashMap<String, Arc<dyn Backend>>,
    group_ids: Mutex<HashMap<String, u64>>,
    /// Called with the runner name and its job right after the backend created its instance
    /// (metrics, the demo).
    pub on_create: Option<OnCreate>,
    /// The credential broker: a VM's credential waits there for its instance.
    pub broker: Option<crate::broker::Link>,
    /// Per group: warm instances that failed in a row, and until when making more waits.
    warm_backoff: Mutex<HashMap<String, warm::Backoff>>,
    /// Whether jobs' timelines are noted (not in a simulation: a million jobs').
    pub timelines: bool,
    /// Timeline steps noted while making jobs' runners, until the job's task writes them.
    steps: Mutex<HashMap<u64, Steps>>,
}

/// What making a job's runner noted for its timeline (see `records::TIMELINE`).
#[derive(Debug, Default, Clone)]
pub struct Steps {
    /// (step, Redis unix ms).
    pub times: Vec<(&'static str, u64)>,
    pub runner: Option<String>,
    /// `hot`, `stopped` or `cold`.
    pub source: Option<&'static str>,
    pub group: Option<String>,
}

/// A short, stable suffix for a runner name, from what the runner is for.
/// Why a runner was made, from its seed: its lineage in `runners show`.
fn origin(seed: &str, for_job: Option<u64>) -> String {
    if let Some(job) = for_job {
        return format!("for queued job {job}");
    }
    match seed.split_once(':') {
        Some(("replace", runner)) => format!("to replace {runner}, whose job another job took"),
        Some(("warm", _)) => "for a warm pool".into(),
        Some(("health", _)) => {
            "by a health check (min_runners, lost jobs or a runner that never started)".into()
        }
        Some(("task", id)) => format!("on request (task {id})"),
        _ => "on request (runners create)".into(),
    }
}

impl Manager {
    pub fn new(
        config: Arc<Config>,
        store: impl RunnerStore + 'static,
        forge: Arc<dyn Forge>,
        backends: HashMap<String, Arc<dyn Backend>>,
    ) -> Manager {
        Manager {
            config,
            store: Arc::new(store),
            forge,
            backends,
            group_ids: Mutex::new(HashMap::new()),
            warm_backoff: Mutex::new(HashMap::new()),
            timelines: true,
            steps: Mutex::new(HashMap::new()),
            on_create: None,
            broker: None,
        }
    }

    pub fn scope(g: &RunnerGroup) -> Scope {
        let base = Self::base_scope(g);
        if g.scale_set_mode() {
            return Scope::ScaleSet {
                parent: Box::new(base),
                name: g.scale_set_name().to_string(),
            };
        }
        base
    }

    /// The organization or repository a group's runners belong to (its scale set's, in
    /// `mode: scale_set`).
    pub fn base_scope(g: &RunnerGroup) -> Scope {
        use crate::config::GroupScope;
        match (g.scope, &g.repository) {
            (_, Some(repo)) => Scope::Repo {
                owner: g.organization.clone(),
                repo: repo.clone(),
            },
            (GroupScope::Instance, None) => Scope::Instance,
            (GroupScope::User, None) => Scope::User(g.organization.clone()),
            _ => Scope::Org(g.organization.clone()),
        }
    }

    pub fn group(&self, name: &str) -> Option<&RunnerGroup> {
        self.config.group(name)
    }

    fn group_names(&self) -> Vec<String> {
        self.config
            .runner_groups
            .iter()
            .map(|g| g.name.clone())
            .collect()
    }

    /// The backend of group `g`.
    pub fn backend(&self, g: &RunnerGroup) -> Result<&Arc<dyn Backend>, Failure> {
        self.backends.get(&g.backend).ok_or_else(|| {
            Failure::config(format!(
                "backend `{}` of group `{}` is not configured",
                g.backend, g.name
            ))
        })
    }

    /// Runs `work` while renewing the lock `lock`; stops it when the lock is lost (renewal
    /// refused, or failing for the lock's whole time to live), so that two holders never act
    /// at once.
    async fn while_locked<T>(
        &self,
        lock: &str,
        token: &str,
        ttl: Duration,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let keep = async {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(ttl / 3).await;
                match self.store.renew_lock(lock, token, ttl).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => return format!("lost the lock `{lock}` to another holder"),
                    Err(e) if renewed.elapsed() >= ttl => {
                        return format!("could not renew the lock `{lock}`: {e}")
                    }
                    Err(_) => {}
                }
            }
        };
        let result = tokio::select! {
            r = work => r,
            why = keep => {
                tracing::warn!(lock, "{why}; stopping");
                Err(Failure::transient(why))
            }
        };
        let _ = self.store.unlock(lock, token).await;
        result
    }

    /// The runner name for a seed (`job:ID` for a queued job, a task id otherwise).
    pub fn runner_name(&self, g: &RunnerGroup, seed: &str) -> String {
        super::matching::runner_name(&self.config.name, &g.name, seed)
    }

    /// The forge's id of the group's runner group: none for a repository's runners, or on a
    /// forge without runner groups.
    async fn forge_group_id(&self, g: &RunnerGroup) -> Result<Option<u64>, Failure> {
        let Some(groups) = self.forge.groups().filter(|_| g.repository.is_none()) else {
            return Ok(None);
        };
        if let Some(id) = self
            .group_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g.name)
        {
            return Ok(Some(*id));
        }
        let groups = groups.list_runner_groups(&g.organization).await?;
        let found = groups.iter().find(|x| x.name == g.name).ok_or_else(|| {
            Failure::transient(format!(
                "runner group `{}` does not exist in {} on GitHub: run `runnerctl groups sync`",
                g.name, g.organization
            ))
        })?;
        self.group_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(g.name.clone(), found.id);
        Ok(Some(found.id))
    }
}
