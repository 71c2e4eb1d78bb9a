//! `groups sync`: make GitHub's runner groups match the configuration. The comparison is a pure
//! function; the calls around it are few. A group runnerctl did not create is never deleted
//! (sync deletes nothing), and a group scoped to one repository uses that repository's runners,
//! which have no runner group to sync.

use crate::config::RunnerGroup;
use crate::forge::{Forge, ForgeError, GroupSettings, RunnerGroupInfo, RunnerGroups};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Scoped to one repository: its runners register on the repository.
    Repository,
    /// The forge has no runner groups: nothing to do.
    Nothing,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    pub group: String,
    pub scope: String,
    pub action: Action,
    /// What differs (or would), one item per setting; the error for `Error`.
    pub changes: Vec<String>,
    /// GitHub's id of the group, when it exists (or was created).
    pub github_id: Option<u64>,
    /// The forge's error for `Error`, which decides the exit code.
    #[serde(skip)]
    pub error: Option<ForgeError>,
}

/// What the configuration asks of a group, with repository names resolved to ids.
pub fn desired(g: &RunnerGroup, repository_ids: Vec<u64>) -> GroupSettings {
    let mut ids = repository_ids;
    ids.sort_unstable();
    GroupSettings {
        name: g.name.clone(),
        visibility: if g.selected_repositories.is_some() {
            "selected".into()
        } else {
            "all".into()
        },
        selected_repository_ids: ids,
        allows_public_repositories: g.allow_public_repositories,
        restricted_to_workflows: !g.selected_workflows.is_empty(),
        selected_workflows: g.selected_workflows.clone(),
    }
}

/// What differs between GitHub's group and the wanted settings. Pure.
pub fn diff(have: &RunnerGroupInfo, have_repos: &[u64], want: &GroupSettings) -> Vec<String> {
    let mut out = Vec::new();
    if have.visibility != want.visibility {
        out.push(format!(
            "visibility: {} -> {}",
            have.visibility, want.visibility
        ));
    }
    if want.visibility == "selected" {
        let mut have_repos = have_repos.to_vec();
        have_repos.sort_unstable();
        if have_repos != want.selected_repository_ids {
            out.push(format!(
                "repositories: {:?} -> {:?}",
                have_repos, want.selected_repository_ids
            ));
        }
    }
    if have.allows_public_repositories != want.allows_public_repositories {
        out.push(format!(
            "allows_public_repositories: {} -> {}",
            have.allows_public_repositories, want.allows_public_repositories
        ));
    }
    if have.restricted_to_workflows != want.restricted_to_workflows {
        out.push(format!(
            "restricted_to_workflows: {} -> {}",
            have.restricted_to_workflows, want.restricted_to_workflows
        ));
    }
    let mut a = have.selected_workflows.clone();
    let mut b = want.selected_workflows.clone();
    a.sort();
    b.sort();
    if want.restricted_to_workflows && a != b {
        out.push(format!("selected_workflows: {a:?} -> {b:?}"));
    }
    out
}

/// Synchronizes `groups`; `tick` is called once per group done (for a progress bar).
pub async fn sync(
    forge: &dyn Forge,
    groups: &[&RunnerGroup],
    dry_run: bool,
    tick: &(dyn Fn() + Sync),
) -> Vec<SyncRow> {
    let mut listed: HashMap<String, Vec<RunnerGroupInfo>> = HashMap::new();
    let mut rows = Vec::new();
    for g in groups {
        let Some(capable) = forge.groups() else {
            // A forge without runner groups: nothing to synchronize, and it says so.
            rows.push(SyncRow {
                group: g.name.clone(),
                scope: g.owner_label().to_string(),
                action: Action::Nothing,
                changes: vec![format!(
                    "{} has no runner groups; nothing to synchronize",
                    forge.name()
                )],
                github_id: None,
                error: None,
            });
            tick();
            continue;
        };
        let row = match one(capable, g, dry_run, &mut listed).await {
            Ok(row) => row,
            Err(e) => SyncRow {
                group: g.name.clone(),
                scope: g.owner_label().to_string(),
                action: Action::Error,
                changes: vec![e.to_string()],
                github_id: None,
                error: Some(e),
            },
        };
        rows.push(row);
        tick();
    }
    rows
}

