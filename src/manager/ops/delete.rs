//! Deleting a runner: never one that runs a job (unless forced), the forge first, then the
//! instance, then the record and its slot.

use super::*;

impl Manager {
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

    pub(super) async fn delete_locked(&self, name: &str, force: bool) -> Result<Removed, Failure> {
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
        // A warm instance no job took has no registration to look for.
        let unregistered =
            r.forge_id.is_none() && matches!(r.status, RunnerStatus::Warm | RunnerStatus::Warming);
        if let Some(g) = g.filter(|_| !unregistered) {
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
            let backend = self.backend_of(g, &r)?;
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

    /// Gives up a runner an operator's command (or a health pass) could not make: deletes what
    /// it made. When that cannot be done now (GitHub limited, another task works on it), a
    /// record that remembers a registration or an instance is not dropped, since it alone knows
    /// their ids: it is marked `failed`, which counts as no supply, keeps its slot and is
    /// finished by the next health pass. A record that remembers nothing goes, so that it holds
    /// no slot (a registration whose answer was lost is ours by name: the orphan cleanup).
    pub async fn abandon(&self, name: &str) -> Result<(), Failure> {
        let Err(e) = self.delete_runner(name, false).await else {
            return Ok(());
        };
        let remembers = match self.store.get(name).await? {
            None => return Ok(()),
            Some(r) if r.status == RunnerStatus::Active => return Ok(()),
            Some(r) => r.forge_id.is_some() || r.instance_id.is_some(),
        };
        if !remembers {
            tracing::warn!(runner = %name, error = %e, "could not remove what a failed creation made; the health check will");
            self.store.remove(name).await?;
            return Ok(());
        }
        tracing::warn!(runner = %name, error = %e, "could not remove what a failed creation made; marked failed, the next health pass removes it");
        let from = [
            RunnerStatus::Reserved,
            RunnerStatus::Creating,
            RunnerStatus::Started,
            RunnerStatus::Idle,
        ];
        self.store
            .update(
                name,
                Some(RunnerStatus::Failed),
                &from,
                &RunnerPatch::default(),
            )
            .await?;
        Ok(())
    }
}
