//! Redis Cluster, on real servers: three masters on loopback made a cluster with
//! `redis-cli --cluster create`. The end-to-end run (the fake GitHub's signed deliveries to
//! `serve`, two workers, the fake backend, health checks finding lost deliveries) passes on it
//! unchanged: one manager's keys share a slot by their hash tag, every script declares them,
//! and the cluster-aware client follows the slot's node. The CLI works on it too.

mod support;

use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::manager::sync;
use runnerctl::queue::{Queue, QueueOptions};
use runnerctl::store::{self, RedisStore};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::manager_name;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three masters, all slots assigned, the cluster's state `ok`.
fn cluster(dir: &std::path::Path) -> (Vec<Node>, Vec<String>) {
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let port_text = port.to_string();
        let config_file = format!("nodes-{port}.conf");
        let child = support::spawn_redis(
            &[
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config_file,
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
                "--dir",
                dir.to_str().unwrap(),
            ],
            port,
        );
        nodes.push(Node(child));
        addrs.push(format!("127.0.0.1:{port}"));
    }
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli (redis-tools) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = addrs.iter().all(|a| {
            let (h, p) = a.split_once(':').unwrap();
            Command::new("redis-cli")
                .args(["-h", h, "-p", p, "cluster", "info"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                .unwrap_or(false)
        });
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not become ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    (nodes, addrs)
}

const GROUPS: [(&str, &[&str], u32); 3] = [
    ("small", &["self-hosted", "small"], 4),
    ("large", &["self-hosted", "large"], 3),
    ("gpu", &["self-hosted", "gpu"], 2),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_to_end_run_passes_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, addrs) = cluster(dir.path());
    let name = manager_name("cluster");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into(), "web".into()])],
        token: Some("t".into()),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: "cluster-webhook-secret".into(),
        job_duration: Duration::from_millis(50),
        drop_webhooks: 0.05,
        rate_limit: 1_000_000,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let mut text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: redis://cluster/0\n  cluster: [{}]\ntime_to_start: 30s\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n",
        sim.url(),
        addrs.join(", ")
    );
    text.push_str(&support::fake_groups_yaml(&GROUPS));
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let target = runnerctl::wiring::redis_target(&config).unwrap();
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let refs: Vec<_> = config.runner_groups.iter().collect();
    sync::sync(&*gh, &refs, false, &|| {}).await;
    let options = QueueOptions {
        visibility_timeout: Duration::from_secs(2),
        max_attempts: 30,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(800),
        ..QueueOptions::default()
    };
    assert!(store::connect_to(&target).await.unwrap().is_cluster());
    let fleet = support::start_fleet(
        listener,
        support::FleetSpec {
            config: config.clone(),
            target: target.clone(),
            forge: gh.clone(),
            secret: "cluster-webhook-secret".into(),
            options: options.clone(),
            workers: 2,
            durability: None,
        },
    )
    .await;
    let conn = store::connect_to(&target).await.unwrap();
    let queue = Queue::new(conn.clone(), &name, options);
    let records = RedisStore::new(conn, &name);
    const JOBS: usize = 90;
    let repos = ["octo-org/app", "octo-org/web"];
    for i in 0..JOBS {
        let (_, labels, _) = GROUPS[i % GROUPS.len()];
        sim.queue_job(repos[i % 2], labels);
    }
    let start = Instant::now();
    let mut slot = 0;
    loop {
        let done = sim
            .jobs()
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        let left = records.all_runners().await.unwrap().len();
        if done == JOBS && left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "{done} of {JOBS} jobs done, {left} records left, dead {:?}",
            queue.dead().await.ok()
        );
        slot += 1;
        if slot % 5 == 0 {
            support::health_checks(&queue, &GROUPS.map(|g| g.0), slot).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (g, _, _) in GROUPS {
        assert_eq!(records.held(g).await.unwrap(), 0, "no slot of {g} held");
    }
    // The CLI on the same cluster.
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, format!("{text}webhook:\n  secret_env: HOOK\n")).unwrap();
    for args in [&["tasks", "list"][..], &["healthcheck"][..]] {
        let out = Command::new(support::bin())
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("UNUSED", "t")
            .env("HOOK", "cluster-webhook-secret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fleet.stop().await;
}
