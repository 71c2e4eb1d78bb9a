//! The domain's vocabulary: runners, their statuses and their life.

use serde::{Deserialize, Serialize};

/// The prefix of every Redis key of a manager: `runnerctl:{NAME}:`, braces included. The
/// braces are a Redis Cluster hash tag: every key of one manager is in one slot, so every
/// script's keys are too.
pub fn key_prefix(manager: &str) -> String {
    format!("runnerctl:{{{manager}}}:")
}

/// The prefix of a manager's keys before hash tags (runnerctl 0.1 until issue 17):
/// `runnerctl:NAME:`. The store's `migrate_layout` renames them.
pub fn old_key_prefix(manager: &str) -> String {
    format!("runnerctl:{manager}:")
}

/// Where a runner is in its life. The order is the order of a normal life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerStatus {
    /// A warm-pool instance being made (booted, and for a stopped pool stopped); no runner is
    /// registered for it.
    Warming,
    /// A warm-pool instance ready for a job (hot: booted and waiting for a credential;
    /// stopped: to be started). Not registered on the forge: nothing can steal it.
    Warm,
    /// A slot of the group is held for it; nothing exists yet.
    Reserved,
    /// Its JIT configuration and instance are being made.
    Creating,
    /// The instance exists; the runner has not come online on GitHub yet.
    Started,
    /// Online on GitHub and waiting for a job.
    Idle,
    /// Running a job.
    Active,
    /// Being removed from the backend and from GitHub.
    Deleting,
    /// Something went wrong that a health check must clean up.
    Failed,
}

impl RunnerStatus {
    pub const ALL: [RunnerStatus; 9] = [
        RunnerStatus::Warming,
        RunnerStatus::Warm,
        RunnerStatus::Reserved,
        RunnerStatus::Creating,
        RunnerStatus::Started,
        RunnerStatus::Idle,
        RunnerStatus::Active,
        RunnerStatus::Deleting,
        RunnerStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunnerStatus::Warming => "warming",
            RunnerStatus::Warm => "warm",
            RunnerStatus::Reserved => "reserved",
            RunnerStatus::Creating => "creating",
            RunnerStatus::Started => "started",
            RunnerStatus::Idle => "idle",
            RunnerStatus::Active => "active",
            RunnerStatus::Deleting => "deleting",
            RunnerStatus::Failed => "failed",
        }
    }

    /// What the status means, in a sentence (for help texts).
    pub fn describe(self) -> &'static str {
        match self {
            RunnerStatus::Warming => {
                "A warm-pool instance being made; no runner is registered for it"
            }
            RunnerStatus::Warm => {
                "A warm-pool instance ready for a job; no runner is registered for it yet"
            }
            RunnerStatus::Reserved => "A slot of the group is held for it; nothing exists yet",
            RunnerStatus::Creating => "Its JIT configuration and instance are being made",
            RunnerStatus::Started => {
                "The instance exists; the runner has not come online on GitHub yet"
            }
            RunnerStatus::Idle => "Online on GitHub and waiting for a job",
            RunnerStatus::Active => "Running a job",
            RunnerStatus::Deleting => "Being removed from the backend and from GitHub",
            RunnerStatus::Failed => "Something went wrong that a health check must clean up",
        }
    }

    pub fn parse(s: &str) -> Option<RunnerStatus> {
        RunnerStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for RunnerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A runner as runnerctl tracks it, from the reservation of its slot to its deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    /// Unique name: `{manager}-{group}-{suffix}`; also the instance's and GitHub's name for it.
    pub name: String,
    pub group: String,
    /// The backend's name in the configuration.
    pub backend: String,
    /// The backend's id for the instance, once it exists.
    pub instance_id: Option<String>,
    /// GitHub's id for the runner, once registered.
    pub forge_id: Option<u64>,
    pub labels: Vec<String>,
    pub status: RunnerStatus,
    /// The queued job this runner was made for (it may end up running another one).
    pub created_for_job: Option<u64>,
    /// The job it runs now, or ran last.
    pub job_id: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
    /// When its instance was asked for (Redis seconds): from then on, an instance may exist
    /// that the backend does not list yet.
    #[serde(default)]
    pub requested_at: Option<u64>,
    pub started_at: Option<u64>,
    pub online_at: Option<u64>,
    pub ended_at: Option<u64>,
    /// Why it failed, for the operator. Never contains a secret.
    pub error: Option<String>,
    /// The warm pool it was made for (`hot` or `stopped`), when it was; it keeps this after a
    /// job took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Pool>,
}

