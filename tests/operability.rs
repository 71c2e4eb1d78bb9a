//! Operating it (issue 19), against a real Redis and the fake GitHub: `runnerctl doctor` (a
//! configuration that validates can still fail at run time; the doctor says where, one line
//! each), the worker creating missing runner groups at start, and `runners show` with a runner's
//! lineage and history.

mod support;

use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use serde_json::Value;
use support::RedisServer;

const TOKEN: &str = "ghp_doctortoken";

fn config(sim: &FakeGitHub, redis: &str) -> String {
    format!(
        "name: {}\ngithub:\n  base_url: {}\n  token_env: DOCTOR_GH_TOKEN\nwebhook:\n  secret_env: DOCTOR_SECRET\nredis:\n  url: {redis}\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo-org\n    labels: [self-hosted, linux]\n    backend: f\n",
        support::manager_name("doctor"),
        sim.url()
    )
}

/// The fake GitHub, a Redis and a configuration file for both.
async fn setup() -> (
    FakeGitHub,
    RedisServer,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let sim = FakeGitHub::start(support::octo_org(TOKEN)).await.unwrap();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config(&sim, &redis.url)).unwrap();
    (sim, redis, dir, path)
}

async fn doctor(
    path: &std::path::Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let path = path.to_path_buf();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&path)
            .args(&extra)
            .arg("doctor")
            .env_remove("DOCTOR_GH_TOKEN")
            .env_remove("DOCTOR_SECRET")
            .envs(env)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn status_of<'a>(report: &'a Value, check: &str) -> &'a str {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no check `{check}` in {report}"))["status"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_finds_what_fails_at_run_time() {
    let (_sim, redis, _dir, path) = setup().await;
    let secret = "a-webhook-secret-of-enough-length-1234";
    let env = [("DOCTOR_GH_TOKEN", TOKEN), ("DOCTOR_SECRET", secret)];

    // The secrets' variables unset: named, and the forge not asked.
    let (code, out, err) = doctor(&path, &[], &["-o", "json"]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status_of(&report, "secret github.token_env"), "fail");
    assert_eq!(status_of(&report, "secret webhook.secret_env"), "fail");
    assert_eq!(status_of(&report, "forge"), "skip");
    assert_eq!(status_of(&report, "config"), "ok");

    // Everything resolves, but the runner group is missing on GitHub.
    let (code, out, err) = doctor(&path, &env, &["-o", "json"]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status_of(&report, "secrets"), "ok");
    assert_eq!(status_of(&report, "forge runners (octo-org)"), "ok");
    assert_eq!(status_of(&report, "runner group linux"), "fail");
    assert!(out.contains("groups sync"), "{out}");
    assert_eq!(status_of(&report, "backend f"), "ok");
    // The tests' Redis keeps nothing on disk: said, but not a failure.
    assert_eq!(status_of(&report, "redis"), "warn");
    assert_eq!(status_of(&report, "clock"), "ok");

    // After `groups sync`, the doctor is content; the table has one line per check.
    let out = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(&path)
        .args(["groups", "sync"])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out, err) = doctor(&path, &env, &[]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("runner group linux") && out.contains("exists on octo-org"),
        "{out}"
    );

    // Redis gone: a failure naming it, exit 1; a wrong token: the forge fails.
    drop(redis);
    let (code, out, _) = doctor(
        &path,
        &[("DOCTOR_GH_TOKEN", "wrong"), ("DOCTOR_SECRET", secret)],
        &["-o", "json"],
    )
    .await;
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status_of(&report, "redis"), "fail");
    // The clock row was missing with Redis down: it is there, skipped.
    assert_eq!(status_of(&report, "clock"), "skip");
    assert_eq!(status_of(&report, "forge runners (octo-org)"), "fail");

    // An invalid file: exit 2, the config line says why.
    std::fs::write(&path, "runner_groups: 3\n").unwrap();
    let (code, out, _) = doctor(&path, &env, &[]).await;
    assert_eq!(code, Some(2));
    assert!(out.contains("config") && out.contains("fail"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_creates_missing_runner_groups_at_start_unless_told_not_to() {
    let (sim, _redis, _dir, path) = setup().await;
    let has_linux = || sim.groups().iter().any(|g| g.name == "linux");
    for (flag, expect) in [(Some("--no-sync-groups"), false), (None, true)] {
        let mut child = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&path)
            .arg("worker")
            .args(flag)
            .env("DOCTOR_GH_TOKEN", TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = false;
        for _ in 0..30 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            seen = has_linux();
            if seen {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen, expect, "{flag:?}");
    }
}

fn cli(path: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(path)
        .args(args)
        .env("DOCTOR_GH_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_show_tells_why_a_runner_exists_and_what_happened_to_it() {
    let (_sim, _redis, _dir, path) = setup().await;
    let p = path.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(&p, &["groups", "sync"]);
        cli(&p, &["-o", "name", "runners", "create", "--group", "linux"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let p = path.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&p, &["-o", "name", "runners", "list"]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let name = out.lines().next().expect("one runner").trim().to_string();
    let p = path.clone();
    let n = name.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&p, &["-o", "json", "runners", "show", &n]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["made"], "on request (runners create)");
    assert_eq!(v["record"]["group"], "linux");
    assert!(v["github"]["id"].is_u64(), "{v}");
    assert!(v["instance"]["id"].is_string(), "{v}");
    let events: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(&events[..3], ["reserved", "creating", "started"], "{v}");
    assert!(
        v["history"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("instance_id="),
        "{v}"
    );
    assert!(v["history"][0]["at"].as_str().unwrap().ends_with('Z'));

    // Deleted, it can still be looked up: no record, the history ends with its removal.
    let p = path.clone();
    let n = name.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(&p, &["runners", "delete", &n, "--yes"]);
        cli(&p, &["runners", "show", &n])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("record   none"), "{out}");
    assert!(out.lines().last().unwrap().contains("removed"), "{out}");
    let p = path.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || cli(&p, &["runners", "show", "nobody"]))
            .await
            .unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no runner `nobody`"), "{err}");
}

/// What the shell's completion script gets back from `COMPLETE=fish runnerctl -- WORDS…`.
fn complete(path: &std::path::Path, words: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(support::bin())
        .env("COMPLETE", "fish")
        .arg("--")
        .arg("runnerctl")
        .arg("--config")
        .arg(path)
        .args(words)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

/// Group names come from the configuration, runner names and dead task ids from Redis; with
/// Redis gone, a completion offers nothing rather than failing or hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_offers_groups_runners_and_dead_tasks() {
    let (_sim, redis, _dir, path) = setup().await;
    let p = path.clone();
    let names = tokio::task::spawn_blocking(move || {
        cli(&p, &["groups", "sync"]);
        cli(
            &p,
            &[
                "-o", "name", "runners", "create", "--group", "linux", "-n", "2",
            ],
        )
        .1
    })
    .await
    .unwrap();
    // `-o name` prints the names alone (regression: it printed "created NAME").
    let mut names: Vec<String> = names.lines().map(str::to_string).collect();
    assert!(names.iter().all(|n| !n.contains(' ')), "{names:?}");
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let manager = std::fs::read_to_string(&path).unwrap();
    let manager = manager
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("name: ")
        .to_string();
    // The id `tasks requeue` takes: the task's id, as `tasks dead` prints it.
    let id = support::dead_task(&redis.url, &manager, "linux", "no capacity").await;
    let p = path.clone();
    let prefix = names[0][..names[0].len() - 3].to_string();
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            complete(&p, &["runners", "create", "--group", ""]),
            ["linux"]
        );
        assert_eq!(complete(&p, &["healthcheck", "-g", "li"]), ["linux"]);
        assert!(complete(&p, &["healthcheck", "-g", "x"]).is_empty());
        let runners = |words: &[&str]| -> Vec<String> {
            complete(&p, words).into_iter().filter(|c| !c.starts_with('-')).collect()
        };
        assert_eq!(runners(&["runners", "delete", ""]), names);
        assert_eq!(complete(&p, &["runners", "show", &prefix]), names[..1]);
        assert_eq!(runners(&["tasks", "requeue", ""]), [id]);
        // Through real bash and the shipped script, runnerctl found on PATH.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/completions/runnerctl.bash");
        let bin_dir = support::bin().parent().unwrap().to_path_buf();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {script}; COMP_WORDS=(runnerctl --config {} runners show {prefix}); COMP_CWORD=5; COMP_TYPE=9; _clap_complete_runnerctl runnerctl {prefix}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                p.display()
            ))
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()))
            .output()
            .unwrap();
        let offered = String::from_utf8_lossy(&out.stdout);
        assert_eq!(offered.trim(), names[0], "{}", String::from_utf8_lossy(&out.stderr));
    })
    .await
    .unwrap();
    drop(redis);
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let offered = complete(&p, &["runners", "show", "t-"]);
        assert!(offered.iter().all(|o| !o.starts_with("t-")), "{offered:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    })
    .await
    .unwrap();
}

