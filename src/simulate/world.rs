//! The simulated world the real manager runs against: a forge (runners, queued jobs, webhook
//! deliveries, API points) and clouds (instances that boot, cost and get interrupted), one
//! state behind one mutex, and the calendar of what happens next. The manager reaches the
//! world only through the forge and backend ports; the event loop (`super::run`) moves time.

use super::dist::sample_ms;
use super::trace::Trace;
use crate::config::simulation::{Cloud, SimulationConfig};
use crate::forge::{ForgeError, Scope};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A webhook's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Queued,
    InProgress,
    Completed,
}

impl Action {
    fn bit(self) -> u8 {
        match self {
            Action::Queued => 1,
            Action::InProgress => 2,
            Action::Completed => 4,
        }
    }
}

/// What happens at a moment of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ev {
    /// A job of the trace is queued on the forge.
    Arrive(u32),
    /// A webhook delivery about a job reaches `serve`.
    Deliver(u32, Action),
    /// A task (by its slot) is taken by a worker.
    Run(u32),
    /// An instance is running.
    Booted(u64),
    /// An instance's runner polls for its first job.
    RunnerUp(u64),
    /// A job's steps are done.
    JobEnd(u32),
    /// An instance is taken back by its cloud.
    Interrupt(u64),
    /// A group's periodic health check.
    Health(u16),
}

/// A job on the forge.
#[derive(Debug, Clone, Default)]
pub struct JobState {
    pub started_ms: Option<u64>,
    pub ended: bool,
    /// The forge id and name of the runner that took it.
    pub runner: Option<(u64, String)>,
    pub interrupted: bool,
    /// Deliveries already turned into a task (`serve`'s job key), one bit per action.
    pub seen: u8,
    /// No group takes it.
    pub unmatched: bool,
    /// Its group, once `serve` matched it.
    pub group: Option<u16>,
}

/// A runner registered on the forge.
#[derive(Debug, Clone)]
pub struct ForgeRunnerState {
    pub name: String,
    pub labels: Vec<String>,
    pub scope: Scope,
    pub online: bool,
    pub job: Option<u32>,
}

/// An instance in a cloud.
#[derive(Debug, Clone)]
pub struct Inst {
    pub backend: String,
    pub group: u16,
    pub runner: String,
    pub tags: BTreeMap<String, String>,
    pub created_ms: u64,
    pub running: bool,
    pub online_ms: Option<u64>,
    pub busy_ms: u64,
    pub jobs: u32,
    /// What it costs per hour (its machine type's price).
    pub price_per_hour: f64,
    /// What it costs per hour while stopped.
    pub stopped_price_per_hour: f64,
    /// Made for a warm pool.
    pub warm: bool,
    /// A warm instance no job took yet: it waits for its credential.
    pub waits: bool,
    /// When its (first) boot ended: a warm instance's booting ends there, not at a poll.
    pub booted_ms: Option<u64>,
    /// A stopped pool's instance asked to stop before its first boot ended: stopped then.
    pub stop_after_boot: bool,
    /// Stopped since then; time stopped so far (billed at the stopped price).
    pub stopped_since: Option<u64>,
    pub stopped_ms: u64,
}

/// Totals the report is made of.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub api_calls: u64,
    pub api_points: u64,
    pub api_refused: u64,
    /// Points of the last few minutes (older ones are only in the peak).
    pub points_by_minute: BTreeMap<u64, u64>,
    pub peak_points_per_minute: u64,
    pub deliveries: u64,
    pub deliveries_lost: u64,
    pub deliveries_repeated: u64,
    pub instances_made: u64,
    pub create_failures: u64,
    pub interruptions: u64,
    /// Per group: instances now, and at most.
    pub instances_now: Vec<u32>,
    pub instances_peak: Vec<u32>,
    /// Per group: instance milliseconds booting, busy, idle; cost; instances that ran no job.
    pub booting_ms: Vec<u64>,
    pub busy_ms: Vec<u64>,
    pub idle_ms: Vec<u64>,
    pub stopped_ms: Vec<u64>,
    pub cost: Vec<f64>,
    pub idle_cost: Vec<f64>,
    pub wasted: Vec<u64>,
    pub tasks_failed: u64,
}

