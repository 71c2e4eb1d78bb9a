//! The manager's recovery paths, against real Redis, the fake GitHub and the fake backend.

mod support;

use runnerctl::backend::fake::FakeBackend;
use runnerctl::backend::Backend;
use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::manager::{sync, Created, Manager};
use runnerctl::model::RunnerStatus;
use runnerctl::store::{self, RedisStore, RunnerPatch};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::{manager_name, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_adopts_the_runner_an_interrupted_attempt_made() {
    let redis = RedisServer::start();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let name = manager_name("adopt");
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let gh: Arc<dyn Forge> =
        Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new("t"))).unwrap());
    let g = config.runner_groups[0].clone();
    sync::sync(&*gh, &[&g], false, &|| {}).await;
    let conn = store::connect(&redis.url).await.unwrap();
    let backend: Arc<dyn Backend> = Arc::new(
        FakeBackend::new("fake", &name, None, Some(conn.clone()))
            .with_stand_in(Arc::new(runnerctl::wiring::StandInRunner)),
    );
    let st = RedisStore::new(conn, &name);
    let m = Manager::new(
        config.clone(),
        st.clone(),
        gh,
        HashMap::from([("fake".to_string(), backend.clone())]),
    );

    let Created::New(runner) = m.create_runner(&g, "job:42", Some(42)).await.unwrap() else {
        panic!("a new runner")
    };
    for _ in 0..50 {
        if sim.runners().iter().all(|r| r.online) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.runners()[0].online);
    // As if the worker died after the registration and the instance, before recording them.
    st.update(
        &runner,
        Some(RunnerStatus::Creating),
        &[],
        &RunnerPatch {
            forge_id: Some(None),
            instance_id: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The task is retried: same seed, same name. It adopts; no second runner, no error.
    assert_eq!(
        m.create_runner(&g, "job:42", Some(42)).await.unwrap(),
        Created::New(runner.clone())
    );
    let r = st.get(&runner).await.unwrap().unwrap();
    assert_eq!(r.status, RunnerStatus::Started);
    assert_eq!(r.forge_id, Some(sim.runners()[0].id));
    assert_eq!(
        r.instance_id.as_deref(),
        Some(backend.list().await.unwrap()[0].id.as_str())
    );
    assert_eq!(sim.runners().len(), 1);
    assert_eq!(backend.list().await.unwrap().len(), 1);
    assert_eq!(st.held("g").await.unwrap(), 1);
    // And a third call finds it done.
    assert_eq!(
        m.create_runner(&g, "job:42", Some(42)).await.unwrap(),
        Created::Exists(runner)
    );
}
