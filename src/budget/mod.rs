//! One API budget per credential (a GitHub App installation, a token, a Gitea token), shared by
//! every process of every deployment that uses it: `serve`, the workers, health passes and the
//! CLI ask it before each request to the forge.
//!
//! Three limits are kept, as GitHub states them:
//! - the **secondary limit** by endpoint class (`POST /orgs/{owner}/actions/runners/generate-jitconfig`):
//!   points per minute, a write costing more than a read. A GCRA token bucket per class spends
//!   at most 95% of it in any minute: for writes a burst of 5% and a steady 90%, for reads a
//!   burst of 25% and a steady 70% (a class is one method);
//! - **concurrent requests**: leases with an expiry, so a killed process's requests free their
//!   places by themselves;
//! - the **primary limit** per hour, read from each answer's `x-ratelimit-*` headers.
//!
//! And **pauses**: when the forge answers with a limit anyway, [`Budget::pause`] stops that
//! credential's class (or all of it) for every process until the time the forge gave.
//!
//! **Priorities** ([`Priority`]): calls that serve a waiting job may spend the whole budget;
//! health passes only while half of the burst, half of the concurrent places and 10% of the
//! hourly budget are left; cleanup and `groups sync` a quarter, a quarter and 25%. So the lower
//! classes wait (or skip) when the budget runs short, never the jobs.
//!
//! The decision is [`decide`], pure; [`MemoryBudget`] runs it over a [`Clock`](crate::clock::Clock),
//! [`RedisBudget`] runs the same rule in one Lua script on Redis's clock, so that hosts whose
//! clocks differ agree. The budget is advice: when Redis cannot be asked, the forge's client
//! goes on without it (and says so), since GitHub's own answers still pause it.

mod gcra;
mod memory;
mod redis;

pub use gcra::{decide, Decision, Params, State};
pub use memory::MemoryBudget;
pub use redis::RedisBudget;

use serde::Serialize;
use std::future::Future;
use std::time::Duration;

/// Who a call serves, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// A waiting job: a JIT configuration, a scale-set acquisition, a runner's removal after
    /// its job. The default of every call not marked otherwise.
    Job,
    /// Health passes: runner listings, lost-job searches.
    Health,
    /// Cleanup and `groups sync`.
    Cleanup,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Job, Priority::Health, Priority::Cleanup];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Job => "job",
            Priority::Health => "health",
            Priority::Cleanup => "cleanup",
        }
    }

    /// The share (per mille) of the burst, and of the concurrent places, this class may use.
    fn share_permille(self) -> u64 {
        match self {
            Priority::Job => 1000,
            Priority::Health => 500,
            Priority::Cleanup => 250,
        }
    }

    /// The share (per mille) of the hourly budget this class leaves untouched.
    fn primary_reserve_permille(self) -> u64 {
        match self {
            Priority::Job => 0,
            Priority::Health => 100,
            Priority::Cleanup => 250,
        }
    }
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `f` with its forge calls at priority `p` (a health pass, a cleanup).
pub async fn with_priority<F: Future>(p: Priority, f: F) -> F::Output {
    PRIORITY.scope(p, f).await
}

/// The priority of the calls made now: the innermost [`with_priority`], else [`Priority::Job`].
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::Job)
}

/// A credential's limits, from `github.budget` or `gitea.budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Points per minute per endpoint class.
    pub points_per_minute: u32,
    pub write_points: u32,
    pub read_points: u32,
    pub max_concurrent: u32,
}

impl Limits {
    /// GitHub's published secondary limits: 900 points a minute per endpoint, a write 5 points,
    /// a read 1, 100 concurrent requests.
    pub const GITHUB: Limits = Limits {
        points_per_minute: 900,
        write_points: 5,
        read_points: 1,
        max_concurrent: 100,
    };

    /// The points of a request.
    pub fn cost(&self, write: bool) -> u32 {
        if write {
            self.write_points
        } else {
            self.read_points
        }
    }

    /// The writes a minute one credential sustains on one endpoint class: 90% of the points.
    pub fn writes_per_minute(&self) -> u32 {
        (self.points_per_minute as u64 * 9 / 10 / self.write_points.max(1) as u64) as u32
    }
}

