//! A group's warm pool: what a pass does to bring it to its target. A pure function from the
//! group's records, the backend's instances and the target of the hour to actions; the health
//! pass and the task that took a warm instance carry them out (`ops::warm`).
//!
//! The rules it keeps: only a warm instance no job took (status `warming` or `warm`, no
//! registration, no credential sealed) is ever retired, and the store's step that retires it
//! refuses once a job took it; warm instances hold slots, so a pool never grows past
//! `max_runners` and never takes the room waiting jobs need.

use crate::backend::{Instance, WarmSupport};
use crate::config::warm::Target;
use crate::model::{Pool, Runner, RunnerStatus};
use serde::Serialize;
use std::collections::HashSet;

/// What a pass sees of one group's pool.
#[derive(Debug, Clone)]
pub struct PoolView<'a> {
    /// Redis seconds.
    pub now: u64,
    /// When the backend's instances began to be listed (`None`: not listed this time); a
    /// warm instance made after it may be missing from the listing without being gone.
    pub listed_at: Option<u64>,
    pub target: Target,
    pub support: WarmSupport,
    pub max_runners: u32,
    pub max_idle_age: u64,
    pub time_to_start: u64,
    /// Waiting jobs the group's other runners do not cover: a pool does not take their room.
    pub uncovered_jobs: u32,
    /// The group's records, every status.
    pub records: &'a [Runner],
    pub instances: &'a [Instance],
}

/// One thing to do for the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum WarmAction {
    /// Make `count` warm instances of `pool`.
    Make {
        pool: Pool,
        count: u32,
        reason: String,
    },
    /// Delete a warm instance no job took.
    Retire { name: String, reason: String },
    /// Nothing can be done about part of the target; why.
    Short { pool: Pool, reason: String },
}

fn is_warm(r: &Runner) -> bool {
    matches!(r.status, RunnerStatus::Warming | RunnerStatus::Warm)
}

/// The pool's actions now. Pure and total.
pub fn decide(v: &PoolView) -> Vec<WarmAction> {
    let mut out = Vec::new();
    let listed: Option<HashSet<&str>> = v
        .listed_at
        .map(|_| v.instances.iter().map(|i| i.id.as_str()).collect());
    let mut retiring: HashSet<&str> = HashSet::new();
    // Oldest first: they reach max_idle_age first.
    let mut warm: Vec<&Runner> = v.records.iter().filter(|r| is_warm(r)).collect();
    warm.sort_by_key(|r| (r.created_at, r.name.as_str()));
    for r in &warm {
        let age = v.now.saturating_sub(r.created_at);
        // Its instance existed (was recorded) before the listing began.
        let made_before_listing = match (v.listed_at, r.requested_at) {
            (Some(listed), Some(made)) => made < listed,
            _ => false,
        };
        let vanished = r.status == RunnerStatus::Warm
            && made_before_listing
            && match (&listed, &r.instance_id) {
                (Some(ids), Some(id)) => !ids.contains(id.as_str()),
                _ => false,
            };
        if vanished {
            retire(&mut out, &mut retiring, r, "its instance vanished".into());
        } else if r.status == RunnerStatus::Warm && age > v.max_idle_age {
            retire(
                &mut out,
                &mut retiring,
                r,
                format!("older than max_idle_age ({}s)", v.max_idle_age),
            );
        } else if r.status == RunnerStatus::Warming && age > v.time_to_start {
            retire(
                &mut out,
                &mut retiring,
                r,
                format!("not ready within time_to_start ({}s)", v.time_to_start),
            );
        }
    }
    for pool in [Pool::Hot, Pool::Stopped] {
        let want = match pool {
            Pool::Hot => v.target.hot,
            Pool::Stopped => v.target.stopped,
        };
        let supported = match pool {
            Pool::Hot => v.support.hot,
            Pool::Stopped => v.support.stopped,
        };
        let mine: Vec<&&Runner> = warm
            .iter()
            .filter(|r| r.pool == Some(pool) && !retiring.contains(r.name.as_str()))
            .collect();
        let have = mine.len() as u32;
        if have > want {
            // Shrinking: only ready ones (a warming one is retired once ready), oldest first.
            for r in mine
                .iter()
                .filter(|r| r.status == RunnerStatus::Warm)
                .take((have - want) as usize)
            {
                retire(
                    &mut out,
                    &mut retiring,
                    r,
                    format!("the {} pool's target is {want}", pool.as_str()),
                );
            }
        }
        if want > 0 && !supported {
            out.push(WarmAction::Short {
                pool,
                reason: format!(
                    "the group's backend cannot keep {} instances",
                    pool.as_str()
                ),
            });
        }
    }
    grow(v, &retiring, &mut out);
    out
}

