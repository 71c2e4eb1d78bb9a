//! The health check's decisions: a pure function from what Redis, GitHub and the backend say
//! about one group to the actions that bring it back in line. No I/O here.

use crate::backend::Instance;
use crate::forge::ForgeRunner;
use crate::model::{Runner, RunnerStatus};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one pass observed of one group.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// Redis seconds, after the observation.
    pub now: u64,
    /// Redis seconds when GitHub and the backend began to be listed. Anything started after it
    /// may be missing from the listings without being gone.
    pub listed_at: u64,
    pub min_runners: u32,
    pub max_runners: u32,
    pub time_to_start: u64,
    pub time_to_live: u64,
    /// How long a suspect (see [`suspects`]) must have been seen before it is deleted.
    pub cleanup_grace: u64,
    /// Until then (Redis seconds) nothing without a record is deleted: Redis appears to have
    /// lost its data.
    pub hold_until: u64,
    /// When each suspect was first seen (Redis seconds), by its key from [`suspects`].
    pub seen: &'a BTreeMap<String, u64>,
    /// The group's runner records, read after the listings.
    pub records: &'a [Runner],
    /// The group's runners on GitHub that carry our name prefix.
    pub forge: &'a [ForgeRunner],
    /// The group's instances on the backend (tagged as ours).
    pub instances: &'a [Instance],
    /// Jobs of the group queued on GitHub and not started yet.
    pub waiting_jobs: u32,
    /// Why the forge's runners could not be listed (Gitea before 1.24), when they could not:
    /// then `forge` is empty and only what the records and the backend prove is acted on.
    pub forge_blind: Option<&'a str>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create runners.
    Create { count: u32, reason: String },
    /// Delete a runner (GitHub registration, instance, record), unless it runs a job.
    Delete { name: String, reason: String },
    /// An instance tagged as ours with no record: a leaked VM. Its GitHub registration (when
    /// it has one) goes first, and GitHub refuses that while it runs a job.
    DeleteInstance {
        id: String,
        forge_id: Option<u64>,
        reason: String,
    },
    /// A GitHub runner of ours with no record: a ghost.
    DeleteForgeRunner {
        id: u64,
        name: String,
        reason: String,
    },
    /// Bring a record's status in line with GitHub.
    SetStatus {
        name: String,
        status: RunnerStatus,
        forge_id: Option<u64>,
    },
    /// A creation nobody finishes (its task died): make it again under its lock.
    Resume { name: String, reason: String },
    /// Suspects kept while Redis appears to have lost its data: no mass deletion.
    Hold { count: u32, reason: String },
    /// The pass did not run (GitHub's budget is low, say).
    Skip { reason: String },
    /// Replace the scope's reusable registration token (Gitea): it was handed out, or is old.
    ReplaceToken { scope: String, reason: String },
    /// Make warm-pool instances (see `manager::warm`).
    Warm {
        pool: crate::model::Pool,
        count: u32,
        reason: String,
    },
    /// Delete a warm-pool instance no job took.
    Retire { name: String, reason: String },
}

/// The runners of a scope that may be registering now with its registration token: records
/// being made, and instances started but not yet seen on the forge (until `time_to_start`
/// has passed, after which the health check deletes them anyway).
pub fn registering(
    records: &[Runner],
    forge: &[ForgeRunner],
    now: u64,
    time_to_start: u64,
) -> Vec<String> {
    records
        .iter()
        .filter(|r| match r.status {
            RunnerStatus::Reserved | RunnerStatus::Creating => true,
            RunnerStatus::Started => {
                let since = r.started_at.unwrap_or(r.created_at);
                !forge.iter().any(|f| f.name == r.name) && now < since + time_to_start
            }
            _ => false,
        })
        .map(|r| r.name.clone())
        .collect()
}

