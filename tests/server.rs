//! `runnerctl serve` against a real Redis: signature, rejections, deduplication, readiness,
//! shutdown, and abuse that must not bring it down.

mod support;

use runnerctl::config;
use runnerctl::queue::{Queue, QueueOptions, Task};
use runnerctl::server::webhook::{self, Delivery, Outcome};
use runnerctl::server::{self, State};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{fixture, http, manager_name, RedisServer};

const SECRET: &str = "It's a Secret to Everybody";

fn groups_config(name: &str, redis: &str) -> config::Config {
    let text = format!(
        "name: {name}\ngithub:\n  token_env: T\nredis:\n  url: {redis}\nwebhook:\n  secret_env: S\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: k8s\n    organization: lineville\n    labels: [self-hosted, k8s, linux]\n    backend: fake\n  - name: gpu\n    organization: octo-org\n    labels: [self-hosted, gpu, db-app, dc-03]\n    backend: fake\n"
    );
    runnerctl::wiring::parse(&text, "t").unwrap().config
}

struct Running {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    queue: Queue,
    name: String,
}

impl Running {
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.done)
            .await
            .expect("serve stops")
            .unwrap();
    }
}

async fn start(redis: &RedisServer, test: &str) -> Running {
    start_with(redis, test, |s| s).await
}

