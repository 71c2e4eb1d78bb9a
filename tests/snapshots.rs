//! Snapshots (insta) of every command's human output, against a real Redis, the fake GitHub
//! and the fake backend, with what changes from run to run (names, times, ids, ports, paths)
//! filtered out. A change of output shows as a diff; accept it with
//! `INSTA_UPDATE=always cargo test --test snapshots` (or `cargo insta review`) and commit the
//! `.snap` files.

mod support;

use runnerctl::forge::fake::FakeGitHub;
use runnerctl::queue::{Queue, Task};
use support::RedisServer;

const TOKEN: &str = "ghp_snapshots";

fn run(path: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(path)
        .args(args)
        .env("SNAP_GH_TOKEN", TOKEN)
        .env("SNAP_SECRET", "a webhook secret of 32 bytes....")
        .env("NO_COLOR", "1")
        .env("RUNNERCTL_LOG", "off")
        .output()
        .unwrap();
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What differs between runs, as placeholders.
fn settings(manager: &str, dir: &std::path::Path, redis: &str, forge: &str) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    for (from, to) in [
        (regex::escape(&dir.display().to_string()), "[dir]"),
        (regex::escape(redis), "[redis]"),
        (regex::escape(forge), "[forge]"),
        (
            format!("{}-linux-[0-9a-z][0-9a-f]{{10}}", regex::escape(manager)),
            "[runner]",
        ),
        (regex::escape(manager), "[manager]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".into(), "[time]"),
        (r"\b1[789]\d{8}\b".into(), "[unix]"),
        (r"\b\d{13}-\d+\b".into(), "[entry]"),
        (r"\b[0-9a-f]{32}\b".into(), "[task-id]"),
        (
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b".into(),
            "[uuid]",
        ),
        (
            r"\d+ of \d+ requests left in this window, which resets in \d+m".into(),
            "[n] of [n] requests left in this window, which resets in [m]",
        ),
        (r"\b\d+(\.\d+)? ?(ms|s)\b".into(), "[duration]"),
        (r"[A-Za-z0-9+/]{60,}={0,2}".into(), "[base64]"),
    ] {
        s.add_filter(&from, to);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_s_human_output() {
    let sim = FakeGitHub::start(support::octo_org(TOKEN)).await.unwrap();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manager = support::manager_name("snap");
    let text = format!(
        "name: {manager}\ncleanup_grace: 0s\ngithub:\n  base_url: {}\n  token_env: SNAP_GH_TOKEN\nwebhook:\n  secret_env: SNAP_SECRET\nredis:\n  url: {}\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo-org\n    labels: [self-hosted, linux]\n    backend: f\n    max_runners: 3\n",
        sim.url(),
        redis.url
    );
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, &text).unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        text.replace(
            "max_runners: 3",
            "max_runners: 3\n    min_runners: 9\n    lables: [x]",
        ),
    )
    .unwrap();
    // A dead task for `tasks dead`, and one waiting.
    support::dead_task(&redis.url, &manager, "linux", "f: Capacity: none left").await;
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    let queue = Queue::new(conn, &manager, Default::default());
    queue
        .enqueue(
            Task::GroupHealthCheck {
                group: "linux".into(),
            },
            None,
        )
        .await
        .unwrap();

    let settings = settings(&manager, dir.path(), &redis.url, &sim.url());
    let steps: Vec<(&str, std::path::PathBuf, Vec<&str>)> = vec![
        (
            "config_validate_invalid",
            broken.clone(),
            vec!["config", "validate"],
        ),
        ("config_validate", path.clone(), vec!["config", "validate"]),
        ("config_show", path.clone(), vec!["config", "show"]),
        (
            "groups_list_before_sync",
            path.clone(),
            vec!["groups", "list"],
        ),
        (
            "groups_sync_dry_run",
            path.clone(),
            vec!["groups", "sync", "--dry-run"],
        ),
        ("groups_sync", path.clone(), vec!["groups", "sync"]),
        ("groups_list", path.clone(), vec!["groups", "list"]),
        (
            "runners_create_dry_run",
            path.clone(),
            vec!["runners", "create", "-g", "linux", "-n", "5", "--dry-run"],
        ),
        (
            "runners_create_full",
            path.clone(),
            vec!["runners", "create", "-g", "linux", "-n", "5"],
        ),
        ("runners_list", path.clone(), vec!["runners", "list"]),
        (
            "runners_bootstrap",
            path.clone(),
            vec!["runners", "bootstrap", "-g", "linux"],
        ),
        ("tasks_list", path.clone(), vec!["tasks", "list"]),
        ("tasks_dead", path.clone(), vec!["tasks", "dead"]),
        (
            "healthcheck_dry_run",
            path.clone(),
            vec!["healthcheck", "--dry-run"],
        ),
        (
            "runners_delete_dry_run",
            path.clone(),
            vec!["runners", "delete", "-g", "linux", "--all", "--dry-run"],
        ),
        (
            "runners_delete_without_terminal",
            path.clone(),
            vec!["runners", "delete", "-g", "linux", "--all"],
        ),
        ("doctor", path.clone(), vec!["doctor"]),
        ("healthcheck", path.clone(), vec!["healthcheck"]),
        ("healthcheck_healthy", path.clone(), vec!["healthcheck"]),
        (
            "runners_delete_unknown",
            path.clone(),
            vec!["runners", "delete", "no-such-runner"],
        ),
        (
            "runners_show_unknown",
            path.clone(),
            vec!["runners", "show", "no-such-runner"],
        ),
        (
            "config_example_head",
            path.clone(),
            vec!["config", "example"],
        ),
    ];
    for (name, file, args) in steps {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = argv.iter().map(String::as_str).collect();
            run(&file, &a)
        })
        .await
        .unwrap();
        if name == "config_example_head" {
            // The whole example is `tests/config.rs`'s; its opening is enough here.
            out = out.lines().take(12).collect::<Vec<_>>().join("\n");
        }
        settings.bind(|| insta::assert_snapshot!(name, out));
    }
    // A runner's story, by name (the one left after the health check, if any).
    let p = path.clone();
    let (name, shown) = tokio::task::spawn_blocking(move || {
        let made = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&p)
            .args(["-o", "name", "runners", "create", "-g", "linux"])
            .env("SNAP_GH_TOKEN", TOKEN)
            .output()
            .unwrap();
        let name = String::from_utf8_lossy(&made.stdout).trim().to_string();
        let shown = run(&p, &["runners", "show", &name]);
        (name, shown)
    })
    .await
    .unwrap();
    assert!(!name.is_empty());
    settings.bind(|| insta::assert_snapshot!("runners_show", shown));
}