/// Whether a scope's reusable registration token is to be replaced now: it was handed out
/// `uses` times since it was last replaced (`replaced_at`, Redis seconds; `None`: never by
/// runnerctl), or is older than `every` seconds. Not while a runner is `registering` with it
/// (that would leave it unable to): then the pass says what it waits for. `None`: not due.
pub fn token_replacement(
    scope: &str,
    uses: u64,
    replaced_at: Option<u64>,
    now: u64,
    every: u64,
    registering: &[String],
) -> Option<Action> {
    let reason = match replaced_at {
        _ if uses > 0 => format!("handed out {uses} time(s) since it was last replaced"),
        None => "never replaced by runnerctl".to_string(),
        Some(t) if now >= t + every => format!("older than {every}s"),
        Some(_) => return None,
    };
    if let Some(first) = registering.first() {
        return Some(Action::Skip {
            reason: format!(
                "the registration token of {scope} is due ({reason}) but waits: runner {first} may be registering with it{}",
                if registering.len() > 1 {
                    format!(" (and {} more)", registering.len() - 1)
                } else {
                    String::new()
                }
            ),
        });
    }
    Some(Action::ReplaceToken {
        scope: scope.to_string(),
        reason,
    })
}

fn instance_key(i: &Instance) -> String {
    format!("instance:{}", i.id)
}

fn forge_key(f: &ForgeRunner) -> String {
    format!("runner:{}", f.id)
}

/// What a pass looks things up by, made once per pass: each look-up is then constant time, and
/// a pass linear in the number of runners (it compared every runner with every record and
/// listing entry: 7.4 s for 10,000 runners).
struct Index<'a> {
    record_names: HashSet<&'a str>,
    record_instances: HashSet<&'a str>,
    record_forge_ids: HashSet<u64>,
    /// The first position of each name and id in the forge's listing.
    forge_by_name: HashMap<&'a str, usize>,
    forge_by_id: HashMap<u64, usize>,
    instance_ids: HashSet<&'a str>,
    instance_runners: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    fn new(records: &'a [Runner], forge: &'a [ForgeRunner], instances: &'a [Instance]) -> Self {
        let mut forge_by_name = HashMap::with_capacity(forge.len());
        let mut forge_by_id = HashMap::with_capacity(forge.len());
        for (k, f) in forge.iter().enumerate() {
            forge_by_name.entry(f.name.as_str()).or_insert(k);
            forge_by_id.entry(f.id).or_insert(k);
        }
        Index {
            record_names: records.iter().map(|r| r.name.as_str()).collect(),
            record_instances: records
                .iter()
                .filter_map(|r| r.instance_id.as_deref())
                .collect(),
            record_forge_ids: records.iter().filter_map(|r| r.forge_id).collect(),
            forge_by_name,
            forge_by_id,
            instance_ids: instances.iter().map(|i| i.id.as_str()).collect(),
            instance_runners: instances.iter().filter_map(|i| i.runner()).collect(),
        }
    }

    /// An instance a record knows: by its id, or by the runner it is for.
    fn known_instance(&self, i: &Instance) -> bool {
        self.record_instances.contains(i.id.as_str())
            || i.runner().is_some_and(|n| self.record_names.contains(n))
    }

    /// A forge runner a record knows: by its name, or by its forge id.
    fn known_runner(&self, f: &ForgeRunner) -> bool {
        self.record_names.contains(f.name.as_str()) || self.record_forge_ids.contains(&f.id)
    }

    /// The first forge runner of the listing with the record's name or forge id.
    fn forge_of<'f>(&self, forge: &'f [ForgeRunner], r: &Runner) -> Option<&'f ForgeRunner> {
        let by_name = self.forge_by_name.get(r.name.as_str()).copied();
        let by_id = r.forge_id.and_then(|id| self.forge_by_id.get(&id).copied());
        match (by_name, by_id) {
            (Some(a), Some(b)) => Some(&forge[a.min(b)]),
            (a, b) => a.or(b).map(|k| &forge[k]),
        }
    }

    /// The forge runner of the listing named `name`.
    fn forge_named<'f>(&self, forge: &'f [ForgeRunner], name: &str) -> Option<&'f ForgeRunner> {
        self.forge_by_name.get(name).map(|k| &forge[*k])
    }
}

/// The keys of what the listings show with no record: instances and GitHub runners of ours.
/// Their first sight is remembered, so that one is deleted only once it has stayed so for the
/// grace.
pub fn suspects(records: &[Runner], forge: &[ForgeRunner], instances: &[Instance]) -> Vec<String> {
    let ix = Index::new(records, forge, instances);
    let mut out: Vec<String> = instances
        .iter()
        .filter(|i| !ix.known_instance(i))
        .map(instance_key)
        .collect();
    out.extend(forge.iter().filter(|f| !ix.known_runner(f)).map(forge_key));
    out
}

