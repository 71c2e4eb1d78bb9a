//! What `/metrics` says of the whole fleet, read from Redis at scrape time (the same on every
//! `serve` and `worker`), and the worker's own metrics endpoint.

use crate::prom::{header, sample};
use crate::queue::Queue;
use crate::records::RunnerStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Runners by group and state, jobs waiting by group, the queue's depth, spot fallbacks and
/// refused jobs. Whatever Redis does not answer within 2 s is left out.
pub async fn fleet(queue: &Queue, store: &dyn RunnerStore, groups: &[String]) -> String {
    let mut out = String::new();
    let within = |f| tokio::time::timeout(Duration::from_secs(2), f);
    let mut runners = Vec::new();
    let mut waiting = Vec::new();
    let mut oldest = Vec::new();
    for g in groups {
        if let Ok(Ok(rs)) = within(store.runners_of_group(g)).await {
            for st in crate::model::RunnerStatus::ALL {
                let n = rs.iter().filter(|r| r.status == st).count();
                runners.push((g.clone(), st.as_str().to_string(), n));
            }
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), store.waiting(g)).await {
            waiting.push((g.clone(), n));
        }
        let ttl = crate::manager::ops::WAITING_TTL;
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), store.oldest_waiting_secs(g, ttl)).await
        {
            oldest.push((g.clone(), s));
        }
    }
    header(
        &mut out,
        "runnerctl_runners",
        "gauge",
        "Runners by group and state, as Redis records them.",
    );
    for (g, st, n) in runners {
        sample(
            &mut out,
            "runnerctl_runners",
            &["group", "state"],
            &[g, st],
            n as f64,
        );
    }
    header(
        &mut out,
        "runnerctl_jobs_waiting",
        "gauge",
        "Jobs queued on the forge and not started, by group.",
    );
    for (g, n) in waiting {
        sample(
            &mut out,
            "runnerctl_jobs_waiting",
            &["group"],
            &[g],
            f64::from(n),
        );
    }
    waits_and_workers(&mut out, queue, oldest).await;
    if let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(2), queue.depth()).await {
        header(&mut out, "runnerctl_queue_tasks", "gauge", "Tasks of the queue by state: waiting, delayed (for a retry), in_flight (held by a worker), dead.");
        for (state, n) in [
            ("waiting", d.waiting),
            ("delayed", d.delayed),
            ("in_flight", d.in_flight),
            ("dead", d.dead),
        ] {
            sample(
                &mut out,
                "runnerctl_queue_tasks",
                &["state"],
                &[state.into()],
                n as f64,
            );
        }
    }
    for (mark, name, help) in [
        (
            crate::store::spot_fallback_mark(""),
            "runnerctl_spot_fallbacks_total",
            "Creates that fell back from spot to on-demand, by group.",
        ),
        (
            crate::store::not_admitted_mark(""),
            "runnerctl_jobs_not_admitted_total",
            "Queued jobs a group's selected_workflows refused (checked by workers), by group.",
        ),
    ] {
        if let Ok(Ok(counts)) =
            tokio::time::timeout(Duration::from_secs(2), store.marks_with_prefix(&mark)).await
        {
            header(&mut out, name, "counter", help);
            for (group, n) in counts {
                sample(&mut out, name, &["group"], &[group], n as f64);
            }
        }
    }
    out
}

/// The age of each group's oldest waiting job, and the workers alive.
async fn waits_and_workers(out: &mut String, queue: &Queue, oldest: Vec<(String, u64)>) {
    header(
        out,
        "runnerctl_jobs_oldest_waiting_seconds",
        "gauge",
        "How long the group's oldest waiting job has waited (0 when none waits).",
    );
    for (g, s) in oldest {
        sample(
            out,
            "runnerctl_jobs_oldest_waiting_seconds",
            &["group"],
            &[g],
            s as f64,
        );
    }
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), queue.workers_alive()).await {
        header(
            out,
            "runnerctl_workers_alive",
            "gauge",
            "Workers that said they were alive within the last minute (by Redis's clock).",
        );
        sample(out, "runnerctl_workers_alive", &[], &[], n as f64);
    }
}

