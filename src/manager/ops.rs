//! The runner life cycle, with the I/O: create, delete, job events and one health-check pass.
//! The decisions themselves are in `plan` and `matching`; what is here carries them out, in an
//! order that survives a crash at any point (a retried task resumes where the last one stopped,
//! and a health check finishes what nobody finished).

use super::plan::{self, Action, Observed};
use crate::backend::{Backend, BackendError, CreateRequest, OwnerTags};
use crate::bootstrap::{self, Credential, RunnerSetup};
use crate::config::{Config, RunnerGroup};
use crate::forge::{self, Deleted, Forge, ForgeError, Scope};
use crate::model::Runner;
use crate::model::{unix_now, RunnerStatus};
use crate::store::{RedisStore, Reservation, RunnerPatch, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May pass on a retry (network, rate limit, capacity of the cloud).
    Transient(String),
    /// Will fail again until someone changes something.
    Permanent(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(m) | Failure::Permanent(m) => f.write_str(m),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Transient(e.to_string())
    }
}

impl From<ForgeError> for Failure {
    fn from(e: ForgeError) -> Self {
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Permanent(e.to_string())
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
    /// `ok`, `skipped: …` or `failed: …`.
    pub result: String,
}

/// A hook told of each runner created: its name and the job it was made for.
pub type OnCreate = Arc<dyn Fn(&str, Option<u64>) + Send + Sync>;

/// The runner manager: the domain joined to its store, forge and backends.
pub struct Manager {
    pub config: Arc<Config>,
    pub store: RedisStore,
    pub forge: Arc<dyn Forge>,
    backends: HashMap<String, Arc<dyn Backend>>,
    /// Where runners register (`config.sh --url`): `https://github.com` or the GHES host.
    web_url: String,
    group_ids: Mutex<HashMap<String, u64>>,
    /// Called with the runner name and its job right after the backend created its instance
    /// (metrics, the demo).
    pub on_create: Option<OnCreate>,
}

/// A short, stable suffix for a runner name, from what the runner is for.
fn suffix(seed: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// The web address runners register against, from the API root.
pub fn web_url(api_base: &str) -> String {
    let base = api_base.trim_end_matches('/');
    if base == "https://api.github.com" {
        "https://github.com".into()
    } else if let Some(host) = base.strip_suffix("/api/v3") {
        host.into()
    } else {
        base.into()
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
            web_url: web_url(&config.github.base_url),
            config,
            store,
            forge,
            backends,
            group_ids: Mutex::new(HashMap::new()),
            on_create: None,
        }
    }

    pub fn scope(g: &RunnerGroup) -> Scope {
        match &g.repository {
            Some(repo) => Scope::Repo {
                owner: g.organization.clone(),
                repo: repo.clone(),
            },
            None => Scope::Org(g.organization.clone()),
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

    fn backend(&self, g: &RunnerGroup) -> Result<&Arc<dyn Backend>, Failure> {
        self.backends
            .get(&g.backend)
            .ok_or_else(|| Failure::Permanent(format!("backend `{}` is not available", g.backend)))
    }

    /// The runner name for a seed (`job:ID` for a queued job, a task id otherwise).
    pub fn runner_name(&self, g: &RunnerGroup, seed: &str) -> String {
        format!("{}-{}-{}", self.config.name, g.name, suffix(seed))
    }

    /// GitHub's id of the group's runner group (1, the default, for a repository's runners).
    async fn forge_group_id(&self, g: &RunnerGroup) -> Result<u64, Failure> {
        if g.repository.is_some() {
            return Ok(1);
        }
        if let Some(id) = self
            .group_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g.name)
        {
            return Ok(*id);
        }
        let groups = self.forge.list_runner_groups(&g.organization).await?;
        let found = groups.iter().find(|x| x.name == g.name).ok_or_else(|| {
            Failure::Transient(format!(
                "runner group `{}` does not exist in {} on GitHub: run `runnerctl groups sync`",
                g.name, g.organization
            ))
        })?;
        self.group_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(g.name.clone(), found.id);
        Ok(found.id)
    }

    /// Creates the runner for `seed` in `g`, or resumes its creation, or finds it done.
    pub async fn create_runner(
        &self,
        g: &RunnerGroup,
        seed: &str,
        for_job: Option<u64>,
    ) -> Result<Created, Failure> {
        let name = self.runner_name(g, seed);
        let record = Runner::reserved(
            &name,
            &g.name,
            &g.backend,
            g.labels.clone(),
            for_job,
            unix_now(),
        );
        match self.store.reserve(&record, g.max_runners).await? {
            Reservation::Full { held } => return Ok(Created::Full { held }),
            Reservation::Reserved { .. } => {}
            Reservation::Exists => match self.store.get(&name).await? {
                Some(r) if matches!(r.status, RunnerStatus::Reserved | RunnerStatus::Creating) => {
                    tracing::info!(runner = %name, "resuming a runner creation");
                }
                Some(_) | None => return Ok(Created::Exists(name)),
            },
        }
        match self.make(g, &name, for_job).await {
            Ok(()) => Ok(Created::New(name)),
            Err(Failure::Permanent(why)) => {
                // Nothing half-made stays behind, and the slot is given back.
                tracing::error!(runner = %name, error = %why, "runner creation failed; cleaning up");
                let _ = self.delete_runner(&name, true).await;
                Err(Failure::Permanent(why))
            }
            Err(e) => Err(e),
        }
    }

    async fn make(&self, g: &RunnerGroup, name: &str, for_job: Option<u64>) -> Result<(), Failure> {
        self.store
            .update(
                name,
                Some(RunnerStatus::Creating),
                &[],
                &RunnerPatch::default(),
            )
            .await?;
        let scope = Self::scope(g);
        let group_id = self.forge_group_id(g).await?;
        let jit =
            match forge::jit_config_for(&*self.forge, &scope, name, group_id, &g.labels, "_work")
                .await
            {
                Ok(jit) => jit,
                // An earlier attempt (by a worker that died) registered this runner and it is
                // online: its instance exists. Adopt them rather than make a second runner.
                Err(ForgeError::Conflict(why)) => return self.adopt(g, &scope, name, why).await,
                Err(e) => return Err(e.into()),
            };
        self.store
            .update(
                name,
                None,
                &[],
                &RunnerPatch {
                    forge_id: Some(Some(jit.runner.id)),
                    ..Default::default()
                },
            )
            .await?;
        let backend = self.backend(g)?;
        let template = match &g.bootstrap_template {
            Some(p) => {
                Some(bootstrap::read_template(p).map_err(|e| Failure::Permanent(e.to_string()))?)
            }
            None => None,
        };
        let setup = RunnerSetup {
            runner_name: name.to_string(),
            labels: g.labels.clone(),
            url: scope.html_url(&self.web_url),
            runner_group: g.repository.is_none().then(|| g.name.clone()),
            credential: Credential::Jit(jit.encoded),
        };
        let boot = bootstrap::render(backend.kind(), &setup, template.as_deref())
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        let instance = backend
            .create(&CreateRequest {
                runner_name: name.to_string(),
                spec: g.spec.clone(),
                boot,
                tags: OwnerTags {
                    manager: self.config.name.clone(),
                    group: g.name.clone(),
                    runner: name.to_string(),
                },
            })
            .await?;
        if instance.spot_fallback {
            // Counted in Redis so that every process's fallbacks add up (`/metrics` shows it).
            if let Err(e) = self.store.count_mark(&spot_fallback_mark(&g.name)).await {
                tracing::warn!(group = %g.name, error = %e, "could not count a spot fallback");
            }
        }
        if let Some(f) = &self.on_create {
            f(name, for_job);
        }
        self.store
            .update(
                name,
                Some(RunnerStatus::Started),
                &[RunnerStatus::Creating],
                &RunnerPatch {
                    instance_id: Some(Some(instance.id)),
                    started_at: Some(unix_now()),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(runner = %name, group = %g.name, "runner created");
        Ok(())
    }

    /// Records a runner that an interrupted attempt made: its GitHub registration and instance
    /// exist, the record does not say so yet.
    async fn adopt(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        name: &str,
        why: String,
    ) -> Result<(), Failure> {
        let registered = self
            .forge
            .list_runners(scope)
            .await?
            .into_iter()
            .find(|f| f.name == name);
        let instance = self
            .backend(g)?
            .list()
            .await?
            .into_iter()
            .find(|i| i.runner() == Some(name));
        match (registered, instance) {
            (Some(f), Some(i)) => {
                tracing::info!(runner = %name, "adopting a runner an interrupted attempt made");
                self.store
                    .update(
                        name,
                        Some(RunnerStatus::Started),
                        &[RunnerStatus::Reserved, RunnerStatus::Creating],
                        &RunnerPatch {
                            forge_id: Some(Some(f.id)),
                            instance_id: Some(Some(i.id)),
                            started_at: Some(unix_now()),
                            ..Default::default()
                        },
                    )
                    .await?;
                Ok(())
            }
            // Registered and online without an instance of ours: not something to adopt.
            // Retry later; the health check sorts it out if it stays so.
            _ => Err(Failure::Transient(why)),
        }
    }

    /// Deletes a runner: its GitHub registration first (so it takes no new job), then its
    /// instance, then its record (which frees its slot). A runner that runs a job is left alone
    /// unless `force`.
    pub async fn delete_runner(&self, name: &str, force: bool) -> Result<Removed, Failure> {
        let Some(r) = self.store.get(name).await? else {
            return Ok(Removed::Missing);
        };
        let g = self.group(&r.group);
        self.store
            .update(
                name,
                Some(RunnerStatus::Deleting),
                &[],
                &RunnerPatch::default(),
            )
            .await?;
        if let Some(g) = g {
            let scope = Self::scope(g);
            let forge_id = match r.forge_id {
                Some(id) => Some(id),
                // Crashed between registration and recording it: find it by name.
                None => self
                    .forge
                    .list_runners(&scope)
                    .await?
                    .into_iter()
                    .find(|f| f.name == name)
                    .map(|f| f.id),
            };
            if let Some(id) = forge_id {
                if self.forge.delete_runner(&scope, id).await? == Deleted::Busy && !force {
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
            }
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
        self.store.remove(name).await?;
        tracing::info!(runner = %name, "runner deleted");
        Ok(Removed::Deleted)
    }

    /// A job of `group` was queued: make a runner for it.
    pub async fn job_queued(&self, group: &str, job_id: u64) -> Result<Created, Failure> {
        self.runner_for_job(group, job_id, true).await
    }

    /// Makes the runner of a queued job. `track` notes the job as waiting until its
    /// `in_progress` or `completed` event; a job found by the health check's scan (its webhooks
    /// lost) is counted by the scan instead, since no event will ever clear it.
    async fn runner_for_job(
        &self,
        group: &str,
        job_id: u64,
        track: bool,
    ) -> Result<Created, Failure> {
        let g = self
            .group(group)
            .ok_or_else(|| Failure::Permanent(format!("no runner group `{group}`")))?;
        // A task that waited for capacity may come back after its job ran on another runner:
        // then no runner is needed any more.
        if self.store.job_started(job_id).await? {
            return Ok(Created::Exists(String::new()));
        }
        if track {
            self.store.add_waiting(group, job_id, unix_now()).await?;
        }
        self.create_runner(g, &format!("job:{job_id}"), Some(job_id))
            .await
    }

    /// A runner took a job: it is active. (It may not be the runner made for that job.)
    pub async fn job_in_progress(&self, job_id: u64, runner: &str) -> Result<(), Failure> {
        self.store.mark_job_started(job_id, unix_now()).await?;
        self.store
            .remove_waiting(&self.group_names(), job_id)
            .await?;
        self.store
            .update(
                runner,
                Some(RunnerStatus::Active),
                &[],
                &RunnerPatch {
                    job_id: Some(Some(job_id)),
                    online_at: Some(unix_now()),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// A job ended: the runner that ran it goes.
    pub async fn job_completed(
        &self,
        job_id: u64,
        runner: Option<&str>,
    ) -> Result<Removed, Failure> {
        self.store.mark_job_started(job_id, unix_now()).await?;
        self.store
            .remove_waiting(&self.group_names(), job_id)
            .await?;
        match runner {
            // Ephemeral: done after one job. GitHub may still call it busy for a moment.
            Some(name) => match self.delete_runner(name, false).await? {
                Removed::Busy => Err(Failure::Transient(format!(
                    "runner {name} still reported busy after its job completed"
                ))),
                other => Ok(other),
            },
            None => Ok(Removed::Missing),
        }
    }

    /// Jobs queued on GitHub that belong to `g`, looking into a bounded number of repositories
    /// per pass (round robin), so a pass costs a few calls however large the organization.
    async fn queued_jobs_of(&self, g: &RunnerGroup) -> Result<Vec<forge::QueuedJob>, Failure> {
        const REPOS_PER_PASS: usize = 2;
        const RUNS_PER_REPO: usize = 5;
        let repos: Vec<String> = match (&g.repository, &g.selected_repositories) {
            (Some(r), _) => vec![r.clone()],
            (None, Some(list)) => list.clone(),
            (None, None) => self.forge.repositories(&g.organization).await?,
        };
        if repos.is_empty() {
            return Ok(Vec::new());
        }
        let start = self.store.next_cursor(&format!("scan:{}", g.name)).await? as usize;
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

    /// One health-check pass over a group, under the group's lock. Returns what it did.
    pub async fn health_check(&self, g: &RunnerGroup) -> Result<Vec<Done>, Failure> {
        // A short lock, renewed while the pass runs: a holder that dies blocks the group's
        // health checks for at most LOCK_TTL.
        const LOCK_TTL: Duration = Duration::from_secs(30);
        let lock = format!("health:{}", g.name);
        let Some(token) = self.store.try_lock(&lock, LOCK_TTL).await? else {
            return Ok(vec![]);
        };
        let keep = async {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                if let Err(e) = self.store.renew_lock(&lock, &token, LOCK_TTL).await {
                    tracing::debug!(error = %e, "could not renew the health-check lock");
                }
            }
        };
        let result = tokio::select! {
            r = self.health_pass(g) => r,
            _ = keep => unreachable!("the renewal loop never ends"),
        };
        let _ = self.store.unlock(&lock, &token).await;
        result
    }

    async fn health_pass(&self, g: &RunnerGroup) -> Result<Vec<Done>, Failure> {
        let now = unix_now();
        let scope = Self::scope(g);
        let prefix = format!("{}-{}-", self.config.name, g.name);
        let records = self.store.runners_of_group(&g.name).await?;
        let forge: Vec<_> = self
            .forge
            .list_runners(&scope)
            .await?
            .into_iter()
            .filter(|f| {
                f.name.starts_with(&prefix)
                    && super::matching::group_of_runner(
                        &self.config.name,
                        &self.config.runner_groups,
                        &f.name,
                    )
                    .is_some_and(|x| x.name == g.name)
            })
            .collect();
        let backend = self.backend(g)?;
        let instances: Vec<_> = backend
            .list()
            .await?
            .into_iter()
            .filter(|i| i.group() == Some(g.name.as_str()))
            .collect();
        let mut done = Vec::new();
        // Lost webhooks: jobs queued on GitHub for which no runner was made.
        let queued = self.queued_jobs_of(g).await.unwrap_or_else(|e| {
            tracing::warn!(group = %g.name, error = %e, "could not look for queued jobs");
            Vec::new()
        });
        for job in &queued {
            if records
                .iter()
                .any(|r| r.created_for_job == Some(job.id) || r.job_id == Some(job.id))
            {
                continue;
            }
            let result = self.runner_for_job(&g.name, job.id, false).await;
            done.push(Done {
                group: g.name.clone(),
                action: Action::Create {
                    count: 1,
                    reason: format!(
                        "job {} is queued on GitHub with no runner (lost webhook)",
                        job.id
                    ),
                },
                result: match result {
                    Ok(Created::New(n)) => format!("ok ({n})"),
                    Ok(Created::Exists(n)) => format!("ok ({n} exists)"),
                    Ok(Created::Full { .. }) => "skipped: group at max_runners".into(),
                    Err(e) => format!("failed: {e}"),
                },
            });
        }
        let records = if done.is_empty() {
            records
        } else {
            self.store.runners_of_group(&g.name).await?
        };
        let waiting = self
            .store
            .waiting(&g.name, now.saturating_sub(86_400))
            .await?
            .max(queued.len() as u32);
        let actions = plan::plan(&Observed {
            now,
            min_runners: g.min_runners,
            max_runners: g.max_runners,
            time_to_start: self.config.time_to_start.as_secs(),
            time_to_live: self.config.time_to_live.as_secs(),
            records: &records,
            forge: &forge,
            instances: &instances,
            waiting_jobs: waiting,
        });
        for action in actions {
            let result = match &action {
                Action::Create { count, .. } => {
                    let mut made = 0;
                    let mut last = Ok(());
                    for i in 0..*count {
                        let seed = format!("health:{now}:{i}:{:08x}", fastrand::u32(..));
                        match self.create_runner(g, &seed, None).await {
                            Ok(Created::New(_)) => made += 1,
                            Ok(_) => {}
                            Err(e) => last = Err(e),
                        }
                    }
                    last.map(|_| format!("ok ({made} created)"))
                }
                Action::Delete { name, .. } => {
                    self.delete_runner(name, false).await.map(|r| match r {
                        Removed::Busy => "skipped: running a job".into(),
                        _ => "ok".into(),
                    })
                }
                Action::DeleteInstance { id, .. } => backend
                    .delete(id)
                    .await
                    .map(|_| "ok".into())
                    .map_err(Failure::from),
                Action::DeleteForgeRunner { id, .. } => {
                    match self.forge.delete_runner(&scope, *id).await {
                        Ok(Deleted::Busy) => Ok("skipped: running a job".into()),
                        Ok(_) => Ok("ok".into()),
                        Err(e) => Err(e.into()),
                    }
                }
                Action::SetStatus {
                    name,
                    status,
                    forge_id,
                } => self
                    .store
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
                    .await
                    .map(|_| "ok".into())
                    .map_err(Failure::from),
            };
            done.push(Done {
                group: g.name.clone(),
                action,
                result: match result {
                    Ok(s) => s,
                    Err(e) => format!("failed: {e}"),
                },
            });
        }
        Ok(done)
    }
}

/// The counter (in the store's marks) of a group's creates that fell back from spot to
/// on-demand.
pub fn spot_fallback_mark(group: &str) -> String {
    format!("spot_fallback:{group}")
}
