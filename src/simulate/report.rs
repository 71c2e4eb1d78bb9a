//! What a run measured: job waits, runner time, cost, API use, peaks. Every figure names its
//! unit in its key (`_s` seconds, `_minutes`, `_per_minute`); `cost` is in the currency of
//! the models' `price_per_hour`.

use super::trace::Trace;
use super::world::World;
use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeMap;

/// Job waits (queued → started), seconds, over the jobs that started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Waits {
    pub p50_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    pub mean_s: f64,
}

/// Runner time by what the runners did, minutes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunnerMinutes {
    /// From the create call to the runner's first poll.
    pub booting: f64,
    /// Running a job.
    pub busy: f64,
    /// Up and not running a job, until the instance was gone.
    pub idle: f64,
    /// Stopped (a warm pool's stopped instances).
    pub stopped: f64,
}

/// The forge's API as the run used it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Api {
    pub calls: u64,
    pub points: u64,
    pub peak_points_per_minute: u64,
    /// Calls refused by the points-per-minute limit.
    pub refused: u64,
}

/// Webhook deliveries the modelled forge sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deliveries {
    pub sent: u64,
    pub lost: u64,
    pub repeated: u64,
}

/// One group's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupReport {
    pub jobs: u64,
    pub jobs_never_started: u64,
    pub wait: Waits,
    pub peak_instances: u32,
    pub runner_minutes: RunnerMinutes,
    pub runners_wasted: u64,
    pub cost: f64,
    /// What the runners cost while they ran no job (booting, idle, stopped).
    pub idle_cost: f64,
}

/// One repository's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepositoryReport {
    pub jobs: u64,
    pub jobs_never_started: u64,
    pub wait: Waits,
}

/// One run of a trace under one configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The configuration's name in this comparison (`config`, `per-job`, a file).
    pub name: String,
    pub jobs: u64,
    pub jobs_started: u64,
    /// Still waiting when the run ended (`--drain` after the last job was queued).
    pub jobs_never_started: u64,
    /// No runner group takes them (labels, repository): `serve` would not enqueue them.
    pub jobs_unmatched: u64,
    /// Their instance was interrupted while they ran (spot): they failed.
    pub jobs_interrupted: u64,
    pub wait: Waits,
    pub runner_minutes: RunnerMinutes,
    pub cost: f64,
    /// What the runners cost while they ran no job (booting, idle, stopped).
    pub idle_cost: f64,
    /// Instances made, and those that never ran a job.
    pub runners_made: u64,
    pub runners_wasted: u64,
    pub create_failures: u64,
    pub interruptions: u64,
    pub api: Api,
    pub deliveries: Deliveries,
    /// Tasks that failed for good (a permanent error).
    pub tasks_failed: u64,
    /// From the start of the trace to the end of the run.
    pub simulated_s: f64,
    pub groups: BTreeMap<String, GroupReport>,
    pub repositories: BTreeMap<String, RepositoryReport>,
}

/// Three decimals: figures print the same on every machine.
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentiles of waits in milliseconds (`sorted`).
fn waits(sorted: &[u64]) -> Waits {
    if sorted.is_empty() {
        return Waits::default();
    }
    let at = |p: f64| {
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    };
    let sum: u128 = sorted.iter().map(|&w| u128::from(w)).sum();
    Waits {
        p50_s: r3(at(0.50)),
        p95_s: r3(at(0.95)),
        p99_s: r3(at(0.99)),
        max_s: r3(*sorted.last().unwrap_or(&0) as f64 / 1000.0),
        mean_s: r3(sum as f64 / sorted.len() as f64 / 1000.0),
    }
}

fn minutes(ms: u64) -> f64 {
    r3(ms as f64 / 60_000.0)
}

/// The jobs' waits and fates, by group and by repository.
#[derive(Default)]
struct Tally {
    all: Vec<u64>,
    by_group: Vec<Vec<u64>>,
    never_by_group: Vec<u64>,
    jobs_by_group: Vec<u64>,
    /// Per repository: waits, jobs, jobs never started.
    by_repo: BTreeMap<u32, (Vec<u64>, u64, u64)>,
    unmatched: u64,
    never: u64,
    interrupted: u64,
}

fn tally(trace: &Trace, w: &World, n_groups: usize) -> Tally {
    let mut t = Tally {
        by_group: vec![Vec::new(); n_groups],
        never_by_group: vec![0; n_groups],
        jobs_by_group: vec![0; n_groups],
        ..Tally::default()
    };
    for (i, j) in trace.jobs.iter().enumerate() {
        let st = &w.jobs[i];
        let repo = t.by_repo.entry(j.repository).or_default();
        repo.1 += 1;
        if st.interrupted {
            t.interrupted += 1;
        }
        let g = st.group.map(|g| g as usize);
        if let Some(g) = g {
            t.jobs_by_group[g] += 1;
        }
        match st.started_ms {
            Some(at) => {
                let wait = at.saturating_sub(j.queued_ms);
                t.all.push(wait);
                repo.0.push(wait);
                if let Some(g) = g {
                    t.by_group[g].push(wait);
                }
            }
            None if st.unmatched => t.unmatched += 1,
            None => {
                t.never += 1;
                repo.2 += 1;
                if let Some(g) = g {
                    t.never_by_group[g] += 1;
                }
            }
        }
    }
    t.all.sort_unstable();
    t
}

