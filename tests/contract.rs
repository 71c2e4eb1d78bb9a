//! Contract check: every request the GitHub client makes and every answer the fake GitHub gives
//! is validated against GitHub's published OpenAPI description (npm `@octokit/openapi`) by
//! Stoplight Prism in proxy mode with `--errors`, which turns any violation into an error answer
//! that fails the call. `.ci/run` installs both under `.cache/contract` (ignored by git).
//! Likewise the Gitea client and the fake Gitea, against the part of Gitea's API description in
//! `shared/contracts/gitea/swagger.runners.json` (a 1.22-line release).

mod support;

use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeApp, FakeGitHub, FakeGitHubOptions};
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::prelude::*;
use runnerctl::forge::{Deleted, ForgeError, GroupSettings, Scope};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Prism {
    child: Child,
    log: PathBuf,
    url: String,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Prism at a time: two starting together on two cores each take minutes to load their
/// description, and a port picked free for one may be taken by the other's fake meanwhile.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start_prism(upstream: &str, dir: &std::path::Path) -> Prism {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/contract/node_modules");
    start_prism_with(
        &root.join("@octokit/openapi/generated/api.github.com.json"),
        upstream,
        dir,
    )
}

fn start_prism_with(spec: &std::path::Path, upstream: &str, dir: &std::path::Path) -> Prism {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/contract/node_modules");
    let prism = root.join(".bin/prism");
    assert!(
        prism.exists() && spec.exists(),
        "Prism and @octokit/openapi are missing: run .ci/run (it installs them under .cache/contract)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("prism.log");
    let child = Command::new(&prism)
        .args([
            "proxy",
            spec.to_str().unwrap(),
            upstream,
            "--errors",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.to_string())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("prism.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut p = Prism {
        child,
        log,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        // Listening, and by Prism itself (not a fake that took the port it was to have).
        let ready = std::fs::read_to_string(&p.log).is_ok_and(|l| l.contains("Prism is listening"));
        if ready && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return p;
        }
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!(
                "prism exited ({status}): {}",
                std::fs::read_to_string(dir.join("prism.err")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "prism did not start in time");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn key(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/github-app/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_and_the_fake_follow_githubs_openapi_description() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![(
            "octo-org".into(),
            vec!["octo-repo".into(), "octo-web".into()],
        )],
        token: Some("ghp_contract".into()),
        app: Some(FakeApp {
            app_id: 99,
            installation_id: 5,
            public_key_pem: key("app-key.pub.pem"),
        }),
        // Nothing listens there: the organization webhook's deliveries fail (status 0).
        webhook_url: Some("http://127.0.0.1:9/webhook".into()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    sim.queue_job("octo-org/octo-repo", &["self-hosted", "no-such-runner"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while sim.deliveries() == (0, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the fake made no delivery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let upstream = sim.url();
    let prism = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || start_prism(&upstream, &dir)
    })
    .await
    .unwrap();

    for auth in [
        Auth::Token(Secret::new("ghp_contract")),
        Auth::App {
            app_id: 99,
            installation_id: 5,
            private_key: Secret::new(key("app-key.pem")),
        },
    ] {
        let app = matches!(auth, Auth::App { .. });
        let gh = GitHub::new(&prism.url, auth).unwrap();
        let org = Scope::Org("octo-org".into());
        let repo = Scope::Repo {
            owner: "octo-org".into(),
            repo: "octo-repo".into(),
        };
        let suffix = if app { "app" } else { "pat" };

        // The webhooks `doctor` reads: the organization's, with its deliveries; the repository's.
        let hooks = gh.hooks(&org).await.expect("org hooks");
        assert_eq!(hooks.len(), 1, "{hooks:?}");
        assert!(hooks[0].sends_jobs() && hooks[0].active);
        let deliveries = gh
            .hook_deliveries(&org, hooks[0].id, 20)
            .await
            .expect("deliveries");
        assert!(
            !deliveries.is_empty() && !deliveries[0].ok(),
            "{deliveries:?}"
        );
        assert!(gh.hooks(&repo).await.expect("repo hooks").is_empty());

        let groups = gh
            .list_runner_groups("octo-org")
            .await
            .expect("list groups");
        assert!(groups.iter().any(|g| g.default));
        let repo_id = gh
            .repository_id("octo-org", "octo-web")
            .await
            .expect("repo id");
        let settings = GroupSettings {
            name: format!("contract-{suffix}"),
            visibility: "selected".into(),
            selected_repository_ids: vec![repo_id],
            allows_public_repositories: false,
            restricted_to_workflows: true,
            selected_workflows: vec!["octo-org/octo-repo/.github/workflows/ci.yml@main".into()],
        };
        let g = gh
            .create_runner_group("octo-org", &settings)
            .await
            .expect("create group");
        let updated = GroupSettings {
            allows_public_repositories: true,
            ..settings.clone()
        };
        gh.update_runner_group("octo-org", g.id, &updated)
            .await
            .expect("update group");
        assert_eq!(
            gh.runner_group_repository_ids("octo-org", g.id)
                .await
                .expect("group repos"),
            vec![repo_id]
        );

        let labels = vec!["self-hosted".to_string(), "contract".to_string()];
        for scope in [&org, &repo] {
            let name = format!("rm-contract-{suffix}-{}", scope.path().len());
            let jit = gh
                .generate_jit_config(scope, &name, 1, &labels, "_work")
                .await
                .expect("jit");
            let again = gh
                .generate_jit_config(scope, &name, 1, &labels, "_work")
                .await;
            assert!(matches!(again, Err(ForgeError::Conflict(_))), "{again:?}");
            let runners = gh.list_runners(scope).await.expect("list runners");
            assert!(runners.iter().any(|r| r.id == jit.runner.id));
            assert!(gh
                .get_runner(scope, jit.runner.id)
                .await
                .expect("get runner")
                .is_some());
            sim.set_busy(jit.runner.id, true);
            assert_eq!(
                gh.delete_runner(scope, jit.runner.id).await.unwrap(),
                Deleted::Busy
            );
            sim.set_busy(jit.runner.id, false);
            assert_eq!(
                gh.delete_runner(scope, jit.runner.id).await.unwrap(),
                Deleted::Deleted
            );
        }
    }

    let log = std::fs::read_to_string(&prism.log).unwrap_or_default();
    let violations: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.to_lowercase().contains("violation") && !l.contains("✖  error") && l.contains("error")
        })
        .collect();
    assert!(
        violations.is_empty(),
        "Prism reported violations:\n{}",
        violations.join("\n")
    );
    assert!(
        log.contains("generate-jitconfig"),
        "requests went through Prism:\n{log}"
    );
}

fn violations(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.to_lowercase().contains("violation") && !l.contains("✖  error") && l.contains("error")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitea_client_and_fake_follow_giteas_api_description() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use runnerctl::forge::gitea::fake::{FakeGitea, FakeGiteaOptions};
    use runnerctl::forge::gitea::Gitea;
    use runnerctl::forge::{Registration, RunnerRequest};
    // A copy of `shared/contracts/gitea/swagger.runners.json` (see its README beside it).
    let spec =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitea/swagger.runners.json");
    let sim = FakeGitea::start(FakeGiteaOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        user: ("alice".into(), vec![]),
        token: "gitea-contract".into(),
        version: "1.22.6".into(),
        ..FakeGiteaOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Prism serves the description's paths at the root (it ignores `basePath`).
    let upstream = format!("{}/api/v1", sim.url());
    let prism = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || start_prism_with(&spec, &upstream, &dir)
    })
    .await
    .unwrap();
    let gitea = Gitea::with_api_root(
        &prism.url,
        &sim.url(),
        Secret::new("gitea-contract"),
        "Gitea",
    )
    .unwrap();
    assert_eq!(gitea.version().await.expect("version").text, "1.22.6");
    let labels = vec!["linux".to_string()];
    for scope in [
        Scope::Instance,
        Scope::Org("octo-org".into()),
        Scope::User("alice".into()),
        Scope::Repo {
            owner: "octo-org".into(),
            repo: "app".into(),
        },
    ] {
        let r = gitea
            .register(
                &scope,
                &RunnerRequest {
                    name: "contract",
                    runner_group_id: None,
                    labels: &labels,
                    work_folder: "_work",
                    app: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{scope}: {e}"));
        assert!(matches!(r, Registration::Token(_)));
    }
    sim.queue_job("octo-org/app", &["linux"]);
    // The rest of what the description has, as the fake answers it.
    let addr: std::net::SocketAddr = prism.url.trim_start_matches("http://").parse().unwrap();
    let auth = ("Authorization", "token gitea-contract");
    let json = ("Content-Type", "application/json");
    let hook = br#"{"type":"gitea","config":{"url":"https://runnerctl.example.com/webhook","content_type":"json","secret":"s"},"events":["workflow_job"],"active":true}"#;
    for (method, path, body) in [
        ("GET", "/orgs/octo-org", &b""[..]),
        ("GET", "/repos/octo-org/app", b""),
        ("GET", "/repos/octo-org/app/actions/tasks", b""),
        ("POST", "/orgs/octo-org/hooks", hook),
        ("GET", "/orgs/octo-org/hooks", b""),
        ("POST", "/repos/octo-org/app/hooks", hook),
        ("GET", "/repos/octo-org/app/hooks", b""),
    ] {
        let (status, _, text) = tokio::task::spawn_blocking(move || {
            support::http(addr, method, path, &[auth, json], body)
        })
        .await
        .unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
    }
    let log = std::fs::read_to_string(&prism.log).unwrap_or_default();
    let found = violations(&log);
    assert!(
        found.is_empty(),
        "Prism reported violations:\n{}",
        found.join("\n")
    );
    assert!(
        log.contains("registration-token"),
        "requests went through Prism:\n{log}"
    );
}
