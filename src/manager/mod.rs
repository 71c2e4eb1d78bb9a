//! The domain: what to do with each task. Decisions are pure functions over observed state
//! (`matching`, `plan`, `sync`, `leftover`); `ops` carries them out against the store, the forge and the
//! backends; `TaskHandler` maps each task of the queue to an operation and its outcome to the
//! queue's retry policy.

pub mod breaker;
pub mod leftover;
pub mod matching;
pub mod ops;
pub mod plan;
pub mod sync;
pub mod warm;

pub use ops::{
    Cause, Created, EventIds, Failure, HealthResult, HealthRow, Manager, Removed, CREATES,
    WARM_FAILURES, WARM_TAKEN,
};

use crate::queue::{Envelope, Task};
use crate::records::RunnerStore;
use crate::worker::{Handler, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// Handles every kind of task a worker takes from the queue.
pub struct TaskHandler {
    store: Arc<dyn RunnerStore>,
    manager: Option<Arc<Manager>>,
}

impl TaskHandler {
    /// A handler for the queue's own tasks only (tests, benchmarks).
    pub fn new(store: impl RunnerStore + 'static) -> TaskHandler {
        TaskHandler {
            store: Arc::new(store),
            manager: None,
        }
    }

    /// A handler for every task, runners included.
    pub fn with_manager(manager: Arc<Manager>) -> TaskHandler {
        TaskHandler {
            store: manager.store.clone(),
            manager: Some(manager),
        }
    }
}

/// How long a job waits before it asks again for a slot of a full group.
fn capacity_wait() -> Duration {
    Duration::from_millis(250 + fastrand::u64(0..500))
}

/// How long a task waits for another task that works on the same runner.
fn busy_wait() -> Duration {
    Duration::from_millis(200 + fastrand::u64(0..300))
}

/// The queue's verdict on an operation's result. A rate limit and a runner another task works
/// on wait without counting an attempt: neither is the task's failure, and neither may ever
/// send it to the dead letters.
fn outcome<T>(r: Result<T, Failure>) -> Outcome {
    match r {
        Ok(_) => Outcome::Done,
        Err(Failure::Transient(e)) => Outcome::Retry(e.to_string()),
        Err(Failure::Permanent(e)) => Outcome::Fail(e.to_string()),
        Err(Failure::RateLimited { wait, cause }) => Outcome::Wait {
            // A little past the reset, spread so that waiting tasks do not all return at once.
            delay: wait + Duration::from_millis(fastrand::u64(100..2_000)),
            reason: cause.to_string(),
        },
        Err(Failure::Busy(why)) => Outcome::Wait {
            delay: busy_wait(),
            reason: why,
        },
        Err(Failure::Unreachable(why)) => Outcome::Wait {
            delay: Duration::from_millis(3_000 + fastrand::u64(0..2_000)),
            reason: why.to_string(),
        },
    }
}

/// Health-check actions carried out by this process, by group, action and result.
pub static HEALTH_ACTIONS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_healthcheck_actions_total",
    "Health-check actions this worker carried out, by group, action and result.",
    &["group", "action", "result"],
);

/// From a queued job's task to its runner's instance created, by group.
pub static CREATE_SECONDS: crate::prom::Histogram = crate::prom::Histogram::new(
    "runnerctl_runner_create_duration_seconds",
    "Time from a queued job's task to its runner's instance created, by group.",
    &["group"],
    &[
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ],
);

/// How long jobs waited for a runner (queued → in_progress, by the forge's clock), by the group
/// of the runner that took them; observed once per job, by the worker handling its
/// `in_progress` task.
pub static JOB_WAIT_SECONDS: crate::prom::Histogram = crate::prom::Histogram::new(
    "runnerctl_job_wait_seconds",
    "Time jobs waited for a runner, queued to in_progress by the forge's clock, by group and where the runner came from (hot, stopped, cold, min_runners, stolen).",
    &["group", "source"],
    &[
        1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
    ],
);

