//! How long a job waits for its runner with and without a hot pool, on a real Docker engine:
//! the fake GitHub sends signed webhooks to `serve` (in process), a worker (8 tasks) makes each
//! runner as a container of the test image, whose stand-in runner connects to the fake GitHub
//! and runs the job (300 ms). The image's first-boot step (`runnerctl-install`, which the
//! bootstrap runs once before it asks for a credential) takes `--boot-secs` (default 5 s), as a
//! real runner image's first boot does (packages, the runner's own start). Jobs are queued one
//! every 200 ms. Two runs of the same jobs:
//!
//! 1. nothing warm: each job's container is created and started when its webhook arrives;
//! 2. `warm_pool: {hot: 4}`: a job takes a started container waiting for its credential, and
//!    the pool is made again after each take;
//! 3. `warm_pool: {hot: 30}`: a pool that keeps up (Little's law: 5 jobs a second × a 5 s
//!    boot = 25 containers being made again at any time).
//!
//! Reported per run: queued → in_progress p50, p95 and max (the fake's clock), how many jobs a
//! warm container took. Goal (BENCHMARKS.md): p95 under 1 s with a hot pool that keeps up.
//!
//! Run: `cargo bench --bench warm_pool -- --bench [--jobs 100]` (needs a Docker engine).
//! Without `--bench` (as `cargo test --all-targets` runs it) 8 jobs a run, to check it works.

#[cfg(not(feature = "docker"))]
fn main() {
    println!("built without the docker feature: nothing to measure");
}

#[cfg(feature = "docker")]
#[path = "../tests/support/mod.rs"]
mod support;

#[cfg(feature = "docker")]
fn main() {
    bench::main()
}

#[cfg(feature = "docker")]
mod bench {
    use super::support;

    use runnerctl::backend::docker::{DockerBackend, DockerSettings};
    use runnerctl::backend::Backend;
    use runnerctl::config::{self, Secret};
    use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
    use runnerctl::forge::github::{Auth, GitHub};
    use runnerctl::forge::prelude::*;
    use runnerctl::manager::{sync, Manager, TaskHandler};
    use runnerctl::model::RunnerStatus;
    use runnerctl::queue::{Queue, QueueOptions};
    use runnerctl::server::{self, State};
    use runnerctl::store::{self, RedisStore};
    use runnerctl::worker::{self, WorkerOptions};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn arg(flag: &str) -> Option<usize> {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    }

    struct Measured {
        waits: Vec<Duration>,
        from_pool: usize,
    }