/// A creation this old (seconds) may have lost its task; resuming it is safe, since a live one
/// holds the runner's lock.
pub const STALLED_AFTER: u64 = 5;

fn is_pending(s: RunnerStatus) -> bool {
    matches!(
        s,
        RunnerStatus::Reserved | RunnerStatus::Creating | RunnerStatus::Started
    )
}

/// Decides what a pass over one group does. Pure and total.
pub fn plan(o: &Observed) -> Vec<Action> {
    let ix = Index::new(o.records, o.forge, o.instances);
    let mut out = Vec::new();
    let mut tally = Tally::default();
    for r in o.records {
        judge(o, &ix, r, &mut out, &mut tally);
    }
    orphans(o, &ix, &mut out);
    capacity(o, &tally, &mut out);
    match o.forge_blind {
        Some(why) => blind(why, out),
        None => out,
    }
}

/// A plan made without the forge's runners: a runner that never showed, that is old, whose job
/// seems over, or an instance without a record may all be running a job the records do not
/// know of, so none is deleted; what was left undone is said. Deletions the records and the
/// backend prove safe stay: finishing a delete already decided, a record whose instance is gone.
fn blind(why: &str, plan: Vec<Action>) -> Vec<Action> {
    let safe =
        |reason: &str| reason.starts_with("left in status") || reason == "its instance vanished";
    let (kept, dropped): (Vec<Action>, Vec<Action>) = plan.into_iter().partition(|a| match a {
        Action::Delete { reason, .. } => safe(reason),
        Action::DeleteInstance { .. } | Action::DeleteForgeRunner { .. } => false,
        _ => true,
    });
    let mut out = kept;
    if !dropped.is_empty() {
        out.push(Action::Skip {
            reason: format!(
                "{} deletion(s) left undone: {why}; judged by runnerctl's records alone, each might be running a job",
                dropped.len()
            ),
        });
    }
    out
}

/// What the records come to, for the capacity decision.
#[derive(Default)]
struct Tally<'a> {
    /// Runners this pass deletes.
    deleting: HashSet<&'a str>,
    /// Runners that will be idle for a job: idle now (with when they were made).
    idle: Vec<(&'a str, u64)>,
    /// … or on their way.
    pending: u32,
}

/// Why a record's runner must go at once, before anything else is looked at.
fn doomed(
    o: &Observed,
    ix: &Index,
    r: &Runner,
    f: Option<&ForgeRunner>,
    busy: bool,
) -> Option<String> {
    if r.status == RunnerStatus::Deleting || r.status == RunnerStatus::Failed {
        // A delete that did not finish (or a failure): finish it.
        return Some(format!("left in status {}", r.status));
    }
    // Started before the listings began: then its instance and registration must show.
    let observed = r.started_at.is_some_and(|t| t < o.listed_at);
    // An instance was made (the record has its id) but the backend no longer has it.
    let instance_gone = !busy
        && observed
        && !matches!(r.status, RunnerStatus::Reserved | RunnerStatus::Creating)
        && r.instance_id
            .as_ref()
            .is_some_and(|id| !ix.instance_ids.contains(id.as_str()));
    if instance_gone {
        return Some("its instance vanished".into());
    }
    let was_registered = matches!(r.status, RunnerStatus::Idle | RunnerStatus::Active)
        || (r.status == RunnerStatus::Started && r.forge_id.is_some());
    if f.is_none() && observed && was_registered {
        // Registered before the listing and GitHub no longer knows it: an ephemeral runner
        // whose job ended (its webhooks lost, maybe before a pass ever saw it online), or
        // one removed by hand. It can never take a job again.
        return Some("gone from GitHub".into());
    }
    let online = f.is_some_and(|f| f.online());
    let age = o.now.saturating_sub(r.created_at);
    if !online && !busy && age > o.time_to_start && is_pending(r.status) {
        return Some(format!("did not come online within {}s", o.time_to_start));
    }
    None
}

