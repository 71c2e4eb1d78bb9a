//! The forge and the clouds as the manager sees them: the ports' implementations over the
//! simulated world.

use super::dist::{sample, sample_ms};
use super::world::{Ev, ForgeRunnerState, Inst, Shared};
use crate::backend::{self, Backend, BackendError, CreateRequest, Instance, InstanceState, Kind};
use crate::config::Secret;
use crate::forge::{
    Deleted, ForgeError, ForgeRunner, JitConfig, QueuedJob, Registration, RunnerRequest,
    RunnerState, Scope, WebhookScheme, WorkflowRun,
};
use rand::Rng;
use std::collections::HashMap;

/// The forge as the simulator models it (GitHub's behaviour unless told otherwise).
pub struct ForgeModel {
    pub world: Shared,
    /// How the configuration's forge signs and shapes its webhooks.
    pub scheme: &'static dyn WebhookScheme,
}

fn forge_runner(id: u64, r: &ForgeRunnerState) -> ForgeRunner {
    ForgeRunner {
        id,
        name: r.name.clone(),
        state: if r.online {
            RunnerState::Online
        } else {
            RunnerState::Offline
        },
        busy: r.job.is_some(),
        labels: r.labels.clone(),
        runner_group_id: None,
    }
}

#[async_trait::async_trait]
impl crate::forge::RunnerRegistry for ForgeModel {
    async fn list_runners(&self, scope: &Scope) -> crate::forge::Result<Vec<ForgeRunner>> {
        let mut w = self.world.lock();
        let all: Vec<ForgeRunner> = w
            .runners
            .iter()
            .filter(|(_, r)| &r.scope == scope)
            .map(|(id, r)| forge_runner(*id, r))
            .collect();
        // One call per page of 100.
        for _ in 0..all.len().div_ceil(100).max(1) {
            w.call(false)?;
        }
        Ok(all)
    }

    async fn get_runner(
        &self,
        scope: &Scope,
        id: u64,
    ) -> crate::forge::Result<Option<ForgeRunner>> {
        let mut w = self.world.lock();
        w.call(false)?;
        Ok(w.runners
            .get(&id)
            .filter(|r| &r.scope == scope)
            .map(|r| forge_runner(id, r)))
    }

    async fn delete_runner(&self, _scope: &Scope, id: u64) -> crate::forge::Result<Deleted> {
        let mut w = self.world.lock();
        w.call(true)?;
        match w.runners.get(&id) {
            None => Ok(Deleted::NotFound),
            Some(r) if r.job.is_some() => Ok(Deleted::Busy),
            Some(r) => {
                let name = r.name.clone();
                w.runners.remove(&id);
                w.runner_ids.remove(&name);
                Ok(Deleted::Deleted)
            }
        }
    }

    async fn register(
        &self,
        scope: &Scope,
        req: &RunnerRequest<'_>,
    ) -> crate::forge::Result<Registration> {
        let mut w = self.world.lock();
        w.call(true)?;
        if w.runner_ids.contains_key(req.name) {
            return Err(ForgeError::Conflict(format!(
                "a runner named {} exists",
                req.name
            )));
        }
        let id = w.next_runner_id;
        w.next_runner_id += 1;
        let r = ForgeRunnerState {
            name: req.name.to_string(),
            labels: req.labels.iter().map(|l| l.to_lowercase()).collect(),
            scope: scope.clone(),
            online: false,
            job: None,
        };
        let runner = forge_runner(id, &r);
        w.runner_ids.insert(r.name.clone(), id);
        w.runners.insert(id, r);
        Ok(Registration::Jit(JitConfig {
            runner,
            encoded: Secret::new("simulated"),
        }))
    }
}

#[async_trait::async_trait]
impl crate::forge::JobSource for ForgeModel {
    async fn repositories(&self, org: &str) -> crate::forge::Result<Vec<String>> {
        let mut w = self.world.lock();
        w.call(false)?;
        let prefix = format!("{org}/");
        Ok(w.trace
            .repositories
            .iter()
            .filter_map(|r| r.strip_prefix(&prefix).map(String::from))
            .collect())
    }