/// Where the runner that took a job came from: the label of `runnerctl_job_wait_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitSource {
    /// A hot warm-pool instance.
    Hot,
    /// A stopped warm-pool instance, started for it.
    Stopped,
    /// A runner made for this very job after it was queued.
    Cold,
    /// A runner made for no job: `min_runners`, a health pass, an operator.
    MinRunners,
    /// A runner made for another job (GitHub gave this job to it).
    Stolen,
}

impl WaitSource {
    pub const ALL: [WaitSource; 5] = [
        WaitSource::Hot,
        WaitSource::Stopped,
        WaitSource::Cold,
        WaitSource::MinRunners,
        WaitSource::Stolen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WaitSource::Hot => "hot",
            WaitSource::Stopped => "stopped",
            WaitSource::Cold => "cold",
            WaitSource::MinRunners => "min_runners",
            WaitSource::Stolen => "stolen",
        }
    }

    /// Where `r`, which took job `job`, came from.
    pub fn of(r: &Runner, job: u64) -> WaitSource {
        match (r.pool, r.created_for_job) {
            (Some(Pool::Hot), _) => WaitSource::Hot,
            (Some(Pool::Stopped), _) => WaitSource::Stopped,
            (None, Some(j)) if j == job => WaitSource::Cold,
            (None, Some(_)) => WaitSource::Stolen,
            (None, None) => WaitSource::MinRunners,
        }
    }
}

/// A warm pool's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Booted, waiting for a credential.
    Hot,
    /// Booted once, then stopped; started on demand.
    Stopped,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Hot => "hot",
            Pool::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Pool> {
        match s {
            "hot" => Some(Pool::Hot),
            "stopped" => Some(Pool::Stopped),
            _ => None,
        }
    }
}

/// How long a creation (reserved or creating) counts as free although no task holds its lock:
/// the time its task takes to take the lock after the reservation.
pub const FRESH_CREATION_SECS: u64 = 5;

/// Whether `r` can still take a job of its group: the one definition of a free runner. Started
/// or idle with no job; or reserved or creating with no job, while a task works on it
/// (`locked`) or for [`FRESH_CREATION_SECS`] after its reservation (a creation nobody works on
/// will not come unless a health check resumes it). `now` is Redis seconds. The store's Lua
/// scripts apply it atomically, with this module's parameter (`tests/store.rs`
/// `the_free_runner_rule_is_the_same_in_rust_and_in_lua` checks they agree on every state).
pub fn counts_as_free(r: &Runner, now: u64, locked: bool) -> bool {
    if r.job_id.is_some() {
        return false;
    }
    match r.status {
        RunnerStatus::Started | RunnerStatus::Idle => true,
        RunnerStatus::Reserved | RunnerStatus::Creating => {
            locked || r.created_at >= now.saturating_sub(FRESH_CREATION_SECS)
        }
        RunnerStatus::Warming
        | RunnerStatus::Warm
        | RunnerStatus::Active
        | RunnerStatus::Deleting
        | RunnerStatus::Failed => false,
    }
}

