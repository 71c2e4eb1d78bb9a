//! The domain: what to do with each task. Decisions are pure functions over observed state; the
//! I/O around them is thin. This version handles the queue's own no-op task; the runner life
//! cycle (job queued, in progress, completed, health checks) joins it with the forge and the
//! backends.

pub mod matching;
pub mod plan;
pub mod sync;

use crate::queue::{Envelope, Task};
use crate::store::RedisStore;
use crate::worker::{Handler, Outcome};
use std::time::Duration;

/// Handles every kind of task a worker takes from the queue.
pub struct TaskHandler {
    store: RedisStore,
}

impl TaskHandler {
    pub fn new(store: RedisStore) -> TaskHandler {
        TaskHandler { store }
    }
}

impl Handler for TaskHandler {
    async fn handle(&self, env: &Envelope) -> Outcome {
        match &env.task {
            Task::Noop {
                mark,
                sleep_ms,
                fail_times,
            } => {
                if *sleep_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(*sleep_ms)).await;
                }
                if env.attempt < *fail_times {
                    return Outcome::Retry(format!(
                        "no-op task failing on purpose (attempt {} of {fail_times} failing)",
                        env.attempt + 1
                    ));
                }
                match self.store.count_mark(mark).await {
                    Ok(_) => Outcome::Done,
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
            other => Outcome::Fail(format!(
                "`{}` tasks are not handled by this version of runnerctl yet; requeue them with `runnerctl tasks requeue --all` after upgrading",
                other.kind()
            )),
        }
    }
}
