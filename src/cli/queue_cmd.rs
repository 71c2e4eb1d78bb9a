//! `runnerctl worker` and `runnerctl tasks …`.

use super::args::TasksCommand;
use super::output::{self, OutputFormat};
use super::{runtime, shutdown_on_signals, Context};
use crate::error::{Error, Result};
use crate::manager::TaskHandler;
use crate::queue::{Queue, TaskView};
use crate::store;
use crate::wiring;
use crate::worker::{self, WorkerOptions};
use std::sync::Arc;
use std::time::Duration;

/// Creates or updates the configured runner groups on the forge as `groups sync` does, so jobs
/// do not wait on a group nobody created; a failure is logged and the worker goes on.
async fn sync_groups(config: &crate::config::Config) {
    let forge = match wiring::forge(config) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "runner groups not synchronized at start");
            return;
        }
    };
    let groups: Vec<&crate::config::RunnerGroup> = config.runner_groups.iter().collect();
    // The start-up sync spends the budget last, after jobs and health passes.
    let synced = crate::budget::with_priority(
        crate::budget::Priority::Cleanup,
        crate::manager::sync::sync(&*forge, &groups, false, &|| {}),
    )
    .await;
    for row in synced {
        use crate::manager::sync::Action;
        match row.action {
            Action::Create | Action::Update => {
                tracing::info!(group = %row.group, changes = %row.changes.join("; "), "runner group synchronized at start")
            }
            Action::Error => {
                tracing::warn!(group = %row.group, error = %row.changes.join("; "), "runner group not synchronized at start")
            }
            _ => {}
        }
    }
}

pub fn worker(cx: &Context, concurrency: usize, sync_at_start: bool) -> Result<()> {
    let loaded = cx.load()?;
    let config = loaded.config;
    let target = wiring::redis_target(&config)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let mut shutdown = shutdown_on_signals();
        // Redis may come up after the worker (both started at boot): wait for it.
        let mut logged = false;
        let (conn, read_conn) = loop {
            match tokio::try_join!(store::connect_to(&target), store::connect_to(&target)) {
                Ok(pair) => break pair,
                // A refused password, database or certificate: waiting will not help.
                Err(e) if e.is_refused() => return Err(e.into()),
                Err(e) => {
                    if !logged {
                        tracing::warn!(error = %e, "Redis unreachable; waiting for it");
                        logged = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            }
        };
        crate::store::migrate_layout(&conn, &config.name).await?;
        let queue = wiring::queue(&config, conn.clone());
        let config = Arc::new(config);
        let manager = Arc::new(wiring::manager(config.clone()).await?);
        if sync_at_start {
            sync_groups(&config).await;
        }
        if let Some(addr) = &config.worker.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                crate::error::Error::Problem(format!(
                    "worker.metrics_listen: cannot listen on {addr}: {e}"
                ))
            })?;
            tracing::info!(listen = %addr, "serving worker metrics");
            let mut stop = shutdown.clone();
            tokio::spawn(crate::server::fleet::serve_worker_metrics(
                listener,
                manager.clone(),
                queue.clone(),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ));
        }
        let handler = Arc::new(TaskHandler::with_manager(manager));
        tokio::spawn(schedule_health_checks(queue.clone(), config.clone()));
        let mut opts = WorkerOptions::new(concurrency);
        start_listeners(&config, &conn, &queue, &opts.consumer, &shutdown).await?;
        opts.drain = config.queue.drain_timeout.as_std();
        worker::run(queue, read_conn, handler, opts, shutdown).await;
        Ok(())
    })
}

