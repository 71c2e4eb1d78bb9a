//! Making a runner: reserve a slot (for demand, only while free runners fall short), claim
//! the record, register on the forge, ask the backend for the instance, each step recorded so
//! that a retry resumes where the last attempt stopped.

use super::*;

impl Manager {
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
    pub(super) async fn supply(
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

    pub(super) async fn create(
        &self,
        g: &RunnerGroup,
        seed: &str,
        for_job: Option<u64>,
        want: Want,
        queued: bool,
    ) -> Result<Created, Failure> {
        let mut name = self.runner_name(g, seed);
        let now = self.store.now().await?;
        let record = Runner::reserved(&name, &g.name, &g.backend, g.labels.clone(), for_job, now);
        // The history's `reserved` entry is written by the reservation itself.
        let why = origin(seed, for_job);
        // A demand this call's reservation has just weighed needs no second look before
        // the runner is made; a resumed creation's does (see `make`).
        let mut checked = want;
        let mut lock = format!("runner:{name}");
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
        let took_warm = matches!(reservation, Reservation::Warm { .. });
        if let (Some(job), Reservation::Reserved { .. } | Reservation::Warm { .. }) =
            (for_job, &reservation)
        {
            self.note_choice(g, job, &reservation, &name).await;
        }
        match reservation {
            Reservation::Full { held } => return Ok(Created::Full { held }),
            Reservation::Covered { .. } => return Ok(Created::Covered),
            Reservation::Reserved { .. } => checked = Want::Explicit,
            Reservation::Warm { name: taken } => {
                tracing::info!(runner = %taken, "a warm instance takes the demand ({why})");
                name = taken;
                lock = format!("runner:{name}");
                checked = Want::Explicit;
            }
            Reservation::Exists => match self.store.get(&name).await? {
                Some(r) if matches!(r.status, RunnerStatus::Reserved | RunnerStatus::Creating) => {
                    tracing::info!(runner = %name, "resuming a runner creation");
                }
                Some(_) | None => return Ok(Created::Exists(name)),
            },
        }
        let token = match locked {
            Some(token) => token,
            // A warm instance is taken (the record is this job's now) while a pass may still
            // hold its lock for a moment (the end of its making, a retirement the take refused):
            // wait for it rather than leave the taken record to a later health pass.
            None if took_warm => self.lock_briefly(&lock).await?,
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
        let made = self
            .while_locked(&lock, &token, RUNNER_LOCK_TTL, work)
            .await?;
        if took_warm {
            // The pool is replenished after each take.
            if let Err(e) = self.warm_pass(g, None).await {
                tracing::warn!(group = %g.name, error = %e, "could not replenish the warm pool; the health check will");
            }
        }
        match made {
            Made::Started => Ok(Created::New(name)),
            Made::Abandoned => Ok(Created::Covered),
            Made::Vanished | Made::Exists => Ok(Created::Exists(name)),
        }
    }

    /// Makes (or resumes making) the runner `name`, whose record exists. Checks the record at
    /// every step: when it vanished, what this attempt made is removed again.
    pub(super) async fn make(
        &self,
        g: &RunnerGroup,
        name: &str,
        want: Want,
    ) -> Result<Made, Failure> {
        let (record, first_attempt) = match self.claim(name).await? {
            Ok(claimed) => claimed,
            Err(made) => return Ok(made),
        };
        let scope = Self::scope(g);
        // An earlier attempt may have registered it (its answer lost) or started it: look. A
        // first attempt cannot have, and does not list the scope's runners (a call per 100
        // runners on every creation).
        if record.pool.is_some() && record.instance_id.is_some() {
            // A warm instance a job took.
            return self.make_from_warm(g, &scope, record).await;
        }
        let recorded = record.forge_id.is_some() || record.instance_id.is_some();
        if recorded || !first_attempt {
            if let Some(made) = self.resume(g, &scope, &record).await? {
                return Ok(made);
            }
        }
        // Only now, with what an earlier attempt left revoked (an unrecorded registration
        // among it: the abandonment below looks at recorded progress only):
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
        // The backend it is made on: the group's first that takes a runner now.
        // A previous attempt whose create failed left its backend named and nothing asked for.
        let failed_on =
            (!first_attempt && record.requested_at.is_none() && record.instance_id.is_none())
                .then_some(record.backend.as_str());
        let choice = self.choose_backend(g, name, failed_on).await?;
        let backend = self.backend_named(&choice.name)?;
        if choice.name != record.backend {
            let patch = RunnerPatch {
                backend: Some(choice.name.clone()),
                ..Default::default()
            };
            if !self.step(name, None, &patch).await? {
                return Ok(Made::Vanished);
            }
        }
        let (forge_id, credential) = self.register(g, &scope, name).await?;
        self.note_step(record.created_for_job, "registered").await;
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
            self.unregister_unrecorded(name, &scope, forge_id).await;
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
                self.unregister_unrecorded(name, &scope, forge_id).await;
                return Ok(Made::Vanished);
            }
        }
        let tags = OwnerTags {
            manager: self.config.name.clone(),
            group: g.name.clone(),
            runner: name.to_string(),
        };
        let created = backend
            .create(&CreateRequest {
                runner_name: name.to_string(),
                spec: choice.spec.clone(),
                boot,
                tags,
                warm: None,
            })
            .await;
        self.created_on(g, &choice, created.as_ref().map(|_| ()))
            .await;
        if created.is_err() && g.backends.len() > 1 {
            // The backend refused: the next attempt starts again, on whichever backend takes
            // a runner then (a create is idempotent by name, so the same backend gives back
            // an instance an answer lost made).
            let patch = RunnerPatch {
                requested_at: Some(None),
                ..Default::default()
            };
            let _ = self.step(name, None, &patch).await;
        }
        let instance = created?;
        self.note_step(record.created_for_job, "instance").await;
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
            self.unregister_unrecorded(name, &scope, forge_id).await;
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
    pub(super) async fn register(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        name: &str,
    ) -> Result<(Option<u64>, Credential), Failure> {
        let req = forge::RunnerRequest {
            name,
            // A scale set's runners join its runner group.
            runner_group_id: match g.scale_set_mode() {
                true => None,
                false => self.forge_group_id(g).await?,
            },
            labels: &g.labels,
            work_folder: "_work",
            app: g.github_app.as_deref(),
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

    /// Takes the exclusive lock `lock`, waiting up to 10 s for its holder (asked again after
    /// 2 ms, then twice as long each time up to 50 ms).
    async fn lock_briefly(&self, lock: &str) -> Result<String, Failure> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(token) = self.store.try_lock(lock, RUNNER_LOCK_TTL).await? {
                return Ok(token);
            }
            if started.elapsed() >= Duration::from_secs(10) {
                return Err(Failure::Busy(format!("{lock} stayed locked for 10 s")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
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
    pub(super) async fn bind(&self, name: &str, id: &str, instance: &crate::backend::Instance) {
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

    /// Removes a registration made for a runner whose record vanished meanwhile. No record
    /// remembers it and a retried task finds nothing to finish: so it is asked again in place
    /// (at a job's priority, three times, a second and then two apart) before it is left to
    /// the health check's orphan cleanup (after `cleanup_grace`), which is said.
    pub(super) async fn unregister_unrecorded(
        &self,
        name: &str,
        scope: &Scope,
        forge_id: Option<u64>,
    ) {
        let Some(id) = forge_id else { return };
        let mut pause = Duration::from_secs(1);
        for attempt in 1..=3 {
            let removed = crate::budget::with_priority(
                crate::budget::Priority::Job,
                self.forge.delete_runner(scope, id),
            )
            .await;
            match removed {
                Ok(_) => return,
                Err(e) if attempt == 3 => {
                    tracing::warn!(runner = %name, forge_id = id, error = %e, "could not remove the registration of a runner whose record vanished; the health check removes it as a ghost after cleanup_grace");
                }
                Err(e) => {
                    tracing::debug!(runner = %name, forge_id = id, error = %e, "removing a registration failed; asking again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
    }

    /// What the runner's instance receives, in its backend's boot style.
    pub(super) fn boot_data(
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
    pub(super) async fn created(
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

    /// Notes for job `job`'s timeline that its runner was chosen: the reservation's (a new
    /// slot, cold) or the warm instance it took (its pool noted when it is registered).
    async fn note_choice(&self, g: &RunnerGroup, job: u64, r: &Reservation, reserved: &str) {
        let (runner, source) = match r {
            Reservation::Warm { name } => (name.as_str(), None),
            _ => (reserved, Some("cold")),
        };
        self.note_step(Some(job), "decided").await;
        self.with_steps(job, |s| {
            s.runner = Some(runner.to_string());
            s.source = source.or(s.source);
            s.group = Some(g.name.clone());
        });
    }

    /// Notes `step` now for job `job`'s timeline (none: a runner made for no job), in this
    /// process: the task that made the runner writes them with its own note, so making a
    /// runner costs no round trip more.
    pub(super) async fn note_step(&self, job: Option<u64>, step: &'static str) {
        let Some(job) = job else { return };
        if !self.timelines {
            return;
        }
        let Ok(at) = self.store.now_ms().await else {
            return;
        };
        self.with_steps(job, |s| s.times.push((step, at)));
    }

    pub(super) fn with_steps(&self, job: u64, f: impl FnOnce(&mut Steps)) {
        if !self.timelines {
            return;
        }
        let Ok(mut all) = self.steps.lock() else {
            return;
        };
        // Steps no task took (a runner made by a health pass for a lost job) are not kept for
        // ever.
        if all.len() > 10_000 {
            all.clear();
        }
        f(all.entry(job).or_default());
    }

    /// The steps noted for job `job` in this process since they were last taken.
    pub fn take_steps(&self, job: u64) -> Steps {
        self.steps
            .lock()
            .ok()
            .and_then(|mut all| all.remove(&job))
            .unwrap_or_default()
    }

    /// Records one step of making `name` (a creating record takes the patch, and `status` when
    /// given). False when the record vanished or moved on meanwhile: the caller removes what it
    /// made, since the runner holds no slot any more.
    pub(super) async fn step(
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
}
