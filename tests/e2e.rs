//! End to end, with real Redis, the fake GitHub and the fake backend: the fake GitHub sends
//! signed webhooks for 200 jobs over 3 groups to `serve`; two workers create runners (never over
//! `max_runners`), the jobs run and complete, and at the end no runner, instance or reserved
//! slot is left. Again with a worker killed part-way, and with the webhooks of 10% of the jobs
//! dropped (the health check recovers them). And 300 jobs under chaos: GitHub gives each job to
//! any idle runner, deliveries are lost, repeated, replayed and reordered, secondary rate limits
//! answer 1% of requests, a worker is killed and Redis (AOF, `appendfsync always`) restarts:
//! every job runs, no group is ever above `max_runners` (in Redis, on GitHub, on the backend;
//! one group keeps a warm pool then, whose instances count), at most 2% of jobs' worth of
//! runners registered without ever running a job, and at the end only the warm pool is left.

mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::Backend;
use runnerctl::config::{self, Secret};
use runnerctl::forge::fake::{Chaos, FakeGitHub, FakeGitHubOptions, JobStatus};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::{sync, Manager, TaskHandler};
use runnerctl::queue::{Queue, QueueOptions, Task};
use runnerctl::server::{self, State};
use runnerctl::store::{self, RedisStore};
use runnerctl::worker::{self, WorkerOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{manager_name, RedisServer};

const SECRET: &str = "e2e-webhook-secret";
const TOKEN: &str = "ghp_e2e";
const GROUPS: [(&str, &[&str], u32); 3] = [
    ("small", &["self-hosted", "linux", "small"], 4),
    ("large", &["self-hosted", "linux", "large"], 3),
    ("gpu", &["self-hosted", "gpu"], 2),
];

/// The warm pool of the `small` group under chaos.
const WARM_HOT: usize = 1;
const WARM_STOPPED: usize = 1;

fn options() -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_secs(2),
        max_attempts: 20,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(800),
        ..QueueOptions::default()
    }
}

