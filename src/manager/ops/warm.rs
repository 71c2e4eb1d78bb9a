//! Warm pools, carried out: making a warm instance (no runner registered for it: its boot
//! waits at the broker for a credential that does not exist yet, or for the backend to deliver
//! one), retiring one no job took, and turning one a job took into that job's runner.
//! The decisions are `manager::warm`'s.

use super::*;
use crate::backend::Instance;
use crate::manager::warm::{self, PoolView, WarmAction};
use crate::model::Pool;

/// Warm instances that could not be made (they are replaced on a later pass, after a pause).
pub static WARM_FAILURES: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_warm_failures_total",
    "Warm-pool instances that failed to be made, to stop or to start, by group and pool.",
    &["group", "pool"],
);

/// Warm instances a job took, by group and pool.
pub static WARM_TAKEN: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_warm_taken_total",
    "Warm-pool instances a job took, by group and pool.",
    &["group", "pool"],
);

/// The pause after a warm instance failed, doubled for each failure in a row, at most
/// [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Warm instances of one pass made at a time.
const WARM_PARALLEL: usize = 8;

/// One group's failures in a row and until when making waits.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Manager {
    /// Brings the group's warm pool to its target now: retires what is old, vanished, stuck
    /// or above the target, and makes what is missing (within `max_runners`, after the room
    /// waiting jobs need). `listed`: the backend's instances and when their listing began,
    /// when the caller listed them. Returns what it did.
    pub async fn warm_pass(
        &self,
        g: &RunnerGroup,
        listed: Option<(&[Instance], u64)>,
    ) -> Result<Vec<HealthRow>, Failure> {
        let Some(pool) = &g.warm_pool else {
            return Ok(Vec::new());
        };
        // One pass over a group's pool at a time; another one that runs fills it.
        let lock = format!("warm:{}", g.name);
        let Some(token) = self.store.try_lock(&lock, HEALTH_LOCK_TTL).await? else {
            return Ok(Vec::new());
        };
        let pass = self.warm_pass_locked(g, pool, listed);
        self.while_locked(&lock, &token, HEALTH_LOCK_TTL, pass)
            .await
    }

    async fn warm_pass_locked(
        &self,
        g: &RunnerGroup,
        pool: &crate::config::warm::WarmPool,
        listed: Option<(&[Instance], u64)>,
    ) -> Result<Vec<HealthRow>, Failure> {
        let backend = self.backend(g)?;
        let mut records = self.store.runners_of_group(&g.name).await?;
        if self.settle_booted(g, &records).await? > 0 {
            records = self.store.runners_of_group(&g.name).await?;
        }
        let now = self.store.now().await?;
        let waiting = self.store.waiting(&g.name).await?;
        let free = records
            .iter()
            .filter(|r| crate::model::counts_as_free(r, now, false))
            .count() as u32;
        let view = PoolView {
            now,
            listed_at: listed.map(|(_, at)| at),
            target: pool.target(now),
            support: backend.warm_support(),
            max_runners: g.max_runners,
            max_idle_age: pool.max_idle_age.as_secs(),
            time_to_start: self.config.time_to_start.as_secs(),
            uncovered_jobs: waiting.saturating_sub(free),
            records: &records,
            instances: listed.map_or(&[], |(i, _)| i),
        };
        let mut rows = Vec::new();
        for action in warm::decide(&view) {
            let (row, result) = self.carry_out_warm(g, &action).await;
            rows.push(HealthRow {
                group: g.name.clone(),
                action: row,
                result,
            });
        }
        Ok(rows)
    }

    async fn carry_out_warm(&self, g: &RunnerGroup, action: &WarmAction) -> (Action, HealthResult) {
        match action {
            WarmAction::Make {
                pool,
                count,
                reason,
            } => {
                let row = Action::Warm {
                    pool: *pool,
                    count: *count,
                    reason: reason.clone(),
                };
                if let Some(wait) = self.backing_off(g) {
                    let why = format!(
                        "a warm instance failed; the next is made in {}s",
                        wait.as_secs()
                    );
                    return (row, HealthResult::Skipped(Some(why)));
                }
                // Several at a time: a stopped pool's instance waits for its first boot.
                use futures_util::stream::StreamExt;
                let results: Vec<Result<bool, Failure>> = futures_util::stream::iter(0..*count)
                    .map(|_| self.make_warm(g, *pool))
                    .buffer_unordered(WARM_PARALLEL)
                    .collect()
                    .await;
                let made = results.iter().filter(|r| matches!(r, Ok(true))).count();
                match results.into_iter().find_map(Result::err) {
                    Some(e) if made == 0 => (row, HealthResult::Failed(e.to_string())),
                    _ => (row, HealthResult::Ok(Some(format!("{made} made")))),
                }
            }
            WarmAction::Retire { name, reason } => {
                let row = Action::Retire {
                    name: name.clone(),
                    reason: reason.clone(),
                };
                match self.retire(g, name).await {
                    Ok(true) => (row, HealthResult::Ok(None)),
                    Ok(false) => (
                        row,
                        HealthResult::Skipped(Some("a job took it, or a task works on it".into())),
                    ),
                    Err(e) => (row, HealthResult::Failed(e.to_string())),
                }
            }
            WarmAction::Short { reason, .. } => (
                Action::Skip {
                    reason: reason.clone(),
                },
                HealthResult::Skipped(None),
            ),
        }
    }

    /// How long making warm instances of `g` still waits after failures.
    fn backing_off(&self, g: &RunnerGroup) -> Option<Duration> {
        let b = self.warm_backoff.lock().ok()?.get(&g.name).copied()?;
        b.until?.checked_duration_since(Instant::now())
    }

    fn note_warm_result(&self, g: &RunnerGroup, pool: Pool, ok: bool) {
        let Ok(mut all) = self.warm_backoff.lock() else {
            return;
        };
        let b = all.entry(g.name.clone()).or_default();
        if ok {
            *b = Backoff::default();
            return;
        }
        WARM_FAILURES.inc(&[&g.name, pool.as_str()]);
        // Failures of one pass (made at once) count as one in the row.
        if b.until.is_some_and(|until| until > Instant::now()) {
            return;
        }
        let pause = BACKOFF_START
            .saturating_mul(1 << b.failures.min(10))
            .min(BACKOFF_MAX);
        b.failures += 1;
        b.until = Some(Instant::now() + pause);
    }

    /// Makes one warm instance of `pool`. False when the group is full.
    async fn make_warm(&self, g: &RunnerGroup, pool: Pool) -> Result<bool, Failure> {
        let backend = self.backend(g)?.clone();
        let now = self.store.now().await?;
        let name = self.runner_name(g, &format!("warm:{now}:{:08x}", fastrand::u32(..)));
        let mut record = Runner::reserved(&name, &g.name, &g.backend, g.labels.clone(), None, now);
        record.status = RunnerStatus::Warming;
        record.pool = Some(pool);
        let lock = format!("runner:{name}");
        let detail = format!("warm pool: {}", pool.as_str());
        let (reservation, token) = self
            .store
            .reserve_noting(
                &record,
                g.max_runners,
                Want::Explicit,
                Also {
                    detail: &detail,
                    lock: Some((&lock, RUNNER_LOCK_TTL)),
                    waiting: None,
                },
            )
            .await?;
        let (Reservation::Reserved { .. }, Some(token)) = (reservation, token) else {
            return Ok(false);
        };
        let work = async {
            let made = self.warm_up(g, &name, pool, &*backend).await;
            self.note_warm_result(g, pool, made.is_ok());
            if let Err(e) = &made {
                tracing::warn!(runner = %name, group = %g.name, pool = pool.as_str(), error = %e, "a warm instance could not be made; removing it");
                if let Err(e) = self.drop_warm(g, &name).await {
                    tracing::warn!(runner = %name, error = %e, "could not remove a warm instance that failed; the health check will");
                }
            }
            made
        };
        self.while_locked(&lock, &token, RUNNER_LOCK_TTL, work)
            .await?;
        Ok(true)
    }

    /// Boots a warm instance for the record `name` (warming, locked): without a credential,
    /// its boot waits at the broker (or for the backend to deliver one); a stopped pool's is
    /// stopped once booted. Warm when done.
    async fn warm_up(
        &self,
        g: &RunnerGroup,
        name: &str,
        pool: Pool,
        backend: &dyn Backend,
    ) -> Result<(), Failure> {
        let scope = Self::scope(g);
        // Nothing is registered: the boot's credential is empty, and goes.
        let placeholder = match self.forge.tokens() {
            None => Credential::Jit(crate::config::Secret::new("")),
            Some(_) => Credential::RegistrationToken(crate::config::Secret::new("")),
        };
        let mut boot = self.boot_data(g, &scope, name, placeholder, backend)?;
        let brokered = match (&self.broker, backend.brokered()) {
            (Some(link), true) => {
                let idle = g.warm_pool.as_ref().map_or(0, |w| w.max_idle_age.as_secs());
                let ttl = Duration::from_secs(idle + self.config.time_to_start.as_secs());
                let issued = link
                    .broker
                    .issue_pending(name, ttl)
                    .await
                    .map_err(|e| Failure::transient(e.to_string()))?;
                bootstrap::through_broker_proving(
                    &mut boot,
                    &link.url,
                    &link.ca_pem,
                    &issued.token,
                    ttl.as_secs(),
                    backend.kind().identity_proof(),
                )
                .map_err(|e| Failure::config(e.to_string()))?;
                Some(issued.id)
            }
            _ => {
                boot.files.retain(|f| !bootstrap::is_secret(&f.path));
                None
            }
        };
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
                warm: Some(pool),
            })
            .await?;
        // From now on the backend lists it: a listing begun later that lacks it means it
        // vanished (`manager::warm`).
        let made = RunnerPatch {
            instance_id: Some(Some(instance.id.clone())),
            requested_at: Some(Some(self.store.now().await?)),
            ..Default::default()
        };
        self.warm_step(name, None, &made).await?;
        if let Some(id) = &brokered {
            self.bind(name, id, &instance).await;
        }
        // A VM is warm once it has booted (image pulled, first boot's work done: its hook
        // asked the broker), which a later pass sees (`settle_booted`); a stopped pool's is
        // stopped then. A job takes only warm instances, so none waits for a first boot. A
        // container is ready at once; a stopped pool's is created and never started.
        if backend.kind().boot_style() == crate::backend::BootStyle::Vm {
            tracing::info!(runner = %name, group = %g.name, pool = pool.as_str(), "warm instance booting; it is warm once booted");
            return Ok(());
        }
        if pool == Pool::Stopped {
            backend.stop(&instance.id).await?;
        }
        self.warm_step(name, Some(RunnerStatus::Warm), &RunnerPatch::default())
            .await?;
        tracing::info!(runner = %name, group = %g.name, pool = pool.as_str(), "warm instance ready");
        Ok(())
    }

    /// Whether the warm VM of record `r` has booted: its hook asked the broker or, on a
    /// backend without it (a simulation's), the backend says it runs.
    async fn booted(&self, backend: &dyn Backend, r: &Runner) -> Result<bool, Failure> {
        match (&self.broker, backend.brokered()) {
            (Some(link), true) => link
                .broker
                .asked(&r.name)
                .await
                .map_err(|e| Failure::transient(e.to_string())),
            _ => {
                let id = r.instance_id.as_deref().unwrap_or_default();
                let state = backend.get(id).await?.map(|i| i.state);
                Ok(state == Some(crate::backend::InstanceState::Running))
            }
        }
    }

    /// Makes the warm VMs that have booted since they were made warm, a stopped pool's once
    /// stopped. One another task holds is left for a later pass. Returns how many.
    async fn settle_booted(&self, g: &RunnerGroup, records: &[Runner]) -> Result<u32, Failure> {
        let backend = self.backend(g)?.clone();
        if backend.kind().boot_style() != crate::backend::BootStyle::Vm {
            return Ok(0);
        }
        let mut stopped = 0;
        let booting = records
            .iter()
            .filter(|r| r.status == RunnerStatus::Warming && r.instance_id.is_some());
        for r in booting {
            if !self.booted(&*backend, r).await? {
                continue;
            }
            let lock = format!("runner:{}", r.name);
            let Some(token) = self.store.try_lock(&lock, RUNNER_LOCK_TTL).await? else {
                continue;
            };
            let pool = r.pool.unwrap_or(Pool::Hot);
            let work = async {
                let id = r.instance_id.as_deref().unwrap_or_default();
                let made = async {
                    if pool == Pool::Stopped {
                        backend.stop(id).await?;
                    }
                    self.warm_step(&r.name, Some(RunnerStatus::Warm), &RunnerPatch::default())
                        .await
                }
                .await;
                self.note_warm_result(g, pool, made.is_ok());
                match made {
                    Ok(()) => {
                        tracing::info!(runner = %r.name, group = %g.name, pool = pool.as_str(), "warm instance booted: ready");
                        Ok(true)
                    }
                    Err(e) => {
                        tracing::warn!(runner = %r.name, group = %g.name, error = %e, "a booted warm instance could not be made ready; removing it");
                        let retired = self
                            .store
                            .update(
                                &r.name,
                                Some(RunnerStatus::Deleting),
                                &[RunnerStatus::Warming],
                                &RunnerPatch::default(),
                            )
                            .await?;
                        if matches!(retired, Transition::Done(_)) {
                            self.drop_warm(g, &r.name).await?;
                        }
                        Ok(false)
                    }
                }
            };
            if self
                .while_locked(&lock, &token, RUNNER_LOCK_TTL, work)
                .await?
            {
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    /// One step of making a warm instance; an error when its record moved on (retired).
    async fn warm_step(
        &self,
        name: &str,
        status: Option<RunnerStatus>,
        patch: &RunnerPatch,
    ) -> Result<(), Failure> {
        match self
            .store
            .update(name, status, &[RunnerStatus::Warming], patch)
            .await?
        {
            Transition::Done(_) => Ok(()),
            _ => Err(Failure::Transient(Cause::State(format!(
                "the record of warm instance {name} moved on while it was made"
            )))),
        }
    }

    /// Removes a warm instance that failed or is retired (its record is ours, locked, and no
    /// job took it): its pending broker record, its instance, its record.
    async fn drop_warm(&self, g: &RunnerGroup, name: &str) -> Result<(), Failure> {
        if let Some(link) = &self.broker {
            link.broker
                .revoke(name)
                .await
                .map_err(|e| Failure::transient(e.to_string()))?;
        }
        let backend = self.backend(g)?;
        let id = self.store.get(name).await?.and_then(|r| r.instance_id);
        match id {
            Some(id) => backend.delete(&id).await?,
            None => {
                for i in backend.list().await? {
                    if i.runner() == Some(name) {
                        backend.delete(&i.id).await?;
                    }
                }
            }
        }
        self.store.remove_of(name, Some(&g.name)).await?;
        Ok(())
    }

    /// Retires a warm instance no job took: atomically marked deleting only while it is still
    /// warm (or warming), so a job's take and a retirement never both win. False when a job
    /// took it or a task works on it.
    async fn retire(&self, g: &RunnerGroup, name: &str) -> Result<bool, Failure> {
        let lock = format!("runner:{name}");
        let Some(token) = self.store.try_lock(&lock, RUNNER_LOCK_TTL).await? else {
            return Ok(false);
        };
        let work = async {
            let (t, _) = self
                .store
                .update_reading(
                    name,
                    Some(RunnerStatus::Deleting),
                    &[RunnerStatus::Warm, RunnerStatus::Warming],
                    &RunnerPatch::default(),
                )
                .await?;
            if !matches!(t, Transition::Done(_)) {
                return Ok(false);
            }
            self.drop_warm(g, name).await?;
            tracing::info!(runner = %name, group = %g.name, "warm instance retired");
            Ok(true)
        };
        self.while_locked(&lock, &token, RUNNER_LOCK_TTL, work)
            .await
    }

    /// Turns the warm instance `name`, which a job took (its record `creating`, locked), into
    /// that job's runner: registers it, hands its instance the credential (sealed in the
    /// broker, where its boot waits, or delivered by the backend), starts it when it was
    /// stopped. Resumable: a retry finds what an earlier attempt did.
    pub(super) async fn make_from_warm(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        record: Runner,
    ) -> Result<Made, Failure> {
        let name = record.name.as_str();
        let backend = self.backend(g)?.clone();
        let pool = record.pool.unwrap_or(Pool::Hot);
        let Some(id) = record.instance_id.clone() else {
            return Err(Failure::Transient(Cause::State(format!(
                "warm instance {name} has no instance id"
            ))));
        };
        if record.started_at.is_none() {
            let registered = match self.register_warm(g, scope, &record).await? {
                Ok(r) => r,
                Err(made) => return Ok(made),
            };
            let (forge_id, credential) = registered;
            self.note_step(record.created_for_job, "registered").await;
            if let Some(job) = record.created_for_job {
                self.with_steps(job, |s| s.source = Some(pool.as_str()));
            }
            let patch = RunnerPatch {
                forge_id: Some(forge_id),
                ..Default::default()
            };
            if !self.step(name, None, &patch).await? {
                self.unregister_unrecorded(name, scope, forge_id).await;
                return Ok(Made::Vanished);
            }
            if let Err(e) = self
                .deliver_warm(g, scope, name, &id, pool, credential, &*backend)
                .await
            {
                // Its instance cannot get the credential: it goes, and the job's task asks again.
                tracing::warn!(runner = %name, error = %e, "a warm instance could not be handed its credential; removing it");
                let _ = self.delete_locked(name, true).await;
                return Err(Failure::transient(format!(
                    "warm instance {name} could not be handed its credential: {e}"
                )));
            }
            self.note_step(record.created_for_job, "instance").await;
        }
        let patch = RunnerPatch {
            started_at: Some(self.store.now().await?),
            ..Default::default()
        };
        if !self.step(name, Some(RunnerStatus::Started), &patch).await? {
            return Ok(Made::Vanished);
        }
        WARM_TAKEN.inc(&[&g.name, pool.as_str()]);
        let instance = backend.get(&id).await?.unwrap_or(Instance {
            id,
            state: crate::backend::InstanceState::Running,
            tags: Default::default(),
            created_at: None,
            spot_fallback: false,
            address: None,
            identity: None,
        });
        self.created(g, name, &instance, record.created_for_job)
            .await;
        Ok(Made::Started)
    }

    /// The warm instance's registration: made now, or one an earlier attempt made that no
    /// process holds the credential of (revoked, then made again). `Err(made)` when an
    /// earlier attempt's runner is online (or busy) already: it is adopted.
    async fn register_warm(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        record: &Runner,
    ) -> Result<Result<(Option<u64>, Credential), Made>, Failure> {
        let name = record.name.as_str();
        let earlier = match record.forge_id {
            Some(_) => true,
            None => match self.register(g, scope, name).await {
                Ok(r) => return Ok(Ok(r)),
                // The name is registered: an earlier attempt's answer was lost.
                Err(Failure::Transient(Cause::Forge(ForgeError::Conflict(_)))) => true,
                Err(e) => return Err(e),
            },
        };
        if earlier {
            if let Some(f) = self.registration(scope, name).await? {
                if f.online() || f.busy {
                    let patch = RunnerPatch {
                        forge_id: Some(Some(f.id)),
                        started_at: Some(self.store.now().await?),
                        ..Default::default()
                    };
                    self.step(name, Some(RunnerStatus::Started), &patch).await?;
                    return Ok(Err(Made::Started));
                }
                self.forge.delete_runner(scope, f.id).await?;
            }
        }
        self.register(g, scope, name).await.map(Ok)
    }

    /// Hands the taken warm instance its credential and starts it when it was stopped.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_warm(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        name: &str,
        id: &str,
        pool: Pool,
        credential: Credential,
        backend: &dyn Backend,
    ) -> Result<(), Failure> {
        match (&self.broker, backend.brokered()) {
            (Some(link), true) => {
                let secret = match &credential {
                    Credential::Jit(s) | Credential::RegistrationToken(s) => s,
                };
                let filled = link
                    .broker
                    .fill(name, secret, self.config.time_to_start.as_std())
                    .await
                    .map_err(|e| Failure::transient(e.to_string()))?;
                if !filled {
                    return Err(Failure::transient(
                        "its broker record is gone (expired or revoked)",
                    ));
                }
                if pool == Pool::Stopped {
                    backend.start(id).await?;
                }
            }
            _ => {
                let boot = self.boot_data(g, scope, name, credential, backend)?;
                if pool == Pool::Stopped {
                    backend.start(id).await?;
                }
                backend.deliver(id, &boot).await?;
            }
        }
        Ok(())
    }
}
