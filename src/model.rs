//! The domain's vocabulary: runners, their statuses and their life.

use serde::{Deserialize, Serialize};

/// Where a runner is in its life. The order is the order of a normal life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum RunnerStatus {
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
    pub const ALL: [RunnerStatus; 7] = [
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
            RunnerStatus::Reserved => "reserved",
            RunnerStatus::Creating => "creating",
            RunnerStatus::Started => "started",
            RunnerStatus::Idle => "idle",
            RunnerStatus::Active => "active",
            RunnerStatus::Deleting => "deleting",
            RunnerStatus::Failed => "failed",
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
