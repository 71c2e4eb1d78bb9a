//! The command line as a user meets it: help, exit codes, validation output, redaction.

use assert_cmd::Command;
use predicates::prelude::*;
use std::io::Read;

fn runnerctl() -> Command {
    let mut cmd = Command::cargo_bin("runnerctl").unwrap();
    cmd.env_remove("RUNNERCTL_CONFIG")
        .env_remove("RUNNERCTL_LOG");
    cmd
}

/// A broker key for the example (32 bytes in base64).
const BROKER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn example_path() -> String {
    format!("{}/config.example.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// Every command path of the tree, with its `about` text.
fn command_paths() -> Vec<(Vec<String>, String)> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        // `--help` shows the long description when there is one.
        let about = cmd
            .get_long_about()
            .or(cmd.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        out.push((path.clone(), about));
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&runnerctl::cli::command(), vec![], &mut out);
    out
}

#[test]
fn every_command_has_real_help() {
    let paths = command_paths();
    let expected = [
        "groups list",
        "groups sync",
        "runners list",
        "runners create",
        "runners delete",
        "runners bootstrap",
        "healthcheck",
        "serve",
        "worker",
        "tasks list",
        "tasks dead",
        "tasks requeue",
        "config validate",
        "config show",
        "config example",
        "completions",
        "demo",
    ];
    for e in expected {
        assert!(
            paths.iter().any(|(p, _)| p.join(" ") == e),
            "missing command `{e}`"
        );
    }
    for (path, about) in paths {
        assert!(
            about.len() > 15,
            "`{}` needs a real description",
            path.join(" ")
        );
        let out = runnerctl().args(&path).arg("--help").assert().success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat(&text).contains(&flat(&about)),
            "help of `{}`: {text}",
            path.join(" ")
        );
        assert!(text.contains("Usage: runnerctl"), "{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    runnerctl().assert().code(2);
    runnerctl().arg("frobnicate").assert().code(2);
    runnerctl()
        .args(["runners", "delete"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("required"));
    runnerctl()
        .args(["runners", "delete", "--all"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--group"));
    runnerctl()
        .args(["--output", "xml", "config", "example"])
        .assert()
        .code(2);
    runnerctl().arg("--version").assert().success();
}

#[test]
fn validate_reports_every_problem_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "github:\n  token_env: T\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: o\n    labels: [x]\n    backend: fake\n    max_runners: 3\n    min_runners: 5\n    colour: red\n",
    )
    .unwrap();
    let p = path.display().to_string();
    runnerctl()
        .args(["config", "validate", &p])
        .env("T", "a-token")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{p}:12:18: runner_groups[0].min_runners: must not exceed max_runners (5 > 3)"
        )))
        .stderr(predicate::str::contains(format!(
            "{p}:13:5: runner_groups[0].colour: unknown field"
        )))
        .stderr(predicate::str::contains("2 problems"));

    let out = runnerctl()
        .args(["--output", "json", "config", "validate", &p])
        .env("T", "a-token")
        .assert()
        .code(2);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"].as_array().unwrap().len(), 2);
    assert_eq!(report["errors"][0]["path"], "runner_groups[0].min_runners");
    assert_eq!(report["errors"][0]["line"], 12);
}

/// A file with 18 mistakes showed 12, then 4, then 2 (the secrets) as each round was fixed.
/// Now one run reports them all, secrets with their line and column, and a misspelled key
/// gets the key it was probably meant to be.
#[test]
fn regression_config_validate_reports_every_problem_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "\
name: demo
cleanup_grace: 5 parsecs
github:
  token_env: RUNNERCTL_TEST_UNSET_TOKEN
  base_url: not a url
redis:
  url: redis://127.0.0.1:6379/0
  pasword_env: X
webhook:
  secret_env: RUNNERCTL_TEST_UNSET_SECRET
  listen: nowhere
queue:
  visibility_timeout: -3s
  max_attempts: many
backends:
  fake:
    kind: fake
    create_latency: forever
