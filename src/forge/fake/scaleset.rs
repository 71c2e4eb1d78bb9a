//! The fake GitHub's Actions service for runner scale sets (the contract in
//! `shared/contracts/scaleset`): the registration exchange, scale sets, one message session
//! per scale set (409 while one is open; dropped when its owner stops polling), a message
//! queue per scale set (long poll, 202 when empty, messages delivered again until deleted),
//! acquiring, JIT runners of a scale set, and the service's hostile habits: admin and queue
//! tokens that expire (401), jobs taken back and assigned again under a new request id when no
//! runner picks them up, at most 50 job messages per queue message.
//!
//! A job is a scale set's when its labels are exactly the scale set's name. Its runners live in
//! the fake GitHub's runners (scope of the scale set) and take only its jobs.

use super::{msg, now, rfc3339, FakeRunner, JobStatus, World};
use hyper::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How the fake scale-set service behaves.
#[derive(Clone, Debug)]
pub struct ScaleSetOptions {
    /// The classic flow: jobs are offered (`JobAvailable`) and assigned only once acquired.
    /// Off: the service assigns by itself (`JobAssigned` without an acquire call).
    pub acquire: bool,
    /// How long a poll is held when the queue is empty (about 50 s on GitHub).
    pub poll_hold: Duration,
    /// An assigned job no runner took within this (times its attempt) is taken back.
    pub reassign_after: Duration,
    pub admin_token_ttl: Duration,
    pub queue_token_ttl: Duration,
    /// A session whose owner has not polled for this long is dropped.
    pub session_timeout: Duration,
}

impl Default for ScaleSetOptions {
    fn default() -> Self {
        ScaleSetOptions {
            acquire: true,
            poll_hold: Duration::from_secs(50),
            reassign_after: Duration::from_secs(60),
            admin_token_ttl: Duration::from_secs(3600),
            queue_token_ttl: Duration::from_secs(3600),
            session_timeout: Duration::from_secs(120),
        }
    }
}

/// A scale set as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeScaleSet {
    pub id: u64,
    pub name: String,
    /// `orgs/ORG` or `repos/OWNER/REPO`.
    pub scope: String,
    pub runner_group_id: u64,
    pub runner_group_name: String,
    pub labels: Vec<Value>,
    pub setting: Value,
    session: Option<FakeSession>,
    /// Undeleted messages: (id, body, statistics at the time).
    queue: Vec<(u64, String, Value)>,
    /// Job messages not yet put into a queue message.
    pending: Vec<Value>,
    /// The last `X-ScaleSetMaxCapacity` polled with.
    capacity: Option<u64>,
}

#[derive(Debug, Clone)]
struct FakeSession {
    id: String,
    owner: String,
    token: String,
    token_exp: u64,
    last_poll: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `JobAvailable` sent, not acquired.
    Offered,
    /// Assigned to the scale set, waiting for a runner.
    Assigned,
    /// A runner took it.
    Running,
}

#[derive(Debug, Clone)]
struct SsJob {
    set: u64,
    request: u64,
    phase: Phase,
    since: Instant,
    attempts: u32,
    /// Waiting for capacity before it is offered or assigned.
    held: bool,
}

/// The scale-set service's state, inside the fake GitHub's world.
#[derive(Default)]
pub(super) struct State {
    sets: Vec<FakeScaleSet>,
    /// Admin token → (expiry, scope).
    admin: HashMap<String, (u64, String)>,
    /// Registration token → (expiry, scope).
    pub(super) registration: HashMap<String, (u64, String)>,
    jobs: HashMap<u64, SsJob>,
    next_message: u64,
    /// Counters for tests: sessions created, 409s answered, messages delivered again.
    pub(super) sessions_created: u64,
    pub(super) conflicts: u64,
    pub(super) redelivered: u64,
    pub(super) reassigned: u64,
    /// Message ids delivered at least once.
    delivered: std::collections::HashSet<u64>,
    /// Queue tokens' lifetime (seconds).
    pub(super) queue_ttl: u64,
    /// The next service requests answered 503 (a service in trouble).
    pub(super) unavailable: u32,
}

/// What the tests read of the service.
#[derive(Debug, Clone, Default)]
pub struct ScaleSetCounts {
    pub sessions_created: u64,
    pub conflicts: u64,
    pub redelivered: u64,
    pub reassigned: u64,
    pub open_sessions: usize,
    pub undeleted_messages: usize,
}

