//! The GitHub client against the project's fake GitHub.

mod support;

use runnerctl::config;
use runnerctl::forge::fake::{FakeApp, FakeGitHub, FakeGitHubOptions, Trouble};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::forge::{Deleted, ForgeError, Scope};
use runnerctl::manager::sync::{self, Action};
use std::time::{Duration, Instant};

const TOKEN: &str = "ghp_testtoken";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/github-app/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn sim(opts: FakeGitHubOptions) -> FakeGitHub {
    FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![(
            "octo-org".into(),
            vec!["octo-repo".into(), "octo-web".into(), "octo-api".into()],
        )],
        token: Some(TOKEN.into()),
        ..opts
    })
    .await
    .unwrap()
}

fn pat(sim: &FakeGitHub) -> GitHub {
    GitHub::new(&sim.url(), Auth::Token(config::Secret::new(TOKEN))).unwrap()
}

fn org() -> Scope {
    Scope::Org("octo-org".into())
}

#[tokio::test]
async fn runners_and_groups_are_read_page_by_page() {
    let s = sim(FakeGitHubOptions::default()).await;
    for i in 0..250 {
        s.add_runner(
            "orgs/octo-org",
            &format!("r{i:03}"),
            &["self-hosted", "linux"],
        );
    }
    for i in 0..120 {
        s.add_group("octo-org", &format!("g{i:03}"), "all");
    }
    let gh = pat(&s);
    let runners = gh.list_runners(&org()).await.unwrap();
    assert_eq!(runners.len(), 250);
    assert_eq!(runners[249].name, "r249");
    assert_eq!(runners[0].labels, ["self-hosted", "linux"]);
    let groups = gh.list_runner_groups("octo-org").await.unwrap();
    assert_eq!(groups.len(), 121, "120 and Default");
    let calls = s.requests();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.ends_with("/actions/runners"))
            .count(),
        3,
        "one call per 100 runners: {calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.ends_with("/runner-groups"))
            .count(),
        2
    );
    let rl = gh.rate_limit().expect("rate limit recorded");
    assert_eq!(rl.limit, 5000);
    assert_eq!(rl.used, 5);
    assert_eq!(rl.remaining, 4995);
}

#[tokio::test]
async fn app_installation_tokens_are_cached_and_renewed_before_they_expire() {
    let s = sim(FakeGitHubOptions {
        app: Some(FakeApp {
            app_id: 4242,
            installation_id: 77,
            public_key_pem: fixture("app-key.pub.pem"),
        }),
        // octocrab renews a token with less than 30 s left: 32 s makes the second request
        // after a short sleep need a new one.
        token_ttl: Duration::from_secs(32),
        ..FakeGitHubOptions::default()
    })
    .await;
    let app = |key: &str| {
        GitHub::new(
            &s.url(),
            Auth::App {
                app_id: 4242,
                installation_id: 77,
                private_key: config::Secret::new(fixture(key)),
            },
        )
        .unwrap()
    };
    let gh = app("app-key.pem");
    gh.list_runners(&org()).await.unwrap();
    gh.list_runners(&org()).await.unwrap();
    assert_eq!(s.token_requests(), 1, "the token is cached");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    gh.list_runners(&org()).await.unwrap();
    assert_eq!(s.token_requests(), 2, "renewed before it expired");

    // A key GitHub does not know: refused, and said so.
    let err = app("other-key.pem").list_runners(&org()).await.unwrap_err();
    assert!(matches!(err, ForgeError::Unauthorized(_)), "{err}");
    assert!(!err.is_transient());
    // A bad PEM is a configuration error before any request.
    let bad = GitHub::new(
        &s.url(),
        Auth::App {
            app_id: 1,
            installation_id: 1,
            private_key: config::Secret::new("not a key"),
        },
    );
    assert!(matches!(bad, Err(ForgeError::Config(_))));
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let s = sim(FakeGitHubOptions::default()).await;
    let gh = GitHub::new(&s.url(), Auth::Token(config::Secret::new("nope"))).unwrap();
    let err = gh.list_runners(&org()).await.unwrap_err();
    assert!(matches!(err, ForgeError::Unauthorized(_)), "{err}");
}

fn group(text: &str) -> config::RunnerGroup {
    let c = runnerctl::wiring::parse(
        &format!(
            "github:\n  token_env: T\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n{text}"
        ),
        "t",
    )
    .unwrap()
    .config;
    c.runner_groups[0].clone()
}

