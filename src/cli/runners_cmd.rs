//! `runnerctl runners list|create|delete` and `runnerctl healthcheck`.

use super::args::DeleteArgs;
use super::output::{self, progress, OutputFormat};
use super::{runtime, Context};
use crate::config::{Config, RunnerGroup};
use crate::error::{Error, Result};
use crate::manager::{Created, Failure, HealthResult, HealthRow, Manager, Removed};
use crate::model::{unix_now, RunnerStatus};
use crate::wiring;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

fn group<'a>(config: &'a Config, name: &str) -> Result<&'a RunnerGroup> {
    config
        .group(name)
        .ok_or_else(|| Error::Usage(format!("no runner group `{name}` in the configuration")))
}

#[derive(Serialize)]
struct RunnerRow {
    name: String,
    group: String,
    status: RunnerStatus,
    instance: Option<String>,
    github_status: Option<String>,
    busy: Option<bool>,
    /// The job it runs now, or ran last.
    job: Option<u64>,
    /// The queued job it was made for (GitHub may have given it another one).
    made_for_job: Option<u64>,
    /// When its record was made (RFC 3339, UTC), and how long ago.
    created_at: String,
    age_secs: u64,
    /// The views that could not be read (`github`): their fields are `null`, not "not there".
    unread: Vec<&'static str>,
}

pub fn list(cx: &Context, only_group: Option<&str>, status: Option<RunnerStatus>) -> Result<()> {
    let config = Arc::new(cx.load()?.config);
    if let Some(g) = only_group {
        group(&config, g)?;
    }
    let rt = runtime()?;
    let (rows, unread) = rt.block_on(async {
        let m = wiring::manager(config.clone()).await?;
        let mut records = match only_group {
            Some(g) => m.store.runners_of_group(g).await?,
            None => m.store.all_runners().await?,
        };
        records.retain(|r| status.is_none_or(|s| r.status == s));
        // One listing per scope (100 runners a call), never one call per runner. A scope the
        // forge does not answer for is marked, its runners shown from their records.
        let mut scopes: HashMap<String, Option<Vec<crate::forge::ForgeRunner>>> = HashMap::new();
        let mut unread = None;
        for g in config.runner_groups.iter() {
            let scope = Manager::scope(g);
            let key = scope.path();
            if scopes.contains_key(&key) || !records.iter().any(|r| r.group == g.name) {
                continue;
            }
            let listed = match m.forge.list_runners(&scope).await {
                Ok(l) => Some(l),
                Err(e) => {
                    unread.get_or_insert(e);
                    None
                }
            };
            scopes.insert(key, listed);
        }
        let now = m.store.now().await?;
        let rows = records
            .into_iter()
            .map(|r| {
                let listing = config
                    .group(&r.group)
                    .and_then(|g| scopes.get(&Manager::scope(g).path()));
                let gh = listing
                    .and_then(|l| l.as_ref())
                    .and_then(|l| l.iter().find(|f| f.name == r.name));
                RunnerRow {
                    unread: match listing {
                        Some(None) => vec!["github"],
                        _ => Vec::new(),
                    },
                    github_status: gh.map(|f| f.state.as_str().to_string()),
                    busy: gh.map(|f| f.busy),
                    created_at: crate::model::rfc3339(r.created_at),
                    age_secs: now.saturating_sub(r.created_at),
                    name: r.name,
                    group: r.group,
                    status: r.status,
                    instance: r.instance_id,
                    job: r.job_id,
                    made_for_job: r.created_for_job,
                }
            })
            .collect::<Vec<_>>();
        Ok::<_, Error>((rows, unread))
    })?;
    print_list(cx, &rows)?;
    match unread {
        // What is known was printed; the exit code says what could not be read.
        Some(e) => Err(Error::Several {
            all: vec![format!(
                "the forge's view could not be read (GITHUB and BUSY unknown): {e}"
            )],
            first: Box::new(Error::Forge(e)),
        }),
        None => Ok(()),
    }
}