impl State {
    pub(super) fn counts(&self) -> ScaleSetCounts {
        ScaleSetCounts {
            sessions_created: self.sessions_created,
            conflicts: self.conflicts,
            redelivered: self.redelivered,
            reassigned: self.reassigned,
            open_sessions: self.sets.iter().filter(|s| s.session.is_some()).count(),
            undeleted_messages: self.sets.iter().map(|s| s.queue.len()).sum(),
        }
    }

    /// Each scale-set job the service keeps: (job, scale set, request, phase, attempts, held).
    pub(super) fn jobs(&self) -> Vec<(u64, u64, u64, String, u32, bool)> {
        let mut v: Vec<_> = self
            .jobs
            .iter()
            .map(|(id, j)| {
                (
                    *id,
                    j.set,
                    j.request,
                    format!("{:?}", j.phase),
                    j.attempts,
                    j.held,
                )
            })
            .collect();
        v.sort_unstable();
        v
    }

    pub(super) fn sets(&self) -> Vec<FakeScaleSet> {
        self.sets.clone()
    }

    /// The scale set a job of `repo` asking for `labels` goes to.
    pub(super) fn set_for(&self, repo: &str, labels: &[String]) -> Option<u64> {
        let [label] = labels else { return None };
        let owner = repo.split('/').next().unwrap_or_default();
        self.sets
            .iter()
            .find(|s| {
                s.name.eq_ignore_ascii_case(label)
                    && (s.scope == format!("orgs/{owner}") || s.scope == format!("repos/{repo}"))
            })
            .map(|s| s.id)
    }

    /// Puts a message with this raw body on a scale set's queue (tests: a malformed one).
    pub(super) fn inject(&mut self, set: u64, body: &str) -> u64 {
        self.next_message += 1;
        let id = self.next_message;
        if let Some(s) = self.sets.iter_mut().find(|s| s.id == set) {
            s.queue.push((id, body.to_string(), json!({})));
        }
        id
    }

    /// Drops a session as the service does when its owner is gone (tests).
    pub(super) fn drop_sessions(&mut self) {
        for s in &mut self.sets {
            s.session = None;
        }
    }

    /// Expires every admin and queue token at once (tests).
    pub(super) fn expire_tokens(&mut self) {
        for (exp, _) in self.admin.values_mut() {
            *exp = 0;
        }
        for s in &mut self.sets {
            if let Some(x) = &mut s.session {
                x.token_exp = 0;
            }
        }
    }
}

fn error(type_key: &str, message: &str) -> Value {
    json!({
        "$id": "1",
        "innerException": null,
        "message": message,
        "typeName": format!("GitHub.DistributedTask.WebApi.{type_key}, GitHub.DistributedTask.WebApi"),
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    })
}

fn statistics(w: &World, set: u64) -> Value {
    let ss = &w.ss;
    let jobs = ss.jobs.values().filter(|j| j.set == set && !j.held);
    let (mut available, mut assigned, mut running) = (0, 0, 0);
    for j in jobs {
        match j.phase {
            Phase::Offered => available += 1,
            Phase::Assigned => assigned += 1,
            Phase::Running => {
                assigned += 1;
                running += 1
            }
        }
    }
    let runners: Vec<&FakeRunner> = w
        .runners
        .iter()
        .filter(|r| r.scale_set == Some(set))
        .collect();
    let busy = runners.iter().filter(|r| r.busy).count();
    let idle = runners.iter().filter(|r| r.online && !r.busy).count();
    json!({
        "totalAvailableJobs": available,
        "totalAcquiredJobs": assigned,
        "totalAssignedJobs": assigned,
        "totalRunningJobs": running,
        "totalRegisteredRunners": runners.len(),
        "totalBusyRunners": busy,
        "totalIdleRunners": idle,
    })
}

fn set_json(w: &World, s: &FakeScaleSet, base: &str) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "runnerGroupId": s.runner_group_id,
        "runnerGroupName": s.runner_group_name,
        "labels": s.labels,
        "RunnerSetting": s.setting,
        "createdOn": rfc3339(1_700_000_000),
        "runnerJitConfigUrl": format!("{base}/_services/pipelines/_apis/runtime/runnerscalesets/{}/generatejitconfig", s.id),
        "statistics": statistics(w, s.id),
    })
}

