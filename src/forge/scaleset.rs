//! GitHub's runner scale sets, as a port: the scale set itself, its one message session, the
//! message queue (long poll, acknowledge), acquiring jobs, and the scale set's JIT runners.
//!
//! The facts of the API (paths, fields, status codes) are in the project's contract
//! (`shared/contracts/scaleset`). `github::actions` implements this port over GitHub's Actions
//! service; `fake_scaleset` is the fake of that service inside the fake GitHub.
//!
//! The wire shapes are here with the port, so that the adapter, the fake and the listener read
//! and write one definition (a test checks them against the contract's JSON files).

use super::{
    Deleted, Forge, ForgeError, ForgeRunner, JitConfig, JobSource, PastJob, QueuedJob, RateLimit,
    Registration, RegistrationTokens, Result, RunnerGroups, RunnerRegistry, RunnerRequest,
    RunnerState, Scope, WebhookScheme, Webhooks, WorkflowRun,
};
use crate::config::Secret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a scale set should be: runnerctl creates it when missing and updates it when it
/// differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSetSpec {
    /// Its name: the label workflows use (`runs-on: NAME`).
    pub name: String,
    /// The GitHub runner group it belongs to (`Default` for a repository's).
    pub runner_group: String,
    /// Its labels besides its name (GHES before 3.21 drops them, see the README).
    pub labels: Vec<String>,
}

/// A label of a scale set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub name: String,
}

/// `RunnerSetting` of a scale set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerSetting {
    #[serde(default)]
    pub ephemeral: bool,
    #[serde(default)]
    pub is_elastic: bool,
    #[serde(default)]
    pub disable_update: bool,
}

/// The scale-set statistics GitHub sends with sessions and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    #[serde(default)]
    pub total_available_jobs: u64,
    #[serde(default)]
    pub total_acquired_jobs: u64,
    #[serde(default)]
    pub total_assigned_jobs: u64,
    #[serde(default)]
    pub total_running_jobs: u64,
    #[serde(default)]
    pub total_registered_runners: u64,
    #[serde(default)]
    pub total_busy_runners: u64,
    #[serde(default)]
    pub total_idle_runners: u64,
}

impl Statistics {
    /// The runners the scale set should have: `min(max, min + totalAssignedJobs)`.
    pub fn desired(&self, min: u32, max: u32) -> u32 {
        let want = u64::from(min) + self.total_assigned_jobs;
        want.min(u64::from(max)) as u32
    }
}

/// A scale set as the service has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSet {
    #[serde(default)]
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub runner_group_id: u64,
    #[serde(default)]
    pub runner_group_name: String,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(rename = "RunnerSetting", default)]
    pub runner_setting: RunnerSetting,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
}

impl ScaleSet {
    /// Its labels' names besides its own name, as compared with a [`ScaleSetSpec`].
    pub fn extra_labels(&self) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| l.name != self.name)
            .map(|l| l.name.clone())
            .collect()
    }

    /// Its labels besides its name (sorted) when they differ from the spec's: (have, want).
    pub fn label_change(&self, spec: &ScaleSetSpec) -> Option<(Vec<String>, Vec<String>)> {
        let mut want: Vec<String> = spec
            .labels
            .iter()
            .filter(|l| **l != spec.name)
            .cloned()
            .collect();
        let mut have = self.extra_labels();
        want.sort();
        have.sort();
        (want != have).then_some((have, want))
    }
}

/// A message session: the one consumer of a scale set's queue.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub owner: String,
    pub queue_url: String,
    pub queue_token: Secret,
    pub statistics: Statistics,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("queue_url", &self.queue_url)
            .finish_non_exhaustive()
    }
}

/// The session as the service answers it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSession {
    pub session_id: String,
    #[serde(default)]
    pub owner_name: String,
    pub message_queue_url: String,
    pub message_queue_access_token: String,
    /// The library refuses a session without them: they are the first scaling signal.
    pub statistics: Option<Statistics>,
    #[serde(default)]
    pub runner_scale_set: Option<ScaleSet>,
}

impl RawSession {
    pub fn into_session(self) -> Result<Session> {
        let Some(statistics) = self.statistics else {
            return Err(ForgeError::Decode("the session has no `statistics`".into()));
        };
        if self.message_queue_url.is_empty() || self.message_queue_access_token.is_empty() {
            return Err(ForgeError::Decode(
                "the session has no message queue URL or token".into(),
            ));
        }
        Ok(Session {
            id: self.session_id,
            owner: self.owner_name,
            queue_url: self.message_queue_url,
            queue_token: Secret::new(self.message_queue_access_token),
            statistics,
        })
    }
}