impl Runner {
    /// A runner that has just been given a slot.
    pub fn reserved(
        name: impl Into<String>,
        group: impl Into<String>,
        backend: impl Into<String>,
        labels: Vec<String>,
        created_for_job: Option<u64>,
        now: u64,
    ) -> Runner {
        Runner {
            name: name.into(),
            group: group.into(),
            backend: backend.into(),
            instance_id: None,
            forge_id: None,
            labels,
            status: RunnerStatus::Reserved,
            created_for_job,
            job_id: None,
            created_at: now,
            requested_at: None,
            started_at: None,
            online_at: None,
            ended_at: None,
            error: None,
            pool: None,
        }
    }
}

/// The signed identity of a Compute Engine instance as runnerctl names it: what the GCP backend
/// reports and what the broker reads off the instance's identity token.
pub fn gce_identity(project: &str, zone: &str, name: &str, id: &str) -> String {
    format!("gce:{project}/{zone}/{name}/{id}")
}

/// The signed identity of an EC2 instance as runnerctl names it: what the EC2 backend reports
/// and what the broker reads off the instance's signed identity document.
pub fn ec2_identity(account: &str, region: &str, instance_id: &str) -> String {
    format!("ec2:{account}/{region}/{instance_id}")
}

/// An RFC 3339 UTC time of seconds since the epoch.
pub fn rfc3339(unix: u64) -> String {
    // Civil-from-days (Howard Hinnant), enough for timestamps in answers.
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Seconds since the epoch of an RFC 3339 time (`2026-12-02T05:55:00.123-08:00`).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?;
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(t).ok()
}

/// The current time in unix seconds. Only the edges of the program read the clock; the domain's
/// decisions take `now` as an argument.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The current time in unix milliseconds.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_s_wait_is_labelled_by_where_its_runner_came_from() {
        let mut r = Runner::reserved("r", "g", "fake", vec![], Some(7), 0);
        assert_eq!(WaitSource::of(&r, 7), WaitSource::Cold);
        assert_eq!(WaitSource::of(&r, 8), WaitSource::Stolen);
        r.created_for_job = None;
        assert_eq!(WaitSource::of(&r, 8), WaitSource::MinRunners);
        r.pool = Some(Pool::Stopped);
        assert_eq!(WaitSource::of(&r, 8), WaitSource::Stopped);
        r.pool = Some(Pool::Hot);
        r.created_for_job = Some(7);
        assert_eq!(
            WaitSource::of(&r, 8),
            WaitSource::Hot,
            "taken by another job, still hot"
        );
    }

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(super::parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::parse_rfc3339("2026-12-02T05:55:00.123-08:00"),
            Some(1_796_219_700)
        );
        assert_eq!(
            super::parse_rfc3339("2026-12-02T13:55:00+00:00"),
            Some(1_796_219_700)
        );
        assert_eq!(super::parse_rfc3339("yesterday"), None);
        assert_eq!(super::rfc3339(1_796_219_700), "2026-12-02T13:55:00Z");
        assert_eq!(
            super::parse_rfc3339(&super::rfc3339(1_796_219_700)),
            Some(1_796_219_700)
        );
    }
}

#[cfg(test)]
mod free_rule_tests {
    use super::*;

    #[test]
    fn a_free_runner_is_one_that_can_still_take_a_job() {
        let now = 1_000;
        for status in RunnerStatus::ALL {
            for job in [None, Some(1)] {
                for (created_at, fresh) in [
                    (now, true),
                    (now - FRESH_CREATION_SECS, true),
                    (now - FRESH_CREATION_SECS - 1, false),
                ] {
                    for locked in [false, true] {
                        let mut r = Runner::reserved("r", "g", "b", vec![], None, created_at);
                        r.status = status;
                        r.job_id = job;
                        let want = job.is_none()
                            && match status {
                                RunnerStatus::Started | RunnerStatus::Idle => true,
                                RunnerStatus::Reserved | RunnerStatus::Creating => fresh || locked,
                                _ => false,
                            };
                        assert_eq!(
                            counts_as_free(&r, now, locked),
                            want,
                            "{status:?} {job:?} {created_at} {locked}"
                        );
                    }
                }
            }
        }
    }
}