fn retire<'a>(
    out: &mut Vec<WarmAction>,
    retiring: &mut HashSet<&'a str>,
    r: &'a Runner,
    reason: String,
) {
    out.push(WarmAction::Retire {
        name: r.name.clone(),
        reason,
    });
    retiring.insert(r.name.as_str());
}

/// Makes what the pools lack, within the room `max_runners` leaves after the group's runners
/// and the jobs waiting for one: hot first.
fn grow(v: &PoolView, retiring: &HashSet<&str>, out: &mut Vec<WarmAction>) {
    let live = v
        .records
        .iter()
        .filter(|r| !retiring.contains(r.name.as_str()) && r.status != RunnerStatus::Deleting)
        .count() as u32;
    let mut room = v
        .max_runners
        .saturating_sub(live)
        .saturating_sub(v.uncovered_jobs);
    for pool in [Pool::Hot, Pool::Stopped] {
        let (want, supported) = match pool {
            Pool::Hot => (v.target.hot, v.support.hot),
            Pool::Stopped => (v.target.stopped, v.support.stopped),
        };
        if !supported {
            continue;
        }
        let have = v
            .records
            .iter()
            .filter(|r| is_warm(r) && r.pool == Some(pool) && !retiring.contains(r.name.as_str()))
            .count() as u32;
        let lack = want.saturating_sub(have);
        if lack == 0 {
            continue;
        }
        let count = lack.min(room);
        room -= count;
        if count > 0 {
            out.push(WarmAction::Make {
                pool,
                count,
                reason: format!(
                    "the {} pool has {have} of {want}{}",
                    pool.as_str(),
                    match v.target.entry {
                        Some(i) => format!(" (schedule entry {i})"),
                        None => String::new(),
                    }
                ),
            });
        }
        if count < lack {
            out.push(WarmAction::Short {
                pool,
                reason: format!(
                    "{} of the {} pool's {lack} missing instance(s) wait for room under max_runners ({})",
                    lack - count,
                    pool.as_str(),
                    v.max_runners
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{InstanceState, TAG_RUNNER};

    const BOTH: WarmSupport = WarmSupport {
        hot: true,
        stopped: true,
    };

    fn target(hot: u32, stopped: u32) -> Target {
        Target {
            hot,
            stopped,
            entry: None,
        }
    }

    fn warm(name: &str, pool: Pool, status: RunnerStatus, created_at: u64) -> Runner {
        let mut r = Runner::reserved(name, "g", "fake", vec![], None, created_at);
        r.status = status;
        r.pool = Some(pool);
        r.instance_id = Some(format!("i-{name}"));
        r.requested_at = Some(created_at + 1);
        r
    }

    fn instance(r: &Runner) -> Instance {
        Instance {
            id: r.instance_id.clone().unwrap(),
            state: InstanceState::Running,
            tags: [(TAG_RUNNER.to_string(), r.name.clone())].into(),
            created_at: None,
            spot_fallback: false,
            address: None,
            identity: None,
        }
    }

    fn view<'a>(records: &'a [Runner], instances: &'a [Instance], t: Target) -> PoolView<'a> {
        PoolView {
            now: 10_000,
            listed_at: Some(9_999),
            target: t,
            support: BOTH,
            max_runners: 10,
            max_idle_age: 3600,
            time_to_start: 600,
            uncovered_jobs: 0,
            records,
            instances,
        }
    }

    fn makes(a: &[WarmAction]) -> Vec<(Pool, u32)> {
        a.iter()
            .filter_map(|x| match x {
                WarmAction::Make { pool, count, .. } => Some((*pool, *count)),
                _ => None,
            })
            .collect()
    }

    fn retired(a: &[WarmAction]) -> Vec<&str> {
        a.iter()
            .filter_map(|x| match x {
                WarmAction::Retire { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_empty_pool_is_filled_hot_first() {
        let a = decide(&view(&[], &[], target(2, 3)));
        assert_eq!(makes(&a), vec![(Pool::Hot, 2), (Pool::Stopped, 3)]);
    }

    #[test]
    fn warming_instances_count_as_the_pool() {
        let r = [
            warm("a", Pool::Hot, RunnerStatus::Warming, 9_990),
            warm("b", Pool::Hot, RunnerStatus::Warm, 9_000),
        ];
        let i: Vec<Instance> = r.iter().map(instance).collect();
        assert!(decide(&view(&r, &i, target(2, 0))).is_empty());
    }

    #[test]
    fn the_pool_never_grows_past_max_runners_nor_into_the_room_of_waiting_jobs() {
        let mut busy: Vec<Runner> = (0..7)
            .map(|k| {
                let mut r = Runner::reserved(format!("r{k}"), "g", "fake", vec![], None, 9_000);
                r.status = RunnerStatus::Active;
                r
            })
            .collect();
        busy.push(warm("w", Pool::Hot, RunnerStatus::Warm, 9_000));
        let i = [instance(&busy[7])];
        let mut v = view(&busy, &i, target(4, 4));
        v.uncovered_jobs = 1;
        let a = decide(&v);
        // 10 - 8 live - 1 waiting job = 1.
        assert_eq!(makes(&a), vec![(Pool::Hot, 1)]);
        assert!(a.iter().any(|x| matches!(
            x,
            WarmAction::Short {
                pool: Pool::Stopped,
                ..
            }
        )));
    }

    #[test]
    fn a_taken_instance_is_never_retired() {
        // Taken by a job: creating (a credential may be sealed for it), started, active.
        let mut taken = Vec::new();
        for (k, s) in [
            RunnerStatus::Creating,
            RunnerStatus::Started,
            RunnerStatus::Idle,
            RunnerStatus::Active,
        ]
        .into_iter()
        .enumerate()
        {
            taken.push(warm(&format!("t{k}"), Pool::Hot, s, 0));
        }
        // Old, over target, instance missing: none of it matters once taken.
        let mut v = view(&taken, &[], target(0, 0));
        v.max_idle_age = 1;
        assert!(retired(&decide(&v)).is_empty());
    }

    #[test]
    fn old_warm_instances_are_replaced() {
        let r = [
            warm("old", Pool::Stopped, RunnerStatus::Warm, 1_000),
            warm("new", Pool::Stopped, RunnerStatus::Warm, 9_000),
        ];
        let i: Vec<Instance> = r.iter().map(instance).collect();
        let a = decide(&view(&r, &i, target(0, 2)));
        assert_eq!(retired(&a), vec!["old"]);
        assert_eq!(makes(&a), vec![(Pool::Stopped, 1)]);
    }

    #[test]
    fn a_pool_above_its_target_retires_its_oldest_ready_instances() {
        let r = [
            warm("a", Pool::Hot, RunnerStatus::Warm, 9_100),
            warm("b", Pool::Hot, RunnerStatus::Warm, 9_200),
            warm("c", Pool::Hot, RunnerStatus::Warming, 9_990),
        ];
        let i: Vec<Instance> = r.iter().map(instance).collect();
        let a = decide(&view(&r, &i, target(1, 0)));
        assert_eq!(retired(&a), vec!["a", "b"]);
        assert!(makes(&a).is_empty());
    }

    #[test]
    fn an_instance_that_does_not_become_ready_is_replaced() {
        let r = [warm("slow", Pool::Hot, RunnerStatus::Warming, 9_000)];
        let a = decide(&view(&r, &[], target(1, 0)));
        assert_eq!(retired(&a), vec!["slow"]);
        assert_eq!(makes(&a), vec![(Pool::Hot, 1)]);
    }

    #[test]
    fn a_vanished_instance_is_replaced_but_not_one_made_after_the_listing() {
        let gone = warm("gone", Pool::Hot, RunnerStatus::Warm, 9_000);
        // Reserved before the listing, its instance recorded after it began.
        let fresh = warm("fresh", Pool::Hot, RunnerStatus::Warm, 9_990);
        let fresh = Runner {
            requested_at: Some(9_999),
            ..fresh
        };
        let r = [gone, fresh];
        let a = decide(&view(&r, &[], target(2, 0)));
        assert_eq!(retired(&a), vec!["gone"]);
        // Unlisted, nothing is judged gone.
        let mut v = view(&r, &[], target(2, 0));
        v.listed_at = None;
        assert!(retired(&decide(&v)).is_empty());
    }

    #[test]
    fn a_pool_the_backend_cannot_keep_is_said_not_made() {
        let mut v = view(&[], &[], target(1, 2));
        v.support = WarmSupport {
            hot: true,
            stopped: false,
        };
        let a = decide(&v);
        assert_eq!(makes(&a), vec![(Pool::Hot, 1)]);
        assert!(a
            .iter()
            .any(|x| matches!(x, WarmAction::Short { pool: Pool::Stopped, reason } if reason.contains("cannot"))));
    }
}
