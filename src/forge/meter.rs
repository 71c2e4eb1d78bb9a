//! Each forge client's side of the shared API budget ([`crate::budget`]): every request asks
//! first, at the priority of the task that makes it, and hands its lease back with the hourly
//! limit the answer reported; a limit the forge answers with pauses the class for every
//! process. Without a budget (a client built by hand, a test) every request goes at once.

use super::{ForgeError, Result};
use crate::budget::{
    self, current_priority, Ask, Budget, Limits, Primary, Priority, Short, Status, Take,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client's budget and the credential it spends.
pub struct Meter {
    budget: Option<Arc<dyn Budget>>,
    /// The credential's name in the budget and the metrics (never the secret).
    pub credential: String,
    pub limits: Limits,
    /// When the budget's store last failed (unix s), so that it is said once a minute.
    warned: AtomicU64,
}

/// A request's place in the budget, handed back with [`Meter::done`].
pub struct Permit {
    pub class: String,
    lease: Option<String>,
}

/// The shortest wait among several clients' answers.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    pub wait: Duration,
    pub why: Short,
}

impl Meter {
    pub fn new(credential: String, limits: Limits) -> Meter {
        Meter {
            budget: None,
            credential,
            limits,
            warned: AtomicU64::new(0),
        }
    }

    pub fn set_budget(&mut self, budget: Arc<dyn Budget>, limits: Limits) {
        self.budget = Some(budget);
        self.limits = limits;
    }

    /// Whether it asks a shared budget (else a pause is this caller's to wait out).
    pub fn has_budget(&self) -> bool {
        self.budget.is_some()
    }

    fn store_failed(&self, e: &budget::BudgetError) {
        let now = crate::model::unix_now();
        let last = self.warned.load(Ordering::Relaxed);
        if now < last + 60 || self.warned.swap(now, Ordering::Relaxed) != last {
            return;
        }
        let credential = &self.credential;
        // No Redis where a command runs is common and said elsewhere; a Redis that answers
        // wrongly or hangs is not.
        if matches!(e, budget::BudgetError::Unreachable(_)) {
            tracing::info!(%credential, error = %e, "calling the forge without the shared API budget");
        } else {
            tracing::warn!(
                %credential,
                error = %e,
                "the shared API budget cannot be asked; calling the forge without it"
            );
        }
    }

    /// One try: a permit, or how long to wait.
    pub async fn try_take(&self, class: &str, write: bool) -> std::result::Result<Permit, Waiting> {
        let Some(b) = &self.budget else {
            return Ok(Permit {
                class: class.to_string(),
                lease: None,
            });
        };
        let priority = current_priority();
        let ask = Ask {
            credential: &self.credential,
            class,
            write,
            priority,
            limits: &self.limits,
        };
        match b.take(&ask).await {
            Ok(Take::Granted { lease }) => {
                budget::POINTS.add(
                    &[&self.credential, class, priority.as_str()],
                    self.limits.cost(write) as f64,
                );
                Ok(Permit {
                    class: class.to_string(),
                    lease: Some(lease),
                })
            }
            Ok(Take::Wait { wait, why }) => Err(Waiting { wait, why }),
            Err(e) => {
                self.store_failed(&e);
                Ok(Permit {
                    class: class.to_string(),
                    lease: None,
                })
            }
        }
    }

    /// The request of `permit` has its answer.
    pub async fn done(&self, permit: Permit, primary: Option<Primary>) {
        if let Some(p) = primary {
            budget::REMAINING.set(&[&self.credential], p.remaining as f64);
        }
        let (Some(b), Some(lease)) = (&self.budget, permit.lease) else {
            return;
        };
        if let Err(e) = b.done(&self.credential, &lease, primary).await {
            self.store_failed(&e);
        }
    }

    /// The forge answered with a limit: `class` (or every class, when the hourly budget is
    /// spent) pauses for `wait` for every process. Whether the budget keeps the pause (else
    /// the caller must wait it out itself).
    pub async fn pause(&self, class: &str, wait: Duration) -> bool {
        budget::PAUSES.inc(&[&self.credential, class]);
        tracing::warn!(
            credential = %self.credential,
            class,
            wait_secs = wait.as_secs(),
            "the forge answered with a rate limit; pausing for every process"
        );
        let Some(b) = &self.budget else {
            return false;
        };
        match b.pause(&self.credential, class, wait).await {
            Ok(()) => true,
            Err(e) => {
                self.store_failed(&e);
                false
            }
        }
    }

    /// The credential's state in the shared budget; `None` without one.
    pub async fn status(&self) -> Option<std::result::Result<Status, String>> {
        let b = self.budget.as_ref()?;
        Some(b.status(&self.credential).await.map_err(|e| e.to_string()))
    }
}

/// Waits among `meters` (a client's, or several Apps') for a permit: the first that grants,
/// tried in turn, else the shortest wait. A job's call waits up to `max_wait` in all, then
/// is answered [`ForgeError::RateLimited`] (its task waits, no attempt counted); a lower
/// priority's call that would wait longer than that is answered [`ForgeError::Deferred`].
pub async fn take_any(
    meters: &[&Meter],
    class: &str,
    write: bool,
    max_wait: Duration,
) -> Result<(usize, Permit)> {
    let started = Instant::now();
    let priority = current_priority();
    loop {
        let mut shortest: Option<Waiting> = None;
        for (i, m) in meters.iter().enumerate() {
            match m.try_take(class, write).await {
                Ok(p) => return Ok((i, p)),
                Err(s) => {
                    if shortest.is_none_or(|b| s.wait < b.wait) {
                        shortest = Some(s);
                    }
                }
            }
        }
        let Some(s) = shortest else {
            return Err(ForgeError::Config(
                "no credential to call the forge with".into(),
            ));
        };
        let credential = meters.first().map(|m| m.credential.as_str()).unwrap_or("");
        if started.elapsed() + s.wait > max_wait {
            let wait = s.wait.max(Duration::from_millis(100));
            return Err(match priority {
                Priority::Job => ForgeError::RateLimited {
                    reset_at: crate::model::unix_now() + wait.as_secs(),
                    wait,
                },
                p => {
                    budget::SKIPS.inc(&[credential, p.as_str()]);
                    ForgeError::Deferred {
                        priority: p.as_str(),
                        why: s.why.as_str(),
                        wait,
                    }
                }
            });
        }
        budget::WAITS.add(
            &[credential, priority.as_str(), s.why.as_str()],
            s.wait.as_secs_f64(),
        );
        tokio::time::sleep(s.wait).await;
    }
}

/// The hourly limit an answer's headers report, its reset measured on the forge's clock (its
/// `Date`, else ours).
pub fn primary_of(headers: &http::HeaderMap) -> Option<Primary> {
    let num = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let limit = num("x-ratelimit-limit")?;
    let remaining = num("x-ratelimit-remaining")?;
    let reset = num("x-ratelimit-reset")?;
    let now = forge_now(headers);
    Some(Primary {
        limit,
        remaining,
        resets_in: Duration::from_secs(reset.saturating_sub(now)),
    })
}

/// The forge's clock by its answer's `Date` (unix seconds); ours when it sent none.
pub fn forge_now(headers: &http::HeaderMap) -> u64 {
    headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or_else(crate::model::unix_now)
}
