//! The Gitea forge: the client against the fake Gitea (Gitea 1.24 and a 1.22-line release), the
//! webhook scheme with both header styles, registration tokens replaced after use, and the whole
//! cycle end to end on the fake backend: signed deliveries to `serve`, two workers, runners that
//! register with a token fetched from the credential broker, any idle runner taking any job,
//! lost deliveries recovered by the health check, nothing left at the end.

mod support;

use runnerctl::config::Secret;
use runnerctl::forge::gitea::fake::{FakeGitea, FakeGiteaOptions, FakeGiteaRunner, GiteaJobStatus};
use runnerctl::forge::gitea::{label_name, webhook, Gitea, Version};
use runnerctl::forge::prelude::*;
use runnerctl::forge::{
    Deleted, ForgeError, Registration, RunnerRequest, Scope, WebhookEvent, WebhookScheme,
};
use runnerctl::queue::{Queue, QueueOptions};
use runnerctl::server::{self, State};
use runnerctl::store::{self, RedisStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{manager_name, RedisServer};

const TOKEN: &str = "gitea-test-token";

async fn sim(version: &str) -> FakeGitea {
    FakeGitea::start(FakeGiteaOptions {
        orgs: vec![("octo-org".into(), vec!["app".into(), "web".into()])],
        user: ("alice".into(), vec!["dotfiles".into()]),
        token: TOKEN.into(),
        version: version.into(),
        ..FakeGiteaOptions::default()
    })
    .await
    .unwrap()
}

fn client(sim: &FakeGitea) -> Gitea {
    Gitea::new(&sim.url(), Secret::new(TOKEN), "Gitea").unwrap()
}

fn req<'a>(name: &'a str, labels: &'a [String]) -> RunnerRequest<'a> {
    RunnerRequest {
        name,
        runner_group_id: None,
        labels,
        work_folder: "_work",
        app: None,
    }
}

fn token_of(r: Registration) -> String {
    match r {
        Registration::Token(t) => t.expose().to_string(),
        Registration::Jit(_) => panic!("Gitea hands out tokens"),
    }
}

fn scopes() -> Vec<Scope> {
    vec![
        Scope::Instance,
        Scope::Org("octo-org".into()),
        Scope::User("alice".into()),
        Scope::Repo {
            owner: "octo-org".into(),
            repo: "app".into(),
        },
    ]
}

#[test]
fn versions_of_gitea_and_forgejo_are_read() {
    let v = Version::parse("1.24.2").unwrap();
    assert!(v.has_runner_api());
    assert!(!Version::parse("1.22.6").unwrap().has_runner_api());
    // Forgejo reports the Gitea release it is compatible with.
    let f = Version::parse("10.0.1+gitea-1.22.0").unwrap();
    assert_eq!(f.gitea, (1, 22));
    assert!(Version::parse("1.25.0-dev-123-gabc")
        .unwrap()
        .has_runner_api());
    assert!(Version::parse("not a version").is_none());
    assert_eq!(label_name("ubuntu-22.04:docker://node:20"), "ubuntu-22.04");
}

#[test]
fn status_follows_last_seen_times() {
    let now = Instant::now();
    let r = |online: Option<u64>, active: Option<u64>| FakeGiteaRunner {
        id: 1,
        uuid: String::new(),
        scope: "admin".into(),
        name: "r".into(),
        labels: vec![],
        ephemeral: true,
        alive: true,
        last_online: online.map(|s| now - Duration::from_secs(s)),
        last_active: active.map(|s| now - Duration::from_secs(s)),
        job: None,
    };
    assert_eq!(r(None, None).status(now), "offline");
    assert_eq!(r(Some(61), Some(1)).status(now), "offline");
    assert_eq!(r(Some(5), Some(11)).status(now), "idle");
    assert_eq!(r(Some(5), None).status(now), "idle");
    assert_eq!(r(Some(1), Some(2)).status(now), "active");
}

#[tokio::test]
async fn the_client_speaks_gitea_1_24_at_every_scope() {
    let sim = sim("1.24.0").await;
    let gitea = client(&sim);
    let labels = vec!["linux".to_string()];
    for scope in scopes() {
        let first = token_of(gitea.register(&scope, &req("r1", &labels)).await.unwrap());
        // Reusable until replaced.
        let again = token_of(gitea.register(&scope, &req("r2", &labels)).await.unwrap());
        assert_eq!(first, again, "{scope}");
        assert!(gitea.replace_registration_token(&scope).await.unwrap());
        let new = token_of(gitea.register(&scope, &req("r3", &labels)).await.unwrap());
        assert_ne!(first, new, "{scope}: the token was replaced");
        assert_eq!(sim.replacements(&scope.path()), 1);
        // A runner registers with the token and is listed, read and deleted at its scope.
        let url = sim.url();
        assert!(
            !runnerctl::forge::gitea::fake::register_stand_in(&url, &first, "stale", "linux").await,
            "a replaced token is refused"
        );
        assert!(
            runnerctl::forge::gitea::fake::register_stand_in(&url, &new, "fresh", "linux:host")
                .await
        );
        let listed = gitea.list_runners(&scope).await.unwrap();
        assert_eq!(listed.len(), 1, "{scope}: {listed:?}");
        let r = &listed[0];
        assert_eq!(
            (r.name.as_str(), r.labels.clone()),
            ("fresh", vec!["linux".to_string()])
        );
        assert_eq!(
            gitea.get_runner(&scope, r.id).await.unwrap().unwrap().name,
            "fresh"
        );
        assert_eq!(
            gitea.delete_runner(&scope, r.id).await.unwrap(),
            Deleted::Deleted
        );
        assert_eq!(
            gitea.delete_runner(&scope, r.id).await.unwrap(),
            Deleted::NotFound
        );
        assert!(gitea.get_runner(&scope, r.id).await.unwrap().is_none());
    }
    // Repositories of an organization, and of a user.
    assert_eq!(
        gitea.repositories("octo-org").await.unwrap(),
        ["app", "web"]
    );
    assert_eq!(gitea.repositories("alice").await.unwrap(), ["dotfiles"]);
    // Waiting jobs, for lost-delivery recovery.
    let id = sim.queue_job("octo-org/app", &["linux", "ubuntu-22.04:docker://node:20"]);
    let jobs = gitea.queued_jobs("octo-org", "app", 5).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, id);
    assert_eq!(jobs[0].labels, ["linux", "ubuntu-22.04"]);
    // No runner groups on Gitea.
    assert!(gitea.groups().is_none());
}

