//! Warm pools (issue 34) on the fake backend, with real Redis and the fake GitHub: a warm
//! instance is no registered runner; a job takes one atomically (two jobs never the same), it
//! becomes that job's runner, and the pool is replenished; a pool above its target, or old,
//! retires only instances no job took; the slots of `max_runners` hold throughout.

mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::{Backend, InstanceState};
use runnerctl::config::{Config, RunnerGroup, Secret};
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::{sync, Manager, TaskHandler};
use runnerctl::model::{Pool, RunnerStatus};
use runnerctl::queue::{Envelope, Task};
use runnerctl::store::{self, RedisStore};
use runnerctl::worker::{Handler, Outcome};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use support::{manager_name, RedisServer};

struct World {
    _redis: RedisServer,
    sim: FakeGitHub,
    config: Arc<Config>,
    m: Arc<Manager>,
    st: RedisStore,
    backend: Arc<dyn Backend>,
    /// The configuration file's text (for the binary).
    text: String,
}

impl World {
    fn g(&self) -> RunnerGroup {
        self.config.runner_groups[0].clone()
    }

    async fn with_status(&self, s: RunnerStatus) -> Vec<runnerctl::model::Runner> {
        self.st
            .all_runners()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.status == s)
            .collect()
    }
}

async fn world(test: &str, group: &str) -> World {
    world_with(test, group, |b| b).await
}