runner_groups:
  - name: small
    organisation: octo-org
    labels: [self-hosted, small]
    backend: fake
    max_runners: 3
    lables: [x]
  - name: small
    organization: octo-org
    backend: nonexist
    max_runners: -1
  - name: big
    organization: octo-org
    labels: [big]
    backend: fake
    max_runners: 2
    min_runners: many
",
    )
    .unwrap();
    let p = path.display().to_string();
    let out = runnerctl()
        .args(["-o", "json", "config", "validate", &p])
        .env_remove("RUNNERCTL_TEST_UNSET_TOKEN")
        .env_remove("RUNNERCTL_TEST_UNSET_SECRET")
        .assert()
        .code(2);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let errors: Vec<(String, String, u64, u64)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap_or_else(|| panic!("no line: {e}")),
                e["column"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no column: {e}")),
            )
        })
        .collect();
    let paths: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    let want = [
        ("cleanup_grace", 2),
        ("github.token_env", 4),
        ("github.base_url", 5),
        ("redis.pasword_env", 8),
        ("webhook.secret_env", 10),
        ("webhook.listen", 11),
        ("queue.visibility_timeout", 13),
        ("queue.max_attempts", 14),
        ("backends.fake.create_latency", 18),
        ("runner_groups[0].organization", 20),
        ("runner_groups[0].organisation", 21),
        ("runner_groups[0].lables", 25),
        ("runner_groups[1].labels", 26),
        ("runner_groups[1].name", 26),
        ("runner_groups[1].backend", 28),
        ("runner_groups[1].max_runners", 29),
        ("runner_groups[2].min_runners", 35),
    ];
    for (path, line) in want {
        let Some(e) = errors.iter().find(|e| e.0 == path) else {
            panic!("{path} not reported in {paths:?}");
        };
        assert_eq!(e.2, line, "{e:?}");
    }
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    let message = |path: &str| errors.iter().find(|e| e.0 == path).unwrap().1.clone();
    assert!(message("github.token_env").contains("RUNNERCTL_TEST_UNSET_TOKEN"));
    assert!(message("redis.pasword_env").ends_with("did you mean `password_env`?"));
    assert!(message("runner_groups[0].organisation").ends_with("did you mean `organization`?"));
    assert!(message("runner_groups[0].lables").ends_with("did you mean `labels`?"));
}

#[test]
fn the_example_validates_and_is_what_config_example_prints() {
    runnerctl()
        .env("GITHUB_TOKEN", "ghp_example")
        .env("VSPHERE_PASSWORD", "vsphere-example")
        .env(
            "RUNNERCTL_WEBHOOK_SECRET",
            "an example secret of 32 bytes..",
        )
        .env("RUNNERCTL_BROKER_KEY", BROKER_KEY)
        .args(["config", "validate", &example_path()])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "valid (5 backends, 6 runner groups)",
        ))
        // No warning: the broker the GCP and vSphere groups need is on.
        .stderr("");
    let shipped = std::fs::read_to_string(example_path()).unwrap();
    runnerctl()
        .args(["config", "example"])
        .assert()
        .success()
        .stdout(shipped);
}

/// `config show` sorted every key alphabetically; it keeps the file's order (keys the file
/// leaves out follow, in the example's order).
#[test]
fn regression_config_show_keeps_the_file_s_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "runner_groups:\n  - name: z\n    max_runners: 2\n    labels: [z]\n    backend: fake\n    organization: octo-org\nbackends:\n  fake:\n    kind: fake\ngithub:\n  token_env: T\nname: zz\n",
    )
    .unwrap();
    let out = runnerctl()
        .env("T", "x")
        .args(["--config", path.to_str().unwrap(), "config", "show"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '-']))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        top[..4],
        ["runner_groups", "backends", "github", "name"],
        "{text}"
    );
    // The rest in the example's order: forge, redis, webhook, … .
    assert_eq!(top[4..6], ["forge", "redis"], "{text}");
    let group: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("- name: z"))
        .filter(|l| l.starts_with("- ") || (l.starts_with("  ") && !l[2..].starts_with([' ', '-'])))
        .take(5)
        .map(|l| l.trim_start_matches(['-', ' ']).split(':').next().unwrap())
        .collect();
    assert_eq!(
        group,
        ["name", "max_runners", "labels", "backend", "organization"],
        "{text}"
    );
}

