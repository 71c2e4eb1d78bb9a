//! `runnerctl trace export`: the configured scopes' past jobs as a trace for `simulate`.

use super::output::{self, OutputFormat};
use super::{runtime, Context};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::forge::{Forge, ForgeError, PastJob};
use crate::model::{parse_rfc3339, rfc3339, unix_now};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

/// A time of `--since`/`--until`: a span back from `now` (`7d`, `12h`) or an RFC 3339 time.
fn when(flag: &str, text: &str, now: u64) -> Result<u64> {
    if let Some(t) = parse_rfc3339(text) {
        return Ok(t);
    }
    match text.parse::<crate::config::Duration>() {
        Ok(d) => Ok(now.saturating_sub(d.as_secs())),
        Err(e) => Err(Error::Usage(format!(
            "{flag}: `{text}` is neither a span like `7d` nor an RFC 3339 time ({e})"
        ))),
    }
}

/// Every repository the groups serve, `owner/name`, sorted.
async fn repositories(config: &Config, forge: &dyn Forge) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut orgs = BTreeSet::new();
    for g in &config.runner_groups {
        match &g.repository {
            Some(r) => {
                out.insert(format!("{}/{r}", g.organization));
            }
            None => {
                orgs.insert(g.organization.clone());
            }
        }
    }
    for org in orgs {
        for r in forge.repositories(&org).await? {
            out.insert(format!("{org}/{r}"));
        }
    }
    Ok(out)
}

/// The past jobs of one repository, a rate limit waited out (and the repository listed again).
async fn jobs_of(forge: &dyn Forge, repo: &str, since: u64, until: u64) -> Result<Vec<PastJob>> {
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    loop {
        match forge.past_jobs(owner, name, since, until).await {
            Err(ForgeError::RateLimited { wait, .. }) => {
                tracing::warn!(
                    repository = repo,
                    "the forge's rate limit is reached: waiting {} s, then listing {repo} again",
                    wait.as_secs()
                );
                tokio::time::sleep(wait + std::time::Duration::from_secs(1)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// One trace line of a job that started and completed; `None` for any other.
fn line(j: &PastJob) -> Option<serde_json::Value> {
    let (started, completed) = (j.started_at?, j.completed_at?);
    if j.labels.is_empty() {
        return None;
    }
    let mut o = serde_json::json!({
        "queued_at": rfc3339(j.created_at),
        "labels": j.labels,
        "repository": j.repository,
        "duration_s": completed.saturating_sub(started),
    });
    if let Some(c) = &j.conclusion {
        o["conclusion"] = serde_json::json!(c);
    }
    Some(o)
}

/// Runs `trace export`.
pub fn export(cx: &Context, since: &str, until: Option<&str>, file: Option<&Path>) -> Result<()> {
    let config = cx.load()?.config;
    let now = unix_now();
    let since = when("--since", since, now)?;
    let until = match until {
        Some(u) => when("--until", u, now)?,
        None => now,
    };
    if since >= until {
        return Err(Error::Usage(format!(
            "--since ({}) is not before --until ({})",
            rfc3339(since),
            rfc3339(until)
        )));
    }
    let rt = runtime()?;
    // The forge's HTTP client needs the runtime it will run on.
    let forge = {
        let _in = rt.enter();
        crate::wiring::forge(&config)?
    };
    // A trace's listings spend the budget last, after jobs and health passes.
    let cleanup = crate::budget::Priority::Cleanup;
    let repos = rt.block_on(crate::budget::with_priority(
        cleanup,
        repositories(&config, &*forge),
    ))?;
    let bar = output::progress(repos.len() as u64, OutputFormat::Table);
    let mut jobs: Vec<PastJob> = Vec::new();
    for repo in &repos {
        bar.set_message(repo.clone());
        jobs.extend(rt.block_on(crate::budget::with_priority(
            cleanup,
            jobs_of(&*forge, repo, since, until),
        ))?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    jobs.sort_by_key(|a| (a.created_at, a.id));
    let mut text = String::new();
    let mut skipped = 0;
    for j in &jobs {
        match line(j) {
            Some(v) => {
                text.push_str(&v.to_string());
                text.push('\n');
            }
            None => skipped += 1,
        }
    }
    let written = jobs.len() - skipped;
    match file {
        Some(path) => {
            let mut f = std::fs::File::create(path).map_err(|e| {
                Error::Problem(format!("cannot write the trace to {}: {e}", path.display()))
            })?;
            f.write_all(text.as_bytes()).map_err(|e| {
                Error::Problem(format!("cannot write the trace to {}: {e}", path.display()))
            })?;
        }
        None => output::print(&text)?,
    }
    eprintln!(
        "{written} jobs from {} repositories ({} to {}); {skipped} not written (not started or not finished)",
        repos.len(),
        rfc3339(since),
        rfc3339(until)
    );
    Ok(())
}