/// The actions for one record, and what it adds to the tally.
fn judge<'a>(o: &Observed, ix: &Index, r: &'a Runner, out: &mut Vec<Action>, t: &mut Tally<'a>) {
    let f = ix.forge_of(o.forge, r);
    let age = o.now.saturating_sub(r.created_at);
    if matches!(r.status, RunnerStatus::Warming | RunnerStatus::Warm) {
        // A warm-pool instance: the pool's own rules (`manager::warm`) judge it.
        return;
    }
    let busy = f.is_some_and(|f| f.busy) || r.status == RunnerStatus::Active;
    if busy && matches!(r.status, RunnerStatus::Deleting | RunnerStatus::Failed) {
        // Never delete a runner that runs a job: wait for it to finish.
        return;
    }
    let mut delete = |out: &mut Vec<Action>, reason: String| {
        out.push(Action::Delete {
            name: r.name.clone(),
            reason,
        });
        t.deleting.insert(&r.name);
    };
    if let Some(reason) = doomed(o, ix, r, f, busy) {
        return delete(out, reason);
    }
    if matches!(r.status, RunnerStatus::Reserved | RunnerStatus::Creating) && age >= STALLED_AFTER {
        // Its creator holds the runner's lock while it works; if it died, this finishes it.
        out.push(Action::Resume {
            name: r.name.clone(),
            reason: format!("still {} after {age}s", r.status),
        });
    }
    if !busy && age > o.time_to_live {
        return delete(
            out,
            format!("older than time_to_live ({}s)", o.time_to_live),
        );
    }
    let online = f.is_some_and(|f| f.online());
    let set = |status| Action::SetStatus {
        name: r.name.clone(),
        status,
        forge_id: f.map(|f| f.id),
    };
    if r.status != RunnerStatus::Idle && r.status != RunnerStatus::Active && online && !busy {
        out.push(set(RunnerStatus::Idle));
    }
    if busy && r.status != RunnerStatus::Active {
        out.push(set(RunnerStatus::Active));
    }
    let active_before = r.online_at.is_some_and(|t| t < o.listed_at);
    if r.status == RunnerStatus::Active && active_before && f.is_some_and(|f| !f.busy) {
        // The job ended but no `completed` arrived: an ephemeral runner is done.
        return delete(out, "its job ended".into());
    }
    if !busy {
        if online {
            t.idle.push((&r.name, r.created_at));
        } else {
            t.pending += 1;
        }
    }
}

/// Leaked instances and ghost runners: ours by tag or name, but with no record. Deleted only
/// once seen so for the grace, never while its runner runs a job, and not at all while Redis
/// appears to have lost its data.
fn orphans(o: &Observed, ix: &Index, out: &mut Vec<Action>) {
    let due = |key: String| {
        o.seen
            .get(&key)
            .is_some_and(|t| o.now >= t.saturating_add(o.cleanup_grace))
    };
    let holding = o.now < o.hold_until;
    let mut held = 0u32;
    for i in o.instances {
        if ix.known_instance(i) {
            continue;
        }
        let registration = i.runner().and_then(|n| ix.forge_named(o.forge, n));
        if registration.is_some_and(|f| f.busy) {
            continue;
        }
        if holding {
            held += 1;
        } else if due(instance_key(i)) {
            out.push(Action::DeleteInstance {
                id: i.id.clone(),
                forge_id: registration.map(|f| f.id),
                reason: format!(
                    "instance of runner {} has no record",
                    i.runner().unwrap_or("?")
                ),
            });
        }
    }
    for f in o.forge {
        if ix.known_runner(f) || f.busy {
            continue;
        }
        let has_instance = ix.instance_runners.contains(f.name.as_str());
        if has_instance {
            continue; // goes with its instance, above
        }
        if holding {
            held += 1;
        } else if due(forge_key(f)) {
            out.push(Action::DeleteForgeRunner {
                id: f.id,
                name: f.name.clone(),
                reason: "GitHub runner of ours has no record".into(),
            });
        }
    }
    if held > 0 {
        out.push(Action::Hold {
            count: held,
            reason: format!(
                "Redis appears to have lost its data: {held} instance(s) or runner(s) with no record are kept until {} (Redis time)",
                o.hold_until
            ),
        });
    }
}

