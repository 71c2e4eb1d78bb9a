//! The task queue and the worker against a real Redis server: nothing lost, nothing done twice.

mod support;

use runnerctl::manager::TaskHandler;
use runnerctl::queue::{Envelope, Queue, QueueOptions, Task};
use runnerctl::store::{self, RedisStore};
use runnerctl::worker::{self, Handler, Outcome, WorkerOptions, WorkerReport};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{eventually, manager_name, write_config, RedisServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

fn fast_options() -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_secs(2),
        max_attempts: 3,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        ..QueueOptions::default()
    }
}

async fn queue(url: &str, name: &str) -> Queue {
    let q = Queue::new(store::connect(url).await.unwrap(), name, fast_options());
    q.ensure_group().await.unwrap();
    q
}

fn noop(mark: &str) -> Task {
    Task::Noop {
        mark: mark.into(),
        sleep_ms: 0,
        fail_times: 0,
    }
}

/// Enqueues `n` no-op tasks marked `{prefix}{i}` that sleep `i % sleep_mod` ms.
async fn enqueue_noops(q: &Queue, prefix: &str, n: usize, sleep_mod: u64) {
    for i in 0..n {
        q.enqueue(
            Task::Noop {
                mark: format!("{prefix}{i}"),
                sleep_ms: i as u64 % sleep_mod,
                fail_times: 0,
            },
            None,
        )
        .await
        .unwrap();
    }
}

/// Whether the queue empties within `within`.
async fn drains(q: &Queue, within: Duration) -> bool {
    eventually(within, || async {
        q.list().await.unwrap().is_empty().then_some(())
    })
    .await
    .is_some()
}

async fn start_worker<H: Handler>(
    url: &str,
    name: &str,
    handler: Arc<H>,
    concurrency: usize,
) -> (watch::Sender<bool>, JoinHandle<WorkerReport>) {
    let q = queue(url, name).await;
    let read = store::connect(url).await.unwrap();
    let (tx, rx) = watch::channel(false);
    let mut opts = WorkerOptions::new(concurrency);
    opts.poll = Duration::from_millis(100);
    opts.drain = Duration::from_secs(5);
    let h = tokio::spawn(worker::run(q, read, handler, opts, rx));
    (tx, h)
}

#[tokio::test]
async fn an_idempotency_key_enqueues_once() {
    let redis = RedisServer::start();
    let name = manager_name("dedup");
    let q = queue(&redis.url, &name).await;
    let first = q
        .enqueue(noop("a"), Some("delivery-1".into()))
        .await
        .unwrap();
    let again = q
        .enqueue(noop("a"), Some("delivery-1".into()))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(
        again.entry, first.entry,
        "the duplicate names the first entry"
    );
    q.enqueue(noop("a"), Some("delivery-2".into()))
        .await
        .unwrap();
    q.enqueue(noop("a"), None).await.unwrap();
    q.enqueue(noop("a"), None).await.unwrap();
    assert_eq!(q.list().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_handle_every_task_exactly_once() {
    let redis = RedisServer::start();
    let name = manager_name("twice");
    let q = queue(&redis.url, &name).await;
    let s = RedisStore::connect(&redis.url, &name).await.unwrap();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let handler = Arc::new(TaskHandler::new(s.clone()));
        workers.push(start_worker(&redis.url, &name, handler, 8).await);
    }
    const N: usize = 400;
    enqueue_noops(&q, "m", N, 4).await;
    assert!(
        drains(&q, Duration::from_secs(30)).await,
        "queue did not drain"
    );
    let mut reports = Vec::new();
    for (tx, h) in workers {
        tx.send(true).unwrap();
        reports.push(h.await.unwrap());
    }
    for i in 0..N {
        assert_eq!(s.mark(&format!("m{i}")).await.unwrap(), 1, "task m{i}");
    }
    let handled: u64 = reports.iter().map(|r| r.handled).sum();
    assert_eq!(handled, N as u64);
    assert!(
        reports.iter().all(|r| r.handled > 0),
        "both workers took part: {reports:?}"
    );
    assert!(reports.iter().all(|r| r.lost_leases == 0), "{reports:?}");
}

/// Fails while `broken` is set.
struct Flaky {
    broken: AtomicBool,
    calls: AtomicU32,
}

impl Handler for Flaky {
    async fn handle(&self, _task: &Envelope) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            Outcome::Retry("backend is broken".into())
        } else {
            Outcome::Done
        }
    }
}

