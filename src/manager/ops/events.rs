//! Job events from the forge: a queued job's demand, a runner taking a job (ours, by its forge
//! ids, or an impostor), a job ending.

use super::*;

impl Manager {
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
                if let Some(why) = crate::manager::matching::workflow_refusal(g, repository, &run) {
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
        match crate::manager::matching::event_runner(
            registered,
            our_group,
            who.runner_id,
            who.runner_group_id,
        ) {
            crate::manager::matching::EventRunner::Ours => Ok(true),
            crate::manager::matching::EventRunner::Impostor(why) => {
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
    ) -> Result<Option<crate::model::WaitSource>, Failure> {
        let record = self
            .store
            .mark_job_started(&self.group_names(), job_id, Some(runner))
            .await?;
        if !self.event_is_ours(runner, record.as_ref(), who).await? {
            // Another runner took the job: if it was the one ours was made for, ours is free
            // for the next, and the demand accounting holds as it is.
            return Ok(None);
        }
        let source = record
            .as_ref()
            .map(|r| crate::model::WaitSource::of(r, job_id));
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
        Ok(source)
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
        let Some(g) = crate::manager::matching::group_of_runner(&self.config.name, groups, runner)
        else {
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
}