/// A job message about one job.
fn job_message(w: &World, kind: &str, job_id: u64, j: &SsJob, base: &str) -> Value {
    let job = w.jobs.iter().find(|x| x.id == job_id);
    let (owner, repo) = job
        .map(|x| x.repo.split_once('/').unwrap_or(("", "")))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or_default();
    let zero = "0001-01-01T00:00:00Z";
    let mut v = json!({
        "messageType": kind,
        "runnerRequestId": j.request,
        "repositoryName": repo,
        "ownerName": owner,
        "jobId": format!("00000000-0000-4000-8000-{job_id:012x}"),
        "jobWorkflowRef": format!("{owner}/{repo}/.github/workflows/ci.yml@refs/heads/main"),
        "jobDisplayName": "build",
        "workflowRunId": job.map_or(0, |x| x.run_id),
        "eventName": "push",
        "requestLabels": job.map(|x| x.labels.clone()).unwrap_or_default(),
        "queueTime": job.map_or(zero.to_string(), |x| rfc3339(x.created_unix)),
        "scaleSetAssignTime": if j.phase == Phase::Offered { zero.to_string() } else { rfc3339(now()) },
        "runnerAssignTime": zero,
        "finishTime": zero,
    });
    if kind == "JobAvailable" {
        v["acquireJobUrl"] = json!(format!(
            "{base}/_services/pipelines/_apis/runtime/runnerscalesets/{}/acquirejobs",
            j.set
        ));
    }
    if let Some(x) = job.filter(|_| kind == "JobStarted" || kind == "JobCompleted") {
        v["runnerId"] = json!(x.runner_id.unwrap_or(0));
        v["runnerName"] = json!(x.runner_name.clone().unwrap_or_default());
        if x.started_unix.is_some() {
            v["runnerAssignTime"] = json!(rfc3339(x.started_unix.unwrap_or(0)));
        }
    }
    v
}

fn push(w: &mut World, set: u64, m: Value) {
    if let Some(s) = w.ss.sets.iter_mut().find(|s| s.id == set) {
        s.pending.push(m);
    }
}

/// Offers or assigns a job (a new request id each time).
fn offer(w: &mut World, o: &super::FakeGitHubOptions, job_id: u64, base: &str) {
    let request = w.id();
    let Some(j) = w.ss.jobs.get_mut(&job_id) else {
        return;
    };
    j.request = request;
    j.since = Instant::now();
    j.held = false;
    j.phase = if o.scale_sets.acquire {
        Phase::Offered
    } else {
        Phase::Assigned
    };
    let j = j.clone();
    let kind = if o.scale_sets.acquire {
        "JobAvailable"
    } else {
        "JobAssigned"
    };
    let m = job_message(w, kind, job_id, &j, base);
    push(w, j.set, m);
}

/// One step of the service, under the world's lock: new jobs offered within each scale set's
/// capacity, assigned jobs given to idle runners of their scale set or taken back, finished
/// jobs reported, and the pending job messages put into queue messages of at most 50.
pub(super) fn step(w: &mut World, o: &super::FakeGitHubOptions) {
    let base = w.base_url.clone();
    let now_i = Instant::now();
    // Sessions whose owner stopped polling are dropped.
    for s in &mut w.ss.sets {
        if s.session
            .as_ref()
            .is_some_and(|x| now_i.duration_since(x.last_poll) > o.scale_sets.session_timeout)
        {
            s.session = None;
        }
    }
    // New jobs of a scale set.
    let new: Vec<(u64, u64)> = w
        .jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued && !w.ss.jobs.contains_key(&j.id))
        .filter_map(|j| j.scale_set.map(|s| (j.id, s)))
        .collect();
    for (job, set) in new {
        w.ss.jobs.insert(
            job,
            SsJob {
                set,
                request: 0,
                phase: Phase::Offered,
                since: now_i,
                attempts: 0,
                held: true,
            },
        );
    }
    // Held jobs are offered while the scale set has capacity.
    let mut ids: Vec<u64> = w.ss.jobs.keys().copied().collect();
    ids.sort_unstable();
    for id in &ids {
        let Some(j) = w.ss.jobs.get(id).cloned() else {
            continue;
        };
        if !j.held {
            continue;
        }
        let cap =
            w.ss.sets
                .iter()
                .find(|s| s.id == j.set)
                .and_then(|s| s.capacity)
                .unwrap_or(u64::MAX);
        let busy =
            w.ss.jobs
                .values()
                .filter(|x| x.set == j.set && !x.held)
                .count() as u64;
        if busy < cap {
            offer(w, o, *id, &base);
        }
    }
    for id in ids {
        let Some(j) = w.ss.jobs.get(&id).cloned() else {
            continue;
        };
        let status = w.jobs.iter().find(|x| x.id == id).map(|x| x.status);
        match (j.phase, status) {
            (_, Some(JobStatus::Completed)) | (_, None) => {
                let m = job_message(w, "JobCompleted", id, &j, &base);
                let mut m = m;
                m["result"] = json!("succeeded");
                push(w, j.set, m);
                w.ss.jobs.remove(&id);
            }
            (Phase::Assigned, _) => assign_or_take_back(w, o, id, &j, &base),
            _ => {}
        }
    }
    flush(w);
}