/// Why a request must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Short {
    /// The forge answered with a limit; every process waits until the time it gave.
    Paused,
    /// The hourly budget is spent (or, for the lower classes, down to their reserve).
    Primary,
    /// As many requests are in flight as this class may have.
    Concurrency,
    /// The endpoint class's points per minute are spent.
    Rate,
}

impl Short {
    pub fn as_str(self) -> &'static str {
        match self {
            Short::Paused => "paused",
            Short::Primary => "primary",
            Short::Concurrency => "concurrency",
            Short::Rate => "rate",
        }
    }

    fn parse(s: &str) -> Option<Short> {
        [
            Short::Paused,
            Short::Primary,
            Short::Concurrency,
            Short::Rate,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The answer to an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// Go; hand `lease` back to [`Budget::done`] when the answer came.
    Granted { lease: String },
    /// Ask again after `wait`.
    Wait { wait: Duration, why: Short },
}

/// One request asked for.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub credential: &'a str,
    pub class: &'a str,
    pub write: bool,
    pub priority: Priority,
    pub limits: &'a Limits,
}

/// The hourly (primary) limit an answer reported; `resets_in` is measured on the forge's own
/// clock (its `Date` header), so that a host whose clock differs still agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Primary {
    pub limit: u64,
    pub remaining: u64,
    pub resets_in: Duration,
}

/// What `doctor` and the metrics show of a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The credential's classes paused now: the class (`*` for all) and the time left.
    pub pauses: Vec<(String, Duration)>,
    /// Requests in flight (over every process).
    pub in_flight: u32,
    /// The hourly limit the last answer reported: (limit, remaining), while it is current.
    pub primary: Option<(u64, u64)>,
}

/// The class that pauses every endpoint of a credential (a spent hourly budget).
pub const ALL_CLASSES: &str = "*";

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("the API budget's store: {0}")]
    Store(String),
    /// Its Redis could not be connected to (a command run where no Redis is): calls go on
    /// without the budget, said at `info`.
    #[error("the API budget's Redis cannot be reached: {0}")]
    Unreachable(String),
}

/// The budget port.
#[async_trait::async_trait]
pub trait Budget: Send + Sync {
    /// Asks for one request's points and one place among the concurrent requests.
    async fn take(&self, ask: &Ask<'_>) -> Result<Take, BudgetError>;
    /// The request of `lease` has its answer; `primary`: the hourly limit it reported.
    async fn done(
        &self,
        credential: &str,
        lease: &str,
        primary: Option<Primary>,
    ) -> Result<(), BudgetError>;
    /// The forge answered with a limit: nobody calls `class` ([`ALL_CLASSES`]: any) of
    /// `credential` for `wait`. A pause never shortens a longer one.
    async fn pause(&self, credential: &str, class: &str, wait: Duration)
        -> Result<(), BudgetError>;
    /// The state of a credential.
    async fn status(&self, credential: &str) -> Result<Status, BudgetError>;
}

/// The endpoint class of a request: its method and route, with owners, repositories and ids
/// taken out (`GET /orgs/{owner}/actions/runners`), as GitHub counts its secondary limit.
pub fn endpoint_class(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    let mut i = 0;
    while i < segs.len() {
        let s = segs[i];
        let prev = i.checked_sub(1).map(|j| segs[j]);
        let name_slot = matches!(prev, Some("orgs" | "users" | "enterprises" | "owners"));
        if name_slot {
            out.push("{owner}");
        } else if prev == Some("repos") && i + 1 < segs.len() {
            out.push("{owner}/{repo}");
            i += 1;
        } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            out.push("{id}");
        } else {
            out.push(s);
        }
        i += 1;
    }
    format!("{} /{}", method.to_ascii_uppercase(), out.join("/"))
}

/// The name a credential's budget is kept under: never the secret itself, a digest of it.
pub fn credential_id(kind: &str, secret_or_id: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret_or_id.as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}")
}