    async fn queued_jobs(
        &self,
        owner: &str,
        repo: &str,
        max_runs: usize,
    ) -> crate::forge::Result<Vec<QueuedJob>> {
        let mut w = self.world.lock();
        w.call(false)?;
        let full = format!("{owner}/{repo}");
        let mut queued: Vec<(u64, u32)> = w.waiting.iter().flatten().copied().collect();
        queued.sort_unstable();
        let found: Vec<QueuedJob> = queued
            .iter()
            .filter_map(|(_, j)| {
                let job = &w.trace.jobs[*j as usize];
                (w.trace.repositories[job.repository as usize] == full).then(|| QueuedJob {
                    id: u64::from(*j) + 1,
                    run_id: u64::from(*j) + 1,
                    repository: full.clone(),
                    labels: w.trace.label_sets[job.labels as usize].clone(),
                })
            })
            .take(max_runs)
            .collect();
        // The runs' listing, then each queued run's jobs.
        for _ in 0..found.len() {
            w.call(false)?;
        }
        Ok(found)
    }

    async fn workflow_run(
        &self,
        _o: &str,
        _r: &str,
        _run: u64,
    ) -> crate::forge::Result<WorkflowRun> {
        self.world.lock().call(false)?;
        Ok(WorkflowRun {
            path: ".github/workflows/ci.yml".into(),
            head_branch: Some("main".into()),
        })
    }
}

impl crate::forge::Forge for ForgeModel {
    fn name(&self) -> &'static str {
        "simulated forge"
    }
    fn runner_url(&self, scope: &Scope) -> String {
        scope.html_url("https://forge.invalid")
    }
    fn groups(&self) -> Option<&dyn crate::forge::RunnerGroups> {
        None
    }
    fn webhooks(&self) -> &'static dyn WebhookScheme {
        self.scheme
    }
    fn rate_limit(&self) -> Option<crate::forge::RateLimit> {
        None
    }
}

/// A backend as the simulator models it: instances boot, cost and may be interrupted.
pub struct CloudBackend {
    pub world: Shared,
    pub name: String,
    pub kind: &'static dyn Kind,
    /// Each group's index by name.
    pub groups: HashMap<String, u16>,
}

impl CloudBackend {
    fn instance(&self, id: u64, i: &Inst, epoch_ms: u64) -> Instance {
        Instance {
            id: format!("sim-{id}"),
            state: if i.stopped_since.is_some() {
                InstanceState::Stopped
            } else if i.running {
                InstanceState::Running
            } else {
                InstanceState::Pending
            },
            tags: i.tags.clone(),
            created_at: Some((epoch_ms + i.created_ms) / 1000),
            spot_fallback: false,
            address: None,
            identity: None,
        }
    }
}

/// An instance's machine type, on the kinds that have one (EC2's `instance_type`, Compute
/// Engine's `machine_type`).
fn machine_type(spec: &crate::config::InstanceSpec) -> Option<&str> {
    spec.field("instance_type")
        .or_else(|| spec.field("machine_type"))
        .and_then(|v| v.as_str())
}

impl CloudBackend {
    fn not_found(&self, id: &str) -> BackendError {
        BackendError::NotFound {
            backend: self.name.clone(),
            id: id.to_string(),
        }
    }
}

fn instance_id(id: &str) -> Option<u64> {
    id.strip_prefix("sim-")?.parse().ok()
}

#[async_trait::async_trait]
impl Backend for CloudBackend {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static dyn Kind {
        self.kind
    }
    fn brokered(&self) -> bool {
        false
    }
    /// Both pools, whatever the kind: a simulation shows what a pool would do (the file says
    /// which pools the kind keeps).
    fn warm_support(&self) -> crate::backend::WarmSupport {
        crate::backend::WarmSupport {
            hot: true,
            stopped: true,
        }
    }

    async fn stop(&self, id: &str) -> backend::Result<()> {
        let mut w = self.world.lock();
        match instance_id(id).filter(|n| w.instances.contains_key(n)) {
            Some(n) => {
                w.stop_instance(n);
                Ok(())
            }
            None => Err(self.not_found(id)),
        }
    }

    async fn start(&self, id: &str) -> backend::Result<()> {
        let mut w = self.world.lock();
        let Some(n) = instance_id(id).filter(|n| w.instances.contains_key(n)) else {
            return Err(self.not_found(id));
        };
        let cloud =
            w.clouds.get(&self.name).cloned().unwrap_or_else(|| {
                crate::config::simulation::CloudModel::defaults(self.kind.name())
            });
        let start = sample_ms(&cloud.start, &mut w.rng);
        w.start_instance(n, start);
        Ok(())
    }

