//! `runnerctl demo`: the whole system on one machine, with the fake backend and a fake forge
//! (GitHub by default, or Gitea). It starts Redis (its own `redis-server` unless given one), the
//! fake forge, the webhook server and two workers, plays a burst of jobs over three runner
//! groups and reports what happened: runners created and deleted, the time from a queued
//! delivery to the backend's create call, and the forge API calls used per job.

use crate::config::{self, Config, Secret};
use crate::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
use crate::forge::gitea::fake::{FakeGitea, FakeGiteaOptions, GiteaJobStatus};
use crate::forge::gitea::Gitea;
use crate::forge::github::{Auth, GitHub};
use crate::forge::{Forge, WebhookScheme};
use crate::manager::{sync, TaskHandler};
use crate::queue::{Queue, QueueOptions, Task};
use crate::server::{self, State};
use crate::store::{self, RedisStore};
use crate::wiring;
use crate::worker::{self, WorkerOptions};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo needs Redis: install redis-server (apt-get install redis-server) or pass --redis-url ({0})")]
    NoRedis(String),
    #[error("demo setup failed: {0}")]
    Setup(String),
    #[error("the demo did not finish in time: {0}")]
    Timeout(String),
}

/// What the demo reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `github` or `gitea`.
    pub forge: &'static str,
    pub jobs: usize,
    pub groups: usize,
    pub jobs_completed: usize,
    pub runners_created: usize,
    pub runners_left: usize,
    /// Queued delivery sent to the backend's create call, milliseconds.
    pub queued_to_create_ms_p50: f64,
    pub queued_to_create_ms_p95: f64,
    pub queued_to_create_ms_p99: f64,
    /// With `--warm`: each group kept a warm pool (`warm_pool` below) before the burst.
    pub warm: bool,
    /// Jobs whose runner came from a warm pool (a hot or stopped instance a job took).
    pub jobs_from_warm: u64,
    /// Queued (on the fake forge) to started by a runner, milliseconds (the fake GitHub's
    /// clock; `null` on Gitea, whose fake does not time jobs).
    pub queued_to_start_ms_p50: Option<f64>,
    pub queued_to_start_ms_p95: Option<f64>,
    pub forge_calls: usize,
    pub forge_calls_per_job: f64,
    pub webhooks_delivered: u64,
    pub seconds: f64,
}

/// A `redis-server` of the demo's own, without persistence, stopped when dropped.
struct OwnRedis(std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(OwnRedis, String), DemoError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| DemoError::Setup(e.to_string()))?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| DemoError::NoRedis(e.to_string()))?;
    let own = OwnRedis(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((own, format!("redis://127.0.0.1:{port}/0")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(DemoError::NoRedis("redis-server did not start".into()))
}

/// The groups of the demo. Their `max_runners` leave room for the default burst, so the
/// measured latency is the pipeline's, not time spent waiting for a slot.
const GROUPS: [(&str, &[&str], u32); 3] = [
    ("linux-small", &["self-hosted", "linux", "small"], 50),
    ("linux-large", &["self-hosted", "linux", "large"], 40),
    ("gpu", &["self-hosted", "gpu"], 40),
];

/// The warm pools of `demo --warm`, by group: (hot, stopped).
const WARM: [(u32, u32); 3] = [(6, 2), (4, 0), (2, 2)];

/// (job, when its runner's instance was created)
type Creations = Arc<Mutex<Vec<(Option<u64>, Instant)>>>;

/// The forge the demo plays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoForge {
    Github,
    Gitea,
}

/// A fake forge and the client runnerctl talks to it with.
enum Fake {
    GitHub(FakeGitHub, Arc<GitHub>),
    Gitea(FakeGitea, Arc<Gitea>),
}

impl Fake {
    fn forge(&self) -> Arc<dyn Forge> {
        match self {
            Fake::GitHub(_, f) => f.clone(),
            Fake::Gitea(_, f) => f.clone(),
        }
    }
    fn scheme(&self) -> &'static dyn WebhookScheme {
        self.forge().webhooks()
    }
    fn queue_job(&self, repo: &str, labels: &[&str]) -> u64 {
        match self {
            Fake::GitHub(s, _) => s.queue_job(repo, labels),
            Fake::Gitea(s, _) => s.queue_job(repo, labels),
        }
    }
    fn completed(&self) -> usize {
        match self {
            Fake::GitHub(s, _) => s
                .jobs()
                .iter()
                .filter(|j| j.status == JobStatus::Completed)
                .count(),
            Fake::Gitea(s, _) => s
                .jobs()
                .iter()
                .filter(|j| j.status == GiteaJobStatus::Success)
                .count(),
        }
    }
    fn requests(&self) -> usize {
        match self {
            Fake::GitHub(s, _) => s.requests().len(),
            Fake::Gitea(s, _) => s.requests().len(),
        }
    }
    fn delivered(&self) -> u64 {
        match self {
            Fake::GitHub(s, _) => s.deliveries().0,
            Fake::Gitea(s, _) => s.delivered(),
        }
    }
    /// Each started job's wait on the fake forge, queued to started (GitHub's fake only).
    fn start_waits(&self) -> Option<Vec<f64>> {
        match self {
            Fake::GitHub(s, _) => Some(
                s.jobs()
                    .iter()
                    .filter_map(|j| {
                        let started = j.started_at?;
                        Some(started.saturating_duration_since(j.queued_at).as_secs_f64() * 1000.0)
                    })
                    .collect(),
            ),
            Fake::Gitea(..) => None,
        }
    }
    fn queued_sent_at(&self, job: u64) -> Option<Instant> {
        match self {
            Fake::GitHub(s, _) => s.queued_sent_at(job),
            Fake::Gitea(s, _) => s.queued_sent_at(job),
        }
    }
}

