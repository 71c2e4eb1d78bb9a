//! `runnerctl doctor`: what can fail at run time although the configuration validates, one line
//! per check, the exit status by the worst.

use std::time::Duration;

use serde::Serialize;

use super::{output, runtime, Context};
use crate::cli::args::OutputFormat;
use crate::error::{Error, Result};

/// How a check came out, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but an operator should know (no persistence, a clock far off Redis's).
    Warn,
    /// Not checked, because what it needs failed first.
    Skip,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Skip => "skip",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check {
        check: name.into(),
        status,
        detail: detail.into(),
    }
}

/// Every call of a check has this long: a dependency that hangs is a failure, not a hang.
const TIMEOUT: Duration = Duration::from_secs(10);

async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "{what} did not answer within {}s",
            TIMEOUT.as_secs()
        )),
    }
}

/// Redis: reachable, its persistence, and how far this host's clock is from Redis's (ages and
/// due times are Redis's clock; a host far off still works, but its logs will mislead).
async fn redis_checks(config: &crate::config::Config, out: &mut Vec<Check>) -> bool {
    let conn = match within("Redis", crate::wiring::connect(config)).await {
        Ok(c) => c,
        Err(e) => {
            out.push(check("redis", Status::Fail, e));
            // Every check has its row: the clock is compared with Redis's, which did not answer.
            out.push(check(
                "clock",
                Status::Skip,
                "not compared: Redis is unreachable".to_string(),
            ));
            return false;
        }
    };
    let mut c = conn.clone();
    let info: std::result::Result<String, String> = within(
        "Redis",
        redis::cmd("INFO").arg("persistence").query_async(&mut c),
    )
    .await;
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().to_string())
    };
    let mut c = conn.clone();
    let save: Option<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut c)
        .await
        .ok();
    match info {
        Err(e) => out.push(check("redis", Status::Fail, e)),
        Ok(text) => {
            let aof = field(&text, "aof_enabled").as_deref() == Some("1");
            let rdb = save
                .as_ref()
                .and_then(|v| v.get(1))
                .map(|s| !s.trim().is_empty());
            let (status, detail) = match (aof, rdb) {
                (true, _) => (Status::Ok, "reachable; append-only file on".to_string()),
                (false, Some(true)) => (
                    Status::Warn,
                    "reachable; snapshots only (no append-only file): a crash loses the writes since the last snapshot".into(),
                ),
                (false, Some(false)) => (
                    Status::Warn,
                    "reachable; no persistence (neither AOF nor snapshots): a restart loses every record and queued task".into(),
                ),
                (false, None) => (
                    Status::Ok,
                    "reachable; persistence unknown (CONFIG is not allowed here), no append-only file reported".into(),
                ),
            };
            out.push(check("redis", status, detail));
        }
    }
    let store = crate::wiring::store(config, conn);
    warm_checks(config, &store, out).await;
    breaker_checks(config, &store, out).await;
    let Ok(ms) = store.now_ms().await else {
        out.push(check(
            "clock",
            Status::Skip,
            "not compared: Redis did not tell its time".to_string(),
        ));
        return true;
    };
    let here = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let skew = (here - ms as i64).abs() / 1000;
    out.push(if skew > 30 {
        check(
            "clock",
            Status::Warn,
            format!("this host's clock is {skew}s off Redis's (runnerctl uses Redis's; logs here will disagree)"),
        )
    } else {
        check("clock", Status::Ok, format!("within {skew}s of Redis's"))
    });
    true
}

