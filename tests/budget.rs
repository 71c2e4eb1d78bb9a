//! The shared API budget: the in-memory and the Redis budget keep the same rule (a contract
//! run on both), several processes share one budget through Redis, a limit GitHub answers
//! pauses every process, the lower priorities give way to the jobs, and several GitHub Apps
//! share the work (one whose key is wrong named, the others serving).

mod support;

use runnerctl::budget::{
    with_priority, Ask, Budget, Limits, MemoryBudget, Primary, Priority, RedisBudget, Short, Take,
};
use runnerctl::clock::Clock;
use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeApp, FakeGitHub, FakeGitHubOptions, Trouble};
use runnerctl::forge::fake_limits::FakeLimits;
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::forge::{ForgeError, Scope};
use std::sync::Arc;
use std::time::Duration;
use support::RedisServer;

const TOKEN: &str = "ghp_budget";

/// The host's clock, for the in-memory budget beside Redis's.
struct Wall;

impl Clock for Wall {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }
}

/// 60 points a minute (a read class: a burst of 15, then a point every 1.43 s, 42 a minute),
/// reads 1, writes 5, two requests at once.
const SMALL: Limits = Limits {
    points_per_minute: 60,
    write_points: 5,
    read_points: 1,
    max_concurrent: 2,
};

fn ask<'a>(class: &'a str, write: bool, priority: Priority) -> Ask<'a> {
    Ask {
        credential: "cred-contract",
        class,
        write,
        priority,
        limits: &SMALL,
    }
}