#[tokio::test]
async fn older_releases_use_the_old_token_paths_and_say_what_needs_1_24() {
    let sim = sim("1.22.6").await;
    let gitea = client(&sim);
    let labels = vec!["linux".to_string()];
    for scope in scopes() {
        gitea.register(&scope, &req("r", &labels)).await.unwrap();
        assert!(!gitea.replace_registration_token(&scope).await.unwrap());
    }
    let requests = sim.requests();
    for path in [
        "GET /api/v1/admin/runners/registration-token",
        "GET /api/v1/repos/octo-org/app/runners/registration-token",
        "GET /api/v1/orgs/octo-org/actions/runners/registration-token",
        "GET /api/v1/user/actions/runners/registration-token",
    ] {
        assert!(requests.iter().any(|r| r == path), "{path} in {requests:?}");
    }
    match gitea.list_runners(&Scope::Org("octo-org".into())).await {
        Err(ForgeError::Unsupported(why)) => {
            assert!(why.contains("1.24") && why.contains("1.22.6"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(gitea
        .queued_jobs("octo-org", "app", 5)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn bad_tokens_and_rate_limits_are_told_apart() {
    let sim = sim("1.24.0").await;
    let wrong = Gitea::new(&sim.url(), Secret::new("wrong"), "Gitea").unwrap();
    let scope = Scope::Org("octo-org".into());
    match wrong.list_runners(&scope).await {
        Err(ForgeError::Unauthorized(why)) => assert!(why.contains("/api/v1/"), "{why}"),
        other => panic!("{other:?}"),
    }
    let gitea = client(&sim);
    gitea.version().await.unwrap();
    sim.too_many_requests(2);
    let started = Instant::now();
    gitea.list_runners(&scope).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "429s waited out"
    );
    let missing = Scope::Org("nobody".into());
    assert!(matches!(
        gitea.list_runners(&missing).await,
        Err(ForgeError::NotFound(_))
    ));
    // An unreachable instance is named.
    let gone = Gitea::new("http://127.0.0.1:9", Secret::new(TOKEN), "Gitea").unwrap();
    match gone.version().await {
        Err(e @ ForgeError::Unavailable(_)) => {
            assert!(e.to_string().contains("http://127.0.0.1:9/api/v1"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn webhooks_verify_with_either_header_style_and_name_labels() {
    let body = serde_json::json!({
        "action": "queued",
        "workflow_job": { "id": 7, "run_id": 3, "labels": ["ubuntu-22.04:docker://node:20", "linux"] },
        "repository": { "full_name": "octo-org/app", "private": false },
    })
    .to_string();
    let secret = b"a-webhook-secret-of-length";
    let hex = webhook::sign(secret, body.as_bytes());
    let scheme = &webhook::GITEA;
    assert!(scheme.verify(secret, body.as_bytes(), Some(&hex)));
    assert!(scheme.verify(secret, body.as_bytes(), Some(&format!("sha256={hex}"))));
    assert!(!scheme.verify(secret, body.as_bytes(), None));
    assert!(!scheme.verify(b"another-secret-entirely", body.as_bytes(), Some(&hex)));
    assert_eq!(
        scheme.alternate_headers(),
        Some(["X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"])
    );
    match scheme.parse("workflow_job", body.as_bytes()).unwrap() {
        WebhookEvent::Job(j) => {
            assert_eq!(j.labels, ["ubuntu-22.04", "linux"]);
            assert_eq!((j.job_id, j.repository.as_str()), (7, "octo-org/app"));
        }
        other => panic!("{other:?}"),
    }
}

/// A raw POST to `serve` with the given headers; the status.
fn post(addr: std::net::SocketAddr, headers: &[(&str, &str)], body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_gitea_deliveries_in_both_header_styles() {
    let redis = RedisServer::start();
    let name = manager_name("gitea-serve");
    let text = format!(
        "name: {name}\nforge: gitea\ngitea:\n  url: http://127.0.0.1:1\n  token_env: UNUSED\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [linux]\n    backend: fake\n",
        redis.url
    );
    let config = runnerctl::wiring::parse(&text, "t").unwrap().config;
    let secret = "gitea-serve-secret-long";
    let state = Arc::new(State::new(
        runnerctl::wiring::webhook_scheme(&config),
        Secret::new(secret),
        &name,
        config.runner_groups.clone(),
        &redis.url,
        QueueOptions::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, None, state, async {
        let _ = stopped.await;
    }));
    let body = |id: u64| {
        serde_json::json!({
            "action": "queued",
            "workflow_job": { "id": id, "run_id": 1, "labels": ["linux"] },
            "repository": { "full_name": "octo-org/app", "private": false },
        })
        .to_string()
    };
    let codes = tokio::task::spawn_blocking(move || {
        let b1 = body(1);
        let sig = webhook::sign(secret.as_bytes(), b1.as_bytes());
        let gitea = post(
            addr,
            &[
                ("X-Gitea-Event", "workflow_job"),
                ("X-Gitea-Delivery", "d-1"),
                ("X-Gitea-Signature", &sig),
            ],
            &b1,
        );
        let b2 = body(2);
        let sig = format!("sha256={}", webhook::sign(secret.as_bytes(), b2.as_bytes()));
        let github = post(
            addr,
            &[
                ("X-GitHub-Event", "workflow_job"),
                ("X-GitHub-Delivery", "d-2"),
                ("X-Hub-Signature-256", &sig),
            ],
            &b2,
        );
        let b3 = body(3);
        let forged = post(
            addr,
            &[
                ("X-Gitea-Event", "workflow_job"),
                ("X-Gitea-Delivery", "d-3"),
                ("X-Gitea-Signature", &"0".repeat(64)),
            ],
            &b3,
        );
        (gitea, github, forged)
    })
    .await
    .unwrap();
    assert_eq!(codes, (202, 202, 401));
    let _ = stop.send(());
    let _ = served.await;
}

/// End to end on the fake backend, with the credential broker: every job runs, tokens reach
/// runners only through the broker, a used token is replaced, nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_end_to_end_on_gitea() {
    end_to_end("gitea-e2e", "1.24.0", 0.1).await;
}

/// Gitea before 1.24 (no runner API): jobs still run from webhooks alone, health checks work
/// from the records and the backend without failing or deleting on a guess, nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_gitea_before_1_24_from_webhooks() {
    end_to_end("gitea-old", "1.22.6", 0.0).await;
}

async fn end_to_end(test: &str, version: &str, drop_webhooks: f64) {
    let modern = Version::parse(version).unwrap().has_runner_api();
    let redis = RedisServer::start();
    let name = manager_name(test);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    let secret = "gitea-e2e-webhook-secret";
    let sim = FakeGitea::start(FakeGiteaOptions {
        orgs: vec![("octo-org".into(), vec!["app".into(), "web".into()])],
        token: TOKEN.into(),
        webhook_url: Some(format!("http://{serve_addr}/webhook")),
        webhook_secret: secret.into(),
        job_duration: Duration::from_millis(50),
        drop_webhooks,
        any_idle_runner: true,
        repeat: 0.05,
        version: version.into(),
        ..FakeGiteaOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (broker, broker_port) = support::broker_section(dir.path());
    let text = format!(
        "name: {name}\nforge: gitea\ngitea:\n  url: {}\n  token_env: UNUSED\n  token_rotation: 1m\nredis:\n  url: {}\ntime_to_start: 30s\n{broker}backends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: small\n    organization: octo-org\n    labels: [linux, small]\n    backend: fake\n    max_runners: 3\n  - name: web\n    organization: octo-org\n    repository: web\n    labels: [linux, web]\n    backend: fake\n    max_runners: 2\n",
        sim.url(),
        redis.url
    );
    let config = Arc::new(runnerctl::wiring::parse(&text, "t").unwrap().config);
    let options = QueueOptions {
        visibility_timeout: Duration::from_secs(2),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
        max_attempts: 30,
        ..QueueOptions::default()
    };
    let brk =
        runnerctl::wiring::broker_endpoint(&config, &store::connect(&redis.url).await.unwrap())
            .await
            .unwrap()
            .unwrap();
    let brk_listener = tokio::net::TcpListener::bind(("127.0.0.1", broker_port))
        .await
        .unwrap();
    tokio::spawn(runnerctl::broker::endpoint::serve(
        brk_listener,
        brk.tls,
        brk.endpoint,
        std::future::pending(),
    ));
    let fleet = support::start_fleet(
        listener,
        support::FleetSpec {
            config: config.clone(),
            target: (&redis.url).into(),
            forge: Arc::new(client(&sim)),
            secret: secret.into(),
            options: options.clone(),
            workers: 2,
            durability: None,
        },
    )
    .await;
    let queue = Queue::new(store::connect(&redis.url).await.unwrap(), &name, options);
    let store = RedisStore::new(store::connect(&redis.url).await.unwrap(), &name);
    const JOBS: usize = 40;
    for i in 0..JOBS {
        if i % 2 == 0 {
            sim.queue_job("octo-org/app", &["linux", "small"]);
        } else {
            sim.queue_job("octo-org/web", &["linux:host", "web"]);
        }
    }
    let start = Instant::now();
    let mut slot = 0;
    loop {
        let done = sim
            .jobs()
            .iter()
            .filter(|j| j.status == GiteaJobStatus::Success)
            .count();
        let left = store.all_runners().await.unwrap().len();
        if done == JOBS && left == 0 && sim.runners().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{done} of {JOBS} done, {left} records left, Gitea runners {:?}, dead {:?}",
            sim.runners()
                .iter()
                .map(|r| (&r.name, r.alive, r.job))
                .collect::<Vec<_>>(),
            queue.dead().await.unwrap()
        );
        slot += 1;
        if slot % 5 == 0 {
            support::health_checks(&queue, &["small", "web"], slot).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every runner registered at its group's scope, through a token redeemed at the broker;
    // used tokens were replaced once nobody registered with them.
    let regs = sim.registrations();
    assert!(regs.len() >= JOBS, "{regs:?}");
    assert!(regs.iter().all(
        |(n, scope, _)| (n.contains("-small-") && scope == "orgs/octo-org")
            || (n.contains("-web-") && scope == "repos/octo-org/web")
    ));
    if modern {
        // A scope whose token was in use until the last job replaces it at the first health
        // check after that (a fast run can end before one came).
        let deadline = Instant::now() + Duration::from_secs(30);
        while sim.replacements("orgs/octo-org") == 0 || sim.replacements("repos/octo-org/web") == 0
        {
            assert!(
                Instant::now() < deadline,
                "tokens not replaced once nobody registered: org {}, repo {}",
                sim.replacements("orgs/octo-org"),
                sim.replacements("repos/octo-org/web")
            );
            slot += 1;
            support::health_checks(&queue, &["small", "web"], slot).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        // A health pass works without the runner API, saying what it cannot see.
        let conn = store::connect(&redis.url).await.unwrap();
        let forge: Arc<dyn Forge> = Arc::new(client(&sim));
        let m = runnerctl::wiring::manager_with(config.clone(), conn, forge, None)
            .await
            .unwrap();
        let rows = m.health_check(&config.runner_groups[0]).await.unwrap();
        assert!(
            rows.iter()
                .all(|r| !matches!(r.result, runnerctl::manager::HealthResult::Failed(_))),
            "{rows:?}"
        );
    }
    // No registration token in clear in Redis at any point we can see.
    let dump = support::redis_dump(&redis.url, "*").await;
    for scope in ["orgs/octo-org", "repos/octo-org/web"] {
        let token = sim.token(scope);
        assert!(!dump.contains(&token), "a registration token sits in Redis");
    }
    fleet.stop().await;
}
