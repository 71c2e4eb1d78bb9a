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

use super::plan::{self, Action, Observed};
use crate::backend::{Backend, BackendError, CreateRequest, OwnerTags};
use crate::bootstrap::{self, Credential, RunnerSetup};
use crate::config::{Config, RunnerGroup};
use crate::forge::{self, Deleted, Forge, ForgeError, Registration, Scope};
use crate::model::Runner;
use crate::model::RunnerStatus;
use crate::store::{
    not_admitted_mark, spot_fallback_mark, Also, RedisStore, Reservation, RunnerPatch, StoreError,
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
        if let ForgeError::RateLimited { wait, .. } = &e {
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
pub struct Done {
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

/// A hook told of each runner created: its name and the job it was made for.
pub type OnCreate = Arc<dyn Fn(&str, Option<u64>) + Send + Sync>;

/// The runner manager: the domain joined to its store, forge and backends.
pub struct Manager {
    pub config: Arc<Config>,
    pub store: RedisStore,
    pub forge: Arc<dyn Forge>,
    backends: HashMap<String, Arc<dyn Backend>>,
    group_ids: Mutex<HashMap<String, u64>>,
    /// Called with the runner name and its job right after the backend created its instance
    /// (metrics, the demo).
    pub on_create: Option<OnCreate>,
    /// The credential broker: a VM's credential waits there for its instance.
    pub broker: Option<crate::broker::Link>,
}

/// A short, stable suffix for a runner name, from what the runner is for.
/// Why a runner was made, from its seed: its lineage in `runners show`.
fn origin(seed: &str, for_job: Option<u64>) -> String {
    if let Some(job) = for_job {
        return format!("for queued job {job}");
    }
    match seed.split_once(':') {
        Some(("replace", runner)) => format!("to replace {runner}, whose job another job took"),
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
        store: RedisStore,
        forge: Arc<dyn Forge>,
        backends: HashMap<String, Arc<dyn Backend>>,
    ) -> Manager {
        Manager {
            config,
            store,
            forge,
            backends,
            group_ids: Mutex::new(HashMap::new()),
            on_create: None,
            broker: None,
        }
    }

    pub fn scope(g: &RunnerGroup) -> Scope {
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

    /// Creates a runner for `seed` in `g` whenever the group has room (an operator's request),
    /// or resumes its creation, or finds it done.
    pub async fn create_runner(
        &self,
        g: &RunnerGroup,
        seed: &str,
        for_job: Option<u64>,
    ) -> Result<Created, Failure> {
        self.create(g, seed, for_job, Want::Explicit, false).await
    }

    /// Makes a runner for the group's demand: only while its free runners are fewer than its
    /// waiting jobs (or `min_runners`). Atomic in Redis, so concurrent tasks never make two
    /// runners for one job. `for_job`, when `queued`, is first noted as waiting (unless it
    /// started) in the same step.
    async fn supply(
        &self,
        g: &RunnerGroup,
        seed: &str,
        for_job: Option<u64>,
        queued: bool,
    ) -> Result<Created, Failure> {
        let want = Want::Demand {
            min_free: g.min_runners,
        };
        self.create(g, seed, for_job, want, queued).await
    }

    async fn create(
        &self,
        g: &RunnerGroup,
        seed: &str,
        for_job: Option<u64>,
        want: Want,
        queued: bool,
    ) -> Result<Created, Failure> {
        let name = self.runner_name(g, seed);
        let now = self.store.now().await?;
        let record = Runner::reserved(&name, &g.name, &g.backend, g.labels.clone(), for_job, now);
        // The history's `reserved` entry is written by the reservation itself.
        let why = origin(seed, for_job);
        // A demand this call's reservation has just weighed needs no second look before
        // the runner is made; a resumed creation's does (see `make`).
        let mut checked = want;
        let lock = format!("runner:{name}");
        // A fresh reservation takes the runner's lock in the same step.
        let (reservation, locked) = self
            .store
            .reserve_noting(
                &record,
                g.max_runners,
                want,
                Also {
                    detail: &why,
                    lock: Some((&lock, RUNNER_LOCK_TTL)),
                    waiting: for_job.filter(|_| queued).map(|j| (j, WAITING_TTL)),
                },
            )
            .await?;
        match reservation {
            Reservation::Full { held } => return Ok(Created::Full { held }),
            Reservation::Covered { .. } => return Ok(Created::Covered),
            Reservation::Reserved { .. } => checked = Want::Explicit,
            Reservation::Exists => match self.store.get(&name).await? {
                Some(r) if matches!(r.status, RunnerStatus::Reserved | RunnerStatus::Creating) => {
                    tracing::info!(runner = %name, "resuming a runner creation");
                }
                Some(_) | None => return Ok(Created::Exists(name)),
            },
        }
        let token = match locked {
            Some(token) => token,
            None => match self.store.try_lock(&lock, RUNNER_LOCK_TTL).await? {
                Some(token) => token,
                None => {
                    return Err(Failure::Busy(format!(
                        "another task is working on runner {name}"
                    )))
                }
            },
        };
        let work = async {
            match self.make(g, &name, checked).await {
                Err(Failure::Permanent(why)) => {
                    // Nothing half-made stays behind, and the slot is given back.
                    tracing::error!(runner = %name, error = %why, "runner creation failed; cleaning up");
                    let _ = self.delete_locked(&name, true).await;
                    Err(Failure::Permanent(why))
                }
                other => other,
            }
        };
        match self
            .while_locked(&lock, &token, RUNNER_LOCK_TTL, work)
            .await?
        {
            Made::Started => Ok(Created::New(name)),
            Made::Abandoned => Ok(Created::Covered),
            Made::Vanished | Made::Exists => Ok(Created::Exists(name)),
        }
    }

    /// Makes (or resumes making) the runner `name`, whose record exists. Checks the record at
    /// every step: when it vanished, what this attempt made is removed again.
    async fn make(&self, g: &RunnerGroup, name: &str, want: Want) -> Result<Made, Failure> {
        let (record, first_attempt) = match self.claim(name).await? {
            Ok(claimed) => claimed,
            Err(made) => return Ok(made),
        };
        if let Want::Demand { min_free } = want {
            // Another runner may have become free for this demand meanwhile (a job taken by
            // another runner, a replayed delivery): then this one is not needed.
            if self
                .store
                .abandon_if_covered(&g.name, name, min_free)
                .await?
            {
                tracing::info!(runner = %name, "not needed any more: other free runners cover the group's waiting jobs");
                return Ok(Made::Abandoned);
            }
        }
        let scope = Self::scope(g);
        if record.forge_id.is_some() || record.instance_id.is_some() {
            if let Some(made) = self.resume(g, &scope, &record).await? {
                return Ok(made);
            }
        } else if !first_attempt {
            // An earlier attempt may have registered it (its answer lost) or started it: look.
            // A first attempt cannot have, and does not list the scope's runners (a call per
            // 100 runners on every creation).
            if let Some(made) = self.resume_unrecorded(g, &scope, name).await? {
                return Ok(made);
            }
        }
        let backend = self.backend(g)?;
        let (forge_id, credential) = self.register(g, &scope, name).await?;
        // Without a broker nothing is written between registering and asking for the
        // instance: both are recorded in one step (one round trip fewer per runner).
        let direct = self.broker.is_none() || !backend.brokered();
        let patch = RunnerPatch {
            forge_id: Some(forge_id),
            requested_at: match direct {
                true => Some(Some(self.store.now().await?)),
                false => None,
            },
            ..Default::default()
        };
        if !self.step(name, None, &patch).await? {
            tracing::warn!(runner = %name, "the runner's record vanished while it was being made; removing its registration");
            self.unregister(&scope, forge_id).await?;
            return Ok(Made::Vanished);
        }
        let mut boot = self.boot_data(g, &scope, name, credential, &**backend)?;
        let brokered = self.through_broker(name, &**backend, &mut boot).await?;
        if !direct {
            let patch = RunnerPatch {
                requested_at: Some(Some(self.store.now().await?)),
                ..Default::default()
            };
            if !self.step(name, None, &patch).await? {
                self.unregister(&scope, forge_id).await?;
                return Ok(Made::Vanished);
            }
        }
        let tags = OwnerTags {
            manager: self.config.name.clone(),
            group: g.name.clone(),
            runner: name.to_string(),
        };
        let instance = backend
            .create(&CreateRequest {
                runner_name: name.to_string(),
                spec: g.spec.clone(),
                boot,
                tags,
            })
            .await?;
        if let Some(id) = &brokered {
            self.bind(name, id, &instance).await;
        }
        let patch = RunnerPatch {
            instance_id: Some(Some(instance.id.clone())),
            started_at: Some(self.store.now().await?),
            ..Default::default()
        };
        if !self.step(name, Some(RunnerStatus::Started), &patch).await? {
            // Its slot was released meanwhile: it must not run without one.
            tracing::warn!(runner = %name, "the runner's record vanished while it was being made; removing what was made");
            self.unregister(&scope, forge_id).await?;
            backend.delete(&instance.id).await?;
            return Ok(Made::Vanished);
        }
        self.created(g, name, &instance, record.created_for_job)
            .await;
        Ok(Made::Started)
    }

    /// Moves a reserved (or creating) record to creating and returns it, with whether this is
    /// the first attempt (the record was still `reserved`: nothing can have been registered or
    /// started for it yet); what to report when the record is gone or was made already.
    async fn claim(&self, name: &str) -> Result<Result<(Runner, bool), Made>, Failure> {
        let (t, record) = self
            .store
            .update_reading(
                name,
                Some(RunnerStatus::Creating),
                &[RunnerStatus::Reserved, RunnerStatus::Creating],
                &RunnerPatch::default(),
            )
            .await?;
        match (t, record) {
            (Transition::Missing, _) => Ok(Err(Made::Vanished)),
            (Transition::Refused(_), _) => Ok(Err(Made::Exists)),
            (Transition::Done(before), Some(record)) => {
                Ok(Ok((record, before == RunnerStatus::Reserved)))
            }
            (Transition::Done(_), None) => Err(Failure::transient(format!(
                "the record of runner {name} vanished"
            ))),
        }
    }

    /// Registers the runner on the forge: its forge id (a JIT runner is known at once; one
    /// with a registration token only once it registers) and the credential its instance gets.
    async fn register(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        name: &str,
    ) -> Result<(Option<u64>, Credential), Failure> {
        let req = forge::RunnerRequest {
            name,
            runner_group_id: self.forge_group_id(g).await?,
            labels: &g.labels,
            work_folder: "_work",
        };
        let registered = match self.forge.tokens() {
            None => forge::register_runner(&*self.forge, scope, &req).await,
            // A reusable token: read with a shared hold on the scope's token lock, which any
            // number of registrations have at once and a replacement takes exclusively (it
            // also checks for runners mid-registration, this one's record among them).
            Some(_) => {
                let lock = token_lock(scope);
                let token = self.lock_shared_briefly(&lock).await?;
                let got = forge::register_runner(&*self.forge, scope, &req).await;
                let noted = match got.is_ok() {
                    true => self.store.note_token_use(&scope.path()).await,
                    false => Ok(()),
                };
                self.store.unlock_shared(&lock, &token).await?;
                noted?;
                got
            }
        };
        match registered {
            Ok(Registration::Jit(jit)) => Ok((Some(jit.runner.id), Credential::Jit(jit.encoded))),
            Ok(Registration::Token(t)) => Ok((None, Credential::RegistrationToken(t))),
            // Registered and online or busy with no instance of ours: not ours to touch.
            // The health check sorts it out.
            Err(e @ ForgeError::Conflict(_)) => Err(Failure::Transient(Cause::Forge(e))),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes a shared hold on a lock held exclusively only for a moment (a token replacement,
    /// about one forge call), waiting up to 10 s for it: asked for again after 2 ms, then twice
    /// as long each time up to 50 ms. (An exclusive lock for every registration made every
    /// creation of a burst on Gitea wait in line: p95 over 240 ms.)
    async fn lock_shared_briefly(&self, lock: &str) -> Result<String, Failure> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(token) = self.store.try_lock_shared(lock, TOKEN_LOCK_TTL).await? {
                return Ok(token);
            }
            if started.elapsed() >= Duration::from_secs(10) {
                return Err(Failure::transient(format!("{lock} stayed locked for 10 s")));
            }
            tokio::time::sleep(pause + Duration::from_micros(fastrand::u64(0..1000))).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Replaces the scope's reusable registration token when it is due and nobody registers
    /// with it (Gitea), under the scope's token lock. `None`: the forge has no such tokens, the
    /// lock is taken, or it is not due.
    async fn token_action(&self, scope: &Scope) -> Result<Option<Done>, Failure> {
        let Some(tokens) = self.forge.tokens() else {
            return Ok(None);
        };
        let lock = token_lock(scope);
        let Some(held) = self.store.try_lock_exclusive(&lock, TOKEN_LOCK_TTL).await? else {
            return Ok(None);
        };
        let result = async {
            let key = scope.path();
            let (uses, replaced_at) = self.store.token_state(&key).await?;
            let now = self.store.now().await?;
            let every = self.config.gitea.token_rotation.as_secs();
            if plan::token_replacement(&key, uses, replaced_at, now, every, &[]).is_none() {
                return Ok::<_, Failure>(None);
            }
            let forge = match self.forge.list_runners(scope).await {
                Ok(f) => f,
                // Before Gitea 1.24 tokens cannot be replaced (nor runners listed).
                Err(ForgeError::Unsupported(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let mut records = Vec::new();
            for g in self.config.runner_groups.iter() {
                if Self::scope(g) == *scope {
                    records.extend(self.store.runners_of_group(&g.name).await?);
                }
            }
            let busy =
                plan::registering(&records, &forge, now, self.config.time_to_start.as_secs());
            let Some(action) = plan::token_replacement(&key, uses, replaced_at, now, every, &busy)
            else {
                return Ok(None);
            };
            let result = match &action {
                Action::ReplaceToken { .. } => {
                    if tokens.replace_registration_token(scope).await? {
                        self.store.token_replaced(&key, uses, now).await?;
                        tracing::info!(scope = %scope, "registration token replaced");
                        HealthResult::Ok(None)
                    } else {
                        HealthResult::Skipped(Some("the forge cannot replace tokens".into()))
                    }
                }
                Action::Skip { reason } => HealthResult::Skipped(Some(reason.clone())),
                _ => HealthResult::Skipped(None),
            };
            Ok(Some((action, result)))
        }
        .await;
        self.store.unlock(&lock, &held).await?;
        Ok(result?.map(|(action, result)| Done {
            group: String::new(),
            action,
            result,
        }))
    }

    /// A VM's credential, when a broker is configured, waits there: the bootstrap carries a
    /// one-time token instead. The broker record's id, to bind once the instance exists.
    async fn through_broker(
        &self,
        name: &str,
        backend: &dyn Backend,
        boot: &mut crate::bootstrap::BootData,
    ) -> Result<Option<String>, Failure> {
        let Some(link) = &self.broker else {
            return Ok(None);
        };
        if !backend.brokered() {
            return Ok(None);
        }
        let Some(credential) = boot.files.iter().find(|f| bootstrap::is_secret(&f.path)) else {
            return Ok(None);
        };
        let ttl = self.config.time_to_start.as_std();
        let issued = link
            .broker
            .issue(name, &credential.content, ttl)
            .await
            .map_err(|e| Failure::transient(e.to_string()))?;
        let proof = backend.kind().identity_proof();
        bootstrap::through_broker_proving(
            boot,
            &link.url,
            &link.ca_pem,
            &issued.token,
            ttl.as_secs(),
            proof,
        )
        .map_err(|e| Failure::config(e.to_string()))?;
        Ok(Some(issued.id))
    }

    /// Binds a brokered credential to the address its instance will ask from.
    async fn bind(&self, name: &str, id: &str, instance: &crate::backend::Instance) {
        let Some(link) = &self.broker else { return };
        let Some(address) = &instance.address else {
            tracing::warn!(runner = %name, "the backend reported no address for the instance: its credential cannot be fetched, and the health check will replace it");
            return;
        };
        match link
            .broker
            .bind_to(id, address, instance.identity.as_deref())
            .await
        {
            Ok(true) => {
                tracing::debug!(runner = %name, %address, "credential bound to the instance's address")
            }
            Ok(false) => {
                tracing::warn!(runner = %name, "the runner's credential expired or was taken before it could be bound")
            }
            Err(e) => {
                tracing::warn!(runner = %name, error = %e, "could not bind the runner's credential")
            }
        }
    }

    /// Removes a registration made for a runner that will not be made after all.
    async fn unregister(&self, scope: &Scope, forge_id: Option<u64>) -> Result<(), Failure> {
        if let Some(id) = forge_id {
            self.forge.delete_runner(scope, id).await?;
        }
        Ok(())
    }

    /// What the runner's instance receives, in its backend's boot style.
    fn boot_data(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        name: &str,
        credential: Credential,
        backend: &dyn Backend,
    ) -> Result<crate::bootstrap::BootData, Failure> {
        let template = match &g.bootstrap_template {
            Some(p) => {
                Some(bootstrap::read_template(p).map_err(|e| Failure::config(e.to_string()))?)
            }
            None => None,
        };
        let setup = RunnerSetup {
            runner_name: name.to_string(),
            labels: g.labels.clone(),
            url: self.forge.runner_url(scope),
            agent: self.forge.agent(),
            container_jobs: g.container_jobs.clone(),
            runner_group: (g.repository.is_none() && self.forge.groups().is_some())
                .then(|| g.name.clone()),
            credential,
        };
        bootstrap::render(backend.kind().boot_style(), &setup, template.as_deref())
            .map_err(|e| Failure::config(e.to_string()))
    }

    /// What follows a runner's instance being made: counters, the hook, the log.
    async fn created(
        &self,
        g: &RunnerGroup,
        name: &str,
        instance: &crate::backend::Instance,
        job: Option<u64>,
    ) {
        if instance.spot_fallback {
            // Counted in Redis so that every process's fallbacks add up (`/metrics` shows it).
            if let Err(e) = self.store.count_mark(&spot_fallback_mark(&g.name)).await {
                tracing::warn!(group = %g.name, error = %e, "could not count a spot fallback");
            }
        }
        if let Some(f) = &self.on_create {
            f(name, job);
        }
        tracing::info!(runner = %name, group = %g.name, "runner created");
    }

    /// Records one step of making `name` (a creating record takes the patch, and `status` when
    /// given). False when the record vanished or moved on meanwhile: the caller removes what it
    /// made, since the runner holds no slot any more.
    async fn step(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        patch: &RunnerPatch,
    ) -> Result<bool, Failure> {
        let t = self
            .store
            .update(name, status, &[RunnerStatus::Creating], patch)
            .await?;
        Ok(matches!(t, Transition::Done(_)))
    }

    /// Resumes a runner whose record shows that an earlier attempt registered it (and maybe
    /// asked for its instance). A registration whose instance may still appear is never
    /// revoked: that would strand a booting instance. `None`: make it from the start.
    async fn resume(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        record: &Runner,
    ) -> Result<Option<Made>, Failure> {
        let name = record.name.as_str();
        let registered = self.registration(scope, name).await?;
        let instance = self.instance_of(g, name).await?;
        match (registered, instance) {
            (Some(f), Some(i)) => self.adopt(name, f.id, i.id).await.map(Some),
            (None, Some(i)) => {
                // Its registration is gone, so its credential is dead: it can never come online.
                tracing::info!(runner = %name, "an interrupted attempt left an instance whose registration is gone; replacing it");
                self.backend(g)?.delete(&i.id).await?;
                self.clear_progress(name).await?;
                Ok(None)
            }
            // Registered, and its instance asked for but not listed (yet): never revoke the
            // credential it may hold. The health check finds out (online: idle; never online:
            // replaced after time_to_start).
            (Some(_), None) if record.requested_at.is_some() => Ok(Some(Made::Exists)),
            // Registered, but no instance was ever asked for: the configuration is lost with
            // the task that got it, so the registration is stale and goes.
            (Some(f), None) => {
                tracing::info!(runner = %name, "removing the registration of an interrupted attempt that made no instance");
                self.forge.delete_runner(scope, f.id).await?;
                self.clear_progress(name).await?;
                Ok(None)
            }
            (None, None) => {
                self.clear_progress(name).await?;
                Ok(None)
            }
        }
    }

    /// Resumes a runner whose record shows nothing made: an interrupted attempt may still have
    /// registered it (its answer lost) or, with a crash between the two writes, started it.
    async fn resume_unrecorded(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<Made>, Failure> {
        let Some(f) = self.registration(scope, name).await? else {
            return Ok(None);
        };
        if let Some(i) = self.instance_of(g, name).await? {
            return self.adopt(name, f.id, i.id).await.map(Some);
        }
        if f.busy || f.online() {
            return Ok(Some(Made::Exists));
        }
        // The registration's configuration was never recorded, so no instance was asked for:
        // it is stale and goes.
        tracing::info!(runner = %name, "removing the stale registration of an interrupted attempt");
        self.forge.delete_runner(scope, f.id).await?;
        Ok(None)
    }

    async fn registration(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<forge::ForgeRunner>, Failure> {
        match self.forge.list_runners(scope).await {
            Ok(all) => Ok(all.into_iter().find(|f| f.name == name)),
            // A forge that cannot list runners (Gitea before 1.24) removes an ephemeral runner
            // itself after its job; an instance deleted unregistered stays offline there.
            Err(ForgeError::Unsupported(why)) => {
                tracing::debug!(runner = name, "{why}");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn instance_of(
        &self,
        g: &RunnerGroup,
        name: &str,
    ) -> Result<Option<crate::backend::Instance>, Failure> {
        Ok(self
            .backend(g)?
            .list()
            .await?
            .into_iter()
            .find(|i| i.runner() == Some(name)))
    }

    async fn clear_progress(&self, name: &str) -> Result<(), Failure> {
        self.store
            .update(
                name,
                None,
                &[RunnerStatus::Creating],
                &RunnerPatch {
                    forge_id: Some(None),
                    instance_id: Some(None),
                    requested_at: Some(None),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// Records a runner that an interrupted attempt made: its GitHub registration and instance
    /// exist, the record does not say so yet.
    async fn adopt(&self, name: &str, forge_id: u64, instance_id: String) -> Result<Made, Failure> {
        tracing::info!(runner = %name, "adopting a runner an interrupted attempt made");
        let now = self.store.now().await?;
        let t = self
            .store
            .update(
                name,
                Some(RunnerStatus::Started),
                &[RunnerStatus::Reserved, RunnerStatus::Creating],
                &RunnerPatch {
                    forge_id: Some(Some(forge_id)),
                    instance_id: Some(Some(instance_id)),
                    started_at: Some(now),
                    ..Default::default()
                },
            )
            .await?;
        Ok(match t {
            Transition::Done(_) => Made::Started,
            _ => Made::Exists,
        })
    }

    /// Deletes a runner: its GitHub registration first (so it takes no new job), then its
    /// instance, then its record (which frees its slot). A runner that runs a job is left alone
    /// unless `force`. Waits for no other task: when one works on the runner, says so.
    pub async fn delete_runner(&self, name: &str, force: bool) -> Result<Removed, Failure> {
        let lock = format!("runner:{name}");
        let Some(token) = self.store.try_lock(&lock, RUNNER_LOCK_TTL).await? else {
            return Err(Failure::Busy(format!(
                "another task is working on runner {name}"
            )));
        };
        self.while_locked(
            &lock,
            &token,
            RUNNER_LOCK_TTL,
            self.delete_locked(name, force),
        )
        .await
    }

    async fn delete_locked(&self, name: &str, force: bool) -> Result<Removed, Failure> {
        // Marked deleting and read in one step; `r` keeps the status it had, to restore.
        let r = match self
            .store
            .update_reading(
                name,
                Some(RunnerStatus::Deleting),
                &[],
                &RunnerPatch::default(),
            )
            .await?
        {
            (Transition::Done(before), Some(mut r)) => {
                r.status = before;
                r
            }
            _ => return Ok(Removed::Missing),
        };
        let g = self.group(&r.group);
        if let Some(g) = g {
            let scope = Self::scope(g);
            match self.unregister_named(&scope, name, r.forge_id).await {
                Ok(Deleted::Busy) if !force => {
                    self.store
                        .update(
                            name,
                            Some(RunnerStatus::Active),
                            &[],
                            &RunnerPatch::default(),
                        )
                        .await?;
                    return Ok(Removed::Busy);
                }
                Ok(_) => {}
                Err(e) => {
                    // Nothing was removed: the runner is as it was, not half-deleted (unless
                    // a job event moved it meanwhile: that status stands).
                    if let Err(err) = self
                        .store
                        .update(
                            name,
                            Some(r.status),
                            &[RunnerStatus::Deleting],
                            &RunnerPatch::default(),
                        )
                        .await
                    {
                        tracing::warn!(runner = %name, error = %err, "could not restore the runner's status");
                    }
                    return Err(e);
                }
            }
        }
        if let Some(link) = &self.broker {
            // A credential still waiting for its instance goes with the runner.
            link.broker
                .revoke(name)
                .await
                .map_err(|e| Failure::transient(e.to_string()))?;
        }
        if let Some(g) = g {
            let backend = self.backend(g)?;
            match &r.instance_id {
                Some(id) => backend.delete(id).await?,
                None => {
                    for i in backend.list().await? {
                        if i.runner() == Some(name) {
                            backend.delete(&i.id).await?;
                        }
                    }
                }
            }
        }
        self.store.remove_of(name, Some(&r.group)).await?;
        tracing::info!(runner = %name, "runner deleted");
        Ok(Removed::Deleted)
    }

    /// Removes a runner's registration from the forge (found by name when its id was never
    /// recorded); `Deleted::Busy` when it runs a job.
    async fn unregister_named(
        &self,
        scope: &Scope,
        name: &str,
        forge_id: Option<u64>,
    ) -> Result<Deleted, Failure> {
        let forge_id = match forge_id {
            Some(id) => Some(id),
            // Crashed between registration and recording it: find it by name.
            None => self.registration(scope, name).await?.map(|f| f.id),
        };
        match forge_id {
            Some(id) => Ok(self.forge.delete_runner(scope, id).await?),
            None => Ok(Deleted::NotFound),
        }
    }

    /// Gives up a runner an operator's command could not make: best effort to delete what it
    /// made, then its record goes whatever happened, so that it holds no slot. Anything left
    /// (a registration or an instance GitHub or the backend could not be asked to remove) is
    /// ours by name and tag, and the health check removes it as a leak.
    pub async fn abandon(&self, name: &str) -> Result<(), Failure> {
        if let Err(e) = self.delete_runner(name, false).await {
            tracing::warn!(runner = %name, error = %e, "could not remove what a failed creation made; the health check will");
        }
        match self.store.get(name).await? {
            Some(r) if r.status == RunnerStatus::Active => Ok(()),
            Some(_) => {
                self.store.remove(name).await?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A job of `group` was queued: it waits, and the group gets a runner for it unless its free
    /// runners cover its waiting jobs. A job that started already (its runner may be another
    /// job's) is not waiting; its task still checks the group's demand, since the runner it took
    /// may have been made for a job that now has none.
    pub async fn job_queued(&self, group: &str, job_id: u64) -> Result<Created, Failure> {
        self.job_queued_from(group, job_id, None).await
    }

    /// [`job_queued`](Self::job_queued) for a job of the run `origin` (repository and run id):
    /// a group with `selected_workflows` first checks the run's workflow, one call to GitHub.
    pub async fn job_queued_from(
        &self,
        group: &str,
        job_id: u64,
        origin: Option<(&str, u64)>,
    ) -> Result<Created, Failure> {
        if let (Some(g), Some((repository, run_id))) = (self.group(group), origin) {
            if !g.selected_workflows.is_empty() {
                let (owner, repo) = repository.split_once('/').unwrap_or((repository, ""));
                let run = self.forge.workflow_run(owner, repo, run_id).await?;
                if let Some(why) = super::matching::workflow_refusal(g, repository, &run) {
                    tracing::info!(group, job_id, "{why}");
                    if let Err(e) = self.store.count_mark(&not_admitted_mark(group)).await {
                        tracing::warn!(error = %e, "could not count a job not admitted");
                    }
                    return Ok(Created::NotAdmitted(why));
                }
            }
        }
        let g = self
            .group(group)
            .ok_or_else(|| Failure::config(format!("no runner group `{group}`")))?;
        self.supply(g, &format!("job:{job_id}"), Some(job_id), true)
            .await
    }

    /// Whether the runner a job event names (`runner`, with the forge's ids in `who`) is our
    /// runner of that name: the forge's id must be the one we registered (our record's, or
    /// our scope's listing when the record has none yet) and its group ours. An impostor is
    /// logged and nothing is done to our runner.
    async fn event_is_ours(
        &self,
        runner: &str,
        record: Option<&Runner>,
        who: EventIds,
    ) -> Result<bool, Failure> {
        if who.runner_id.is_none() {
            return Ok(true);
        }
        let Some(g) = record.and_then(|r| self.group(&r.group)) else {
            // No record: nothing of ours to act on anyway.
            return Ok(true);
        };
        let registered = match record.and_then(|r| r.forge_id) {
            Some(id) => Some(id),
            // Registered with a token (Gitea): the forge's id is learnt from our scope's
            // listing, and kept in the record for the next event. Not listed (or a forge that
            // cannot list, Gitea before 1.24): the runner is not registered, and the event is
            // taken by its name (`event_runner`).
            None => {
                let found = self
                    .registration(&Self::scope(g), runner)
                    .await?
                    .map(|f| f.id);
                if let Some(id) = found {
                    let patch = RunnerPatch {
                        forge_id: Some(Some(id)),
                        ..Default::default()
                    };
                    self.store.update(runner, None, &[], &patch).await?;
                }
                found
            }
        };
        let our_group = match who.runner_group_id {
            Some(_) => self.forge_group_id(g).await?,
            None => None,
        };
        match super::matching::event_runner(
            registered,
            our_group,
            who.runner_id,
            who.runner_group_id,
        ) {
            super::matching::EventRunner::Ours => Ok(true),
            super::matching::EventRunner::Impostor(why) => {
                tracing::warn!(
                    runner,
                    "a job event names a runner of ours but is not about it ({why}): nothing done to ours"
                );
                Ok(false)
            }
        }
    }

    /// A runner took a job: it is active, and the job no longer waits. When it was made for
    /// another job, that job may now have no runner: the group's demand is checked at once.
    /// An event whose runner is not ours by its forge ids changes nothing of ours.
    pub async fn job_in_progress(
        &self,
        job_id: u64,
        runner: &str,
        who: EventIds,
    ) -> Result<(), Failure> {
        let record = self
            .store
            .mark_job_started(&self.group_names(), job_id, Some(runner))
            .await?;
        if !self.event_is_ours(runner, record.as_ref(), who).await? {
            // Another runner took the job: if it was the one ours was made for, ours is free
            // for the next, and the demand accounting holds as it is.
            return Ok(());
        }
        let now = self.store.now().await?;
        let t = self
            .store
            .update(
                runner,
                Some(RunnerStatus::Active),
                &[],
                &RunnerPatch {
                    job_id: Some(Some(job_id)),
                    online_at: Some(now),
                    ..Default::default()
                },
            )
            .await?;
        let check = match (&t, &record) {
            (Transition::Done(_), Some(r)) => {
                let taken = r.created_for_job.is_some_and(|j| j != job_id);
                if taken {
                    tracing::info!(
                        runner,
                        job_id,
                        made_for = r.created_for_job.unwrap_or_default(),
                        "a job took a runner made for another job"
                    );
                }
                taken
            }
            // No record: the job ended meanwhile, or this is a retry after a full group. Whether
            // the runner was taken is unknown then, and checking the demand is harmless.
            _ => record.is_none(),
        };
        if check {
            self.check_demand_after(runner).await?;
        }
        Ok(())
    }

    /// A job ended: the runner that ran it goes. When that runner had been made for another
    /// job (a theft whose in_progress delivery was lost, or never seen), or its record is gone
    /// already (a retry), the group's demand is checked as after a theft.
    pub async fn job_completed(
        &self,
        job_id: u64,
        runner: Option<&str>,
        who: EventIds,
    ) -> Result<Removed, Failure> {
        let record = self
            .store
            .mark_job_started(&self.group_names(), job_id, runner)
            .await?;
        let Some(name) = runner else {
            return Ok(Removed::Missing);
        };
        if !self.event_is_ours(name, record.as_ref(), who).await? {
            return Ok(Removed::Missing);
        }
        // Ephemeral: done after one job. GitHub may still call it busy for a moment.
        let removed = match self.delete_runner(name, false).await? {
            Removed::Busy => {
                return Err(Failure::transient(format!(
                    "runner {name} still reported busy after its job completed"
                )))
            }
            other => other,
        };
        let check = match &record {
            Some(r) => r.created_for_job.is_some_and(|j| j != job_id),
            None => true,
        };
        if check {
            self.check_demand_after(name).await?;
        }
        Ok(removed)
    }

    /// After a job took `runner` (one of ours), the job it was made for may have none: the
    /// group gets a runner unless its free runners cover its waiting jobs. A full group is
    /// `Busy`, so the task comes back when a slot may have freed, instead of leaving that job
    /// to the next health check.
    async fn check_demand_after(&self, runner: &str) -> Result<(), Failure> {
        let groups = &self.config.runner_groups;
        let Some(g) = super::matching::group_of_runner(&self.config.name, groups, runner) else {
            return Ok(());
        };
        match self.supply(g, &format!("replace:{runner}"), None, false)
            .await? {
            Created::Full { held } => Err(Failure::Busy(format!(
                "group `{}` is at max_runners ({held} held): a job whose runner another job took waits for a slot",
                g.name
            ))),
            _ => Ok(()),
        }
    }

    /// Jobs queued on GitHub that belong to `g`, looking into a bounded number of repositories
    /// per pass (round robin), so a pass costs a few calls however large the organization.
    async fn queued_jobs_of(
        &self,
        g: &RunnerGroup,
        dry_run: bool,
    ) -> Result<Vec<forge::QueuedJob>, Failure> {
        const REPOS_PER_PASS: usize = 2;
        const RUNS_PER_REPO: usize = 5;
        let repos: Vec<String> = match (&g.repository, &g.selected_repositories) {
            (Some(r), _) => vec![r.clone()],
            (None, Some(list)) => list.clone(),
            // An instance-wide group serving every owner: webhooks are its only source.
            (None, None) if g.organization.is_empty() => Vec::new(),
            (None, None) => self.forge.repositories(&g.organization).await?,
        };
        if repos.is_empty() {
            return Ok(Vec::new());
        }
        let cursor = format!("scan:{}", g.name);
        // A dry run looks where the next pass will, and moves nothing.
        let start = if dry_run {
            self.store.peek_cursor(&cursor).await?
        } else {
            self.store.next_cursor(&cursor).await?
        } as usize;
        let mut out = Vec::new();
        for k in 0..REPOS_PER_PASS.min(repos.len()) {
            let repo = &repos[(start * REPOS_PER_PASS + k) % repos.len()];
            for job in self
                .forge
                .queued_jobs(&g.organization, repo, RUNS_PER_REPO)
                .await?
            {
                let ours = super::matching::group_for_job(
                    &self.config.runner_groups,
                    &job.repository,
                    &job.labels,
                )
                .is_some_and(|x| x.name == g.name);
                if ours {
                    out.push(job);
                }
            }
        }
        Ok(out)
    }

    /// Lost webhooks: jobs queued on GitHub, not started, whose `queued` delivery never came
    /// (so they are not waiting in Redis). They count as demand for this pass only: nothing is
    /// stored that could outlive them, since no event will ever clear them.
    async fn lost_jobs(&self, g: &RunnerGroup, dry_run: bool) -> Result<u32, Failure> {
        let queued = match self.queued_jobs_of(g, dry_run).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(group = %g.name, error = %e, "could not look for queued jobs");
                return Ok(0);
            }
        };
        if queued.is_empty() {
            return Ok(0);
        }
        let waiting = self.store.waiting_jobs(&g.name).await?;
        let mut lost = 0;
        for job in queued {
            if !waiting.contains(&job.id) && !self.store.job_started(job.id).await? {
                lost += 1;
            }
        }
        Ok(lost)
    }

    /// One health-check pass over a group, under the group's lock (renewed while it runs; the
    /// pass stops if the lock is lost). Returns what it did.
    pub async fn health_check(&self, g: &RunnerGroup) -> Result<Vec<Done>, Failure> {
        let lock = format!("health:{}", g.name);
        let Some(token) = self.store.try_lock(&lock, HEALTH_LOCK_TTL).await? else {
            return Ok(vec![]);
        };
        self.while_locked(&lock, &token, HEALTH_LOCK_TTL, self.health_pass(g))
            .await
    }

    /// Whether GitHub's budget is so low that a health check's listings must wait, leaving what
    /// is left to job creation.
    fn budget_low(&self, now: u64) -> Option<String> {
        let r = self.forge.rate_limit()?;
        let reserve = (r.limit / 20).max(50);
        (r.remaining < reserve && r.reset > now).then(|| {
            format!(
                "GitHub budget low ({} of {} requests left until the reset in {}s); job creation goes first",
                r.remaining,
                r.limit,
                r.reset.saturating_sub(now)
            )
        })
    }

    async fn health_pass(&self, g: &RunnerGroup) -> Result<Vec<Done>, Failure> {
        let row = |action: Action, result: HealthResult| Done {
            group: g.name.clone(),
            action,
            result,
        };
        let listed_at = self.store.now().await?;
        if let Some(why) = self.budget_low(listed_at) {
            tracing::warn!(group = %g.name, "{why}; health check skipped");
            return Ok(vec![row(
                Action::Skip {
                    reason: why.clone(),
                },
                HealthResult::Skipped(Some(why)),
            )]);
        }
        let scope = Self::scope(g);
        let seen = self.observe(g, &scope, false).await?;
        let actions = self.plan_of(g, listed_at, &seen);
        // Runners made here cover the waiting jobs and the lost ones.
        let demand = Want::Demand {
            min_free: g.min_runners.max(seen.waiting),
        };
        let mut done = Vec::new();
        for action in actions {
            let result = match self.carry_out(g, &scope, &action, seen.now, demand).await {
                Ok(r) => r,
                Err(e) => HealthResult::Failed(e.to_string()),
            };
            done.push(row(action, result));
        }
        match self.token_action(&scope).await {
            Ok(Some(d)) => done.push(row(d.action, d.result)),
            Ok(None) => {}
            Err(e) => done.push(row(
                Action::ReplaceToken {
                    scope: scope.path(),
                    reason: "due".into(),
                },
                HealthResult::Failed(e.to_string()),
            )),
        }
        Ok(done)
    }

    /// The plan of a pass over what it saw.
    fn plan_of(&self, g: &RunnerGroup, listed_at: u64, seen: &Seen) -> Vec<Action> {
        plan::plan(&Observed {
            now: seen.now,
            listed_at,
            min_runners: g.min_runners,
            max_runners: g.max_runners,
            time_to_start: self.config.time_to_start.as_secs(),
            time_to_live: self.config.time_to_live.as_secs(),
            cleanup_grace: self.config.cleanup_grace.as_secs(),
            hold_until: seen.hold_until,
            records: &seen.records,
            forge: &seen.forge,
            instances: &seen.instances,
            seen: &seen.first_seen,
            waiting_jobs: seen.waiting,
            forge_blind: seen.forge_blind.as_deref(),
        })
    }

    /// What a health pass over the group would do now, carried out not at all (`healthcheck
    /// --dry-run`): it writes nothing to Redis. A runner or instance without a record that no
    /// pass has seen yet counts as first seen now, and a missing data marker as written now.
    pub async fn health_plan(&self, g: &RunnerGroup) -> Result<Vec<Done>, Failure> {
        let listed_at = self.store.now().await?;
        let seen = self.observe(g, &Self::scope(g), true).await?;
        Ok(self
            .plan_of(g, listed_at, &seen)
            .into_iter()
            .map(|action| Done {
                group: g.name.clone(),
                action,
                result: HealthResult::Planned,
            })
            .collect())
    }

    /// What a health pass sees of a group. GitHub and the backend are listed first, then the
    /// records are read: a runner made while this pass runs has its record (written before
    /// anything is made) by the time it is read, so it can never look like a leak.
    async fn observe(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        dry_run: bool,
    ) -> Result<Seen, Failure> {
        let (listed, forge_blind) = match self.forge.list_runners(scope).await {
            Ok(all) => (all, None),
            // Gitea before 1.24: the pass works from the records and the backend alone.
            Err(ForgeError::Unsupported(why)) => (Vec::new(), Some(why)),
            Err(e) => return Err(e.into()),
        };
        let mut forge: Vec<_> = listed
            .into_iter()
            .filter(|f| {
                super::matching::group_of_runner(
                    &self.config.name,
                    &self.config.runner_groups,
                    &f.name,
                )
                .is_some_and(|x| x.name == g.name)
            })
            .collect();
        let instances: Vec<_> = self
            .backend(g)?
            .list()
            .await?
            .into_iter()
            .filter(|i| i.group() == Some(g.name.as_str()))
            .collect();
        let records = self.store.runners_of_group(&g.name).await?;
        // Ours by name alone only when named by the current rule: a name of runnerctl 0.1 may
        // be another manager's whose name overlaps ours; such a runner is ours when we have its
        // record, and otherwise left alone.
        let recorded: std::collections::HashSet<&str> =
            records.iter().map(|r| r.name.as_str()).collect();
        forge.retain(|f| {
            let owned =
                super::matching::owned_group(&self.config.name, &self.config.runner_groups, &f.name)
                    .is_some();
            if !owned && !recorded.contains(f.name.as_str()) {
                tracing::debug!(runner = %f.name, "named like ours by the old rule, with no record: left alone");
            }
            owned || recorded.contains(f.name.as_str())
        });
        let lost = self.lost_jobs(g, dry_run).await?;
        if lost > 0 {
            tracing::info!(group = %g.name, lost, "jobs queued on GitHub whose webhook was lost");
        }
        let waiting = self.store.waiting(&g.name).await? + lost;
        let now = self.store.now().await?;
        // Suspects: instances and GitHub runners of ours with no record.
        let suspects = plan::suspects(&records, &forge, &instances);
        let hold = if suspects.is_empty() {
            Duration::ZERO
        } else {
            self.config
                .time_to_start
                .as_std()
                .max(self.config.cleanup_grace.as_std())
        };
        let (marker, written) = if dry_run {
            self.store.peek_marker(hold, now).await?
        } else {
            self.store.marker(hold).await?
        };
        if written && !suspects.is_empty() {
            tracing::warn!(
                group = %g.name,
                suspects = suspects.len(),
                hold_until = marker.hold_until,
                "Redis has no data marker but instances or runners of ours exist: it appears to have lost its data; nothing without a record is deleted until the hold ends"
            );
        }
        let first_seen = if dry_run {
            self.store.peek_first_seen(&g.name, &suspects, now).await?
        } else {
            self.store.first_seen(&g.name, &suspects).await?
        };
        Ok(Seen {
            now,
            hold_until: marker.hold_until,
            first_seen: suspects.into_iter().zip(first_seen).collect(),
            forge,
            instances,
            records,
            waiting,
            forge_blind,
        })
    }

    /// Carries out one action of a health-check plan.
    async fn carry_out(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        action: &Action,
        now: u64,
        demand: Want,
    ) -> Result<HealthResult, Failure> {
        let running = || HealthResult::Skipped(Some("running a job".into()));
        let ok = || HealthResult::Ok(None);
        let busy = |r: Result<Removed, Failure>| match r {
            Ok(Removed::Busy) => Ok(running()),
            Ok(_) => Ok(ok()),
            Err(Failure::Busy(why)) => Ok(HealthResult::Skipped(Some(why))),
            Err(e) => Err(e),
        };
        match action {
            Action::Create { count, .. } => {
                let mut made = 0;
                let mut last = Ok(());
                for i in 0..*count {
                    let seed = format!("health:{now}:{i}:{:08x}", fastrand::u32(..));
                    match self.create(g, &seed, None, demand, false).await {
                        Ok(Created::New(_)) => made += 1,
                        Ok(_) => {}
                        Err(e) => {
                            // No task comes back for it (as for `runners create`): half made,
                            // it would count as supply for a moment and cover jobs it never
                            // serves. Another task's runner (busy) is left to that task.
                            if !matches!(e, Failure::Busy(_)) {
                                let _ = self.abandon(&self.runner_name(g, &seed)).await;
                            }
                            last = Err(e)
                        }
                    }
                }
                last.map(|_| HealthResult::Ok(Some(format!("{made} created"))))
            }
            Action::Delete { name, .. } => busy(self.delete_runner(name, false).await),
            Action::Resume { name, .. } => {
                let lock = format!("runner:{name}");
                let Some(token) = self.store.try_lock(&lock, RUNNER_LOCK_TTL).await? else {
                    return Ok(HealthResult::Skipped(Some(
                        "its task is still making it".into(),
                    )));
                };
                let work = self.make(g, name, Want::Explicit);
                Ok(
                    match self
                        .while_locked(&lock, &token, RUNNER_LOCK_TTL, work)
                        .await?
                    {
                        Made::Started => HealthResult::Ok(Some("made".into())),
                        _ => ok(),
                    },
                )
            }
            Action::DeleteInstance { id, forge_id, .. } => {
                // Its GitHub registration first: GitHub refuses to remove a runner that runs a
                // job, and then the instance stays.
                if let Some(fid) = forge_id {
                    if self.forge.delete_runner(scope, *fid).await? == Deleted::Busy {
                        return Ok(running());
                    }
                }
                self.backend(g)?.delete(id).await?;
                Ok(ok())
            }
            Action::DeleteForgeRunner { id, .. } => {
                match self.forge.delete_runner(scope, *id).await? {
                    Deleted::Busy => Ok(running()),
                    _ => Ok(ok()),
                }
            }
            Action::SetStatus {
                name,
                status,
                forge_id,
            } => {
                self.store
                    .update(
                        name,
                        Some(*status),
                        &[],
                        &RunnerPatch {
                            forge_id: forge_id.map(Some),
                            online_at: Some(now),
                            ..Default::default()
                        },
                    )
                    .await?;
                Ok(ok())
            }
            Action::Hold { .. } | Action::Skip { .. } | Action::ReplaceToken { .. } => {
                Ok(HealthResult::Skipped(None))
            }
        }
    }
}

/// What a health pass saw of a group, for its plan.
struct Seen {
    now: u64,
    hold_until: u64,
    first_seen: BTreeMap<String, u64>,
    forge: Vec<forge::ForgeRunner>,
    instances: Vec<crate::backend::Instance>,
    records: Vec<Runner>,
    waiting: u32,
    /// Why the forge's runners could not be listed, when they could not.
    forge_blind: Option<String>,
}
