//! `runnerctl simulate`: a job trace replayed on the real manager (the same `Manager` code a
//! worker runs) over the in-memory store, a virtual clock and modelled forge and clouds.
//!
//! A discrete-event loop: the calendar (`world`) holds what happens next (a job queued, a
//! delivery reaching `serve`, a worker taking a task, an instance booted, a runner polling, a
//! job ending, a health check); each is handled at its time, and time jumps to the next. The
//! manager's calls complete at once (nothing it awaits waits for real time); the time they
//! would take is modelled (`api_latency`, boot, deletion) and moves the effects they cause.
//! One seed drives every draw, so a run is reproducible byte for byte.

pub mod dist;
pub mod generate;
mod models;
pub mod report;
pub mod trace;
mod world;

use crate::clock::VirtualClock;
use crate::config::simulation::{CloudModel, Dist};
use crate::config::{Config, RunnerGroup};
use crate::manager::{Created, EventIds, Failure, Manager};
use crate::memory::MemoryStore;
use models::{CloudBackend, ForgeModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use report::Report;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use trace::Trace;
use world::{Action, Ev, Shared, World};

/// Monday 2026-01-05 00:00 UTC: the start of a trace whose times are offsets, so that the
/// day of the week of a generated diurnal trace is what it was generated as.
pub const DEFAULT_EPOCH_MS: u64 = 1_767_571_200_000;

/// How a run is made.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// After the last job is queued, how long the run may go on before what has not started
    /// counts as never started.
    pub drain_s: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            drain_s: 86_400.0,
        }
    }
}

/// Why a run cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Input(String),
}

/// A task as a worker would take it from the queue.
#[derive(Debug, Clone)]
enum Task {
    Queued {
        job: u32,
        group: u16,
    },
    InProgress {
        job: u32,
        runner: String,
        id: u64,
    },
    Completed {
        job: u32,
        runner: Option<(u64, String)>,
    },
}

struct Slot {
    task: Task,
    /// Woken for a freed slot of this group.
    woken_for: Option<u16>,
}

/// What becomes of a task after a worker handled it.
enum Verdict {
    Done,
    Retry(u64),
    /// Waits for a slot of this group to free.
    Park(u16),
    Failed,
}

