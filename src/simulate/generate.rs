//! Synthetic traces: Poisson arrivals, a diurnal profile with quieter weekends, or one burst.
//! Each job belongs to one of the configuration's groups, chosen evenly, and asks for its
//! labels; its repository is the group's, one of its `selected_repositories`, or one of
//! `repositories` of its organization.

use super::dist::sample;
use super::trace::{Builder, Trace};
use crate::config::simulation::Dist;
use crate::config::RunnerGroup;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The shapes of a synthetic trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Arrivals at a constant rate, independent of each other.
    Poisson,
    /// Arrivals whose rate follows the hour of the day, lower on weekends (day 0 is a Monday).
    Diurnal,
    /// Every job within `window` of the start.
    Burst,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub shape: Shape,
    /// Stop after this many jobs.
    pub jobs: Option<u64>,
    /// Stop after this many days.
    pub days: Option<f64>,
    /// Jobs per hour (the peak hour's, for `diurnal`).
    pub rate_per_hour: f64,
    pub duration: Dist,
    /// Repositories per organization (for groups not bound to one repository).
    pub repositories: u32,
    /// `diurnal`: the rate on Saturdays and Sundays, as a fraction of the weekday's.
    pub weekend: f64,
    /// `diurnal`: the weight of each hour of the day (0-23), the peak being 1.
    pub profile: [f64; 24],
    /// `burst`: the span the jobs arrive in, seconds.
    pub window_s: f64,
}

/// The default daily profile: office hours busy, nights quiet.
pub const OFFICE_HOURS: [f64; 24] = [
    0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.7, 1.0, 1.0, 1.0, 0.7, 1.0, 1.0, 1.0, 1.0, 0.6,
    0.3, 0.2, 0.1, 0.1, 0.05, 0.05,
];

/// Jobs when neither a count nor days are given.
pub const DEFAULT_JOBS: u64 = 1_000;

/// A trace by `spec` for `groups`, from the seeded generator `rng`.
pub fn generate(spec: &Spec, groups: &[RunnerGroup], rng: &mut ChaCha8Rng) -> Trace {
    let mut b = Builder::default();
    if groups.is_empty() {
        return b.finish();
    }
    let (limit, horizon_s) = match (spec.shape, spec.jobs, spec.days) {
        (Shape::Burst, j, _) => (Some(j.unwrap_or(DEFAULT_JOBS)), None),
        (_, None, None) => (Some(DEFAULT_JOBS), None),
        (_, j, d) => (j, d.map(|d| d * 86_400.0)),
    };
    let peak = spec.profile.iter().cloned().fold(0.0, f64::max).max(1e-9);
    let mut t = 0.0f64;
    let mut n: u64 = 0;
    let mut line = 0u32;
    while limit.is_none_or(|l| n < l) {
        let at = match spec.shape {
            Shape::Burst => rng.random::<f64>() * spec.window_s,
            Shape::Poisson => {
                t += exp(rng, spec.rate_per_hour / 3600.0);
                t
            }
            Shape::Diurnal => loop {
                // Thinning: candidates at the peak rate, kept in proportion to the rate then.
                t += exp(rng, spec.rate_per_hour / 3600.0);
                let hour = ((t / 3600.0) as u64 % 24) as usize;
                let day = (t / 86_400.0) as u64 % 7;
                let weekend = if day >= 5 { spec.weekend } else { 1.0 };
                if rng.random::<f64>() * peak < spec.profile[hour] * weekend {
                    break t;
                }
            },
        };
        if horizon_s.is_some_and(|h| at >= h) {
            break;
        }
        let g = &groups[rng.random_range(0..groups.len())];
        let repository = match (&g.repository, &g.selected_repositories) {
            (Some(r), _) => format!("{}/{r}", g.organization),
            (None, Some(list)) if !list.is_empty() => {
                format!(
                    "{}/{}",
                    g.organization,
                    list[rng.random_range(0..list.len())]
                )
            }
            _ => {
                let k = rng.random_range(1..=spec.repositories.max(1));
                format!("{}/repo-{k}", g.organization)
            }
        };
        let duration = sample(&spec.duration, rng);
        line += 1;
        b.push(
            (at * 1000.0).round() as u64,
            (duration * 1000.0).round() as u64,
            &g.labels,
            &repository,
            None,
            None,
            line,
        );
        n += 1;
    }
    b.finish()
}

/// An exponential draw with this rate (per second); never zero.
fn exp(rng: &mut ChaCha8Rng, rate: f64) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).max(f64::MIN_POSITIVE).ln() / rate.max(1e-12)
}
