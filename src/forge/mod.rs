//! The forge: what runnerctl needs of GitHub, Gitea or Forgejo, as capabilities.
//!
//! - [`RunnerRegistry`]: list, get and delete runners, and register one ([`Registration`]: a
//!   just-in-time configuration, or a registration token the runner uses itself).
//! - [`JobSource`]: the jobs waiting for a runner, and what a run is (its workflow file).
//! - [`RunnerGroups`], optional: a forge without runner groups answers `None` to
//!   [`Forge::groups`], and `groups sync` says so.
//! - [`WebhookScheme`]: the forge's webhook headers, signature and payload, turned into a
//!   forge-neutral [`WebhookEvent`].
//!
//! `github` implements them over GitHub's REST API (octocrab for transport and authentication);
//! `gitea` over Gitea's (and Forgejo's) REST API, the same transport. `sim` and `gitea::fake` are
//! stateful fakes of the two for tests and the demo, never used by a production code path.

pub mod fake;
pub mod fake_limits;
pub mod gitea;
pub mod github;
pub mod meter;
pub mod scaleset;

/// The forge's traits, for callers that use several capabilities.
pub mod prelude {
    pub use super::{Forge, JobSource, RegistrationTokens, RunnerGroups, RunnerRegistry, Webhooks};
}

use crate::config::Secret;
use serde::{Deserialize, Serialize};

/// Where runners register: an organization, a single repository, or (Gitea only) the whole
/// instance or the authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Scope {
    Org(String),
    Repo {
        owner: String,
        repo: String,
    },
    /// Every repository of the forge (Gitea's `admin` runners).
    Instance,
    /// The repositories of the user the token belongs to (Gitea's `user` runners).
    User(String),
    /// A GitHub runner scale set of an organization or a repository (`mode: scale_set`): its
    /// runners are registered, listed and deleted through the Actions service.
    ScaleSet {
        parent: Box<Scope>,
        name: String,
    },
}

impl Scope {
    /// The REST path prefix: `orgs/ORG`, `repos/OWNER/REPO`, `admin` or `user`.
    pub fn path(&self) -> String {
        match self {
            Scope::Org(o) => format!("orgs/{o}"),
            Scope::Repo { owner, repo } => format!("repos/{owner}/{repo}"),
            Scope::Instance => "admin".into(),
            Scope::User(_) => "user".into(),
            Scope::ScaleSet { parent, .. } => parent.path(),
        }
    }

    /// The organization or repository a scale set belongs to; itself otherwise.
    pub fn base(&self) -> &Scope {
        match self {
            Scope::ScaleSet { parent, .. } => parent.base(),
            other => other,
        }
    }

    /// The URL a runner registers against (`config.sh --url`).
    pub fn html_url(&self, web_base: &str) -> String {
        match self {
            Scope::Org(o) | Scope::User(o) => format!("{web_base}/{o}"),
            Scope::Repo { owner, repo } => format!("{web_base}/{owner}/{repo}"),
            Scope::Instance => web_base.to_string(),
            Scope::ScaleSet { parent, .. } => parent.html_url(web_base),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Org(o) => write!(f, "organization {o}"),
            Scope::Repo { owner, repo } => write!(f, "repository {owner}/{repo}"),
            Scope::Instance => write!(f, "the instance"),
            Scope::User(u) => write!(f, "user {u}"),
            Scope::ScaleSet { parent, name } => write!(f, "scale set {name} of {parent}"),
        }
    }
}

pub use crate::config::Agent;

/// A runner group as GitHub has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerGroupInfo {
    pub id: u64,
    pub name: String,
    /// `all`, `selected` or `private`.
    pub visibility: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub allows_public_repositories: bool,
    #[serde(default)]
    pub restricted_to_workflows: bool,
    #[serde(default)]
    pub selected_workflows: Vec<String>,
}

/// What a runner group should look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSettings {
    pub name: String,
    /// `all` or `selected`.
    pub visibility: String,
    pub selected_repository_ids: Vec<u64>,
    pub allows_public_repositories: bool,
    pub restricted_to_workflows: bool,
    pub selected_workflows: Vec<String>,
}

/// Whether a runner is connected to its forge. (Whether it runs a job is `busy`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerState {
    Online,
    Offline,
}

impl RunnerState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerState::Online => "online",
            RunnerState::Offline => "offline",
        }
    }
}

