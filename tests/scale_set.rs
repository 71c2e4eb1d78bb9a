//! Scale-set mode: the Actions-service adapter against the fake service (sessions and 409,
//! the long poll, acquiring, acknowledging, tokens that expire, JIT runners of a scale set),
//! the fake's answers against the contract's shapes, and end to end: `runnerctl worker`
//! processes sharing Redis hold one session between them, GitHub assigns the jobs, every job
//! runs on a runner made for the scale set, with the session holder killed with SIGKILL and
//! Redis restarted.

mod support;

use runnerctl::config::Secret;
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus, ScaleSetOptions};
use runnerctl::forge::github::actions::ActionsService;
use runnerctl::forge::github::{Auth, GitHub};
use runnerctl::forge::scaleset::{
    job_messages, Ensured, Polled, ScaleSetSpec, ScaleSets, SessionError,
};
use runnerctl::forge::{Deleted, Scope};
use runnerctl::store::{self, RedisStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::RedisServer;

const TOKEN: &str = "ghp_scale_set";

async fn fake(opts: ScaleSetOptions) -> FakeGitHub {
    FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into(), "web".into()])],
        token: Some(TOKEN.into()),
        job_duration: Duration::from_millis(100),
        rate_limit: 1_000_000,
        scale_sets: opts,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap()
}

fn service(sim: &FakeGitHub) -> ActionsService {
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new(TOKEN))).unwrap());
    ActionsService::new(gh, Scope::Org("octo-org".into())).unwrap()
}