/// An assigned job goes to an idle online runner of its scale set (any of them); one no
/// runner took in time is taken back and offered again, at most 3 times.
fn assign_or_take_back(
    w: &mut World,
    o: &super::FakeGitHubOptions,
    id: u64,
    j: &SsJob,
    base: &str,
) {
    let idle: Vec<usize> = w
        .runners
        .iter()
        .enumerate()
        .filter(|(_, r)| r.scale_set == Some(j.set) && r.online && !r.busy)
        .map(|(i, _)| i)
        .collect();
    if !idle.is_empty() {
        let ri = idle[fastrand::usize(..idle.len())];
        w.runners[ri].busy = true;
        w.runners[ri].job = Some(id);
        let (rid, rname, rgroup) = (
            w.runners[ri].id,
            w.runners[ri].name.clone(),
            w.runners[ri].group_id,
        );
        if let Some(reg) = w.registrations.iter_mut().find(|x| x.0 == rid) {
            reg.2 = true;
        }
        if let Some(job) = w.jobs.iter_mut().find(|x| x.id == id) {
            job.status = JobStatus::InProgress;
            job.started_at = Some(Instant::now());
            job.started_unix = Some(now());
            job.runner_id = Some(rid);
            job.runner_name = Some(rname);
            job.runner_group_id = Some(rgroup);
        }
        if let Some(x) = w.ss.jobs.get_mut(&id) {
            x.phase = Phase::Running;
        }
        let m = job_message(w, "JobStarted", id, j, base);
        push(w, j.set, m);
        return;
    }
    let due = o.scale_sets.reassign_after * (j.attempts + 1);
    if j.attempts < 3 && j.since.elapsed() >= due {
        let mut m = job_message(w, "JobCompleted", id, j, base);
        m["result"] = json!("canceled");
        m["runnerId"] = json!(0);
        m["runnerName"] = json!("");
        push(w, j.set, m);
        w.ss.reassigned += 1;
        if let Some(x) = w.ss.jobs.get_mut(&id) {
            x.attempts += 1;
        }
        offer(w, o, id, base);
    }
}

/// Pending job messages become queue messages of at most 50.
fn flush(w: &mut World) {
    let sets: Vec<u64> = w.ss.sets.iter().map(|s| s.id).collect();
    for set in sets {
        let pending = match w.ss.sets.iter_mut().find(|s| s.id == set) {
            Some(s) => std::mem::take(&mut s.pending),
            None => continue,
        };
        for chunk in pending.chunks(50) {
            w.ss.next_message += 1;
            let id = w.ss.next_message;
            let stats = statistics(w, set);
            if let Some(s) = w.ss.sets.iter_mut().find(|s| s.id == set) {
                s.queue
                    .push((id, Value::Array(chunk.to_vec()).to_string(), stats));
            }
        }
    }
}

/// A fake admin token: a JWT-shaped string whose payload carries `exp` (read unverified, as
/// the library does).
fn admin_token(exp: u64) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        b.encode(json!({ "exp": exp, "nonce": fastrand::u64(..) }).to_string()),
        b.encode("fake-signature")
    )
}

/// A query value with its percent escapes decoded.
pub(super) fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request to the service, as the fake GitHub received it.
pub(super) struct Req<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a BTreeMap<String, String>,
    pub auth: Option<&'a str>,
    pub capacity: Option<u64>,
    pub input: &'a Value,
    pub base: &'a str,
}

