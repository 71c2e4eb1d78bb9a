//! `runnerctl simulate`: reads or generates a trace, runs it under each configuration asked
//! for, and prints the reports side by side.

use super::args::{DurationKind, GenerateKind, SimPolicy, SimulateArgs};
use super::output::{self, OutputFormat};
use super::Context;
use crate::config::simulation::{Dist, Time};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::simulate::generate::{self, Shape, Spec};
use crate::simulate::report::{self, Report};
use crate::simulate::trace::Trace;
use crate::simulate::{self as sim, Options};
use rand::SeedableRng;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The JSON document `simulate -o json` prints.
#[derive(Serialize)]
struct Output<'a> {
    seed: u64,
    /// Where the trace came from: its file, or `generated:KIND`.
    trace: String,
    jobs: usize,
    runs: &'a [Report],
}

/// Runs `simulate`. `config_given`: `--config` (or `RUNNERCTL_CONFIG`) was set; without it
/// and without the default file, the shipped example configuration is simulated.
pub fn run(cx: &Context, config_given: bool, a: SimulateArgs) -> Result<()> {
    let (config, config_name) = load_config(cx, config_given)?;
    let (trace, source) = match (&a.trace, a.generate) {
        (Some(path), _) => (read_trace(path)?, path.display().to_string()),
        (None, Some(kind)) => {
            let t = generate_trace(&a, kind, &config)?;
            if let Some(out) = &a.write_trace {
                std::fs::write(out, t.to_jsonl()).map_err(|e| {
                    Error::Problem(format!("cannot write the trace to {}: {e}", out.display()))
                })?;
            }
            (t, format!("generated:{}", kind_name(kind)))
        }
        (None, None) => return Err(Error::Usage("give --trace FILE or --generate KIND".into())),
    };
    let trace = Arc::new(trace);
    let mut runs: Vec<(String, Config)> = vec![(config_name, config.clone())];
    for path in &a.compare {
        let loaded = crate::wiring::load_file(path)?;
        runs.push((path.display().to_string(), loaded.config));
    }
    for p in &a.policy {
        runs.push(policy(&config, *p, a.min_idle));
    }
    let opts = Options {
        seed: a.seed,
        drain_s: a.drain.secs(),
    };
    let total = (trace.jobs.len() * runs.len()) as u64;
    let bar = output::progress(total, cx.output);
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for (i, (name, c)) in runs.iter().enumerate() {
        let base = (i * trace.jobs.len()) as u64;
        let show = |done: u64| {
            // Only runs that last: a bar that flashes for a moment is noise.
            if started.elapsed().as_secs_f64() > 1.0 {
                bar.set_position(base + done);
            }
        };
        let r = sim::run(c, trace.clone(), name, &opts, &show)
            .map_err(|e| Error::Usage(format!("{name}: {e}")))?;
        reports.push(r);
    }
    bar.finish_and_clear();
    match cx.output {
        OutputFormat::Json => output::json(&Output {
            seed: a.seed,
            trace: source,
            jobs: trace.jobs.len(),
            runs: &reports,
        }),
        _ => print_tables(&reports),
    }
}

fn load_config(cx: &Context, config_given: bool) -> Result<(Config, String)> {
    if !config_given && !cx.config_path.exists() {
        tracing::warn!(
            "no configuration at {}: simulating the shipped example (give --config FILE for yours)",
            cx.config_path.display()
        );
        let loaded = crate::wiring::parse(crate::config::EXAMPLE, "config.example.yaml")?;
        return Ok((loaded.config, "config.example.yaml".into()));
    }
    let loaded = cx.load()?;
    let name = cx
        .config_path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    Ok((loaded.config, name))
}

fn read_trace(path: &Path) -> Result<Trace> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read the trace {}: {e}", path.display())))?;
    Trace::parse(&text, &path.display().to_string()).map_err(|e| Error::Usage(e.to_string()))
}

fn kind_name(k: GenerateKind) -> &'static str {
    match k {
        GenerateKind::Poisson => "poisson",
        GenerateKind::Diurnal => "diurnal",
        GenerateKind::Burst => "burst",
    }
}

fn generate_trace(a: &SimulateArgs, kind: GenerateKind, config: &Config) -> Result<Trace> {
    if !(a.rate.is_finite() && a.rate > 0.0) {
        return Err(Error::Usage(format!(
            "--rate: must be above 0 (is {})",
            a.rate
        )));
    }
    if let Some(d) = a.days {
        if !(d.is_finite() && d > 0.0) {
            return Err(Error::Usage(format!("--days: must be above 0 (is {d})")));
        }
    }
    if !(0.0..=1.0).contains(&a.weekend) {
        return Err(Error::Usage(format!(
            "--weekend: must be between 0 and 1 (is {})",
            a.weekend
        )));
    }
    let mean = a.duration_mean;
    let duration = match a.duration_dist {
        DurationKind::Exponential => Dist::Exponential { mean },
        DurationKind::Fixed => Dist::Fixed(mean),
        DurationKind::Uniform => Dist::Uniform {
            min: Time(0.0),
            max: a.duration_p95.unwrap_or(Time(mean.secs() * 2.0)),
        },
        DurationKind::Lognormal => {
            let p95 = a.duration_p95.unwrap_or(Time(mean.secs() * 3.0));
            if p95.secs() <= mean.secs() || mean.secs() <= 0.0 {
                return Err(Error::Usage(
                    "--duration-p95: must be above --duration-mean (the median) for lognormal"
                        .into(),
                ));
            }
            Dist::LogNormal { median: mean, p95 }
        }
    };
    let profile = match &a.profile {
        None => generate::OFFICE_HOURS,
        Some(text) => parse_profile(text)?,
    };
    let spec = Spec {
        shape: match kind {
            GenerateKind::Poisson => Shape::Poisson,
            GenerateKind::Diurnal => Shape::Diurnal,
            GenerateKind::Burst => Shape::Burst,
        },
        jobs: a.jobs,
        days: a.days,
        rate_per_hour: a.rate,
        duration,
        repositories: a.repos.max(1),
        weekend: a.weekend,
        profile,
        window_s: a.window.secs(),
    };
    // The trace's draws come from their own stream, so that changing a model does not change
    // the trace.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed ^ 0x7472_6163_6500);
    Ok(generate::generate(&spec, &config.runner_groups, &mut rng))
}

