//! `runnerctl simulate`: the real manager on the in-memory store and a virtual clock, checked
//! against queueing theory, hand-computed waits, and from the command line.

use assert_cmd::Command;
use rand::SeedableRng;
use runnerctl::config::simulation::{Dist, Time};
use runnerctl::config::Config;
use runnerctl::simulate::generate::{self, Shape, Spec};
use runnerctl::simulate::report::Report;
use runnerctl::simulate::trace::{Builder, Trace};
use runnerctl::simulate::{run, Options};
use std::sync::Arc;

/// One group of `max_runners` on the fake backend; every modelled delay 0 unless `extra`
/// (YAML under `simulation:`) says otherwise.
fn config(max_runners: u32, extra: &str) -> Config {
    let text = format!(
        "name: sim\ngithub:\n  token_env: UNUSED\nhealthcheck_interval: 1d\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo\n    labels: [self-hosted, g]\n    backend: fake\n    max_runners: {max_runners}\nsimulation:\n  delivery_lag: 0\n  api_latency: 0\n  runner_startup: 0\n  deletion: 0\n  capacity_retry: 0\n{extra}"
    );
    let loaded = runnerctl::wiring::parse(&text, "sim.yaml").unwrap();
    loaded.config
}

const NO_BOOT: &str = "  backends:\n    fake:\n      boot: 0\n";

fn simulate(c: &Config, trace: Trace) -> Report {
    run(c, Arc::new(trace), "t", &Options::default(), &|_| {}).unwrap()
}

fn poisson(c: &Config, jobs: u64, per_hour: f64, mean_s: f64, seed: u64) -> Trace {
    let spec = Spec {
        shape: Shape::Poisson,
        jobs: Some(jobs),
        days: None,
        rate_per_hour: per_hour,
        duration: Dist::Exponential { mean: Time(mean_s) },
        repositories: 3,
        weekend: 1.0,
        profile: generate::OFFICE_HOURS,
        window_s: 0.0,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    generate::generate(&spec, &c.runner_groups, &mut rng)
}

/// The mean wait in queue of an M/M/c queue (Erlang C): `lambda` arrivals and `mu`
/// completions per second and server.
fn erlang_c_wait(lambda: f64, mu: f64, c: u32) -> f64 {
    let a = lambda / mu;
    let rho = a / f64::from(c);
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        if k > 0 {
            term *= a / f64::from(k);
        }
        sum += term;
    }
    let last = term * a / f64::from(c) / (1.0 - rho);
    let p_wait = last / (sum + last);
    p_wait / (f64::from(c) * mu - lambda)
}

/// With every delay 0, a group is an M/M/c queue: a freed slot goes to the next waiting job
/// at once, and the mean wait over 100,000 jobs is Erlang C's within 5%.
#[test]
fn a_group_without_delays_waits_as_erlang_c_says() {
    let mean_s = 60.0;
    // Small c: the sample mean over 100,000 jobs varies least between seeds there (within
    // 3% over eight seeds each, BENCHMARKS.md; up to 9% at c = 32, rho = 0.9).
    let cases: [(u32, f64); 3] = [(1, 0.5), (2, 0.5), (1, 0.6)];
    let runs: Vec<_> = cases
        .iter()
        .map(|&(c, rho)| {
            std::thread::spawn(move || {
                let cfg = config(c, NO_BOOT);
                let lambda = rho * f64::from(c) / mean_s;
                let trace = poisson(&cfg, 100_000, lambda * 3600.0, mean_s, 7);
                let r = simulate(&cfg, trace);
                (c, rho, lambda, r)
            })
        })
        .collect();
    for h in runs {
        let (c, rho, lambda, r) = h.join().unwrap();
        let want = erlang_c_wait(lambda, 1.0 / mean_s, c);
        let got = r.wait.mean_s;
        assert_eq!(r.jobs_started, 100_000);
        assert!(
            (got - want).abs() / want < 0.05,
            "c={c} rho={rho}: mean wait {got:.3} s, Erlang C {want:.3} s"
        );
        assert!(r.groups["g"].peak_instances <= c);
    }
}

/// Erlang C's formula as written above, against published values.
#[test]
fn the_erlang_c_formula_of_these_tests_is_right() {
    // M/M/1: Wq = rho / (mu - lambda).
    let w = erlang_c_wait(0.5, 1.0, 1);
    assert!((w - 1.0).abs() < 1e-12, "{w}");
    // M/M/2 with a = 1: P(wait) = 1/3, Wq = P / (2 mu - lambda) = 1/3.
    let w = erlang_c_wait(1.0, 1.0, 2);
    assert!((w - 1.0 / 3.0).abs() < 1e-12, "{w}");
}