/// Each backend of a group with several (`backends:`): its breaker. Open or half-open is a
/// warning (creates go to the next backend meanwhile); broken, a failure until the
/// configuration is fixed.
async fn breaker_checks(
    config: &crate::config::Config,
    store: &crate::store::RedisStore,
    out: &mut Vec<Check>,
) {
    use crate::manager::breaker;
    use crate::records::RunnerStore;
    for g in config.runner_groups.iter().filter(|g| g.backends.len() > 1) {
        for (i, c) in g.backends.iter().enumerate() {
            let name = format!("backend {} of {} ({} in order)", c.name, g.name, i + 1);
            let kept = match within("Redis", store.breaker(&breaker::key(&g.name, &c.name))).await {
                Ok(k) => k,
                Err(e) => {
                    out.push(check(name, Status::Fail, e));
                    continue;
                }
            };
            let b = breaker::read(kept.as_deref());
            let label = breaker::label(
                &b,
                crate::model::unix_now(),
                &breaker::fingerprint(config, c),
            );
            let why = breaker::why(&b).unwrap_or_default();
            let (status, detail) = match label {
                "closed" => (
                    Status::Ok,
                    "breaker closed: runners are made on it".to_string(),
                ),
                "broken" => (
                    Status::Fail,
                    format!("breaker open until the configuration changes: {why}"),
                ),
                other => (
                    Status::Warn,
                    format!("breaker {other}: creates go to the next backend meanwhile ({why})"),
                ),
            };
            out.push(check(name, status, detail));
        }
    }
}

/// Each warm pool: its target now (and the schedule entry that sets it) against what Redis
/// records of it.
async fn warm_checks(
    config: &crate::config::Config,
    store: &crate::store::RedisStore,
    out: &mut Vec<Check>,
) {
    use crate::model::{Pool, RunnerStatus};
    for g in &config.runner_groups {
        let Some(pool) = &g.warm_pool else { continue };
        let name = format!("warm pool {}", g.name);
        let now = store
            .now()
            .await
            .unwrap_or_else(|_| crate::model::unix_now());
        let target = pool.target(now);
        let records = match within("Redis", store.runners_of_group(&g.name)).await {
            Ok(r) => r,
            Err(e) => {
                out.push(check(name, Status::Fail, e));
                continue;
            }
        };
        let count = |p: Pool, s: RunnerStatus| {
            records
                .iter()
                .filter(|r| r.pool == Some(p) && r.status == s)
                .count() as u32
        };
        let (hot, stopped) = (
            count(Pool::Hot, RunnerStatus::Warm),
            count(Pool::Stopped, RunnerStatus::Warm),
        );
        let warming =
            count(Pool::Hot, RunnerStatus::Warming) + count(Pool::Stopped, RunnerStatus::Warming);
        let detail = format!(
            "target {}; ready {hot} hot, {stopped} stopped; {warming} being made",
            super::groups_cmd::warm_cell(&target)
        );
        let full = hot >= target.hot && stopped >= target.stopped;
        out.push(check(
            name,
            if full { Status::Ok } else { Status::Warn },
            if full {
                detail
            } else {
                format!("{detail} (health passes fill it)")
            },
        ));
    }
}

/// The forge: credentials that list each group's runners (what the worker needs), and the
/// runner groups that must exist there.
async fn forge_checks(config: &crate::config::Config, out: &mut Vec<Check>) {
    let forge = match crate::wiring::forge(config) {
        Ok(f) => f,
        Err(e) => {
            out.push(check("forge", Status::Fail, e.to_string()));
            return;
        }
    };
    let mut scopes_seen = Vec::new();
    for g in &config.runner_groups {
        let scope = crate::manager::Manager::scope(g);
        let key = format!("{scope:?}");
        if scopes_seen.contains(&key) {
            continue;
        }
        scopes_seen.push(key);
        let what = format!("forge runners ({})", scope_label(g));
        match within("the forge", forge.list_runners(&scope)).await {
            Ok(list) => out.push(check(
                what,
                Status::Ok,
                format!("the credentials list its runners ({} now)", list.len()),
            )),
            Err(e) => out.push(check(what, Status::Fail, e)),
        }
    }
    app_checks(config, out).await;
    budget_checks(&*forge, out).await;
    webhook_checks(config, &*forge, out).await;
    scale_set_checks(config, out).await;
    floor_checks(config, out);
    let Some(capable) = forge.groups() else {
        return;
    };
    let mut orgs: Vec<&str> = config
        .runner_groups
        .iter()
        .filter(|g| g.repository.is_none() && !g.organization.is_empty())
        .map(|g| g.organization.as_str())
        .collect();
    orgs.sort();
    orgs.dedup();
    for org in orgs {
        let groups = within("the forge", capable.list_runner_groups(org)).await;
        for g in config
            .runner_groups
            .iter()
            .filter(|g| g.repository.is_none() && g.organization == org)
        {
            let what = format!("runner group {}", g.name);
            out.push(match &groups {
                Err(e) => check(what, Status::Fail, e.clone()),
                Ok(list) => match list.iter().find(|x| x.name == g.name) {
                    Some(x) => check(what, Status::Ok, format!("exists on {org} (id {})", x.id)),
                    None => check(
                        what,
                        Status::Fail,
                        format!("missing on {org}: jobs would wait; run `runnerctl groups sync`"),
                    ),
                },
            });
        }
    }
}