fn parse_profile(text: &str) -> Result<[f64; 24]> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 24 {
        return Err(Error::Usage(format!(
            "--profile: needs 24 weights, one per hour (found {})",
            parts.len()
        )));
    }
    let mut out = [0.0; 24];
    for (i, p) in parts.iter().enumerate() {
        match p.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => out[i] = x,
            _ => {
                return Err(Error::Usage(format!(
                    "--profile: weight {i} (`{p}`) is not a number of zero or more"
                )))
            }
        }
    }
    if out.iter().all(|x| *x == 0.0) {
        return Err(Error::Usage("--profile: every weight is 0".into()));
    }
    Ok(out)
}

/// The configuration under a reference policy.
fn policy(config: &Config, p: SimPolicy, min_idle: u32) -> (String, Config) {
    let mut c = config.clone();
    let name = match p {
        SimPolicy::PerJob => {
            for g in &mut c.runner_groups {
                g.min_runners = 0;
            }
            "per-job".to_string()
        }
        SimPolicy::MinIdle => {
            for g in &mut c.runner_groups {
                g.min_runners = min_idle.min(g.max_runners);
            }
            format!("min-idle({min_idle})")
        }
    };
    (name, c)
}

fn print_tables(reports: &[Report]) -> Result<()> {
    let Some(first) = reports.first() else {
        return Ok(());
    };
    let mut headers: Vec<String> = vec!["metric".into()];
    for (i, r) in reports.iter().enumerate() {
        headers.push(r.name.clone());
        if i > 0 {
            headers.push(format!("×{}", i + 1));
        }
    }
    let rows = report::ROWS
        .iter()
        .map(|(label, get)| {
            let mut row = vec![label.to_string()];
            for (i, r) in reports.iter().enumerate() {
                row.push(report::fmt(get(r)));
                if i > 0 {
                    row.push(report::ratio(get(first), get(r)));
                }
            }
            row
        })
        .collect();
    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
    output::table(&h, rows)?;
    for r in reports {
        print_groups(r)?;
        print_repositories(r)?;
    }
    Ok(())
}

/// The wait columns of a row: p50, p95, p99, max (seconds).
fn wait_cells(w: &report::Waits) -> [String; 4] {
    [w.p50_s, w.p95_s, w.p99_s, w.max_s].map(report::fmt)
}

/// Repositories shown in a table; the rest are in `-o json`.
const REPOSITORY_ROWS: usize = 20;

fn print_repositories(r: &Report) -> Result<()> {
    let mut repos: Vec<_> = r.repositories.iter().collect();
    // The busiest first.
    repos.sort_by(|a, b| b.1.jobs.cmp(&a.1.jobs).then(a.0.cmp(b.0)));
    let more = repos.len().saturating_sub(REPOSITORY_ROWS);
    output::print(&format!("\n{}: by repository\n", r.name))?;
    let rows = repos
        .into_iter()
        .take(REPOSITORY_ROWS)
        .map(|(name, x)| {
            let mut row = vec![name.clone(), x.jobs.to_string()];
            row.extend(wait_cells(&x.wait));
            row.push(x.jobs_never_started.to_string());
            row
        })
        .collect();
    output::table(
        &[
            "repository",
            "jobs",
            "wait p50 (s)",
            "wait p95 (s)",
            "wait p99 (s)",
            "wait max (s)",
            "never started",
        ],
        rows,
    )?;
    if more > 0 {
        output::print(&format!("({more} more repositories in -o json)\n"))?;
    }
    Ok(())
}

fn print_groups(r: &Report) -> Result<()> {
    output::print(&format!("\n{}: by group\n", r.name))?;
    let rows = r
        .groups
        .iter()
        .map(|(g, x)| {
            let mut row = vec![g.clone(), x.jobs.to_string()];
            row.extend(wait_cells(&x.wait));
            row.extend([
                x.peak_instances.to_string(),
                x.runners_wasted.to_string(),
                report::fmt(x.cost),
            ]);
            row
        })
        .collect();
    output::table(
        &[
            "group",
            "jobs",
            "wait p50 (s)",
            "wait p95 (s)",
            "wait p99 (s)",
            "wait max (s)",
            "peak instances",
            "wasted",
            "cost",
        ],
        rows,
    )?;
    Ok(())
}