/// With room for every job and nothing warm, each job waits the boot and the runner's
/// start-up, exactly.
#[test]
fn unlimited_capacity_and_a_fixed_boot_make_every_job_wait_boot_plus_startup() {
    let extra = "  backends:\n    fake:\n      boot: 30s\n";
    let mut cfg = config(10_000, extra);
    cfg.simulation.runner_startup = Dist::Fixed(Time(5.0));
    let trace = poisson(&cfg, 2_000, 600.0, 300.0, 3);
    let r = simulate(&cfg, trace);
    assert_eq!(r.jobs_started, 2_000);
    for w in [r.wait.p50_s, r.wait.max_s, r.wait.mean_s] {
        assert_eq!(w, 35.0, "{:?}", r.wait);
    }
    assert_eq!(r.runners_wasted, 0);
}

/// A fixed trace with max_runners 1 and no delays gives the waits computed by hand.
#[test]
fn one_runner_gives_the_hand_computed_waits() {
    let cfg = config(1, NO_BOOT);
    let mut b = Builder::default();
    let labels = ["self-hosted".to_string(), "g".to_string()];
    // (queued s, duration s): starts at 0, 10, 15, 16 → waits 0, 9, 13, 6.
    for (i, (q, d)) in [(0, 10), (1, 5), (2, 1), (10, 4)].iter().enumerate() {
        b.push(
            q * 1000,
            d * 1000,
            &labels,
            "octo/app",
            None,
            None,
            i as u32 + 1,
        );
    }
    let r = simulate(&cfg, b.finish());
    assert_eq!(r.jobs_started, 4);
    assert_eq!(r.wait.max_s, 13.0);
    assert_eq!(r.wait.mean_s, (9.0 + 13.0 + 6.0) / 4.0);
    assert_eq!(r.runner_minutes.busy, 0.333);
    assert_eq!(r.simulated_s, 20.0);
}

/// GitHub's hostile behaviour modelled: deliveries lost, repeated, reordered, runner theft,
/// create calls failing. Every job still starts (the health check finds lost jobs), and
/// `max_runners` holds.
#[test]
fn lost_and_repeated_deliveries_and_failing_creates_still_start_every_job() {
    let extra = "  healthcheck_interval: 1m\n  forge:\n    lost: 0.2\n    repeated: 0.2\n    reordered: 0.2\n  backends:\n    fake:\n      boot: {uniform: {min: 5s, max: 40s}}\n      create_failure_rate: 0.1\n";
    let cfg = config(6, extra);
    let trace = poisson(&cfg, 1_000, 120.0, 120.0, 11);
    let r = simulate(&cfg, trace);
    assert_eq!(r.jobs_started, 1_000, "{r:#?}");
    assert!(r.deliveries.lost > 0 && r.create_failures > 0);
    assert!(r.groups["g"].peak_instances <= 6);
}

/// Spot interruptions fail the jobs they hit, and are counted.
#[test]
fn spot_interruptions_fail_the_jobs_they_hit() {
    let extra = "  backends:\n    fake:\n      boot: 10s\n      spot_interruption_rate: 2\n";
    let cfg = config(20, extra);
    let trace = poisson(&cfg, 500, 120.0, 600.0, 5);
    let r = simulate(&cfg, trace);
    assert!(r.interruptions > 0 && r.jobs_interrupted > 0, "{r:#?}");
    assert!(r.jobs_interrupted <= r.interruptions);
}

/// Min-idle keeps warm runners: jobs wait less than per-job, and idle time is paid for.
#[test]
fn warm_runners_cut_the_wait_and_cost_idle_time() {
    let extra = "  healthcheck_interval: 30s\n  backends:\n    fake:\n      boot: 60s\n      price_per_hour: 1\n";
    let cold = config(50, extra);
    let mut warm = cold.clone();
    warm.runner_groups[0].min_runners = 3;
    let trace = poisson(&cold, 500, 30.0, 120.0, 9);
    let a = simulate(&cold, trace.clone());
    let b = simulate(&warm, trace);
    assert!(
        b.wait.mean_s < a.wait.mean_s,
        "{:?} vs {:?}",
        b.wait,
        a.wait
    );
    assert!(b.runner_minutes.idle > a.runner_minutes.idle);
    assert!(b.cost > a.cost);
}