/// With `github.apps`: each App lists the runners of each scope it serves (every scope, or
/// those of the groups that pin it), so that a wrong key or an installation gone is named.
async fn app_checks(config: &crate::config::Config, out: &mut Vec<Check>) {
    if config.forge != crate::config::ForgeKind::Github || config.github.apps.is_empty() {
        return;
    }
    let gh = match crate::wiring::github(config) {
        Ok(g) => g,
        Err(e) => return out.push(check("github apps", Status::Fail, e.to_string())),
    };
    let mut seen = Vec::new();
    for g in &config.runner_groups {
        let scope = crate::manager::Manager::scope(g);
        if seen.contains(&scope.path()) {
            continue;
        }
        seen.push(scope.path());
        let probed = within("the forge", async {
            Ok::<_, String>(gh.probe_apps(&scope).await)
        })
        .await;
        let probes = match probed {
            Ok(p) => p,
            Err(e) => {
                let what = format!("github apps ({})", scope_label(g));
                out.push(check(what, Status::Fail, e));
                continue;
            }
        };
        for (app, r) in probes {
            let pinned_elsewhere = config
                .runner_groups
                .iter()
                .filter(|x| crate::manager::Manager::scope(x).path() == scope.path())
                .all(|x| x.github_app.as_deref().is_some_and(|p| p != app));
            if pinned_elsewhere {
                continue;
            }
            let what = format!("github app {app} ({})", scope_label(g));
            out.push(match r {
                Ok(()) => check(what, Status::Ok, "GitHub accepts it here"),
                Err(e) => check(
                    what,
                    Status::Fail,
                    format!("{e}; the other Apps keep serving"),
                ),
            });
        }
    }
}

/// The shared API budget of each credential: paused classes, requests in flight, the hourly
/// budget left.
async fn budget_checks(forge: &dyn crate::forge::Forge, out: &mut Vec<Check>) {
    for m in forge.meters() {
        let what = format!("api budget ({})", m.credential);
        let Some(status) = m.status().await else {
            out.push(check(
                what,
                Status::Skip,
                "off (`budget.enabled: false`): calls react to limits only",
            ));
            continue;
        };
        out.push(match status {
            Err(e) => check(
                what,
                Status::Warn,
                format!("cannot be read: {e}; calls go without it"),
            ),
            Ok(s) => {
                let primary = match s.primary {
                    Some((limit, left)) => format!("{left} of {limit} requests left this hour"),
                    None => "no hourly figure yet".into(),
                };
                let head = format!("{primary}; {} in flight", s.in_flight);
                if s.pauses.is_empty() {
                    check(what, Status::Ok, head)
                } else {
                    let p: Vec<String> = s
                        .pauses
                        .iter()
                        .map(|(class, left)| format!("{class} for {}s", left.as_secs().max(1)))
                        .collect();
                    check(
                        what,
                        Status::Warn,
                        format!(
                            "{head}; paused after a limit GitHub answered: {}",
                            p.join(", ")
                        ),
                    )
                }
            }
        });
    }
}

