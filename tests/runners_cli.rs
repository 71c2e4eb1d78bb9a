//! `runnerctl runners …` and `runnerctl healthcheck` as an operator runs them, against the fake
//! GitHub, a real Redis and the fake backend.

mod support;

use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use std::path::PathBuf;
use support::{manager_name, RedisServer};

struct Setup {
    _redis: RedisServer,
    sim: FakeGitHub,
    config: PathBuf,
    _dir: tempfile::TempDir,
    name: String,
}

async fn setup(test: &str, extra_group: &str) -> Setup {
    let redis = RedisServer::start();
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("ghp_cli".into()),
        ..FakeGitHubOptions::default()
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
    run_with_token(s, "ghp_cli", args).await
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
    // Absolute RFC 3339 times beside ages.
    for r in rows {
        let at = r["created_at"].as_str().unwrap();
        let unix = runnerctl::model::parse_rfc3339(at).unwrap_or_else(|| panic!("{at}"));
        let age = r["age_secs"].as_u64().unwrap();
        let now = runnerctl::model::unix_now();
        assert!(now.abs_diff(unix + age) <= 5, "{at} + {age}s is not now");
    }
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
    let (code, out, _) = run(
        &s,
        &["runners", "delete", "--group", "small", "--all", "--yes"],
    )
    .await;
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
    let ghost = runnerctl::manager::matching::runner_name(&s.name, "small", "ghost");
    s.sim
        .add_runner("orgs/octo-org", &ghost, &["self-hosted", "small"]);
    // Named by the old rule, with no record: it may be another manager's whose name overlaps
    // ours (manager `NAME-small` with a group of ours): left alone.
    let overlap = format!("{}-small-ghost0001", s.name);
    s.sim
        .add_runner("orgs/octo-org", &overlap, &["self-hosted", "small"]);
    let (code, out, err) = run(&s, &["healthcheck"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("delete_forge_runner") && out.contains(&ghost),
        "{out}"
    );
    assert!(!out.contains("ghost0001"), "{out}");
    assert!(!s.sim.runners().iter().any(|r| r.name == ghost));
    assert!(s.sim.runners().iter().any(|r| r.name == overlap));
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

/// Rewrites one line of the setup's configuration.
fn edit_config(s: &Setup, starts: &str, with: &str) {
    let text = std::fs::read_to_string(&s.config).unwrap();
    let text = text
        .lines()
        .map(|l| if l.starts_with(starts) { with } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&s.config, text).unwrap();
}

async fn run_with_token(s: &Setup, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let (config, token) = (s.config.clone(), token.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("CLI_GH_TOKEN", token)
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

/// The documented contract: 2 when GitHub refuses the credentials (the configuration must
/// change), 3 when GitHub cannot be reached (try again later), each naming what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_exit_codes_follow_the_contract_for_forge_failures() {
    let s = setup("cli-exitcodes", "").await;
    let (code, _, err) = run(&s, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");

    // A GitHub 401 in `runners create` was exit 1.
    let (code, _, err) =
        run_with_token(&s, "ghp_wrong", &["runners", "create", "--group", "small"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refused the credentials"), "{err}");
    // Nothing was left holding a slot.
    let (code, out, err) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "[]");

    // GitHub unreachable was exit 1; the error names the URL.
    edit_config(&s, "  base_url:", "  base_url: http://127.0.0.1:1");
    for args in [
        &["runners", "create", "--group", "small"][..],
        &["healthcheck"][..],
    ] {
        let (code, _, err) = run(&s, args).await;
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(err.contains("http://127.0.0.1:1"), "{args:?}: {err}");
    }
    // The health check's row said `create 0 … failed` though nothing was attempted.
    let (_, out, _) = run(&s, &["-o", "json", "healthcheck"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["action"], "skip", "{rows}");
    assert_eq!(rows[0]["result"], "failed", "{rows}");
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("could not run"),
        "{rows}"
    );
}

/// A `rediss://` URL without TLS in the build made `worker` wait forever; now a URL the build
/// cannot use (here one that does not parse; `rediss://` works, tests/redis_tls.rs) is refused
/// by every command at once, naming the key, and `config validate` reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_redis_url_this_build_cannot_use_fails_at_once() {
    let s = setup("cli-rediss", "").await;
    edit_config(&s, "  url: redis", "  url: redis://127.0.0.1:99999/0");
    let started = std::time::Instant::now();
    let (code, _, err) = run(&s, &["worker"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("redis.url"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let (code, out, err) = run(&s, &["-o", "json", "config", "validate"]).await;
    assert_eq!(code, Some(2), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["path"], "redis.url", "{v}");
}

/// `config validate` checks what would fail at run time: an unset secret variable, an
/// unreadable secret file, each under the key that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_validate_checks_secrets_that_would_fail_at_run_time() {
    let s = setup("cli-preflight", "").await;
    // The token's variable unset.
    let config = s.config.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::bin())
            .args(["-o", "json", "--config"])
            .arg(&config)
            .args(["config", "validate"])
            .env_remove("CLI_GH_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0]["path"], "github.token_env", "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CLI_GH_TOKEN"),
        "{v}"
    );
    // A secret file that cannot be read.
    edit_config(
        &s,
        "  token_env:",
        "  token_file: /nonexistent/runnerctl-token",
    );
    let (code, out, _) = run(&s, &["-o", "json", "config", "validate"]).await;
    assert_eq!(code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"][0]["path"], "github.token_file", "{v}");
    // With the variable set, the same file is valid.
    edit_config(&s, "  token_file:", "  token_env: CLI_GH_TOKEN");
    let (code, _, err) = run(&s, &["config", "validate"]).await;
    assert_eq!(code, Some(0), "{err}");
}

/// `runners delete --group G --all` deleted every runner with no question asked: now it asks on
/// a terminal and, without one, refuses unless `--yes`; `--dry-run` on `runners delete` and
/// `healthcheck` shows what would happen and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_bulk_deletes_ask_first_and_dry_runs_change_nothing() {
    let s = setup("cli-bulk", "").await;
    let (code, _, err) = run(&s, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(
        &s,
        &["runners", "create", "--group", "small", "--count", "2"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let count = |out: &str| {
        serde_json::from_str::<serde_json::Value>(out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    // No terminal (the test's stdin is not one) and no --yes: refused, exit 2, nothing deleted.
    let (code, _, err) = run(&s, &["runners", "delete", "--group", "small", "--all"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--yes"), "{err}");
    let (_, out, _) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(count(&out), 2);
    // A dry run names each runner and deletes none.
    let (code, out, err) = run(
        &s,
        &[
            "-o",
            "json",
            "runners",
            "delete",
            "--group",
            "small",
            "--all",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan.as_array().unwrap().len(), 2);
    assert_eq!(plan[0]["result"], "would_delete", "{plan}");
    let (_, out, _) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(count(&out), 2);
    // The health check's dry run: min_runners 0 and two idle runners, so the plan deletes the
    // extras; nothing is carried out.
    let (code, out, err) = run(&s, &["-o", "json", "healthcheck", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{err}");
    let planned: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        planned
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "planned"),
        "{planned}"
    );
    let (_, out, _) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(count(&out), 2, "the dry run changed nothing");
    // `runners create --dry-run`: how many fit, none made.
    let (code, out, err) = run(
        &s,
        &[
            "-o",
            "json",
            "runners",
            "create",
            "--group",
            "small",
            "-n",
            "5",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["held"].as_u64(), v["would_create"].as_u64()),
        (Some(2), Some(1))
    );
    let (_, out, _) = run(&s, &["-o", "json", "runners", "list"]).await;
    assert_eq!(count(&out), 2);
    let (code, _, err) = run(
        &s,
        &["runners", "delete", "--group", "small", "--all", "-y"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
}

/// `healthcheck --dry-run` moved the lost-job scan's round-robin cursor, and recorded when it
/// first saw a ghost and the data marker: a dry run now writes nothing to Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthcheck_dry_run_writes_nothing_to_redis() {
    let s = setup("cli-dry", "").await;
    let (code, _, err) = run(&s, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&s, &["runners", "create", "--group", "small"]).await;
    assert_eq!(code, Some(0), "{err}");
    // A ghost (ours by name, no record) and a job queued on GitHub whose webhook never came.
    let ghost = runnerctl::manager::matching::runner_name(&s.name, "small", "dry-ghost");
    s.sim
        .add_runner("orgs/octo-org", &ghost, &["self-hosted", "small"]);
    s.sim.queue_job("octo-org/app", &["self-hosted", "small"]);
    // The manager's keys. The API budget's (`runnerctl-budget:*`) record the calls the dry run
    // really makes to GitHub, as every process's calls must be.
    let before = support::redis_dump(&s._redis.url, "runnerctl:*").await;
    for args in [
        vec!["healthcheck", "--dry-run"],
        vec!["-o", "json", "healthcheck", "--dry-run"],
        vec!["healthcheck", "--group", "small", "--dry-run"],
    ] {
        let (code, out, err) = run(&s, &args).await;
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
        assert!(out.contains(&ghost), "the ghost is planned for: {out}");
    }
    let after = support::redis_dump(&s._redis.url, "runnerctl:*").await;
    assert_eq!(before, after, "the dry run wrote to Redis");
    assert!(
        support::redis_dump(&s._redis.url, "runnerctl-budget:*")
            .await
            .contains("GET /orgs/{owner}/actions/runners"),
        "the dry run's listings were paid for"
    );
}

/// `runners create --count 5` made one runner after another (5 × boot) and printed the results
/// only at the end. Now they are made `--parallel` at a time, and each result line is printed
/// as soon as it is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_runners_create_makes_runners_at_once_and_prints_each_as_it_comes() {
    let s = setup("cli-parallel", "").await;
    edit_config(
        &s,
        "    kind: fake",
        "    kind: fake\n    create_latency: 2s",
    );
    let (code, _, err) = run(&s, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");

    // Three at once: their instances were all asked for before the first one was made.
    let (code, out, err) = run(&s, &["runners", "create", "-g", "small", "-n", "3"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches("created ").count(), 3, "{out}");
    assert!(
        out.lines().all(|l| l.ends_with('s') && l.contains(" in ")),
        "{out}"
    );
    let conn = runnerctl::store::connect(&s._redis.url).await.unwrap();
    let store = runnerctl::store::RedisStore::new(conn, &s.name);
    let requested: Vec<u64> = store
        .all_runners()
        .await
        .unwrap()
        .iter()
        .map(|r| r.requested_at.unwrap())
        .collect();
    let span = requested.iter().max().unwrap() - requested.iter().min().unwrap();
    assert!(span < 2, "requested over {span}s: one after another");
    let (code, _, err) = run(&s, &["runners", "delete", "-g", "small", "--all", "--yes"]).await;
    assert_eq!(code, Some(0), "{err}");

    // One at a time: the first line is printed while the others are still being made.
    let mut child = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(&s.config)
        .args([
            "runners",
            "create",
            "-g",
            "small",
            "-n",
            "3",
            "--parallel",
            "1",
        ])
        .env("CLI_GH_TOKEN", "ghp_cli")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first, running) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        let running = child.try_wait().unwrap().is_none();
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        assert!(child.wait().unwrap().success());
        assert_eq!(rest.len(), 2, "{rest:?}");
        (first, running)
    })
    .await
    .unwrap();
    assert!(first.starts_with("created "), "{first}");
    assert!(
        running,
        "the first result came only when everything was done"
    );
}

/// `runners create` of a fake group behind a broker nobody answers at waited `time_to_start`
/// (10 minutes): the stand-in's fetch hook, still retrying, held the runtime and the output
/// pipes. A command that has answered exits; what it left in the background dies with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_command_does_not_wait_for_the_work_it_leaves_behind() {
    use base64::Engine;
    let s = setup("cli-background", "").await;
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    edit_config(
        &s,
        "backends:",
        &format!("time_to_start: 10m\nbroker:\n  url: https://127.0.0.1:1\n  listen: 127.0.0.1:0\n  key: {key}\nbackends:"),
    );
    let (code, _, err) = run(&s, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");
    let started = std::time::Instant::now();
    let (code, out, err) = run(&s, &["runners", "create", "-g", "small"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("created "), "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "returned after {:?}",
        started.elapsed()
    );
}