/// The registration exchange: `RemoteAuth <registration token>` for the service URL and an
/// admin token.
pub(super) fn exchange(w: &mut World, o: &super::FakeGitHubOptions, r: &Req) -> (u16, Value) {
    let token = r
        .auth
        .and_then(|a| a.strip_prefix("RemoteAuth "))
        .unwrap_or("");
    let Some((exp, scope)) = w.ss.registration.get(token).cloned() else {
        return (401, msg("Bad credentials"));
    };
    if exp <= now() {
        return (401, msg("registration token expired"));
    }
    let url = r.input.get("url").and_then(|v| v.as_str()).unwrap_or("");
    let wanted = scope
        .strip_prefix("orgs/")
        .or_else(|| scope.strip_prefix("repos/"))
        .unwrap_or("");
    if !url.trim_end_matches('/').ends_with(&format!("/{wanted}")) {
        return (
            400,
            msg("the url does not name the registration token's scope"),
        );
    }
    if r.input.get("runner_event").and_then(|v| v.as_str()) != Some("register") {
        return (400, msg("runner_event must be register"));
    }
    let exp = now() + o.scale_sets.admin_token_ttl.as_secs();
    let admin = admin_token(exp);
    w.ss.admin.insert(admin.clone(), (exp, scope));
    (
        201,
        json!({ "url": format!("{}/_services/pipelines/", r.base), "token": admin }),
    )
}

/// The service's routes (`/_services/pipelines/…`, `/_services/broker/…`), but the long poll.
pub(super) fn route(w: &mut World, o: &super::FakeGitHubOptions, r: &Req) -> (u16, Value) {
    let rest = r.path.trim_start_matches('/');
    let seg: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // The message queue's URLs are its own: their query as given, no API version.
    if let ["_services", "broker", ..] = seg.as_slice() {
        return queue_route(w, r, &seg[2..]);
    }
    if r.query.get("api-version").map(String::as_str) != Some("6.0-preview") {
        return (
            400,
            error(
                "VssInvalidApiVersionException",
                "api-version=6.0-preview is required",
            ),
        );
    }
    let Some(seg) = seg.strip_prefix(&["_services", "pipelines", "_apis"]) else {
        return (404, error("NotFoundException", "no such route"));
    };
    let token = r.auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    // acquirejobs takes the queue token.
    if let ["runtime", "runnerscalesets", id, "acquirejobs"] = seg {
        return acquire(w, r, id, token);
    }
    let Some((exp, scope)) = w.ss.admin.get(token).cloned() else {
        return (401, msg("Bad credentials"));
    };
    if exp <= now() {
        return (401, msg("the admin token expired"));
    }
    service_route(w, o, r, seg, &scope)
}

fn service_route(
    w: &mut World,
    _o: &super::FakeGitHubOptions,
    r: &Req,
    seg: &[&str],
    scope: &str,
) -> (u16, Value) {
    let id_of = |s: &str| s.parse::<u64>().ok();
    match (r.method, seg) {
        (&Method::GET, ["runtime", "runnergroups"]) => {
            let name = r.query.get("groupName").cloned().unwrap_or_default();
            let org = scope.strip_prefix("orgs/").unwrap_or("");
            let found: Vec<Value> = w
                .groups
                .iter()
                .filter(|g| {
                    (g.org == org || (org.is_empty() && g.default))
                        && g.name.eq_ignore_ascii_case(&name)
                })
                .take(1)
                .map(|g| json!({ "id": g.id, "name": g.name, "size": 0, "isDefaultGroup": g.default }))
                .collect();
            (200, json!({ "count": found.len(), "value": found }))
        }
        (&Method::GET, ["runtime", "runnerscalesets"]) => {
            let name = r.query.get("name").cloned().unwrap_or_default();
            let group = r
                .query
                .get("runnerGroupId")
                .and_then(|g| g.parse::<u64>().ok());
            let base = r.base.to_string();
            let found: Vec<Value> =
                w.ss.sets
                    .iter()
                    .filter(|s| {
                        s.scope == scope
                            && s.name == name
                            && group.is_none_or(|g| g == s.runner_group_id)
                    })
                    .map(|s| set_json(w, s, &base))
                    .collect();
            (200, json!({ "count": found.len(), "value": found }))
        }
        (&Method::POST, ["runtime", "runnerscalesets"]) => create_set(w, r, scope),
        (m, ["runtime", "runnerscalesets", id]) => {
            let Some(i) = id_of(id).and_then(|id| {
                w.ss.sets
                    .iter()
                    .position(|s| s.id == id && s.scope == scope)
            }) else {
                return (
                    404,
                    error("RunnerScaleSetNotFoundException", "no such scale set"),
                );
            };
            match *m {
                Method::GET => (200, set_json(w, &w.ss.sets[i], r.base)),
                Method::PATCH => {
                    if let Some(l) = r.input.get("labels").and_then(|v| v.as_array()) {
                        w.ss.sets[i].labels = labels(l);
                    }
                    if let Some(g) = r.input.get("runnerGroupId").and_then(|v| v.as_u64()) {
                        w.ss.sets[i].runner_group_id = g;
                    }
                    if let Some(s) = r.input.get("RunnerSetting") {
                        w.ss.sets[i].setting = s.clone();
                    }
                    (200, set_json(w, &w.ss.sets[i], r.base))
                }
                Method::DELETE => {
                    w.ss.sets.remove(i);
                    (204, Value::Null)
                }
                _ => (405, msg("method not allowed")),
            }
        }
        (&Method::POST, ["runtime", "runnerscalesets", id, "generatejitconfig"]) => {
            generate_jit(w, r, id_of(id).unwrap_or(0), scope)
        }
        (_, ["runtime", "runnerscalesets", id, "sessions", rest @ ..]) => {
            sessions(w, r, id_of(id).unwrap_or(0), scope, rest)
        }
        (m, ["distributedtask", "pools", "0", "agents", rest @ ..]) => agents(w, r, m, rest, scope),
        _ => (404, error("NotFoundException", "no such route")),
    }
}