/// A worker's `/metrics`: its tasks, health-check actions and create durations, the forge's
/// rate limit as it last answered, and the fleet.
pub async fn worker_metrics(m: &crate::manager::Manager, queue: &Queue) -> String {
    let mut out = String::new();
    crate::worker::TASKS.render(&mut out);
    crate::manager::HEALTH_ACTIONS.render(&mut out);
    crate::manager::CREATE_SECONDS.render(&mut out);
    crate::manager::JOB_WAIT_SECONDS.render(&mut out);
    crate::manager::JOB_PHASE_SECONDS.render(&mut out);
    crate::backend::CALLS.render(&mut out);
    crate::backend::ERRORS.render(&mut out);
    crate::manager::ops::WARM_TAKEN.render(&mut out);
    crate::manager::ops::WARM_FAILURES.render(&mut out);
    crate::manager::CREATES.render(&mut out);
    breaker_gauges(&mut out, m).await;
    floor_gauges(&mut out, &m.config);
    // Samples once the forge has answered (a forge without rate-limit headers has none).
    let rate = m.forge.rate_limit();
    header(
        &mut out,
        "runnerctl_forge_rate_limit_remaining",
        "gauge",
        "Requests left in the forge's rate-limit window, as its last answer said.",
    );
    if let Some(r) = rate {
        sample(
            &mut out,
            "runnerctl_forge_rate_limit_remaining",
            &[],
            &[],
            r.remaining as f64,
        );
    }
    header(
        &mut out,
        "runnerctl_forge_rate_limit_reset_timestamp_seconds",
        "gauge",
        "When the forge's rate-limit window resets (unix seconds).",
    );
    if let Some(r) = rate {
        sample(
            &mut out,
            "runnerctl_forge_rate_limit_reset_timestamp_seconds",
            &[],
            &[],
            r.reset as f64,
        );
    }
    header(
        &mut out,
        "runnerctl_worker_up",
        "gauge",
        "1 while this worker runs.",
    );
    sample(&mut out, "runnerctl_worker_up", &[], &[], 1.0);
    let mut statuses = Vec::new();
    for meter in m.forge.meters() {
        if let Some(Ok(s)) = meter.status().await {
            statuses.push((meter.credential.clone(), s));
        }
    }
    crate::budget::render_metrics(&mut out, &statuses);
    let groups: Vec<String> = m
        .config
        .runner_groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    out.push_str(&fleet(queue, &*m.store, &groups).await);
    crate::listener::render(&mut out);
    scale_set_gauges(&mut out, &queue.store(&m.config.name), &m.config).await;
    out
}

/// Days before GitHub's minimum runner version applies to each group whose declared
/// `runner_version` is below it (0 once it applies); no sample for a group at or above it.
pub fn floor_gauges(out: &mut String, config: &crate::config::Config) {
    let name = "runnerctl_runner_version_floor_days_left";
    header(out, name, "gauge", "Days before GitHub's minimum runner version (github.min_runner_version) applies to a group whose runner_version is below it; 0 once it applies.");
    let Some(floor) = &config.github.min_runner_version else {
        return;
    };
    let now = crate::model::unix_now();
    for g in &config.runner_groups {
        let left = g
            .runner_version
            .as_deref()
            .and_then(|v| crate::config::floor::days_left(v, floor, now));
        if let Some(days) = left {
            sample(
                out,
                name,
                &["group"],
                std::slice::from_ref(&g.name),
                days as f64,
            );
        }
    }
}