/// The warm-pool comparison of BENCHMARKS.md on two weekdays of the same diurnal trace: cold
/// jobs wait a boot, hot ones the delivery, stopped ones a start; a scheduled mix of stopped
/// and hot instances keeps the p95 wait under 15 s at under a third of the idle cost of a
/// constant hot pool of its largest size.
#[cfg(feature = "aws")]
#[test]
fn warm_pools_in_the_simulator_wait_a_start_or_nothing_and_a_scheduled_mix_costs_a_third() {
    let load = |f: &str| {
        let path = format!("{}/benches/warm_sim/{f}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        runnerctl::wiring::parse(&text, &path).unwrap().config
    };
    let base = load("base.yaml");
    let spec = Spec {
        shape: Shape::Diurnal,
        jobs: None,
        days: Some(2.0),
        rate_per_hour: 60.0,
        duration: Dist::Exponential { mean: Time(300.0) },
        repositories: 5,
        weekend: 0.2,
        profile: generate::OFFICE_HOURS,
        window_s: 0.0,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let trace = generate::generate(&spec, &base.runner_groups, &mut rng);
    let run_of = |f: &str| simulate(&load(f), trace.clone());
    let (cold, hot, stopped, mix) = (
        run_of("base.yaml"),
        run_of("hot.yaml"),
        run_of("stopped.yaml"),
        run_of("scheduled-mix.yaml"),
    );
    for r in [&cold, &hot, &stopped, &mix] {
        assert_eq!(r.jobs_started, r.jobs, "every job started");
    }
    // Delivery (1 s) and the API calls before the credential, plus what each pool adds.
    assert!(
        cold.wait.p50_s > 45.0,
        "cold: a boot of 45 s: {:?}",
        cold.wait
    );
    assert!(hot.wait.p95_s < 2.0, "hot: {:?}", hot.wait);
    assert!(
        (12.0..14.0).contains(&stopped.wait.p95_s),
        "stopped: a start of 12 s: {:?}",
        stopped.wait
    );
    assert!(stopped.runner_minutes.stopped > 0.0);
    assert!(
        mix.wait.p50_s < 2.0,
        "the mix's hot instances in office hours: {:?}",
        mix.wait
    );
    assert!(mix.wait.p95_s < 15.0, "{:?}", mix.wait);
    assert!(
        mix.idle_cost * 3.0 < hot.idle_cost,
        "idle cost: mix {} vs hot {}",
        mix.idle_cost,
        hot.idle_cost
    );
}

fn cli() -> Command {
    let mut c = Command::cargo_bin("runnerctl").unwrap();
    c.env_remove("RUNNERCTL_CONFIG");
    c
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("sim.yaml");
    std::fs::write(
        &path,
        "name: sim\ngithub:\n  token_env: UNUSED\nbackends:\n  aws:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo\n    labels: [self-hosted, linux]\n    backend: aws\n    max_runners: 5\n  - name: big\n    organization: octo\n    labels: [self-hosted, big]\n    backend: aws\n    max_runners: 2\nsimulation:\n  backends:\n    aws:\n      boot: {lognormal: {median: 30s, p95: 60s}}\n      price_per_hour: 0.05\n",
    )
    .unwrap();
    path
}

/// The same trace, configuration and seed give byte-identical JSON, from separate processes.
#[test]
fn the_same_seed_gives_byte_identical_json() {
    let dir = tempfile::tempdir().unwrap();
    let c = write_config(dir.path());
    let args = [
        "simulate",
        "--generate",
        "poisson",
        "--jobs",
        "300",
        "--rate",
        "200",
        "--seed",
        "42",
        "--policy",
        "min-idle",
        "-o",
        "json",
    ];
    let a = cli().arg("-c").arg(&c).args(args).output().unwrap();
    let b = cli().arg("-c").arg(&c).args(args).output().unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["seed"], 42);
    assert_eq!(v["jobs"], 300);
    assert_eq!(v["runs"][0]["name"], "sim.yaml");
    assert_eq!(v["runs"][1]["name"], "min-idle(1)");
    assert!(v["runs"][0]["groups"]["linux"]["wait"]["p95_s"].is_number());
    let other = cli()
        .arg("-c")
        .arg(&c)
        .args([
            "simulate",
            "--generate",
            "poisson",
            "--jobs",
            "300",
            "--rate",
            "200",
            "--seed",
            "43",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_ne!(other.stdout, a.stdout);
}

/// A generated trace written with `--write-trace` and replayed with `--trace` gives the same
/// report.
#[test]
fn a_written_trace_replays_to_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let c = write_config(dir.path());
    let t = dir.path().join("week.jsonl");
    let gen = cli()
        .arg("-c")
        .arg(&c)
        .args([
            "simulate",
            "--generate",
            "diurnal",
            "--days",
            "2",
            "--rate",
            "30",
            "-o",
            "json",
            "--write-trace",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let replay = cli()
        .arg("-c")
        .arg(&c)
        .args(["simulate", "-o", "json", "--trace"])
        .arg(&t)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&gen.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(a["runs"], b["runs"]);
    assert!(a["jobs"].as_u64().unwrap() > 100);
}

/// A bad line is an error naming the file, line and field; nothing is simulated.
#[test]
fn a_bad_trace_line_is_named_and_nothing_is_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let c = write_config(dir.path());
    let t = dir.path().join("t.jsonl");
    std::fs::write(
        &t,
        "{\"queued_at\": 0, \"labels\": [\"self-hosted\", \"linux\"], \"repository\": \"octo/app\", \"duration_s\": 60}\n{\"queued_at\": 5, \"labels\": [\"self-hosted\", \"linux\"], \"repository\": \"octo/app\", \"duration_s\": \"long\"}\n",
    )
    .unwrap();
    let replay = || {
        cli()
            .arg("-c")
            .arg(&c)
            .args(["simulate", "--trace"])
            .arg(&t)
            .output()
            .unwrap()
    };
    let out = replay();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("t.jsonl:2: field `duration_s`"), "{err}");
    // A group the configuration does not have.
    std::fs::write(
        &t,
        "{\"queued_at\": 0, \"labels\": [\"self-hosted\"], \"repository\": \"octo/app\", \"duration_s\": 60, \"group\": \"nope\"}\n",
    )
    .unwrap();
    let out = replay();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: group `nope`"), "{err}");
}

/// `--compare` prints both configurations side by side with the ratio of the second to the
/// first.
#[test]
fn compare_prints_side_by_side_with_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let c = write_config(dir.path());
    let text = std::fs::read_to_string(&c)
        .unwrap()
        .replace("max_runners: 5", "max_runners: 1");
    let small = dir.path().join("small.yaml");
    std::fs::write(&small, text).unwrap();
    let out = cli()
        .arg("-c")
        .arg(&c)
        .args([
            "simulate",
            "--generate",
            "burst",
            "--jobs",
            "40",
            "--compare",
        ])
        .arg(&small)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("SIM.YAML") && header.contains("×2"),
        "{text}"
    );
    let p95 = text
        .lines()
        .find(|l| l.starts_with(" wait p95 (s)"))
        .unwrap();
    let ratio: f64 = p95.split_whitespace().last().unwrap().parse().unwrap();
    assert!(ratio > 1.0, "{text}");
}