/// How many recent deliveries of a webhook the doctor looks at.
const DELIVERIES: u32 = 20;

/// The webhooks of each group's scope: one that sends `workflow_job` events, and how its recent
/// deliveries fared (GitHub records the receiver's status of each).
/// Each group's runner version against GitHub's minimum (`github.min_runner_version`): below
/// it in effect, a failure; below it within 14 days, a warning; undeclared, a warning.
fn floor_checks(config: &crate::config::Config, out: &mut Vec<Check>) {
    use crate::config::floor::{standing, Standing};
    let Some(floor) = &config.github.min_runner_version else {
        return;
    };
    for g in &config.runner_groups {
        let name = format!("runner version {}", g.name);
        let Some(v) = &g.runner_version else {
            out.push(check(
                name,
                Status::Warn,
                format!(
                    "not declared (`runner_version`): cannot be compared with GitHub's minimum {}",
                    floor.version
                ),
            ));
            continue;
        };
        let (status, detail) = match standing(v, floor, crate::model::unix_now()) {
            Some(Standing::Fine) | None => (Status::Ok, format!("{v}, at or above GitHub's minimum {}", floor.version)),
            Some(Standing::Soon { days }) if days <= 14 => (Status::Warn, format!("{v} is below GitHub's minimum {} from {} ({days} days): update the image", floor.version, floor.from)),
            Some(Standing::Soon { days }) => (Status::Ok, format!("{v} is below GitHub's minimum {} from {} ({days} days)", floor.version, floor.from)),
            Some(Standing::Refused) => (Status::Fail, format!("{v} is below GitHub's minimum {} (since {}): GitHub registers none of its runners", floor.version, floor.from)),
        };
        out.push(check(name, status, detail));
    }
}

/// Each scale set (`mode: scale_set`): it exists on GitHub, a worker holds its session, and
/// how long ago its last message was handled.
async fn scale_set_checks(config: &crate::config::Config, out: &mut Vec<Check>) {
    let routes = match crate::wiring::scale_set_routes(config) {
        Ok(r) => r,
        Err(e) => {
            out.push(check("scale sets", Status::Fail, e.to_string()));
            return;
        }
    };
    if routes.is_empty() {
        return;
    }
    let store = match within("Redis", crate::wiring::connect(config)).await {
        Ok(conn) => Some(crate::wiring::store(config, conn)),
        Err(_) => None,
    };
    for r in routes {
        let name = format!("scale set {}", r.spec.name);
        let found = within(
            "GitHub's Actions service",
            r.service.find_scale_set(&r.spec.name, &r.spec.runner_group),
        )
        .await;
        let set = match found {
            Ok(Some(s)) => s,
            Ok(None) => {
                out.push(check(name, Status::Fail, format!("missing in runner group `{}`: start a worker or run `runnerctl groups sync`", r.spec.runner_group)));
                continue;
            }
            Err(e) => {
                out.push(check(name, Status::Fail, e));
                continue;
            }
        };
        let stats = set.statistics.unwrap_or_default();
        let mut detail = format!(
            "exists (id {}, runner group `{}`); GitHub: {} assigned, {} running, {} runners",
            set.id,
            set.runner_group_name,
            stats.total_assigned_jobs,
            stats.total_running_jobs,
            stats.total_registered_runners
        );
        let state = match &store {
            Some(st) => within("Redis", st.scale_set_state(&r.spec.name)).await.ok(),
            None => None,
        };
        let status = match state {
            None => {
                detail.push_str("; its session is unknown (Redis did not answer)");
                Status::Warn
            }
            Some(st) => {
                let age = match st.last_message_at {
                    Some(at) => format!(
                        "last message {}s ago",
                        crate::model::unix_now().saturating_sub(at)
                    ),
                    None => "no message handled yet".into(),
                };
                match st.holder {
                    Some(h) => {
                        detail.push_str(&format!(
                            "; session held by worker {h} (fence {}); {age}",
                            st.fence
                        ));
                        Status::Ok
                    }
                    None => {
                        detail.push_str(&format!(
                            "; no worker holds its session (is a worker running?); {age}"
                        ));
                        Status::Warn
                    }
                }
            }
        };
        out.push(check(name, status, detail));
    }
}

