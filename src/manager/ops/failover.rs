//! A group's backends in order (`backends:`): which one a runner is made on, the breakers
//! that leave a failing one out (`manager::breaker`), and finding a runner's instance on the
//! backend its record names. A group with one backend reads and writes no breaker.

use super::*;
use crate::config::BackendChoice;
use crate::manager::breaker::{self, Allow, Breaker, Failed};

/// Creates on each backend of a group by outcome.
pub static CREATES: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_backend_creates_total",
    "Instances a group asked a backend for, by outcome: ok, failed (transient) or broken (permanent).",
    &["group", "backend", "outcome"],
);

impl Manager {
    /// The backend of this name.
    pub fn backend_named(&self, name: &str) -> Result<&Arc<dyn Backend>, Failure> {
        self.backends
            .get(name)
            .ok_or_else(|| Failure::config(format!("backend `{name}` is not configured")))
    }

    /// A backend entry's configuration fingerprint (see `breaker::fingerprint`).
    pub fn fingerprint(&self, c: &BackendChoice) -> String {
        breaker::fingerprint(&self.config, c)
    }

    /// A group's backend's breaker as kept (a new one when none, or unreadable).
    pub async fn breaker_of(&self, g: &RunnerGroup, backend: &str) -> Result<Breaker, Failure> {
        let kept = self.store.breaker(&breaker::key(&g.name, backend)).await?;
        Ok(breaker::read(kept.as_deref()))
    }

    /// The backend a runner of `g` is made on now: its backends in order, the first whose
    /// breaker lets a create go and that holds fewer than its own `max_runners` of the group's
    /// runners. `Busy` when none does (the task waits and comes back).
    ///
    /// `failed_on`: the backend this runner's previous attempt failed on; it is not probed
    /// again by this runner (another runner's create will), which goes on to the next.
    pub(super) async fn choose_backend(
        &self,
        g: &RunnerGroup,
        name: &str,
        failed_on: Option<&str>,
    ) -> Result<BackendChoice, Failure> {
        match &g.backends[..] {
            [] => Ok(BackendChoice {
                name: g.backend.clone(),
                max_runners: None,
                spec: g.spec.clone(),
            }),
            [one] => Ok(one.clone()),
            _ => self.choose_of_several(g, name, failed_on).await.cloned(),
        }
    }

    async fn choose_of_several<'g>(
        &self,
        g: &'g RunnerGroup,
        name: &str,
        failed_on: Option<&str>,
    ) -> Result<&'g BackendChoice, Failure> {
        let now = self.store.now().await?;
        let records = self.store.runners_of_group(&g.name).await?;
        let mut refused = Vec::new();
        for c in &g.backends {
            let held = records
                .iter()
                .filter(|r| r.backend == c.name && r.name != name)
                .count() as u32;
            if c.max_runners.is_some_and(|m| held >= m) {
                refused.push(format!("{}: at its max_runners ({held})", c.name));
                continue;
            }
            let b = self.breaker_of(g, &c.name).await?;
            match breaker::allow(&b, now, &g.failover, &self.fingerprint(c)) {
                Allow::Yes => return Ok(c),
                Allow::Probe if failed_on == Some(c.name.as_str()) => refused.push(format!(
                    "{}: half-open, and this runner failed there",
                    c.name
                )),
                Allow::Probe => {
                    let next = breaker::probing(&b, now);
                    self.keep_breaker(g, &c.name, &next).await?;
                    tracing::info!(group = %g.name, backend = %c.name, runner = name, "backend half-open: this create probes it");
                    return Ok(c);
                }
                Allow::No(why) => refused.push(format!("{}: {why}", c.name)),
            }
        }
        Err(Failure::Busy(format!(
            "no backend of group `{}` takes a runner now ({})",
            g.name,
            refused.join("; ")
        )))
    }

    async fn keep_breaker(
        &self,
        g: &RunnerGroup,
        backend: &str,
        b: &Breaker,
    ) -> Result<(), Failure> {
        let json = serde_json::to_string(b).map_err(|e| Failure::transient(e.to_string()))?;
        self.store
            .set_breaker(&breaker::key(&g.name, backend), &json)
            .await?;
        Ok(())
    }

    /// Tells the breaker of a group of several backends how a create went.
    pub(super) async fn created_on(
        &self,
        g: &RunnerGroup,
        c: &BackendChoice,
        result: Result<(), &crate::backend::BackendError>,
    ) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(crate::backend::BackendError::Permanent { .. }) => "broken",
            Err(_) => "failed",
        };
        CREATES.inc(&[&g.name, &c.name, outcome]);
        if g.backends.len() < 2 {
            return;
        }
        let update = async {
            let now = self.store.now().await?;
            let b = self.breaker_of(g, &c.name).await?;
            let why = result.err().map(|e| e.to_string()).unwrap_or_default();
            let next = match result {
                Ok(()) => breaker::succeeded(&b),
                Err(crate::backend::BackendError::Permanent { .. }) => breaker::failed(
                    &b,
                    now,
                    Failed::Permanent(&why),
                    &g.failover,
                    &self.fingerprint(c),
                ),
                Err(_) => breaker::failed(
                    &b,
                    now,
                    Failed::Transient(&why),
                    &g.failover,
                    &self.fingerprint(c),
                ),
            };
            if next.state != b.state {
                tracing::warn!(group = %g.name, backend = %c.name, state = breaker::label(&next, now, &self.fingerprint(c)), why, "backend breaker");
            }
            self.keep_breaker(g, &c.name, &next).await
        };
        if let Err(e) = update.await {
            tracing::debug!(group = %g.name, backend = %c.name, error = %e, "breaker not updated");
        }
    }

    /// The backend a runner's record names (the group's first for an older record).
    pub(super) fn backend_of(
        &self,
        g: &RunnerGroup,
        r: &Runner,
    ) -> Result<&Arc<dyn Backend>, Failure> {
        match self.backends.get(&r.backend) {
            Some(b) => Ok(b),
            None => self.backend(g),
        }
    }

    /// Every instance of the group's, on each of its backends, with the backend's name.
    pub(super) async fn instances_of_group(
        &self,
        g: &RunnerGroup,
    ) -> Result<Vec<(String, crate::backend::Instance)>, Failure> {
        let mut names: Vec<&str> = g.backends.iter().map(|c| c.name.as_str()).collect();
        if names.is_empty() {
            names.push(&g.backend);
        }
        let mut out = Vec::new();
        for name in names {
            for i in self.backend_named(name)?.list().await? {
                if i.group() == Some(g.name.as_str()) {
                    out.push((name.to_string(), i));
                }
            }
        }
        Ok(out)
    }

    /// Deletes an instance of the group's, on whichever of its backends has it.
    pub(super) async fn delete_instance(&self, g: &RunnerGroup, id: &str) -> Result<(), Failure> {
        if g.backends.len() < 2 {
            self.backend(g)?.delete(id).await?;
            return Ok(());
        }
        for (name, i) in self.instances_of_group(g).await? {
            if i.id == id {
                self.backend_named(&name)?.delete(id).await?;
            }
        }
        Ok(())
    }
}
