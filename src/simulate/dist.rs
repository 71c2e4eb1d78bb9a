//! Drawing from the models' distributions with the run's seeded generator.

use crate::config::simulation::{lognormal_params, Dist};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution as _;

/// A draw from `d`, in seconds.
pub fn sample(d: &Dist, rng: &mut ChaCha8Rng) -> f64 {
    match d {
        Dist::Fixed(t) => t.secs(),
        Dist::Uniform { min, max } => {
            if max.secs() <= min.secs() {
                min.secs()
            } else {
                rng.random_range(min.secs()..=max.secs())
            }
        }
        Dist::LogNormal { median, p95 } => {
            let (mu, sigma) = lognormal_params(median.secs(), p95.secs());
            rand_distr::LogNormal::new(mu, sigma)
                .map(|l| l.sample(rng))
                .unwrap_or(median.secs())
        }
        Dist::Exponential { mean } => {
            if mean.secs() <= 0.0 {
                return 0.0;
            }
            rand_distr::Exp::new(1.0 / mean.secs())
                .map(|e| e.sample(rng))
                .unwrap_or(mean.secs())
        }
    }
}

/// A draw from `d` in whole milliseconds.
pub fn sample_ms(d: &Dist, rng: &mut ChaCha8Rng) -> u64 {
    (sample(d, rng) * 1000.0).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::simulation::Time;
    use rand::SeedableRng;

    #[test]
    fn draws_have_their_distributions_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for d in [
            Dist::Fixed(Time(3.0)),
            Dist::Uniform {
                min: Time(1.0),
                max: Time(5.0),
            },
            Dist::LogNormal {
                median: Time(30.0),
                p95: Time(60.0),
            },
            Dist::Exponential { mean: Time(120.0) },
        ] {
            let n = 200_000;
            let mean = (0..n).map(|_| sample(&d, &mut rng)).sum::<f64>() / n as f64;
            let want = d.mean();
            assert!((mean - want).abs() / want < 0.01, "{d:?}: {mean} vs {want}");
        }
    }
}