/// Capacity: keep min_runners idle, make one per waiting job, never above max_runners.
fn capacity(o: &Observed, t: &Tally, out: &mut Vec<Action>) {
    let live = o.records.len() as u32 - t.deleting.len() as u32;
    let ready = t.idle.len() as u32 + t.pending;
    let wanted = o.min_runners.max(o.waiting_jobs);
    let room = o.max_runners.saturating_sub(live);
    let replacing = o
        .records
        .iter()
        .filter(|r| t.deleting.contains(&r.name.as_str()) && is_pending(r.status))
        .count() as u32;
    if ready < wanted {
        let count = (wanted - ready).min(room);
        if count > 0 {
            out.push(Action::Create {
                count,
                reason: if replacing > 0 {
                    "replace runners that did not start, keep up with waiting jobs and min_runners"
                        .into()
                } else if o.waiting_jobs > ready {
                    format!("{} job(s) wait", o.waiting_jobs)
                } else {
                    format!("keep {} idle runner(s)", o.min_runners)
                },
            });
        }
    } else if o.waiting_jobs == 0 && t.idle.len() as u32 > o.min_runners {
        // Too many idle runners and nothing waits: the newest extras go.
        let mut extra = t.idle.clone();
        extra.sort_by_key(|(_, created)| std::cmp::Reverse(*created));
        let surplus = (t.idle.len() as u32 - o.min_runners) as usize;
        for (name, _) in extra.into_iter().take(surplus) {
            out.push(Action::Delete {
                name: name.to_string(),
                reason: format!("idle above min_runners ({})", o.min_runners),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::RunnerState;
    use std::collections::BTreeMap;

    const NOW: u64 = 1_000_000;

    fn rec(name: &str, status: RunnerStatus, age: u64) -> Runner {
        let mut r = Runner::reserved(name, "g", "fake", vec!["x".into()], None, NOW - age);
        r.status = status;
        r.instance_id = (!matches!(status, RunnerStatus::Reserved | RunnerStatus::Creating))
            .then(|| format!("i-{name}"));
        r.started_at = r.instance_id.as_ref().map(|_| NOW - age);
        r.online_at =
            matches!(status, RunnerStatus::Idle | RunnerStatus::Active).then_some(NOW - age);
        let h = name
            .bytes()
            .fold(7u64, |h, b| (h * 31 + u64::from(b)) % 1_000_003);
        r.forge_id = Some(h * 100_000 + age);
        r
    }

    fn gh(r: &Runner, online: bool, busy: bool) -> ForgeRunner {
        ForgeRunner {
            id: r.forge_id.unwrap(),
            name: r.name.clone(),
            state: if online {
                RunnerState::Online
            } else {
                RunnerState::Offline
            },
            busy,
            labels: vec![],
            runner_group_id: Some(1),
        }
    }

    fn inst(r: &Runner) -> Instance {
        let mut tags = BTreeMap::new();
        tags.insert(crate::backend::TAG_RUNNER.to_string(), r.name.clone());
        Instance {
            id: r.instance_id.clone().unwrap(),
            state: crate::backend::InstanceState::Running,
            tags,
            created_at: None,
            spot_fallback: false,
            identity: None,
            address: None,
        }
    }

    /// Every suspect seen long ago.
    static SEEN_LONG_AGO: std::sync::LazyLock<BTreeMap<String, u64>> =
        std::sync::LazyLock::new(BTreeMap::new);

    fn obs<'a>(
        records: &'a [Runner],
        forge: &'a [ForgeRunner],
        instances: &'a [Instance],
        min: u32,
        waiting: u32,
    ) -> Observed<'a> {
        Observed {
            now: NOW,
            listed_at: NOW,
            min_runners: min,
            max_runners: 5,
            time_to_start: 600,
            time_to_live: 43200,
            cleanup_grace: 0,
            hold_until: 0,
            seen: &SEEN_LONG_AGO,
            records,
            forge,
            instances,
            waiting_jobs: waiting,
            forge_blind: None,
        }
    }

    fn deletes(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn creates(actions: &[Action]) -> u32 {
        actions
            .iter()
            .map(|a| match a {
                Action::Create { count, .. } => *count,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn a_healthy_group_needs_nothing() {
        let r = [
            rec("a", RunnerStatus::Idle, 60),
            rec("b", RunnerStatus::Active, 60),
        ];
        let f = [gh(&r[0], true, false), gh(&r[1], true, true)];
        let i = [inst(&r[0]), inst(&r[1])];
        assert_eq!(plan(&obs(&r, &f, &i, 1, 0)), vec![]);
    }

    #[test]
    fn a_runner_that_never_came_online_is_replaced() {
        let r = [rec("slow", RunnerStatus::Started, 601)];
        let i = [inst(&r[0])];
        let f = [gh(&r[0], false, false)];
        let a = plan(&obs(&r, &f, &i, 0, 1));
        assert_eq!(deletes(&a), ["slow"]);
        assert_eq!(creates(&a), 1, "its job still waits");
        // Not yet late: left alone.
        let r = [rec("young", RunnerStatus::Started, 599)];
        let i = [inst(&r[0])];
        let f = [gh(&r[0], false, false)];
        assert_eq!(plan(&obs(&r, &f, &i, 0, 1)), vec![]);
    }

    #[test]
    fn old_runners_go_unless_they_run_a_job() {
        let r = [
            rec("old-idle", RunnerStatus::Idle, 43201),
            rec("old-busy", RunnerStatus::Active, 43201),
        ];
        let f = [gh(&r[0], true, false), gh(&r[1], true, true)];
        let i = [inst(&r[0]), inst(&r[1])];
        assert_eq!(deletes(&plan(&obs(&r, &f, &i, 0, 0))), ["old-idle"]);
    }

    #[test]
    fn min_runners_are_kept_idle_within_max() {
        let a = plan(&obs(&[], &[], &[], 2, 0));
        assert_eq!(creates(&a), 2);
        // Pending runners count as coming.
        let r = [rec("p", RunnerStatus::Creating, 5)];
        assert_eq!(creates(&plan(&obs(&r, &[], &[], 2, 0))), 1);
        // Never above max_runners.
        let busy: Vec<Runner> = (0..5)
            .map(|n| rec(&format!("b{n}"), RunnerStatus::Active, 9))
            .collect();
        let f: Vec<ForgeRunner> = busy.iter().map(|r| gh(r, true, true)).collect();
        let i: Vec<Instance> = busy.iter().map(inst).collect();
        assert_eq!(creates(&plan(&obs(&busy, &f, &i, 2, 3))), 0);
    }

    #[test]
    fn idle_runners_above_min_go_when_no_job_waits() {
        let r = [
            rec("a", RunnerStatus::Idle, 300),
            rec("b", RunnerStatus::Idle, 200),
            rec("c", RunnerStatus::Idle, 100),
        ];
        let f: Vec<ForgeRunner> = r.iter().map(|x| gh(x, true, false)).collect();
        let i: Vec<Instance> = r.iter().map(inst).collect();
        assert_eq!(
            deletes(&plan(&obs(&r, &f, &i, 1, 0))),
            ["c", "b"],
            "newest first"
        );
        assert!(
            deletes(&plan(&obs(&r, &f, &i, 1, 2))).is_empty(),
            "jobs wait: keep them"
        );
    }

    #[test]
    fn leaks_and_ghosts_on_both_sides_are_cleaned() {
        let kept = rec("kept", RunnerStatus::Idle, 60);
        let orphan = rec("orphan", RunnerStatus::Idle, 60);
        let ghost = rec("ghost", RunnerStatus::Idle, 60);
        let busy_ghost = rec("busyghost", RunnerStatus::Idle, 60);
        let records = [kept.clone()];
        let f = [
            gh(&kept, true, false),
            gh(&ghost, true, false),
            gh(&busy_ghost, true, true),
        ];
        let i = [inst(&kept), inst(&orphan)];
        let seen = all_seen(&records, &f, &i, NOW - 1);
        let a = plan(&Observed {
            seen: &seen,
            ..obs(&records, &f, &i, 1, 0)
        });
        assert!(a.contains(&Action::DeleteInstance {
            id: "i-orphan".into(),
            forge_id: None,
            reason: "instance of runner orphan has no record".into()
        }));
        assert!(a
            .iter()
            .any(|x| matches!(x, Action::DeleteForgeRunner { name, .. } if name == "ghost")));
        assert!(
            !a.iter().any(
                |x| matches!(x, Action::DeleteForgeRunner { name, .. } if name == "busyghost")
            ),
            "a runner running a job is never deleted"
        );
    }

    fn all_seen(
        records: &[Runner],
        forge: &[ForgeRunner],
        instances: &[Instance],
        at: u64,
    ) -> BTreeMap<String, u64> {
        suspects(records, forge, instances)
            .into_iter()
            .map(|k| (k, at))
            .collect()
    }

    #[test]
    fn a_leaked_instance_whose_runner_runs_a_job_is_kept() {
        let orphan = rec("orphan", RunnerStatus::Active, 60);
        let f = [gh(&orphan, true, true)];
        let i = [inst(&orphan)];
        let seen = all_seen(&[], &f, &i, NOW - 10_000);
        let a = plan(&Observed {
            seen: &seen,
            ..obs(&[], &f, &i, 0, 0)
        });
        assert!(a.is_empty(), "{a:?}");
        // Idle, it goes with its registration first.
        let f = [gh(&orphan, true, false)];
        let seen = all_seen(&[], &f, &i, NOW - 10_000);
        let a = plan(&Observed {
            seen: &seen,
            ..obs(&[], &f, &i, 0, 0)
        });
        assert_eq!(
            a,
            [Action::DeleteInstance {
                id: "i-orphan".into(),
                forge_id: orphan.forge_id,
                reason: "instance of runner orphan has no record".into()
            }]
        );
    }

    #[test]
    fn suspects_wait_for_the_grace_and_the_data_loss_hold() {
        let orphan = rec("orphan", RunnerStatus::Idle, 60);
        let ghost = rec("ghost", RunnerStatus::Idle, 60);
        let f = [gh(&orphan, true, false), gh(&ghost, false, false)];
        let i = [inst(&orphan)];
        // Seen just now: within the grace.
        let seen = all_seen(&[], &f, &i, NOW - 10);
        let fresh = Observed {
            seen: &seen,
            cleanup_grace: 300,
            ..obs(&[], &f, &i, 0, 0)
        };
        assert!(plan(&fresh).is_empty(), "{:?}", plan(&fresh));
        // Past the grace, but Redis lost its data: held, and said so.
        let seen = all_seen(&[], &f, &i, NOW - 1000);
        let held = Observed {
            seen: &seen,
            cleanup_grace: 300,
            hold_until: NOW + 60,
            ..obs(&[], &f, &i, 0, 0)
        };
        let a = plan(&held);
        assert!(
            matches!(a.as_slice(), [Action::Hold { count: 2, .. }]),
            "{a:?}"
        );
        // After both, they go.
        let a = plan(&Observed {
            hold_until: NOW - 1,
            ..held
        });
        assert_eq!(a.len(), 2, "{a:?}");
    }

    #[test]
    fn a_started_runner_whose_registration_is_gone_goes_at_once() {
        // Its job ran and ended between two passes, every webhook of it lost.
        let r = [rec("done", RunnerStatus::Started, 20)];
        let i = [inst(&r[0])];
        let a = plan(&obs(&r, &[], &i, 0, 0));
        assert_eq!(deletes(&a), ["done"], "{a:?}");
    }

    #[test]
    fn a_runner_started_during_the_pass_is_not_taken_as_vanished() {
        let mut fresh = rec("fresh", RunnerStatus::Started, 1);
        fresh.started_at = Some(NOW);
        let r = [fresh];
        let a = plan(&Observed {
            listed_at: NOW - 1,
            ..obs(&r, &[], &[], 0, 1)
        });
        assert!(deletes(&a).is_empty(), "{a:?}");
    }

    #[test]
    fn a_record_whose_instance_vanished_goes() {
        let r = [
            rec("gone", RunnerStatus::Idle, 60),
            rec("started", RunnerStatus::Started, 60),
        ];
        let f = [gh(&r[0], true, false), gh(&r[1], false, false)];
        assert_eq!(deletes(&plan(&obs(&r, &f, &[], 0, 0))), ["gone", "started"]);
    }

    #[test]
    fn statuses_follow_github() {
        let r = [
            rec("s", RunnerStatus::Started, 30),
            rec("t", RunnerStatus::Idle, 30),
        ];
        let f = [gh(&r[0], true, false), gh(&r[1], true, true)];
        let i = [inst(&r[0]), inst(&r[1])];
        let a = plan(&obs(&r, &f, &i, 2, 0));
        assert!(a.contains(&Action::SetStatus {
            name: "s".into(),
            status: RunnerStatus::Idle,
            forge_id: r[0].forge_id
        }));
        assert!(a.contains(&Action::SetStatus {
            name: "t".into(),
            status: RunnerStatus::Active,
            forge_id: r[1].forge_id
        }));
    }

    #[test]
    fn runners_gone_from_github_after_their_job_go() {
        let r = [
            rec("done", RunnerStatus::Active, 60),
            rec("idle", RunnerStatus::Idle, 60),
        ];
        let i = [inst(&r[0]), inst(&r[1])];
        assert_eq!(deletes(&plan(&obs(&r, &[], &i, 0, 0))), ["done", "idle"]);
    }

    #[test]
    fn unfinished_deletes_are_finished() {
        let r = [
            rec("d", RunnerStatus::Deleting, 30),
            rec("f", RunnerStatus::Failed, 30),
        ];
        assert_eq!(deletes(&plan(&obs(&r, &[], &[], 0, 0))), ["d", "f"]);
    }

    /// Exhaustive over small worlds: the plan never deletes a busy runner, never creates above
    /// max_runners, and never both creates and trims idle runners.
    #[test]
    fn invariants_hold_over_every_small_world() {
        let statuses = RunnerStatus::ALL;
        let mut worlds = 0;
        for s1 in statuses {
            for s2 in statuses {
                for flags in 0u32..64 {
                    for min in 0..3 {
                        for waiting in 0..3 {
                            let bit = |n: u32| flags & (1 << n) != 0;
                            let r = [
                                rec("a", s1, if bit(0) { 50_000 } else { 700 }),
                                rec("b", s2, if bit(1) { 30 } else { 900 }),
                            ];
                            let f: Vec<ForgeRunner> = r
                                .iter()
                                .enumerate()
                                .filter(|(n, _)| bit(2 + *n as u32))
                                .map(|(n, x)| gh(x, true, bit(4 + n as u32)))
                                .collect();
                            let i: Vec<Instance> = r
                                .iter()
                                .filter(|x| x.instance_id.is_some())
                                .map(inst)
                                .collect();
                            let o = obs(&r, &f, &i, min, waiting);
                            let a = plan(&o);
                            worlds += 1;
                            for d in deletes(&a) {
                                let busy = f.iter().any(|x| x.name == d && x.busy);
                                assert!(!busy, "deleted busy {d} in {o:?}: {a:?}");
                            }
                            let live = r.len() as u32;
                            assert!(
                                creates(&a)
                                    <= o.max_runners.saturating_sub(live.min(o.max_runners)) + live,
                                "{a:?}"
                            );
                            let trims = a.iter().any(|x| matches!(x, Action::Delete { reason, .. } if reason.starts_with("idle above")));
                            assert!(!(trims && creates(&a) > 0), "{a:?}");
                        }
                    }
                }
            }
        }
        assert!(worlds > 10_000);
    }

    #[test]
    fn a_used_token_is_replaced_only_once_nobody_registers_with_it() {
        let busy = vec!["m-g-1".to_string()];
        assert_eq!(
            token_replacement("orgs/o", 0, Some(100), 200, 3600, &[]),
            None
        );
        assert!(matches!(
            token_replacement("orgs/o", 2, Some(100), 200, 3600, &[]),
            Some(Action::ReplaceToken { .. })
        ));
        assert!(matches!(
            token_replacement("orgs/o", 0, Some(100), 3700, 3600, &[]),
            Some(Action::ReplaceToken { .. })
        ));
        assert!(matches!(
            token_replacement("orgs/o", 0, None, 1, 3600, &[]),
            Some(Action::ReplaceToken { .. })
        ));
        match token_replacement("orgs/o", 1, Some(100), 200, 3600, &busy) {
            Some(Action::Skip { reason }) => assert!(reason.contains("m-g-1"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_plan_blind_to_the_forge_deletes_only_what_the_records_prove() {
        // Never came online, as far as an empty listing goes: on a blind pass it may be idle or
        // just taking a job, so it stays, and the pass says why.
        let mut old = rec("stuck", RunnerStatus::Started, 10_000);
        old.forge_id = None;
        let mut gone = rec("gone", RunnerStatus::Started, 10_000);
        gone.forge_id = None;
        let records = [old.clone(), gone];
        let i = [inst(&old)];
        let seen_plan = plan(&obs(&records, &[], &i, 0, 0));
        assert!(
            deletes(&seen_plan).contains(&"stuck".to_string()),
            "{seen_plan:?}"
        );
        let a = plan(&Observed {
            forge_blind: Some("listing runners needs Gitea 1.24"),
            ..obs(&records, &[], &i, 0, 0)
        });
        assert_eq!(deletes(&a), ["gone"], "{a:?}");
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Skip { reason } if reason.contains("Gitea 1.24"))),
            "{a:?}"
        );
    }
}
