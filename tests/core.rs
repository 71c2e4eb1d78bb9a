//! The life cycle on the in-memory store and a virtual clock: no Redis. The fake GitHub (an
//! in-process server) gives each queued job to any idle runner whose labels fit, and the job
//! events are fed to the manager as workers would.

mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::Backend;
use runnerctl::clock::VirtualClock;
use runnerctl::config::Secret;
use runnerctl::forge::fake::{Chaos, FakeGitHub, FakeGitHubOptions, JobStatus};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::{sync, Created, Manager};
use runnerctl::memory::MemoryStore;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct World {
    sim: FakeGitHub,
    clock: Arc<VirtualClock>,
    m: Arc<Manager>,
    backend: Arc<dyn Backend>,
}

async fn world(max_runners: u32, chaos: Chaos) -> World {
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        job_duration: Duration::from_millis(50),
        chaos,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let text = format!(
        "name: core\ncleanup_grace: 0s\ntime_to_start: 30s\ngithub:\n  base_url: {}\n  token_env: UNUSED\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n    max_runners: {max_runners}\n",
        sim.url()
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    sync::sync(&*gh, &[&config.runner_groups[0]], false, &|| {}).await;
    let backend: Arc<dyn Backend> = Arc::new(
        FakeBackend::new("fake", "core", None, None)
            .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
    );
    let clock = Arc::new(VirtualClock::new(1_790_000_000_000));
    let m = Arc::new(Manager::new(
        config,
        MemoryStore::new(clock.clone()),
        gh,
        HashMap::from([("fake".to_string(), backend.clone())]),
    ));
    World {
        sim,
        clock,
        m,
        backend,
    }
}

/// Runner theft (GitHub gives a job to any idle runner): every job still gets a runner,
/// `max_runners` holds, and no runner is left, with no health check, on the in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_memory_store_every_stolen_job_still_gets_a_runner() {
    let w = world(
        6,
        Chaos {
            any_idle_runner: true,
            ..Chaos::default()
        },
    )
    .await;
    for _ in 0..20 {
        w.sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    }
    let start = Instant::now();
    let mut seen: HashMap<u64, JobStatus> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut peak = 0;
    loop {
        let jobs = w.sim.jobs();
        peak = peak.max(w.backend.list().await.unwrap().len());
        if jobs.iter().all(|j| j.status == JobStatus::Completed)
            && w.m.store.all_runners().await.unwrap().is_empty()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stuck: {:?}",
            jobs.iter()
                .filter(|j| j.status != JobStatus::Completed)
                .map(|j| (j.id, j.status))
                .collect::<Vec<_>>()
        );
        for j in jobs {
            if seen.insert(j.id, j.status) == Some(j.status) {
                continue;
            }
            let (m, runner, id, status) = (w.m.clone(), j.runner_name.clone(), j.id, j.status);
            tasks.spawn(async move {
                loop {
                    let done = match status {
                        JobStatus::Queued => matches!(
                            m.job_queued("g", id).await,
                            Ok(c) if !matches!(c, Created::Full { .. })
                        ),
                        JobStatus::InProgress => m
                            .job_in_progress(
                                id,
                                runner.as_deref().unwrap_or_default(),
                                Default::default(),
                            )
                            .await
                            .is_ok(),
                        JobStatus::Completed => m
                            .job_completed(id, runner.as_deref(), Default::default())
                            .await
                            .is_ok(),
                    };
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        // Time passes on the store's clock as it does here.
        w.clock.advance(Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tasks.shutdown().await;
    assert!(peak <= 6, "max_runners held: {peak} instances at once");
}