fn granted(t: &Take) -> String {
    match t {
        Take::Granted { lease } => lease.clone(),
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn waits(t: &Take, why: Short) -> Duration {
    match t {
        Take::Wait { wait, why: w } if *w == why => *wait,
        other => panic!("expected a wait for {why:?}, got {other:?}"),
    }
}

/// The same steps on each budget; they must answer alike.
async fn contract(b: &dyn Budget) {
    // A read class's burst is 15 points (25% of 60): fifteen reads at once, the sixteenth
    // waits about 1.43 s.
    let l1 = granted(&b.take(&ask("GET /a", false, Priority::Job)).await.unwrap());
    b.done("cred-contract", &l1, None).await.unwrap();
    for _ in 0..14 {
        let l = granted(&b.take(&ask("GET /a", false, Priority::Job)).await.unwrap());
        b.done("cred-contract", &l, None).await.unwrap();
    }
    let w = waits(
        &b.take(&ask("GET /a", false, Priority::Job)).await.unwrap(),
        Short::Rate,
    );
    assert!(
        w > Duration::from_millis(1200) && w <= Duration::from_millis(1500),
        "{w:?}"
    );
    // Another class has its own points.
    let a = granted(&b.take(&ask("GET /b", false, Priority::Job)).await.unwrap());
    // Two in flight at most: a third waits, health may have only one.
    let c = granted(&b.take(&ask("GET /c", false, Priority::Job)).await.unwrap());
    waits(
        &b.take(&ask("GET /d", false, Priority::Job)).await.unwrap(),
        Short::Concurrency,
    );
    assert_eq!(b.status("cred-contract").await.unwrap().in_flight, 2);
    b.done("cred-contract", &a, None).await.unwrap();
    waits(
        &b.take(&ask("GET /d", false, Priority::Health))
            .await
            .unwrap(),
        Short::Concurrency,
    );
    b.done("cred-contract", &c, None).await.unwrap();
    // The hourly budget: 5 of 100 left; the jobs go on, health waits for the reset.
    let l = granted(&b.take(&ask("GET /e", false, Priority::Job)).await.unwrap());
    let primary = Primary {
        limit: 100,
        remaining: 5,
        resets_in: Duration::from_secs(30),
    };
    b.done("cred-contract", &l, Some(primary)).await.unwrap();
    let w = waits(
        &b.take(&ask("GET /f", false, Priority::Health))
            .await
            .unwrap(),
        Short::Primary,
    );
    assert!(w > Duration::from_secs(28), "{w:?}");
    let l = granted(&b.take(&ask("GET /f", false, Priority::Job)).await.unwrap());
    b.done("cred-contract", &l, None).await.unwrap();
    assert_eq!(
        b.status("cred-contract").await.unwrap().primary,
        Some((100, 5))
    );
    // A pause stops its class for everyone, and never shortens.
    b.pause("cred-contract", "GET /g", Duration::from_secs(20))
        .await
        .unwrap();
    b.pause("cred-contract", "GET /g", Duration::from_secs(2))
        .await
        .unwrap();
    let w = waits(
        &b.take(&ask("GET /g", false, Priority::Job)).await.unwrap(),
        Short::Paused,
    );
    assert!(w > Duration::from_secs(18), "{w:?}");
    // `*` pauses every class.
    b.pause("cred-contract", "*", Duration::from_secs(5))
        .await
        .unwrap();
    waits(
        &b.take(&ask("GET /h", false, Priority::Job)).await.unwrap(),
        Short::Paused,
    );
    let s = b.status("cred-contract").await.unwrap();
    let classes: Vec<&str> = s.pauses.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(classes, ["*", "GET /g"]);
    // Another credential is not touched.
    let other = Ask {
        credential: "cred-other",
        ..ask("GET /h", false, Priority::Cleanup)
    };
    granted(&b.take(&other).await.unwrap());
}

#[tokio::test]
async fn the_memory_and_the_redis_budget_keep_the_same_rule() {
    contract(&MemoryBudget::new(Arc::new(Wall))).await;
    let redis = RedisServer::start();
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    contract(&RedisBudget::on(conn)).await;
}

#[tokio::test]
async fn a_killed_process_s_requests_free_their_places_when_their_leases_end() {
    // The lease outlives no process by more than a minute; here: taken and never handed back.
    let clock = Arc::new(runnerctl::clock::VirtualClock::new(1_000_000_000));
    let b = MemoryBudget::new(clock.clone());
    granted(&b.take(&ask("GET /a", false, Priority::Job)).await.unwrap());
    granted(&b.take(&ask("GET /b", false, Priority::Job)).await.unwrap());
    assert_eq!(b.status("cred-contract").await.unwrap().in_flight, 2);
    waits(
        &b.take(&ask("GET /c", false, Priority::Job)).await.unwrap(),
        Short::Concurrency,
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(b.status("cred-contract").await.unwrap().in_flight, 0);
    granted(&b.take(&ask("GET /c", false, Priority::Job)).await.unwrap());
}

#[tokio::test]
async fn two_processes_share_one_budget_through_redis() {
    let redis = RedisServer::start();
    let one = RedisBudget::lazy(redis.url.as_str().into());
    let two = RedisBudget::lazy(redis.url.as_str().into());
    for _ in 0..15 {
        let l = granted(
            &one.take(&ask("GET /a", false, Priority::Job))
                .await
                .unwrap(),
        );
        one.done("cred-contract", &l, None).await.unwrap();
    }
    // The burst the first spent is gone for the second too.
    waits(
        &two.take(&ask("GET /a", false, Priority::Job))
            .await
            .unwrap(),
        Short::Rate,
    );
    one.pause("cred-contract", "POST /x", Duration::from_secs(10))
        .await
        .unwrap();
    waits(
        &two.take(&ask("POST /x", true, Priority::Job))
            .await
            .unwrap(),
        Short::Paused,
    );
    // The keys are the credential's, hash-tagged, and hold no secret.
    let dump = support::redis_dump(&redis.url, "runnerctl-budget:*").await;
    assert!(
        dump.contains("runnerctl-budget:{cred-contract}:pauses"),
        "{dump}"
    );
}

fn org() -> Scope {
    Scope::Org("octo-org".into())
}

async fn limited_fake(extra: FakeGitHubOptions) -> FakeGitHub {
    FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some(TOKEN.into()),
        limits: Some(FakeLimits::default()),
        ..extra
    })
    .await
    .unwrap()
}

fn client(url: &str, redis: &str) -> GitHub {
    GitHub::new(url, Auth::Token(Secret::new(TOKEN)))
        .unwrap()
        .with_budget(Arc::new(RedisBudget::lazy(redis.into())), Limits::GITHUB)
}

async fn jit(gh: &GitHub, name: String) -> Result<(), ForgeError> {
    gh.generate_jit_config(&org(), &name, 1, &["self-hosted".into()], "_work")
        .await
        .map(|_| ())
}

#[tokio::test]
async fn the_fake_enforces_github_s_secondary_limit_without_a_budget() {
    let s = limited_fake(FakeGitHubOptions::default()).await;
    let gh = GitHub::new(&s.url(), Auth::Token(Secret::new(TOKEN))).unwrap();
    let mut refused = 0;
    for i in 0..200 {
        if jit(&gh, format!("r-{i}")).await.is_err() {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "181 writes a minute on one endpoint are refused"
    );
    assert!(s.secondary_limit_answers() > 0);
}

#[tokio::test]
async fn three_processes_on_one_budget_get_no_secondary_limit_answer() {
    let redis = RedisServer::start();
    let s = limited_fake(FakeGitHubOptions::default()).await;
    // Three clients, each with its own connection to the budget, as three processes have.
    let clients: Vec<Arc<GitHub>> = (0..3)
        .map(|_| Arc::new(client(&s.url(), &redis.url)))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let gh = clients[i % 3].clone();
        tasks.spawn(async move {
            let mut gh_err = None;
            // A job's call that waits longer than max_wait is told to come back later.
            for _ in 0..10 {
                match jit(&gh, format!("r-{i}")).await {
                    Ok(()) => return None,
                    Err(ForgeError::RateLimited { wait, .. }) => {
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        gh_err = Some(e.to_string());
                        break;
                    }
                }
            }
            gh_err.or(Some("never granted".into()))
        });
    }
    let mut failed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Some(e) = r.unwrap() {
            failed.push(e);
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(s.secondary_limit_answers(), 0);
    assert_eq!(s.runners().len(), 30);
}

#[tokio::test]
async fn a_limit_github_answers_pauses_the_class_for_every_process() {
    let redis = RedisServer::start();
    let s = limited_fake(FakeGitHubOptions::default()).await;
    let mut one = client(&s.url(), &redis.url);
    let mut two = client(&s.url(), &redis.url);
    one.max_wait = Duration::from_secs(1);
    two.max_wait = Duration::from_secs(1);
    s.trouble(Trouble::SecondaryLimit { retry_after: 30 }, 1);
    let err = one.list_runners(&org()).await.unwrap_err();
    assert!(matches!(err, ForgeError::RateLimited { .. }), "{err}");
    let before = s.requests().len();
    // The other process does not call: it waits (here: is told to come back), no attempt lost.
    let err = two.list_runners(&org()).await.unwrap_err();
    match err {
        ForgeError::RateLimited { wait, .. } => assert!(wait > Duration::from_secs(25)),
        other => panic!("{other}"),
    }
    // A health pass's call is skipped, and says why.
    let err = with_priority(Priority::Health, two.list_runners(&org()))
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::Deferred { .. }), "{err}");
    assert!(err.to_string().contains("kept for jobs"), "{err}");
    assert_eq!(s.requests().len(), before, "nobody called GitHub meanwhile");
    // Another endpoint is not paused.
    jit(&two, "other-endpoint".into()).await.unwrap();
    let status = two.meters()[0].status().await.unwrap().unwrap();
    assert_eq!(status.pauses.len(), 1, "{status:?}");
    assert_eq!(status.pauses[0].0, "GET /orgs/{owner}/actions/runners");
}