/// A self-hosted runner as the forge has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgeRunner {
    pub id: u64,
    pub name: String,
    #[serde(rename = "status")]
    pub state: RunnerState,
    pub busy: bool,
    pub labels: Vec<String>,
    pub runner_group_id: Option<u64>,
}

impl ForgeRunner {
    pub fn online(&self) -> bool {
        self.state == RunnerState::Online
    }
}

/// The answer to a JIT configuration request: the runner GitHub registered, and the
/// configuration its process starts with.
#[derive(Debug, Clone)]
pub struct JitConfig {
    pub runner: ForgeRunner,
    pub encoded: Secret,
}

/// What a runner is to be registered as.
#[derive(Debug, Clone, Copy)]
pub struct RunnerRequest<'a> {
    pub name: &'a str,
    /// The forge's runner group, on a forge that has them.
    pub runner_group_id: Option<u64>,
    pub labels: &'a [String],
    pub work_folder: &'a str,
    /// The credential to register with (a GitHub App of `github.apps` a group pins); `None`:
    /// whichever has budget.
    pub app: Option<&'a str>,
}

/// How a new runner gets onto the forge.
#[derive(Debug, Clone)]
pub enum Registration {
    /// Registered by the forge already (GitHub's JIT): the runner, and the configuration its
    /// process starts with.
    Jit(JitConfig),
    /// A token the runner registers itself with (`config.sh --token`); the forge knows the
    /// runner only once it has done so.
    Token(Secret),
}

/// The result of deleting a runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// Already gone: also success.
    NotFound,
    /// GitHub refused: the runner is running a job (422).
    Busy,
}

/// A job waiting on GitHub for a runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedJob {
    pub id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repository: String,
    pub labels: Vec<String>,
}

/// A workflow run, as far as a runner group's access rules need it.
/// A job that ran (or started) in the past, for `trace export`. Times in unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PastJob {
    pub id: u64,
    /// `owner/name`.
    pub repository: String,
    pub labels: Vec<String>,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub conclusion: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowRun {
    /// The workflow file, `.github/workflows/ci.yml`.
    pub path: String,
    pub head_branch: Option<String>,
}

/// The rate-limit state GitHub reported with its last answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    pub used: u64,
    /// Unix seconds when the window resets.
    pub reset: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ForgeError {
    /// A primary or secondary rate limit: retry after `wait` (measured from GitHub's own clock
    /// when it sent a `Date`), at `reset_at` (unix seconds, for display).
    #[error("the forge's rate limit is exceeded; retry in {}s (at {reset_at}, unix time)", wait.as_secs())]
    RateLimited {
        reset_at: u64,
        wait: std::time::Duration,
    },
    /// A health pass's or a cleanup's call would have waited longer than it may for the API
    /// budget, which is kept for jobs: skipped, to be made by a later pass.
    #[error("skipped: the API budget is kept for jobs ({priority} calls wait {}s, {why})", wait.as_secs())]
    Deferred {
        priority: &'static str,
        why: &'static str,
        wait: std::time::Duration,
    },
    #[error("not found: {0}")]
    NotFound(String),
    /// A runner of this name exists already (a JIT request repeated).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Bad credentials or missing permission: nothing to retry.
    #[error("the forge refused the credentials or permission: {0}")]
    Unauthorized(String),
    /// Network trouble or a 5xx: worth retrying.
    #[error("forge unreachable: {0}")]
    Unavailable(String),
    #[error("the forge answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("the forge sent an answer runnerctl cannot read: {0}")]
    Decode(String),
    #[error("forge authentication is misconfigured: {0}")]
    Config(String),
    /// The forge's version lacks what was asked (Gitea before 1.24 has no runner API).
    #[error("not supported by this forge: {0}")]
    Unsupported(String),
}

impl ForgeError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ForgeError::RateLimited { .. }
                | ForgeError::Deferred { .. }
                | ForgeError::Unavailable(_)
        )
    }
}

pub type Result<T, E = ForgeError> = std::result::Result<T, E>;

