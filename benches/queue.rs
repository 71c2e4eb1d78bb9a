//! Queue benchmark: tasks per second enqueued and handled end to end with 1, 2 and 4 workers on a
//! no-op handler, and the latency the queue adds per task (enqueue call to handler start).
//!
//! Run: `cargo bench --bench queue` (starts its own redis-server on a free loopback port, or
//! uses `REDIS_URL`). Results go to BENCHMARKS.md by hand, with the machine they came from.

#[path = "../tests/support/mod.rs"]
mod support;

use runnerctl::queue::{Envelope, Queue, QueueOptions, Task};
use runnerctl::store;
use runnerctl::worker::{self, Handler, Outcome, WorkerOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Counts tasks and records how long each waited (the enqueue time travels in `mark`).
#[derive(Default)]
struct NoopHandler {
    handled: AtomicU64,
    waits: Mutex<Vec<u64>>,
}

impl Handler for NoopHandler {
    async fn handle(&self, env: &Envelope) -> Outcome {
        if let Task::Noop { mark, .. } = &env.task {
            if let Ok(t) = mark.parse::<u64>() {
                self.waits.lock().unwrap().push(micros().saturating_sub(t));
            }
        }
        self.handled.fetch_add(1, Ordering::Relaxed);
        Outcome::Done
    }
}

fn noop(mark: String) -> Task {
    Task::Noop {
        mark,
        sleep_ms: 0,
        fail_times: 0,
    }
}

fn percentile(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

async fn run(url: &str, workers: usize, scale: u64) -> (f64, f64, f64) {
    let name = support::manager_name(&format!("bench{workers}"));
    let q = Queue::new(
        store::connect(url).await.unwrap(),
        &name,
        QueueOptions::default(),
    );
    q.ensure_group().await.unwrap();
    let handler = Arc::new(NoopHandler::default());
    let (tx, rx) = watch::channel(false);
    let mut joins = Vec::new();
    for _ in 0..workers {
        let wq = Queue::new(
            store::connect(url).await.unwrap(),
            &name,
            QueueOptions::default(),
        );
        let read = store::connect(url).await.unwrap();
        let mut opts = WorkerOptions::new(16);
        opts.poll = Duration::from_millis(100);
        joins.push(tokio::spawn(worker::run(
            wq,
            read,
            handler.clone(),
            opts,
            rx.clone(),
        )));
    }

    // Throughput: 4 producers enqueue N tasks as fast as they can; the clock stops when the
    // last one is handled.
    let n: u64 = 20_000 / scale;
    let start = Instant::now();
    let mut producers = Vec::new();
    for p in 0..4 {
        let q = Queue::new(
            store::connect(url).await.unwrap(),
            &name,
            QueueOptions::default(),
        );
        producers.push(tokio::spawn(async move {
            for i in 0..n / 4 {
                q.enqueue(noop(format!("t{p}-{i}")), None).await.unwrap();
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    while handler.handled.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();

    // Latency: 2,000 tasks at a steady 1,000 per second, so that queueing does not dominate.
    handler.waits.lock().unwrap().clear();
    let before = handler.handled.load(Ordering::Relaxed);
    let m: u64 = 2_000 / scale;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..m {
        tick.tick().await;
        q.enqueue(noop(micros().to_string()), None).await.unwrap();
    }
    while handler.handled.load(Ordering::Relaxed) < before + m {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut waits = handler.waits.lock().unwrap().clone();
    let p50 = percentile(&mut waits, 0.50);
    let p99 = percentile(&mut waits, 0.99);
    tx.send(true).unwrap();
    for j in joins {
        j.await.unwrap();
    }
    (rate, p50, p99)
}

fn main() {
    // `cargo bench` passes `--bench`. Without it (`cargo test --all-targets`) a run 100 times
    // smaller checks that the benchmark still works.
    let scale = if std::env::args().any(|a| a == "--bench") {
        1
    } else {
        100
    };
    let redis = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("| workers | tasks/s (enqueue + handle, 20,000 tasks) | added latency p50 | p99 |");
    println!("|---|---|---|---|");
    for workers in [1, 2, 4] {
        let (rate, p50, p99) = rt.block_on(run(&redis.url, workers, scale));
        println!("| {workers} | {rate:.0} | {p50:.2} ms | {p99:.2} ms |");
    }
}
