//! GitHub's minimum runner version (`github.min_runner_version`): GitHub refuses to register
//! runners older than a published version from a given date (brownouts, then enforcement).
//! A group declares the version its image carries (`runner_version`); these pure functions say
//! whether it is below the floor, and how many days are left before the floor applies.

use serde::{Deserialize, Serialize};

/// `github.min_runner_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerFloor {
    /// The oldest runner version GitHub registers, `2.329.0`.
    pub version: String,
    /// The day it takes effect (UTC), `2026-09-25`.
    pub from: String,
}

/// A runner version, `MAJOR.MINOR.PATCH`.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

/// The unix time a `YYYY-MM-DD` day starts (UTC).
pub fn parse_day(d: &str) -> Option<u64> {
    let day = chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok()?;
    let t = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    u64::try_from(t).ok()
}

/// Where a group's runner version stands against the floor at `now` (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// At or above the floor (or no floor, or no version declared).
    Fine,
    /// Below a floor that takes effect in this many days (rounded up).
    Soon { days: u64 },
    /// Below a floor in effect: GitHub refuses to register it.
    Refused,
}

/// Where `version` stands against `floor` at `now`; `None` when either cannot be read.
pub fn standing(version: &str, floor: &RunnerFloor, now: u64) -> Option<Standing> {
    let have = parse_version(version)?;
    let want = parse_version(&floor.version)?;
    let from = parse_day(&floor.from)?;
    if have >= want {
        return Some(Standing::Fine);
    }
    if now >= from {
        return Some(Standing::Refused);
    }
    Some(Standing::Soon {
        days: (from - now).div_ceil(86_400),
    })
}

/// Days before the floor applies to a group below it (0 once in effect); `None` when the group
/// is not below it.
pub fn days_left(version: &str, floor: &RunnerFloor, now: u64) -> Option<u64> {
    match standing(version, floor, now)? {
        Standing::Fine => None,
        Standing::Soon { days } => Some(days),
        Standing::Refused => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor() -> RunnerFloor {
        RunnerFloor {
            version: "2.329.0".into(),
            from: "2026-09-25".into(),
        }
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(parse_version("2.329.0"), Some((2, 329, 0)));
        assert_eq!(parse_version("v2.330.1"), Some((2, 330, 1)));
        assert_eq!(parse_version("2.33"), None);
        assert_eq!(parse_version("2.x.0"), None);
        assert!(parse_version("2.1000.0") > parse_version("2.329.0"));
    }

    #[test]
    fn a_version_below_the_floor_is_refused_from_its_day_and_warned_before() {
        let from = parse_day("2026-09-25").unwrap();
        assert_eq!(standing("2.330.0", &floor(), from), Some(Standing::Fine));
        assert_eq!(standing("2.329.0", &floor(), from), Some(Standing::Fine));
        assert_eq!(standing("2.328.9", &floor(), from), Some(Standing::Refused));
        assert_eq!(
            standing("2.328.9", &floor(), from - 3 * 86_400 - 5),
            Some(Standing::Soon { days: 4 })
        );
        assert_eq!(days_left("2.328.9", &floor(), from + 1), Some(0));
        assert_eq!(days_left("2.400.0", &floor(), from + 1), None);
        assert_eq!(standing("junk", &floor(), from), None);
    }
}