/// The state of the world.
pub struct World {
    pub now_ms: u64,
    /// The unix milliseconds of the simulation's start.
    pub epoch_ms: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    pub rng: ChaCha8Rng,
    /// Time the task being handled has spent in forge calls so far.
    pub offset_ms: u64,
    pub models: SimulationConfig,
    pub clouds: BTreeMap<String, Cloud>,
    pub trace: Arc<Trace>,
    /// Lowercased label sets of the trace.
    labels_lc: Vec<Vec<String>>,
    pub group_names: Vec<String>,
    pub jobs: Vec<JobState>,
    pub runners: BTreeMap<u64, ForgeRunnerState>,
    pub runner_ids: HashMap<String, u64>,
    pub(super) next_runner_id: u64,
    /// Queued jobs no runner took yet, by their label set, oldest first.
    pub waiting: Vec<BTreeSet<(u64, u32)>>,
    /// A runner's name to the job it was made for (`any_idle_runner: false`).
    pub made_for: HashMap<String, u32>,
    pub instances: BTreeMap<u64, Inst>,
    pub instance_of: HashMap<String, u64>,
    pub(super) next_instance: u64,
    pub stats: Stats,
}

impl World {
    pub fn new(
        models: SimulationConfig,
        clouds: BTreeMap<String, Cloud>,
        trace: Arc<Trace>,
        group_names: Vec<String>,
        rng: ChaCha8Rng,
        epoch_ms: u64,
    ) -> World {
        let n = group_names.len();
        let waiting = vec![BTreeSet::new(); trace.label_sets.len()];
        let labels_lc = trace
            .label_sets
            .iter()
            .map(|s| s.iter().map(|l| l.to_lowercase()).collect())
            .collect();
        World {
            now_ms: 0,
            epoch_ms,
            seq: 0,
            heap: BinaryHeap::new(),
            rng,
            offset_ms: 0,
            models,
            clouds,
            jobs: vec![JobState::default(); trace.jobs.len()],
            trace,
            labels_lc,
            group_names,
            runners: BTreeMap::new(),
            runner_ids: HashMap::new(),
            next_runner_id: 1,
            waiting,
            made_for: HashMap::new(),
            instances: BTreeMap::new(),
            instance_of: HashMap::new(),
            next_instance: 1,
            stats: Stats {
                instances_now: vec![0; n],
                instances_peak: vec![0; n],
                booting_ms: vec![0; n],
                busy_ms: vec![0; n],
                idle_ms: vec![0; n],
                stopped_ms: vec![0; n],
                cost: vec![0.0; n],
                idle_cost: vec![0.0; n],
                wasted: vec![0; n],
                ..Stats::default()
            },
        }
    }

    /// Puts `ev` on the calendar `delay_ms` from now.
    pub fn at(&mut self, delay_ms: u64, ev: Ev) {
        self.seq += 1;
        self.heap
            .push(Reverse((self.now_ms + delay_ms, self.seq, ev)));
    }

    /// The next event and its time, taken off the calendar.
    pub fn next(&mut self) -> Option<(u64, Ev)> {
        self.heap.pop().map(|Reverse((t, _, ev))| (t, ev))
    }

    /// When the next event on the calendar happens.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// A job event at the forge: its webhook delivery, which may be lost, sent twice or late.
    pub fn emit(&mut self, job: u32, action: Action) {
        let f = self.models.forge.clone();
        if self.rng.random::<f64>() < f.lost {
            self.stats.deliveries_lost += 1;
            return;
        }
        let copies = if self.rng.random::<f64>() < f.repeated {
            self.stats.deliveries_repeated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut lag = sample_ms(&self.models.delivery_lag, &mut self.rng);
            if self.rng.random::<f64>() < f.reordered {
                lag += sample_ms(&f.reorder_lag, &mut self.rng);
            }
            self.stats.deliveries += 1;
            self.at(lag, Ev::Deliver(job, action));
        }
    }

    /// Whether `delivery` is the first of its job and action (`serve`'s job key); marks it.
    pub fn first_delivery(&mut self, job: u32, action: Action) -> bool {
        let s = &mut self.jobs[job as usize];
        let first = s.seen & action.bit() == 0;
        s.seen |= action.bit();
        first
    }

