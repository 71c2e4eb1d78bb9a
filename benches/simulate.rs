//! `runnerctl simulate`'s speed and memory: a day of 10,000 jobs over three groups, with the
//! default models (boot times, start-up, delivery lag, API latency, capacity retries), and
//! 1,000,000 jobs for the peak resident memory.
//!
//! Run: `cargo bench --bench simulate -- --bench [--day 10000] [--memory 1000000]` (those
//! are the defaults). Without `--bench` it runs 1,000 jobs of each, to check that it works.
//! Goals (BENCHMARKS.md): the day under 10 s on two cores; under 200 MB for a million jobs.

use rand::SeedableRng;
use runnerctl::config::simulation::{Dist, Time};
use runnerctl::simulate::generate::{self, Shape, Spec};
use runnerctl::simulate::{run, Options};
use std::sync::Arc;
use std::time::Instant;

const CONFIG: &str = "name: bench\ngithub:\n  token_env: UNUSED\nbackends:\n  aws:\n    kind: fake\n  gcp:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo\n    labels: [self-hosted, linux]\n    backend: aws\n    max_runners: 40\n    min_runners: 2\n  - name: large\n    organization: octo\n    labels: [self-hosted, large]\n    backend: aws\n    max_runners: 25\n  - name: gpu\n    organization: octo\n    labels: [self-hosted, gpu]\n    backend: gcp\n    max_runners: 25\nsimulation:\n  backends:\n    aws:\n      boot: {lognormal: {median: 35s, p95: 60s}}\n      price_per_hour: 0.0832\n    gcp:\n      boot: {lognormal: {median: 30s, p95: 50s}}\n      price_per_hour: 0.35\n";

fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's peak resident memory, MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn trace(
    config: &runnerctl::config::Config,
    jobs: u64,
    days: f64,
) -> runnerctl::simulate::trace::Trace {
    let spec = Spec {
        shape: Shape::Poisson,
        jobs: Some(jobs),
        days: None,
        rate_per_hour: jobs as f64 / (days * 24.0),
        duration: Dist::LogNormal {
            median: Time(240.0),
            p95: Time(900.0),
        },
        repositories: 20,
        weekend: 1.0,
        profile: generate::OFFICE_HOURS,
        window_s: 0.0,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    generate::generate(&spec, &config.runner_groups, &mut rng)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let config = runnerctl::wiring::parse(CONFIG, "bench.yaml")
        .unwrap()
        .config;
    let (memory_jobs, day_jobs) = if bench {
        (flag("--memory", 1_000_000), flag("--day", 10_000))
    } else {
        (1_000, 1_000)
    };
    // The million first, so that the peak is its own.
    let t = trace(&config, memory_jobs, memory_jobs as f64 / 10_000.0);
    let started = Instant::now();
    let r = run(&config, Arc::new(t), "memory", &Options::default(), &|_| {}).unwrap();
    println!(
        "simulate: {memory_jobs} jobs over {:.0} days: {:.1} s, peak RSS {:.0} MiB ({} started, wait p95 {} s)",
        memory_jobs as f64 / 10_000.0,
        started.elapsed().as_secs_f64(),
        peak_rss_mib(),
        r.jobs_started,
        r.wait.p95_s
    );
    let t = trace(&config, day_jobs, 1.0);
    let started = Instant::now();
    let r = run(&config, Arc::new(t), "day", &Options::default(), &|_| {}).unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "simulate: a day of {day_jobs} jobs over 3 groups: {secs:.2} s ({} started, wait p50 {} s, p95 {} s, {} API calls)",
        r.jobs_started, r.wait.p50_s, r.wait.p95_s, r.api.calls
    );
    assert_eq!(r.jobs_started, day_jobs);
}