/// One message of the queue, as polled: its id, and its body still unread (the listener reads
/// it, so that a malformed body is dead-lettered with its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub kind: String,
    /// The `body`: a JSON string holding an array of job messages.
    pub body: String,
    pub statistics: Option<Statistics>,
}

/// A queue message as the service answers it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMessage {
    pub message_id: u64,
    pub message_type: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub statistics: Option<Statistics>,
}

/// The message type of job messages, the only one the queue carries.
pub const JOB_MESSAGES: &str = "RunnerScaleSetJobMessages";

/// A job message (one element of a queue message's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMessage {
    pub message_type: String,
    pub runner_request_id: u64,
    #[serde(default)]
    pub repository_name: String,
    #[serde(default)]
    pub owner_name: String,
    #[serde(default)]
    pub job_id: String,
    #[serde(default)]
    pub job_workflow_ref: String,
    #[serde(default)]
    pub job_display_name: String,
    #[serde(default)]
    pub workflow_run_id: u64,
    #[serde(default)]
    pub event_name: String,
    #[serde(default)]
    pub request_labels: Vec<String>,
    #[serde(default)]
    pub queue_time: String,
    #[serde(default)]
    pub scale_set_assign_time: String,
    #[serde(default)]
    pub runner_assign_time: String,
    #[serde(default)]
    pub finish_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_job_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// Reads a queue message's body: its job messages. `Err` says what is wrong with it.
pub fn job_messages(body: &str) -> std::result::Result<Vec<JobMessage>, String> {
    let body = body.trim_start_matches('\u{feff}').trim();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(body).map_err(|e| format!("the message body is not job messages: {e}"))
}

/// A runner of a scale set, as the service lists it (`agents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub runner_scale_set_id: u64,
}

/// A JIT runner of a scale set: the runner, and the configuration its process starts with.
#[derive(Clone)]
pub struct ScaleSetJit {
    pub runner: Agent,
    pub encoded: Secret,
}

/// A poll's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    Message(Message),
    /// Nothing arrived during the long poll (202).
    Empty,
}

/// Why a session could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// Another session of this scale set is open (409): wait, then try again.
    #[error("another session of this scale set is open ({0})")]
    Conflict(String),
    /// The queue token expired (401): refresh the session, retry once.
    #[error("the message queue token expired")]
    Expired,
    /// The session is gone (404): create a new one.
    #[error("the session is gone ({0})")]
    Gone(String),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

/// GitHub's runner scale sets, for one scope's Actions service.
#[async_trait::async_trait]
pub trait ScaleSets: Send + Sync {
    /// Creates the scale set, or updates it to the spec; the scale set, and whether it was
    /// created or changed.
    async fn ensure_scale_set(&self, spec: &ScaleSetSpec) -> Result<(ScaleSet, Ensured)>;
    /// The scale set of this name, if any (with its statistics).
    async fn find_scale_set(&self, name: &str, runner_group: &str) -> Result<Option<ScaleSet>>;
    async fn create_session(
        &self,
        scale_set: u64,
        owner: &str,
    ) -> std::result::Result<Session, SessionError>;
    /// A new queue token for a session (after a 401).
    async fn refresh_session(
        &self,
        scale_set: u64,
        session: &Session,
    ) -> std::result::Result<Session, SessionError>;
    async fn delete_session(&self, scale_set: u64, session_id: &str) -> Result<()>;
    /// Long-polls the queue for the first message after `last_id`; `max` is the scale set's
    /// capacity, sent with every poll.
    async fn poll(
        &self,
        session: &Session,
        last_id: u64,
        max: u32,
    ) -> std::result::Result<Polled, SessionError>;
    /// Deletes (acknowledges) a message.
    async fn ack(&self, session: &Session, id: u64) -> std::result::Result<(), SessionError>;
    /// Acquires jobs; the ids actually acquired.
    async fn acquire(
        &self,
        scale_set: u64,
        session: &Session,
        ids: &[u64],
    ) -> std::result::Result<Vec<u64>, SessionError>;
    /// Registers a JIT runner of the scale set.
    async fn generate_jit(
        &self,
        scale_set: u64,
        name: &str,
        work_folder: &str,
    ) -> Result<ScaleSetJit>;
    /// The scale set's runners.
    async fn agents(&self, scale_set: u64) -> Result<Vec<Agent>>;
    /// Deletes a runner of the scale set.
    async fn delete_agent(&self, id: u64) -> Result<super::Deleted>;
    /// The scope these scale sets belong to.
    fn scope(&self) -> &Scope;
}