    async fn deliver(&self, id: &str, _boot: &crate::backend::BootData) -> backend::Result<()> {
        let mut w = self.world.lock();
        match instance_id(id).filter(|n| w.instances.contains_key(n)) {
            Some(n) => {
                w.credential_delivered(n);
                Ok(())
            }
            None => Err(self.not_found(id)),
        }
    }

    async fn create(&self, req: &CreateRequest) -> backend::Result<Instance> {
        let mut w = self.world.lock();
        if let Some(id) = w.instance_of.get(&req.runner_name).copied() {
            return Ok(self.instance(id, &w.instances[&id], w.epoch_ms));
        }
        let cloud =
            w.clouds.get(&self.name).cloned().unwrap_or_else(|| {
                crate::config::simulation::CloudModel::defaults(self.kind.name())
            });
        if w.rng.random::<f64>() < cloud.create_failure_rate {
            w.stats.create_failures += 1;
            return Err(BackendError::Transient {
                backend: self.name.clone(),
                code: "SimulatedFailure".into(),
                message: "the modelled cloud refused the create call".into(),
            });
        }
        let group = self.groups.get(&req.tags.group).copied().unwrap_or(0);
        let id = w.next_instance;
        w.next_instance += 1;
        let created_ms = w.now_ms + w.offset_ms;
        let i = Inst {
            backend: self.name.clone(),
            group,
            runner: req.runner_name.clone(),
            tags: req
                .tags
                .pairs()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_ms,
            running: false,
            online_ms: None,
            busy_ms: 0,
            jobs: 0,
            price_per_hour: crate::config::simulation::SimulationConfig::price_of(
                &cloud,
                machine_type(&req.spec),
            ),
            stopped_price_per_hour: cloud.stopped_price_per_hour,
            warm: req.warm.is_some(),
            waits: req.warm.is_some(),
            booted_ms: None,
            stop_after_boot: false,
            stopped_since: None,
            stopped_ms: 0,
        };
        let out = self.instance(id, &i, w.epoch_ms);
        w.instances.insert(id, i);
        w.instance_of.insert(req.runner_name.clone(), id);
        w.stats.instances_made += 1;
        let g = group as usize;
        w.stats.instances_now[g] += 1;
        w.stats.instances_peak[g] = w.stats.instances_peak[g].max(w.stats.instances_now[g]);
        let boot = sample_ms(&cloud.boot, &mut w.rng);
        let offset = w.offset_ms;
        w.at(offset + boot, Ev::Booted(id));
        if cloud.spot_interruption_rate > 0.0 {
            let mean_h = 1.0 / cloud.spot_interruption_rate;
            let d = crate::config::simulation::Dist::Exponential {
                mean: crate::config::simulation::Time(mean_h * 3600.0),
            };
            let after = (sample(&d, &mut w.rng) * 1000.0) as u64;
            w.at(offset + after, Ev::Interrupt(id));
        }
        Ok(out)
    }

    async fn delete(&self, id: &str) -> backend::Result<()> {
        let mut guard = self.world.lock();
        let w = &mut *guard;
        let Some(n) = instance_id(id) else {
            return Ok(());
        };
        let deletion = sample_ms(&w.models.deletion, &mut w.rng);
        w.offset_ms += deletion;
        let runner = w.instances.get(&n).map(|i| i.runner.clone());
        w.remove_instance(n);
        w.offset_ms -= deletion;
        // A runner whose instance is gone stops polling.
        if let Some(rid) = runner.and_then(|r| w.runner_ids.get(&r).copied()) {
            if let Some(r) = w.runners.get_mut(&rid) {
                r.online = false;
            }
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> backend::Result<Option<Instance>> {
        let w = self.world.lock();
        Ok(instance_id(id)
            .and_then(|n| w.instances.get(&n).map(|i| (n, i)))
            .filter(|(_, i)| i.backend == self.name)
            .map(|(n, i)| self.instance(n, i, w.epoch_ms)))
    }

    async fn list(&self) -> backend::Result<Vec<Instance>> {
        let w = self.world.lock();
        Ok(w.instances
            .iter()
            .filter(|(_, i)| i.backend == self.name)
            .map(|(n, i)| self.instance(*n, i, w.epoch_ms))
            .collect())
    }
}