/// The scale sets' runners (`distributedtask/pools/0/agents…`).
fn agents(w: &mut World, r: &Req, m: &Method, rest: &[&str], scope: &str) -> (u16, Value) {
    let id_of = |s: &str| s.parse::<u64>().ok();
    match (m, rest) {
        (&Method::GET, []) => {
            let name = r.query.get("agentName");
            let sets: Vec<u64> =
                w.ss.sets
                    .iter()
                    .filter(|s| s.scope == scope)
                    .map(|s| s.id)
                    .collect();
            let found: Vec<Value> = w
                .runners
                .iter()
                .filter(|x| x.scale_set.is_some_and(|s| sets.contains(&s)))
                .filter(|x| name.is_none_or(|n| *n == x.name))
                .map(agent_json)
                .collect();
            (200, json!({ "count": found.len(), "value": found }))
        }
        (m, [id]) => {
            let Some(i) = w
                .runners
                .iter()
                .position(|x| x.scale_set.is_some() && Some(x.id) == id_of(id))
            else {
                return (404, error("AgentNotFoundException", "no such agent"));
            };
            match *m {
                Method::GET => (200, agent_json(&w.runners[i])),
                Method::DELETE if w.runners[i].busy => (
                    400,
                    error("JobStillRunningException", "the runner is running a job"),
                ),
                Method::DELETE => {
                    w.runners.remove(i);
                    (204, Value::Null)
                }
                _ => (405, msg("method not allowed")),
            }
        }
        _ => (404, error("NotFoundException", "no such route")),
    }
}

fn labels(l: &[Value]) -> Vec<Value> {
    l.iter()
        .filter_map(|x| {
            let name = x.get("name")?.as_str()?;
            let kind = x
                .get("type")
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .unwrap_or("System");
            Some(json!({ "type": kind, "name": name }))
        })
        .collect()
}

fn agent_json(r: &FakeRunner) -> Value {
    json!({ "id": r.id, "name": r.name, "runnerScaleSetId": r.scale_set.unwrap_or(0) })
}

fn create_set(w: &mut World, r: &Req, scope: &str) -> (u16, Value) {
    let name = r
        .input
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let group = r
        .input
        .get("runnerGroupId")
        .and_then(|v| v.as_u64())
        .unwrap_or(1);
    if name.is_empty() {
        return (400, error("ArgumentException", "name is required"));
    }
    if w.ss.sets.iter().any(|s| s.scope == scope && s.name == name) {
        return (
            409,
            error(
                "RunnerScaleSetExistsException",
                "a scale set of this name exists",
            ),
        );
    }
    let group_name = w
        .groups
        .iter()
        .find(|g| g.id == group)
        .map(|g| g.name.clone())
        .unwrap_or_else(|| "Default".into());
    let mut l = r
        .input
        .get("labels")
        .and_then(|v| v.as_array())
        .map(|a| labels(a))
        .unwrap_or_default();
    if l.is_empty() {
        l.push(json!({ "type": "System", "name": name }));
    }
    let id = w.id();
    let set = FakeScaleSet {
        id,
        name,
        scope: scope.to_string(),
        runner_group_id: group,
        runner_group_name: group_name,
        labels: l,
        setting: r
            .input
            .get("RunnerSetting")
            .cloned()
            .unwrap_or_else(|| json!({})),
        session: None,
        queue: Vec::new(),
        pending: Vec::new(),
        capacity: None,
    };
    let v = set_json(w, &set, r.base);
    w.ss.sets.push(set);
    (200, v)
}

