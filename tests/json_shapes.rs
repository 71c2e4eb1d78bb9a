//! Every command's `-o json` output has the shape README's "JSON output" section documents:
//! each documented example (marked `<!-- shape: COMMAND -->`) is read from the README and
//! compared, key by key, with the real output of the command against a real Redis, the fake
//! GitHub and the fake backend.

mod support;

use runnerctl::forge::fake::FakeGitHub;
use runnerctl::queue::{Queue, QueueOptions, Task};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use support::RedisServer;

const TOKEN: &str = "ghp_shapes";

/// A documented example with the enumerations its paragraph lists (field → values).
struct Documented {
    example: Value,
    values: BTreeMap<String, BTreeSet<String>>,
}

/// The documented examples, by command.
fn documented() -> BTreeMap<String, Documented> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- shape: ") {
        // The paragraph before the marker lists the values of its enumerations.
        let before = rest[..at].trim_end();
        let paragraph = &before[before.rfind("\n\n").map_or(0, |i| i + 2)..];
        let values = enumerations(paragraph);
        rest = &rest[at + "<!-- shape: ".len()..];
        let name = rest[..rest.find(" -->").unwrap()].to_string();
        let start = rest.find("```json\n").unwrap() + "```json\n".len();
        let end = start + rest[start..].find("\n```").unwrap();
        let example: Value = serde_json::from_str(&rest[start..end])
            .unwrap_or_else(|e| panic!("README's `{name}` example is not JSON: {e}"));
        out.insert(name, Documented { example, values });
    }
    out
}

/// The enumerations of a paragraph, written `` `field`: `a`, `b` (a remark), `c` or `d` ``.
fn enumerations(prose: &str) -> BTreeMap<String, BTreeSet<String>> {
    let prose = prose.replace('\n', " ");
    let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let mut out = BTreeMap::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("`: `") {
        let field = &rest[rest[..i].rfind('`').map_or(0, |j| j + 1)..i];
        let mut t = &rest[i + 3..];
        rest = t;
        if !is_name(field) {
            continue;
        }
        let mut values = BTreeSet::new();
        loop {
            t = t.trim_start();
            if let Some(v) = t.strip_prefix('`') {
                let Some(end) = v.find('`') else { break };
                values.insert(v[..end].to_string());
                t = &v[end + 1..];
            } else if t.starts_with('(') {
                // A remark, perhaps with parentheses of its own.
                let mut depth = 0;
                let end = t
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(t.len(), |(j, _)| j + 1);
                t = &t[end..];
            } else if let Some(x) = t.strip_prefix(',') {
                t = x;
            } else if let Some(x) = t.strip_prefix("or ") {
                t = x;
            } else {
                break;
            }
        }
        out.insert(field.to_string(), values);
    }
    out
}

