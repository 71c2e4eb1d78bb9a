//! Metrics as an operator scrapes them: `serve` (on `webhook.metrics_listen`) and `worker` (on
//! `worker.metrics_listen`) after a job ran, as separate processes. Every metric the shipped
//! Grafana dashboard and Prometheus alert rules (`contrib/monitoring/`) use exists in one of
//! them, and the names follow Prometheus' conventions.

mod support;

use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> Option<String> {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::net::TcpStream::connect(addr).ok()?;
    let (status, _, body) = support::http(addr, "GET", "/metrics", &[], b"");
    (status == 200).then_some(body)
}

/// The metric families a scrape declares (`# TYPE name kind`), with their kinds.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect()
}

/// Every `runnerctl_…` name in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("runnerctl_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alerts_use_only_metrics_that_exist() {
    let redis = support::RedisServer::start();
    let (web, serve_metrics, worker_metrics) = (free_port(), free_port(), free_port());
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        token: Some("t".into()),
        webhook_url: Some(format!("http://127.0.0.1:{web}/webhook")),
        webhook_secret: "metrics-webhook-secret".into(),
        job_duration: Duration::from_millis(100),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (broker, _) = support::broker_section(dir.path());
    let name = support::manager_name("metrics");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ngithub:\n  base_url: {}\n  token_env: GH\nredis:\n  url: {}\nwebhook:\n  listen: 127.0.0.1:{web}\n  metrics_listen: 127.0.0.1:{serve_metrics}\n  secret_env: HOOK\nworker:\n  metrics_listen: 127.0.0.1:{worker_metrics}\n{broker}backends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n",
            sim.url(),
            redis.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| spawn(&config, args);
    assert!(run(&["groups", "sync"]).wait().unwrap().success());
    let mut serve = run(&["serve"]);
    let mut worker = run(&["worker"]);
    let up = support::eventually(Duration::from_secs(20), || async {
        (scrape(serve_metrics).is_some() && scrape(worker_metrics).is_some()).then_some(())
    })
    .await;
    assert!(up.is_some(), "both serve /metrics");
    let job = sim.queue_job("octo-org/app", &["self-hosted", "g"]);
    let start = Instant::now();
    while !sim
        .jobs()
        .iter()
        .any(|j| j.id == job && j.status == JobStatus::Completed)
    {
        assert!(start.elapsed() < Duration::from_secs(60), "the job ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let serve_text = scrape(serve_metrics).unwrap();
    let worker_text = scrape(worker_metrics).unwrap();
    let _ = serve.kill();
    let _ = worker.kill();
    let _ = serve.wait();
    let _ = worker.wait();

    // Prometheus' own linter accepts both expositions (Debian's prometheus package: .ci/run).
    for text in [&serve_text, &worker_text] {
        let (ok, said) = promtool(&["check", "metrics"], Some(text));
        assert!(ok, "promtool check metrics: {said}\n{text}");
    }

    assert!(
        worker_text.contains("runnerctl_worker_up 1"),
        "{worker_text}"
    );
    // The runner's JIT configuration was paid for from the shared API budget, at job priority.
    assert!(
        worker_text.contains("runnerctl_api_points_total{credential=\"token-")
            && worker_text.contains(
                "class=\"POST /orgs/{owner}/actions/runners/generate-jitconfig\",priority=\"job\"} 5"
            ),
        "{worker_text}"
    );
    assert!(
        worker_text.contains("runnerctl_api_in_flight{credential=\"token-"),
        "{worker_text}"
    );
    assert!(
        worker_text.contains("runnerctl_tasks_total{kind=\"job_queued\",outcome=\"done\"}"),
        "{worker_text}"
    );
    assert!(
        worker_text.contains("runnerctl_runner_create_duration_seconds_count{group=\"g\"} 1"),
        "{worker_text}"
    );
    assert!(
        worker_text.contains("runnerctl_queue_tasks{state=\"dead\"} 0"),
        "{worker_text}"
    );
    // The job's wait, queued to in_progress, by its group and its runner's source (made for
    // it after it was queued: cold).
    assert!(
        worker_text.contains("runnerctl_job_wait_seconds_count{group=\"g\",source=\"cold\"} 1"),
        "{worker_text}"
    );
    // Backend calls by operation and outcome (the create of the job's runner at least).
    assert!(
        worker_text.contains(
            "runnerctl_backend_calls_total{backend=\"fake\",kind=\"fake\",operation=\"create\",outcome=\"ok\"}"
        ),
        "{worker_text}"
    );
    assert!(
        worker_text.contains("# TYPE runnerctl_backend_errors_total counter"),
        "{worker_text}"
    );
    assert!(
        serve_text.contains("runnerctl_runners{group=\"g\",state=\"idle\"}"),
        "{serve_text}"
    );
    assert!(
        worker_text.contains("runnerctl_forge_rate_limit_remaining "),
        "{worker_text}"
    );

    let mut have: Vec<(String, String)> = families(&serve_text);
    have.extend(families(&worker_text));
    // Prometheus' conventions: counters end in _total, durations in _seconds, all lowercase.
    for (n, kind) in &have {
        assert!(
            n.starts_with("runnerctl_")
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{n}"
        );
        if kind == "counter" {
            assert!(n.ends_with("_total"), "counter {n}");
        }
        if kind == "histogram" {
            assert!(n.ends_with("_seconds"), "histogram {n}");
        }
    }
    let known: BTreeSet<String> = have
        .iter()
        .flat_map(|(n, kind)| {
            let mut v = vec![n.clone()];
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    v.push(format!("{n}{s}"));
                }
            }
            v
        })
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/monitoring");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("alerts.yaml")).unwrap()).unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_string());
        }
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() > 10);
    let mut missing = BTreeSet::new();
    for e in &exprs {
        for n in names_in(e) {
            if !known.contains(&n) {
                missing.insert(n);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?}\nknown: {known:?}"
    );
}

