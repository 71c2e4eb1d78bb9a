//! `runnerctl config …` and `runnerctl groups list`: commands that need only the configuration.

use super::args::ConfigCommand;
use super::output::{self, OutputFormat};
use super::Context;
use crate::config::{self, ConfigError, Problem};
use crate::error::{Error, Result};
use serde::Serialize;

pub fn run(cx: &Context, cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Validate { path } => {
            validate(cx, path.as_deref().unwrap_or(cx.config_path.as_path()))
        }
        ConfigCommand::Show => {
            let loaded = cx.load()?;
            let mut shown = as_file(&loaded.config)?;
            // The file's own order: its keys where it has them, the example's for the rest.
            if let Ok(example) = serde_yaml::from_str(config::EXAMPLE) {
                in_order_of(&mut shown, &example);
            }
            let text = std::fs::read_to_string(&cx.config_path).unwrap_or_default();
            if let Ok(file) = serde_yaml::from_str(&text) {
                in_order_of(&mut shown, &file);
            }
            match cx.output {
                OutputFormat::Json => output::json(&shown),
                OutputFormat::Table | OutputFormat::Name => {
                    let text = serde_yaml::to_string(&shown).map_err(|e| {
                        Error::Problem(format!("cannot encode the configuration: {e}"))
                    })?;
                    output::print(&text)
                }
            }
        }
        ConfigCommand::Example { forge } => output::print(match forge {
            super::args::ForgeChoice::Github => config::EXAMPLE,
            super::args::ForgeChoice::Gitea => config::GITEA_EXAMPLE,
        }),
    }
}

/// The effective configuration in the file's own shape, so that `config show` prints a
/// configuration that validates: backends as a mapping by name, specs without their kind, only
/// the section of the forge in use, nothing left null.
fn as_file(c: &config::Config) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(c)
        .map_err(|e| Error::Problem(format!("cannot encode the configuration: {e}")))?;
    let Some(root) = v.as_object_mut() else {
        return Ok(v);
    };
    let unused = match c.forge {
        config::ForgeKind::Github => "gitea",
        _ => "github",
    };
    root.shift_remove(unused);
    if let Some(serde_json::Value::Array(list)) = root.shift_remove("backends") {
        let mut by_name = serde_json::Map::new();
        for mut b in list {
            let name = b
                .as_object_mut()
                .and_then(|o| o.shift_remove("name"))
                .and_then(|n| n.as_str().map(str::to_string))
                .unwrap_or_default();
            by_name.insert(name, b);
        }
        root.insert("backends".into(), serde_json::Value::Object(by_name));
    }
    for g in root
        .get_mut("runner_groups")
        .and_then(|g| g.as_array_mut())
        .into_iter()
        .flatten()
    {
        if let Some(spec) = g.get_mut("spec").and_then(|s| s.as_object_mut()) {
            spec.shift_remove("kind");
        }
    }
    drop_nulls(&mut v);
    Ok(v)
}

/// Puts the keys of `v` in the order `file` has them, at every depth (list items by
/// position); keys `file` does not have follow in their own order.
fn in_order_of(v: &mut serde_json::Value, file: &serde_yaml::Value) {
    match (v, file) {
        (serde_json::Value::Object(o), serde_yaml::Value::Mapping(m)) => {
            let mut ordered = serde_json::Map::new();
            for key in m.keys().filter_map(|k| k.as_str()) {
                if let Some((k, mut x)) = o.shift_remove_entry(key) {
                    in_order_of(&mut x, &m[key]);
                    ordered.insert(k, x);
                }
            }
            ordered.append(o);
            *o = ordered;
        }
        (serde_json::Value::Array(a), serde_yaml::Value::Sequence(s)) => {
            for (x, f) in a.iter_mut().zip(s) {
                in_order_of(x, f);
            }
        }
        _ => {}
    }
}

/// Removes null members (a default the file leaves out) at every depth.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            o.retain(|_, x| !x.is_null());
            o.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    valid: bool,
    errors: Vec<&'a Problem>,
    warnings: Vec<&'a Problem>,
    /// How many (null when the file is invalid).
    backends: Option<usize>,
    runner_groups: Option<usize>,
}