#[tokio::test]
async fn failing_tasks_are_retried_then_dead_lettered_then_requeued() {
    let redis = RedisServer::start();
    let name = manager_name("retry");
    let q = queue(&redis.url, &name).await;
    let flaky = Arc::new(Flaky {
        broken: AtomicBool::new(true),
        calls: AtomicU32::new(0),
    });
    let (tx, h) = start_worker(&redis.url, &name, flaky.clone(), 2).await;
    let entry = q.enqueue(noop("x"), None).await.unwrap();

    let dead = eventually(Duration::from_secs(10), || async {
        let d = q.dead().await.unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await
    .expect("the task reaches the dead-letter stream");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3, "max_attempts = 3");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error.as_deref(), Some("backend is broken"));
    assert_eq!(dead[0].attempt, 3);
    assert!(q.list().await.unwrap().is_empty(), "nothing left waiting");
    assert_ne!(dead[0].entry.as_deref(), Some(entry.entry.as_str()));

    // The operator fixes the cause and replays the task.
    flaky.broken.store(false, Ordering::SeqCst);
    assert!(q.requeue(Some("0-1")).await.is_err(), "unknown id");
    assert_eq!(q.requeue(dead[0].entry.as_deref()).await.unwrap(), 1);
    let drained = eventually(Duration::from_secs(10), || async {
        (q.list().await.unwrap().is_empty() && flaky.calls.load(Ordering::SeqCst) == 4)
            .then_some(())
    })
    .await;
    assert!(drained.is_some());
    assert!(q.dead().await.unwrap().is_empty());
    tx.send(true).unwrap();
    let report = h.await.unwrap();
    assert_eq!((report.retried, report.dead, report.handled), (2, 1, 1));
}

/// Waits while a group is full: never dropped, never counted as an attempt.
struct Waiting {
    calls: AtomicU32,
}

impl Handler for Waiting {
    async fn handle(&self, _task: &Envelope) -> Outcome {
        if self.calls.fetch_add(1, Ordering::SeqCst) < 5 {
            Outcome::Wait {
                delay: Duration::from_millis(30),
                reason: "group at max_runners".into(),
            }
        } else {
            Outcome::Done
        }
    }
}

