//! Resuming a creation an earlier attempt left half done: what the record, the forge and the
//! backend show decides whether to adopt, finish or start again.

use super::*;

impl Manager {
    /// Resumes a runner whose record shows that an earlier attempt registered it (and maybe
    /// asked for its instance). A registration whose instance may still appear is never
    /// revoked: that would strand a booting instance. `None`: make it from the start.
    pub(super) async fn resume(
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
    pub(super) async fn resume_unrecorded(
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

    pub(super) async fn registration(
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
}