async fn one(
    forge: &dyn RunnerGroups,
    g: &RunnerGroup,
    dry_run: bool,
    listed: &mut HashMap<String, Vec<RunnerGroupInfo>>,
) -> Result<SyncRow, ForgeError> {
    let org = &g.organization;
    if let Some(repo) = &g.repository {
        // Make sure the repository exists: its runners are where this group's go.
        forge.repository_id(org, repo).await?;
        return Ok(SyncRow {
            group: g.name.clone(),
            scope: format!("{org}/{repo}"),
            action: Action::Repository,
            changes: vec!["runners register on the repository; no runner group".into()],
            github_id: None,
            error: None,
        });
    }
    let mut ids = Vec::new();
    for name in g.selected_repositories.iter().flatten() {
        ids.push(forge.repository_id(org, name).await?);
    }
    let want = desired(g, ids);
    if !listed.contains_key(org) {
        listed.insert(org.clone(), forge.list_runner_groups(org).await?);
    }
    let existing = listed[org].iter().find(|x| x.name == g.name).cloned();
    let row = |action, changes, id| SyncRow {
        group: g.name.clone(),
        scope: org.clone(),
        action,
        changes,
        github_id: id,
        error: None,
    };
    match existing {
        None => {
            let id = if dry_run {
                None
            } else {
                Some(forge.create_runner_group(org, &want).await?.id)
            };
            Ok(row(Action::Create, vec!["new runner group".into()], id))
        }
        Some(have) => {
            let have_repos = if have.visibility == "selected" {
                forge.runner_group_repository_ids(org, have.id).await?
            } else {
                Vec::new()
            };
            let changes = diff(&have, &have_repos, &want);
            if changes.is_empty() {
                return Ok(row(Action::Unchanged, changes, Some(have.id)));
            }
            if !dry_run {
                forge.update_runner_group(org, have.id, &want).await?;
            }
            Ok(row(Action::Update, changes, Some(have.id)))
        }
    }
}

/// Creates or updates the scale sets of `routes` (`mode: scale_set` groups); with `dry_run`,
/// says what it would do. Deletes nothing. One row per scale set.
pub async fn scale_sets(
    routes: &[std::sync::Arc<crate::forge::scaleset::Routed>],
    dry_run: bool,
) -> Vec<SyncRow> {
    use crate::forge::scaleset::Ensured;
    let mut rows = Vec::new();
    for r in routes {
        let spec = &r.spec;
        let mut row = SyncRow {
            group: r.group.clone(),
            scope: format!("{}", r.scope()),
            action: Action::Unchanged,
            changes: Vec::new(),
            github_id: None,
            error: None,
        };
        let wanted = format!(
            "scale set `{}` in runner group `{}`, labels {:?}",
            spec.name, spec.runner_group, spec.labels
        );
        let done = if dry_run {
            match r
                .service
                .find_scale_set(&spec.name, &spec.runner_group)
                .await
            {
                Ok(None) => Ok((Action::Create, vec![wanted], None)),
                Ok(Some(have)) => match have.label_change(spec) {
                    None => Ok((Action::Unchanged, vec![], Some(have.id))),
                    Some((got, want)) => Ok((
                        Action::Update,
                        vec![format!("labels: {got:?} -> {want:?}")],
                        Some(have.id),
                    )),
                },
                Err(e) => Err(e),
            }
        } else {
            match r.service.ensure_scale_set(spec).await {
                Ok((s, how)) => {
                    r.know(s.id);
                    let action = match how {
                        Ensured::Created => Action::Create,
                        Ensured::Updated => Action::Update,
                        Ensured::Unchanged => Action::Unchanged,
                    };
                    let changes = match how {
                        Ensured::Unchanged => vec![],
                        _ => vec![wanted],
                    };
                    Ok((action, changes, Some(s.id)))
                }
                Err(e) => Err(e),
            }
        };
        match done {
            Ok((action, changes, id)) => {
                row.action = action;
                row.changes = changes;
                row.github_id = id;
            }
            Err(e) => {
                row.action = Action::Error;
                row.changes = vec![e.to_string()];
                row.error = Some(e);
            }
        }
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(vis: &str, public: bool, wf: &[&str]) -> RunnerGroupInfo {
        RunnerGroupInfo {
            id: 7,
            name: "g".into(),
            visibility: vis.into(),
            default: false,
            allows_public_repositories: public,
            restricted_to_workflows: !wf.is_empty(),
            selected_workflows: wf.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn want(vis: &str, repos: &[u64], public: bool, wf: &[&str]) -> GroupSettings {
        GroupSettings {
            name: "g".into(),
            visibility: vis.into(),
            selected_repository_ids: repos.to_vec(),
            allows_public_repositories: public,
            restricted_to_workflows: !wf.is_empty(),
            selected_workflows: wf.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn equal_settings_have_no_diff() {
        assert!(diff(&info("all", true, &[]), &[], &want("all", &[], true, &[])).is_empty());
        assert!(diff(
            &info("selected", false, &["a@b", "c@d"]),
            &[3, 1],
            &want("selected", &[1, 3], false, &["c@d", "a@b"])
        )
        .is_empty());
    }

    #[test]
    fn every_setting_is_compared() {
        let d = diff(
            &info("all", true, &[]),
            &[],
            &want(
                "selected",
                &[5],
                false,
                &["o/r/.github/workflows/x.yml@main"],
            ),
        );
        assert_eq!(
            d,
            [
                "visibility: all -> selected",
                "repositories: [] -> [5]",
                "allows_public_repositories: true -> false",
                "restricted_to_workflows: false -> true",
                "selected_workflows: [] -> [\"o/r/.github/workflows/x.yml@main\"]",
            ]
        );
    }
}
