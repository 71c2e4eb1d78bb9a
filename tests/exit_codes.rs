//! README's exit-code table, command by command, for each dependency that can fail: Redis down,
//! the forge down, the forge refusing the credentials, the backend down. One table, one test.

mod support;

use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use std::path::{Path, PathBuf};
use support::{manager_name, RedisServer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Down {
    Nothing,
    Redis,
    Forge,
    Forge401,
    Backend,
}

const ALL: [Down; 5] = [
    Down::Nothing,
    Down::Redis,
    Down::Forge,
    Down::Forge401,
    Down::Backend,
];

/// What each command must exit with when `down` fails: 0 when it does not need it, 3 for an
/// unreachable dependency, 2 for refused credentials; `doctor` reports every check and exits 1
/// when one failed.
fn expected(cmd: &str, down: Down) -> i32 {
    let needs_redis = !matches!(cmd, "groups list" | "groups sync" | "config validate");
    let needs_forge = !matches!(cmd, "tasks list" | "tasks dead" | "config validate");
    let needs_backend = matches!(
        cmd,
        "runners show" | "runners create" | "runners delete" | "healthcheck" | "doctor"
    );
    let code = match down {
        Down::Nothing => 0,
        Down::Redis if needs_redis => 3,
        Down::Forge if needs_forge => 3,
        Down::Forge401 if needs_forge => 2,
        Down::Backend if needs_backend => 3,
        _ => 0,
    };
    if cmd == "doctor" && code != 0 {
        1
    } else {
        code
    }
}

struct Setup {
    _redis: RedisServer,
    sim: FakeGitHub,
    dir: tempfile::TempDir,
    redis_url: String,
    name: String,
}

impl Setup {
    async fn start() -> Setup {
        let redis = RedisServer::start();
        let sim = FakeGitHub::start(FakeGitHubOptions {
            orgs: vec![("octo-org".into(), vec!["app".into()])],
            token: Some("ghp_codes".into()),
            ..FakeGitHubOptions::default()
        })
        .await
        .unwrap();
        let redis_url = redis.url.clone();
        Setup {
            _redis: redis,
            sim,
            dir: tempfile::tempdir().unwrap(),
            redis_url,
            name: manager_name("exit-codes"),
        }
    }

    /// The configuration with `down` failing; the runners' records are the same in each.
    fn config(&self, down: Down) -> PathBuf {
        let forge = match down {
            Down::Forge => "http://127.0.0.1:1".to_string(),
            _ => self.sim.url(),
        };
        let redis = match down {
            Down::Redis => "redis://127.0.0.1:1/0".to_string(),
            _ => self.redis_url.clone(),
        };
        // The backend the records name, `fake`, becomes an engine nobody answers at.
        let (backend, spec) = match down {
            Down::Backend => (
                "    kind: docker\n    host: tcp://127.0.0.1:1\n",
                "    spec:\n      image: runner:latest\n",
            ),
            _ => ("    kind: fake\n", ""),
        };
        let path = self.dir.path().join(format!("{down:?}.yaml"));
        std::fs::write(
            &path,
            format!(
                "name: {}\ncleanup_grace: 0s\ngithub:\n  base_url: {forge}\n  token_env: CODES_GH_TOKEN\nredis:\n  url: {redis}\nbackends:\n  fake:\n{backend}runner_groups:\n  - name: small\n    organization: octo-org\n    labels: [self-hosted, small]\n    backend: fake\n    max_runners: 10\n{spec}",
                self.name
            ),
        )
        .unwrap();
        path
    }
}

async fn run(config: &Path, down: Down, args: &[&str]) -> (Option<i32>, String, String) {
    let token = if down == Down::Forge401 {
        "ghp_wrong"
    } else {
        "ghp_codes"
    };
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("CODES_GH_TOKEN", token)
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

/// Every command against every failing dependency exits as README's table says; a failed delete
/// leaves the runners as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_exits_as_documented_whichever_dependency_fails() {
    let s = Setup::start().await;
    let ok = s.config(Down::Nothing);
    let (code, _, err) = run(&ok, Down::Nothing, &["groups", "sync"]).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(
        &ok,
        Down::Nothing,
        &["-o", "name", "runners", "create", "-g", "small", "-n", "2"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let names: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(names.len(), 2, "{out}");
    let show = names[0].clone();

    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("config validate", vec!["config", "validate"]),
        ("groups list", vec!["groups", "list"]),
        ("groups sync", vec!["groups", "sync"]),
        ("runners list", vec!["runners", "list"]),
        ("runners show", vec!["runners", "show", &show]),
        ("tasks list", vec!["tasks", "list"]),
        ("tasks dead", vec!["tasks", "dead"]),
        ("doctor", vec!["doctor"]),
        ("healthcheck", vec!["healthcheck", "--dry-run"]),
        ("runners create", vec!["runners", "create", "-g", "small"]),
        (
            "runners delete",
            vec!["runners", "delete", "-g", "small", "--all", "--yes"],
        ),
    ];
    let mut wrong = Vec::new();
    for down in ALL {
        let config = s.config(down);
        for (cmd, args) in &commands {
            // Deleting everything works once: with nothing failing it runs last.
            if down == Down::Nothing && *cmd == "runners delete" {
                continue;
            }
            let (code, out, err) = run(&config, down, args).await;
            let want = expected(cmd, down);
            if code != Some(want) {
                wrong.push(format!(
                    "{cmd} with {down:?} down: exit {code:?}, want {want}\n  stdout: {}\n  stderr: {}",
                    out.trim(),
                    err.trim()
                ));
            }
            if matches!(
                (*cmd, down),
                (
                    "runners list" | "runners show",
                    Down::Forge | Down::Forge401
                ) | ("runners show", Down::Backend)
            ) && !(out.contains(&show) && out.contains("unknown"))
            {
                wrong.push(format!(
                    "{cmd} with {down:?} down does not show what is known:\n{out}"
                ));
            }
            // Nothing was deleted when the forge failed: the records are as they were, none
            // left in `deleting`. (With the backend down, the registrations are gone: the
            // runners are half-deleted, and `deleting` says so.)
            if *cmd == "runners delete" && down != Down::Backend {
                let (_, out, _) = run(&ok, Down::Nothing, &["-o", "json", "runners", "list"]).await;
                let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
                for r in rows.as_array().unwrap() {
                    if r["status"] == "deleting" {
                        wrong.push(format!("{cmd} with {down:?} down left {r} in deleting"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // What could not be read is marked in JSON too.
    let forge_down = s.config(Down::Forge);
    let (_, out, _) = run(&forge_down, Down::Forge, &["-o", "json", "runners", "list"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!rows.as_array().unwrap().is_empty(), "{rows}");
    for r in rows.as_array().unwrap() {
        assert_eq!(r["unread"], serde_json::json!(["github"]), "{r}");
        assert_eq!(r["github_status"], serde_json::Value::Null, "{r}");
    }
    let (_, out, _) = run(
        &forge_down,
        Down::Forge,
        &["-o", "json", "runners", "show", &show],
    )
    .await;
    let view: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["unread"], serde_json::json!(["github"]), "{view}");
    assert_eq!(view["record"]["name"], show.as_str(), "{view}");
    let (code, _, err) = run(
        &ok,
        Down::Nothing,
        &["runners", "delete", "-g", "small", "--all", "--yes"],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
}