/// Each breaker of a group with several backends, read from Redis (any worker shows every
/// process's): 0 closed, 1 half-open, 2 open, 3 broken.
async fn breaker_gauges(out: &mut String, m: &crate::manager::Manager) {
    use crate::manager::breaker;
    let name = "runnerctl_backend_breaker_state";
    let groups: Vec<_> = m
        .config
        .runner_groups
        .iter()
        .filter(|g| g.backends.len() > 1)
        .collect();
    if groups.is_empty() {
        return;
    }
    header(out, name, "gauge", "A group's backend's circuit breaker: 0 closed, 1 half-open, 2 open, 3 broken (a permanent failure).");
    let now = crate::model::unix_now();
    for g in groups {
        for c in &g.backends {
            let read = tokio::time::timeout(Duration::from_secs(2), m.breaker_of(g, &c.name)).await;
            if let Ok(Ok(b)) = read {
                let label = breaker::label(&b, now, &m.fingerprint(c));
                sample(
                    out,
                    name,
                    &["group", "backend"],
                    &[g.name.clone(), c.name.clone()],
                    breaker::gauge(label),
                );
            }
        }
    }
}

/// Each scale set's figures as its session holder last committed them (any worker answers
/// the same): GitHub's statistics, the desired count, the session and its last message's age.
async fn scale_set_gauges(
    out: &mut String,
    store: &crate::store::RedisStore,
    config: &crate::config::Config,
) {
    let sets: Vec<&str> = config
        .runner_groups
        .iter()
        .filter(|g| g.scale_set_mode())
        .map(|g| g.scale_set_name())
        .collect();
    if sets.is_empty() {
        return;
    }
    let mut states = Vec::new();
    for name in sets {
        let read = tokio::time::timeout(Duration::from_secs(2), store.scale_set_state(name)).await;
        if let Ok(Ok(st)) = read {
            states.push((name.to_string(), st));
        }
    }
    let name = "runnerctl_scale_set_runners";
    header(out, name, "gauge", "A scale set's jobs and runners as GitHub's statistics last said (assigned, running, registered, busy, idle), and the desired count min(max_runners, min_runners + assigned).");
    for (set, st) in &states {
        for (kind, field) in [
            ("assigned", "totalAssignedJobs"),
            ("running", "totalRunningJobs"),
            ("registered", "totalRegisteredRunners"),
            ("busy", "totalBusyRunners"),
            ("idle", "totalIdleRunners"),
            ("desired", "desired"),
        ] {
            let v = st.values.get(field).copied().unwrap_or(0);
            sample(
                out,
                name,
                &["scale_set", "kind"],
                &[set.clone(), kind.into()],
                v as f64,
            );
        }
    }
    let name = "runnerctl_scale_set_session_held";
    header(
        out,
        name,
        "gauge",
        "1 while a worker holds the scale set's session lease.",
    );
    for (set, st) in &states {
        let held = if st.holder.is_some() { 1.0 } else { 0.0 };
        sample(out, name, &["scale_set"], std::slice::from_ref(set), held);
    }
    let name = "runnerctl_scale_set_last_message_age_seconds";
    header(
        out,
        name,
        "gauge",
        "Seconds since the scale set's last message was handled.",
    );
    let now = crate::model::unix_now();
    for (set, st) in &states {
        if let Some(at) = st.last_message_at {
            sample(
                out,
                name,
                &["scale_set"],
                std::slice::from_ref(set),
                now.saturating_sub(at) as f64,
            );
        }
    }
}

/// Serves `GET /metrics` on `listener` with what `render` says, until `shutdown`.
pub async fn serve_worker_metrics(
    listener: TcpListener,
    m: Arc<crate::manager::Manager>,
    queue: Queue,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
            _ = &mut shutdown => return,
        };
        let (m, queue) = (m.clone(), queue.clone());
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (m, queue) = (m.clone(), queue.clone());
            async move {
                let (status, body) =
                    if req.method() == Method::GET && req.uri().path() == "/metrics" {
                        (200, worker_metrics(&m, &queue).await)
                    } else {
                        (404, "not found\n".to_string())
                    };
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok::<_, std::convert::Infallible>(r)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
