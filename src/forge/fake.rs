//! A stateful fake of the part of GitHub runnerctl uses, for tests and the demo. It is never
//! used by a production code path: only `runnerctl demo` and the tests start it.
//!
//! It keeps organizations, repositories, runner groups and runners; authenticates personal
//! access tokens and GitHub App installation tokens (issued against an RS256 JWT signed with the
//! app's key, with a real expiry); answers with `x-ratelimit-*` headers and can be told to run
//! out of requests; and sends signed `workflow_job` webhooks to a URL. A runner created by a JIT
//! configuration stays offline until its process "connects" (`POST /_sim/runner/connect` with
//! the encoded configuration, as a stand-in runner does); then it can take a job.
//!
//! Its answers follow GitHub's published OpenAPI description; the contract test runs it behind
//! Stoplight Prism to prove it.

mod scaleset;

pub use scaleset::{FakeScaleSet, ScaleSetCounts, ScaleSetOptions};

use crate::fake_server::{rfc3339, serve_fake, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A GitHub App the fake knows.
#[derive(Clone)]
pub struct FakeApp {
    pub app_id: u64,
    pub installation_id: u64,
    /// PEM public key that verifies the app's JWTs.
    pub public_key_pem: String,
}

/// How the fake starts.
#[derive(Clone)]
pub struct FakeGitHubOptions {
    /// Organizations with their repositories (names).
    pub orgs: Vec<(String, Vec<String>)>,
    /// An accepted personal access token.
    pub token: Option<String>,
    pub app: Option<FakeApp>,
    /// Lifetime of installation tokens.
    pub token_ttl: Duration,
    /// Requests per rate-limit window (an hour on GitHub).
    pub rate_limit: u64,
    /// Where `workflow_job` webhooks go, and the secret they are signed with.
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    /// How long a job runs once a runner took it.
    pub job_duration: Duration,
    /// The share of jobs (0.0 to 1.0) whose webhooks are never delivered.
    pub drop_webhooks: f64,
    /// Chaos as GitHub shows it; all off by default.
    pub chaos: Chaos,
    /// The address to listen on (and advertise). Default: 127.0.0.1.
    pub bind: Option<std::net::IpAddr>,
    /// More GitHub Apps besides `app`, each installed on every organization, each its own
    /// credential with its own budget.
    pub other_apps: Vec<FakeApp>,
    /// GitHub's secondary limits, enforced per credential; off by default.
    pub limits: Option<super::fake_limits::FakeLimits>,
    /// The Actions service for runner scale sets.
    pub scale_sets: ScaleSetOptions,
}

/// GitHub's behaviour that a runner manager must survive, each part switched on by itself.
#[derive(Clone, Debug, Default)]
pub struct Chaos {
    /// A queued job goes to any idle runner whose labels fit, chosen at random (GitHub gives no
    /// job to "its" runner), instead of the oldest.
    pub any_idle_runner: bool,
    /// The share of deliveries sent twice with the same delivery id (GitHub's redelivery).
    pub repeat: f64,
    /// The share of deliveries sent again later with a new delivery id (a replay).
    pub replay: f64,
    /// Deliveries of one moment go out in random order.
    pub reorder: bool,
    /// The share of API requests answered with a secondary rate limit: 403 with requests still
    /// remaining and `retry-after: 1` (without it, GitHub asks for a minute's wait: tested on
    /// its own with `Trouble::SecondaryLimit403`).
    pub secondary_limits: f64,
}

impl Default for FakeGitHubOptions {
    fn default() -> Self {
        FakeGitHubOptions {
            orgs: vec![],
            token: None,
            app: None,
            token_ttl: Duration::from_secs(3600),
            rate_limit: 5000,
            webhook_url: None,
            webhook_secret: String::new(),
            job_duration: Duration::from_millis(200),
            drop_webhooks: 0.0,
            chaos: Chaos::default(),
            bind: None,
            other_apps: Vec::new(),
            limits: None,
            scale_sets: ScaleSetOptions::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub id: u64,
    pub owner: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub id: u64,
    pub org: String,
    pub name: String,
    pub visibility: String,
    pub default: bool,
    pub allows_public_repositories: bool,
    pub restricted_to_workflows: bool,
    pub selected_workflows: Vec<String>,
    pub repository_ids: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct FakeRunner {
    pub id: u64,
    /// `orgs/ORG` or `repos/OWNER/REPO`.
    pub scope: String,
    pub name: String,
    pub online: bool,
    pub busy: bool,
    pub labels: Vec<String>,
    pub group_id: u64,
    /// The encoded JIT configuration it was made with.
    pub jit: String,
    pub job: Option<u64>,
    /// The scale set it belongs to (it takes only that scale set's jobs).
    pub scale_set: Option<u64>,
}

/// Where a simulated job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
}

/// A simulated `workflow_job`.
#[derive(Debug, Clone)]
pub struct FakeJob {
    pub id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repo: String,
    pub labels: Vec<String>,
    pub status: JobStatus,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub runner_group_id: Option<u64>,
    pub queued_at: std::time::Instant,
    pub started_at: Option<std::time::Instant>,
    /// Whether its webhooks are dropped (a lost delivery).
    pub silent: bool,
    /// Its workflow file (`.github/workflows/ci.yml` unless queued with another).
    pub workflow: String,
    /// When it was queued, started and completed (unix seconds), and how it ended.
    pub created_unix: u64,
    pub started_unix: Option<u64>,
    pub completed_unix: Option<u64>,
    pub conclusion: Option<String>,
    /// The scale set it is assigned through (its labels are that scale set's name).
    pub scale_set: Option<u64>,
}

/// What the fake can be told to do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// 403 with `x-ratelimit-remaining: 0` (the primary limit).
    PrimaryLimit,
    /// 429 with `retry-after` (a secondary limit).
    SecondaryLimit { retry_after: u64 },
    /// 403 with requests still remaining and GitHub's secondary-limit message, with or without
    /// `retry-after` (seconds).
    SecondaryLimit403 { retry_after: Option<u64> },
}

#[derive(Default)]
struct World {
    next_id: u64,
    repos: Vec<FakeRepo>,
    groups: Vec<FakeGroup>,
    runners: Vec<FakeRunner>,
    /// Installation token → (expiry, installation id).
    tokens: HashMap<String, (u64, u64)>,
    token_requests: u64,
    requests: Vec<String>,
    /// Requests of the current request's credential in this window.
    used: u64,
    /// Each credential's requests in this window.
    used_by: HashMap<String, u64>,
    /// The secondary limits' state (with `limits`).
    enforcer: super::fake_limits::Enforcer,
    window_reset: u64,
    trouble: Vec<Trouble>,
    jobs: Vec<FakeJob>,
    /// Webhooks to send: (event action, job snapshot).
    outbox: Vec<(String, FakeJob)>,
    delivered: u64,
    failed_deliveries: u64,
    /// This fake's own address, written into the JIT configurations it hands out.
    base_url: String,
    /// When each job's `queued` webhook was sent.
    queued_sent: HashMap<u64, std::time::Instant>,
    /// Every registration ever made (JIT or by hand): id, name, whether it ran a job.
    registrations: Vec<(u64, String, bool)>,
    /// Replays to send: (when, action, job snapshot).
    replays: Vec<(std::time::Instant, String, FakeJob)>,
    /// The organization webhook's deliveries (the last 200): organization, delivery.
    hook_deliveries: Vec<(String, HookDeliveryRecord)>,
    /// The Actions service's scale sets, sessions and queues.
    ss: scaleset::State,
}

/// A delivery as GitHub records it for `…/hooks/ID/deliveries`.
#[derive(Debug, Clone)]
struct HookDeliveryRecord {
    id: u64,
    guid: String,
    at: u64,
    /// The receiver's status; 0 when it did not answer.
    status_code: u16,
    action: String,
    redelivery: bool,
}

/// The id of the organization webhook the fake models (one per organization, to
/// `webhook_url`, for `workflow_job`).
const HOOK_ID: u64 = 1;

impl World {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A running fake GitHub.
pub struct FakeGitHub {
    addr: SocketAddr,
    opts: FakeGitHubOptions,
    world: Arc<Mutex<World>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn now() -> u64 {
    crate::model::unix_now()
}

impl FakeGitHub {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub async fn start(opts: FakeGitHubOptions) -> std::io::Result<FakeGitHub> {
        let mut world = World {
            next_id: 100,
            window_reset: now() + 3600,
            ..Default::default()
        };
        world.ss.queue_ttl = opts.scale_sets.queue_token_ttl.as_secs();
        for (org, repos) in &opts.orgs {
            // Every organization has its Default runner group: id 1 as on GitHub for the first.
            let id = if world.groups.iter().any(|g| g.id == 1) {
                world.id()
            } else {
                1
            };
            world.groups.push(FakeGroup {
                id,
                org: org.clone(),
                name: "Default".into(),
                visibility: "all".into(),
                default: true,
                allows_public_repositories: true,
                restricted_to_workflows: false,
                selected_workflows: vec![],
                repository_ids: vec![],
            });
            for r in repos {
                let id = world.id();
                world.repos.push(FakeRepo {
                    id,
                    owner: org.clone(),
                    name: r.clone(),
                });
            }
        }
        let ip = opts
            .bind
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        world.base_url = format!("http://{addr}");
        let world = Arc::new(Mutex::new(world));
        tokio::spawn(scheduler(world.clone(), opts.clone()));
        let tx = serve_fake(
            listener,
            (world.clone(), opts.clone()),
            |(w, o), req| async move { handle(&w, &o, req).await },
        );
        Ok(FakeGitHub {
            addr,
            opts,
            world,
            stop: Some(tx),
        })
    }

    /// The API root, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every API request so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.w().requests.clone()
    }

    /// Requests answered with a secondary limit (with `limits`).
    pub fn secondary_limit_answers(&self) -> u64 {
        self.w().enforcer.refused
    }

    /// The requests the secondary limits let through (with `limits`).
    pub fn admitted(&self) -> Vec<super::fake_limits::Admitted> {
        self.w().enforcer.admitted.clone()
    }

    /// How many installation tokens were issued.
    pub fn token_requests(&self) -> u64 {
        self.w().token_requests
    }

    pub fn runners(&self) -> Vec<FakeRunner> {
        self.w().runners.clone()
    }

    pub fn groups(&self) -> Vec<FakeGroup> {
        self.w().groups.clone()
    }

    pub fn repos(&self) -> Vec<FakeRepo> {
        self.w().repos.clone()
    }

    /// Adds a runner group directly (as if made by hand on GitHub).
    pub fn add_group(&self, org: &str, name: &str, visibility: &str) -> u64 {
        let mut w = self.w();
        let id = w.id();
        w.groups.push(FakeGroup {
            id,
            org: org.into(),
            name: name.into(),
            visibility: visibility.into(),
            default: false,
            allows_public_repositories: false,
            restricted_to_workflows: false,
            selected_workflows: vec![],
            repository_ids: vec![],
        });
        id
    }

    /// Adds a registered runner directly (online, idle), as if made elsewhere.
    pub fn add_runner(&self, scope: &str, name: &str, labels: &[&str]) -> u64 {
        let mut w = self.w();
        let id = w.id();
        w.runners.push(FakeRunner {
            id,
            scope: scope.into(),
            name: name.into(),
            online: true,
            busy: false,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            group_id: 1,
            jit: String::new(),
            job: None,
            scale_set: None,
        });
        id
    }

    /// Marks a runner online (or offline, as while its instance boots).
    pub fn set_online(&self, id: u64, online: bool) {
        if let Some(r) = self.w().runners.iter_mut().find(|r| r.id == id) {
            r.online = online;
        }
    }

    /// Marks a runner busy (or idle).
    pub fn set_busy(&self, id: u64, busy: bool) {
        if let Some(r) = self.w().runners.iter_mut().find(|r| r.id == id) {
            r.busy = busy;
        }
    }

    /// The runner process with this JIT configuration connects: it goes online.
    pub fn connect_runner(&self, jit: &str) -> Option<u64> {
        let mut w = self.w();
        let r = w
            .runners
            .iter_mut()
            .find(|r| r.jit == jit && !jit.is_empty())?;
        r.online = true;
        Some(r.id)
    }

    /// The Actions service's scale sets.
    pub fn scale_sets(&self) -> Vec<FakeScaleSet> {
        self.w().ss.sets()
    }

    /// The jobs the Actions service keeps for its scale sets, for diagnostics: (job, scale
    /// set, request, phase, attempts, held for capacity).
    pub fn scale_set_jobs(&self) -> Vec<(u64, u64, u64, String, u32, bool)> {
        self.w().ss.jobs()
    }

    /// What the Actions service counted: sessions, conflicts, messages delivered again, jobs
    /// taken back.
    pub fn scale_set_counts(&self) -> ScaleSetCounts {
        self.w().ss.counts()
    }

    /// Puts a message with this raw body on scale set `set`'s queue (a malformed one, say);
    /// its id.
    pub fn inject_scale_set_message(&self, set: u64, body: &str) -> u64 {
        self.w().ss.inject(set, body)
    }

    /// Drops every open session, as the service does when their owners are gone.
    pub fn drop_scale_set_sessions(&self) {
        self.w().ss.drop_sessions()
    }

    /// The next `n` requests to the Actions service (or the exchange) are answered 503.
    pub fn fail_scale_set_requests(&self, n: u32) {
        self.w().ss.unavailable = n;
    }

    /// Expires every admin and message-queue token at once.
    pub fn expire_scale_set_tokens(&self) {
        self.w().ss.expire_tokens()
    }

    /// The next answers go wrong this way, in order.
    pub fn trouble(&self, t: Trouble, times: usize) {
        let mut w = self.w();
        for _ in 0..times {
            w.trouble.push(t);
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub fn options(&self) -> &FakeGitHubOptions {
        &self.opts
    }

    /// Queues a job of `repo` (`owner/name`) asking for `labels`; its `queued` webhook follows.
    pub fn queue_job(&self, repo: &str, labels: &[&str]) -> u64 {
        self.queue_workflow_job(repo, labels, ".github/workflows/ci.yml")
    }

    /// Queues a job of the workflow file `workflow` (on branch `main`).
    pub fn queue_workflow_job(&self, repo: &str, labels: &[&str], workflow: &str) -> u64 {
        let silent = fastrand::f64() < self.opts.drop_webhooks;
        let mut w = self.w();
        let id = w.id();
        let run_id = w.id();
        let job = FakeJob {
            id,
            run_id,
            repo: repo.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            status: JobStatus::Queued,
            runner_id: None,
            runner_name: None,
            runner_group_id: None,
            queued_at: std::time::Instant::now(),
            started_at: None,
            silent,
            workflow: workflow.to_string(),
            created_unix: now(),
            started_unix: None,
            completed_unix: None,
            conclusion: None,
            scale_set: None,
        };
        let mut job = job;
        job.scale_set = w.ss.set_for(repo, &job.labels);
        if !silent {
            w.outbox.push(("queued".into(), job.clone()));
        }
        w.jobs.push(job);
        id
    }

    pub fn jobs(&self) -> Vec<FakeJob> {
        self.w().jobs.clone()
    }

    /// Adds a job that ran in the past (times in unix seconds), in a run of its own, with no
    /// webhook: history for `trace export`.
    pub fn add_past_job(
        &self,
        repo: &str,
        labels: &[&str],
        times: (u64, u64, u64),
        conclusion: &str,
    ) -> u64 {
        let mut w = self.w();
        let id = w.id();
        let run_id = w.id();
        let (created, started, completed) = times;
        w.jobs.push(FakeJob {
            id,
            run_id,
            repo: repo.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            status: JobStatus::Completed,
            runner_id: None,
            runner_name: None,
            runner_group_id: None,
            queued_at: std::time::Instant::now(),
            started_at: None,
            silent: true,
            workflow: ".github/workflows/ci.yml".into(),
            created_unix: created,
            started_unix: Some(started),
            completed_unix: Some(completed),
            conclusion: Some(conclusion.into()),
            scale_set: None,
        });
        id
    }

    /// When the `queued` webhook of a job was sent.
    pub fn queued_sent_at(&self, job: u64) -> Option<std::time::Instant> {
        self.w().queued_sent.get(&job).copied()
    }

    /// Every registration ever made: (id, name, whether it ran a job).
    pub fn registrations(&self) -> Vec<(u64, String, bool)> {
        self.w().registrations.clone()
    }

    /// Webhooks delivered (answered 2xx) and failed.
    pub fn deliveries(&self) -> (u64, u64) {
        let w = self.w();
        (w.delivered, w.failed_deliveries)
    }
}

/// Runs jobs: gives queued ones to matching online idle runners, completes them after
/// `job_duration` (an ephemeral runner then leaves), and delivers the webhooks.
async fn scheduler(world: Arc<Mutex<World>>, o: FakeGitHubOptions) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tick.tick().await;
        if Arc::strong_count(&world) == 1 {
            return; // the FakeGitHub is gone
        }
        let outbox = {
            let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
            step(&mut w, &o);
            std::mem::take(&mut w.outbox)
        };
        let mut outbox = outbox;
        if o.chaos.replay > 0.0 {
            // Due replays go out once each, later and out of order.
            let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut w.replays)
                .into_iter()
                .partition(|r| r.0 <= now);
            w.replays = later;
            outbox.extend(due.into_iter().map(|(_, a, j)| (a, j)));
        }
        if o.chaos.reorder {
            fastrand::shuffle(&mut outbox);
        }
        if let Some(url) = &o.webhook_url {
            for (action, job) in outbox {
                if fastrand::f64() < o.chaos.replay {
                    let at = std::time::Instant::now()
                        + Duration::from_millis(500 + fastrand::u64(0..5_000));
                    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
                    w.replays.push((at, action.clone(), job.clone()));
                }
                if action == "queued" {
                    world
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .queued_sent
                        .insert(job.id, std::time::Instant::now());
                }
                let repeat = fastrand::f64() < o.chaos.repeat;
                let (status, guid) = deliver(url, &o.webhook_secret, &action, &job, repeat).await;
                let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
                if (200..300).contains(&status) {
                    w.delivered += 1;
                } else {
                    w.failed_deliveries += 1;
                }
                let org = job.repo.split('/').next().unwrap_or_default().to_string();
                let id = w.id();
                w.hook_deliveries.push((
                    org,
                    HookDeliveryRecord {
                        id,
                        guid,
                        at: now(),
                        status_code: status,
                        action,
                        redelivery: false,
                    },
                ));
                if w.hook_deliveries.len() > 200 {
                    w.hook_deliveries.remove(0);
                }
            }
        }
    }
}

fn step(w: &mut World, o: &FakeGitHubOptions) {
    let now = std::time::Instant::now();
    // Finish jobs that ran long enough; their ephemeral runner leaves.
    for i in 0..w.jobs.len() {
        let done = w.jobs[i].status == JobStatus::InProgress
            && w.jobs[i]
                .started_at
                .is_some_and(|t| now.duration_since(t) >= o.job_duration);
        if done {
            w.jobs[i].status = JobStatus::Completed;
            w.jobs[i].completed_unix = Some(crate::model::unix_now());
            w.jobs[i].conclusion = Some("success".into());
            let rid = w.jobs[i].runner_id;
            w.runners.retain(|r| Some(r.id) != rid);
            if !w.jobs[i].silent {
                let snapshot = w.jobs[i].clone();
                w.outbox.push(("completed".into(), snapshot));
            }
        }
    }
    // Give queued jobs, oldest first, to online idle runners that have every label asked for.
    for i in 0..w.jobs.len() {
        if w.jobs[i].status != JobStatus::Queued || w.jobs[i].scale_set.is_some() {
            continue;
        }
        let (owner, _) = w.jobs[i].repo.split_once('/').unwrap_or(("", ""));
        let repo_scope = format!("repos/{}", w.jobs[i].repo);
        let org_scope = format!("orgs/{owner}");
        let wanted: Vec<String> = w.jobs[i].labels.iter().map(|l| l.to_lowercase()).collect();
        let fits: Vec<usize> = w
            .runners
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.online
                    && !r.busy
                    && r.scale_set.is_none()
                    && (r.scope == repo_scope || r.scope == org_scope)
                    && wanted
                        .iter()
                        .all(|l| r.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
            })
            .map(|(i, _)| i)
            .collect();
        let pick = if o.chaos.any_idle_runner && !fits.is_empty() {
            Some(fits[fastrand::usize(..fits.len())])
        } else {
            fits.first().copied()
        };
        if let Some(ri) = pick {
            w.runners[ri].busy = true;
            w.runners[ri].job = Some(w.jobs[i].id);
            let rid = w.runners[ri].id;
            if let Some(reg) = w.registrations.iter_mut().find(|x| x.0 == rid) {
                reg.2 = true;
            }
            let (rid, rname, rgroup) = (
                w.runners[ri].id,
                w.runners[ri].name.clone(),
                w.runners[ri].group_id,
            );
            let job = &mut w.jobs[i];
            job.status = JobStatus::InProgress;
            job.started_at = Some(now);
            job.started_unix = Some(crate::model::unix_now());
            job.runner_id = Some(rid);
            job.runner_name = Some(rname);
            job.runner_group_id = Some(rgroup);
            if !job.silent {
                let snapshot = job.clone();
                w.outbox.push(("in_progress".into(), snapshot));
            }
        }
    }
    scaleset::step(w, o);
}

/// The `workflow_job` payload GitHub would send.
pub fn workflow_job_payload(action: &str, job: &FakeJob) -> Value {
    let (owner, name) = job.repo.split_once('/').unwrap_or(("", ""));
    let status = match job.status {
        JobStatus::Queued => "queued",
        JobStatus::InProgress => "in_progress",
        JobStatus::Completed => "completed",
    };
    json!({
        "action": action,
        "workflow_job": {
            "id": job.id,
            "run_id": job.run_id,
            "workflow_name": "CI",
            "head_branch": "main",
            "run_url": format!("https://api.github.com/repos/{}/actions/runs/{}", job.repo, job.run_id),
            "run_attempt": 1,
            "node_id": "CR_kwDO",
            "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "url": format!("https://api.github.com/repos/{}/actions/jobs/{}", job.repo, job.id),
            "html_url": format!("https://github.com/{}/actions/runs/{}/job/{}", job.repo, job.run_id, job.id),
            "status": status,
            "conclusion": if job.status == JobStatus::Completed { json!("success") } else { Value::Null },
            "created_at": rfc3339(now().saturating_sub(job.queued_at.elapsed().as_secs())),
            "started_at": rfc3339(now().saturating_sub(job.started_at.map_or(0, |t| t.elapsed().as_secs()))),
            "completed_at": if job.status == JobStatus::Completed { json!(rfc3339(now())) } else { Value::Null },
            "name": "build",
            "steps": [],
            "check_run_url": format!("https://api.github.com/repos/{}/check-runs/{}", job.repo, job.id),
            "labels": job.labels,
            "runner_id": job.runner_id,
            "runner_name": job.runner_name,
            "runner_group_id": job.runner_group_id,
            "runner_group_name": job.runner_group_id.map(|_| "runners"),
        },
        "repository": {
            "id": 1,
            "name": name,
            "full_name": job.repo,
            "private": false,
            "owner": { "login": owner, "id": 1, "type": "Organization" },
        },
        "organization": { "login": owner, "id": 1 },
        "sender": { "login": "octocat", "id": 1, "type": "User" },
    })
}

/// POSTs a JSON body to a plain-HTTP `url` with extra headers; the answer's status, if any
/// came within `timeout`.
pub(crate) async fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let mut req =
        format!("POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(hostport).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)?
            .parse::<u16>()
            .ok()
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

/// POSTs one signed delivery; true when answered 2xx.
/// Sends one `workflow_job` delivery; the receiver's status (0: no answer) and its guid.
async fn deliver(
    url: &str,
    secret: &str,
    action: &str,
    job: &FakeJob,
    twice: bool,
) -> (u16, String) {
    let body = workflow_job_payload(action, job).to_string();
    let sig = crate::forge::github::webhook::sign(secret.as_bytes(), body.as_bytes());
    let delivery = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..),
        fastrand::u16(..),
        fastrand::u64(..) & 0xffff_ffff_ffff
    );
    let headers = [
        ("User-Agent", "GitHub-Hookshot/sim"),
        ("X-GitHub-Event", "workflow_job"),
        ("X-GitHub-Delivery", delivery.as_str()),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    // GitHub gives up after 10 seconds and does not retry by itself.
    let status = post_json(url, &headers, &body, Duration::from_secs(10))
        .await
        .unwrap_or(0);
    if twice {
        let _ = post_json(url, &headers, &body, Duration::from_secs(10)).await;
    }
    (status, delivery)
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn answer(status: u16, v: Value, w: &World, limit: u64) -> Response<Body> {
    let body = if status == 204 {
        Bytes::new()
    } else {
        Bytes::from(v.to_string())
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if status != 204 {
        h.insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
    }
    let remaining = limit.saturating_sub(w.used);
    for (k, v) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-used", w.used.to_string()),
        ("x-ratelimit-reset", w.window_reset.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ] {
        h.insert(k, v.parse().unwrap());
    }
    r
}

fn msg(m: &str) -> Value {
    json!({ "message": m, "documentation_url": "https://docs.github.com/rest" })
}

fn label_json(i: usize, name: &str) -> Value {
    let kind = if ["self-hosted", "linux", "x64", "arm64", "windows", "macos"].contains(&name) {
        "read-only"
    } else {
        "custom"
    };
    json!({ "id": i as u64 + 1, "name": name, "type": kind })
}

fn runner_json(r: &FakeRunner) -> Value {
    json!({
        "id": r.id,
        "runner_group_id": r.group_id,
        "name": r.name,
        "os": "linux",
        "status": if r.online { "online" } else { "offline" },
        "busy": r.busy,
        "ephemeral": true,
        "labels": r.labels.iter().enumerate().map(|(i, l)| label_json(i, l)).collect::<Vec<_>>(),
    })
}

fn group_json(base: &str, g: &FakeGroup) -> Value {
    let mut v = json!({
        "id": g.id,
        "name": g.name,
        "visibility": g.visibility,
        "default": g.default,
        "runners_url": format!("{base}/orgs/{}/actions/runner-groups/{}/runners", g.org, g.id),
        "hosted_runners_url": format!("{base}/orgs/{}/actions/runner-groups/{}/hosted-runners", g.org, g.id),
        "inherited": false,
        "allows_public_repositories": g.allows_public_repositories,
        "restricted_to_workflows": g.restricted_to_workflows,
        "selected_workflows": g.selected_workflows,
        "workflow_restrictions_read_only": false,
    });
    if g.visibility == "selected" {
        v["selected_repositories_url"] = json!(format!(
            "{base}/orgs/{}/actions/runner-groups/{}/repositories",
            g.org, g.id
        ));
    }
    v
}

fn page<T: Clone>(items: &[T], query: &BTreeMap<String, String>) -> Vec<T> {
    let per = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    items
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect()
}

/// Checks the `Authorization` header. Installation tokens expire.
/// The credential a request authenticates with: `token` (the personal access token) or
/// `installation-ID`; `None` when it authenticates with none the fake accepts.
fn credential(w: &World, o: &FakeGitHubOptions, req: &Request<Incoming>) -> Option<String> {
    let h = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())?;
    let token = h
        .strip_prefix("token ")
        .or_else(|| h.strip_prefix("Bearer "))
        .or_else(|| h.strip_prefix("bearer "))
        .unwrap_or("");
    if o.token.as_deref() == Some(token) {
        return Some("token".into());
    }
    w.tokens
        .get(token)
        .filter(|(exp, _)| *exp > now())
        .map(|(_, inst)| format!("installation-{inst}"))
}

/// Every App the fake knows.
fn apps(o: &FakeGitHubOptions) -> impl Iterator<Item = &FakeApp> {
    o.app.iter().chain(o.other_apps.iter())
}

/// The App whose JWT authenticates `req`, if any.
fn jwt_app<'o>(o: &'o FakeGitHubOptions, req: &Request<Incoming>) -> Option<&'o FakeApp> {
    apps(o).find(|a| app_jwt_valid(a, req))
}