fn validate(cx: &Context, path: &std::path::Path) -> Result<()> {
    let file = path.display().to_string();
    let mut result = crate::wiring::load_file(path);
    // A file may still fail at run time: unset secrets, a Redis URL this build cannot use. They
    // are checked on what could be read of an invalid file too, so one run reports everything.
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match &mut result {
        Ok(l) => {
            let mut problems = crate::wiring::preflight(&l.config);
            if !problems.is_empty() {
                problems.extend(l.warnings.iter().cloned());
                config::locate(&text, &mut problems);
                config::sort_problems(&mut problems);
                result = Err(ConfigError::Invalid {
                    file: file.clone(),
                    problems,
                    partial: None,
                });
            }
        }
        Err(ConfigError::Invalid {
            problems,
            partial: Some(partial),
            ..
        }) => {
            let more: Vec<Problem> = crate::wiring::preflight(partial)
                .into_iter()
                .filter(|p| !config::covered(&p.path, problems))
                .collect();
            problems.extend(more);
            config::locate(&text, problems);
            config::sort_problems(problems);
        }
        Err(_) => {}
    }
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
        OutputFormat::Table | OutputFormat::Name => {
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
struct BootFile {
    path: String,
    mode: String,
    content: String,
}

#[derive(Serialize)]
struct BootView {
    group: String,
    backend: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<BootFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_data: Option<String>,
    /// How the credential reaches the instance.
    credential_delivery: String,
}

/// `runners bootstrap --group G`: the bootstrap of a sample runner of the group.
pub fn runners_bootstrap(cx: &Context, group: &str) -> Result<()> {
    use crate::bootstrap::{self, Credential, RunnerSetup};
    let config = cx.load()?.config;
    let g = config
        .group(group)
        .ok_or_else(|| Error::Usage(format!("no runner group `{group}` in the configuration")))?;
    let settings = config
        .backend(&g.backend)
        .map(|b| &b.settings)
        .ok_or_else(|| Error::Usage(format!("group `{group}` names no known backend")))?;
    let kind = crate::backend::kind(settings.kind()).ok_or_else(|| {
        Error::Usage(format!(
            "backend `{}`: kind `{}` is not built into this binary",
            g.backend,
            settings.kind()
        ))
    })?;
    let template = match &g.bootstrap_template {
        Some(p) => Some(bootstrap::read_template(p).map_err(|e| Error::Usage(e.to_string()))?),
        None => None,
    };
    let scope = crate::manager::Manager::scope(g);
    let gitea = config.forge.is_gitea();
    let setup = RunnerSetup {
        runner_name: format!("{}-{}-<suffix>", config.name, g.name),
        labels: g.labels.clone(),
        url: if gitea {
            config.gitea.url.trim_end_matches('/').to_string()
        } else {
            scope.html_url(&crate::forge::github::web_url(&config.github.base_url))
        },
        agent: if gitea {
            crate::forge::Agent::ActRunner
        } else {
            crate::forge::Agent::ActionsRunner
        },
        container_jobs: g.container_jobs.clone(),
        runner_group: (g.repository.is_none() && !gitea).then(|| g.name.clone()),
        credential: if gitea {
            Credential::RegistrationToken(config::Secret::new(""))
        } else {
            Credential::Jit(config::Secret::new(""))
        },
    };
    let mut boot = bootstrap::render(kind.boot_style(), &setup, template.as_deref())
        .map_err(|e| Error::Usage(e.to_string()))?;
    let delivery = delivery(&config, kind, settings, &setup.runner_name, &mut boot)?;
    let view = BootView {
        credential_delivery: delivery,
        group: g.name.clone(),
        backend: format!("{} ({})", g.backend, kind.name()),
        command: boot.command,
        env: boot.env,
        user_data: boot.user_data.as_ref().map(|u| u.expose().to_string()),
        files: boot
            .files
            .iter()
            .map(|f| BootFile {
                path: f.path.clone(),
                mode: format!("{:04o}", f.mode),
                content: if bootstrap::is_secret(&f.path) {
                    "<redacted: the runner's credential, made when the runner is created>".into()
                } else {
                    f.content.expose().to_string()
                },
            })
            .collect(),
    };
    match cx.output {
        OutputFormat::Json => output::json(&view),
        OutputFormat::Table | OutputFormat::Name => {
            let mut out = format!(
                "# group {} on backend {}\n# credential: {}\n# command: {}\n",
                view.group,
                view.backend,
                view.credential_delivery,
                view.command.join(" ")
            );
            for (k, v) in &view.env {
                out.push_str(&format!("# env: {k}={v}\n"));
            }
            if let Some(ud) = &view.user_data {
                out.push_str(&format!("\n# ---- cloud-init user-data ----\n{ud}"));
            }
            for f in &view.files {
                out.push_str(&format!(
                    "\n# ---- {} (mode {}) ----\n{}",
                    f.path, f.mode, f.content
                ));
                if !f.content.ends_with('\n') {
                    out.push('\n');
                }
                if bootstrap::is_secret(&f.path) {
                    out.push_str(&format!("# {}\n", view.credential_delivery));
                }
            }
            output::print(&out)
        }
    }
}

/// How the credential reaches an instance of the group, applying the broker to `boot` when it
/// is the way.
fn delivery(
    config: &config::Config,
    kind: &dyn crate::backend::Kind,
    settings: &config::BackendSettings,
    runner: &str,
    boot: &mut crate::bootstrap::BootData,
) -> Result<String> {
    use crate::bootstrap;
    let brokered = config
        .broker
        .url
        .as_ref()
        .filter(|_| kind.boot_style() == bootstrap::BootStyle::Vm);
    Ok(match brokered {
        Some(url) => {
            let ca = config
                .broker
                .ca_file
                .as_ref()
                .or(config.broker.tls_cert_file.as_ref())
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_else(|| {
                    "<the broker's self-signed certificate, made by runnerctl and kept in Redis>\n"
                        .into()
                });
            let token = config::Secret::new(
                "<redacted: a one-time token, made when the runner is created>",
            );
            let wait = config.time_to_start.as_secs();
            bootstrap::through_broker(boot, url, &ca, &token, wait)
                .map_err(|e| Error::Usage(e.to_string()))?;
            format!("kept sealed by the credential broker; the instance redeems a one-time token for it once, from its own address, at {url} (CA pinned), within time_to_start ({wait}s)")
        }
        None => kind.credential_delivery(settings, &config.name, runner),
    })
}