#[tokio::test]
async fn a_spent_hourly_budget_pauses_every_endpoint() {
    let redis = RedisServer::start();
    let s = limited_fake(FakeGitHubOptions::default()).await;
    let mut gh = client(&s.url(), &redis.url);
    gh.max_wait = Duration::from_secs(1);
    s.trouble(Trouble::PrimaryLimit, 1);
    let err = gh.list_runners(&org()).await.unwrap_err();
    assert!(matches!(err, ForgeError::RateLimited { .. }), "{err}");
    let before = s.requests().len();
    let err = jit(&gh, "x".into()).await.unwrap_err();
    assert!(matches!(err, ForgeError::RateLimited { .. }), "{err}");
    assert_eq!(s.requests().len(), before);
    let status = gh.meters()[0].status().await.unwrap().unwrap();
    assert_eq!(status.pauses[0].0, "*");
}

#[tokio::test]
async fn without_redis_the_client_calls_github_and_says_so() {
    let s = limited_fake(FakeGitHubOptions::default()).await;
    // A budget whose Redis is not there: calls go on without it.
    let gh = GitHub::new(&s.url(), Auth::Token(Secret::new(TOKEN)))
        .unwrap()
        .with_budget(
            Arc::new(RedisBudget::lazy(
                format!("redis://127.0.0.1:{}", support::free_port())
                    .as_str()
                    .into(),
            )),
            Limits::GITHUB,
        );
    gh.list_runners(&org()).await.unwrap();
    let status = gh.meters()[0].status().await.unwrap();
    assert!(status.is_err());
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/github-app/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn fake_app(app_id: u64, installation_id: u64) -> FakeApp {
    FakeApp {
        app_id,
        installation_id,
        public_key_pem: fixture("app-key.pub.pem"),
    }
}

fn app(app_id: u64, installation_id: u64, key: &str) -> Auth {
    Auth::App {
        app_id,
        installation_id,
        private_key: Secret::new(fixture(key)),
    }
}

#[tokio::test]
async fn several_apps_share_the_runners_and_a_refused_one_is_named_while_the_others_serve() {
    let redis = RedisServer::start();
    let s = limited_fake(FakeGitHubOptions {
        app: Some(fake_app(4242, 77)),
        other_apps: vec![fake_app(4343, 88)],
        ..FakeGitHubOptions::default()
    })
    .await;
    let gh = GitHub::with_apps(
        &s.url(),
        vec![
            ("first".into(), app(4242, 77, "app-key.pem")),
            ("second".into(), app(4343, 88, "app-key.pem")),
            // GitHub does not know this key.
            ("broken".into(), app(4444, 99, "other-key.pem")),
        ],
    )
    .unwrap()
    .with_budget(
        Arc::new(RedisBudget::lazy(redis.url.as_str().into())),
        Limits::GITHUB,
    );
    for i in 0..12 {
        jit(&gh, format!("r-{i}")).await.unwrap();
    }
    let by: std::collections::BTreeMap<String, usize> = s
        .admitted()
        .iter()
        .filter(|a| a.class.ends_with("generate-jitconfig"))
        .fold(Default::default(), |mut m, a| {
            *m.entry(a.credential.clone()).or_default() += 1;
            m
        });
    assert_eq!(by.len(), 2, "{by:?}");
    assert!(by.values().all(|n| *n >= 4), "spread over the Apps: {by:?}");
    // Pinned to the broken one: refused, and named.
    let probes = gh.probe_apps(&org()).await;
    let broken: Vec<&(String, Result<(), ForgeError>)> =
        probes.iter().filter(|(_, r)| r.is_err()).collect();
    assert_eq!(broken.len(), 1, "{probes:?}");
    assert_eq!(broken[0].0, "broken");
    let e = broken[0].1.as_ref().unwrap_err().to_string();
    assert!(e.contains("GitHub App `broken`"), "{e}");
}

#[tokio::test]
async fn a_health_pass_the_budget_cannot_serve_is_skipped_and_says_so() {
    use runnerctl::backend::fake::FakeBackend;
    use runnerctl::backend::Backend;
    use runnerctl::manager::plan::Action;
    use runnerctl::manager::{HealthResult, Manager};
    let redis = RedisServer::start();
    let s = limited_fake(FakeGitHubOptions::default()).await;
    let text = format!(
        "name: skip\ngithub:\n  base_url: {}\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n",
        s.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    let mut gh = client(&s.url(), &redis.url);
    gh.max_wait = Duration::from_secs(2);
    // GitHub paused the runner listings for a minute (another process met the limit).
    gh.meters()[0]
        .pause("GET /orgs/{owner}/actions/runners", Duration::from_secs(60))
        .await;
    let backend: Arc<dyn Backend> = Arc::new(FakeBackend::new("fake", "skip", None, None));
    let m = Manager::new(
        config.clone(),
        runnerctl::store::RedisStore::new(conn, "skip"),
        Arc::new(gh),
        std::collections::HashMap::from([("fake".to_string(), backend)]),
    );
    let before = s.requests().len();
    let rows = m.health_check(&config.runner_groups[0]).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(matches!(rows[0].action, Action::Skip { .. }), "{rows:?}");
    match &rows[0].result {
        HealthResult::Skipped(Some(why)) => assert!(why.contains("kept for jobs"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.requests().len(), before, "the pass called nothing");
}

#[tokio::test]
async fn doctor_names_the_app_github_refuses_and_the_others_pass() {
    let redis = RedisServer::start();
    let s = limited_fake(FakeGitHubOptions {
        app: Some(fake_app(4242, 77)),
        ..FakeGitHubOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let key = |name: &str| {
        format!(
            "{}/tests/fixtures/github-app/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    std::fs::write(
        &path,
        format!(
            "github:\n  base_url: {}\n  apps:\n    - name: first\n      app_id: 4242\n      installation_id: 77\n      private_key_file: {}\n    - name: gone\n      app_id: 4242\n      installation_id: 78\n      private_key_file: {}\nredis:\n  url: {}\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: octo-org\n    labels: [self-hosted, a]\n    backend: f\n",
            s.url(),
            key("app-key.pem"),
            key("app-key.pem"),
            redis.url
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(support::bin())
        .args(["--config", path.to_str().unwrap(), "-o", "json", "doctor"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a check failed");
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check `{name}`: {checks:?}"))
            .clone()
    };
    assert_eq!(row("github app first (octo-org)")["status"], "ok");
    let gone = row("github app gone (octo-org)");
    assert_eq!(gone["status"], "fail");
    let detail = gone["detail"].as_str().unwrap();
    assert!(
        detail.contains("GitHub App `gone`") && detail.contains("the other Apps keep serving"),
        "{detail}"
    );
    // The runners are still listed (with the App GitHub accepts).
    assert_eq!(row("forge runners (octo-org)")["status"], "ok");
    assert!(checks
        .iter()
        .any(|c| c["check"] == "api budget (app-4242-installation-77)" && c["status"] == "ok"));
}

#[tokio::test]
async fn gitea_s_calls_spend_the_same_shared_budget() {
    use runnerctl::forge::gitea::fake::{FakeGitea, FakeGiteaOptions};
    use runnerctl::forge::gitea::Gitea;
    let sim = FakeGitea::start(FakeGiteaOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: "gitea-token".into(),
        version: "1.24.0".into(),
        ..FakeGiteaOptions::default()
    })
    .await
    .unwrap();
    let redis = RedisServer::start();
    let budget = Arc::new(RedisBudget::lazy(redis.url.as_str().into()));
    let mut gitea = Gitea::new(&sim.url(), Secret::new("gitea-token"), "Gitea")
        .unwrap()
        .with_budget(budget, Limits::GITHUB);
    gitea.max_wait = Duration::from_secs(1);
    gitea.list_runners(&org()).await.unwrap();
    let meter = gitea.meters()[0];
    assert!(meter.credential.starts_with("gitea-"));
    meter
        .pause("GET /orgs/{owner}/actions/runners", Duration::from_secs(30))
        .await;
    let err = with_priority(Priority::Health, gitea.list_runners(&org()))
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::Deferred { .. }), "{err}");
}

#[tokio::test]
async fn a_limit_on_one_app_sends_the_call_to_another_at_once() {
    let s = limited_fake(FakeGitHubOptions {
        app: Some(fake_app(4242, 77)),
        other_apps: vec![fake_app(4343, 88)],
        ..FakeGitHubOptions::default()
    })
    .await;
    let apps = || {
        vec![
            ("first".to_string(), app(4242, 77, "app-key.pem")),
            ("second".to_string(), app(4343, 88, "app-key.pem")),
        ]
    };
    // With the budget and without it: the App that met the limit waits, the call does not.
    let redis = RedisServer::start();
    for budget in [true, false] {
        let mut gh = GitHub::with_apps(&s.url(), apps()).unwrap();
        if budget {
            gh = gh.with_budget(
                Arc::new(RedisBudget::lazy(redis.url.as_str().into())),
                Limits::GITHUB,
            );
        }
        // Both Apps have their installation token (the calls take turns).
        gh.list_runners(&org()).await.unwrap();
        gh.list_runners(&org()).await.unwrap();
        s.trouble(Trouble::SecondaryLimit { retry_after: 60 }, 1);
        let t = std::time::Instant::now();
        gh.list_runners(&org()).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    // A limit met by an App's installation-token request: the other App serves.
    let gh = GitHub::with_apps(&s.url(), apps()).unwrap();
    s.trouble(Trouble::SecondaryLimit { retry_after: 60 }, 1);
    let t = std::time::Instant::now();
    gh.list_runners(&org()).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