fn spec(labels: &[&str]) -> ScaleSetSpec {
    ScaleSetSpec {
        name: "linux-ss".into(),
        runner_group: "Default".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

/// Polls until a message comes (the fake holds an empty poll `poll_hold`).
async fn next(
    svc: &ActionsService,
    s: &runnerctl::forge::scaleset::Session,
    last: u64,
) -> runnerctl::forge::scaleset::Message {
    for _ in 0..50 {
        if let Polled::Message(m) = svc.poll(s, last, 10).await.unwrap() {
            return m;
        }
    }
    panic!("no message came");
}

#[tokio::test]
async fn the_actions_service_creates_a_scale_set_once_and_updates_its_labels() {
    let sim = fake(ScaleSetOptions::default()).await;
    let svc = service(&sim);
    let (a, how) = svc.ensure_scale_set(&spec(&["x64"])).await.unwrap();
    assert_eq!(how, Ensured::Created);
    let (b, how) = svc.ensure_scale_set(&spec(&["x64"])).await.unwrap();
    assert_eq!((how, b.id), (Ensured::Unchanged, a.id));
    let (c, how) = svc.ensure_scale_set(&spec(&["x64", "gpu"])).await.unwrap();
    assert_eq!((how, c.id), (Ensured::Updated, a.id));
    let mut extra = c.extra_labels();
    extra.sort();
    assert_eq!(extra, vec!["gpu", "x64"]);
    assert_eq!(sim.scale_sets().len(), 1, "never a second scale set");
    // Every request went through the registration exchange once, with a registration token.
    let reqs = sim.requests();
    assert_eq!(
        reqs.iter()
            .filter(|r| r.ends_with("/actions/runner-registration"))
            .count(),
        1,
        "{reqs:?}"
    );
}

#[tokio::test]
async fn one_session_per_scale_set_and_a_second_is_refused_with_409() {
    let sim = fake(ScaleSetOptions {
        poll_hold: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let svc = service(&sim);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    let s = svc.create_session(set.id, "worker-1").await.unwrap();
    match svc.create_session(set.id, "worker-2").await {
        Err(SessionError::Conflict(why)) => assert!(why.contains("worker-1"), "{why}"),
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(svc.poll(&s, 0, 5).await.unwrap(), Polled::Empty);
    svc.delete_session(set.id, &s.id).await.unwrap();
    let again = svc.create_session(set.id, "worker-2").await.unwrap();
    // The old session is gone: its queue answers 404.
    assert!(matches!(
        svc.poll(&s, 0, 5).await,
        Err(SessionError::Gone(_))
    ));
    assert_eq!(sim.scale_set_counts().conflicts, 1);
    svc.delete_session(set.id, &again.id).await.unwrap();
}

#[tokio::test]
async fn a_job_is_offered_acquired_assigned_and_its_messages_come_again_until_deleted() {
    let sim = fake(ScaleSetOptions {
        poll_hold: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let svc = service(&sim);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    let s = svc.create_session(set.id, "w").await.unwrap();
    sim.queue_job("octo-org/app", &["linux-ss"]);
    let m = next(&svc, &s, 0).await;
    let jobs = job_messages(&m.body).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].message_type, "JobAvailable");
    assert_eq!(jobs[0].repository_name, "app");
    assert!(m.statistics.is_some());
    // Not deleted: the same message again, from the start and after an earlier id.
    assert_eq!(next(&svc, &s, 0).await.id, m.id);
    let id = jobs[0].runner_request_id;
    assert_eq!(svc.acquire(set.id, &s, &[id, 999]).await.unwrap(), vec![id]);
    svc.ack(&s, m.id).await.unwrap();
    let m2 = next(&svc, &s, m.id).await;
    let jobs = job_messages(&m2.body).unwrap();
    assert_eq!(jobs[0].message_type, "JobAssigned");
    assert_eq!(jobs[0].runner_request_id, id);
    assert!(sim.scale_set_counts().redelivered >= 1);
}

#[tokio::test]
async fn expired_queue_and_admin_tokens_are_renewed() {
    let sim = fake(ScaleSetOptions {
        poll_hold: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let svc = service(&sim);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    let s = svc.create_session(set.id, "w").await.unwrap();
    sim.expire_scale_set_tokens();
    assert!(matches!(
        svc.poll(&s, 0, 5).await,
        Err(SessionError::Expired)
    ));
    let s2 = svc.refresh_session(set.id, &s).await.unwrap();
    assert_eq!(s2.id, s.id);
    assert_eq!(svc.poll(&s2, 0, 5).await.unwrap(), Polled::Empty);
    let exchanges = |sim: &FakeGitHub| {
        sim.requests()
            .iter()
            .filter(|r| r.ends_with("/actions/runner-registration"))
            .count()
    };
    assert_eq!(
        exchanges(&sim),
        2,
        "the refresh found the admin token expired too"
    );
}

#[tokio::test]
async fn a_scale_set_s_jit_runner_is_listed_and_deleted_unless_busy() {
    let sim = fake(ScaleSetOptions::default()).await;
    let svc = service(&sim);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    let jit = svc
        .generate_jit(set.id, "rc-linux-ss-a", "_work")
        .await
        .unwrap();
    assert_eq!(jit.runner.runner_scale_set_id, set.id);
    assert!(!jit.encoded.expose().is_empty());
    // A used name: a conflict, which the life cycle resolves by name.
    assert!(matches!(
        svc.generate_jit(set.id, "rc-linux-ss-a", "_work").await,
        Err(runnerctl::forge::ForgeError::Conflict(_))
    ));
    let agents = svc.agents(set.id).await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].name, "rc-linux-ss-a");
    // Online and given a job, it cannot be deleted.
    sim.connect_runner(jit.encoded.expose()).unwrap();
    sim.queue_job("octo-org/app", &["linux-ss"]);
    let s = svc.create_session(set.id, "w").await.unwrap();
    let m = next(&svc, &s, 0).await;
    let id = job_messages(&m.body).unwrap()[0].runner_request_id;
    svc.acquire(set.id, &s, &[id]).await.unwrap();
    let busy = support::eventually(Duration::from_secs(5), || async {
        sim.runners().iter().any(|r| r.busy).then_some(())
    })
    .await;
    assert!(busy.is_some(), "the runner took the job");
    assert_eq!(
        svc.delete_agent(jit.runner.id).await.unwrap(),
        Deleted::Busy
    );
    let gone = support::eventually(Duration::from_secs(5), || async {
        sim.runners().is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the ephemeral runner left after its job");
    assert_eq!(
        svc.delete_agent(jit.runner.id).await.unwrap(),
        Deleted::NotFound
    );
}

#[tokio::test]
async fn a_job_no_runner_takes_is_taken_back_and_assigned_again_under_a_new_request() {
    let sim = fake(ScaleSetOptions {
        acquire: false,
        poll_hold: Duration::from_millis(100),
        reassign_after: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let svc = service(&sim);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    let s = svc.create_session(set.id, "w").await.unwrap();
    sim.queue_job("octo-org/app", &["linux-ss"]);
    let mut seen = Vec::new();
    let mut last = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && seen.len() < 3 {
        if let Polled::Message(m) = svc.poll(&s, last, 10).await.unwrap() {
            for j in job_messages(&m.body).unwrap() {
                seen.push((j.message_type, j.runner_request_id, j.job_id, j.result));
            }
            svc.ack(&s, m.id).await.unwrap();
            last = m.id;
        }
    }
    assert_eq!(seen[0].0, "JobAssigned", "assigned without an acquire call");
    assert_eq!(seen[1].0, "JobCompleted");
    assert_eq!(seen[1].3.as_deref(), Some("canceled"));
    assert_eq!(seen[2].0, "JobAssigned");
    assert_ne!(seen[2].1, seen[0].1, "a new request id");
    assert_eq!(seen[2].2, seen[0].2, "the same job");
}

/// The fake's answers have every field the contract's shapes have (recursively).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_service_answers_in_the_contract_s_shapes() {
    let sim = fake(ScaleSetOptions {
        poll_hold: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let contract = shape;
    let addr = sim.addr();
    let call = |method: &str, path: &str, auth: &str, body: &str| {
        let (status, _, text) = support::http(
            addr,
            method,
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
        )
    };
    let (st, reg) = call(
        "POST",
        "/orgs/octo-org/actions/runners/registration-token",
        &format!("Bearer {TOKEN}"),
        "",
    );
    assert_eq!(st, 201);
    assert_shape(
        &contract("registration-token.response.json"),
        &reg,
        "registration token",
    );
    let token = reg["token"].as_str().unwrap();
    let (st, ex) = call(
        "POST",
        "/actions/runner-registration",
        &format!("RemoteAuth {token}"),
        r#"{"url": "http://test/octo-org", "runner_event": "register"}"#,
    );
    assert_eq!(st, 201, "{ex}");
    assert_shape(
        &contract("runner-registration.response.json"),
        &ex,
        "exchange",
    );
    let admin = format!("Bearer {}", ex["token"].as_str().unwrap());
    let svc = "/_services/pipelines/_apis";
    let v = "api-version=6.0-preview";
    let (_, groups) = call(
        "GET",
        &format!("{svc}/runtime/runnergroups/?groupName=Default&{v}"),
        &admin,
        "",
    );
    assert_shape(
        &contract("runnergroups.response.json"),
        &groups,
        "runner groups",
    );
    let create = contract("scaleset.create.request.json").to_string();
    let (st, set) = call(
        "POST",
        &format!("{svc}/runtime/runnerscalesets?{v}"),
        &admin,
        &create,
    );
    assert_eq!(st, 200, "{set}");
    assert_shape(&contract("scaleset.response.json"), &set, "scale set");
    let id = set["id"].as_u64().unwrap();
    let name = set["name"].as_str().unwrap().to_string();
    let (_, list) = call(
        "GET",
        &format!("{svc}/runtime/runnerscalesets?runnerGroupId=1&name={name}&{v}"),
        &admin,
        "",
    );
    assert_shape(
        &contract("scalesets.list.response.json"),
        &list,
        "scale set list",
    );
    let (_, jit) = call(
        "POST",
        &format!("{svc}/runtime/runnerscalesets/{id}/generatejitconfig?{v}"),
        &admin,
        &contract("generatejitconfig.request.json").to_string(),
    );
    assert_shape(
        &contract("generatejitconfig.response.json"),
        &jit,
        "JIT config",
    );
    let (_, agents) = call(
        "GET",
        &format!("{svc}/distributedtask/pools/0/agents?{v}"),
        &admin,
        "",
    );
    assert_shape(&contract("agents.list.response.json"), &agents, "agents");
    let (st, session) = call(
        "POST",
        &format!("{svc}/runtime/runnerscalesets/{id}/sessions?{v}"),
        &admin,
        &contract("session.create.request.json").to_string(),
    );
    assert_eq!(st, 200);
    assert_shape(&contract("session.response.json"), &session, "session");
    let (st, conflict) = call(
        "POST",
        &format!("{svc}/runtime/runnerscalesets/{id}/sessions?{v}"),
        &admin,
        &contract("session.create.request.json").to_string(),
    );
    assert_eq!(st, 409);
    assert_shape(&contract("error.response.json"), &conflict, "error");
    // A message with every job message type of the contract.
    sim.queue_job("octo-org/app", &[&name]);
    let url = session["messageQueueUrl"]
        .as_str()
        .unwrap()
        .replace("http://test", "");
    let queue_token = format!(
        "Bearer {}",
        session["messageQueueAccessToken"].as_str().unwrap()
    );
    let mut message = serde_json::Value::Null;
    for _ in 0..50 {
        let (st, m) = call("GET", &url, &queue_token, "");
        if st == 200 {
            message = m;
            break;
        }
        assert_eq!(st, 202);
    }
    assert_shape(&contract("message.response.json"), &message, "message");
    let body: serde_json::Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
    let available = &contract("job-messages.json")[0];
    assert_shape(available, &body[0], "JobAvailable");
    let request = body[0]["runnerRequestId"].as_u64().unwrap();
    let (st, acquired) = call(
        "POST",
        &format!("{svc}/runtime/runnerscalesets/{id}/acquirejobs?{v}"),
        &queue_token,
        &format!("[{request}]"),
    );
    assert_eq!(st, 200);
    assert_shape(
        &contract("acquirejobs.response.json"),
        &acquired,
        "acquired",
    );
    // Without api-version: refused, as the service does.
    let (st, _) = call(
        "GET",
        &format!("{svc}/distributedtask/pools/0/agents"),
        &admin,
        "",
    );
    assert_eq!(st, 400);
}

/// Every key of `want` (recursively through objects, and the first element of arrays) is in
/// `got`.
fn assert_shape(want: &serde_json::Value, got: &serde_json::Value, what: &str) {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let Some(gv) = g.get(k) else {
                    panic!("{what}: no `{k}` in {got}");
                };
                if !wv.is_null() {
                    assert_shape(wv, gv, &format!("{what}.{k}"));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if let (Some(w0), Some(g0)) = (w.first(), g.first()) {
                assert_shape(w0, g0, &format!("{what}[0]"));
            }
        }
        (Value::Object(_), other) | (Value::Array(_), other) => {
            panic!("{what}: expected {want}, got {other}")
        }
        _ => {}
    }
}

/// A shape of the contract, from the copy in `tests/fixtures/scaleset`.
fn shape(file: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scaleset")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The copy of the contract's shapes is the contract's, where the contract is at hand.
#[test]
fn the_fixtures_are_the_contract_s_shapes() {
    let contract =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/contracts/scaleset");
    let Ok(files) = std::fs::read_dir(&contract) else {
        return; // a clone without the shared contracts beside it
    };
    for f in files.flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        if name.ends_with(".json") {
            let want: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
            assert_eq!(shape(&name), want, "{name}");
        }
    }
}

/// The two scale-set groups of the end-to-end run: (group, scale set, max_runners).
const SETS: [(&str, &str, u32); 2] = [("ss-small", "ss-small", 6), ("ss-large", "linux-large", 4)];

/// The pid in a worker's name (`HOST-PID-XXXX`).
fn pid_of(holder: &str) -> Option<u32> {
    let mut parts = holder.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// 300 jobs over two scale sets, `runnerctl worker` processes sharing Redis (AOF): the
/// session holders are killed with SIGKILL twice and Redis restarts once. Every job runs, at
/// most 1% of jobs' worth of runners never ran one, no group is ever above `max_runners`, and
/// nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_jobs_in_scale_set_mode_with_holders_killed_and_redis_restarted() {
    let jobs = 300;
    let mut redis = RedisServer::start_persistent();
    let name = support::manager_name("scale-set");
    let sim = Arc::new(
        FakeGitHub::start(FakeGitHubOptions {
            orgs: vec![("octo-org".into(), vec!["app".into(), "web".into()])],
            token: Some(TOKEN.into()),
            job_duration: Duration::from_millis(50),
            rate_limit: 1_000_000,
            scale_sets: ScaleSetOptions {
                acquire: true,
                poll_hold: Duration::from_secs(2),
                reassign_after: Duration::from_secs(30),
                session_timeout: Duration::from_secs(60),
                ..Default::default()
            },
            ..FakeGitHubOptions::default()
        })
        .await
        .unwrap(),
    );
    let mut text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token_env: SS_TOKEN\nredis:\n  url: {}\ntime_to_start: 30s\nhealthcheck_interval: 10s\nworker:\n  scale_set_lease: 3s\nqueue:\n  visibility_timeout: 2s\n  max_attempts: 20\n  retry_base: 1s\n  retry_max: 2s\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n",
        sim.url(),
        redis.url
    );
    for (g, set, max) in SETS {
        text.push_str(&format!(
            "  - name: {g}\n    organization: octo-org\n    labels: [{set}]\n    backend: fake\n    max_runners: {max}\n    mode: scale_set\n    scale_set: {{name: {set}}}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &text).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("SS_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    // `groups sync` makes the runner groups and the scale sets.
    let out = cli(&["groups", "sync", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let created: Vec<&str> = rows["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scope"].as_str().unwrap_or("").starts_with("scale set"))
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(created, vec!["create", "create"], "{rows}");
    assert_eq!(sim.scale_sets().len(), 2);

    let spawned = std::sync::atomic::AtomicUsize::new(0);
    let logs = dir.path().to_path_buf();
    let spawn_worker = || {
        let n = spawned.fetch_add(1, Ordering::Relaxed);
        let log = std::fs::File::create(logs.join(format!("worker-{n}.log"))).unwrap();
        std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config_path)
            .args(["worker", "--concurrency", "8"])
            .env("SS_TOKEN", TOKEN)
            .env("RUNNERCTL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<std::process::Child> = (0..2).map(|_| spawn_worker()).collect();

    // Sample capacity: Redis's slots, the scale sets' runners, the backend's instances.
    let s = RedisStore::new(store::connect(&redis.url).await.unwrap(), &name);
    let peak: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (s, peak, watching, sim) = (s.clone(), peak.clone(), watching.clone(), sim.clone());
        let backend = runnerctl::backend::fake::FakeBackend::new(
            "fake",
            &name,
            None,
            Some(store::connect(&redis.url).await.unwrap()),
        );
        let name = name.clone();
        tokio::spawn(async move {
            use runnerctl::backend::Backend;
            while watching.load(Ordering::Relaxed) {
                let registered = sim.runners();
                let instances = backend.list().await.unwrap_or_default();
                for (g, _, _) in SETS {
                    let held = s.held(g).await.unwrap_or(0);
                    let prefix = format!("{name}-{g}-");
                    let on_github = registered
                        .iter()
                        .filter(|r| r.name.starts_with(&prefix))
                        .count() as u32;
                    let on_backend =
                        instances.iter().filter(|i| i.group() == Some(g)).count() as u32;
                    let mut p = peak.lock().unwrap();
                    let e = p.entry(g.to_string()).or_default();
                    *e = (*e).max(held).max(on_github).max(on_backend);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let repos = ["octo-org/app", "octo-org/web"];
    for i in 0..jobs {
        sim.queue_job(repos[i % 2], &[SETS[i % 2].1]);
    }
    let start = Instant::now();
    let mut kills = 0;
    let mut restarted = false;
    let mut taken_over: Vec<String> = Vec::new();
    loop {
        let all = sim.jobs();
        let done = all
            .iter()
            .filter(|j| j.status == JobStatus::Completed)
            .count();
        if done == jobs {
            break;
        }
        let due_kill = (kills == 0 && done >= jobs / 4) || (kills == 1 && done >= 3 * jobs / 4);
        if due_kill {
            // SIGKILL every worker holding a session, then start another, as systemd would.
            let mut holders = Vec::new();
            for (_, set, _) in SETS {
                if let Some(h) = s.scale_set_state(set).await.ok().and_then(|st| st.holder) {
                    holders.push(h);
                }
            }
            for w in workers.iter_mut() {
                if holders.iter().any(|h| pid_of(h) == Some(w.id())) {
                    let _ = w.kill();
                    let _ = w.wait();
                    *w = spawn_worker();
                }
            }
            taken_over.extend(holders);
            kills += 1;
        }
        if !restarted && done >= jobs / 2 {
            redis.restart();
            restarted = true;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let mut said = String::new();
            for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    said.push_str(&text.lines().rev().take(40).collect::<Vec<_>>().join("\n"));
                }
            }
            let q = runnerctl::queue::Queue::new(
                store::connect(&redis.url).await.unwrap(),
                &name,
                Default::default(),
            );
            let mut waiting = Vec::new();
            for (g, _, _) in SETS {
                waiting.push((g, s.waiting_jobs(g).await.unwrap_or_default()));
            }
            panic!(
                "only {done} of {jobs} jobs completed; fake: {:?}\nits scale-set jobs (job, set, request, phase, attempts, held): {:?}\nits runners: {:?}\nrecords: {:?}\nwaiting: {waiting:?}\ntasks: {:?}\nstate: {:?}\nlogs:\n{said}",
                sim.scale_set_counts(),
                sim.scale_set_jobs().iter().filter(|j| !j.5).collect::<Vec<_>>(),
                sim.runners().iter().map(|r| (&r.name, r.online, r.busy, r.scale_set)).collect::<Vec<_>>(),
                s.all_runners().await.unwrap().iter().map(|r| (&r.name, r.status, r.created_for_job, r.job_id)).collect::<Vec<_>>(),
                q.list().await.unwrap_or_default().iter().map(|t| (t.kind.clone(), t.state, t.attempt, t.error.clone())).collect::<Vec<_>>(),
                (s.scale_set_state(SETS[0].1).await.ok(), s.scale_set_state(SETS[1].1).await.ok()),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kills, 2, "the holders were killed twice");

    // Then nothing is left: records, slots, instances, runners of the scale sets.
    let backend = runnerctl::backend::fake::FakeBackend::new(
        "fake",
        &name,
        None,
        Some(store::connect(&redis.url).await.unwrap()),
    );
    let clean = support::eventually(Duration::from_secs(60), || async {
        use runnerctl::backend::Backend;
        let records = s.all_runners().await.ok()?;
        let instances = backend.list().await.ok()?;
        (records.is_empty() && instances.is_empty() && sim.runners().is_empty()).then_some(())
    })
    .await;
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    assert!(
        clean.is_some(),
        "left over: records {:?}, runners {:?}",
        s.all_runners()
            .await
            .unwrap()
            .iter()
            .map(|r| (&r.name, r.status))
            .collect::<Vec<_>>(),
        sim.runners()
    );
    for (g, _, max) in SETS {
        let p = peak.lock().unwrap()[g];
        assert!(p <= max, "group {g} held {p}, max_runners {max}");
        assert!(p > 0, "group {g} was used");
    }
    let queue = runnerctl::queue::Queue::new(
        store::connect(&redis.url).await.unwrap(),
        &name,
        Default::default(),
    );
    assert!(
        queue.dead().await.unwrap().is_empty(),
        "no task or message failed for good"
    );
    let regs = sim.registrations();
    let wasted = regs.iter().filter(|r| !r.2).count();
    let mut waits: Vec<f64> = sim
        .jobs()
        .iter()
        .filter_map(|j| Some(j.started_at?.duration_since(j.queued_at).as_secs_f64()))
        .collect();
    waits.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| waits[((waits.len() as f64 - 1.0) * q).round() as usize];
    let counts = sim.scale_set_counts();
    let mut fences = 0;
    for (_, set, _) in SETS {
        fences += s.scale_set_state(set).await.unwrap().fence;
    }
    println!(
        "scale-set mode: {jobs} jobs, job wait p50 {:.2} s, p95 {:.2} s, max {:.2} s; {} registrations, {wasted} never ran a job ({:.1}% of jobs); messages redelivered {}; jobs taken back {}; sessions opened {}, 409s {}; leases taken {fences} ({} taken over from killed holders); peaks {:?}",
        at(0.5),
        at(0.95),
        at(1.0),
        regs.len(),
        100.0 * wasted as f64 / jobs as f64,
        counts.redelivered,
        counts.reassigned,
        counts.sessions_created,
        counts.conflicts,
        taken_over.len(),
        peak.lock().unwrap()
    );
    assert!(wasted * 100 <= jobs, "{wasted} runners never ran a job");
    // No token of GitHub's in the workers' logs: the PAT, registration tokens, the admin JWT,
    // queue tokens.
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for secret in [TOKEN, "RemoteAuth", "eyJ0eXAi", "\"QT"] {
            assert!(
                !text.contains(secret),
                "`{secret}` in {}",
                entry.path().display()
            );
        }
        assert!(
            !text.contains("REG")
                || !text
                    .split("REG")
                    .skip(1)
                    .any(|t| t.len() >= 16 && t[..16].chars().all(|c| c.is_ascii_hexdigit())),
            "a registration token in {}",
            entry.path().display()
        );
    }
    // `doctor` sees both scale sets, each held by a worker; `groups sync` changes nothing.
    let out = cli(&["doctor", "-o", "json"]);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (_, set, _) in SETS {
        let c = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == format!("scale set {set}"))
            .unwrap_or_else(|| panic!("no check of {set}: {checks}"));
        assert_eq!(c["status"], "ok", "{c}");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains("session held by worker"),
            "{c}"
        );
    }
    let out = cli(&["groups", "sync", "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rows["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "unchanged"),
        "{rows}"
    );
    assert!(
        fences >= 2 + taken_over.len() as u64,
        "every killed holder's lease was taken over"
    );
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
}

/// A configuration with one scale-set group in the Default runner group, its listener as
/// worker `holder`, and the task queue it records into.
async fn listener_world(
    sim: &FakeGitHub,
    redis: &RedisServer,
    name: &str,
    holder: &str,
) -> (runnerctl::listener::Listener, runnerctl::queue::Queue) {
    let text = format!(
        "name: {name}\ngithub:\n  base_url: {}\n  token: {TOKEN}\nredis:\n  url: {}\nworker:\n  scale_set_lease: 2s\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: ss\n    organization: octo-org\n    labels: [linux-ss]\n    backend: fake\n    max_runners: 3\n    mode: scale_set\n    scale_set: {{name: linux-ss, runner_group: Default}}\n",
        sim.url(),
        redis.url
    );
    let config = runnerctl::wiring::parse(&text, "t").unwrap().config;
    let conn = store::connect(&redis.url).await.unwrap();
    let queue = runnerctl::queue::Queue::new(conn.clone(), name, Default::default());
    queue.ensure_group().await.unwrap();
    let mut l = runnerctl::wiring::listeners(&config, conn, &queue, holder).unwrap();
    (l.remove(0), queue)
}

async fn tasks_of(queue: &runnerctl::queue::Queue, kind: &str) -> usize {
    queue
        .list()
        .await
        .unwrap()
        .iter()
        .filter(|t| t.kind == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_off_holder_stops_at_once_and_another_takes_the_session_over() {
    let redis = RedisServer::start();
    let sim = fake(ScaleSetOptions {
        poll_hold: Duration::from_millis(500),
        // GitHub's newer behaviour: assigned without an acquire call.
        acquire: false,
        ..Default::default()
    })
    .await;
    let name = support::manager_name("ss-fence");
    let (a, queue) = listener_world(&sim, &redis, &name, "host-1-aaaa").await;
    let (b, _) = listener_world(&sim, &redis, &name, "host-2-bbbb").await;
    // No `groups sync`: the listener creates the scale set it does not find.
    assert!(sim.scale_sets().is_empty());
    let st = RedisStore::new(store::connect(&redis.url).await.unwrap(), &name);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let a_task = tokio::spawn(a.run(stop_rx.clone()));
    let held = support::eventually(Duration::from_secs(10), || async {
        let s = st.scale_set_state("linux-ss").await.ok()?;
        (s.holder.as_deref() == Some("host-1-aaaa") && s.session_id.is_some()).then_some(s)
    })
    .await
    .expect("the first listener holds the session");
    assert_eq!(held.fence, 1);
    assert_eq!(sim.scale_sets().len(), 1, "created by the listener");
    // B waits while A holds the lease.
    let b_task = tokio::spawn(b.run(stop_rx.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = st.scale_set_state("linux-ss").await.unwrap();
    assert_eq!(
        s.holder.as_deref(),
        Some("host-1-aaaa"),
        "one holder at a time"
    );
    assert_eq!(sim.scale_set_counts().sessions_created, 1);
    // A's lease is taken from it (as when Redis failed over without it, or A was paused past
    // its lease) by an intruder that opens no session: A stops acting at once (within a
    // third of the lease), deletes its own session and records nothing more.
    let conn = store::connect(&redis.url).await.unwrap();
    let mut c = conn.clone();
    let key = format!("{}lock:scaleset:linux-ss", runnerctl::store::prefix(&name));
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    let intruder = st
        .scale_set_acquire("linux-ss", "intruder", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the intruder takes the free lease");
    assert_eq!(intruder.fence, 2);
    let stopped = support::eventually(Duration::from_secs(3), || async {
        (sim.scale_set_counts().open_sessions == 0).then_some(())
    })
    .await;
    assert!(
        stopped.is_some(),
        "A deleted its session: {:?}",
        sim.scale_set_counts()
    );
    sim.queue_job("octo-org/app", &["linux-ss"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        tasks_of(&queue, "job_queued").await,
        0,
        "nobody records while the intruder holds the lease"
    );
    assert!(
        !st.scale_set_commit(
            "linux-ss",
            &runnerctl::store::Lease {
                token: "host-1-aaaa/0".into(),
                fence: 1
            },
            &[("last_message_id", "999".into())]
        )
        .await
        .unwrap(),
        "a write without the lease is refused"
    );
    // The intruder lets go: one of A and B takes the lease (fence 3) and records the job once.
    st.scale_set_release("linux-ss", &intruder).await.unwrap();
    let taken = support::eventually(Duration::from_secs(10), || async {
        let s = st.scale_set_state("linux-ss").await.ok()?;
        (s.fence == 3 && s.holder.as_deref() != Some("intruder")).then_some(s)
    })
    .await
    .expect("a listener takes the lease again");
    let recorded = support::eventually(Duration::from_secs(10), || async {
        (tasks_of(&queue, "job_queued").await == 1).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "the assigned job is recorded, once");
    let s = st.scale_set_state("linux-ss").await.unwrap();
    assert_eq!(s.holder, taken.holder);
    assert!(s.last_message_id > 0 && s.last_message_id != 999);
    assert_eq!(sim.scale_set_counts().open_sessions, 1);
    stop_tx.send(true).unwrap();
    a_task.await.unwrap();
    b_task.await.unwrap();
    // Stopping deletes the session and gives the lease up.
    assert_eq!(sim.scale_set_counts().open_sessions, 0);
    assert_eq!(st.scale_set_state("linux-ss").await.unwrap().holder, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_409_is_waited_out_a_malformed_message_dead_lettered_and_expired_tokens_renewed() {
    let redis = RedisServer::start();
    let sim = fake(ScaleSetOptions {
        poll_hold: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let name = support::manager_name("ss-409");
    let (l, queue) = listener_world(&sim, &redis, &name, "host-1-aaaa").await;
    let routed = l.routed.clone();
    runnerctl::manager::sync::scale_sets(std::slice::from_ref(&routed), false).await;
    let id = routed.id().await.unwrap();
    // Someone else's session is open: the listener waits it out.
    let other = routed
        .service
        .create_session(id, "someone-else")
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(l.run(stop_rx));
    let waited = support::eventually(Duration::from_secs(10), || async {
        (sim.scale_set_counts().conflicts >= 2).then_some(())
    })
    .await;
    assert!(waited.is_some(), "409s answered, and asked again");
    assert!(!task.is_finished(), "a 409 is no crash");
    routed.service.delete_session(id, &other.id).await.unwrap();
    let open = support::eventually(Duration::from_secs(30), || async {
        (sim.scale_set_counts().sessions_created == 2).then_some(())
    })
    .await;
    assert!(
        open.is_some(),
        "the listener opened its session once the other was gone"
    );
    // A malformed message: dead-lettered with its id, the session goes on.
    let bad = sim.inject_scale_set_message(id, "{this is not job messages");
    let dead = support::eventually(Duration::from_secs(10), || async {
        let dead = queue.dead().await.ok()?;
        dead.iter()
            .find(|t| t.kind == "scale_set_message")
            .map(|t| t.error.clone())
    })
    .await
    .expect("the malformed message is in the dead letters");
    assert!(dead.unwrap_or_default().contains("not job messages"));
    let st = RedisStore::new(store::connect(&redis.url).await.unwrap(), &name);
    assert!(
        st.scale_set_state("linux-ss")
            .await
            .unwrap()
            .last_message_id
            >= bad
    );
    sim.queue_job("octo-org/app", &["linux-ss"]);
    let recorded = support::eventually(Duration::from_secs(10), || async {
        (tasks_of(&queue, "job_queued").await == 1).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "the session went on");
    // Every token expires: the queue's 401 refreshes the session, the admin token is
    // exchanged again, and the next job is recorded too.
    sim.expire_scale_set_tokens();
    sim.queue_job("octo-org/web", &["linux-ss"]);
    let recorded = support::eventually(Duration::from_secs(10), || async {
        (tasks_of(&queue, "job_queued").await == 2).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "recorded after the tokens expired");
    assert_eq!(
        sim.scale_set_counts().sessions_created,
        2,
        "refreshed, not reopened"
    );
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    // No token in Redis, in clear or otherwise.
    let dump = support::redis_dump(&redis.url, "*").await;
    for secret in [TOKEN, "QT", "RemoteAuth", "eyJ0eXAi"] {
        assert!(!dump.contains(secret), "`{secret}` in Redis:\n{dump}");
    }
}

#[tokio::test]
async fn github_enterprise_server_and_an_app_installation_work_too() {
    let key = |f: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/github-app/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        app: Some(runnerctl::forge::fake::FakeApp {
            app_id: 4242,
            installation_id: 77,
            public_key_pem: key("app-key.pub.pem"),
        }),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    // GHES serves the API under /api/v3; the exchange goes to the same root.
    let gh = GitHub::new(
        &format!("{}/api/v3", sim.url()),
        Auth::App {
            app_id: 4242,
            installation_id: 77,
            private_key: Secret::new(key("app-key.pem")),
        },
    )
    .unwrap();
    let svc = ActionsService::new(Arc::new(gh), Scope::Org("octo-org".into())).unwrap();
    let (set, how) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    assert_eq!(how, Ensured::Created);
    let s = svc.create_session(set.id, "w").await.unwrap();
    svc.delete_session(set.id, &s.id).await.unwrap();
    let reqs = sim.requests();
    assert!(
        reqs.iter()
            .any(|r| r == "POST /api/v3/orgs/octo-org/actions/runners/registration-token"),
        "{reqs:?}"
    );
    assert!(sim.token_requests() >= 1, "an installation token was made");
}

/// Regression: the service lists a scale set's runners without a status, and a runner whose
/// creation was interrupted before its instance was made (its worker killed) looked online
/// forever, so nothing replaced it and its job waited. The forge now takes the status from
/// GitHub's REST listing: offline until the runner connects.
#[tokio::test]
async fn a_scale_set_runner_that_never_connected_is_listed_offline() {
    use runnerctl::forge::RunnerRegistry;
    let sim = fake(ScaleSetOptions::default()).await;
    let gh = Arc::new(GitHub::new(&sim.url(), Auth::Token(Secret::new(TOKEN))).unwrap());
    let parent = Scope::Org("octo-org".into());
    let svc: Arc<dyn ScaleSets> =
        Arc::new(ActionsService::new(gh.clone(), parent.clone()).unwrap());
    let routed = Arc::new(runnerctl::forge::scaleset::Routed::new(
        "ss",
        parent,
        spec(&[]),
        svc.clone(),
    ));
    let forge = runnerctl::forge::scaleset::ScaleSetForge::new(gh, vec![routed.clone()]);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    routed.know(set.id);
    let scope = routed.scope();
    let req = runnerctl::forge::RunnerRequest {
        name: "rc-ss-a",
        runner_group_id: None,
        labels: &[],
        work_folder: "_work",
        app: None,
    };
    let runnerctl::forge::Registration::Jit(jit) = forge.register(&scope, &req).await.unwrap()
    else {
        panic!("a scale set's runner is a JIT runner");
    };
    let listed = forge.list_runners(&scope).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].online(), "not connected yet: offline");
    sim.connect_runner(jit.encoded.expose()).unwrap();
    let listed = forge.list_runners(&scope).await.unwrap();
    assert!(listed[0].online() && !listed[0].busy);
    assert_eq!(
        forge.delete_runner(&scope, listed[0].id).await.unwrap(),
        Deleted::Deleted
    );
    assert!(forge.list_runners(&scope).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_service_in_trouble_is_asked_again() {
    let sim = fake(ScaleSetOptions::default()).await;
    let svc = service(&sim);
    // The first two requests (the registration exchange) answered 503: tried again, 1 s then
    // 2 s later.
    sim.fail_scale_set_requests(2);
    let started = Instant::now();
    let (set, how) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    assert_eq!(how, Ensured::Created);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.ends_with("(503)"))
            .count(),
        2
    );
    // Five 503s in a row: the call gives up with a transient error, to be tried later.
    sim.fail_scale_set_requests(5);
    let e = svc.agents(set.id).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
}
