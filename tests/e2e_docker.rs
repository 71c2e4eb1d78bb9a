//! The whole cycle on a real Docker engine: a queued webhook, a container created, a stand-in
//! runner inside it reads the JIT configuration the way the real runner does and connects to
//! the fake GitHub, which marks it online, runs the job, sends in_progress and then completed,
//! and the container is removed.
#![cfg(feature = "docker")]

mod support;

use runnerctl::backend::docker::DockerBackend;
use runnerctl::backend::Backend;
use runnerctl::config::{self, Secret};
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::{sync, Manager, TaskHandler};
use runnerctl::queue::{Queue, QueueOptions};
use runnerctl::server::{self, State};
use runnerctl::store::{self, RedisStore};
use runnerctl::worker::{self, WorkerOptions};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{manager_name, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_runners_in_real_containers() {
    let image = support::docker_test_image();
    let redis = RedisServer::start();
    let name = manager_name("docker-e2e");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: "s".into(),
        job_duration: Duration::from_millis(500),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    // The containers share the host's network so that the stand-in reaches the fake GitHub
    // on 127.0.0.1.
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  docker:\n    kind: docker\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [self-hosted, linux, box]\n    backend: docker\n    max_runners: 2\n    spec:\n      image: {image}\n      network: host\n      memory_mb: 64\n",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
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
        DockerBackend::connect(
            "docker",
            &name,
            &runnerctl::backend::docker::DockerSettings::default(),
        )
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut opts = WorkerOptions::new(4);
    opts.poll = Duration::from_millis(100);
    let w = tokio::spawn(worker::run(
        Queue::new(conn.clone(), &name, options),
        store::connect(&redis.url).await.unwrap(),
        Arc::new(TaskHandler::with_manager(m)),
        opts,
        stop_rx,
    ));

    let jobs: Vec<u64> = (0..3)
        .map(|_| sim.queue_job("octo-org/app", &["self-hosted", "box"]))
        .collect();
    let start = Instant::now();
    let mut saw_container = false;
    loop {
        let list = docker.list().await.unwrap();
        if let Some(c) = list.first() {
            saw_container = true;
            // A runner that finished its job stops its container: nothing to look into then.
            if let Some(state) = support::docker_ok(&["exec", &c.id, "cat", "/tmp/runner-state"]) {
                assert!(
                    state.is_empty() || state == "started" || state == "connected",
                    "{state}"
                );
            }
        }
        let done = sim
            .jobs()
            .iter()
            .filter(|j| jobs.contains(&j.id) && j.status == JobStatus::Completed)
            .count();
        if done == jobs.len() && list.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{done} of 3 jobs done; containers {list:?}; runners on GitHub {:?}",
            sim.runners()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_container, "runners ran in containers");
    assert!(sim.runners().is_empty(), "no runner left on GitHub");
    let s = RedisStore::new(conn, &name);
    // A runner's record goes right after its container (the deletion removes the instance,
    // then the record): the loop above may see the container gone a moment before.
    let gone = support::eventually(Duration::from_secs(10), || async {
        s.all_runners().await.ok()?.is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "no record left: {:?}",
        s.all_runners().await
    );
    assert_eq!(s.held("box").await.unwrap(), 0, "no slot held");
    assert_eq!(
        sim.deliveries(),
        (9, 0),
        "queued, in_progress, completed for each job"
    );
    stop_tx.send(true).unwrap();
    w.await.unwrap();
    stop_serve.send(()).unwrap();
    served.await.unwrap();
}

/// Issue 18: `serve`, `worker` and `groups sync` at trace level (`-vvvv`) through a whole run on
/// Docker: no secret (GitHub token, webhook secret, any JIT configuration) in any log line, any
/// Redis key or any task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_level_run_leaks_no_secret() {
    const TOKEN: &str = "ghp_TRACEtoken0123456789abcdef";
    const HOOK: &str = "TRACE-webhook-secret-0123456789";
    let image = support::docker_test_image();
    let redis = RedisServer::start();
    let name = manager_name("trace");
    // Held until `serve` starts: the fake GitHub's own listener must not be given this port
    // (it was once, and its deliveries then went to itself).
    let hold = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hold.local_addr().unwrap().port();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some(TOKEN.into()),
        webhook_url: Some(format!("http://127.0.0.1:{port}/webhook")),
        webhook_secret: HOOK.into(),
        job_duration: Duration::from_millis(300),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ngithub:\n  base_url: {}\n  token_env: TRACE_TOKEN\nredis:\n  url: {}\nwebhook:\n  listen: 127.0.0.1:{port}\n  secret_env: TRACE_HOOK\nbackends:\n  docker:\n    kind: docker\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [self-hosted, linux, box]\n    backend: docker\n    max_runners: 2\n    spec:\n      image: {image}\n      network: host\n      memory_mb: 64\n",
            sim.url(),
            redis.url
        ),
    )
    .unwrap();
    let spawn = |args: &[&str], log: &str| {
        std::process::Command::new(support::bin())
            .arg("-vvvv")
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .env("TRACE_TOKEN", TOKEN)
            .env("TRACE_HOOK", HOOK)
            .env_remove("RUNNERCTL_LOG")
            .stdout(std::fs::File::create(dir.path().join(format!("{log}.out"))).unwrap())
            .stderr(std::fs::File::create(dir.path().join(format!("{log}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    assert!(spawn(&["groups", "sync"], "sync").wait().unwrap().success());
    drop(hold);
    let mut serve = spawn(&["serve"], "serve");
    let mut worker = spawn(&["worker"], "worker");
    let up = support::eventually(Duration::from_secs(20), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;
    assert!(up.is_some(), "serve listens");
    let jobs: Vec<u64> = (0..2)
        .map(|_| sim.queue_job("octo-org/app", &["self-hosted", "box"]))
        .collect();
    let mut jits: std::collections::BTreeSet<String> = Default::default();
    let start = Instant::now();
    loop {
        jits.extend(
            sim.runners()
                .into_iter()
                .map(|r| r.jit)
                .filter(|j| !j.is_empty()),
        );
        let done = sim
            .jobs()
            .iter()
            .filter(|j| jobs.contains(&j.id) && j.status == JobStatus::Completed)
            .count();
        if done == jobs.len() && sim.runners().is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let tail = |f: &str| {
                let t = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            };
            panic!(
                "{done} of 2 done; deliveries (ok, failed) {:?}\nserve:\n{}\nworker:\n{}",
                sim.deliveries(),
                tail("serve.log"),
                tail("worker.log")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!jits.is_empty(), "JIT configurations were issued");
    let dump = support::redis_dump(
        &redis.url,
        &format!("{}*", runnerctl::model::key_prefix(&name)),
    )
    .await;
    for p in [&mut serve, &mut worker] {
        let _ = std::process::Command::new("kill")
            .arg(p.id().to_string())
            .status();
        let _ = p.wait();
    }
    let mut logs = String::new();
    for f in ["sync", "serve", "worker"] {
        for ext in ["log", "out"] {
            logs.push_str(
                &std::fs::read_to_string(dir.path().join(format!("{f}.{ext}"))).unwrap_or_default(),
            );
        }
    }
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace level was on"
    );
    let mut secrets = vec![TOKEN.to_string(), HOOK.to_string()];
    secrets.extend(jits);
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a log holds a secret ({} bytes)",
            s.len()
        );
        assert!(
            !dump.contains(s.as_str()),
            "Redis holds a secret ({} bytes)",
            s.len()
        );
    }
}

/// Gitea on Docker: a queued delivery signed Gitea's way, a container whose bootstrap runs
/// `act_runner register --ephemeral` with the registration token and then `act_runner daemon`
/// (the stand-in in the test image registers at the fake Gitea), the job runs there, the
/// runner leaves after it and the container is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_jobs_run_on_act_runners_in_real_containers() {
    use runnerctl::forge::gitea::fake::{FakeGitea, FakeGiteaOptions, GiteaJobStatus};
    use runnerctl::forge::gitea::Gitea;
    let image = support::docker_test_image();
    let redis = RedisServer::start();
    let name = manager_name("docker-gitea");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let sim = FakeGitea::start(FakeGiteaOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: "t".into(),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: "gitea-docker-secret".into(),
        job_duration: Duration::from_millis(500),
        ..FakeGiteaOptions::default()
    })
    .await
    .unwrap();
    let text = format!(
        "name: {name}\nforge: gitea\ngitea:\n  url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  docker:\n    kind: docker\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [linux, box]\n    backend: docker\n    max_runners: 2\n    spec:\n      image: {image}\n      network: host\n      memory_mb: 64\n",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let options = QueueOptions {
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
        ..QueueOptions::default()
    };
    let state = Arc::new(State::new(
        runnerctl::wiring::webhook_scheme(&config),
        Secret::new("gitea-docker-secret"),
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
        DockerBackend::connect(
            "docker",
            &name,
            &runnerctl::backend::docker::DockerSettings::default(),
        )
        .await
        .unwrap(),
    );
    let conn = store::connect(&redis.url).await.unwrap();
    let forge: Arc<dyn Forge> =
        Arc::new(Gitea::new(&sim.url(), Secret::new("t"), "Gitea").unwrap());
    let m = Arc::new(Manager::new(
        config.clone(),
        RedisStore::new(conn.clone(), &name),
        forge,
        HashMap::from([("docker".to_string(), docker.clone())]),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut opts = WorkerOptions::new(4);
    opts.poll = Duration::from_millis(100);
    let w = tokio::spawn(worker::run(
        Queue::new(conn.clone(), &name, options),
        store::connect(&redis.url).await.unwrap(),
        Arc::new(TaskHandler::with_manager(m)),
        opts,
        stop_rx,
    ));
    let jobs: Vec<u64> = (0..2)
        .map(|_| sim.queue_job("octo-org/app", &["linux", "box"]))
        .collect();
    let start = Instant::now();
    loop {
        let list = docker.list().await.unwrap();
        let done = sim
            .jobs()
            .iter()
            .filter(|j| jobs.contains(&j.id) && j.status == GiteaJobStatus::Success)
            .count();
        if done == jobs.len() && list.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{done} of 2 jobs done; containers {list:?}; runners on Gitea {:?}",
            sim.runners()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let regs = sim.registrations();
    assert_eq!(regs.len(), 2, "{regs:?}");
    assert!(
        regs.iter()
            .all(|(_, scope, ran)| scope == "orgs/octo-org" && *ran),
        "{regs:?}"
    );
    assert!(
        sim.runners().is_empty(),
        "ephemeral runners left after their job"
    );
    let s = RedisStore::new(conn, &name);
    assert!(s.all_runners().await.unwrap().is_empty(), "no record left");
    stop_tx.send(true).unwrap();
    w.await.unwrap();
    stop_serve.send(()).unwrap();
    served.await.unwrap();
}

/// With `broker: true` on the Docker backend, containers fetch their credential from the
/// credential broker with the real fetch hook and curl, from their own address on Docker's bridge
/// network (which the backend reports), and nothing else: the whole cycle, jobs done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runners_fetch_their_credentials_through_the_broker() {
    use base64::Engine;
    let image = support::docker_test_image();
    // The fake GitHub and the broker listen on the bridge's gateway: the host's address that
    // the containers reach.
    // (Its IPAM configuration names it, or only the subnet, whose first address it is.)
    let ipam: serde_json::Value = serde_json::from_str(&support::docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{json (index .IPAM.Config 0)}}",
    ]))
    .expect("Docker's bridge network has an address range");
    let gateway: std::net::IpAddr = match ipam["Gateway"].as_str().filter(|g| !g.is_empty()) {
        Some(g) => g.parse().unwrap(),
        None => {
            let subnet = ipam["Subnet"].as_str().unwrap();
            let base: std::net::Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
            std::net::Ipv4Addr::from(u32::from(base) + 1).into()
        }
    };
    let redis = RedisServer::start();
    let name = manager_name("docker-broker");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: "s".into(),
        job_duration: Duration::from_millis(500),
        bind: Some(gateway),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec![gateway.to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    let broker_listener = tokio::net::TcpListener::bind((gateway, 0)).await.unwrap();
    let port = broker_listener.local_addr().unwrap().port();
    let sealing = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbroker:\n  url: https://{gateway}:{port}\n  tls_cert_file: {}\n  tls_key_file: {}\n  key: {sealing}\nbackends:\n  docker:\n    kind: docker\n    broker: true\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [self-hosted, linux, box]\n    backend: docker\n    max_runners: 2\n    spec:\n      image: {image}\n      memory_mb: 64\n",
        sim.url(),
        redis.url,
        cert.display(),
        key.display(),
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
    sync::sync(&*gh, &refs, false, &|| {}).await;
    let conn = store::connect(&redis.url).await.unwrap();
    let broker = runnerctl::wiring::broker_endpoint(&config, &conn)
        .await
        .unwrap()
        .expect("the broker is configured");
    let endpoint = broker.endpoint.clone();
    tokio::spawn(runnerctl::broker::endpoint::serve(
        broker_listener,
        broker.tls,
        broker.endpoint,
        std::future::pending(),
    ));
    let options = QueueOptions {
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
        ..QueueOptions::default()
    };
    let fleet = support::start_fleet(
        listener,
        support::FleetSpec {
            config: config.clone(),
            target: (&redis.url).into(),
            forge: gh.clone(),
            secret: "s".into(),
            options,
            workers: 1,
            durability: None,
        },
    )
    .await;
    let docker = DockerBackend::connect(
        "docker",
        &name,
        &runnerctl::backend::docker::DockerSettings::default(),
    )
    .await
    .unwrap();
    let jobs: Vec<u64> = (0..2)
        .map(|_| sim.queue_job("octo-org/app", &["self-hosted", "box"]))
        .collect();
    let start = Instant::now();
    loop {
        let list = docker.list().await.unwrap();
        for c in &list {
            // The credential was not copied in: the container has the token, the CA and the
            // hook, and fetches the JIT configuration itself.
            if let Some(files) = support::docker_ok(&["exec", &c.id, "ls", "/etc/runnerctl"]) {
                assert!(!files.contains("jitconfig"), "{files}");
            }
        }
        let done = sim
            .jobs()
            .iter()
            .filter(|j| jobs.contains(&j.id) && j.status == JobStatus::Completed)
            .count();
        if done == jobs.len() && list.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{done} of 2 jobs done; containers {list:?}; broker {}",
            endpoint.render_metrics()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = endpoint.render_metrics();
    let count = |outcome: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.contains(&format!("outcome=\"{outcome}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("redeemed") >= 2, "{metrics}");
    assert_eq!(count("wrong_address"), 0, "{metrics}");
    fleet.stop().await;
}

/// Warm pools on a real engine (issue 34): a hot container boots and waits for its credential,
/// a stopped one is created and not started; nothing is registered on GitHub. Jobs take them:
/// the credential is copied in (`deliver`), the stopped one is started, both runners run their
/// jobs, and the pool is made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_containers_hot_and_stopped_run_the_jobs_that_take_them() {
    use runnerctl::model::{Pool, RunnerStatus};
    use runnerctl::queue::{Envelope, Task};
    use runnerctl::worker::Handler;
    let image = support::docker_test_image();
    let redis = RedisServer::start();
    let name = manager_name("docker-warm");
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        job_duration: Duration::from_millis(300),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  docker:\n    kind: docker\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [self-hosted, linux, box]\n    backend: docker\n    max_runners: 2\n    warm_pool:\n      hot: 1\n    spec:\n      image: {image}\n      network: host\n      memory_mb: 64\n  - name: shelf\n    organization: octo-org\n    labels: [self-hosted, linux, shelf]\n    backend: docker\n    max_runners: 2\n    warm_pool:\n      stopped: 1\n    spec:\n      image: {image}\n      network: host\n      memory_mb: 64\n",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
    sync::sync(&*gh, &refs, false, &|| {}).await;
    let docker: Arc<dyn Backend> = Arc::new(
        DockerBackend::connect(
            "docker",
            &name,
            &runnerctl::backend::docker::DockerSettings::default(),
        )
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
    let mut rows = Vec::new();
    for g in &config.runner_groups {
        rows.extend(m.warm_pass(g, None).await.unwrap());
    }
    let s = RedisStore::new(conn.clone(), &name);
    let warm: Vec<_> = s
        .all_runners()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == RunnerStatus::Warm)
        .collect();
    assert_eq!(warm.len(), 2, "{rows:?}");
    assert!(sim.runners().is_empty(), "nothing registered while warm");
    for r in &warm {
        let state = docker
            .get(r.instance_id.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap()
            .state;
        let expected = match r.pool {
            // Created and never started: Docker says `created`.
            Some(Pool::Stopped) => runnerctl::backend::InstanceState::Pending,
            _ => runnerctl::backend::InstanceState::Running,
        };
        assert_eq!(state, expected, "{r:?}");
    }
    // Two jobs: one takes the hot container (group box), the other the stopped one (shelf).
    let handler = TaskHandler::with_manager(m.clone());
    let mut jobs = Vec::new();
    for group in ["box", "shelf"] {
        let job = sim.queue_job("octo-org/app", &["self-hosted", group]);
        let task = Task::JobQueued {
            job_id: job,
            run_id: 1,
            repository: "octo-org/app".into(),
            labels: vec!["self-hosted".into(), group.into()],
            group: group.into(),
            queued_at: None,
        };
        let outcome = handler.handle(&Envelope::new(task, None)).await;
        assert!(
            matches!(outcome, runnerctl::worker::Outcome::Done),
            "{outcome:?}"
        );
        jobs.push(job);
    }
    let ran = support::eventually(Duration::from_secs(60), || async {
        sim.jobs()
            .iter()
            .filter(|j| jobs.contains(&j.id) && j.status == JobStatus::Completed)
            .count()
            .eq(&2)
            .then_some(())
    })
    .await;
    assert!(ran.is_some(), "both jobs ran: {:?}", sim.jobs());
    let mut taken: Vec<String> = sim
        .jobs()
        .into_iter()
        .filter(|j| jobs.contains(&j.id))
        .filter_map(|j| j.runner_name)
        .collect();
    taken.sort();
    let mut names: Vec<String> = warm.iter().map(|r| r.name.clone()).collect();
    names.sort();
    assert_eq!(taken, names, "the warm containers became the jobs' runners");
    // The pool was made again after the takes (two warm containers, none registered).
    let again = s
        .all_runners()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == RunnerStatus::Warm)
        .count();
    assert_eq!(again, 2);
    for c in docker.list().await.unwrap() {
        let _ = docker.delete(&c.id).await;
    }
}

/// A stand-in for the Docker engine's socket that can be stopped and started again: it
/// forwards to the real engine's socket while running.
struct EngineSocket {
    path: std::path::PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EngineSocket {
    fn start(path: &std::path::Path) -> EngineSocket {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    let engine = std::env::var("DOCKER_HOST")
                        .ok()
                        .and_then(|h| h.strip_prefix("unix://").map(String::from))
                        .unwrap_or_else(|| "/var/run/docker.sock".into());
                    if let Ok(mut up) = tokio::net::UnixStream::connect(engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    }
                });
            }
        });
        EngineSocket {
            path: path.to_path_buf(),
            task: Some(task),
        }
    }

    /// The engine is gone: connections break and new ones are refused.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Issue 36: a group of two backends in order, `[docker, fake]`; the Docker engine stops
/// mid-run: the first failed creates open its breaker and jobs keep starting on the fake
/// backend; once the engine is back and the cool-down over, a probe create closes the breaker
/// and runners are made on Docker again. Nothing is left on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_docker_engine_stops_runners_move_to_the_next_backend_and_come_back() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("runnerctl=debug")
        .with_test_writer()
        .try_init();
    let image = support::docker_test_image();
    let redis = RedisServer::start();
    let name = manager_name("docker-failover");
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
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let mut engine = EngineSocket::start(&sock);
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  docker:\n    kind: docker\n    host: unix://{}\n  fake:\n    kind: fake\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [self-hosted, linux, box]\n    max_runners: 6\n    backends:\n      - {{name: docker, spec: {{image: {image}, network: host, memory_mb: 64}}}}\n      - {{name: fake, spec: {{}}}}\n    failover: {{failures: 2, window: 1m, cool_down: 3s}}\n",
        sim.url(),
        redis.url,
        sock.display()
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let refs: Vec<&config::RunnerGroup> = config.runner_groups.iter().collect();
    sync::sync(&*gh, &refs, false, &|| {}).await;
    let settings = runnerctl::backend::docker::DockerSettings {
        host: Some(format!("unix://{}", sock.display())),
        ..Default::default()
    };
    let docker: Arc<dyn Backend> = Arc::new(
        DockerBackend::connect("docker", &name, &settings)
            .await
            .unwrap(),
    );
    let conn = store::connect(&redis.url).await.unwrap();
    let fake: Arc<dyn Backend> = Arc::new(
        runnerctl::backend::fake::FakeBackend::new("fake", &name, None, Some(conn.clone()))
            .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
    );
    let forge: Arc<dyn Forge> = gh.clone();
    let m = Arc::new(Manager::new(
        config.clone(),
        RedisStore::new(conn.clone(), &name),
        forge,
        HashMap::from([
            ("docker".to_string(), docker.clone()),
            ("fake".to_string(), fake.clone()),
        ]),
    ));
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut opts = WorkerOptions::new(4);
    opts.poll = Duration::from_millis(100);
    let w = tokio::spawn(worker::run(
        Queue::new(conn.clone(), &name, options),
        store::connect(&redis.url).await.unwrap(),
        Arc::new(TaskHandler::with_manager(m.clone())),
        opts,
        stop_rx,
    ));
    let s = RedisStore::new(conn.clone(), &name);
    // Jobs reach the workers through `serve`, as GitHub's webhooks.
    let run_jobs = |n: usize| {
        let sim = &sim;
        async move {
            (0..n)
                .map(|_| sim.queue_job("octo-org/app", &["self-hosted", "box"]))
                .collect::<Vec<u64>>()
        }
    };
    let wait_done = |ids: Vec<u64>, within: Duration| {
        let (sim, s2) = (&sim, &s);
        async move {
            let start = Instant::now();
            loop {
                let done = sim
                    .jobs()
                    .iter()
                    .filter(|j| ids.contains(&j.id) && j.status == JobStatus::Completed)
                    .count();
                if done == ids.len() {
                    return start.elapsed();
                }
                if start.elapsed() >= within {
                    panic!(
                        "{done} of {} jobs done in {within:?}; runners {:?}; records {:?}",
                        ids.len(),
                        sim.runners(),
                        s2.all_runners().await
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let on = |backend: &'static str| {
        let s = &s;
        async move {
            s.all_runners()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.backend == backend)
                .count()
        }
    };
    // The engine runs: jobs run on Docker.
    let first = run_jobs(2).await;
    let started_on_docker = support::eventually(Duration::from_secs(60), || async {
        (on("docker").await > 0).then_some(())
    })
    .await;
    assert!(started_on_docker.is_some(), "runners on Docker");
    wait_done(first, Duration::from_secs(90)).await;
    // Their runners are gone (a runner on a stopped engine could not be deleted and would keep
    // its slot until the engine is back).
    let gone = support::eventually(Duration::from_secs(30), || async {
        (on("docker").await == 0 && docker.list().await.ok()?.is_empty()).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the first runners were deleted");
    // The engine stops: two failed creates open Docker's breaker, and the jobs run on the fake
    // backend meanwhile.
    engine.stop();
    let during = run_jobs(4).await;
    let took = wait_done(during, Duration::from_secs(60)).await;
    let g = config.runner_groups[0].clone();
    let b = m.breaker_of(&g, "docker").await.unwrap();
    assert!(
        matches!(b.state, runnerctl::manager::breaker::State::Open { .. }),
        "{b:?}"
    );
    println!("engine stopped: 4 jobs ran on the next backend within {took:?}");
    // The engine is back; after the cool-down a probe create closes the breaker.
    let mut engine = EngineSocket::start(&sock);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = run_jobs(2).await;
    wait_done(after, Duration::from_secs(90)).await;
    let b = m.breaker_of(&g, "docker").await.unwrap();
    assert_eq!(b.state, runnerctl::manager::breaker::State::Closed, "{b:?}");
    // Nothing left on either backend, no record, no slot.
    let clean = support::eventually(Duration::from_secs(60), || async {
        let left = docker.list().await.ok()?.len() + fake.list().await.ok()?.len();
        let records = s.all_runners().await.ok()?.len();
        (left == 0 && records == 0 && sim.runners().is_empty()).then_some(())
    })
    .await;
    assert!(
        clean.is_some(),
        "left: docker {:?}, fake {:?}, records {:?}",
        docker.list().await,
        fake.list().await,
        s.all_runners().await
    );
    stop_tx.send(true).unwrap();
    w.await.unwrap();
    stop_serve.send(()).unwrap();
    served.await.unwrap();
    engine.stop();
}
