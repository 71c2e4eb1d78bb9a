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
    // A scale set's jobs come from its message queue, never from a webhook.
    let webhook_groups: Vec<RunnerGroup> = groups
        .iter()
        .filter(|g| !g.scale_set_mode())
        .cloned()
        .collect();
    let all = groups;
    let groups = &webhook_groups[..];
    let admitting: Vec<RunnerGroup> = groups
        .iter()
        .filter(|g| refusal(g, repository, public).is_none())
        .cloned()
        .collect();
    if let Some(g) = group_for_job(&admitting, repository, labels) {
        return all.iter().find(|x| x.name == g.name).ok_or(NoGroup::Labels);
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

/// A runner's name: `{manager}-{group}-{L}{HASH}`, where `L` is the length of the manager's
/// name as one base-36 digit (names have 1 to 32 characters) and `HASH` ten hex digits of the
/// seed (`job:ID` for a queued job, a task id otherwise), so a retry makes the same name.
///
/// `L` makes ownership unambiguous although names may contain dashes: manager `rtci` with
/// group `gpu-x` and manager `rtci-gpu` with group `x` share `rtci-gpu-x-`, but their runners
/// end `-4…` and `-8…`.
pub fn runner_name(manager: &str, group: &str, seed: &str) -> String {
    format!(
        "{manager}-{group}-{}{}",
        length_digit(manager),
        seed_hash(seed)
    )
}

fn length_digit(manager: &str) -> char {
    char::from_digit((manager.len() % 36) as u32, 36).unwrap_or('0')
}

fn seed_hash(seed: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// The group whose runner `runner_name` is, when this manager gave that name by the current
/// rule ([`runner_name`]): the only names that are ours without a record of ours (a ghost on
/// the forge is deleted on this alone).
pub fn owned_group<'a>(
    manager: &str,
    groups: &'a [RunnerGroup],
    runner_name: &str,
) -> Option<&'a RunnerGroup> {
    let rest = runner_name.strip_prefix(&runner_prefix(manager))?;
    let digit = length_digit(manager);
    groups.iter().find(|g| {
        rest.strip_prefix(g.name.as_str())
            .and_then(|t| t.strip_prefix('-'))
            .and_then(|t| t.strip_prefix(digit))
            .is_some_and(|h| h.len() == 10 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// The group of a runner named like ours: by the current rule ([`owned_group`]), or by the
/// rule of runnerctl 0.1 (`{manager}-{group}-{suffix}`, which two managers whose names overlap
/// can both read as theirs). Acting on such a name needs our record of it (and its forge id);
/// only [`owned_group`]'s names are ours without one.
pub fn group_of_runner<'a>(
    manager: &str,
    groups: &'a [RunnerGroup],
    runner_name: &str,
) -> Option<&'a RunnerGroup> {
    if let Some(g) = owned_group(manager, groups, runner_name) {
        return Some(g);
    }
    let rest = runner_name.strip_prefix(&runner_prefix(manager))?;
    groups
        .iter()
        .filter(|g| {
            rest.strip_prefix(g.name.as_str())
                .is_some_and(|tail| tail.len() > 1 && tail.starts_with('-'))
        })
        .max_by_key(|g| g.name.len())
}

/// Whether a job event that names one of our runners is about that runner. GitHub gives a job
/// to any runner whose labels fit, and a repository's admin can register a runner of the same
/// name: the forge's id for the runner must be the one registered in our scope, and its runner
/// group ours (where the forge has groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRunner {
    Ours,
    /// Not our runner: the event is acknowledged and nothing is done; why, for the log.
    Impostor(String),
}

/// [`EventRunner`] from what is known: `registered`, the forge's id of our runner of that name
/// (from our record, or else our scope's listing); `our_group`, our group's id on the forge;
/// and the event's runner and group ids.
///
/// Taken by name: an event without a runner id (a task of runnerctl 0.1; GitHub's and Gitea's
/// deliveries carry it), and one about a runner of ours whose id we do not know and that our
/// scope does not list (`registered` None: one registered with a token that has already
/// removed itself after its job, as Gitea's ephemeral runners do). Such a runner is not
/// registered, so it runs no job: acting on the event cannot cost one.
pub fn event_runner(
    registered: Option<u64>,
    our_group: Option<u64>,
    event_runner_id: Option<u64>,
    event_group_id: Option<u64>,
) -> EventRunner {
    let Some(id) = event_runner_id else {
        return EventRunner::Ours;
    };
    if let Some(ours) = registered.filter(|ours| *ours != id) {
        return EventRunner::Impostor(format!(
            "the event's runner has id {id}; ours of that name has id {ours}"
        ));
    }
    match (our_group, event_group_id) {
        (Some(ours), Some(theirs)) if ours != theirs => EventRunner::Impostor(format!(
            "the event's runner is in runner group {theirs}; ours are in {ours}"
        )),
        _ => EventRunner::Ours,
    }
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
            github_app: None,
            warm_pool: None,
            mode: Default::default(),
            scale_set: None,
            backends: vec![],
            failover: Default::default(),
            runner_version: None,
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
    fn a_webhook_job_never_goes_to_a_scale_set_group() {
        let mut ss = group("ss", "octo", None, &["linux"]);
        ss.mode = crate::config::GroupMode::ScaleSet;
        let hooked = group("hooked", "octo", None, &["linux", "x64"]);
        let labels = vec!["linux".to_string()];
        assert_eq!(
            admitted_group(&[ss.clone(), hooked.clone()], "octo/x", &labels, None)
                .map(|g| g.name.as_str()),
            Ok("hooked"),
            "the scale-set group, though it fits better, takes no webhook job"
        );
        assert!(matches!(
            admitted_group(&[ss], "octo/x", &labels, None),
            Err(NoGroup::Labels)
        ));
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

    #[test]
    fn two_managers_whose_names_overlap_do_not_own_each_other_s_runners() {
        let gpu_x = [group("gpu-x", "o", None, &["a"])];
        let x = [group("x", "o", None, &["a"])];
        let theirs = runner_name("rtci-gpu", "x", "job:1");
        let mine = runner_name("rtci", "gpu-x", "job:1");
        assert!(theirs.starts_with("rtci-gpu-x-") && mine.starts_with("rtci-gpu-x-"));
        assert_ne!(theirs, mine);
        assert!(owned_group("rtci", &gpu_x, &theirs).is_none());
        assert!(owned_group("rtci-gpu", &x, &mine).is_none());
        assert_eq!(
            owned_group("rtci", &gpu_x, &mine).map(|g| g.name.as_str()),
            Some("gpu-x")
        );
        assert_eq!(
            owned_group("rtci-gpu", &x, &theirs).map(|g| g.name.as_str()),
            Some("x")
        );
        // Names of runnerctl 0.1 still map to a group, but are never owned without a record.
        assert!(owned_group("rtci", &gpu_x, "rtci-gpu-x-0123456789").is_none());
        assert!(group_of_runner("rtci", &gpu_x, "rtci-gpu-x-0123456789").is_some());
        // Every length of manager name gets its own digit.
        for len in 1..=32 {
            let m = "m".repeat(len);
            let n = runner_name(&m, "g", "s");
            assert_eq!(
                owned_group(&m, &[group("g", "o", None, &["a"])], &n).map(|g| g.name.clone()),
                Some("g".to_string()),
                "{n}"
            );
        }
    }

    #[test]
    fn a_job_event_is_about_our_runner_only_when_its_ids_match() {
        use EventRunner::*;
        assert_eq!(event_runner(Some(5), Some(2), Some(5), Some(2)), Ours);
        assert_eq!(event_runner(Some(5), None, Some(5), Some(1)), Ours);
        assert_eq!(event_runner(Some(5), Some(2), Some(5), None), Ours);
        assert!(matches!(
            event_runner(Some(5), Some(2), Some(6), Some(2)),
            Impostor(_)
        ));
        assert!(matches!(
            event_runner(Some(5), Some(2), Some(5), Some(3)),
            Impostor(_)
        ));
        // Our runner's id unknown and not listed: it runs no job; taken by name.
        assert_eq!(event_runner(None, Some(2), Some(5), Some(2)), Ours);
        assert!(matches!(
            event_runner(None, Some(2), Some(5), Some(3)),
            Impostor(_)
        ));
        // A task of runnerctl 0.1 carries no runner id: taken by name.
        assert_eq!(event_runner(None, None, None, None), Ours);
        assert_eq!(event_runner(Some(5), Some(2), None, Some(3)), Ours);
    }
}