/// `config show` prints a configuration in the file's shape: it validates as it is, and
/// shows the same again.
#[test]
fn config_show_prints_a_configuration_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    for (example, forge) in [
        ("config.example.yaml", "github"),
        ("contrib/gitea.example.yaml", "gitea"),
    ] {
        let path = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
        let show = |config: &str| {
            let out = runnerctl()
                .env("GITHUB_TOKEN", "ghp_example")
                .env("GITEA_TOKEN", "gitea-example-token")
                .env("VSPHERE_PASSWORD", "vsphere-example")
                .env("RUNNERCTL_BROKER_KEY", BROKER_KEY)
                .env(
                    "RUNNERCTL_WEBHOOK_SECRET",
                    "an example secret of 32 bytes..",
                )
                .args(["--config", config, "config", "show"])
                .assert()
                .success();
            String::from_utf8_lossy(&out.get_output().stdout).to_string()
        };
        let shown = show(&path);
        let again = dir.path().join(format!("{forge}.yaml"));
        std::fs::write(&again, &shown).unwrap();
        runnerctl()
            .env("GITHUB_TOKEN", "ghp_example")
            .env("GITEA_TOKEN", "gitea-example-token")
            .env("VSPHERE_PASSWORD", "vsphere-example")
            .env("RUNNERCTL_BROKER_KEY", BROKER_KEY)
            .env(
                "RUNNERCTL_WEBHOOK_SECRET",
                "an example secret of 32 bytes..",
            )
            .args(["config", "validate", again.to_str().unwrap()])
            .assert()
            .success();
        assert_eq!(
            show(again.to_str().unwrap()),
            shown,
            "{forge}: shown twice, the same"
        );
    }
}

#[test]
fn the_config_path_comes_from_flag_then_env_then_default() {
    runnerctl()
        .env("RUNNERCTL_CONFIG", example_path())
        .args(["groups", "list", "--local"])
        .assert()
        .success()
        .stdout(predicate::str::contains("single-repo"));
    runnerctl()
        .env("RUNNERCTL_CONFIG", "/nonexistent/env.yaml")
        .args(["--config", &example_path(), "groups", "list", "--local"])
        .assert()
        .success();
    runnerctl()
        .env("RUNNERCTL_CONFIG", "/nonexistent/env.yaml")
        .args(["groups", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read configuration file `/nonexistent/env.yaml`",
        ));
    runnerctl()
        .args(["config", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/etc/runnerctl/config.yaml"));
}

#[test]
fn config_show_fills_defaults_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "github:\n  token: ghp_TOPSECRET123\nredis:\n  url: redis://user:hunter2pass@127.0.0.1:6379/0\nwebhook:\n  secret: whsec_XYZZY_0123456789\n  metrics_token: mt_PLUGH_0123456789\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: o\n    labels: [x]\n    backend: f\n",
    )
    .unwrap();
    for format in ["table", "json"] {
        let out = runnerctl()
            .args([
                "--config",
                path.to_str().unwrap(),
                "--output",
                format,
                "config",
                "show",
            ])
            .assert()
            .success();
        let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        for secret in ["TOPSECRET", "hunter2pass", "XYZZY", "PLUGH"] {
            assert!(
                !stdout.contains(secret),
                "{format} output leaks {secret}:\n{stdout}"
            );
            assert!(
                !stderr.contains(secret),
                "{format} log leaks {secret}:\n{stderr}"
            );
        }
        assert!(stdout.contains("<redacted>"), "{stdout}");
        assert!(
            stdout.contains("time_to_live"),
            "defaults are shown: {stdout}"
        );
        assert!(stdout.contains("12h"), "{stdout}");
        assert!(stderr.contains("secret written inline"), "warns: {stderr}");
    }
}