/// These runs each load the machine; one at a time keeps their timing honest on two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(test: &str, jobs: usize, drop_webhooks: f64, kill_a_worker: bool, chaos: bool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut redis = if chaos {
        RedisServer::start_persistent()
    } else {
        RedisServer::start()
    };
    let name = manager_name(test);
    // serve first: the fake GitHub needs its address.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![(
            "octo-org".into(),
            vec!["app".into(), "web".into(), "api".into()],
        )],
        token: Some(TOKEN.into()),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: SECRET.into(),
        job_duration: Duration::from_millis(50),
        drop_webhooks,
        chaos: if chaos {
            Chaos {
                any_idle_runner: true,
                repeat: 0.05,
                replay: 0.05,
                reorder: true,
                secondary_limits: 0.01,
            }
        } else {
            Chaos::default()
        },
        // Health checks run every 500 ms here, 1,200 times as often as by default: on a slow
        // machine a run would spend GitHub's hourly 5,000 in minutes. Rate limits have their
        // own tests (tests/forge.rs).
        rate_limit: 1_000_000,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let mut text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\ntime_to_start: 30s\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n",
        sim.url(),
        redis.url
    );
    text.push_str(&support::fake_groups_yaml(&GROUPS));
    if chaos {
        // Under chaos a group keeps a warm pool too: its peak counts warm instances, and a
        // killed worker or a Redis restart must not leave one behind or past max_runners.
        text = text.replace(
            "max_runners: 4\n",
            &format!(
                "max_runners: 4\n    warm_pool: {{hot: {WARM_HOT}, stopped: {WARM_STOPPED}}}\n"
            ),
        );
    }
    let config = Arc::new(runnerctl::wiring::parse(&text, "e2e").unwrap().config);
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new(TOKEN))).unwrap());
    let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
    let rows = sync::sync(&*gh, &refs, false, &|| {}).await;
    assert!(
        rows.iter().all(|r| r.action == sync::Action::Create),
        "{rows:?}"
    );

    // serve
    let state = Arc::new(State::new(
        &runnerctl::forge::github::webhook::GITHUB,
        Secret::new(SECRET),
        &name,
        config.runner_groups.clone(),
        &redis.url,
        options(),
    ));
    let (stop_serve, serve_stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, None, state, async {
        let _ = serve_stopped.await;
    }));

    // two workers, each with its own connections and manager, sharing Redis
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    // Under chaos the workers are `runnerctl worker` processes, killed with SIGKILL.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(
        &config_path,
        format!("{text}queue:\n  visibility_timeout: 2s\n  max_attempts: 20\n  retry_base: 1s\n  retry_max: 2s\n"),
    )
    .unwrap();
    // Their logs go to files, for the failure message to quote what they did.
    let logs = dir.path().to_path_buf();
    let spawned = std::sync::atomic::AtomicUsize::new(0);
    let spawn_worker = || {
        let n = spawned.fetch_add(1, Ordering::Relaxed);
        let log = std::fs::File::create(logs.join(format!("worker-{n}.log"))).unwrap();
        std::process::Command::new(support::bin())
            .args(["--config", config_path.to_str().unwrap(), "worker"])
            .args(["--concurrency", "8"])
            .env("UNUSED", TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut processes: Vec<std::process::Child> = Vec::new();
    for _ in 0..if chaos { 2 } else { 0 } {
        processes.push(spawn_worker());
    }
    for _ in 0..if chaos { 0 } else { 2 } {
        let conn = store::connect(&redis.url).await.unwrap();
        let backend: Arc<dyn Backend> = Arc::new(
            FakeBackend::new("fake", &name, None, Some(conn.clone()))
                .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
        );
        let mut backends = HashMap::new();
        backends.insert("fake".to_string(), backend);
        let forge: Arc<dyn Forge> = gh.clone();
        let m = Arc::new(Manager::new(
            config.clone(),
            RedisStore::new(conn.clone(), &name),
            forge,
            backends,
        ));
        let mut opts = WorkerOptions::new(8);
        opts.poll = Duration::from_millis(100);
        let q = Queue::new(conn.clone(), &name, options());
        let read = store::connect(&redis.url).await.unwrap();
        workers.push(tokio::spawn(worker::run(
            q,
            read,
            Arc::new(TaskHandler::with_manager(m)),
            opts,
            stop_rx.clone(),
        )));
    }

    // Health checks, as workers schedule them (here every 500 ms).
    let queue = Queue::new(store::connect(&redis.url).await.unwrap(), &name, options());
    let checks = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut slot = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                slot += 1;
                for (g, _, _) in GROUPS {
                    let _ = queue
                        .enqueue(
                            Task::GroupHealthCheck { group: g.into() },
                            Some(format!("health:{g}:{slot}")),
                        )
                        .await;
                }
            }
        })
    };

    // Watch capacity: never above max_runners in any group, in Redis, on GitHub (registered
    // runners) and on the backend (instances).
    let s = RedisStore::new(store::connect(&redis.url).await.unwrap(), &name);
    let peak: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    let sim = Arc::new(sim);
    let watcher = {
        let (s, peak, watching) = (s.clone(), peak.clone(), watching.clone());
        let (sim, name) = (sim.clone(), name.clone());
        let backend = FakeBackend::new(
            "fake",
            &name,
            None,
            Some(store::connect(&redis.url).await.unwrap()),
        );
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let registered = sim.runners();
                let instances = backend.list().await.unwrap_or_default();
                for (g, _, _) in GROUPS {
                    // While Redis restarts, the other two still count.
                    let held = s.held(g).await.unwrap_or(0);
                    let prefix = format!("{name}-{g}-");
                    let on_github = registered
                        .iter()
                        .filter(|r| r.name.starts_with(&prefix))
                        .count() as u32;
                    let on_backend =
                        instances.iter().filter(|i| i.group() == Some(g)).count() as u32;
                    let mut p = peak.lock().unwrap();
                    let e = p.entry(g.to_string()).or_default();
                    *e = (*e).max(held).max(on_github).max(on_backend);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The burst.
    let repos = ["octo-org/app", "octo-org/web", "octo-org/api"];
    for i in 0..jobs {
        let (_, labels, _) = GROUPS[i % 3];
        sim.queue_job(repos[i % 3], labels);
    }
    let start = Instant::now();
    let mut killed = !kill_a_worker;
    let mut restarted = !chaos;
    loop {
        let all = sim.jobs();
        let done = all
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        if done == jobs {
            break;
        }
        if !killed && done >= jobs / 4 {
            // Like SIGKILL: no drain, no release. Its tasks go to the other worker.
            if chaos {
                // SIGKILL, then a new one, as systemd would restart it.
                processes[0].kill().unwrap();
                processes[0].wait().unwrap();
                processes[0] = spawn_worker();
            } else {
                workers[0].abort();
            }
            killed = true;
        }
        if !restarted && done >= jobs / 2 {
            // Redis restarts; with AOF and `appendfsync always` it keeps every write.
            redis.restart();
            restarted = true;
        }
        if start.elapsed() > Duration::from_secs(240) {
            let stuck: Vec<_> = all
                .iter()
                .filter(|j| j.status != JobStatus::Completed)
                .map(|j| (j.id, j.repo.clone(), j.labels.clone(), j.status, j.silent))
                .collect();
            panic!(
                "only {done} of {jobs} jobs completed\nstuck: {stuck:?}\nrecords: {:?}\nGitHub runners: {:?}\ntasks: {:?}\ndead: {:?}",
                s.all_runners().await.unwrap().iter().map(|r| (&r.name, r.status, r.created_for_job)).collect::<Vec<_>>(),
                sim.runners().iter().map(|r| (&r.name, r.online, r.busy)).collect::<Vec<_>>(),
                queue.list().await.unwrap().iter().map(|t| (t.kind.clone(), t.state, t.error.clone())).collect::<Vec<_>>(),
                queue.dead().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Then everything is cleaned up: records, slots, instances, GitHub runners.
    let backend = FakeBackend::new(
        "fake",
        &name,
        None,
        Some(store::connect(&redis.url).await.unwrap()),
    );
    let mut clean = false;
    for _ in 0..300 {
        let held: u32 = {
            let mut n = 0;
            for (g, _, _) in GROUPS {
                n += s.held(g).await.unwrap();
            }
            n
        };
        // Under chaos the warm pool stays: warm records only, as many as the pool, and no
        // instance but theirs.
        let records = s.all_runners().await.unwrap();
        let warm = |r: &runnerctl::model::Runner| {
            matches!(
                r.status,
                runnerctl::model::RunnerStatus::Warm | runnerctl::model::RunnerStatus::Warming
            )
        };
        let pool = if chaos { WARM_HOT + WARM_STOPPED } else { 0 };
        let instances = backend.list().await.unwrap();
        let only_pool = records.iter().all(warm)
            && records.len() <= pool
            && held as usize == records.len()
            && instances
                .iter()
                .all(|i| records.iter().any(|r| i.runner() == Some(r.name.as_str())));
        if only_pool && sim.runners().is_empty() {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    checks.abort();
    if !clean {
        let left = sim.runners();
        // What the workers said about each runner left on GitHub.
        let mut said = String::new();
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                if left.iter().any(|r| line.contains(&r.name)) {
                    said.push_str(line);
                    said.push('\n');
                }
            }
        }
        panic!(
            "left over: records {:?}, instances {:?}, GitHub runners {left:?}\nthe workers' logs about them:\n{said}",
            s.all_runners().await.unwrap(),
            backend.list().await.unwrap(),
        );
    }
    for (g, _, max) in GROUPS {
        let p = peak.lock().unwrap()[g];
        assert!(p <= max, "group {g} held {p} slots, max_runners {max}");
        assert!(p > 0, "group {g} was used");
    }
    assert!(
        queue.dead().await.unwrap().is_empty(),
        "no task failed for good"
    );
    let (delivered, failed) = sim.deliveries();
    if !chaos {
        assert_eq!(failed, 0, "every webhook sent was accepted");
    }
    if drop_webhooks == 0.0 && !chaos {
        assert_eq!(delivered as usize, 3 * jobs);
    }
    // Job wait, from `queued` to `in_progress` (the figures in BENCHMARKS.md).
    let mut waits: Vec<f64> = sim
        .jobs()
        .iter()
        .filter_map(|j| Some(j.started_at?.duration_since(j.queued_at).as_secs_f64()))
        .collect();
    waits.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| waits[((waits.len() as f64 - 1.0) * q).round() as usize];
    let regs = sim.registrations();
    let wasted = regs.iter().filter(|r| !r.2).count();
    println!(
        "{test}: {jobs} jobs, job wait p50 {:.2} s, p95 {:.2} s, max {:.2} s; {} registrations, {wasted} never ran a job ({:.1}% of jobs); peaks {:?}",
        at(0.5),
        at(0.95),
        at(1.0),
        regs.len(),
        100.0 * wasted as f64 / jobs as f64,
        peak.lock().unwrap()
    );
    if chaos {
        assert!(wasted * 50 <= jobs, "{wasted} runners never ran a job");
    }

    stop_tx.send(true).unwrap();
    for mut p in processes {
        let _ = p.kill();
        let _ = p.wait();
    }
    for w in workers {
        let _ = w.await;
    }
    stop_serve.send(()).unwrap();
    served.await.unwrap();
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_jobs_over_three_groups() {
    run("e2e", 300, 0.0, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_jobs_under_chaos() {
    run("e2e-chaos", 300, 0.05, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_jobs_with_a_worker_killed_part_way() {
    run("e2e-kill", 200, 0.0, true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_jobs_with_ten_percent_of_webhooks_lost() {
    run("e2e-lost", 200, 0.1, false, false).await;
}