/// Without a configuration file, the shipped example is simulated (and said so).
#[test]
fn without_a_configuration_the_example_is_simulated() {
    let out = cli()
        .args([
            "-c",
            "/nonexistent/runnerctl.yaml",
            "simulate",
            "--generate",
            "poisson",
            "--jobs",
            "50",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an explicit --config must exist"
    );
    let out = cli()
        .env("RUNNERCTL_CONFIG", "")
        .env_remove("RUNNERCTL_CONFIG")
        .args([
            "simulate",
            "--generate",
            "poisson",
            "--jobs",
            "50",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    if std::path::Path::new("/etc/runnerctl/config.yaml").exists() {
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shipped example"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"][0]["name"], "config.example.yaml");
    assert_eq!(v["runs"][0]["jobs_unmatched"], 0);
}

mod support;

/// `trace export` against the fake GitHub: every page of runs and jobs in the window, jobs
/// outside it or not finished left out, and the file replays with `simulate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_export_writes_the_window_s_finished_jobs_from_the_fake_github() {
    use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
    let sim = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["app".into(), "web".into()])],
        token: Some("t0k".into()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let now = runnerctl::model::unix_now();
    let day = 86_400;
    // 150 jobs in the last three days (two pages of runs), two older than the window.
    for i in 0..150u64 {
        let at = now - 3 * day + i * 600;
        let repo = if i % 2 == 0 {
            "octo-org/app"
        } else {
            "octo-org/web"
        };
        sim.add_past_job(
            repo,
            &["self-hosted", "linux"],
            (at, at + 30, at + 330),
            "success",
        );
    }
    sim.add_past_job(
        "octo-org/app",
        &["self-hosted", "linux"],
        (now - 9 * day, now - 9 * day + 5, now - 9 * day + 60),
        "failure",
    );
    sim.add_past_job(
        "octo-org/web",
        &["self-hosted", "linux"],
        (now - 8 * day, now - 8 * day + 5, now - 8 * day + 60),
        "success",
    );
    // Queued now and never started: not in the trace.
    sim.queue_job("octo-org/app", &["self-hosted", "linux"]);
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("c.yaml");
    std::fs::write(
        &c,
        format!(
            "name: sim\ngithub:\n  base_url: {}\n  token_env: TRACE_GH_TOKEN\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: linux\n    organization: octo-org\n    labels: [self-hosted, linux]\n    backend: f\n    max_runners: 4\n",
            sim.url()
        ),
    )
    .unwrap();
    let out_file = dir.path().join("week.jsonl");
    let (c2, f2) = (c.clone(), out_file.clone());
    let out = tokio::task::spawn_blocking(move || {
        cli()
            .env("TRACE_GH_TOKEN", "t0k")
            .arg("-c")
            .arg(&c2)
            .args(["trace", "export", "--since", "7d", "-o"])
            .arg(&f2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the trace went to the file");
    let text = std::fs::read_to_string(&out_file).unwrap();
    let trace = Trace::parse(&text, "week.jsonl").unwrap();
    assert_eq!(
        trace.jobs.len(),
        150,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(trace.jobs[0].duration_ms, 300_000);
    assert_eq!(trace.jobs[1].queued_ms, 600_000);
    assert!(String::from_utf8_lossy(&out.stderr).contains("150 jobs from 2 repositories"));
    // And it replays.
    let replay = tokio::task::spawn_blocking(move || {
        cli()
            .arg("-c")
            .arg(&c)
            .args(["simulate", "-o", "json", "--trace"])
            .arg(&out_file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(v["runs"][0]["jobs_started"], 150);
    assert_eq!(v["runs"][0]["repositories"].as_object().unwrap().len(), 2);
}

/// `trace export` against the fake Gitea 1.24 (its jobs listing); Gitea 1.22 has none and
/// says so (exit 1, as every operation the forge does not support).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_export_reads_gitea_s_jobs_listing() {
    use runnerctl::forge::gitea::fake::{FakeGitea, FakeGiteaOptions};
    for (version, ok) in [("1.24.0", true), ("1.22.6", false)] {
        let sim = FakeGitea::start(FakeGiteaOptions {
            orgs: vec![("octo-org".into(), vec!["app".into()])],
            token: "gt".into(),
            version: version.into(),
            ..FakeGiteaOptions::default()
        })
        .await
        .unwrap();
        let now = runnerctl::model::unix_now();
        for i in 0..60u64 {
            let at = now - 86_400 + i * 60;
            sim.add_past_job("octo-org/app", &["linux"], (at, at + 10, at + 70));
        }
        sim.add_past_job(
            "octo-org/app",
            &["linux"],
            (now - 30 * 86_400, now - 30 * 86_400, now - 30 * 86_400 + 5),
        );
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.yaml");
        std::fs::write(
            &c,
            format!(
                "name: sim\nforge: gitea\ngitea:\n  url: {}\n  token_env: TRACE_GITEA_TOKEN\nbackends:\n  f:\n    kind: fake\nrunner_groups:\n  - name: box\n    organization: octo-org\n    labels: [linux]\n    backend: f\n",
                sim.url()
            ),
        )
        .unwrap();
        let out = tokio::task::spawn_blocking(move || {
            cli()
                .env("TRACE_GITEA_TOKEN", "gt")
                .arg("-c")
                .arg(&c)
                .args(["trace", "export", "--since", "2d"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        if !ok {
            assert_eq!(
                out.status.code(),
                Some(1),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains("1.24"));
            continue;
        }
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace = Trace::parse(&String::from_utf8_lossy(&out.stdout), "-").unwrap();
        assert_eq!(trace.jobs.len(), 60);
        assert_eq!(trace.jobs[0].duration_ms, 60_000);
        assert_eq!(trace.label_sets, [["linux".to_string()]]);
    }
}

/// `--since` must come before `--until`, and a bad time names its flag.
#[test]
fn trace_export_refuses_a_bad_window() {
    let dir = tempfile::tempdir().unwrap();
    let c = write_config(dir.path());
    let out = cli()
        .env("UNUSED", "x")
        .arg("-c")
        .arg(&c)
        .args(["trace", "export", "--since", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since: `yesterday`"));
    let out = cli()
        .env("UNUSED", "x")
        .arg("-c")
        .arg(&c)
        .args(["trace", "export", "--since", "1d", "--until", "3d"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not before"));
}

/// `-o FILE` names the file of `trace export` only; a format stays a format everywhere.
#[test]
fn dash_o_names_the_trace_file_only_for_trace_export() {
    let os = |v: &[&str]| -> Vec<std::ffi::OsString> { v.iter().map(Into::into).collect() };
    let f = runnerctl::cli::trace_export_file;
    assert_eq!(
        f(os(&[
            "runnerctl",
            "trace",
            "export",
            "--since",
            "7d",
            "-o",
            "w.jsonl"
        ])),
        os(&[
            "runnerctl",
            "trace",
            "export",
            "--since",
            "7d",
            "--file",
            "w.jsonl"
        ])
    );
    assert_eq!(
        f(os(&["runnerctl", "trace", "export", "--output=w.jsonl"])),
        os(&["runnerctl", "trace", "export", "--file=w.jsonl"])
    );
    let json = os(&["runnerctl", "trace", "export", "-o", "json"]);
    assert_eq!(f(json.clone()), json);
    let other = os(&["runnerctl", "-o", "out.txt", "runners", "list"]);
    assert_eq!(f(other.clone()), other);
}

/// A machine type's own price applies to the instances of that type: the example's
/// `aws-large` group (`c6i.2xlarge` on `aws-eu`) costs twice as much at twice the price, the
/// same runs otherwise.
#[test]
fn a_machine_type_s_price_applies_to_its_instances() {
    let example = runnerctl::config::EXAMPLE;
    let base = runnerctl::wiring::parse(example, "config.example.yaml")
        .unwrap()
        .config;
    let mut priced = base.clone();
    priced
        .simulation
        .backends
        .get_mut("aws-eu")
        .unwrap()
        .machine_prices = Some([("c6i.2xlarge".to_string(), 0.5)].into());
    let mut doubled = priced.clone();
    doubled
        .simulation
        .backends
        .get_mut("aws-eu")
        .unwrap()
        .machine_prices = Some([("c6i.2xlarge".to_string(), 1.0)].into());
    let trace = poisson(&base, 300, 60.0, 600.0, 4);
    let a = simulate(&priced, trace.clone());
    let b = simulate(&doubled, trace);
    let (ca, cb) = (a.groups["aws-large"].cost, b.groups["aws-large"].cost);
    assert!(ca > 0.0);
    assert!((cb - 2.0 * ca).abs() < 0.01, "{ca} vs {cb}");
    assert_eq!(a.groups["gcp-spot"].cost, b.groups["gcp-spot"].cost);
}

/// Issue 36: a group whose first backend refuses most creates (90%) waits hours on it alone,
/// and starts every job a boot after its queueing with a second backend behind it: the
/// breaker sends runners there.
#[test]
fn a_second_backend_behind_a_failing_one_starts_every_job() {
    let text = |group: &str| {
        format!(
            "name: sim\ngithub:\n  token_env: UNUSED\nhealthcheck_interval: 1d\nbackends:\n  onprem:\n    kind: fake\n  cloud:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo\n    labels: [self-hosted, g]\n    max_runners: 20\n{group}simulation:\n  delivery_lag: 0\n  api_latency: 0\n  runner_startup: 0\n  deletion: 0\n  capacity_retry: 0\n  backends:\n    onprem:\n      boot: 20s\n      create_failure_rate: 0.9\n    cloud:\n      boot: 60s\n"
        )
    };
    let one = runnerctl::wiring::parse(&text("    backend: onprem\n"), "one.yaml")
        .unwrap()
        .config;
    let two = runnerctl::wiring::parse(
        &text("    backends: [onprem, cloud]\n    failover: {failures: 3, window: 5m, cool_down: 2m}\n"),
        "two.yaml",
    )
    .unwrap()
    .config;
    let trace = poisson(&one, 300, 30.0, 300.0, 5);
    let alone = simulate(&one, trace.clone());
    let behind = simulate(&two, trace);
    assert_eq!(behind.jobs_started, 300, "{behind:#?}");
    assert!(behind.wait.p95_s < 120.0, "{:?}", behind.wait);
    assert!(
        alone.wait.p95_s > 10.0 * behind.wait.p95_s,
        "{:?} vs {:?}",
        alone.wait,
        behind.wait
    );
}