/// Where a printed value of a documented enumeration is not among its documented values.
fn undocumented_values(
    values: &BTreeMap<String, BTreeSet<String>>,
    real: &Value,
    at: &str,
) -> Vec<String> {
    match real {
        Value::Object(o) => o
            .iter()
            .flat_map(|(k, v)| {
                let mut out = Vec::new();
                if let (Some(allowed), Value::String(s)) = (values.get(k), v) {
                    if !allowed.contains(s) {
                        out.push(format!("{at}.{k}: printed `{s}`, documented {allowed:?}"));
                    }
                }
                out.extend(undocumented_values(values, v, &format!("{at}.{k}")));
                out
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .flat_map(|(i, v)| undocumented_values(values, v, &format!("{at}[{i}]")))
            .collect(),
        _ => vec![],
    }
}

/// Where `real` differs in shape from `doc`: keys missing or extra, another type. `null` on
/// either side matches anything; each element of a real array must match some documented one.
fn mismatches(doc: &Value, real: &Value, at: &str) -> Vec<String> {
    match (doc, real) {
        (Value::Null, _) | (_, Value::Null) => vec![],
        (Value::Object(d), Value::Object(r)) => {
            let mut out = Vec::new();
            for k in d.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{at}.{k}: documented, not printed"));
            }
            for k in r.keys().filter(|k| !d.contains_key(*k)) {
                out.push(format!("{at}.{k}: printed, not documented"));
            }
            for (k, v) in d {
                if let Some(rv) = r.get(k) {
                    out.extend(mismatches(v, rv, &format!("{at}.{k}")));
                }
            }
            out
        }
        (Value::Array(d), Value::Array(r)) => {
            if d.is_empty() {
                return vec![];
            }
            r.iter()
                .enumerate()
                .filter_map(|(i, rv)| {
                    let each: Vec<Vec<String>> = d
                        .iter()
                        .map(|dv| mismatches(dv, rv, &format!("{at}[{i}]")))
                        .collect();
                    if each.iter().any(Vec::is_empty) {
                        None
                    } else {
                        each.into_iter().min_by_key(Vec::len)
                    }
                })
                .flatten()
                .collect()
        }
        (d, r) if std::mem::discriminant(d) == std::mem::discriminant(r) => vec![],
        (d, r) => vec![format!("{at}: documented {d}, printed {r}")],
    }
}

fn cli(path: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(path)
        .args(["-o", "json"])
        .args(args)
        .env("SHAPES_GH_TOKEN", TOKEN)
        .env("SHAPES_SECRET", "a webhook secret of 32 bytes....")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_the_json_shape_the_readme_documents() {
    let docs = documented();
    let sim = FakeGitHub::start(support::octo_org(TOKEN)).await.unwrap();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = support::manager_name("shapes");
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: SHAPES_GH_TOKEN\nwebhook:\n  secret_env: SHAPES_SECRET\nredis:\n  url: {}\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo-org\n    labels: [self-hosted, linux]\n    backend: f\n    max_runners: 5\n",
        sim.url(),
        redis.url
    );
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, &text).unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        text.replace("max_runners: 5", "max_runners: 5\n    min_runners: 9"),
    )
    .unwrap();

    // A trace of two jobs for `simulate`.
    let trace = dir.path().join("week.jsonl");
    std::fs::write(
        &trace,
        "{\"queued_at\": 0, \"labels\": [\"self-hosted\", \"linux\"], \"repository\": \"octo-org/app\", \"duration_s\": 240}\n{\"queued_at\": 30, \"labels\": [\"self-hosted\", \"linux\"], \"repository\": \"octo-org/app\", \"duration_s\": 250}\n",
    )
    .unwrap();
    let trace_arg = trace.display().to_string();

    // Two tasks in the queue, one of them dead.
    support::dead_task(&redis.url, &name, "linux", "f: Capacity: none left").await;
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    let queue = Queue::new(conn, &name, QueueOptions::default());
    let task = Task::CreateRunner {
        group: "linux".into(),
    };
    queue.enqueue(task, None).await.unwrap();
    // A job's timeline, as the worker, the manager and the broker note it.
    let store = runnerctl::store::RedisStore::new(
        runnerctl::store::connect(&redis.url).await.unwrap(),
        &name,
    );
    let steps: Vec<(&str, u64)> = runnerctl::records::TIMELINE
        .iter()
        .enumerate()
        .map(|(i, (step, _))| (*step, 1_796_220_000_000 + i as u64 * 1500))
        .collect();
    let texts = [
        ("runner", "shapes-linux-warm"),
        ("source", "hot"),
        ("group", "linux"),
        ("repository", "octo-org/app"),
        ("ran_on", "shapes-linux-warm"),
        ("wait_source", "hot"),
    ];
    store.note_job(4242, &steps, &texts).await.unwrap();

    let steps: Vec<(&str, std::path::PathBuf, Vec<&str>)> = vec![
        (
            "config validate",
            broken.clone(),
            vec!["config", "validate"],
        ),
        ("config validate", path.clone(), vec!["config", "validate"]),
        (
            "groups sync",
            path.clone(),
            vec!["groups", "sync", "--dry-run"],
        ),
        ("groups sync", path.clone(), vec!["groups", "sync"]),
        ("groups list", path.clone(), vec!["groups", "list"]),
        (
            "runners create --dry-run",
            path.clone(),
            vec![
                "runners",
                "create",
                "--group",
                "linux",
                "-n",
                "2",
                "--dry-run",
            ],
        ),
        (
            "runners create",
            path.clone(),
            vec!["runners", "create", "--group", "linux", "-n", "2"],
        ),
        ("runners list", path.clone(), vec!["runners", "list"]),
        (
            "healthcheck",
            path.clone(),
            vec!["healthcheck", "--dry-run"],
        ),
        ("tasks list", path.clone(), vec!["tasks", "list"]),
        ("tasks list", path.clone(), vec!["tasks", "dead"]),
        ("doctor", path.clone(), vec!["doctor"]),
        (
            "runners delete",
            path.clone(),
            vec![
                "runners",
                "delete",
                "--group",
                "linux",
                "--all",
                "--dry-run",
            ],
        ),
        (
            "runners delete",
            path.clone(),
            vec!["runners", "delete", "--group", "linux", "--all", "--yes"],
        ),
        (
            "runners create",
            path.clone(),
            vec!["runners", "create", "--group", "linux"],
        ),
        ("healthcheck", path.clone(), vec!["healthcheck"]),
        (
            "simulate",
            path.clone(),
            vec!["simulate", "--trace", trace_arg.as_str()],
        ),
        ("jobs show", path.clone(), vec!["jobs", "show", "4242"]),
    ];
    let mut problems = Vec::new();
    let mut shown = std::collections::BTreeSet::new();
    for (doc, file, args) in steps {
        let example = docs
            .get(doc)
            .unwrap_or_else(|| panic!("README documents no `{doc}` shape"));
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = argv.iter().map(String::as_str).collect();
            cli(&file, &a)
        })
        .await
        .unwrap();
        assert!(matches!(code, Some(0..=2)), "{args:?}: {code:?} {err}");
        let real: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}{err}"));
        if real.as_array().is_some_and(Vec::is_empty) {
            problems.push(format!(
                "{args:?}: printed an empty list; the test shows nothing"
            ));
        }
        for m in mismatches(&example.example, &real, doc) {
            problems.push(format!("{args:?}: {m}\n{out}"));
        }
        for m in undocumented_values(&example.values, &real, doc) {
            problems.push(format!("{args:?}: {m}"));
        }
        shown.insert(doc);
        if doc == "runners create" && args.len() > 4 {
            // The runner it made, as `runners show` sees it.
            let made = real["created"][0].as_str().unwrap().to_string();
            let p = path.clone();
            let (_, out, err) =
                tokio::task::spawn_blocking(move || cli(&p, &["runners", "show", &made]))
                    .await
                    .unwrap();
            let real: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("runners show printed no JSON ({e}): {out}{err}"));
            let example = docs
                .get("runners show")
                .expect("README documents `runners show`");
            for m in mismatches(&example.example, &real, "runners show") {
                problems.push(format!("runners show: {m}\n{out}"));
            }
            shown.insert("runners show");
        }
    }
    for doc in docs.keys() {
        assert!(
            shown.contains(doc.as_str()),
            "README's `{doc}` example is not checked"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each documented example uses documented values, and the enumerations README lists are
/// those the code has, no more, no fewer.
#[test]
fn readme_s_enumerations_are_the_code_s() {
    use runnerctl::manager::plan::Action;
    use runnerctl::manager::sync::Action as SyncAction;
    let docs = documented();
    for (name, d) in &docs {
        let wrong = undocumented_values(&d.values, &d.example, name);
        assert!(wrong.is_empty(), "README's own example: {wrong:?}");
    }
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // Every health-check action, each once: adding one fails to compile until it is listed.
    let r = String::new;
    let actions = [
        Action::Create {
            count: 1,
            reason: r(),
        },
        Action::Delete {
            name: r(),
            reason: r(),
        },
        Action::DeleteInstance {
            id: r(),
            forge_id: None,
            reason: r(),
        },
        Action::DeleteForgeRunner {
            id: 1,
            name: r(),
            reason: r(),
        },
        Action::SetStatus {
            name: r(),
            status: runnerctl::model::RunnerStatus::Idle,
            forge_id: None,
        },
        Action::Resume {
            name: r(),
            reason: r(),
        },
        Action::Hold {
            count: 1,
            reason: r(),
        },
        Action::Skip { reason: r() },
        Action::ReplaceToken {
            scope: r(),
            reason: r(),
        },
        Action::Warm {
            pool: runnerctl::model::Pool::Hot,
            count: 1,
            reason: r(),
        },
        Action::Retire {
            name: r(),
            reason: r(),
        },
    ];
    let index = |a: &Action| match a {
        Action::Create { .. } => 0,
        Action::Delete { .. } => 1,
        Action::DeleteInstance { .. } => 2,
        Action::DeleteForgeRunner { .. } => 3,
        Action::SetStatus { .. } => 4,
        Action::Resume { .. } => 5,
        Action::Hold { .. } => 6,
        Action::Skip { .. } => 7,
        Action::ReplaceToken { .. } => 8,
        Action::Warm { .. } => 9,
        Action::Retire { .. } => 10,
    };
    assert_eq!(
        actions.iter().map(index).collect::<Vec<_>>(),
        (0..actions.len()).collect::<Vec<_>>()
    );
    let names: BTreeSet<String> = actions
        .iter()
        .map(|a| {
            serde_json::to_value(a).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(docs["healthcheck"].values["action"], names);
    let sync = [
        SyncAction::Create,
        SyncAction::Update,
        SyncAction::Unchanged,
        SyncAction::Repository,
        SyncAction::Nothing,
        SyncAction::Error,
    ];
    for a in &sync {
        match a {
            SyncAction::Create
            | SyncAction::Update
            | SyncAction::Unchanged
            | SyncAction::Repository
            | SyncAction::Nothing
            | SyncAction::Error => {}
        }
    }
    let names: BTreeSet<String> = sync
        .iter()
        .map(|a| {
            serde_json::to_value(a)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(docs["groups sync"].values["action"], names);
    let statuses: BTreeSet<String> = runnerctl::model::RunnerStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(docs["runners list"].values["status"], statuses);
    assert_eq!(
        docs["runners list"].values["github_status"],
        set(&["online", "offline"])
    );
    assert_eq!(
        docs["healthcheck"].values["result"],
        set(&["ok", "skipped", "failed", "planned"])
    );
    assert_eq!(
        docs["tasks list"].values["state"],
        set(&["waiting", "in-flight", "delayed", "dead"])
    );
    assert_eq!(
        docs["doctor"].values["status"],
        set(&["ok", "warn", "skip", "fail"])
    );
    assert_eq!(
        docs["runners delete"].values["result"],
        set(&[
            "deleted",
            "refused",
            "missing",
            "failed",
            "would_delete",
            "would_refuse"
        ])
    );
    assert_eq!(
        docs["groups list"].values["state"],
        set(&["present", "missing", "repository"])
    );
}

#[test]
fn the_comparison_catches_a_missing_or_extra_key_and_a_wrong_type() {
    let doc = serde_json::json!([{"a": 1, "b": "x", "c": null}]);
    assert!(mismatches(&doc, &serde_json::json!([{"a": 2, "b": "y", "c": 3}]), "t").is_empty());
    assert_eq!(
        mismatches(&doc, &serde_json::json!([{"a": 2, "c": 1}]), "t").len(),
        1
    );
    assert_eq!(
        mismatches(
            &doc,
            &serde_json::json!([{"a": 2, "b": "y", "c": 1, "d": 0}]),
            "t"
        )
        .len(),
        1
    );
    assert_eq!(
        mismatches(
            &doc,
            &serde_json::json!([{"a": "2", "b": "y", "c": 1}]),
            "t"
        )
        .len(),
        1
    );
}
