//! Redis memory: bytes per runner record, per 10,000 deliveries queued and handled, and over a
//! long run of deliveries whether memory stays flat (every key that accumulates has a bound or a
//! time to live: deduplication keys expire after `dedup_ttl`, handled tasks are deleted from
//! the stream, dead letters are capped, waiting and started jobs expire).
//!
//! Run: `cargo bench --bench redis_memory` (starts its own redis-server; `cargo test` runs it
//! as a smoke test, a tenth of the size and two rounds). `dedup_ttl` is 5 s
//! here so that a long run fits in a minute; with the default of 3 days the plateau is reached
//! after 3 days, at 3 days' deliveries times the bytes per delivery printed here.

#[path = "../tests/support/mod.rs"]
mod support;

use runnerctl::model::{Runner, RunnerStatus};
use runnerctl::queue::{Envelope, Queue, QueueOptions, Task};
use runnerctl::store::{self, RedisStore, RunnerPatch, Want};
use runnerctl::worker::{self, Handler, Outcome, WorkerOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Count(AtomicU64);

impl Handler for Count {
    async fn handle(&self, _: &Envelope) -> Outcome {
        self.0.fetch_add(1, Ordering::Relaxed);
        Outcome::Done
    }
}

async fn used_memory(conn: &store::Conn) -> i64 {
    let mut c = conn.clone();
    // Let lazy frees and active expiry settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: then small and quick.
    let full = std::env::args().any(|a| a == "--bench");
    let (scale, rounds, ttl) = if full { (1, 8, 5) } else { (10, 2, 1) };
    let redis = support::RedisServer::start();
    let conn = store::connect(&redis.url).await.unwrap();
    let name = support::manager_name("mem");

    // Runner records.
    let s = RedisStore::new(conn.clone(), &name);
    let before = used_memory(&conn).await;
    let runners: i64 = 2_000 / scale;
    for i in 0..runners {
        let r = Runner::reserved(
            format!("{name}-g-{i:010x}"),
            "g",
            "fake",
            vec!["self-hosted".into(), "linux".into()],
            Some(1_000_000 + i as u64),
            1_700_000_000,
        );
        s.reserve(&r, 100_000, Want::Explicit).await.unwrap();
        s.update(
            &r.name,
            Some(RunnerStatus::Idle),
            &[],
            &RunnerPatch {
                instance_id: Some(Some(format!("i-{i:017x}"))),
                forge_id: Some(Some(10_000 + i as u64)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let with_runners = used_memory(&conn).await;
    for r in s.all_runners().await.unwrap() {
        s.remove(&r.name).await.unwrap();
    }
    let after_runners = used_memory(&conn).await;
    println!(
        "runner records: {:.0} bytes each ({runners} records: {} KiB; after deleting them {:+} KiB)",
        (with_runners - before) as f64 / runners as f64,
        (with_runners - before) / 1024,
        (after_runners - before) / 1024
    );

    // Deliveries: queued as `serve` queues them (a delivery key and a job key), handled.
    let options = QueueOptions {
        dedup_ttl: Duration::from_secs(ttl),
        ..QueueOptions::default()
    };
    let q = Queue::new(conn.clone(), &name, options.clone());
    q.ensure_group().await.unwrap();
    let handled = Arc::new(Count::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut opts = WorkerOptions::new(32);
    opts.poll = Duration::from_millis(50);
    let w = tokio::spawn(worker::run(
        Queue::new(store::connect(&redis.url).await.unwrap(), &name, options),
        store::connect(&redis.url).await.unwrap(),
        handled.clone(),
        opts,
        rx,
    ));
    let base = used_memory(&conn).await;
    let round_size: u64 = 10_000 / scale as u64;
    println!("\n| round | deliveries so far | used memory above the start | seconds |");
    println!("|---|---|---|---|");
    let start = Instant::now();
    for round in 1..=rounds {
        for i in 0..round_size {
            let n = round * round_size + i;
            let env = Envelope::new(
                Task::Noop {
                    mark: String::new(),
                    sleep_ms: 0,
                    fail_times: 0,
                },
                Some(format!("delivery:{n:032x}")),
            );
            q.enqueue_envelope_also(&env, Some(&format!("job:{n}:queued")))
                .await
                .unwrap();
        }
        while handled.0.load(Ordering::Relaxed) < round * round_size {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let now = used_memory(&conn).await;
        println!(
            "| {round} | {} | {} KiB | {:.1} |",
            round * round_size,
            (now - base) / 1024,
            start.elapsed().as_secs_f64()
        );
        if round == 1 {
            println!(
                "| | per delivery, while its keys live | {:.0} bytes | |",
                (now - base) as f64 / round_size as f64
            );
        }
        // Each round takes longer than the time to live: the previous round's keys expire.
        tokio::time::sleep(Duration::from_secs(ttl + 1)).await;
    }
    let _ = tx.send(true);
    let _ = w.await;
}
