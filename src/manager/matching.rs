//! Which runner group a job belongs to, and which group a runner name belongs to. Pure.
//!
//! The rule (also in the README): a queued job belongs to a group of the job's organization
//! (and, for a group scoped to one repository, of that repository) whose labels include every
//! label the job asks for, compared without regard to case. When several groups qualify, the one
//! with the fewest labels beyond those asked for wins; ties go to the group listed first.

use crate::config::RunnerGroup;

/// The group for a job of `repository` (`owner/name`) asking for `labels`.
pub fn group_for_job<'a>(
    groups: &'a [RunnerGroup],
    repository: &str,
    labels: &[String],
) -> Option<&'a RunnerGroup> {
    if labels.is_empty() {
        return None;
    }
    let (owner, repo) = repository.split_once('/').unwrap_or((repository, ""));
    let wanted: Vec<String> = labels.iter().map(|l| l.to_lowercase()).collect();
    groups
        .iter()
        .filter(|g| g.serves_owner(owner))
        .filter(|g| {
            g.repository
                .as_deref()
                .is_none_or(|r| r.eq_ignore_ascii_case(repo))
        })
        .filter_map(|g| {
            let have: Vec<String> = g.labels.iter().map(|l| l.to_lowercase()).collect();
            wanted
                .iter()
                .all(|w| have.contains(w))
                .then(|| (extra_labels(&have, &wanted), g))
        })
        // min_by_key keeps the first of equal keys: configuration order breaks ties.
        .min_by_key(|(extra, _)| *extra)
        .map(|(_, g)| g)
}

/// Why no group takes a queued job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoGroup {
    /// No group of its organization (and repository) has every label it asks for.
    Labels,
    /// Groups have its labels, but none admits its repository; says which and why.
    NotAdmitted(String),
}

/// Why `g` does not admit jobs of `repository` (`owner/name`): not among its
/// `selected_repositories`, or public while `allow_public_repositories` is off. `public` is the
/// repository's visibility when known. GitHub would never give such a job to the group's
/// runners, so a runner made for it would only idle.
pub fn refusal(g: &RunnerGroup, repository: &str, public: Option<bool>) -> Option<String> {
    let repo = repository.split_once('/').map_or(repository, |(_, r)| r);
    if let Some(list) = &g.selected_repositories {
        if !list.iter().any(|r| r.eq_ignore_ascii_case(repo)) {
            return Some(format!(
                "group `{}` does not admit repository {repository} (not in selected_repositories)",
                g.name
            ));
        }
    }
    if public == Some(true) && !g.allow_public_repositories {
        return Some(format!(
            "group `{}` does not admit public repository {repository} (allow_public_repositories is false)",
            g.name
        ));
    }
    None
}

/// Why `g` does not admit a job of `run` in `repository` (`owner/name`): its
/// `selected_workflows` (`owner/repo/.github/workflows/x.yml@ref`, the ref a branch name or
/// `refs/heads/…`) name other workflows. `None`: admitted (or no such list).
pub fn workflow_refusal(
    g: &RunnerGroup,
    repository: &str,
    run: &crate::forge::WorkflowRun,
) -> Option<String> {
    if g.selected_workflows.is_empty() {
        return None;
    }
    let path = run.path.split('@').next().unwrap_or(&run.path);
    let file = format!("{repository}/{path}");
    let ok = g.selected_workflows.iter().any(|w| {
        let (wf, r) = w.rsplit_once('@').unwrap_or((w.as_str(), ""));
        let branch = run.head_branch.as_deref().unwrap_or("");
        wf.eq_ignore_ascii_case(&file)
            && (r == branch || r.strip_prefix("refs/heads/") == Some(branch))
    });
    (!ok).then(|| {
        format!(
            "group `{}` does not admit workflow {file}@{} (not in selected_workflows)",
            g.name,
            run.head_branch.as_deref().unwrap_or("?")
        )
    })
}

/// The group for a queued job by labels (as [`group_for_job`]) among the groups that admit its
/// repository.
pub fn admitted_group<'a>(
    groups: &'a [RunnerGroup],
    repository: &str,
    labels: &[String],
    public: Option<bool>,
) -> Result<&'a RunnerGroup, NoGroup> {
    let admitting: Vec<RunnerGroup> = groups
        .iter()
        .filter(|g| refusal(g, repository, public).is_none())
        .cloned()
        .collect();
    if let Some(g) = group_for_job(&admitting, repository, labels) {
        return groups
            .iter()
            .find(|x| x.name == g.name)
            .ok_or(NoGroup::Labels);
    }
    match group_for_job(groups, repository, labels) {
        Some(g) => Err(NoGroup::NotAdmitted(
            refusal(g, repository, public).unwrap_or_default(),
        )),
        None => Err(NoGroup::Labels),
    }
}

fn extra_labels(have: &[String], wanted: &[String]) -> usize {
    let mut distinct: Vec<&String> = have.iter().collect();
    distinct.sort();
    distinct.dedup();
    distinct.iter().filter(|h| !wanted.contains(h)).count()
}