/// The demo's world: its Redis, the fake forge, the configuration naming them.
struct World {
    _own: Option<OwnRedis>,
    url: String,
    name: String,
    secret: String,
    fake: Fake,
    config: Arc<Config>,
    warm: bool,
}

fn setup(e: &dyn std::fmt::Display) -> DemoError {
    DemoError::Setup(e.to_string())
}

async fn world(
    forge: DemoForge,
    redis_url: Option<String>,
    jobs: usize,
    warm: bool,
) -> Result<(World, tokio::net::TcpListener), DemoError> {
    let (own, url) = match redis_url {
        Some(u) => (None, u),
        None => {
            let (own, url) = start_redis()?;
            (Some(own), url)
        }
    };
    let name = format!("demo-{:06x}", fastrand::u32(..0xffffff));
    let secret = format!("{:032x}", fastrand::u128(..));
    let token = format!("demo{:016x}", fastrand::u64(..));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| setup(&e))?;
    let serve_addr = listener.local_addr().map_err(|e| setup(&e))?;
    let orgs = vec![(
        "demo-org".to_string(),
        vec!["app".into(), "web".into(), "api".into()],
    )];
    let webhook_url = Some(format!("http://{serve_addr}/webhook"));
    let job_duration = Duration::from_millis(100);
    let (fake, forge_section) = match forge {
        DemoForge::Github => {
            let sim = FakeGitHub::start(FakeGitHubOptions {
                orgs,
                token: Some(token.clone()),
                webhook_url,
                webhook_secret: secret.clone(),
                job_duration,
                // The fake GitHub's hourly budget is sized to the burst (about 2 calls a job,
                // health checks and group sync besides): a run of any size never waits for the
                // window to reset.
                rate_limit: demo_rate_limit(jobs),
                ..FakeGitHubOptions::default()
            })
            .await
            .map_err(|e| setup(&e))?;
            let gh =
                GitHub::new(&sim.url(), Auth::Token(Secret::new(token))).map_err(|e| setup(&e))?;
            let section = format!("github:\n  base_url: {}\n  token_env: UNUSED\n", sim.url());
            (Fake::GitHub(sim, Arc::new(gh)), section)
        }
        DemoForge::Gitea => {
            let sim = FakeGitea::start(FakeGiteaOptions {
                orgs,
                token: token.clone(),
                webhook_url,
                webhook_secret: secret.clone(),
                job_duration,
                ..FakeGiteaOptions::default()
            })
            .await
            .map_err(|e| setup(&e))?;
            let gitea =
                Gitea::new(&sim.url(), Secret::new(token), "Gitea").map_err(|e| setup(&e))?;
            let section = format!(
                "forge: gitea\ngitea:\n  url: {}\n  token_env: UNUSED\n",
                sim.url()
            );
            (Fake::Gitea(sim, Arc::new(gitea)), section)
        }
    };
    let mut text = format!(
        "name: {name}\n{forge_section}redis:\n  url: {url}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n"
    );
    for ((g, labels, max), (hot, stopped)) in GROUPS.into_iter().zip(WARM) {
        text.push_str(&format!(
            "  - name: {g}\n    organization: demo-org\n    labels: [{}]\n    backend: fake\n    max_runners: {max}\n",
            labels.join(", ")
        ));
        if warm {
            text.push_str(&format!(
                "    warm_pool: {{hot: {hot}, stopped: {stopped}}}\n"
            ));
        }
    }
    let config = Arc::new(wiring::parse(&text, "demo").map_err(|e| setup(&e))?.config);
    let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
    sync::sync(&*fake.forge(), &refs, false, &|| {}).await;
    let w = World {
        _own: own,
        url,
        name,
        secret,
        fake,
        config,
        warm,
    };
    Ok((w, listener))
}