fn generate_jit(w: &mut World, r: &Req, set: u64, scope: &str) -> (u16, Value) {
    let Some(s) =
        w.ss.sets
            .iter()
            .find(|s| s.id == set && s.scope == scope)
            .cloned()
    else {
        return (
            404,
            error("RunnerScaleSetNotFoundException", "no such scale set"),
        );
    };
    let name = r.input.get("name").and_then(|v| v.as_str()).unwrap_or("");
    if name.is_empty() {
        return (400, error("ArgumentException", "name is required"));
    }
    if w.runners
        .iter()
        .any(|x| x.name == name && x.scope == s.scope)
    {
        return (
            409,
            error(
                "AgentExistsException",
                &format!("a runner named {name} exists"),
            ),
        );
    }
    let id = w.id();
    let jit = super::sim_jit(&w.base_url, id);
    let runner = FakeRunner {
        id,
        scope: s.scope.clone(),
        name: name.to_string(),
        online: false,
        busy: false,
        labels: vec![s.name.clone()],
        group_id: s.runner_group_id,
        jit: jit.clone(),
        job: None,
        scale_set: Some(set),
    };
    let v = json!({ "runner": agent_json(&runner), "encodedJITConfig": jit });
    w.registrations.push((id, runner.name.clone(), false));
    w.runners.push(runner);
    (200, v)
}

fn sessions(w: &mut World, r: &Req, set: u64, scope: &str, rest: &[&str]) -> (u16, Value) {
    let Some(i) =
        w.ss.sets
            .iter()
            .position(|s| s.id == set && s.scope == scope)
    else {
        return (
            404,
            error("RunnerScaleSetNotFoundException", "no such scale set"),
        );
    };
    match (r.method, rest) {
        (&Method::POST, []) => {
            if let Some(open) = &w.ss.sets[i].session {
                w.ss.conflicts += 1;
                let m = format!(
                    "The scale set {} already has an active session for owner {}.",
                    w.ss.sets[i].name, open.owner
                );
                return (409, error("TaskAgentSessionConflictException", &m));
            }
            let owner = r
                .input
                .get("ownerName")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let id = format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                fastrand::u32(..),
                fastrand::u16(..),
                fastrand::u16(..0x1000),
                fastrand::u16(..0x1000),
                fastrand::u64(..) & 0xffff_ffff_ffff
            );
            let session = FakeSession {
                id,
                owner,
                token: format!("QT{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
                token_exp: 0,
                last_poll: Instant::now(),
            };
            w.ss.sets[i].session = Some(session);
            w.ss.sessions_created += 1;
            session_json(w, i, r.base, true)
        }
        (&Method::PATCH, [sid]) | (&Method::DELETE, [sid]) => {
            let open = w.ss.sets[i].session.as_ref().is_some_and(|s| s.id == *sid);
            if !open {
                return (
                    404,
                    error("TaskAgentSessionExpiredException", "no such session"),
                );
            }
            if *r.method == Method::DELETE {
                w.ss.sets[i].session = None;
                return (204, Value::Null);
            }
            session_json(w, i, r.base, true)
        }
        _ => (405, msg("method not allowed")),
    }
}