    /// The test image with a first-boot step of `secs` seconds, made once by `docker commit`.
    fn booting_image(secs: usize) -> String {
        let base = support::docker_test_image();
        let image = format!("runnerctl-test-boot:{secs}");
        if !support::docker(&["images", "-q", &image]).is_empty() {
            return image;
        }
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("runnerctl-install");
        std::fs::write(&install, format!("#!/bin/sh\nsleep {secs}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&install, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = support::docker(&["create", base, "/bin/sh"]);
        assert!(!c.is_empty(), "docker create {base}");
        let to = format!("{c}:/usr/local/bin/runnerctl-install");
        support::docker(&["cp", install.to_str().unwrap(), &to]);
        support::docker(&["commit", &c, &image]);
        support::docker(&["rm", &c]);
        image
    }

    async fn run(label: &str, hot: u32, jobs: usize, boot_secs: usize) -> Measured {
        let image = booting_image(boot_secs);
        let redis = support::RedisServer::start();
        let name = support::manager_name(&format!("bench-warm-{label}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serve_addr = listener.local_addr().unwrap();
        let sim = FakeGitHub::start(FakeGitHubOptions {
            orgs: vec![("octo-org".into(), vec!["app".into()])],
            token: Some("t".into()),
            webhook_url: Some(format!("http://{serve_addr}/webhook")),
            webhook_secret: "s".into(),
            job_duration: Duration::from_millis(300),
            ..FakeGitHubOptions::default()
        })
        .await
        .unwrap();
        let warm = match hot {
            0 => String::new(),
            n => format!("    warm_pool:\n      hot: {n}\n"),
        };
        let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  docker:\n    kind: docker\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [self-hosted, linux, box]\n    backend: docker\n    max_runners: 40\n{warm}    spec:\n      image: {image}\n      network: host\n      memory_mb: 64\n",
        sim.url(),
        redis.url
    );
        let config = Arc::new(runnerctl::wiring::parse(&text, "bench").unwrap().config);
        let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
        let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
        sync::sync(&*gh, &refs, false, &|| {}).await;
        let options = QueueOptions {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(500),
            ..QueueOptions::default()
        };
        let state = Arc::new(State::new(
            &runnerctl::forge::github::webhook::GITHUB,
            Secret::new("s"),
            &name,
            config.runner_groups.clone(),
            &redis.url,
            options.clone(),
        ));
        let (stop_serve, serve_stop) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::serve(listener, None, state, async {
            let _ = serve_stop.await;
        }));
        let docker: Arc<dyn Backend> = Arc::new(
            DockerBackend::connect("docker", &name, &DockerSettings::default())
                .await
                .unwrap(),
        );
        let conn = store::connect(&redis.url).await.unwrap();
        let forge: Arc<dyn Forge> = gh.clone();
        let m = Arc::new(Manager::new(
            config.clone(),
            RedisStore::new(conn.clone(), &name),
            forge,
            HashMap::from([("docker".to_string(), docker.clone())]),
        ));
        let st = RedisStore::new(conn.clone(), &name);
        if hot > 0 {
            m.warm_pass(&config.runner_groups[0], None).await.unwrap();
            let ready = support::eventually(Duration::from_secs(60), || async {
                let warm = st
                    .all_runners()
                    .await
                    .unwrap()
                    .iter()
                    .filter(|r| r.status == RunnerStatus::Warm)
                    .count();
                (warm as u32 >= hot).then_some(())
            })
            .await;
            assert!(ready.is_some(), "the pool filled");
            // Their bootstraps are waiting.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut opts = WorkerOptions::new(8);
        opts.poll = Duration::from_millis(20);
        let w = tokio::spawn(worker::run(
            Queue::new(conn.clone(), &name, options),
            store::connect(&redis.url).await.unwrap(),
            Arc::new(TaskHandler::with_manager(m.clone())),
            opts,
            stop_rx,
        ));
        let mut queued = Vec::new();
        for _ in 0..jobs {
            queued.push(sim.queue_job("octo-org/app", &["self-hosted", "box"]));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let start = Instant::now();
        loop {
            let all = sim.jobs();
            let done = all
                .iter()
                .filter(|j| queued.contains(&j.id) && j.status == JobStatus::Completed)
                .count();
            if done == jobs {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{label}: {done} of {jobs} jobs done"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut waits: Vec<Duration> = sim
            .jobs()
            .iter()
            .filter(|j| queued.contains(&j.id))
            .filter_map(|j| j.started_at.map(|s| s.duration_since(j.queued_at)))
            .collect();
        waits.sort();
        let from_pool = runnerctl::manager::ops::WARM_TAKEN.get(&["box", "hot"]) as usize;
        stop_tx.send(true).unwrap();
        let _ = w.await;
        stop_serve.send(()).unwrap();
        let _ = served.await;
        for c in docker.list().await.unwrap_or_default() {
            let _ = docker.delete(&c.id).await;
        }
        Measured { waits, from_pool }
    }

    pub fn main() {
        let full = std::env::args().any(|a| a == "--bench");
        let jobs = arg("--jobs").unwrap_or(if full { 100 } else { 8 });
        let boot_secs = arg("--boot-secs").unwrap_or(5);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        println!("{jobs} jobs, one queued every 200 ms, 300 ms each; Docker backend (first boot {boot_secs} s), one worker × 8 tasks");
        println!();
        println!("| run | queued → in_progress p50 / p95 / max | jobs a warm container took |");
        println!("|---|---|---|");
        let mut p95 = Vec::new();
        let mut taken_before = 0;
        for (label, hot) in [("nothing warm", 0), ("hot: 4", 4), ("hot: 30", 30)] {
            let slug = format!("hot{hot}");
            let m = rt.block_on(run(&slug, hot, jobs, boot_secs));
            let q = |p: f64| {
                let i = ((m.waits.len() as f64 - 1.0) * p).round() as usize;
                m.waits[i].as_secs_f64()
            };
            println!(
                "| {label} | {:.2} s / {:.2} s / {:.2} s | {} |",
                q(0.5),
                q(0.95),
                q(1.0),
                m.from_pool - taken_before
            );
            taken_before = m.from_pool;
            p95.push(q(0.95));
        }
        assert!(
            p95[2] < p95[0],
            "a hot pool that keeps up shortens the wait"
        );
    }
}