/// Checks that the trace's named groups and the models' backends exist.
fn check_inputs(config: &Config, trace: &Trace) -> Result<(), SimError> {
    for j in &trace.jobs {
        if let Some(g) = j.group {
            let name = &trace.groups[g as usize];
            if config.group(name).is_none() {
                return Err(SimError::Input(format!(
                    "trace line {}: group `{name}` is not in the configuration (groups: {})",
                    j.line,
                    config
                        .runner_groups
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    for key in config.simulation.backends.keys() {
        let known = config
            .backends
            .iter()
            .any(|b| &b.name == key || b.kind() == key);
        if !known {
            return Err(SimError::Input(format!(
                "simulation.backends.{key}: no backend of that name or kind in `backends`"
            )));
        }
    }
    if config.runner_groups.is_empty() {
        return Err(SimError::Input(
            "the configuration has no runner_groups to simulate".into(),
        ));
    }
    Ok(())
}

/// The event loop's own state.
struct Run<'a> {
    config: &'a Config,
    manager: Arc<Manager>,
    world: Shared,
    clock: Arc<VirtualClock>,
    rt: tokio::runtime::Runtime,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<u32>,
    alive: usize,
    parked: Vec<VecDeque<u32>>,
    waking: Vec<u32>,
    /// When a woken task last found its group full again: no more are woken at that moment.
    stalled: Vec<Option<u64>>,
    group_index: HashMap<String, u16>,
    jobs_done: usize,
}

/// Replays `trace` under `config` (its `simulation:` models) and reports. `progress` is told
/// the jobs done so far now and then.
pub fn run(
    config: &Config,
    trace: Arc<Trace>,
    name: &str,
    opts: &Options,
    progress: &dyn Fn(u64),
) -> Result<Report, SimError> {
    check_inputs(config, &trace)?;
    // The manager's own draws (lock tokens, names of health-check runners) from the seed too.
    fastrand::seed(opts.seed);
    let epoch_ms = trace.start_unix.map_or(DEFAULT_EPOCH_MS, |s| s * 1000);
    let clock = Arc::new(VirtualClock::new(epoch_ms));
    let clouds: BTreeMap<String, _> = config
        .backends
        .iter()
        .map(|b| {
            let base = CloudModel::defaults(b.kind());
            let m = &config.simulation.backends;
            let model = m.get(&b.name).or_else(|| m.get(b.kind()));
            let cloud = match model {
                Some(m) => m.over(base),
                None => base,
            };
            (b.name.clone(), cloud)
        })
        .collect();
    let group_names: Vec<String> = config
        .runner_groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    let group_index: HashMap<String, u16> = group_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.clone(), i as u16))
        .collect();
    let world = Shared(Arc::new(Mutex::new(World::new(
        config.simulation.clone(),
        clouds,
        trace.clone(),
        group_names,
        ChaCha8Rng::seed_from_u64(opts.seed),
        epoch_ms,
    ))));
    let forge = Arc::new(ForgeModel {
        world: world.clone(),
        scheme: crate::wiring::webhook_scheme(config),
    });
    let mut backends: HashMap<String, Arc<dyn crate::backend::Backend>> = HashMap::new();
    for b in &config.backends {
        let kind = crate::backend::kind(b.kind()).ok_or_else(|| {
            SimError::Input(format!(
                "backend `{}`: kind `{}` is not in this build",
                b.name,
                b.kind()
            ))
        })?;
        let m: Arc<dyn crate::backend::Backend> = Arc::new(CloudBackend {
            world: world.clone(),
            name: b.name.clone(),
            kind,
            groups: group_index.clone(),
        });
        backends.insert(b.name.clone(), m);
    }
    let mut manager = Manager::new(
        Arc::new(config.clone()),
        MemoryStore::without_history(clock.clone()),
        forge,
        backends,
    );
    // A million jobs' timelines would not fit, and no task writes them here.
    manager.timelines = false;
    let manager = Arc::new(manager);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| SimError::Input(format!("cannot start the async runtime: {e}")))?;
    let n_groups = config.runner_groups.len();
    let mut r = Run {
        config,
        manager,
        world,
        clock,
        rt,
        slots: Vec::new(),
        free_slots: Vec::new(),
        alive: 0,
        parked: vec![VecDeque::new(); n_groups],
        waking: vec![0; n_groups],
        stalled: vec![None; n_groups],
        group_index,
        jobs_done: 0,
    };
    let end_ms = r.drive(&trace, opts, progress);
    let w = r.world.lock();
    Ok(report::build(name, config, &trace, &w, end_ms))
}

impl Run<'_> {
    /// Runs the calendar until every job ended and no task is left, or the drain limit.
    /// Returns when the run ended (milliseconds from the start).
    fn drive(&mut self, trace: &Trace, opts: &Options, progress: &dyn Fn(u64)) -> u64 {
        let interval = self
            .config
            .simulation
            .healthcheck_interval
            .map_or(self.config.healthcheck_interval.as_secs() as f64, |t| {
                t.secs()
            });
        let interval_ms = ((interval * 1000.0) as u64).max(1_000);
        {
            let mut w = self.world.lock();
            for g in 0..self.config.runner_groups.len() {
                w.at(interval_ms, Ev::Health(g as u16));
            }
        }
        let last = trace.jobs.last().map_or(0, |j| j.queued_ms);
        let limit_ms = last + (opts.drain_s * 1000.0) as u64;
        let mut next_arrival = 0usize;
        let mut steps: u64 = 0;
        loop {
            let arrival = trace.jobs.get(next_arrival).map(|j| j.queued_ms);
            let (t, ev) = {
                let mut w = self.world.lock();
                let top = w.peek_time();
                match (arrival, top) {
                    (Some(a), Some(t)) if a <= t => (a, Ev::Arrive(next_arrival as u32)),
                    (Some(a), None) => (a, Ev::Arrive(next_arrival as u32)),
                    (_, Some(_)) => w.next().expect("peeked"),
                    (None, None) => break w.now_ms,
                }
            };
            if t > limit_ms {
                break limit_ms;
            }
            if let Ev::Arrive(_) = ev {
                next_arrival += 1;
            }
            self.advance_to(t);
            self.handle(ev, interval_ms);
            steps += 1;
            if steps.is_multiple_of(4096) {
                progress(self.jobs_done as u64);
            }
            let settled = next_arrival == trace.jobs.len()
                && self.jobs_done == trace.jobs.len()
                && self.alive == 0;
            if settled {
                break t;
            }
        }
    }

    fn advance_to(&mut self, t: u64) {
        let mut w = self.world.lock();
        if t > w.now_ms {
            self.clock
                .advance(std::time::Duration::from_millis(t - w.now_ms));
            w.now_ms = t;
        }
    }

    fn handle(&mut self, ev: Ev, interval_ms: u64) {
        match ev {
            Ev::Arrive(j) => self.world.lock().arrive(j),
            Ev::Deliver(j, a) => self.deliver(j, a),
            Ev::Run(slot) => self.run_task(slot),
            Ev::Booted(i) => self.world.lock().booted(i),
            Ev::RunnerUp(i) => self.world.lock().runner_up(i),
            Ev::JobEnd(j) => {
                let mut w = self.world.lock();
                let before = w.jobs[j as usize].ended;
                w.job_end(j);
                if !before && !w.jobs[j as usize].unmatched {
                    self.jobs_done += 1;
                }
            }
            Ev::Interrupt(i) => {
                let mut w = self.world.lock();
                let job = w.instances.get(&i).and_then(|inst| {
                    let id = w.runner_ids.get(&inst.runner)?;
                    w.runners.get(id)?.job
                });
                w.interrupt(i);
                // A job no group matched was counted as done already.
                if job.is_some_and(|j| !w.jobs[j as usize].unmatched) {
                    self.jobs_done += 1;
                }
            }
            Ev::Health(g) => {
                let group = self.config.runner_groups[g as usize].clone();
                self.world.lock().offset_ms = 0;
                let m = self.manager.clone();
                let _ = self.rt.block_on(m.health_check(&group));
                self.world.lock().at(interval_ms, Ev::Health(g));
                self.wake_parked();
            }
        }
    }

    /// A delivery reaches `serve`: the first of its job and action becomes a task, taken by a
    /// worker at once.
    fn deliver(&mut self, j: u32, action: Action) {
        let task = {
            let mut w = self.world.lock();
            if !w.first_delivery(j, action) {
                return;
            }
            match action {
                Action::Queued => {
                    let job = w.trace.jobs[j as usize];
                    let group = match job.group {
                        Some(g) => self.group_index.get(&w.trace.groups[g as usize]).copied(),
                        None => crate::manager::matching::admitted_group(
                            &self.config.runner_groups,
                            &w.trace.repositories[job.repository as usize],
                            &w.trace.label_sets[job.labels as usize],
                            None,
                        )
                        .ok()
                        .and_then(|g| self.group_index.get(&g.name).copied()),
                    };
                    match group {
                        Some(g) => {
                            w.jobs[j as usize].group = Some(g);
                            if !w.models.forge.any_idle_runner {
                                // The runner made for this job, by the name the manager gives it.
                                let name = crate::manager::matching::runner_name(
                                    &self.config.name,
                                    &self.config.runner_groups[g as usize].name,
                                    &format!("job:{}", u64::from(j) + 1),
                                );
                                w.made_for.insert(name, j);
                            }
                            Task::Queued { job: j, group: g }
                        }
                        None => {
                            let s = &mut w.jobs[j as usize];
                            if !s.unmatched && !s.ended {
                                s.unmatched = true;
                                self.jobs_done += 1;
                            }
                            return;
                        }
                    }
                }
                Action::InProgress => match w.jobs[j as usize].runner.clone() {
                    Some((id, runner)) => Task::InProgress { job: j, runner, id },
                    None => return,
                },
                // The runner's name is needed no more (a later copy of this delivery is a
                // duplicate): a million jobs' names would not fit.
                Action::Completed => Task::Completed {
                    job: j,
                    runner: w.jobs[j as usize].runner.take(),
                },
            }
        };
        let slot = self.new_slot(task);
        self.world.lock().at(0, Ev::Run(slot));
    }

    fn new_slot(&mut self, task: Task) -> u32 {
        self.alive += 1;
        let s = Slot {
            task,
            woken_for: None,
        };
        match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(s);
                i
            }
            None => {
                self.slots.push(Some(s));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn run_task(&mut self, slot: u32) {
        let Some(s) = self.slots[slot as usize].as_mut() else {
            return;
        };
        let woken = s.woken_for.take();
        if let Some(g) = woken {
            self.waking[g as usize] = self.waking[g as usize].saturating_sub(1);
        }
        let task = s.task.clone();
        self.world.lock().offset_ms = 0;
        let verdict = self.carry_out(&task);
        let offset = self.world.lock().offset_ms;
        match verdict {
            Verdict::Done | Verdict::Failed => {
                if let Verdict::Failed = verdict {
                    self.world.lock().stats.tasks_failed += 1;
                }
                self.slots[slot as usize] = None;
                self.free_slots.push(slot);
                self.alive -= 1;
            }
            Verdict::Retry(ms) => self.world.lock().at(offset + ms, Ev::Run(slot)),
            Verdict::Park(g) => {
                if woken.is_some() {
                    // Back to the head of the line it waited in.
                    self.stalled[g as usize] = Some(self.world.lock().now_ms);
                    self.parked[g as usize].push_front(slot);
                } else {
                    self.parked[g as usize].push_back(slot);
                }
            }
        }
        self.wake_parked();
    }

    /// The task's operation on the manager, as `TaskHandler` maps it, and its verdict.
    fn carry_out(&mut self, task: &Task) -> Verdict {
        let m = self.manager.clone();
        match task {
            Task::Queued { job, group } => {
                let g = &self.config.runner_groups[*group as usize];
                let (repo, _) = self.job_origin(*job);
                let id = u64::from(*job) + 1;
                let r = self
                    .rt
                    .block_on(m.job_queued_from(&g.name, id, Some((&repo, id))));
                match r {
                    Ok(Created::Full { .. }) => Verdict::Park(*group),
                    Ok(_) => Verdict::Done,
                    Err(f) => self.failed(f, Some(*group)),
                }
            }
            Task::InProgress { job, runner, id } => {
                let who = EventIds {
                    runner_id: Some(*id),
                    runner_group_id: None,
                };
                let r = self
                    .rt
                    .block_on(m.job_in_progress(u64::from(*job) + 1, runner, who));
                let group = self.group_of(runner);
                match r {
                    Ok(_) => Verdict::Done,
                    Err(f) => self.failed(f, group),
                }
            }
            Task::Completed { job, runner } => {
                let who = EventIds {
                    runner_id: runner.as_ref().map(|(id, _)| *id),
                    runner_group_id: None,
                };
                let name = runner.as_ref().map(|(_, n)| n.as_str());
                let r = self
                    .rt
                    .block_on(m.job_completed(u64::from(*job) + 1, name, who));
                let group = name.and_then(|n| self.group_of(n));
                match r {
                    Ok(_) => Verdict::Done,
                    Err(f) => self.failed(f, group),
                }
            }
        }
    }

    fn job_origin(&self, job: u32) -> (String, u32) {
        let w = self.world.lock();
        let j = w.trace.jobs[job as usize];
        (
            w.trace.repositories[j.repository as usize].clone(),
            j.labels,
        )
    }

    fn group_of(&self, runner: &str) -> Option<u16> {
        let g = crate::manager::matching::group_of_runner(
            &self.config.name,
            &self.config.runner_groups,
            runner,
        )?;
        self.group_index.get(&g.name).copied()
    }

    /// The queue's verdict on a failure, as `TaskHandler` gives it, with the models' delays.
    fn failed(&mut self, f: Failure, group: Option<u16>) -> Verdict {
        match f {
            Failure::RateLimited { wait, .. } => Verdict::Retry(wait.as_millis() as u64 + 100),
            Failure::Busy(_) => match group {
                Some(g) => Verdict::Park(g),
                // Never at the same instant again: time must pass for what it waits on.
                None => Verdict::Retry(self.retry_ms().max(100)),
            },
            Failure::Transient(_) | Failure::Unreachable(_) => {
                Verdict::Retry(self.config.queue.retry_base.as_secs().max(1) * 1000)
            }
            Failure::Permanent(_) => Verdict::Failed,
        }
    }

    fn retry_ms(&self) -> u64 {
        let mut w = self.world.lock();
        let d: Dist = w.models.capacity_retry.clone();
        dist::sample_ms(&d, &mut w.rng)
    }

    /// Wakes as many parked tasks of each group as it has free slots, oldest first; each asks
    /// again `capacity_retry` later.
    fn wake_parked(&mut self) {
        let now = self.world.lock().now_ms;
        for g in 0..self.parked.len() {
            if self.parked[g].is_empty() || self.stalled[g] == Some(now) {
                continue;
            }
            let group: &RunnerGroup = &self.config.runner_groups[g];
            let store = self.manager.store.clone();
            let held = self
                .rt
                .block_on(store.runners_of_group(&group.name))
                .map_or(u32::MAX, |r| r.len() as u32);
            let free = group
                .max_runners
                .saturating_sub(held)
                .saturating_sub(self.waking[g]);
            for _ in 0..free {
                let Some(slot) = self.parked[g].pop_front() else {
                    break;
                };
                if let Some(s) = self.slots[slot as usize].as_mut() {
                    s.woken_for = Some(g as u16);
                }
                self.waking[g] += 1;
                let delay = self.retry_ms();
                self.world.lock().at(delay, Ev::Run(slot));
            }
        }
    }
}