#[tokio::test]
async fn groups_sync_creates_updates_and_leaves_alone() {
    let s = sim(FakeGitHubOptions::default()).await;
    let gh = pat(&s);
    let by_hand = s.add_group("octo-org", "made-by-hand", "all");
    let g1 =
        group("  - name: linux\n    organization: octo-org\n    labels: [a]\n    backend: f\n");
    let g2 = group("  - name: private\n    organization: octo-org\n    labels: [b]\n    backend: f\n    selected_repositories: [octo-repo, octo-web]\n    allow_public_repositories: false\n    selected_workflows: [octo-org/octo-repo/.github/workflows/ci.yml@main]\n");
    let g3 = group("  - name: repo\n    organization: octo-org\n    repository: octo-api\n    labels: [c]\n    backend: f\n");
    let groups = vec![&g1, &g2, &g3];

    // Dry run: says what it would do, changes nothing.
    let before = s.groups().len();
    let rows = sync::sync(&gh, &groups, true, &|| {}).await;
    let actions: Vec<Action> = rows.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [Action::Create, Action::Create, Action::Repository]
    );
    assert_eq!(s.groups().len(), before);

    // For real.
    let rows = sync::sync(&gh, &groups, false, &|| {}).await;
    let actions: Vec<Action> = rows.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [Action::Create, Action::Create, Action::Repository]
    );
    let made = s.groups();
    let private = made.iter().find(|g| g.name == "private").unwrap();
    assert_eq!(private.visibility, "selected");
    assert!(!private.allows_public_repositories);
    assert!(private.restricted_to_workflows);
    let repo_ids: Vec<u64> = s
        .repos()
        .iter()
        .filter(|r| r.name == "octo-repo" || r.name == "octo-web")
        .map(|r| r.id)
        .collect();
    let mut have = private.repository_ids.clone();
    have.sort();
    assert_eq!(have, repo_ids);

    // Again: nothing to do.
    let rows = sync::sync(&gh, &groups, false, &|| {}).await;
    assert!(
        rows[..2].iter().all(|r| r.action == Action::Unchanged),
        "{rows:?}"
    );

    // Someone changed a group by hand: it is put back.
    let g2b = group("  - name: private\n    organization: octo-org\n    labels: [b]\n    backend: f\n    selected_repositories: [octo-repo]\n    allow_public_repositories: true\n");
    let rows = sync::sync(&gh, &[&g2b], false, &|| {}).await;
    assert_eq!(rows[0].action, Action::Update);
    assert_eq!(rows[0].changes.len(), 3, "{:?}", rows[0].changes);
    let private = s
        .groups()
        .into_iter()
        .find(|g| g.name == "private")
        .unwrap();
    assert_eq!(private.repository_ids.len(), 1);
    assert!(private.allows_public_repositories);
    assert!(!private.restricted_to_workflows);

    // A group runnerctl did not create is never deleted.
    assert!(s.groups().iter().any(|g| g.id == by_hand));
    assert!(!s.requests().iter().any(|r| r.starts_with("DELETE")));

    // A repository that does not exist is an error on that group only.
    let bad = group("  - name: ghost\n    organization: octo-org\n    repository: nope\n    labels: [d]\n    backend: f\n");
    let rows = sync::sync(&gh, &[&bad, &g1], false, &|| {}).await;
    assert_eq!(rows[0].action, Action::Error);
    assert_eq!(rows[1].action, Action::Unchanged);
}

#[tokio::test]
async fn rate_limits_are_waited_out_or_reported_with_the_reset_time() {
    let s = sim(FakeGitHubOptions::default()).await;
    let gh = pat(&s);
    s.trouble(Trouble::SecondaryLimit { retry_after: 1 }, 1);
    let t = Instant::now();
    assert_eq!(gh.list_runners(&org()).await.unwrap().len(), 0);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "waited for retry-after"
    );

    // The primary limit resets in an hour: too long to wait, returned with its reset time.
    s.trouble(Trouble::PrimaryLimit, 1);
    let err = gh.list_runners(&org()).await.unwrap_err();
    match err {
        ForgeError::RateLimited { reset_at, .. } => {
            assert!(reset_at > runnerctl::model::unix_now() + 3000)
        }
        other => panic!("{other}"),
    }
    assert!(gh.rate_limit().unwrap().remaining == 0);
}