async fn webhook_checks(
    config: &crate::config::Config,
    forge: &dyn crate::forge::Forge,
    out: &mut Vec<Check>,
) {
    let Some(hooks) = forge.webhook_api() else {
        return;
    };
    let mut seen = Vec::new();
    // A scale set's jobs come from its message queue: no webhook needed.
    for g in config.runner_groups.iter().filter(|g| !g.scale_set_mode()) {
        let scope = crate::manager::Manager::scope(g);
        let key = scope.path();
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        out.push(webhook_check(hooks, &scope, &scope_label(g)).await);
    }
}

async fn webhook_check(
    hooks: &dyn crate::forge::Webhooks,
    scope: &crate::forge::Scope,
    label: &str,
) -> Check {
    use crate::forge::ForgeError;
    let what = format!("webhook ({label})");
    let listed = match tokio::time::timeout(TIMEOUT, hooks.hooks(scope)).await {
        Err(_) => {
            return check(
                what,
                Status::Fail,
                format!("the forge did not answer within {}s", TIMEOUT.as_secs()),
            )
        }
        Ok(Err(ForgeError::NotFound(_) | ForgeError::Unauthorized(_))) => {
            return check(what, Status::Skip, format!("the credentials may not read {label}'s webhooks (a token needs admin:org_hook or admin:repo_hook read, an App \"Webhooks: read\"); a GitHub App's own webhook is on its settings page"));
        }
        Ok(Err(e)) => return check(what, Status::Fail, e.to_string()),
        Ok(Ok(list)) => list,
    };
    let Some(hook) = listed.iter().find(|h| h.active && h.sends_jobs()) else {
        return check(
            what,
            Status::Warn,
            format!("no active webhook of {label} sends workflow_job events ({} other{}): jobs wait for a health check to find them, unless a GitHub App or another scope's webhook sends them", listed.len(), if listed.len() == 1 { "" } else { "s" }),
        );
    };
    let url = hook.url.clone().unwrap_or_else(|| "?".into());
    let recent =
        tokio::time::timeout(TIMEOUT, hooks.hook_deliveries(scope, hook.id, DELIVERIES)).await;
    match recent {
        Ok(Ok(list)) if list.is_empty() => check(
            what,
            Status::Ok,
            format!(
                "hook {} sends workflow_job to {url}; no deliveries yet",
                hook.id
            ),
        ),
        Ok(Ok(list)) => {
            let failed: Vec<_> = list.iter().filter(|d| !d.ok()).collect();
            let last = &list[0];
            if failed.is_empty() {
                check(what, Status::Ok, format!("hook {} sends workflow_job to {url}; the last {} deliveries were answered 2xx (latest {})", hook.id, list.len(), last.delivered_at))
            } else {
                let status = |code: u16| {
                    if code == 0 {
                        "no answer".to_string()
                    } else {
                        format!("HTTP {code}")
                    }
                };
                check(what, Status::Warn, format!("hook {} sends workflow_job to {url}; {} of the last {} deliveries failed (latest failure {} at {}; latest delivery {} at {})", hook.id, failed.len(), list.len(), status(failed[0].status_code), failed[0].delivered_at, status(last.status_code), last.delivered_at))
            }
        }
        Ok(Err(e)) => check(
            what,
            Status::Ok,
            format!(
                "hook {} sends workflow_job to {url}; its deliveries cannot be read: {e}",
                hook.id
            ),
        ),
        Err(_) => check(
            what,
            Status::Ok,
            format!(
                "hook {} sends workflow_job to {url}; its deliveries did not come within {}s",
                hook.id,
                TIMEOUT.as_secs()
            ),
        ),
    }
}