fn queue_options() -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_secs(5),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        ..QueueOptions::default()
    }
}

/// Two workers, each with a manager built by the wiring over the fake GitHub, the stand-in
/// runner injected into the fake backend.
async fn start_workers(
    w: &World,
    created: &Creations,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<worker::WorkerReport>>, DemoError> {
    let mut workers = Vec::new();
    for _ in 0..2 {
        let conn = store::connect(&w.url).await.map_err(|e| setup(&e))?;
        let forge = w.fake.forge();
        let mut m = wiring::manager_with(
            w.config.clone(),
            conn.clone(),
            forge,
            // The demo runs until its jobs are done: the create call answers before the
            // stand-in connects, as a cloud answers before its VM boots.
            Some(Arc::new(crate::backend::Detached(wiring::StandInRunner))),
        )
        .await
        .map_err(|e| setup(&e))?;
        let created = created.clone();
        m.on_create = Some(Arc::new(move |_name: &str, job: Option<u64>| {
            created
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((job, Instant::now()));
        }));
        let mut opts = WorkerOptions::new(16);
        opts.poll = Duration::from_millis(100);
        let read = store::connect(&w.url).await.map_err(|e| setup(&e))?;
        workers.push(tokio::spawn(worker::run(
            Queue::new(conn, &w.name, queue_options()),
            read,
            Arc::new(TaskHandler::with_manager(Arc::new(m))),
            opts,
            stop.clone(),
        )));
    }
    Ok(workers)
}

/// Queues the jobs and waits until all completed and no runner is left, enqueueing health
/// checks as workers would.
async fn drive(w: &World, jobs: usize, progress: &(dyn Fn(usize) + Sync)) -> Result<(), DemoError> {
    let conn = store::connect(&w.url).await.map_err(|e| setup(&e))?;
    let queue = Queue::new(conn.clone(), &w.name, queue_options());
    let store = RedisStore::new(conn, &w.name);
    if w.warm {
        fill_pools(&queue, &store).await?;
    }
    let start = Instant::now();
    let repos = ["demo-org/app", "demo-org/web", "demo-org/api"];
    for i in 0..jobs {
        let (_, labels, _) = GROUPS[i % GROUPS.len()];
        w.fake.queue_job(repos[i % repos.len()], labels);
    }
    let deadline = start + Duration::from_secs(120 + jobs as u64 / 5);
    let mut slot = 0;
    loop {
        let done = w.fake.completed();
        progress(done);
        // What is left besides the warm pools (which stay).
        let left = store
            .all_runners()
            .await
            .map(|r| r.iter().filter(|r| !is_warm(r)).count())
            .unwrap_or(usize::MAX);
        if done == jobs && left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Timeout(format!(
                "{done} of {jobs} jobs completed, {left} runners left"
            )));
        }
        // Health checks, as a worker schedules them every healthcheck_interval.
        slot += 1;
        if slot % 10 == 0 {
            for (g, _, _) in GROUPS {
                let _ = queue
                    .enqueue(
                        Task::GroupHealthCheck { group: g.into() },
                        Some(format!("health:{g}:{slot}")),
                    )
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_warm(r: &crate::model::Runner) -> bool {
    matches!(
        r.status,
        crate::model::RunnerStatus::Warm | crate::model::RunnerStatus::Warming
    )
}

/// Health checks (which keep the pools) until every group's pool is at its size, before the
/// burst.
async fn fill_pools(queue: &Queue, store: &RedisStore) -> Result<(), DemoError> {
    let want: u32 = WARM.iter().map(|(h, s)| h + s).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0.. {
        let ready = store
            .all_runners()
            .await
            .map(|r| {
                r.iter()
                    .filter(|r| r.status == crate::model::RunnerStatus::Warm)
                    .count() as u32
            })
            .unwrap_or(0);
        if ready >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Timeout(format!(
                "the warm pools have {ready} of {want} instances"
            )));
        }
        for (g, _, _) in GROUPS {
            let _ = queue
                .enqueue(
                    Task::GroupHealthCheck { group: g.into() },
                    Some(format!("warm:{g}:{round}")),
                )
                .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Warm instances jobs took so far, in this process.
fn warm_taken() -> u64 {
    GROUPS
        .iter()
        .flat_map(|(g, _, _)| ["hot", "stopped"].map(|p| crate::manager::WARM_TAKEN.get(&[g, p])))
        .sum()
}

/// The fake GitHub's requests per hour for a burst of `jobs`: GitHub's 5,000, or ten calls a
/// job when that is more.
pub fn demo_rate_limit(jobs: usize) -> u64 {
    (jobs as u64).saturating_mul(10).max(5_000)
}

/// Runs the demo; `progress` is told how many jobs completed so far.
pub async fn run(
    forge: DemoForge,
    jobs: usize,
    redis_url: Option<String>,
    warm: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Report, DemoError> {
    let (w, listener) = world(forge, redis_url, jobs, warm).await?;
    let taken_before = warm_taken();
    let state = Arc::new(State::new(
        w.fake.scheme(),
        Secret::new(w.secret.clone()),
        &w.name,
        w.config.runner_groups.clone(),
        &w.url,
        queue_options(),
    ));
    let (stop_serve, serve_stop) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, None, state, async {
        let _ = serve_stop.await;
    }));
    let created: Creations = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = start_workers(&w, &created, &stop_rx).await?;
    let calls_before = w.fake.requests();
    let start = Instant::now();
    let driven = drive(&w, jobs, progress).await;
    let seconds = start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for h in workers {
        let _ = h.await;
    }
    let _ = stop_serve.send(());
    let _ = served.await;
    driven?;
    let store = RedisStore::new(
        store::connect(&w.url).await.map_err(|e| setup(&e))?,
        &w.name,
    );
    let runners_left = store
        .all_runners()
        .await
        .map(|r| r.iter().filter(|r| !is_warm(r)).count())
        .unwrap_or(0);
    let mut r = report(&w, jobs, &created, calls_before, runners_left, seconds);
    r.jobs_from_warm = warm_taken() - taken_before;
    Ok(r)
}

fn report(
    w: &World,
    jobs: usize,
    created: &Creations,
    calls_before: usize,
    runners_left: usize,
    seconds: f64,
) -> Report {
    let created = created.lock().unwrap_or_else(|p| p.into_inner());
    let mut waits: Vec<f64> = created
        .iter()
        .filter_map(|(job, at)| {
            let sent = w.fake.queued_sent_at((*job)?)?;
            Some(at.saturating_duration_since(sent).as_secs_f64() * 1000.0)
        })
        .collect();
    waits.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| {
        if waits.is_empty() {
            0.0
        } else {
            waits[((waits.len() - 1) as f64 * q).round() as usize]
        }
    };
    let calls = w.fake.requests() - calls_before;
    let mut starts = w.fake.start_waits();
    if let Some(s) = starts.as_mut() {
        s.sort_by(|a, b| a.total_cmp(b));
    }
    let start_pct = |q: f64| {
        let s = starts.as_ref().filter(|s| !s.is_empty())?;
        Some(s[((s.len() - 1) as f64 * q).round() as usize])
    };
    Report {
        forge: match w.fake {
            Fake::GitHub(..) => "github",
            Fake::Gitea(..) => "gitea",
        },
        jobs,
        groups: GROUPS.len(),
        jobs_completed: w.fake.completed(),
        runners_created: created.len(),
        runners_left,
        queued_to_create_ms_p50: pct(0.50),
        queued_to_create_ms_p95: pct(0.95),
        queued_to_create_ms_p99: pct(0.99),
        warm: w.warm,
        jobs_from_warm: 0,
        queued_to_start_ms_p50: start_pct(0.50),
        queued_to_start_ms_p95: start_pct(0.95),
        forge_calls: calls,
        forge_calls_per_job: calls as f64 / jobs.max(1) as f64,
        webhooks_delivered: w.fake.delivered(),
        seconds,
    }
}

#[cfg(test)]
mod budget_tests {
    /// Past about 1,400 jobs the demo stalled silently: the fake GitHub's hourly budget (5,000)
    /// ran out and the workers waited for a reset an hour away.
    #[test]
    fn the_demo_s_fake_github_budget_covers_its_burst() {
        assert_eq!(super::demo_rate_limit(100), 5_000);
        for jobs in [1_400, 2_000, 100_000] {
            assert!(super::demo_rate_limit(jobs) >= jobs as u64 * 5, "{jobs}");
        }
    }
}
