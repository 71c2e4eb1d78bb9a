//! One health-check pass over a group: observe (forge, backend, records, waiting jobs, lost
//! jobs), plan (`plan`), carry out; and the reusable token's replacement.

use super::*;
use crate::budget::{with_priority, Priority};

impl Manager {
    /// Jobs queued on GitHub that belong to `g`, looking into a bounded number of repositories
    /// per pass (round robin), so a pass costs a few calls however large the organization.
    async fn queued_jobs_of(
        &self,
        g: &RunnerGroup,
        dry_run: bool,
    ) -> Result<Vec<forge::QueuedJob>, Failure> {
        const REPOS_PER_PASS: usize = 2;
        const RUNS_PER_REPO: usize = 5;
        // A scale set's queue redelivers what was not acknowledged: no job of it is lost.
        if g.scale_set_mode() {
            return Ok(Vec::new());
        }
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
                let ours = crate::manager::matching::group_for_job(
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
    pub async fn health_check(&self, g: &RunnerGroup) -> Result<Vec<HealthRow>, Failure> {
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

    async fn health_pass(&self, g: &RunnerGroup) -> Result<Vec<HealthRow>, Failure> {
        let row = |action: Action, result: HealthResult| HealthRow {
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
        // Listings and the lost-job search wait for the budget behind the jobs' calls; when
        // they would wait too long the pass is skipped and says so.
        let seen = match with_priority(Priority::Health, self.observe(g, &scope, false)).await {
            Err(Failure::RateLimited {
                cause: Cause::Forge(e @ ForgeError::Deferred { .. }),
                ..
            }) => {
                let why = e.to_string();
                tracing::warn!(group = %g.name, "{why}; health check skipped");
                return Ok(vec![row(
                    Action::Skip {
                        reason: why.clone(),
                    },
                    HealthResult::Skipped(Some(why)),
                )]);
            }
            other => other?,
        };
        let actions = self.plan_of(g, listed_at, &seen);
        // Runners made here cover the waiting jobs and the lost ones.
        let demand = Want::Demand {
            min_free: g.min_runners.max(seen.waiting),
        };
        let mut done = Vec::new();
        for action in actions {
            // Runners made for waiting jobs go with the jobs; removals are cleanup.
            let priority = match action {
                Action::Create { .. } | Action::Resume { .. } => Priority::Job,
                _ => Priority::Cleanup,
            };
            let carried = self.carry_out(g, &scope, &action, seen.now, demand);
            let result = match with_priority(priority, carried).await {
                Ok(r) => r,
                // Left for a later pass: the budget is kept for jobs.
                Err(Failure::RateLimited {
                    cause: Cause::Forge(e @ ForgeError::Deferred { .. }),
                    ..
                }) => HealthResult::Skipped(Some(e.to_string())),
                Err(e) => HealthResult::Failed(e.to_string()),
            };
            done.push(row(action, result));
        }
        if g.warm_pool.is_some() {
            match self.warm_pass(g, Some((&seen.instances, listed_at))).await {
                Ok(rows) => done.extend(rows),
                Err(e) => done.push(row(
                    Action::Skip {
                        reason: "the warm pool".into(),
                    },
                    HealthResult::Failed(e.to_string()),
                )),
            }
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
    pub async fn health_plan(&self, g: &RunnerGroup) -> Result<Vec<HealthRow>, Failure> {
        let listed_at = self.store.now().await?;
        let seen = self.observe(g, &Self::scope(g), true).await?;
        Ok(self
            .plan_of(g, listed_at, &seen)
            .into_iter()
            .map(|action| HealthRow {
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
                crate::manager::matching::group_of_runner(
                    &self.config.name,
                    &self.config.runner_groups,
                    &f.name,
                )
                .is_some_and(|x| x.name == g.name)
            })
            .collect();
        // Every backend of the group's: a runner may be on any of them.
        let instances: Vec<_> = self
            .instances_of_group(g)
            .await?
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        let records = self.store.runners_of_group(&g.name).await?;
        // Ours by name alone only when named by the current rule: a name of runnerctl 0.1 may
        // be another manager's whose name overlaps ours; such a runner is ours when we have its
        // record, and otherwise left alone.
        let recorded: std::collections::HashSet<&str> =
            records.iter().map(|r| r.name.as_str()).collect();
        forge.retain(|f| {
            let owned =
                crate::manager::matching::owned_group(&self.config.name, &self.config.runner_groups, &f.name)
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

    /// Carries out one action of a health-check plan (a warm pool's own pass carries out its
    /// actions: `ops::warm`).
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
                self.delete_instance(g, id).await?;
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
            Action::Hold { .. }
            | Action::Skip { .. }
            | Action::ReplaceToken { .. }
            | Action::Warm { .. }
            | Action::Retire { .. } => Ok(HealthResult::Skipped(None)),
        }
    }

    /// Replaces the scope's reusable registration token when it is due and nobody registers
    /// with it (Gitea), under the scope's token lock. `None`: the forge has no such tokens, the
    /// lock is taken, or it is not due.
    async fn token_action(&self, scope: &Scope) -> Result<Option<HealthRow>, Failure> {
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
        Ok(result?.map(|(action, result)| HealthRow {
            group: String::new(),
            action,
            result,
        }))
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