fn print_list(cx: &Context, rows: &[RunnerRow]) -> Result<()> {
    match cx.output {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Table | OutputFormat::Name => output::table(
            &[
                "name", "group", "status", "instance", "github", "busy", "made for", "job", "age",
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.group.clone(),
                        r.status.to_string(),
                        r.instance.clone().unwrap_or_else(|| "-".into()),
                        match (&r.github_status, r.unread.is_empty()) {
                            (_, false) => "unknown".into(),
                            (Some(s), true) => s.clone(),
                            (None, true) => "-".into(),
                        },
                        match (r.busy, r.unread.is_empty()) {
                            (_, false) => "?".into(),
                            (Some(b), true) => if b { "yes" } else { "no" }.to_string(),
                            (None, true) => "-".into(),
                        },
                        r.made_for_job
                            .map(|j| j.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.job.map(|j| j.to_string()).unwrap_or_else(|| "-".into()),
                        age(r.age_secs),
                    ]
                })
                .collect(),
        ),
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

pub fn create(
    cx: &Context,
    group_name: &str,
    count: u32,
    parallel: u32,
    dry_run: bool,
) -> Result<()> {
    let config = Arc::new(cx.load()?.config);
    let g = group(&config, group_name)?.clone();
    let rt = runtime()?;
    if dry_run {
        let held = rt.block_on(async {
            let conn = wiring::connect(&config).await?;
            Ok::<_, Error>(wiring::store(&config, conn).held(&g.name).await?)
        })?;
        let would = count.min(g.max_runners.saturating_sub(held));
        return match cx.output {
            OutputFormat::Json => output::json(&serde_json::json!({
                "group": g.name, "requested": count, "held": held,
                "max_runners": g.max_runners, "would_create": would, "dry_run": true,
            })),
            OutputFormat::Table | OutputFormat::Name => output::print(&format!(
                "dry run: would create {would} of {count} runner(s) in group `{}` ({held} of max_runners {} held now); nothing was created\n",
                g.name, g.max_runners
            )),
        };
    }
    let started = std::time::Instant::now();
    let (made, full, failed) = rt.block_on(async {
        let m = Arc::new(wiring::manager(config.clone()).await?);
        create_many(cx, &m, &g, count, parallel).await
    })?;
    if cx.output == OutputFormat::Json {
        output::json(&serde_json::json!({
            "created": made, "full": full.is_some(),
            "errors": failed.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }))?;
    } else if count > 1 {
        tracing::info!(
            created = made.len(),
            requested = count,
            elapsed = %format!("{:.1}s", started.elapsed().as_secs_f64()),
            "runners created"
        );
    }
    if let Some(held) = full {
        return Err(Error::Problem(format!(
            "group `{group_name}` is at max_runners ({held} of {}): created {} of {count}",
            g.max_runners,
            made.len()
        )));
    }
    // The first failure decides the exit code (GitHub refusing the credentials is a usage
    // error, GitHub unreachable is 3); the message lists them all.
    if let Some(first) = failed.first() {
        let code_of = Error::from(first.clone());
        return Err(match failed.len() {
            1 => code_of,
            _ => Error::Several {
                first: Box::new(code_of),
                all: failed.iter().map(|e| e.to_string()).collect(),
            },
        });
    }
    Ok(())
}

/// What `runners create` came to: the names made, the slots held when the group was full,
/// the failures.
type Creation = (Vec<String>, Option<u32>, Vec<Failure>);

/// Creates `count` runners, `parallel` at a time: each runner's state shows as it goes (on a
/// terminal), each result line prints when it is known, and the first `max_runners` refusal
/// stops new creations (those under way finish).
async fn create_many(
    cx: &Context,
    m: &Arc<Manager>,
    g: &RunnerGroup,
    count: u32,
    parallel: u32,
) -> Result<Creation> {
    let board = Board::new(cx.output, count);
    let (mut made, mut full, mut failed) = (Vec::new(), None, Vec::<Failure>::new());
    let mut running = tokio::task::JoinSet::new();
    let mut launched = 0;
    loop {
        while full.is_none() && launched < count && running.len() < parallel as usize {
            launched += 1;
            let seed = format!("cli:{}:{:016x}", unix_now(), fastrand::u64(..));
            let name = m.runner_name(g, &seed);
            let line = board.start(&name);
            let (m, g) = (m.clone(), g.clone());
            running.spawn(async move {
                let begun = std::time::Instant::now();
                let made = {
                    let create = m.create_runner(&g, &seed, None);
                    tokio::pin!(create);
                    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
                    loop {
                        tokio::select! {
                            r = &mut create => break r,
                            // Its state is read only for a spinner someone sees.
                            _ = tick.tick(), if !line.is_hidden() => {
                                if let Ok(Some(r)) = m.store.get(&name).await {
                                    line.set_message(format!("{name}: {}", r.status));
                                }
                            }
                        }
                    }
                };
                if made.is_err() {
                    // No task will come back to finish it: give its slot back now.
                    if let Err(e) = m.abandon(&name).await {
                        tracing::warn!(runner = %name, error = %e, "could not release the slot");
                    }
                }
                (name, line, made, begun.elapsed())
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (name, line, made_now, took) =
            joined.map_err(|e| Error::Problem(format!("a creation stopped: {e}")))?;
        line.finish_and_clear();
        match made_now {
            Ok(Created::New(n)) | Ok(Created::Exists(n)) => {
                board.done(&format!("created {n} in {:.1}s", took.as_secs_f64()), &n)?;
                made.push(n);
            }
            Ok(Created::Full { held }) => {
                full.get_or_insert(held);
            }
            Ok(Created::Covered) | Ok(Created::NotAdmitted(_)) => {}
            Err(e) => {
                tracing::warn!(runner = %name, error = %e, "runner not created");
                failed.push(e);
            }
        }
    }
    Ok((made, full, failed))
}

/// The live view of `runners create`: one spinner per runner being made, on a terminal; the
/// result lines on stdout as they come (names alone with `-o name`, nothing with JSON).
struct Board {
    output: OutputFormat,
    bars: Option<indicatif::MultiProgress>,
}

impl Board {
    fn new(output: OutputFormat, count: u32) -> Board {
        let watched = progress(u64::from(count.max(2)), output);
        let bars = (!watched.is_hidden()).then(indicatif::MultiProgress::new);
        Board { output, bars }
    }

    fn start(&self, name: &str) -> indicatif::ProgressBar {
        let Some(bars) = &self.bars else {
            return indicatif::ProgressBar::hidden();
        };
        let line = bars.add(indicatif::ProgressBar::new_spinner());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            line.set_style(style);
        }
        line.set_message(format!("{name}: reserving"));
        line.enable_steady_tick(std::time::Duration::from_millis(120));
        line
    }

    /// Prints one result as it is known, above the spinners.
    fn done(&self, text: &str, name: &str) -> Result<()> {
        let line = match self.output {
            OutputFormat::Json => return Ok(()),
            OutputFormat::Name => format!("{name}\n"),
            OutputFormat::Table => format!("{text}\n"),
        };
        match &self.bars {
            Some(bars) => bars.suspend(|| output::print(&line)),
            None => output::print(&line),
        }
    }
}

pub fn delete(cx: &Context, args: &DeleteArgs) -> Result<()> {
    let config = Arc::new(cx.load()?.config);
    if let Some(g) = &args.group {
        group(&config, g)?;
    }
    let rt = runtime()?;
    let results = rt.block_on(async {
        let m = wiring::manager(config.clone()).await?;
        let names: Vec<String> = match (&args.group, args.all) {
            (Some(g), true) => m
                .store
                .runners_of_group(g)
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect(),
            _ => args.names.clone(),
        };
        if args.dry_run {
            return Ok::<_, Error>(Deletion::Planned(
                dry_run_rows(&m, &names, args.force).await?,
            ));
        }
        if args.all && !args.yes {
            confirm(names.len(), args.group.as_deref().unwrap_or_default())?;
        }
        let bar = progress(names.len() as u64, cx.output);
        let mut out = Vec::new();
        for n in names {
            let r = m.delete_runner(&n, args.force).await;
            out.push((n, r));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok::<_, Error>(Deletion::Done(out))
    })?;
    let results = match results {
        Deletion::Done(r) => r,
        Deletion::Planned(plan) => return print_rows(cx, &plan),
    };
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|(n, r)| {
            let (result, detail) = match r {
                Ok(Removed::Deleted) => ("deleted", None),
                Ok(Removed::Busy) => ("refused", Some("running a job (use --force)".to_string())),
                Ok(Removed::Missing) => ("missing", Some("no such runner".to_string())),
                Err(e) => ("failed", Some(e.to_string())),
            };
            serde_json::json!({ "name": n, "result": result, "detail": detail, "dry_run": false })
        })
        .collect();
    print_rows(cx, &rows)?;
    let bad = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(Removed::Deleted)))
        .count();
    if bad > 0 {
        let causes = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .map(|e| Error::from(e.clone()))
            .collect();
        return Err(Error::summing(
            format!(
                "{bad} runner{} not deleted",
                if bad == 1 { "" } else { "s" }
            ),
            causes,
        ));
    }
    Ok(())
}

pub fn healthcheck(cx: &Context, only_group: Option<&str>, dry_run: bool) -> Result<()> {
    let config = Arc::new(cx.load()?.config);
    if let Some(g) = only_group {
        group(&config, g)?;
    }
    let rt = runtime()?;
    let (done, broken, rate): (Vec<HealthRow>, Option<Failure>, _) = rt.block_on(async {
        let m = wiring::manager(config.clone()).await?;
        let mut all = Vec::new();
        let mut broken = None;
        for g in config
            .runner_groups
            .iter()
            .filter(|g| only_group.is_none_or(|o| o == g.name))
        {
            let pass = if dry_run {
                m.health_plan(g).await
            } else {
                m.health_check(g).await
            };
            match pass {
                Ok(d) => all.extend(d),
                Err(e) => {
                    // Nothing was attempted: the row says the pass did not run, and why.
                    all.push(HealthRow {
                        group: g.name.clone(),
                        action: crate::manager::plan::Action::Skip {
                            reason: "the pass could not run; nothing was done".into(),
                        },
                        result: HealthResult::Failed(e.to_string()),
                    });
                    broken.get_or_insert(e);
                }
            }
        }
        Ok::<_, Error>((all, broken, m.forge.rate_limit()))
    })?;
    match cx.output {
        OutputFormat::Json => output::json(&done)?,
        OutputFormat::Table | OutputFormat::Name => {
            if done.is_empty() {
                output::print("every group is healthy\n")?;
            } else if dry_run && done.iter().all(|d| d.result == HealthResult::Planned) {
                output::print("dry run: nothing was changed\n")?;
                output::table(
                    &["group", "action", "target", "reason"],
                    done.iter().map(|d| health_row(d)[..4].to_vec()).collect(),
                )?;
            } else {
                output::table(
                    &["group", "action", "target", "reason", "result"],
                    done.iter().map(health_row).collect(),
                )?;
            }
        }
    }
    if let (Some(r), OutputFormat::Table) = (rate, cx.output) {
        let resets = r.reset.saturating_sub(unix_now());
        output::print(&format!(
            "GitHub API: {} of {} requests left in this window, which resets in {}m\n",
            r.remaining,
            r.limit,
            resets / 60
        ))?;
        if r.remaining < r.limit / 10 {
            tracing::warn!(
                remaining = r.remaining,
                limit = r.limit,
                "GitHub rate limit nearly used up"
            );
        }
    }
    // A group whose check could not run says why, with its exit code (3: GitHub or Redis
    // unreachable); otherwise actions that failed are a problem found (1).
    if let Some(e) = broken {
        return Err(e.into());
    }
    let failed = done.iter().filter(|d| d.result.failed()).count();
    if failed > 0 {
        return Err(Error::Problem(format!(
            "the health check could not fix {failed} problem{}",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// A row of the health-check table: group, action, target, reason, result.
fn health_row(d: &HealthRow) -> Vec<String> {
    let v = serde_json::to_value(&d.action).unwrap_or_default();
    let target = v
        .get("name")
        .or_else(|| v.get("id"))
        .or_else(|| v.get("count"))
        .map(|x| x.to_string().trim_matches('"').to_string())
        .unwrap_or_default();
    vec![
        d.group.clone(),
        v["action"].as_str().unwrap_or_default().to_string(),
        target,
        v.get("reason")
            .and_then(|r| r.as_str())
            .or(v.get("status").and_then(|r| r.as_str()))
            .unwrap_or_default()
            .to_string(),
        d.result.to_string(),
    ]
}

/// What `runners delete` came to: each runner's result, or, in a dry run, the plan.
enum Deletion {
    Done(Vec<(String, Result<Removed, Failure>)>),
    Planned(Vec<serde_json::Value>),
}

/// Prints `{name, result, detail, dry_run}` rows as a table or JSON.
fn print_rows(cx: &Context, rows: &[serde_json::Value]) -> Result<()> {
    match cx.output {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Table | OutputFormat::Name => output::table(
            &["name", "result"],
            rows.iter()
                .map(|r| {
                    let result = match (
                        r["result"].as_str().unwrap_or_default(),
                        r["detail"].as_str(),
                    ) {
                        ("refused", Some(d)) => format!("refused: {d}"),
                        ("failed", Some(d)) => format!("failed: {d}"),
                        ("missing", _) => "no such runner".to_string(),
                        ("would_refuse", Some(d)) => format!("would be refused: {d}"),
                        ("would_delete", Some(d)) => format!("would be deleted ({d})"),
                        (other, _) => other.to_string(),
                    };
                    vec![r["name"].as_str().unwrap_or_default().to_string(), result]
                })
                .collect(),
        ),
    }
}

/// What `runners delete --dry-run` would do to each runner, doing nothing.
async fn dry_run_rows(
    m: &Manager,
    names: &[String],
    force: bool,
) -> Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    for n in names {
        let (result, detail) = match m.store.get(n).await? {
            None => ("missing", "no such runner".to_string()),
            Some(r) if r.status == RunnerStatus::Active && !force => {
                ("would_refuse", "running a job (use --force)".to_string())
            }
            Some(r) => ("would_delete", format!("status {}", r.status)),
        };
        rows.push(
            serde_json::json!({ "name": n, "result": result, "detail": detail, "dry_run": true }),
        );
    }
    Ok(rows)
}

/// Asks on the terminal before every runner of a group goes; without a terminal, refuses
/// (`--yes` skips the question).
fn confirm(count: usize, group: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "refusing to delete every runner of group `{group}` ({count}) without a terminal to confirm: pass --yes, or --dry-run to see them"
        )));
    }
    eprint!("delete all {count} runners of group `{group}`? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err(Error::Usage("nothing deleted".into())),
    }
}

/// `runners show`: one runner, as Redis, the forge and the backend see it, with its history.
#[derive(Serialize)]
struct RunnerView {
    name: String,
    /// Why it was made (from its history's first entry), when known.
    made: Option<String>,
    record: Option<crate::model::Runner>,
    github: Option<crate::forge::ForgeRunner>,
    instance: Option<crate::backend::Instance>,
    history: Vec<HistoryRow>,
    /// The timeline of its job (the one it ran, else the one it was made for), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<super::jobs_cmd::JobView>,
    /// The views that could not be read (`github`, `instance`): `null` there means unknown.
    unread: Vec<&'static str>,
}

#[derive(Serialize)]
struct HistoryRow {
    at: String,
    event: String,
    detail: String,
}

pub fn show(cx: &Context, name: &str) -> Result<()> {
    let config = Arc::new(cx.load()?.config);
    let rt = runtime()?;
    let (view, unread) = rt.block_on(async {
        let m = wiring::manager(config.clone()).await?;
        let record = m.store.get(name).await?;
        let history = m.store.history(name).await?;
        let job = match record.as_ref().and_then(|r| r.job_id.or(r.created_for_job)) {
            Some(j) => Some((j, m.store.job_timeline(j).await?)),
            None => None,
        };
        let group = match &record {
            Some(r) => config.group(&r.group),
            None => {
                crate::manager::matching::group_of_runner(&config.name, &config.runner_groups, name)
            }
        };
        let (mut github, mut instance, mut unread, mut first) = (None, None, vec![], None);
        if let Some(g) = group {
            match m.forge.list_runners(&Manager::scope(g)).await {
                Ok(l) => github = l.into_iter().find(|f| f.name == name),
                Err(e) => {
                    unread.push("github");
                    first = Some(Error::Forge(e));
                }
            }
            // The backend its record names (a group may have several), else the group's.
            let backend = match record.as_ref().map(|r| m.backend_named(&r.backend)) {
                Some(Ok(b)) => Ok(b),
                _ => m.backend(g),
            };
            let listed = match backend {
                Ok(b) => b.list().await.map_err(Error::Backend),
                Err(e) => Err(Error::from(e)),
            };
            match listed {
                Ok(l) => instance = l.into_iter().find(|i| i.runner() == Some(name)),
                Err(e) => {
                    unread.push("instance");
                    first.get_or_insert(e);
                }
            }
        }
        Ok::<_, Error>((
            RunnerView {
                name: name.to_string(),
                made: history
                    .iter()
                    .find(|e| e.event == "reserved")
                    .map(|e| e.detail.clone()),
                record,
                github,
                instance,
                history: history
                    .into_iter()
                    .map(|e| HistoryRow {
                        at: crate::model::rfc3339(e.at),
                        event: e.event,
                        detail: e.detail,
                    })
                    .collect(),
                job: job
                    .filter(|(_, t)| !t.is_empty())
                    .map(|(j, t)| super::jobs_cmd::view(j, &t)),
                unread,
            },
            first,
        ))
    })?;
    if view.record.is_none()
        && view.history.is_empty()
        && view.github.is_none()
        && view.instance.is_none()
        && view.unread.is_empty()
    {
        return Err(Error::Usage(format!(
            "no runner `{name}`: no record, no history in the last 7 days, nothing on the forge or the backend"
        )));
    }
    match cx.output {
        OutputFormat::Json => output::json(&view)?,
        OutputFormat::Table | OutputFormat::Name => output::print(&show_text(&view))?,
    }
    match unread {
        // What is known was printed; the exit code says what could not be read.
        Some(e) => Err(Error::Several {
            all: vec![format!(
                "{} could not be read: {e}",
                view.unread.join(" and ")
            )],
            first: Box::new(e),
        }),
        None => Ok(()),
    }
}

/// `unknown (could not be read)` for a view that could not be read, else `absent`.
fn unknown(v: &RunnerView, view: &str, absent: &str) -> String {
    if v.unread.contains(&view) {
        "unknown (could not be read)".into()
    } else {
        absent.into()
    }
}

fn show_text(v: &RunnerView) -> String {
    let mut out = format!("runner   {}\n", v.name);
    let line = |out: &mut String, k: &str, val: String| out.push_str(&format!("{k:<8} {val}\n"));
    line(
        &mut out,
        "made",
        v.made
            .clone()
            .unwrap_or_else(|| "unknown (no history)".into()),
    );
    match &v.record {
        Some(r) => {
            line(&mut out, "group", r.group.clone());
            line(&mut out, "status", r.status.to_string());
            line(&mut out, "created", crate::model::rfc3339(r.created_at));
            if let Some(j) = r.created_for_job {
                line(&mut out, "for job", j.to_string());
            }
            if let Some(j) = r.job_id {
                line(&mut out, "job", j.to_string());
            }
            if let Some(e) = &r.error {
                line(&mut out, "error", e.clone());
            }
        }
        None => line(&mut out, "record", "none (removed, or never made)".into()),
    }
    line(
        &mut out,
        "github",
        v.github
            .as_ref()
            .map(|f| {
                format!(
                    "id {} {}{}",
                    f.id,
                    f.state.as_str(),
                    if f.busy { ", busy" } else { "" }
                )
            })
            .unwrap_or_else(|| unknown(v, "github", "not registered")),
    );
    line(
        &mut out,
        "instance",
        v.instance
            .as_ref()
            .map(|i| format!("{} ({:?})", i.id, i.state).to_lowercase())
            .unwrap_or_else(|| unknown(v, "instance", "none")),
    );
    out.push_str("history\n");
    for h in &v.history {
        out.push_str(&format!("  {}  {:<9} {}\n", h.at, h.event, h.detail));
    }
    if let Some(j) = &v.job {
        out.push_str(&super::jobs_cmd::text(j));
    }
    out
}
