//! The budget's rule, pure: given what is stored of a credential and the time, may a request
//! go? The Lua script `budget_take.lua` runs the same rule on Redis; the contract test
//! (`tests/budget.rs`) runs both through the same steps.

use super::{Ask, Priority, Short};

/// A request's parameters for the rule, from the credential's limits and the asker's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Microseconds one point takes to come back (the steady rate: 95% of the limit less the
    /// burst).
    pub interval_us: u64,
    /// Microseconds of debt this priority may run up: its share of the burst (5% of the limit
    /// for a write class, 25% for a read class), never less than the request's own cost.
    pub tolerance_us: u64,
    pub cost: u64,
    /// Requests in flight at or above which this priority waits.
    pub max_in_flight: u64,
    /// The hourly budget's share (per mille) this priority leaves untouched.
    pub primary_reserve_permille: u64,
}

impl Params {
    pub fn of(ask: &Ask<'_>) -> Params {
        let l = ask.limits;
        let per_minute = (l.points_per_minute as u64).max(1);
        // A class is all writes or all reads (its method is part of it). Writes get a small
        // burst and the most steady rate (JIT configurations, one after another); reads a
        // larger burst (a health pass lists a big fleet's pages at once). Either way, at most
        // 95% of the limit in any minute: burst + steady.
        let burst = if ask.write {
            per_minute / 20
        } else {
            per_minute / 4
        }
        .max(1);
        let steady = (per_minute * 95 / 100).saturating_sub(burst).max(1);
        let interval_us = 60_000_000 / steady;
        let cost = l.cost(ask.write) as u64;
        let share = ask.priority.share_permille();
        let tolerance_us = (burst * interval_us * share / 1000).max(cost * interval_us);
        let max_in_flight = ((l.max_concurrent as u64) * share / 1000).max(1);
        Params {
            interval_us,
            tolerance_us,
            cost,
            max_in_flight,
            primary_reserve_permille: ask.priority.primary_reserve_permille(),
        }
    }

    /// The parameters for `priority` of the same ask.
    pub fn with_priority(ask: &Ask<'_>, priority: Priority) -> Params {
        Params::of(&Ask { priority, ..*ask })
    }
}

/// What is stored of a credential and one endpoint class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// The latest end of the class's pause and of the credential's (unix ms; 0: none).
    pub paused_until_ms: u64,
    /// The hourly limit last reported: (limit, remaining, reset in unix ms).
    pub primary: Option<(u64, u64, u64)>,
    /// Requests in flight, their leases unexpired.
    pub in_flight: u64,
    /// The class's theoretical arrival time (unix µs; 0: never used).
    pub tat_us: u64,
}

/// The rule's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go: store `tat_us` and a lease.
    Go { tat_us: u64 },
    /// Wait `wait_ms`.
    Wait { wait_ms: u64, why: Short },
}

/// How long a request waits for a place among the concurrent requests.
pub const CONCURRENCY_WAIT_MS: u64 = 100;

