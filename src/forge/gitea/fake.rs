//! A stateful fake of the part of Gitea runnerctl uses, for tests and the demo. It is never used
//! by a production code path: only `runnerctl demo --forge gitea` and the tests start it.
//!
//! It keeps organizations with repositories, runners at instance (`admin`), organization, user
//! and repository scope, one registration token per scope (reusable until replaced, as Gitea's),
//! and jobs. A runner registers with a scope's token through `POST /_sim/act_runner/register`
//! (what `act_runner register` does over Gitea's runner protocol) and heartbeats once its daemon
//! runs (`POST /_sim/act_runner/daemon`); its status follows Gitea's model from its last-seen
//! times: offline when last online over a minute ago, idle when last active over 10 s ago, else
//! active. A queued job goes to an online idle runner whose labels include every label it asks
//! for (the name part of each); an ephemeral runner is removed after its one job. Deliveries of
//! `workflow_job` carry Gitea's headers and GitHub's, both signed.
//!
//! It serves `/api/v1/…` (and the same paths at the root, as Prism forwards them). Its answers
//! follow `shared/contracts/gitea/swagger.runners.json` for what that file describes (the
//! contract test runs it behind Prism), and Gitea 1.24's GitHub-modelled shapes for the runner
//! and job endpoints the file lacks. Started with `version` below 1.24 it has none of those.

use crate::fake_server::{rfc3339, serve_fake, Body};
use crate::forge::fake::post_json;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake starts.
#[derive(Clone)]
pub struct FakeGiteaOptions {
    /// Organizations with their repositories (names).
    pub orgs: Vec<(String, Vec<String>)>,
    /// The user the access token belongs to, with their repositories.
    pub user: (String, Vec<String>),
    /// The accepted access token.
    pub token: String,
    /// What `/version` reports (`1.24.0`; `1.22.6` has no runner API).
    pub version: String,
    /// Where `workflow_job` webhooks go, and the secret they are signed with.
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    /// How long a job runs once a runner took it.
    pub job_duration: Duration,
    /// The share of jobs (0.0 to 1.0) whose webhooks are never delivered.
    pub drop_webhooks: f64,
    /// A queued job goes to any idle runner whose labels fit, chosen at random.
    pub any_idle_runner: bool,
    /// The share of deliveries sent twice with the same delivery id.
    pub repeat: f64,
}

impl Default for FakeGiteaOptions {
    fn default() -> Self {
        FakeGiteaOptions {
            orgs: vec![],
            user: ("gitea-admin".into(), vec![]),
            token: "gitea-sim-token".into(),
            version: "1.24.0".into(),
            webhook_url: None,
            webhook_secret: String::new(),
            job_duration: Duration::from_millis(200),
            drop_webhooks: 0.0,
            any_idle_runner: false,
            repeat: 0.0,
        }
    }
}

/// A runner as the fake has it.
#[derive(Debug, Clone)]
pub struct FakeGiteaRunner {
    pub id: u64,
    pub uuid: String,
    /// `admin`, `orgs/ORG`, `user`, or `repos/OWNER/REPO`.
    pub scope: String,
    pub name: String,
    pub labels: Vec<String>,
    pub ephemeral: bool,
    /// Whether its daemon runs (it heartbeats while it does).
    pub alive: bool,
    pub last_online: Option<Instant>,
    pub last_active: Option<Instant>,
    pub job: Option<u64>,
}

impl FakeGiteaRunner {
    /// Gitea's status model: `offline`, `idle` or `active`.
    pub fn status(&self, now: Instant) -> &'static str {
        match (self.last_online, self.last_active) {
            (None, _) => "offline",
            (Some(o), _) if now.duration_since(o) > Duration::from_secs(60) => "offline",
            (_, Some(a)) if now.duration_since(a) <= Duration::from_secs(10) => "active",
            _ => "idle",
        }
    }
}

/// Where a simulated job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiteaJobStatus {
    Waiting,
    Running,
    Success,
}

