//! A backend's circuit breaker, per group and backend (`failover:`): pure decisions over what
//! Redis keeps (`breaker:GROUP:BACKEND`, JSON).
//!
//! - **closed**: creates go to the backend; `failures` create failures within `window` open it.
//! - **open** until the cool-down ends: creates go to the group's next backend.
//! - **half-open**: the cool-down ended; one create (the probe) may go; its success closes the
//!   breaker, its failure opens it again for another cool-down. A probe that never reports
//!   (its worker died) is given up after a cool-down, and another may go.
//! - **broken**: a permanent failure (a bad template, no permission): open until the
//!   configuration of the group's backend entry changes (its fingerprint).

use crate::config::Failover;
use serde::{Deserialize, Serialize};

/// What is kept of a breaker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    /// Failure times (unix seconds) within the window, while closed.
    #[serde(default)]
    pub failures: Vec<u64>,
    #[serde(default)]
    pub state: State,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    #[default]
    Closed,
    Open {
        until: u64,
        why: String,
    },
    /// A probe went at `since`.
    Probing {
        since: u64,
        why: String,
    },
    Broken {
        why: String,
        /// The fingerprint of the configuration it broke under.
        config: String,
    },
}

/// A backend entry's configuration fingerprint (its backend's settings and its spec): a
/// permanent failure holds until it changes.
pub fn fingerprint(config: &crate::config::Config, c: &crate::config::BackendChoice) -> String {
    use sha2::Digest;
    let settings = config
        .backends
        .iter()
        .find(|b| b.name == c.name)
        .and_then(|b| serde_json::to_string(b).ok())
        .unwrap_or_default();
    let spec = serde_json::to_string(&c.spec).unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{settings}\n{spec}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The key a group's backend's breaker is kept under (`breaker:KEY` in Redis).
pub fn key(group: &str, backend: &str) -> String {
    format!("{group}:{backend}")
}

/// A kept breaker, read leniently (a new one when unreadable).
pub fn read(kept: Option<&str>) -> Breaker {
    kept.and_then(|k| serde_json::from_str(k).ok())
        .unwrap_or_default()
}

/// Why a breaker is not closed, for `doctor` and logs.
pub fn why(b: &Breaker) -> Option<&str> {
    match &b.state {
        State::Closed => None,
        State::Open { why, .. } | State::Probing { why, .. } | State::Broken { why, .. } => {
            Some(why)
        }
    }
}

/// May a create go to the backend now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Yes,
    /// Yes, as the probe of a half-open breaker (say so with [`probing`]).
    Probe,
    /// No, and why.
    No(String),
}

/// What a create's failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed<'a> {
    /// Capacity, throttling, a timeout, the backend unreachable.
    Transient(&'a str),
    /// Nothing to retry until the configuration changes.
    Permanent(&'a str),
}

/// Whether a create may go to the backend at `now` under configuration fingerprint `config`.
pub fn allow(b: &Breaker, now: u64, policy: &Failover, config: &str) -> Allow {
    match &b.state {
        State::Closed => Allow::Yes,
        State::Open { until, .. } if now >= *until => Allow::Probe,
        State::Open { until, why } => Allow::No(format!("open until {until} (unix time): {why}")),
        State::Probing { since, .. } if now >= since + policy.cool_down.as_std().as_secs() => {
            Allow::Probe
        }
        State::Probing { .. } => Allow::No("half-open: a probe create is under way".into()),
        State::Broken { config: c, .. } if c != config => Allow::Yes,
        State::Broken { why, .. } => {
            Allow::No(format!("failed permanently ({why}); fix the configuration"))
        }
    }
}

/// The breaker once a probe create went at `now`.
pub fn probing(b: &Breaker, now: u64) -> Breaker {
    let why = match &b.state {
        State::Open { why, .. } | State::Probing { why, .. } => why.clone(),
        _ => String::new(),
    };
    Breaker {
        failures: Vec::new(),
        state: State::Probing { since: now, why },
    }
}

/// The breaker after a create succeeded: closed.
pub fn succeeded(_: &Breaker) -> Breaker {
    Breaker::default()
}

/// The breaker after a create failed at `now`.
pub fn failed(b: &Breaker, now: u64, f: Failed<'_>, policy: &Failover, config: &str) -> Breaker {
    let cool = policy.cool_down.as_std().as_secs();
    let open = |why: &str| Breaker {
        failures: Vec::new(),
        state: State::Open {
            until: now + cool,
            why: why.to_string(),
        },
    };
    match (f, &b.state) {
        (Failed::Permanent(why), _) => Breaker {
            failures: Vec::new(),
            state: State::Broken {
                why: why.to_string(),
                config: config.to_string(),
            },
        },
        // The probe failed, or a create that went before the breaker opened: open (again).
        (Failed::Transient(why), State::Probing { .. } | State::Open { .. }) => open(why),
        (Failed::Transient(why), State::Closed | State::Broken { .. }) => {
            let window = policy.window.as_std().as_secs();
            let mut failures: Vec<u64> = b
                .failures
                .iter()
                .copied()
                .filter(|t| *t + window > now)
                .collect();
            failures.push(now);
            if failures.len() as u32 >= policy.failures.max(1) {
                open(why)
            } else {
                Breaker {
                    failures,
                    state: State::Closed,
                }
            }
        }
    }
}

/// The state's name at `now`: `closed`, `open`, `half_open` or `broken`.
pub fn label(b: &Breaker, now: u64, config: &str) -> &'static str {
    match &b.state {
        State::Closed => "closed",
        State::Open { until, .. } if now >= *until => "half_open",
        State::Open { .. } => "open",
        State::Probing { .. } => "half_open",
        State::Broken { config: c, .. } if c != config => "closed",
        State::Broken { .. } => "broken",
    }
}