async fn start_with(redis: &RedisServer, test: &str, tune: impl FnOnce(State) -> State) -> Running {
    let name = manager_name(test);
    let c = groups_config(&name, &redis.url);
    let state = Arc::new(tune(State::new(
        &runnerctl::forge::github::webhook::GITHUB,
        config::Secret::new(SECRET),
        &name,
        c.runner_groups.clone(),
        &redis.url,
        QueueOptions::default(),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = tokio::spawn(server::serve(listener, None, state.clone(), async {
        let _ = rx.await;
    }));
    let queue = Queue::new(
        runnerctl::store::connect(&redis.url).await.unwrap(),
        &name,
        QueueOptions::default(),
    );
    Running {
        addr,
        state,
        stop: Some(tx),
        done,
        queue,
        name,
    }
}

/// POSTs a signed delivery from a blocking thread; returns (status, body).
async fn deliver(addr: SocketAddr, event: &str, id: &str, body: Vec<u8>) -> (u16, String) {
    let (event, id) = (event.to_string(), id.to_string());
    tokio::task::spawn_blocking(move || {
        let sig = runnerctl::forge::github::webhook::sign(SECRET.as_bytes(), &body);
        let (status, _, text) = http(
            addr,
            "POST",
            "/webhook",
            &[
                ("X-GitHub-Event", event.as_str()),
                ("X-GitHub-Delivery", id.as_str()),
                ("X-Hub-Signature-256", &sig),
                ("Content-Type", "application/json"),
            ],
            &body,
        );
        (status, text)
    })
    .await
    .unwrap()
}

async fn get(addr: SocketAddr, path: &'static str) -> (u16, String) {
    get_with(addr, path, None).await
}

async fn get_with(addr: SocketAddr, path: &'static str, bearer: Option<&str>) -> (u16, String) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let (s, _, b) = http(addr, "GET", path, &headers, b"");
        (s, b)
    })
    .await
    .unwrap()
}

async fn tasks(q: &Queue) -> Vec<serde_json::Value> {
    q.list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task)
        .collect()
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_become_the_right_tasks() {
    let redis = RedisServer::start();
    let s = start(&redis, "fixtures").await;
    // A queued job whose labels a group has: one JobQueued task. The fixture's action is
    // `queued` while its status says `waiting`: the action decides.
    let queued = fixture("workflow_job.queued.2");
    assert_eq!(queued["workflow_job"]["status"], "waiting");
    assert_eq!(
        deliver(s.addr, "workflow_job", "d-1", bytes(&queued)).await,
        (202, "queued\n".into())
    );
    // `waiting` of the same job is the same demand: a duplicate of its `queued`, whatever
    // the delivery id.
    let waiting = fixture("workflow_job.waiting.1");
    assert_eq!(waiting["workflow_job"]["id"], queued["workflow_job"]["id"]);
    assert_eq!(
        deliver(s.addr, "workflow_job", "d-2", bytes(&waiting)).await,
        (202, "already queued\n".into())
    );
    // GitHub-hosted jobs and runners that are not ours: accepted, nothing enqueued.
    for (f, id, why) in [
        (
            "workflow_job.queued.1",
            "d-3",
            "no runner group has these labels",
        ),
        (
            "workflow_job.in_progress.1",
            "d-4",
            "the job runs on a runner that is not ours",
        ),
        (
            "workflow_job.in_progress.2",
            "d-5",
            "the job runs on a runner that is not ours",
        ),
        (
            "workflow_job.completed.1",
            "d-6",
            "the job ran on a runner that is not ours",
        ),
    ] {
        assert_eq!(
            deliver(s.addr, "workflow_job", id, bytes(&fixture(f))).await,
            (202, format!("{why}\n")),
            "{f}"
        );
    }
    // The same jobs on one of our runners are ours.
    let ours = format!("{}-gpu-0a1b2c", s.name);
    let mut started = fixture("workflow_job.in_progress.1");
    started["workflow_job"]["runner_name"] = ours.clone().into();
    assert_eq!(
        deliver(s.addr, "workflow_job", "d-7", bytes(&started))
            .await
            .0,
        202
    );
    let mut done = fixture("workflow_job.completed.1");
    done["workflow_job"]["runner_name"] = ours.clone().into();
    assert_eq!(
        deliver(s.addr, "workflow_job", "d-8", bytes(&done)).await.0,
        202
    );

    let got = tasks(&s.queue).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0]["type"], "job_queued");
    assert_eq!(got[0]["group"], "k8s");
    assert_eq!(got[0]["job_id"], 12877621891u64);
    assert_eq!(got[0]["repository"], "lineville/elastic-machines-testing");
    assert_eq!(got[1]["type"], "job_in_progress");
    assert_eq!(got[1]["runner_name"], ours.as_str());
    assert_eq!(got[1]["runner_group_id"], 2);
    assert_eq!(got[2]["type"], "job_completed");
    assert_eq!(got[2]["conclusion"], "failure");
    assert_eq!(s.state.metrics.count(Outcome::Enqueued), 3);
    assert_eq!(s.state.metrics.count(Outcome::Duplicate), 1);
    assert_eq!(s.state.metrics.count(Outcome::Unmatched), 1);
    assert_eq!(s.state.metrics.count(Outcome::NotOurs), 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_is_deduplicated() {
    let redis = RedisServer::start();
    let s = start(&redis, "redeliver").await;
    let body = bytes(&fixture("workflow_job.queued.2"));
    assert_eq!(
        deliver(s.addr, "workflow_job", "guid-1", body.clone()).await,
        (202, "queued\n".into())
    );
    assert_eq!(
        deliver(s.addr, "workflow_job", "guid-1", body.clone()).await,
        (202, "already queued\n".into())
    );
    assert_eq!(tasks(&s.queue).await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_class() {
    let redis = RedisServer::start();
    let s = start(&redis, "reject").await;
    let addr = s.addr;
    let good = bytes(&fixture("workflow_job.queued.2"));
    let run = move |method: &'static str,
                    path: &'static str,
                    headers: Vec<(String, String)>,
                    body: Vec<u8>| {
        tokio::task::spawn_blocking(move || {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (st, head, b) = http(addr, method, path, &h, &body);
            (st, head, b)
        })
    };
    let hdr = |sig: &str, event: &str, id: &str| {
        vec![
            ("X-Hub-Signature-256".to_string(), sig.to_string()),
            ("X-GitHub-Event".to_string(), event.to_string()),
            ("X-GitHub-Delivery".to_string(), id.to_string()),
        ]
    };
    // 401: no signature, a wrong one, or one over other bytes. Garbage unsigned is 401, not 400:
    // the signature is checked before the body is looked at.
    let (st, _, b) = run(
        "POST",
        "/webhook",
        vec![("X-GitHub-Event".into(), "workflow_job".into())],
        good.clone(),
    )
    .await
    .unwrap();
    assert_eq!((st, b.as_str()), (401, "missing X-Hub-Signature-256\n"));
    let (st, _, _) = run(
        "POST",
        "/webhook",
        hdr("sha256=00", "workflow_job", "x"),
        good.clone(),
    )
    .await
    .unwrap();
    assert_eq!(st, 401);
    let other = runnerctl::forge::github::webhook::sign(SECRET.as_bytes(), b"{}");
    let (st, _, b) = run(
        "POST",
        "/webhook",
        hdr(&other, "workflow_job", "x"),
        b"{not json".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!((st, b.as_str()), (401, "bad signature\n"));
    // 400: malformed JSON, a missing field, a missing delivery id, a missing event.
    let sign = |b: &[u8]| runnerctl::forge::github::webhook::sign(SECRET.as_bytes(), b);
    let (st, _, b) = run(
        "POST",
        "/webhook",
        hdr(&sign(b"{not json"), "workflow_job", "x"),
        b"{not json".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(st, 400);
    assert!(b.starts_with("invalid payload"), "{b}");
    let mut missing = fixture("workflow_job.queued.2");
    missing["workflow_job"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    let m = bytes(&missing);
    let (st, _, b) = run(
        "POST",
        "/webhook",
        hdr(&sign(&m), "workflow_job", "x"),
        m.clone(),
    )
    .await
    .unwrap();
    assert_eq!(st, 400);
    assert!(b.contains("missing field `labels`"), "{b}");
    let mut wrong = fixture("workflow_job.queued.2");
    wrong["workflow_job"]["id"] = "seven".into();
    let w = bytes(&wrong);
    let (st, _, b) = run(
        "POST",
        "/webhook",
        hdr(&sign(&w), "workflow_job", "x"),
        w.clone(),
    )
    .await
    .unwrap();
    assert_eq!(st, 400);
    assert!(b.contains("`workflow_job.id`"), "{b}");
    let (st, _, b) = run(
        "POST",
        "/webhook",
        vec![
            ("X-Hub-Signature-256".into(), sign(&good)),
            ("X-GitHub-Event".into(), "workflow_job".into()),
        ],
        good.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        (st, b.as_str()),
        (400, "missing or invalid X-GitHub-Delivery\n")
    );
    let (st, _, b) = run(
        "POST",
        "/webhook",
        vec![("X-Hub-Signature-256".into(), sign(&good))],
        good.clone(),
    )
    .await
    .unwrap();
    assert_eq!((st, b.as_str()), (400, "missing X-GitHub-Event\n"));
    // 405 and 404.
    let (st, head, _) = run("GET", "/webhook", vec![], vec![]).await.unwrap();
    assert_eq!(st, 405);
    assert!(head.to_lowercase().contains("allow: post"), "{head}");
    assert_eq!(run("PUT", "/webhook", vec![], vec![]).await.unwrap().0, 405);
    assert_eq!(run("GET", "/nope", vec![], vec![]).await.unwrap().0, 404);
    // 200 for ping, 202 for other events, with nothing enqueued.
    let ping = bytes(&fixture("ping"));
    let (st, _, b) = run(
        "POST",
        "/webhook",
        hdr(&sign(&ping), "ping", "p"),
        ping.clone(),
    )
    .await
    .unwrap();
    assert_eq!((st, b.as_str()), (200, "pong\n"));
    let (st, _, b) = run(
        "POST",
        "/webhook",
        hdr(&sign(b"{}"), "push", "p2"),
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!((st, b.as_str()), (202, "event not handled\n"));
    let mut requested = fixture("workflow_job.queued.2");
    requested["action"] = "requested".into();
    let r = bytes(&requested);
    let (st, _, b) = run("POST", "/webhook", hdr(&sign(&r), "workflow_job", "p3"), r)
        .await
        .unwrap();
    assert_eq!((st, b.as_str()), (202, "action not handled\n"));
    assert!(tasks(&s.queue).await.is_empty(), "nothing was enqueued");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_unread_and_serve_survives() {
    let redis = RedisServer::start();
    let s = start(&redis, "big").await;
    let addr = s.addr;
    // Declared far beyond 25 MiB, with no body sent at all: the answer comes without reading.
    for declared in ["26214401", "1099511627776"] {
        let (st, head, _) = tokio::task::spawn_blocking(move || {
            http(
                addr,
                "POST",
                "/webhook",
                &[
                    ("Content-Length", declared),
                    ("X-GitHub-Event", "workflow_job"),
                ],
                b"",
            )
        })
        .await
        .unwrap();
        assert_eq!(st, 413, "declared {declared}: {head}");
        assert!(head.to_lowercase().contains("connection: close"), "{head}");
    }
    // A length hyper cannot even represent is refused by hyper itself, also unread.
    let (st, _, _) = tokio::task::spawn_blocking(move || {
        http(
            addr,
            "POST",
            "/webhook",
            &[("Content-Length", "18446744073709551615")],
            b"",
        )
    })
    .await
    .unwrap();
    assert!((400..500).contains(&st), "{st}");
    // Streamed (chunked) with no length: cut off once past the limit.
    let (st, _, _) = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"POST /webhook HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..27 {
            if c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .is_err()
                || c.write_all(&chunk).is_err()
                || c.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        (
            text.split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0),
            text,
            (),
        )
    })
    .await
    .unwrap();
    assert_eq!(st, 413);
    assert_eq!(get(s.addr, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(s.state.metrics.count(Outcome::TooLarge), 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let mut redis = RedisServer::start();
    let s = start_with(&redis, "ready", |st| {
        st.with_metrics_token(Some(config::Secret::new("metrics-token-0123")))
    })
    .await;
    assert_eq!(get(s.addr, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(s.addr, "/readyz").await, (200, "ready\n".into()));
    let body = bytes(&fixture("workflow_job.queued.2"));
    deliver(s.addr, "workflow_job", "m-1", body.clone()).await;
    // On the webhook listener, /metrics needs its token.
    assert_eq!(get(s.addr, "/metrics").await.0, 404);
    assert_eq!(get_with(s.addr, "/metrics", Some("wrong")).await.0, 404);
    let (st, metrics) = get_with(s.addr, "/metrics", Some("metrics-token-0123")).await;
    assert_eq!(st, 200);
    assert!(
        metrics.contains("runnerctl_webhook_deliveries_total{outcome=\"enqueued\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runnerctl_webhook_duration_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("runnerctl_redis_up 1"), "{metrics}");
    // Spot fallbacks, counted in Redis by whichever worker saw them, show per group.
    let store = s.queue.store(&s.name);
    for _ in 0..2 {
        store
            .count_mark(&runnerctl::store::spot_fallback_mark("linux"))
            .await
            .unwrap();
    }
    let (_, metrics) = get_with(s.addr, "/metrics", Some("metrics-token-0123")).await;
    assert!(
        metrics.contains("runnerctl_spot_fallbacks_total{group=\"linux\"} 2"),
        "{metrics}"
    );

    if std::env::var("REDIS_URL").is_err() {
        // While Redis is down, deliveries get 503 (GitHub records it for redelivery) and
        // /readyz fails; both recover when it is back.
        redis.stop();
        assert_eq!(
            deliver(s.addr, "workflow_job", "m-2", body.clone()).await.0,
            503
        );
        // /readyz asks Redis at most once a second.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(get(s.addr, "/readyz").await.0, 503);
        assert_eq!(get(s.addr, "/healthz").await.0, 200);
        redis.restart();
        let mut ok = false;
        for _ in 0..50 {
            if deliver(s.addr, "workflow_job", "m-2", body.clone()).await.0 == 202 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(ok, "serve recovers when Redis is back");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(get(s.addr, "/readyz").await.0, 200);
    }
    s.stop().await;
}

/// Throws arbitrary bytes and headers at the decision: it never panics, and nothing unsigned
/// is ever enqueued.
#[test]
fn arbitrary_deliveries_never_panic() {
    let c = groups_config("fuzz", "redis://127.0.0.1:1/0");
    let fixtures: Vec<Vec<u8>> = [
        "workflow_job.queued.2",
        "workflow_job.completed.1",
        "workflow_job.in_progress.1",
        "ping",
    ]
    .iter()
    .map(|f| bytes(&fixture(f)))
    .collect();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let events = ["workflow_job", "ping", "push", "", "workflow_job\0", "💥"];
    for i in 0..20_000 {
        let mut body = if rng.bool() {
            fixtures[rng.usize(..fixtures.len())].clone()
        } else {
            (0..rng.usize(..300)).map(|_| rng.u8(..)).collect()
        };
        for _ in 0..rng.usize(..6) {
            if body.is_empty() {
                break;
            }
            let at = rng.usize(..body.len());
            match rng.u8(..3) {
                0 => body[at] = rng.u8(..),
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, rng.u8(..)),
            }
        }
        let signed = rng.bool();
        let sig = if signed {
            runnerctl::forge::github::webhook::sign(SECRET.as_bytes(), &body)
        } else {
            let junk: String = (0..rng.usize(..80)).map(|_| rng.alphanumeric()).collect();
            format!("sha256={junk}")
        };
        let id = format!("id-{i}");
        let d = Delivery {
            event: Some(events[rng.usize(..events.len())]).filter(|_| rng.u8(..10) > 0),
            id: Some(id.as_str()).filter(|_| rng.u8(..10) > 0),
            signature: Some(sig.as_str()).filter(|_| rng.u8(..10) > 0),
            body: &body,
        };
        let decision = webhook::decide(
            &runnerctl::forge::github::webhook::GITHUB,
            SECRET.as_bytes(),
            "fuzz",
            &c.runner_groups,
            d,
        );
        if !signed {
            assert!(
                matches!(
                    decision,
                    webhook::Decision::Answer(Outcome::Unauthorized, _)
                ),
                "unsigned input got {decision:?}"
            );
        }
        if let webhook::Decision::Enqueue { task, .. } = decision {
            assert!(matches!(
                task,
                Task::JobQueued { .. } | Task::JobInProgress { .. } | Task::JobCompleted { .. }
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_garbage_on_the_socket_does_not_hurt() {
    let redis = RedisServer::start();
    let s = start(&redis, "garbage").await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            if let Ok(mut c) = std::net::TcpStream::connect(addr) {
                let junk: Vec<u8> = (0..rng.usize(..2000)).map(|_| rng.u8(..)).collect();
                let _ = c.write_all(&junk);
            }
        }
    })
    .await
    .unwrap();
    // The server may still be closing the last of them (a connection counts against its
    // address's share until then, and past the share a new one gets 503): it answers within
    // moments, and the garbage hurt nothing. On a loaded CI machine one `/healthz` asked at
    // once got that 503.
    let answered = support::eventually(std::time::Duration::from_secs(10), || async {
        (get(addr, "/healthz").await.0 == 200).then_some(())
    })
    .await;
    assert!(
        answered.is_some(),
        "the server answers again after the garbage"
    );
    s.stop().await;
}

#[test]
fn the_serve_process_stops_on_sigterm_with_exit_0() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = support::write_config(
        dir.path(),
        &manager_name("sigterm"),
        &redis.url,
        &format!("webhook:\n  listen: 127.0.0.1:{port}\n  secret_env: WEBHOOK_SECRET\n"),
    );
    // write_config already has a webhook section: drop its default one.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("webhook:\n  secret_env: WEBHOOK_SECRET\n", "", 1);
    std::fs::write(&config, text).unwrap();
    let mut child = std::process::Command::new(support::bin())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("WEBHOOK_SECRET", SECRET)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "serve listens");
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").0, 200);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn serve_refuses_to_start_without_a_webhook_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "x", "redis://127.0.0.1:1/0", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("webhook:\n  secret_env: WEBHOOK_SECRET\n", "", 1),
    )
    .unwrap();
    let out = std::process::Command::new(support::bin())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refuses to start without a webhook secret")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_github_sends_signed_webhooks_that_serve_accepts() {
    use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions, JobStatus};
    use runnerctl::forge::Scope;
    let redis = RedisServer::start();
    let s = start(&redis, "simhooks").await;
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("lineville".into(), vec!["elastic-machines-testing".into()])],
        token: Some("t".into()),
        webhook_url: Some(format!("http://{}/webhook", s.addr)),
        webhook_secret: SECRET.into(),
        job_duration: Duration::from_millis(100),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let gh = runnerctl::forge::github::GitHub::new(
        &sim.url(),
        runnerctl::forge::github::Auth::Token(config::Secret::new("t")),
    )
    .unwrap();
    // One of our runners registers and connects; a job it fits comes in.
    let name = format!("{}-k8s-a1b2", s.name);
    let labels = vec!["self-hosted".to_string(), "k8s".into()];
    let jit = gh
        .generate_jit_config(&Scope::Org("lineville".into()), &name, 1, &labels, "_work")
        .await
        .unwrap();
    sim.connect_runner(jit.encoded.expose()).unwrap();
    let job = sim.queue_job(
        "lineville/elastic-machines-testing",
        &["self-hosted", "k8s"],
    );
    let mut done = false;
    for _ in 0..200 {
        if sim.deliveries().0 == 3 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        done,
        "queued, in_progress and completed delivered: {:?}",
        sim.deliveries()
    );
    assert_eq!(sim.deliveries().1, 0);
    let j = sim.jobs().into_iter().find(|j| j.id == job).unwrap();
    assert_eq!(j.status, JobStatus::Completed);
    assert!(
        sim.runners().is_empty(),
        "the ephemeral runner left after its job"
    );
    let got = tasks(&s.queue).await;
    let kinds: Vec<&str> = got.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["job_queued", "job_in_progress", "job_completed"]);
    assert_eq!(got[0]["group"], "k8s");
    assert_eq!(got[1]["runner_name"], name.as_str());
    s.stop().await;
}

// Issue 18: hostile input.

#[test]
fn a_short_or_empty_webhook_secret_is_a_configuration_error() {
    for secret in ["", "short", "fifteen-bytes!!"] {
        let text = format!(
            "github:\n  token_env: T\nwebhook:\n  secret: \"{secret}\"\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: o\n    labels: [x]\n    backend: fake\n"
        );
        let e = runnerctl::wiring::parse(&text, "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("webhook.secret") && e.contains("at least 16 bytes"),
            "{secret:?}: {e}"
        );
    }
    // From the environment: `serve` refuses to start (exit 2).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "github:\n  token_env: T\nwebhook:\n  secret_env: WEAK\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: o\n    labels: [x]\n    backend: fake\n").unwrap();
    let out = std::process::Command::new(support::bin())
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env("WEAK", "weak")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_defaults_to_one_mib() {
    let redis = RedisServer::start();
    let s = start(&redis, "limit").await;
    let addr = s.addr;
    let (st, _, body) = tokio::task::spawn_blocking(move || {
        http(
            addr,
            "POST",
            "/webhook",
            &[
                ("Content-Length", "1048577"),
                ("X-GitHub-Event", "workflow_job"),
            ],
            b"",
        )
    })
    .await
    .unwrap();
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("1024 KiB"), "{body}");
    s.stop().await;
}

/// The first bytes `serve` sends on `c` within `limit` (empty when it closed without a word).
async fn answer_within(c: &mut tokio::net::TcpStream, limit: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(limit, c.read(&mut answer))
        .await
        .expect("answered in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// A POST from `from` (a loopback address of this machine) whose declared body never comes.
async fn stalled_post_from(addr: SocketAddr, from: &str) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(format!("{from}:0").parse().ok()?).ok()?;
    let mut c = socket.connect(addr).await.ok()?;
    c.write_all(b"POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Length: 7000\r\nX-GitHub-Event: workflow_job\r\n\r\n{")
        .await
        .ok()?;
    Some(c)
}

/// Each slow POST held one of the in-flight slots for up to 10 s, so 200 of them from one
/// address made GitHub's deliveries wait 5 s and get 503. A body is now read before its
/// delivery takes a slot, and one that does not keep up the minimum rate is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_no_in_flight_slot_and_are_cut_off() {
    let redis = RedisServer::start();
    let s = start_with(&redis, "inflight", |st| {
        st.with_limits(server::Limits {
            max_in_flight: 2,
            ..server::Limits::default()
        })
    })
    .await;
    let addr = s.addr;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(stalled_post_from(addr, "127.0.0.2").await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = std::time::Instant::now();
    let body = bytes(&fixture("workflow_job.queued.2"));
    assert_eq!(
        deliver(addr, "workflow_job", "guid-slow", body).await,
        (202, "queued\n".into())
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a signed delivery does not wait behind slow bodies: {:?}",
        start.elapsed()
    );
    // The slow ones are answered 400 and closed once they fall under the minimum rate.
    let head = answer_within(&mut held[0], Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        start.elapsed() < server::BODY_GRACE + Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        get(addr, "/healthz").await.0,
        200,
        "other routes still answer"
    );
    drop(held);
    s.stop().await;
}

/// One address may hold only its share of the connections: past it, 503 at once; another
/// address (GitHub's) is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let redis = RedisServer::start();
    let s = start_with(&redis, "peraddr", |st| {
        st.with_limits(server::Limits {
            max_connections_per_address: 4,
            ..server::Limits::default()
        })
    })
    .await;
    let addr = s.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled_post_from(addr, "127.0.0.3").await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = stalled_post_from(addr, "127.0.0.3").await.unwrap();
    let head = answer_within(&mut fifth, Duration::from_secs(2)).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let body = bytes(&fixture("workflow_job.queued.2"));
    assert_eq!(
        deliver(addr, "workflow_job", "guid-share", body).await,
        (202, "queued\n".into())
    );
    drop(held);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_new_connection_gets_503() {
    let redis = RedisServer::start();
    let s = start_with(&redis, "conns", |st| {
        st.with_limits(server::Limits {
            max_connections: 3,
            ..server::Limits::default()
        })
    })
    .await;
    let addr = s.addr;
    let idle: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, _) = get(addr, "/healthz").await;
    assert_eq!(st, 503);
    drop(idle);
    let mut ok = false;
    for _ in 0..50 {
        if get(addr, "/healthz").await.0 == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "connections are counted back when they close");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_asks_redis_at_most_once_a_second() {
    let redis = RedisServer::start();
    let s = start(&redis, "readyz").await;
    let mut c = runnerctl::store::connect(&redis.url).await.unwrap();
    let pings = |info: String| -> u64 {
        info.lines()
            .find(|l| l.starts_with("cmdstat_ping:"))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = pings(
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .unwrap(),
    );
    for _ in 0..50 {
        assert_eq!(get(s.addr, "/readyz").await.0, 200);
    }
    let after = pings(
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .unwrap(),
    );
    assert!(
        after - before <= 3,
        "{} pings for 50 requests",
        after - before
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_under_a_new_delivery_id_is_a_duplicate() {
    let redis = RedisServer::start();
    let s = start(&redis, "replay").await;
    let body = bytes(&fixture("workflow_job.queued.2"));
    let (st, text) = deliver(s.addr, "workflow_job", "first-id", body.clone()).await;
    assert_eq!((st, text.trim()), (202, "queued"));
    let (st, text) = deliver(s.addr, "workflow_job", "another-id", body).await;
    assert_eq!((st, text.trim()), (202, "already queued"));
    assert_eq!(tasks(&s.queue).await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_repositories_a_group_excludes_are_not_queued() {
    let redis = RedisServer::start();
    let name = manager_name("access");
    let text = format!(
        "name: {name}\ngithub:\n  token_env: T\nredis:\n  url: {}\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: only\n    organization: octo-org\n    labels: [self-hosted, only]\n    backend: fake\n    selected_repositories: [allowed]\n  - name: private\n    organization: octo-org\n    labels: [self-hosted, private]\n    backend: fake\n    allow_public_repositories: false\n",
        redis.url
    );
    let groups = runnerctl::wiring::parse(&text, "t")
        .unwrap()
        .config
        .runner_groups;
    let payload = |repo: &str, private: bool, label: &str| {
        let mut v = fixture("workflow_job.queued.2");
        v["repository"]["full_name"] = format!("octo-org/{repo}").into();
        v["repository"]["name"] = repo.into();
        v["repository"]["private"] = private.into();
        v["repository"]
            .as_object_mut()
            .unwrap()
            .remove("visibility");
        v["workflow_job"]["labels"] = serde_json::json!(["self-hosted", label]);
        serde_json::to_vec(&v).unwrap()
    };
    let decide = |body: &[u8]| {
        let sig = runnerctl::forge::github::webhook::sign(SECRET.as_bytes(), body);
        webhook::decide(
            &runnerctl::forge::github::webhook::GITHUB,
            SECRET.as_bytes(),
            &name,
            &groups,
            Delivery {
                event: Some("workflow_job"),
                id: Some("d-1"),
                signature: Some(&sig),
                body,
            },
        )
    };
    for (body, why) in [
        (
            payload("other", true, "only"),
            "not in selected_repositories",
        ),
        (
            payload("open", false, "private"),
            "allow_public_repositories is false",
        ),
    ] {
        match decide(&body) {
            webhook::Decision::Answer(Outcome::NotAdmitted, reason) => {
                assert!(reason.contains(why), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    for body in [
        payload("allowed", false, "only"),
        payload("closed", true, "private"),
    ] {
        assert!(matches!(decide(&body), webhook::Decision::Enqueue { .. }));
    }
}

/// With `redis.wait_replicas`, a delivery queued on the master alone is answered 503; GitHub's
/// resend of it was answered 202 as a duplicate without any replica confirming it, so a
/// failover then lost a delivery GitHub was told was accepted. The duplicate now waits for the
/// same confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_delivery_not_yet_on_a_replica_is_not_answered_202() {
    let redis = RedisServer::start();
    let s = start_with(&redis, "replicas", |st| {
        st.with_durability(1, Duration::from_millis(200))
    })
    .await;
    let body = bytes(&fixture("workflow_job.queued.2"));
    let (status, text) = deliver(s.addr, "workflow_job", "guid-r", body.clone()).await;
    assert_eq!(status, 503, "{text}");
    let (status, text) = deliver(s.addr, "workflow_job", "guid-r", body.clone()).await;
    assert_eq!(status, 503, "the resend is not confirmed either: {text}");
    assert!(text.contains("replicas"), "{text}");
    // A replica catches up: the resend is then confirmed, and queued once.
    let replica = RedisServer::start();
    let mut c = runnerctl::store::connect(&replica.url).await.unwrap();
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(redis.port)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = deliver(s.addr, "workflow_job", "guid-r", body.clone()).await;
        if answer.0 == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, (202, "already queued\n".into()));
    assert_eq!(tasks(&s.queue).await.len(), 1);
    s.stop().await;
}