/// The prefix of every runner name this manager gives: `{manager}-`.
pub fn runner_prefix(manager: &str) -> String {
    format!("{manager}-")
}

/// The group of one of our runners, from its name `{manager}-{group}-{suffix}`; None for a
/// runner that is not ours.
pub fn group_of_runner<'a>(
    manager: &str,
    groups: &'a [RunnerGroup],
    runner_name: &str,
) -> Option<&'a RunnerGroup> {
    let rest = runner_name.strip_prefix(&runner_prefix(manager))?;
    groups
        .iter()
        .filter(|g| {
            rest.strip_prefix(g.name.as_str())
                .is_some_and(|tail| tail.len() > 1 && tail.starts_with('-'))
        })
        .max_by_key(|g| g.name.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Typed;

    fn group(name: &str, org: &str, repo: Option<&str>, labels: &[&str]) -> RunnerGroup {
        RunnerGroup {
            name: name.into(),
            scope: if repo.is_some() {
                crate::config::GroupScope::Repository
            } else {
                crate::config::GroupScope::Organization
            },
            organization: org.into(),
            repository: repo.map(String::from),
            selected_repositories: None,
            allow_public_repositories: true,
            selected_workflows: vec![],
            max_runners: 5,
            min_runners: 0,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            backend: "fake".into(),
            spec: Typed::new("fake", serde_json::json!({})),
            bootstrap_template: None,
            container_jobs: None,
        }
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn pick<'a>(groups: &'a [RunnerGroup], repo: &str, l: &[&str]) -> Option<&'a str> {
        group_for_job(groups, repo, &labels(l)).map(|g| g.name.as_str())
    }

    #[test]
    fn every_asked_label_must_be_present() {
        let g = [group("small", "octo", None, &["self-hosted", "linux"])];
        assert_eq!(pick(&g, "octo/x", &["self-hosted", "linux"]), Some("small"));
        assert_eq!(pick(&g, "octo/x", &["linux"]), Some("small"));
        assert_eq!(pick(&g, "octo/x", &["self-hosted", "gpu"]), None);
        assert_eq!(pick(&g, "octo/x", &["ubuntu-latest"]), None);
        assert_eq!(
            pick(&g, "octo/x", &[]),
            None,
            "a job with no labels is not ours"
        );
    }

    #[test]
    fn labels_compare_without_case() {
        let g = [group("small", "Octo", None, &["Self-Hosted", "Linux"])];
        assert_eq!(pick(&g, "octo/x", &["self-hosted", "LINUX"]), Some("small"));
    }

    #[test]
    fn fewest_extra_labels_win_then_configuration_order() {
        let g = [
            group(
                "big",
                "octo",
                None,
                &["self-hosted", "linux", "x64", "large"],
            ),
            group("small", "octo", None, &["self-hosted", "linux", "x64"]),
            group("other", "octo", None, &["self-hosted", "linux", "arm64"]),
        ];
        assert_eq!(pick(&g, "octo/x", &["self-hosted", "linux"]), Some("small"));
        assert_eq!(pick(&g, "octo/x", &["large"]), Some("big"));
        assert_eq!(pick(&g, "octo/x", &["arm64"]), Some("other"));
        // small and other both have one extra label: the first listed wins.
        assert_eq!(
            pick(&g, "octo/x", &["self-hosted", "linux", "x64"]),
            Some("small")
        );
        let tie = [
            group("first", "octo", None, &["a", "b"]),
            group("second", "octo", None, &["a", "c"]),
        ];
        assert_eq!(pick(&tie, "octo/x", &["a"]), Some("first"));
    }

    #[test]
    fn organization_and_repository_scope_apply() {
        let g = [
            group("repo-only", "octo", Some("app"), &["self-hosted", "linux"]),
            group("org", "octo", None, &["self-hosted", "linux", "x64"]),
            group("elsewhere", "other", None, &["self-hosted"]),
        ];
        assert_eq!(pick(&g, "octo/app", &["self-hosted"]), Some("repo-only"));
        assert_eq!(pick(&g, "octo/web", &["self-hosted"]), Some("org"));
        assert_eq!(pick(&g, "other/web", &["self-hosted"]), Some("elsewhere"));
        assert_eq!(pick(&g, "third/web", &["self-hosted"]), None);
    }

    #[test]
    fn runner_names_map_back_to_their_group() {
        let g = [
            group("linux", "o", None, &["a"]),
            group("linux-large", "o", None, &["b"]),
        ];
        let name = |n: &str| group_of_runner("rm", &g, n).map(|g| g.name.as_str());
        assert_eq!(name("rm-linux-3f2a"), Some("linux"));
        assert_eq!(name("rm-linux-large-3f2a"), Some("linux-large"));
        assert_eq!(name("rm-linux-"), None);
        assert_eq!(name("other-linux-3f2a"), None);
        assert_eq!(name("GitHub Actions 5"), None);
        assert_eq!(name("rm-windows-1"), None);
    }
}
