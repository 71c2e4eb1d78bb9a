//! Scale-set mode's entry point: the listener of one group's runner scale set, run by every
//! `runnerctl worker`, of which one at a time holds the scale set's session.
//!
//! A listener takes the session lease in Redis (with a fencing token, `store::scaleset`),
//! deletes a session a dead holder left open, opens a session (a 409 is waited out with a
//! growing pause, never a crash loop), then long-polls the message queue. Each message is
//! decided (`decide`), its tasks recorded on the task queue, its `JobAvailable` jobs acquired,
//! its id and statistics committed to Redis under the lease, and only then deleted from the
//! service's queue: a message not deleted comes back, and its tasks are deduplicated, so
//! nothing is lost or done twice whoever dies when. A holder whose lease renewal fails stops
//! at once (it polls, records and acknowledges nothing more) and deletes its own session.

pub mod decide;

use crate::config::RunnerGroup;
use crate::forge::scaleset::{Message, Polled, Routed, Session, SessionError, Statistics};
use crate::queue::{Envelope, Queue, Task};
use crate::store::{Lease, RedisStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Job messages by scale set and type.
pub static MESSAGES: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_scale_set_messages_total",
    "Scale-set job messages handled, by scale set and message type.",
    &["scale_set", "type"],
);

/// Sessions opened by this process.
pub static SESSIONS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_scale_set_sessions_total",
    "Scale-set message sessions opened (first and again after a takeover, expiry or loss).",
    &["scale_set"],
);

/// Leases taken by this process.
pub static LEASES: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_scale_set_leases_total",
    "Scale-set session leases taken by this worker.",
    &["scale_set"],
);

/// 409s answered to a session's creation.
pub static CONFLICTS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_scale_set_session_conflicts_total",
    "Session creations answered 409 (another session of the scale set is open).",
    &["scale_set"],
);

/// Messages that could not be read (dead-lettered).
pub static DEAD: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_scale_set_dead_messages_total",
    "Scale-set messages runnerctl could not read, written to the dead letters.",
    &["scale_set"],
);

/// Renders the listener's counters.
pub fn render(out: &mut String) {
    MESSAGES.render(out);
    SESSIONS.render(out);
    LEASES.render(out);
    CONFLICTS.render(out);
    DEAD.render(out);
}

/// One group's listener.
pub struct Listener {
    pub group: RunnerGroup,
    /// The manager's name (`config.name`), in runner names.
    pub manager: String,
    pub groups: Arc<Vec<RunnerGroup>>,
    pub routed: Arc<Routed>,
    pub store: RedisStore,
    pub queue: Queue,
    /// This worker's name (the lease's holder, the session's owner).
    pub holder: String,
    pub lease: Duration,
}

/// Why a held session ended.
enum Ended {
    /// The lease was lost (fenced off) or the process stops.
    Stop,
    /// The session is gone or unusable: open another one under the same lease.
    Again,
}

/// A growing pause: 1 s doubling to `max`, with jitter.
fn pause(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(6)).min(max);
    base + Duration::from_millis(fastrand::u64(0..=base.as_millis() as u64 / 4))
}

impl Listener {
    fn name(&self) -> &str {
        &self.routed.spec.name
    }

