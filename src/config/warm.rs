//! `warm_pool:` of a runner group: instances made before any job asks, so that a job waits
//! seconds instead of a whole boot. `hot` ones are booted and wait for a credential; `stopped`
//! ones were booted once and stopped, and start on demand. An optional schedule of cron
//! windows (GitLab style: the last entry whose window holds now wins) sets other sizes in the
//! hours that need them; outside every window the base sizes apply.
//!
//! The schedule is a pure function of the time: [`WarmPool::target`].

use super::duration::Duration;
use chrono::TimeZone;
use serde::{Deserialize, Serialize};

fn default_max_idle_age() -> Duration {
    Duration::from_secs(4 * 3600)
}

fn default_lead() -> Duration {
    Duration::from_secs(10 * 60)
}

/// A group's warm pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmPool {
    /// Booted instances waiting for a job (outside every schedule window).
    #[serde(default)]
    pub hot: u32,
    /// Instances booted once, then stopped (outside every schedule window).
    #[serde(default)]
    pub stopped: u32,
    /// A warm instance older than this is replaced (a fresh image, fresh caches).
    #[serde(default = "default_max_idle_age")]
    pub max_idle_age: Duration,
    /// How long before a window opens its sizes apply, so that its instances are ready when
    /// it opens.
    #[serde(default = "default_lead")]
    pub lead: Duration,
    /// Windows with other sizes; the last one that holds now wins.
    #[serde(default)]
    pub schedule: Vec<WarmWindow>,
}

/// One entry of `warm_pool.schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmWindow {
    /// When the window opens: a five-field cron expression (minute hour day month weekday).
    pub cron: String,
    /// How long it stays open.
    pub duration: Duration,
    /// The IANA time zone the cron expression is read in.
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub hot: u32,
    #[serde(default)]
    pub stopped: u32,
}

fn utc() -> String {
    "UTC".into()
}

/// The pool's size now, and which schedule entry set it (`None`: the base sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Target {
    pub hot: u32,
    pub stopped: u32,
    /// The index in `schedule` of the entry that applies.
    pub entry: Option<usize>,
}

impl Target {
    pub fn total(&self) -> u32 {
        self.hot + self.stopped
    }
}

/// Why a window cannot be used; the field it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    pub field: &'static str,
    pub message: String,
}

impl WarmWindow {
    /// Its cron expression, read.
    pub fn parsed(&self) -> Result<croner::Cron, WindowError> {
        let fields = self.cron.split_whitespace().count();
        if fields != 5 {
            return Err(WindowError {
                field: "cron",
                message: format!(
                    "`{}` has {fields} fields; write five: minute hour day-of-month month day-of-week, e.g. `0 7 * * 1-5`",
                    self.cron
                ),
            });
        }
        self.cron.parse::<croner::Cron>().map_err(|e| WindowError {
            field: "cron",
            message: format!("`{}` is not a cron expression: {e}", self.cron),
        })
    }

    /// Its time zone, read.
    pub fn zone(&self) -> Result<chrono_tz::Tz, WindowError> {
        self.timezone.parse().map_err(|_| WindowError {
            field: "timezone",
            message: format!(
                "`{}` is not an IANA time zone (like `Europe/Paris` or `UTC`)",
                self.timezone
            ),
        })
    }

    /// Whether the window holds at `now` (Unix seconds), or opens within `lead` of it.
    pub fn holds(&self, now: u64, lead: u64) -> bool {
        let (Ok(cron), Ok(tz)) = (self.parsed(), self.zone()) else {
            return false;
        };
        let Some(at) = tz.timestamp_opt(now as i64 + lead as i64, 0).single() else {
            return false;
        };
        // The last opening at or before `now + lead`; open while it is less than `duration`
        // (plus the lead) old.
        match cron.find_previous_occurrence(&at, true) {
            Ok(opened) => {
                let age = at.timestamp() - opened.timestamp();
                age >= 0 && (age as u64) < self.duration.as_secs() + lead
            }
            Err(_) => false,
        }
    }
}

