//! `runnerctl runners …` and `runnerctl healthcheck` as an operator runs them, against the fake
//! GitHub, a real Redis and the fake backend.

mod support;

use runnerctl::forge::sim::{Sim, SimOptions};
use std::path::PathBuf;
use support::{manager_name, RedisServer};

struct Setup {
    _redis: RedisServer,
    sim: Sim,
    config: PathBuf,
    _dir: tempfile::TempDir,
    name: String,
}

async fn setup(test: &str, extra_group: &str) -> Setup {
    let redis = RedisServer::start();
    let sim = Sim::start(SimOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("ghp_cli".into()),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name(test);
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ncleanup_grace: 0s\ngithub:\n  base_url: {}\n  token_env: CLI_GH_TOKEN\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: small\n    organization: octo-org\n    labels: [self-hosted, small]\n    backend: fake\n    max_runners: 3\n{extra_group}",
            sim.url(),
            redis.url
        ),
    )
    .unwrap();
    Setup {
        _redis: redis,
        sim,
        config,
        _dir: dir,
        name,
    }
}

async fn run(s: &Setup, args: &[&str]) -> (Option<i32>, String, String) {
    let config = s.config.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("CLI_GH_TOKEN", "ghp_cli")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_delete_and_capacity() {
    let s = setup("cli-runners", "").await;
    let (code, _, err) = run(&s, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");

    // Two runners, then more than max_runners allows: stops at 3, exit 1.
    let (code, out, err) = run(
        &s,
        &["runners", "create", "--group", "small", "--count", "2"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches("created ").count(), 2, "{out}");
    let (code, out, err) = run(&s, &["runners", "create", "-g", "small", "-n", "5"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out.matches("created ").count(), 1, "{out}");
    assert!(
        err.contains("is at max_runners (3 of 3): created 1 of 5"),
        "{err}"
    );
    assert_eq!(s.sim.runners().len(), 3);

    // The list shows GitHub's view beside ours (the fake backend's runners come online).
    let mut online = false;
    for _ in 0..50 {
        if s.sim.runners().iter().all(|r| r.online) {
            online = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(online);
    let (code, out, _) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(code, Some(0));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r["github_status"] == "online" && r["busy"] == false),
        "{rows:?}"
    );
    let (_, table, _) = run(
        &s,
        &["runners", "list", "--group", "small", "--status", "started"],
    )
    .await;
    assert!(
        table.starts_with(" NAME") && table.contains("GITHUB"),
        "{table}"
    );

    // A runner running a job is refused unless --force.
    let names: Vec<String> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    let busy = s
        .sim
        .runners()
        .into_iter()
        .find(|r| r.name == names[0])
        .unwrap();
    s.sim.set_busy(busy.id, true);
    let (code, out, _) = run(&s, &["runners", "delete", &names[0], &names[1]]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused: running a job") && out.contains("deleted"),
        "{out}"
    );
    let (code, _, _) = run(&s, &["runners", "delete", &names[0], "--force"]).await;
    assert_eq!(code, Some(0));
    let (code, out, _) = run(&s, &["runners", "delete", "--group", "small", "--all"]).await;
    assert_eq!(code, Some(0), "{out}");
    let (_, out, _) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(out.trim(), "[]");
    let (code, _, err) = run(&s, &["runners", "create", "--group", "nope"]).await;
    assert_eq!(code, Some(2), "{err}");
    let _ = &s.name;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_repairs_and_reports() {
    let s = setup(
        "cli-health",
        "  - name: ready\n    organization: octo-org\n    labels: [self-hosted, ready]\n    backend: fake\n    min_runners: 2\n    max_runners: 4\n",
    )
    .await;
    run(&s, &["groups", "sync"]).await;
    let (code, out, err) = run(&s, &["healthcheck"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("create") && out.contains("keep 2 idle runner(s)"),
        "{out}"
    );
    assert!(
        out.contains("requests left in this window"),
        "rate limit reported: {out}"
    );
    // A ghost: a runner of ours on GitHub with no record.
    s.sim.add_runner(
        "orgs/octo-org",
        &format!("{}-small-ghost0001", s.name),
        &["self-hosted", "small"],
    );
    let (code, out, err) = run(&s, &["healthcheck"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("delete_forge_runner") && out.contains("ghost0001"),
        "{out}"
    );
    assert!(!s.sim.runners().iter().any(|r| r.name.contains("ghost")));
    assert_eq!(
        s.sim
            .runners()
            .iter()
            .filter(|r| r.name.contains("-ready-"))
            .count(),
        2,
        "min_runners kept"
    );
    // Once healthy, a pass has nothing to do.
    let mut healthy = false;
    for _ in 0..20 {
        let (code, out, _) = run(&s, &["healthcheck", "--group", "ready"]).await;
        assert_eq!(code, Some(0));
        if out.contains("every group is healthy") || !out.contains("create") {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy);
    let (code, out, _) = run(&s, &["-o", "json", "healthcheck"]).await;
    assert_eq!(code, Some(0));
    assert!(serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_exits_3() {
    let s = setup("cli-noredis", "").await;
    let text = std::fs::read_to_string(&s.config).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("  url: redis") {
                "  url: redis://127.0.0.1:1/0"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&s.config, text).unwrap();
    let (code, _, err) = run(&s, &["runners", "list"]).await;
    assert_eq!(code, Some(3), "{err}");
}
