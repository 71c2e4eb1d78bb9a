//! `runnerctl config …` and `runnerctl groups list`: commands that need only the configuration.

use super::args::ConfigCommand;
use super::output::{self, OutputFormat};
use super::Context;
use crate::config::{self, ConfigError, InstanceSpec, Problem};
use crate::error::{Error, Result};
use serde::Serialize;

pub fn run(cx: &Context, cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Validate { path } => {
            validate(cx, path.as_deref().unwrap_or(cx.config_path.as_path()))
        }
        ConfigCommand::Show => {
            let loaded = cx.load()?;
            match cx.output {
                OutputFormat::Json => output::json(&loaded.config),
                OutputFormat::Table => {
                    let text = serde_yaml::to_string(&loaded.config).map_err(|e| {
                        Error::Problem(format!("cannot encode the configuration: {e}"))
                    })?;
                    output::print(&text)
                }
            }
        }
        ConfigCommand::Example => output::print(config::EXAMPLE),
    }
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    valid: bool,
    errors: Vec<&'a Problem>,
    warnings: Vec<&'a Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backends: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runner_groups: Option<usize>,
}

fn validate(cx: &Context, path: &std::path::Path) -> Result<()> {
    let file = path.display().to_string();
    let result = config::load_file(path);
    let (problems, counts) = match &result {
        Ok(l) => (
            l.warnings.clone(),
            Some((l.config.backends.len(), l.config.runner_groups.len())),
        ),
        Err(ConfigError::Invalid { problems, .. }) => (problems.clone(), None),
        Err(ConfigError::Read { .. }) => return result.map(|_| ()).map_err(Error::from),
    };
    let (errors, warnings): (Vec<&Problem>, Vec<&Problem>) = problems
        .iter()
        .partition(|p| p.severity == config::Severity::Error);
    match cx.output {
        OutputFormat::Json => output::json(&Report {
            file: file.clone(),
            valid: errors.is_empty(),
            errors: errors.clone(),
            warnings: warnings.clone(),
            backends: counts.map(|c| c.0),
            runner_groups: counts.map(|c| c.1),
        })?,
        OutputFormat::Table => {
            for w in &warnings {
                eprintln!("warning: {}", w.render(&file));
            }
            if let Some((b, g)) = counts {
                output::print(&format!(
                    "{file}: valid ({b} backend{}, {g} runner group{})\n",
                    if b == 1 { "" } else { "s" },
                    if g == 1 { "" } else { "s" }
                ))?;
            }
        }
    }
    result.map(|_| ()).map_err(Error::from)
}

#[derive(Serialize)]
struct GroupRow<'a> {
    name: &'a str,
    organization: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<&'a str>,
    labels: &'a [String],
    backend: &'a str,
    kind: &'static str,
    min_runners: u32,
    max_runners: u32,
}

pub fn groups_list(cx: &Context) -> Result<()> {
    let loaded = cx.load()?;
    let c = &loaded.config;
    let rows: Vec<GroupRow> = c
        .runner_groups
        .iter()
        .map(|g| GroupRow {
            name: &g.name,
            organization: &g.organization,
            repository: g.repository.as_deref(),
            labels: &g.labels,
            backend: &g.backend,
            kind: match g.spec {
                InstanceSpec::Fake(_) => "fake",
                InstanceSpec::Docker(_) => "docker",
                InstanceSpec::Aws(_) => "aws",
                InstanceSpec::Gcp(_) => "gcp",
                InstanceSpec::Vsphere(_) => "vsphere",
            },
            min_runners: g.min_runners,
            max_runners: g.max_runners,
        })
        .collect();
    match cx.output {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Table => output::table(
            &["group", "scope", "labels", "backend", "min", "max"],
            rows.iter()
                .map(|r| {
                    vec![
                        r.name.to_string(),
                        match r.repository {
                            Some(repo) => format!("{}/{repo}", r.organization),
                            None => r.organization.to_string(),
                        },
                        r.labels.join(","),
                        format!("{} ({})", r.backend, r.kind),
                        r.min_runners.to_string(),
                        r.max_runners.to_string(),
                    ]
                })
                .collect(),
        ),
    }
}