/// The state as a number for `runnerctl_backend_breaker_state`: 0 closed, 1 half-open, 2 open,
/// 3 broken.
pub fn gauge(label: &str) -> f64 {
    match label {
        "half_open" => 1.0,
        "open" => 2.0,
        "broken" => 3.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration;

    fn policy() -> Failover {
        Failover {
            failures: 3,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
        }
    }

    #[test]
    fn failures_within_the_window_open_it_and_older_ones_are_forgotten() {
        let p = policy();
        let mut b = Breaker::default();
        b = failed(&b, 100, Failed::Transient("capacity"), &p, "c");
        b = failed(&b, 170, Failed::Transient("capacity"), &p, "c");
        // The first is out of the window: two within it, still closed.
        b = failed(&b, 171, Failed::Transient("capacity"), &p, "c");
        assert_eq!(b.state, State::Closed);
        assert_eq!(allow(&b, 171, &p, "c"), Allow::Yes);
        b = failed(&b, 172, Failed::Transient("capacity"), &p, "c");
        assert!(matches!(b.state, State::Open { until: 202, .. }));
        assert!(matches!(allow(&b, 180, &p, "c"), Allow::No(_)));
        assert_eq!(label(&b, 180, "c"), "open");
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_its_result_decides() {
        let p = policy();
        let open = Breaker {
            failures: vec![],
            state: State::Open {
                until: 200,
                why: "x".into(),
            },
        };
        assert_eq!(allow(&open, 200, &p, "c"), Allow::Probe);
        assert_eq!(label(&open, 200, "c"), "half_open");
        let probing = probing(&open, 200);
        assert!(
            matches!(allow(&probing, 201, &p, "c"), Allow::No(_)),
            "one probe at a time"
        );
        assert_eq!(succeeded(&probing), Breaker::default());
        let again = failed(&probing, 205, Failed::Transient("still"), &p, "c");
        assert!(matches!(again.state, State::Open { until: 235, .. }));
        // A probe that never reported is given up after a cool-down.
        assert_eq!(allow(&probing, 230, &p, "c"), Allow::Probe);
    }

    #[test]
    fn a_permanent_failure_holds_until_the_configuration_changes() {
        let p = policy();
        let b = failed(
            &Breaker::default(),
            10,
            Failed::Permanent("no such template"),
            &p,
            "c1",
        );
        assert!(
            matches!(allow(&b, 10_000, &p, "c1"), Allow::No(why) if why.contains("no such template"))
        );
        assert_eq!(label(&b, 10_000, "c1"), "broken");
        assert_eq!(allow(&b, 10_000, &p, "c2"), Allow::Yes);
        assert_eq!(label(&b, 10_000, "c2"), "closed");
    }

    #[test]
    fn every_state_and_event_gives_a_state_allow_can_read() {
        let p = policy();
        let states = [
            Breaker::default(),
            failed(&Breaker::default(), 0, Failed::Transient("t"), &p, "c"),
            Breaker {
                failures: vec![],
                state: State::Open {
                    until: 50,
                    why: "w".into(),
                },
            },
            Breaker {
                failures: vec![],
                state: State::Probing {
                    since: 40,
                    why: "w".into(),
                },
            },
            Breaker {
                failures: vec![],
                state: State::Broken {
                    why: "w".into(),
                    config: "c".into(),
                },
            },
        ];
        for b in &states {
            for now in [0, 45, 50, 100] {
                for next in [
                    failed(b, now, Failed::Transient("t"), &p, "c"),
                    failed(b, now, Failed::Permanent("p"), &p, "c"),
                    succeeded(b),
                    probing(b, now),
                ] {
                    let _ = allow(&next, now, &p, "c");
                    let l = label(&next, now, "c");
                    assert!(["closed", "open", "half_open", "broken"].contains(&l));
                    let json = serde_json::to_string(&next).unwrap();
                    assert_eq!(serde_json::from_str::<Breaker>(&json).unwrap(), next);
                }
            }
        }
    }
}