#[test]
fn a_password_in_the_redis_url_s_query_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &path,
        format!("github:\n  token: t\nredis:\n  url: redis://127.0.0.1:{port}/0?password=hunter2query&pass=hunter3query\nwebhook:\n  secret: whsec_0123456789abcdef\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: o\n    labels: [x]\n    backend: f\n"),
    )
    .unwrap();
    for args in [
        vec!["config", "show"],
        vec!["-o", "json", "config", "show"],
        vec!["config", "validate"],
        vec!["runners", "list"],
        vec!["doctor"],
    ] {
        let out = runnerctl()
            .args(["--config", path.to_str().unwrap()])
            .args(&args)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains("hunter2query") && !all.contains("hunter3query"),
            "{args:?} prints the password:\n{all}"
        );
        if args.contains(&"show") {
            assert!(all.contains("password=<redacted>"), "{args:?}: {all}");
        }
    }
}

#[test]
fn groups_list_prints_table_and_json() {
    runnerctl()
        .args(["--config", &example_path(), "groups", "list", "--local"])
        .assert()
        .success()
        .stdout(predicate::str::contains("GROUP"))
        .stdout(predicate::str::contains("octo-org/octo-repo"));
    let out = runnerctl()
        .args([
            "--config",
            &example_path(),
            "-o",
            "json",
            "groups",
            "list",
            "--local",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
    assert_eq!(v[0]["name"], "demo");
    // For scripts: names only, one per line; or the table without its header row.
    let names = runnerctl()
        .args([
            "--config",
            &example_path(),
            "-o",
            "name",
            "groups",
            "list",
            "--local",
        ])
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&names.get_output().stdout),
        "demo\nsingle-repo\ndocker\naws-large\ngcp-spot\nvsphere\n"
    );
    let bare = runnerctl()
        .args([
            "--config",
            &example_path(),
            "--no-headers",
            "groups",
            "list",
            "--local",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&bare.get_output().stdout).to_string();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.trim_start().starts_with("demo"), "{text}");
    assert_eq!(v[0]["kind"], "fake");
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let bin = assert_cmd::cargo::cargo_bin("runnerctl");
    for _ in 0..5 {
        let mut child = std::process::Command::new(&bin)
            .args(["completions", "zsh"])
            .env_remove("RUNNERCTL_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        let mut out = child.stdout.take().unwrap();
        out.read_exact(&mut first).unwrap();
        drop(out); // like `| head -c 16`
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "exit {status:?}, stderr {err}");
        assert!(err.is_empty(), "{err}");
    }
}

