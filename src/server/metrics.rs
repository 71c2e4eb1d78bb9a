//! Counters of the webhook server in Prometheus' text format.

use super::webhook::Outcome;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    pub fn record(&self, outcome: Outcome, took: Duration) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.outcomes[i].load(Ordering::Relaxed)
    }

    pub fn render(&self, redis_up: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP runnerctl_webhook_deliveries_total Webhook deliveries by outcome."
        );
        let _ = writeln!(s, "# TYPE runnerctl_webhook_deliveries_total counter");
        for (o, c) in Outcome::ALL.iter().zip(&self.outcomes) {
            let _ = writeln!(
                s,
                "runnerctl_webhook_deliveries_total{{outcome=\"{}\"}} {}",
                o.as_str(),
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP runnerctl_webhook_duration_seconds Time to answer a delivery."
        );
        let _ = writeln!(s, "# TYPE runnerctl_webhook_duration_seconds histogram");
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                s,
                "runnerctl_webhook_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "runnerctl_webhook_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "runnerctl_webhook_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "runnerctl_webhook_duration_seconds_count {count}");
        let _ = writeln!(
            s,
            "# HELP runnerctl_redis_up Whether Redis answered the last check."
        );
        let _ = writeln!(s, "# TYPE runnerctl_redis_up gauge");
        let _ = writeln!(s, "runnerctl_redis_up {}", u8::from(redis_up));
        s
    }
}
