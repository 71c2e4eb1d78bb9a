//! Resuming a creation an earlier attempt left half done: what the record, the forge and the
//! backend show decides whether to adopt, finish or start again.

use super::*;

impl Manager {
    /// Resumes a creation an earlier attempt left: `leftover::step` decides from the record,
    /// the forge's registration and the backend's instance; this carries it out. `None`: make
    /// it from the start.
    pub(super) async fn resume(
        &self,
        g: &RunnerGroup,
        scope: &Scope,
        record: &Runner,
    ) -> Result<Option<Made>, Failure> {
        use crate::manager::leftover::{self, Left, Step};
        let name = record.name.as_str();
        let recorded = record.forge_id.is_some() || record.instance_id.is_some();
        let registered = self.registration(scope, name).await?;
        // Unrecorded, an instance matters only beside a registration (see `leftover`). In a
        // group of several backends, a create that failed cleared `requested_at`: no instance
        // was asked for, so none is looked for (its backend may be the one that is down).
        let asked = record.requested_at.is_some() || record.instance_id.is_some();
        let look = (recorded || registered.is_some()) && (asked || g.backends.len() < 2);
        let instance = match look {
            true => self.instance_of(g, record).await?,
            false => None,
        };
        let left = Left {
            recorded,
            requested: record.requested_at.is_some(),
            registered: registered.as_ref().map(|f| (f.id, f.busy || f.online())),
            instance: instance.is_some(),
        };
        match (leftover::step(left), instance) {
            (Step::Adopt { forge_id }, Some(i)) => self.adopt(name, forge_id, i.id).await.map(Some),
            (Step::Wait, _) => Ok(Some(Made::Exists)),
            (Step::ReplaceInstance, Some(i)) => {
                // Its registration is gone, so its credential is dead: it can never come online.
                tracing::info!(runner = %name, "an interrupted attempt left an instance whose registration is gone; replacing it");
                self.backend_of(g, record)?.delete(&i.id).await?;
                self.clear_progress(name).await?;
                Ok(None)
            }
            (Step::Revoke { forge_id }, _) => {
                tracing::info!(runner = %name, "removing the registration of an interrupted attempt that made no instance");
                self.forge.delete_runner(scope, forge_id).await?;
                if recorded {
                    self.clear_progress(name).await?;
                }
                Ok(None)
            }
            (Step::StartAgain, _) | (Step::Adopt { .. } | Step::ReplaceInstance, None) => {
                if recorded {
                    self.clear_progress(name).await?;
                }
                Ok(None)
            }
        }
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

    /// The runner's instance, on the backend its record names.
    async fn instance_of(
        &self,
        g: &RunnerGroup,
        record: &Runner,
    ) -> Result<Option<crate::backend::Instance>, Failure> {
        Ok(self
            .backend_of(g, record)?
            .list()
            .await?
            .into_iter()
            .find(|i| i.runner() == Some(record.name.as_str())))
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
