//! Redis Sentinel, on real servers: a master, a replica and three sentinels on loopback. An
//! end-to-end run (the fake GitHub's signed deliveries to `serve`, two workers, the fake
//! backend) loses its master to SIGKILL part-way: every process finds the new master by itself,
//! every job runs, nothing is left. `serve` answers 202 only once a replica has the delivery
//! (`redis.wait_replicas: 1`), so no acknowledged delivery is lost with the master.

mod support;

use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::manager::sync;
use runnerctl::queue::{Queue, QueueOptions};
use runnerctl::store::{self, RedisStore};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::manager_name;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis(port: u16, dir: &std::path::Path, replica_of: Option<u16>) -> Proc {
    let (port_text, dir_text) = (port.to_string(), dir.display().to_string());
    let mut args = vec!["--port", &port_text, "--bind", "127.0.0.1"];
    args.extend(["--save", "", "--appendonly", "no", "--loglevel", "warning"]);
    args.extend(["--dir", &dir_text]);
    let master = replica_of.map(|m| m.to_string());
    if let Some(m) = &master {
        args.extend(["--replicaof", "127.0.0.1", m]);
    }
    Proc(Some(support::spawn_redis(&args, port)))
}

fn sentinel(port: u16, master: u16, dir: &std::path::Path) -> Proc {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master} 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 4000\nsentinel parallel-syncs mymaster 1\n",
            dir.display()
        ),
    )
    .unwrap();
    Proc(Some(support::spawn_redis(
        &[conf.as_os_str(), "--sentinel".as_ref()],
        port,
    )))
}

const GROUPS: [(&str, &[&str], u32); 2] = [
    ("small", &["self-hosted", "small"], 4),
    ("large", &["self-hosted", "large"], 3),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_the_loss_of_its_master() {
    let dir = tempfile::tempdir().unwrap();
    let (m, r) = (free_port(), free_port());
    let mdir = dir.path().join("master");
    let rdir = dir.path().join("replica");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::create_dir_all(&rdir).unwrap();
    let mut master = redis(m, &mdir, None);
    let _replica = redis(r, &rdir, Some(m));
    let sentinel_ports = [free_port(), free_port(), free_port()];
    let _sentinels: Vec<Proc> = sentinel_ports
        .iter()
        .map(|p| sentinel(*p, m, dir.path()))
        .collect();

    let name = manager_name("sentinel");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: "sentinel-webhook-secret".into(),
        job_duration: Duration::from_millis(50),
        rate_limit: 1_000_000,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let addresses: Vec<String> = sentinel_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: redis://127.0.0.1/0\n  sentinel:\n    master: mymaster\n    addresses: [{}]\n  wait_replicas: 1\n  wait_timeout: 1s\ntime_to_start: 30s\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n",
        sim.url(),
        addresses.join(", ")
    );
    text.push_str(&support::fake_groups_yaml(&GROUPS));
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let target = runnerctl::wiring::redis_target(&config).unwrap();
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let refs: Vec<_> = config.runner_groups.iter().collect();
    sync::sync(&*gh, &refs, false, &|| {}).await;
    let options = QueueOptions {
        visibility_timeout: Duration::from_secs(2),
        max_attempts: 50,
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
        ..QueueOptions::default()
    };
    let fleet = support::start_fleet(
        listener,
        support::FleetSpec {
            config: config.clone(),
            target: target.clone(),
            forge: gh.clone(),
            secret: "sentinel-webhook-secret".into(),
            options: options.clone(),
            workers: 2,
            durability: Some((1, Duration::from_secs(1))),
        },
    )
    .await;
    let conn = store::connect_to(&target).await.unwrap();
    let queue = Queue::new(conn.clone(), &name, options);
    let records = RedisStore::new(conn, &name);

    const JOBS: usize = 60;
    for i in 0..JOBS {
        let (_, labels, _) = GROUPS[i % GROUPS.len()];
        sim.queue_job("octo-org/app", labels);
    }
    let start = Instant::now();
    let (mut killed, mut back) = (false, false);
    let mut killed_at = Instant::now();
    let mut slot = 0;
    loop {
        let done = sim
            .jobs()
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        let left = records
            .all_runners()
            .await
            .map(|r| r.len())
            .unwrap_or(usize::MAX);
        if done == JOBS && left == 0 {
            break;
        }
        if !killed && done >= JOBS / 3 {
            master.kill();
            killed = true;
            killed_at = Instant::now();
        }
        // Once the sentinels promoted the replica (it was timed from the start of the run, so
        // a kill late in a fast run brought the old master back before any failover, and it
        // stayed master).
        let promoted = killed
            && !back
            && killed_at.elapsed() > Duration::from_secs(2)
            && store::sentinel_master(&target).await.ok() == Some(format!("127.0.0.1:{r}"));
        if promoted {
            // The old master comes back; the sentinels make it a replica of the new one.
            master = redis(m, &mdir, None);
            back = true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "{done} of {JOBS} jobs done, {left} records left ({:?}), jobs waiting in Redis {:?}, dead {:?}, sim runners {:?}",
            records.all_runners().await.ok(),
            (
                records.waiting_jobs(GROUPS[0].0).await.ok(),
                records.waiting_jobs(GROUPS[1].0).await.ok()
            ),
            queue.dead().await.ok(),
            sim.runners()
                .iter()
                .map(|r| (r.name.clone(), r.online, r.busy))
                .collect::<Vec<_>>()
        );
        slot += 1;
        if slot % 5 == 0 {
            support::health_checks(&queue, &GROUPS.map(|g| g.0), slot).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(killed, "the master was killed during the run");
    // The sentinels name the former replica master now (a run may end before they are done).
    let want = format!("127.0.0.1:{r}");
    let mut now = store::sentinel_master(&target).await.unwrap();
    let waited = Instant::now();
    while now != want && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = store::sentinel_master(&target).await.unwrap();
    }
    assert_eq!(now, want);
    fleet.stop().await;
}