/// Where a forge's webhooks carry what, how they are signed and what they mean.
pub trait WebhookScheme: Send + Sync {
    /// The header naming the event (`X-GitHub-Event`).
    fn event_header(&self) -> &'static str;
    /// The header with the delivery's unique id (`X-GitHub-Delivery`).
    fn delivery_header(&self) -> &'static str;
    /// The header with the signature (`X-Hub-Signature-256`).
    fn signature_header(&self) -> &'static str;
    /// A second set of (event, delivery, signature) headers the forge also sends, read when
    /// the first are absent (Gitea sends GitHub's besides its own).
    fn alternate_headers(&self) -> Option<[&'static str; 3]> {
        None
    }
    /// Whether `signature` signs `body` with `secret`, checked in constant time.
    fn verify(&self, secret: &[u8], body: &[u8], signature: Option<&str>) -> bool;
    /// What a delivery of `event` means. `Err` names what is wrong with the payload.
    fn parse(&self, event: &str, body: &[u8]) -> Result<WebhookEvent, String>;
}

/// A delivery, in the forge's neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// The forge checking the hook.
    Ping,
    /// An event runnerctl does not act on.
    Other,
    Job(JobEvent),
}

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Waiting for a runner (GitHub's `queued` and `waiting`).
    Queued,
    InProgress,
    Completed,
    /// An action runnerctl does not act on.
    Other,
}

/// A `workflow_job` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub action: JobAction,
    pub job_id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repository: String,
    /// Whether the repository is public, when the payload says.
    pub public: Option<bool>,
    pub labels: Vec<String>,
    pub runner_name: Option<String>,
    /// The forge's id of the runner that took the job.
    pub runner_id: Option<u64>,
    pub runner_group_id: Option<u64>,
    pub conclusion: Option<String>,
    /// How long the job waited for a runner, by the forge's own clock (`started_at` minus
    /// `created_at`), when the payload says.
    pub waited_secs: Option<u64>,
    /// When the forge queued the job (`created_at`, unix seconds), when the payload says.
    pub queued_at: Option<u64>,
}

/// The runners a forge knows: list, get, delete, register.
#[async_trait::async_trait]
pub trait RunnerRegistry: Send + Sync {
    /// Every runner of a scope (all pages).
    async fn list_runners(&self, scope: &Scope) -> Result<Vec<ForgeRunner>>;
    async fn get_runner(&self, scope: &Scope, id: u64) -> Result<Option<ForgeRunner>>;
    async fn delete_runner(&self, scope: &Scope, id: u64) -> Result<Deleted>;
    /// Registers a runner (or hands out what it registers itself with).
    async fn register(&self, scope: &Scope, req: &RunnerRequest<'_>) -> Result<Registration>;
}

/// Where queued jobs come from, besides webhooks.
#[async_trait::async_trait]
pub trait JobSource: Send + Sync {
    /// The names of an organization's repositories (all pages).
    async fn repositories(&self, org: &str) -> Result<Vec<String>>;
    /// Jobs queued in a repository, at most `max_runs` workflow runs looked into.
    async fn queued_jobs(&self, owner: &str, repo: &str, max_runs: usize)
        -> Result<Vec<QueuedJob>>;
    /// The workflow file and branch of a run (for `selected_workflows`).
    async fn workflow_run(&self, owner: &str, repo: &str, run_id: u64) -> Result<WorkflowRun>;
    /// The jobs of a repository queued from `since` to `until` (unix seconds), every page
    /// (`trace export`).
    async fn past_jobs(
        &self,
        owner: &str,
        repo: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<PastJob>> {
        let _ = (since, until);
        Err(ForgeError::Unsupported(format!(
            "listing the past jobs of {owner}/{repo}"
        )))
    }
}

/// Runner groups of an organization, on a forge that has them.
#[async_trait::async_trait]
pub trait RunnerGroups: Send + Sync {
    /// Every runner group of an organization (all pages).
    async fn list_runner_groups(&self, org: &str) -> Result<Vec<RunnerGroupInfo>>;
    async fn create_runner_group(&self, org: &str, s: &GroupSettings) -> Result<RunnerGroupInfo>;
    /// Updates a group's settings and, for `selected` visibility, its repositories.
    async fn update_runner_group(
        &self,
        org: &str,
        id: u64,
        s: &GroupSettings,
    ) -> Result<RunnerGroupInfo>;
    /// The ids of the repositories a group with `selected` visibility admits.
    async fn runner_group_repository_ids(&self, org: &str, id: u64) -> Result<Vec<u64>>;
    /// A repository's id, from its name within the organization.
    async fn repository_id(&self, owner: &str, repo: &str) -> Result<u64>;
}

/// A forge's registration tokens, where they are reusable until replaced (Gitea): replaced on a
/// schedule and after use, so that one read from an instance is soon worth nothing.
#[async_trait::async_trait]
pub trait RegistrationTokens: Send + Sync {
    /// Replaces the scope's registration token (the old one stops working). `Ok(false)` when
    /// the forge's version cannot (then the token lives until an administrator resets it).
    async fn replace_registration_token(&self, scope: &Scope) -> Result<bool>;
}

/// A webhook configured on the forge (an organization's or a repository's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Hook {
    pub id: u64,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub events: Vec<String>,
    /// Where it delivers (`config.url`).
    #[serde(default)]
    pub url: Option<String>,
}

impl Hook {
    /// Whether it sends `workflow_job` events (named, or all events).
    pub fn sends_jobs(&self) -> bool {
        self.events.iter().any(|e| e == "workflow_job" || e == "*")
    }
}

/// One recent delivery of a webhook, as the forge recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct HookDelivery {
    /// RFC 3339.
    pub delivered_at: String,
    /// The receiver's HTTP status; 0 when it did not answer.
    #[serde(default)]
    pub status_code: u16,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub redelivery: bool,
}