/// The phases of jobs' waits (`records::PHASES`), by the group of the runner chosen for
/// them; observed once a job's `in_progress` task is handled, from its timeline.
pub static JOB_PHASE_SECONDS: crate::prom::Histogram = crate::prom::Histogram::new(
    "runnerctl_job_phase_seconds",
    "Phases of jobs' waits from their timelines: delivery (queued to delivered), decision (to runner chosen), registration, instance_start, runner_start (instance started to in progress), by group.",
    &["group", "phase"],
    &[
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ],
);

/// The phases a job's timeline shows, in seconds: (phase, duration) for each phase whose
/// two steps were noted (a negative one, clocks that differ, counts as 0).
pub fn phases(t: &std::collections::BTreeMap<String, String>) -> Vec<(&'static str, f64)> {
    let at = |k: &str| t.get(k).and_then(|v| v.parse::<u64>().ok());
    crate::records::PHASES
        .iter()
        .filter_map(|(phase, from, to)| {
            let (a, b) = (at(from)?, at(to)?);
            Some((*phase, b.saturating_sub(a) as f64 / 1000.0))
        })
        .collect()
}

/// Notes the timeline of the job of a task; best effort.
async fn note(
    store: &dyn crate::records::RunnerStore,
    job: u64,
    times: &[(&str, u64)],
    texts: &[(&str, &str)],
) {
    if let Err(e) = store.note_job(job, times, texts).await {
        tracing::debug!(job, error = %e, "could not note the job's timeline");
    }
}

/// A `job_queued` task's timeline: its delivery, the forge's queued time and what making the
/// runner noted, in one write whatever the outcome (a retry's later times replace nothing).
async fn note_queued(
    m: &Manager,
    env: &Envelope,
    job_id: u64,
    group: &str,
    repository: &str,
    queued_at: Option<u64>,
) {
    let steps = m.take_steps(job_id);
    let mut times = vec![("delivered", env.enqueued_at.max(1))];
    times.extend(queued_at.map(|q| ("queued", q.max(1) * 1000)));
    times.extend(steps.times.iter().copied());
    let mut texts = vec![("repository", repository), ("group", group)];
    texts.extend(steps.runner.as_deref().map(|r| ("runner", r)));
    texts.extend(steps.source.map(|s| ("source", s)));
    note(&*m.store, job_id, &times, &texts).await;
}

/// Observes a started job's phases from its timeline (after its `in_progress` was noted).
async fn observe_phases(store: &dyn crate::records::RunnerStore, job: u64) {
    let Ok(t) = store.job_timeline(job).await else {
        return;
    };
    let Some(group) = t.get("group") else { return };
    for (phase, secs) in phases(&t) {
        JOB_PHASE_SECONDS.observe(&[group, phase], Duration::from_secs_f64(secs));
    }
}

/// A job's `in_progress` task: the runner that took it is marked, the job's timeline noted,
/// its wait and phases observed.
async fn in_progress(
    m: &Manager,
    env: &Envelope,
    job_id: u64,
    runner_name: &str,
    who: EventIds,
    waited_secs: Option<u64>,
) -> Outcome {
    let r = m.job_in_progress(job_id, runner_name, who).await;
    if let Ok(Some(source)) = &r {
        let times = [("in_progress", env.enqueued_at.max(1))];
        let texts = [("ran_on", runner_name), ("wait_source", source.as_str())];
        note(&*m.store, job_id, &times, &texts).await;
        observe_phases(&*m.store, job_id).await;
    }
    if let (Ok(Some(source)), Some(w)) = (&r, waited_secs) {
        let groups = &m.config.runner_groups;
        if let Some(g) = matching::group_of_runner(&m.config.name, groups, runner_name) {
            let labels = [g.name.as_str(), source.as_str()];
            JOB_WAIT_SECONDS.observe(&labels, Duration::from_secs(w));
        }
    }
    outcome(r.map(|_| ()))
}

