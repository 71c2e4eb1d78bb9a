//! `runnerctl groups list` and `runnerctl groups sync`.

use super::output::{self, progress, OutputFormat};
use super::{runtime, Context};
use crate::config::{Config, RunnerGroup};
use crate::error::{Error, Result};
use crate::forge::RunnerGroupInfo;
use crate::manager::sync::{self, Action};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Serialize)]
struct GroupRow<'a> {
    name: &'a str,
    organization: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<&'a str>,
    labels: &'a [String],
    /// `webhook` or `scale_set`.
    mode: crate::config::GroupMode,
    /// The scale set's name (what workflows ask for in `runs-on`), in `scale_set` mode.
    scale_set: Option<&'a str>,
    backend: &'a str,
    kind: String,
    /// Its backends in order (one for a group with `backend:`), with their breakers.
    backends: Vec<BackendView>,
    min_runners: u32,
    max_runners: u32,
    /// The warm pool's target now and the schedule entry that sets it; `null` without one.
    warm_pool: Option<crate::config::warm::Target>,
    /// What GitHub has: absent with `--local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    github: Option<GithubView>,
}

/// One of a group's backends.
#[derive(Serialize)]
struct BackendView {
    name: String,
    kind: String,
    /// Its own limit (`backends[].max_runners`), when it has one.
    max_runners: Option<u32>,
    /// Its breaker (a group with several backends): `closed`, `half_open`, `open` or
    /// `broken`; `null` with one backend or when Redis did not answer.
    breaker: Option<String>,
}

/// Each group's backends with their breakers, read from Redis (within 2 s; none when it does
/// not answer).
fn backend_views(config: &Config) -> HashMap<String, Vec<BackendView>> {
    let breakers = runtime().ok().and_then(|rt| {
        rt.block_on(async {
            let conn = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                crate::wiring::connect(config),
            )
            .await
            .ok()?
            .ok()?;
            let store = crate::wiring::store(config, conn);
            let now = crate::model::unix_now();
            let mut out = HashMap::new();
            for g in config.runner_groups.iter().filter(|g| g.backends.len() > 1) {
                for c in &g.backends {
                    let key = crate::manager::breaker::key(&g.name, &c.name);
                    use crate::records::RunnerStore;
                    let kept = store.breaker(&key).await.ok()?;
                    let b = crate::manager::breaker::read(kept.as_deref());
                    let fp = crate::manager::breaker::fingerprint(config, c);
                    out.insert(
                        key,
                        crate::manager::breaker::label(&b, now, &fp).to_string(),
                    );
                }
            }
            Some(out)
        })
    });
    config
        .runner_groups
        .iter()
        .map(|g| {
            let views = g
                .backends
                .iter()
                .map(|c| BackendView {
                    name: c.name.clone(),
                    kind: config
                        .backend(&c.name)
                        .map(|b| b.kind().to_string())
                        .unwrap_or_default(),
                    max_runners: c.max_runners,
                    breaker: breakers
                        .as_ref()
                        .and_then(|m| m.get(&crate::manager::breaker::key(&g.name, &c.name)))
                        .cloned(),
                })
                .collect();
            (g.name.clone(), views)
        })
        .collect()
}

/// A group as GitHub has it.
#[derive(Serialize)]
struct GithubView {
    /// `present`, `missing` (run `groups sync`) or `repository` (a repository's runners
    /// need no runner group).
    state: &'static str,
    id: Option<u64>,
    /// `all`, `selected` or `private`.
    visibility: Option<String>,
}

impl GithubView {
    fn cell(&self) -> String {
        match (self.state, self.id, &self.visibility) {
            ("present", Some(id), Some(v)) => format!("id {id} ({v})"),
            ("repository", _, _) => "repository runners".into(),
            _ => "missing (run `groups sync`)".into(),
        }
    }
}

fn kind(config: &Config, g: &RunnerGroup) -> String {
    config
        .backend(&g.backend)
        .map(|b| b.kind().to_string())
        .unwrap_or_default()
}

pub fn list(cx: &Context, local: bool) -> Result<()> {
    let config = cx.load()?.config;
    let github: Option<HashMap<String, Vec<RunnerGroupInfo>>> = if local {
        None
    } else {
        let rt = runtime()?;
        let _entered = rt.enter(); // the client's transport needs a runtime to be built
        let forge = crate::wiring::forge(&config)?;
        let forge_groups = forge.groups();
        let mut orgs: Vec<&str> = config
            .runner_groups
            .iter()
            .filter(|g| g.repository.is_none())
            .map(|g| g.organization.as_str())
            .collect();
        orgs.sort();
        orgs.dedup();
        Some(rt.block_on(async {
            let mut m = HashMap::new();
            if let Some(capable) = forge_groups {
                for org in orgs {
                    m.insert(org.to_string(), capable.list_runner_groups(org).await?);
                }
            }
            Ok::<_, Error>(m)
        })?)
    };
    let mut views = backend_views(&config);
    let rows: Vec<GroupRow> = config
        .runner_groups
        .iter()
        .map(|g| GroupRow {
            backends: views.remove(&g.name).unwrap_or_default(),
            name: &g.name,
            organization: g.owner_label(),
            repository: g.repository.as_deref(),
            labels: &g.labels,
            mode: g.mode,
            scale_set: g.scale_set_mode().then(|| g.scale_set_name()),
            backend: &g.backend,
            kind: kind(&config, g),
            min_runners: g.min_runners,
            max_runners: g.max_runners,
            warm_pool: g
                .warm_pool
                .as_ref()
                .map(|w| w.target(crate::model::unix_now())),
            github: github.as_ref().map(|m| {
                let view = |state, id, visibility| GithubView {
                    state,
                    id,
                    visibility,
                };
                if g.repository.is_some() {
                    return view("repository", None, None);
                }
                match m
                    .get(&g.organization)
                    .and_then(|list| list.iter().find(|x| x.name == g.name))
                {
                    Some(x) => view("present", Some(x.id), Some(x.visibility.clone())),
                    None => view("missing", None, None),
                }
            }),
        })
        .collect();
    match cx.output {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Table | OutputFormat::Name => {
            let mut headers = vec!["group", "scope", "labels", "backend", "min", "max", "warm"];
            if github.is_some() {
                headers.push("github");
            }
            output::table(&headers, rows.iter().map(table_row).collect())
        }
    }
}