/// The totals with the instances still up billed until `end_ms`.
fn totals(w: &World, end_ms: u64) -> super::world::Stats {
    let mut s = w.stats.clone();
    for (g, t) in World::tail_accounting(w, end_ms).iter().enumerate() {
        s.booting_ms[g] += t.booting_ms;
        s.busy_ms[g] += t.busy_ms;
        s.idle_ms[g] += t.idle_ms;
        s.stopped_ms[g] += t.stopped_ms;
        s.cost[g] += t.cost;
        s.idle_cost[g] += t.idle_cost;
        s.wasted[g] += t.wasted;
    }
    s
}

/// The report of a finished run; instances still up are billed until `end_ms`.
pub fn build(name: &str, config: &Config, trace: &Trace, w: &World, end_ms: u64) -> Report {
    let s = totals(w, end_ms);
    let mut t = tally(trace, w, config.runner_groups.len());
    let groups = config
        .runner_groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            t.by_group[g].sort_unstable();
            let r = GroupReport {
                jobs: t.jobs_by_group[g],
                jobs_never_started: t.never_by_group[g],
                wait: waits(&t.by_group[g]),
                peak_instances: s.instances_peak[g],
                runner_minutes: RunnerMinutes {
                    booting: minutes(s.booting_ms[g]),
                    busy: minutes(s.busy_ms[g]),
                    idle: minutes(s.idle_ms[g]),
                    stopped: minutes(s.stopped_ms[g]),
                },
                runners_wasted: s.wasted[g],
                cost: r3(s.cost[g]),
                idle_cost: r3(s.idle_cost[g]),
            };
            (group.name.clone(), r)
        })
        .collect();
    let repositories = std::mem::take(&mut t.by_repo)
        .into_iter()
        .map(|(repo, (mut ws, jobs, never))| {
            ws.sort_unstable();
            let r = RepositoryReport {
                jobs,
                jobs_never_started: never,
                wait: waits(&ws),
            };
            (trace.repositories[repo as usize].clone(), r)
        })
        .collect();
    let sum = |v: &[u64]| v.iter().sum::<u64>();
    Report {
        name: name.to_string(),
        jobs: trace.jobs.len() as u64,
        jobs_started: t.all.len() as u64,
        jobs_never_started: t.never,
        jobs_unmatched: t.unmatched,
        jobs_interrupted: t.interrupted,
        wait: waits(&t.all),
        runner_minutes: RunnerMinutes {
            booting: minutes(sum(&s.booting_ms)),
            busy: minutes(sum(&s.busy_ms)),
            idle: minutes(sum(&s.idle_ms)),
            stopped: minutes(sum(&s.stopped_ms)),
        },
        cost: r3(s.cost.iter().sum()),
        idle_cost: r3(s.idle_cost.iter().sum()),
        runners_made: s.instances_made,
        runners_wasted: sum(&s.wasted),
        create_failures: s.create_failures,
        interruptions: s.interruptions,
        api: Api {
            calls: s.api_calls,
            points: s.api_points,
            peak_points_per_minute: s.peak_points_per_minute,
            refused: s.api_refused,
        },
        deliveries: Deliveries {
            sent: s.deliveries,
            lost: s.deliveries_lost,
            repeated: s.deliveries_repeated,
        },
        tasks_failed: s.tasks_failed,
        simulated_s: r3(end_ms as f64 / 1000.0),
        groups,
        repositories,
    }
}

/// The rows of the summary: a figure's label with its unit, and how to read it from a report.
#[allow(clippy::type_complexity)]
pub const ROWS: &[(&str, fn(&Report) -> f64)] = &[
    ("jobs", |r| r.jobs as f64),
    ("jobs started", |r| r.jobs_started as f64),
    ("jobs never started", |r| r.jobs_never_started as f64),
    ("jobs unmatched", |r| r.jobs_unmatched as f64),
    ("jobs interrupted", |r| r.jobs_interrupted as f64),
    ("wait p50 (s)", |r| r.wait.p50_s),
    ("wait p95 (s)", |r| r.wait.p95_s),
    ("wait p99 (s)", |r| r.wait.p99_s),
    ("wait max (s)", |r| r.wait.max_s),
    ("wait mean (s)", |r| r.wait.mean_s),
    ("runner busy (min)", |r| r.runner_minutes.busy),
    ("runner idle (min)", |r| r.runner_minutes.idle),
    ("runner booting (min)", |r| r.runner_minutes.booting),
    ("runner stopped (min)", |r| r.runner_minutes.stopped),
    ("cost (price units)", |r| r.cost),
    ("idle cost (price units)", |r| r.idle_cost),
    ("runners made", |r| r.runners_made as f64),
    ("runners wasted", |r| r.runners_wasted as f64),
    ("API calls", |r| r.api.calls as f64),
    ("API points", |r| r.api.points as f64),
    ("API peak points/min", |r| {
        r.api.peak_points_per_minute as f64
    }),
    ("API calls refused", |r| r.api.refused as f64),
    ("deliveries lost", |r| r.deliveries.lost as f64),
    ("simulated (s)", |r| r.simulated_s),
];

/// A figure as printed: integers without decimals.
pub fn fmt(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.3}")
    }
}

/// `b / a` as printed, `-` when `a` is 0.
pub fn ratio(a: f64, b: f64) -> String {
    if a == 0.0 {
        if b == 0.0 {
            "1.00".into()
        } else {
            "-".into()
        }
    } else {
        format!("{:.2}", b / a)
    }
}
