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
use std::sync::Arc;
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
    assert!(matches!(svc.poll(&s, 0, 5).await, Err(SessionError::Gone(_))));
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
    assert!(matches!(svc.poll(&s, 0, 5).await, Err(SessionError::Expired)));
    let s2 = svc.refresh_session(set.id, &s).await.unwrap();
    assert_eq!(s2.id, s.id);
    assert_eq!(svc.poll(&s2, 0, 5).await.unwrap(), Polled::Empty);
    let exchanges = |sim: &FakeGitHub| {
        sim.requests()
            .iter()
            .filter(|r| r.ends_with("/actions/runner-registration"))
            .count()
    };
    assert_eq!(exchanges(&sim), 2, "the refresh found the admin token expired too");
}

#[tokio::test]
async fn a_scale_set_s_jit_runner_is_listed_and_deleted_unless_busy() {
    let sim = fake(ScaleSetOptions::default()).await;
    let svc = service(&sim);
    let (set, _) = svc.ensure_scale_set(&spec(&[])).await.unwrap();
    let jit = svc.generate_jit(set.id, "rc-linux-ss-a", "_work").await.unwrap();
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
    assert_eq!(svc.delete_agent(jit.runner.id).await.unwrap(), Deleted::Busy);
    let gone = support::eventually(Duration::from_secs(5), || async {
        sim.runners().is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the ephemeral runner left after its job");
    assert_eq!(svc.delete_agent(jit.runner.id).await.unwrap(), Deleted::NotFound);
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
            &[("Authorization", auth), ("Content-Type", "application/json")],
            body.as_bytes(),
        );
        (status, serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default())
    };
    let (st, reg) = call("POST", "/orgs/octo-org/actions/runners/registration-token", &format!("Bearer {TOKEN}"), "");
    assert_eq!(st, 201);
    assert_shape(&contract("registration-token.response.json"), &reg, "registration token");
    let token = reg["token"].as_str().unwrap();
    let (st, ex) = call(
        "POST",
        "/actions/runner-registration",
        &format!("RemoteAuth {token}"),
        r#"{"url": "http://test/octo-org", "runner_event": "register"}"#,
    );
    assert_eq!(st, 201, "{ex}");
    assert_shape(&contract("runner-registration.response.json"), &ex, "exchange");
    let admin = format!("Bearer {}", ex["token"].as_str().unwrap());
    let svc = "/_services/pipelines/_apis";
    let v = "api-version=6.0-preview";
    let (_, groups) = call("GET", &format!("{svc}/runtime/runnergroups/?groupName=Default&{v}"), &admin, "");
    assert_shape(&contract("runnergroups.response.json"), &groups, "runner groups");
    let create = contract("scaleset.create.request.json").to_string();
    let (st, set) = call("POST", &format!("{svc}/runtime/runnerscalesets?{v}"), &admin, &create);
    assert_eq!(st, 200, "{set}");
    assert_shape(&contract("scaleset.response.json"), &set, "scale set");
    let id = set["id"].as_u64().unwrap();
    let name = set["name"].as_str().unwrap().to_string();
    let (_, list) = call("GET", &format!("{svc}/runtime/runnerscalesets?runnerGroupId=1&name={name}&{v}"), &admin, "");
    assert_shape(&contract("scalesets.list.response.json"), &list, "scale set list");
    let (_, jit) = call(
        "POST",
        &format!("{svc}/runtime/runnerscalesets/{id}/generatejitconfig?{v}"),
        &admin,
        &contract("generatejitconfig.request.json").to_string(),
    );
    assert_shape(&contract("generatejitconfig.response.json"), &jit, "JIT config");
    let (_, agents) = call("GET", &format!("{svc}/distributedtask/pools/0/agents?{v}"), &admin, "");
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
    sim.queue_job(&format!("octo-org/app"), &[&name]);
    let url = session["messageQueueUrl"].as_str().unwrap().replace("http://test", "");
    let queue_token = format!("Bearer {}", session["messageQueueAccessToken"].as_str().unwrap());
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
    assert_shape(&contract("acquirejobs.response.json"), &acquired, "acquired");
    // Without api-version: refused, as the service does.
    let (st, _) = call("GET", &format!("{svc}/distributedtask/pools/0/agents"), &admin, "");
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
    let contract = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/contracts/scaleset");
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