#[tokio::test]
async fn jit_configs_conflicts_and_busy_runners() {
    let s = sim(FakeGitHubOptions::default()).await;
    let gh = pat(&s);
    let labels = vec!["self-hosted".to_string(), "demo".to_string()];
    let jit = gh
        .generate_jit_config(&org(), "rm-demo-1", 1, &labels, "_work")
        .await
        .unwrap();
    assert_eq!(jit.runner.name, "rm-demo-1");
    assert!(!jit.runner.online(), "offline until its process connects");
    assert!(format!("{jit:?}").contains("<redacted>"));
    // The same name again: GitHub answers 409.
    let err = gh
        .generate_jit_config(&org(), "rm-demo-1", 1, &labels, "_work")
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::Conflict(_)), "{err}");
    assert_eq!(s.runners().len(), 1, "one runner, not two");
    // Handled: the stale, offline registration is replaced by a fresh one.
    let req = runnerctl::forge::RunnerRequest {
        name: "rm-demo-1",
        runner_group_id: Some(1),
        labels: &labels,
        work_folder: "_work",
        app: None,
    };
    let again = match runnerctl::forge::register_runner(&gh, &org(), &req)
        .await
        .unwrap()
    {
        runnerctl::forge::Registration::Jit(jit) => jit,
        other => panic!("GitHub registers runners just in time: {other:?}"),
    };
    assert_ne!(again.runner.id, jit.runner.id);
    assert_eq!(s.runners().len(), 1, "still one runner");
    let jit = again;

    // It connects, takes a job: deleting it is refused while busy.
    assert_eq!(s.connect_runner(jit.encoded.expose()), Some(jit.runner.id));
    // An online runner of that name is never replaced.
    let err = runnerctl::forge::register_runner(&gh, &org(), &req)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is online"), "{err}");
    let r = gh.get_runner(&org(), jit.runner.id).await.unwrap().unwrap();
    assert!(r.online());
    s.set_busy(jit.runner.id, true);
    assert_eq!(
        gh.delete_runner(&org(), jit.runner.id).await.unwrap(),
        Deleted::Busy
    );
    s.set_busy(jit.runner.id, false);
    assert_eq!(
        gh.delete_runner(&org(), jit.runner.id).await.unwrap(),
        Deleted::Deleted
    );
    assert_eq!(
        gh.delete_runner(&org(), jit.runner.id).await.unwrap(),
        Deleted::NotFound
    );
    assert_eq!(gh.get_runner(&org(), jit.runner.id).await.unwrap(), None);

    // Repository scope and registration tokens.
    let repo = Scope::Repo {
        owner: "octo-org".into(),
        repo: "octo-repo".into(),
    };
    gh.generate_jit_config(&repo, "rm-repo-1", 1, &labels, "_work")
        .await
        .unwrap();
    assert_eq!(gh.list_runners(&repo).await.unwrap().len(), 1);
    assert!(gh.list_runners(&org()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_sync_and_list_from_the_command_line() {
    let s = sim(FakeGitHubOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "github:\n  base_url: {}\n  token_env: TEST_GH_TOKEN\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo-org\n    labels: [a]\n    backend: f\n  - name: web\n    organization: octo-org\n    labels: [b]\n    backend: f\n    selected_repositories: [octo-web]\n",
            s.url()
        ),
    )
    .unwrap();
    let run = |args: Vec<&'static str>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(support::bin())
                .arg("--config")
                .arg(&path)
                .args(&args)
                .env("TEST_GH_TOKEN", TOKEN)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
    };
    let (code, out, err) = run(vec!["groups", "sync", "--dry-run"]).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("create (dry run)"), "{out}");
    assert_eq!(s.groups().len(), 1, "dry run changed nothing");
    let (code, out, _) = run(vec!["-o", "json", "groups", "sync"]).await.unwrap();
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["action"], "create");
    assert_eq!(v["groups"][1]["action"], "create");
    let (code, out, _) = run(vec!["groups", "sync", "--group", "web"]).await.unwrap();
    assert_eq!(code, Some(0));
    assert!(out.contains("unchanged") && !out.contains("linux"), "{out}");
    let (code, out, _) = run(vec!["groups", "list"]).await.unwrap();
    assert_eq!(code, Some(0));
    assert!(
        out.contains("GITHUB") && out.contains("(selected)"),
        "{out}"
    );
    let (code, _, err) = run(vec!["groups", "sync", "--group", "nope"])
        .await
        .unwrap();
    assert_eq!(code, Some(2), "{err}");
}

#[tokio::test]
async fn github_enterprise_server_paths_keep_their_prefix() {
    let s = sim(FakeGitHubOptions::default()).await;
    let gh = GitHub::new(
        &format!("{}/api/v3", s.url()),
        Auth::Token(config::Secret::new(TOKEN)),
    )
    .unwrap();
    gh.generate_jit_config(&org(), "rm-ghes-1", 1, &["x".to_string()], "_work")
        .await
        .unwrap();
    assert_eq!(gh.list_runners(&org()).await.unwrap().len(), 1);
    let calls = s.requests();
    assert!(
        calls
            .iter()
            .all(|c| c.split_whitespace().nth(1).unwrap().starts_with("/api/v3/")),
        "{calls:?}"
    );
    assert_eq!(
        runnerctl::forge::github::web_url("https://ghe.example.com/api/v3"),
        "https://ghe.example.com"
    );
    assert_eq!(
        runnerctl::forge::github::web_url("https://api.github.com"),
        "https://github.com"
    );
}