    /// Whether the runner `r` may take job `j`: labels, scope, and the forge's rule.
    fn fits(&self, r: &ForgeRunnerState, j: u32) -> bool {
        self.labels_fit(r, self.trace.jobs[j as usize].labels) && self.may_take(r, j)
    }

    /// Whether the runner has every label of the label set `set`.
    fn labels_fit(&self, r: &ForgeRunnerState, set: u32) -> bool {
        self.labels_lc[set as usize]
            .iter()
            .all(|l| r.labels.contains(l))
    }

    /// Whether the runner may take job `j` whose labels fit: its scope, the forge's rule.
    fn may_take(&self, r: &ForgeRunnerState, j: u32) -> bool {
        let job = &self.trace.jobs[j as usize];
        let repo = &self.trace.repositories[job.repository as usize];
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        let scope_ok = match r.scope.base() {
            Scope::Org(o) | Scope::User(o) => o.eq_ignore_ascii_case(owner),
            Scope::Repo { owner: o, repo: n } => {
                o.eq_ignore_ascii_case(owner) && n.eq_ignore_ascii_case(name)
            }
            Scope::Instance | Scope::ScaleSet { .. } => true,
        };
        if !scope_ok {
            return false;
        }
        self.models.forge.any_idle_runner
            || self.made_for.get(&r.name).is_none_or(|made| *made == j)
    }

    /// A job is queued: an idle runner that fits takes it at once.
    pub fn arrive(&mut self, j: u32) {
        let job = self.trace.jobs[j as usize];
        self.waiting[job.labels as usize].insert((job.queued_ms, j));
        self.emit(j, Action::Queued);
        let idle = self
            .runners
            .iter()
            .find(|(_, r)| r.online && r.job.is_none() && self.fits(r, j))
            .map(|(id, _)| *id);
        if let Some(id) = idle {
            self.start(j, id);
        }
    }

    /// An online idle runner asks for a job: it takes the oldest that fits.
    pub fn poll(&mut self, runner: u64) {
        let Some(r) = self.runners.get(&runner) else {
            return;
        };
        // The oldest fitting job of each label set the runner has, then the oldest of those.
        let found = (0..self.waiting.len() as u32)
            .filter(|set| self.labels_fit(r, *set))
            .filter_map(|set| {
                self.waiting[set as usize]
                    .iter()
                    .find(|(_, j)| self.may_take(r, *j))
                    .copied()
            })
            .min();
        if let Some((_, j)) = found {
            self.start(j, runner);
        }
    }

    fn start(&mut self, j: u32, runner: u64) {
        let job = self.trace.jobs[j as usize];
        self.waiting[job.labels as usize].remove(&(job.queued_ms, j));
        let duration = job.duration_ms;
        let Some(r) = self.runners.get_mut(&runner) else {
            return;
        };
        r.job = Some(j);
        let name = r.name.clone();
        self.made_for.remove(&name);
        let s = &mut self.jobs[j as usize];
        s.started_ms = Some(self.now_ms);
        s.runner = Some((runner, name.clone()));
        if let Some(i) = self
            .instance_of
            .get(&name)
            .and_then(|i| self.instances.get_mut(i))
        {
            i.jobs += 1;
        }
        self.emit(j, Action::InProgress);
        self.at(duration, Ev::JobEnd(j));
    }

    /// A job's steps are done: the ephemeral runner unregisters and exits; the instance stays
    /// until the manager deletes it.
    pub fn job_end(&mut self, j: u32) {
        let s = &mut self.jobs[j as usize];
        if s.ended {
            return;
        }
        s.ended = true;
        let started = s.started_ms.unwrap_or(self.now_ms);
        if let Some((id, name)) = s.runner.clone() {
            self.runners.remove(&id);
            self.runner_ids.remove(&name);
            if let Some(i) = self
                .instance_of
                .get(&name)
                .and_then(|i| self.instances.get_mut(i))
            {
                i.busy_ms += self.now_ms - started;
            }
        }
        self.emit(j, Action::Completed);
    }