#[tokio::test]
async fn waiting_for_capacity_does_not_use_up_attempts() {
    let redis = RedisServer::start();
    let name = manager_name("wait");
    let q = queue(&redis.url, &name).await;
    let h = Arc::new(Waiting {
        calls: AtomicU32::new(0),
    });
    let (tx, join) = start_worker(&redis.url, &name, h.clone(), 1).await;
    q.enqueue(noop("w"), None).await.unwrap();
    let done = eventually(Duration::from_secs(10), || async {
        (h.calls.load(Ordering::SeqCst) == 6 && q.list().await.unwrap().is_empty()).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "five waits (more than max_attempts) then done"
    );
    assert!(q.dead().await.unwrap().is_empty());
    tx.send(true).unwrap();
    let r = join.await.unwrap();
    assert_eq!((r.waited, r.handled, r.dead), (5, 1, 0));
}

#[tokio::test]
async fn unreadable_and_unknown_tasks_go_to_the_dead_letter_stream() {
    let redis = RedisServer::start();
    let name = manager_name("garbage");
    let q = queue(&redis.url, &name).await;
    let mut c = store::connect(&redis.url).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(q.stream_key())
        .arg("*")
        .arg("task")
        .arg("{not json")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(q.stream_key())
        .arg("*")
        .arg("task")
        .arg(r#"{"v":9,"id":"x","enqueued_at":0,"task":{"type":"from_the_future"}}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    let s = RedisStore::connect(&redis.url, &name).await.unwrap();
    let (tx, h) = start_worker(&redis.url, &name, Arc::new(TaskHandler::new(s)), 2).await;
    let dead = eventually(Duration::from_secs(10), || async {
        let d = q.dead().await.unwrap();
        (d.len() == 2).then_some(d)
    })
    .await
    .expect("both dead-lettered");
    tx.send(true).unwrap();
    h.await.unwrap();
    let errors: Vec<String> = dead.iter().map(|d| d.error.clone().unwrap()).collect();
    assert!(errors[0].starts_with("unreadable task"), "{errors:?}");
    assert!(errors[1].contains("newer than this worker"), "{errors:?}");
}

// ---- The `runnerctl worker` process -------------------------------------------------------

struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(config: &std::path::Path, dir: &std::path::Path, tag: &str) -> Worker {
        let log = dir.join(format!("worker-{tag}.log"));
        let child = Command::new(support::bin())
            .args([
                "--config",
                config.to_str().unwrap(),
                "worker",
                "--concurrency",
                "4",
            ])
            .env("RUNNERCTL_LOG", "runnerctl=info")
            .env("GITHUB_TOKEN", "unused-by-no-op-tasks")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the process to exit and returns its code.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 15 s) until a worker holds a task; None if none does.
async fn some_task_in_flight(q: &Queue) -> Option<()> {
    eventually(Duration::from_secs(15), || async {
        q.list()
            .await
            .unwrap()
            .iter()
            .any(|t| t.state == "in-flight")
            .then_some(())
    })
    .await
}

const FAST_QUEUE: &str =
    "queue:\n  visibility_timeout: 2s\n  retry_base: 1s\n  retry_max: 2s\n  drain_timeout: 10s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("sigkill");
    let config = write_config(dir.path(), &name, &redis.url, FAST_QUEUE);
    let q = queue(&redis.url, &name).await;
    let s = RedisStore::connect(&redis.url, &name).await.unwrap();
    q.enqueue(
        Task::Noop {
            mark: "slow".into(),
            sleep_ms: 3000,
            fail_times: 0,
        },
        None,
    )
    .await
    .unwrap();

    let mut first = Worker::start(&config, dir.path(), "a");
    let held = some_task_in_flight(&q).await;
    assert!(
        held.is_some(),
        "worker never took the task: {}",
        first.log()
    );
    first.child.kill().unwrap(); // SIGKILL, mid-task
    first.child.wait().unwrap();
    assert_eq!(
        s.mark("slow").await.unwrap(),
        0,
        "the task had not finished"
    );

    let second = Worker::start(&config, dir.path(), "b");
    let done = eventually(Duration::from_secs(20), || async {
        (s.mark("slow").await.unwrap() == 1).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "second worker did not take over: {}",
        second.log()
    );
    assert!(
        second.log().contains("took over a task"),
        "{}",
        second.log()
    );
    assert!(drains(&q, Duration::from_secs(5)).await);
    assert_eq!(s.mark("slow").await.unwrap(), 1, "handled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_never_both_complete_a_task() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("twoproc");
    let config = write_config(dir.path(), &name, &redis.url, FAST_QUEUE);
    let q = queue(&redis.url, &name).await;
    let s = RedisStore::connect(&redis.url, &name).await.unwrap();
    let _a = Worker::start(&config, dir.path(), "a");
    let _b = Worker::start(&config, dir.path(), "b");
    const N: usize = 300;
    enqueue_noops(&q, "p", N, 3).await;
    assert!(drains(&q, Duration::from_secs(30)).await);
    for i in 0..N {
        assert_eq!(s.mark(&format!("p{i}")).await.unwrap(), 1, "task p{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_task_in_flight_and_exits_0() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("sigterm");
    let config = write_config(dir.path(), &name, &redis.url, FAST_QUEUE);
    let q = queue(&redis.url, &name).await;
    let s = RedisStore::connect(&redis.url, &name).await.unwrap();
    let mut w = Worker::start(&config, dir.path(), "a");
    q.enqueue(
        Task::Noop {
            mark: "t".into(),
            sleep_ms: 1500,
            fail_times: 0,
        },
        None,
    )
    .await
    .unwrap();
    let held = some_task_in_flight(&q).await;
    assert!(held.is_some(), "{}", w.log());
    w.signal("-TERM");
    let noticed = eventually(Duration::from_secs(5), || async {
        w.log().contains("signal received").then_some(())
    })
    .await;
    assert!(noticed.is_some(), "{}", w.log());
    // A task enqueued once the worker is stopping is left for another worker.
    q.enqueue(noop("after"), None).await.unwrap();
    assert_eq!(w.wait(Duration::from_secs(15)), Some(0), "{}", w.log());
    assert_eq!(s.mark("t").await.unwrap(), 1, "the task in flight finished");
    assert_eq!(s.mark("after").await.unwrap(), 0);
    assert_eq!(q.list().await.unwrap().len(), 1, "the later task waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_longer_than_the_drain_is_released_on_sigterm() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("release");
    let config = write_config(
        dir.path(),
        &name,
        &redis.url,
        "queue:\n  visibility_timeout: 60s\n  drain_timeout: 1s\n",
    );
    let q = queue(&redis.url, &name).await;
    let mut w = Worker::start(&config, dir.path(), "a");
    q.enqueue(
        Task::Noop {
            mark: "long".into(),
            sleep_ms: 60_000,
            fail_times: 0,
        },
        None,
    )
    .await
    .unwrap();
    let held = some_task_in_flight(&q).await;
    assert!(held.is_some(), "{}", w.log());
    w.signal("-TERM");
    assert_eq!(w.wait(Duration::from_secs(10)), Some(0), "{}", w.log());
    let tasks = q.list().await.unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(
        tasks[0].state, "waiting",
        "handed back at once, not after 60s"
    );
    assert!(
        w.log().contains("released an unfinished task"),
        "{}",
        w.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_carries_on_after_redis_restarts() {
    if std::env::var("REDIS_URL").is_ok() {
        return; // a shared server cannot be restarted by the test
    }
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("restart");
    let config = write_config(dir.path(), &name, &redis.url, FAST_QUEUE);
    let w = Worker::start(&config, dir.path(), "a");
    {
        let q = queue(&redis.url, &name).await;
        let s = RedisStore::connect(&redis.url, &name).await.unwrap();
        q.enqueue(noop("before"), None).await.unwrap();
        let ok = eventually(Duration::from_secs(15), || async {
            (s.mark("before").await.unwrap() == 1).then_some(())
        })
        .await;
        assert!(ok.is_some(), "{}", w.log());
    }
    redis.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart(); // empty: no persistence, so the stream and its group are gone too
    let q = queue(&redis.url, &name).await;
    let s = RedisStore::connect(&redis.url, &name).await.unwrap();
    q.enqueue(noop("after"), None).await.unwrap();
    let ok = eventually(Duration::from_secs(20), || async {
        (s.mark("after").await.unwrap() == 1).then_some(())
    })
    .await;
    assert!(ok.is_some(), "worker did not carry on: {}", w.log());
    let log = w.log();
    assert_eq!(
        log.matches("Redis unreachable").count(),
        1,
        "one line per outage, not per attempt:\n{log}"
    );
    assert!(log.contains("Redis reachable again"), "{log}");
}

/// Puts `env` straight into a manager's dead-letter stream with the error `boom`, as a worker
/// would.
async fn dead_letter(url: &str, name: &str, env: &Envelope) {
    let mut c = store::connect(url).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{}dead", runnerctl::model::key_prefix(name)))
        .arg("*")
        .arg("task")
        .arg(serde_json::to_string(env).unwrap())
        .arg("error")
        .arg("boom")
        .query_async(&mut c)
        .await
        .unwrap();
}

/// `runnerctl --config CONFIG ARGS…`: exit code, stdout, stderr.
fn cli(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(support::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_commands_show_and_replay_the_queue() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("cli");
    let config = write_config(dir.path(), &name, &redis.url, FAST_QUEUE);
    let q = queue(&redis.url, &name).await;
    q.enqueue(noop("waiting"), None).await.unwrap();
    // One task straight into the dead-letter stream, as a worker would put it there.
    dead_letter(&redis.url, &name, &Envelope::new(noop("dead"), None)).await;
    let run = |args: &[&str]| cli(&config, args);
    let (code, out, err) = run(&["tasks", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("waiting") && out.contains("noop"), "{out}");
    let (code, out, _) = run(&["-o", "json", "tasks", "dead"]);
    assert_eq!(code, Some(0));
    let dead: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dead[0]["error"], "boom");
    assert_eq!(dead[0]["task"]["mark"], "dead");
    let (code, _, err) = run(&["tasks", "requeue", "1-1"]);
    assert_eq!(code, Some(2), "unknown id is a usage error: {err}");
    assert!(err.contains("no dead task with id `1-1`"), "{err}");
    let (code, out, _) = run(&["tasks", "requeue", "--all"]);
    assert_eq!((code, out.as_str()), (Some(0), "requeued 1 task\n"));
    assert_eq!(q.list().await.unwrap().len(), 2);
    assert!(q.dead().await.unwrap().is_empty());
}

/// `-o name` printed the state column; `tasks requeue` took the entry but not the `id` JSON
/// shows; a delayed task had an empty ENTRY, a dead one an empty WHEN. Now the task's id is the
/// first column, printed by `-o name` and taken by `tasks requeue` (the entry still is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_task_s_one_id_is_printed_and_accepted_everywhere() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let name = manager_name("task-ids");
    let config = write_config(dir.path(), &name, &redis.url, FAST_QUEUE);
    let q = queue(&redis.url, &name).await;
    q.enqueue(noop("waiting"), None).await.unwrap();
    let mut c = store::connect(&redis.url).await.unwrap();
    let prefix = runnerctl::model::key_prefix(&name);
    let delayed = Envelope::new(noop("delayed"), None);
    let due = runnerctl::model::unix_now_ms() + 600_000;
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{prefix}delayed"))
        .arg(due)
        .arg(serde_json::to_string(&delayed).unwrap())
        .query_async(&mut c)
        .await
        .unwrap();
    let dead = Envelope::new(noop("dead"), None);
    dead_letter(&redis.url, &name, &dead).await;
    let run = |args: &[&str]| {
        let (code, out, _) = cli(&config, args);
        (code, out)
    };
    let (_, json) = run(&["-o", "json", "tasks", "list"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{json}");
    let (_, names) = run(&["-o", "name", "tasks", "list"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ids, "{names}");
    let delayed_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "delayed")
        .unwrap();
    assert_eq!(delayed_row["entry"], serde_json::Value::Null, "{json}");
    assert_eq!(delayed_row["id"], delayed.id.as_str(), "{json}");

    let (_, table) = run(&["tasks", "list"]);
    let delayed_line = table.lines().find(|l| l.contains("delayed")).unwrap();
    assert!(delayed_line.contains(" - "), "{table}");
    assert!(delayed_line.contains("due in"), "{table}");
    let (_, table) = run(&["tasks", "dead"]);
    assert!(table.starts_with(" ID"), "{table}");
    assert!(
        table.contains("died ") && table.contains("s ago"),
        "{table}"
    );
    let (_, names) = run(&["-o", "name", "tasks", "dead"]);
    assert_eq!(names.trim(), dead.id, "{names}");

    // The id `-o name` and `-o json` print is the one requeue takes.
    let (code, out) = run(&["tasks", "requeue", &dead.id]);
    assert_eq!((code, out.as_str()), (Some(0), "requeued 1 task\n"));
    assert!(q.dead().await.unwrap().is_empty());
}

#[test]
fn commands_exit_3_when_redis_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "x", "redis://127.0.0.1:1/0", "");
    let out = Command::new(support::bin())
        .args(["--config", config.to_str().unwrap(), "tasks", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Redis is unreachable"), "{err}");
}
