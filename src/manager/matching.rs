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
        .filter(|g| g.organization.eq_ignore_ascii_case(owner))
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
    use crate::config::{FakeSpec, InstanceSpec};

    fn group(name: &str, org: &str, repo: Option<&str>, labels: &[&str]) -> RunnerGroup {
        RunnerGroup {
            name: name.into(),
            organization: org.into(),
            repository: repo.map(String::from),
            selected_repositories: None,
            allow_public_repositories: true,
            selected_workflows: vec![],
            max_runners: 5,
            min_runners: 0,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            backend: "fake".into(),
            spec: InstanceSpec::Fake(FakeSpec::default()),
            bootstrap_template: None,
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