    /// An instance is running: its runner comes up after its start-up time, unless it waits
    /// for its credential (warm) or is to be stopped once booted (a stopped pool's).
    pub fn booted(&mut self, inst: u64) {
        let startup = sample_ms(&self.models.runner_startup, &mut self.rng);
        let now = self.now_ms;
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        if i.stopped_since.is_some() {
            return; // stopped again meanwhile
        }
        i.running = true;
        i.booted_ms.get_or_insert(now);
        if i.stop_after_boot {
            i.stop_after_boot = false;
            i.running = false;
            i.stopped_since = Some(now);
            return;
        }
        if !i.waits {
            self.at(startup, Ev::RunnerUp(inst));
        }
    }

    /// A warm instance is stopped: at once when booted, else once its first boot ends.
    pub fn stop_instance(&mut self, inst: u64) {
        let now = self.now_ms + self.offset_ms;
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        if i.stopped_since.is_some() {
            return;
        }
        if i.booted_ms.is_some() {
            i.running = false;
            i.stopped_since = Some(now);
        } else {
            i.stop_after_boot = true;
        }
    }

    /// A stopped warm instance is started: running again after the cloud's start time (one
    /// still in its first boot just goes on booting).
    pub fn start_instance(&mut self, inst: u64, start_ms: u64) {
        let now = self.now_ms + self.offset_ms;
        let offset = self.offset_ms;
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        i.stop_after_boot = false;
        if let Some(since) = i.stopped_since.take() {
            i.stopped_ms += now.saturating_sub(since);
            self.at(offset + start_ms, Ev::Booted(inst));
        }
    }

    /// A warm instance gets its credential: its runner comes up after its start-up time once
    /// it runs (at once when it runs already).
    pub fn credential_delivered(&mut self, inst: u64) {
        let startup = sample_ms(&self.models.runner_startup, &mut self.rng);
        let offset = self.offset_ms;
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        let was_waiting = std::mem::replace(&mut i.waits, false);
        if was_waiting && i.running && i.stopped_since.is_none() {
            self.at(offset + startup, Ev::RunnerUp(inst));
        }
    }

    /// An instance's runner polls: online when still registered, and takes a job.
    pub fn runner_up(&mut self, inst: u64) {
        let Some(i) = self.instances.get_mut(&inst) else {
            return;
        };
        i.online_ms = Some(self.now_ms);
        let Some(id) = self.runner_ids.get(&i.runner).copied() else {
            return;
        };
        if let Some(r) = self.runners.get_mut(&id) {
            r.online = true;
        }
        self.poll(id);
    }

    /// The cloud takes an instance back: its job fails, its runner goes offline.
    pub fn interrupt(&mut self, inst: u64) {
        let Some(i) = self.instances.get(&inst) else {
            return;
        };
        self.stats.interruptions += 1;
        let runner = i.runner.clone();
        if let Some(id) = self.runner_ids.get(&runner).copied() {
            let job = self.runners.get_mut(&id).and_then(|r| {
                r.online = false;
                r.job.take()
            });
            if let Some(j) = job {
                self.jobs[j as usize].interrupted = true;
                self.job_end(j);
            }
        }
        self.remove_instance(inst);
    }

    /// Takes an instance out of the cloud, billing it up to now plus `extra_ms`.
    pub fn remove_instance(&mut self, inst: u64) -> Option<Inst> {
        let i = self.instances.remove(&inst)?;
        self.instance_of.remove(&i.runner);
        let g = i.group as usize;
        let end = self.now_ms + self.offset_ms;
        self.account(&i, end);
        self.stats.instances_now[g] = self.stats.instances_now[g].saturating_sub(1);
        Some(i)
    }

    /// Adds an instance's life up to `end_ms` to the totals.
    pub fn account(&mut self, i: &Inst, end_ms: u64) {
        let l = life(i, end_ms, self.clouds.get(&i.backend));
        let g = i.group as usize;
        self.stats.booting_ms[g] += l.booting_ms;
        self.stats.busy_ms[g] += l.busy_ms;
        self.stats.idle_ms[g] += l.idle_ms;
        self.stats.stopped_ms[g] += l.stopped_ms;
        self.stats.cost[g] += l.cost;
        self.stats.idle_cost[g] += l.idle_cost;
        self.stats.wasted[g] += l.wasted;
    }