/// The rule: pauses first, then the hourly budget, the concurrent requests, the points.
pub fn decide(s: &State, p: &Params, now_us: u64) -> Decision {
    let now_ms = now_us / 1000;
    if s.paused_until_ms > now_ms {
        return Decision::Wait {
            wait_ms: s.paused_until_ms - now_ms,
            why: Short::Paused,
        };
    }
    if let Some((limit, remaining, reset_ms)) = s.primary {
        if reset_ms > now_ms && remaining * 1000 <= limit * p.primary_reserve_permille {
            return Decision::Wait {
                wait_ms: reset_ms - now_ms,
                why: Short::Primary,
            };
        }
    }
    if s.in_flight >= p.max_in_flight {
        return Decision::Wait {
            wait_ms: CONCURRENCY_WAIT_MS,
            why: Short::Concurrency,
        };
    }
    let tat = s.tat_us.max(now_us);
    let new_tat = tat + p.cost * p.interval_us;
    let allow_at = new_tat.saturating_sub(p.tolerance_us);
    if allow_at > now_us {
        return Decision::Wait {
            wait_ms: (allow_at - now_us).div_ceil(1000),
            why: Short::Rate,
        };
    }
    Decision::Go { tat_us: new_tat }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Limits;

    fn ask(write: bool, priority: Priority) -> Params {
        Params::of(&Ask {
            credential: "c",
            class: "POST /x",
            write,
            priority,
            limits: &Limits::GITHUB,
        })
    }

    /// Runs requests of `p` back to back for `secs` seconds, each as soon as the rule lets it;
    /// the points spent in every 60-second window, at most.
    fn greedy(p: &Params, secs: u64) -> (u64, u64) {
        let mut s = State::default();
        let start = 1_000_000_000_000u64;
        let mut now = start;
        let mut grants = Vec::new();
        while now < start + secs * 1_000_000 {
            match decide(&s, p, now) {
                Decision::Go { tat_us } => {
                    s.tat_us = tat_us;
                    grants.push(now);
                }
                Decision::Wait { wait_ms, .. } => now += wait_ms * 1000,
            }
        }
        let mut worst = 0;
        for (i, t) in grants.iter().enumerate() {
            let n = grants[i..]
                .iter()
                .take_while(|u| **u < t + 60_000_000)
                .count() as u64;
            worst = worst.max(n * p.cost);
        }
        (grants.len() as u64, worst)
    }

    #[test]
    fn no_minute_ever_sees_more_than_95_percent_of_the_limit() {
        let (_, worst) = greedy(&ask(true, Priority::Job), 300);
        assert!(worst <= 855, "{worst} points in one minute");
        let (_, worst) = greedy(&ask(false, Priority::Job), 300);
        assert!(worst <= 855, "{worst} points in one minute");
    }

    #[test]
    fn a_read_class_lets_a_big_fleet_s_pages_through_at_once() {
        // A health pass over 10,000 runners lists 100 pages: within the health share of the
        // read burst (112 of 225 points), with no wait.
        let p = ask(false, Priority::Health);
        let mut s = State::default();
        let now = 5_000_000_000;
        for _ in 0..100 {
            match decide(&s, &p, now) {
                Decision::Go { tat_us } => s.tat_us = tat_us,
                other => panic!("{other:?}"),
            }
        }
        // Reads are sustained at 630 a minute.
        let (n, _) = greedy(&ask(false, Priority::Job), 600);
        assert!((6300..=6530).contains(&n), "{n} reads in ten minutes");
    }

    #[test]
    fn writes_are_sustained_at_162_a_minute() {
        let (n, _) = greedy(&ask(true, Priority::Job), 600);
        // Ten minutes: the burst (9) and 162 a minute.
        assert!((1620..=1630).contains(&n), "{n} writes in ten minutes");
    }

    #[test]
    fn a_lower_priority_waits_while_the_jobs_have_spent_the_burst() {
        let job = ask(true, Priority::Job);
        let health = ask(true, Priority::Health);
        let now = 5_000_000_000;
        // Jobs spent 6 of the 9 writes of the burst: the jobs may go on, health may not.
        let s = State {
            tat_us: now + 6 * 5 * job.interval_us,
            ..State::default()
        };
        assert!(matches!(decide(&s, &job, now), Decision::Go { .. }));
        assert!(matches!(
            decide(&s, &health, now),
            Decision::Wait {
                why: Short::Rate,
                ..
            }
        ));
    }

    #[test]
    fn the_hourly_reserve_stops_the_lower_classes_first() {
        let now = 5_000_000_000;
        let s = State {
            primary: Some((5000, 400, now / 1000 + 60_000)),
            ..State::default()
        };
        assert!(matches!(
            decide(&s, &ask(false, Priority::Job), now),
            Decision::Go { .. }
        ));
        assert_eq!(
            decide(&s, &ask(false, Priority::Health), now),
            Decision::Wait {
                wait_ms: 60_000,
                why: Short::Primary
            }
        );
        let spent = State {
            primary: Some((5000, 0, now / 1000 + 1_000)),
            ..State::default()
        };
        assert_eq!(
            decide(&spent, &ask(true, Priority::Job), now),
            Decision::Wait {
                wait_ms: 1_000,
                why: Short::Primary
            }
        );
        // A reset gone by: the stale report counts no more.
        let stale = State {
            primary: Some((5000, 0, now / 1000 - 1)),
            ..State::default()
        };
        assert!(matches!(
            decide(&stale, &ask(true, Priority::Cleanup), now),
            Decision::Go { .. }
        ));
    }

    #[test]
    fn concurrency_keeps_places_for_the_jobs() {
        let s = State {
            in_flight: 50,
            ..State::default()
        };
        let now = 5_000_000_000;
        assert!(matches!(
            decide(&s, &ask(false, Priority::Job), now),
            Decision::Go { .. }
        ));
        assert!(matches!(
            decide(&s, &ask(false, Priority::Health), now),
            Decision::Wait {
                why: Short::Concurrency,
                ..
            }
        ));
    }

    #[test]
    fn a_pause_stops_every_priority_until_its_end() {
        let now = 5_000_000_000;
        let s = State {
            paused_until_ms: now / 1000 + 2_500,
            ..State::default()
        };
        for p in Priority::ALL {
            assert_eq!(
                decide(&s, &ask(false, p), now),
                Decision::Wait {
                    wait_ms: 2_500,
                    why: Short::Paused
                }
            );
        }
    }
}
