//! A group's backends in order (`backends:`), with real Redis and the fake GitHub: a runner is
//! made on the first backend that takes one; creates that fail open the backend's breaker and
//! the next runner goes to the next backend at once; after the cool-down one create probes the
//! first again and, succeeding, closes it; a permanent failure holds until the configuration
//! changes; each backend's own `max_runners`; health checks and deletions cover every backend.

mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::{Backend, BackendError};
use runnerctl::config::{Config, RunnerGroup, Secret};
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::breaker::State;
use runnerctl::manager::{sync, Manager, TaskHandler};
use runnerctl::queue::{Envelope, Task};
use runnerctl::store::{self, RedisStore};
use runnerctl::worker::{Handler, Outcome};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{manager_name, RedisServer};

/// How the flaky backend's creates go.
const WORKS: u8 = 0;
const NO_CAPACITY: u8 = 1;
const BAD_TEMPLATE: u8 = 2;

/// The fake backend, whose creates fail as `mode` says.
struct Flaky {
    inner: Arc<dyn Backend>,
    mode: Arc<AtomicU8>,
}

#[async_trait::async_trait]
impl Backend for Flaky {
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
        match self.mode.load(Ordering::SeqCst) {
            NO_CAPACITY => Err(BackendError::Transient {
                backend: "flaky".into(),
                code: "InsufficientInstanceCapacity".into(),
                message: "no capacity (test)".into(),
            }),
            BAD_TEMPLATE => Err(BackendError::Permanent {
                backend: "flaky".into(),
                code: "InvalidAMIID.NotFound".into(),
                message: "no such image (test)".into(),
            }),
            _ => self.inner.create(req).await,
        }
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
}

struct World {
    _redis: RedisServer,
    _sim: FakeGitHub,
    config: Arc<Config>,
    m: Arc<Manager>,
    st: RedisStore,
    flaky: Arc<dyn Backend>,
    spare: Arc<dyn Backend>,
    mode: Arc<AtomicU8>,
    conn: runnerctl::store::Conn,
    text: String,
}

impl World {
    fn g(&self) -> RunnerGroup {
        self.config.runner_groups[0].clone()
    }

    async fn on(&self, backend: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .st
            .all_runners()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.backend == backend)
            .map(|r| r.name)
            .collect();
        v.sort();
        v
    }

    async fn handle(&self, job: u64) -> Outcome {
        let task = Task::JobQueued {
            job_id: job,
            run_id: job + 1000,
            repository: "octo-org/app".into(),
            labels: vec!["self-hosted".into(), "g".into()],
            group: "g".into(),
            queued_at: None,
        };
        TaskHandler::with_manager(self.m.clone())
            .handle(&Envelope::new(task, None))
            .await
    }

    async fn state(&self, backend: &str) -> State {
        self.m.breaker_of(&self.g(), backend).await.unwrap().state
    }
}

async fn world(test: &str, group: &str) -> World {
    let redis = RedisServer::start();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        rate_limit: 1_000_000,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let name = manager_name(test);
    let text = format!(
        "name: {name}\ncleanup_grace: 0s\ntime_to_start: 30s\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  flaky:\n    kind: fake\n  spare:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    max_runners: 6\n{group}",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let g = config.runner_groups[0].clone();
    sync::sync(&*gh, &[&g], false, &|| {}).await;
    let conn = store::connect(&redis.url).await.unwrap();
    let mode = Arc::new(AtomicU8::new(WORKS));
    let fake = |n: &str| {
        FakeBackend::new(n, &name, None, Some(conn.clone()))
            .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner))
    };
    let flaky: Arc<dyn Backend> = Arc::new(Flaky {
        inner: Arc::new(fake("flaky")),
        mode: mode.clone(),
    });
    let spare: Arc<dyn Backend> = Arc::new(fake("spare"));
    let st = RedisStore::new(conn.clone(), &name);
    let m = Arc::new(Manager::new(
        config.clone(),
        st.clone(),
        gh,
        HashMap::from([
            ("flaky".to_string(), flaky.clone()),
            ("spare".to_string(), spare.clone()),
        ]),
    ));
    World {
        _redis: redis,
        _sim: sim,
        config,
        m,
        st,
        flaky,
        spare,
        mode,
        conn,
        text,
    }
}