/// Each backend a group uses: built with its credentials and listing its instances.
/// The scope a group's runners register in: `org`, or `org/repo` for a repository's group.
fn scope_label(g: &crate::config::RunnerGroup) -> String {
    match &g.repository {
        Some(repo) => format!("{}/{repo}", g.owner_label()),
        None => g.owner_label().to_string(),
    }
}

async fn backend_checks(config: &crate::config::Config, out: &mut Vec<Check>) {
    let redis_up = out
        .iter()
        .any(|c| c.check == "redis" && matches!(c.status, Status::Ok | Status::Warn));
    for (name, built) in crate::wiring::probe_backends(config).await {
        let what = format!("backend {name}");
        let b = match built {
            Ok(b) => b,
            Err(e) => {
                out.push(check(what, Status::Fail, e.to_string()));
                continue;
            }
        };
        if b.kind().name() == "fake" && !redis_up {
            // Its instances live in Redis: without Redis it would count none.
            out.push(check(
                what,
                Status::Skip,
                "the fake backend keeps its instances in Redis, which could not be read",
            ));
            continue;
        }
        match within("the backend", b.list()).await {
            Ok(list) => out.push(check(
                what,
                Status::Ok,
                format!(
                    "{} reachable; {} instance{} of ours",
                    b.kind().name(),
                    list.len(),
                    if list.len() == 1 { "" } else { "s" }
                ),
            )),
            Err(e) => out.push(check(what, Status::Fail, e)),
        }
    }
}

/// Runs every check and prints the report; the exit status is the worst check's.
pub fn doctor(cx: &Context) -> Result<()> {
    let mut out = Vec::new();
    let loaded = match crate::wiring::load_file(&cx.config_path) {
        Ok(l) => l,
        Err(e) => {
            out.push(check("config", Status::Fail, e.to_string()));
            print(cx, &out)?;
            return Err(Error::Config(e));
        }
    };
    let config = loaded.config;
    out.push(if loaded.warnings.is_empty() {
        check(
            "config",
            Status::Ok,
            format!("{} is valid", cx.config_path.display()),
        )
    } else {
        let path = cx.config_path.display().to_string();
        let all: Vec<String> = loaded.warnings.iter().map(|w| w.render(&path)).collect();
        check("config", Status::Warn, all.join("; "))
    });
    let problems = crate::wiring::preflight(&config);
    if problems.is_empty() {
        out.push(check("secrets", Status::Ok, "every secret resolves"));
    }
    for p in &problems {
        out.push(check(
            format!("secret {}", p.path),
            Status::Fail,
            p.message.clone(),
        ));
    }
    let rt = runtime()?;
    rt.block_on(async {
        if problems.iter().any(|p| p.path.starts_with("redis.")) {
            out.push(check(
                "redis",
                Status::Skip,
                "its URL or password does not resolve",
            ));
        } else {
            redis_checks(&config, &mut out).await;
        }
        if problems
            .iter()
            .any(|p| p.path.starts_with("github.") || p.path.starts_with("gitea."))
        {
            out.push(check(
                "forge",
                Status::Skip,
                "its credentials do not resolve",
            ));
        } else {
            // doctor's calls wait behind the jobs' like a health pass's.
            crate::budget::with_priority(
                crate::budget::Priority::Health,
                forge_checks(&config, &mut out),
            )
            .await;
        }
        backend_checks(&config, &mut out).await;
    });
    print(cx, &out)?;
    let failed: Vec<&str> = out
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.check.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Problem(format!("failed: {}", failed.join(", "))))
    }
}

fn print(cx: &Context, checks: &[Check]) -> Result<()> {
    match cx.output {
        OutputFormat::Json => output::json(checks),
        OutputFormat::Table | OutputFormat::Name => output::table(
            &["check", "status", "detail"],
            checks
                .iter()
                .map(|c| vec![c.check.clone(), c.status.as_str().into(), c.detail.clone()])
                .collect(),
        ),
    }
}
