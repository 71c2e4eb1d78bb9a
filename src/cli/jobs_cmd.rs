//! `runnerctl jobs show JOB_ID`: where a job's wait went, from its timeline in Redis.

use super::output::{self, OutputFormat};
use super::{runtime, Context};
use crate::error::{Error, Result};
use crate::records::TIMELINE;
use crate::wiring;
use serde::Serialize;
use std::collections::BTreeMap;

/// A job's timeline as `jobs show` prints it.
#[derive(Serialize)]
pub struct JobView {
    pub job_id: u64,
    pub group: Option<String>,
    pub repository: Option<String>,
    /// The runner chosen for it, and where that runner came from (`hot`, `stopped`, `cold`).
    pub runner: Option<String>,
    pub source: Option<String>,
    /// The runner that ran it (another may have taken it) and where the wait's runner came
    /// from, as `runnerctl_job_wait_seconds` counts it.
    pub ran_on: Option<String>,
    pub wait_source: Option<String>,
    pub timeline: Vec<Step>,
    /// The phases between steps, seconds (`runnerctl_job_phase_seconds`).
    pub phases: BTreeMap<String, f64>,
}

/// One step of the timeline.
#[derive(Serialize)]
pub struct Step {
    pub step: &'static str,
    pub what: &'static str,
    /// RFC 3339 with milliseconds.
    pub at: String,
    /// Seconds since the first step noted.
    pub after_s: f64,
}

/// The view of a timeline read from the store.
pub fn view(job_id: u64, t: &BTreeMap<String, String>) -> JobView {
    let text = |k: &str| t.get(k).cloned();
    let at = |k: &str| t.get(k).and_then(|v| v.parse::<u64>().ok());
    let first = TIMELINE
        .iter()
        .filter_map(|(k, _)| at(k))
        .min()
        .unwrap_or(0);
    let timeline = TIMELINE
        .iter()
        .filter_map(|(step, what)| {
            let ms = at(step)?;
            Some(Step {
                step,
                what,
                at: rfc3339_ms(ms),
                after_s: ms.saturating_sub(first) as f64 / 1000.0,
            })
        })
        .collect();
    JobView {
        job_id,
        group: text("group"),
        repository: text("repository"),
        runner: text("runner"),
        source: text("source"),
        ran_on: text("ran_on"),
        wait_source: text("wait_source"),
        timeline,
        phases: crate::manager::phases(t)
            .into_iter()
            .map(|(p, s)| (p.to_string(), s))
            .collect(),
    }
}

fn rfc3339_ms(ms: u64) -> String {
    let secs = crate::model::rfc3339(ms / 1000);
    // `…:SSZ` → `…:SS.mmmZ`
    match secs.strip_suffix('Z') {
        Some(s) => format!("{s}.{:03}Z", ms % 1000),
        None => secs,
    }
}

pub fn show(cx: &Context, job_id: u64) -> Result<()> {
    let config = cx.load()?.config;
    let rt = runtime()?;
    let t = rt.block_on(async {
        let conn = wiring::connect(&config).await?;
        let store = wiring::store(&config, conn);
        Ok::<_, Error>(store.job_timeline(job_id).await?)
    })?;
    if t.is_empty() {
        return Err(Error::Usage(format!(
            "no timeline for job {job_id}: no task of it was handled in the last 7 days (or it matched no runner group)"
        )));
    }
    let v = view(job_id, &t);
    match cx.output {
        OutputFormat::Json => output::json(&v),
        OutputFormat::Table | OutputFormat::Name => output::print(&text(&v)),
    }
}

/// The timeline as text: a header, then one line per step with its time and the time since
/// the first step, then the phases.
pub fn text(v: &JobView) -> String {
    let mut out = format!("job      {}\n", v.job_id);
    let none = || "unknown".to_string();
    let mut line = |k: &str, val: String| out.push_str(&format!("{k:<8} {val}\n"));
    line("group", v.group.clone().unwrap_or_else(none));
    line("repo", v.repository.clone().unwrap_or_else(none));
    let chosen = match (&v.runner, &v.source) {
        (Some(r), Some(s)) => format!("{r} ({s})"),
        (Some(r), None) => r.clone(),
        _ => none(),
    };
    line("runner", chosen);
    if let Some(r) = v.ran_on.as_ref().filter(|r| Some(*r) != v.runner.as_ref()) {
        line("ran on", format!("{r} (another runner took it)"));
    }
    out.push_str("timeline\n");
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    for s in &v.timeline {
        table.add_row(vec![
            format!("  {}", s.what),
            s.at.clone(),
            format!("+{:.3}s", s.after_s),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    if !v.phases.is_empty() {
        out.push_str("phases\n");
        for (k, s) in &v.phases {
            out.push_str(&format!("  {k:<15} {s:.3}s\n"));
        }
    }
    out
}