    /// Runs until `shutdown`: takes the lease whenever it is free, holds the session while
    /// the lease lasts.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self
                .store
                .scale_set_acquire(self.name(), &self.holder, self.lease)
                .await
            {
                Ok(Some(lease)) => {
                    failures = 0;
                    LEASES.inc(&[self.name()]);
                    tracing::info!(
                        scale_set = self.name(),
                        fence = lease.fence,
                        "scale-set session lease taken"
                    );
                    self.hold(lease, shutdown.clone()).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    failures += 1;
                    tracing::warn!(scale_set = self.name(), error = %e, "cannot take the scale-set lease");
                }
            }
            // Another worker holds it: look again well within its lease.
            let wait = (self.lease / 3).max(Duration::from_millis(200))
                + Duration::from_millis(fastrand::u64(0..200))
                + pause(failures, Duration::from_secs(10)).saturating_sub(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Keeps the lease renewed; the returned channel turns true once it is lost.
    fn renew(&self, lease: &Lease) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let (store, name, lease, ttl) = (
            self.store.clone(),
            self.name().to_string(),
            lease.clone(),
            self.lease,
        );
        let task = tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.scale_set_renew(&name, &lease, ttl).await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => {
                        tracing::warn!(scale_set = %name, "scale-set lease lost: this worker stops acting for it");
                        let _ = tx.send(true);
                        return;
                    }
                    // Redis unreachable: the lease may lapse meanwhile; past it, assume so.
                    Err(e) if last_ok.elapsed() >= ttl => {
                        tracing::warn!(scale_set = %name, error = %e, "scale-set lease not renewed in time: stopping");
                        let _ = tx.send(true);
                        return;
                    }
                    Err(_) => {}
                }
            }
        });
        (rx, task)
    }

    async fn hold(&self, lease: Lease, shutdown: watch::Receiver<bool>) {
        let (fenced, renewer) = self.renew(&lease);
        let stop = Stop { fenced, shutdown };
        let mut again = 0;
        loop {
            match self.session(&lease, &stop).await {
                Ended::Stop => break,
                Ended::Again => {
                    again += 1;
                    if stop.sleep(pause(again, Duration::from_secs(30))).await {
                        break;
                    }
                }
            }
        }
        renewer.abort();
        if !*stop.fenced.borrow() {
            let _ = self.store.scale_set_release(self.name(), &lease).await;
        }
    }

    /// Opens a session and handles its messages until it ends.
    async fn session(&self, lease: &Lease, stop: &Stop) -> Ended {
        let svc = &self.routed.service;
        let id = match self.scale_set_id().await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(scale_set = self.name(), error = %e, "scale set unknown");
                return Ended::Again;
            }
        };
        let state = match self.store.scale_set_state(self.name()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(scale_set = self.name(), error = %e, "cannot read the scale set's state");
                return Ended::Again;
            }
        };
        // A session a previous holder left open keeps the scale set's one slot: delete it.
        if let Some(old) = &state.session_id {
            if let Err(e) = svc.delete_session(id, old).await {
                tracing::debug!(scale_set = self.name(), error = %e, "could not delete the previous session");
            }
        }
        let Some(mut session) = self.open(id, stop).await else {
            return Ended::Stop;
        };
        let committed = self
            .store
            .scale_set_commit(self.name(), lease, &[("session_id", session.id.clone())])
            .await;
        if !matches!(committed, Ok(true)) {
            let _ = svc.delete_session(id, &session.id).await;
            return if stop.fenced_now() {
                Ended::Stop
            } else {
                Ended::Again
            };
        }
        self.statistics(lease, &session.statistics).await;
        let mut last = state.last_message_id;
        let mut trouble = 0;
        let ended = loop {
            let polled = tokio::select! {
                p = svc.poll(&session, last, self.group.max_runners) => p,
                _ = stop.wait() => break Ended::Stop,
            };
            match polled {
                Ok(Polled::Empty) => trouble = 0,
                Ok(Polled::Message(m)) => {
                    trouble = 0;
                    match self.handle(id, lease, &mut session, &m, last, stop).await {
                        Some(done) => last = done,
                        None if stop.fenced_now() => break Ended::Stop,
                        None => {}
                    }
                }
                Err(SessionError::Expired) => match svc.refresh_session(id, &session).await {
                    Ok(s) => session = s,
                    Err(_) => break Ended::Again,
                },
                Err(SessionError::Gone(why)) => {
                    tracing::info!(
                        scale_set = self.name(),
                        why,
                        "session gone: opening another"
                    );
                    break Ended::Again;
                }
                Err(e) => {
                    trouble += 1;
                    tracing::warn!(scale_set = self.name(), error = %e, "polling the scale set's queue failed");
                    if stop.sleep(pause(trouble, Duration::from_secs(30))).await {
                        break Ended::Stop;
                    }
                }
            }
        };
        // The session is this holder's own: deleting it frees the scale set's slot at once.
        let _ = svc.delete_session(id, &session.id).await;
        ended
    }

    /// The scale set's id; a scale set that does not exist (its creation at start failed,
    /// or it was deleted) is created.
    async fn scale_set_id(&self) -> crate::forge::Result<u64> {
        match self.routed.id().await {
            Err(crate::forge::ForgeError::NotFound(_)) => {
                let (set, _) = self
                    .routed
                    .service
                    .ensure_scale_set(&self.routed.spec)
                    .await?;
                tracing::info!(scale_set = self.name(), id = set.id, "scale set created");
                self.routed.know(set.id);
                Ok(set.id)
            }
            other => other,
        }
    }

    /// Creates a session, waiting out 409s (another session still open) with a growing pause.
    async fn open(&self, id: u64, stop: &Stop) -> Option<Session> {
        let owner = format!("{}@{}", self.manager, self.holder);
        let mut tries = 0;
        loop {
            if stop.stopped() {
                return None;
            }
            match self.routed.service.create_session(id, &owner).await {
                Ok(s) => {
                    SESSIONS.inc(&[self.name()]);
                    tracing::info!(scale_set = self.name(), session = %s.id, "scale-set session opened");
                    return Some(s);
                }
                Err(SessionError::Conflict(why)) => {
                    CONFLICTS.inc(&[self.name()]);
                    tracing::info!(
                        scale_set = self.name(),
                        why,
                        "another session is open: waiting"
                    );
                }
                Err(e) => {
                    tracing::warn!(scale_set = self.name(), error = %e, "cannot open a scale-set session")
                }
            }
            tries += 1;
            if stop.sleep(pause(tries, Duration::from_secs(30))).await {
                return None;
            }
        }
    }

    /// Handles one message: record, acquire, commit, acknowledge. The message's id when done
    /// (or dead-lettered); `None` when it must come again (or the lease was lost).
    async fn handle(
        &self,
        id: u64,
        lease: &Lease,
        session: &mut Session,
        m: &Message,
        last: u64,
        stop: &Stop,
    ) -> Option<u64> {
        let name = self.name().to_string();
        // Recorded by this or an earlier holder already: only its deletion was missing.
        if m.id > last {
            let ours = |runner: &str| {
                crate::manager::matching::group_of_runner(&self.manager, &self.groups, runner)
                    .is_some_and(|g| g.name == self.group.name)
            };
            match decide::decide(&self.group, &name, m, &ours) {
                Ok(d) => {
                    for (kind, n) in &d.counts {
                        MESSAGES.add(&[&name, kind], *n as f64);
                    }
                    for r in &d.tasks {
                        let env = Envelope::new(r.task.clone(), Some(r.key.clone()));
                        if let Err(e) = self
                            .queue
                            .enqueue_envelope_also(&env, Some(&r.job_key))
                            .await
                        {
                            tracing::warn!(scale_set = %name, error = %e, "cannot record a message's tasks: it comes again");
                            return None;
                        }
                    }
                    if !d.acquire.is_empty() && !self.acquire(id, session, &d.acquire).await {
                        return None;
                    }
                }
                Err(why) => {
                    DEAD.inc(&[&name]);
                    tracing::warn!(scale_set = %name, message = m.id, why, "unreadable scale-set message dead-lettered");
                    let task = Task::ScaleSetMessage {
                        scale_set: name.clone(),
                        message_id: m.id,
                        body: m.body.chars().take(64 * 1024).collect(),
                    };
                    if self.queue.bury(task, &why).await.is_err() {
                        return None;
                    }
                }
            }
            let mut fields = vec![
                ("last_message_id", m.id.to_string()),
                ("last_message_at", crate::model::unix_now().to_string()),
            ];
            if let Some(s) = &m.statistics {
                fields.extend(self.statistic_fields(s));
            }
            match self.store.scale_set_commit(&name, lease, &fields).await {
                Ok(true) => {}
                _ => return None,
            }
        }
        if stop.fenced_now() {
            return None;
        }
        let acked = match self.routed.service.ack(session, m.id).await {
            Err(SessionError::Expired) => {
                match self.routed.service.refresh_session(id, session).await {
                    Ok(s) => {
                        *session = s;
                        self.routed.service.ack(session, m.id).await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        if let Err(e) = acked {
            // Recorded: it comes again and is only deleted then.
            tracing::debug!(scale_set = %name, error = %e, "message not deleted yet");
        }
        Some(m.id)
    }

    /// Acquires jobs (a 401 refreshes the queue token once); false when it must be tried again.
    async fn acquire(&self, id: u64, session: &mut Session, ids: &[u64]) -> bool {
        let svc = &self.routed.service;
        let got = match svc.acquire(id, session, ids).await {
            Err(SessionError::Expired) => match svc.refresh_session(id, session).await {
                Ok(s) => {
                    *session = s;
                    svc.acquire(id, session, ids).await
                }
                Err(e) => Err(e),
            },
            other => other,
        };
        match got {
            Ok(got) => {
                tracing::debug!(
                    scale_set = self.name(),
                    asked = ids.len(),
                    acquired = got.len(),
                    "jobs acquired"
                );
                true
            }
            Err(e) => {
                tracing::warn!(scale_set = self.name(), error = %e, "acquiring jobs failed: the message comes again");
                false
            }
        }
    }

    fn statistic_fields(&self, s: &Statistics) -> Vec<(&'static str, String)> {
        let desired = s.desired(self.group.min_runners, self.group.max_runners);
        vec![
            ("totalAvailableJobs", s.total_available_jobs.to_string()),
            ("totalAssignedJobs", s.total_assigned_jobs.to_string()),
            ("totalRunningJobs", s.total_running_jobs.to_string()),
            (
                "totalRegisteredRunners",
                s.total_registered_runners.to_string(),
            ),
            ("totalBusyRunners", s.total_busy_runners.to_string()),
            ("totalIdleRunners", s.total_idle_runners.to_string()),
            ("desired", desired.to_string()),
        ]
    }

    async fn statistics(&self, lease: &Lease, s: &Statistics) {
        let fields = self.statistic_fields(s);
        let _ = self
            .store
            .scale_set_commit(self.name(), lease, &fields)
            .await;
    }
}

/// What ends a held session: the lease lost, or the process stopping.
struct Stop {
    fenced: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
}

impl Stop {
    fn fenced_now(&self) -> bool {
        *self.fenced.borrow()
    }

    fn stopped(&self) -> bool {
        self.fenced_now() || *self.shutdown.borrow()
    }

    /// Waits until stopped.
    async fn wait(&self) {
        let (mut f, mut s) = (self.fenced.clone(), self.shutdown.clone());
        tokio::select! {
            _ = f.wait_for(|x| *x) => {}
            _ = s.wait_for(|x| *x) => {}
        }
    }

    /// Sleeps `d`; true when stopped meanwhile.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopped(),
            _ = self.wait() => true,
        }
    }
}