#[test]
fn runners_bootstrap_shows_the_script_and_hides_the_credential() {
    let out = runnerctl()
        .args([
            "--config",
            &example_path(),
            "runners",
            "bootstrap",
            "--group",
            "docker",
        ])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("# ---- /run/runnerctl/bootstrap.sh (mode 0755) ----"),
        "{text}"
    );
    assert!(
        text.contains("RUNNER_LABELS='self-hosted,linux,x64,docker'"),
        "{text}"
    );
    assert!(
        text.contains("/run/runnerctl/jitconfig (mode 0600)"),
        "{text}"
    );
    assert!(text.contains("<redacted"), "{text}");
    runnerctl()
        .args([
            "--config",
            &example_path(),
            "runners",
            "bootstrap",
            "--group",
            "nope",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no runner group `nope`"));
    let json = |group: &str| {
        let out = runnerctl()
            .args([
                "--config",
                &example_path(),
                "-o",
                "json",
                "runners",
                "bootstrap",
                "-g",
                group,
            ])
            .assert()
            .success();
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    let v = json("demo");
    assert_eq!(v["files"][2]["mode"], "0600");
    // A VM group: cloud-init user-data, and where the credential waits instead.
    let v = json("aws-large");
    assert!(v["user_data"]
        .as_str()
        .unwrap()
        .starts_with("#cloud-config\n"));
    assert!(
        v["credential_delivery"]
            .as_str()
            .unwrap()
            .contains("kept sealed by the credential broker"),
        "{v}"
    );
}

/// `--log-format json` (or `RUNNERCTL_LOG_FORMAT=json`) writes each log line as one JSON object,
/// for journald and Loki; text lines carry no Rust debug syntax.
#[test]
fn logs_can_be_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    // An inline secret makes the loader warn: one log line to look at.
    std::fs::write(
        &path,
        "github:\n  token: ghp_inline_for_the_warning\nredis:\n  url: redis://127.0.0.1:1/0\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: o\n    labels: [x]\n    backend: f\n",
    )
    .unwrap();
    for (flag, env) in [(true, None), (false, Some("json"))] {
        let mut cmd = runnerctl();
        cmd.args(["--config", path.to_str().unwrap()]);
        if flag {
            cmd.args(["--log-format", "json"]);
        }
        if let Some(v) = env {
            cmd.env("RUNNERCTL_LOG_FORMAT", v);
        }
        let out = cmd.args(["runners", "list"]).assert().code(3);
        let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        // Every line is JSON, the fatal error's too.
        let logs: Vec<&str> = stderr.lines().collect();
        assert!(logs.len() >= 2, "{stderr}");
        let last: serde_json::Value = serde_json::from_str(logs[logs.len() - 1]).unwrap();
        assert_eq!(last["level"], "ERROR", "{last}");
        assert_eq!(last["fields"]["exit_code"], 3, "{last}");
        for l in logs {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(
                v["level"].is_string() && v["fields"]["message"].is_string(),
                "{l}"
            );
            assert!(!l.contains("ghp_inline"), "no secret: {l}");
        }
    }
}

/// Global flags show only where they mean something, and are refused where they do not.
#[test]
fn global_flags_apply_only_where_they_mean_something() {
    for (path, hidden) in [
        (&["serve"][..], &["--output", "--no-headers"][..]),
        (&["worker"], &["--output", "--no-headers"]),
        (
            &["config", "example"],
            &["--output", "--no-headers", "--config"],
        ),
        (&["completions"], &["--output", "--no-headers", "--config"]),
        (&["demo"], &["--config"]),
        (&["container-hook"], &["--output", "--config"]),
    ] {
        let out = runnerctl().args(path).arg("--help").assert().success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        for flag in hidden {
            assert!(
                !help.contains(flag),
                "{path:?} --help shows {flag}:\n{help}"
            );
        }
    }
    let out = runnerctl()
        .args(["runners", "list", "--help"])
        .assert()
        .success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    for flag in ["--output", "--no-headers", "--config"] {
        assert!(help.contains(flag), "runners list --help lacks {flag}");
    }
    runnerctl()
        .args(["-o", "json", "serve"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`--output` does not apply to `runnerctl serve`",
        ));
    runnerctl()
        .args(["config", "example", "--no-headers"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`--no-headers` does not apply"));
    // From the environment it is no error: a unit's RUNNERCTL_CONFIG reaches every command.
    runnerctl()
        .env("RUNNERCTL_CONFIG", "/nonexistent/config.yaml")
        .args(["completions", "bash"])
        .assert()
        .success();
}

/// A dependency's bare `ERROR failed with error client error (Connect)` came with every forge
/// failure, under `-q` and in JSON logs too, beside runnerctl's own error. Now dependencies
/// speak only with `-v`, named by their target; the fatal line is the only one by default.
#[test]
fn regression_a_dependency_s_log_lines_show_only_when_asked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "github:\n  base_url: http://127.0.0.1:1\n  token_env: T\nwebhook:\n  secret_env: S\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: o\n    labels: [x]\n    backend: f\n",
    )
    .unwrap();
    let stderr = |flags: &[&str]| {
        let out = runnerctl()
            .env("T", "ghp_x")
            .env("S", "a webhook secret of 32 bytes....")
            .args(["--config", path.to_str().unwrap()])
            .args(flags)
            .args(["groups", "list"])
            .assert()
            .code(3);
        String::from_utf8(out.get_output().stderr.clone()).unwrap()
    };
    for flags in [&[][..], &["-q"][..]] {
        let err = stderr(flags);
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("127.0.0.1:1"),
            "{err}"
        );
    }
    let err = stderr(&["--log-format", "json"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("failed with error"), "{err}");
    // Asked for, a dependency's line says whose it is.
    let err = stderr(&["-v"]);
    let theirs: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("failed with error"))
        .collect();
    assert!(!theirs.is_empty(), "{err}");
    assert!(theirs.iter().all(|l| l.contains("octocrab")), "{err}");
    assert!(!err.contains("Some("), "no Rust debug syntax: {err}");
}