/// `runnerctl --config CONFIG ARGS…` in the background, with the token and webhook secret the
/// tests' configurations name.
fn spawn(config: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(support::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GH", "t")
        .env("HOOK", "metrics-webhook-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs Debian's `promtool` with `args` (and `input` on stdin): whether it passed, what it said.
fn promtool(args: &[&str], input: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or("").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The alert rules in contrib/ are valid Prometheus rules: `promtool check rules`.
#[test]
fn the_alert_rules_pass_promtool() {
    let rules = format!(
        "{}/contrib/monitoring/alerts.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, said) = promtool(&["check", "rules", &rules], None);
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Each shipped alert rule fires where its name says and stays quiet beside it:
/// `promtool test rules` on contrib/monitoring/alerts.test.yaml.
#[test]
fn every_alert_rule_fires_when_it_should_and_only_then() {
    let tests = format!(
        "{}/contrib/monitoring/alerts.test.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, said) = promtool(&["test", "rules", &tests], None);
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    // Every rule has a test.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/monitoring");
    let rules = std::fs::read_to_string(root.join("alerts.yaml")).unwrap();
    let text = std::fs::read_to_string(root.join("alerts.test.yaml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                text.contains(&format!("alertname: {name}")),
                "{name} has no test"
            );
        }
    }
}

/// The default configuration (no broker, no `worker.metrics_listen`), nothing delivered:
/// `runnerctl_redis_up` read 0 until a delivery or a readiness probe (the shipped
/// `RunnerctlRedisDown` fired), the broker's counters the dashboard shows were missing, and
/// whether a worker runs could only be told from a worker's own endpoint (the shipped
/// `RunnerctlNoHealthyWorker` fired by `absent()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_serve_reports_redis_up_the_broker_and_the_workers_alive() {
    let redis = support::RedisServer::start();
    let (web, serve_metrics) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let name = support::manager_name("idle-metrics");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ngithub:\n  base_url: http://127.0.0.1:9\n  token_env: GH\nredis:\n  url: {}\nwebhook:\n  listen: 127.0.0.1:{web}\n  metrics_listen: 127.0.0.1:{serve_metrics}\n  secret_env: HOOK\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n",
            redis.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| spawn(&config, args);
    let mut serve = run(&["serve"]);
    let first = support::eventually(Duration::from_secs(20), || async { scrape(serve_metrics) })
        .await
        .expect("serve's /metrics");
    assert!(first.contains("runnerctl_redis_up 1"), "{first}");
    assert!(
        first.contains("runnerctl_broker_redemptions_total{outcome=\"redeemed\"} 0"),
        "{first}"
    );
    assert!(first.contains("runnerctl_workers_alive 0"), "{first}");
    assert!(
        first.contains("runnerctl_jobs_oldest_waiting_seconds{group=\"g\"} 0"),
        "{first}"
    );
    let mut worker = run(&["worker", "--no-sync-groups"]);
    let alive = support::eventually(Duration::from_secs(20), || async {
        scrape(serve_metrics).filter(|t| t.contains("runnerctl_workers_alive 1"))
    })
    .await;
    let _ = worker.kill();
    let _ = serve.kill();
    let _ = worker.wait();
    let _ = serve.wait();
    assert!(alive.is_some(), "the worker is counted alive");
    let (ok, said) = promtool(&["check", "metrics"], Some(&first));
    assert!(ok, "promtool check metrics: {said}\n{first}");
}