fn app_jwt_valid(app: &FakeApp, req: &Request<Incoming>) -> bool {
    let Some(jwt) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes()) else {
        return false;
    };
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: serde_json::Value,
    }
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // GitHub App JWTs carry `iss` as a number, which jsonwebtoken's own check cannot read: it is
    // checked below against the app id.
    v.required_spec_claims = ["exp", "iat"].iter().map(|s| s.to_string()).collect();
    match jsonwebtoken::decode::<Claims>(jwt, &key, &v) {
        Ok(data) => {
            let iss = match &data.claims.iss {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            iss == app.app_id.to_string()
        }
        Err(e) => {
            tracing::debug!(error = %e, "fake GitHub: JWT refused");
            false
        }
    }
}

/// The stand-in runner connecting with its JIT configuration: the runner comes online.
fn connect_side_door(w: &mut World, o: &FakeGitHubOptions, input: &Value) -> Response<Body> {
    let jit = input
        .get("jitconfig")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let found = w
        .runners
        .iter_mut()
        .find(|r| !jit.is_empty() && r.jit == jit);
    match found {
        Some(r) => {
            r.online = true;
            let v = json!({ "id": r.id, "name": r.name });
            answer(200, v, w, o.rate_limit)
        }
        None => answer(
            404,
            msg("no runner has this configuration"),
            w,
            o.rate_limit,
        ),
    }
}