/// Points spent, by credential, endpoint class and priority.
pub static POINTS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_api_points_total",
    "API points this process spent, by credential, endpoint class and priority.",
    &["credential", "class", "priority"],
);

/// Time spent waiting for the budget, by credential, priority and reason.
pub static WAITS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_api_budget_wait_seconds_total",
    "Seconds this process's API calls waited for the budget, by credential, priority and reason.",
    &["credential", "priority", "reason"],
);

/// Calls a lower class gave up for want of budget, by credential and priority.
pub static SKIPS: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_api_budget_skips_total",
    "API calls skipped for want of budget (lower priorities only), by credential and priority.",
    &["credential", "priority"],
);

/// Limits the forge answered with, each pausing a class, by credential and class.
pub static PAUSES: crate::prom::Counter = crate::prom::Counter::new(
    "runnerctl_api_pauses_total",
    "Rate limits the forge answered this process with, each pausing a class of a credential for every process.",
    &["credential", "class"],
);

/// The hourly budget left, as the last answer reported it.
pub static REMAINING: crate::prom::Gauge = crate::prom::Gauge::new(
    "runnerctl_api_budget_remaining",
    "Requests left in the credential's hourly budget, as the forge's last answer to this process reported.",
    &["credential"],
);

/// Renders this process's budget counters, and what the shared budget says of `statuses`
/// (credential, its status): classes paused now, requests in flight over every process.
pub fn render_metrics(out: &mut String, statuses: &[(String, Status)]) {
    POINTS.render(out);
    WAITS.render(out);
    SKIPS.render(out);
    PAUSES.render(out);
    REMAINING.render(out);
    crate::prom::header(
        out,
        "runnerctl_api_paused_seconds",
        "gauge",
        "Seconds left of a pause a rate limit answered by the forge imposed on a credential's endpoint class (`*`: all), for every process.",
    );
    for (credential, s) in statuses {
        for (class, left) in &s.pauses {
            crate::prom::sample(
                out,
                "runnerctl_api_paused_seconds",
                &["credential", "class"],
                &[credential.clone(), class.clone()],
                left.as_secs_f64(),
            );
        }
    }
    crate::prom::header(
        out,
        "runnerctl_api_in_flight",
        "gauge",
        "Requests to the forge in flight with a credential, over every process.",
    );
    for (credential, s) in statuses {
        crate::prom::sample(
            out,
            "runnerctl_api_in_flight",
            &["credential"],
            std::slice::from_ref(credential),
            s.in_flight as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_classes_leave_out_names_and_ids() {
        assert_eq!(
            endpoint_class("post", "/orgs/acme/actions/runners/generate-jitconfig"),
            "POST /orgs/{owner}/actions/runners/generate-jitconfig"
        );
        assert_eq!(
            endpoint_class("DELETE", "/repos/acme/app/actions/runners/42"),
            "DELETE /repos/{owner}/{repo}/actions/runners/{id}"
        );
        assert_eq!(
            endpoint_class("GET", "orgs/acme/actions/runners?per_page=100&page=2"),
            "GET /orgs/{owner}/actions/runners"
        );
        assert_eq!(
            endpoint_class("POST", "/app/installations/7/access_tokens"),
            "POST /app/installations/{id}/access_tokens"
        );
    }

    #[test]
    fn a_credential_id_never_shows_the_secret() {
        let id = credential_id("token", "ghp_secret_value");
        assert!(id.starts_with("token-"));
        assert!(!id.contains("secret"));
        assert_eq!(id, credential_id("token", "ghp_secret_value"));
        assert_ne!(id, credential_id("token", "ghp_other"));
    }

    #[test]
    fn one_app_sustains_162_jit_configurations_a_minute() {
        assert_eq!(Limits::GITHUB.writes_per_minute(), 162);
    }

    #[tokio::test]
    async fn the_priority_is_the_innermost_scope() {
        assert_eq!(current_priority(), Priority::Job);
        with_priority(Priority::Health, async {
            assert_eq!(current_priority(), Priority::Health);
            with_priority(Priority::Cleanup, async {
                assert_eq!(current_priority(), Priority::Cleanup)
            })
            .await;
        })
        .await;
    }
}