/// [`world`] with the fake backend wrapped (to make it fail).
async fn world_with(
    test: &str,
    group: &str,
    wrap: impl FnOnce(Arc<dyn Backend>) -> Arc<dyn Backend>,
) -> World {
    let redis = RedisServer::start();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        job_duration: Duration::from_millis(50),
        rate_limit: 1_000_000,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let name = manager_name(test);
    let text = format!(
        "name: {name}\ncleanup_grace: 0s\ntime_to_start: 30s\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n{group}",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let g = config.runner_groups[0].clone();
    sync::sync(&*gh, &[&g], false, &|| {}).await;
    let conn = store::connect(&redis.url).await.unwrap();
    let backend: Arc<dyn Backend> = wrap(Arc::new(
        FakeBackend::new("fake", &name, None, Some(conn.clone()))
            .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
    ));
    let st = RedisStore::new(conn, &name);
    let m = Arc::new(Manager::new(
        config.clone(),
        st.clone(),
        gh,
        HashMap::from([("fake".to_string(), backend.clone())]),
    ));
    World {
        _redis: redis,
        sim,
        config,
        m,
        st,
        backend,
        text,
    }
}

fn queued(job: u64) -> Task {
    Task::JobQueued {
        job_id: job,
        run_id: job + 1000,
        repository: "octo-org/app".into(),
        labels: vec!["self-hosted".into(), "g".into()],
        group: "g".into(),
        queued_at: None,
    }
}

async fn handle(w: &World, task: Task) -> Outcome {
    TaskHandler::with_manager(w.m.clone())
        .handle(&Envelope::new(task, None))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_instance_is_no_registered_runner_until_a_job_takes_it() {
    let w = world(
        "warm-hot",
        "    max_runners: 4\n    warm_pool:\n      hot: 2\n",
    )
    .await;
    let g = w.g();
    let rows = w.m.warm_pass(&g, None).await.unwrap();
    assert_eq!(w.with_status(RunnerStatus::Warm).await.len(), 2, "{rows:?}");
    assert_eq!(w.backend.list().await.unwrap().len(), 2);
    assert!(
        w.sim.runners().is_empty(),
        "nothing registered on GitHub: nothing to steal, no ghost if it dies"
    );
    let warm: HashSet<String> = w
        .with_status(RunnerStatus::Warm)
        .await
        .into_iter()
        .map(|r| r.name)
        .collect();

    // A job takes one: it registers with that instance's name and runs the job.
    let job = w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    assert!(matches!(handle(&w, queued(job)).await, Outcome::Done));
    let registered = w.sim.runners();
    assert_eq!(registered.len(), 1);
    assert!(warm.contains(&registered[0].name), "{registered:?}");
    let taken = w.st.get(&registered[0].name).await.unwrap().unwrap();
    assert_eq!(taken.pool, Some(Pool::Hot));
    assert_eq!(taken.created_for_job, Some(job));
    let ran = support::eventually(Duration::from_secs(10), || async {
        w.sim
            .jobs()
            .iter()
            .any(|j| j.id == job && j.status != JobStatus::Queued)
            .then_some(())
    })
    .await;
    assert!(ran.is_some(), "the job went to the warm instance's runner");
    // The pool was replenished after the take: two warm again, none registered (the taken
    // one's registration may be gone already: GitHub removes an ephemeral runner after its job).
    let pool = w.with_status(RunnerStatus::Warm).await;
    assert_eq!(pool.len(), 2);
    let registered = w.sim.runners();
    assert!(
        registered
            .iter()
            .all(|r| pool.iter().all(|p| p.name != r.name)),
        "{registered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_never_take_the_same_warm_instance() {
    let w = world(
        "warm-race",
        "    max_runners: 8\n    warm_pool:\n      hot: 4\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    assert_eq!(w.with_status(RunnerStatus::Warm).await.len(), 4);
    let jobs: Vec<u64> = (0..4)
        .map(|_| w.sim.queue_job("octo-org/app", &["self-hosted", "g"]))
        .collect();
    let handled = futures_join(&w, &jobs).await;
    assert!(
        handled.iter().all(|o| matches!(o, Outcome::Done)),
        "{handled:?}"
    );
    let names: Vec<String> = w.sim.runners().into_iter().map(|r| r.name).collect();
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(names.len(), 4, "one runner per job: {names:?}");
    assert_eq!(distinct.len(), 4);
    for n in &names {
        let r = w.st.get(n).await.unwrap().unwrap();
        assert_eq!(r.pool, Some(Pool::Hot), "{n} came from the pool");
    }
    // Never above max_runners: 4 taken + the replenished pool.
    assert!(w.st.held("g").await.unwrap() <= 8);
}

async fn futures_join(w: &World, jobs: &[u64]) -> Vec<Outcome> {
    let mut set = tokio::task::JoinSet::new();
    for &j in jobs {
        let m = w.m.clone();
        set.spawn(async move {
            TaskHandler::with_manager(m)
                .handle(&Envelope::new(queued(j), None))
                .await
        });
    }
    let mut out = Vec::new();
    while let Some(o) = set.join_next().await {
        out.push(o.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_is_started_when_a_job_takes_it() {
    let w = world(
        "warm-stopped",
        "    max_runners: 4\n    warm_pool:\n      stopped: 1\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    let warm = w.with_status(RunnerStatus::Warm).await;
    assert_eq!(warm.len(), 1);
    let id = warm[0].instance_id.clone().unwrap();
    assert_eq!(
        w.backend.get(&id).await.unwrap().unwrap().state,
        InstanceState::Stopped
    );
    let job = w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    assert!(matches!(handle(&w, queued(job)).await, Outcome::Done));
    assert_eq!(
        w.backend.get(&id).await.unwrap().unwrap().state,
        InstanceState::Running
    );
    assert_eq!(w.sim.runners()[0].name, warm[0].name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_above_its_target_retires_only_what_no_job_took() {
    let w = world(
        "warm-retire",
        "    max_runners: 4\n    warm_pool:\n      hot: 3\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    let job = w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    assert!(matches!(handle(&w, queued(job)).await, Outcome::Done));
    let taken = w.sim.runners()[0].name.clone();
    // The target drops to nothing (a schedule window closed).
    let mut smaller = g.clone();
    smaller.warm_pool.as_mut().unwrap().hot = 0;
    let rows = w.m.warm_pass(&smaller, None).await.unwrap();
    assert!(
        w.with_status(RunnerStatus::Warm).await.is_empty(),
        "{rows:?}"
    );
    let left = w.backend.list().await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "only the taken one's instance stays: {left:?}"
    );
    assert_eq!(left[0].runner(), Some(taken.as_str()));
    assert!(w.st.get(&taken).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_count_against_max_runners() {
    let w = world(
        "warm-max",
        "    max_runners: 3\n    warm_pool:\n      hot: 3\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    assert_eq!(w.st.held("g").await.unwrap(), 3);
    // Five jobs: three take the pool, two wait for room (nothing above max_runners).
    let jobs: Vec<u64> = (0..5)
        .map(|_| w.sim.queue_job("octo-org/app", &["self-hosted", "g"]))
        .collect();
    let handled = futures_join(&w, &jobs).await;
    let done = handled
        .iter()
        .filter(|o| matches!(o, Outcome::Done))
        .count();
    assert!(done >= 3, "{handled:?}");
    assert!(w.st.held("g").await.unwrap() <= 3);
    assert!(w.backend.list().await.unwrap().len() <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_pass_keeps_the_pool_and_leaves_warm_instances_alone() {
    let w = world(
        "warm-health",
        "    max_runners: 4\n    warm_pool:\n      hot: 2\n",
    )
    .await;
    let g = w.g();
    let rows = w.m.health_check(&g).await.unwrap();
    let text = serde_json::to_string(&rows).unwrap();
    assert!(text.contains("\"action\":\"warm\""), "{text}");
    assert_eq!(w.with_status(RunnerStatus::Warm).await.len(), 2);
    // A second pass: nothing to do, nothing deleted (no record is an orphan or a ghost).
    let rows = w.m.health_check(&g).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(w.backend.list().await.unwrap().len(), 2);
}

/// Found in review: a job that took a warm instance whose lock a pass still held for a moment
/// (the end of its making, a retirement the take refused) gave up as busy; the taken record then
/// waited for a health pass (up to `healthcheck_interval`). Now the job's task waits for the
/// lock and makes its runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_takes_a_warm_instance_waits_out_a_brief_lock_on_it() {
    let w = world(
        "warm-lock",
        "    max_runners: 2\n    warm_pool:\n      hot: 1\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    let warm = w.with_status(RunnerStatus::Warm).await.remove(0).name;
    let lock = format!("runner:{warm}");
    let token =
        w.st.try_lock(&lock, Duration::from_secs(10))
            .await
            .unwrap()
            .expect("the lock is free");
    let (st, held) = (w.st.clone(), lock.clone());
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        st.unlock(&held, &token).await.unwrap();
    });
    let job = w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    let outcome = handle(&w, queued(job)).await;
    release.await.unwrap();
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    assert_eq!(
        w.sim.runners()[0].name,
        warm,
        "the taken instance became the runner"
    );
}

/// A job taken by a hot instance: `jobs show` prints its timeline (queued, delivered, runner
/// chosen, registered, instance started, in progress, completed) with the runner chosen and
/// where it came from, in JSON and as text; `runners show` prints the same timeline; the phase
/// histogram is on the worker's metrics. A job nothing is known of exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_s_timeline_shows_each_step_and_where_its_runner_came_from() {
    let w = world(
        "warm-timeline",
        "    max_runners: 4\n    warm_pool:\n      hot: 1\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    let job = w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    let queued_at = runnerctl::model::unix_now() - 1;
    let task = Task::JobQueued {
        job_id: job,
        run_id: job + 1000,
        repository: "octo-org/app".into(),
        labels: vec!["self-hosted".into(), "g".into()],
        group: "g".into(),
        queued_at: Some(queued_at),
    };
    assert!(matches!(handle(&w, task).await, Outcome::Done));
    let runner = support::eventually(Duration::from_secs(10), || async {
        w.sim
            .jobs()
            .into_iter()
            .find(|j| j.id == job && j.status != JobStatus::Queued)
            .and_then(|j| j.runner_name)
    })
    .await
    .expect("the warm instance's runner took the job");
    let in_progress = Task::JobInProgress {
        job_id: job,
        runner_name: runner.clone(),
        runner_id: None,
        runner_group_id: None,
        waited_secs: Some(1),
    };
    assert!(matches!(handle(&w, in_progress).await, Outcome::Done));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &w.text).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(support::bin())
            .arg("-c")
            .arg(&file)
            .args(args)
            .env("UNUSED", "t")
            .output()
            .unwrap()
    };
    // The runner's own view carries its job's timeline (while it runs the job).
    let shown = run(&["-o", "json", "runners", "show", &runner]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["job"]["job_id"], serde_json::json!(job), "{shown}");
    let completed = Task::JobCompleted {
        job_id: job,
        runner_name: Some(runner.clone()),
        runner_id: None,
        runner_group_id: None,
        conclusion: Some("success".into()),
    };
    handle(&w, completed).await;

    let out = run(&["-o", "json", "jobs", "show", &job.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["job_id"], serde_json::json!(job));
    assert_eq!(v["runner"], serde_json::json!(runner));
    assert_eq!(v["source"], serde_json::json!("hot"));
    assert_eq!(v["wait_source"], serde_json::json!("hot"));
    assert_eq!(v["group"], serde_json::json!("g"));
    let steps: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "queued",
            "delivered",
            "decided",
            "registered",
            "instance",
            "in_progress",
            "completed"
        ],
        "{v}"
    );
    for phase in [
        "delivery",
        "decision",
        "registration",
        "instance_start",
        "runner_start",
    ] {
        assert!(v["phases"][phase].as_f64().is_some(), "{phase}: {v}");
    }
    let text = run(&["jobs", "show", &job.to_string()]);
    let text = String::from_utf8_lossy(&text.stdout);
    for line in [
        "runner chosen",
        "runner registered",
        "instance started",
        "in progress",
        "(hot)",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // A job nothing is known of.
    let none = run(&["jobs", "show", "999999999"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no timeline for job 999999999"));
    // The phases are on the worker's metrics.
    let mut metrics = String::new();
    runnerctl::manager::JOB_PHASE_SECONDS.render(&mut metrics);
    assert!(metrics.contains("phase=\"registration\""), "{metrics}");
}

/// The fake backend, whose creates fail while `failing` is set (a cloud out of capacity, an
/// image that does not boot).
struct Failing {
    inner: Arc<dyn Backend>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Backend for Failing {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static dyn runnerctl::backend::Kind {
        self.inner.kind()
    }
    async fn create(
        &self,
        req: &runnerctl::backend::CreateRequest,
    ) -> runnerctl::backend::Result<runnerctl::backend::Instance> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(runnerctl::backend::BackendError::Transient {
                backend: "fake".into(),
                code: "InsufficientInstanceCapacity".into(),
                message: "no capacity (test)".into(),
            });
        }
        self.inner.create(req).await
    }
    async fn delete(&self, id: &str) -> runnerctl::backend::Result<()> {
        self.inner.delete(id).await
    }
    async fn get(
        &self,
        id: &str,
    ) -> runnerctl::backend::Result<Option<runnerctl::backend::Instance>> {
        self.inner.get(id).await
    }
    async fn list(&self) -> runnerctl::backend::Result<Vec<runnerctl::backend::Instance>> {
        self.inner.list().await
    }
    async fn stop(&self, id: &str) -> runnerctl::backend::Result<()> {
        self.inner.stop(id).await
    }
    async fn start(&self, id: &str) -> runnerctl::backend::Result<()> {
        self.inner.start(id).await
    }
    async fn deliver(
        &self,
        id: &str,
        boot: &runnerctl::backend::BootData,
    ) -> runnerctl::backend::Result<()> {
        self.inner.deliver(id, boot).await
    }
}

/// A warm instance that cannot be made is removed (no record, no instance), counted in
/// `runnerctl_warm_failures_total`, and the next one waits (10 s after one failure, doubled
/// after each failure in a row): passes meanwhile say so and make nothing; once the pause is
/// over, the pool is made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_that_fails_is_replaced_after_a_pause_and_counted() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = failing.clone();
    let w = world_with(
        "warm-fail",
        "    max_runners: 4\n    warm_pool:\n      hot: 2\n",
        move |inner| {
            Arc::new(Failing {
                inner,
                failing: flag,
            })
        },
    )
    .await;
    let g = w.g();
    let failures = || runnerctl::manager::WARM_FAILURES.get(&["g", "hot"]);
    let before = failures();
    let rows = w.m.warm_pass(&g, None).await.unwrap();
    let failed = format!("{rows:?}");
    assert!(
        failed.contains("Failed") && failed.contains("InsufficientInstanceCapacity"),
        "{failed}"
    );
    assert!(
        failures() > before,
        "counted in runnerctl_warm_failures_total"
    );
    assert!(
        w.st.all_runners().await.unwrap().is_empty(),
        "nothing half-made stays"
    );
    assert!(w.backend.list().await.unwrap().is_empty());

    // The cloud has capacity again, but the pause holds.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let rows = w.m.warm_pass(&g, None).await.unwrap();
    let text = format!("{rows:?}");
    assert!(
        text.contains("a warm instance failed; the next is made in"),
        "{text}"
    );
    assert!(w.st.all_runners().await.unwrap().is_empty(), "{text}");

    // After the pause (10 s after one failure), the pool is made.
    let made = support::eventually(Duration::from_secs(15), || async {
        w.m.warm_pass(&g, None).await.unwrap();
        (w.with_status(RunnerStatus::Warm).await.len() == 2).then_some(())
    })
    .await;
    assert!(made.is_some(), "the pool is made again after the pause");
}

/// `max_runners` holds while the pool grows and a burst of jobs arrives at once: passes that
/// make warm instances run while twenty jobs' tasks take them and make runners, and a watcher
/// samples the slots held in Redis and the instances on the backend throughout. Every job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_runners_holds_while_the_pool_grows_and_jobs_arrive_at_once() {
    let w = Arc::new(
        world(
            "warm-peak",
            "    max_runners: 6\n    warm_pool:\n      hot: 3\n      stopped: 2\n",
        )
        .await,
    );
    let g = w.g();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (w, done) = (w.clone(), done.clone());
        async move {
            let mut peak = (0u32, 0usize);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let held = w.st.held("g").await.unwrap();
                let instances = w.backend.list().await.unwrap().len();
                peak = (peak.0.max(held), peak.1.max(instances));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peak
        }
    });
    let passes = tokio::spawn({
        let (w, g, done) = (w.clone(), g.clone(), done.clone());
        async move {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = w.m.warm_pass(&g, None).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let jobs: Vec<u64> = (0..20)
        .map(|_| w.sim.queue_job("octo-org/app", &["self-hosted", "g"]))
        .collect();
    // Each job's task asks until it has a runner (a full group waits, as the queue does).
    let mut tasks = tokio::task::JoinSet::new();
    for &j in &jobs {
        let m = w.m.clone();
        tasks.spawn(async move {
            for _ in 0..400 {
                let out = TaskHandler::with_manager(m.clone())
                    .handle(&Envelope::new(queued(j), None))
                    .await;
                if matches!(out, Outcome::Done) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            false
        });
    }
    let ran = support::eventually(Duration::from_secs(60), || async {
        let jobs_done = w
            .sim
            .jobs()
            .iter()
            .filter(|j| jobs.contains(&j.id) && j.status != JobStatus::Queued)
            .count();
        (jobs_done == jobs.len()).then_some(())
    });
    // Finished jobs' runners go as their completions are handled.
    let completions = tokio::spawn({
        let w = w.clone();
        let jobs = jobs.clone();
        async move {
            let mut seen = HashSet::new();
            loop {
                for j in w.sim.jobs() {
                    if jobs.contains(&j.id) && j.status == JobStatus::Completed && seen.insert(j.id)
                    {
                        let task = Task::JobCompleted {
                            job_id: j.id,
                            runner_name: j.runner_name.clone(),
                            runner_id: None,
                            runner_group_id: None,
                            conclusion: Some("success".into()),
                        };
                        handle(&w, task).await;
                    }
                }
                if seen.len() == jobs.len() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    assert!(ran.await.is_some(), "every job ran");
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap(), "a job's task got a runner");
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), completions).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    passes.await.unwrap();
    let (held, instances) = watcher.await.unwrap();
    assert!(held <= 6, "slots held at most: {held}");
    assert!(instances <= 6, "instances at most: {instances}");
    assert!(held >= 5, "the pool and the jobs filled the group: {held}");
}

/// Warm instances outlive the process that made them and survive what Redis forgets: another
/// process (a restarted worker) finds the pool full from its records and takes from it; after
/// Redis loses its data, a health pass holds the warm instances it no longer knows (suspects,
/// not leaks) rather than deleting them; once the hold is over they are cleaned as leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_are_found_again_after_a_restart_and_held_after_redis_data_loss() {
    let w = world(
        "warm-restart",
        "    max_runners: 4\n    warm_pool:\n      hot: 2\n",
    )
    .await;
    let g = w.g();
    w.m.warm_pass(&g, None).await.unwrap();
    assert_eq!(w.with_status(RunnerStatus::Warm).await.len(), 2);

    // Another process (the worker that made them was killed): its pass makes nothing more.
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&w.sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let other = Arc::new(Manager::new(
        w.config.clone(),
        w.st.clone(),
        gh,
        HashMap::from([("fake".to_string(), w.backend.clone())]),
    ));
    let rows = other.warm_pass(&g, None).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| !format!("{:?}", r.action).contains("Warm {")),
        "{rows:?}"
    );
    assert_eq!(w.backend.list().await.unwrap().len(), 2);
    let job = w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    let out = TaskHandler::with_manager(other.clone())
        .handle(&Envelope::new(queued(job), None))
        .await;
    assert!(matches!(out, Outcome::Done), "{out:?}");
    let taken = w.sim.runners();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        w.st.get(&taken[0].name).await.unwrap().unwrap().pool,
        Some(Pool::Hot),
        "the other process took a warm instance the first made"
    );

    // Redis loses its data: the instances it knew are suspects, held, not deleted.
    let before: HashSet<String> = w
        .backend
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    // Every key of the manager's but the fake backend's (which plays the cloud) is gone.
    let mut c = store::connect(&w._redis.url).await.unwrap();
    let pattern = format!("{}*", runnerctl::model::key_prefix(&w.config.name));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut c)
        .await
        .unwrap();
    for k in keys.iter().filter(|k| !k.contains(":fake:")) {
        let _: () = redis::cmd("DEL").arg(k).query_async(&mut c).await.unwrap();
    }
    let rows = w.m.health_check(&g).await.unwrap();
    let text = format!("{rows:?}");
    assert!(text.contains("Hold"), "{text}");
    let after: HashSet<String> = w
        .backend
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert!(
        after.is_superset(&before),
        "nothing deleted while held: {text}"
    );
}