impl WarmPool {
    /// The sizes at `now` (Unix seconds): the last schedule entry that holds, else the base.
    pub fn target(&self, now: u64) -> Target {
        let lead = self.lead.as_secs();
        self.schedule
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| w.holds(now, lead))
            .map(|(i, w)| Target {
                hot: w.hot,
                stopped: w.stopped,
                entry: Some(i),
            })
            .unwrap_or(Target {
                hot: self.hot,
                stopped: self.stopped,
                entry: None,
            })
    }

    /// Whether any entry (or the base) asks for (hot, stopped) instances.
    pub fn asks(&self) -> (bool, bool) {
        let sizes = || {
            self.schedule
                .iter()
                .map(|w| (w.hot, w.stopped))
                .chain([(self.hot, self.stopped)])
        };
        (sizes().any(|(h, _)| h > 0), sizes().any(|(_, s)| s > 0))
    }

    /// The largest size any entry (or the base) asks for.
    pub fn largest(&self) -> u32 {
        self.schedule
            .iter()
            .map(|w| w.hot + w.stopped)
            .chain([self.hot + self.stopped])
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(schedule: Vec<WarmWindow>) -> WarmPool {
        WarmPool {
            hot: 1,
            stopped: 2,
            max_idle_age: default_max_idle_age(),
            lead: Duration::from_secs(0),
            schedule,
        }
    }

    fn window(cron: &str, hours: u64, tz: &str, hot: u32, stopped: u32) -> WarmWindow {
        WarmWindow {
            cron: cron.into(),
            duration: Duration::from_secs(hours * 3600),
            timezone: tz.into(),
            hot,
            stopped,
        }
    }

    /// Unix seconds of a UTC date and time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp() as u64
    }

    #[test]
    fn outside_every_window_the_base_sizes_apply() {
        let p = pool(vec![window("0 7 * * 1-5", 11, "UTC", 6, 20)]);
        // Saturday 2026-12-05, noon.
        let t = p.target(utc(2026, 12, 5, 12, 0));
        assert_eq!((t.hot, t.stopped, t.entry), (1, 2, None));
    }

    #[test]
    fn a_window_holds_from_its_opening_for_its_duration_in_its_time_zone() {
        // 07:00 in Paris is 06:00 UTC in December.
        let p = pool(vec![window("0 7 * * 1-5", 11, "Europe/Paris", 6, 20)]);
        // Monday 2026-12-07.
        assert_eq!(p.target(utc(2026, 12, 7, 5, 59)).entry, None);
        assert_eq!(p.target(utc(2026, 12, 7, 6, 0)).entry, Some(0));
        assert_eq!(p.target(utc(2026, 12, 7, 16, 59)).hot, 6);
        assert_eq!(p.target(utc(2026, 12, 7, 17, 0)).entry, None, "11 h later");
    }

    #[test]
    fn the_last_matching_entry_wins() {
        let p = pool(vec![
            window("0 0 * * *", 24, "UTC", 2, 2),
            window("0 9 * * *", 2, "UTC", 8, 0),
        ]);
        assert_eq!(p.target(utc(2026, 12, 7, 8, 0)).entry, Some(0));
        assert_eq!(p.target(utc(2026, 12, 7, 10, 0)).entry, Some(1));
        assert_eq!(p.target(utc(2026, 12, 7, 11, 0)).entry, Some(0));
    }

    #[test]
    fn a_window_applies_its_lead_before_it_opens() {
        let mut p = pool(vec![window("0 9 * * *", 1, "UTC", 8, 0)]);
        p.lead = Duration::from_secs(600);
        assert_eq!(p.target(utc(2026, 12, 7, 8, 49)).entry, None);
        assert_eq!(p.target(utc(2026, 12, 7, 8, 50)).entry, Some(0));
        assert_eq!(p.target(utc(2026, 12, 7, 9, 59)).entry, Some(0));
        assert_eq!(
            p.target(utc(2026, 12, 7, 10, 0)).entry,
            None,
            "it closes on time"
        );
    }

    #[test]
    fn a_window_spanning_midnight_holds_after_it() {
        let p = pool(vec![window("0 22 * * *", 4, "UTC", 3, 0)]);
        assert_eq!(p.target(utc(2026, 12, 8, 1, 30)).entry, Some(0));
        assert_eq!(p.target(utc(2026, 12, 8, 2, 0)).entry, None);
    }

    #[test]
    fn bad_windows_name_their_field() {
        let w = window("0 7 * *", 1, "UTC", 1, 1);
        assert_eq!(w.parsed().unwrap_err().field, "cron");
        let w = window("0 77 * * *", 1, "UTC", 1, 1);
        assert_eq!(w.parsed().unwrap_err().field, "cron");
        let w = window("0 7 * * *", 1, "Mars/Olympus", 1, 1);
        assert_eq!(w.zone().unwrap_err().field, "timezone");
        assert!(window("0 7 * * 1-5", 1, "America/New_York", 1, 1)
            .parsed()
            .is_ok());
    }

    #[test]
    fn the_largest_size_counts_every_entry() {
        let p = pool(vec![
            window("0 7 * * *", 1, "UTC", 6, 20),
            window("0 9 * * *", 1, "UTC", 1, 0),
        ]);
        assert_eq!(p.largest(), 26);
    }
}
