//! `runnerctl demo`: the whole system on one machine, with the fake backend and the fake GitHub.
//! It starts Redis (its own `redis-server` unless given one), the fake GitHub, the webhook
//! server and two workers, plays a burst of jobs over three runner groups and reports what
//! happened: runners created and deleted, the time from a queued delivery to the backend's
//! create call, and the GitHub API calls used per job.

use crate::backend::fake::FakeBackend;
use crate::backend::Backend;
use crate::config::{self, Secret};
use crate::forge::github::{Auth, GitHub};
use crate::forge::sim::{JobStatus, Sim, SimOptions};
use crate::forge::Forge;
use crate::manager::{sync, Manager, TaskHandler};
use crate::queue::{Queue, QueueOptions, Task};
use crate::server::{self, State};
use crate::store::{self, RedisStore};
use crate::worker::{self, WorkerOptions};
use serde::Serialize;
use std::collections::HashMap;
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
    pub jobs: usize,
    pub groups: usize,
    pub jobs_completed: usize,
    pub runners_created: usize,
    pub runners_left: usize,
    /// Queued delivery sent to the backend's create call, milliseconds.
    pub queued_to_create_ms_p50: f64,
    pub queued_to_create_ms_p95: f64,
    pub queued_to_create_ms_p99: f64,
    pub github_calls: usize,
    pub github_calls_per_job: f64,
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

/// Runs the demo; `progress` is told how many jobs completed so far.
pub async fn run(
    jobs: usize,
    redis_url: Option<String>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Report, DemoError> {
    let setup = |e: &dyn std::fmt::Display| DemoError::Setup(e.to_string());
    let (_own, url) = match redis_url {
        Some(u) => (None, u),
        None => {
            let (own, url) = start_redis()?;
            (Some(own), url)
        }
    };
    let name = format!("demo-{:06x}", fastrand::u32(..0xffffff));
    let secret = format!("{:032x}", fastrand::u128(..));
    let token = format!("ghp_demo{:016x}", fastrand::u64(..));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| setup(&e))?;
    let serve_addr = listener.local_addr().map_err(|e| setup(&e))?;
    let sim = Sim::start(SimOptions {
        orgs: vec![(
            "demo-org".into(),
            vec!["app".into(), "web".into(), "api".into()],
        )],
        token: Some(token.clone()),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: secret.clone(),
        job_duration: Duration::from_millis(100),
        ..SimOptions::default()
    })
    .await
    .map_err(|e| setup(&e))?;
    let mut text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {url}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n",
        sim.url()
    );
    for (g, labels, max) in GROUPS {
        text.push_str(&format!(
            "  - name: {g}\n    organization: demo-org\n    labels: [{}]\n    backend: fake\n    max_runners: {max}\n",
            labels.join(", ")
        ));
    }
    let config = Arc::new(config::parse(&text, "demo").map_err(|e| setup(&e))?.config);
    let gh =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new(token))).map_err(|e| setup(&e))?);
    let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
    sync::sync(&*gh, &refs, false, &|| {}).await;

    let options = QueueOptions {
        visibility_timeout: Duration::from_secs(5),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        ..QueueOptions::default()
    };
    let state = Arc::new(State::new(
        Secret::new(secret),
        &name,
        config.runner_groups.clone(),
        &url,
        options.clone(),
    ));
    let (stop_serve, serve_stop) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, None, state, async {
        let _ = serve_stop.await;
    }));
    // (job, when its runner's instance was created)
    type Created = Vec<(Option<u64>, Instant)>;
    let created: Arc<Mutex<Created>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let conn = store::connect(&url).await.map_err(|e| setup(&e))?;
        let backend: Arc<dyn Backend> =
            Arc::new(FakeBackend::new("fake", &name, None, Some(conn.clone())));
        let forge: Arc<dyn Forge> = gh.clone();
        let mut m = Manager::new(
            config.clone(),
            RedisStore::new(conn.clone(), &name),
            forge,
            HashMap::from([("fake".to_string(), backend)]),
        );
        let created = created.clone();
        m.on_create = Some(Arc::new(move |_name: &str, job: Option<u64>| {
            created
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((job, Instant::now()));
        }));
        let mut opts = WorkerOptions::new(16);
        opts.poll = Duration::from_millis(100);
        let read = store::connect(&url).await.map_err(|e| setup(&e))?;
        workers.push(tokio::spawn(worker::run(
            Queue::new(conn, &name, options.clone()),
            read,
            Arc::new(TaskHandler::with_manager(Arc::new(m))),
            opts,
            stop_rx.clone(),
        )));
    }
    let conn = store::connect(&url).await.map_err(|e| setup(&e))?;
    let queue = Queue::new(conn.clone(), &name, options);
    let store = RedisStore::new(conn, &name);
    let calls_before = sim.requests().len();

    let start = Instant::now();
    let repos = ["demo-org/app", "demo-org/web", "demo-org/api"];
    for i in 0..jobs {
        let (_, labels, _) = GROUPS[i % GROUPS.len()];
        sim.queue_job(repos[i % repos.len()], labels);
    }
    let deadline = start + Duration::from_secs(120 + jobs as u64 / 5);
    let mut slot = 0;
    loop {
        let done = sim
            .jobs()
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        progress(done);
        let left = store
            .all_runners()
            .await
            .map(|r| r.len())
            .unwrap_or(usize::MAX);
        if done == jobs && left == 0 {
            break;
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
    let seconds = start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    let _ = stop_serve.send(());
    let _ = served.await;

    let mut waits: Vec<f64> = created
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|(job, at)| {
            let sent = sim.queued_sent_at((*job)?)?;
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
    let calls = sim.requests().len() - calls_before;
    let runners_created = created.lock().unwrap_or_else(|p| p.into_inner()).len();
    Ok(Report {
        jobs,
        groups: GROUPS.len(),
        jobs_completed: sim
            .jobs()
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count(),
        runners_created,
        runners_left: store.all_runners().await.map(|r| r.len()).unwrap_or(0),
        queued_to_create_ms_p50: pct(0.50),
        queued_to_create_ms_p95: pct(0.95),
        queued_to_create_ms_p99: pct(0.99),
        github_calls: calls,
        github_calls_per_job: calls as f64 / jobs.max(1) as f64,
        webhooks_delivered: sim.deliveries().0,
        seconds,
    })
}