/// A session's answer; a new queue token when `renew`.
fn session_json(w: &mut World, i: usize, base: &str, renew: bool) -> (u16, Value) {
    let ttl = w.ss.queue_ttl;
    let set_id = w.ss.sets[i].id;
    let stats = statistics(w, set_id);
    let set = set_json(w, &w.ss.sets[i], base);
    let Some(s) = w.ss.sets[i].session.as_mut() else {
        return (
            404,
            error("TaskAgentSessionExpiredException", "no such session"),
        );
    };
    if renew {
        s.token = format!("QT{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        s.token_exp = now() + ttl;
        s.last_poll = Instant::now();
    }
    (
        200,
        json!({
            "sessionId": s.id,
            "ownerName": s.owner,
            "runnerScaleSet": set,
            "messageQueueUrl": format!("{base}/_services/broker/{set_id}/messages?sessionId={}", s.id),
            "messageQueueAccessToken": s.token,
            "statistics": stats,
        }),
    )
}

/// The session of scale set `set` if `token` is its queue token: Err with the answer else.
fn queue_session(w: &mut World, set: u64, r: &Req) -> Result<usize, (u16, Value)> {
    let token = r.auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    let sid = r.query.get("sessionId").cloned().unwrap_or_default();
    let Some(i) = w.ss.sets.iter().position(|s| s.id == set) else {
        return Err((
            404,
            error("RunnerScaleSetNotFoundException", "no such scale set"),
        ));
    };
    let Some(s) = &w.ss.sets[i].session else {
        return Err((
            404,
            error("TaskAgentSessionExpiredException", "the session is gone"),
        ));
    };
    if s.id != sid {
        return Err((
            404,
            error("TaskAgentSessionExpiredException", "the session is gone"),
        ));
    }
    if s.token != token || s.token_exp <= now() {
        return Err((401, msg("the message queue token is not valid")));
    }
    Ok(i)
}

fn queue_route(w: &mut World, r: &Req, seg: &[&str]) -> (u16, Value) {
    match (r.method, seg) {
        (&Method::DELETE, [set, "messages", id]) => {
            let set = set.parse::<u64>().unwrap_or(0);
            let i = match queue_session(w, set, r) {
                Ok(i) => i,
                Err(a) => return a,
            };
            let id = id.parse::<u64>().unwrap_or(0);
            w.ss.sets[i].queue.retain(|m| m.0 != id);
            (204, Value::Null)
        }
        _ => (404, error("NotFoundException", "no such route")),
    }
}

/// One look at the queue for a poll: the answer when there is one (a message, or an error),
/// `None` when empty.
pub(super) fn poll_once(w: &mut World, r: &Req) -> Option<(u16, Value)> {
    let seg: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let ["_services", "broker", set, "messages"] = seg.as_slice() else {
        return Some((404, error("NotFoundException", "no such route")));
    };
    let set = set.parse::<u64>().unwrap_or(0);
    let i = match queue_session(w, set, r) {
        Ok(i) => i,
        Err(a) => return Some(a),
    };
    let last = r
        .query
        .get("lastMessageId")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let s = &mut w.ss.sets[i];
    if let Some(x) = s.session.as_mut() {
        x.last_poll = Instant::now();
    }
    if r.capacity.is_some() {
        s.capacity = r.capacity;
    }
    let (id, body, stats) = s.queue.iter().find(|m| m.0 > last)?.clone();
    if !w.ss.delivered.insert(id) {
        w.ss.redelivered += 1;
    }
    Some((
        200,
        json!({
            "messageId": id,
            "messageType": "RunnerScaleSetJobMessages",
            "body": body,
            "statistics": stats,
        }),
    ))
}

fn acquire(w: &mut World, r: &Req, set: &str, token: &str) -> (u16, Value) {
    let set = set.parse::<u64>().unwrap_or(0);
    let ok =
        w.ss.sets
            .iter()
            .find(|s| s.id == set)
            .and_then(|s| s.session.as_ref())
            .is_some_and(|s| s.token == token && s.token_exp > now());
    if !ok {
        return (401, msg("the message queue token is not valid"));
    }
    let Some(ids) = r.input.as_array() else {
        return (
            400,
            error(
                "ArgumentException",
                "a JSON array of request ids is expected",
            ),
        );
    };
    let ids: Vec<u64> = ids.iter().filter_map(|v| v.as_u64()).collect();
    let base = r.base.to_string();
    let mut got = Vec::new();
    let jobs: Vec<(u64, SsJob)> = w.ss.jobs.iter().map(|(k, v)| (*k, v.clone())).collect();
    for (job, j) in jobs {
        if j.set != set || !ids.contains(&j.request) {
            continue;
        }
        got.push(j.request);
        if j.phase == Phase::Offered {
            if let Some(x) = w.ss.jobs.get_mut(&job) {
                x.phase = Phase::Assigned;
                x.since = Instant::now();
            }
            let mut j = j.clone();
            j.phase = Phase::Assigned;
            let m = job_message(w, "JobAssigned", job, &j, &base);
            push(w, set, m);
        }
    }
    flush(w);
    (200, json!({ "count": got.len(), "value": got }))
}