impl HookDelivery {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// The webhooks a forge lets its credentials read (for `doctor`).
#[async_trait::async_trait]
pub trait Webhooks: Send + Sync {
    /// The webhooks of a scope.
    async fn hooks(&self, scope: &Scope) -> Result<Vec<Hook>>;
    /// A webhook's most recent deliveries, newest first, at most `count`.
    async fn hook_deliveries(
        &self,
        scope: &Scope,
        hook: u64,
        count: u32,
    ) -> Result<Vec<HookDelivery>>;
}

/// A forge: its capabilities together.
pub trait Forge: RunnerRegistry + JobSource {
    /// Its name in messages (`GitHub`, `Gitea`, `Forgejo`).
    fn name(&self) -> &'static str;
    /// The URL a runner of `scope` registers against (`config.sh --url`, `act_runner --instance`).
    fn runner_url(&self, scope: &Scope) -> String;
    /// The runner program its instances start.
    fn agent(&self) -> Agent {
        Agent::ActionsRunner
    }
    /// Its reusable registration tokens, on a forge that has them.
    fn tokens(&self) -> Option<&dyn RegistrationTokens> {
        None
    }
    /// Its runner groups; `None` when the forge has none.
    fn groups(&self) -> Option<&dyn RunnerGroups>;
    /// How its webhooks are read.
    fn webhooks(&self) -> &'static dyn WebhookScheme;
    /// Its configured webhooks and their deliveries, on a forge whose API shows them.
    fn webhook_api(&self) -> Option<&dyn Webhooks> {
        None
    }
    /// The rate-limit state of the last answer.
    fn rate_limit(&self) -> Option<RateLimit>;
    /// Its credentials' meters on the shared API budget (one per GitHub App).
    fn meters(&self) -> Vec<&meter::Meter> {
        Vec::new()
    }
}

/// Registers a runner, handling a name conflict (409): the runner name is the idempotency key,
/// so a conflict means an earlier attempt registered this runner but its answer was lost. The
/// forge never hands out that configuration again, so the stale registration is removed (when
/// offline and idle; a runner that already runs a job is left alone) and the request made once
/// more. Never yields two runners of one name.
pub async fn register_runner<F: RunnerRegistry + ?Sized>(
    forge: &F,
    scope: &Scope,
    req: &RunnerRequest<'_>,
) -> Result<Registration> {
    let why = match forge.register(scope, req).await {
        Err(ForgeError::Conflict(why)) => why,
        other => return other,
    };
    let name = req.name;
    let existing = forge
        .list_runners(scope)
        .await?
        .into_iter()
        .find(|r| r.name == name);
    match existing {
        Some(r) if r.busy || r.online() => Err(ForgeError::Conflict(format!(
            "runner `{name}` exists and is {} ({why})",
            if r.busy { "running a job" } else { "online" }
        ))),
        Some(r) => {
            tracing::info!(
                runner = name,
                "removing a stale registration before retrying"
            );
            forge.delete_runner(scope, r.id).await?;
            forge.register(scope, req).await
        }
        None => forge.register(scope, req).await,
    }
}
