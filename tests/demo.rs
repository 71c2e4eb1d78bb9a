//! `runnerctl demo`, the README's main job, run as a user runs it: its own Redis, the fake
//! GitHub (or Gitea), `serve` and two workers in one process, a burst of jobs; with `--warm`,
//! warm pools in every group first.

mod support;

use serde_json::Value;

fn demo(args: &[&str]) -> Value {
    let out = std::process::Command::new(support::bin())
        .args(["-o", "json", "demo"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_demo_runs_every_job_and_leaves_no_runner() {
    let r = demo(&["--jobs", "30"]);
    assert_eq!(r["jobs_completed"], 30, "{r}");
    assert_eq!(r["runners_created"], 30, "{r}");
    assert_eq!(r["runners_left"], 0, "{r}");
    assert_eq!(r["warm"], false);
    assert_eq!(r["jobs_from_warm"], 0);
    assert!(r["queued_to_start_ms_p95"].as_f64().is_some(), "{r}");
}

#[test]
fn the_demo_with_warm_pools_starts_jobs_on_warm_instances() {
    let r = demo(&["--jobs", "30", "--warm"]);
    assert_eq!(r["jobs_completed"], 30, "{r}");
    assert_eq!(
        r["runners_left"], 0,
        "the pools stay; no other runner is left: {r}"
    );
    assert_eq!(r["warm"], true);
    // The pools (6 + 2, 4, 2 + 2) are filled before the burst and replenished after each
    // take: most jobs take a warm instance.
    let from_warm = r["jobs_from_warm"].as_u64().unwrap();
    assert!(from_warm >= 20, "{r}");
    let r = demo(&["--jobs", "12", "--warm", "--forge", "gitea"]);
    assert_eq!(r["jobs_completed"], 12, "{r}");
    assert!(r["jobs_from_warm"].as_u64().unwrap() > 0, "{r}");
}