/// Creates or updates each `mode: scale_set` group's scale set (a failure is logged: the
/// listener looks again), then starts its listener.
async fn start_listeners(
    config: &crate::config::Config,
    conn: &crate::store::Conn,
    queue: &Queue,
    holder: &str,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let listeners = wiring::listeners(config, conn.clone(), queue, holder)?;
    let routes: Vec<_> = listeners.iter().map(|l| l.routed.clone()).collect();
    for row in crate::manager::sync::scale_sets(&routes, false).await {
        match row.action {
            crate::manager::sync::Action::Error => {
                tracing::warn!(group = %row.group, error = %row.changes.join("; "), "scale set not synchronized at start")
            }
            action => {
                tracing::info!(group = %row.group, scale_set = ?row.github_id, ?action, "scale set synchronized at start")
            }
        }
    }
    for l in listeners {
        tokio::spawn(l.run(shutdown.clone()));
    }
    Ok(())
}

/// Enqueues one health check per group every `healthcheck_interval`. The idempotency key names
/// the interval, so however many workers run, each group gets one check per interval.
async fn schedule_health_checks(queue: Queue, config: Arc<crate::config::Config>) {
    let every = config.healthcheck_interval.as_std();
    // The first check comes one interval after start, spread over a short random delay so
    // that workers started together do not all enqueue at once.
    let start = tokio::time::Instant::now() + every + Duration::from_millis(fastrand::u64(0..2000));
    let mut tick = tokio::time::interval_at(start, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let slot = crate::model::unix_now() / every.as_secs().max(1);
        for g in &config.runner_groups {
            let task = crate::queue::Task::GroupHealthCheck {
                group: g.name.clone(),
            };
            let key = format!("health:{}:{slot}", g.name);
            if let Err(e) = queue.enqueue(task, Some(key)).await {
                tracing::debug!(error = %e, "could not schedule a health check");
            }
        }
    }
}

pub fn tasks(cx: &Context, cmd: TasksCommand) -> Result<()> {
    let config = cx.load()?.config;
    let rt = runtime()?;
    rt.block_on(async move {
        let conn = wiring::connect(&config).await?;
        let queue = wiring::queue(&config, conn);
        match cmd {
            TasksCommand::List => print_tasks(cx, &queue.list().await?),
            TasksCommand::Dead => print_tasks(cx, &queue.dead().await?),
            TasksCommand::Requeue { id, all } => {
                let n = queue
                    .requeue(if all { None } else { id.as_deref() })
                    .await?;
                match cx.output {
                    OutputFormat::Json => output::json(&serde_json::json!({ "requeued": n })),
                    OutputFormat::Table | OutputFormat::Name => {
                        output::print(&format!("requeued {n} task{}\n", plural(n)))
                    }
                }
            }
        }
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn print_tasks(cx: &Context, tasks: &[TaskView]) -> Result<()> {
    match cx.output {
        OutputFormat::Json => output::json(tasks),
        OutputFormat::Table | OutputFormat::Name => {
            let now = crate::model::unix_now_ms();
            output::table(
                &["id", "state", "entry", "kind", "attempt", "when", "error"],
                tasks
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.state.to_string(),
                            t.entry.clone().unwrap_or_else(|| "-".into()),
                            t.kind.clone(),
                            t.attempt.to_string(),
                            when(t, now),
                            t.error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect(),
            )
        }
    }
    .map_err(|e: Error| e)
}

/// The WHEN column: when a delayed task is due, who holds an in-flight one and for how long,
/// how long ago a waiting task was queued or a dead one died (from its entry's time).
fn when(t: &TaskView, now_ms: u64) -> String {
    let since = t
        .entry
        .as_deref()
        .and_then(|e| e.split('-').next())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| now_ms.saturating_sub(ms) / 1000);
    match (t.due_at, t.idle_ms, &t.consumer, since) {
        (Some(due), ..) => format!("due in {}s", due.saturating_sub(now_ms) / 1000),
        (_, Some(idle), Some(c), _) => format!("{c}, {}s", idle / 1000),
        (.., Some(ago)) if t.state == "dead" => format!("died {ago}s ago"),
        (.., Some(ago)) => format!("queued {ago}s ago"),
        _ => "-".into(),
    }
}