const IN_ORDER: &str =
    "    backends: [flaky, spare]\n    failover: {failures: 2, window: 1m, cool_down: 2s}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_move_to_the_next_backend_once_the_breaker_opens_and_come_back_after_a_probe() {
    let w = world("failover", IN_ORDER).await;
    // Both backends work: the first takes the runner.
    assert_eq!(w.handle(1).await, Outcome::Done);
    assert_eq!(w.on("flaky").await.len(), 1);
    assert_eq!(w.state("flaky").await, State::Closed);
    // The first runs out of capacity: two failed creates (the task's attempts) open it.
    w.mode.store(NO_CAPACITY, Ordering::SeqCst);
    let o = w.handle(2).await;
    assert!(
        matches!(o, Outcome::Retry(_) | Outcome::Wait { .. }),
        "{o:?} {:?}",
        w.st.all_runners().await.unwrap()
    );
    assert_eq!(
        w.state("flaky").await,
        State::Closed,
        "one failure in the window"
    );
    let o = w.handle(2).await;
    assert!(
        matches!(o, Outcome::Retry(_) | Outcome::Wait { .. }),
        "{o:?} {:?}",
        w.st.all_runners().await.unwrap()
    );
    assert!(matches!(w.state("flaky").await, State::Open { .. }));
    // At once, the next attempt goes to the second backend.
    assert_eq!(w.handle(2).await, Outcome::Done);
    assert_eq!(w.on("spare").await.len(), 1);
    assert_eq!(w.handle(3).await, Outcome::Done);
    assert_eq!(w.on("spare").await.len(), 2);
    assert_eq!(
        w.flaky.list().await.unwrap().len(),
        1,
        "nothing half made on the first"
    );
    let metrics = runnerctl::server::fleet::worker_metrics(
        &w.m,
        &runnerctl::queue::Queue::new(w.conn.clone(), &w.config.name, Default::default()),
    )
    .await;
    assert!(
        metrics.contains("runnerctl_backend_breaker_state{group=\"g\",backend=\"flaky\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "runnerctl_backend_creates_total{group=\"g\",backend=\"flaky\",outcome=\"failed\"}"
    ));
    // `groups list` and `doctor` show the open breaker.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, &w.text).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("UNUSED", "t")
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let groups = cli(&["groups", "list", "--local", "-o", "json"]);
    let backends = &groups[0]["backends"];
    assert_eq!(backends[0]["name"], "flaky");
    assert_eq!(backends[0]["breaker"], "open", "{groups}");
    assert_eq!(backends[1]["breaker"], "closed");
    let checks = cli(&["doctor", "-o", "json"]);
    let flaky = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "backend flaky of g (1 in order)")
        .unwrap_or_else(|| panic!("{checks}"));
    assert_eq!(flaky["status"], "warn");
    assert!(
        flaky["detail"].as_str().unwrap().contains("no capacity"),
        "{flaky}"
    );
    // After the cool-down the first is probed; the capacity is back: the probe succeeds and
    // closes it, and runners go to it again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    w.mode.store(WORKS, Ordering::SeqCst);
    assert_eq!(w.handle(4).await, Outcome::Done);
    assert_eq!(w.state("flaky").await, State::Closed);
    assert_eq!(w.on("flaky").await.len(), 2);
    // A health pass sees the instances on both backends: nothing is a leak or deleted.
    let rows = w.m.health_check(&w.g()).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| !format!("{:?}", r.action).contains("Delete")),
        "{rows:?}"
    );
    assert_eq!(w.flaky.list().await.unwrap().len(), 2);
    assert_eq!(w.spare.list().await.unwrap().len(), 2);
    // Each runner is deleted on its own backend.
    for name in w.on("spare").await {
        w.m.delete_runner(&name, true).await.unwrap();
    }
    assert!(w.spare.list().await.unwrap().is_empty());
    assert_eq!(w.flaky.list().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_opens_the_breaker_again() {
    let w = world("failover-probe", IN_ORDER).await;
    w.mode.store(NO_CAPACITY, Ordering::SeqCst);
    for _ in 0..2 {
        w.handle(1).await;
    }
    assert!(matches!(w.state("flaky").await, State::Open { .. }));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A runner whose create failed on the half-open backend does not probe it again: it goes
    // on to the next.
    assert_eq!(w.handle(1).await, Outcome::Done);
    assert_eq!(w.on("spare").await.len(), 1);
    assert!(
        matches!(w.state("flaky").await, State::Open { .. }),
        "not probed"
    );
    // Another job's runner probes it; the probe fails: open again for another cool-down, and
    // that runner's next attempt goes on too.
    assert!(matches!(
        w.handle(2).await,
        Outcome::Retry(_) | Outcome::Wait { .. }
    ));
    let State::Open { until, .. } = w.state("flaky").await else {
        panic!("open again");
    };
    assert!(until > runnerctl::model::unix_now());
    assert_eq!(w.handle(2).await, Outcome::Done);
    assert_eq!(w.on("spare").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_leaves_the_backend_out_until_its_configuration_changes() {
    let w = world("failover-permanent", IN_ORDER).await;
    w.mode.store(BAD_TEMPLATE, Ordering::SeqCst);
    // One permanent failure is enough.
    assert!(matches!(
        w.handle(1).await,
        Outcome::Retry(_) | Outcome::Wait { .. } | Outcome::Fail(_)
    ));
    let State::Broken { why, .. } = w.state("flaky").await else {
        panic!("broken");
    };
    assert!(why.contains("no such image"), "{why}");
    assert_eq!(w.handle(1).await, Outcome::Done);
    assert_eq!(w.on("spare").await.len(), 1);
    // However long one waits.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(w.handle(2).await, Outcome::Done);
    assert_eq!(w.on("spare").await.len(), 2);
    // A changed spec is another configuration: the backend is tried again.
    let g = w.g();
    let old = w.m.fingerprint(&g.backends[0]);
    let mut changed = g.backends[0].clone();
    changed.spec = runnerctl::config::Typed::new("fake", serde_json::json!({"size": "large"}));
    assert_ne!(w.m.fingerprint(&changed), old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_s_own_max_runners_sends_the_next_runner_to_the_next_backend() {
    let w = world(
        "failover-max",
        "    backends:\n      - {name: flaky, max_runners: 2}\n      - spare\n",
    )
    .await;
    for job in 1..=4 {
        assert_eq!(w.handle(job).await, Outcome::Done);
    }
    assert_eq!(w.on("flaky").await.len(), 2);
    assert_eq!(w.on("spare").await.len(), 2);
}