/// The trouble injected for this request, or a chaos-mode secondary limit, as GitHub answers it.
fn trouble_answer(
    w: &mut World,
    o: &FakeGitHubOptions,
    trouble: Option<Trouble>,
) -> Option<Response<Body>> {
    match trouble {
        Some(Trouble::PrimaryLimit) => {
            let used = w.used;
            w.used = o.rate_limit.max(used);
            return Some(answer(
                403,
                msg("API rate limit exceeded for installation."),
                w,
                o.rate_limit,
            ));
        }
        Some(Trouble::SecondaryLimit { retry_after }) => {
            let mut r = answer(
                429,
                msg("You have exceeded a secondary rate limit."),
                w,
                o.rate_limit,
            );
            r.headers_mut()
                .insert("retry-after", retry_after.to_string().parse().unwrap());
            return Some(r);
        }
        Some(Trouble::SecondaryLimit403 { retry_after }) => {
            let mut r = answer(
                403,
                msg("You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
                w,
                o.rate_limit,
            );
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return Some(r);
        }
        None => {}
    }
    if o.chaos.secondary_limits > 0.0 && fastrand::f64() < o.chaos.secondary_limits {
        // As GitHub does: 403, requests still remaining, sometimes a retry-after.
        let mut r = answer(
            403,
            msg("You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
            w,
            o.rate_limit,
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return Some(r);
    }
    None
}

async fn handle(
    world: &Mutex<World>,
    o: &FakeGitHubOptions,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    // GitHub Enterprise Server serves the same API under /api/v3.
    let raw_path = req.uri().path().to_string();
    let path = raw_path
        .strip_prefix("/api/v3")
        .unwrap_or(&raw_path)
        .trim_end_matches('/')
        .to_string();
    let query = crate::fake_server::query(req.uri());
    let base = format!(
        "http://{}",
        req.headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    if path == "/actions/runner-registration" || path.starts_with("/_services/") {
        return scale_set_request(world, o, req, &path, &query, &base).await;
    }
    let is_token_request = method == Method::POST
        && path.starts_with("/app/installations/")
        && path.ends_with("/access_tokens");
    let jwt_app = if is_token_request {
        jwt_app(o, &req).cloned()
    } else {
        None
    };
    let (cred, trouble) = {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        let cred = match &jwt_app {
            Some(a) => Some(format!("app-{}", a.app_id)),
            None => credential(&w, o, &req),
        };
        let trouble = if path.starts_with("/_sim/") || w.trouble.is_empty() {
            None
        } else {
            Some(w.trouble.remove(0))
        };
        (cred, trouble)
    };
    let auth_ok = cred.is_some();
    let cred = cred.unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let pre = {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        let r = Arrived {
            method: &method,
            path: &path,
            raw_path: &raw_path,
            cred: auth_ok.then_some(cred.as_str()),
            input: &input,
        };
        before_route(&mut w, o, &r, trouble)
    };
    let latency = match pre {
        Err(answered) => return *answered,
        Ok(l) => l,
    };
    if let Some(l) = latency {
        tokio::time::sleep(l).await;
    }
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    if latency.is_some() {
        w.enforcer.finish(&cred);
        w.used = w.used_by.get(&cred).copied().unwrap_or(0);
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let limit = o.rate_limit;
    let (status, v) = route(&mut w, o, &base, &method, &seg, &query, &input);
    answer(status, v, &w, limit)
}

/// A request to the Actions service (or the registration exchange, at the API root). A poll
/// of an empty queue is held up to `poll_hold`, looking every 20 ms, then answered 202.
async fn scale_set_request(
    world: &Mutex<World>,
    o: &FakeGitHubOptions,
    req: Request<Incoming>,
    path: &str,
    query: &BTreeMap<String, String>,
    base: &str,
) -> Response<Body> {
    let method = req.method().clone();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let auth = header("authorization");
    let capacity = header("x-scalesetmaxcapacity").and_then(|v| v.parse::<u64>().ok());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query: BTreeMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.clone(), scaleset::decode(v)))
        .collect();
    let r = scaleset::Req {
        method: &method,
        path,
        query: &query,
        auth: auth.as_deref(),
        capacity,
        input: &input,
        base,
    };
    let lock = || world.lock().unwrap_or_else(|p| p.into_inner());
    {
        let mut w = lock();
        if w.ss.unavailable > 0 {
            w.ss.unavailable -= 1;
            w.requests.push(format!("{method} {path} (503)"));
            return answer(
                503,
                json!({ "message": "service unavailable" }),
                &w,
                o.rate_limit,
            );
        }
    }
    let polls = method == Method::GET && path.ends_with("/messages");
    let (status, v) = if path == "/actions/runner-registration" && method == Method::POST {
        let mut w = lock();
        w.requests.push(format!("{method} {path}"));
        scaleset::exchange(&mut w, o, &r)
    } else if polls {
        lock().requests.push(format!("{method} {path}"));
        let until = std::time::Instant::now() + o.scale_sets.poll_hold;
        loop {
            if let Some(a) = scaleset::poll_once(&mut lock(), &r) {
                break a;
            }
            if std::time::Instant::now() >= until {
                break (202, Value::Null);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    } else {
        let mut w = lock();
        w.requests.push(format!("{method} {path}"));
        scaleset::route(&mut w, o, &r)
    };
    let w = lock();
    let mut resp = answer(
        if status == 202 { 204 } else { status },
        v,
        &w,
        o.rate_limit,
    );
    if status == 202 {
        *resp.status_mut() = StatusCode::ACCEPTED;
    }
    resp
}

/// What [`before_route`] looks at of a request.
struct Arrived<'a> {
    method: &'a Method,
    path: &'a str,
    raw_path: &'a str,
    /// Its credential, when it authenticates.
    cred: Option<&'a str>,
    input: &'a Value,
}

/// Everything before a request is routed: the side door, authentication, the hourly limit,
/// injected trouble and the secondary limits. An answer when the request ends here, else the
/// latency to wait before it is performed (with `limits`; it holds its place among the
/// concurrent requests meanwhile).
fn before_route(
    w: &mut World,
    o: &FakeGitHubOptions,
    r: &Arrived<'_>,
    trouble: Option<Trouble>,
) -> Result<Option<Duration>, Box<Response<Body>>> {
    if now() >= w.window_reset {
        w.window_reset = now() + 3600;
        w.used = 0;
        w.used_by.clear();
    }
    // The stand-in runner's side door: not part of GitHub's API.
    if r.path == "/_sim/runner/connect" && *r.method == Method::POST {
        return Err(Box::new(connect_side_door(w, o, r.input)));
    }
    w.requests.push(format!("{} {}", r.method, r.raw_path));
    let Some(cred) = r.cred else {
        return Err(Box::new(answer(
            401,
            msg("Bad credentials"),
            w,
            o.rate_limit,
        )));
    };
    let used = w.used_by.get(cred).copied().unwrap_or(0) + 1;
    w.used = used;
    let troubled = trouble_answer(w, o, trouble);
    let used = w.used;
    w.used_by.insert(cred.to_string(), used);
    if let Some(answered) = troubled {
        return Err(Box::new(answered));
    }
    if w.used > o.rate_limit {
        return Err(Box::new(answer(
            403,
            msg("API rate limit exceeded."),
            w,
            o.rate_limit,
        )));
    }
    // GitHub's secondary limits (an App's own JWT requests are not an installation's).
    let Some(l) = o.limits.filter(|_| !cred.starts_with("app-")) else {
        return Ok(None);
    };
    let class = crate::budget::endpoint_class(r.method.as_str(), r.path);
    let write = *r.method != Method::GET;
    if w.enforcer
        .admit(&l, cred, &class, write, std::time::Instant::now())
        .is_err()
    {
        let mut answered = answer(
            403,
            msg("You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
            w,
            o.rate_limit,
        );
        answered
            .headers_mut()
            .insert("retry-after", "60".parse().unwrap());
        return Err(Box::new(answered));
    }
    Ok(Some(l.latency))
}

fn scope_exists(w: &World, scope: &[&str]) -> bool {
    match scope {
        ["orgs", org] => w.groups.iter().any(|g| g.org == *org),
        ["repos", owner, repo] => w.repos.iter().any(|r| r.owner == *owner && r.name == *repo),
        _ => false,
    }
}

/// One request to the fake's API, its scope (`orgs/ORG`, `repos/OWNER/REPO`) split off.
struct Call<'a> {
    o: &'a FakeGitHubOptions,
    base: &'a str,
    method: &'a Method,
    scope: &'a [&'a str],
    rest: &'a [&'a str],
    scope_key: String,
    query: &'a BTreeMap<String, String>,
    input: &'a Value,
}

fn route(
    w: &mut World,
    o: &FakeGitHubOptions,
    base: &str,
    method: &Method,
    seg: &[&str],
    query: &BTreeMap<String, String>,
    input: &Value,
) -> (u16, Value) {
    // Runner routes live under a scope: orgs/ORG or repos/OWNER/REPO.
    let (scope, rest): (&[&str], &[&str]) = match seg {
        ["orgs", _, ..] => (&seg[..2], &seg[2..]),
        ["repos", _, _, ..] => (&seg[..3], &seg[3..]),
        _ => (&[], seg),
    };
    let c = Call {
        o,
        base,
        method,
        scope,
        rest,
        scope_key: scope.join("/"),
        query,
        input,
    };
    if let Some(a) = app_and_repo_routes(w, &c) {
        return a;
    }
    if let Some(a) = hook_routes(w, &c) {
        return a;
    }
    if !scope.is_empty() && !scope_exists(w, scope) {
        return (404, msg("Not Found"));
    }
    group_routes(w, &c)
        .or_else(|| runner_routes(w, &c))
        .unwrap_or_else(|| (404, msg("Not Found")))
}

/// An installation token for the fake's GitHub App.
fn installation_token(w: &mut World, o: &FakeGitHubOptions, id: &str) -> (u16, Value) {
    let Some(inst) = id
        .parse::<u64>()
        .ok()
        .filter(|i| apps(o).any(|a| a.installation_id == *i))
    else {
        return (404, msg("Not Found"));
    };
    let token = format!("ghs_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let exp = now() + o.token_ttl.as_secs();
    w.tokens.insert(token.clone(), (exp, inst));
    w.token_requests += 1;
    (
        201,
        json!({ "token": token, "expires_at": rfc3339(exp), "permissions": { "organization_self_hosted_runners": "write" }, "repository_selection": "all" }),
    )
}

/// The workflow runs of a repository (`?status=queued`: those with a queued job).
fn queued_runs(
    w: &World,
    owner: &str,
    repo: &str,
    query: &BTreeMap<String, String>,
) -> (u16, Value) {
    let full = format!("{owner}/{repo}");
    let want = query.get("status").map(String::as_str);
    // `created=FROM..TO` (RFC 3339), as GitHub's search syntax writes a range.
    let created = query.get("created").map(|c| {
        let (from, to) = c.split_once("..").unwrap_or((c, ""));
        (
            crate::model::parse_rfc3339(from).unwrap_or(0),
            crate::model::parse_rfc3339(to).unwrap_or(u64::MAX),
        )
    });
    let mut runs: Vec<(u64, u64, &str)> = w
        .jobs
        .iter()
        .filter(|j| j.repo == full)
        .filter(|j| want.is_none() || (want == Some("queued") && j.status == JobStatus::Queued))
        .filter(|j| created.is_none_or(|(a, b)| (a..=b).contains(&j.created_unix)))
        .map(|j| (j.run_id, j.created_unix, status_name(j.status)))
        .collect();
    runs.sort_unstable();
    runs.dedup_by_key(|r| r.0);
    let list: Vec<Value> = runs
        .iter()
        .map(|(id, at, status)| {
            json!({ "id": id, "status": status, "name": "CI", "run_attempt": 1, "created_at": rfc3339(*at) })
        })
        .collect();
    (
        200,
        json!({ "total_count": list.len(), "workflow_runs": page(&list, query) }),
    )
}

fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::InProgress => "in_progress",
        JobStatus::Completed => "completed",
    }
}

/// Webhooks: each organization has one to `webhook_url` (when set) for `workflow_job`, with
/// the deliveries the fake made; repositories have none.
fn hook_routes(w: &mut World, c: &Call) -> Option<(u16, Value)> {
    if c.method != Method::GET {
        return None;
    }
    if !scope_exists(w, c.scope) {
        return None;
    }
    let base = c.base;
    Some(match (c.scope, c.rest) {
        (["orgs", org], ["hooks"]) => {
            let hooks: Vec<Value> = c.o.webhook_url.iter().map(|url| {
                let at = rfc3339(now());
                json!({
                    "id": HOOK_ID, "type": "Organization", "name": "web", "active": true,
                    "events": ["workflow_job"],
                    "config": { "url": url, "content_type": "json", "insecure_ssl": "0", "secret": "********" },
                    "updated_at": at, "created_at": at,
                    "url": format!("{base}/orgs/{org}/hooks/{HOOK_ID}"),
                    "ping_url": format!("{base}/orgs/{org}/hooks/{HOOK_ID}/pings"),
                    "deliveries_url": format!("{base}/orgs/{org}/hooks/{HOOK_ID}/deliveries"),
                })
            }).collect();
            (200, Value::Array(page(&hooks, c.query)))
        }
        (["orgs", org], ["hooks", id, "deliveries"]) => {
            if id.parse::<u64>().ok() != Some(HOOK_ID) || c.o.webhook_url.is_none() {
                return Some((404, msg("Not Found")));
            }
            let per_page = c
                .query
                .get("per_page")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(30)
                .min(100);
            let list: Vec<Value> = w
                .hook_deliveries
                .iter()
                .rev()
                .filter(|(o, _)| o == org)
                .take(per_page)
                .map(|(_, d)| json!({
                    "id": d.id, "guid": d.guid, "delivered_at": rfc3339(d.at), "redelivery": d.redelivery,
                    "duration": 0.01,
                    "status": if (200..300).contains(&d.status_code) { "OK".to_string() } else { format!("Invalid HTTP Response: {}", d.status_code) },
                    "status_code": d.status_code, "event": "workflow_job", "action": d.action,
                    "installation_id": null, "repository_id": null,
                }))
                .collect();
            (200, Value::Array(list))
        }
        (["repos", _, _], ["hooks"]) => (200, json!([])),
        _ => return None,
    })
}

/// Installation tokens, repositories, workflow runs and their jobs.
fn app_and_repo_routes(w: &mut World, c: &Call) -> Option<(u16, Value)> {
    let (base, query) = (c.base, c.query);
    Some(match (c.method, c.scope, c.rest) {
        (&Method::POST, [], ["app", "installations", id, "access_tokens"]) => {
            installation_token(w, c.o, id)
        }
        (&Method::GET, ["orgs", org], ["repos"]) => {
            let all: Vec<Value> = w
                .repos
                .iter()
                .filter(|r| r.owner == *org)
                .map(|r| minimal_repo_json(base, r))
                .collect();
            (200, Value::Array(page(&all, query)))
        }
        (&Method::GET, ["repos", owner, repo], ["actions", "runs"]) => {
            queued_runs(w, owner, repo, query)
        }
        (&Method::GET, ["repos", owner, repo], ["actions", "runs", run]) => {
            let full = format!("{owner}/{repo}");
            match w
                .jobs
                .iter()
                .find(|j| j.repo == full && run.parse::<u64>().ok() == Some(j.run_id))
            {
                Some(j) => (
                    200,
                    json!({
                        "id": j.run_id,
                        "name": "CI",
                        "path": j.workflow,
                        "head_branch": "main",
                        "status": match j.status {
                            JobStatus::Queued => "queued",
                            JobStatus::InProgress => "in_progress",
                            JobStatus::Completed => "completed",
                        },
                        "run_attempt": 1,
                    }),
                ),
                None => (404, msg("Not Found")),
            }
        }
        (&Method::GET, ["repos", owner, repo], ["actions", "runs", run, "jobs"]) => {
            let full = format!("{owner}/{repo}");
            let jobs: Vec<Value> = w
                .jobs
                .iter()
                .filter(|j| j.repo == full && run.parse::<u64>().ok() == Some(j.run_id))
                .map(|j| {
                    json!({
                        "id": j.id,
                        "run_id": j.run_id,
                        "status": match j.status {
                            JobStatus::Queued => "queued",
                            JobStatus::InProgress => "in_progress",
                            JobStatus::Completed => "completed",
                        },
                        "labels": j.labels,
                        "runner_name": j.runner_name,
                        "created_at": rfc3339(j.created_unix),
                        "started_at": j.started_unix.map(rfc3339),
                        "completed_at": j.completed_unix.map(rfc3339),
                        "conclusion": j.conclusion,
                    })
                })
                .collect();
            (
                200,
                json!({ "total_count": jobs.len(), "jobs": page(&jobs, query) }),
            )
        }
        (&Method::GET, ["repos", owner, repo], []) => {
            match w
                .repos
                .iter()
                .find(|r| r.owner == *owner && r.name == *repo)
            {
                Some(r) => (200, repo_json(base, r)),
                None => (404, msg("Not Found")),
            }
        }
        _ => return None,
    })
}

/// A new runner group.
fn create_group(w: &mut World, c: &Call, org: &str) -> (u16, Value) {
    let input = c.input;
    let name = input.get("name").and_then(|v| v.as_str()).unwrap_or("");
    if name.is_empty() {
        return (422, msg("name is required"));
    }
    if w.groups.iter().any(|g| g.org == *org && g.name == name) {
        return (409, msg("A runner group with this name already exists"));
    }
    let id = w.id();
    let g = FakeGroup {
        id,
        org: org.to_string(),
        name: name.into(),
        visibility: input
            .get("visibility")
            .and_then(|v| v.as_str())
            .unwrap_or("all")
            .into(),
        default: false,
        allows_public_repositories: input
            .get("allows_public_repositories")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        restricted_to_workflows: input
            .get("restricted_to_workflows")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        selected_workflows: strings(input.get("selected_workflows")),
        repository_ids: ids(input.get("selected_repository_ids")),
    };
    let v = group_json(c.base, &g);
    w.groups.push(g);
    (201, v)
}

/// Runner groups of an organization, and their repositories.
fn group_routes(w: &mut World, c: &Call) -> Option<(u16, Value)> {
    let (base, query, input) = (c.base, c.query, c.input);
    Some(match (c.method, c.scope, c.rest) {
        (&Method::GET, ["orgs", org], ["actions", "runner-groups"]) => {
            let all: Vec<Value> = w
                .groups
                .iter()
                .filter(|g| g.org == *org)
                .map(|g| group_json(base, g))
                .collect();
            (
                200,
                json!({ "total_count": all.len(), "runner_groups": page(&all, query) }),
            )
        }
        (&Method::POST, ["orgs", org], ["actions", "runner-groups"]) => create_group(w, c, org),
        (&Method::PATCH, ["orgs", org], ["actions", "runner-groups", id]) => {
            let Some(g) = w
                .groups
                .iter_mut()
                .find(|g| g.org == *org && id.parse::<u64>().ok() == Some(g.id))
            else {
                return Some((404, msg("Not Found")));
            };
            if let Some(n) = input.get("name").and_then(|v| v.as_str()) {
                g.name = n.into();
            }
            if let Some(v) = input.get("visibility").and_then(|v| v.as_str()) {
                g.visibility = v.into();
            }
            if let Some(v) = input
                .get("allows_public_repositories")
                .and_then(|v| v.as_bool())
            {
                g.allows_public_repositories = v;
            }
            if let Some(v) = input
                .get("restricted_to_workflows")
                .and_then(|v| v.as_bool())
            {
                g.restricted_to_workflows = v;
            }
            if input.get("selected_workflows").is_some() {
                g.selected_workflows = strings(input.get("selected_workflows"));
            }
            (200, group_json(base, g))
        }
        (&Method::GET, ["orgs", org], ["actions", "runner-groups", id, "repositories"]) => {
            let Some(g) = w
                .groups
                .iter()
                .find(|g| g.org == *org && id.parse::<u64>().ok() == Some(g.id))
            else {
                return Some((404, msg("Not Found")));
            };
            let repos: Vec<Value> = w
                .repos
                .iter()
                .filter(|r| g.repository_ids.contains(&r.id))
                .map(|r| minimal_repo_json(base, r))
                .collect();
            (
                200,
                json!({ "total_count": repos.len(), "repositories": page(&repos, query) }),
            )
        }
        (&Method::PUT, ["orgs", org], ["actions", "runner-groups", id, "repositories"]) => {
            let wanted = ids(input.get("selected_repository_ids"));
            let Some(g) = w
                .groups
                .iter_mut()
                .find(|g| g.org == *org && id.parse::<u64>().ok() == Some(g.id))
            else {
                return Some((404, msg("Not Found")));
            };
            g.repository_ids = wanted;
            (204, Value::Null)
        }
        _ => return None,
    })
}

/// A just-in-time runner configuration.
fn generate_jit(w: &mut World, c: &Call) -> (u16, Value) {
    let (input, scope_key) = (c.input, &c.scope_key);
    let name = input.get("name").and_then(|v| v.as_str()).unwrap_or("");
    let group = input.get("runner_group_id").and_then(|v| v.as_u64());
    let labels = strings(input.get("labels"));
    if name.is_empty() || group.is_none() || labels.is_empty() {
        return (422, msg("name, runner_group_id and labels are required"));
    }
    if w.runners
        .iter()
        .any(|r| r.scope == *scope_key && r.name == name)
    {
        return (
            409,
            msg("Already exists - A runner with the same name already exists."),
        );
    }
    let id = w.id();
    // Like a real one, the configuration names the service the runner talks to: here
    // the fake's side door, which a stand-in runner calls to come online.
    let jit = sim_jit(&w.base_url, id);
    let mut all_labels = vec!["self-hosted".to_string(), "linux".into(), "x64".into()];
    for l in labels {
        if !all_labels.iter().any(|x| x.eq_ignore_ascii_case(&l)) {
            all_labels.push(l);
        }
    }
    let r = FakeRunner {
        id,
        scope: scope_key.to_string(),
        name: name.into(),
        online: false,
        busy: false,
        labels: all_labels,
        group_id: group.unwrap_or(1),
        jit: jit.clone(),
        job: None,
        scale_set: None,
    };
    let v = json!({ "runner": runner_json(&r), "encoded_jit_config": jit });
    w.registrations.push((r.id, r.name.clone(), false));
    w.runners.push(r);
    (201, v)
}

/// Runners of a scope: list, get, delete, register.
fn runner_routes(w: &mut World, c: &Call) -> Option<(u16, Value)> {
    let (query, scope_key) = (c.query, &c.scope_key);
    Some(match (c.method, c.scope, c.rest) {
        (&Method::GET, _, ["actions", "runners"]) => {
            // The page is cut before it is written out: a listing of N runners costs N/100
            // pages of 100, not N/100 times N.
            let all: Vec<&FakeRunner> =
                w.runners.iter().filter(|r| r.scope == *scope_key).collect();
            let runners: Vec<Value> = page(&all, query).into_iter().map(runner_json).collect();
            (200, json!({ "total_count": all.len(), "runners": runners }))
        }
        (&Method::GET, _, ["actions", "runners", id]) => match w
            .runners
            .iter()
            .find(|r| r.scope == *scope_key && id.parse::<u64>().ok() == Some(r.id))
        {
            Some(r) => (200, runner_json(r)),
            None => (404, msg("Not Found")),
        },
        (&Method::DELETE, _, ["actions", "runners", id]) => {
            let Some(i) = w
                .runners
                .iter()
                .position(|r| r.scope == *scope_key && id.parse::<u64>().ok() == Some(r.id))
            else {
                return Some((404, msg("Not Found")));
            };
            if w.runners[i].busy {
                let name = w.runners[i].name.clone();
                return Some((
                    422,
                    msg(&format!(
                        "Bad request - Runner \"{name}\" is still running a job\""
                    )),
                ));
            }
            w.runners.remove(i);
            (204, Value::Null)
        }
        (&Method::POST, _, ["actions", "runners", "generate-jitconfig"]) => generate_jit(w, c),
        (&Method::POST, _, ["actions", "runners", "registration-token"]) => {
            let token = format!("REG{:016X}", fastrand::u64(..));
            w.ss.registration
                .insert(token.clone(), (now() + 3600, scope_key.clone()));
            (
                201,
                json!({ "token": token, "expires_at": rfc3339(now() + 3600) }),
            )
        }
        _ => return None,
    })
}

fn sim_jit(base_url: &str, id: u64) -> String {
    use base64::Engine;
    let doc = json!({
        "sim_connect": format!("{base_url}/_sim/runner/connect"),
        "runner_id": id,
        "nonce": format!("{:016x}", fastrand::u64(..)),
    });
    base64::engine::general_purpose::STANDARD.encode(doc.to_string())
}

/// The connect address inside a JIT configuration made by the fake, if it is one.
pub fn sim_connect_url(jit: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(jit.trim())
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("sim_connect")?.as_str().map(String::from)
}

/// What a booting stand-in runner does: tells the fake GitHub it is online.
pub async fn connect_stand_in_runner(jit: &str) -> bool {
    let Some(url) = sim_connect_url(jit) else {
        return false;
    };
    let body = json!({ "jitconfig": jit }).to_string();
    post_json(&url, &[], &body, Duration::from_secs(5)).await == Some(200)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn ids(v: Option<&Value>) -> Vec<u64> {
    v.and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_u64()).collect())
        .unwrap_or_default()
}