/// What [`ScaleSets::ensure_scale_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensured {
    Created,
    Updated,
    Unchanged,
}

/// One scale set as the forge routes to it: where it lives, what it should be, its service.
pub struct Routed {
    /// The runnerctl group whose scale set it is.
    pub group: String,
    pub parent: Scope,
    pub spec: ScaleSetSpec,
    pub service: Arc<dyn ScaleSets>,
    id: tokio::sync::OnceCell<u64>,
}

impl Routed {
    pub fn new(
        group: &str,
        parent: Scope,
        spec: ScaleSetSpec,
        service: Arc<dyn ScaleSets>,
    ) -> Routed {
        Routed {
            group: group.to_string(),
            parent,
            spec,
            service,
            id: tokio::sync::OnceCell::new(),
        }
    }

    /// The scope runners of this scale set have.
    pub fn scope(&self) -> Scope {
        Scope::ScaleSet {
            parent: Box::new(self.parent.clone()),
            name: self.spec.name.clone(),
        }
    }

    /// The scale set's id, looked up once (it is never guessed: a missing scale set is an
    /// error naming what makes it).
    pub async fn id(&self) -> Result<u64> {
        self.id
            .get_or_try_init(|| async {
                match self
                    .service
                    .find_scale_set(&self.spec.name, &self.spec.runner_group)
                    .await?
                {
                    Some(s) => Ok(s.id),
                    None => Err(ForgeError::NotFound(format!(
                        "scale set `{}` of {} does not exist (the worker creates it at start, and `runnerctl groups sync`)",
                        self.spec.name, self.parent
                    ))),
                }
            })
            .await
            .copied()
    }

    /// Remembers the id of the scale set just created or updated.
    pub fn know(&self, id: u64) {
        let _ = self.id.set(id);
    }
}

/// The forge with scale sets: a [`Scope::ScaleSet`]'s runners are registered (the scale set's
/// JIT configuration), listed and deleted through its Actions service; everything else goes
/// to the forge.
pub struct ScaleSetForge {
    inner: Arc<dyn Forge>,
    sets: Vec<Arc<Routed>>,
}

impl ScaleSetForge {
    pub fn new(inner: Arc<dyn Forge>, sets: Vec<Arc<Routed>>) -> ScaleSetForge {
        ScaleSetForge { inner, sets }
    }

    pub fn routes(&self) -> &[Arc<Routed>] {
        &self.sets
    }

    fn route(&self, scope: &Scope) -> Option<&Arc<Routed>> {
        let Scope::ScaleSet { parent, name } = scope else {
            return None;
        };
        self.sets
            .iter()
            .find(|r| r.spec.name == *name && r.parent == **parent)
    }

    fn unknown(scope: &Scope) -> ForgeError {
        ForgeError::Config(format!("{scope} is not configured"))
    }
}

fn agent_runner(a: Agent, state: RunnerState) -> ForgeRunner {
    ForgeRunner {
        id: a.id,
        name: a.name,
        state,
        busy: false,
        labels: Vec::new(),
        runner_group_id: None,
    }
}

#[async_trait::async_trait]
impl RunnerRegistry for ScaleSetForge {
    async fn list_runners(&self, scope: &Scope) -> Result<Vec<ForgeRunner>> {
        let Some(r) = self.route(scope) else {
            return self.inner.list_runners(scope).await;
        };
        let agents = r.service.agents(r.id().await?).await?;
        // The service lists the scale set's runners without a status; GitHub's REST listing
        // of the organization or repository has it (a runner that never connected is offline
        // there, and replaced after `time_to_start`). One it does not show counts as online
        // and idle: deleting one that runs a job is refused (`JobStillRunningException`).
        let rest: std::collections::HashMap<String, ForgeRunner> =
            match self.inner.list_runners(&r.parent).await {
                Ok(list) => list.into_iter().map(|f| (f.name.clone(), f)).collect(),
                Err(e) if e.is_transient() => return Err(e),
                Err(_) => Default::default(),
            };
        Ok(agents
            .into_iter()
            .map(|a| match rest.get(&a.name) {
                Some(f) => ForgeRunner {
                    state: f.state,
                    busy: f.busy,
                    labels: f.labels.clone(),
                    runner_group_id: f.runner_group_id,
                    ..agent_runner(a, RunnerState::Online)
                },
                None => agent_runner(a, RunnerState::Online),
            })
            .collect())
    }