/// A simulated job.
#[derive(Debug, Clone)]
pub struct FakeGiteaJob {
    pub id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repo: String,
    pub labels: Vec<String>,
    pub status: GiteaJobStatus,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub started_at: Option<Instant>,
    pub silent: bool,
    /// When it was queued, started and ended (unix seconds).
    pub created_unix: u64,
    pub started_unix: Option<u64>,
    pub completed_unix: Option<u64>,
}

#[derive(Default)]
struct World {
    next_id: u64,
    runners: Vec<FakeGiteaRunner>,
    /// The active registration token of each scope.
    tokens: HashMap<String, String>,
    /// How many times each scope's token was replaced.
    replaced: HashMap<String, u64>,
    jobs: Vec<FakeGiteaJob>,
    hooks: Vec<(String, Value)>,
    outbox: Vec<(String, FakeGiteaJob)>,
    requests: Vec<String>,
    /// Requests still to answer 429 (`retry-after: 1`).
    too_many: usize,
    /// Every registration: name, scope, whether it ran a job.
    registrations: Vec<(String, String, bool)>,
    delivered: u64,
    /// When each job's `queued` delivery was sent.
    queued_sent: HashMap<u64, Instant>,
}

impl World {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A running fake Gitea.
pub struct FakeGitea {
    addr: SocketAddr,
    opts: FakeGiteaOptions,
    world: Arc<Mutex<World>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

fn modern(o: &FakeGiteaOptions) -> bool {
    crate::forge::gitea::Version::parse(&o.version).is_some_and(|v| v.has_runner_api())
}

impl FakeGitea {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub async fn start(opts: FakeGiteaOptions) -> std::io::Result<FakeGitea> {
        let world = Arc::new(Mutex::new(World {
            next_id: 100,
            ..World::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(scheduler(world.clone(), opts.clone()));
        let tx = serve_fake(
            listener,
            (world.clone(), opts.clone()),
            |(w, o), req| async move { handle(&w, &o, req).await },
        );
        Ok(FakeGitea {
            addr,
            opts,
            world,
            stop: Some(tx),
        })
    }

    /// The web root, e.g. `http://127.0.0.1:41234` (the API is under `/api/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn options(&self) -> &FakeGiteaOptions {
        &self.opts
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every API request so far (`GET /api/v1/version`).
    pub fn requests(&self) -> Vec<String> {
        self.world().requests.clone()
    }

    pub fn runners(&self) -> Vec<FakeGiteaRunner> {
        self.world().runners.clone()
    }

    pub fn jobs(&self) -> Vec<FakeGiteaJob> {
        self.world().jobs.clone()
    }

    /// Every registration ever made: name, scope, whether it ran a job.
    pub fn registrations(&self) -> Vec<(String, String, bool)> {
        self.world().registrations.clone()
    }

    /// How many times the scope's (`orgs/ORG`, …) token was replaced.
    pub fn replacements(&self, scope: &str) -> u64 {
        self.world().replaced.get(scope).copied().unwrap_or(0)
    }

    /// The scope's active registration token, made when there is none (as Gitea does).
    pub fn token(&self, scope: &str) -> String {
        current_token(&mut self.world(), scope)
    }

    /// When a job's `queued` delivery was sent.
    pub fn queued_sent_at(&self, job: u64) -> Option<Instant> {
        self.world().queued_sent.get(&job).copied()
    }

    /// Deliveries answered 2xx.
    pub fn delivered(&self) -> u64 {
        self.world().delivered
    }

    /// The next `n` API requests are answered 429 with `retry-after: 1`.
    pub fn too_many_requests(&self, n: usize) {
        self.world().too_many = n;
    }

    /// Queues a job in `repo` (`owner/name`) asking for `labels`; its id.
    pub fn queue_job(&self, repo: &str, labels: &[&str]) -> u64 {
        let o = &self.opts;
        let mut w = self.world();
        let (id, run_id) = (w.id(), w.id());
        let job = FakeGiteaJob {
            id,
            run_id,
            repo: repo.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            status: GiteaJobStatus::Waiting,
            runner_id: None,
            runner_name: None,
            started_at: None,
            silent: fastrand::f64() < o.drop_webhooks,
            created_unix: crate::model::unix_now(),
            started_unix: None,
            completed_unix: None,
        };
        if !job.silent {
            w.outbox.push(("queued".into(), job.clone()));
        }
        w.jobs.push(job);
        id
    }

    /// Adds a job that ran in the past (created, started, completed: unix seconds), with no
    /// webhook: history for `trace export`.
    pub fn add_past_job(&self, repo: &str, labels: &[&str], times: (u64, u64, u64)) -> u64 {
        let mut w = self.world();
        let (id, run_id) = (w.id(), w.id());
        w.jobs.push(FakeGiteaJob {
            id,
            run_id,
            repo: repo.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            status: GiteaJobStatus::Success,
            runner_id: None,
            runner_name: None,
            started_at: None,
            silent: true,
            created_unix: times.0,
            started_unix: Some(times.1),
            completed_unix: Some(times.2),
        });
        id
    }

    /// A runner registered by hand (not by runnerctl) at `scope`; its id.
    pub fn add_runner(&self, scope: &str, name: &str, labels: &[&str], alive: bool) -> u64 {
        let mut w = self.world();
        let id = w.id();
        w.runners.push(FakeGiteaRunner {
            id,
            uuid: random_hex(32),
            scope: scope.to_string(),
            name: name.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ephemeral: false,
            alive,
            last_online: alive.then(Instant::now),
            last_active: None,
            job: None,
        });
        id
    }

    /// Stops or restarts a runner's heartbeat.
    pub fn set_alive(&self, id: u64, alive: bool) {
        if let Some(r) = self.world().runners.iter_mut().find(|r| r.id == id) {
            r.alive = alive;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for FakeGitea {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn current_token(w: &mut World, scope: &str) -> String {
    w.tokens
        .entry(scope.to_string())
        .or_insert_with(|| random_hex(40))
        .clone()
}

/// Whether a runner at `scope` may take a job of `repo` (`owner/name`), `user` owning the
/// token's `user` scope.
fn serves(scope: &str, repo: &str, user: &str) -> bool {
    let owner = repo.split_once('/').map_or(repo, |(o, _)| o);
    scope == "admin"
        || scope == format!("repos/{repo}")
        || scope == format!("orgs/{owner}")
        || (scope == "user" && owner == user)
}

fn label_name(l: &str) -> String {
    crate::forge::gitea::label_name(l).to_ascii_lowercase()
}

async fn scheduler(world: Arc<Mutex<World>>, o: FakeGiteaOptions) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tick.tick().await;
        if Arc::strong_count(&world) == 1 {
            return;
        }
        let outbox = {
            let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
            step(&mut w, &o);
            std::mem::take(&mut w.outbox)
        };
        let Some(url) = &o.webhook_url else { continue };
        for (action, job) in outbox {
            if action == "queued" {
                world
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .queued_sent
                    .insert(job.id, Instant::now());
            }
            let repeat = fastrand::f64() < o.repeat;
            let ok = deliver(url, &o.webhook_secret, &action, &job, repeat).await;
            if ok {
                world.lock().unwrap_or_else(|p| p.into_inner()).delivered += 1;
            }
        }
    }
}

fn step(w: &mut World, o: &FakeGiteaOptions) {
    let now = Instant::now();
    for r in w.runners.iter_mut().filter(|r| r.alive) {
        r.last_online = Some(now);
        if r.job.is_some() {
            r.last_active = Some(now);
        }
    }
    // Finish jobs that ran long enough; an ephemeral runner is removed after its one task.
    for i in 0..w.jobs.len() {
        let done = w.jobs[i].status == GiteaJobStatus::Running
            && w.jobs[i]
                .started_at
                .is_some_and(|t| now.duration_since(t) >= o.job_duration);
        if done {
            w.jobs[i].status = GiteaJobStatus::Success;
            w.jobs[i].completed_unix = Some(crate::model::unix_now());
            let rid = w.jobs[i].runner_id;
            w.runners.retain(|r| !(Some(r.id) == rid && r.ephemeral));
            for r in w.runners.iter_mut().filter(|r| Some(r.id) == rid) {
                r.job = None;
            }
            if !w.jobs[i].silent {
                let snapshot = w.jobs[i].clone();
                w.outbox.push(("completed".into(), snapshot));
            }
        }
    }
    for i in 0..w.jobs.len() {
        if w.jobs[i].status != GiteaJobStatus::Waiting {
            continue;
        }
        let wanted: Vec<String> = w.jobs[i].labels.iter().map(|l| label_name(l)).collect();
        let fits: Vec<usize> = w
            .runners
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.alive
                    && r.job.is_none()
                    && r.status(now) != "offline"
                    && serves(&r.scope, &w.jobs[i].repo, &o.user.0)
                    && wanted
                        .iter()
                        .all(|l| r.labels.iter().any(|x| label_name(x) == *l))
            })
            .map(|(i, _)| i)
            .collect();
        let pick = if o.any_idle_runner && !fits.is_empty() {
            Some(fits[fastrand::usize(..fits.len())])
        } else {
            fits.first().copied()
        };
        let Some(ri) = pick else { continue };
        let job_id = w.jobs[i].id;
        let r = &mut w.runners[ri];
        r.job = Some(job_id);
        r.last_active = Some(now);
        let (rid, rname) = (r.id, r.name.clone());
        if let Some(reg) = w.registrations.iter_mut().rev().find(|x| x.0 == rname) {
            reg.2 = true;
        }
        let job = &mut w.jobs[i];
        job.status = GiteaJobStatus::Running;
        job.started_unix = Some(crate::model::unix_now());
        job.started_at = Some(now);
        job.runner_id = Some(rid);
        job.runner_name = Some(rname);
        if !job.silent {
            let snapshot = job.clone();
            w.outbox.push(("in_progress".into(), snapshot));
        }
    }
}

fn status_str(s: GiteaJobStatus) -> &'static str {
    match s {
        GiteaJobStatus::Waiting => "queued",
        GiteaJobStatus::Running => "in_progress",
        GiteaJobStatus::Success => "completed",
    }
}

/// The `workflow_job` payload Gitea 1.24 sends (GitHub's shape).
pub fn workflow_job_payload(action: &str, job: &FakeGiteaJob) -> Value {
    let (owner, name) = job.repo.split_once('/').unwrap_or(("", ""));
    let t = rfc3339(crate::model::unix_now());
    json!({
        "action": action,
        "workflow_job": {
            "id": job.id,
            "run_id": job.run_id,
            "run_url": format!("/{}/actions/runs/{}", job.repo, job.run_id),
            "head_branch": "main",
            "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "name": "build",
            "labels": job.labels,
            "status": status_str(job.status),
            "conclusion": if job.status == GiteaJobStatus::Success { json!("success") } else { Value::Null },
            "created_at": t,
            "started_at": t,
            "runner_id": job.runner_id.unwrap_or(0),
            "runner_name": job.runner_name.clone().unwrap_or_default(),
            "steps": [],
        },
        "repository": {
            "id": 1,
            "name": name,
            "full_name": job.repo,
            "private": false,
            "owner": { "id": 1, "login": owner, "username": owner },
        },
        "organization": { "id": 1, "username": owner },
        "sender": { "id": 1, "login": "gitea-admin", "username": "gitea-admin" },
    })
}

/// POSTs one delivery with Gitea's headers and GitHub's; true when answered 2xx.
async fn deliver(url: &str, secret: &str, action: &str, job: &FakeGiteaJob, twice: bool) -> bool {
    let body = workflow_job_payload(action, job).to_string();
    let hex = super::webhook::sign(secret.as_bytes(), body.as_bytes());
    let github = format!("sha256={hex}");
    let delivery = format!(
        "{}-{}-{}-{}-{}",
        random_hex(8),
        random_hex(4),
        random_hex(4),
        random_hex(4),
        random_hex(12)
    );
    let headers = [
        ("User-Agent", "Go-http-client/1.1"),
        ("X-Gitea-Event", "workflow_job"),
        ("X-Gitea-Event-Type", "workflow_job"),
        ("X-Gitea-Delivery", delivery.as_str()),
        ("X-Gitea-Signature", hex.as_str()),
        ("X-GitHub-Event", "workflow_job"),
        ("X-GitHub-Delivery", delivery.as_str()),
        ("X-Hub-Signature-256", github.as_str()),
    ];
    let ok = matches!(
        post_json(url, &headers, &body, Duration::from_secs(10)).await,
        Some(200..=299)
    );
    if twice {
        let _ = post_json(url, &headers, &body, Duration::from_secs(10)).await;
    }
    ok
}

fn answer(status: u16, v: Value) -> Response<Body> {
    let body = if status == 204 {
        Bytes::new()
    } else {
        Bytes::from(v.to_string())
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status != 204 {
        r.headers_mut().insert(
            "content-type",
            "application/json;charset=utf-8".parse().unwrap(),
        );
    }
    r
}

fn msg(m: &str) -> Value {
    json!({ "message": m, "url": "https://gitea.example.com/api/swagger" })
}

fn authorized(o: &FakeGiteaOptions, req: &Request<Incoming>) -> bool {
    let h = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = h.split_whitespace();
    let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    (kind.eq_ignore_ascii_case("token") || kind.eq_ignore_ascii_case("bearer")) && token == o.token
}

async fn handle(
    world: &Mutex<World>,
    o: &FakeGiteaOptions,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let path = raw_path
        .strip_prefix("/api/v1")
        .unwrap_or(&raw_path)
        .trim_end_matches('/')
        .to_string();
    let query = crate::fake_server::query(req.uri());
    let auth_ok = authorized(o, &req);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(side) = path.strip_prefix("/_sim/act_runner/") {
        return act_runner(&mut w, side, &input);
    }
    w.requests.push(format!("{method} {raw_path}"));
    if w.too_many > 0 {
        w.too_many -= 1;
        let mut r = answer(429, msg("too many requests"));
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if path == "/version" && method == Method::GET {
        return answer(200, json!({ "version": o.version }));
    }
    if !auth_ok {
        return answer(401, msg("token is required"));
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, v) = route(&mut w, o, &method, &seg, &query, &input);
    let mut r = answer(status, v.clone());
    // The described `RegistrationToken` answer is a `token` header; Gitea sends a body too.
    if let Some(t) = v.get("token").and_then(|t| t.as_str()) {
        if let Ok(h) = t.parse() {
            r.headers_mut().insert("token", h);
        }
    }
    r
}

/// The scope a path's prefix names (`admin`, `orgs/ORG`, `user`, `repos/O/R`) and the rest.
fn split_scope<'a>(seg: &'a [&'a str]) -> Option<(String, &'a [&'a str])> {
    match seg {
        ["admin", rest @ ..] => Some(("admin".into(), rest)),
        ["user", rest @ ..] => Some(("user".into(), rest)),
        ["orgs", org, rest @ ..] => Some((format!("orgs/{org}"), rest)),
        ["repos", owner, repo, rest @ ..] => Some((format!("repos/{owner}/{repo}"), rest)),
        _ => None,
    }
}

fn scope_exists(o: &FakeGiteaOptions, scope: &str) -> bool {
    match scope.split('/').collect::<Vec<_>>()[..] {
        ["admin"] | ["user"] => true,
        ["orgs", org] => o.orgs.iter().any(|(n, _)| n == org),
        ["repos", owner, repo] => repos_of(o, owner).is_some_and(|r| r.iter().any(|x| x == repo)),
        _ => false,
    }
}

fn repos_of<'a>(o: &'a FakeGiteaOptions, owner: &str) -> Option<&'a Vec<String>> {
    o.orgs
        .iter()
        .find(|(n, _)| n == owner)
        .map(|(_, r)| r)
        .or((o.user.0 == owner).then_some(&o.user.1))
}

fn page<T: Clone>(items: &[T], query: &BTreeMap<String, String>) -> Vec<T> {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 50);
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    items
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .cloned()
        .collect()
}

fn runner_json(r: &FakeGiteaRunner, now: Instant) -> Value {
    let status = r.status(now);
    json!({
        "id": r.id,
        "name": r.name,
        "status": if status == "offline" { "offline" } else { "online" },
        "busy": status == "active" || r.job.is_some(),
        "ephemeral": r.ephemeral,
        "labels": r.labels.iter().enumerate().map(|(i, l)| json!({
            "id": i as u64 + 1, "name": l, "type": "custom"
        })).collect::<Vec<_>>(),
    })
}

fn user_json(login: &str) -> Value {
    json!({ "id": 1, "login": login, "username": login, "full_name": login, "email": format!("{login}@example.com"), "is_admin": true })
}

fn org_json(name: &str) -> Value {
    json!({ "id": 2, "name": name, "username": name, "full_name": name, "visibility": "public", "repo_admin_change_team_access": false })
}

fn repo_json(owner: &str, name: &str) -> Value {
    json!({
        "id": 3,
        "name": name,
        "full_name": format!("{owner}/{name}"),
        "owner": user_json(owner),
        "private": false,
        "has_actions": true,
        "default_branch": "main",
        "html_url": format!("https://gitea.example.com/{owner}/{name}"),
    })
}

fn route(
    w: &mut World,
    o: &FakeGiteaOptions,
    method: &Method,
    seg: &[&str],
    query: &BTreeMap<String, String>,
    input: &Value,
) -> (u16, Value) {
    if let Some(answer) = owner_routes(w, o, method, seg, query, input) {
        return answer;
    }
    scope_routes(w, o, method, seg, query)
}

/// Organizations, repositories, their tasks, jobs and hooks.
fn owner_routes(
    w: &mut World,
    o: &FakeGiteaOptions,
    method: &Method,
    seg: &[&str],
    query: &BTreeMap<String, String>,
    input: &Value,
) -> Option<(u16, Value)> {
    let modern = modern(o);
    Some(match (method, seg) {
        (&Method::GET, ["orgs", org]) if o.orgs.iter().any(|(n, _)| n == org) => {
            (200, org_json(org))
        }
        (&Method::GET, ["repos", owner, repo])
            if scope_exists(o, &format!("repos/{owner}/{repo}")) =>
        {
            (200, repo_json(owner, repo))
        }
        (&Method::GET, ["orgs" | "users", owner, "repos"]) => {
            let Some(repos) = repos_of(o, owner) else {
                return Some((404, msg("owner does not exist")));
            };
            let all: Vec<Value> = repos.iter().map(|r| repo_json(owner, r)).collect();
            (200, json!(page(&all, query)))
        }
        (&Method::GET, ["repos", owner, repo, "actions", "tasks"]) => {
            let full = format!("{owner}/{repo}");
            let tasks: Vec<Value> = w
                .jobs
                .iter()
                .filter(|j| j.repo == full)
                .map(|j| {
                    let t = rfc3339(crate::model::unix_now());
                    json!({
                        "id": j.id, "name": "build", "head_branch": "main",
                        "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                        "run_number": j.run_id, "event": "push", "display_title": "build",
                        "status": match j.status { GiteaJobStatus::Waiting => "waiting", GiteaJobStatus::Running => "running", GiteaJobStatus::Success => "success" },
                        "workflow_id": "ci.yaml", "url": format!("/{full}/actions/runs/{}", j.run_id),
                        "created_at": t, "updated_at": t, "run_started_at": t,
                    })
                })
                .collect();
            let total = tasks.len();
            (
                200,
                json!({ "workflow_runs": page(&tasks, query), "total_count": total }),
            )
        }
        (&Method::GET, ["repos", owner, repo, "actions", "jobs"]) if modern => {
            let full = format!("{owner}/{repo}");
            let want = query.get("status").map(String::as_str);
            let jobs: Vec<Value> = w
                .jobs
                .iter()
                .filter(|j| j.repo == full)
                .filter(|j| match want {
                    Some("waiting" | "queued") => j.status == GiteaJobStatus::Waiting,
                    Some("running" | "in_progress") => j.status == GiteaJobStatus::Running,
                    _ => true,
                })
                .map(|j| json!({
                    "id": j.id, "run_id": j.run_id, "name": "build", "labels": j.labels,
                    "status": match j.status { GiteaJobStatus::Waiting => "waiting", GiteaJobStatus::Running => "running", GiteaJobStatus::Success => "success" },
                    "runner_id": j.runner_id.unwrap_or(0), "runner_name": j.runner_name.clone().unwrap_or_default(),
                    "created_at": rfc3339(j.created_unix),
                    "started_at": j.started_unix.map(rfc3339),
                    "completed_at": j.completed_unix.map(rfc3339),
                    "conclusion": (j.status == GiteaJobStatus::Success).then_some("success"),
                }))
                .collect();
            let total = jobs.len();
            (
                200,
                json!({ "jobs": page(&jobs, query), "total_count": total }),
            )
        }
        (_, ["orgs" | "repos", ..]) if seg.last() == Some(&"hooks") => {
            hooks(w, o, method, seg, input)
        }
        _ => return None,
    })
}

/// Registration tokens and runners at a scope.
fn scope_routes(
    w: &mut World,
    o: &FakeGiteaOptions,
    method: &Method,
    seg: &[&str],
    query: &BTreeMap<String, String>,
) -> (u16, Value) {
    let modern = modern(o);
    let now = Instant::now();
    let Some((scope, rest)) = split_scope(seg) else {
        return (404, msg("not found"));
    };
    if !scope_exists(o, &scope) {
        return (404, msg("not found"));
    }
    match (method, rest) {
        // 1.22: the instance's and a repository's token under their old paths.
        (&Method::GET, ["runners", "registration-token"])
            if !modern && (scope == "admin" || scope.starts_with("repos/")) =>
        {
            (200, json!({ "token": current_token(w, &scope) }))
        }
        (&Method::GET, ["actions", "runners", "registration-token"])
            if modern || scope.starts_with("orgs/") || scope == "user" =>
        {
            (200, json!({ "token": current_token(w, &scope) }))
        }
        (&Method::POST, ["actions", "runners", "registration-token"]) if modern => {
            let t = random_hex(40);
            w.tokens.insert(scope.clone(), t.clone());
            *w.replaced.entry(scope).or_default() += 1;
            (200, json!({ "token": t }))
        }
        (&Method::GET, ["actions", "runners"]) if modern => {
            let all: Vec<Value> = w
                .runners
                .iter()
                .filter(|r| r.scope == scope)
                .map(|r| runner_json(r, now))
                .collect();
            let total = all.len();
            (
                200,
                json!({ "runners": page(&all, query), "total_count": total }),
            )
        }
        (&Method::GET, ["actions", "runners", id]) if modern => {
            match w
                .runners
                .iter()
                .find(|r| r.scope == scope && id.parse() == Ok(r.id))
            {
                Some(r) => (200, runner_json(r, now)),
                None => (404, msg("runner not found")),
            }
        }
        (&Method::DELETE, ["actions", "runners", id]) if modern => {
            let before = w.runners.len();
            w.runners
                .retain(|r| !(r.scope == scope && id.parse() == Ok(r.id)));
            if w.runners.len() < before {
                (204, Value::Null)
            } else {
                (404, msg("runner not found"))
            }
        }
        _ => (404, msg("not found")),
    }
}

fn hooks(
    w: &mut World,
    o: &FakeGiteaOptions,
    method: &Method,
    seg: &[&str],
    input: &Value,
) -> (u16, Value) {
    let owner = seg[..seg.len() - 1].join("/");
    if !scope_exists(o, &owner) {
        return (404, msg("not found"));
    }
    let hook_json = |id: usize, v: &Value| {
        let t = rfc3339(crate::model::unix_now());
        json!({
            "id": id as u64 + 1,
            "type": v.get("type").cloned().unwrap_or(json!("gitea")),
            "active": v.get("active").cloned().unwrap_or(json!(false)),
            "events": v.get("events").cloned().unwrap_or(json!([])),
            "config": { "url": v.pointer("/config/url").cloned().unwrap_or(json!("")), "content_type": "json" },
            "authorization_header": "",
            "branch_filter": v.get("branch_filter").cloned().unwrap_or(json!("")),
            "created_at": t, "updated_at": t,
        })
    };
    match *method {
        Method::GET => {
            let list: Vec<Value> = w
                .hooks
                .iter()
                .enumerate()
                .filter(|(_, (s, _))| *s == owner)
                .map(|(i, (_, v))| hook_json(i, v))
                .collect();
            (200, json!(list))
        }
        Method::POST => {
            if input.get("type").is_none() || input.get("config").is_none() {
                return (422, msg("type and config are required"));
            }
            w.hooks.push((owner, input.clone()));
            let i = w.hooks.len() - 1;
            (201, hook_json(i, input))
        }
        _ => (405, msg("method not allowed")),
    }
}

/// The runner protocol's part a stand-in plays: `register` (with a scope's token, name and
/// labels) and `daemon` (its heartbeat starts).
fn act_runner(w: &mut World, side: &str, input: &Value) -> Response<Body> {
    let s = |k: &str| input.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match side {
        "register" => {
            let token = s("token");
            let Some(scope) = w
                .tokens
                .iter()
                .find(|(_, t)| !token.is_empty() && *t == token)
                .map(|(s, _)| s.clone())
            else {
                return answer(401, msg("runner registration token not found"));
            };
            let name = s("name").to_string();
            if name.is_empty() || w.runners.iter().any(|r| r.name == name && r.scope == scope) {
                return answer(409, msg("runner name is empty or taken"));
            }
            let labels: Vec<String> = s("labels")
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            let id = w.id();
            let uuid = random_hex(32);
            w.runners.push(FakeGiteaRunner {
                id,
                uuid: uuid.clone(),
                scope: scope.clone(),
                name: name.clone(),
                labels,
                ephemeral: input
                    .get("ephemeral")
                    .and_then(|e| e.as_bool())
                    .unwrap_or(false),
                alive: false,
                last_online: None,
                last_active: None,
                job: None,
            });
            w.registrations.push((name, scope, false));
            answer(200, json!({ "id": id, "uuid": uuid }))
        }
        "daemon" => {
            let uuid = s("uuid");
            match w.runners.iter_mut().find(|r| r.uuid == uuid) {
                Some(r) => {
                    r.alive = true;
                    r.last_online = Some(Instant::now());
                    answer(200, json!({ "id": r.id }))
                }
                None => answer(404, msg("runner not found")),
            }
        }
        _ => answer(404, msg("not found")),
    }
}

/// What a stand-in `act_runner` does with a registration token: registers at the fake Gitea
/// at `instance` (ephemeral) and starts its daemon. Whether both were accepted.
pub async fn register_stand_in(instance: &str, token: &str, name: &str, labels: &str) -> bool {
    let base = instance.trim_end_matches('/');
    let body = json!({ "token": token, "name": name, "labels": labels, "ephemeral": true });
    let Some(answer) = post_json_answer(&format!("{base}/_sim/act_runner/register"), &body).await
    else {
        return false;
    };
    let Some(uuid) = answer.get("uuid").and_then(|u| u.as_str()) else {
        return false;
    };
    post_json_answer(
        &format!("{base}/_sim/act_runner/daemon"),
        &json!({ "uuid": uuid }),
    )
    .await
    .is_some()
}

/// POSTs JSON and reads a 2xx JSON answer.
async fn post_json_answer(url: &str, body: &Value) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(hostport).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).to_string();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        (200..300)
            .contains(&status)
            .then(|| serde_json::from_str(body).ok())?
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .ok()
        .flatten()
}