fn count_health(group: &str, r: &Result<Vec<HealthRow>, Failure>) {
    let Ok(rows) = r else {
        HEALTH_ACTIONS.inc(&[group, "pass", "failed"]);
        return;
    };
    for row in rows {
        let action = serde_json::to_value(&row.action)
            .ok()
            .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(String::from))
            .unwrap_or_else(|| "unknown".into());
        let result = match &row.result {
            HealthResult::Ok(_) => "ok",
            HealthResult::Skipped(_) => "skipped",
            HealthResult::Failed(_) => "failed",
            HealthResult::Planned => "planned",
        };
        HEALTH_ACTIONS.inc(&[&row.group, &action, result]);
    }
}

fn created(group: &str, r: Result<Created, Failure>) -> Outcome {
    match r {
        Ok(Created::Full { held }) => Outcome::Wait {
            delay: capacity_wait(),
            reason: format!("group `{group}` is at max_runners ({held} held)"),
        },
        other => outcome(other),
    }
}

/// A dead-lettered scale-set message put back on the queue: there is nothing to do with it.
fn requeued_message(scale_set: &str, message_id: u64) -> Outcome {
    tracing::warn!(
        scale_set,
        message_id,
        "a scale-set message runnerctl could not read was requeued: nothing to do"
    );
    Outcome::Done
}

impl Handler for TaskHandler {
    async fn handle(&self, env: &Envelope) -> Outcome {
        if let Task::Noop {
            mark,
            sleep_ms,
            fail_times,
        } = &env.task
        {
            if *sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(*sleep_ms)).await;
            }
            if env.attempt < *fail_times {
                return Outcome::Retry(format!(
                    "no-op task failing on purpose (attempt {} of {fail_times} failing)",
                    env.attempt + 1
                ));
            }
            return match self.store.count_mark(mark).await {
                Ok(_) => Outcome::Done,
                Err(e) => Outcome::Retry(e.to_string()),
            };
        }
        let Some(m) = &self.manager else {
            return Outcome::Fail(format!("`{}` tasks need a runner manager", env.task.kind()));
        };
        match &env.task {
            Task::JobQueued {
                job_id,
                group,
                repository,
                run_id,
                queued_at,
                ..
            } => {
                let started = std::time::Instant::now();
                let r = m
                    .job_queued_from(group, *job_id, Some((repository.as_str(), *run_id)))
                    .await;
                note_queued(m, env, *job_id, group, repository, *queued_at).await;
                if matches!(r, Ok(Created::New(_))) {
                    CREATE_SECONDS.observe(&[group], started.elapsed());
                }
                created(group, r)
            }
            Task::JobInProgress {
                job_id,
                runner_name,
                runner_id,
                runner_group_id,
                waited_secs,
            } => {
                let who = EventIds {
                    runner_id: *runner_id,
                    runner_group_id: *runner_group_id,
                };
                in_progress(m, env, *job_id, runner_name, who, *waited_secs).await
            }
            Task::JobCompleted {
                job_id,
                runner_name,
                runner_id,
                runner_group_id,
                ..
            } => {
                let who = EventIds {
                    runner_id: *runner_id,
                    runner_group_id: *runner_group_id,
                };
                let times = [("completed", env.enqueued_at.max(1))];
                note(&*m.store, *job_id, &times, &[]).await;
                outcome(m.job_completed(*job_id, runner_name.as_deref(), who).await)
            }
            Task::CreateRunner { group } => match m.group(group) {
                None => Outcome::Fail(format!("no runner group `{group}`")),
                Some(g) => created(
                    group,
                    m.create_runner(g, &format!("task:{}", env.id), None).await,
                ),
            },
            Task::DeleteRunner { name, force } => match m.delete_runner(name, *force).await {
                Ok(Removed::Busy) => Outcome::Retry(format!("runner {name} is running a job")),
                other => outcome(other),
            },
            Task::GroupHealthCheck { group } => match m.group(group) {
                None => Outcome::Fail(format!("no runner group `{group}`")),
                Some(g) => {
                    let r = m.health_check(g).await;
                    count_health(group, &r);
                    outcome(r)
                }
            },
            Task::ScaleSetMessage {
                scale_set,
                message_id,
                ..
            } => requeued_message(scale_set, *message_id),
            Task::Noop { .. } => Outcome::Done,
        }
    }
}