/// A receiver answering every request with `status`, counting them.
fn receiver(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

/// The doctor reads each scope's webhooks and their recent deliveries: none that sends
/// workflow_job is a warning, one whose deliveries fail is a warning naming the status, one
/// whose deliveries succeed is ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_checks_the_webhook_and_its_recent_deliveries() {
    let secret = "a webhook secret of 32 bytes....";
    let env = [("DOCTOR_GH_TOKEN", TOKEN), ("DOCTOR_SECRET", secret)];
    let webhook = |report: &Value| -> (String, String) {
        let c = report
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "webhook (octo-org)")
            .unwrap_or_else(|| panic!("no webhook check in {report}"))
            .clone();
        (
            c["status"].as_str().unwrap().into(),
            c["detail"].as_str().unwrap().into(),
        )
    };
    // No webhook at all.
    let (_sim, _redis, _dir, path) = setup().await;
    let (_, out, err) = doctor(&path, &env, &["-o", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let (status, detail) = webhook(&report);
    assert_eq!(status, "warn", "{detail}");
    assert!(
        detail.contains("no active webhook of octo-org sends workflow_job"),
        "{detail}"
    );

    for (answer, want) in [(502, "warn"), (200, "ok")] {
        let (url, seen) = receiver(answer);
        let sim = FakeGitHub::start(FakeGitHubOptions {
            webhook_url: Some(url.clone()),
            webhook_secret: secret.into(),
            ..support::octo_org(TOKEN)
        })
        .await
        .unwrap();
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, config(&sim, &redis.url)).unwrap();
        sim.queue_job("octo-org/app", &["self-hosted", "linux"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.load(std::sync::atomic::Ordering::SeqCst) == 0
            || sim.deliveries().0 + sim.deliveries().1 == 0
        {
            assert!(std::time::Instant::now() < deadline, "no delivery");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (_, out, err) = doctor(&path, &env, &["-o", "json"]).await;
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        let (status, detail) = webhook(&report);
        assert_eq!(status, want, "{detail}");
        assert!(detail.contains(&url), "{detail}");
        if answer == 502 {
            assert!(
                detail.contains("1 of the last 1 deliveries failed") && detail.contains("HTTP 502"),
                "{detail}"
            );
        } else {
            assert!(detail.contains("answered 2xx"), "{detail}");
        }
    }
}

/// Regression: the doctor built the fake backend without Redis, where it keeps its
/// instances, and reported none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_doctor_counts_the_fake_backend_s_instances() {
    let (_sim, _redis, _dir, path) = setup().await;
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        cli(&p, &["groups", "sync"]);
        cli(&p, &["runners", "create", "--group", "linux"]);
    })
    .await
    .unwrap();
    let env = [
        ("DOCTOR_GH_TOKEN", TOKEN),
        ("DOCTOR_SECRET", "a webhook secret of 32 bytes...."),
    ];
    let (_, out, err) = doctor(&path, &env, &["-o", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let backend = report
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "backend f")
        .unwrap();
    assert_eq!(
        backend["detail"], "fake reachable; 1 instance of ours",
        "{report}"
    );
}

/// Regression: with Redis down the fake backend said `ok, 0 instances` (its instances live in
/// Redis); a repository group's checks were labelled with its organization only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_doctor_skips_what_it_cannot_count_and_names_a_repository_s_scope() {
    let (_sim, mut redis, _dir, path) = setup().await;
    let text = std::fs::read_to_string(&path).unwrap()
        + "  - name: app\n    organization: octo-org\n    repository: app\n    labels: [self-hosted, app]\n    backend: f\n";
    std::fs::write(&path, text).unwrap();
    let env = [
        ("DOCTOR_GH_TOKEN", TOKEN),
        ("DOCTOR_SECRET", "a webhook secret of 32 bytes...."),
    ];
    let (_, out, err) = doctor(&path, &env, &["-o", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let checks: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"forge runners (octo-org/app)"),
        "{checks:?}"
    );
    assert!(checks.contains(&"webhook (octo-org/app)"), "{checks:?}");
    assert!(checks.contains(&"webhook (octo-org)"), "{checks:?}");

    redis.stop();
    let (code, out, err) = doctor(&path, &env, &["-o", "json"]).await;
    assert_eq!(code, Some(1), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    assert_eq!(status_of(&report, "redis"), "fail", "{report}");
    assert_eq!(status_of(&report, "clock"), "skip", "{report}");
    assert_eq!(status_of(&report, "backend f"), "skip", "{report}");
}

/// Issue 37: `doctor` compares each group's runner version with GitHub's minimum: below a
/// minimum that applies within 14 days, a warning with the days left; undeclared, a warning.
#[test]
fn doctor_warns_of_a_runner_version_below_github_s_coming_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let day = (chrono::Utc::now() + chrono::Duration::days(5))
        .format("%Y-%m-%d")
        .to_string();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "github:\n  base_url: http://127.0.0.1:9\n  token: t\n  min_runner_version: {{version: 2.329.0, from: {day}}}\nredis:\n  url: redis://127.0.0.1:9/0\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: old\n    organization: octo-org\n    labels: [old]\n    backend: fake\n    runner_version: 2.320.0\n  - name: unknown\n    organization: octo-org\n    labels: [unknown]\n    backend: fake\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(&path)
        .args(["doctor", "-o", "json"])
        .output()
        .unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {checks}"))
            .clone()
    };
    let old = find("runner version old");
    assert_eq!(old["status"], "warn", "{old}");
    let detail = old["detail"].as_str().unwrap();
    assert!(
        detail.contains("2.320.0 is below GitHub's minimum 2.329.0") && detail.contains("(5 days)"),
        "{detail}"
    );
    assert_eq!(find("runner version unknown")["status"], "warn");
}