fn owner_json(base: &str, login: &str) -> Value {
    json!({
        "login": login, "id": 1, "node_id": "O_kgDO", "avatar_url": format!("{base}/avatars/{login}"),
        "gravatar_id": "", "url": format!("{base}/users/{login}"), "html_url": format!("{base}/{login}"),
        "followers_url": format!("{base}/users/{login}/followers"), "following_url": format!("{base}/users/{login}/following{{/other_user}}"),
        "gists_url": format!("{base}/users/{login}/gists{{/gist_id}}"), "starred_url": format!("{base}/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{base}/users/{login}/subscriptions"), "organizations_url": format!("{base}/users/{login}/orgs"),
        "repos_url": format!("{base}/users/{login}/repos"), "events_url": format!("{base}/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("{base}/users/{login}/received_events"), "type": "Organization", "site_admin": false,
    })
}

fn minimal_repo_json(base: &str, r: &FakeRepo) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    let u = format!("{base}/repos/{full}");
    let mut v = json!({
        "id": r.id, "node_id": "R_kgDO", "name": r.name, "full_name": full,
        "owner": owner_json(base, &r.owner), "private": false, "html_url": format!("{base}/{full}"),
        "description": null, "fork": false, "url": u,
    });
    for (k, suffix) in [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
        ("hooks_url", "/hooks"),
    ] {
        v[k] = json!(format!("{u}{suffix}"));
    }
    v
}

fn repo_json(base: &str, r: &FakeRepo) -> Value {
    let mut v = minimal_repo_json(base, r);
    let full = format!("{}/{}", r.owner, r.name);
    let t = rfc3339(1_700_000_000);
    let extra = json!({
        "clone_url": format!("{base}/{full}.git"), "default_branch": "main", "forks": 0, "forks_count": 0,
        "git_url": format!("git://127.0.0.1/{full}.git"), "has_issues": true, "has_projects": false,
        "has_wiki": false, "has_pages": false, "has_discussions": false, "homepage": null, "language": null,
        "archived": false, "disabled": false, "mirror_url": null, "open_issues": 0, "open_issues_count": 0,
        "license": null, "pushed_at": t, "size": 0, "ssh_url": format!("git@127.0.0.1:{full}.git"),
        "stargazers_count": 0, "svn_url": format!("{base}/{full}"), "watchers": 0, "watchers_count": 0,
        "created_at": t, "updated_at": t, "network_count": 0, "subscribers_count": 0,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}