/// A group's line of `groups list`.
fn table_row(r: &GroupRow) -> Vec<String> {
    let mut row = vec![
        r.name.to_string(),
        match r.repository {
            Some(repo) => format!("{}/{repo}", r.organization),
            None => r.organization.to_string(),
        },
        match r.scale_set {
            Some(name) => format!("{name} (scale set)"),
            None => r.labels.join(","),
        },
        backends_cell(r),
        r.min_runners.to_string(),
        r.max_runners.to_string(),
        r.warm_pool.map_or("-".into(), |t| warm_cell(&t)),
    ];
    if let Some(gh) = &r.github {
        row.push(gh.cell());
    }
    row
}

/// `fake (fake)`; with several backends, each in order with its breaker: `dc1 (vsphere)
/// open, aws (aws) closed`.
fn backends_cell(r: &GroupRow) -> String {
    if r.backends.len() < 2 {
        return format!("{} ({})", r.backend, r.kind);
    }
    r.backends
        .iter()
        .map(|b| {
            let limit = b
                .max_runners
                .map(|m| format!(" max {m}"))
                .unwrap_or_default();
            let state = b.breaker.as_deref().unwrap_or("unknown");
            format!("{} ({}{limit}) {state}", b.name, b.kind)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pool's target now: `2 hot, 5 stopped`, and the schedule entry that sets it.
pub fn warm_cell(t: &crate::config::warm::Target) -> String {
    let entry = match t.entry {
        Some(i) => format!(" (schedule[{i}])"),
        None => String::new(),
    };
    format!("{} hot, {} stopped{entry}", t.hot, t.stopped)
}

pub fn sync(cx: &Context, only: Option<&str>, dry_run: bool) -> Result<()> {
    let config = cx.load()?.config;
    let groups: Vec<&RunnerGroup> = config
        .runner_groups
        .iter()
        .filter(|g| only.is_none_or(|o| o == g.name))
        .collect();
    if let (Some(name), true) = (only, groups.is_empty()) {
        return Err(Error::Usage(format!(
            "no runner group `{name}` in the configuration"
        )));
    }
    let rt = runtime()?;
    let _entered = rt.enter(); // the client's transport needs a runtime to be built
    let forge = crate::wiring::forge(&config)?;
    let bar = progress(groups.len() as u64, cx.output);
    // `groups sync` spends the budget last, after jobs and health passes.
    let mut rows = rt.block_on(crate::budget::with_priority(
        crate::budget::Priority::Cleanup,
        sync::sync(&*forge, &groups, dry_run, &|| bar.inc(1)),
    ));
    // Then the scale sets of `mode: scale_set` groups (their runner groups exist by now).
    let routes: Vec<_> = crate::wiring::scale_set_routes(&config)?
        .into_iter()
        .filter(|r| only.is_none_or(|o| o == r.group))
        .collect();
    if !routes.is_empty() {
        rows.extend(rt.block_on(crate::budget::with_priority(
            crate::budget::Priority::Cleanup,
            sync::scale_sets(&routes, dry_run),
        )));
    }
    bar.finish_and_clear();
    match cx.output {
        OutputFormat::Json => {
            output::json(&serde_json::json!({ "dry_run": dry_run, "groups": rows }))?
        }
        OutputFormat::Table | OutputFormat::Name => {
            output::table(
                &["group", "scope", "action", "changes"],
                rows.iter()
                    .map(|r| {
                        let action = serde_json::to_value(r.action)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default();
                        vec![
                            r.group.clone(),
                            r.scope.clone(),
                            if dry_run && matches!(r.action, Action::Create | Action::Update) {
                                format!("{action} (dry run)")
                            } else {
                                action
                            },
                            r.changes.join("; "),
                        ]
                    })
                    .collect(),
            )?;
        }
    }
    let failed = rows.iter().filter(|r| r.action == Action::Error).count();
    if failed > 0 {
        let causes = rows
            .iter()
            .filter_map(|r| r.error.clone())
            .map(Error::Forge)
            .collect();
        return Err(Error::summing(
            format!(
                "{failed} group{} could not be synchronized",
                if failed == 1 { "" } else { "s" }
            ),
            causes,
        ));
    }
    Ok(())
}