    async fn get_runner(&self, scope: &Scope, id: u64) -> Result<Option<ForgeRunner>> {
        if self.route(scope).is_none() {
            return self.inner.get_runner(scope, id).await;
        }
        Ok(self
            .list_runners(scope)
            .await?
            .into_iter()
            .find(|f| f.id == id))
    }

    async fn delete_runner(&self, scope: &Scope, id: u64) -> Result<Deleted> {
        match self.route(scope) {
            Some(r) => r.service.delete_agent(id).await,
            None => self.inner.delete_runner(scope, id).await,
        }
    }

    async fn register(&self, scope: &Scope, req: &RunnerRequest<'_>) -> Result<Registration> {
        if !matches!(scope, Scope::ScaleSet { .. }) {
            return self.inner.register(scope, req).await;
        }
        let r = self.route(scope).ok_or_else(|| Self::unknown(scope))?;
        let jit = r
            .service
            .generate_jit(r.id().await?, req.name, req.work_folder)
            .await?;
        Ok(Registration::Jit(JitConfig {
            runner: agent_runner(jit.runner, RunnerState::Offline),
            encoded: jit.encoded,
        }))
    }
}

#[async_trait::async_trait]
impl JobSource for ScaleSetForge {
    async fn repositories(&self, org: &str) -> Result<Vec<String>> {
        self.inner.repositories(org).await
    }
    async fn queued_jobs(
        &self,
        owner: &str,
        repo: &str,
        max_runs: usize,
    ) -> Result<Vec<QueuedJob>> {
        self.inner.queued_jobs(owner, repo, max_runs).await
    }
    async fn workflow_run(&self, owner: &str, repo: &str, run_id: u64) -> Result<WorkflowRun> {
        self.inner.workflow_run(owner, repo, run_id).await
    }
    async fn past_jobs(
        &self,
        owner: &str,
        repo: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<PastJob>> {
        self.inner.past_jobs(owner, repo, since, until).await
    }
}

impl Forge for ScaleSetForge {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn runner_url(&self, scope: &Scope) -> String {
        self.inner.runner_url(scope.base())
    }
    fn agent(&self) -> crate::config::Agent {
        self.inner.agent()
    }
    fn tokens(&self) -> Option<&dyn RegistrationTokens> {
        self.inner.tokens()
    }
    fn groups(&self) -> Option<&dyn RunnerGroups> {
        self.inner.groups()
    }
    fn webhooks(&self) -> &'static dyn WebhookScheme {
        self.inner.webhooks()
    }
    fn webhook_api(&self) -> Option<&dyn Webhooks> {
        self.inner.webhook_api()
    }
    fn rate_limit(&self) -> Option<RateLimit> {
        self.inner.rate_limit()
    }
    fn meters(&self) -> Vec<&super::meter::Meter> {
        self.inner.meters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_is_min_plus_assigned_within_max() {
        let s = Statistics {
            total_assigned_jobs: 5,
            ..Default::default()
        };
        assert_eq!(s.desired(1, 10), 6);
        assert_eq!(s.desired(1, 4), 4);
        assert_eq!(Statistics::default().desired(2, 10), 2);
    }

    #[test]
    fn a_body_that_is_not_job_messages_is_an_error_and_an_empty_one_is_none() {
        assert!(job_messages("{\"x\":1}").is_err());
        assert!(job_messages("not json").is_err());
        assert_eq!(job_messages("").unwrap(), vec![]);
        assert_eq!(job_messages("\u{feff}[]").unwrap(), vec![]);
    }

    #[test]
    fn a_session_without_statistics_is_refused() {
        let raw = RawSession {
            session_id: "s".into(),
            owner_name: "o".into(),
            message_queue_url: "http://q".into(),
            message_queue_access_token: "t".into(),
            statistics: None,
            runner_scale_set: None,
        };
        assert!(raw.into_session().is_err());
    }
}