    /// What the instances still up would add to each group's totals, up to `end_ms`.
    pub fn tail_accounting(w: &World, end_ms: u64) -> Vec<Life> {
        let mut out = vec![Life::default(); w.group_names.len()];
        for i in w.instances.values() {
            let l = life(i, end_ms, w.clouds.get(&i.backend));
            let t = &mut out[i.group as usize];
            t.booting_ms += l.booting_ms;
            t.busy_ms += l.busy_ms;
            t.idle_ms += l.idle_ms;
            t.stopped_ms += l.stopped_ms;
            t.cost += l.cost;
            t.idle_cost += l.idle_cost;
            t.wasted += l.wasted;
        }
        out
    }

    /// A forge call of `points`: refused when the minute's points would pass the limit.
    pub(super) fn call(&mut self, write: bool) -> Result<(), ForgeError> {
        let f = &self.models.forge;
        let points = if write { f.write_points } else { f.read_points };
        let limit = f.points_per_minute;
        let latency = sample_ms(&self.models.api_latency, &mut self.rng);
        self.offset_ms += latency;
        let minute = (self.now_ms + self.offset_ms) / 60_000;
        let used = self.stats.points_by_minute.entry(minute).or_default();
        if limit > 0 && *used + points > limit {
            self.stats.api_refused += 1;
            let reset_ms = (minute + 1) * 60_000;
            let wait = reset_ms - (self.now_ms + self.offset_ms).min(reset_ms);
            return Err(ForgeError::RateLimited {
                reset_at: (self.epoch_ms + reset_ms) / 1000,
                wait: std::time::Duration::from_millis(wait),
            });
        }
        *used += points;
        let used = *used;
        let stats = &mut self.stats;
        stats.peak_points_per_minute = stats.peak_points_per_minute.max(used);
        while stats
            .points_by_minute
            .first_key_value()
            .is_some_and(|(m, _)| m + 2 < minute)
        {
            stats.points_by_minute.pop_first();
        }
        self.stats.api_calls += 1;
        self.stats.api_points += points;
        Ok(())
    }
}

/// An instance's time by what it did, its cost, and whether it ran no job.
#[derive(Debug, Clone, Default)]
pub struct Life {
    pub booting_ms: u64,
    pub busy_ms: u64,
    pub idle_ms: u64,
    /// Stopped (a stopped pool's instance), billed at the stopped price.
    pub stopped_ms: u64,
    pub cost: f64,
    /// What it cost while it ran no job: booting, idle, stopped.
    pub idle_cost: f64,
    pub wasted: u64,
}

fn life(i: &Inst, end_ms: u64, cloud: Option<&Cloud>) -> Life {
    let life = end_ms.saturating_sub(i.created_ms);
    let stopped = i.stopped_ms
        + i.stopped_since
            .map_or(0, |since| end_ms.saturating_sub(since));
    let stopped = stopped.min(life);
    // A warm instance's boot ends when it booted (then it waits, idle); a runner's at its
    // first poll.
    let up = if i.warm { i.booted_ms } else { i.online_ms }
        .unwrap_or(end_ms)
        .min(end_ms);
    let booting = up.saturating_sub(i.created_ms).min(life - stopped);
    let busy = i.busy_ms.min(life - stopped - booting);
    let running_s = (life - stopped) as f64 / 1000.0;
    let (cost, busy_cost) = cloud.map_or((0.0, 0.0), |c| {
        (
            c.billing.billed_secs(running_s) * i.price_per_hour / 3600.0
                + stopped as f64 / 1000.0 * i.stopped_price_per_hour / 3600.0,
            busy as f64 / 1000.0 * i.price_per_hour / 3600.0,
        )
    });
    Life {
        booting_ms: booting,
        busy_ms: busy,
        idle_ms: life - stopped - booting - busy,
        stopped_ms: stopped,
        cost,
        idle_cost: (cost - busy_cost).max(0.0),
        wasted: u64::from(i.jobs == 0),
    }
}

/// The world, shared by the event loop and the models the manager calls.
#[derive(Clone)]
pub struct Shared(pub Arc<Mutex<World>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
